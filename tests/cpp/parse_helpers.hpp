// Test helpers: parse a head in one call or in pieces (each piece in a fresh heap buffer, so the buffer
// "moves" between calls and ASan catches stale views or reads past len), and snapshot the result.
#pragma once

#include <cstring>
#include <memory>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "http/parser.hpp"

namespace luath::http::test {

struct Snap {
    Status status = Status::Incomplete;
    Error error = Error::None;
    std::size_t consumed = 0;
    // Request fields, only filled when status == Complete.
    std::string method, target, path, query, authority, host;
    Method method_id = Method::Other;
    int version_minor = -1;
    Framing framing = Framing::None;
    std::uint64_t content_length = 0;
    bool keep_alive = false, expect_continue = false, upgrade = false, te_trailers = false;
    std::vector<std::pair<std::string, std::string>> headers;

    bool operator==(const Snap&) const = default;
};

inline std::ostream& operator<<(std::ostream& os, const Snap& s) {
    os << "{status=" << int(s.status) << " error=" << int(s.error) << " consumed=" << s.consumed;
    if (s.status == Status::Complete) {
        os << " method=" << s.method << " target=" << s.target << " path=" << s.path << " query=" << s.query
           << " authority=" << s.authority << " host=" << s.host << " minor=" << s.version_minor
           << " framing=" << int(s.framing) << " cl=" << s.content_length << " ka=" << s.keep_alive
           << " ec=" << s.expect_continue << " up=" << s.upgrade << " tt=" << s.te_trailers
           << " headers=" << s.headers.size();
    }
    return os << "}";
}

inline Snap snap(const ParseResult& r, const Request& req) {
    Snap s;
    s.status = r.status;
    s.error = r.error;
    s.consumed = r.consumed;
    if (r.status != Status::Complete) return s;
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

// Feeds in[0..cut) for each cut in `cuts` (increasing), then the whole input, stopping at the first
// result that is not Incomplete. Every call gets a fresh exact-size heap copy of the prefix.
inline Snap parse_pieces(std::string_view in, const std::vector<std::size_t>& cuts, const Limits& lim = {}) {
    auto req = std::make_unique<Request>();
    HeadState st;
    std::vector<std::size_t> all = cuts;
    all.push_back(in.size());
    for (std::size_t cut : all) {
        std::unique_ptr<char[]> buf(new char[cut ? cut : 1]);
        if (cut) std::memcpy(buf.get(), in.data(), cut);
        const ParseResult r = parse_request_head(buf.get(), cut, *req, lim, st);
        if (r.status != Status::Incomplete || cut == in.size()) return snap(r, *req);
    }
    return Snap{};
}

inline Snap parse_once(std::string_view in, const Limits& lim = {}) { return parse_pieces(in, {}, lim); }

inline Snap parse_bytewise(std::string_view in, const Limits& lim = {}) {
    std::vector<std::size_t> cuts;
    for (std::size_t i = 0; i < in.size(); ++i) cuts.push_back(i);
    return parse_pieces(in, cuts, lim);
}

}  // namespace luath::http::test
