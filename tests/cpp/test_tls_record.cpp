// The pure parts of luath's own TLS 1.3 record layer (src/core/net/tls_record.hpp).
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "net/tls_record.hpp"

using namespace luath::net::tls13;

TEST(TlsRecord, HkdfLabelMatchesRfc8448) {
    // RFC 8448 3 (simple 1-RTT): the "info" of the key and iv derivations.
    unsigned char out[300];
    const unsigned char key_info[] = {0x00, 0x10, 0x09, 0x74, 0x6c, 0x73, 0x31, 0x33, 0x20, 0x6b, 0x65, 0x79, 0x00};
    ASSERT_EQ(hkdf_label(out, 16, "key"), sizeof key_info);
    EXPECT_EQ(std::memcmp(out, key_info, sizeof key_info), 0);
    const unsigned char iv_info[] = {0x00, 0x0c, 0x08, 0x74, 0x6c, 0x73, 0x31, 0x33, 0x20, 0x69, 0x76, 0x00};
    ASSERT_EQ(hkdf_label(out, 12, "iv"), sizeof iv_info);
    EXPECT_EQ(std::memcmp(out, iv_info, sizeof iv_info), 0);
    ASSERT_EQ(hkdf_label(out, 48, "traffic upd"), 2u + 1 + 17 + 1);
    EXPECT_EQ(out[0], 0);
    EXPECT_EQ(out[1], 48);
    EXPECT_EQ(out[2], 17);
    EXPECT_EQ(std::memcmp(out + 3, "tls13 traffic upd", 17), 0);
    EXPECT_EQ(out[20], 0);
    std::string long_label(250, 'x');
    EXPECT_EQ(hkdf_label(out, 16, long_label.c_str()), 0u);
}

TEST(TlsRecord, NonceIsIvXorBigEndianSeq) {
    // RFC 8448: server application iv; record 0 uses the iv itself.
    const unsigned char iv[12] = {0x9f, 0x02, 0x28, 0x3b, 0x6c, 0x9c, 0x07, 0xef, 0xc2, 0x6b, 0xb7, 0x0f};
    unsigned char n[12];
    make_nonce(iv, 0, n);
    EXPECT_EQ(std::memcmp(n, iv, 12), 0);
    make_nonce(iv, 1, n);
    EXPECT_EQ(std::memcmp(n, iv, 11), 0);
    EXPECT_EQ(n[11], 0x0f ^ 1);
    make_nonce(iv, 0x0102030405060708ull, n);
    EXPECT_EQ(std::memcmp(n, iv, 4), 0);
    for (int i = 0; i < 8; ++i) EXPECT_EQ(n[4 + i], iv[4 + i] ^ (i + 1)) << i;
    make_nonce(iv, ~0ull, n);
    for (int i = 4; i < 12; ++i) EXPECT_EQ(n[i], static_cast<unsigned char>(~iv[i])) << i;
}

TEST(TlsRecord, Header) {
    unsigned char h[5];
    write_header(h, 0x4011);
    const unsigned char want[] = {23, 3, 3, 0x40, 0x11};
    EXPECT_EQ(std::memcmp(h, want, 5), 0);
}

TEST(TlsRecord, ParseHeaderAtEveryPrefix) {
    std::vector<unsigned char> rec(5 + 40);
    write_header(rec.data(), 40);
    for (std::size_t n = 0; n < rec.size(); ++n)
        EXPECT_EQ(parse_header(rec.data(), n).status, HeaderView::Partial) << n;
    HeaderView v = parse_header(rec.data(), rec.size());
    EXPECT_EQ(v.status, HeaderView::Complete);
    EXPECT_EQ(v.cipher_len, 40u);
    EXPECT_EQ(v.type, 23);
    // Two records back to back: the first is complete.
    rec.resize(rec.size() + 7, 0);
    EXPECT_EQ(parse_header(rec.data(), rec.size()).status, HeaderView::Complete);
}

TEST(TlsRecord, ParseHeaderLimits) {
    unsigned char h[5];
    write_header(h, kMaxCipher);
    EXPECT_EQ(parse_header(h, 5).status, HeaderView::Partial);
    write_header(h, kMaxCipher + 1);
    EXPECT_EQ(parse_header(h, 5).status, HeaderView::Bad);
    write_header(h, 0xffff);
    EXPECT_EQ(parse_header(h, 5).status, HeaderView::Bad);
    write_header(h, kTagLen);  // no room for the content type
    EXPECT_EQ(parse_header(h, 5).status, HeaderView::Bad);
    write_header(h, kTagLen + 1);
    EXPECT_EQ(parse_header(h, 5).status, HeaderView::Partial);
}

TEST(TlsRecord, InnerTypeStripsPadding) {
    std::size_t m = 99;
    const unsigned char a[] = {'h', 'i', 23};
    EXPECT_EQ(inner_type(a, 3, m), 23);
    EXPECT_EQ(m, 2u);
    const unsigned char b[] = {'h', 0, 21, 0, 0, 0};  // a zero inside the content stays
    EXPECT_EQ(inner_type(b, 6, m), 21);
    EXPECT_EQ(m, 2u);
    const unsigned char c[] = {23};
    EXPECT_EQ(inner_type(c, 1, m), 23);
    EXPECT_EQ(m, 0u);
    const unsigned char z[] = {0, 0, 0};
    EXPECT_EQ(inner_type(z, 3, m), 0);
    EXPECT_EQ(m, 0u);
    EXPECT_EQ(inner_type(z, 0, m), 0);
}

TEST(TlsRecord, Unhex) {
    unsigned char out[4];
    EXPECT_TRUE(unhex("00ff7Fa0", 8, out, 4));
    const unsigned char want[] = {0x00, 0xff, 0x7f, 0xa0};
    EXPECT_EQ(std::memcmp(out, want, 4), 0);
    EXPECT_FALSE(unhex("00ff7Fa", 7, out, 4));
    EXPECT_FALSE(unhex("00ff7Fag", 8, out, 4));
}
