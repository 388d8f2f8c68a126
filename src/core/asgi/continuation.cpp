// luath._core.AppTask: what an asyncio Task runs for a request whose application coroutine waits.
//
// The handler drives each request's coroutine itself first (Handler::run_eager), with a spare Task
// entered as asyncio's current task. A spare is a Task made in advance around an unbound
// Continuation: its first step parks it on a future. When a coroutine driven eagerly yields (it
// waits on a future), the spare is bound to it: the park future is resolved, and the Task's next
// step gets, first, the future the coroutine yielded (with _asyncio_future_blocking set as
// Future.__await__ left it, so the Task waits on it exactly as if it had run the coroutine from the
// start), then each later send/throw is forwarded to the coroutine in the request's context.
// Methods send, throw, close and __await__ make it a collections.abc.Coroutine for asyncio.Task.
#include "asgi/handler.hpp"

namespace luath::asgi {

PyTypeObject* ContinuationType = nullptr;

namespace {

PyObject* s_blocking = nullptr;  // "_asyncio_future_blocking"
PyObject* s_close = nullptr;     // "close"

Continuation* as_cont(PyObject* self) { return reinterpret_cast<Continuation*>(self); }

void untrack(Continuation* c) {
    if (c->tracked && c->handler) c->handler->untrack(c);
    c->tracked = false;
}

void release(Continuation* c) {
    untrack(c);
    c->dead = true;
    Py_CLEAR(c->coro);
    Py_CLEAR(c->ctx);
    Py_CLEAR(c->first);
    Py_CLEAR(c->exchange);
}

PyObject* dead_error() {
    PyErr_SetString(PyExc_RuntimeError, "cannot resume a finished luath AppTask");
    return nullptr;
}

// A spare's step: park on a new future until a request is bound (or the Task is cancelled).
PySendResult park(Continuation* c, PyObject** result) {
    if (!c->handler || c->dead) {
        dead_error();
        return PYGEN_ERROR;
    }
    PyObject* fut = c->handler->new_future();
    if (!fut) return PYGEN_ERROR;
    if (PyObject_SetAttr(fut, s_blocking, Py_True) < 0) {
        Py_DECREF(fut);
        return PYGEN_ERROR;
    }
    Py_XSETREF(c->park, Py_NewRef(fut));
    *result = fut;
    return PYGEN_NEXT;
}

PySendResult cont_am_send(PyObject* self, PyObject* value, PyObject** result) {
    Continuation* c = as_cont(self);
    *result = nullptr;
    if (!c->exchange) return park(c, result);
    if (c->first) {
        *result = c->first;  // the reference moves to the caller
        c->first = nullptr;
        return PYGEN_NEXT;
    }
    if (c->dead || !c->coro || !c->handler) {
        dead_error();
        return PYGEN_ERROR;
    }
    auto* ex = reinterpret_cast<Exchange*>(c->exchange);
    PySendResult r = c->handler->step(ex, c->coro, c->ctx, value ? value : Py_None, nullptr, result);
    if (r != PYGEN_NEXT) release(c);
    if (r == PYGEN_RETURN) *result = Py_NewRef(Py_None);
    return r;
}

PyObject* cont_send(PyObject* self, PyObject* value) {
    PyObject* result = nullptr;
    PySendResult r = cont_am_send(self, value, &result);
    if (r == PYGEN_NEXT) return result;
    if (r == PYGEN_RETURN) {
        Py_DECREF(result);  // always None
        PyErr_SetNone(PyExc_StopIteration);
    }
    return nullptr;
}

PyObject* cont_iternext(PyObject* self) {
    PyObject* result = nullptr;
    PySendResult r = cont_am_send(self, Py_None, &result);
    if (r == PYGEN_NEXT) return result;
    Py_XDECREF(result);
    return nullptr;  // RETURN (None): a plain end of iteration; ERROR: the exception is set
}

// throw(exc) or throw(type[, value[, tb]]) (the form asyncio uses is throw(exc)).
PyObject* cont_throw(PyObject* self, PyObject* const* args, Py_ssize_t nargs) {
    if (nargs < 1 || nargs > 3) {
        PyErr_SetString(PyExc_TypeError, "throw expected 1 to 3 arguments");
        return nullptr;
    }
    py::Ref exc;
    PyObject* a = args[0];
    if (PyExceptionInstance_Check(a)) {
        exc = py::Ref::borrow(a);
    } else if (PyExceptionClass_Check(a)) {
        PyObject* v = nargs > 1 ? args[1] : Py_None;
        if (PyExceptionInstance_Check(v)) exc = py::Ref::borrow(v);
        else exc = py::Ref::steal(v == Py_None ? PyObject_CallNoArgs(a) : PyObject_CallOneArg(a, v));
        if (!exc) return nullptr;
    } else {
        PyErr_SetString(PyExc_TypeError, "exceptions must be classes or instances deriving from BaseException");
        return nullptr;
    }
    Continuation* c = as_cont(self);
    if (!c->exchange || c->dead || !c->coro || !c->handler) {
        // A spare cancelled (graceful stop), or a finished one: end with the exception.
        if (!c->exchange && c->handler) c->handler->spare_died(c);
        release(c);
        Py_CLEAR(c->park);
        PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(exc.get())), exc.get());
        return nullptr;
    }
    Py_CLEAR(c->first);  // the coroutine waits at that yield: the exception goes in there
    auto* ex = reinterpret_cast<Exchange*>(c->exchange);
    PyObject* result = nullptr;
    PySendResult r = c->handler->step(ex, c->coro, c->ctx, nullptr, exc.get(), &result);
    if (r == PYGEN_NEXT) return result;
    release(c);
    if (r == PYGEN_RETURN) PyErr_SetNone(PyExc_StopIteration);
    return nullptr;
}

PyObject* cont_close(PyObject* self, PyObject*) {
    Continuation* c = as_cont(self);
    if (c->coro && !c->dead) {
        py::Ref r = py::Ref::steal(PyObject_CallMethodNoArgs(c->coro, s_close));
        release(c);
        if (!r) return nullptr;
    }
    Py_RETURN_NONE;
}

PyObject* cont_await(PyObject* self) { return Py_NewRef(self); }

int cont_traverse(PyObject* self, visitproc visit, void* arg) {
    Continuation* c = as_cont(self);
    Py_VISIT(c->exchange);
    Py_VISIT(c->coro);
    Py_VISIT(c->ctx);
    Py_VISIT(c->first);
    Py_VISIT(c->park);
    Py_VISIT(Py_TYPE(self));
    return 0;
}

int cont_clear(PyObject* self) {
    Continuation* c = as_cont(self);
    untrack(c);
    Py_CLEAR(c->exchange);
    Py_CLEAR(c->coro);
    Py_CLEAR(c->ctx);
    Py_CLEAR(c->first);
    Py_CLEAR(c->park);
    return 0;
}

void cont_dealloc(PyObject* self) {
    PyTypeObject* tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    cont_clear(self);
    PyObject_GC_Del(self);
    Py_DECREF(tp);
}

PyMethodDef cont_methods[] = {
    {"send", cont_send, METH_O, "send(value): resume the application's coroutine"},
    {"throw", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(cont_throw)), METH_FASTCALL,
     "throw(exc): raise exc in the application's coroutine"},
    {"close", cont_close, METH_NOARGS, "close the application's coroutine"},
    {nullptr, nullptr, 0, nullptr},
};

PyType_Slot cont_slots[] = {
    {Py_am_await, reinterpret_cast<void*>(cont_await)},
    {Py_am_send, reinterpret_cast<void*>(cont_am_send)},
    {Py_tp_iter, reinterpret_cast<void*>(cont_await)},
    {Py_tp_iternext, reinterpret_cast<void*>(cont_iternext)},
    {Py_tp_traverse, reinterpret_cast<void*>(cont_traverse)},
    {Py_tp_clear, reinterpret_cast<void*>(cont_clear)},
    {Py_tp_dealloc, reinterpret_cast<void*>(cont_dealloc)},
    {Py_tp_methods, cont_methods},
    {Py_tp_doc, const_cast<char*>("An ASGI request's coroutine, continued by an asyncio Task")},
    {0, nullptr},
};
PyType_Spec cont_spec = {"luath._core.AppTask", sizeof(Continuation), 0, Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
                         cont_slots};

}  // namespace

// A new unbound Continuation (a spare), or null with an error set.
PyObject* new_continuation(Handler* h) {
    Continuation* c = PyObject_GC_New(Continuation, ContinuationType);
    if (!c) return nullptr;
    c->handler = h;
    c->exchange = c->coro = c->ctx = c->first = c->park = nullptr;
    c->dead = false;
    c->tracked = false;
    PyObject_GC_Track(reinterpret_cast<PyObject*>(c));
    return reinterpret_cast<PyObject*>(c);
}

// Binds a spare to a request whose coroutine waits (first: what it yielded, or null: not started).
// Each argument is borrowed. Wakes the spare's Task if it is parked.
bool bind_continuation(PyObject* self, PyObject* exchange, PyObject* coro, PyObject* ctx, PyObject* first) {
    Continuation* c = as_cont(self);
    c->exchange = Py_NewRef(exchange);
    c->coro = Py_NewRef(coro);
    c->ctx = Py_NewRef(ctx);
    c->first = Py_XNewRef(first);
    if (c->handler && !c->tracked) {
        c->handler->track(c);
        c->tracked = true;
    }
    if (PyObject* fut = c->park) {
        c->park = nullptr;
        static PyObject* s_set_result = PyUnicode_InternFromString("set_result");
        py::Ref r = py::Ref::steal(s_set_result ? PyObject_CallMethodOneArg(fut, s_set_result, Py_None) : nullptr);
        Py_DECREF(fut);
        if (!r) return false;
    }
    return true;
}

void orphan_continuation(PyObject* self) {
    as_cont(self)->handler = nullptr;
    as_cont(self)->tracked = false;
}

bool init_continuation_type() {
    s_blocking = PyUnicode_InternFromString("_asyncio_future_blocking");
    s_close = PyUnicode_InternFromString("close");
    ContinuationType = reinterpret_cast<PyTypeObject*>(PyType_FromSpec(&cont_spec));
    return s_blocking && s_close && ContinuationType;
}

}  // namespace luath::asgi
