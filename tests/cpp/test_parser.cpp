// Request head parser: table-driven vectors (valid requests, every error class, request smuggling
// variants), each checked in one call, at every 2-piece split, and byte by byte; plus field checks.
#include <gtest/gtest.h>

#include <string>

#include "parse_helpers.hpp"

using namespace luath::http;
using namespace luath::http::test;
using namespace std::string_literals;

namespace {

struct Vec {
    const char* name;
    std::string in;
    Error err;              // None: must be Complete
    std::size_t body = 0;   // bytes after the head (valid vectors)
};

std::string req11(const std::string& headers) { return "GET / HTTP/1.1\r\nHost: a\r\n" + headers + "\r\n"; }
std::string post(const std::string& headers) { return "POST /p HTTP/1.1\r\nHost: a\r\n" + headers + "\r\n"; }

const std::string kBrowser =
    "GET /index.html?lang=en HTTP/1.1\r\n"
    "Host: www.example.com\r\n"
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0\r\n"
    "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
    "Accept-Language: en-US,en;q=0.5\r\n"
    "Accept-Encoding: gzip, deflate, br\r\n"
    "Connection: keep-alive\r\n"
    "Cookie: session=abc123; theme=dark\r\n"
    "Upgrade-Insecure-Requests: 1\r\n"
    "Sec-Fetch-Dest: document\r\n"
    "Sec-Fetch-Mode: navigate\r\n"
    "Sec-Fetch-Site: none\r\n"
    "Cache-Control: max-age=0\r\n"
    "\r\n";

const Vec kVectors[] = {
    // ---- valid ----
    {"wrk_get", "GET / HTTP/1.1\r\nHost: localhost:8080\r\n\r\n", Error::None},
    {"browser_get", kBrowser, Error::None},
    {"post_content_length", post("Content-Length: 5\r\n") + "hello", Error::None, 5},
    {"post_chunked", post("Transfer-Encoding: chunked\r\n") + "5\r\nhello\r\n0\r\n\r\n", Error::None, 15},
    {"absolute_form", "GET http://example.com/a/b?x=1 HTTP/1.1\r\nHost: example.com\r\n\r\n", Error::None},
    {"absolute_form_no_path", "GET http://example.com HTTP/1.1\r\nHost: example.com\r\n\r\n", Error::None},
    {"absolute_form_https_upper", "GET HTTPS://Example.com:443?q=1 HTTP/1.1\r\nHost: x\r\n\r\n", Error::None},
    {"absolute_form_ipv6", "GET http://[::1]:8080/x HTTP/1.1\r\nHost: x\r\n\r\n", Error::None},
    {"options_asterisk", "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", Error::None},
    {"connect_authority", "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", Error::None},
    {"connect_ipv6", "CONNECT [2001:db8::1]:443 HTTP/1.1\r\nHost: x\r\n\r\n", Error::None},
    {"http10_no_host", "GET / HTTP/1.0\r\n\r\n", Error::None},
    {"http10_keep_alive", "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", Error::None},
    {"leading_crlf_1", "\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", Error::None},
    {"leading_crlf_8", "\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", Error::None},
    {"connection_close", req11("Connection: close\r\n"), Error::None},
    {"connection_list", req11("Connection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n"), Error::None},
    {"connection_upgrade_no_header", req11("Connection: upgrade\r\n"), Error::None},
    {"expect_continue", post("Content-Length: 3\r\nExpect: 100-Continue\r\n") + "abc", Error::None, 3},
    {"expect_other", req11("Expect: 100-continue-x\r\n"), Error::None},
    {"te_trailers", req11("TE: deflate;q=0.5, trailers\r\n"), Error::None},
    {"te_tab_ows", post("Transfer-Encoding:\tchunked\r\n"), Error::None},
    {"te_case", post("Transfer-Encoding: ChUnKeD\r\n"), Error::None},
    {"te_trailing_empty_elements", post("Transfer-Encoding: chunked, ,\r\n"), Error::None},
    {"te_leading_empty_elements", post("Transfer-Encoding: , chunked\r\n"), Error::None},
    {"te_trailing_ows", post("Transfer-Encoding: chunked \t \r\n"), Error::None},
    {"cl_duplicate_identical", post("Content-Length: 3\r\nContent-Length: 3\r\n") + "abc", Error::None, 3},
    {"cl_zero", post("Content-Length: 0\r\n"), Error::None},
    {"cl_leading_zeros", post("Content-Length: 007\r\n") + "1234567", Error::None, 7},
    {"obs_text_value_and_target", "GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\nX-Name: caf\xc3\xa9\r\n\r\n", Error::None},
    {"empty_value", req11("X-Empty:\r\nX-Ws: \t \r\n"), Error::None},
    {"value_inner_spaces", req11("X-V:  a  b\t c \t\r\n"), Error::None},
    {"query_with_question_marks", "GET /a?b?c HTTP/1.1\r\nHost: a\r\n\r\n", Error::None},
    {"empty_query", "GET /a? HTTP/1.1\r\nHost: a\r\n\r\n", Error::None},
    {"method_other", "PROPFIND /dav HTTP/1.1\r\nHost: a\r\n\r\n", Error::None},
    {"method_lowercase_is_other", "get / HTTP/1.1\r\nHost: a\r\n\r\n", Error::None},
    {"host_empty", "GET / HTTP/1.1\r\nHost:\r\n\r\n", Error::None},
    {"host_lowercase_name", "GET / HTTP/1.1\r\nhOsT: a\r\n\r\n", Error::None},
    {"tchar_name", req11("!#$%&'*+-.^_`|~09azAZ: x\r\n"), Error::None},
    {"pipelined_second_request", "GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n",
     Error::None, 28},
    {"target_all_allowed", "GET /!$&'()*+,;=:@-._~%20[]\"<>\\^`{|} HTTP/1.1\r\nHost: a\r\n\r\n", Error::None},

    // ---- request line ----
    {"method_bad_char", "G(T / HTTP/1.1\r\nHost: a\r\n\r\n", Error::BadMethod},
    {"method_ctl", "GE\x01T / HTTP/1.1\r\nHost: a\r\n\r\n", Error::BadMethod},
    {"method_tab_separator", "GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", Error::BadMethod},
    {"method_empty", " / HTTP/1.1\r\nHost: a\r\n\r\n", Error::BadRequestLine},
    {"method_only", "GET\r\nHost: a\r\n\r\n", Error::BadRequestLine},
    {"double_space", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", Error::BadRequestLine},
    {"missing_version", "GET /\r\nHost: a\r\n\r\n", Error::BadRequestLine},
    {"nine_leading_crlf", "\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", Error::BadRequestLine},
    {"version_lowercase", "GET / http/1.1\r\nHost: a\r\n\r\n", Error::BadVersion},
    {"version_trailing_space", "GET / HTTP/1.1 \r\nHost: a\r\n\r\n", Error::BadVersion},
    {"version_extra_digit", "GET / HTTP/1.10\r\nHost: a\r\n\r\n", Error::BadVersion},
    {"version_short", "GET / HTTP/1\r\nHost: a\r\n\r\n", Error::BadVersion},
    {"version_letter", "GET / HTTP/1.x\r\nHost: a\r\n\r\n", Error::BadVersion},
    {"version_two_digit_major", "GET / HTTP/11.1\r\nHost: a\r\n\r\n", Error::BadVersion},
    {"version_empty", "GET / \r\nHost: a\r\n\r\n", Error::BadVersion},
    {"version_extra_part", "GET / HTTP/1.1 x\r\nHost: a\r\n\r\n", Error::BadVersion},
    {"version_2_0", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", Error::UnsupportedVersion},
    {"version_1_2", "GET / HTTP/1.2\r\nHost: a\r\n\r\n", Error::UnsupportedVersion},
    {"version_0_9", "GET / HTTP/0.9\r\nHost: a\r\n\r\n", Error::UnsupportedVersion},
    {"target_fragment", "GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n", Error::BadTarget},
    {"target_del", "GET /a\x7f HTTP/1.1\r\nHost: a\r\n\r\n", Error::BadTarget},
    {"target_ctl", "GET /a\x01 HTTP/1.1\r\nHost: a\r\n\r\n", Error::BadTarget},
    {"target_nul", "GET /a\0b HTTP/1.1\r\nHost: a\r\n\r\n"s, Error::BadTarget},
    {"target_tab", "GET /a\tb HTTP/1.1\r\nHost: a\r\n\r\n", Error::BadTarget},
    {"asterisk_not_options", "GET * HTTP/1.1\r\nHost: a\r\n\r\n", Error::BadTarget},
    {"asterisk_with_more", "OPTIONS *x HTTP/1.1\r\nHost: a\r\n\r\n", Error::BadTarget},
    {"authority_form_not_connect", "GET example.com:80 HTTP/1.1\r\nHost: a\r\n\r\n", Error::BadTarget},
    {"connect_origin_form", "CONNECT / HTTP/1.1\r\nHost: a\r\n\r\n", Error::BadTarget},
    {"connect_no_port", "CONNECT example.com HTTP/1.1\r\nHost: a\r\n\r\n", Error::BadTarget},
    {"connect_empty_port", "CONNECT example.com: HTTP/1.1\r\nHost: a\r\n\r\n", Error::BadTarget},
    {"connect_absolute", "CONNECT http://a:1 HTTP/1.1\r\nHost: a\r\n\r\n", Error::BadTarget},
    {"connect_userinfo", "CONNECT u@a:1 HTTP/1.1\r\nHost: a\r\n\r\n", Error::BadTarget},
    {"scheme_ftp", "GET ftp://a/ HTTP/1.1\r\nHost: a\r\n\r\n", Error::BadTarget},
    {"absolute_empty_host", "GET http:///x HTTP/1.1\r\nHost: a\r\n\r\n", Error::BadTarget},
    {"absolute_userinfo", "GET http://user@host/ HTTP/1.1\r\nHost: a\r\n\r\n", Error::BadTarget},
    {"absolute_bad_port", "GET http://a:8x/ HTTP/1.1\r\nHost: a\r\n\r\n", Error::BadTarget},
    {"relative_target", "GET a/b HTTP/1.1\r\nHost: a\r\n\r\n", Error::BadTarget},

    // ---- line endings ----
    {"bare_lf_request_line", "GET / HTTP/1.1\nHost: a\r\n\r\n", Error::BareLF},
    {"bare_lf_header", "GET / HTTP/1.1\r\nHost: a\n\r\n", Error::BareLF},
    {"bare_lf_terminator", "GET / HTTP/1.1\r\nHost: a\r\n\n", Error::BareLF},
    {"bare_lf_leading", "\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", Error::BareLF},
    {"bare_lf_all", "GET / HTTP/1.1\nHost: a\n\n", Error::BareLF},
    {"cr_in_value", "GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n", Error::BareLF},
    {"cr_in_name", "GET / HTTP/1.1\r\nHo\rst: a\r\n\r\n", Error::BareLF},
    {"cr_in_target", "GET /\r HTTP/1.1\r\nHost: a\r\n\r\n", Error::BareLF},
    {"cr_in_version", "GET / HTTP/1.1\r\r\nHost: a\r\n\r\n", Error::BareLF},
    {"cr_cr_lf_terminator", "GET / HTTP/1.1\r\nHost: a\r\n\r\r\n", Error::BareLF},
    {"cr_leading", "\rGET / HTTP/1.1\r\nHost: a\r\n\r\n", Error::BareLF},
    {"cr_before_colon", "GET / HTTP/1.1\r\nHost \r: a\r\n\r\n", Error::BareLF},

    // ---- field lines ----
    {"obs_fold_space", "GET / HTTP/1.1\r\nHost: a\r\nX: b\r\n c\r\n\r\n", Error::ObsFold},
    {"obs_fold_tab", "GET / HTTP/1.1\r\nHost: a\r\nX: b\r\n\tc\r\n\r\n", Error::ObsFold},
    {"obs_fold_first_line", "GET / HTTP/1.1\r\n Host: a\r\n\r\n", Error::ObsFold},
    {"space_before_colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", Error::SpaceBeforeColon},
    {"tab_before_colon", "GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", Error::SpaceBeforeColon},
    {"te_space_before_colon", post("Transfer-Encoding : chunked\r\n"), Error::SpaceBeforeColon},
    {"cl_space_before_colon", post("Content-Length : 5\r\n") + "hello", Error::SpaceBeforeColon},
    {"name_empty", req11(": a\r\n"), Error::BadHeaderName},
    {"name_quote", req11("X\"Y: a\r\n"), Error::BadHeaderName},
    {"name_no_colon", req11("NoColon\r\n"), Error::BadHeaderName},
    {"name_with_space", req11("X Y: a\r\n"), Error::BadHeaderName},
    {"name_obs_text", req11("X\xc3\xa9: a\r\n"), Error::BadHeaderName},
    {"name_nul", req11("X\0Y: a\r\n"s), Error::BadHeaderName},
    {"name_slash", req11("X/Y: a\r\n"), Error::BadHeaderName},
    {"value_nul", req11("X: a\0b\r\n"s), Error::BadHeaderValue},
    {"value_vt", req11("X: a\x0b" "b\r\n"), Error::BadHeaderValue},
    {"value_ff", req11("X: a\x0c" "b\r\n"), Error::BadHeaderValue},
    {"value_del", req11("X: a\x7f" "b\r\n"), Error::BadHeaderValue},
    {"value_ctl_01", req11("X: \x01\r\n"), Error::BadHeaderValue},
    {"value_esc", req11("X: \x1b[0m\r\n"), Error::BadHeaderValue},
    {"te_value_vt", post("Transfer-Encoding: chunked\x0b\r\n"), Error::BadHeaderValue},
    {"te_value_nul", post("Transfer-Encoding: chunked\0\r\n"s), Error::BadHeaderValue},

    // ---- Host ----
    {"missing_host", "GET / HTTP/1.1\r\nX: a\r\n\r\n", Error::MissingHost},
    {"missing_host_absolute_form", "GET http://a/ HTTP/1.1\r\n\r\n", Error::MissingHost},
    {"duplicate_host", "GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", Error::DuplicateHost},
    {"duplicate_host_case", "GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", Error::DuplicateHost},
    {"duplicate_host_http10", "GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", Error::DuplicateHost},

    // ---- Content-Length ----
    {"cl_plus", post("Content-Length: +5\r\n") + "hello", Error::BadContentLength},
    {"cl_minus", post("Content-Length: -5\r\n") + "hello", Error::BadContentLength},
    {"cl_inner_space", post("Content-Length: 5 5\r\n") + "hello", Error::BadContentLength},
    {"cl_hex", post("Content-Length: 0x5\r\n") + "hello", Error::BadContentLength},
    {"cl_comma", post("Content-Length: 5,5\r\n") + "hello", Error::BadContentLength},
    {"cl_comma_space", post("Content-Length: 5, 5\r\n") + "hello", Error::BadContentLength},
    {"cl_empty", post("Content-Length:\r\n"), Error::BadContentLength},
    {"cl_letters", post("Content-Length: abc\r\n"), Error::BadContentLength},
    {"cl_decimal", post("Content-Length: 5.0\r\n"), Error::BadContentLength},
    {"cl_overflow_2_63", post("Content-Length: 9223372036854775808\r\n"), Error::BadContentLength},
    {"cl_overflow_huge", post("Content-Length: 99999999999999999999999\r\n"), Error::BadContentLength},
    {"cl_second_bad", post("Content-Length: 5\r\nContent-Length: x\r\n"), Error::BadContentLength},
    {"cl_conflict", post("Content-Length: 5\r\nContent-Length: 6\r\n") + "hello", Error::ConflictingContentLength},
    {"cl_conflict_three", post("Content-Length: 5\r\nContent-Length: 5\r\nContent-Length: 50\r\n"),
     Error::ConflictingContentLength},
    {"cl_too_large_default", post("Content-Length: 1073741825\r\n"), Error::BodyTooLarge},

    // ---- Transfer-Encoding / smuggling ----
    {"cl_te", post("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n"), Error::ContentLengthWithTransferEncoding},
    {"te_cl", post("Transfer-Encoding: chunked\r\nContent-Length: 5\r\n"), Error::ContentLengthWithTransferEncoding},
    {"te_cl_bad_cl", post("Transfer-Encoding: chunked\r\nContent-Length: +5\r\n"),
     Error::ContentLengthWithTransferEncoding},
    {"te_http10", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", Error::TransferEncodingOnHttp10},
    {"te_xchunked", post("Transfer-Encoding: xchunked\r\n"), Error::TransferEncodingNotChunked},
    {"te_chunked_twice", post("Transfer-Encoding: chunked, chunked\r\n"), Error::TransferEncodingNotChunked},
    {"te_chunked_two_lines", post("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"),
     Error::TransferEncodingNotChunked},
    {"te_chunked_param", post("Transfer-Encoding: chunked;q=1\r\n"), Error::TransferEncodingNotChunked},
    {"te_chunked_quoted", post("Transfer-Encoding: \"chunked\"\r\n"), Error::TransferEncodingNotChunked},
    {"te_chunked_then_gzip", post("Transfer-Encoding: chunked, gzip\r\n"), Error::TransferEncodingNotChunked},
    {"te_gzip_only", post("Transfer-Encoding: gzip\r\n"), Error::TransferEncodingNotChunked},
    {"te_identity_only", post("Transfer-Encoding: identity\r\n"), Error::TransferEncodingNotChunked},
    {"te_empty", post("Transfer-Encoding:\r\n"), Error::TransferEncodingNotChunked},
    {"te_only_commas", post("Transfer-Encoding: , ,\r\n"), Error::TransferEncodingNotChunked},
    {"te_chunk_prefix", post("Transfer-Encoding: chunk\r\n"), Error::TransferEncodingNotChunked},
    {"te_chunked_suffix", post("Transfer-Encoding: chunkedx\r\n"), Error::TransferEncodingNotChunked},
    {"te_chunked_space_inside", post("Transfer-Encoding: chun ked\r\n"), Error::TransferEncodingNotChunked},
    {"te_gzip_chunked", post("Transfer-Encoding: gzip, chunked\r\n"), Error::UnknownTransferCoding},
    {"te_identity_chunked", post("Transfer-Encoding: identity, chunked\r\n"), Error::UnknownTransferCoding},
    {"te_two_lines_gzip_chunked", post("Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n"),
     Error::UnknownTransferCoding},
    {"te_two_lines_chunked_gzip", post("Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n"),
     Error::TransferEncodingNotChunked},
};

class Vectors : public ::testing::TestWithParam<Vec> {};

TEST_P(Vectors, OneCall) {
    const Vec& v = GetParam();
    const Snap s = parse_once(v.in);
    if (v.err == Error::None) {
        EXPECT_EQ(s.status, Status::Complete) << "error " << int(s.error);
        EXPECT_EQ(s.consumed, v.in.size() - v.body);
    } else {
        EXPECT_EQ(s.status, Status::Error);
        EXPECT_EQ(s.error, v.err) << "got " << int(s.error) << " want " << int(v.err);
        EXPECT_EQ(s.consumed, 0u);
    }
}

TEST_P(Vectors, EveryTwoPieceSplit) {
    const Vec& v = GetParam();
    const Snap whole = parse_once(v.in);
    for (std::size_t cut = 0; cut <= v.in.size(); ++cut)
        ASSERT_EQ(parse_pieces(v.in, {cut}), whole) << "cut at " << cut;
}

TEST_P(Vectors, ByteByByte) {
    const Vec& v = GetParam();
    EXPECT_EQ(parse_bytewise(v.in), parse_once(v.in));
}

TEST_P(Vectors, EveryPrefixIsIncompleteOrSameAnswer) {
    // A strict prefix never completes (unless the head is inside it) and any error it reports is final.
    const Vec& v = GetParam();
    const Snap whole = parse_once(v.in);
    const std::size_t head = v.in.size() - v.body;
    for (std::size_t n = 0; n < head; ++n) {
        const Snap s = parse_once(std::string_view(v.in).substr(0, n));
        if (s.status == Status::Incomplete) continue;
        ASSERT_EQ(s.status, Status::Error) << "prefix " << n;
        ASSERT_EQ(s, whole) << "prefix " << n;
    }
}

INSTANTIATE_TEST_SUITE_P(Http, Vectors, ::testing::ValuesIn(kVectors),
                         [](const ::testing::TestParamInfo<Vec>& i) { return std::string(i.param.name); });

// ---- parsed fields ----

TEST(ParseFields, WrkGet) {
    const Snap s = parse_once("GET / HTTP/1.1\r\nHost: localhost:8080\r\n\r\n");
    ASSERT_EQ(s.status, Status::Complete);
    EXPECT_EQ(s.method, "GET");
    EXPECT_EQ(s.method_id, Method::Get);
    EXPECT_EQ(s.target, "/");
    EXPECT_EQ(s.path, "/");
    EXPECT_EQ(s.query, "");
    EXPECT_EQ(s.authority, "");
    EXPECT_EQ(s.host, "localhost:8080");
    EXPECT_EQ(s.version_minor, 1);
    EXPECT_EQ(s.framing, Framing::None);
    EXPECT_TRUE(s.keep_alive);
    EXPECT_FALSE(s.expect_continue);
    EXPECT_FALSE(s.upgrade);
    EXPECT_FALSE(s.te_trailers);
    ASSERT_EQ(s.headers.size(), 1u);
    EXPECT_EQ(s.headers[0].first, "Host");
    EXPECT_EQ(s.headers[0].second, "localhost:8080");
}

TEST(ParseFields, BrowserHeadersInOrder) {
    const Snap s = parse_once(kBrowser);
    ASSERT_EQ(s.status, Status::Complete);
    EXPECT_EQ(s.path, "/index.html");
    EXPECT_EQ(s.query, "lang=en");
    ASSERT_EQ(s.headers.size(), 12u);
    EXPECT_EQ(s.headers[0].first, "Host");
    EXPECT_EQ(s.headers[2].first, "Accept");
    EXPECT_EQ(s.headers[2].second, "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8");
    EXPECT_EQ(s.headers[11].first, "Cache-Control");
    EXPECT_EQ(s.headers[11].second, "max-age=0");
    EXPECT_EQ(s.consumed, kBrowser.size());
}

TEST(ParseFields, MethodIds) {
    const std::pair<const char*, Method> cases[] = {
        {"GET", Method::Get},         {"HEAD", Method::Head},       {"POST", Method::Post},
        {"PUT", Method::Put},         {"DELETE", Method::Delete},   {"OPTIONS", Method::Options},
        {"PATCH", Method::Patch},     {"TRACE", Method::Trace},     {"Get", Method::Other},
        {"GETS", Method::Other},      {"M-SEARCH", Method::Other},  {"PURGE", Method::Other},
    };
    for (const auto& [m, id] : cases) {
        const Snap s = parse_once(std::string(m) + " /x HTTP/1.1\r\nHost: a\r\n\r\n");
        ASSERT_EQ(s.status, Status::Complete) << m;
        EXPECT_EQ(s.method, m);
        EXPECT_EQ(s.method_id, id) << m;
    }
    const Snap c = parse_once("CONNECT a:1 HTTP/1.1\r\nHost: a\r\n\r\n");
    EXPECT_EQ(c.method_id, Method::Connect);
}

TEST(ParseFields, ContentLength) {
    const Snap s = parse_once(post("Content-Length: 5\r\n") + "hello");
    ASSERT_EQ(s.status, Status::Complete);
    EXPECT_EQ(s.framing, Framing::ContentLength);
    EXPECT_EQ(s.content_length, 5u);
    const Snap z = parse_once(post("Content-Length: 0\r\n"));
    EXPECT_EQ(z.framing, Framing::ContentLength);
    EXPECT_EQ(z.content_length, 0u);
    const Snap d = parse_once(post("Content-Length: 007\r\n"));
    EXPECT_EQ(d.content_length, 7u);
    Limits nolimit;
    nolimit.max_body_size = 0;
    const Snap big = parse_once(post("Content-Length: 9223372036854775807\r\n"), nolimit);
    ASSERT_EQ(big.status, Status::Complete);
    EXPECT_EQ(big.content_length, 9223372036854775807ull);
}

TEST(ParseFields, Chunked) {
    for (const char* te : {"chunked", "Chunked", "CHUNKED", "\tchunked", "chunked ", ", chunked", "chunked,"}) {
        const Snap s = parse_once(post(std::string("Transfer-Encoding: ") + te + "\r\n"));
        ASSERT_EQ(s.status, Status::Complete) << te;
        EXPECT_EQ(s.framing, Framing::Chunked) << te;
        EXPECT_EQ(s.content_length, 0u);
    }
}

TEST(ParseFields, AbsoluteForm) {
    Snap s = parse_once("GET http://example.com/a/b?x=1 HTTP/1.1\r\nHost: example.com\r\n\r\n");
    ASSERT_EQ(s.status, Status::Complete);
    EXPECT_EQ(s.target, "http://example.com/a/b?x=1");
    EXPECT_EQ(s.authority, "example.com");
    EXPECT_EQ(s.path, "/a/b");
    EXPECT_EQ(s.query, "x=1");
    s = parse_once("GET http://example.com HTTP/1.1\r\nHost: example.com\r\n\r\n");
    EXPECT_EQ(s.authority, "example.com");
    EXPECT_EQ(s.path, "/");
    EXPECT_EQ(s.query, "");
    s = parse_once("GET HTTPS://Example.com:443?q=1 HTTP/1.1\r\nHost: x\r\n\r\n");
    EXPECT_EQ(s.authority, "Example.com:443");
    EXPECT_EQ(s.path, "/");
    EXPECT_EQ(s.query, "q=1");
    s = parse_once("GET http://[::1]:8080/x HTTP/1.1\r\nHost: x\r\n\r\n");
    EXPECT_EQ(s.authority, "[::1]:8080");
    EXPECT_EQ(s.path, "/x");
}

TEST(ParseFields, AsteriskAndAuthorityForm) {
    Snap s = parse_once("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n");
    ASSERT_EQ(s.status, Status::Complete);
    EXPECT_EQ(s.method_id, Method::Options);
    EXPECT_EQ(s.path, "*");
    EXPECT_EQ(s.authority, "");
    s = parse_once("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n");
    ASSERT_EQ(s.status, Status::Complete);
    EXPECT_EQ(s.authority, "example.com:443");
    EXPECT_EQ(s.path, "");
    EXPECT_EQ(s.query, "");
    EXPECT_EQ(s.target, "example.com:443");
}

TEST(ParseFields, QuerySplitAtFirstQuestionMark) {
    Snap s = parse_once("GET /a?b?c HTTP/1.1\r\nHost: a\r\n\r\n");
    EXPECT_EQ(s.path, "/a");
    EXPECT_EQ(s.query, "b?c");
    s = parse_once("GET /a? HTTP/1.1\r\nHost: a\r\n\r\n");
    EXPECT_EQ(s.path, "/a");
    EXPECT_EQ(s.query, "");
    s = parse_once("GET /?x HTTP/1.1\r\nHost: a\r\n\r\n");
    EXPECT_EQ(s.path, "/");
    EXPECT_EQ(s.query, "x");
}

TEST(ParseFields, KeepAlive) {
    EXPECT_TRUE(parse_once("GET / HTTP/1.1\r\nHost: a\r\n\r\n").keep_alive);
    EXPECT_FALSE(parse_once("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").keep_alive);
    EXPECT_FALSE(parse_once("GET / HTTP/1.1\r\nHost: a\r\nConnection: CLOSE\r\n\r\n").keep_alive);
    EXPECT_FALSE(parse_once("GET / HTTP/1.1\r\nHost: a\r\nConnection: foo, close\r\n\r\n").keep_alive);
    EXPECT_FALSE(parse_once("GET / HTTP/1.1\r\nHost: a\r\nConnection: a\r\nConnection: close\r\n\r\n").keep_alive);
    EXPECT_TRUE(parse_once("GET / HTTP/1.1\r\nHost: a\r\nConnection: closed\r\n\r\n").keep_alive);
    EXPECT_FALSE(parse_once("GET / HTTP/1.0\r\n\r\n").keep_alive);
    EXPECT_TRUE(parse_once("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").keep_alive);
    EXPECT_TRUE(parse_once("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive);
    EXPECT_FALSE(parse_once("GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n").keep_alive);
    EXPECT_FALSE(parse_once("GET / HTTP/1.0\r\nConnection: keep-alivex\r\n\r\n").keep_alive);
    const Snap s10 = parse_once("GET / HTTP/1.0\r\n\r\n");
    EXPECT_EQ(s10.version_minor, 0);
    EXPECT_EQ(s10.host, "");
}

TEST(ParseFields, UpgradeExpectTe) {
    Snap s = parse_once(req11("Connection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n"));
    EXPECT_TRUE(s.upgrade);
    EXPECT_TRUE(s.keep_alive);
    EXPECT_FALSE(parse_once(req11("Connection: upgrade\r\n")).upgrade);
    EXPECT_FALSE(parse_once(req11("Upgrade: websocket\r\n")).upgrade);
    EXPECT_FALSE(parse_once("GET / HTTP/1.0\r\nConnection: upgrade\r\nUpgrade: h2c\r\n\r\n").upgrade);
    EXPECT_TRUE(parse_once(req11("Expect: 100-continue\r\n")).expect_continue);
    EXPECT_TRUE(parse_once(req11("Expect: 100-CONTINUE \r\n")).expect_continue);
    EXPECT_FALSE(parse_once(req11("Expect: 100-continue-x\r\n")).expect_continue);
    EXPECT_FALSE(parse_once(req11("Expect: 100-continue, foo\r\n")).expect_continue);
    EXPECT_FALSE(parse_once("GET / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n").expect_continue);
    EXPECT_TRUE(parse_once(req11("TE: trailers\r\n")).te_trailers);
    EXPECT_TRUE(parse_once(req11("TE: deflate;q=0.5, Trailers\r\n")).te_trailers);
    EXPECT_FALSE(parse_once(req11("TE: deflate\r\n")).te_trailers);
    EXPECT_FALSE(parse_once(req11("TE: trailersx\r\n")).te_trailers);
}

TEST(ParseFields, ValuesTrimmedNamesKept) {
    const Snap s = parse_once(req11("X-V:  a  b\t c \t\r\nX-Empty:\r\nx-lower:v\r\n"));
    ASSERT_EQ(s.status, Status::Complete);
    ASSERT_EQ(s.headers.size(), 4u);
    EXPECT_EQ(s.headers[1].first, "X-V");
    EXPECT_EQ(s.headers[1].second, "a  b\t c");
    EXPECT_EQ(s.headers[2].first, "X-Empty");
    EXPECT_EQ(s.headers[2].second, "");
    EXPECT_EQ(s.headers[3].first, "x-lower");
    EXPECT_EQ(s.headers[3].second, "v");
}

TEST(ParseFields, LeadingEmptyLinesCounted) {
    const std::string in = "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\nBODY";
    const Snap s = parse_once(in);
    ASSERT_EQ(s.status, Status::Complete);
    EXPECT_EQ(s.consumed, in.size() - 4);
    EXPECT_EQ(s.method, "GET");
}

TEST(ParseFields, PipelinedConsumedStopsAtFirstHead) {
    const std::string first = "GET /1 HTTP/1.1\r\nHost: a\r\n\r\n";
    const Snap s = parse_once(first + "GET /2 HTTP/1.1\r\nHost: a\r\n\r\n");
    ASSERT_EQ(s.status, Status::Complete);
    EXPECT_EQ(s.consumed, first.size());
    EXPECT_EQ(s.path, "/1");
}

// ---- incremental behaviour ----

TEST(Incremental, EmptyAndPartialAreIncomplete) {
    for (const char* p : {"", "G", "GET", "GET / HTTP/1.1", "GET / HTTP/1.1\r", "GET / HTTP/1.1\r\n",
                          "GET / HTTP/1.1\r\nHost: a\r\n", "GET / HTTP/1.1\r\nHost: a\r\n\r", "\r", "\r\n",
                          "\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n"}) {
        EXPECT_EQ(parse_once(p).status, Status::Incomplete) << p;
    }
}

TEST(Incremental, ErrorsReportedWhenTheLineCompletes) {
    // The head is not finished, but the bad line is: the error must not wait for CRLF CRLF.
    EXPECT_EQ(parse_once("GET / HTTP/1.1\r\nHost: a\r\nX: a\x01\r\n").error, Error::BadHeaderValue);
    EXPECT_EQ(parse_once("GET / HTTP/1.1\r\nHost: a\r\n b\r\n").error, Error::ObsFold);
    EXPECT_EQ(parse_once("GET / HTTP/1.1\r\nHost: a\n").error, Error::BareLF);
    EXPECT_EQ(parse_once("GET / HTTP/1.1\r\nBad Name: a\r\n").error, Error::BadHeaderName);
    EXPECT_EQ(parse_once("G@T / HTTP/1.1\r\n").error, Error::BadMethod);
    EXPECT_EQ(parse_once("GET / HTTP/2.0\r\n").error, Error::UnsupportedVersion);
    EXPECT_EQ(parse_once("GET / HTTP/1.1\r\nHost : a\r\n").error, Error::SpaceBeforeColon);
    // ... but message-level rules wait for the end of the head.
    EXPECT_EQ(parse_once("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n").status, Status::Incomplete);
}

TEST(Incremental, GrowingLenSameBuffer) {
    // The ordinary use: one buffer, len grows, HeadState carried along.
    const std::string in = kBrowser;
    auto req = std::make_unique<Request>();
    HeadState st;
    ParseResult r{};
    std::size_t n = 0;
    for (; n <= in.size(); ++n) {
        r = parse_request_head(in.data(), n, *req, Limits{}, st);
        if (r.status != Status::Incomplete) break;
    }
    ASSERT_EQ(r.status, Status::Complete);
    EXPECT_EQ(n, in.size());
    EXPECT_EQ(snap(r, *req), parse_once(in));
}

TEST(Incremental, RandomSplitsOfAllValidVectors) {
    unsigned seed = 12345;
    auto rnd = [&] { return seed = seed * 1103515245u + 12345u, (seed >> 16) & 0x7fff; };
    for (const Vec& v : kVectors) {
        const Snap whole = parse_once(v.in);
        for (int round = 0; round < 20; ++round) {
            std::vector<std::size_t> cuts;
            std::size_t at = 0;
            while (true) {
                at += 1 + rnd() % 7;
                if (at >= v.in.size()) break;
                cuts.push_back(at);
            }
            ASSERT_EQ(parse_pieces(v.in, cuts), whole) << v.name;
        }
    }
}

TEST(Incremental, ManyLinesByteByByteIsLinear) {
    // 100 headers fed one byte at a time into the same buffer: must finish quickly (O(total)).
    std::string in = "GET / HTTP/1.1\r\nHost: a\r\n";
    for (int i = 0; i < 99; ++i) in += "X-Header-" + std::to_string(i) + ": " + std::string(500, 'v') + "\r\n";
    in += "\r\n";
    Limits lim;
    auto req = std::make_unique<Request>();
    HeadState st;
    ParseResult r{};
    for (std::size_t n = 0; n <= in.size(); ++n) {
        r = parse_request_head(in.data(), n, *req, lim, st);
        if (r.status != Status::Incomplete) break;
    }
    ASSERT_EQ(r.status, Status::Complete);
    EXPECT_EQ(req->num_headers, 100u);
    EXPECT_EQ(r.consumed, in.size());
}

}  // namespace
