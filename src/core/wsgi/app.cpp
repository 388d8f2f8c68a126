// Calling the WSGI application and driving its response iterable.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>

#include "http/response.hpp"
#include "py/common.hpp"
#include "py/strings.hpp"
#include "wsgi/handler.hpp"

namespace luath::wsgi {

using py::S;

PyObject* ClientDisconnected = nullptr;

namespace {
// An owner whose low bit is set must have close() called before it is released (a FileWrapper
// whose file was being sent with sendfile).
constexpr std::uintptr_t kCloseTag = 1;
}  // namespace

void Exchange::reset() {
    active = http10 = head = started = threaded = false;
    status.reset();
    headers.reset();
    result.reset();
    iter.reset();
    environ.reset();
}

// Handler's constructor and destructor are in pool.cpp (where the pool's type is complete).

void Handler::before_wait() { drop_gil(); }

ConnData* Handler::conn_data(net::Connection& c) {
    if (!c.user) {
        ConnData* d;
        if (!free_data_.empty()) {
            d = free_data_.back();
            free_data_.pop_back();
        } else {
            d = new ConnData();
        }
        d->ex.handler = this;
        d->ex.conn = &c;
        c.user = d;
    }
    return static_cast<ConnData*>(c.user);
}

// StartResponse and Input objects are reused when the application kept no reference to them.
StartResponseObject* Handler::new_start_response(Exchange& ex) {
    PyObject* o;
    if (!free_sr_.empty()) {
        o = free_sr_.back();
        free_sr_.pop_back();
        start_response_attach(o, &ex);
    } else {
        o = start_response_new(&ex);
        if (!o) return nullptr;
    }
    ex.sr_ref = py::Ref::steal(o);
    return reinterpret_cast<StartResponseObject*>(o);
}

PyObject* Handler::new_input(Exchange& ex) {
    PyObject* o;
    if (!free_input_.empty()) {
        o = free_input_.back();
        free_input_.pop_back();
        input_attach(o, &ex);
    } else {
        o = input_new(&ex);
        if (!o) return nullptr;
    }
    ex.input = py::Ref::steal(o);
    return o;
}

void Handler::on_request(net::Connection& c, const http::Request& req) {
    ensure_gil();
    ConnData* cd = conn_data(c);
    Exchange& ex = cd->ex;
    ex.reset();
    ex.active = true;
    ex.http10 = req.version_minor == 0;
    ex.head = req.method_id == http::Method::Head;
    ex.w.start(c, ex.http10, ex.head);

    py::Ref env = py::Ref::steal(build_environ(c, *cd, req));
    PyObject* input = env ? new_input(ex) : nullptr;
    StartResponseObject* sr = input ? new_start_response(ex) : nullptr;
    if (!sr || PyDict_SetItem(env.get(), S.wsgi_input, input) < 0) {
        app_failed(ex);
        return;
    }
    if (opts_.access_log) {
        ex.environ = py::Ref::borrow(env.get());
        ex.started_ns = uv_hrtime();
    }
    ex.threaded = pool_ != nullptr;
    if (ex.threaded) {  // the app runs in a pool thread, which owns the connection until it is done
        ex.call_env = std::move(env);
        submit(ex);
        return;
    }
    PyObject* args[2] = {env.get(), reinterpret_cast<PyObject*>(sr)};
    PyObject* result = PyObject_Vectorcall(opts_.app.get(), args, 2, nullptr);
    env.reset();
    if (!result) {
        app_failed(ex);
        return;
    }
    ex.result = py::Ref::steal(result);
    run_response(ex);
}

void Handler::run_in_thread(Exchange& ex) {
    PyObject* args[2] = {ex.call_env.get(), ex.sr_ref.get()};
    PyObject* result = PyObject_Vectorcall(opts_.app.get(), args, 2, nullptr);
    ex.call_env.reset();
    if (!result) {
        app_failed(ex);
        return;
    }
    ex.result = py::Ref::steal(result);
    run_response(ex);
}

// A pool thread writes a streamed response as it comes, waiting for the client without the GIL.
// False when the client is gone (the response is then over: close() is called here, in the thread).
bool Handler::flush_threaded(Exchange& ex) {
    net::Connection& c = *ex.conn;
    ex.unlock_gil();
    bool ok = c.flush_blocking();
    ex.lock_gil();
    if (!ok) {
        ex.iter.reset();
        call_close(ex);
        ex.active = false;
    }
    return ok;
}

void Handler::run_response(Exchange& ex) {
    PyObject* result = ex.result.get();
    const bool is_list = PyList_CheckExact(result);
    if (is_list || PyTuple_CheckExact(result)) {
        if (!ex.started) {
            PyErr_SetString(PyExc_RuntimeError, "the application returned without calling start_response");
            app_failed(ex);
            return;
        }
        Py_ssize_t n = is_list ? PyList_GET_SIZE(result) : PyTuple_GET_SIZE(result);
        PyObject** items = is_list ? reinterpret_cast<PyListObject*>(result)->ob_item
                                   : reinterpret_cast<PyTupleObject*>(result)->ob_item;
        std::int64_t total = 0;
        for (Py_ssize_t i = 0; i < n; ++i) {
            if (!PyBytes_Check(items[i])) {
                PyErr_Format(PyExc_TypeError, "the response body must hold bytes, not %.100s",
                             Py_TYPE(items[i])->tp_name);
                app_failed(ex);
                return;
            }
            total += PyBytes_GET_SIZE(items[i]);
        }
        if (!ex.w.headers_sent() && !send_headers(ex, total)) {
            app_failed(ex);
            return;
        }
        for (Py_ssize_t i = 0; i < n; ++i) send_body(ex, items[i]);
        finish(ex);
        return;
    }
    if (opts_.file_wrapper && Py_TYPE(result) == reinterpret_cast<PyTypeObject*>(opts_.file_wrapper.get()) &&
        ex.started && try_sendfile(ex))
        return;
    if (PyErr_Occurred()) {
        app_failed(ex);
        return;
    }
    ex.iter = py::Ref::steal(PyObject_GetIter(result));
    if (!ex.iter) {
        app_failed(ex);
        return;
    }
    stream(ex);
}

// Pulls items from the iterator until it ends or the client falls behind (resumed by on_drain).
void Handler::stream(Exchange& ex) {
    net::Connection& c = *ex.conn;
    for (;;) {
        if (c.closed()) return;  // on_close finishes the exchange
        if (ex.w.headers_sent() && ex.head) break;  // HEAD: nothing more to send
        if (c.over_high_water()) {
            if (ex.threaded) {
                if (!flush_threaded(ex)) return;
            } else {
                c.wait_for_drain();
                return;
            }
        }
        PyObject* item = PyIter_Next(ex.iter.get());
        if (!item) {
            if (PyErr_Occurred()) {
                app_failed(ex);
                return;
            }
            break;
        }
        py::Ref hold = py::Ref::steal(item);
        if (!ex.started) {
            PyErr_SetString(PyExc_RuntimeError, "the application returned without calling start_response");
            app_failed(ex);
            return;
        }
        if (!ex.w.headers_sent() && !send_headers(ex, -1)) {
            app_failed(ex);
            return;
        }
        if (!send_body(ex, item)) {
            app_failed(ex);
            return;
        }
        if (!ex.threaded) c.flush();
        else if (!flush_threaded(ex)) return;
    }
    if (!ex.started) {
        PyErr_SetString(PyExc_RuntimeError, "the application returned without calling start_response");
        app_failed(ex);
        return;
    }
    if (!ex.w.headers_sent() && !send_headers(ex, 0)) {
        app_failed(ex);
        return;
    }
    finish(ex);
}

// wsgi.file_wrapper over a regular file: send it with sendfile from its current position.
bool Handler::try_sendfile(Exchange& ex) {
    PyObject* wrapper = ex.result.get();
    py::Ref filelike = py::Ref::steal(PyObject_GetAttr(wrapper, S.filelike));
    if (!filelike) {
        PyErr_Clear();
        return false;
    }
    py::Ref fdobj = py::Ref::steal(PyObject_CallMethodNoArgs(filelike.get(), S.fileno));
    if (!fdobj) {
        PyErr_Clear();
        return false;
    }
    long fd = PyLong_AsLong(fdobj.get());
    if (fd < 0 || fd > INT32_MAX) {
        PyErr_Clear();
        return false;
    }
    struct stat st;
    if (fstat(static_cast<int>(fd), &st) != 0 || !S_ISREG(st.st_mode)) return false;
    off_t pos = lseek(static_cast<int>(fd), 0, SEEK_CUR);
    if (pos < 0) return false;
    std::int64_t length = st.st_size > pos ? st.st_size - pos : 0;
    if (!send_headers(ex, length)) {
        app_failed(ex);
        return true;
    }
    if (ex.w.content_length() >= 0 && ex.w.content_length() < length) length = ex.w.content_length();
    if (!ex.w.no_body() && length > 0) {
        // The queue now owns the wrapper: close() runs when the file has been sent (or dropped).
        PyObject* owner = ex.result.release();
        ex.w.file(static_cast<int>(fd), pos, static_cast<std::uint64_t>(length),
                  reinterpret_cast<void*>(reinterpret_cast<std::uintptr_t>(owner) | kCloseTag));
    }
    finish(ex);
    return true;
}

void Handler::call_close(Exchange& ex) {
    if (!ex.result) return;
    py::Ref result = std::move(ex.result);
    if (PyList_CheckExact(result.get()) || PyTuple_CheckExact(result.get())) return;
    PyObject* err_type = nullptr;
    PyObject* err_value = nullptr;
    PyObject* err_tb = nullptr;
    PyErr_Fetch(&err_type, &err_value, &err_tb);
    py::Ref method = py::Ref::steal(PyObject_GetAttr(result.get(), S.close));
    if (!method) {
        PyErr_Clear();  // no close(): nothing to call
    } else if (!py::Ref::steal(PyObject_CallNoArgs(method.get()))) {
        log_current("Exception in the response iterable's close()");
    }
    PyErr_Restore(err_type, err_value, err_tb);
}

// Logs the Python error set now through the log_error hook, and clears it.
void Handler::log_current(const char* message) { py::log_current(opts_.log_error.get(), message); }

// The response is complete: end chunking, call close(), hand the connection back.
void Handler::finish(Exchange& ex) {
    ex.iter.reset();
    call_close(ex);
    ex.active = false;
    ex.status.reset();
    ex.headers.reset();
    if (ex.sr_ref) {
        start_response_detach(ex.sr_ref.get());
        if (Py_REFCNT(ex.sr_ref.get()) == 1 && free_sr_.size() < 64) free_sr_.push_back(ex.sr_ref.release());
        ex.sr_ref.reset();
    }
    if (ex.input) {
        input_detach(ex.input.get());
        if (Py_REFCNT(ex.input.get()) == 1 && free_input_.size() < 64) free_input_.push_back(ex.input.release());
        ex.input.reset();
    }
    if (ex.environ) log_access(ex);
    ex.w.finish();
}

void Handler::log_access(Exchange& ex) {
    py::Ref environ = std::move(ex.environ);
    double seconds = static_cast<double>(uv_hrtime() - ex.started_ns) / 1e9;
    int status = ex.w.status() ? ex.w.status() : 500;
    py::Ref r = py::Ref::steal(PyObject_CallFunction(opts_.access_log.get(), "OiKd", environ.get(), status,
                                                     static_cast<unsigned long long>(ex.w.body_sent()), seconds));
    if (!r) log_current("Exception in the access log");
}

void Handler::app_failed(Exchange& ex) {
    net::Connection& c = *ex.conn;
    if (ClientDisconnected && PyErr_ExceptionMatches(ClientDisconnected)) PyErr_Clear();  // not the app's fault
    else log_current(ex.w.headers_sent() ? "Exception in the application after the response started"
                                     : "Exception in the application");
    ex.iter.reset();
    if (!ex.w.headers_sent() && !c.closed()) {
        // Nothing of this response is queued yet: answer 400 for a malformed body, else 500, and close.
        c.queue_canned(c.body_error() != http::Error::None ? http::error_response(c.body_error())
                                                            : http::canned_response(500));
        ex.w.start(c, ex.http10, true);  // the canned response is complete: nothing more to frame
        finish(ex);
        return;
    }
    // Headers are out (or the client left): the only honest signal left is closing the connection.
    call_close(ex);
    ex.active = false;
    c.abort();
}

void Handler::on_drain(net::Connection& c) {
    ensure_gil();
    ConnData* cd = static_cast<ConnData*>(c.user);
    if (!cd || !cd->ex.active || !cd->ex.iter) return;
    stream(cd->ex);
}

void Handler::on_close(net::Connection& c) {
    if (!c.user) return;
    ensure_gil();
    ConnData* cd = static_cast<ConnData*>(c.user);
    Exchange& ex = cd->ex;
    if (ex.active) {
        ex.iter.reset();
        call_close(ex);
        ex.active = false;
    }
    if (ex.sr_ref) {
        start_response_detach(ex.sr_ref.get());
        ex.sr_ref.reset();
    }
    if (ex.input) {
        input_detach(ex.input.get());
        ex.input.reset();
    }
    ex.reset();
    cd->remote_addr.reset();
    cd->remote_port.reset();
    c.user = nullptr;
    if (free_data_.size() < 4096) free_data_.push_back(cd);
    else delete cd;
}

void Handler::release(void* owner) {
    if (pool_ && !on_loop_thread()) {  // a pool thread writing (GIL held or not)
        PyGILState_STATE g = PyGILState_Ensure();
        release_owner(owner);
        PyGILState_Release(g);
        return;
    }
    ensure_gil();
    release_owner(owner);
}

void Handler::release_owner(void* owner) {
    auto bits = reinterpret_cast<std::uintptr_t>(owner);
    PyObject* o = reinterpret_cast<PyObject*>(bits & ~kCloseTag);
    if (bits & kCloseTag) {
        py::Ref r = py::Ref::steal(PyObject_CallMethodNoArgs(o, S.close));
        if (!r) PyErr_Clear();
    }
    Py_DECREF(o);
}

bool init_start_response_types();
bool init_input_type();

bool init_types(PyObject* module) {
    if (!init_start_response_types() || !init_input_type()) return false;
    ClientDisconnected = PyErr_NewExceptionWithDoc(
        "luath._core.ClientDisconnected",
        "The client closed the connection or sent a malformed body while the application read or wrote.",
        PyExc_OSError, nullptr);
    if (!ClientDisconnected) return false;
    Py_INCREF(ClientDisconnected);
    return PyModule_AddObject(module, "ClientDisconnected", ClientDisconnected) == 0;
}

}  // namespace luath::wsgi
