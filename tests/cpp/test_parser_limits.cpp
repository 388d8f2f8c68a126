// Limits: exact boundaries, early detection (before the head is complete), and split invariance.
#include <gtest/gtest.h>

#include <string>

#include "parse_helpers.hpp"

using namespace luath::http;
using namespace luath::http::test;

namespace {

Limits small_limits() {
    Limits l;
    l.max_request_line = 64;
    l.max_field_size = 48;
    l.max_head_size = 256;
    l.max_headers = 5;
    l.max_body_size = 1000;
    return l;
}

// A request line of exactly n bytes (CRLF excluded).
std::string request_line(std::size_t n) {
    const std::string pre = "GET /", post = " HTTP/1.1";
    return pre + std::string(n - pre.size() - post.size(), 'a') + post;
}

// A field line of exactly n bytes (CRLF excluded): "X: vvv".
std::string field_line(std::size_t n) { return "X: " + std::string(n - 3, 'v'); }

void expect_split_invariant(const std::string& in, const Limits& lim) {
    const Snap whole = parse_once(in, lim);
    for (std::size_t cut = 0; cut <= in.size(); ++cut)
        ASSERT_EQ(parse_pieces(in, {cut}, lim), whole) << "cut " << cut;
    ASSERT_EQ(parse_bytewise(in, lim), whole);
}

TEST(Limits, RequestLineExactlyAtLimit) {
    const Limits l = small_limits();
    const std::string in = request_line(64) + "\r\nHost: a\r\n\r\n";
    const Snap s = parse_once(in, l);
    EXPECT_EQ(s.status, Status::Complete);
    expect_split_invariant(in, l);
}

TEST(Limits, RequestLineOneOver) {
    const Limits l = small_limits();
    const std::string in = request_line(65) + "\r\nHost: a\r\n\r\n";
    EXPECT_EQ(parse_once(in, l).error, Error::TargetTooLong);
    expect_split_invariant(in, l);
}

TEST(Limits, RequestLineDetectedWithoutLineEnd) {
    const Limits l = small_limits();
    const std::string line = std::string("GET /") + std::string(100, 'a');
    // 64 bytes: can still be a valid request line.
    EXPECT_EQ(parse_once(line.substr(0, 64), l).status, Status::Incomplete);
    // 64 bytes + CR: the LF may follow, still fine.
    EXPECT_EQ(parse_once(line.substr(0, 64) + "\r", l).status, Status::Incomplete);
    // 65 bytes without a line end: certainly too long.
    EXPECT_EQ(parse_once(line.substr(0, 65), l).error, Error::TargetTooLong);
    // 64 bytes + CR + something other than LF: too long as well.
    EXPECT_EQ(parse_once(line.substr(0, 64) + "\rx", l).error, Error::TargetTooLong);
}

TEST(Limits, RequestLineDefaultLimit) {
    const Limits l;
    const std::string ok = request_line(8190) + "\r\nHost: a\r\n\r\n";
    EXPECT_EQ(parse_once(ok, l).status, Status::Complete);
    EXPECT_EQ(parse_once(request_line(8191) + "\r\nHost: a\r\n\r\n", l).error, Error::TargetTooLong);
    EXPECT_EQ(parse_once(std::string(8191, 'G'), l).error, Error::TargetTooLong);
    EXPECT_EQ(parse_once(std::string(8190, 'G'), l).status, Status::Incomplete);
}

TEST(Limits, FieldLineExactlyAtLimit) {
    const Limits l = small_limits();
    const std::string in = "GET / HTTP/1.1\r\nHost: a\r\n" + field_line(48) + "\r\n\r\n";
    const Snap s = parse_once(in, l);
    ASSERT_EQ(s.status, Status::Complete);
    EXPECT_EQ(s.headers.back().second.size(), 45u);
    expect_split_invariant(in, l);
}

TEST(Limits, FieldLineOneOver) {
    const Limits l = small_limits();
    const std::string in = "GET / HTTP/1.1\r\nHost: a\r\n" + field_line(49) + "\r\n\r\n";
    EXPECT_EQ(parse_once(in, l).error, Error::HeadTooLarge);
    expect_split_invariant(in, l);
}

TEST(Limits, FieldLineDetectedWithoutLineEnd) {
    const Limits l = small_limits();
    const std::string pre = "GET / HTTP/1.1\r\nHost: a\r\n";
    EXPECT_EQ(parse_once(pre + field_line(48), l).status, Status::Incomplete);
    EXPECT_EQ(parse_once(pre + field_line(48) + "\r", l).status, Status::Incomplete);
    EXPECT_EQ(parse_once(pre + field_line(49), l).error, Error::HeadTooLarge);
}

TEST(Limits, FieldLineLimitAppliesToEachLine) {
    const Limits l = small_limits();
    const std::string in =
        "GET / HTTP/1.1\r\nHost: a\r\n" + field_line(48) + "\r\n" + field_line(48) + "\r\n\r\n";
    EXPECT_EQ(parse_once(in, l).status, Status::Complete);
}

std::string head_of_size(std::size_t n) {
    // "GET / HTTP/1.1\r\nHost: a\r\n" + filler lines + "\r\n", exactly n bytes.
    std::string h = "GET / HTTP/1.1\r\nHost: a\r\n";
    std::size_t left = n - h.size() - 2;
    while (left > 0) {
        std::size_t line = left > 40 ? 40 : left;  // line incl. CRLF
        if (left - line > 0 && left - line < 6) line = left - 6;  // keep the next line >= 6 bytes
        h += field_line(line - 2) + "\r\n";
        left -= line;
    }
    return h + "\r\n";
}

TEST(Limits, HeadExactlyAtLimit) {
    Limits l = small_limits();
    l.max_headers = 100;
    const std::string in = head_of_size(256);
    ASSERT_EQ(in.size(), 256u);
    const Snap s = parse_once(in, l);
    EXPECT_EQ(s.status, Status::Complete) << int(s.error);
    EXPECT_EQ(s.consumed, 256u);
    expect_split_invariant(in, l);
}

TEST(Limits, HeadOneOver) {
    Limits l = small_limits();
    l.max_headers = 100;
    const std::string in = head_of_size(257);
    ASSERT_EQ(in.size(), 257u);
    EXPECT_EQ(parse_once(in, l).error, Error::HeadTooLarge);
    expect_split_invariant(in, l);
}

TEST(Limits, HeadLimitExcludesLeadingEmptyLines) {
    Limits l = small_limits();
    l.max_headers = 100;
    const std::string in = "\r\n\r\n" + head_of_size(256);
    EXPECT_EQ(parse_once(in, l).status, Status::Complete);
}

TEST(Limits, HeadDetectedBeforeTerminator) {
    Limits l = small_limits();
    l.max_headers = 100;
    std::string in = "GET / HTTP/1.1\r\nHost: a\r\n";
    while (in.size() <= 256) in += field_line(20) + "\r\n";
    EXPECT_EQ(parse_once(in.substr(0, 256), l).status, Status::Incomplete);
    EXPECT_EQ(parse_once(in.substr(0, 257), l).error, Error::HeadTooLarge);
}

TEST(Limits, HeadVsLineLimitEarliestWins) {
    // The head limit is hit inside a line that later also exceeds the line limit: the earlier one wins,
    // however the bytes arrive.
    Limits l = small_limits();
    l.max_field_size = 1000;
    l.max_head_size = 60;
    const std::string in = "GET / HTTP/1.1\r\nHost: a\r\n" + field_line(1500) + "\r\n\r\n";
    EXPECT_EQ(parse_once(in, l).error, Error::HeadTooLarge);
    expect_split_invariant(in, l);
    l.max_head_size = 100000;
    l.max_field_size = 20;
    EXPECT_EQ(parse_once(in, l).error, Error::HeadTooLarge);
    expect_split_invariant(in, l);
    // Request line: line limit (414) before head limit (431) when it triggers first.
    Limits r = small_limits();
    r.max_request_line = 30;
    r.max_head_size = 40;
    const std::string rl = request_line(50) + "\r\nHost: a\r\n\r\n";
    EXPECT_EQ(parse_once(rl, r).error, Error::TargetTooLong);
    expect_split_invariant(rl, r);
    r.max_request_line = 45;
    r.max_head_size = 40;
    EXPECT_EQ(parse_once(rl, r).error, Error::HeadTooLarge);
    expect_split_invariant(rl, r);
}

TEST(Limits, MaxHeadersExactly) {
    const Limits l = small_limits();  // 5 headers
    std::string in = "GET / HTTP/1.1\r\nHost: a\r\n";
    for (int i = 0; i < 4; ++i) in += "X: " + std::to_string(i) + "\r\n";
    in += "\r\n";
    const Snap s = parse_once(in, l);
    ASSERT_EQ(s.status, Status::Complete);
    EXPECT_EQ(s.headers.size(), 5u);
    expect_split_invariant(in, l);
}

TEST(Limits, MaxHeadersOneOver) {
    const Limits l = small_limits();
    std::string in = "GET / HTTP/1.1\r\nHost: a\r\n";
    for (int i = 0; i < 5; ++i) in += "X: " + std::to_string(i) + "\r\n";
    const std::string head = in + "\r\n";
    EXPECT_EQ(parse_once(head, l).error, Error::TooManyHeaders);
    // Detected when the sixth line completes, before the end of the head.
    EXPECT_EQ(parse_once(in, l).error, Error::TooManyHeaders);
    expect_split_invariant(head, l);
}

TEST(Limits, MaxHeadersCappedAtHardCap) {
    Limits l;
    l.max_headers = 100000;
    l.max_head_size = 1 << 20;
    std::string in = "GET / HTTP/1.1\r\nHost: a\r\n";
    for (std::size_t i = 1; i < kMaxHeadersCap; ++i) in += "X: 1\r\n";
    EXPECT_EQ(parse_once(in + "\r\n", l).status, Status::Complete);
    EXPECT_EQ(parse_once(in + "X: 1\r\n\r\n", l).error, Error::TooManyHeaders);
}

TEST(Limits, DefaultMaxHeaders) {
    std::string in = "GET / HTTP/1.1\r\nHost: a\r\n";
    for (int i = 1; i < 100; ++i) in += "X: 1\r\n";
    EXPECT_EQ(parse_once(in + "\r\n").status, Status::Complete);
    EXPECT_EQ(parse_once(in + "X: 1\r\n\r\n").error, Error::TooManyHeaders);
}

TEST(Limits, BodySize) {
    const Limits l = small_limits();  // 1000
    const std::string pre = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: ";
    EXPECT_EQ(parse_once(pre + "1000\r\n\r\n", l).status, Status::Complete);
    EXPECT_EQ(parse_once(pre + "1001\r\n\r\n", l).error, Error::BodyTooLarge);
    Limits nolimit = l;
    nolimit.max_body_size = 0;
    EXPECT_EQ(parse_once(pre + "1001\r\n\r\n", nolimit).status, Status::Complete);
    EXPECT_EQ(parse_once(pre + "9223372036854775807\r\n\r\n", nolimit).status, Status::Complete);
    // Chunked bodies are limited by the decoder, not at head time.
    EXPECT_EQ(parse_once("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", l).status,
              Status::Complete);
}

TEST(Limits, LimitErrorsTakePriorityInTheirLine) {
    // A too-long line that also contains a bad byte reports the limit (it became certain first).
    const Limits l = small_limits();
    const std::string in = "GET / HTTP/1.1\r\nHost: a\r\n" + field_line(60) + "\x01\r\n\r\n";
    EXPECT_EQ(parse_once(in, l).error, Error::HeadTooLarge);
    // But an earlier complete bad line wins over a later limit.
    const std::string in2 = "GET / HTTP/1.1\r\nHost: a\r\nX: \x01\r\n" + field_line(60) + "\r\n\r\n";
    EXPECT_EQ(parse_once(in2, l).error, Error::BadHeaderValue);
    expect_split_invariant(in, l);
    expect_split_invariant(in2, l);
}

TEST(Limits, TinyLimits) {
    Limits l;
    l.max_request_line = 0;
    EXPECT_EQ(parse_once("G", l).error, Error::TargetTooLong);
    EXPECT_EQ(parse_once("\r\n", l).status, Status::Incomplete);  // leading empty line, skipped
    EXPECT_EQ(parse_once("\r", l).status, Status::Incomplete);
    l = Limits{};
    l.max_headers = 0;
    EXPECT_EQ(parse_once("GET / HTTP/1.0\r\n\r\n", l).status, Status::Complete);
    EXPECT_EQ(parse_once("GET / HTTP/1.1\r\nHost: a\r\n\r\n", l).error, Error::TooManyHeaders);
}

}  // namespace

namespace {

// Randomly mutated heads (bytes that matter to the grammar inserted, replaced, deleted) under default and
// tiny limits: one call, byte by byte and random pieces must all agree.
TEST(Property, MutatedHeadsAreSplitInvariant) {
    const std::string seeds[] = {
        "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        "POST /p?q HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
        "\r\nPOST http://a/b HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\nTE: trailers\r\n\r\n",
        "GET / HTTP/1.0\r\nConnection: keep-alive\r\nX: y\r\n\r\n",
    };
    const char alphabet[] = {'\r', '\n', ' ', '\t', ':', ',', '\0', 'a', '\x0b', '#', '/', '?', 'H', '1', '\x80'};
    Limits tiny;
    tiny.max_request_line = 20;
    tiny.max_field_size = 12;
    tiny.max_head_size = 70;
    tiny.max_headers = 3;
    tiny.max_body_size = 3;
    unsigned seed = 987654321u;
    auto rnd = [&](unsigned n) { return seed = seed * 1664525u + 1013904223u, (seed >> 8) % n; };
    int checked = 0;
    for (int iter = 0; iter < 3000; ++iter) {
        std::string s = seeds[rnd(4)];
        const unsigned edits = 1 + rnd(3);
        for (unsigned k = 0; k < edits; ++k) {
            const std::size_t at = rnd(static_cast<unsigned>(s.size()));
            const char c = alphabet[rnd(sizeof alphabet)];
            switch (rnd(3)) {
                case 0: s.insert(s.begin() + static_cast<std::ptrdiff_t>(at), c); break;
                case 1: s[at] = c; break;
                default: s.erase(at, 1); break;
            }
        }
        for (const Limits& lim : {Limits{}, tiny}) {
            const Snap whole = parse_once(s, lim);
            ASSERT_EQ(parse_bytewise(s, lim), whole) << iter;
            std::vector<std::size_t> cuts;
            for (std::size_t at = rnd(5); at < s.size(); at += 1 + rnd(9)) cuts.push_back(at);
            ASSERT_EQ(parse_pieces(s, cuts, lim), whole) << iter;
            ++checked;
        }
    }
    EXPECT_EQ(checked, 6000);
}

}  // namespace
