// luath._core.AsgiServer: one worker's libuv loop driven by an outer asyncio loop.
//   srv = AsgiServer(app, fds, config, base_scope, spawn, create_future, wake, log_error,
//                    eager=(loop, enter_task, leave_task, new_task) or None)
//   loop.add_reader(srv.backend_fd(), tick); tick(): t = srv.run(); schedule tick in t ms (t >= 0)
//   srv.stop() for a graceful stop; srv.done once drained; srv.close() frees the loop.
// Or, with no Python in the per-event path: srv.bridge(loop, on_done); loop.add_reader(fd, srv.tick);
//   srv.wake() schedules a tick; libuv's next timer is mirrored with loop.call_later; on_done() is
//   called once stopped and drained; srv.unbridge() before close.
#include <memory>

#include "asgi/handler.hpp"
#include "py/ref.hpp"

namespace luath::py {
bool read_engine_config(PyObject* cfg, net::Config& c);
}

namespace luath::asgi {

namespace {

struct ServerObject {
    PyObject_HEAD
    uv_loop_t* loop;
    Handler* handler;
    net::Server* server;
    // The bridge to the asyncio loop (all owned, null without bridge()).
    PyObject* call_soon;   // loop.call_soon
    PyObject* call_later;  // loop.call_later
    PyObject* tick_cb;     // self.tick (a reference cycle until unbridge()/close())
    PyObject* timer_cb;    // self._on_timer
    PyObject* on_done;
    PyObject* timer;       // the armed asyncio TimerHandle, or null
    double timer_when;     // its deadline (CLOCK_MONOTONIC seconds)
    bool wake_pending;
};

PyObject* s_cancel = nullptr;

void cancel_timer(ServerObject* o) {
    if (!o->timer) return;
    PyObject* t = o->timer;
    o->timer = nullptr;
    if (!s_cancel) s_cancel = PyUnicode_InternFromString("cancel");
    py::Ref r = py::Ref::steal(s_cancel ? PyObject_CallMethodNoArgs(t, s_cancel) : nullptr);
    if (!r) PyErr_Clear();
    Py_DECREF(t);
}

void unbridge(ServerObject* o) {
    cancel_timer(o);
    if (o->handler) o->handler->set_waker(nullptr, nullptr);
    Py_CLEAR(o->call_soon);
    Py_CLEAR(o->call_later);
    Py_CLEAR(o->tick_cb);
    Py_CLEAR(o->timer_cb);
    Py_CLEAR(o->on_done);
    o->wake_pending = false;
}

void destroy(ServerObject* o) {
    unbridge(o);
    if (!o->loop) return;
    // Close what is still open, let the close callbacks run, then free the loop.
    if (!o->server->done()) o->server->stop();
    for (int i = 0; i < 100 && !o->server->done(); ++i) uv_run(o->loop, UV_RUN_NOWAIT);
    uv_run(o->loop, UV_RUN_NOWAIT);
    delete o->server;
    delete o->handler;
    uv_walk(o->loop, [](uv_handle_t* h, void*) { if (!uv_is_closing(h)) uv_close(h, nullptr); }, nullptr);
    uv_run(o->loop, UV_RUN_DEFAULT);
    uv_loop_close(o->loop);
    delete o->loop;
    o->loop = nullptr;
    o->server = nullptr;
    o->handler = nullptr;
}

int server_init(PyObject* self, PyObject* args, PyObject* kwargs) {
    auto* o = reinterpret_cast<ServerObject*>(self);
    static const char* kwlist[] = {"app", "fds", "config", "base_scope", "spawn", "create_future", "wake",
                                   "log_error", "eager", nullptr};
    PyObject *app, *fds, *cfg, *base, *spawn, *create_future, *wake, *log_error, *eager = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOO!O!OOOO|O:AsgiServer", const_cast<char**>(kwlist), &app,
                                     &fds, &PyDict_Type, &cfg, &PyDict_Type, &base, &spawn, &create_future, &wake,
                                     &log_error, &eager))
        return -1;
    if (o->loop) {
        PyErr_SetString(PyExc_RuntimeError, "AsgiServer is already initialised");
        return -1;
    }
    net::Config config;
    if (!py::read_engine_config(cfg, config)) return -1;
    if (config.limits.max_headers > http::kMaxHeadersCap) config.limits.max_headers = http::kMaxHeadersCap;
    Options opts;
    opts.app = py::Ref::borrow(app);
    opts.base_scope = py::Ref::borrow(base);
    opts.spawn = py::Ref::borrow(spawn);
    opts.create_future = py::Ref::borrow(create_future);
    opts.wake = py::Ref::borrow(wake);
    opts.log_error = py::Ref::borrow(log_error == Py_None ? nullptr : log_error);
    if (eager != Py_None) {
        // (loop, asyncio.tasks._enter_task, asyncio.tasks._leave_task, new_task): see Handler::run_eager.
        PyObject *loop, *enter, *leave, *new_task;
        if (!PyArg_ParseTuple(eager, "OOOO:eager", &loop, &enter, &leave, &new_task)) return -1;
        opts.loop = py::Ref::borrow(loop);
        opts.enter_task = py::Ref::borrow(enter);
        opts.leave_task = py::Ref::borrow(leave);
        opts.new_task = py::Ref::borrow(new_task);
    }
    if (PyObject* al = PyDict_GetItemString(cfg, "access_log"); al && al != Py_None)
        opts.access_log = py::Ref::borrow(al);
    py::Ref seq = py::Ref::steal(PySequence_Fast(fds, "fds must be a sequence of file descriptors"));
    if (!seq) return -1;

    auto loop = std::make_unique<uv_loop_t>();
    if (int r = uv_loop_init(loop.get()); r < 0) {
        PyErr_Format(PyExc_OSError, "uv_loop_init: %s", uv_strerror(r));
        return -1;
    }
    o->loop = loop.release();
    o->handler = new Handler(std::move(opts));
    o->server = new net::Server(o->loop, config, *o->handler);
    o->handler->set_server(o->server);
    if (!o->server->tls_error().empty()) {
        PyErr_SetString(PyExc_RuntimeError, o->server->tls_error().c_str());
        return -1;
    }
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq.get()); ++i) {
        long fd = PyLong_AsLong(PySequence_Fast_GET_ITEM(seq.get(), i));
        if (fd == -1 && PyErr_Occurred()) return -1;
        if (int r = o->server->add_listener(static_cast<int>(fd)); r < 0) {
            PyErr_Format(PyExc_OSError, "cannot watch socket %ld: %s", fd, uv_strerror(r));
            return -1;
        }
    }
    o->server->start(false);  // asyncio owns the signals
    return 0;
}

PyObject* need_loop() {
    PyErr_SetString(PyExc_RuntimeError, "the server is closed");
    return nullptr;
}

PyObject* server_backend_fd(PyObject* self, PyObject*) {
    auto* o = reinterpret_cast<ServerObject*>(self);
    if (!o->loop) return need_loop();
    return PyLong_FromLong(o->server->backend_fd());
}

// Runs what is ready without waiting; returns milliseconds until libuv next needs to run (-1: only
// when the backend fd becomes readable).
PyObject* server_run(PyObject* self, PyObject*) {
    auto* o = reinterpret_cast<ServerObject*>(self);
    if (!o->loop) return need_loop();
    o->handler->begin_run();
    o->server->run_pending();
    o->handler->end_run();
    if (PyErr_Occurred()) return nullptr;
    // A handle changed after libuv's last pass (an app started late): run again soon.
    return PyLong_FromLong(o->server->dirty() ? 0 : o->server->backend_timeout());
}

// Schedules a tick on the asyncio loop (once until it runs).
void wake(ServerObject* o) {
    if (o->wake_pending || !o->call_soon || !o->tick_cb) return;
    o->wake_pending = true;
    py::Ref r = py::Ref::steal(PyObject_CallOneArg(o->call_soon, o->tick_cb));
    if (!r) {
        o->wake_pending = false;
        PyErr_Clear();
    }
}

void wake_cb(void* arg) { wake(static_cast<ServerObject*>(arg)); }

PyObject* server_wake(PyObject* self, PyObject*) {
    wake(reinterpret_cast<ServerObject*>(self));
    Py_RETURN_NONE;
}

// Runs libuv (the backend fd is readable, a timer is due, or Python changed something), then mirrors
// libuv's next timer with one asyncio timer: the armed one is kept unless this one is due earlier (a
// timer that fires early only runs libuv once more), so a tick costs no timer.
PyObject* server_tick(PyObject* self, PyObject*) {
    auto* o = reinterpret_cast<ServerObject*>(self);
    o->wake_pending = false;
    if (!o->loop) Py_RETURN_NONE;
    o->handler->begin_run();
    o->server->run_pending();
    o->handler->end_run();
    if (PyErr_Occurred()) return nullptr;
    int timeout = o->server->dirty() ? 0 : o->server->backend_timeout();
    if (timeout == 0) {
        wake(o);
    } else if (timeout > 0 && o->call_later && o->timer_cb) {
        double delay = timeout / 1000.0;
        double when = static_cast<double>(uv_hrtime()) / 1e9 + delay;
        if (!o->timer || when < o->timer_when - 0.002) {
            cancel_timer(o);
            py::Ref d = py::Ref::steal(PyFloat_FromDouble(delay));
            if (!d) return nullptr;
            PyObject* args[2] = {d.get(), o->timer_cb};
            o->timer = PyObject_Vectorcall(o->call_later, args, 2, nullptr);
            if (!o->timer) return nullptr;
            o->timer_when = when;
        }
    }
    if (o->server->done() && o->on_done) {
        py::Ref r = py::Ref::steal(PyObject_CallNoArgs(o->on_done));
        if (!r) return nullptr;
    }
    Py_RETURN_NONE;
}

PyObject* server_on_timer(PyObject* self, PyObject*) {
    auto* o = reinterpret_cast<ServerObject*>(self);
    Py_CLEAR(o->timer);
    return server_tick(self, nullptr);
}

PyObject* server_bridge(PyObject* self, PyObject* const* args, Py_ssize_t nargs) {
    auto* o = reinterpret_cast<ServerObject*>(self);
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "bridge(loop, on_done)");
        return nullptr;
    }
    if (!o->loop) return need_loop();
    unbridge(o);
    o->call_soon = PyObject_GetAttrString(args[0], "call_soon");
    o->call_later = o->call_soon ? PyObject_GetAttrString(args[0], "call_later") : nullptr;
    o->tick_cb = o->call_later ? PyObject_GetAttrString(self, "tick") : nullptr;
    o->timer_cb = o->tick_cb ? PyObject_GetAttrString(self, "_on_timer") : nullptr;
    if (!o->timer_cb) {
        unbridge(o);
        return nullptr;
    }
    if (args[1] != Py_None) o->on_done = Py_NewRef(args[1]);
    o->handler->set_waker(wake_cb, o);
    Py_RETURN_NONE;
}

PyObject* server_unbridge(PyObject* self, PyObject*) {
    unbridge(reinterpret_cast<ServerObject*>(self));
    Py_RETURN_NONE;
}

PyObject* server_stop(PyObject* self, PyObject*) {
    auto* o = reinterpret_cast<ServerObject*>(self);
    if (!o->loop) return need_loop();
    o->server->stop();
    Py_RETURN_NONE;
}

PyObject* server_cancel_spare(PyObject* self, PyObject*) {
    auto* o = reinterpret_cast<ServerObject*>(self);
    if (o->loop) o->handler->cancel_spare();
    Py_RETURN_NONE;
}

PyObject* server_close(PyObject* self, PyObject*) {
    destroy(reinterpret_cast<ServerObject*>(self));
    Py_RETURN_NONE;
}

PyObject* server_set_state(PyObject* self, PyObject* state) {
    auto* o = reinterpret_cast<ServerObject*>(self);
    if (!o->loop) return need_loop();
    if (state != Py_None && !PyDict_Check(state)) {
        PyErr_SetString(PyExc_TypeError, "state must be a dict or None");
        return nullptr;
    }
    o->handler->set_state(state == Py_None ? nullptr : state);
    Py_RETURN_NONE;
}

PyObject* server_done(PyObject* self, void*) {
    auto* o = reinterpret_cast<ServerObject*>(self);
    return PyBool_FromLong(!o->loop || o->server->done());
}

PyObject* server_connections(PyObject* self, void*) {
    auto* o = reinterpret_cast<ServerObject*>(self);
    return PyLong_FromSize_t(o->loop ? o->server->connection_count() : 0);
}

void server_dealloc(PyObject* self) {
    PyTypeObject* tp = Py_TYPE(self);
    destroy(reinterpret_cast<ServerObject*>(self));
    tp->tp_free(self);
    Py_DECREF(tp);
}

PyObject* server_new(PyTypeObject* type, PyObject*, PyObject*) {
    PyObject* self = type->tp_alloc(type, 0);
    if (self) {
        auto* o = reinterpret_cast<ServerObject*>(self);
        o->loop = nullptr;
        o->handler = nullptr;
        o->server = nullptr;
        o->call_soon = o->call_later = o->tick_cb = o->timer_cb = o->on_done = o->timer = nullptr;
        o->timer_when = 0;
        o->wake_pending = false;
    }
    return self;
}

PyMethodDef server_methods[] = {
    {"backend_fd", server_backend_fd, METH_NOARGS, "libuv's backend file descriptor (readable: call run())"},
    {"run", server_run, METH_NOARGS, "run what is ready; returns ms until the next call is due, or -1"},
    {"stop", server_stop, METH_NOARGS, "stop accepting; close idle connections; finish the others"},
    {"close", server_close, METH_NOARGS, "free the loop (after done)"},
    {"cancel_spare", server_cancel_spare, METH_NOARGS, "cancel the spare Task kept for requests that wait"},
    {"bridge", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(server_bridge)), METH_FASTCALL,
     "bridge(loop, on_done): tick/wake schedule themselves on loop; on_done() once drained"},
    {"unbridge", server_unbridge, METH_NOARGS, "drop the bridge (cancels the timer)"},
    {"tick", server_tick, METH_NOARGS, "run libuv now and mirror its next timer (the backend fd's reader)"},
    {"_on_timer", server_on_timer, METH_NOARGS, "the mirrored timer fired"},
    {"wake", server_wake, METH_NOARGS, "run libuv soon (from a loop callback)"},
    {"set_state", server_set_state, METH_O, "the lifespan state copied into each request's scope"},
    {nullptr, nullptr, 0, nullptr},
};

PyGetSetDef server_getset[] = {
    {"done", server_done, nullptr, "stopped and every connection closed", nullptr},
    {"connections", server_connections, nullptr, "open connections", nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr},
};

PyType_Slot server_slots[] = {
    {Py_tp_new, reinterpret_cast<void*>(server_new)},
    {Py_tp_init, reinterpret_cast<void*>(server_init)},
    {Py_tp_dealloc, reinterpret_cast<void*>(server_dealloc)},
    {Py_tp_methods, server_methods},
    {Py_tp_getset, server_getset},
    {Py_tp_doc, const_cast<char*>("An ASGI worker's HTTP server, driven by an asyncio loop")},
    {0, nullptr},
};
PyType_Spec server_spec = {"luath._core.AsgiServer", sizeof(ServerObject), 0, Py_TPFLAGS_DEFAULT, server_slots};

}  // namespace

bool init_server_type(PyObject* module) {
    PyObject* tp = PyType_FromSpec(&server_spec);
    return tp && PyModule_AddObject(module, "AsgiServer", tp) == 0;
}

}  // namespace luath::asgi
