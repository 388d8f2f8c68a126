#include "py/common.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include "py/ref.hpp"
#include "py/strings.hpp"

namespace luath::py {

PyObject* method_str(const http::Request& req) {
    PyObject* s = nullptr;
    switch (req.method_id) {
        case http::Method::Get: s = S.GET; break;
        case http::Method::Post: s = S.POST; break;
        case http::Method::Head: s = S.HEAD; break;
        case http::Method::Put: s = S.PUT; break;
        case http::Method::Delete: s = S.DELETE; break;
        case http::Method::Options: s = S.OPTIONS; break;
        case http::Method::Patch: s = S.PATCH; break;
        case http::Method::Connect: s = S.CONNECT; break;
        case http::Method::Trace: s = S.TRACE; break;
        case http::Method::Other: break;
    }
    if (s) {
        Py_INCREF(s);
        return s;
    }
    return PyUnicode_DecodeLatin1(req.method.data(), static_cast<Py_ssize_t>(req.method.size()), nullptr);
}

bool set_steal(PyObject* d, PyObject* key, PyObject* value) {
    if (!value) return false;
    int r = PyDict_SetItem(d, key, value);
    Py_DECREF(value);
    return r == 0;
}

bool peer_address(const sockaddr_storage& ss, char (&host)[64], unsigned& port) {
    host[0] = '\0';
    port = 0;
    if (ss.ss_family == AF_INET) {
        auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
        port = ntohs(a->sin_port);
        return true;
    }
    if (ss.ss_family == AF_INET6) {
        auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
        port = ntohs(a->sin6_port);
        return true;
    }
    return false;
}

void log_current(PyObject* log_error, const char* message) {
    PyObject* type = nullptr;
    PyObject* value = nullptr;
    PyObject* tb = nullptr;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (tb && value) PyException_SetTraceback(value, tb);
    Ref exc = Ref::steal(value);
    Py_XDECREF(type);
    Py_XDECREF(tb);
    if (!exc || !log_error) return;
    Ref msg = Ref::steal(PyUnicode_FromString(message));
    PyObject* args[2] = {exc.get(), msg.get()};
    Ref r = Ref::steal(PyObject_Vectorcall(log_error, args, 2, nullptr));
    if (!r) PyErr_Clear();
}

}  // namespace luath::py
