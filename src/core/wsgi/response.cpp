// A WSGI response's status, headers and body pieces, handed to the shared ResponseWriter.
#include "wsgi/handler.hpp"

namespace luath::wsgi {

namespace {

// A str whose characters are all latin-1 is stored one byte per character: view those bytes.
bool latin1_view(PyObject* s, std::string_view& out) {
    if (!PyUnicode_Check(s) || PyUnicode_KIND(s) != PyUnicode_1BYTE_KIND) return false;
    out = {reinterpret_cast<const char*>(PyUnicode_1BYTE_DATA(s)),
           static_cast<std::size_t>(PyUnicode_GET_LENGTH(s))};
    return true;
}

}  // namespace

// Queues the status line and headers. length_hint >= 0 is the body's total length when known (a list).
// On invalid status or headers nothing is queued and an exception is set.
bool Handler::send_headers(Exchange& ex, std::int64_t length_hint) {
    net::ResponseWriter& w = ex.w;
    std::string_view status;
    if (!latin1_view(ex.status.get(), status) || !w.begin(status)) {
        PyErr_SetString(PyExc_ValueError, "invalid response status from the application");
        return false;
    }
    PyObject* list = ex.headers.get();
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(list); ++i) {
        PyObject* item = PyList_GET_ITEM(list, i);
        std::string_view name, value;
        if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2) {
            w.cancel_headers();
            PyErr_SetString(PyExc_TypeError, "each response header must be a (name, value) tuple");
            return false;
        }
        if (!latin1_view(PyTuple_GET_ITEM(item, 0), name) || !latin1_view(PyTuple_GET_ITEM(item, 1), value) ||
            !w.header(name, value)) {
            w.cancel_headers();
            PyErr_Format(PyExc_ValueError, "%s from the application", w.error() ? w.error() : "invalid header");
            return false;
        }
    }
    return w.end_headers(length_hint);
}

bool Handler::send_body(Exchange& ex, PyObject* data) {
    if (!PyBytes_Check(data)) {
        PyErr_Format(PyExc_TypeError, "the response body must yield bytes, not %.100s",
                     Py_TYPE(data)->tp_name);
        return false;
    }
    std::size_t len = static_cast<std::size_t>(PyBytes_GET_SIZE(data));
    void* owner = nullptr;
    if (len >= net::ResponseWriter::kCopyBelow) {
        Py_INCREF(data);  // released by Handler::release once written
        owner = data;
    }
    ex.w.body(PyBytes_AS_STRING(data), len, owner);
    return true;
}

}  // namespace luath::wsgi
