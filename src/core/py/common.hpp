// CPython helpers shared by the WSGI and ASGI layers.
#pragma once

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <sys/socket.h>

#include "http/parser.hpp"

namespace luath::py {

// The request method as a str: an interned one for the common methods (new reference).
PyObject* method_str(const http::Request& req);
// Sets d[key] = value and drops the reference to value; false (error set) if value is null or it fails.
bool set_steal(PyObject* d, PyObject* key, PyObject* value);
// The peer's address text and port; false for a peer that has none (a unix socket).
bool peer_address(const sockaddr_storage& ss, char (&host)[64], unsigned& port);
// Logs the Python error set now through log_error(exc, message) (when given) and clears it.
void log_current(PyObject* log_error, const char* message);

}  // namespace luath::py
