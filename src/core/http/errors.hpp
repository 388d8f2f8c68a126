// Parse errors and the one table that maps each to an HTTP status.
#pragma once

#include <cstdint>
#include <string_view>

namespace luath::http {

enum class Error : std::uint8_t {
    None,
    BadRequestLine,        // 400 malformed request line
    BadMethod,             // 400 method is not a token
    BadTarget,             // 400 request-target has forbidden bytes or an invalid form
    BadVersion,            // 400 not HTTP-version syntax
    UnsupportedVersion,    // 505 well-formed but not HTTP/1.0 or HTTP/1.1
    TargetTooLong,         // 414 request line over Limits::max_request_line
    HeadTooLarge,          // 431 a field line or the whole head over its limit
    TooManyHeaders,        // 431 more than Limits::max_headers field lines
    BadHeaderName,         // 400 empty name or non-token byte
    SpaceBeforeColon,      // 400 whitespace between field name and colon
    BadHeaderValue,        // 400 CR, LF, NUL or another forbidden control byte in a value
    ObsFold,               // 400 a field line starting with SP or HTAB
    BareLF,                // 400 LF not preceded by CR, or CR not followed by LF
    MissingHost,           // 400 HTTP/1.1 request without Host
    DuplicateHost,         // 400 more than one Host
    BadHost,               // 400 a Host value that is not uri-host [ ":" port ] (RFC 9112 3.2)
    BadContentLength,      // 400 Content-Length not 1*DIGIT, or overflows
    ConflictingContentLength,    // 400 several Content-Length values that differ
    ContentLengthWithTransferEncoding,  // 400 both present
    TransferEncodingNotChunked,  // 400 last transfer coding is not chunked, or chunked applied twice
    TransferEncodingOnHttp10,    // 400 Transfer-Encoding in an HTTP/1.0 request
    UnknownTransferCoding,       // 501 a transfer coding other than chunked
    BodyTooLarge,          // 413 body over Limits::max_body_size
    BadChunkSize,          // 400 chunk size not HEXDIG, empty, or overflows
    BadChunkExtension,     // 400 malformed or over-long chunk extension
    BadChunkData,          // 400 chunk data not followed by CRLF
    BadTrailer,            // 400 malformed trailer field or trailer section too large
};

struct ErrorInfo {
    int status;                // HTTP status code to answer with
    std::string_view reason;   // its reason phrase, e.g. "Bad Request"
    std::string_view detail;   // short human text for the response body/log, e.g. "invalid header name"
};

ErrorInfo error_info(Error e);

}  // namespace luath::http
