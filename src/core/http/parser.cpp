// HTTP/1.1 request head parser (RFC 9112 sections 2-3, 5-6; RFC 9110 5.6).
//
// Line oriented. Each call resumes where the previous one stopped (HeadState keeps offsets only), scans the
// new bytes for line ends with memchr and validates every line as soon as it is complete. The result is a
// pure function of the bytes received so far:
//   * complete lines are checked in order: limits first, then the line's syntax;
//   * the last, still incomplete line is only checked against the limits, with "certain" semantics (an
//     error is reported at the first prefix length at which it cannot be avoided any more), so a partial
//     line never reports something different from what the complete line would;
//   * message-level rules (Host, Content-Length, Transfer-Encoding, ...) are applied once the empty line
//     ending the head has arrived.
// A head seen from its start (fresh HeadState) first goes through a one-pass version of the same rules for
// the common case (scan::Fns::head: head_fast.inc on SSE4.2 / AVX2, fast_head below on the other paths),
// which gives up (leaving the decision to the line-by-line path, parse_lines) on anything unusual. Views put
// into Request by earlier calls may dangle (the buffer may move), so when the head completes in a call that
// did not see the request line, the head is parsed once more from the start: O(total) overall.
#include <array>
#include <cstring>
#include <limits>

#include "http/head_internal.hpp"
#include "http/parser.hpp"
#include "http/scan.hpp"

namespace luath::http {
using namespace detail;
namespace {

enum : std::uint8_t { kTchar = 1, kValue = 2, kTarget = 4, kRegName = 8, kHex = 16 };

constexpr bool in(std::string_view set, int c) {
    for (char s : set)
        if (static_cast<unsigned char>(s) == c) return true;
    return false;
}

constexpr std::array<std::uint8_t, 256> kClass = [] {
    std::array<std::uint8_t, 256> t{};
    for (int c = 0; c < 256; ++c) {
        const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        const bool digit = c >= '0' && c <= '9';
        std::uint8_t f = 0;
        if (alpha || digit || in("!#$%&'*+-.^_`|~", c)) f |= kTchar;
        if (c == '\t' || (c >= 0x20 && c <= 0x7e) || c >= 0x80) f |= kValue;
        if ((c >= 0x21 && c <= 0x7e && c != '#') || c >= 0x80) f |= kTarget;
        // reg-name = *( unreserved / pct-encoded / sub-delims ); '%' is checked separately
        if (alpha || digit || in("-._~!$&'()*+,;=", c)) f |= kRegName;
        if (digit || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')) f |= kHex;
        t[static_cast<std::size_t>(c)] = f;
    }
    return t;
}();

constexpr std::array<unsigned char, 256> kLower = [] {
    std::array<unsigned char, 256> t{};
    for (int c = 0; c < 256; ++c)
        t[static_cast<std::size_t>(c)] = static_cast<unsigned char>(c >= 'A' && c <= 'Z' ? c + 32 : c);
    return t;
}();

inline std::uint8_t cls(char c) { return kClass[static_cast<unsigned char>(c)]; }
inline bool is_ws(char c) { return c == ' ' || c == '\t'; }

// Case-insensitive equality with a lowercase literal.
inline bool ieq(const char* p, std::size_t n, std::string_view lit) {
    if (n != lit.size()) return false;
    for (std::size_t i = 0; i < n; ++i)
        if (kLower[static_cast<unsigned char>(p[i])] != static_cast<unsigned char>(lit[i])) return false;
    return true;
}
inline bool ieq(std::string_view s, std::string_view lit) { return ieq(s.data(), s.size(), lit); }

inline std::string_view trim_ows(std::string_view s) {
    std::size_t b = 0, e = s.size();
    while (b < e && is_ws(s[b])) ++b;
    while (e > b && is_ws(s[e - 1])) --e;
    return s.substr(b, e - b);
}

// Calls fn(element) for each element of a comma-separated list, OWS trimmed, empty elements skipped.
template <class Fn>
inline void for_each_element(std::string_view v, Fn&& fn) {
    while (true) {
        const std::size_t comma = v.find(',');
        const std::string_view el = trim_ows(v.substr(0, comma));
        if (!el.empty()) fn(el);
        if (comma == std::string_view::npos) return;
        v.remove_prefix(comma + 1);
    }
}

// A list element's leading token (a transfer coding or connection option), parameters cut off.
inline std::string_view element_name(std::string_view el) {
    const std::size_t semi = el.find(';');
    return semi == std::string_view::npos ? el : trim_ows(el.substr(0, semi));
}

constexpr std::uint32_t kMaxLeadingEmptyLines = 8;
constexpr std::string_view kSlash = "/";

}  // namespace

Method detail::method_id(const char* m, std::size_t n) {
    switch (n) {
        case 3:
            if (std::memcmp(m, "GET", 3) == 0) return Method::Get;
            if (std::memcmp(m, "PUT", 3) == 0) return Method::Put;
            break;
        case 4:
            if (std::memcmp(m, "POST", 4) == 0) return Method::Post;
            if (std::memcmp(m, "HEAD", 4) == 0) return Method::Head;
            break;
        case 5:
            if (std::memcmp(m, "PATCH", 5) == 0) return Method::Patch;
            if (std::memcmp(m, "TRACE", 5) == 0) return Method::Trace;
            break;
        case 6:
            if (std::memcmp(m, "DELETE", 6) == 0) return Method::Delete;
            break;
        case 7:
            if (std::memcmp(m, "OPTIONS", 7) == 0) return Method::Options;
            if (std::memcmp(m, "CONNECT", 7) == 0) return Method::Connect;
            break;
        default:
            break;
    }
    return Method::Other;
}

// authority = host [ ":" port ] (RFC 3986 3.2), without userinfo (RFC 9110 4.2.4: treat it as an error).
// host is a non-empty reg-name / IPv4address, or an IP-literal in brackets (checked loosely).
bool detail::valid_authority(std::string_view a, bool require_port) {
    std::size_t i = 0;
    const std::size_t n = a.size();
    if (n == 0) return false;
    if (a[0] == '[') {
        i = 1;
        while (i < n && a[i] != ']') {
            if (!(cls(a[i]) & kRegName) && a[i] != ':') return false;
            ++i;
        }
        if (i == n || i == 1) return false;
        ++i;  // ']'
    } else {
        for (;;) {
            while (i + 8 <= n && (cls(a[i]) & cls(a[i + 1]) & cls(a[i + 2]) & cls(a[i + 3]) & cls(a[i + 4]) &
                                  cls(a[i + 5]) & cls(a[i + 6]) & cls(a[i + 7]) & kRegName))
                i += 8;
            while (i < n && (cls(a[i]) & kRegName)) ++i;
            if (i < n && a[i] == '%') {
                if (i + 2 >= n || !(cls(a[i + 1]) & kHex) || !(cls(a[i + 2]) & kHex)) return false;
                i += 3;
                continue;
            }
            break;
        }
        if (i == 0) return false;  // empty host, or an invalid first byte (reported below too)
    }
    if (i == n) return !require_port;
    if (a[i] != ':') return false;
    ++i;
    if (require_port && i == n) return false;
    for (; i < n; ++i)
        if (static_cast<unsigned char>(a[i] - '0') > 9) return false;
    return true;
}

namespace {

// Request line without its CRLF: [p, end).
Error parse_request_line(const char* p, const char* end, Request& req) {
    const char* m = p;
    while (p < end && (cls(*p) & kTchar)) ++p;
    if (p == end) return Error::BadRequestLine;  // no SP at all
    if (*p == '\r') return Error::BareLF;
    if (*p != ' ') return Error::BadMethod;
    if (p == m) return Error::BadRequestLine;  // empty method
    const std::size_t mlen = static_cast<std::size_t>(p - m);

    const char* t = ++p;
    p = scan::target(p, end);
    if (p == end) return Error::BadRequestLine;  // no SP before the version
    if (*p != ' ') return *p == '\r' ? Error::BareLF : Error::BadTarget;
    if (p == t) return Error::BadRequestLine;  // empty target (two SP)
    const std::size_t tlen = static_cast<std::size_t>(p - t);

    const char* v = ++p;
    const std::size_t vlen = static_cast<std::size_t>(end - v);
    if (vlen == 8 && std::memcmp(v, "HTTP/", 5) == 0 && v[5] >= '0' && v[5] <= '9' && v[6] == '.' &&
        v[7] >= '0' && v[7] <= '9') {
        if (v[5] != '1' || (v[7] != '0' && v[7] != '1')) return Error::UnsupportedVersion;
        req.version_minor = static_cast<std::uint8_t>(v[7] - '0');
    } else {
        if (vlen && std::memchr(v, '\r', vlen)) return Error::BareLF;
        return Error::BadVersion;
    }

    req.method = std::string_view(m, mlen);
    req.method_id = method_id(m, mlen);
    req.target = std::string_view(t, tlen);
    req.keep_alive = req.version_minor == 1;

    if (t[0] == '/') {
        if (req.method_id == Method::Connect) return Error::BadTarget;
        const void* q = std::memchr(t, '?', tlen);
        if (q) {
            const char* qc = static_cast<const char*>(q);
            req.path = std::string_view(t, static_cast<std::size_t>(qc - t));
            req.query = std::string_view(qc + 1, static_cast<std::size_t>(t + tlen - qc - 1));
        } else {
            req.path = req.target;
        }
        return Error::None;
    }
    if (tlen == 1 && t[0] == '*') {
        if (req.method_id != Method::Options) return Error::BadTarget;
        req.path = req.target;
        return Error::None;
    }
    if (req.method_id == Method::Connect) {
        if (!valid_authority(req.target, true)) return Error::BadTarget;
        req.authority = req.target;
        return Error::None;
    }
    std::size_t skip;
    if (tlen >= 7 && ieq(t, 7, "http://")) skip = 7;
    else if (tlen >= 8 && ieq(t, 8, "https://")) skip = 8;
    else return Error::BadTarget;
    const std::string_view rest(t + skip, tlen - skip);
    const std::size_t aend = rest.find_first_of("/?");
    const std::string_view auth = rest.substr(0, aend);
    if (!valid_authority(auth, false)) return Error::BadTarget;
    req.authority = auth;
    if (aend == std::string_view::npos) {
        req.path = kSlash;
        return Error::None;
    }
    const std::string_view pq = rest.substr(aend);
    const std::size_t q = pq.find('?');
    if (q == 0) {
        req.path = kSlash;
    } else {
        req.path = pq.substr(0, q);
    }
    if (q != std::string_view::npos) req.query = pq.substr(q + 1);
    return Error::None;
}

// Field line without its CRLF: [p, end). Sets name/value on success.
inline Error parse_field_line(const char* p, const char* end, std::string_view& name, std::string_view& value) {
    if (is_ws(*p)) return Error::ObsFold;
    const char* n = p;
    while (p < end && (cls(*p) & kTchar)) ++p;
    if (p == end) return Error::BadHeaderName;  // no colon
    if (*p != ':') {
        if (*p == '\r') return Error::BareLF;
        if (p != n && is_ws(*p)) {
            while (p < end && is_ws(*p)) ++p;
            if (p < end && *p == ':') return Error::SpaceBeforeColon;
            if (p < end && *p == '\r') return Error::BareLF;
        }
        return Error::BadHeaderName;
    }
    if (p == n) return Error::BadHeaderName;  // empty name
    name = std::string_view(n, static_cast<std::size_t>(p - n));
    ++p;
    while (p < end && is_ws(*p)) ++p;
    const char* v = p;
    // Hot loop: value bytes.
    while (end - p >= 4) {
        if (!(cls(p[0]) & kValue)) goto bad;
        if (!(cls(p[1]) & kValue)) { p += 1; goto bad; }
        if (!(cls(p[2]) & kValue)) { p += 2; goto bad; }
        if (!(cls(p[3]) & kValue)) { p += 3; goto bad; }
        p += 4;
    }
    while (p < end) {
        if (!(cls(*p) & kValue)) goto bad;
        ++p;
    }
    {
        const char* e = end;
        while (e > v && is_ws(e[-1])) --e;
        value = std::string_view(v, static_cast<std::size_t>(e - v));
    }
    return Error::None;
bad:
    return *p == '\r' ? Error::BareLF : Error::BadHeaderValue;
}

}  // namespace

void detail::note_field(Semantics& s, std::string_view name, std::string_view value) {
    const char* n = name.data();
    switch (name.size()) {
        case 2:
            if (lc_is(n, "te")) {
                for_each_element(value, [&](std::string_view el) {
                    if (ieq(element_name(el), "trailers")) s.te_trailers = true;
                });
            }
            break;
        case 4:
            if (lc_is(n, "host")) {
                if (s.host_count++ == 0) s.host = value;
            }
            break;
        case 6:
            if (lc_is(n, "expect") && value.size() == 12 && lc_is(value.data(), "100-continue"))
                s.expect_continue = true;
            break;
        case 7:
            if (lc_is(n, "upgrade") && !value.empty()) s.upgrade_header = true;
            break;
        case 10:
            if (lc_is(n, "connection")) {
                // The usual single-option values first (same result as the list walk below).
                if (value.size() == 10 && lc_is(value.data(), "keep-alive")) {
                    s.conn_keep_alive = true;
                    break;
                }
                if (value.size() == 5 && lc_is(value.data(), "close")) {
                    s.conn_close = true;
                    break;
                }
                for_each_element(value, [&](std::string_view el) {
                    if (ieq(el, "close")) s.conn_close = true;
                    else if (ieq(el, "keep-alive")) s.conn_keep_alive = true;
                    else if (ieq(el, "upgrade")) s.conn_upgrade = true;
                });
            }
            break;
        case 14:
            if (lc_is(n, "content-length")) {
                note_content_length(s, value);
            }
            break;
        case 17:
            if (lc_is(n, "transfer-encoding")) {
                ++s.te_lines;
                const std::uint32_t before = s.te_elements;
                for_each_element(value, [&](std::string_view el) {
                    ++s.te_elements;
                    // Only exactly "chunked" counts: no parameters, no quotes, case-insensitive.
                    const bool chunked = ieq(el, "chunked");
                    s.te_last_chunked = chunked;
                    if (chunked) ++s.te_chunked;
                    else s.te_other = true;
                });
                // "Transfer-Encoding:" (or only commas) next to a real one: a smuggling vector (proxies
                // disagree whether it resets the codings). Reject it like a missing final chunked.
                if (s.te_elements == before) s.te_empty_line = true;
            }
            break;
        default:
            break;
    }
}

namespace {

Error finish(Request& req, const Semantics& s, const Limits& limits) {
    if (s.host_count > 1) return Error::DuplicateHost;
    if (s.host_count == 0 && req.version_minor == 1) return Error::MissingHost;
    // RFC 9112 3.2: 400 for a Host with an invalid value. Host = uri-host [ ":" port ]; empty is allowed.
    if (!s.host.empty() && !valid_authority(s.host, false)) return Error::BadHost;
    return finish_rest(req, s, limits);
}

// Limit checks for the line [ls, e) (e = LF offset when complete, else len). Each limit has the prefix
// length at which exceeding it became certain; the earliest wins (the line limit on a tie), which makes
// the answer identical whether the line is seen partially or complete.
inline Error check_limits(const char* buf, std::size_t ls, std::size_t e, bool complete, std::size_t head_start,
                          std::size_t max_line, std::size_t max_head, Error line_error) {
    constexpr std::size_t kNever = std::numeric_limits<std::size_t>::max();
    std::size_t t_line = kNever, t_head = kNever;
    if (e - ls > max_line) {
        std::size_t k = ls + max_line + 1;
        if (buf[ls + max_line] == '\r') ++k;  // could still be the CR of a CRLF ending at exactly max_line
        if (k <= e) t_line = k;
    }
    const std::size_t upto = complete ? e + 1 : e;
    if (upto - head_start > max_head) t_head = head_start + max_head + 1;
    if (t_line == kNever && t_head == kNever) return Error::None;
    return t_line <= t_head ? line_error : Error::HeadTooLarge;
}

inline ParseResult fail(Error e) { return ParseResult{Status::Error, e, 0}; }

void reset_request(Request& req) {
    req.method = {};
    req.method_id = Method::Other;
    req.target = {};
    req.path = {};
    req.query = {};
    req.authority = {};
    req.version_minor = 1;
    req.framing = Framing::None;
    req.content_length = 0;
    req.keep_alive = true;
    req.expect_continue = false;
    req.upgrade = false;
    req.te_trailers = false;
    req.host = {};
    req.num_headers = 0;
}

// One pass from the state in `st`. Returns Complete only when st was fresh (request line not yet seen
// by an earlier call); otherwise reports Complete via `needs_reparse`.
ParseResult run(const char* buf, std::size_t len, Request& req, const Limits& limits, HeadState& st,
                bool& needs_reparse) {
    std::size_t ls = st.line_start;
    std::size_t scan = st.scanned < ls ? ls : st.scanned;
    std::uint32_t lines = st.lines;
    std::uint32_t nlead = st.reserved;
    const bool fresh = lines == nlead;
    if (fresh) reset_request(req);
    const std::size_t max_headers =
        limits.max_headers < kMaxHeadersCap ? limits.max_headers : kMaxHeadersCap;
    Semantics sem;
    std::size_t fast_failed_at = static_cast<std::size_t>(-1);  // line start where scan::fields stopped

    for (;;) {
        if (scan == ls && lines > nlead && ls != fast_failed_at) {
            // Field lines not looked at before: parse the run of clean lines (token ":" OWS value CRLF)
            // with the vector scans, then apply the per-line checks in order, exactly as the reference
            // path below would for each complete line. The first line that is not clean (or not
            // complete) goes to the reference path, which decides what is wrong with it.
            const std::size_t index0 = lines - nlead - 1;
            const std::size_t cap = index0 < max_headers ? max_headers - index0 : 0;
            const char* next = nullptr;
            const std::size_t n = scan::fields(buf, buf + ls, buf + len, req.headers + index0, cap,
                                               limits.max_field_size, &next);
            const std::size_t head_start = 2 * static_cast<std::size_t>(nlead);
            for (std::size_t i = 0; i < n; ++i) {
                const Header& h = req.headers[index0 + i];
                const std::size_t next_ls = i + 1 < n ? static_cast<std::size_t>(req.headers[index0 + i + 1].name.data() - buf)
                                                      : static_cast<std::size_t>(next - buf);
                const std::size_t e = next_ls - 1;  // the LF
                const Error lerr = check_limits(buf, ls, e, true, head_start, limits.max_field_size,
                                                limits.max_head_size, Error::HeadTooLarge);
                if (lerr != Error::None) return fail(lerr);
                req.num_headers = static_cast<std::uint32_t>(index0 + i + 1);
                if (maybe_noted(h.name)) note_field(sem, h.name, h.value);
                ++lines;
                ls = scan = next_ls;
            }
            fast_failed_at = ls;
            continue;
        }
        const void* lfp = scan < len ? std::memchr(buf + scan, '\n', len - scan) : nullptr;
        const bool complete = lfp != nullptr;
        const std::size_t e = complete ? static_cast<std::size_t>(static_cast<const char*>(lfp) - buf) : len;
        const bool in_request_line = lines == nlead;
        const std::size_t head_start = 2 * static_cast<std::size_t>(nlead);

        if (complete && e - ls == 1 && buf[ls] == '\r') {  // empty line
            if (in_request_line) {
                if (nlead == kMaxLeadingEmptyLines) return fail(Error::BadRequestLine);
                ++nlead;
                ++lines;
                ls = scan = e + 1;
                continue;
            }
            const std::size_t head_end = e + 1;
            if (head_end - head_start > limits.max_head_size) return fail(Error::HeadTooLarge);
            if (!fresh) {
                needs_reparse = true;
                return ParseResult{Status::Incomplete, Error::None, 0};
            }
            const Error err = finish(req, sem, limits);
            if (err != Error::None) return fail(err);
            st.line_start = ls;
            st.scanned = head_end;
            st.lines = lines;
            st.reserved = nlead;
            return ParseResult{Status::Complete, Error::None, head_end};
        }
        if (complete && e == ls) return fail(Error::BareLF);

        const Error lerr = check_limits(buf, ls, e, complete, head_start,
                                        in_request_line ? limits.max_request_line : limits.max_field_size,
                                        limits.max_head_size,
                                        in_request_line ? Error::TargetTooLong : Error::HeadTooLarge);
        if (lerr != Error::None) return fail(lerr);
        if (!complete) {
            st.line_start = ls;
            st.scanned = len;
            st.lines = lines;
            st.reserved = nlead;
            return ParseResult{Status::Incomplete, Error::None, 0};
        }
        if (in_request_line) {
            if (buf[e - 1] != '\r') return fail(Error::BareLF);
            const Error err = parse_request_line(buf + ls, buf + e - 1, req);
            if (err != Error::None) return fail(err);
        } else {
            const std::size_t index = lines - nlead - 1;
            if (index >= max_headers) return fail(Error::TooManyHeaders);
            if (buf[e - 1] != '\r') return fail(Error::BareLF);
            Header& h = req.headers[index];
            const Error err = parse_field_line(buf + ls, buf + e - 1, h.name, h.value);
            if (err != Error::None) return fail(err);
            req.num_headers = static_cast<std::uint32_t>(index + 1);
            note_field(sem, h.name, h.value);
        }
        ++lines;
        ls = scan = e + 1;
    }
}

}  // namespace

// The whole head in one pass, for a call with a fresh HeadState (the scalar and NEON paths; SSE4.2 and AVX2
// have head_fast.inc): the request line (origin-form target, HTTP/1.0 or 1.1) scanned once, the field lines
// with scan::fields (limits checked per line with lengths), the message semantics only for the few field
// names that matter. Returns 0, leaving the rest to run(), as soon as anything is unusual: an incomplete
// head, an error of any kind, another target form, leading empty lines, a field line scan::fields does not
// take, a limit that might be exceeded. Otherwise the head's length, with req and st exactly as run()
// would leave them.

std::size_t detail::fast_head(const char* buf, std::size_t len, Request& req, const Limits& limits, HeadState& st) {
    if (len < 18) return 0;  // "GET / HTTP/1.1\r\n\r\n" is the shortest complete head
    const char* const end = buf + len;

    // Method.
    std::uint32_t w4;
    std::memcpy(&w4, buf, 4);
    auto word4 = [](const char* lit) {
        std::uint32_t w;
        std::memcpy(&w, lit, 4);
        return w;
    };
    std::size_t mlen;
    Method mid;
    if (w4 == word4("GET ")) {
        mlen = 3;
        mid = Method::Get;
    } else if (w4 == word4("POST") && buf[4] == ' ') {
        mlen = 4;
        mid = Method::Post;
    } else {
        const char* p = buf;
        while (p < end && (cls(*p) & kTchar)) ++p;
        if (p == buf || p == end || *p != ' ') return 0;
        mlen = static_cast<std::size_t>(p - buf);
        mid = method_id(buf, mlen);
        if (mid == Method::Connect) return 0;
    }

    // Target (origin-form only) and version.
    const char* t = buf + mlen + 1;
    if (t == end || *t != '/') return 0;
    const char* sp = scan::target(t, end);
    if (end - sp < 11 || *sp != ' ') return 0;  // " HTTP/1.x\r\n"
    std::uint64_t ver;
    std::memcpy(&ver, sp + 1, 8);
    std::uint64_t v11, v10;
    std::memcpy(&v11, "HTTP/1.1", 8);
    std::memcpy(&v10, "HTTP/1.0", 8);
    std::uint8_t minor;
    if (ver == v11) minor = 1;
    else if (ver == v10) minor = 0;
    else return 0;
    if (sp[9] != '\r' || sp[10] != '\n') return 0;
    if (static_cast<std::size_t>(sp + 9 - buf) > limits.max_request_line) return 0;

    // Field lines, up to the empty line.
    const std::size_t max_headers = limits.max_headers < kMaxHeadersCap ? limits.max_headers : kMaxHeadersCap;
    const char* next = nullptr;
    const std::size_t n = scan::fields(buf, sp + 11, end, req.headers, max_headers, limits.max_field_size, &next);
    if (end - next < 2 || next[0] != '\r' || next[1] != '\n') return 0;
    const std::size_t head_end = static_cast<std::size_t>(next + 2 - buf);
    if (head_end > limits.max_head_size) return 0;

    reset_request(req);
    req.method = std::string_view(buf, mlen);
    req.method_id = mid;
    const std::size_t tlen = static_cast<std::size_t>(sp - t);
    req.target = std::string_view(t, tlen);
    req.version_minor = minor;
    req.keep_alive = minor == 1;
    if (const void* q = std::memchr(t, '?', tlen)) {
        const char* qc = static_cast<const char*>(q);
        req.path = std::string_view(t, static_cast<std::size_t>(qc - t));
        req.query = std::string_view(qc + 1, static_cast<std::size_t>(t + tlen - qc - 1));
    } else {
        req.path = req.target;
    }
    req.num_headers = static_cast<std::uint32_t>(n);

    Semantics sem;
    for (std::size_t i = 0; i < n; ++i) {
        const Header& h = req.headers[i];
        if (maybe_noted(h.name)) note_field(sem, h.name, h.value);
    }
    if (finish(req, sem, limits) != Error::None) return 0;
    st.line_start = static_cast<std::size_t>(next - buf);
    st.scanned = head_end;
    st.lines = static_cast<std::uint32_t>(n + 1);
    st.reserved = 0;
    return head_end;
}

namespace {

inline bool is_fresh(const HeadState& st) {
    return st.scanned == 0 && st.lines == 0 && st.reserved == 0 && st.line_start == 0;
}

}  // namespace

bool g_fast_head = true;

__attribute__((noinline)) ParseResult detail::parse_lines(const char* buf, std::size_t len, Request& req,
                                                         const Limits& limits, HeadState& st) {
    bool needs_reparse = false;
    ParseResult r = run(buf, len, req, limits, st, needs_reparse);
    if (!needs_reparse) return r;
    // The head completed, but earlier calls saw part of it: their views may dangle and the message-level
    // state was not kept. Parse the (now known valid line by line) head again in one pass (a fresh run
    // never asks for a reparse).
    HeadState fresh{};
    if (g_fast_head) return scan::g_fns.head(buf, len, req, limits, fresh);
    return run(buf, len, req, limits, fresh, needs_reparse);
    // (st is left as is: after Complete the caller resets it for the next request.)
}

ParseResult detail::fast_head_or_lines(const char* buf, std::size_t len, Request& req, const Limits& limits,
                                       HeadState& st) {
    if (const std::size_t n = fast_head(buf, len, req, limits, st))
        return ParseResult{Status::Complete, Error::None, n};
    return parse_lines(buf, len, req, limits, st);
}

ParseResult parse_request_head(const char* buf, std::size_t len, Request& req, const Limits& limits,
                               HeadState& st) {
    // A fresh state sees the head from its start: try the one-pass path first. It gives up on anything
    // unusual (then the line-by-line path decides, from the same fresh state), and is tried at most once
    // per head with a non-empty buffer (the line-by-line path leaves st non-fresh), so the total stays O(n).
    if (g_fast_head && is_fresh(st)) [[likely]]
        return scan::g_fns.head(buf, len, req, limits, st);
    return parse_lines(buf, len, req, limits, st);
}

}  // namespace luath::http
