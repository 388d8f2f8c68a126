// The ASGI 3 side of a worker: HTTP scopes, receive/send, each request's coroutine started as an
// eager asyncio Task (it runs at once; an app that never waits finishes without a loop round trip). asyncio is the outer loop: the Python
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
    net::ResponseWriter* w;      // owned (heap), valid while conn is set
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
};

extern PyTypeObject* ExchangeType;
extern PyTypeObject* ReadyType;
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

private:
    friend struct WsAccess;
    // An upgrade request: true when it was handled as a WebSocket (or refused as a bad handshake).
    bool ws_request(net::Connection& c, ConnData& cd, const http::Request& req);
    void ws_drain(ConnData& cd);
    void ws_conn_closed(ConnData& cd);
    PyObject* build_scope(net::Connection& c, ConnData& cd, const http::Request& req);
    PyObject* header_name(std::string_view name);
    PyObject* tls_extensions(net::Connection& c);
    PyObject* take_body(Exchange* ex);        // an http.request message, or null with no error: wait
    void fulfil_receive(Exchange* ex);
    void app_finished(Exchange* ex, bool failed);
    void complete(Exchange* ex);
    void detach(Exchange* ex, bool disconnected);
    void log_current(const char* message);
    void log_access(Exchange* ex, int status);
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
};

}  // namespace luath::asgi
