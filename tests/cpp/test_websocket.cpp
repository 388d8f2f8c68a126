// RFC 6455 pieces: SHA-1/base64/accept key, handshake checks, UTF-8 validation, unmasking, frame
// headers, the frame parser (fed whole and byte by byte), permessage-deflate negotiation and round trip.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "http/websocket.hpp"
#include "http/ws_deflate.hpp"

using namespace luath::http;
using namespace luath::http::ws;

namespace {

std::string hex(const std::uint8_t* p, std::size_t n) {
    static const char* d = "0123456789abcdef";
    std::string s;
    for (std::size_t i = 0; i < n; ++i) {
        s += d[p[i] >> 4];
        s += d[p[i] & 15];
    }
    return s;
}

std::string sha1_hex(std::string_view s) {
    std::uint8_t out[20];
    sha1(s.data(), s.size(), out);
    return hex(out, 20);
}

// A masked client frame.
std::string frame(std::uint8_t first, std::string_view payload, bool masked = true, std::uint8_t key0 = 0x37) {
    std::string f;
    f += static_cast<char>(first);
    std::size_t n = payload.size();
    std::uint8_t m = masked ? 0x80 : 0;
    if (n < 126) {
        f += static_cast<char>(m | n);
    } else if (n <= 0xFFFF) {
        f += static_cast<char>(m | 126);
        f += static_cast<char>(n >> 8);
        f += static_cast<char>(n);
    } else {
        f += static_cast<char>(m | 127);
        for (int i = 0; i < 8; ++i) f += static_cast<char>(static_cast<std::uint64_t>(n) >> (56 - 8 * i));
    }
    std::uint8_t key[4] = {key0, 0xfa, 0x21, 0x3d};
    if (masked) f.append(reinterpret_cast<char*>(key), 4);
    for (std::size_t i = 0; i < n; ++i)
        f += masked ? static_cast<char>(payload[i] ^ key[i & 3]) : payload[i];
    return f;
}

struct Ev {
    Receiver::Event e;
    std::string data;
    bool text = false;
    int code = 0;
    bool operator==(const Ev&) const = default;
};

[[maybe_unused]] void PrintTo(const Ev& e, std::ostream* os) {
    *os << "{" << int(e.e) << ", " << (e.data.size() > 40 ? e.data.substr(0, 40) + "..." : e.data) << " (" << e.data.size()
        << "), text=" << e.text << ", code=" << e.code << "}";
}

// Feeds input in pieces of `step` bytes (0: whole), keeping unconsumed bytes, until NeedMore at the end.
std::vector<Ev> run(const std::string& input, std::size_t step, std::uint64_t max = 0, std::size_t view_max = 16384,
                    Deflate* d = nullptr) {
    Receiver r;
    r.reset(max, d);
    std::vector<Ev> out;
    std::string buf;
    std::size_t fed = 0;
    while (true) {
        std::size_t take = step == 0 ? input.size() - fed : std::min(step, input.size() - fed);
        buf.append(input, fed, take);
        fed += take;
        char* p = buf.data();
        char* end = p + buf.size();
        for (;;) {
            auto e = r.next(p, end, view_max);
            if (e == Receiver::Event::NeedMore) break;
            Ev ev{e, std::string(r.data()), e == Receiver::Event::Message && r.text(), 0};
            if (e == Receiver::Event::Close) {
                ev.code = r.close_code();
                ev.data = std::string(r.close_reason());
            }
            if (e == Receiver::Event::Error) {
                ev.code = r.error_code();
                ev.data.clear();
                out.push_back(ev);
                return out;
            }
            out.push_back(ev);
        }
        buf.erase(0, static_cast<std::size_t>(p - buf.data()));
        if (fed == input.size()) break;
    }
    return out;
}

void both(const std::string& input, const std::vector<Ev>& want, std::uint64_t max = 0) {
    EXPECT_EQ(run(input, 0, max), want);
    EXPECT_EQ(run(input, 1, max), want);
    EXPECT_EQ(run(input, 7, max), want);
    EXPECT_EQ(run(input, 0, max, 0), want);  // no views: everything streamed
}

TEST(WsCrypto, Sha1) {
    EXPECT_EQ(sha1_hex(""), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
    EXPECT_EQ(sha1_hex("abc"), "a9993e364706816aba3e25717850c26c9cd0d89d");
    EXPECT_EQ(sha1_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
              "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
    EXPECT_EQ(sha1_hex(std::string(1000000, 'a')), "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
}

TEST(WsCrypto, Base64AndAccept) {
    char out[8];
    const std::uint8_t f[] = {'f', 'o', 'o', 'b'};
    EXPECT_EQ(std::string(out, base64_encode(f, 1, out)), "Zg==");
    EXPECT_EQ(std::string(out, base64_encode(f, 2, out)), "Zm8=");
    EXPECT_EQ(std::string(out, base64_encode(f, 3, out)), "Zm9v");
    EXPECT_EQ(std::string(out, base64_encode(f, 4, out)), "Zm9vYg==");
    char acc[28];
    accept_key("dGhlIHNhbXBsZSBub25jZQ==", acc);  // RFC 6455 1.3
    EXPECT_EQ(std::string(acc, 28), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    EXPECT_TRUE(valid_key("dGhlIHNhbXBsZSBub25jZQ=="));
    EXPECT_FALSE(valid_key("dGhlIHNhbXBsZSBub25jZQ="));
    EXPECT_FALSE(valid_key("dGhlIHNhbXBsZSBub25jZR=="));  // stray low bits
    EXPECT_FALSE(valid_key("dGhlIHNhbXBsZSBub25j!Q=="));
    EXPECT_FALSE(valid_key(""));
}

TEST(WsHandshake, Checks) {
    Request req;
    req.method_id = Method::Get;
    req.version_minor = 1;
    auto set = [&](std::vector<Header> hs) {
        req.num_headers = static_cast<std::uint32_t>(hs.size());
        for (std::size_t i = 0; i < hs.size(); ++i) req.headers[i] = hs[i];
    };
    std::vector<Header> good = {{"Host", "x"},
                                {"Upgrade", "WebSocket"},
                                {"Connection", "keep-alive, Upgrade"},
                                {"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="},
                                {"Sec-WebSocket-Version", "13"}};
    Handshake hs;
    set(good);
    EXPECT_EQ(check_handshake(req, hs), HandshakeError::None);
    EXPECT_EQ(hs.key, "dGhlIHNhbXBsZSBub25jZQ==");
    auto with = [&](std::size_t i, std::string_view v) {
        auto h = good;
        h[i].value = v;
        set(h);
        return check_handshake(req, hs);
    };
    EXPECT_EQ(with(1, "h2c"), HandshakeError::NotWebSocket);
    EXPECT_EQ(with(2, "keep-alive"), HandshakeError::NotWebSocket);
    EXPECT_EQ(with(3, "short"), HandshakeError::BadKey);
    EXPECT_EQ(with(4, "8"), HandshakeError::BadVersion);
    set(good);
    req.method_id = Method::Post;
    EXPECT_EQ(check_handshake(req, hs), HandshakeError::BadMethod);
    req.method_id = Method::Get;
    auto two = good;
    two.push_back({"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="});
    set(two);
    EXPECT_EQ(check_handshake(req, hs), HandshakeError::BadKey);
}

TEST(WsUtf8, Valid) {
    EXPECT_TRUE(valid_utf8(""));
    EXPECT_TRUE(valid_utf8("hello world, a long ASCII run of bytes"));
    EXPECT_TRUE(valid_utf8("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"));
    EXPECT_TRUE(valid_utf8("\xf4\x8f\xbf\xbf"));   // U+10FFFF
    EXPECT_TRUE(valid_utf8("\xed\x9f\xbf"));       // U+D7FF
    EXPECT_FALSE(valid_utf8("\xf4\x90\x80\x80"));  // above U+10FFFF
    EXPECT_FALSE(valid_utf8("\xed\xa0\x80"));      // surrogate
    EXPECT_FALSE(valid_utf8("\xc0\xaf"));          // overlong
    EXPECT_FALSE(valid_utf8("\xe0\x80\xaf"));      // overlong
    EXPECT_FALSE(valid_utf8("\xf0\x80\x80\xaf"));  // overlong
    EXPECT_FALSE(valid_utf8("\xce"));              // truncated
    EXPECT_FALSE(valid_utf8("\xff"));
    EXPECT_FALSE(valid_utf8("abcdefgh\x80"));
}

TEST(WsUtf8, Split) {
    std::string s = "\xce\xba\xe1\xbd\xb9\xcf\x83\xf0\x9f\x98\x80 ok";
    for (std::size_t cut = 0; cut <= s.size(); ++cut) {
        Utf8Validator v;
        EXPECT_TRUE(v.feed(s.data(), cut));
        EXPECT_TRUE(v.feed(s.data() + cut, s.size() - cut));
        EXPECT_TRUE(v.complete());
    }
    Utf8Validator v;
    EXPECT_TRUE(v.feed("\xf0\x9f", 2));
    EXPECT_FALSE(v.complete());
    EXPECT_FALSE(v.feed("\x28", 1));
    EXPECT_FALSE(v.feed("a", 1));  // sticky
}

TEST(WsFrames, Unmask) {
    std::uint8_t key[4] = {1, 2, 3, 4};
    std::string s(37, 'x'), ref = s;
    for (std::size_t i = 0; i < ref.size(); ++i) ref[i] = static_cast<char>(ref[i] ^ key[i & 3]);
    // In pieces of every size: the key position carries over.
    for (std::size_t step = 1; step < 12; ++step) {
        std::string t = s;
        std::size_t pos = 0;
        for (std::size_t i = 0; i < t.size(); i += step) pos = unmask(t.data() + i, std::min(step, t.size() - i), key, pos);
        EXPECT_EQ(t, ref) << step;
    }
}

TEST(WsFrames, HeaderWriter) {
    char h[10];
    EXPECT_EQ(frame_header(h, kText, 5), 2u);
    EXPECT_EQ(std::uint8_t(h[0]), 0x81);
    EXPECT_EQ(h[1], 5);
    EXPECT_EQ(frame_header(h, kBinary, 126), 4u);
    EXPECT_EQ(std::uint8_t(h[1]), 126);
    EXPECT_EQ(frame_header(h, kBinary, 65536, false, true), 10u);
    EXPECT_EQ(std::uint8_t(h[0]), 0x42);
    EXPECT_EQ(std::uint8_t(h[1]), 127);
    EXPECT_EQ(h[7], 1);
    char c[129];
    std::size_t n = close_frame(c, 1000, "bye");
    EXPECT_EQ(std::string(c, n), std::string("\x88\x05\x03\xe8" "bye", 7));
    std::string longr(200, 'r');
    EXPECT_EQ(close_frame(c, 1000, longr), 2u + 125u);
}

TEST(WsReceiver, Messages) {
    using E = Receiver::Event;
    both(frame(0x81, "hello"), {{E::Message, "hello", true}});
    both(frame(0x82, ""), {{E::Message, "", false}});
    std::string big(70000, 'b');
    both(frame(0x82, big), {{E::Message, big, false}});
    std::string mid(300, 'm');
    both(frame(0x81, mid) + frame(0x82, "x"), {{E::Message, mid, true}, {E::Message, "x", false}});
    // Fragmented, with a ping in the middle.
    both(frame(0x01, "Hel") + frame(0x89, "p") + frame(0x00, "lo, ") + frame(0x80, "world"),
         {{E::Ping, "p"}, {E::Message, "Hello, world", true}});
    both(frame(0x8A, "pong"), {{E::Pong, "pong"}});
    both(frame(0x88, "\x03\xe8" "bye"), {{E::Close, "bye", false, 1000}});
    both(frame(0x88, ""), {{E::Close, "", false, 1005}});
    // UTF-8 split across fragments.
    both(frame(0x01, "\xf0\x9f") + frame(0x80, "\x98\x80"), {{E::Message, "\xf0\x9f\x98\x80", true}});
}

TEST(WsReceiver, Errors) {
    using E = Receiver::Event;
    auto err = [](int code) { return std::vector<Ev>{{E::Error, "", false, code}}; };
    both(frame(0x81, "hi", false), err(1002));                  // unmasked
    both(frame(0xC1, "hi"), err(1002));                         // RSV1 without deflate
    both(frame(0xA1, "hi"), err(1002));                         // RSV2
    both(frame(0x83, "hi"), err(1002));                         // opcode 3
    both(frame(0x8B, "hi"), err(1002));                         // opcode 11
    both(frame(0x89, std::string(126, 'p')), err(1002));        // control > 125
    both(frame(0x09, "p"), err(1002));                          // fragmented control
    both(frame(0x80, "x"), err(1002));                          // continuation without a message
    both(frame(0x01, "a") + frame(0x81, "b"), err(1002));       // new message inside one
    both(frame(0x81, "\xff"), err(1007));                       // invalid UTF-8
    both(frame(0x01, "\xce") + frame(0x80, "a"), err(1007));
    both(frame(0x01, "ok") + frame(0x80, "\xce"), err(1007));   // truncated at the end
    both(frame(0x88, "\x03"), err(1002));                       // 1-byte close payload
    both(frame(0x88, "\x03\xed"), err(1002));                   // close code 1005
    both(frame(0x88, "\x03\xe8\xff"), err(1007));               // bad reason
    both(frame(0x82, std::string(101, 'x')), err(1009), 100);
    both(frame(0x02, std::string(60, 'x')) + frame(0x80, std::string(60, 'x')), err(1009), 100);
    std::string huge("\x82\xff\x80\x00\x00\x00\x00\x00\x00\x00\x01\x02\x03\x04", 14);
    both(huge, err(1002));  // length with the top bit set
    // Events before the error are still reported.
    both(frame(0x81, "ok") + frame(0x83, ""), {{E::Message, "ok", true}, {E::Error, "", false, 1002}});
}

TEST(WsDeflate, Negotiation) {
    DeflateNegotiation n;
    n.offer("x-webkit-deflate-frame, permessage-deflate; client_max_window_bits");
    ASSERT_TRUE(n.accepted());
    EXPECT_EQ(n.response(), "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12");
    DeflateNegotiation m;
    m.offer("permessage-deflate; server_max_window_bits=8, permessage-deflate; server_no_context_takeover; "
            "client_no_context_takeover; server_max_window_bits=10");
    ASSERT_TRUE(m.accepted());
    EXPECT_TRUE(m.params().server_no_context_takeover);
    EXPECT_EQ(m.params().server_max_window_bits, 10);
    EXPECT_EQ(m.response(), "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
                            "server_max_window_bits=10");
    DeflateNegotiation bad;
    bad.offer("permessage-deflate; unknown=1, permessage-deflate; server_max_window_bits=16");
    EXPECT_FALSE(bad.accepted());
}

TEST(WsDeflate, RoundTripAndBomb) {
    DeflateParams p;
    Deflate out(p), in(p);
    std::string msg;
    for (int i = 0; i < 2000; ++i) msg += "hello websocket " + std::to_string(i) + "\n";
    std::string z;
    ASSERT_TRUE(out.compress(msg.data(), msg.size(), z));
    EXPECT_LT(z.size(), msg.size() / 3);
    // The compressed message as a masked client frame with RSV1, fed to a receiver with deflate on.
    using E = Receiver::Event;
    for (std::size_t step : {0, 1, 1000}) {
        Deflate d(p), enc(p);
        std::string z1, z2;
        ASSERT_TRUE(enc.compress(msg.data(), msg.size(), z1));
        ASSERT_TRUE(enc.compress(msg.data(), msg.size(), z2));  // context takeover: much smaller
        EXPECT_LT(z2.size(), z1.size());
        auto evs = run(frame(0xC1, z1) + frame(0xC1, z2), step, 0, 16384, &d);
        ASSERT_EQ(evs.size(), 2u);
        EXPECT_EQ(evs[0], (Ev{E::Message, msg, true}));
        EXPECT_EQ(evs[1], (Ev{E::Message, msg, true}));
    }
    // A zip bomb: 10 MB of zeros compresses to ~10 KB; max 1 MB stops it with 1009.
    std::string zeros(10 << 20, '\0');
    Deflate enc(p), d(p);
    ASSERT_TRUE(enc.compress(zeros.data(), zeros.size(), z));
    EXPECT_LT(z.size(), 20000u);
    auto evs = run(frame(0xC2, z), 0, 1 << 20, 16384, &d);
    ASSERT_EQ(evs.size(), 1u);
    EXPECT_EQ(evs[0].code, 1009);
    // Exactly at the limit is fine.
    Deflate enc2(p), d2(p);
    std::string exact(1000, 'a');
    ASSERT_TRUE(enc2.compress(exact.data(), exact.size(), z));
    evs = run(frame(0xC2, z), 0, 1000, 16384, &d2);
    ASSERT_EQ(evs.size(), 1u);
    EXPECT_EQ(evs[0].e, E::Message);
    // Empty messages (zlib writes nothing for a flush with no new input) round-trip too.
    {
        Deflate enc3(p), d4(p);
        std::string in, z0, z1, z2;
        ASSERT_TRUE(enc3.compress("", 0, z0));
        ASSERT_TRUE(enc3.compress("", 0, z1));
        ASSERT_TRUE(enc3.compress("x", 1, z2));
        EXPECT_FALSE(z1.empty());
        auto e3 = run(frame(0xC2, z0) + frame(0xC2, z1) + frame(0xC2, z2), 1, 0, 16384, &d4);
        ASSERT_EQ(e3.size(), 3u);
        EXPECT_EQ(e3[0], (Ev{E::Message, "", false}));
        EXPECT_EQ(e3[1], (Ev{E::Message, "", false}));
        EXPECT_EQ(e3[2], (Ev{E::Message, "x", false}));
    }
    // Invalid UTF-8 inside a compressed text message is 1007.
    {
        Deflate enc4(p), d5(p);
        std::string zz;
        ASSERT_TRUE(enc4.compress("ok \xff", 4, zz));
        auto e4 = run(frame(0xC1, zz), 0, 0, 16384, &d5);
        ASSERT_EQ(e4.size(), 1u);
        EXPECT_EQ(e4[0].code, 1007);
    }
    // Garbage is 1007.
    Deflate d3(p);
    evs = run(frame(0xC2, "\xff\xff\xff\xff\xff"), 0, 0, 16384, &d3);
    ASSERT_EQ(evs.size(), 1u);
    EXPECT_EQ(evs[0].code, 1007);
}

}  // namespace
