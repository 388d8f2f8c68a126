// Strings interned once at module load and kept for the life of the process.
#pragma once

#define PY_SSIZE_T_CLEAN
#include <Python.h>

namespace luath::py {

struct Strings {
#define LUATH_STRINGS(X)                                          \
    X(REQUEST_METHOD) X(SCRIPT_NAME) X(PATH_INFO) X(QUERY_STRING) \
    X(CONTENT_TYPE) X(CONTENT_LENGTH) X(SERVER_NAME) X(SERVER_PORT) \
    X(SERVER_PROTOCOL) X(REMOTE_ADDR) X(REMOTE_PORT) X(RAW_URI)   \
    X(GET) X(POST) X(HEAD) X(PUT) X(DELETE) X(OPTIONS) X(PATCH)   \
    X(CONNECT) X(TRACE) X(close) X(fileno) X(filelike) X(blksize)
#define LUATH_DECLARE(name) PyObject* name = nullptr;
    LUATH_STRINGS(LUATH_DECLARE)
#undef LUATH_DECLARE
    PyObject* wsgi_version = nullptr;           // "wsgi.version"
    PyObject* wsgi_url_scheme = nullptr;
    PyObject* wsgi_input = nullptr;
    PyObject* wsgi_errors = nullptr;
    PyObject* wsgi_multithread = nullptr;
    PyObject* wsgi_multiprocess = nullptr;
    PyObject* wsgi_run_once = nullptr;
    PyObject* wsgi_input_terminated = nullptr;
    PyObject* wsgi_file_wrapper = nullptr;
    PyObject* http10 = nullptr;                 // "HTTP/1.0"
    PyObject* http11 = nullptr;                 // "HTTP/1.1"
    PyObject* empty = nullptr;                  // ""
};

// Filled by init_strings(); null before. Entries are immortal for the process (never released).
extern Strings S;
bool init_strings();

}  // namespace luath::py
