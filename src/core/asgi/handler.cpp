#include "asgi/handler.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <new>

#include "asgi/headers.hpp"
#include "http/response.hpp"
#include "http/uri.hpp"
#include "py/common.hpp"
#include "py/strings.hpp"

namespace luath::wsgi {
extern PyObject* ClientDisconnected;
}

namespace luath::asgi {

PyObject* ready(PyObject* value);
bool init_exchange_types();
bool init_continuation_type();
PyObject* new_continuation(Handler* h);
bool bind_continuation(PyObject* self, PyObject* exchange, PyObject* coro, PyObject* ctx, PyObject* first);
void orphan_continuation(PyObject* self);
extern PyMethodDef receive_def;
extern PyMethodDef send_def;

namespace {

constexpr Py_ssize_t kMaxReceive = 1 << 20;  // body bytes handed over in one http.request message

struct Keys {
#define LUATH_ASGI_KEYS(X)                                                                            \
    X(type) X(body) X(more_body) X(status) X(headers) X(trailers) X(more_trailers) X(path)            \
    X(http_version) X(method) X(raw_path) X(query_string) X(client) X(state) X(extensions)            \
    X(cancelled) X(exception) X(set_result) X(asgi) X(scheme) X(root_path) X(server) X(cancel)       \
    X(cancelling)
#define LUATH_DECLARE(name) PyObject* name = nullptr;
    LUATH_ASGI_KEYS(LUATH_DECLARE)
#undef LUATH_DECLARE
    PyObject* http_request = nullptr;
    PyObject* http_disconnect = nullptr;
    PyObject* response_start = nullptr;
    PyObject* response_body = nullptr;
    PyObject* response_trailers = nullptr;
    PyObject* response_pathsend = nullptr;
    PyObject* v10 = nullptr;
    PyObject* v11 = nullptr;
    PyObject* empty_bytes = nullptr;
    PyObject* disconnect_msg = nullptr;  // {"type": "http.disconnect"}, copied per use
    PyObject* request_msg = nullptr;     // {"type": "http.request", "body": b"", "more_body": False}, copied
    PyObject* throw_ = nullptr;          // "throw"
};
Keys K;

bool intern(PyObject*& slot, const char* s) {
    slot = PyUnicode_InternFromString(s);
    return slot != nullptr;
}

bool init_keys() {
#define LUATH_INIT(name) if (!intern(K.name, #name)) return false;
    LUATH_ASGI_KEYS(LUATH_INIT)
#undef LUATH_INIT
    if (!intern(K.http_request, "http.request") || !intern(K.http_disconnect, "http.disconnect") ||
        !intern(K.response_start, "http.response.start") || !intern(K.response_body, "http.response.body") ||
        !intern(K.response_trailers, "http.response.trailers") ||
        !intern(K.response_pathsend, "http.response.pathsend") || !intern(K.v10, "1.0") || !intern(K.v11, "1.1"))
        return false;
    if (!intern(K.throw_, "throw")) return false;
    K.empty_bytes = PyBytes_FromStringAndSize(nullptr, 0);
    K.disconnect_msg = PyDict_New();
    K.request_msg = PyDict_New();
    return K.empty_bytes && K.disconnect_msg && PyDict_SetItem(K.disconnect_msg, K.type, K.http_disconnect) == 0 &&
           K.request_msg && PyDict_SetItem(K.request_msg, K.type, K.http_request) == 0 &&
           PyDict_SetItem(K.request_msg, K.body, K.empty_bytes) == 0 &&
           PyDict_SetItem(K.request_msg, K.more_body, Py_False) == 0;
}

PyObject* decode_path(std::string_view path, std::string& scratch) {
    std::string_view d = http::percent_decode(path, scratch);
    return PyUnicode_DecodeUTF8(d.data(), static_cast<Py_ssize_t>(d.size()), "replace");
}

PyObject* peer_tuple(const sockaddr_storage& ss) {
    char host[64];
    unsigned port;
    if (!py::peer_address(ss, host, port)) Py_RETURN_NONE;  // a unix socket has no client address
    return Py_BuildValue("(sI)", host, port);
}

// The error set now, taken out (and put back by restore_error).
struct SavedError {
#if PY_VERSION_HEX >= 0x030C0000
    PyObject* exc = PyErr_GetRaisedException();
    void restore() { PyErr_SetRaisedException(exc); exc = nullptr; }
#else
    PyObject *type = nullptr, *value = nullptr, *tb = nullptr;
    SavedError() { PyErr_Fetch(&type, &value, &tb); }
    void restore() {
        PyErr_Restore(type, value, tb);
        type = value = tb = nullptr;
    }
#endif
};

// type == expected, for a message's "type": apps send the same str object (a constant of their code)
// each time, so the last one that matched is kept (a strong reference: its address stays its own)
// and compared by identity first.
struct TypeCache {
    PyObject* seen = nullptr;  // owned
};
TypeCache type_cache[4];  // start, body, pathsend, trailers

bool is_type(PyObject* type, PyObject* expected, int slot) {
    TypeCache& tc = type_cache[slot];
    if (type == expected || type == tc.seen) return true;
    if (!PyUnicode_Check(type) || PyUnicode_Compare(type, expected) != 0) {
        PyErr_Clear();
        return false;
    }
    Py_XSETREF(tc.seen, Py_NewRef(type));
    return true;
}

PyObject* runtime_error(const char* msg) {
    PyErr_SetString(PyExc_RuntimeError, msg);
    return nullptr;
}

}  // namespace

// ------------------------------------------------------------------ handler

Handler::Handler(Options opts) : opts_(std::move(opts)), names_(512) {
    if (!(opts_.loop && opts_.enter_task && opts_.leave_task && opts_.new_task)) {
        opts_.loop.reset();
        opts_.new_task.reset();
    }
    // The scope template: every key a request sets, in a fixed order, constants filled in from
    // base_scope, so that a copy has room for all of them (setting a key replaces a value, no resize).
    PyObject* base = opts_.base_scope.get();
    py::Ref t = py::Ref::steal(PyDict_New());
    if (!t) {
        PyErr_Clear();
        return;
    }
    PyObject* order[] = {K.type,   K.asgi,    K.http_version, K.method, K.scheme,     K.path,
                         K.raw_path, K.query_string, K.root_path, K.headers, K.client, K.server, K.extensions};
    for (PyObject* key : order) {
        PyObject* v = base ? PyDict_GetItemWithError(base, key) : nullptr;  // borrowed
        if (key == K.http_version) v = K.v11;  // replaced per request only for HTTP/1.0
        if (PyDict_SetItem(t.get(), key, v ? v : Py_None) < 0) {
            PyErr_Clear();
            return;
        }
    }
    if (base && PyDict_Update(t.get(), base) < 0) {
        PyErr_Clear();
        return;
    }
    scope_template_ = std::move(t);
}

Handler::~Handler() {
    for (ConnData* d : free_data_) delete d;
    if (spare_cont_) orphan_continuation(spare_cont_.get());
    for (Continuation* c : live_) orphan_continuation(reinterpret_cast<PyObject*>(c));
}

void Handler::wake() {
    // Inside server_run, libuv runs again before returning whenever a handle changed.
    if (in_run_ || !server_ || !server_->dirty()) return;
    call_wake();
}

void Handler::call_wake() {
    if (waker_) {
        waker_(waker_arg_);
        return;
    }
    if (!opts_.wake) return;
    py::Ref r = py::Ref::steal(PyObject_CallNoArgs(opts_.wake.get()));
    if (!r) PyErr_Clear();
}

void Handler::log_current(const char* message) { py::log_current(opts_.log_error.get(), message); }

void Handler::log_access(Exchange* ex, int status) {
    if (!ex->scope) return;
    py::Ref scope = py::Ref::steal(ex->scope);
    ex->scope = nullptr;
    log_access(std::move(scope), status, ex->w->body_sent(), ex->started_ns);
}

void Handler::log_access(py::Ref scope, int status, std::uint64_t length, std::uint64_t started_ns) {
    if (!scope || !opts_.access_log) return;
    double seconds = static_cast<double>(uv_hrtime() - started_ns) / 1e9;
    py::Ref r = py::Ref::steal(PyObject_CallFunction(opts_.access_log.get(), "OiKd", scope.get(), status,
                                                     static_cast<unsigned long long>(length), seconds));
    if (!r) log_current("Exception in the access log");
}

// Lower-cased header name as bytes, cached for the first 256 names seen.
PyObject* Handler::header_name(std::string_view name) {
    char buf[256];
    if (name.size() > sizeof buf) {
        std::string s(name);
        for (char& ch : s)
            if (ch >= 'A' && ch <= 'Z') ch = static_cast<char>(ch + 32);
        return PyBytes_FromStringAndSize(s.data(), static_cast<Py_ssize_t>(s.size()));
    }
    std::size_t h = 1469598103934665603ull;
    for (std::size_t i = 0; i < name.size(); ++i) {
        char ch = name[i];
        if (ch >= 'A' && ch <= 'Z') ch = static_cast<char>(ch + 32);
        buf[i] = ch;
        h = (h ^ static_cast<unsigned char>(ch)) * 1099511628211ull;
    }
    std::string_view lower(buf, name.size());
    std::size_t mask = names_.size() - 1;
    std::size_t i = h & mask;
    for (; names_[i].bytes; i = (i + 1) & mask) {
        if (names_[i].name == lower) {
            Py_INCREF(names_[i].bytes);
            return names_[i].bytes;
        }
    }
    PyObject* b = PyBytes_FromStringAndSize(buf, static_cast<Py_ssize_t>(name.size()));
    if (b && nnames_ < names_.size() / 2) {
        names_[i].name.assign(lower);
        names_[i].bytes = b;  // the cache keeps this reference for the life of the process
        Py_INCREF(b);
        ++nnames_;
    }
    return b;
}

// The base scope's extensions plus "tls" (the ASGI TLS extension) for this connection.
PyObject* Handler::tls_extensions(net::Connection& c) {
    net::TlsInfo t = c.tls()->info();
    PyObject* base = PyDict_GetItemWithError(opts_.base_scope.get(), K.extensions);  // borrowed
    py::Ref ext = py::Ref::steal(base && PyDict_Check(base) ? PyDict_Copy(base) : PyDict_New());
    py::Ref chain = py::Ref::steal(PyList_New(0));
    if (!ext || !chain) return nullptr;
    for (const std::string& pem : t.chain) {
        py::Ref one = py::Ref::steal(PyUnicode_FromStringAndSize(pem.data(), static_cast<Py_ssize_t>(pem.size())));
        if (!one || PyList_Append(chain.get(), one.get()) < 0) return nullptr;
    }
    py::Ref tls = py::Ref::steal(Py_BuildValue(
        "{s:O,s:O,s:N,s:N,s:i,s:i}", "server_cert", Py_None, "client_cert_chain", chain.get(), "client_cert_name",
        t.subject.empty() ? Py_NewRef(Py_None) : PyUnicode_FromString(t.subject.c_str()), "client_cert_error",
        t.verify_error.empty() ? Py_NewRef(Py_None) : PyUnicode_FromString(t.verify_error.c_str()), "tls_version",
        t.version, "cipher_suite", t.cipher_suite));
    if (!tls || PyDict_SetItemString(ext.get(), "tls", tls.get()) < 0) return nullptr;
    return ext.release();
}

// The template holds the previous request's per-request values (method, path, raw_path,
// query_string, http_version, client): a value that is the same for this request is not set again,
// one that differs is set in the template (a key that exists: no resize), and the scope is a copy.
bool Handler::refresh_template(ConnData& cd, const http::Request& req) {
    PyObject* t = scope_template_.get();
    PyObject* version = req.version_minor == 0 ? K.v10 : K.v11;
    if (version != t_version_) {
        if (PyDict_SetItem(t, K.http_version, version) < 0) return false;
        t_version_ = version;
    }
    if (cd.client.get() != t_client_) {
        if (PyDict_SetItem(t, K.client, cd.client.get()) < 0) return false;
        t_client_ = cd.client.get();
    }
    py::Ref method = py::Ref::steal(py::method_str(req));
    if (!method) return false;
    if (method.get() != t_method_) {
        if (PyDict_SetItem(t, K.method, method.get()) < 0) return false;
        t_method_ = method.get();
    }
    auto same = [](PyObject* b, std::string_view v) {
        return b && static_cast<std::size_t>(PyBytes_GET_SIZE(b)) == v.size() &&
               (v.empty() || std::memcmp(PyBytes_AS_STRING(b), v.data(), v.size()) == 0);
    };
    if (!same(t_raw_path_, req.path)) {
        py::Ref raw = py::Ref::steal(PyBytes_FromStringAndSize(req.path.data(), static_cast<Py_ssize_t>(req.path.size())));
        if (!raw || !py::set_steal(t, K.path, decode_path(req.path, scratch_)) ||
            PyDict_SetItem(t, K.raw_path, raw.get()) < 0)
            return false;
        t_raw_path_ = raw.get();
    }
    if (!same(t_query_, req.query)) {
        py::Ref q = py::Ref::steal(PyBytes_FromStringAndSize(req.query.data(), static_cast<Py_ssize_t>(req.query.size())));
        if (!q || PyDict_SetItem(t, K.query_string, q.get()) < 0) return false;
        t_query_ = q.get();
    }
    return true;
}

PyObject* Handler::build_scope(net::Connection& c, ConnData& cd, const http::Request& req) {
    if (!cd.client) {
        cd.client = py::Ref::steal(peer_tuple(c.peer()));
        if (!cd.client) return nullptr;
    }
    py::Ref scope;
    if (scope_template_) {
        if (!refresh_template(cd, req)) {
            // The template may hold half of this request's values: forget what it holds.
            t_version_ = t_client_ = t_method_ = t_raw_path_ = t_query_ = nullptr;
            return nullptr;
        }
        scope = py::Ref::steal(PyDict_Copy(scope_template_.get()));
        if (!scope) return nullptr;
    } else {
        scope = py::Ref::steal(PyDict_Copy(opts_.base_scope.get()));
        if (!scope) return nullptr;
        PyObject* s = scope.get();
        if (PyDict_SetItem(s, K.http_version, req.version_minor == 0 ? K.v10 : K.v11) < 0 ||
            PyDict_SetItem(s, K.client, cd.client.get()) < 0 || !py::set_steal(s, K.method, py::method_str(req)) ||
            !py::set_steal(s, K.path, decode_path(req.path, scratch_)) ||
            !py::set_steal(s, K.raw_path,
                           PyBytes_FromStringAndSize(req.path.data(), static_cast<Py_ssize_t>(req.path.size()))) ||
            !py::set_steal(s, K.query_string,
                           PyBytes_FromStringAndSize(req.query.data(), static_cast<Py_ssize_t>(req.query.size()))))
            return nullptr;
    }
    PyObject* s = scope.get();
    py::Ref headers = py::Ref::steal(PyList_New(req.num_headers));
    if (!headers) return nullptr;
    for (std::uint32_t i = 0; i < req.num_headers; ++i) {
        const http::Header& h = req.headers[i];
        PyObject* name = header_name(h.name);
        if (!name) return nullptr;
        PyObject* value = PyBytes_FromStringAndSize(h.value.data(), static_cast<Py_ssize_t>(h.value.size()));
        if (!value) {
            Py_DECREF(name);
            return nullptr;
        }
        PyObject* pair = PyTuple_New(2);
        if (!pair) {
            Py_DECREF(name);
            Py_DECREF(value);
            return nullptr;
        }
        PyTuple_SET_ITEM(pair, 0, name);
        PyTuple_SET_ITEM(pair, 1, value);
        PyList_SET_ITEM(headers.get(), i, pair);
    }
    if (PyDict_SetItem(s, K.headers, headers.get()) < 0) return nullptr;
    // The lifespan state, copied shallowly: only when there is any (no "state" key otherwise).
    if (opts_.state && PyDict_GET_SIZE(opts_.state.get()) > 0 && !py::set_steal(s, K.state, PyDict_Copy(opts_.state.get())))
        return nullptr;
    if (c.tls()) {
        if (!cd.extensions) {
            cd.extensions = py::Ref::steal(tls_extensions(c));
            if (!cd.extensions) return nullptr;
        }
        // A copy per request: the app may add to its extensions.
        if (!py::set_steal(s, K.extensions, PyDict_Copy(cd.extensions.get()))) return nullptr;
    }
    return scope.release();
}

void Handler::on_request(net::Connection& c, const http::Request& req) {
    if (!c.user) {
        ConnData* d;
        if (!free_data_.empty()) {
            d = free_data_.back();
            free_data_.pop_back();
        } else {
            d = new ConnData();
        }
        c.user = d;
    }
    ConnData& cd = *static_cast<ConnData*>(c.user);
    if (req.upgrade && ws_request(c, cd, req)) return;  // WebSocket: asgi/websocket.cpp
    Exchange* ex = reusable_exchange(cd);  // the previous request's, when nothing else holds it
    if (!ex) {
        ex = PyObject_New(Exchange, ExchangeType);
        if (!ex) {
            PyErr_Clear();
            c.queue_canned(http::canned_response(500));
            c.finish_response();
            return;
        }
        ex->receive = ex->send = nullptr;
    }
    ex->handler = this;
    ex->conn = &c;
    ex->w = new (&ex->wbuf) net::ResponseWriter();
    ex->pending_receive = ex->pending_send = nullptr;
    ex->http10 = req.version_minor == 0;
    ex->head = req.method_id == http::Method::Head;
    ex->te_trailers = req.te_trailers;
    ex->request_done = ex->disconnected = ex->started = ex->body_done = false;
    ex->want_trailers = ex->complete = ex->app_done = false;
    ex->status = 0;
    ex->scope = nullptr;
    ex->started_ns = 0;
    ex->w->start(c, ex->http10, ex->head, ex->te_trailers);
    cd.exchange = py::Ref::steal(reinterpret_cast<PyObject*>(ex));
    py::Ref hold = py::Ref::borrow(reinterpret_cast<PyObject*>(ex));  // the exchange may leave cd below

    py::Ref scope = py::Ref::steal(build_scope(c, cd, req));
    if (scope && !ex->receive) ex->receive = PyCFunction_New(&receive_def, hold.get());
    if (scope && ex->receive && !ex->send) ex->send = PyCFunction_New(&send_def, hold.get());
    if (!scope || !ex->receive || !ex->send) {
        app_finished(ex, true);
        return;
    }
    py::Ref receive = py::Ref::borrow(ex->receive);
    py::Ref send = py::Ref::borrow(ex->send);
    if (opts_.access_log) {
        ex->scope = py::Ref::borrow(scope.get()).release();
        ex->started_ns = uv_hrtime();
    }
    PyObject* args[3] = {scope.get(), receive.get(), send.get()};
    py::Ref coro = py::Ref::steal(PyObject_Vectorcall(opts_.app.get(), args, 3, nullptr));
    scope.reset();
    receive.reset();
    send.reset();
    if (!coro) {
        app_finished(ex, true);
        return;
    }
    if (!PyCoro_CheckExact(coro.get())) {
        // Any awaitable will do: drive its iterator.
        PyTypeObject* tp = Py_TYPE(coro.get());
        if (!tp->tp_as_async || !tp->tp_as_async->am_await) {
            PyErr_Format(PyExc_TypeError, "the ASGI application returned %.100s, not an awaitable", tp->tp_name);
            app_finished(ex, true);
            return;
        }
        coro = py::Ref::steal(tp->tp_as_async->am_await(coro.get()));
        if (!coro) {
            app_finished(ex, true);
            return;
        }
    }
    start_app(ex, coro.get());
}

// Starts a request's coroutine: driven from here at once when no Python code is running (we are in
// server_run), otherwise (a pipelined request reached from inside an app's send) at the next run.
// Without the eager machinery, spawn() runs it as an asyncio Task.
void Handler::start_app(Exchange* ex, PyObject* coro) {
    PyObject* self = reinterpret_cast<PyObject*>(ex);
    if (!opts_.new_task) {
        PyObject* sargs[2] = {coro, self};
        py::Ref t = py::Ref::steal(PyObject_Vectorcall(opts_.spawn.get(), sargs, 2, nullptr));
        if (!t) app_finished(ex, true);
        return;
    }
    if (!in_run_ || depth_ > 0) {
        deferred_.push_back({py::Ref::borrow(self), py::Ref::borrow(coro)});
        call_wake();
        return;
    }
    run_eager(ex, coro);
}

bool Handler::make_spare() {
    py::Ref c = py::Ref::steal(new_continuation(this));
    if (!c) return false;
    py::Ref t = py::Ref::steal(PyObject_CallOneArg(opts_.new_task.get(), c.get()));
    if (!t) return false;
    spare_ = std::move(t);
    spare_cont_ = std::move(c);
    return true;
}

// The spare Task takes over the request's coroutine; a new spare is made when the next one is needed.
// True when the spare Task was asked to cancel (by an app that ran with it as its current task and
// then returned without waiting): that cancellation must not reach a later request it would continue.
// (An app that cancels its current task and then waits gets it, as from its own Task.)
bool Handler::spare_cancelled() {
    // Task.cancel() counts every request, whether the Task is parked or not started yet; only a
    // cancellation delivered (after a wait) is ever uncounted (uncancel), so this is enough.
    py::Ref n = py::Ref::steal(PyObject_CallMethodNoArgs(spare_.get(), K.cancelling));
    if (!n) {
        PyErr_Clear();
        return false;
    }
    return PyLong_Check(n.get()) && PyLong_AsLong(n.get()) != 0;
}

void Handler::bind_spare(Exchange* ex, PyObject* coro, PyObject* ctx, PyObject* first) {
    py::Ref c = std::move(spare_cont_);
    spare_.reset();
    if (!bind_continuation(c.get(), reinterpret_cast<PyObject*>(ex), coro, ctx, first))
        log_current("cannot resume an ASGI application");
}

void Handler::spare_died(Continuation* c) {
    if (spare_cont_.get() == reinterpret_cast<PyObject*>(c)) {
        spare_cont_.reset();
        spare_.reset();
    }
}

void Handler::cancel_spare() {
    if (!spare_) return;
    py::Ref t = std::move(spare_);
    spare_cont_.reset();
    py::Ref r = py::Ref::steal(PyObject_CallMethodNoArgs(t.get(), K.cancel));
    if (!r) PyErr_Clear();
}

// Runs the coroutine's first step now, with the spare Task as asyncio's current task (so
// asyncio.current_task(), anyio and sniffio see a Task, the one that continues the coroutine if it
// waits) and in a copy of the current context, as a Task would. An app that never waits has
// finished when this returns: no Task of its own, no trip through the event loop.
void Handler::run_eager(Exchange* ex, PyObject* coro) {
    py::Ref ctx = py::Ref::steal(PyContext_CopyCurrent());
    if (!ctx || (!spare_ && !make_spare())) {
        app_finished(ex, true);
        return;
    }
    PyObject* targs[2] = {opts_.loop.get(), spare_.get()};
    py::Ref entered = py::Ref::steal(PyObject_Vectorcall(opts_.enter_task.get(), targs, 2, nullptr));
    if (!entered) {
        // Some task is running already: the spare Task starts the coroutine at its next step.
        PyErr_Clear();
        bind_spare(ex, coro, ctx.get(), nullptr);
        return;
    }
    py::Ref task = py::Ref::borrow(spare_.get());  // the spare may be replaced while the app runs
    PyObject* result = nullptr;
    PySendResult r = step(ex, coro, ctx.get(), Py_None, nullptr, &result);
    {
        SavedError saved;
        targs[1] = task.get();
        py::Ref left = py::Ref::steal(PyObject_Vectorcall(opts_.leave_task.get(), targs, 2, nullptr));
        if (!left) PyErr_Clear();
        saved.restore();
    }
    if (r == PYGEN_NEXT) {
        py::Ref yielded = py::Ref::steal(result);
        if (spare_.get() == task.get()) {
            bind_spare(ex, coro, ctx.get(), yielded.get());
            return;
        }
        // The spare died while the app ran (its Task was cancelled): a fresh Task continues it.
        if (!make_spare()) {
            log_current("cannot continue an ASGI application");
            return;
        }
        bind_spare(ex, coro, ctx.get(), yielded.get());
        return;
    }
    // A BaseException (SystemExit, KeyboardInterrupt, CancelledError) raised while driven from here
    // was reported like any error; it cannot travel up through libuv.
    if (r == PYGEN_ERROR) PyErr_Clear();
    if (spare_.get() == task.get() && spare_cancelled()) {
        spare_.reset();
        spare_cont_.reset();  // its Task ends with the cancellation; the next request gets a new spare
    }
}

void Handler::run_deferred() {
    for (int round = 0; round < 8 && !deferred_.empty(); ++round) {
        std::vector<Deferred> todo;
        todo.swap(deferred_);
        for (Deferred& d : todo) run_eager(reinterpret_cast<Exchange*>(d.exchange.get()), d.coro.get());
    }
}

void Handler::begin_run() {
    in_run_ = true;
    if (!deferred_.empty()) run_deferred();
}

void Handler::end_run() {
    if (!deferred_.empty()) run_deferred();
    in_run_ = false;
}

// The connection's previous exchange (a new reference) when the request is over and nothing but the
// exchange and its own receive/send refer to it: it serves the next request with the same receive and
// send objects. Otherwise it leaves the connection (null).
Exchange* Handler::reusable_exchange(ConnData& cd) {
    if (!cd.exchange) return nullptr;
    auto* ex = reinterpret_cast<Exchange*>(cd.exchange.get());
    if (ex->receive && ex->send && Py_REFCNT(ex) == 3 && Py_REFCNT(ex->receive) == 1 &&
        Py_REFCNT(ex->send) == 1 && ex->app_done && !ex->conn && !ex->pending_receive && !ex->pending_send &&
        !ex->scope) {
        ex->w->~ResponseWriter();
        return reinterpret_cast<Exchange*>(cd.exchange.release());
    }
    drop_exchange(cd);
    return nullptr;
}

// The exchange leaves its connection: it lets go of its receive/send, which (when the app still holds
// them) keep it alive as long as needed, without a reference cycle.
void Handler::drop_exchange(ConnData& cd) {
    if (!cd.exchange) return;
    py::Ref hold = std::move(cd.exchange);
    auto* ex = reinterpret_cast<Exchange*>(hold.get());
    Py_CLEAR(ex->receive);
    Py_CLEAR(ex->send);
}

// The app's coroutine ended (failed: the error set now is why), once.
void Handler::ended(Exchange* ex, bool failed) {
    if (ex->app_done) {
        if (failed) PyErr_Clear();
        return;
    }
    app_finished(ex, failed);
    wake();
}

PySendResult Handler::step(Exchange* ex, PyObject* coro, PyObject* ctx, PyObject* value, PyObject* exc,
                           PyObject** result) {
    *result = nullptr;
    if (PyContext_Enter(ctx) < 0) {
        ended(ex, true);
        return PYGEN_RETURN;
    }
    ++depth_;
    PySendResult r;
    if (!exc) {
        r = PyIter_Send(coro, value, result);
    } else {
        *result = PyObject_CallMethodOneArg(coro, K.throw_, exc);
        if (*result) {
            r = PYGEN_NEXT;
        } else if (PyErr_ExceptionMatches(PyExc_StopIteration)) {
            PyErr_Clear();
            r = PYGEN_RETURN;
            *result = Py_NewRef(Py_None);
        } else {
            r = PYGEN_ERROR;
        }
    }
    --depth_;
    {
        SavedError saved;
        if (PyContext_Exit(ctx) < 0) PyErr_Clear();
        saved.restore();
    }
    if (r == PYGEN_NEXT) return r;
    if (r == PYGEN_RETURN) {
        Py_CLEAR(*result);
        ended(ex, false);
        return r;
    }
    if (PyErr_ExceptionMatches(PyExc_Exception)) {
        ended(ex, true);  // logged (500 or close); the Task ends normally
        return PYGEN_RETURN;
    }
    // A BaseException: reported, then raised on (a cancelled Task stays cancelled).
    SavedError saved;
#if PY_VERSION_HEX >= 0x030C0000
    PyErr_SetRaisedException(Py_NewRef(saved.exc));
#else
    Py_XINCREF(saved.type);
    Py_XINCREF(saved.value);
    Py_XINCREF(saved.tb);
    PyErr_Restore(saved.type, saved.value, saved.tb);
#endif
    ended(ex, true);
    saved.restore();
    return PYGEN_ERROR;
}

// The Task running the app reports how its coroutine ended: exc is None or the exception it raised.
void Handler::app_done(Exchange* ex, PyObject* exc) {
    if (ex->app_done) return;
    if (exc == Py_None) {
        app_finished(ex, false);
    } else {
        PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(exc)), exc);
        app_finished(ex, true);
    }
    wake();
}

// The application's coroutine ended (failed: the Python error set now is why).
void Handler::app_finished(Exchange* ex, bool failed) {
    ex->app_done = true;
    if (failed) {
        if (wsgi::ClientDisconnected && PyErr_ExceptionMatches(wsgi::ClientDisconnected))
            PyErr_Clear();
        else
            log_current(ex->w && ex->w->headers_sent() ? "Exception in ASGI application after the response started"
                                                       : "Exception in ASGI application");
    } else if (ex->conn && !ex->started) {
        PyErr_SetString(PyExc_RuntimeError, "the ASGI application returned without starting a response");
        log_current("ASGI application error");
        failed = true;
    }
    net::Connection* c = ex->conn;
    if (!c) return;
    if (!ex->w->headers_sent()) {
        // Nothing of this response is sent: drop staged headers, answer 500 and close.
        ex->w->cancel_headers();
        c->queue_canned(http::canned_response(500));
        log_access(ex, 500);
        detach(ex, false);
        c->finish_response();
    } else {
        // Headers are out but the response is unfinished: closing is the only honest signal.
        detach(ex, false);
        c->abort();
    }
    wake();
}

// The exchange lets go of its connection (the response ended or the client left).
void Handler::detach(Exchange* ex, bool disconnected) {
    ex->conn = nullptr;
    if (disconnected) ex->disconnected = true;
    else ex->complete = true;
    if (ex->pending_receive) {
        PyObject* fut = ex->pending_receive;
        ex->pending_receive = nullptr;
        py::Ref msg = py::Ref::steal(PyDict_Copy(K.disconnect_msg));
        py::Ref r = py::Ref::steal(PyObject_CallMethodOneArg(fut, K.set_result, msg.get()));
        if (!r) PyErr_Clear();
        Py_DECREF(fut);
    }
    if (ex->pending_send) {
        PyObject* fut = ex->pending_send;
        ex->pending_send = nullptr;
        py::Ref r = py::Ref::steal(PyObject_CallMethodOneArg(fut, K.set_result, Py_None));
        if (!r) PyErr_Clear();
        Py_DECREF(fut);
    }
}

// The response is complete: end it and hand the connection to the next request.
void Handler::complete(Exchange* ex) {
    net::ResponseWriter* w = ex->w;
    log_access(ex, w->status());
    detach(ex, false);
    w->finish();  // may start the next pipelined request on the connection
}

// ------------------------------------------------------------------ receive

// The next http.request message: every body byte here now (buffered, then what the socket holds),
// up to kMaxReceive, read into the message's bytes object in place (sized for the message, shrunk to
// what came). Null with no error set when nothing is here yet (wait) or the body failed
// (c.body_failed()). Reading stops at the cap: the rest stays in the socket until the app asks again.
PyObject* Handler::take_body(Exchange* ex) {
    net::Connection& c = *ex->conn;
    if (!ex->started) c.continue_async();  // Expect: 100-continue: the app asks for the body now
    py::Ref body;
    if (!c.body_done()) {
        std::int64_t left = c.body_remaining();  // -1: chunked
        Py_ssize_t want = left >= 0 && left < kMaxReceive ? static_cast<Py_ssize_t>(left) : kMaxReceive;
        if (spare_body_ && PyBytes_GET_SIZE(spare_body_.get()) >= want) {
            body = std::move(spare_body_);
        } else {
            body = py::Ref::steal(PyBytes_FromStringAndSize(nullptr, want));
            if (!body) return nullptr;
        }
        std::int64_t got = c.body_read_now(PyBytes_AS_STRING(body.get()), static_cast<std::size_t>(want));
        if (got < 0) return nullptr;  // c.body_failed()
        if (got == 0) {
            // Nothing yet: the bytes object serves the next try (no allocation per empty poll).
            if (!spare_body_ || PyBytes_GET_SIZE(body.get()) > PyBytes_GET_SIZE(spare_body_.get()))
                spare_body_ = std::move(body);
            body.reset();
            if (!c.body_done()) return nullptr;
        } else if (got < PyBytes_GET_SIZE(body.get())) {
            PyObject* b = body.release();
            if (_PyBytes_Resize(&b, static_cast<Py_ssize_t>(got)) < 0) return nullptr;  // b freed
            body = py::Ref::steal(b);
        }
    }
    c.resume_reading();
    py::Ref msg = py::Ref::steal(PyDict_Copy(K.request_msg));  // type, body b"", more_body False
    if (!msg) return nullptr;
    if (body && PyDict_SetItem(msg.get(), K.body, body.get()) < 0) return nullptr;
    if (!c.body_done() && PyDict_SetItem(msg.get(), K.more_body, Py_True) < 0) return nullptr;
    if (c.body_done()) ex->request_done = true;
    return msg.release();
}

// The body failed while the app reads it (malformed, over --max-body-size, or the client left): a
// 400/413 if nothing was sent yet, the connection closes, and the app hears http.disconnect.
void Handler::body_failed(Exchange* ex) {
    net::Connection* conn = ex->conn;
    if (!conn->peer_closed() && !ex->w->headers_sent()) {
        ex->w->cancel_headers();
        conn->queue_canned(http::error_response(conn->body_error()));
        detach(ex, true);
        conn->finish_response();  // closes after the error response (the body is not done)
    } else {
        detach(ex, true);
        conn->abort();
    }
    wake();
}

PyObject* Handler::receive(Exchange* ex) {
    if (ex->pending_receive) return runtime_error("receive() called again before the previous one completed");
    if (!ex->conn || ex->disconnected || ex->complete) {
        py::Ref msg = py::Ref::steal(PyDict_Copy(K.disconnect_msg));
        return msg ? ready(msg.get()) : nullptr;
    }
    net::Connection& c = *ex->conn;
    if (!ex->request_done) {
        // Whatever body is here already completes the receive at once: no Future, no loop trip.
        PyObject* msg = take_body(ex);
        if (msg) {
            PyObject* r = ready(msg);
            Py_DECREF(msg);
            wake();
            return r;
        }
        if (PyErr_Occurred()) return nullptr;
        if (c.body_failed()) {
            body_failed(ex);
            py::Ref msg2 = py::Ref::steal(PyDict_Copy(K.disconnect_msg));
            return msg2 ? ready(msg2.get()) : nullptr;
        }
    }
    // Wait: for body bytes, or (the request fully read) for the client to leave.
    PyObject* fut = PyObject_CallNoArgs(opts_.create_future.get());
    if (!fut) return nullptr;
    if (!ex->request_done) {
        c.arm_body_timeout();
        c.set_body_wanted(true);  // the bytes go from the socket straight into the message
    }
    ex->pending_receive = fut;
    Py_INCREF(fut);
    wake();
    return fut;
}

void Handler::fulfil_receive(Exchange* ex) {
    if (!ex->pending_receive || !ex->conn || ex->request_done) return;
    PyObject* msg = take_body(ex);
    if (!msg) {
        if (PyErr_Occurred()) PyErr_Clear();
        if (ex->conn && ex->conn->body_failed()) body_failed(ex);  // resolves the future: http.disconnect
        return;
    }
    ex->conn->cancel_body_timeout();
    ex->conn->set_body_wanted(false);
    PyObject* fut = ex->pending_receive;
    ex->pending_receive = nullptr;
    py::Ref r = py::Ref::steal(PyObject_CallMethodOneArg(fut, K.set_result, msg));
    if (!r) PyErr_Clear();
    Py_DECREF(fut);
    Py_DECREF(msg);
}

void Handler::on_input(net::Connection& c) {
    auto* cd = static_cast<ConnData*>(c.user);
    if (!cd || !cd->exchange) return;
    fulfil_receive(reinterpret_cast<Exchange*>(cd->exchange.get()));
}

// ------------------------------------------------------------------ send

// Validates the start message's status and headers and stages them; the framing headers and the
// blank line follow with the first body (end_headers), so that a single body gets a Content-Length.
bool Handler::stage_start(Exchange* ex, PyObject* headers) {
    net::ResponseWriter& w = *ex->w;
    if (!w.begin(ex->status)) {
        PyErr_Format(PyExc_ValueError, "invalid status %d in http.response.start", ex->status);
        return false;
    }
    if (!headers) return true;
    bool ok = each_header(headers, "response headers", [&](std::string_view name, std::string_view value) {
        if (w.header(name, value)) return true;
        PyErr_Format(PyExc_ValueError, "%s in http.response.start", w.error());
        return false;
    });
    if (!ok) w.cancel_headers();
    return ok;
}

PyObject* Handler::send(Exchange* ex, PyObject* message) {
    if (!PyDict_Check(message)) return runtime_error("an ASGI message must be a dict");
    PyObject* type = PyDict_GetItemWithError(message, K.type);  // borrowed
    if (!type) return PyErr_Occurred() ? nullptr : runtime_error("an ASGI message needs a 'type'");
    if (ex->disconnected || (!ex->conn && !ex->complete)) {
        PyErr_SetString(wsgi::ClientDisconnected, "the client disconnected");
        return nullptr;
    }
    if (ex->complete) {
        PyErr_Format(PyExc_RuntimeError, "%R sent after the response was complete", type);
        return nullptr;
    }
    net::Connection& c = *ex->conn;
    if (!ex->started) {
        if (!is_type(type, K.response_start, 0)) {
            PyErr_Format(PyExc_RuntimeError, "expected 'http.response.start', got %R", type);
            return nullptr;
        }
        PyObject* status = PyDict_GetItemWithError(message, K.status);
        if (!status || !PyLong_Check(status)) {
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "http.response.start needs an int 'status'");
            return nullptr;
        }
        long code = PyLong_AsLong(status);
        if (code < 100 || code > 999) {
            PyErr_Format(PyExc_ValueError, "invalid status %ld", code);
            return nullptr;
        }
        ex->status = static_cast<int>(code);
        PyObject* headers = PyDict_GetItemWithError(message, K.headers);
        if (!headers && PyErr_Occurred()) return nullptr;
        if (!stage_start(ex, headers)) return nullptr;
        PyObject* trailers = PyDict_GetItemWithError(message, K.trailers);
        ex->want_trailers = trailers && PyObject_IsTrue(trailers) == 1;
        ex->started = true;
        return ready(Py_None);
    }
    if (!ex->body_done) {
        if (is_type(type, K.response_body, 1)) {
            PyObject* body = PyDict_GetItemWithError(message, K.body);
            if (!body && PyErr_Occurred()) return nullptr;
            std::string_view data;
            if (body && !bytes_view(body, data)) {
                PyErr_SetString(PyExc_TypeError, "http.response.body 'body' must be bytes");
                return nullptr;
            }
            PyObject* more = PyDict_GetItemWithError(message, K.more_body);
            if (!more && PyErr_Occurred()) return nullptr;
            bool more_body = more && PyObject_IsTrue(more) == 1;
            if (!ex->w->headers_sent()) ex->w->end_headers(more_body ? -1 : static_cast<std::int64_t>(data.size()));
            void* owner = nullptr;
            if (body && PyBytes_Check(body) && data.size() >= net::ResponseWriter::kCopyBelow) {
                Py_INCREF(body);
                owner = body;
            }
            ex->w->body(data.data(), data.size(), owner);
            if (!more_body) {
                ex->body_done = true;
                if (!ex->want_trailers) {
                    complete(ex);
                    wake();
                    return ready(Py_None);
                }
            }
        } else if (is_type(type, K.response_pathsend, 2)) {
            PyObject* path = PyDict_GetItemWithError(message, K.path);
            if (!path || !PyUnicode_Check(path)) {
                if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "http.response.pathsend needs a str 'path'");
                return nullptr;
            }
            const char* p = PyUnicode_AsUTF8(path);
            if (!p) return nullptr;
            int fd = ::open(p, O_RDONLY | O_CLOEXEC);
            struct stat st;
            if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
                if (fd >= 0) ::close(fd);
                PyErr_Format(PyExc_FileNotFoundError, "cannot send %U", path);
                return nullptr;
            }
            if (!ex->w->headers_sent()) ex->w->end_headers(st.st_size);
            // The owner is the fd itself (tagged): closed when sent.
            ex->w->file(fd, 0, static_cast<std::uint64_t>(st.st_size),
                        reinterpret_cast<void*>((static_cast<std::uintptr_t>(fd) << 1) | 1));
            ex->body_done = true;
            complete(ex);
            wake();
            return ready(Py_None);
        } else {
            PyErr_Format(PyExc_RuntimeError, "expected 'http.response.body', got %R", type);
            return nullptr;
        }
    } else {
        if (!is_type(type, K.response_trailers, 3)) {
            PyErr_Format(PyExc_RuntimeError, "expected 'http.response.trailers', got %R", type);
            return nullptr;
        }
        PyObject* headers = PyDict_GetItemWithError(message, K.headers);
        if (headers) {
            bool ok = each_header(headers, "trailers", [&](std::string_view name, std::string_view value) {
                if (ex->w->trailer(name, value)) return true;
                PyErr_SetString(PyExc_ValueError, "invalid trailer");
                return false;
            });
            if (!ok) return nullptr;
        } else if (PyErr_Occurred()) {
            return nullptr;
        }
        PyObject* more = PyDict_GetItemWithError(message, K.more_trailers);
        if (!(more && PyObject_IsTrue(more) == 1)) {
            complete(ex);
            wake();
            return ready(Py_None);
        }
    }
    c.flush();
    if (ex->conn && c.over_high_water()) {
        // Backpressure: the send completes when the client has taken enough.
        PyObject* fut = PyObject_CallNoArgs(opts_.create_future.get());
        if (!fut) return nullptr;
        ex->pending_send = fut;
        Py_INCREF(fut);
        c.wait_for_drain();
        wake();
        return fut;
    }
    wake();
    return ready(Py_None);
}

void Handler::on_drain(net::Connection& c) {
    auto* cd = static_cast<ConnData*>(c.user);
    if (cd && cd->ws) {
        ws_drain(*cd);
        return;
    }
    if (!cd || !cd->exchange) return;
    auto* ex = reinterpret_cast<Exchange*>(cd->exchange.get());
    if (!ex->pending_send) return;
    PyObject* fut = ex->pending_send;
    ex->pending_send = nullptr;
    py::Ref r = py::Ref::steal(PyObject_CallMethodOneArg(fut, K.set_result, Py_None));
    if (!r) PyErr_Clear();
    Py_DECREF(fut);
}

void Handler::on_close(net::Connection& c) {
    auto* cd = static_cast<ConnData*>(c.user);
    if (!cd) return;
    if (cd->exchange) {
        auto* ex = reinterpret_cast<Exchange*>(cd->exchange.get());
        if (ex->conn == &c) detach(ex, true);
    }
    if (cd->ws) ws_conn_closed(*cd);
    drop_exchange(*cd);
    cd->client.reset();
    cd->extensions.reset();
    c.user = nullptr;
    if (free_data_.size() < 4096) free_data_.push_back(cd);
    else delete cd;
}

void Handler::release(void* owner) {
    auto bits = reinterpret_cast<std::uintptr_t>(owner);
    if (bits & 1) {  // a file descriptor opened for pathsend
        ::close(static_cast<int>(bits >> 1));
        return;
    }
    Py_DECREF(reinterpret_cast<PyObject*>(owner));
}

bool init_types(PyObject*) { return init_keys() && init_exchange_types() && init_continuation_type(); }

}  // namespace luath::asgi
