// start_response(status, headers, exc_info=None) and the write() callable it returns (PEP 3333).
#include "wsgi/handler.hpp"

namespace luath::wsgi {

struct StartResponseObject {
    PyObject_HEAD
    Exchange* ex;        // borrowed; null once the exchange ended
    PyObject* writer;    // owned WriteObject
};

struct WriteObject {
    PyObject_HEAD
    Exchange* ex;        // borrowed; null once the exchange ended
};

namespace {

PyObject* ended() {
    PyErr_SetString(PyExc_RuntimeError, "the response this callable belongs to has ended");
    return nullptr;
}

PyObject* sr_call(PyObject* self, PyObject* args, PyObject* kwargs) {
    auto* o = reinterpret_cast<StartResponseObject*>(self);
    static const char* kwlist[] = {"status", "headers", "exc_info", nullptr};
    PyObject* status = nullptr;
    PyObject* headers = nullptr;
    PyObject* exc_info = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO|O:start_response", const_cast<char**>(kwlist),
                                     &status, &headers, &exc_info))
        return nullptr;
    Exchange* ex = o->ex;
    if (!ex) return ended();
    if (exc_info != Py_None) {
        if (ex->w.headers_sent()) {
            // PEP 3333: too late to change the status; re-raise the application's exception.
            if (!PyTuple_Check(exc_info) || PyTuple_GET_SIZE(exc_info) != 3) {
                PyErr_SetString(PyExc_TypeError, "exc_info must be a (type, value, traceback) tuple");
                return nullptr;
            }
            PyObject* t = PyTuple_GET_ITEM(exc_info, 0);
            PyObject* v = PyTuple_GET_ITEM(exc_info, 1);
            PyObject* tb = PyTuple_GET_ITEM(exc_info, 2);
            Py_XINCREF(t);
            Py_XINCREF(v);
            Py_XINCREF(tb);
            PyErr_Restore(t, v, tb == Py_None ? nullptr : tb);
            if (tb == Py_None) Py_DECREF(tb);
            return nullptr;
        }
    } else if (ex->started) {
        PyErr_SetString(PyExc_AssertionError,
                        "start_response called a second time without exc_info");
        return nullptr;
    }
    if (!PyUnicode_Check(status)) {
        PyErr_Format(PyExc_TypeError, "status must be str, not %.100s", Py_TYPE(status)->tp_name);
        return nullptr;
    }
    if (!PyList_Check(headers)) {
        PyErr_Format(PyExc_TypeError, "headers must be a list, not %.100s", Py_TYPE(headers)->tp_name);
        return nullptr;
    }
    ex->status = py::Ref::borrow(status);
    ex->headers = py::Ref::borrow(headers);
    ex->started = true;
    Py_INCREF(o->writer);
    return o->writer;
}

PyObject* write_call(PyObject* self, PyObject* args, PyObject* kwargs) {
    auto* o = reinterpret_cast<WriteObject*>(self);
    PyObject* data;
    if (kwargs && PyDict_GET_SIZE(kwargs)) {
        PyErr_SetString(PyExc_TypeError, "write() takes no keyword arguments");
        return nullptr;
    }
    if (!PyArg_ParseTuple(args, "O:write", &data)) return nullptr;
    Exchange* ex = o->ex;
    if (!ex) return ended();
    if (!PyBytes_Check(data)) {
        PyErr_Format(PyExc_TypeError, "write() takes bytes, not %.100s", Py_TYPE(data)->tp_name);
        return nullptr;
    }
    if (!ex->started) {
        PyErr_SetString(PyExc_AssertionError, "write() before start_response");
        return nullptr;
    }
    Handler& h = *ex->handler;
    if (!ex->w.headers_sent() && !h.send_headers(*ex, -1)) return nullptr;
    if (!h.send_body(*ex, data)) return nullptr;
    net::Connection& c = *ex->conn;
    bool ok;
    ex->unlock_gil();
    ok = c.flush_blocking();
    ex->lock_gil();
    if (!ok) {
        PyErr_SetString(ClientDisconnected, "the client went away");
        return nullptr;
    }
    Py_RETURN_NONE;
}

void sr_dealloc(PyObject* self) {
    auto* o = reinterpret_cast<StartResponseObject*>(self);
    PyTypeObject* tp = Py_TYPE(self);
    Py_XDECREF(o->writer);
    PyObject_Free(self);
    Py_DECREF(tp);
}

void write_dealloc(PyObject* self) {
    PyTypeObject* tp = Py_TYPE(self);
    PyObject_Free(self);
    Py_DECREF(tp);
}

PyType_Slot sr_slots[] = {
    {Py_tp_call, reinterpret_cast<void*>(sr_call)},
    {Py_tp_dealloc, reinterpret_cast<void*>(sr_dealloc)},
    {Py_tp_doc, const_cast<char*>("start_response(status, headers, exc_info=None) -> write")},
    {0, nullptr},
};
PyType_Spec sr_spec = {"luath._core.StartResponse", sizeof(StartResponseObject), 0, Py_TPFLAGS_DEFAULT, sr_slots};

PyType_Slot write_slots[] = {
    {Py_tp_call, reinterpret_cast<void*>(write_call)},
    {Py_tp_dealloc, reinterpret_cast<void*>(write_dealloc)},
    {Py_tp_doc, const_cast<char*>("write(data: bytes): send body bytes at once (PEP 3333)")},
    {0, nullptr},
};
PyType_Spec write_spec = {"luath._core.Write", sizeof(WriteObject), 0, Py_TPFLAGS_DEFAULT, write_slots};

}  // namespace

PyTypeObject* StartResponseType = nullptr;
PyTypeObject* WriteType = nullptr;

PyObject* start_response_new(Exchange* ex) {
    auto* w = PyObject_New(WriteObject, WriteType);
    if (!w) return nullptr;
    w->ex = ex;
    auto* o = PyObject_New(StartResponseObject, StartResponseType);
    if (!o) {
        Py_DECREF(w);
        return nullptr;
    }
    o->ex = ex;
    o->writer = reinterpret_cast<PyObject*>(w);
    return reinterpret_cast<PyObject*>(o);
}

void start_response_attach(PyObject* sr, Exchange* ex) {
    auto* o = reinterpret_cast<StartResponseObject*>(sr);
    o->ex = ex;
    reinterpret_cast<WriteObject*>(o->writer)->ex = ex;
}

void start_response_detach(PyObject* sr) { start_response_attach(sr, nullptr); }

bool init_start_response_types() {
    StartResponseType = reinterpret_cast<PyTypeObject*>(PyType_FromSpec(&sr_spec));
    WriteType = reinterpret_cast<PyTypeObject*>(PyType_FromSpec(&write_spec));
    return StartResponseType && WriteType;
}

}  // namespace luath::wsgi
