// TLS 1.3 record framing (RFC 8446 5.1-5.4, 7.1): the pure parts of luath's own application-data record
// layer (tls.cpp), kept free of OpenSSL and libuv so they can be unit-tested. No Python.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace luath::net::tls13 {

constexpr std::size_t kHeaderLen = 5;
constexpr std::size_t kTagLen = 16;      // every TLS 1.3 AEAD (AES-GCM, ChaCha20-Poly1305)
constexpr std::size_t kNonceLen = 12;
constexpr std::size_t kMaxPlain = 16384;                  // 2^14: content of one record
constexpr std::size_t kMaxCipher = kMaxPlain + 256;       // TLSCiphertext.length limit
constexpr std::size_t kMaxRecord = kHeaderLen + kMaxCipher;

enum ContentType : std::uint8_t {
    kChangeCipherSpec = 20,
    kAlert = 21,
    kHandshake = 22,
    kApplicationData = 23,
};

// The per-record nonce (5.3): the 64-bit sequence number, big-endian, left-padded to the IV's length
// and XORed with the static IV.
inline void make_nonce(const unsigned char* iv, std::uint64_t seq, unsigned char* nonce) {
    std::memcpy(nonce, iv, kNonceLen);
    for (int i = 0; i < 8; ++i) nonce[kNonceLen - 1 - i] ^= static_cast<unsigned char>(seq >> (8 * i));
}

// The header of a protected record (opaque_type application_data, legacy version 0x0303): also the AAD.
inline void write_header(unsigned char* h, std::size_t cipher_len) {
    h[0] = kApplicationData;
    h[1] = 3;
    h[2] = 3;
    h[3] = static_cast<unsigned char>(cipher_len >> 8);
    h[4] = static_cast<unsigned char>(cipher_len);
}

// What a buffer starting at a record header holds.
struct HeaderView {
    enum Status { Partial, Complete, Bad } status;
    std::uint8_t type = 0;
    std::size_t cipher_len = 0;  // TLSCiphertext.length
};

// Complete when the whole record is in [p, p + n). Bad when the length exceeds 2^14 + 256
// (record_overflow) or cannot hold the tag and the content type (decode error).
inline HeaderView parse_header(const unsigned char* p, std::size_t n) {
    HeaderView v{HeaderView::Partial};
    if (n < kHeaderLen) return v;
    v.type = p[0];
    v.cipher_len = (static_cast<std::size_t>(p[3]) << 8) | p[4];
    if (v.cipher_len > kMaxCipher || v.cipher_len < kTagLen + 1) {
        v.status = HeaderView::Bad;
        return v;
    }
    v.status = n >= kHeaderLen + v.cipher_len ? HeaderView::Complete : HeaderView::Partial;
    return v;
}

// TLSInnerPlaintext (5.2, 5.4): content, then the real content type, then zero padding. Strips the
// padding: returns the content type (0 when the plaintext is all zeros: unexpected_message) and sets
// content_len.
inline std::uint8_t inner_type(const unsigned char* plain, std::size_t n, std::size_t& content_len) {
    while (n > 0 && plain[n - 1] == 0) --n;
    if (n == 0) {
        content_len = 0;
        return 0;
    }
    content_len = n - 1;
    return plain[n - 1];
}

// HkdfLabel (7.1) for HKDF-Expand-Label(secret, label, "" context, length): written into out (at most
// 2 + 1 + 255 + 1 bytes); returns its size, 0 when the label is too long.
inline std::size_t hkdf_label(unsigned char* out, std::size_t length, const char* label) {
    static const char kPrefix[] = "tls13 ";
    std::size_t ll = std::strlen(label);
    if (ll + 6 > 255 || length > 0xffff) return 0;
    std::size_t k = 0;
    out[k++] = static_cast<unsigned char>(length >> 8);
    out[k++] = static_cast<unsigned char>(length);
    out[k++] = static_cast<unsigned char>(6 + ll);
    std::memcpy(out + k, kPrefix, 6);
    k += 6;
    std::memcpy(out + k, label, ll);
    k += ll;
    out[k++] = 0;  // empty context
    return k;
}

// Parses hex (keylog lines) into out; false unless exactly n bytes of hex digits.
inline bool unhex(const char* s, std::size_t slen, unsigned char* out, std::size_t n) {
    if (slen != 2 * n) return false;
    auto v = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
    };
    for (std::size_t i = 0; i < n; ++i) {
        int hi = v(s[2 * i]), lo = v(s[2 * i + 1]);
        if (hi < 0 || lo < 0) return false;
        out[i] = static_cast<unsigned char>(hi << 4 | lo);
    }
    return true;
}

}  // namespace luath::net::tls13
