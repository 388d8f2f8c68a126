// The vector scans (SSE4.2, AVX2, NEON) must give exactly the scalar results: every primitive on every
// byte value at every position and alignment, and the whole parser on request vectors and random
// mutations of them, under each implementation available on this machine.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "http/scan.hpp"
#include "parse_helpers.hpp"

namespace luath::http {
namespace {

using test::parse_bytewise;
using test::parse_once;
using test::parse_pieces;
using test::Snap;

std::vector<ScanImpl> available() {
    std::vector<ScanImpl> v;
    for (ScanImpl i : {ScanImpl::Scalar, ScanImpl::SSE42, ScanImpl::AVX2, ScanImpl::NEON})
        if (scan_impl_available(i)) v.push_back(i);
    return v;
}

struct ImplGuard {
    ScanImpl saved = scan_impl();
    ~ImplGuard() { set_scan_impl(saved); }
};

TEST(Scan, ScalarAlwaysAvailableAndSelectable) {
    ImplGuard g;
    EXPECT_TRUE(scan_impl_available(ScanImpl::Scalar));
    EXPECT_TRUE(set_scan_impl(ScanImpl::Scalar));
    EXPECT_EQ(scan_impl(), ScanImpl::Scalar);
    for (ScanImpl i : {ScanImpl::SSE42, ScanImpl::AVX2, ScanImpl::NEON}) {
        if (!scan_impl_available(i)) {
            EXPECT_FALSE(set_scan_impl(i));
            EXPECT_EQ(scan_impl(), ScanImpl::Scalar);
        }
    }
}

TEST(Scan, DefaultIsBestAvailable) {
    const auto v = available();
    std::printf("scan implementations available: ");
    for (ScanImpl i : v) std::printf("%s ", scan_impl_name(i));
    std::printf("(in use: %s)\n", scan_impl_name(scan_impl()));
#if defined(__x86_64__)
    if (scan_impl_available(ScanImpl::AVX2)) {
        EXPECT_EQ(scan_impl(), ScanImpl::AVX2);
    }
#endif
}

// Every primitive, every byte value at every position of buffers up to 100 bytes, at 4 alignments.
TEST(Scan, PrimitivesMatchScalarForEveryByte) {
    ImplGuard g;
    set_scan_impl(ScanImpl::Scalar);
    const scan::Fns ref = scan::g_fns;
    for (ScanImpl impl : available()) {
        set_scan_impl(impl);
        const scan::Fns f = scan::g_fns;
        std::vector<char> storage(256);
        for (std::size_t align = 0; align < 4; ++align) {
            for (std::size_t len = 0; len <= 100; len += (len < 40 ? 1 : 7)) {
                for (int fill : {int('a'), int('\t'), 0x80}) {
                    char* buf = storage.data() + align;
                    std::memset(buf, fill, len);
                    for (std::size_t pos = 0; pos < len; ++pos) {
                        for (int b = 0; b < 256; ++b) {
                            const char saved = buf[pos];
                            buf[pos] = static_cast<char>(b);
                            ASSERT_EQ(f.value(buf, buf + len), ref.value(buf, buf + len))
                                << scan_impl_name(impl) << " value len=" << len << " pos=" << pos << " b=" << b;
                            ASSERT_EQ(f.target(buf, buf + len), ref.target(buf, buf + len))
                                << scan_impl_name(impl) << " target len=" << len << " pos=" << pos << " b=" << b;
                            ASSERT_EQ(f.token(buf, buf + len), ref.token(buf, buf + len))
                                << scan_impl_name(impl) << " token len=" << len << " pos=" << pos << " b=" << b;
                            buf[pos] = saved;
                        }
                        if (len > 40 && pos > 3) pos += 2;  // sample the longer ones
                    }
                }
            }
        }
    }
}

TEST(Scan, PrimitivesMatchScalarOnRandomBuffers) {
    ImplGuard g;
    set_scan_impl(ScanImpl::Scalar);
    const scan::Fns ref = scan::g_fns;
    std::mt19937 rng(12345);
    const std::string alphabet = "abcXYZ019-_:; \t\r\n\x7f\x80\xff#\"/?=,\x01\x0b";
    for (ScanImpl impl : available()) {
        set_scan_impl(impl);
        const scan::Fns f = scan::g_fns;
        for (int iter = 0; iter < 20000; ++iter) {
            const std::size_t len = rng() % 200;
            std::string s(len, 'a');
            const int density = 1 + static_cast<int>(rng() % 64);
            for (auto& c : s)
                if (static_cast<int>(rng() % 64) < density / 8 + 1) c = alphabet[rng() % alphabet.size()];
            const char* b = s.data();
            const char* e = b + s.size();
            ASSERT_EQ(f.value(b, e), ref.value(b, e)) << scan_impl_name(impl);
            ASSERT_EQ(f.target(b, e), ref.target(b, e)) << scan_impl_name(impl);
            ASSERT_EQ(f.token(b, e), ref.token(b, e)) << scan_impl_name(impl);
            Header h1[8], h2[8];
            const char *n1 = nullptr, *n2 = nullptr;
            const std::size_t off = len ? rng() % (len / 2 + 1) : 0;  // lines starting inside the buffer
            const std::size_t max_line = rng() % 4 ? 8190 : rng() % 40;
            const std::size_t c1 = ref.fields(b, b + off, e, h1, 8, max_line, &n1);
            const std::size_t c2 = f.fields(b, b + off, e, h2, 8, max_line, &n2);
            ASSERT_EQ(c1, c2) << scan_impl_name(impl);
            ASSERT_EQ(n1, n2) << scan_impl_name(impl);
            for (std::size_t i = 0; i < c1; ++i) {
                ASSERT_EQ(h1[i].name.data(), h2[i].name.data());
                ASSERT_EQ(h1[i].name.size(), h2[i].name.size());
                ASSERT_EQ(h1[i].value.data(), h2[i].value.data());
                ASSERT_EQ(h1[i].value.size(), h2[i].value.size());
            }
        }
    }
}

const std::vector<std::string>& request_vectors() {
    static const std::vector<std::string> v = [] {
        std::vector<std::string> r = {
            "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
            "GET /plaintext HTTP/1.1\r\nHost: localhost:8080\r\nAccept: text/plain,text/html;q=0.9,"
            "application/xhtml+xml;q=0.9,application/xml;q=0.8,*/*;q=0.7\r\nConnection: keep-alive\r\n\r\n",
            "POST /api/v1/items?x=1 HTTP/1.1\r\nHost: api.example.com\r\nContent-Type: application/json\r\n"
            "Content-Length: 2\r\nAuthorization: Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0In0\r\n"
            "X-Request-Id: 0f8fad5b-d9cb-469f-a165-70867728950e\r\n\r\n{}",
            "GET /a HTTP/1.1\r\nHost: a\r\nX-Long: " + std::string(300, 'v') + "\r\nY:\t\tz\t \r\n\r\n",
            "GET /" + std::string(200, 'p') + "?" + std::string(100, 'q') + " HTTP/1.1\r\nHost: a\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nX: a\x01" "b\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nX: " + std::string(40, 'a') + "\x7f\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nX-" + std::string(40, 'n') + "(: v\r\n\r\n",
            "GET /" + std::string(40, 'x') + "#f HTTP/1.1\r\nHost: a\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nX: \x80\xff\xc3\xa9 obs\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nX : v\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nX: v\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nX: v\rw\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nX: v\r\n folded\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
            // Aimed at the one-pass heads (head_fast.inc): buffers shorter than a block, the last lines of the
            // buffer, the names and values it recognises, Host values, OWS and HTAB.
            "GET / HTTP/1.1\r\nHost:a\r\n\r\n",
            "GET /p?q HTTP/1.1\r\nHost: localhost:8080\r\nContent-Length: 10\r\nConnection: keep-alive\r\n\r\n",
            "POST / HTTP/1.0\r\nHost: a:1\r\nConnection: close\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n"
            "TE: trailers\r\nUpgrade: h2c\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: " + std::string(30, 'h') + ":80\r\nHost: [::1]\r\nX:\t a \t\r\n\r\n",
            "GET /" + std::string(30, 'a') + "?" + std::string(30, 'b') + "?c HTTP/1.1\r\nhOST: a%2Fb:\r\n\r\n",
        };
        std::string many = "GET / HTTP/1.1\r\nHost: a\r\n";
        for (int i = 0; i < 40; ++i) many += "X-Header-" + std::to_string(i) + ": value-" + std::to_string(i * 7919) + "\r\n";
        r.push_back(many + "\r\n");
        return r;
    }();
    return v;
}

TEST(Scan, WholeParserMatchesScalarOnVectorsAndMutations) {
    ImplGuard g;
    std::vector<std::string> inputs = request_vectors();
    std::mt19937 rng(777);
    const std::string alphabet = " \t\r\n:;#\x7f\x00\x01\x80\xff(aZ9-";
    const std::size_t base = inputs.size();
    for (std::size_t k = 0; k < 3000; ++k) {
        std::string s = inputs[rng() % base];
        const int edits = 1 + static_cast<int>(rng() % 3);
        for (int e = 0; e < edits; ++e) {
            const std::size_t pos = rng() % s.size();
            switch (rng() % 3) {
                case 0: s[pos] = alphabet[rng() % alphabet.size()]; break;
                case 1: s.insert(pos, 1, alphabet[rng() % alphabet.size()]); break;
                default: s.erase(pos, 1); break;
            }
        }
        inputs.push_back(s);
    }
    Limits small;
    small.max_request_line = 60;
    small.max_field_size = 50;
    small.max_head_size = 400;
    small.max_headers = 5;
    std::vector<Snap> ref_once, ref_small, ref_split;
    set_scan_impl(ScanImpl::Scalar);
    for (const auto& s : inputs) {
        ref_once.push_back(parse_once(s));
        ref_small.push_back(parse_once(s, small));
        ref_split.push_back(parse_pieces(s, {s.size() / 3, s.size() / 2}));
        ASSERT_EQ(ref_split.back(), ref_once.back());
    }
    for (ScanImpl impl : available()) {
        set_scan_impl(impl);
        for (std::size_t i = 0; i < inputs.size(); ++i) {
            ASSERT_EQ(parse_once(inputs[i]), ref_once[i]) << scan_impl_name(impl) << " input " << i;
            ASSERT_EQ(parse_once(inputs[i], small), ref_small[i]) << scan_impl_name(impl) << " input " << i;
            ASSERT_EQ(parse_pieces(inputs[i], {inputs[i].size() / 3, inputs[i].size() / 2}), ref_split[i])
                << scan_impl_name(impl) << " input " << i;
            if (i < base) {
                ASSERT_EQ(parse_bytewise(inputs[i]), ref_once[i]) << scan_impl_name(impl);
            }
        }
    }
    // The one-pass path for whole heads against the line-by-line path alone (the reference).
    struct FastGuard {
        ~FastGuard() { g_fast_head = true; }
    } fg;
    for (ScanImpl impl : available()) {
        set_scan_impl(impl);
        for (std::size_t i = 0; i < inputs.size(); ++i) {
            g_fast_head = false;
            const Snap once = parse_once(inputs[i]), sm = parse_once(inputs[i], small);
            g_fast_head = true;
            ASSERT_EQ(once, ref_once[i]) << scan_impl_name(impl) << " line-by-line, input " << i;
            ASSERT_EQ(sm, ref_small[i]) << scan_impl_name(impl) << " line-by-line, input " << i;
        }
    }
}

// The one-pass path must actually take the usual requests (a path that gives up on them is correct but
// slow, and no other test would notice), with the same result as the line-by-line path.
TEST(Scan, OnePassHeadTakesUsualRequests) {
    ImplGuard g;
    struct FastGuard {
        ~FastGuard() { g_fast_head = true; }
    } fg;
    const std::string ua = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0";
    std::vector<std::string> heads = {
        "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET / HTTP/1.0\r\n\r\n",
        "GET /x HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        "GET /plaintext HTTP/1.1\r\nHost: localhost:8080\r\nAccept: text/plain,text/html;q=0.9,application/"
        "xhtml+xml;q=0.9,application/xml;q=0.8,*/*;q=0.7\r\nConnection: keep-alive\r\n\r\n",
        "GET /p?q=1&r=" + std::string(70, 'x') + " HTTP/1.1\r\nHost: www.example-shop.com\r\nUser-Agent: " + ua +
            "\r\nCookie: " + std::string(200, 'c') + "\r\n\r\n",
        "GET /" + std::string(100, 'p') + "?" + std::string(50, 'q') + " HTTP/1.1\r\nHost: h\r\n\r\n",
        "GET /" + std::string(31, 'p') + "?" + " HTTP/1.1\r\nHost: h\r\n\r\n",
        "GET /?" + std::string(40, 'q') + "?x HTTP/1.1\r\nHost: h\r\n\r\n",
        "POST /api HTTP/1.1\r\nHost: api.example.com:443\r\nContent-Length: 1834\r\nContent-Type: "
        "application/json\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n",
        "POST /api HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTE: trailers\r\n\r\n",
        "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n",
        "PUT /a HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
        "DELETE /a HTTP/1.1\r\nhost: A.B.C\r\n\r\n",
        "OPTIONS /a HTTP/1.1\r\nHOST: 1.2.3.4:80\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: " + std::string(40, 'h') + ".example.com:8080\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a%41b\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: \r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nX-" + std::string(60, 'n') + ": v\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nX:\r\nY: \r\nZ:\t\r\nW: \t v \t \r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nX: a\tb\t\tc\r\nY:\t" + std::string(40, 'y') + "\t" + std::string(40, 'y') + "\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nX: \x80\xff\xc3\xa9 obs-text\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nX: " + std::string(8000, 'v') + "\r\n\r\n",
    };
    std::string many = "GET / HTTP/1.1\r\nHost: a\r\n";
    for (int i = 0; i < 98; ++i) many += "X-Header-" + std::to_string(i) + ": value-" + std::to_string(i * 7919) + "\r\n";
    heads.push_back(many + "\r\n");
    const std::size_t nheads = heads.size();
    for (std::size_t i = 0; i < nheads; ++i) heads.push_back(heads[i] + "body bytes after the head");

    auto req = std::make_unique<Request>();
    for (ScanImpl impl : available()) {
        set_scan_impl(impl);
        for (std::size_t i = 0; i < heads.size(); ++i) {
            const std::string& s = heads[i];
            const std::size_t head_len = i < nheads ? s.size() : heads[i - nheads].size();
            std::unique_ptr<char[]> buf(new char[s.size()]);
            std::memcpy(buf.get(), s.data(), s.size());
            HeadState st;
            EXPECT_EQ(scan::g_fns.head_len(buf.get(), s.size(), *req, Limits{}, st), head_len)
                << scan_impl_name(impl) << " head " << i;
            const Snap fast = parse_once(s);
            g_fast_head = false;
            const Snap lines = parse_once(s);
            g_fast_head = true;
            EXPECT_EQ(fast, lines) << scan_impl_name(impl) << " head " << i;
            EXPECT_EQ(fast.status, Status::Complete) << scan_impl_name(impl) << " head " << i;
        }
    }
}

// Regressions found by the differential tests (tests/parser_diff/).
TEST(ParserRegressions, HostValueMustBeValid) {
    for (const char* h : {"a b", "a/b", "a@b", "a:b:c", "[::1", "a:port", "a?b", "a#b", "a, b"}) {
        const std::string in = std::string("GET / HTTP/1.1\r\nHost: ") + h + "\r\n\r\n";
        EXPECT_EQ(parse_once(in).error, Error::BadHost) << h;
        EXPECT_EQ(parse_bytewise(in).error, Error::BadHost) << h;
    }
    for (const char* h : {"", "a", "example.com:8080", "[::1]", "[::1]:1", "1.2.3.4", "a%20b", "xn--a.b"}) {
        const std::string in = std::string("GET / HTTP/1.1\r\nHost: ") + h + "\r\n\r\n";
        EXPECT_EQ(parse_once(in).status, Status::Complete) << h;
    }
}

TEST(ParserRegressions, EmptyTransferEncodingLineNextToChunked) {
    for (const char* te : {"Transfer-Encoding:\r\n", "Transfer-Encoding: ,\r\n", "Transfer-Encoding:  \r\n"}) {
        const std::string a = std::string("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n") + te + "\r\n";
        const std::string b = std::string("POST / HTTP/1.1\r\nHost: a\r\n") + te + "Transfer-Encoding: chunked\r\n\r\n";
        EXPECT_EQ(parse_once(a).error, Error::TransferEncodingNotChunked) << te;
        EXPECT_EQ(parse_once(b).error, Error::TransferEncodingNotChunked) << te;
    }
    EXPECT_EQ(parse_once("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: , chunked\r\n\r\n").status,
              Status::Complete);
}

}  // namespace
}  // namespace luath::http
