// permessage-deflate (RFC 7692) with zlib: the negotiation of its parameters and one connection's
// compressor and decompressor. No Python, no libuv.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace luath::http::ws {

class Utf8Validator;

struct DeflateParams {
    bool server_no_context_takeover = false;
    bool client_no_context_takeover = false;
    int server_max_window_bits = 15;  // our compressor's window
    int client_max_window_bits = 15;  // the client's compressor's window (our decompressor)
};

// Picks the first acceptable permessage-deflate offer among the Sec-WebSocket-Extensions values
// (call once per header field, in order; stops once one was accepted). On acceptance fills p and the
// response header value. Our own window is capped at 12 bits (and the client's too when it lets us
// choose), as the websockets library does, to keep a connection's zlib memory small.
class DeflateNegotiation {
public:
    void offer(std::string_view header_value);
    bool accepted() const { return accepted_; }
    const DeflateParams& params() const { return params_; }
    const std::string& response() const { return response_; }

private:
    bool try_offer(std::string_view offer);
    bool accepted_ = false;
    DeflateParams params_;
    std::string response_;
};

class Deflate {
public:
    enum class Result : std::uint8_t { Ok, TooBig, Error, BadUtf8 };

    explicit Deflate(const DeflateParams& p) : p_(p) {}
    ~Deflate();
    Deflate(const Deflate&) = delete;
    Deflate& operator=(const Deflate&) = delete;

    // Compresses a whole message into out (replacing its contents), without the final 00 00 ff ff.
    bool compress(const char* data, std::size_t n, std::string& out);
    // Inflates compressed message bytes, appending to out. The first problem in output order wins, so
    // that the result does not depend on how the input was split: invalid UTF-8 (when utf8 is given,
    // a text message) before the max-th output byte is BadUtf8, more than max bytes (0: no limit) is
    // TooBig (at most 16 KiB past max are ever held), then a zlib error is Error.
    Result inflate(const char* data, std::size_t n, std::string& out, std::uint64_t max, Utf8Validator* utf8);
    // The message's last compressed byte was given: appends the 00 00 ff ff tail and flushes.
    Result finish(std::string& out, std::uint64_t max, Utf8Validator* utf8);

private:
    Result run_inflate(const unsigned char* data, std::size_t n, std::string& out, std::uint64_t max,
                       Utf8Validator* utf8);
    DeflateParams p_;
    void* def_ = nullptr;  // z_stream*, made on first use
    void* inf_ = nullptr;
};

}  // namespace luath::http::ws
