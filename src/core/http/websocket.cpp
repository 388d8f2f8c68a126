#include "http/websocket.hpp"

#include <cstring>

#include "http/response.hpp"
#include "http/ws_deflate.hpp"

namespace luath::http::ws {

// ---------------------------------------------------------------- SHA-1, base64, the handshake

namespace {

inline std::uint32_t rol(std::uint32_t x, int n) { return (x << n) | (x >> (32 - n)); }

void sha1_block(std::uint32_t h[5], const std::uint8_t* b) {
    std::uint32_t w[80];
    for (int i = 0; i < 16; ++i)
        w[i] = (std::uint32_t(b[4 * i]) << 24) | (std::uint32_t(b[4 * i + 1]) << 16) |
               (std::uint32_t(b[4 * i + 2]) << 8) | std::uint32_t(b[4 * i + 3]);
    for (int i = 16; i < 80; ++i) w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    std::uint32_t a = h[0], bb = h[1], c = h[2], d = h[3], e = h[4];
    for (int i = 0; i < 80; ++i) {
        std::uint32_t f, k;
        if (i < 20) {
            f = (bb & c) | (~bb & d);
            k = 0x5A827999;
        } else if (i < 40) {
            f = bb ^ c ^ d;
            k = 0x6ED9EBA1;
        } else if (i < 60) {
            f = (bb & c) | (bb & d) | (c & d);
            k = 0x8F1BBCDC;
        } else {
            f = bb ^ c ^ d;
            k = 0xCA62C1D6;
        }
        std::uint32_t t = rol(a, 5) + f + e + k + w[i];
        e = d;
        d = c;
        c = rol(bb, 30);
        bb = a;
        a = t;
    }
    h[0] += a;
    h[1] += bb;
    h[2] += c;
    h[3] += d;
    h[4] += e;
}

constexpr char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr std::string_view kGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

bool b64_char(char ch) {
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '+' ||
           ch == '/';
}

bool has_token(std::string_view list, std::string_view token) {
    bool found = false;
    for_each_element(list, [&](std::string_view e) {
        if (iequals(e, token)) found = true;
    });
    return found;
}

}  // namespace

void sha1(const void* data, std::size_t n, std::uint8_t out[20]) {
    std::uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
    const auto* p = static_cast<const std::uint8_t*>(data);
    std::size_t i = 0;
    for (; i + 64 <= n; i += 64) sha1_block(h, p + i);
    std::uint8_t tail[128] = {};
    std::size_t rest = n - i;
    if (rest) std::memcpy(tail, p + i, rest);
    tail[rest] = 0x80;
    std::size_t tlen = rest + 1 + 8 <= 64 ? 64 : 128;
    std::uint64_t bits = static_cast<std::uint64_t>(n) * 8;
    for (int k = 0; k < 8; ++k) tail[tlen - 1 - k] = static_cast<std::uint8_t>(bits >> (8 * k));
    sha1_block(h, tail);
    if (tlen == 128) sha1_block(h, tail + 64);
    for (int k = 0; k < 5; ++k) {
        out[4 * k] = static_cast<std::uint8_t>(h[k] >> 24);
        out[4 * k + 1] = static_cast<std::uint8_t>(h[k] >> 16);
        out[4 * k + 2] = static_cast<std::uint8_t>(h[k] >> 8);
        out[4 * k + 3] = static_cast<std::uint8_t>(h[k]);
    }
}

std::size_t base64_encode(const std::uint8_t* in, std::size_t n, char* out) {
    std::size_t o = 0, i = 0;
    for (; i + 3 <= n; i += 3) {
        std::uint32_t v = (std::uint32_t(in[i]) << 16) | (std::uint32_t(in[i + 1]) << 8) | in[i + 2];
        out[o++] = kB64[v >> 18];
        out[o++] = kB64[(v >> 12) & 63];
        out[o++] = kB64[(v >> 6) & 63];
        out[o++] = kB64[v & 63];
    }
    if (n - i == 1) {
        std::uint32_t v = std::uint32_t(in[i]) << 16;
        out[o++] = kB64[v >> 18];
        out[o++] = kB64[(v >> 12) & 63];
        out[o++] = '=';
        out[o++] = '=';
    } else if (n - i == 2) {
        std::uint32_t v = (std::uint32_t(in[i]) << 16) | (std::uint32_t(in[i + 1]) << 8);
        out[o++] = kB64[v >> 18];
        out[o++] = kB64[(v >> 12) & 63];
        out[o++] = kB64[(v >> 6) & 63];
        out[o++] = '=';
    }
    return o;
}

bool valid_key(std::string_view key) {
    if (key.size() != 24 || key[22] != '=' || key[23] != '=') return false;
    for (std::size_t i = 0; i < 22; ++i)
        if (!b64_char(key[i])) return false;
    // The last character carries 2 bits of data: its low 4 bits must be zero.
    const char* z = std::strchr(kB64, key[21]);
    return ((z - kB64) & 15) == 0;
}

void accept_key(std::string_view key, char out[28]) {
    char buf[64 + 36];
    std::size_t n = key.size() < 64 ? key.size() : 64;
    std::memcpy(buf, key.data(), n);
    std::memcpy(buf + n, kGuid.data(), kGuid.size());
    std::uint8_t digest[20];
    sha1(buf, n + kGuid.size(), digest);
    base64_encode(digest, 20, out);
}

HandshakeError check_handshake(const Request& req, Handshake& hs) {
    bool ws_upgrade = false, conn_upgrade = false, version_ok = false;
    int keys = 0;
    for (std::uint32_t i = 0; i < req.num_headers; ++i) {
        const Header& h = req.headers[i];
        if (iequals(h.name, "upgrade")) {
            if (has_token(h.value, "websocket")) ws_upgrade = true;
        } else if (iequals(h.name, "connection")) {
            if (has_token(h.value, "upgrade")) conn_upgrade = true;
        } else if (iequals(h.name, "sec-websocket-version")) {
            version_ok = h.value == "13";
        } else if (iequals(h.name, "sec-websocket-key")) {
            ++keys;
            hs.key = h.value;
        }
    }
    if (!ws_upgrade || !conn_upgrade) return HandshakeError::NotWebSocket;
    if (req.method_id != Method::Get || req.version_minor == 0) return HandshakeError::BadMethod;
    if (!version_ok) return HandshakeError::BadVersion;
    if (keys != 1 || !valid_key(hs.key)) return HandshakeError::BadKey;
    if (req.framing != Framing::None && !(req.framing == Framing::ContentLength && req.content_length == 0))
        return HandshakeError::HasBody;
    return HandshakeError::None;
}

// ---------------------------------------------------------------- UTF-8

bool Utf8Validator::feed(const void* data, std::size_t n) {
    if (!ok_) return false;
    const auto* s = static_cast<const std::uint8_t*>(data);
    std::size_t i = 0;
    while (i < n) {
        if (need_ == 0) {
            while (i + 8 <= n) {  // ASCII runs 8 bytes at a time
                std::uint64_t w;
                std::memcpy(&w, s + i, 8);
                if (w & 0x8080808080808080ull) break;
                i += 8;
            }
            if (i == n) break;
            std::uint8_t c = s[i++];
            if (c < 0x80) continue;
            if (c < 0xC2) return ok_ = false;
            if (c < 0xE0) {
                need_ = 1;
                lo_ = 0x80;
                hi_ = 0xBF;
            } else if (c < 0xF0) {
                need_ = 2;
                lo_ = c == 0xE0 ? 0xA0 : 0x80;  // no overlongs
                hi_ = c == 0xED ? 0x9F : 0xBF;  // no surrogates
            } else if (c < 0xF5) {
                need_ = 3;
                lo_ = c == 0xF0 ? 0x90 : 0x80;  // no overlongs
                hi_ = c == 0xF4 ? 0x8F : 0xBF;  // nothing above U+10FFFF
            } else {
                return ok_ = false;
            }
        } else {
            std::uint8_t c = s[i++];
            if (c < lo_ || c > hi_) return ok_ = false;
            lo_ = 0x80;
            hi_ = 0xBF;
            --need_;
        }
    }
    return true;
}

bool valid_utf8(std::string_view s) {
    Utf8Validator v;
    v.feed(s.data(), s.size());
    return v.complete();
}

// ---------------------------------------------------------------- frames

std::size_t unmask(char* p, std::size_t n, const std::uint8_t key[4], std::size_t offset) {
    std::uint8_t k[8];
    for (int i = 0; i < 8; ++i) k[i] = key[(offset + i) & 3];
    std::size_t i = 0;
    if (n >= 8) {
        std::uint64_t k64;
        std::memcpy(&k64, k, 8);
        for (; i + 8 <= n; i += 8) {
            std::uint64_t w;
            std::memcpy(&w, p + i, 8);
            w ^= k64;
            std::memcpy(p + i, &w, 8);
        }
    }
    for (; i < n; ++i) p[i] = static_cast<char>(p[i] ^ k[i & 7]);
    return (offset + n) & 3;
}

std::size_t frame_header(char* out, std::uint8_t opcode, std::uint64_t len, bool fin, bool rsv1) {
    out[0] = static_cast<char>((fin ? 0x80 : 0) | (rsv1 ? 0x40 : 0) | (opcode & 0x0F));
    if (len < 126) {
        out[1] = static_cast<char>(len);
        return 2;
    }
    if (len <= 0xFFFF) {
        out[1] = 126;
        out[2] = static_cast<char>(len >> 8);
        out[3] = static_cast<char>(len);
        return 4;
    }
    out[1] = 127;
    for (int i = 0; i < 8; ++i) out[2 + i] = static_cast<char>(len >> (56 - 8 * i));
    return 10;
}

std::size_t close_frame(char* out, std::uint16_t code, std::string_view reason) {
    if (code == 0) {
        out[0] = static_cast<char>(0x88);
        out[1] = 0;
        return 2;
    }
    if (reason.size() > 123) {
        std::size_t n = 123;
        // Do not cut a UTF-8 sequence: back up to a lead byte.
        while (n > 0 && (static_cast<std::uint8_t>(reason[n]) & 0xC0) == 0x80) --n;
        reason = reason.substr(0, n);
    }
    std::size_t h = frame_header(out, kClose, 2 + reason.size());
    out[h] = static_cast<char>(code >> 8);
    out[h + 1] = static_cast<char>(code);
    if (!reason.empty()) std::memcpy(out + h + 2, reason.data(), reason.size());
    return h + 2 + reason.size();
}

bool valid_close_code(unsigned code) {
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);
}

// ---------------------------------------------------------------- receiver

void Receiver::reset(std::uint64_t max_message, Deflate* deflate) {
    max_ = max_message;
    deflate_ = deflate;
    msg_.clear();
    data_ = {};
    close_reason_ = {};
    utf8_.reset();
    left_ = 0;
    key_pos_ = 0;
    close_code_ = error_code_ = 0;
    error_reason_ = "";
    in_frame_ = fin_ = in_message_ = text_ = compressed_ = failed_ = false;
}

void Receiver::trim() {
    if (msg_.capacity() > 65536) std::string().swap(msg_);
    else msg_.clear();
}

Receiver::Event Receiver::control(std::uint8_t opcode, char* payload, std::size_t n) {
    data_ = {payload, n};
    if (opcode == kPing) return Event::Ping;
    if (opcode == kPong) return Event::Pong;
    // Close
    close_reason_ = {};
    if (n == 0) {
        close_code_ = kNoStatus;
        return Event::Close;
    }
    if (n == 1) return fail(kProtocolError, "close frame with a 1-byte payload");
    unsigned code = (static_cast<std::uint8_t>(payload[0]) << 8) | static_cast<std::uint8_t>(payload[1]);
    if (!valid_close_code(code)) return fail(kProtocolError, "invalid close code");
    if (!valid_utf8({payload + 2, n - 2})) return fail(kInvalidData, "invalid UTF-8 in the close reason");
    close_code_ = static_cast<std::uint16_t>(code);
    close_reason_ = {payload + 2, n - 2};
    return Event::Close;
}

Receiver::Event Receiver::inflated(int result) {
    switch (static_cast<Deflate::Result>(result)) {
        case Deflate::Result::Ok: return Event::NeedMore;
        case Deflate::Result::TooBig: return fail(kTooBig, "message too big");
        case Deflate::Result::BadUtf8: return fail(kInvalidData, "invalid UTF-8 in a text message");
        default: return fail(kInvalidData, "invalid compressed data");
    }
}

Receiver::Event Receiver::append(char* p, std::size_t n) {
    if (compressed_) return inflated(static_cast<int>(deflate_->inflate(p, n, msg_, max_, text_ ? &utf8_ : nullptr)));
    if (text_ && !utf8_.feed(p, n)) return fail(kInvalidData, "invalid UTF-8 in a text message");
    msg_.append(p, n);
    return Event::NeedMore;
}

Receiver::Event Receiver::end_frame() {
    in_frame_ = false;
    if (!fin_) {
        in_message_ = true;
        return Event::NeedMore;
    }
    in_message_ = false;
    if (compressed_ && inflated(static_cast<int>(deflate_->finish(msg_, max_, text_ ? &utf8_ : nullptr))) == Event::Error)
        return Event::Error;
    if (text_ && !utf8_.complete()) return fail(kInvalidData, "invalid UTF-8 in a text message");
    data_ = msg_;
    return Event::Message;
}

Receiver::Event Receiver::next(char*& p, char* end, std::size_t view_max) {
    if (failed_) return Event::Error;
    for (;;) {
        if (in_frame_) {
            if (left_ > 0) {
                if (p == end) return Event::NeedMore;
                std::size_t avail = static_cast<std::size_t>(end - p);
                std::size_t n = left_ < avail ? static_cast<std::size_t>(left_) : avail;
                key_pos_ = unmask(p, n, key_, key_pos_);
                Event e = append(p, n);
                p += n;
                left_ -= n;
                if (e == Event::Error) return e;
                if (left_ > 0) return Event::NeedMore;
            }
            Event e = end_frame();
            if (e != Event::NeedMore) return e;
            continue;
        }
        std::size_t avail = static_cast<std::size_t>(end - p);
        if (avail < 2) return Event::NeedMore;
        auto* b = reinterpret_cast<std::uint8_t*>(p);
        const bool fin = b[0] & 0x80, rsv1 = b[0] & 0x40;
        const std::uint8_t opcode = b[0] & 0x0F;
        if (b[0] & 0x30) return fail(kProtocolError, "reserved bits set");
        if (opcode >= 3 && opcode != kClose && opcode != kPing && opcode != kPong)
            return fail(kProtocolError, "unknown opcode");
        const bool is_control = opcode >= 8;
        if (rsv1 && (!deflate_ || is_control || opcode == kCont))
            return fail(kProtocolError, "RSV1 set without permessage-deflate");
        if (!(b[1] & 0x80)) return fail(kProtocolError, "unmasked client frame");
        std::uint64_t len = b[1] & 0x7F;
        std::size_t hlen = 2;
        if (is_control) {
            if (!fin) return fail(kProtocolError, "fragmented control frame");
            if (len > 125) return fail(kProtocolError, "control frame over 125 bytes");
        } else if (opcode == kCont) {
            if (!in_message_) return fail(kProtocolError, "continuation frame outside a message");
        } else if (in_message_) {
            return fail(kProtocolError, "new message inside a fragmented message");
        }
        if (len == 126) {
            if (avail < 4) return Event::NeedMore;
            len = (std::uint64_t(b[2]) << 8) | b[3];
            hlen = 4;
        } else if (len == 127) {
            if (avail < 10) return Event::NeedMore;
            len = 0;
            for (int i = 0; i < 8; ++i) len = (len << 8) | b[2 + i];
            if (len >> 63) return fail(kProtocolError, "frame length over 2^63");
            hlen = 10;
        }
        if (avail < hlen + 4) return Event::NeedMore;
        const std::uint8_t* key = b + hlen;
        hlen += 4;
        if (!is_control) {
            const std::uint64_t so_far = opcode == kCont ? msg_.size() : 0;
            const bool comp = opcode == kCont ? compressed_ : rsv1;
            if (max_ && !comp && (len > max_ || so_far + len > max_)) return fail(kTooBig, "message too big");
        }
        if (is_control || (fin && opcode != kCont && !rsv1 && hlen + len <= view_max)) {
            // Whole in the buffer: handled as a view (wait for the rest when it is not here yet).
            if (avail < hlen + len) return Event::NeedMore;
            char* payload = p + hlen;
            std::size_t n = static_cast<std::size_t>(len);
            unmask(payload, n, key, 0);
            p += hlen + n;
            if (is_control) return control(opcode, payload, n);
            text_ = opcode == kText;
            if (text_ && !valid_utf8({payload, n})) return fail(kInvalidData, "invalid UTF-8 in a text message");
            data_ = {payload, n};
            return Event::Message;
        }
        // Streamed into the assembly buffer.
        if (opcode != kCont) {
            text_ = opcode == kText;
            compressed_ = rsv1;
            utf8_.reset();
            msg_.clear();
            if (!rsv1 && fin && len <= (64u << 20)) msg_.reserve(static_cast<std::size_t>(len));
        }
        std::memcpy(key_, key, 4);
        key_pos_ = 0;
        left_ = len;
        fin_ = fin;
        in_frame_ = true;
        p += hlen;
    }
}

}  // namespace luath::http::ws
