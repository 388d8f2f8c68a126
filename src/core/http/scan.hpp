// Internal: the byte scans of the request line and the header block, with one implementation per
// instruction set (scalar, SSE4.2, AVX2 on x86-64; NEON on arm64). The best available one is chosen at
// run time (no -march flags needed); all give identical results. Not part of the public API.
#pragma once

#include <cstddef>
#include <cstdint>

#include "http/parser.hpp"

namespace luath::http {

enum class ScanImpl : std::uint8_t { Scalar, SSE42, AVX2, NEON };

// Whether this build and CPU can run `impl`.
bool scan_impl_available(ScanImpl impl);
// Forces an implementation (tests, benchmarks). Returns false and changes nothing when not available.
// Not thread-safe with respect to concurrent parsing: call it before parsing starts.
bool set_scan_impl(ScanImpl impl);
// The implementation in use (the best available one unless set_scan_impl was called).
ScanImpl scan_impl();
const char* scan_impl_name(ScanImpl impl);

// Test hook: whether parse_request_head may take its one-pass path for a head seen from its start (default
// true). With false every head goes through the line-by-line path, the reference for the one-pass one.
extern bool g_fast_head;

namespace scan {

struct Fns {
    // First byte in [p, end) that is not a field-value byte (HTAB, SP..'~', 0x80..0xff); end when none.
    const char* (*value)(const char* p, const char* end);
    // First byte that is not a request-target byte ('!'..'~' except '#', 0x80..0xff); end when none.
    const char* (*target)(const char* p, const char* end);
    // First byte that is not a tchar (RFC 9110 5.6.2); end when none.
    const char* (*token)(const char* p, const char* end);
    // Parses consecutive "clean" field lines (token ":" OWS *field-value-byte CRLF, value OWS-trimmed, at
    // most max_line bytes before the CRLF) starting at the line start p, at most `cap` of them, into out[].
    // Stops at the first line that is not clean or not complete (including the empty line ending the
    // head). Returns the number parsed; *next is the start of the first line not parsed. Reads only bytes
    // in [begin, end) (begin <= p: the start of the buffer, which lets the last lines be read with whole
    // vector loads).
    std::size_t (*fields)(const char* begin, const char* p, const char* end, Header* out, std::size_t cap,
                          std::size_t max_line, const char** next);
    // The one-pass parse of a whole head seen from its start (fresh HeadState): detail::fast_head's contract
    // (head_internal.hpp: the head's length, or 0 when it gives up), with this instruction set's own
    // implementation where it has one.
    std::size_t (*head_len)(const char* buf, std::size_t len, Request& req, const Limits& limits, HeadState& st);
    // parse_request_head for a fresh HeadState: head_len, and the line-by-line path when it gives up.
    ParseResult (*head)(const char* buf, std::size_t len, Request& req, const Limits& limits, HeadState& st);
};

extern Fns g_fns;  // the implementation in use

inline const char* value(const char* p, const char* end) { return g_fns.value(p, end); }
inline const char* target(const char* p, const char* end) { return g_fns.target(p, end); }
inline const char* token(const char* p, const char* end) { return g_fns.token(p, end); }
inline std::size_t fields(const char* begin, const char* p, const char* end, Header* out, std::size_t cap,
                          std::size_t max_line, const char** next) {
    return g_fns.fields(begin, p, end, out, cap, max_line, next);
}

}  // namespace scan
}  // namespace luath::http
