// WebSocket (RFC 6455) pieces that need neither Python nor libuv: the opening handshake's checks and
// Sec-WebSocket-Accept (with our own SHA-1 and base64), a streaming UTF-8 validator, in-place unmasking,
// the server's frame header writer, and an incremental frame parser that assembles messages.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "http/parser.hpp"

namespace luath::http::ws {

class Deflate;  // http/ws_deflate.hpp (permessage-deflate)

enum Opcode : std::uint8_t { kCont = 0, kText = 1, kBinary = 2, kClose = 8, kPing = 9, kPong = 10 };

// Close codes (RFC 6455 7.4.1).
constexpr std::uint16_t kNormal = 1000, kGoingAway = 1001, kProtocolError = 1002, kNoStatus = 1005,
                        kAbnormal = 1006, kInvalidData = 1007, kTooBig = 1009, kInternalError = 1011;

// SHA-1 (FIPS 180-4) of n bytes.
void sha1(const void* data, std::size_t n, std::uint8_t out[20]);
// Standard base64 with padding; out needs 4 * ((n + 2) / 3) bytes. Returns the length written.
std::size_t base64_encode(const std::uint8_t* in, std::size_t n, char* out);
// A Sec-WebSocket-Key: the base64 encoding of 16 bytes (24 characters ending in "==").
bool valid_key(std::string_view key);
// Sec-WebSocket-Accept for a key: base64(SHA-1(key + GUID)), 28 characters.
void accept_key(std::string_view key, char out[28]);

enum class HandshakeError : std::uint8_t {
    None,
    NotWebSocket,  // no "Upgrade: websocket" with "Connection: upgrade": not a WebSocket request at all
    BadMethod,     // not GET, or HTTP/1.0
    BadVersion,    // Sec-WebSocket-Version is not 13 (answer 426 with Sec-WebSocket-Version: 13)
    BadKey,        // Sec-WebSocket-Key missing, repeated or malformed
    HasBody,       // a body on the upgrade request
};

struct Handshake {
    std::string_view key;
};

// Checks an upgrade request (req.upgrade is set by the parser). With None, hs.key is the key.
HandshakeError check_handshake(const Request& req, Handshake& hs);

// Calls f(token) for each comma-separated element of a header list value, trimmed of spaces and tabs
// (empty elements skipped).
template <class F>
void for_each_element(std::string_view list, F&& f) {
    std::size_t i = 0;
    while (i <= list.size()) {
        std::size_t j = list.find(',', i);
        if (j == std::string_view::npos) j = list.size();
        std::string_view e = list.substr(i, j - i);
        while (!e.empty() && (e.front() == ' ' || e.front() == '\t')) e.remove_prefix(1);
        while (!e.empty() && (e.back() == ' ' || e.back() == '\t')) e.remove_suffix(1);
        if (!e.empty()) f(e);
        i = j + 1;
    }
}

// Streaming UTF-8 validation (RFC 3629: no overlongs, no surrogates, nothing above U+10FFFF); a
// sequence may be split between calls. Once invalid it stays invalid.
class Utf8Validator {
public:
    bool feed(const void* data, std::size_t n);
    // True when everything fed so far is valid and ends on a character boundary.
    bool complete() const { return ok_ && need_ == 0; }
    bool ok() const { return ok_; }
    void reset() { *this = Utf8Validator{}; }

private:
    std::uint8_t need_ = 0;  // continuation bytes still expected
    std::uint8_t lo_ = 0x80, hi_ = 0xBF;  // allowed range of the next continuation byte
    bool ok_ = true;
};

bool valid_utf8(std::string_view s);

// XORs n bytes with the 4-byte masking key (wire order), starting at key position offset & 3. Returns
// the key position after the last byte. Works 8 bytes at a time.
std::size_t unmask(char* p, std::size_t n, const std::uint8_t key[4], std::size_t offset);

// Writes an unmasked server frame header (2, 4 or 10 bytes) into out (at least 10 bytes).
std::size_t frame_header(char* out, std::uint8_t opcode, std::uint64_t len, bool fin = true, bool rsv1 = false);

// Writes a close frame (header and payload: code, then reason cut to fit 125 bytes on a UTF-8
// boundary) into out (at least 129 bytes). code 0: an empty close frame. Returns the length.
std::size_t close_frame(char* out, std::uint16_t code, std::string_view reason);

// A close code a peer may send (1000-1003, 1007-1014, 3000-4999).
bool valid_close_code(unsigned code);

// Incremental parser of client frames into messages. Feed it the unconsumed bytes each time more
// arrive: it consumes what it can (unmasking in place) and returns one event at a time.
class Receiver {
public:
    enum class Event : std::uint8_t {
        NeedMore,  // every complete piece was consumed; call again with more bytes
        Message,   // a whole text or binary message: text(), data()
        Ping,      // data() is the payload
        Pong,
        Close,     // close_code() (kNoStatus when the frame had none) and close_reason()
        Error,     // protocol error: close with error_code(); error_reason() says why. Sticky.
    };

    // max_message: largest message (after inflation) in bytes, 0 = no limit. deflate: the negotiated
    // permessage-deflate state, or null (RSV1 is then a protocol error).
    void reset(std::uint64_t max_message, Deflate* deflate = nullptr);

    // Consumes bytes from [p, end). A complete unfragmented, uncompressed data frame of at most view_max
    // bytes (header included) is returned as a view into the input (unmasked in place); the caller must
    // then keep the input bytes from p on, and may move them (offsets only are kept). Views stay valid
    // until the next call.
    Event next(char*& p, char* end, std::size_t view_max);

    bool text() const { return text_; }
    std::string_view data() const { return data_; }
    std::uint16_t close_code() const { return close_code_; }
    std::string_view close_reason() const { return close_reason_; }
    std::uint16_t error_code() const { return error_code_; }
    const char* error_reason() const { return error_reason_; }
    // After a Message: frees a large assembly buffer (keeps small ones for reuse).
    void trim();

private:
    Event fail(std::uint16_t code, const char* why) {
        error_code_ = code;
        error_reason_ = why;
        failed_ = true;
        return Event::Error;
    }
    Event control(std::uint8_t opcode, char* payload, std::size_t n);
    Event append(char* p, std::size_t n);     // payload bytes of the current data frame (unmasked)
    Event end_frame();                        // the current data frame's last byte was consumed
    Event inflated(int deflate_result);       // Deflate::Result -> NeedMore or Error

    std::uint64_t max_ = 0;
    Deflate* deflate_ = nullptr;
    std::string msg_;                // message being assembled (fragmented, large or compressed)
    std::string_view data_;
    std::string_view close_reason_;
    Utf8Validator utf8_;
    std::uint64_t left_ = 0;         // payload bytes left in the current (streamed) data frame
    std::size_t key_pos_ = 0;
    std::uint8_t key_[4] = {};
    std::uint16_t close_code_ = 0;
    std::uint16_t error_code_ = 0;
    const char* error_reason_ = "";
    bool in_frame_ = false;          // inside a data frame's payload (streamed)
    bool fin_ = false;               // the current frame is the message's last
    bool in_message_ = false;        // a fragmented message has started
    bool text_ = false;
    bool compressed_ = false;        // the current message has RSV1
    bool failed_ = false;
};

}  // namespace luath::http::ws
