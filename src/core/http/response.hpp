// Pieces of a response that need neither Python nor libuv: the Date header cache, chunk framing,
// validation of header bytes coming from an application, and the canned error responses.
#pragma once

#include <cstddef>
#include <cstdint>
#include <ctime>
#include <string_view>

#include "http/errors.hpp"

namespace luath::http {

// "Date: Thu, 26 Nov 2026 05:54:23 GMT\r\n", formatted at most once a second.
class DateCache {
public:
    // Returns the header line for wall-clock second `now`; reformats only when the second changed.
    std::string_view line(std::time_t now) {
        if (now != when_) format(now);
        return {buf_, len_};
    }

private:
    void format(std::time_t now);
    std::time_t when_ = -1;
    char buf_[64] = {};
    std::size_t len_ = 0;
};

// The standard reason phrase of a status code ("" when unknown).
std::string_view reason_phrase(int status);

// Writes "<hex size>\r\n" into out (at least 18 bytes); returns its length.
std::size_t format_chunk_size(char* out, std::uint64_t n);

// Writes the decimal digits of n into out (at least 20 bytes); returns the length.
std::size_t format_decimal(char* out, std::uint64_t n);

// RFC 9110 token (a valid field name or method).
bool is_token(std::string_view s);
// A field value an application may send: no CR, LF, NUL or other control byte except HTAB.
bool is_safe_field_value(std::string_view s);
// "NNN reason": three digits, a space, and a reason with no control bytes.
bool is_valid_status(std::string_view s);
// Case-insensitive ASCII equality.
bool iequals(std::string_view a, std::string_view b);

// A response the server writes by itself: `head` is the status line and headers (Content-Type,
// Content-Length, Connection: close) without the Date line and the blank line; `body` a short text.
struct Canned {
    std::string_view head;
    std::string_view body;
};

// For a request that failed to parse. Built once per error at first use; the views stay valid.
Canned error_response(Error e);

// 500 or 503, closing the connection.
Canned canned_response(int status);

}  // namespace luath::http
