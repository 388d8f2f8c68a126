#include "http/proxy_protocol.hpp"

#include <arpa/inet.h>

#include <cstring>

namespace luath::http {

namespace {

using u8 = unsigned char;

constexpr u8 kV2Signature[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
constexpr u8 kTlvCrc32c = 0x03;  // PP2_TYPE_CRC32C

// One table of 256 entries for the reflected polynomial 0x82F63B78, made at compile time.
struct Crc32cTable {
    std::uint32_t t[256];
    constexpr Crc32cTable() : t() {
        for (std::uint32_t i = 0; i < 256; ++i) {
            std::uint32_t c = i;
            for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
            t[i] = c;
        }
    }
};
constexpr Crc32cTable kCrc32c;

constexpr ProxyResult need() { return {ProxyStatus::NeedMore, ProxyError::None, 0}; }
constexpr ProxyResult fail(ProxyError e) { return {ProxyStatus::Error, e, 0}; }
constexpr ProxyResult done(std::size_t n) { return {ProxyStatus::Done, ProxyError::None, n}; }

bool is_digit(u8 c) { return c >= '0' && c <= '9'; }
bool is_v4_char(u8 c) { return is_digit(c) || c == '.'; }
bool is_v6_char(u8 c) {
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == ':' || c == '.';
}

// v1: scans a non-empty token of bytes accepted by ok (at most maxlen) from i, which is left on the byte
// that ends it; that byte must be `term`. False with r set (NeedMore or Error) otherwise. Every byte is
// looked at only once all bytes before it have been, so a prefix never gives a different error.
bool token(const u8* p, std::size_t len, std::size_t& i, bool (*ok)(u8), std::size_t maxlen, u8 term,
           ProxyError err, ProxyResult& r) {
    const std::size_t start = i;
    for (;;) {
        if (i >= kProxyV1Max) {
            r = fail(ProxyError::TooLong);
            return false;
        }
        if (i >= len) {
            r = need();
            return false;
        }
        if (!ok(p[i])) break;
        if (i - start >= maxlen) {
            r = fail(err);
            return false;
        }
        ++i;
    }
    if (i == start || p[i] != term) {
        r = fail(err);
        return false;
    }
    return true;
}

// Dotted quad, exactly four decimal parts 0..255 without leading zeros.
bool parse_v4(const u8* s, std::size_t n, u8* out) {
    std::size_t i = 0;
    for (int part = 0; part < 4; ++part) {
        if (part > 0) {
            if (i >= n || s[i] != '.') return false;
            ++i;
        }
        const std::size_t start = i;
        unsigned v = 0;
        while (i < n && is_digit(s[i]) && i - start < 3) v = v * 10 + (s[i++] - '0');
        const std::size_t digits = i - start;
        if (digits == 0 || v > 255 || (digits > 1 && s[start] == '0')) return false;
        out[part] = static_cast<u8>(v);
    }
    return i == n;
}

bool parse_v6(const u8* s, std::size_t n, u8* out) {
    char text[64];
    if (n >= sizeof text) return false;
    std::memcpy(text, s, n);
    text[n] = '\0';
    return ::inet_pton(AF_INET6, text, out) == 1;
}

// Decimal 0..65535, "0" or without a leading zero.
bool parse_port(const u8* s, std::size_t n, std::uint16_t& out) {
    if (n == 0 || n > 5 || (n > 1 && s[0] == '0')) return false;
    unsigned v = 0;
    for (std::size_t i = 0; i < n; ++i) v = v * 10 + (s[i] - '0');
    if (v > 65535) return false;
    out = static_cast<std::uint16_t>(v);
    return true;
}

// Needs p[i] == '\r' and p[i + 1] == '\n'; the header then ends after the LF.
ProxyResult crlf(const u8* p, std::size_t len, std::size_t i, ProxyError err) {
    if (i >= kProxyV1Max) return fail(ProxyError::TooLong);
    if (i >= len) return need();
    if (p[i] != '\r') return fail(err);
    if (i + 1 >= kProxyV1Max) return fail(ProxyError::TooLong);
    if (i + 1 >= len) return need();
    if (p[i + 1] != '\n') return fail(ProxyError::BadSyntax);
    return done(i + 2);
}

ProxyResult parse_v1(const u8* p, std::size_t len, ProxyHeader& out) {
    static constexpr char kPrefix[] = "PROXY ";
    std::size_t i = 0;
    for (; i < 6; ++i) {
        if (i >= len) return need();
        if (p[i] != static_cast<u8>(kPrefix[i])) return fail(ProxyError::BadSignature);
    }
    // The protocol: TCP4, TCP6 or UNKNOWN, ended by SP (or CR for UNKNOWN).
    const std::size_t proto = i;
    for (;;) {
        if (i >= len) return need();
        const u8 c = p[i];
        if (c == ' ' || c == '\r') break;
        if (!((c >= 'A' && c <= 'Z') || is_digit(c)) || i - proto >= 7) return fail(ProxyError::BadSyntax);
        ++i;
    }
    const std::size_t plen = i - proto;
    auto is = [&](const char* name) {
        return plen == std::strlen(name) && std::memcmp(p + proto, name, plen) == 0;
    };
    if (is("UNKNOWN")) {
        // Whatever follows up to the CRLF is ignored (the spec); the real peer stays.
        for (;;) {
            if (i >= kProxyV1Max) return fail(ProxyError::TooLong);
            if (i >= len) return need();
            if (p[i] == '\r') break;
            if (p[i] == '\n') return fail(ProxyError::BadSyntax);
            ++i;
        }
        ProxyResult r = crlf(p, len, i, ProxyError::BadSyntax);
        if (r.status == ProxyStatus::Done) out = ProxyHeader{.version = 1};
        return r;
    }
    const bool v6 = is("TCP6");
    if (!(v6 || is("TCP4")) || p[i] != ' ') return fail(ProxyError::BadSyntax);
    ++i;
    bool (*ok)(u8) = v6 ? is_v6_char : is_v4_char;
    const std::size_t maxlen = v6 ? 45 : 15;
    bool (*addr)(const u8*, std::size_t, u8*) = v6 ? parse_v6 : parse_v4;
    ProxyHeader h;
    h.version = 1;
    h.family = v6 ? ProxyHeader::Family::Inet6 : ProxyHeader::Family::Inet;
    ProxyResult r;
    std::size_t start = i;
    if (!token(p, len, i, ok, maxlen, ' ', ProxyError::BadAddress, r)) return r;
    if (!addr(p + start, i - start, h.src_addr)) return fail(ProxyError::BadAddress);
    start = ++i;
    if (!token(p, len, i, ok, maxlen, ' ', ProxyError::BadAddress, r)) return r;
    if (!addr(p + start, i - start, h.dst_addr)) return fail(ProxyError::BadAddress);
    start = ++i;
    if (!token(p, len, i, is_digit, 5, ' ', ProxyError::BadPort, r)) return r;
    if (!parse_port(p + start, i - start, h.src_port)) return fail(ProxyError::BadPort);
    start = ++i;
    if (!token(p, len, i, is_digit, 5, '\r', ProxyError::BadPort, r)) return r;
    if (!parse_port(p + start, i - start, h.dst_port)) return fail(ProxyError::BadPort);
    r = crlf(p, len, i, ProxyError::BadPort);
    if (r.status == ProxyStatus::Done) out = h;
    return r;
}

ProxyResult parse_v2(const u8* p, std::size_t len, ProxyHeader& out) {
    for (std::size_t i = 0; i < sizeof kV2Signature; ++i) {
        if (i >= len) return need();
        if (p[i] != kV2Signature[i]) return fail(ProxyError::BadSignature);
    }
    if (len < 13) return need();
    if ((p[12] >> 4) != 2) return fail(ProxyError::BadVersion);
    const unsigned command = p[12] & 0x0F;  // 0 LOCAL, 1 PROXY
    if (command > 1) return fail(ProxyError::BadCommand);
    if (len < 14) return need();
    const u8 fam = p[13];
    std::size_t addr_len = 0;
    if (command == 1) {
        const unsigned af = fam >> 4, transport = fam & 0x0F;
        if (fam != 0x00 && (af < 1 || af > 3 || transport < 1 || transport > 2))
            return fail(ProxyError::BadFamily);
        addr_len = af == 1 ? 12 : af == 2 ? 36 : af == 3 ? 216 : 0;
    }
    // LOCAL: the family is ignored (the spec: the receiver discards the block).
    if (len < 16) return need();
    const std::size_t body = (std::size_t{p[14]} << 8) | p[15];
    const std::size_t total = 16 + body;
    if (total > kProxyHeaderMax) return fail(ProxyError::TooLong);
    if (body < addr_len) return fail(ProxyError::BadLength);
    if (len < total) return need();

    ProxyHeader h;
    h.version = 2;
    if (command == 0) {
        h.local = true;
        out = h;
        return done(total);
    }
    if (fam == 0x00) {  // UNSPEC: the block is ignored, the real peer stays
        out = h;
        return done(total);
    }
    const u8* a = p + 16;
    const unsigned af = fam >> 4;
    if (af == 1) {
        h.family = ProxyHeader::Family::Inet;
        std::memcpy(h.src_addr, a, 4);
        std::memcpy(h.dst_addr, a + 4, 4);
        h.src_port = static_cast<std::uint16_t>((a[8] << 8) | a[9]);
        h.dst_port = static_cast<std::uint16_t>((a[10] << 8) | a[11]);
    } else if (af == 2) {
        h.family = ProxyHeader::Family::Inet6;
        std::memcpy(h.src_addr, a, 16);
        std::memcpy(h.dst_addr, a + 16, 16);
        h.src_port = static_cast<std::uint16_t>((a[32] << 8) | a[33]);
        h.dst_port = static_cast<std::uint16_t>((a[34] << 8) | a[35]);
    }  // UNIX: no IP address, the real peer stays
    // TLVs: type (1), length (2, big-endian), value; each must fit in the header exactly.
    std::size_t pos = 16 + addr_len, crc_at = 0;
    while (pos < total) {
        if (total - pos < 3) return fail(ProxyError::BadTlv);
        const std::size_t tl = (std::size_t{p[pos + 1]} << 8) | p[pos + 2];
        if (tl > total - pos - 3) return fail(ProxyError::BadTlv);
        if (p[pos] == kTlvCrc32c) {
            if (tl != 4 || crc_at) return fail(ProxyError::BadTlv);
            crc_at = pos + 3;
        }
        pos += 3 + tl;
    }
    if (crc_at) {  // over the whole header, the checksum's own 4 bytes taken as zeros
        static constexpr u8 kZeros[4] = {};
        std::uint32_t c = crc32c(p, crc_at);
        c = crc32c(kZeros, 4, c);
        c = crc32c(p + crc_at + 4, total - crc_at - 4, c);
        const std::uint32_t want = (std::uint32_t{p[crc_at]} << 24) | (std::uint32_t{p[crc_at + 1]} << 16) |
                                   (std::uint32_t{p[crc_at + 2]} << 8) | p[crc_at + 3];
        if (c != want) return fail(ProxyError::BadChecksum);
    }
    out = h;
    return done(total);
}

}  // namespace

ProxyResult parse_proxy_header(const char* buf, std::size_t len, ProxyHeader& out) {
    const auto* p = reinterpret_cast<const u8*>(buf);
    if (len == 0) return need();
    if (p[0] == 'P') return parse_v1(p, len, out);
    if (p[0] == kV2Signature[0]) return parse_v2(p, len, out);
    return fail(ProxyError::BadSignature);
}

std::uint32_t crc32c(const void* data, std::size_t n, std::uint32_t crc) {
    const auto* p = static_cast<const u8*>(data);
    crc = ~crc;
    for (std::size_t i = 0; i < n; ++i) crc = kCrc32c.t[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
    return ~crc;
}

const char* proxy_error_name(ProxyError e) {
    switch (e) {
        case ProxyError::None: return "none";
        case ProxyError::BadSignature: return "not a PROXY protocol header";
        case ProxyError::BadSyntax: return "malformed v1 header";
        case ProxyError::BadAddress: return "invalid address";
        case ProxyError::BadPort: return "invalid port";
        case ProxyError::TooLong: return "header too long";
        case ProxyError::BadVersion: return "unsupported v2 version";
        case ProxyError::BadCommand: return "unsupported v2 command";
        case ProxyError::BadFamily: return "unsupported v2 address family or transport";
        case ProxyError::BadLength: return "v2 length shorter than its addresses";
        case ProxyError::BadTlv: return "malformed v2 TLV";
        case ProxyError::BadChecksum: return "v2 CRC32c mismatch";
    }
    return "?";
}

}  // namespace luath::http
