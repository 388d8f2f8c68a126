// luath_parse_cli: runs raw HTTP/1.1 requests through luath's parser and prints the verdict as JSON, one
// line per request. Used by the differential tests (tests/parser_diff/, tests/test_parser_differential.py).
//
// Input (stdin): one request per line, hex-encoded. Output (stdout): one JSON object per input line:
//   {"status": "complete"|"incomplete"|"error", "error": "<Error name>", "http_status": 400,
//    "consumed": N, "method": ..., "target": ..., "path": ..., "query": ..., "authority": ..., "host": ...,
//    "version": "1.1", "headers": [[name, value], ...], "framing": "none"|"content-length"|"chunked",
//    "content_length": N, "keep_alive": bool, "expect_continue": bool, "upgrade": bool,
//    "body_status": "none"|"done"|"incomplete"|"error", "body_error": "<Error name>", "body": "...",
//    "body_consumed": N}
// Strings are bytes mapped to U+0000..U+00FF (decode with .encode("latin-1")).
// Options: --small uses small limits (request line 64, field 64, head 512, 8 headers, body 1000).
#include <cstdio>
#include <cstring>
#include <iostream>
#include <memory>
#include <string>

#include "http/errors.hpp"
#include "http/parser.hpp"

using namespace luath::http;

namespace {

const char* error_name(Error e) {
    switch (e) {
#define N(x) case Error::x: return #x;
        N(None) N(BadRequestLine) N(BadMethod) N(BadTarget) N(BadVersion) N(UnsupportedVersion) N(TargetTooLong)
        N(HeadTooLarge) N(TooManyHeaders) N(BadHeaderName) N(SpaceBeforeColon) N(BadHeaderValue) N(ObsFold)
        N(BareLF) N(MissingHost) N(DuplicateHost) N(BadHost) N(BadContentLength) N(ConflictingContentLength)
        N(ContentLengthWithTransferEncoding) N(TransferEncodingNotChunked) N(TransferEncodingOnHttp10)
        N(UnknownTransferCoding) N(BodyTooLarge) N(BadChunkSize) N(BadChunkExtension) N(BadChunkData)
        N(BadTrailer)
#undef N
    }
    return "Unknown";
}

void json_str(std::string& o, std::string_view s) {
    o += '"';
    for (unsigned char c : s) {
        if (c == '"' || c == '\\') {
            o += '\\';
            o += static_cast<char>(c);
        } else if (c < 0x20 || c >= 0x7f) {
            char b[8];
            std::snprintf(b, sizeof b, "\\u%04x", c);
            o += b;
        } else {
            o += static_cast<char>(c);
        }
    }
    o += '"';
}

void kv(std::string& o, const char* k, std::string_view v) {
    o += ", \"";
    o += k;
    o += "\": ";
    json_str(o, v);
}
void kv(std::string& o, const char* k, std::uint64_t v) {
    o += ", \"";
    o += k;
    o += "\": ";
    o += std::to_string(v);
}
void kb(std::string& o, const char* k, bool v) {
    o += ", \"";
    o += k;
    o += "\": ";
    o += v ? "true" : "false";
}

int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

std::string verdict(const std::string& in, const Limits& lim) {
    auto req = std::make_unique<Request>();
    HeadState st;
    const ParseResult r = parse_request_head(in.data(), in.size(), *req, lim, st);
    std::string o = "{\"status\": ";
    if (r.status == Status::Incomplete) {
        o += "\"incomplete\"}";
        return o;
    }
    if (r.status == Status::Error) {
        o += "\"error\"";
        kv(o, "error", error_name(r.error));
        kv(o, "http_status", static_cast<std::uint64_t>(error_info(r.error).status));
        o += '}';
        return o;
    }
    o += "\"complete\"";
    kv(o, "consumed", r.consumed);
    kv(o, "method", req->method);
    kv(o, "target", req->target);
    kv(o, "path", req->path);
    kv(o, "query", req->query);
    kv(o, "authority", req->authority);
    kv(o, "host", req->host);
    kv(o, "version", req->version_minor ? "1.1" : "1.0");
    o += ", \"headers\": [";
    for (std::uint32_t i = 0; i < req->num_headers; ++i) {
        if (i) o += ", ";
        o += '[';
        json_str(o, req->headers[i].name);
        o += ", ";
        json_str(o, req->headers[i].value);
        o += ']';
    }
    o += ']';
    kb(o, "keep_alive", req->keep_alive);
    kb(o, "expect_continue", req->expect_continue);
    kb(o, "upgrade", req->upgrade);
    const std::string_view rest(in.data() + r.consumed, in.size() - r.consumed);
    switch (req->framing) {
        case Framing::None:
            kv(o, "framing", "none");
            kv(o, "body_status", "none");
            break;
        case Framing::ContentLength:
            kv(o, "framing", "content-length");
            kv(o, "content_length", req->content_length);
            if (rest.size() >= req->content_length) {
                kv(o, "body_status", "done");
                kv(o, "body", rest.substr(0, req->content_length));
                kv(o, "body_consumed", req->content_length);
            } else {
                kv(o, "body_status", "incomplete");
            }
            break;
        case Framing::Chunked: {
            kv(o, "framing", "chunked");
            ChunkedDecoder dec(lim.max_body_size);
            const char* p = rest.data();
            const char* end = p + rest.size();
            std::string body;
            ChunkedDecoder::Result res;
            std::string_view piece;
            while ((res = dec.next(p, end, piece)) == ChunkedDecoder::Result::Data) body.append(piece);
            if (res == ChunkedDecoder::Result::Done) {
                kv(o, "body_status", "done");
                kv(o, "body", body);
                kv(o, "body_consumed", static_cast<std::uint64_t>(p - rest.data()));
            } else if (res == ChunkedDecoder::Result::Error) {
                kv(o, "body_status", "error");
                kv(o, "body_error", error_name(dec.error()));
                kv(o, "http_status", static_cast<std::uint64_t>(error_info(dec.error()).status));
            } else {
                kv(o, "body_status", "incomplete");
            }
            break;
        }
    }
    o += '}';
    return o;
}

}  // namespace

int main(int argc, char** argv) {
    Limits lim;
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--small") == 0) {
            lim.max_request_line = 64;
            lim.max_field_size = 64;
            lim.max_head_size = 512;
            lim.max_headers = 8;
            lim.max_body_size = 1000;
        } else {
            std::fprintf(stderr, "usage: %s [--small] < hex-lines\n", argv[0]);
            return 2;
        }
    }
    std::ios::sync_with_stdio(false);
    std::string line, raw, out;
    while (std::getline(std::cin, line)) {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        raw.clear();
        for (std::size_t i = 0; i + 1 < line.size(); i += 2) {
            const int h = hexval(line[i]), l = hexval(line[i + 1]);
            if (h < 0 || l < 0) {
                std::fprintf(stderr, "bad hex input\n");
                return 2;
            }
            raw += static_cast<char>(h * 16 + l);
        }
        out = verdict(raw, lim);
        out += '\n';
        std::fwrite(out.data(), 1, out.size(), stdout);
    }
    return 0;
}
