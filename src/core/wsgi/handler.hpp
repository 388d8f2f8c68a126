// The WSGI side of a worker (PEP 3333): builds the environ, calls the application, and turns its
// status, headers and iterable into bytes on the connection. The only layer here that runs Python.
#pragma once

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <uv.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "http/parser.hpp"
#include "net/connection.hpp"
#include "net/response_writer.hpp"
#include "net/server.hpp"
#include "py/ref.hpp"

namespace luath::wsgi {

class Handler;

// Python objects handed to the application; defined in start_response.cpp and input.cpp.
struct StartResponseObject;
struct WriteObject;
struct InputObject;
extern PyTypeObject* StartResponseType;  // heap types made at module init; owned by the module
extern PyTypeObject* WriteType;
extern PyTypeObject* InputType;
extern PyObject* ClientDisconnected;  // luath._core.ClientDisconnected (an OSError); module-owned
bool init_types(PyObject* module);

// One request/response on a connection, from the call of the app to its last byte queued.
struct Exchange {
    Handler* handler = nullptr;
    net::Connection* conn = nullptr;
    bool active = false;         // between the app call and the end of the response
    bool http10 = false;
    bool head = false;           // HEAD: headers only
    bool started = false;        // start_response was called
    net::ResponseWriter w;       // status line, headers, framing
    py::Ref status;              // str given to start_response
    py::Ref headers;             // list given to start_response
    py::Ref result;              // the app's iterable (close() still to call)
    py::Ref iter;                // iterator over result while streaming
    StartResponseObject* sr = nullptr;  // owned through `sr_ref`
    py::Ref sr_ref;
    py::Ref input;               // wsgi.input object of this request
    py::Ref environ;             // kept only for the access log
    std::uint64_t started_ns = 0;
    // --threads: the app runs in a pool thread (call_env is its environ until the call).
    bool threaded = false;
    PyThreadState* ts = nullptr;  // the pool thread's state while it waits on the socket
    py::Ref call_env;
    Exchange* next_job = nullptr;  // the pool's queues (intrusive: no allocation per request)

    void reset();
    // Around blocking socket work: drop the GIL and take it back (the loop thread's lazy GIL, or the
    // pool thread's own thread state).
    inline void unlock_gil();
    inline void lock_gil();
};

struct ConnData {
    py::Ref remote_addr;
    py::Ref remote_port;
    Exchange ex;
};

struct Options {
    py::Ref app;
    py::Ref file_wrapper;   // the FileWrapper type exposed as wsgi.file_wrapper
    py::Ref log_error;      // callable(exc, message): logs an application error with its traceback
    py::Ref base_environ;   // the constant part of the environ, copied per request
    py::Ref access_log;     // access_log(environ, status, length, seconds) after each response, or null
    std::string script_name;
};

class Handler final : public net::Handler {
public:
    explicit Handler(Options opts);
    ~Handler() override;

    void on_request(net::Connection& c, const http::Request& req) override;
    void on_drain(net::Connection& c) override;
    void on_close(net::Connection& c) override;
    void release(void* owner) override;
    void before_wait() override;

    // The GIL is held while Python runs and dropped while the loop waits or a socket blocks.
    void ensure_gil() {
        if (!gil_held_) {
            PyEval_RestoreThread(tstate_);
            gil_held_ = true;
        }
    }
    void drop_gil() {
        if (gil_held_) {
            gil_held_ = false;
            tstate_ = PyEval_SaveThread();
        }
    }
    void set_gil_held() { gil_held_ = true; }

    // --threads N > 1: N Python threads run the app (called on the loop thread, GIL held).
    // start_pool: false with a Python error set. stop_pool joins the threads (none is busy by then).
    bool start_pool(uv_loop_t* loop, unsigned n);
    void stop_pool();

    // Used by start_response's write() and by the response path.
    bool send_headers(Exchange& ex, std::int64_t length_hint);
    bool send_body(Exchange& ex, PyObject* bytes);   // false: a Python error is set
    void app_failed(Exchange& ex);                   // the Python error set now is the app's
    void finish(Exchange& ex);                       // call close() and end the response

    // Environ (environ.cpp).
    PyObject* build_environ(net::Connection& c, ConnData& cd, const http::Request& req);

    // Pool thread, GIL held: call the app and produce its response.
    void run_in_thread(Exchange& ex);

private:
    struct Pool;
    ConnData* conn_data(net::Connection& c);
    bool flush_threaded(Exchange& ex);
    void submit(Exchange& ex);  // loop thread: hand the exchange to a pool thread
    bool on_loop_thread() const;
    void release_owner(void* owner);  // GIL held
    void run_response(Exchange& ex);
    void stream(Exchange& ex);
    bool try_sendfile(Exchange& ex);
    void call_close(Exchange& ex);
    void log_current(const char* message);
    void log_access(Exchange& ex);
    PyObject* header_key(std::string_view name);
    StartResponseObject* new_start_response(Exchange& ex);
    PyObject* new_input(Exchange& ex);

    Options opts_;
    PyThreadState* tstate_ = nullptr;
    bool gil_held_ = true;
    std::vector<ConnData*> free_data_;
    std::vector<PyObject*> free_sr_;      // StartResponse objects no one else references
    std::vector<PyObject*> free_input_;
    // HTTP_* keys for header names seen, keyed by the lower-cased name; interned, kept for the process.
    struct KeySlot {
        std::string name;
        PyObject* key = nullptr;
    };
    std::vector<KeySlot> keys_;
    std::size_t nkeys_ = 0;
    std::string scratch_;
    std::unique_ptr<Pool> pool_;  // null with one thread: the app runs on the loop thread
};

void Exchange::unlock_gil() {
    if (threaded) ts = PyEval_SaveThread();
    else handler->drop_gil();
}

void Exchange::lock_gil() {
    if (threaded) PyEval_RestoreThread(ts);
    else handler->ensure_gil();
}

// start_response.cpp / input.cpp helpers
void start_response_detach(PyObject* sr);   // the exchange ended: later calls raise
void input_detach(PyObject* input);
PyObject* start_response_new(Exchange* ex);  // new reference
PyObject* input_new(Exchange* ex);           // new reference
void start_response_attach(PyObject* sr, Exchange* ex);
void input_attach(PyObject* input, Exchange* ex);

}  // namespace luath::wsgi
