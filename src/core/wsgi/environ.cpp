// The WSGI environ: the constant part copied per request, then the request's own keys.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/un.h>

#include <cstdio>
#include <cstring>

#include "http/response.hpp"
#include "http/uri.hpp"
#include "py/common.hpp"
#include "py/strings.hpp"
#include "wsgi/handler.hpp"

namespace luath::wsgi {

using py::S;

namespace {

// PATH_INFO: the path percent-decoded, its bytes as latin-1 (PEP 3333).
PyObject* decode_path(std::string_view path, std::string& scratch) {
    std::string_view d = http::percent_decode(path, scratch);
    return PyUnicode_DecodeLatin1(d.data(), static_cast<Py_ssize_t>(d.size()), nullptr);
}

void peer_strings(const sockaddr_storage& ss, ConnData& cd) {
    char host[64];
    unsigned port;
    py::peer_address(ss, host, port);  // a unix socket peer: "" and "0"
    cd.remote_addr = py::Ref::steal(PyUnicode_FromString(host));
    char pbuf[8];
    std::snprintf(pbuf, sizeof pbuf, "%u", port);
    cd.remote_port = py::Ref::steal(PyUnicode_FromString(pbuf));
}

}  // namespace

// "HTTP_" + upper-cased name with '-' as '_', interned and cached for the first 256 names seen.
PyObject* Handler::header_key(std::string_view name) {
    char buf[5 + 256];
    const bool cacheable = name.size() <= 256;
    std::size_t h = 1469598103934665603ull;
    for (unsigned char ch : name) h = (h ^ (ch | 0x20)) * 1099511628211ull;
    if (cacheable) {
        std::size_t mask = keys_.size() - 1;
        for (std::size_t i = h & mask;; i = (i + 1) & mask) {
            KeySlot& slot = keys_[i];
            if (!slot.key) break;
            if (http::iequals(slot.name, name)) {
                Py_INCREF(slot.key);
                return slot.key;
            }
        }
    }
    PyObject* key;
    if (cacheable) {
        std::memcpy(buf, "HTTP_", 5);
        for (std::size_t i = 0; i < name.size(); ++i) {
            char ch = name[i];
            if (ch >= 'a' && ch <= 'z') ch = static_cast<char>(ch - 32);
            else if (ch == '-') ch = '_';
            buf[5 + i] = ch;
        }
        key = PyUnicode_DecodeLatin1(buf, static_cast<Py_ssize_t>(5 + name.size()), nullptr);
    } else {
        std::string s = "HTTP_";
        for (char ch : name) s.push_back(ch == '-' ? '_' : (ch >= 'a' && ch <= 'z' ? ch - 32 : ch));
        key = PyUnicode_DecodeLatin1(s.data(), static_cast<Py_ssize_t>(s.size()), nullptr);
    }
    if (!key) return nullptr;
    if (cacheable && nkeys_ < keys_.size() / 2) {
        PyUnicode_InternInPlace(&key);
        std::size_t mask = keys_.size() - 1;
        std::size_t i = h & mask;
        while (keys_[i].key) i = (i + 1) & mask;
        keys_[i].name.assign(name);
        keys_[i].key = key;  // the cache keeps this reference for the life of the process
        Py_INCREF(key);
        ++nkeys_;
    }
    return key;
}

PyObject* Handler::build_environ(net::Connection& c, ConnData& cd, const http::Request& req) {
    py::Ref env = py::Ref::steal(PyDict_Copy(opts_.base_environ.get()));
    if (!env) return nullptr;
    PyObject* e = env.get();
    if (!cd.remote_addr) peer_strings(c.peer(), cd);
    if (!cd.remote_addr || !cd.remote_port) return nullptr;

    if (!py::set_steal(e, S.REQUEST_METHOD, py::method_str(req))) return nullptr;
    std::string_view path = req.path;
    py::Ref path_info = py::Ref::steal(decode_path(path, scratch_));
    if (!path_info) return nullptr;
    if (!opts_.script_name.empty()) {
        // Strip the mount point when the path starts with it (as gunicorn does with SCRIPT_NAME).
        Py_ssize_t n = static_cast<Py_ssize_t>(opts_.script_name.size());
        py::Ref prefix = py::Ref::steal(PyUnicode_DecodeLatin1(opts_.script_name.data(), n, nullptr));
        if (!prefix) return nullptr;
        if (PyUnicode_Tailmatch(path_info.get(), prefix.get(), 0, n, -1) == 1) {
            path_info = py::Ref::steal(PyUnicode_Substring(path_info.get(), n, PY_SSIZE_T_MAX));
            if (!path_info) return nullptr;
        }
    }
    if (PyDict_SetItem(e, S.PATH_INFO, path_info.get()) < 0) return nullptr;
    if (req.query.empty()) {
        if (PyDict_SetItem(e, S.QUERY_STRING, S.empty) < 0) return nullptr;
    } else if (!py::set_steal(e, S.QUERY_STRING,
                          PyUnicode_DecodeLatin1(req.query.data(), static_cast<Py_ssize_t>(req.query.size()),
                                                 nullptr)))
        return nullptr;
    if (!py::set_steal(e, S.RAW_URI,
                   PyUnicode_DecodeLatin1(req.target.data(), static_cast<Py_ssize_t>(req.target.size()),
                                          nullptr)))
        return nullptr;
    if (PyDict_SetItem(e, S.SERVER_PROTOCOL, req.version_minor == 0 ? S.http10 : S.http11) < 0) return nullptr;
    if (PyDict_SetItem(e, S.REMOTE_ADDR, cd.remote_addr.get()) < 0) return nullptr;
    if (PyDict_SetItem(e, S.REMOTE_PORT, cd.remote_port.get()) < 0) return nullptr;

    for (std::uint32_t i = 0; i < req.num_headers; ++i) {
        const http::Header& hd = req.headers[i];
        PyObject* key;
        bool is_cookie = false;
        if (http::iequals(hd.name, "content-type")) {
            key = S.CONTENT_TYPE;
            Py_INCREF(key);
        } else if (http::iequals(hd.name, "content-length")) {
            if (PyDict_Contains(e, S.CONTENT_LENGTH) == 1) continue;  // repeats were checked equal
            key = S.CONTENT_LENGTH;
            Py_INCREF(key);
        } else {
            // A name with '_' would collide with the '-' form once mapped (X_Forwarded_For could
            // spoof X-Forwarded-For): drop it, as gunicorn and nginx do.
            if (hd.name.find('_') != std::string_view::npos) continue;
            is_cookie = http::iequals(hd.name, "cookie");
            key = header_key(hd.name);
            if (!key) return nullptr;
        }
        py::Ref k = py::Ref::steal(key);
        py::Ref value = py::Ref::steal(
            PyUnicode_DecodeLatin1(hd.value.data(), static_cast<Py_ssize_t>(hd.value.size()), nullptr));
        if (!value) return nullptr;
        PyObject* prev = PyDict_GetItemWithError(e, k.get());  // borrowed
        if (prev) {
            py::Ref joined = py::Ref::steal(PyUnicode_FromFormat(is_cookie ? "%U; %U" : "%U, %U", prev,
                                                                 value.get()));
            if (!joined) return nullptr;
            value = std::move(joined);
        } else if (PyErr_Occurred()) {
            return nullptr;
        }
        if (PyDict_SetItem(e, k.get(), value.get()) < 0) return nullptr;
    }
    return env.release();
}

}  // namespace luath::wsgi
