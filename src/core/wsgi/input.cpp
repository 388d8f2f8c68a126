// wsgi.input: the request body, pulled from the socket as the application reads it (PEP 3333).
#include <cstring>
#include <string>

#include "wsgi/handler.hpp"

namespace luath::wsgi {

struct InputObject {
    PyObject_HEAD
    Exchange* ex;  // borrowed; null once the exchange ended (reads then return b"")
};

namespace {

// Raises the right error after a failed body read.
PyObject* body_failed(net::Connection& c) {
    if (c.body_error() != http::Error::None)
        PyErr_Format(ClientDisconnected, "malformed request body: %s",
                     std::string(http::error_info(c.body_error()).detail).c_str());
    else
        PyErr_SetString(ClientDisconnected, "the client went away while sending the body");
    return nullptr;
}

Py_ssize_t size_arg(PyObject* arg) {
    if (!arg || arg == Py_None) return -1;
    Py_ssize_t n = PyNumber_AsSsize_t(arg, PyExc_OverflowError);
    return n;
}

// Appends up to `limit` bytes (-1: all) of the body to out; with `line`, stops after a '\n'.
bool read_into(Exchange& ex, std::string& out, Py_ssize_t limit, bool line) {
    net::Connection& c = *ex.conn;
    while (limit < 0 || static_cast<Py_ssize_t>(out.size()) < limit) {
        if (c.body_done()) break;
        ex.unlock_gil();
        std::string_view v = c.body_peek();
        ex.lock_gil();
        if (v.empty()) {
            if (c.body_failed()) {
                body_failed(c);
                return false;
            }
            break;
        }
        std::size_t take = v.size();
        if (limit >= 0 && take > static_cast<std::size_t>(limit) - out.size())
            take = static_cast<std::size_t>(limit) - out.size();
        if (line) {
            const void* nl = std::memchr(v.data(), '\n', take);
            if (nl) take = static_cast<std::size_t>(static_cast<const char*>(nl) - v.data()) + 1;
        }
        out.append(v.data(), take);
        c.body_consume(take);
        if (line && out.back() == '\n') break;
    }
    return true;
}

PyObject* input_read(PyObject* self, PyObject* const* args, Py_ssize_t nargs) {
    auto* o = reinterpret_cast<InputObject*>(self);
    if (nargs > 1) {
        PyErr_SetString(PyExc_TypeError, "read() takes at most one argument");
        return nullptr;
    }
    Py_ssize_t size = size_arg(nargs ? args[0] : nullptr);
    if (size == -1 && PyErr_Occurred()) return nullptr;
    Exchange* ex = o->ex;
    if (!ex || ex->conn->body_done() || size == 0) return PyBytes_FromStringAndSize(nullptr, 0);
    net::Connection& c = *ex->conn;
    if (size > 0) {
        // Read straight into the bytes object; shrink it if the body ends first.
        PyObject* b = PyBytes_FromStringAndSize(nullptr, size);
        if (!b) return nullptr;
        ex->unlock_gil();
        std::int64_t got = c.body_read(PyBytes_AS_STRING(b), static_cast<std::size_t>(size));
        ex->lock_gil();
        if (got < 0) {
            Py_DECREF(b);
            return body_failed(c);
        }
        if (got < size && _PyBytes_Resize(&b, static_cast<Py_ssize_t>(got)) < 0) return nullptr;
        return b;
    }
    std::string buf;
    if (!read_into(*ex, buf, -1, false)) return nullptr;
    return PyBytes_FromStringAndSize(buf.data(), static_cast<Py_ssize_t>(buf.size()));
}

PyObject* readline_impl(InputObject* o, Py_ssize_t size) {
    Exchange* ex = o->ex;
    if (!ex || size == 0) return PyBytes_FromStringAndSize(nullptr, 0);
    std::string buf;
    if (!read_into(*ex, buf, size, true)) return nullptr;
    return PyBytes_FromStringAndSize(buf.data(), static_cast<Py_ssize_t>(buf.size()));
}

PyObject* input_readline(PyObject* self, PyObject* const* args, Py_ssize_t nargs) {
    if (nargs > 1) {
        PyErr_SetString(PyExc_TypeError, "readline() takes at most one argument");
        return nullptr;
    }
    Py_ssize_t size = size_arg(nargs ? args[0] : nullptr);
    if (size == -1 && PyErr_Occurred()) return nullptr;
    return readline_impl(reinterpret_cast<InputObject*>(self), size);
}

PyObject* input_readlines(PyObject* self, PyObject* const* args, Py_ssize_t nargs) {
    if (nargs > 1) {
        PyErr_SetString(PyExc_TypeError, "readlines() takes at most one argument");
        return nullptr;
    }
    Py_ssize_t hint = size_arg(nargs ? args[0] : nullptr);
    if (hint == -1 && PyErr_Occurred()) return nullptr;
    py::Ref lines = py::Ref::steal(PyList_New(0));
    if (!lines) return nullptr;
    Py_ssize_t total = 0;
    for (;;) {
        py::Ref line = py::Ref::steal(readline_impl(reinterpret_cast<InputObject*>(self), -1));
        if (!line) return nullptr;
        Py_ssize_t n = PyBytes_GET_SIZE(line.get());
        if (n == 0) break;
        if (PyList_Append(lines.get(), line.get()) < 0) return nullptr;
        total += n;
        if (hint > 0 && total >= hint) break;
    }
    return lines.release();
}

PyObject* input_iternext(PyObject* self) {
    PyObject* line = readline_impl(reinterpret_cast<InputObject*>(self), -1);
    if (line && PyBytes_GET_SIZE(line) == 0) {
        Py_DECREF(line);
        return nullptr;  // StopIteration
    }
    return line;
}

PyObject* input_iter(PyObject* self) {
    Py_INCREF(self);
    return self;
}

void input_dealloc(PyObject* self) {
    PyTypeObject* tp = Py_TYPE(self);
    PyObject_Free(self);
    Py_DECREF(tp);
}

PyMethodDef input_methods[] = {
    {"read", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(input_read)), METH_FASTCALL,
     "read(size=-1) -> bytes"},
    {"readline", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(input_readline)), METH_FASTCALL,
     "readline(size=-1) -> bytes"},
    {"readlines", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(input_readlines)),
     METH_FASTCALL, "readlines(hint=-1) -> list[bytes]"},
    {nullptr, nullptr, 0, nullptr},
};

PyType_Slot input_slots[] = {
    {Py_tp_dealloc, reinterpret_cast<void*>(input_dealloc)},
    {Py_tp_iter, reinterpret_cast<void*>(input_iter)},
    {Py_tp_iternext, reinterpret_cast<void*>(input_iternext)},
    {Py_tp_methods, input_methods},
    {Py_tp_doc, const_cast<char*>("The request body (wsgi.input), read from the socket on demand")},
    {0, nullptr},
};
PyType_Spec input_spec = {"luath._core.Input", sizeof(InputObject), 0, Py_TPFLAGS_DEFAULT, input_slots};

}  // namespace

PyTypeObject* InputType = nullptr;

PyObject* input_new(Exchange* ex) {
    auto* o = PyObject_New(InputObject, InputType);
    if (!o) return nullptr;
    o->ex = ex;
    return reinterpret_cast<PyObject*>(o);
}

void input_attach(PyObject* input, Exchange* ex) { reinterpret_cast<InputObject*>(input)->ex = ex; }
void input_detach(PyObject* input) { input_attach(input, nullptr); }

bool init_input_type() {
    InputType = reinterpret_cast<PyTypeObject*>(PyType_FromSpec(&input_spec));
    return InputType != nullptr;
}

}  // namespace luath::wsgi
