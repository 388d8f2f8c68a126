// Chunked decoder: sizes, extensions, trailers, CRLF strictness, overflow, body limit, split invariance.
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "http/parser.hpp"

using namespace luath::http;
using namespace std::string_literals;

namespace {

struct Outcome {
    ChunkedDecoder::Result result = ChunkedDecoder::Result::NeedMore;  // Done, Error or NeedMore
    Error error = Error::None;
    std::string body;
    std::size_t consumed = 0;  // bytes of input used (meaningful for Done)
    std::uint64_t total = 0;
    bool operator==(const Outcome&) const = default;
};

std::ostream& operator<<(std::ostream& os, const Outcome& o) {
    return os << "{result=" << int(o.result) << " error=" << int(o.error) << " body=" << o.body.size()
              << " consumed=" << o.consumed << " total=" << o.total << "}";
}

// Feeds the input in pieces ending at each cut (each piece in its own exact-size heap buffer).
Outcome decode_pieces(const std::string& in, std::vector<std::size_t> cuts, std::uint64_t max_body = 0) {
    ChunkedDecoder d(max_body);
    Outcome o;
    cuts.push_back(in.size());
    std::size_t from = 0;
    for (std::size_t cut : cuts) {
        if (cut < from) continue;
        const std::size_t n = cut - from;
        std::unique_ptr<char[]> buf(new char[n ? n : 1]);
        if (n) std::memcpy(buf.get(), in.data() + from, n);
        const char* p = buf.get();
        const char* end = p + n;
        for (;;) {
            std::string_view out;
            const char* before = p;
            const auto r = d.next(p, end, out);
            EXPECT_LE(p, end);
            EXPECT_GE(p, before);
            if (r == ChunkedDecoder::Result::Data) {
                EXPECT_FALSE(out.empty());
                EXPECT_GE(out.data(), before);
                EXPECT_LE(out.data() + out.size(), end);
                o.body.append(out);
                continue;
            }
            if (r == ChunkedDecoder::Result::NeedMore) {
                EXPECT_EQ(p, end);
                break;
            }
            o.result = r;
            o.error = d.error();
            o.consumed = from + static_cast<std::size_t>(p - buf.get());
            o.total = d.total();
            if (r == ChunkedDecoder::Result::Error) o.consumed = 0;  // position not part of the contract
            return o;
        }
        from = cut;
    }
    o.result = ChunkedDecoder::Result::NeedMore;
    o.total = d.total();
    return o;
}

Outcome decode(const std::string& in, std::uint64_t max_body = 0) { return decode_pieces(in, {}, max_body); }

Outcome decode_bytewise(const std::string& in, std::uint64_t max_body = 0) {
    std::vector<std::size_t> cuts;
    for (std::size_t i = 0; i < in.size(); ++i) cuts.push_back(i);
    return decode_pieces(in, cuts, max_body);
}

struct CVec {
    const char* name;
    std::string in;
    Error err;                  // None: must be Done
    std::string body = {};      // decoded body (when Done); for errors: what is decoded before it
    std::size_t extra = 0;      // bytes after the end of the chunked body
    std::uint64_t max_body = 0;
};

const std::string k4100(4100, '0');

const CVec kChunkVectors[] = {
    // ---- valid ----
    {"single", "5\r\nhello\r\n0\r\n\r\n", Error::None, "hello"},
    {"empty_body", "0\r\n\r\n", Error::None, ""},
    {"multiple", "5\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\n\r\n", Error::None, "hello world"},
    {"hex_upper", "A\r\n0123456789\r\n0\r\n\r\n", Error::None, "0123456789"},
    {"hex_lower", "a\r\n0123456789\r\n0\r\n\r\n", Error::None, "0123456789"},
    {"hex_two_digits", "1F\r\n" + std::string(31, 'x') + "\r\n0\r\n\r\n", Error::None, std::string(31, 'x')},
    {"leading_zeros", "0005\r\nhello\r\n000\r\n\r\n", Error::None, "hello"},
    {"many_leading_zeros", std::string(40, '0') + "1\r\nx\r\n0\r\n\r\n", Error::None, "x"},
    {"data_with_crlf_inside", "4\r\n\r\n\r\n\r\n0\r\n\r\n", Error::None, "\r\n\r\n"},
    {"binary_data", "3\r\n\0\xff\n\r\n0\r\n\r\n"s, Error::None, "\0\xff\n"s},
    {"ext_name", "5;foo\r\nhello\r\n0\r\n\r\n", Error::None, "hello"},
    {"ext_name_value", "5;foo=bar\r\nhello\r\n0\r\n\r\n", Error::None, "hello"},
    {"ext_bws", "5 ; foo = bar\r\nhello\r\n0\r\n\r\n", Error::None, "hello"},
    {"ext_tabs", "5\t;\tfoo\t=\tbar\r\nhello\r\n0\r\n\r\n", Error::None, "hello"},
    {"ext_multiple", "5;a;b=c;d=\"e\"\r\nhello\r\n0\r\n\r\n", Error::None, "hello"},
    {"ext_quoted_escape", "5;a=\"x\\\"y; z\"\r\nhello\r\n0\r\n\r\n", Error::None, "hello"},
    {"ext_quoted_empty", "5;a=\"\"\r\nhello\r\n0\r\n\r\n", Error::None, "hello"},
    {"ext_on_last_chunk", "5\r\nhello\r\n0;final=yes\r\n\r\n", Error::None, "hello"},
    {"trailers", "5\r\nhello\r\n0\r\nX-Sum: abc\r\nY:\r\nZ: \t v \t\r\n\r\n", Error::None, "hello"},
    {"trailer_obs_text", "0\r\nX: caf\xc3\xa9\r\n\r\n", Error::None, ""},
    {"pipelined_after", "5\r\nhello\r\n0\r\n\r\nGET / HTTP/1.1\r\n", Error::None, "hello", 16},
    {"at_limit", "5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n", Error::None, "helloworld", 0, 10},
    {"max_16_digits", "00ffffffffffffffff\r\n", Error::None, "", 0, 0},  // NeedMore, see below

    // ---- chunk size ----
    {"size_negative", "-1\r\nx\r\n0\r\n\r\n", Error::BadChunkSize},
    {"size_plus", "+1\r\nx\r\n0\r\n\r\n", Error::BadChunkSize},
    {"size_leading_space", " 1\r\nx\r\n0\r\n\r\n", Error::BadChunkSize},
    {"size_0x", "0x10\r\n", Error::BadChunkSize},
    {"size_empty", "\r\n", Error::BadChunkSize},
    {"size_not_hex", "g\r\n", Error::BadChunkSize},
    {"size_bare_lf", "5\nhello\r\n0\r\n\r\n", Error::BadChunkSize},
    {"size_cr_no_lf", "5\rhello\r\n", Error::BadChunkSize},
    {"size_overflow_17_digits", "10000000000000000\r\n", Error::BadChunkSize},
    {"size_overflow_huge", "ffffffffffffffffff\r\n", Error::BadChunkSize},
    {"size_bare_lf_after_ext", "5;a\nhello\r\n", Error::BadChunkSize},
    {"size_bare_lf_last_chunk", "5\r\nhello\r\n0\n\r\n", Error::BadChunkSize, "hello"},
    {"size_underscore", "1_0\r\n", Error::BadChunkSize},
    {"size_nul", "1\0\r\n"s, Error::BadChunkSize},
    {"size_line_too_long_zeros", k4100 + "1\r\n", Error::BadChunkSize},

    // ---- extensions ----
    {"ext_empty_name", "5;\r\nhello\r\n0\r\n\r\n", Error::BadChunkExtension},
    {"ext_only_value", "5;=x\r\nhello\r\n", Error::BadChunkExtension},
    {"ext_empty_value", "5;a=\r\nhello\r\n", Error::BadChunkExtension},
    {"ext_unterminated_quote", "5;a=\"x\r\nhello\r\n", Error::BadChunkExtension},
    {"ext_value_space", "5;a=b c\r\nhello\r\n", Error::BadChunkExtension},
    {"ext_ctl", "5;a\x01\r\nhello\r\n", Error::BadChunkExtension},
    {"ext_ctl_in_quoted", "5;a=\"\x01\"\r\nhello\r\n", Error::BadChunkExtension},
    {"ext_del", "5;a=b\x7f\r\nhello\r\n", Error::BadChunkExtension},
    {"ext_trailing_ws_no_semicolon", "5 \r\nhello\r\n", Error::BadChunkExtension},
    {"ext_after_quoted_garbage", "5;a=\"x\"y\r\nhello\r\n", Error::BadChunkExtension},
    {"ext_name_trailing_ws", "5;a \r\nhello\r\n", Error::BadChunkExtension},
    {"ext_double_equals", "5;a==b\r\nhello\r\n", Error::BadChunkExtension},
    {"ext_too_long", "5;a=" + std::string(4100, 'b') + "\r\nhello\r\n", Error::BadChunkExtension},

    // ---- data CRLF ----
    {"data_no_crlf", "5\r\nhelloX\r\n0\r\n\r\n", Error::BadChunkData, "hello"},
    {"data_bare_lf", "5\r\nhello\n0\r\n\r\n", Error::BadChunkData, "hello"},
    {"data_cr_only", "5\r\nhello\rX", Error::BadChunkData, "hello"},
    {"data_too_long", "5\r\nhello world\r\n0\r\n\r\n", Error::BadChunkData, "hello"},
    {"data_short_then_next_size", "5\r\nhell\r\n0\r\n\r\n", Error::BadChunkData, "hell\r"},

    // ---- trailers ----
    {"trailer_obs_fold", "0\r\nX: a\r\n b\r\n\r\n", Error::BadTrailer},
    {"trailer_space_before_colon", "0\r\nX : a\r\n\r\n", Error::BadTrailer},
    {"trailer_empty_name", "0\r\n: a\r\n\r\n", Error::BadTrailer},
    {"trailer_no_colon", "0\r\nXY\r\n\r\n", Error::BadTrailer},
    {"trailer_ctl_value", "0\r\nX: a\x01\r\n\r\n", Error::BadTrailer},
    {"trailer_nul_value", "0\r\nX: a\0\r\n\r\n"s, Error::BadTrailer},
    {"trailer_bare_lf", "0\r\nX: a\n\r\n", Error::BadTrailer},
    {"trailer_final_bare_lf", "0\r\nX: a\r\n\n", Error::BadTrailer},
    {"trailer_final_bare_lf_no_fields", "0\r\n\n", Error::BadTrailer},
    {"trailer_cr_no_lf", "0\r\nX: a\rb\r\n\r\n", Error::BadTrailer},
    {"trailer_too_large", "0\r\n" + std::string("X: ") + std::string(8200, 'v') + "\r\n\r\n", Error::BadTrailer},
    {"trailer_many_lines_too_large", [] {
         std::string s = "0\r\n";
         for (int i = 0; i < 1000; ++i) s += "X: 123456\r\n";
         return s + "\r\n";
     }(), Error::BadTrailer},

    // ---- body limit ----
    {"limit_first_chunk", "B\r\nhello world\r\n0\r\n\r\n", Error::BodyTooLarge, "", 0, 10},
    {"limit_second_chunk", "5\r\nhello\r\n6\r\nworld!\r\n0\r\n\r\n", Error::BodyTooLarge, "hello", 0, 10},
    {"limit_huge_size", "ffffffffffffffff\r\n", Error::BodyTooLarge, "", 0, 1 << 20},
};

class ChunkVectors : public ::testing::TestWithParam<CVec> {};

TEST_P(ChunkVectors, WholeInput) {
    const CVec& v = GetParam();
    const Outcome o = decode(v.in, v.max_body);
    if (std::string(v.name) == "max_16_digits") {
        EXPECT_EQ(o.result, ChunkedDecoder::Result::NeedMore);  // waits for 2^64-1 bytes of data
        EXPECT_EQ(o.error, Error::None);
        return;
    }
    if (v.err == Error::None) {
        EXPECT_EQ(o.result, ChunkedDecoder::Result::Done) << int(o.error);
        EXPECT_EQ(o.body, v.body);
        EXPECT_EQ(o.consumed, v.in.size() - v.extra);
        EXPECT_EQ(o.total, v.body.size());
    } else {
        EXPECT_EQ(o.result, ChunkedDecoder::Result::Error);
        EXPECT_EQ(o.error, v.err) << "got " << int(o.error) << " want " << int(v.err);
        EXPECT_EQ(o.body, v.body);
    }
}

TEST_P(ChunkVectors, EveryTwoPieceSplit) {
    const CVec& v = GetParam();
    const Outcome whole = decode(v.in, v.max_body);
    for (std::size_t cut = 0; cut <= v.in.size(); ++cut)
        ASSERT_EQ(decode_pieces(v.in, {cut}, v.max_body), whole) << "cut " << cut;
}

TEST_P(ChunkVectors, ByteByByte) {
    const CVec& v = GetParam();
    EXPECT_EQ(decode_bytewise(v.in, v.max_body), decode(v.in, v.max_body));
}

INSTANTIATE_TEST_SUITE_P(Chunked, ChunkVectors, ::testing::ValuesIn(kChunkVectors),
                         [](const ::testing::TestParamInfo<CVec>& i) { return std::string(i.param.name); });

TEST(Chunked, ZeroCopyViewsAndPartialData) {
    const std::string in = "a\r\n0123456789\r\n0\r\n\r\n";
    ChunkedDecoder d;
    // Only 7 bytes of the 10-byte chunk available.
    const char* p = in.data();
    const char* end = in.data() + 3 + 7;
    std::string_view out;
    ASSERT_EQ(d.next(p, end, out), ChunkedDecoder::Result::Data);
    EXPECT_EQ(out.data(), in.data() + 3);
    EXPECT_EQ(out, "0123456");
    EXPECT_EQ(p, end);
    EXPECT_EQ(d.total(), 7u);
    EXPECT_EQ(d.next(p, end, out), ChunkedDecoder::Result::NeedMore);
    end = in.data() + in.size();
    ASSERT_EQ(d.next(p, end, out), ChunkedDecoder::Result::Data);
    EXPECT_EQ(out, "789");
    EXPECT_EQ(out.data(), in.data() + 10);
    ASSERT_EQ(d.next(p, end, out), ChunkedDecoder::Result::Done);
    EXPECT_EQ(p, end);
    EXPECT_TRUE(d.done());
    EXPECT_EQ(d.total(), 10u);
    // Done is sticky and consumes nothing more.
    const char* q = end;
    EXPECT_EQ(d.next(q, end, out), ChunkedDecoder::Result::Done);
}

TEST(Chunked, DataTakenPastTheDecoder) {
    // A caller that reads chunk data straight from its source: data_left() says how much of the current
    // chunk is still to come, skip_data() accounts for what it took; the decoder then expects the CRLF.
    const std::string in = "a;e=1\r\n0123456789\r\n4\r\nwxyz\r\n0\r\n\r\n";
    ChunkedDecoder d;
    const char* p = in.data();
    const char* end = in.data() + 7 + 2;  // the size line (7 bytes) and two data bytes
    std::string_view out;
    EXPECT_EQ(d.data_left(), 0u);
    ASSERT_EQ(d.next(p, end, out), ChunkedDecoder::Result::Data);
    EXPECT_EQ(out, "01");
    EXPECT_EQ(d.data_left(), 8u);
    d.skip_data(5);  // "23456", taken elsewhere
    EXPECT_EQ(d.data_left(), 3u);
    EXPECT_EQ(d.total(), 7u);
    d.skip_data(3);  // "789": the chunk is complete
    EXPECT_EQ(d.data_left(), 0u);
    p = in.data() + 7 + 10;  // the source continues after the data
    end = in.data() + in.size();
    ASSERT_EQ(d.next(p, end, out), ChunkedDecoder::Result::Data);
    EXPECT_EQ(out, "wxyz");
    ASSERT_EQ(d.next(p, end, out), ChunkedDecoder::Result::Done);
    EXPECT_EQ(d.total(), 14u);
    EXPECT_EQ(d.data_left(), 0u);
    // The CRLF after skipped data is still checked.
    ChunkedDecoder e;
    const std::string bad = "3\r\nabcX\r\n";
    p = bad.data();
    end = bad.data() + 3;
    EXPECT_EQ(e.next(p, end, out), ChunkedDecoder::Result::NeedMore);
    EXPECT_EQ(e.data_left(), 3u);
    e.skip_data(3);
    p = bad.data() + 6;
    end = bad.data() + bad.size();
    EXPECT_EQ(e.next(p, end, out), ChunkedDecoder::Result::Error);
}

TEST(Chunked, DataDoesNotSpanChunks) {
    const std::string in = "3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n";
    ChunkedDecoder d;
    const char* p = in.data();
    const char* end = p + in.size();
    std::string_view out;
    ASSERT_EQ(d.next(p, end, out), ChunkedDecoder::Result::Data);
    EXPECT_EQ(out, "abc");
    ASSERT_EQ(d.next(p, end, out), ChunkedDecoder::Result::Data);
    EXPECT_EQ(out, "def");
    ASSERT_EQ(d.next(p, end, out), ChunkedDecoder::Result::Done);
}

TEST(Chunked, ErrorIsSticky) {
    const std::string in = "x\r\n";
    ChunkedDecoder d;
    const char* p = in.data();
    std::string_view out;
    ASSERT_EQ(d.next(p, p + in.size(), out), ChunkedDecoder::Result::Error);
    EXPECT_EQ(d.error(), Error::BadChunkSize);
    const std::string ok = "0\r\n\r\n";
    const char* q = ok.data();
    EXPECT_EQ(d.next(q, q + ok.size(), out), ChunkedDecoder::Result::Error);
    EXPECT_FALSE(d.done());
}

TEST(Chunked, ResetStartsOver) {
    ChunkedDecoder d(4);
    const std::string bad = "5\r\n";
    const char* p = bad.data();
    std::string_view out;
    ASSERT_EQ(d.next(p, p + bad.size(), out), ChunkedDecoder::Result::Error);
    EXPECT_EQ(d.error(), Error::BodyTooLarge);
    d.reset(0);
    EXPECT_EQ(d.error(), Error::None);
    const std::string in = "5\r\nhello\r\n0\r\n\r\n";
    p = in.data();
    const char* end = p + in.size();
    ASSERT_EQ(d.next(p, end, out), ChunkedDecoder::Result::Data);
    ASSERT_EQ(d.next(p, end, out), ChunkedDecoder::Result::Done);
}

TEST(Chunked, LimitDetectedAtSizeBeforeData) {
    // The size line alone is enough to know the limit is exceeded.
    ChunkedDecoder d(10);
    const std::string in = "5\r\nhello\r\n6";
    const char* p = in.data();
    const char* end = p + in.size();
    std::string_view out;
    ASSERT_EQ(d.next(p, end, out), ChunkedDecoder::Result::Data);
    EXPECT_EQ(d.next(p, end, out), ChunkedDecoder::Result::NeedMore);  // "6" may continue ("60"...)
    const std::string more = "\r\n";
    p = more.data();
    EXPECT_EQ(d.next(p, p + more.size(), out), ChunkedDecoder::Result::Error);
    EXPECT_EQ(d.error(), Error::BodyTooLarge);
}

TEST(Chunked, LargeBodyManyPieces) {
    std::string in, body;
    for (int i = 1; i <= 300; ++i) {
        std::string chunk(static_cast<std::size_t>(i * 7), static_cast<char>('a' + i % 26));
        char hex[32];
        std::snprintf(hex, sizeof hex, "%x", static_cast<unsigned>(chunk.size()));
        in += std::string(hex) + (i % 3 ? "" : ";n=v") + "\r\n" + chunk + "\r\n";
        body += chunk;
    }
    in += "0\r\nTrailer: x\r\n\r\n";
    const Outcome whole = decode(in);
    ASSERT_EQ(whole.result, ChunkedDecoder::Result::Done);
    EXPECT_EQ(whole.body, body);
    EXPECT_EQ(whole.consumed, in.size());
    EXPECT_EQ(decode_bytewise(in), whole);
    std::vector<std::size_t> cuts;
    for (std::size_t c = 13; c < in.size(); c += 97) cuts.push_back(c);
    EXPECT_EQ(decode_pieces(in, cuts), whole);
}

}  // namespace

namespace {

TEST(ChunkedProperty, MutatedBodiesAreSplitInvariant) {
    const std::string seeds[] = {
        "5\r\nhello\r\n0\r\n\r\n",
        "3;a=\"b\"\r\nabc\r\n1 ; x\r\nd\r\n0\r\nT: v\r\n\r\n",
        "0a\r\n0123456789\r\n0;z\r\nA: 1\r\nB:2\r\n\r\nrest",
    };
    const char alphabet[] = {'\r', '\n', ' ', '\t', ';', '=', '"', '\\', '\0', 'a', 'f', '0', '9', ':', '\x7f'};
    unsigned seed = 424242u;
    auto rnd = [&](unsigned n) { return seed = seed * 1664525u + 1013904223u, (seed >> 8) % n; };
    for (int iter = 0; iter < 3000; ++iter) {
        std::string s = seeds[rnd(3)];
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
        for (std::uint64_t max_body : {std::uint64_t{0}, std::uint64_t{8}}) {
            const Outcome whole = decode(s, max_body);
            ASSERT_EQ(decode_bytewise(s, max_body), whole) << iter;
            std::vector<std::size_t> cuts;
            for (std::size_t at = rnd(5); at < s.size(); at += 1 + rnd(7)) cuts.push_back(at);
            ASSERT_EQ(decode_pieces(s, cuts, max_body), whole) << iter;
        }
    }
}

}  // namespace
