// The one table: parse error -> HTTP status, reason phrase, short detail.
#include "http/errors.hpp"

namespace luath::http {

namespace {
constexpr std::string_view kBadRequest = "Bad Request";
}  // namespace

ErrorInfo error_info(Error e) {
    switch (e) {
        case Error::None: return {200, "OK", ""};
        case Error::BadRequestLine: return {400, kBadRequest, "malformed request line"};
        case Error::BadMethod: return {400, kBadRequest, "invalid method"};
        case Error::BadTarget: return {400, kBadRequest, "invalid request target"};
        case Error::BadVersion: return {400, kBadRequest, "invalid http version"};
        case Error::UnsupportedVersion: return {505, "HTTP Version Not Supported", "unsupported http version"};
        case Error::TargetTooLong: return {414, "URI Too Long", "request line too long"};
        case Error::HeadTooLarge: return {431, "Request Header Fields Too Large", "request header too large"};
        case Error::TooManyHeaders: return {431, "Request Header Fields Too Large", "too many header fields"};
        case Error::BadHeaderName: return {400, kBadRequest, "invalid header name"};
        case Error::SpaceBeforeColon: return {400, kBadRequest, "whitespace before colon in header"};
        case Error::BadHeaderValue: return {400, kBadRequest, "invalid header value"};
        case Error::ObsFold: return {400, kBadRequest, "obsolete line folding"};
        case Error::BareLF: return {400, kBadRequest, "bare cr or lf"};
        case Error::MissingHost: return {400, kBadRequest, "missing host header"};
        case Error::DuplicateHost: return {400, kBadRequest, "duplicate host header"};
        case Error::BadHost: return {400, kBadRequest, "invalid host header"};
        case Error::BadContentLength: return {400, kBadRequest, "invalid content-length"};
        case Error::ConflictingContentLength: return {400, kBadRequest, "conflicting content-length"};
        case Error::ContentLengthWithTransferEncoding:
            return {400, kBadRequest, "content-length with transfer-encoding"};
        case Error::TransferEncodingNotChunked: return {400, kBadRequest, "final transfer coding is not chunked"};
        case Error::TransferEncodingOnHttp10: return {400, kBadRequest, "transfer-encoding in http/1.0 request"};
        case Error::UnknownTransferCoding: return {501, "Not Implemented", "unsupported transfer coding"};
        case Error::BodyTooLarge: return {413, "Content Too Large", "request body too large"};
        case Error::BadChunkSize: return {400, kBadRequest, "invalid chunk size"};
        case Error::BadChunkExtension: return {400, kBadRequest, "invalid chunk extension"};
        case Error::BadChunkData: return {400, kBadRequest, "invalid chunk data"};
        case Error::BadTrailer: return {400, kBadRequest, "invalid trailer section"};
    }
    return {400, kBadRequest, "bad request"};
}

}  // namespace luath::http
