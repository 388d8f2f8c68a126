// Internal: the message-level rules of a request head (Host, Content-Length, Transfer-Encoding, Connection,
// Expect, Upgrade, TE), shared by the line-by-line parser (parser.cpp) and the one-pass heads of each
// instruction set (head_fast.inc, compiled inside scan.cpp). Not part of the public API.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string_view>

#include "http/parser.hpp"

namespace luath::http::detail {

// Message-level state gathered from the field lines.
struct Semantics {
    std::uint32_t host_count = 0;
    std::string_view host;
    std::uint32_t cl_count = 0;
    bool cl_bad = false;
    bool cl_conflict = false;
    std::uint64_t cl = 0;
    std::uint32_t te_lines = 0;
    bool te_empty_line = false;  // a Transfer-Encoding field line without any coding
    std::uint32_t te_elements = 0;
    std::uint32_t te_chunked = 0;
    bool te_last_chunked = false;
    bool te_other = false;
    bool conn_close = false;
    bool conn_keep_alive = false;
    bool conn_upgrade = false;
    bool upgrade_header = false;
    bool expect_continue = false;
    bool te_trailers = false;
};

// Content-Length = 1*DIGIT, at most 2^63 - 1.
inline bool parse_content_length(std::string_view v, std::uint64_t& out) {
    if (v.empty()) return false;
    constexpr std::uint64_t kMax = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
    std::uint64_t x = 0;
    for (char c : v) {
        if (c < '0' || c > '9') return false;
        const std::uint64_t d = static_cast<std::uint64_t>(c - '0');
        if (x > (kMax - d) / 10) return false;
        x = x * 10 + d;
    }
    out = x;
    return true;
}

// Whether p[0..N-1) (a field name or value: tchar / field-value bytes only, no CTL but HTAB) equals the
// literal `lit` of lowercase letters, digits and '-', case-insensitively; the caller has checked the
// length. Word loads OR 0x20 are exact for such bytes: only an uppercase letter becomes a lowercase one,
// and a digit or '-' could only come from a CTL (0x10-0x19, 0x0d), which these bytes never are.
template <std::size_t N>
[[gnu::always_inline]] inline bool lc_is(const char* p, const char (&lit)[N]) {
    constexpr std::size_t L = N - 1;
    static_assert(L >= 2);
    auto word = [](const char* q, auto w) {
        std::memcpy(&w, q, sizeof w);
        return w;
    };
    auto eq = [&](std::size_t off, auto w) {
        using W = decltype(w);
        constexpr W k20 = static_cast<W>(0x2020202020202020ull);
        return static_cast<W>(word(p + off, W{}) | k20) == word(lit + off, W{});
    };
    if constexpr (L >= 8) {
        for (std::size_t i = 0; i + 8 <= L; i += 8)
            if (!eq(i, std::uint64_t{})) return false;
        return L % 8 == 0 || eq(L - 8, std::uint64_t{});
    } else if constexpr (L >= 4) {
        return eq(0, std::uint32_t{}) && eq(L - 4, std::uint32_t{});
    } else {
        return eq(0, std::uint16_t{}) && eq(L - 2, std::uint16_t{});
    }
}

// The field names note_field looks at (te, host, expect, upgrade, connection, content-length,
// transfer-encoding): the other names are skipped with one look-up by (length, first letter).
inline constexpr std::array<char, 32> kNotedFirst = [] {
    std::array<char, 32> t{};
    t[2] = 't';
    t[4] = 'h';
    t[6] = 'e';
    t[7] = 'u';
    t[10] = 'c';
    t[14] = 'c';
    t[17] = 't';
    return t;
}();
// A name of n bytes starting with byte c (a non-empty token).
inline bool maybe_noted(std::size_t n, char c) { return n < kNotedFirst.size() && kNotedFirst[n] == (c | 0x20); }
inline bool maybe_noted(std::string_view name) { return maybe_noted(name.size(), name[0]); }

// The Content-Length rule of note_field (one field line named Content-Length).
inline void note_content_length(Semantics& s, std::string_view value) {
    std::uint64_t x = 0;
    if (!parse_content_length(value, x)) s.cl_bad = true;
    else if (s.cl_count != 0 && x != s.cl) s.cl_conflict = true;
    else s.cl = x;
    ++s.cl_count;
}

// Applies one field line to `s` (a no-op for names that do not matter).
void note_field(Semantics& s, std::string_view name, std::string_view value);

Method method_id(const char* m, std::size_t n);

// authority = host [ ":" port ] (RFC 3986 3.2) without userinfo; host a reg-name / IPv4address / IP-literal.
bool valid_authority(std::string_view a, bool require_port);

// The message-level rules after the Host checks (count and value: the caller's): framing, keep-alive,
// Expect, Upgrade, TE. Sets every one of these Request fields and req.host.
[[gnu::always_inline]] inline Error finish_rest(Request& req, const Semantics& s, const Limits& limits) {
    req.host = s.host;
    req.framing = Framing::None;
    req.content_length = 0;
    if (s.te_lines) [[unlikely]] {
        if (req.version_minor == 0) return Error::TransferEncodingOnHttp10;
        if (s.cl_count) return Error::ContentLengthWithTransferEncoding;
        if (s.te_elements == 0 || s.te_empty_line || s.te_chunked != 1 || !s.te_last_chunked)
            return Error::TransferEncodingNotChunked;
        if (s.te_other) return Error::UnknownTransferCoding;
        req.framing = Framing::Chunked;
    } else if (s.cl_count) {
        if (s.cl_bad) return Error::BadContentLength;
        if (s.cl_conflict) return Error::ConflictingContentLength;
        if (limits.max_body_size && s.cl > limits.max_body_size) return Error::BodyTooLarge;
        req.framing = Framing::ContentLength;
        req.content_length = s.cl;
    }
    if (s.conn_close) req.keep_alive = false;
    else if (req.version_minor == 0) req.keep_alive = s.conn_keep_alive;
    else req.keep_alive = true;
    const bool v11 = req.version_minor == 1;
    req.expect_continue = v11 && s.expect_continue;
    req.upgrade = v11 && s.conn_upgrade && s.upgrade_header;
    req.te_trailers = s.te_trailers;
    return Error::None;
}

// The one-pass path for a whole head seen from its start (fresh `st`), without a block classifier (scalar,
// NEON): see parser.cpp; the x86 vector instruction sets have their own (head_fast.inc). Returns 0, leaving
// nothing the line-by-line path relies on, when anything is unusual; otherwise the head's length (a
// Complete result), with req and st exactly as the line-by-line path leaves them.
std::size_t fast_head(const char* buf, std::size_t len, Request& req, const Limits& limits, HeadState& st);

// The line-by-line path: parse_request_head without the one-pass path (its reference).
ParseResult parse_lines(const char* buf, std::size_t len, Request& req, const Limits& limits, HeadState& st);

// fast_head, and parse_lines when it gives up (scan::Fns::head for the scalar and NEON paths).
ParseResult fast_head_or_lines(const char* buf, std::size_t len, Request& req, const Limits& limits, HeadState& st);

}  // namespace luath::http::detail
