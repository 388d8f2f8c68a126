// Shared helpers for the libFuzzer targets: a comparable snapshot of a parse result.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "http/parser.hpp"

namespace luath::fuzz {

struct Snap {
    http::Status status = http::Status::Incomplete;
    http::Error error = http::Error::None;
    std::size_t consumed = 0;
    std::string method, target, path, query, authority, host;
    http::Method method_id = http::Method::Other;
    int version_minor = -1;
    http::Framing framing = http::Framing::None;
    std::uint64_t content_length = 0;
    bool keep_alive = false, expect_continue = false, upgrade = false, te_trailers = false;
    std::vector<std::pair<std::string, std::string>> headers;
    bool operator==(const Snap&) const = default;
};

inline Snap snap(const http::ParseResult& r, const http::Request& req) {
    Snap s;
    s.status = r.status;
    s.error = r.error;
    s.consumed = r.consumed;
    if (r.status != http::Status::Complete) return s;
    s.method = req.method;
    s.target = req.target;
    s.path = req.path;
    s.query = req.query;
    s.authority = req.authority;
    s.host = req.host;
    s.method_id = req.method_id;
    s.version_minor = req.version_minor;
    s.framing = req.framing;
    s.content_length = req.content_length;
    s.keep_alive = req.keep_alive;
    s.expect_continue = req.expect_continue;
    s.upgrade = req.upgrade;
    s.te_trailers = req.te_trailers;
    for (std::uint32_t i = 0; i < req.num_headers; ++i)
        s.headers.emplace_back(std::string(req.headers[i].name), std::string(req.headers[i].value));
    return s;
}

[[noreturn]] inline void die(const char* what, const Snap& a, const Snap& b) {
    std::fprintf(stderr, "MISMATCH (%s): status %d/%d error %d/%d consumed %zu/%zu headers %zu/%zu\n", what,
                 int(a.status), int(b.status), int(a.error), int(b.error), a.consumed, b.consumed,
                 a.headers.size(), b.headers.size());
    std::abort();
}

}  // namespace luath::fuzz
