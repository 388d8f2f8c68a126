// ASGI header lists ([bytes, bytes] pairs), read the same way by http.response.start, trailers and the
// WebSocket accept / denial messages.
#pragma once

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <string_view>

#include "py/ref.hpp"

namespace luath::asgi {

// The bytes of a bytes or bytearray object (borrowed view); false when o is neither.
inline bool bytes_view(PyObject* o, std::string_view& out) {
    if (PyBytes_Check(o)) {
        out = {PyBytes_AS_STRING(o), static_cast<std::size_t>(PyBytes_GET_SIZE(o))};
        return true;
    }
    if (PyByteArray_Check(o)) {
        out = {PyByteArray_AS_STRING(o), static_cast<std::size_t>(PyByteArray_GET_SIZE(o))};
        return true;
    }
    return false;
}

// Calls fn(name, value) for each pair of an iterable of [bytes, bytes] pairs. False, with an exception
// set, when an item is not such a pair (TypeError naming `what`), when fn returns false (fn sets the
// exception) or when iterating fails. A list or tuple is walked without an iterator (the usual shape).
template <class F>
bool each_header(PyObject* headers, const char* what, F&& fn) {
    auto one = [&](PyObject* item) {
        std::string_view name, value;
        if (!((PyTuple_Check(item) || PyList_Check(item)) && PySequence_Fast_GET_SIZE(item) == 2 &&
              bytes_view(PySequence_Fast_GET_ITEM(item, 0), name) &&
              bytes_view(PySequence_Fast_GET_ITEM(item, 1), value))) {
            PyErr_Format(PyExc_TypeError, "%s must be [bytes, bytes] pairs", what);
            return false;
        }
        return fn(name, value);
    };
    if (PyList_CheckExact(headers) || PyTuple_CheckExact(headers)) {
        Py_ssize_t n = PySequence_Fast_GET_SIZE(headers);
        for (Py_ssize_t i = 0; i < n; ++i)
            if (!one(PySequence_Fast_GET_ITEM(headers, i))) return false;  // borrowed item
        return true;
    }
    py::Ref it = py::Ref::steal(PyObject_GetIter(headers));
    if (!it) return false;
    while (PyObject* item = PyIter_Next(it.get())) {
        py::Ref hold = py::Ref::steal(item);
        if (!one(item)) return false;
    }
    return !PyErr_Occurred();
}

}  // namespace luath::asgi
