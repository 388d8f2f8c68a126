// The Python objects of an ASGI request: the Exchange (receive/send are bound to it) and Ready, an
// awaitable that completes at once with a value, so a receive or send that need not wait costs no
// Future and no trip through the event loop.
#include "asgi/handler.hpp"

namespace luath::asgi {

PyTypeObject* ExchangeType = nullptr;
PyTypeObject* ReadyType = nullptr;

namespace {

struct Ready {
    PyObject_HEAD
    PyObject* value;  // owned; returned by the await
};

// Up to 64 Ready objects are kept for reuse instead of freed.
std::vector<Ready*> ready_pool;

PySendResult ready_send(PyObject* self, PyObject*, PyObject** result) {
    auto* r = reinterpret_cast<Ready*>(self);
    *result = r->value ? r->value : Py_None;
    Py_INCREF(*result);
    return PYGEN_RETURN;
}

PyObject* ready_await(PyObject* self) {
    Py_INCREF(self);
    return self;
}

PyObject* ready_next(PyObject* self) {
    auto* r = reinterpret_cast<Ready*>(self);
    PyObject* v = r->value ? r->value : Py_None;
    // StopIteration(value): wrapped in a tuple so that a tuple value is not taken as arguments.
    PyObject* exc = PyObject_CallOneArg(PyExc_StopIteration, v);
    if (exc) {
        PyErr_SetObject(PyExc_StopIteration, exc);
        Py_DECREF(exc);
    }
    return nullptr;
}

void ready_dealloc(PyObject* self) {
    auto* r = reinterpret_cast<Ready*>(self);
    PyTypeObject* tp = Py_TYPE(self);
    Py_CLEAR(r->value);
    if (ready_pool.size() < 64) {
        ready_pool.push_back(r);
    } else {
        PyObject_Free(self);
    }
    Py_DECREF(tp);
}

PyType_Slot ready_slots[] = {
    {Py_am_await, reinterpret_cast<void*>(ready_await)},
    {Py_am_send, reinterpret_cast<void*>(ready_send)},
    {Py_tp_iter, reinterpret_cast<void*>(ready_await)},
    {Py_tp_iternext, reinterpret_cast<void*>(ready_next)},
    {Py_tp_dealloc, reinterpret_cast<void*>(ready_dealloc)},
    {0, nullptr},
};
PyType_Spec ready_spec = {"luath._core.Ready", sizeof(Ready), 0, Py_TPFLAGS_DEFAULT, ready_slots};

Handler& handler_of(PyObject* self) { return *reinterpret_cast<Exchange*>(self)->handler; }

PyObject* ex_receive(PyObject* self, PyObject*) {
    return handler_of(self).receive(reinterpret_cast<Exchange*>(self));
}

PyObject* ex_send(PyObject* self, PyObject* message) {
    return handler_of(self).send(reinterpret_cast<Exchange*>(self), message);
}

PyObject* ex_app_done(PyObject* self, PyObject* exc) {
    handler_of(self).app_done(reinterpret_cast<Exchange*>(self), exc);
    Py_RETURN_NONE;
}

void ex_dealloc(PyObject* self) {
    auto* ex = reinterpret_cast<Exchange*>(self);
    PyTypeObject* tp = Py_TYPE(self);
    if (ex->w) ex->w->~ResponseWriter();
    Py_CLEAR(ex->pending_receive);
    Py_CLEAR(ex->pending_send);
    Py_CLEAR(ex->scope);
    Py_CLEAR(ex->receive);
    Py_CLEAR(ex->send);
    PyObject_Free(self);
    Py_DECREF(tp);
}

PyMethodDef ex_methods[] = {
    {"receive", ex_receive, METH_NOARGS, "receive() -> awaitable of the next ASGI event"},
    {"send", ex_send, METH_O, "send(message) -> awaitable"},
    {"app_done", ex_app_done, METH_O, "app_done(exc_or_None): the application's coroutine ended"},
    {nullptr, nullptr, 0, nullptr},
};

PyType_Slot ex_slots[] = {
    {Py_tp_dealloc, reinterpret_cast<void*>(ex_dealloc)},
    {Py_tp_methods, ex_methods},
    {Py_tp_doc, const_cast<char*>("One ASGI HTTP request and its response")},
    {0, nullptr},
};
PyType_Spec ex_spec = {"luath._core.Exchange", sizeof(Exchange), 0, Py_TPFLAGS_DEFAULT, ex_slots};

}  // namespace

PyMethodDef receive_def = {"receive", ex_receive, METH_NOARGS, nullptr};
PyMethodDef send_def = {"send", ex_send, METH_O, nullptr};

// An awaitable that completes at once with value (a new reference is taken).
PyObject* ready(PyObject* value) {
    Ready* r;
    if (!ready_pool.empty()) {
        r = ready_pool.back();
        ready_pool.pop_back();
        PyObject_Init(reinterpret_cast<PyObject*>(r), ReadyType);
    } else {
        r = PyObject_New(Ready, ReadyType);
        if (!r) return nullptr;
    }
    Py_XINCREF(value);
    r->value = value;
    return reinterpret_cast<PyObject*>(r);
}

bool init_exchange_types() {
    ExchangeType = reinterpret_cast<PyTypeObject*>(PyType_FromSpec(&ex_spec));
    ReadyType = reinterpret_cast<PyTypeObject*>(PyType_FromSpec(&ready_spec));
    return ExchangeType && ReadyType;
}

}  // namespace luath::asgi
