// HTTP/1.1 request parsing (RFC 9112): request line, header block, body framing.
// No Python, no libuv: views into the caller's buffer, no allocation.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "http/errors.hpp"

namespace luath::http {

inline constexpr std::size_t kMaxHeadersCap = 256;  // hard cap for Limits::max_headers

struct Limits {
    std::uint32_t max_request_line = 8190;  // whole request line, CRLF excluded -> 414 when over
    std::uint32_t max_field_size = 8190;    // one header field line -> 431 when over
    std::uint32_t max_head_size = 65536;    // request line + all fields + CRLFs -> 431 when over
    std::uint32_t max_headers = 100;        // number of field lines -> 431 when over (<= kMaxHeadersCap)
    std::uint64_t max_body_size = 1ull << 30;  // Content-Length or decoded chunked total -> 413 when over; 0 = no limit
};

enum class Method : std::uint8_t { Other, Get, Head, Post, Put, Delete, Options, Patch, Connect, Trace };

enum class Framing : std::uint8_t {
    None,           // no body (no Content-Length, no Transfer-Encoding)
    ContentLength,  // content_length bytes follow the head
    Chunked,        // chunked transfer coding (decode with ChunkedDecoder)
};

struct Header {
    std::string_view name;   // as received (case kept), a valid token
    std::string_view value;  // leading/trailing SP/HTAB trimmed
};

struct Request {
    std::string_view method;     // token as received
    Method method_id = Method::Other;
    std::string_view target;     // raw request-target as received
    std::string_view path;       // origin-form: target up to '?'; absolute-form: the path after the authority
                                 // ("/" when empty); "*" for OPTIONS *; authority-form (CONNECT): empty
    std::string_view query;      // after the first '?', without it; empty when none
    std::string_view authority;  // absolute-form / authority-form authority; empty otherwise
    std::uint8_t version_minor = 1;  // 0 or 1 (HTTP/1.0, HTTP/1.1)
    Framing framing = Framing::None;
    std::uint64_t content_length = 0;  // valid when framing == ContentLength
    bool keep_alive = true;       // 1.1 unless "Connection: close"; 1.0 only with "Connection: keep-alive"
    bool expect_continue = false; // "Expect: 100-continue" (case-insensitive) on HTTP/1.1
    bool upgrade = false;         // Connection has the "upgrade" token and an Upgrade header is present
    bool te_trailers = false;     // a TE header lists "trailers"
    std::string_view host;        // the Host header value (empty when absent)
    std::uint32_t num_headers = 0;
    Header headers[kMaxHeadersCap];
};

enum class Status : std::uint8_t { Complete, Incomplete, Error };

struct ParseResult {
    Status status;
    Error error;           // Error::None unless status == Error
    std::size_t consumed;  // Complete: length of the head including the final CRLF CRLF; else 0
};

// Progress kept between calls for one request head, so that feeding a head in many pieces costs O(total)
// and gives exactly the same result as feeding it whole. Reset (HeadState{}) before each new request.
struct HeadState {
    std::size_t scanned = 0;  // bytes already known to contain no complete head
    std::uint32_t lines = 0;  // implementation's use
    std::uint32_t reserved = 0;
    std::size_t line_start = 0;  // implementation's use: offset of the first incomplete line
};

// Parse the request head at the start of buf[0..len). Called again with the same buf start and a larger
// len as more bytes arrive (the buffer may move between calls; only offsets are kept in `st`).
// On Complete, `req` holds views into buf. Leading empty lines (CRLF) before the request line are skipped
// (RFC 9112 2.2) and counted in `consumed`.
ParseResult parse_request_head(const char* buf, std::size_t len, Request& req, const Limits& limits,
                               HeadState& st);

// Incremental chunked-body decoder (RFC 9112 7.1). Zero-copy: data pieces are views into the input.
class ChunkedDecoder {
public:
    enum class Result : std::uint8_t { NeedMore, Data, Done, Error };

    explicit ChunkedDecoder(std::uint64_t max_body = 0) : max_body_(max_body) {}
    void reset(std::uint64_t max_body) { *this = ChunkedDecoder(max_body); }

    // Consume input from [p, end). Returns Data with `out` viewing body bytes inside the input (p advanced
    // past them), NeedMore when all input was consumed without producing data (p == end), Done after the
    // last-chunk and the trailer section (p just past the final CRLF; trailers are validated and ignored),
    // or Error (see error()). Never reads past end.
    Result next(const char*& p, const char* end, std::string_view& out);

    // Chunk-data bytes still to come in the current chunk (0 outside chunk data). A caller may take up to
    // that many straight from its source, past its buffer, and report them with skip_data(n).
    std::uint64_t data_left() const { return state_ == State::Data ? chunk_left_ : 0; }
    void skip_data(std::uint64_t n) {  // n <= data_left()
        chunk_left_ -= n;
        total_ += n;
        if (chunk_left_ == 0) state_ = State::DataCR;
    }

    Error error() const { return error_; }
    std::uint64_t total() const { return total_; }  // decoded body bytes so far
    bool done() const { return state_ == State::Done; }

private:
    enum class State : std::uint8_t {
        SizeStart, SizeDigits, SizeLF,                       // chunk-size [ chunk-ext ] CRLF
        ExtPreSemi, ExtPreName, ExtName, ExtPostName,        // chunk-ext: BWS ";" BWS ext-name
        ExtPreVal, ExtValToken, ExtQuoted, ExtQuotedEsc, ExtPostQuoted,  // [ BWS "=" BWS ext-val ]
        Data, DataCR, DataLF,                                // chunk-data CRLF
        TrailerStart, TrailerName, TrailerValue, TrailerLF, TrailerEndLF,  // trailer-section CRLF
        Done, Failed
    };
    Result fail(Error e) {
        state_ = State::Failed;
        error_ = e;
        return Result::Error;
    }
    State state_ = State::SizeStart;
    Error error_ = Error::None;
    std::uint32_t line_len_ = 0;      // bytes of the current size line
    std::uint32_t trailer_total_ = 0; // bytes of the whole trailer section
    std::uint64_t chunk_left_ = 0;    // size being parsed, then data bytes left in the chunk
    std::uint64_t total_ = 0;
    std::uint64_t max_body_ = 0;      // 0 = no limit
};

}  // namespace luath::http
