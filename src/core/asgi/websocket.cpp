// ASGI WebSocket: the `websocket` scope, receive (websocket.connect / .receive / .disconnect) and send
// (websocket.accept / .send / .close, and websocket.http.response.* to deny with an HTTP response).
// The protocol itself (frames, pings, the close handshake, errors) lives in net/websocket.cpp; only
// whole, valid messages arrive here.
#include <deque>
#include <memory>
#include <string>

#include "asgi/handler.hpp"
#include "asgi/headers.hpp"
#include "http/response.hpp"
#include "http/websocket.hpp"
#include "http/ws_deflate.hpp"
#include "py/common.hpp"

namespace luath::wsgi {
extern PyObject* ClientDisconnected;
}

namespace luath::asgi {

PyObject* ready(PyObject* value);

namespace ws = http::ws;

namespace {

constexpr std::size_t kPauseAt = 8;              // unread messages held before reading pauses
constexpr std::size_t kPauseBytes = 1u << 20;     // or unread bytes

struct Keys {
    PyObject *type, *bytes, *text, *code, *reason, *subprotocol, *subprotocols, *headers, *status, *body,
        *more_body, *scheme, *method, *extensions, *set_result;
    PyObject *connect, *receive, *disconnect, *accept, *send, *close, *resp_start, *resp_body;
    PyObject *ws_type, *s_ws, *s_wss, *http_response_ext, *tls;
    PyObject* empty_str;
    bool ready = false;
};
Keys K;

bool init_keys() {
    if (K.ready) return true;
    struct {
        PyObject** slot;
        const char* s;
    } all[] = {
        {&K.type, "type"}, {&K.bytes, "bytes"}, {&K.text, "text"}, {&K.code, "code"}, {&K.reason, "reason"},
        {&K.subprotocol, "subprotocol"}, {&K.subprotocols, "subprotocols"}, {&K.headers, "headers"},
        {&K.status, "status"}, {&K.body, "body"}, {&K.more_body, "more_body"}, {&K.scheme, "scheme"},
        {&K.method, "method"}, {&K.extensions, "extensions"}, {&K.set_result, "set_result"},
        {&K.connect, "websocket.connect"}, {&K.receive, "websocket.receive"},
        {&K.disconnect, "websocket.disconnect"}, {&K.accept, "websocket.accept"}, {&K.send, "websocket.send"},
        {&K.close, "websocket.close"}, {&K.resp_start, "websocket.http.response.start"},
        {&K.resp_body, "websocket.http.response.body"}, {&K.ws_type, "websocket"}, {&K.s_ws, "ws"},
        {&K.s_wss, "wss"}, {&K.http_response_ext, "websocket.http.response"}, {&K.tls, "tls"},
        {&K.empty_str, ""},
    };
    for (auto& a : all) {
        *a.slot = PyUnicode_InternFromString(a.s);
        if (!*a.slot) return false;
    }
    K.ready = true;
    return true;
}

// The per-connection state of one WebSocket (C++ side of the Python object).
struct State {
    net::Connection* conn = nullptr;  // borrowed; null once the connection closed
    std::unique_ptr<net::ResponseWriter> w;  // a denial response
    py::Ref pending_receive;           // a future a receive() waits on
    py::Ref pending_send;              // a future a send() waits on (backpressure)
    std::deque<std::pair<py::Ref, std::size_t>> queue;  // messages received, not yet taken (and sizes)
    std::size_t queued_bytes = 0;
    py::Ref close_reason;              // str
    std::string ext_response;          // Sec-WebSocket-Extensions answer, empty: none
    ws::DeflateParams deflate;
    char accept_key[28] = {};
    int close_code = 0;
    bool connect_delivered = false, accepted = false, app_closed = false, ended = false;
    bool http_started = false, http_done = false, app_done = false, paused = false;
    py::Ref log_scope;                 // with --access-log: the scope, until its one line is written
    std::uint64_t started_ns = 0;
};

struct Session {
    PyObject_HEAD
    Handler* handler;  // borrowed; outlives every session
    State* s;          // owned
};

PyTypeObject* SessionType = nullptr;

PyObject* new_dict_type(PyObject* type) {
    PyObject* d = PyDict_New();
    if (d && PyDict_SetItem(d, K.type, type) < 0) Py_CLEAR(d);
    return d;
}

PyObject* disconnect_msg(State& s) {
    py::Ref d = py::Ref::steal(new_dict_type(K.disconnect));
    if (!d) return nullptr;
    py::Ref code = py::Ref::steal(PyLong_FromLong(s.close_code ? s.close_code : ws::kAbnormal));
    if (!code || PyDict_SetItem(d.get(), K.code, code.get()) < 0 ||
        PyDict_SetItem(d.get(), K.reason, s.close_reason ? s.close_reason.get() : K.empty_str) < 0)
        return nullptr;
    return d.release();
}

void resolve(py::Ref& fut, PyObject* value) {
    if (!fut) return;
    py::Ref f = std::move(fut);
    py::Ref r = py::Ref::steal(PyObject_CallMethodOneArg(f.get(), K.set_result, value));
    if (!r) PyErr_Clear();
}

PyObject* get(PyObject* msg, PyObject* key) {  // borrowed or null (None counts as absent)
    PyObject* v = PyDict_GetItemWithError(msg, key);
    return v == Py_None ? nullptr : v;
}

// The UTF-8 of a str field of a message; false with TypeError "<what> must be a str" otherwise.
bool str_view(PyObject* o, const char* what, std::string_view& out) {
    Py_ssize_t n;
    const char* p = PyUnicode_Check(o) ? PyUnicode_AsUTF8AndSize(o, &n) : nullptr;
    if (!p) {
        if (!PyErr_Occurred()) PyErr_Format(PyExc_TypeError, "%s must be a str", what);
        return false;
    }
    out = {p, static_cast<std::size_t>(n)};
    return true;
}

// A response the server writes itself on a WebSocket request it refuses; the connection closes.
void refuse(net::Connection& c, int status, std::string_view extra) {
    std::string head = "HTTP/1.1 " + std::to_string(status) + " " + std::string(http::reason_phrase(status)) +
                       "\r\nContent-Type: text/plain; charset=utf-8\r\n";
    head += extra;
    std::string body = std::string(http::reason_phrase(status)) + "\n";
    head += "Content-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n";
    c.set_keep_alive(false);
    c.out().append(head);
    c.out().append(c.server().date_line());
    c.out().append("\r\n", 2);
    c.out().append(body);
    c.finish_response();
}

}  // namespace

// Access to Handler's private parts for the session's functions.
struct WsAccess {
    static Handler& h(PyObject* self) { return *reinterpret_cast<Session*>(self)->handler; }
    static State& st(PyObject* self) { return *reinterpret_cast<Session*>(self)->s; }
    static void log(Handler& h, const char* m) { h.log_current(m); }
    static PyObject* receive(PyObject* self, PyObject*);
    static PyObject* send(PyObject* self, PyObject* message);
    static PyObject* app_done(PyObject* self, PyObject* exc);
    static PyObject* accept(Handler& h, State& s, PyObject* message);
    // The access-log line of the handshake, once: 101 when accepted, else the refusal's status.
    static void log_access(Handler& h, State& s, int status, std::uint64_t length = 0) {
        if (s.log_scope) h.log_access(std::move(s.log_scope), status, length, s.started_ns);
    }
};

// ------------------------------------------------------------------ receive

PyObject* WsAccess::receive(PyObject* self, PyObject*) {
    Handler& h = WsAccess::h(self);
    State& s = st(self);
    if (s.pending_receive) {
        PyErr_SetString(PyExc_RuntimeError, "receive() called again before the previous one completed");
        return nullptr;
    }
    if (!s.connect_delivered) {
        s.connect_delivered = true;
        py::Ref m = py::Ref::steal(new_dict_type(K.connect));
        return m ? ready(m.get()) : nullptr;
    }
    if (!s.queue.empty()) {
        py::Ref m = std::move(s.queue.front().first);
        s.queued_bytes -= s.queue.front().second;
        s.queue.pop_front();
        if (s.paused && s.queue.size() < kPauseAt && s.queued_bytes < kPauseBytes) {
            s.paused = false;
            if (s.conn) {
                s.conn->ws_resume();
                h.wake();
            }
        }
        return ready(m.get());
    }
    if (s.ended || !s.conn) {
        py::Ref m = py::Ref::steal(disconnect_msg(s));
        return m ? ready(m.get()) : nullptr;
    }
    PyObject* fut = PyObject_CallNoArgs(h.options().create_future.get());
    if (!fut) return nullptr;
    s.pending_receive = py::Ref::borrow(fut);
    h.wake();
    return fut;
}

void Handler::on_ws_message(net::Connection& c, bool text, std::string_view data) {
    auto* cd = static_cast<ConnData*>(c.user);
    if (!cd || !cd->ws) return;
    State& s = *reinterpret_cast<Session*>(cd->ws.get())->s;
    py::Ref msg = py::Ref::steal(new_dict_type(K.receive));
    py::Ref payload = py::Ref::steal(
        text ? PyUnicode_DecodeUTF8(data.data(), static_cast<Py_ssize_t>(data.size()), "strict")
             : PyBytes_FromStringAndSize(data.data(), static_cast<Py_ssize_t>(data.size())));
    if (!msg || !payload || PyDict_SetItem(msg.get(), text ? K.text : K.bytes, payload.get()) < 0) {
        PyErr_Clear();
        c.ws_close(ws::kInternalError, "");
        return;
    }
    if (s.pending_receive && s.queue.empty()) {
        resolve(s.pending_receive, msg.get());
        return;
    }
    s.queue.emplace_back(std::move(msg), data.size());
    s.queued_bytes += data.size();
    if ((s.queue.size() >= kPauseAt || s.queued_bytes >= kPauseBytes) && !s.paused) {
        s.paused = true;
        c.ws_pause();
    }
}

void Handler::on_ws_closed(net::Connection& c, int code, std::string_view reason) {
    auto* cd = static_cast<ConnData*>(c.user);
    if (!cd || !cd->ws) return;
    State& s = *reinterpret_cast<Session*>(cd->ws.get())->s;
    if (s.ended) return;
    s.ended = true;
    s.close_code = code;
    s.close_reason = py::Ref::steal(PyUnicode_DecodeUTF8(reason.data(), static_cast<Py_ssize_t>(reason.size()), "replace"));
    if (!s.close_reason) PyErr_Clear();
    if (s.pending_receive && s.queue.empty()) {
        py::Ref m = py::Ref::steal(disconnect_msg(s));
        if (m) resolve(s.pending_receive, m.get());
        else PyErr_Clear();
    }
    resolve(s.pending_send, Py_None);
}

void Handler::ws_drain(ConnData& cd) {
    State& s = *reinterpret_cast<Session*>(cd.ws.get())->s;
    resolve(s.pending_send, Py_None);
}

void Handler::ws_conn_closed(ConnData& cd) {
    py::Ref hold = std::move(cd.ws);
    State& s = *reinterpret_cast<Session*>(hold.get())->s;
    s.conn = nullptr;
    if (!s.ended) {
        s.ended = true;
        s.close_code = ws::kAbnormal;
    }
    if (s.pending_receive && s.queue.empty()) {
        py::Ref m = py::Ref::steal(disconnect_msg(s));
        if (m) resolve(s.pending_receive, m.get());
        else PyErr_Clear();
    }
    resolve(s.pending_send, Py_None);
}

// ------------------------------------------------------------------ send

PyObject* WsAccess::accept(Handler& h, State& s, PyObject* message) {
    net::Connection& c = *s.conn;
    std::string head = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                       "Sec-WebSocket-Accept: ";
    head.append(s.accept_key, 28);
    head += "\r\n";
    PyObject* sub = get(message, K.subprotocol);
    if (!sub && PyErr_Occurred()) return nullptr;
    if (sub) {
        std::string_view sv;
        if (!str_view(sub, "websocket.accept 'subprotocol'", sv)) return nullptr;
        if (!http::is_token(sv)) {
            PyErr_SetString(PyExc_ValueError, "invalid subprotocol in websocket.accept");
            return nullptr;
        }
        head += "Sec-WebSocket-Protocol: ";
        head.append(sv);
        head += "\r\n";
    }
    if (!s.ext_response.empty()) head += "Sec-WebSocket-Extensions: " + s.ext_response + "\r\n";
    PyObject* headers = get(message, K.headers);
    if (!headers && PyErr_Occurred()) return nullptr;
    if (headers && !each_header(headers, "websocket.accept headers", [&](std::string_view name, std::string_view value) {
            if (!http::is_token(name) || !http::is_safe_field_value(value)) {
                PyErr_SetString(PyExc_ValueError, "invalid header in websocket.accept");
                return false;
            }
            head.append(name);
            head += ": ";
            head.append(value);
            head += "\r\n";
            return true;
        }))
        return nullptr;
    c.out().append(head);
    c.out().append(c.server().date_line());
    c.out().append("\r\n", 2);
    s.accepted = true;
    std::unique_ptr<ws::Deflate> d;
    if (!s.ext_response.empty()) d = std::make_unique<ws::Deflate>(s.deflate);
    log_access(h, s, 101);
    c.ws_start(std::move(d));
    h.wake();
    return ready(Py_None);
}

PyObject* WsAccess::send(PyObject* self, PyObject* message) {
    Handler& h = WsAccess::h(self);
    State& s = st(self);
    if (!PyDict_Check(message)) {
        PyErr_SetString(PyExc_RuntimeError, "an ASGI message must be a dict");
        return nullptr;
    }
    PyObject* type = PyDict_GetItemWithError(message, K.type);
    if (!type || !PyUnicode_Check(type)) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_RuntimeError, "an ASGI message needs a 'type'");
        return nullptr;
    }
    auto is = [&](PyObject* k) { return PyUnicode_Compare(type, k) == 0; };
    if (!s.accepted && !s.http_started && !s.app_closed) {
        if (!s.conn) {
            PyErr_SetString(wsgi::ClientDisconnected, "the client disconnected");
            return nullptr;
        }
        net::Connection& c = *s.conn;
        if (is(K.accept)) return accept(h, s, message);
        if (is(K.close)) {  // before accept: refused with 403
            s.app_closed = true;
            refuse(c, 403, {});
            log_access(h, s, 403);
            h.wake();
            return ready(Py_None);
        }
        if (is(K.resp_start)) {
            PyObject* status = PyDict_GetItemWithError(message, K.status);
            long code = status && PyLong_Check(status) ? PyLong_AsLong(status) : -1;
            if (code < 100 || code > 999) {
                if (!PyErr_Occurred())
                    PyErr_SetString(PyExc_ValueError, "websocket.http.response.start needs an int 'status'");
                return nullptr;
            }
            s.w = std::make_unique<net::ResponseWriter>();
            c.set_keep_alive(false);
            s.w->start(c, false, false);
            if (!s.w->begin(static_cast<int>(code))) {
                PyErr_Format(PyExc_ValueError, "invalid status %ld", code);
                return nullptr;
            }
            PyObject* headers = get(message, K.headers);
            if (headers && !each_header(headers, "websocket.http.response.start headers",
                                        [&](std::string_view name, std::string_view value) {
                                            if (s.w->header(name, value)) return true;
                                            PyErr_SetString(PyExc_ValueError,
                                                            "invalid header in websocket.http.response.start");
                                            return false;
                                        })) {
                s.w->cancel_headers();
                return nullptr;
            }
            s.http_started = true;
            return ready(Py_None);
        }
        PyErr_Format(PyExc_RuntimeError, "expected 'websocket.accept', 'websocket.close' or "
                                         "'websocket.http.response.start', got '%U'", type);
        return nullptr;
    }
    if (s.http_started) {
        if (s.http_done || !is(K.resp_body)) {
            PyErr_Format(PyExc_RuntimeError, "unexpected '%U' in a WebSocket denial response", type);
            return nullptr;
        }
        if (!s.conn) {
            PyErr_SetString(wsgi::ClientDisconnected, "the client disconnected");
            return nullptr;
        }
        PyObject* body = get(message, K.body);
        std::string_view data;
        if (body && !bytes_view(body, data)) {
            PyErr_SetString(PyExc_TypeError, "websocket.http.response.body 'body' must be bytes");
            return nullptr;
        }
        PyObject* more = get(message, K.more_body);
        bool more_body = more && PyObject_IsTrue(more) == 1;
        if (!s.w->headers_sent()) s.w->end_headers(more_body ? -1 : static_cast<std::int64_t>(data.size()));
        s.w->body(data.data(), data.size(), nullptr);
        if (!more_body) {
            s.http_done = true;
            s.w->finish();
            log_access(h, s, s.w->status(), s.w->body_sent());
        } else {
            s.conn->flush();
        }
        h.wake();
        return ready(Py_None);
    }
    // Accepted.
    if (s.app_closed) {
        if (s.ended || !s.conn) {
            PyErr_SetString(wsgi::ClientDisconnected, "the WebSocket is closed");
            return nullptr;
        }
        PyErr_Format(PyExc_RuntimeError, "'%U' sent after websocket.close", type);
        return nullptr;
    }
    if (s.ended || !s.conn || !s.conn->ws_open()) {
        PyErr_SetString(wsgi::ClientDisconnected, "the WebSocket is closed");
        return nullptr;
    }
    net::Connection& c = *s.conn;
    if (is(K.send)) {
        PyObject* b = get(message, K.bytes);
        PyObject* t = b ? nullptr : get(message, K.text);
        if (PyErr_Occurred()) return nullptr;
        if (b) {
            std::string_view data;
            if (!bytes_view(b, data)) {
                PyErr_SetString(PyExc_TypeError, "websocket.send 'bytes' must be bytes");
                return nullptr;
            }
            void* owner = nullptr;
            if (PyBytes_Check(b)) owner = py::Ref::borrow(b).release();
            c.ws_send(false, data.data(), data.size(), owner);
        } else if (t) {
            std::string_view tv;
            if (!str_view(t, "websocket.send 'text'", tv)) return nullptr;
            c.ws_send(true, tv.data(), tv.size(), py::Ref::borrow(t).release());
        } else {
            PyErr_SetString(PyExc_ValueError, "websocket.send needs 'bytes' or 'text'");
            return nullptr;
        }
        if (s.conn && s.conn->ws_open() && s.conn->over_high_water()) {
            PyObject* fut = PyObject_CallNoArgs(h.options().create_future.get());
            if (!fut) return nullptr;
            s.pending_send = py::Ref::borrow(fut);
            s.conn->wait_for_drain();
            h.wake();
            return fut;
        }
        h.wake();
        return ready(Py_None);
    }
    if (is(K.close)) {
        PyObject* code = get(message, K.code);
        long cv = code ? PyLong_AsLong(code) : ws::kNormal;
        if (cv == -1 && PyErr_Occurred()) return nullptr;
        PyObject* reason = get(message, K.reason);
        std::string_view rv;
        if (reason && !str_view(reason, "websocket.close 'reason'", rv)) return nullptr;
        if (cv < 1000 || cv > 4999) {
            PyErr_Format(PyExc_ValueError, "invalid close code %ld", cv);
            return nullptr;
        }
        s.app_closed = true;
        c.ws_close(static_cast<std::uint16_t>(cv), rv);
        h.wake();
        return ready(Py_None);
    }
    PyErr_Format(PyExc_RuntimeError, "expected 'websocket.send' or 'websocket.close', got '%U'", type);
    return nullptr;
}

// ------------------------------------------------------------------ the app's end

PyObject* WsAccess::app_done(PyObject* self, PyObject* exc) {
    Handler& h = WsAccess::h(self);
    State& s = st(self);
    if (s.app_done) Py_RETURN_NONE;
    s.app_done = true;
    const bool failed = exc != Py_None;
    if (failed) {
        PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(exc)), exc);
        if (wsgi::ClientDisconnected && PyErr_ExceptionMatches(wsgi::ClientDisconnected)) PyErr_Clear();
        else log(h, "Exception in ASGI application (websocket)");
    }
    if (!s.conn) Py_RETURN_NONE;
    net::Connection& c = *s.conn;
    if (s.http_started) {
        if (!s.http_done) {
            if (!s.w->headers_sent()) {
                s.w->cancel_headers();
                refuse(c, 500, {});
                log_access(h, s, 500);
            } else {
                log_access(h, s, s.w->status(), s.w->body_sent());
                c.abort();
            }
        }
    } else if (!s.accepted) {
        if (!s.app_closed) {
            refuse(c, failed ? 500 : 403, {});
            log_access(h, s, failed ? 500 : 403);
        }
    } else if (!s.app_closed) {
        s.app_closed = true;
        c.ws_close(failed ? ws::kInternalError : ws::kNormal, {});
    }
    h.wake();
    Py_RETURN_NONE;
}

namespace {

PyMethodDef session_methods[] = {
    {"receive", WsAccess::receive, METH_NOARGS, "receive() -> awaitable of the next ASGI event"},
    {"send", WsAccess::send, METH_O, "send(message) -> awaitable"},
    {"app_done", WsAccess::app_done, METH_O, "app_done(exc_or_None): the application's coroutine ended"},
    {nullptr, nullptr, 0, nullptr},
};
PyMethodDef receive_def = {"receive", WsAccess::receive, METH_NOARGS, nullptr};
PyMethodDef send_def = {"send", WsAccess::send, METH_O, nullptr};

void session_dealloc(PyObject* self) {
    auto* o = reinterpret_cast<Session*>(self);
    PyTypeObject* tp = Py_TYPE(self);
    delete o->s;
    PyObject_Free(self);
    Py_DECREF(tp);
}

PyType_Slot session_slots[] = {
    {Py_tp_dealloc, reinterpret_cast<void*>(session_dealloc)},
    {Py_tp_methods, session_methods},
    {Py_tp_doc, const_cast<char*>("One ASGI WebSocket connection")},
    {0, nullptr},
};
PyType_Spec session_spec = {"luath._core.WebSocket", sizeof(Session), 0, Py_TPFLAGS_DEFAULT, session_slots};

}  // namespace

// ------------------------------------------------------------------ the upgrade request

bool Handler::ws_request(net::Connection& c, ConnData& cd, const http::Request& req) {
    const net::Config& cfg = c.server().config();
    if (!cfg.ws_enabled) return false;
    ws::Handshake hs;
    ws::HandshakeError err = ws::check_handshake(req, hs);
    if (err == ws::HandshakeError::NotWebSocket || err == ws::HandshakeError::BadMethod) return false;
    if (err == ws::HandshakeError::BadVersion) {
        refuse(c, 426, "Sec-WebSocket-Version: 13\r\n");
        return true;
    }
    if (err != ws::HandshakeError::None) {
        refuse(c, 400, {});
        return true;
    }
    if (!init_keys() || (!SessionType && !(SessionType = reinterpret_cast<PyTypeObject*>(PyType_FromSpec(&session_spec))))) {
        PyErr_Clear();
        refuse(c, 500, {});
        return true;
    }
    cd.exchange.reset();
    auto* o = PyObject_New(Session, SessionType);
    if (!o) {
        PyErr_Clear();
        refuse(c, 500, {});
        return true;
    }
    o->handler = this;
    o->s = new State();
    py::Ref session = py::Ref::steal(reinterpret_cast<PyObject*>(o));
    State& s = *o->s;
    s.conn = &c;
    ws::accept_key(hs.key, s.accept_key);

    // The scope: the HTTP one, adjusted.
    py::Ref scope = py::Ref::steal(build_scope(c, cd, req));
    py::Ref subs = py::Ref::steal(PyList_New(0));
    py::Ref ext = py::Ref::steal(PyDict_New());
    py::Ref empty = py::Ref::steal(PyDict_New());
    bool ok = scope && subs && ext && empty;
    ws::DeflateNegotiation neg;
    for (std::uint32_t i = 0; ok && i < req.num_headers; ++i) {
        const http::Header& hd = req.headers[i];
        if (http::iequals(hd.name, "sec-websocket-protocol")) {
            ws::for_each_element(hd.value, [&](std::string_view p) {
                py::Ref str = py::Ref::steal(PyUnicode_DecodeLatin1(p.data(), static_cast<Py_ssize_t>(p.size()), nullptr));
                if (!str || PyList_Append(subs.get(), str.get()) < 0) ok = false;
            });
        } else if (cfg.ws_deflate && http::iequals(hd.name, "sec-websocket-extensions")) {
            neg.offer(hd.value);
        }
    }
    if (ok && neg.accepted()) {
        s.ext_response = neg.response();
        s.deflate = neg.params();
    }
    if (ok) {
        PyObject* sc = scope.get();
        PyObject* old_ext = PyDict_GetItemWithError(sc, K.extensions);  // borrowed
        PyObject* tls = old_ext && PyDict_Check(old_ext) ? PyDict_GetItemWithError(old_ext, K.tls) : nullptr;
        ok = !PyErr_Occurred() && PyDict_SetItem(ext.get(), K.http_response_ext, empty.get()) == 0 &&
             (!tls || PyDict_SetItem(ext.get(), K.tls, tls) == 0) && PyDict_SetItem(sc, K.type, K.ws_type) == 0 &&
             PyDict_SetItem(sc, K.scheme, c.tls() ? K.s_wss : K.s_ws) == 0 &&
             PyDict_SetItem(sc, K.subprotocols, subs.get()) == 0 &&
             PyDict_SetItem(sc, K.extensions, ext.get()) == 0 && PyDict_DelItem(sc, K.method) == 0;
    }
    py::Ref receive = ok ? py::Ref::steal(PyCFunction_New(&receive_def, session.get())) : py::Ref();
    py::Ref send = receive ? py::Ref::steal(PyCFunction_New(&send_def, session.get())) : py::Ref();
    if (!send) {
        log_current("Cannot start the WebSocket");
        refuse(c, 500, {});
        return true;
    }
    cd.ws = py::Ref::borrow(session.get());
    if (opts_.access_log) {
        s.log_scope = py::Ref::borrow(scope.get());
        s.started_ns = uv_hrtime();
    }
    PyObject* args[3] = {scope.get(), receive.get(), send.get()};
    py::Ref coro = py::Ref::steal(PyObject_Vectorcall(opts_.app.get(), args, 3, nullptr));
    scope.reset();
    receive.reset();
    send.reset();
    if (coro && !PyCoro_CheckExact(coro.get())) {
        PyTypeObject* tp = Py_TYPE(coro.get());
        if (!tp->tp_as_async || !tp->tp_as_async->am_await) {
            PyErr_Format(PyExc_TypeError, "the ASGI application returned %.100s, not an awaitable", tp->tp_name);
            coro.reset();
        } else {
            coro = py::Ref::steal(tp->tp_as_async->am_await(coro.get()));
        }
    }
    if (coro) {
        PyObject* sargs[2] = {coro.get(), session.get()};
        py::Ref t = py::Ref::steal(PyObject_Vectorcall(opts_.spawn.get(), sargs, 2, nullptr));
        if (t) return true;
    }
    // The app could not even start: log why, answer 500.
    s.app_done = true;
    log_current("Exception in ASGI application (websocket)");
    if (s.conn) refuse(c, 500, {});
    WsAccess::log_access(*this, s, 500);
    return true;
}

}  // namespace luath::asgi
