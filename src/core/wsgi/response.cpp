// Status line, headers and body framing of a WSGI response, validated before any byte is queued.
#include <cstring>

#include "http/response.hpp"
#include "wsgi/handler.hpp"

namespace luath::wsgi {

namespace {

constexpr std::size_t kCopyBelow = 4096;  // smaller bodies are copied next to the headers

// A str whose characters are all latin-1 is stored one byte per character: view those bytes.
bool latin1_view(PyObject* s, std::string_view& out) {
    if (!PyUnicode_Check(s) || PyUnicode_KIND(s) != PyUnicode_1BYTE_KIND) return false;
    out = {reinterpret_cast<const char*>(PyUnicode_1BYTE_DATA(s)),
           static_cast<std::size_t>(PyUnicode_GET_LENGTH(s))};
    return true;
}

bool parse_length(std::string_view v, std::int64_t& out) {
    if (v.empty() || v.size() > 18) return false;
    std::int64_t n = 0;
    for (char ch : v) {
        if (ch < '0' || ch > '9') return false;
        n = n * 10 + (ch - '0');
    }
    out = n;
    return true;
}

PyObject* bad_header(const char* what) {
    PyErr_Format(PyExc_ValueError, "invalid response %s from the application", what);
    return nullptr;
}

enum class Special : std::uint8_t { None, ContentLength, Connection, Skip, Date };

Special classify(std::string_view name) {
    switch (name.size()) {
        case 4: return http::iequals(name, "date") ? Special::Date : Special::None;
        case 10:
            if (http::iequals(name, "connection")) return Special::Connection;
            if (http::iequals(name, "keep-alive")) return Special::Skip;
            return Special::None;
        case 14: return http::iequals(name, "content-length") ? Special::ContentLength : Special::None;
        case 17: return http::iequals(name, "transfer-encoding") ? Special::Skip : Special::None;
        default: return Special::None;
    }
}

bool has_close_token(std::string_view v) {
    std::size_t i = 0;
    while (i < v.size()) {
        while (i < v.size() && (v[i] == ' ' || v[i] == '\t' || v[i] == ',')) ++i;
        std::size_t j = i;
        while (j < v.size() && v[j] != ',' && v[j] != ' ' && v[j] != '\t') ++j;
        if (http::iequals(v.substr(i, j - i), "close")) return true;
        i = j;
    }
    return false;
}

}  // namespace

// Queues the status line and headers. length_hint >= 0 is the body's total length when known (a list).
// On invalid status or headers nothing is queued and a ValueError is set.
bool Handler::send_headers(Exchange& ex, std::int64_t length_hint) {
    net::Connection& c = *ex.conn;
    std::string_view status;
    if (!latin1_view(ex.status.get(), status) || !http::is_valid_status(status)) {
        bad_header("status");
        return false;
    }
    int code = (status[0] - '0') * 100 + (status[1] - '0') * 10 + (status[2] - '0');
    PyObject* list = ex.headers.get();
    Py_ssize_t n = PyList_GET_SIZE(list);
    bool app_close = false, has_date = false;
    std::int64_t declared = -1;
    // Pass 1: validate everything, so that a bad header leaves nothing half-queued.
    for (Py_ssize_t i = 0; i < n; ++i) {
        PyObject* item = PyList_GET_ITEM(list, i);
        if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2) {
            PyErr_SetString(PyExc_TypeError, "each response header must be a (name, value) tuple");
            return false;
        }
        std::string_view name, value;
        if (!latin1_view(PyTuple_GET_ITEM(item, 0), name) || !http::is_token(name)) {
            bad_header("header name");
            return false;
        }
        if (!latin1_view(PyTuple_GET_ITEM(item, 1), value) || !http::is_safe_field_value(value)) {
            bad_header("header value");
            return false;
        }
        switch (classify(name)) {
            case Special::ContentLength:
                if (!parse_length(value, declared)) {
                    bad_header("Content-Length");
                    return false;
                }
                break;
            case Special::Connection: app_close = app_close || has_close_token(value); break;
            case Special::Date: has_date = true; break;
            default: break;
        }
    }
    ex.status_code = code;
    ex.no_body = ex.head || code < 200 || code == 204 || code == 304;
    const bool body_forbidden = code < 200 || code == 204 || code == 304;
    bool keep = !app_close && c.can_keep_alive();
    if (body_forbidden) declared = -1;
    ex.content_length = declared;
    net::OutQueue& out = c.out();
    out.append("HTTP/1.1 ", 9);
    out.append(status);
    out.append("\r\n", 2);
    for (Py_ssize_t i = 0; i < n; ++i) {
        PyObject* item = PyList_GET_ITEM(list, i);
        std::string_view name, value;
        latin1_view(PyTuple_GET_ITEM(item, 0), name);
        latin1_view(PyTuple_GET_ITEM(item, 1), value);
        Special sp = classify(name);
        if (sp == Special::Skip || sp == Special::Connection) continue;
        if (sp == Special::ContentLength && body_forbidden && code != 304) continue;
        char* p = out.reserve(name.size() + value.size() + 4);
        std::memcpy(p, name.data(), name.size());
        p += name.size();
        *p++ = ':';
        *p++ = ' ';
        std::memcpy(p, value.data(), value.size());
        p += value.size();
        *p++ = '\r';
        *p++ = '\n';
        out.commit(name.size() + value.size() + 4);
    }
    if (!body_forbidden && declared < 0) {
        if (length_hint >= 0) {
            char num[24];
            std::size_t len = http::format_decimal(num, static_cast<std::uint64_t>(length_hint));
            out.append("Content-Length: ", 16);
            out.append(num, len);
            out.append("\r\n", 2);
            ex.content_length = length_hint;
        } else if (!ex.http10) {
            out.append("Transfer-Encoding: chunked\r\n", 28);
            ex.chunked = true;
        } else {
            keep = false;  // HTTP/1.0 without a length: the end of the body is the close
        }
    }
    if (!keep) {
        c.set_keep_alive(false);
        out.append("Connection: close\r\n", 19);
    } else if (ex.http10) {
        out.append("Connection: keep-alive\r\n", 24);
    }
    if (!has_date) out.append(c.server().date_line());
    out.append("\r\n", 2);
    ex.headers_sent = true;
    return true;
}

bool Handler::send_body(Exchange& ex, PyObject* data) {
    if (!PyBytes_Check(data)) {
        PyErr_Format(PyExc_TypeError, "the response body must yield bytes, not %.100s",
                     Py_TYPE(data)->tp_name);
        return false;
    }
    std::size_t len = static_cast<std::size_t>(PyBytes_GET_SIZE(data));
    if (len == 0 || ex.no_body) return true;
    if (ex.content_length >= 0) {
        std::uint64_t room = static_cast<std::uint64_t>(ex.content_length) - ex.sent;
        if (len > room) {  // more than the declared length: drop the excess and close afterwards
            len = static_cast<std::size_t>(room);
            if (!ex.overflowed) {
                ex.overflowed = true;
                ex.conn->set_keep_alive(false);
            }
            if (len == 0) return true;
        }
    }
    net::OutQueue& out = ex.conn->out();
    if (ex.chunked) {
        char size[24];
        out.append(size, http::format_chunk_size(size, len));
    }
    if (len < kCopyBelow) {
        out.append(PyBytes_AS_STRING(data), len);
    } else {
        Py_INCREF(data);  // released by Handler::release once written
        out.append_ref(PyBytes_AS_STRING(data), len, data);
    }
    if (ex.chunked) out.append("\r\n", 2);
    ex.sent += len;
    return true;
}

}  // namespace luath::wsgi
