// Chunked transfer coding decoder (RFC 9112 7.1): a byte-level state machine for the framing, zero-copy
// views for the chunk data. Being a state machine over single bytes, it gives the same result however the
// input is split.
#include <array>
#include <limits>

#include "http/parser.hpp"

namespace luath::http {
namespace {

enum : std::uint8_t { kTchar = 1, kValue = 2, kQdtext = 4 };

constexpr bool in(std::string_view set, int c) {
    for (char s : set)
        if (static_cast<unsigned char>(s) == c) return true;
    return false;
}

constexpr std::array<std::uint8_t, 256> kClass = [] {
    std::array<std::uint8_t, 256> t{};
    for (int c = 0; c < 256; ++c) {
        const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        const bool digit = c >= '0' && c <= '9';
        std::uint8_t f = 0;
        if (alpha || digit || in("!#$%&'*+-.^_`|~", c)) f |= kTchar;
        if (c == '\t' || (c >= 0x20 && c <= 0x7e) || c >= 0x80) f |= kValue;  // also quoted-pair's 2nd byte
        // qdtext = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text
        if (c == '\t' || c == ' ' || c == 0x21 || (c >= 0x23 && c <= 0x5b) || (c >= 0x5d && c <= 0x7e) ||
            c >= 0x80)
            f |= kQdtext;
        t[static_cast<std::size_t>(c)] = f;
    }
    return t;
}();

inline bool is_tchar(char c) { return kClass[static_cast<unsigned char>(c)] & kTchar; }
inline bool is_value(char c) { return kClass[static_cast<unsigned char>(c)] & kValue; }
inline bool is_qdtext(char c) { return kClass[static_cast<unsigned char>(c)] & kQdtext; }
inline bool is_ws(char c) { return c == ' ' || c == '\t'; }

inline int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

constexpr std::uint32_t kMaxSizeLine = 4096;     // chunk-size + extensions, CRLF excluded
constexpr std::uint32_t kMaxTrailerSection = 8192;  // all trailer field lines and the final CRLF

}  // namespace

ChunkedDecoder::Result ChunkedDecoder::next(const char*& p, const char* end, std::string_view& out) {
    for (;;) {
        switch (state_) {
            case State::Done:
                return Result::Done;
            case State::Failed:
                return Result::Error;
            case State::Data: {
                if (p == end) return Result::NeedMore;
                const std::uint64_t avail = static_cast<std::uint64_t>(end - p);
                const std::uint64_t n = chunk_left_ < avail ? chunk_left_ : avail;
                out = std::string_view(p, static_cast<std::size_t>(n));
                p += n;
                chunk_left_ -= n;
                total_ += n;
                if (chunk_left_ == 0) state_ = State::DataCR;
                return Result::Data;
            }
            default:
                break;
        }
        if (p == end) return Result::NeedMore;
        const char c = *p;

        if (state_ <= State::ExtPostQuoted && state_ != State::SizeLF) {
            if (c != '\r' && ++line_len_ > kMaxSizeLine)
                return fail(state_ <= State::SizeDigits ? Error::BadChunkSize : Error::BadChunkExtension);
            if (c == '\n') return fail(Error::BadChunkSize);  // bare LF ends no size line
        } else if (state_ >= State::TrailerStart) {
            if (++trailer_total_ > kMaxTrailerSection) return fail(Error::BadTrailer);
        }

        switch (state_) {
            case State::SizeStart: {
                const int d = hex_value(c);
                if (d < 0) return fail(Error::BadChunkSize);
                chunk_left_ = static_cast<std::uint64_t>(d);
                state_ = State::SizeDigits;
                break;
            }
            case State::SizeDigits: {
                const int d = hex_value(c);
                if (d >= 0) {
                    if (chunk_left_ >> 60) return fail(Error::BadChunkSize);  // a 17th significant digit
                    chunk_left_ = (chunk_left_ << 4) | static_cast<std::uint64_t>(d);
                    break;
                }
                // The size is known: enforce the body limit right away.
                if (chunk_left_ > std::numeric_limits<std::uint64_t>::max() - total_ ||
                    (max_body_ && chunk_left_ > max_body_ - total_))
                    return fail(Error::BodyTooLarge);
                if (c == '\r') state_ = State::SizeLF;
                else if (c == ';') state_ = State::ExtPreName;
                else if (is_ws(c)) state_ = State::ExtPreSemi;
                else return fail(Error::BadChunkSize);
                break;
            }
            case State::ExtPreSemi:  // BWS before ';'
                if (c == ';') state_ = State::ExtPreName;
                else if (!is_ws(c)) return fail(Error::BadChunkExtension);
                break;
            case State::ExtPreName:  // BWS after ';'
                if (is_tchar(c)) state_ = State::ExtName;
                else if (!is_ws(c)) return fail(Error::BadChunkExtension);
                break;
            case State::ExtName:
                if (c == '\r') state_ = State::SizeLF;
                else if (c == ';') state_ = State::ExtPreName;
                else if (c == '=') state_ = State::ExtPreVal;
                else if (is_ws(c)) state_ = State::ExtPostName;
                else if (!is_tchar(c)) return fail(Error::BadChunkExtension);
                break;
            case State::ExtPostName:  // BWS after the name: '=' or ';' must follow
                if (c == '=') state_ = State::ExtPreVal;
                else if (c == ';') state_ = State::ExtPreName;
                else if (!is_ws(c)) return fail(Error::BadChunkExtension);
                break;
            case State::ExtPreVal:  // BWS after '='
                if (c == '"') state_ = State::ExtQuoted;
                else if (is_tchar(c)) state_ = State::ExtValToken;
                else if (!is_ws(c)) return fail(Error::BadChunkExtension);
                break;
            case State::ExtValToken:
                if (c == '\r') state_ = State::SizeLF;
                else if (c == ';') state_ = State::ExtPreName;
                else if (is_ws(c)) state_ = State::ExtPreSemi;
                else if (!is_tchar(c)) return fail(Error::BadChunkExtension);
                break;
            case State::ExtQuoted:
                if (c == '"') state_ = State::ExtPostQuoted;
                else if (c == '\\') state_ = State::ExtQuotedEsc;
                else if (!is_qdtext(c)) return fail(Error::BadChunkExtension);
                break;
            case State::ExtQuotedEsc:
                if (!is_value(c)) return fail(Error::BadChunkExtension);
                state_ = State::ExtQuoted;
                break;
            case State::ExtPostQuoted:
                if (c == '\r') state_ = State::SizeLF;
                else if (c == ';') state_ = State::ExtPreName;
                else if (is_ws(c)) state_ = State::ExtPreSemi;
                else return fail(Error::BadChunkExtension);
                break;
            case State::SizeLF:
                if (c != '\n') return fail(Error::BadChunkSize);
                line_len_ = 0;
                state_ = chunk_left_ == 0 ? State::TrailerStart : State::Data;
                break;
            case State::DataCR:
                if (c != '\r') return fail(Error::BadChunkData);
                state_ = State::DataLF;
                break;
            case State::DataLF:
                if (c != '\n') return fail(Error::BadChunkData);
                state_ = State::SizeStart;
                break;
            case State::TrailerStart:
                if (c == '\r') state_ = State::TrailerEndLF;
                else if (is_tchar(c)) state_ = State::TrailerName;
                else return fail(Error::BadTrailer);  // obs-fold, empty name, bare LF, ...
                break;
            case State::TrailerName:
                if (c == ':') state_ = State::TrailerValue;
                else if (!is_tchar(c)) return fail(Error::BadTrailer);
                break;
            case State::TrailerValue:
                if (c == '\r') state_ = State::TrailerLF;
                else if (!is_value(c)) return fail(Error::BadTrailer);
                break;
            case State::TrailerLF:
                if (c != '\n') return fail(Error::BadTrailer);
                state_ = State::TrailerStart;
                break;
            case State::TrailerEndLF:
                if (c != '\n') return fail(Error::BadTrailer);
                ++p;
                state_ = State::Done;
                return Result::Done;
            default:
                return fail(Error::BadChunkData);  // unreachable
        }
        ++p;
    }
}

}  // namespace luath::http
