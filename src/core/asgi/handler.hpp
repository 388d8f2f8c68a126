// The ASGI 3 side of a worker: HTTP scopes, receive/send, and each request's coroutine driven from
// here (see Handler::run_eager): an app that never waits finishes with no Task and no trip through the
// event loop; one that waits is handed to an asyncio Task. asyncio is the outer loop: the Python
// runner watches libuv's backend fd and calls Server::run_nowait(); the GIL is always held.
#pragma once

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <string>
#include <vector>

#include "http/parser.hpp"
#include "net/connection.hpp"
#include "net/response_writer.hpp"
#include "net/server.hpp"
#include "py/ref.hpp"

namespace luath::asgi {

class Handler;

// One request/response, a Python object so that receive/send can outlive the connection.
struct Exchange {
    PyObject_HEAD
    Handler* handler;            // borrowed; the handler outlives every exchange it serves
    net::Connection* conn;       // borrowed; null once the response completed or the client left
    net::ResponseWriter* w;      // &wbuf, valid while conn is set
    PyObject* pending_receive;   // owned future a receive() is waiting on, or null
    PyObject* pending_send;      // owned future a send() is waiting on (backpressure), or null
    bool http10, head, te_trailers;
    bool request_done;           // the last http.request message was delivered
    bool disconnected;
    bool started;                // http.response.start received
    bool body_done;              // the last http.response.body was queued
    bool want_trailers;          // start said trailers: True
    bool complete;               // the response is complete
    bool app_done;
    int status;
    PyObject* scope;             // owned, only with an access log
    std::uint64_t started_ns;
    net::ResponseWriter wbuf;    // what w points to (constructed in place, no allocation per request)
    // Bound receive/send (owned while the exchange is its connection's current one; dropped when it
    // leaves, since each holds the exchange): kept with it when it is reused for the next request.
    PyObject* receive;
    PyObject* send;
};

// The coroutine-like object an asyncio Task runs for a request whose app waits (luath._core.AppTask).
// A Task is made for it before any request (a spare, parked on a future); while a request's coroutine
// is driven eagerly that Task is asyncio's current task; if the coroutine waits, the spare is bound
// to it: its first step yields the future the coroutine yielded, later steps forward send/throw to
// the coroutine (run in the request's context) and report how it ended.
struct Continuation {
    PyObject_HEAD
    Handler* handler;            // borrowed; null once the handler is gone
    PyObject* exchange;          // owned; null while a spare
    PyObject* coro;              // owned; the app's coroutine (null while a spare and once it ended)
    PyObject* ctx;               // owned; the request's contextvars.Context
    PyObject* first;             // owned; what the coroutine yielded while driven eagerly, yielded first
    PyObject* park;              // owned; the future a spare's Task waits on
    bool dead;                   // ended (or a spare that was cancelled)
    bool tracked;                // in its handler's live list (bound, not yet released)
};

extern PyTypeObject* ExchangeType;
extern PyTypeObject* ReadyType;
extern PyTypeObject* ContinuationType;
bool init_types(PyObject* module);

struct ConnData {
    py::Ref client;              // (host, port) of the peer
    py::Ref extensions;          // with TLS: the scope's extensions, holding this connection's "tls"
    py::Ref exchange;            // the exchange now on this connection
    py::Ref ws;                  // the WebSocket session on this connection (asgi/websocket.cpp), or null
};

struct Options {
    py::Ref app;
    py::Ref base_scope;          // the constant part of the scope, copied per request
    py::Ref spawn;               // spawn(coro, exchange): run the coroutine as a Task, eagerly if possible
    py::Ref create_future;       // loop.create_future
    py::Ref wake;                // wake(): run libuv soon (Python changed a connection)
    py::Ref log_error;           // log_error(exc, message)
    py::Ref state;               // lifespan state (a dict), copied shallowly into each scope; or null
    py::Ref access_log;          // access_log(scope, status, length, seconds) after each response, or null
    // Eager start (all set, or all null: every request then goes through spawn): the loop,
    // asyncio.tasks._enter_task/_leave_task, and new_task(continuation) -> a Task running it.
    py::Ref loop;
    py::Ref enter_task;
    py::Ref leave_task;
    py::Ref new_task;
};

class Handler final : public net::Handler {
public:
    explicit Handler(Options opts);
    ~Handler() override;

    void on_request(net::Connection& c, const http::Request& req) override;
    void on_drain(net::Connection& c) override;
    void on_close(net::Connection& c) override;
    void on_input(net::Connection& c) override;
    bool reads_during_app() const override { return true; }
    void release(void* owner) override;
    // WebSocket (asgi/websocket.cpp)
    void on_ws_message(net::Connection& c, bool text, std::string_view data) override;
    void on_ws_closed(net::Connection& c, int code, std::string_view reason) override;

    // Used by the Exchange methods.
    PyObject* receive(Exchange* ex);           // an awaitable
    PyObject* send(Exchange* ex, PyObject* message);
    void app_done(Exchange* ex, PyObject* exc);
    void set_state(PyObject* state) { opts_.state = py::Ref::borrow(state); }
    const Options& options() const { return opts_; }
    void wake();
    void set_server(net::Server* s) { server_ = s; }
    // With a waker set (the server object's own wake, see server_object.cpp), wake() calls it
    // instead of the Python wake callable.
    void set_waker(void (*fn)(void*), void* arg) {
        waker_ = fn;
        waker_arg_ = arg;
    }

    // server_run brackets libuv's run with these: requests are driven eagerly only inside it.
    void begin_run();
    void end_run();
    void cancel_spare();  // graceful stop: the spare Task is cancelled (it ends at once)
    // One step of an app coroutine in its context (send value, or throw exc when exc is set).
    // PYGEN_NEXT: *result is what it yielded. PYGEN_RETURN: it ended (reported; an Exception it raised
    // was logged and swallowed). PYGEN_ERROR: it raised a BaseException (reported), still set.
    PySendResult step(Exchange* ex, PyObject* coro, PyObject* ctx, PyObject* value, PyObject* exc,
                      PyObject** result);
    void spare_died(Continuation* c);
    // Bound continuations, so that a handler going away first can orphan them.
    void track(Continuation* c) { live_.push_back(c); }
    void untrack(Continuation* c) {
        for (auto& p : live_)
            if (p == c) {
                p = live_.back();
                live_.pop_back();
                return;
            }
    }
    PyObject* new_future() { return PyObject_CallNoArgs(opts_.create_future.get()); }

private:
    friend struct WsAccess;
    // An upgrade request: true when it was handled as a WebSocket (or refused as a bad handshake).
    bool ws_request(net::Connection& c, ConnData& cd, const http::Request& req);
    void ws_drain(ConnData& cd);
    void ws_conn_closed(ConnData& cd);
    PyObject* build_scope(net::Connection& c, ConnData& cd, const http::Request& req);
    bool refresh_template(ConnData& cd, const http::Request& req);
    void start_app(Exchange* ex, PyObject* coro);
    void run_eager(Exchange* ex, PyObject* coro);
    void run_deferred();
    bool make_spare();
    bool spare_cancelled();
    void bind_spare(Exchange* ex, PyObject* coro, PyObject* ctx, PyObject* first);
    void ended(Exchange* ex, bool failed);
    void call_wake();
    Exchange* reusable_exchange(ConnData& cd);
    void drop_exchange(ConnData& cd);
    PyObject* header_name(std::string_view name);
    PyObject* tls_extensions(net::Connection& c);
    PyObject* take_body(Exchange* ex);        // an http.request message, or null with no error: wait
    void fulfil_receive(Exchange* ex);
    void body_failed(Exchange* ex);
    void app_finished(Exchange* ex, bool failed);
    void complete(Exchange* ex);
    void detach(Exchange* ex, bool disconnected);
    void log_current(const char* message);
    void log_access(Exchange* ex, int status);
    // One access-log line for a request's scope (owned: consumed here), started at started_ns.
    void log_access(py::Ref scope, int status, std::uint64_t length, std::uint64_t started_ns);
    bool stage_start(Exchange* ex, PyObject* headers);

    Options opts_;
    net::Server* server_ = nullptr;
    std::vector<ConnData*> free_data_;
    struct NameSlot {
        std::string name;
        PyObject* bytes = nullptr;  // lower-cased header name, kept for the process
    };
    std::vector<NameSlot> names_;
    std::size_t nnames_ = 0;
    std::string scratch_;
    py::Ref spare_body_;         // a body bytes object a receive found nothing for, kept for the next
    py::Ref scope_template_;     // every scope key in order, constants set: copied per request (no resize)
    // What the template holds now (borrowed: the template keeps each alive; see refresh_template).
    PyObject* t_version_ = nullptr;
    PyObject* t_client_ = nullptr;
    PyObject* t_method_ = nullptr;
    PyObject* t_raw_path_ = nullptr;
    PyObject* t_query_ = nullptr;
    bool in_run_ = false;        // inside server_run (no asyncio task is running)
    int depth_ = 0;              // app coroutine steps running now (from here or from a Continuation)
    struct Deferred {
        py::Ref exchange;
        py::Ref coro;
    };
    std::vector<Deferred> deferred_;  // requests that arrived while Python ran: started at the next run
    py::Ref spare_;              // the spare Task, or null
    py::Ref spare_cont_;         // its Continuation
    std::vector<Continuation*> live_;  // borrowed: each removes itself when released or freed
    void (*waker_)(void*) = nullptr;
    void* waker_arg_ = nullptr;
};

}  // namespace luath::asgi
