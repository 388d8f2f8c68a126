#include "http/ws_deflate.hpp"

#include <zlib.h>

#include <cstring>

#include "http/response.hpp"
#include "http/websocket.hpp"

namespace luath::http::ws {

namespace {
constexpr int kOurWindow = 12;  // the window we use, and ask the client to use when it lets us
constexpr int kMemLevel = 5;
constexpr unsigned char kTail[4] = {0x00, 0x00, 0xff, 0xff};

bool parse_bits(std::string_view v, int& out) {
    if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
    if (v.empty() || v.size() > 2) return false;
    int n = 0;
    for (char ch : v) {
        if (ch < '0' || ch > '9') return false;
        n = n * 10 + (ch - '0');
    }
    if (n < 8 || n > 15) return false;
    out = n;
    return true;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}
}  // namespace

// ---------------------------------------------------------------- negotiation

bool DeflateNegotiation::try_offer(std::string_view offer) {
    std::size_t semi = offer.find(';');
    if (!iequals(trim(offer.substr(0, semi)), "permessage-deflate")) return false;
    DeflateParams p;
    bool seen_snct = false, seen_cnct = false, seen_smwb = false, seen_cmwb = false, client_bits_offered = false;
    int client_bits = 15;
    while (semi != std::string_view::npos) {
        std::size_t next = offer.find(';', semi + 1);
        std::string_view param = trim(offer.substr(semi + 1, next == std::string_view::npos ? next : next - semi - 1));
        semi = next;
        std::size_t eq = param.find('=');
        std::string_view name = trim(param.substr(0, eq));
        std::string_view value = eq == std::string_view::npos ? std::string_view() : trim(param.substr(eq + 1));
        bool has_value = eq != std::string_view::npos;
        if (iequals(name, "server_no_context_takeover")) {
            if (seen_snct || has_value) return false;
            seen_snct = p.server_no_context_takeover = true;
        } else if (iequals(name, "client_no_context_takeover")) {
            if (seen_cnct || has_value) return false;
            seen_cnct = p.client_no_context_takeover = true;
        } else if (iequals(name, "server_max_window_bits")) {
            if (seen_smwb || !has_value || !parse_bits(value, p.server_max_window_bits)) return false;
            seen_smwb = true;
            // zlib cannot make a raw deflate stream with an 8-bit window: decline such an offer.
            if (p.server_max_window_bits < 9) return false;
        } else if (iequals(name, "client_max_window_bits")) {
            if (seen_cmwb) return false;
            if (has_value && !parse_bits(value, client_bits)) return false;
            seen_cmwb = client_bits_offered = true;
        } else {
            return false;  // an unknown parameter: decline this offer
        }
    }
    if (p.server_max_window_bits > kOurWindow) p.server_max_window_bits = kOurWindow;
    p.client_max_window_bits = client_bits;
    if (client_bits_offered && client_bits > kOurWindow) p.client_max_window_bits = kOurWindow;
    response_ = "permessage-deflate";
    if (p.server_no_context_takeover) response_ += "; server_no_context_takeover";
    if (p.client_no_context_takeover) response_ += "; client_no_context_takeover";
    response_ += "; server_max_window_bits=" + std::to_string(p.server_max_window_bits);
    if (client_bits_offered) response_ += "; client_max_window_bits=" + std::to_string(p.client_max_window_bits);
    params_ = p;
    return true;
}

void DeflateNegotiation::offer(std::string_view header_value) {
    if (accepted_) return;
    for_each_element(header_value, [&](std::string_view offer) {
        if (!accepted_ && try_offer(offer)) accepted_ = true;
    });
}

// ---------------------------------------------------------------- compression

Deflate::~Deflate() {
    if (def_) {
        deflateEnd(static_cast<z_stream*>(def_));
        delete static_cast<z_stream*>(def_);
    }
    if (inf_) {
        inflateEnd(static_cast<z_stream*>(inf_));
        delete static_cast<z_stream*>(inf_);
    }
}

bool Deflate::compress(const char* data, std::size_t n, std::string& out) {
    auto* z = static_cast<z_stream*>(def_);
    if (!z) {
        z = new z_stream();
        if (deflateInit2(z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -p_.server_max_window_bits, kMemLevel,
                         Z_DEFAULT_STRATEGY) != Z_OK) {
            delete z;
            return false;
        }
        def_ = z;
    }
    out.resize(deflateBound(z, static_cast<uLong>(n)) + 16);
    z->next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data));
    z->avail_in = static_cast<uInt>(n);
    std::size_t used = 0;
    for (;;) {
        z->next_out = reinterpret_cast<Bytef*>(out.data() + used);
        z->avail_out = static_cast<uInt>(out.size() - used);
        int r = deflate(z, Z_SYNC_FLUSH);
        used = out.size() - z->avail_out;
        if (r != Z_OK && r != Z_BUF_ERROR) return false;
        if (z->avail_out > 0 && z->avail_in == 0) break;
        out.resize(out.size() * 2);
    }
    // Z_SYNC_FLUSH ends with 00 00 ff ff, which the message leaves out (RFC 7692 7.2.1).
    if (used >= 4 && std::memcmp(out.data() + used - 4, kTail, 4) == 0) used -= 4;
    // Nothing new to flush (an empty message after a flush): zlib writes nothing, but the peer appends
    // 00 00 ff ff, which is only a valid empty stored block after a 00 byte.
    if (used == 0) out[used++] = 0;
    out.resize(used);
    if (p_.server_no_context_takeover) deflateReset(z);
    return true;
}

Deflate::Result Deflate::run_inflate(const unsigned char* data, std::size_t n, std::string& out, std::uint64_t max,
                                     Utf8Validator* utf8) {
    auto* z = static_cast<z_stream*>(inf_);
    if (!z) {
        z = new z_stream();
        if (inflateInit2(z, -15) != Z_OK) {  // a 15-bit window reads any smaller one too
            delete z;
            return Result::Error;
        }
        inf_ = z;
    }
    z->next_in = const_cast<Bytef*>(data);
    z->avail_in = static_cast<uInt>(n);
    constexpr std::size_t kChunk = 16384;
    for (;;) {
        const std::size_t used = out.size();
        out.resize(used + kChunk);
        z->next_out = reinterpret_cast<Bytef*>(out.data() + used);
        z->avail_out = static_cast<uInt>(kChunk);
        int r = ::inflate(z, Z_SYNC_FLUSH);
        const std::size_t now = used + kChunk - z->avail_out;
        out.resize(now);
        if (utf8) {
            std::size_t lim = max && now > max ? static_cast<std::size_t>(max) : now;
            if (lim > used && !utf8->feed(out.data() + used, lim - used)) return Result::BadUtf8;
        }
        if (max && now > max) return Result::TooBig;
        if (r == Z_STREAM_END) {
            // A final block inside a message: valid deflate; start over for what follows.
            inflateReset(z);
            if (z->avail_in == 0) break;
            continue;
        }
        if (r != Z_OK && r != Z_BUF_ERROR) return Result::Error;
        if (z->avail_out > 0) break;  // all input taken and no output pending
    }
    return Result::Ok;
}

Deflate::Result Deflate::inflate(const char* data, std::size_t n, std::string& out, std::uint64_t max,
                                 Utf8Validator* utf8) {
    return run_inflate(reinterpret_cast<const unsigned char*>(data), n, out, max, utf8);
}

Deflate::Result Deflate::finish(std::string& out, std::uint64_t max, Utf8Validator* utf8) {
    Result r = run_inflate(kTail, 4, out, max, utf8);
    if (r == Result::Ok && p_.client_no_context_takeover) inflateReset(static_cast<z_stream*>(inf_));
    return r;
}

}  // namespace luath::http::ws
