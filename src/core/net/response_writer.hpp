// Writes one response onto a connection: status line, headers, framing (Content-Length, chunked, or
// close-delimited on HTTP/1.0), body pieces and the end. Shared by the WSGI and ASGI layers, which
// only translate their application's objects into string views. No Python.
#pragma once

#include <cstdint>
#include <string_view>

#include "net/connection.hpp"

namespace luath::net {

class ResponseWriter {
public:
    static constexpr std::size_t kCopyBelow = 4096;  // smaller body pieces are copied next to the headers

    // A new response on c for a request of this version and method.
    void start(Connection& c, bool http10, bool head, bool te_trailers = false);

    // Status line and headers, validated as they come; nothing reaches the queue unless end_headers()
    // succeeds. Each returns false with error() set on invalid input (then call cancel_headers()).
    bool begin(std::string_view status);  // "200 OK"
    bool begin(int status);               // 200: the standard reason phrase
    bool header(std::string_view name, std::string_view value);
    // Adds framing, Connection and Date, and the blank line. length_hint >= 0: the body's total length
    // when the application did not declare one.
    bool end_headers(std::int64_t length_hint);
    void cancel_headers();
    const char* error() const { return error_; }

    bool headers_sent() const { return sent_headers_; }
    bool no_body() const { return no_body_; }
    bool chunked() const { return chunked_; }
    int status() const { return status_; }
    std::int64_t content_length() const { return content_length_; }
    std::uint64_t body_sent() const { return body_sent_; }

    // Queues body bytes: copied when owner is null or the piece is small (the owner is then released
    // at once), else referenced until written. Bytes past a declared Content-Length are dropped and the
    // connection closes after the response.
    void body(const char* p, std::size_t n, void* owner);
    // A regular file's bytes via sendfile (owner released when sent).
    void file(int fd, std::int64_t offset, std::uint64_t len, void* owner);
    // Trailer fields after a chunked body, when the client accepts them (TE: trailers).
    bool trailer(std::string_view name, std::string_view value);
    // Ends the body (the last chunk) and hands the connection back for the next request.
    void finish();

private:
    Connection* c_ = nullptr;
    OutQueue::Mark mark_{};
    const char* error_ = nullptr;
    std::int64_t content_length_ = -1;
    std::uint64_t body_sent_ = 0;
    int status_ = 0;
    bool http10_ = false, head_ = false, te_trailers_ = false;
    bool sent_headers_ = false, in_headers_ = false;
    bool no_body_ = false, chunked_ = false, app_close_ = false, has_date_ = false;
    bool overflowed_ = false, trailers_open_ = false;
};

}  // namespace luath::net
