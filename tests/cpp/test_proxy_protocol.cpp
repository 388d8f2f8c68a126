// PROXY protocol v1/v2 parser: a table of headers (every rule of both versions), each checked whole, with
// HTTP bytes after it, and at every split point (every prefix is NeedMore or the whole's exact result).
#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "http/proxy_protocol.hpp"

using namespace luath::http;
using Family = ProxyHeader::Family;
using namespace std::string_literals;

namespace {

const std::string kSig("\r\n\r\n\0\r\nQUIT\n", 12);

std::string be16(unsigned v) { return std::string{char(v >> 8), char(v & 0xff)}; }

// A v2 header: signature, version/command byte, family byte, then `body` with its length (or `len`).
std::string v2(unsigned char vc, unsigned char fam, const std::string& body, int len = -1) {
    return kSig + char(vc) + char(fam) + be16(len < 0 ? unsigned(body.size()) : unsigned(len)) + body;
}

std::string inet(const char* s, const char* d, unsigned sp, unsigned dp) {
    std::string o(12, '\0');
    inet_pton(AF_INET, s, &o[0]);
    inet_pton(AF_INET, d, &o[4]);
    return o.substr(0, 8) + be16(sp) + be16(dp);
}

std::string inet6(const char* s, const char* d, unsigned sp, unsigned dp) {
    std::string o(32, '\0');
    inet_pton(AF_INET6, s, &o[0]);
    inet_pton(AF_INET6, d, &o[16]);
    return o + be16(sp) + be16(dp);
}

std::string tlv(unsigned char type, const std::string& v) { return std::string(1, char(type)) + be16(v.size()) + v; }

struct Case {
    const char* name;
    std::string in;
    ProxyStatus status;
    ProxyError error = ProxyError::None;
    Family family = Family::None;
    const char* src = "";
    const char* dst = "";
    unsigned sport = 0, dport = 0;
    bool local = false;
    std::size_t consumed = 0;  // Done: 0 means the whole input
};

std::string addr_text(Family f, const std::uint8_t* a) {
    char buf[64] = "";
    if (f == Family::Inet) inet_ntop(AF_INET, a, buf, sizeof buf);
    if (f == Family::Inet6) inet_ntop(AF_INET6, a, buf, sizeof buf);
    return buf;
}

constexpr auto Done = ProxyStatus::Done;
constexpr auto Err = ProxyStatus::Error;
constexpr auto More = ProxyStatus::NeedMore;

std::vector<Case> cases() {
    using E = ProxyError;
    std::vector<Case> c;
    // ---- v1, valid
    c.push_back({"v1 tcp4", "PROXY TCP4 192.0.2.1 198.51.100.7 56324 443\r\n", Done, E::None, Family::Inet,
                 "192.0.2.1", "198.51.100.7", 56324, 443});
    c.push_back({"v1 tcp4 zeros", "PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n", Done, E::None, Family::Inet,
                 "0.0.0.0", "255.255.255.255", 0, 65535});
    c.push_back({"v1 tcp6", "PROXY TCP6 2001:db8::1 ::1 1 80\r\n", Done, E::None, Family::Inet6, "2001:db8::1",
                 "::1", 1, 80});
    c.push_back({"v1 tcp6 mapped", "PROXY TCP6 ::ffff:10.0.0.1 FE80::A 1234 5678\r\n", Done, E::None,
                 Family::Inet6, "::ffff:10.0.0.1", "fe80::a", 1234, 5678});
    c.push_back({"v1 tcp6 longest",
                 "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255 "
                 "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255 "
                 "65535 65535\r\n",
                 Err, E::TooLong});  // 11 + 45 + 1 + 45 + ... > 107
    c.push_back({"v1 tcp6 full",
                 "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
                 "65535 65535\r\n",
                 Done, E::None, Family::Inet6, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
                 "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535, 65535});
    c.push_back({"v1 unknown", "PROXY UNKNOWN\r\n", Done, E::None});
    c.push_back({"v1 unknown with addresses", "PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n", Done, E::None});
    c.push_back({"v1 unknown longest", "PROXY UNKNOWN " + std::string(107 - 16, 'x') + "\r\n", Done, E::None});
    // ---- v1, malformed
    c.push_back({"v1 unknown too long", "PROXY UNKNOWN " + std::string(107 - 15, 'x') + "\r\n", Err, E::TooLong});
    c.push_back({"v1 no crlf ever", "PROXY UNKNOWN " + std::string(200, 'x'), Err, E::TooLong});
    c.push_back({"v1 unknown bare lf", "PROXY UNKNOWN a\nb\r\n", Err, E::BadSyntax});
    c.push_back({"v1 unknown cr without lf", "PROXY UNKNOWN\rx\n", Err, E::BadSyntax});
    c.push_back({"v1 lower case", "proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n", Err, E::BadSignature});
    c.push_back({"v1 no space", "PROXYTCP4 1.2.3.4 5.6.7.8 1 2\r\n", Err, E::BadSignature});
    c.push_back({"v1 tcp5", "PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n", Err, E::BadSyntax});
    c.push_back({"v1 udp4", "PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n", Err, E::BadSyntax});
    c.push_back({"v1 tcp4 lower", "PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n", Err, E::BadSyntax});
    c.push_back({"v1 long protocol", "PROXY UNKNOWNX\r\n", Err, E::BadSyntax});
    c.push_back({"v1 tcp4 then cr", "PROXY TCP4\r\n", Err, E::BadSyntax});
    c.push_back({"v1 double space", "PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n", Err, E::BadAddress});
    c.push_back({"v1 tab", "PROXY TCP4\t1.2.3.4 5.6.7.8 1 2\r\n", Err, E::BadSyntax});
    c.push_back({"v1 v6 in tcp4", "PROXY TCP4 ::1 ::1 1 2\r\n", Err, E::BadAddress});
    c.push_back({"v1 v4 in tcp6", "PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n", Err, E::BadAddress});
    c.push_back({"v1 octet 256", "PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n", Err, E::BadAddress});
    c.push_back({"v1 leading zero octet", "PROXY TCP4 1.2.3.04 5.6.7.8 1 2\r\n", Err, E::BadAddress});
    c.push_back({"v1 three octets", "PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n", Err, E::BadAddress});
    c.push_back({"v1 five octets", "PROXY TCP4 1.2.3.4.5 5.6.7.8 1 2\r\n", Err, E::BadAddress});
    c.push_back({"v1 empty octet", "PROXY TCP4 1..3.4 5.6.7.8 1 2\r\n", Err, E::BadAddress});
    c.push_back({"v1 trailing dot", "PROXY TCP4 1.2.3.4. 5.6.7.8 1 2\r\n", Err, E::BadAddress});
    c.push_back({"v1 over-long v4", "PROXY TCP4 1111.2.3.4444444444 5.6.7.8 1 2\r\n", Err, E::BadAddress});
    c.push_back({"v1 bad v6", "PROXY TCP6 1:::2 ::1 1 2\r\n", Err, E::BadAddress});
    c.push_back({"v1 v6 zone", "PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n", Err, E::BadAddress});
    c.push_back({"v1 v6 too many groups", "PROXY TCP6 1:2:3:4:5:6:7:8:9 ::1 1 2\r\n", Err, E::BadAddress});
    c.push_back({"v1 missing dst", "PROXY TCP4 1.2.3.4 1 2\r\n", Err, E::BadAddress});
    c.push_back({"v1 missing dport", "PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", Err, E::BadPort});
    c.push_back({"v1 extra field", "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n", Err, E::BadPort});
    c.push_back({"v1 port too big", "PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", Err, E::BadPort});
    c.push_back({"v1 port 6 digits", "PROXY TCP4 1.2.3.4 5.6.7.8 100000 2\r\n", Err, E::BadPort});
    c.push_back({"v1 port leading zero", "PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n", Err, E::BadPort});
    c.push_back({"v1 port 00", "PROXY TCP4 1.2.3.4 5.6.7.8 1 00\r\n", Err, E::BadPort});
    c.push_back({"v1 port sign", "PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n", Err, E::BadPort});
    c.push_back({"v1 port hex", "PROXY TCP4 1.2.3.4 5.6.7.8 0x1 2\r\n", Err, E::BadPort});
    c.push_back({"v1 trailing space", "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n", Err, E::BadPort});
    c.push_back({"v1 bare lf", "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", Err, E::BadPort});
    c.push_back({"v1 cr cr", "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r\n", Err, E::BadSyntax});
    c.push_back({"v1 nul", "PROXY TCP4 1.2.3.4\0 5.6.7.8 1 2\r\n"s, Err, E::BadAddress});
    // ---- not a PROXY header at all
    c.push_back({"plain http", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", Err, E::BadSignature});
    c.push_back({"post", "POST / HTTP/1.1\r\n", Err, E::BadSignature});
    c.push_back({"tls client hello", std::string("\x16\x03\x01\x02\x00\x01", 6), Err, E::BadSignature});
    c.push_back({"empty line", "\r\nGET / HTTP/1.1\r\n", Err, E::BadSignature});
    // ---- v2, valid
    c.push_back({"v2 proxy inet", v2(0x21, 0x11, inet("203.0.113.9", "10.0.0.1", 40000, 8080)), Done, E::None,
                 Family::Inet, "203.0.113.9", "10.0.0.1", 40000, 8080});
    c.push_back({"v2 proxy inet dgram", v2(0x21, 0x12, inet("1.2.3.4", "5.6.7.8", 1, 2)), Done, E::None,
                 Family::Inet, "1.2.3.4", "5.6.7.8", 1, 2});
    c.push_back({"v2 proxy inet6", v2(0x21, 0x21, inet6("2001:db8::7", "2001:db8::1", 65535, 0)), Done,
                 E::None, Family::Inet6, "2001:db8::7", "2001:db8::1", 65535, 0});
    c.push_back({"v2 inet with tlvs",
                 v2(0x21, 0x11,
                    inet("198.51.100.2", "10.1.1.1", 5, 6) + tlv(0x01, "h2") + tlv(0x04, "") +
                        tlv(0xEA, std::string(40, 'v')) + tlv(0x20, std::string(300, 's'))),
                 Done, E::None, Family::Inet, "198.51.100.2", "10.1.1.1", 5, 6});
    c.push_back({"v2 inet6 with noop tlv", v2(0x21, 0x22, inet6("::2", "::3", 7, 8) + tlv(0x04, "\0\0\0")),
                 Done, E::None, Family::Inet6, "::2", "::3", 7, 8});
    c.push_back({"v2 local", v2(0x20, 0x00, ""), Done, E::None, Family::None, "", "", 0, 0, true});
    c.push_back({"v2 local with addresses", v2(0x20, 0x11, inet("1.2.3.4", "5.6.7.8", 1, 2)), Done, E::None,
                 Family::None, "", "", 0, 0, true});
    c.push_back({"v2 local odd family and junk", v2(0x20, 0xFF, "abc"), Done, E::None, Family::None, "", "", 0,
                 0, true});
    c.push_back({"v2 proxy unspec", v2(0x21, 0x00, "whatever"), Done, E::None});
    c.push_back({"v2 proxy unix", v2(0x21, 0x31, std::string(216, '\0')), Done, E::None});
    c.push_back({"v2 proxy unix dgram tlv", v2(0x21, 0x32, std::string(216, 'u') + tlv(2, "x")), Done, E::None});
    c.push_back({"v2 inet longer addr block is tlvs", v2(0x21, 0x11, inet("1.2.3.4", "5.6.7.8", 1, 2) + tlv(5, "abc")),
                 Done, E::None, Family::Inet, "1.2.3.4", "5.6.7.8", 1, 2});
    c.push_back({"v2 largest",
                 v2(0x21, 0x11, inet("1.2.3.4", "5.6.7.8", 1, 2) + tlv(0x30, std::string(1024 - 12 - 3, 'z'))),
                 Done, E::None, Family::Inet, "1.2.3.4", "5.6.7.8", 1, 2});
    // ---- v2, malformed
    c.push_back({"v2 bad signature", "\r\n\r\n\0\r\nQUIX\n"s + std::string("\x21\x11\x00\x0c", 4) +
                                         inet("1.2.3.4", "5.6.7.8", 1, 2),
                 Err, E::BadSignature});
    {
        std::string s = v2(0x21, 0x11, inet("1.2.3.4", "5.6.7.8", 1, 2));
        s[4] = 'x';
        c.push_back({"v2 signature byte 4", s, Err, E::BadSignature});
    }
    c.push_back({"v2 version 1", v2(0x11, 0x11, inet("1.2.3.4", "5.6.7.8", 1, 2)), Err, E::BadVersion});
    c.push_back({"v2 version 3", v2(0x31, 0x11, inet("1.2.3.4", "5.6.7.8", 1, 2)), Err, E::BadVersion});
    c.push_back({"v2 command 2", v2(0x22, 0x11, inet("1.2.3.4", "5.6.7.8", 1, 2)), Err, E::BadCommand});
    c.push_back({"v2 command f", v2(0x2F, 0x11, inet("1.2.3.4", "5.6.7.8", 1, 2)), Err, E::BadCommand});
    c.push_back({"v2 family 4", v2(0x21, 0x41, std::string(12, 'a')), Err, E::BadFamily});
    c.push_back({"v2 transport 3", v2(0x21, 0x13, inet("1.2.3.4", "5.6.7.8", 1, 2)), Err, E::BadFamily});
    c.push_back({"v2 inet unspec transport", v2(0x21, 0x10, inet("1.2.3.4", "5.6.7.8", 1, 2)), Err,
                 E::BadFamily});
    c.push_back({"v2 unspec with transport", v2(0x21, 0x01, ""), Err, E::BadFamily});
    c.push_back({"v2 inet short", v2(0x21, 0x11, std::string(11, 'a')), Err, E::BadLength});
    c.push_back({"v2 inet6 short", v2(0x21, 0x21, inet("1.2.3.4", "5.6.7.8", 1, 2)), Err, E::BadLength});
    c.push_back({"v2 unix short", v2(0x21, 0x31, std::string(215, 'a')), Err, E::BadLength});
    c.push_back({"v2 too long",
                 v2(0x21, 0x11, inet("1.2.3.4", "5.6.7.8", 1, 2) + tlv(0x30, std::string(1024 - 12 - 2, 'z'))),
                 Err, E::TooLong});
    c.push_back({"v2 length 65535", v2(0x21, 0x11, inet("1.2.3.4", "5.6.7.8", 1, 2), 0xFFFF), Err, E::TooLong});
    c.push_back({"v2 tlv overruns", v2(0x21, 0x11, inet("1.2.3.4", "5.6.7.8", 1, 2) + "\x01" + be16(5) + "abcd"),
                 Err, E::BadTlv});
    c.push_back({"v2 tlv truncated header", v2(0x21, 0x11, inet("1.2.3.4", "5.6.7.8", 1, 2) + "\x01\x00"), Err,
                 E::BadTlv});
    c.push_back({"v2 tlv one stray byte",
                 v2(0x21, 0x21, inet6("::1", "::1", 1, 2) + tlv(1, "a") + std::string(1, '\0')), Err,
                 E::BadTlv});
    // CRC32C TLV (0x03): checked over the whole header with its own value as zeros.
    {
        auto with_crc = [](const std::string& before, const std::string& after, int flip) {
            std::string s = v2(0x21, 0x11, inet("192.0.2.1", "10.0.0.1", 1234, 443) + before + tlv(0x03, std::string(4, '\0')) + after);
            std::uint32_t c = crc32c(s.data(), s.size());
            std::size_t at = 16 + 12 + before.size() + 3;
            for (int k = 0; k < 4; ++k) s[at + k] = char(c >> (24 - 8 * k));
            if (flip >= 0) s[flip] = char(s[flip] ^ 0x01);
            return s;
        };
        c.push_back({"v2 crc32c", with_crc("", "", -1), Done, E::None, Family::Inet, "192.0.2.1", "10.0.0.1",
                     1234, 443});
        c.push_back({"v2 crc32c between tlvs", with_crc(tlv(0x01, "h2"), tlv(0x04, "pad"), -1), Done, E::None,
                     Family::Inet, "192.0.2.1", "10.0.0.1", 1234, 443});
        c.push_back({"v2 crc32c address bit flipped", with_crc("", "", 16), Err, E::BadChecksum});
        c.push_back({"v2 crc32c value bit flipped", with_crc("", "", 16 + 12 + 3), Err, E::BadChecksum});
        c.push_back({"v2 crc32c later tlv bit flipped", with_crc("", tlv(0x04, "pad"), 16 + 12 + 7 + 3), Err,
                     E::BadChecksum});
        c.push_back({"v2 crc32c wrong value",
                     v2(0x21, 0x11, inet("192.0.2.1", "10.0.0.1", 1, 2) + tlv(0x03, "\0\0\0\0"s)), Err,
                     E::BadChecksum});
        c.push_back({"v2 crc32c length 3", v2(0x21, 0x11, inet("192.0.2.1", "10.0.0.1", 1, 2) + tlv(0x03, "abc")),
                     Err, E::BadTlv});
        std::string two = with_crc("", "", -1);
        c.push_back({"v2 crc32c twice",
                     v2(0x21, 0x11, two.substr(16) + tlv(0x03, "abcd")), Err, E::BadTlv});
    }
    // A length that promises more than follows: the parser waits (the connection's timeout ends it).
    c.push_back({"v2 length beyond data", v2(0x21, 0x11, inet("1.2.3.4", "5.6.7.8", 1, 2), 20), More});
    c.push_back({"v1 incomplete", "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r", More});
    c.push_back({"v2 signature only", kSig, More});
    return c;
}

void expect_case(const Case& k, const ProxyResult& r, const ProxyHeader& h, const std::string& where) {
    ASSERT_EQ(int(r.status), int(k.status)) << k.name << where << " error=" << proxy_error_name(r.error);
    EXPECT_EQ(int(r.error), int(k.error)) << k.name << where << ": " << proxy_error_name(r.error);
    if (k.status != Done) {
        EXPECT_EQ(r.consumed, 0u) << k.name << where;
        return;
    }
    EXPECT_EQ(r.consumed, k.consumed ? k.consumed : k.in.size()) << k.name << where;
    EXPECT_EQ(int(h.family), int(k.family)) << k.name << where;
    EXPECT_EQ(h.local, k.local) << k.name << where;
    EXPECT_EQ(int(h.version), k.in[0] == 'P' ? 1 : 2) << k.name << where;
    if (k.family != Family::None) {
        EXPECT_EQ(addr_text(h.family, h.src_addr), k.src) << k.name << where;
        EXPECT_EQ(addr_text(h.family, h.dst_addr), k.dst) << k.name << where;
        EXPECT_EQ(h.src_port, k.sport) << k.name << where;
        EXPECT_EQ(h.dst_port, k.dport) << k.name << where;
    }
}

// Parses the bytes in a buffer of exactly that size (so ASan sees any over-read).
ProxyResult parse_exact(const std::string& s, ProxyHeader& h) {
    std::vector<char> buf(s.begin(), s.end());
    return parse_proxy_header(buf.data(), buf.size(), h);
}

TEST(ProxyProtocol, Table) {
    for (const Case& k : cases()) {
        ProxyHeader h;
        expect_case(k, parse_exact(k.in, h), h, " (whole)");
    }
}

TEST(ProxyProtocol, BytesAfterTheHeaderAreNotConsumed) {
    for (const Case& k : cases()) {
        if (k.status == More) continue;
        for (const std::string& tail : {std::string("GET / HTTP/1.1\r\nHost: a\r\n\r\n"),
                                        std::string("\x16\x03\x01", 3),
                                       std::string("\r\n"), std::string(2000, 'P')}) {
            ProxyHeader h;
            expect_case(k, parse_exact(k.in + tail, h), h, " (with a tail)");
        }
    }
}

// Every prefix gives NeedMore or the whole's result; the bytes arrive one at a time, so the first
// prefix that is not NeedMore is what a connection split at every byte would see.
TEST(ProxyProtocol, EverySplitPoint) {
    for (const Case& k : cases()) {
        ProxyHeader whole_h;
        const ProxyResult whole = parse_exact(k.in, whole_h);
        bool decided = false;
        for (std::size_t n = 0; n <= k.in.size(); ++n) {
            ProxyHeader h;
            const ProxyResult r = parse_exact(k.in.substr(0, n), h);
            if (r.status == More) {
                ASSERT_FALSE(decided) << k.name << ": NeedMore at " << n << " after a decision";
                continue;
            }
            decided = true;
            expect_case(k, r, h, " (prefix " + std::to_string(n) + ")");
            EXPECT_EQ(int(r.status), int(whole.status));
        }
        EXPECT_EQ(decided, k.status != More) << k.name;
    }
}

// The result does not depend on what the caller's `out` held, and `out` is untouched unless Done.
TEST(ProxyProtocol, OutputOnlyOnDone) {
    ProxyHeader h;
    h.version = 9;
    h.src_port = 77;
    EXPECT_EQ(int(parse_exact("PROXY TCP4 1.2.3.4", h).status), int(More));
    EXPECT_EQ(int(parse_exact("GET /", h).status), int(Err));
    EXPECT_EQ(h.version, 9);
    EXPECT_EQ(h.src_port, 77);
    EXPECT_EQ(int(parse_exact("PROXY UNKNOWN\r\n", h).status), int(Done));
    EXPECT_EQ(h.version, 1);
    EXPECT_EQ(int(h.family), int(Family::None));
}

TEST(ProxyProtocol, EarlyRejection) {
    // Plain HTTP or TLS is refused on its first byte, without waiting for more.
    ProxyHeader h;
    EXPECT_EQ(int(parse_exact("G", h).status), int(Err));
    EXPECT_EQ(int(parse_exact("\x16", h).status), int(Err));
    EXPECT_EQ(int(parse_exact("PO", h).status), int(Err));
    EXPECT_EQ(int(parse_exact(kSig.substr(0, 5) + "x", h).status), int(Err));
    EXPECT_EQ(int(parse_exact("", h).status), int(More));
}

TEST(ProxyProtocol, ErrorNames) {
    for (int e = 0; e <= int(ProxyError::BadTlv); ++e) EXPECT_STRNE(proxy_error_name(ProxyError(e)), "?");
}

}  // namespace

TEST(ProxyCrc32c, KnownVectors) {
    EXPECT_EQ(crc32c("123456789", 9), 0xE3069283u);
    EXPECT_EQ(crc32c("", 0), 0u);
    std::string zeros(32, '\0');
    EXPECT_EQ(crc32c(zeros.data(), zeros.size()), 0x8A9136AAu);  // RFC 3720 B.4: 32 bytes of zeros
    // Continuing from a previous value is the same as one call over the joined bytes.
    EXPECT_EQ(crc32c("6789", 4, crc32c("12345", 5)), 0xE3069283u);
}
