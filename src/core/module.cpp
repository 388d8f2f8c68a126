// luath._core: module initialisation and the entry point that runs one worker's loop.
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <uv.h>

#include <memory>

#include "net/server.hpp"
#include "py/ref.hpp"
#include "py/strings.hpp"
#include "asgi/handler.hpp"
#include "wsgi/handler.hpp"

namespace luath::asgi {
bool init_server_type(PyObject* module);
}

namespace {

using luath::py::Ref;

bool get_u64(PyObject* cfg, const char* key, std::uint64_t& out) {
    PyObject* v = PyDict_GetItemString(cfg, key);  // borrowed
    if (!v || v == Py_None) return true;
    unsigned long long n = PyLong_AsUnsignedLongLong(v);
    if (n == static_cast<unsigned long long>(-1) && PyErr_Occurred()) return false;
    out = n;
    return true;
}

template <class T>
bool get_uint(PyObject* cfg, const char* key, T& out) {
    std::uint64_t n = out;
    if (!get_u64(cfg, key, n)) return false;
    out = static_cast<T>(n);
    return true;
}

// Seconds (float) to milliseconds.
bool get_ms(PyObject* cfg, const char* key, std::uint32_t& out) {
    PyObject* v = PyDict_GetItemString(cfg, key);  // borrowed
    if (!v || v == Py_None) return true;
    double s = PyFloat_AsDouble(v);
    if (s == -1.0 && PyErr_Occurred()) return false;
    out = s <= 0 ? 0 : static_cast<std::uint32_t>(s * 1000.0);
    return true;
}

bool get_str(PyObject* cfg, const char* key, std::string& out) {
    PyObject* v = PyDict_GetItemString(cfg, key);  // borrowed
    if (!v || v == Py_None) return true;
    if (PyBytes_Check(v)) {
        out.assign(PyBytes_AS_STRING(v), static_cast<std::size_t>(PyBytes_GET_SIZE(v)));
        return true;
    }
    Py_ssize_t n = 0;
    const char* s = PyUnicode_AsUTF8AndSize(v, &n);
    if (!s) return false;
    out.assign(s, static_cast<std::size_t>(n));
    return true;
}

bool read_tls(PyObject* cfg, luath::net::Config& c) {
    auto& t = c.tls_config;
    if (!get_str(cfg, "ssl_certfile", t.certfile) || !get_str(cfg, "ssl_keyfile", t.keyfile) ||
        !get_str(cfg, "ssl_keyfile_password", t.password) || !get_str(cfg, "ssl_ca_certs", t.ca_certs) ||
        !get_str(cfg, "ssl_ciphers", t.ciphers) || !get_str(cfg, "ssl_ticket_keys", t.ticket_keys) ||
        !get_uint(cfg, "ssl_cert_reqs", t.cert_reqs) ||
        !get_ms(cfg, "timeout_tls_handshake", c.tls_handshake_timeout_ms))
        return false;
    std::string minv;
    if (!get_str(cfg, "ssl_min_version", minv)) return false;
    t.min_version = minv == "1.3" ? 0x0304 : 0x0303;
    c.tls = !t.certfile.empty();
    return true;
}

bool get_bool(PyObject* cfg, const char* key, bool& out) {
    PyObject* v = PyDict_GetItemString(cfg, key);  // borrowed
    if (!v || v == Py_None) return true;
    int r = PyObject_IsTrue(v);
    if (r < 0) return false;
    out = r == 1;
    return true;
}

bool read_ws(PyObject* cfg, luath::net::Config& c) {
    std::string mode;
    if (!get_str(cfg, "ws", mode)) return false;
    if (!mode.empty()) c.ws_enabled = mode != "none";
    return get_u64(cfg, "ws_max_size", c.ws_max_size) && get_ms(cfg, "ws_ping_interval", c.ws_ping_interval_ms) &&
           get_ms(cfg, "ws_ping_timeout", c.ws_ping_timeout_ms) &&
           get_bool(cfg, "ws_per_message_deflate", c.ws_deflate);
}

bool read_config(PyObject* cfg, luath::net::Config& c) {
    auto& l = c.limits;
    return get_uint(cfg, "max_request_line", l.max_request_line) &&
           get_uint(cfg, "max_field_size", l.max_field_size) && get_uint(cfg, "max_head_size", l.max_head_size) &&
           get_uint(cfg, "max_headers", l.max_headers) && get_u64(cfg, "max_body_size", l.max_body_size) &&
           get_ms(cfg, "timeout_keep_alive", c.keepalive_timeout_ms) &&
           get_ms(cfg, "timeout_request_head", c.head_timeout_ms) &&
           get_ms(cfg, "timeout_request_body", c.body_timeout_ms) &&
           get_ms(cfg, "timeout_write", c.write_timeout_ms) &&
           get_ms(cfg, "timeout_graceful_shutdown", c.graceful_timeout_ms) &&
           get_uint(cfg, "write_buffer_high", c.write_high_water) &&
           get_uint(cfg, "write_buffer_low", c.write_low_water) &&
           get_uint(cfg, "limit_concurrency", c.max_connections) &&
           get_u64(cfg, "max_requests", c.max_requests) &&
           get_uint(cfg, "proxy_protocol", c.proxy_protocol) && read_tls(cfg, c) && read_ws(cfg, c);
}

}  // namespace

namespace luath::py {
// The engine settings from the dict Config.engine_options() builds (shared with the ASGI server).
bool read_engine_config(PyObject* cfg, net::Config& c) { return read_config(cfg, c); }
}  // namespace luath::py

namespace {

PyDoc_STRVAR(serve_wsgi_doc,
             "serve_wsgi(app, fds, config, base_environ, file_wrapper, log_error, handle_signals=True)\n"
             "--\n\n"
             "Serve a WSGI application on already listening sockets until SIGINT/SIGTERM.");

PyObject* serve_wsgi(PyObject*, PyObject* args, PyObject* kwargs) {
    static const char* kwlist[] = {"app",          "fds",       "config", "base_environ",
                                   "file_wrapper", "log_error", "handle_signals", nullptr};
    PyObject *app, *fds, *cfg, *base, *file_wrapper, *log_error;
    int handle_signals = 1;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOO!O!OO|p:serve_wsgi", const_cast<char**>(kwlist), &app,
                                     &fds, &PyDict_Type, &cfg, &PyDict_Type, &base, &file_wrapper, &log_error,
                                     &handle_signals))
        return nullptr;
    luath::net::Config config;
    if (!read_config(cfg, config)) return nullptr;
    if (config.limits.max_headers > luath::http::kMaxHeadersCap)
        config.limits.max_headers = luath::http::kMaxHeadersCap;

    luath::wsgi::Options opts;
    opts.app = Ref::borrow(app);
    opts.file_wrapper = Ref::borrow(file_wrapper == Py_None ? nullptr : file_wrapper);
    opts.log_error = Ref::borrow(log_error == Py_None ? nullptr : log_error);
    opts.base_environ = Ref::borrow(base);
    if (PyObject* al = PyDict_GetItemString(cfg, "access_log"); al && al != Py_None) opts.access_log = Ref::borrow(al);
    if (PyObject* sn = PyDict_GetItemString(base, "SCRIPT_NAME"); sn && PyUnicode_Check(sn)) {
        Py_ssize_t n = 0;
        const char* s = PyUnicode_AsUTF8AndSize(sn, &n);
        if (!s) return nullptr;
        opts.script_name.assign(s, static_cast<std::size_t>(n));
    }

    Ref seq = Ref::steal(PySequence_Fast(fds, "fds must be a sequence of file descriptors"));
    if (!seq) return nullptr;

    uv_loop_t loop;
    if (int r = uv_loop_init(&loop); r < 0) {
        PyErr_Format(PyExc_OSError, "uv_loop_init: %s", uv_strerror(r));
        return nullptr;
    }
    int rc = 0;
    {
        luath::wsgi::Handler handler(std::move(opts));
        luath::net::Server server(&loop, config, handler);
        if (!server.tls_error().empty()) {
            PyErr_SetString(PyExc_RuntimeError, server.tls_error().c_str());
            return nullptr;
        }
        for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq.get()); ++i) {
            long fd = PyLong_AsLong(PySequence_Fast_GET_ITEM(seq.get(), i));
            if (fd == -1 && PyErr_Occurred()) return nullptr;
            if (int r = server.add_listener(static_cast<int>(fd)); r < 0) {
                PyErr_Format(PyExc_OSError, "cannot watch socket %ld: %s", fd, uv_strerror(r));
                return nullptr;
            }
        }
        unsigned threads = 1;
        if (!get_uint(cfg, "threads", threads) || !handler.start_pool(&loop, threads)) return nullptr;
        handler.set_gil_held();
        rc = server.run(handle_signals != 0);
        handler.ensure_gil();
        handler.stop_pool();  // every connection is closed: no thread is busy
        // Let every handle's close callback run before the loop goes away.
        uv_run(&loop, UV_RUN_DEFAULT);
        handler.ensure_gil();
    }
    uv_loop_close(&loop);
    if (rc < 0) {
        PyErr_Format(PyExc_OSError, "event loop failed: %s", uv_strerror(rc));
        return nullptr;
    }
    Py_RETURN_NONE;
}

PyMethodDef methods[] = {
    {"serve_wsgi", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(serve_wsgi)),
     METH_VARARGS | METH_KEYWORDS, serve_wsgi_doc},
    {nullptr, nullptr, 0, nullptr},
};

PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "luath._core", "luath's C++ engine: HTTP/1.1 on libuv.", -1, methods,
    nullptr, nullptr, nullptr, nullptr,
};

}  // namespace

PyMODINIT_FUNC PyInit__core() {
    if (!luath::py::init_strings()) return nullptr;
    PyObject* m = PyModule_Create(&module_def);
    if (!m) return nullptr;
#ifdef LUATH_HAVE_TLS
    const bool has_tls = true;
#else
    const bool has_tls = false;
#endif
    if (PyModule_AddObject(m, "HAS_TLS", PyBool_FromLong(has_tls)) < 0 || !luath::wsgi::init_types(m) ||
        !luath::asgi::init_types(m) || !luath::asgi::init_server_type(m) || PyModule_AddStringConstant(m, "libuv_version", uv_version_string()) < 0) {
        Py_DECREF(m);
        return nullptr;
    }
    return m;
}
