// libFuzzer target: parse_request_head on the input whole, and split in pieces at positions derived from
// the input (each piece in a fresh exact-size heap buffer, so the buffer "moves" between calls and ASan
// catches stale views and reads past len). All ways must give the same result, with small and default
// limits, and so must the one-pass path of every instruction set against the line-by-line path alone.
// Also checks the invariants of a Complete result.
#include <cstdint>
#include <cstring>

#include "fuzz_common.hpp"
#include "http/scan.hpp"

using namespace luath;
using luath::fuzz::Snap;

namespace {

Snap parse_cuts(const std::uint8_t* data, std::size_t size, const std::vector<std::size_t>& cuts,
                const http::Limits& lim, http::Request& req) {
    http::HeadState st;
    std::vector<std::size_t> all = cuts;
    all.push_back(size);
    for (std::size_t cut : all) {
        std::unique_ptr<char[]> buf(new char[cut ? cut : 1]);
        if (cut) std::memcpy(buf.get(), data, cut);
        const http::ParseResult r = http::parse_request_head(buf.get(), cut, req, lim, st);
        if (r.status == http::Status::Complete) {
            if (r.consumed == 0 || r.consumed > cut || r.error != http::Error::None) std::abort();
            if (req.num_headers > lim.max_headers || req.num_headers > http::kMaxHeadersCap) std::abort();
            if (req.framing == http::Framing::ContentLength && lim.max_body_size &&
                req.content_length > lim.max_body_size)
                std::abort();
            // Views must lie inside the buffer.
            auto inside = [&](std::string_view v) {
                if (v.empty()) return;
                if (v.data() < buf.get() || v.data() + v.size() > buf.get() + r.consumed) {
                    if (v.data() != nullptr && v != "/") std::abort();
                }
            };
            inside(req.method);
            inside(req.target);
            inside(req.query);
            inside(req.host);
            for (std::uint32_t i = 0; i < req.num_headers; ++i) {
                inside(req.headers[i].name);
                inside(req.headers[i].value);
            }
        } else if (r.status == http::Status::Error) {
            if (r.error == http::Error::None || r.consumed != 0) std::abort();
        } else if (r.consumed != 0 || r.error != http::Error::None) {
            std::abort();
        }
        if (r.status != http::Status::Incomplete || cut == size) return luath::fuzz::snap(r, req);
    }
    return Snap{};
}

// The one-pass path of every instruction set available (scalar, SSE4.2, AVX2 / NEON) against the
// line-by-line path alone, on the whole input.
void check_paths(const std::uint8_t* data, std::size_t size, const http::Limits& lim, const Snap& whole,
                 http::Request& req) {
    const http::ScanImpl saved = http::scan_impl();
    http::g_fast_head = false;
    const Snap lines = parse_cuts(data, size, {}, lim, req);
    http::g_fast_head = true;
    for (http::ScanImpl impl : {http::ScanImpl::Scalar, http::ScanImpl::SSE42, http::ScanImpl::AVX2, http::ScanImpl::NEON}) {
        if (!http::set_scan_impl(impl)) continue;
        const Snap fast = parse_cuts(data, size, {}, lim, req);
        if (!(fast == lines)) luath::fuzz::die(http::scan_impl_name(impl), lines, fast);
    }
    http::set_scan_impl(saved);
    if (!(whole == lines)) luath::fuzz::die("default", lines, whole);
}

void check(const std::uint8_t* data, std::size_t size, const http::Limits& lim, std::uint64_t seed) {
    auto req = std::make_unique<http::Request>();
    const Snap whole = parse_cuts(data, size, {}, lim, *req);
    check_paths(data, size, lim, whole, *req);

    // One split at a position derived from the input.
    if (size > 1) {
        const std::size_t cut = 1 + static_cast<std::size_t>(seed % (size - 1));
        const Snap two = parse_cuts(data, size, {cut}, lim, *req);
        if (!(two == whole)) luath::fuzz::die("one split", whole, two);
    }
    // Several increasing splits (pseudo-random from the seed).
    if (size > 2) {
        std::vector<std::size_t> cuts;
        std::uint64_t x = seed | 1;
        std::size_t pos = 0;
        while (true) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            pos += 1 + static_cast<std::size_t>(x % 17);
            if (pos >= size) break;
            cuts.push_back(pos);
        }
        const Snap many = parse_cuts(data, size, cuts, lim, *req);
        if (!(many == whole)) luath::fuzz::die("many splits", whole, many);
    }
    // Byte by byte for short inputs.
    if (size <= 512) {
        std::vector<std::size_t> cuts;
        for (std::size_t i = 0; i < size; ++i) cuts.push_back(i);
        const Snap bytes = parse_cuts(data, size, cuts, lim, *req);
        if (!(bytes == whole)) luath::fuzz::die("bytewise", whole, bytes);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::uint64_t seed = 1469598103934665603ull;
    for (std::size_t i = 0; i < size; ++i) seed = (seed ^ data[i]) * 1099511628211ull;

    check(data, size, http::Limits{}, seed);

    http::Limits small;
    small.max_request_line = 40;
    small.max_field_size = 32;
    small.max_head_size = 200;
    small.max_headers = 4;
    small.max_body_size = 1000;
    check(data, size, small, seed >> 7);

    http::Limits tiny;
    tiny.max_request_line = 1;
    tiny.max_field_size = 0;
    tiny.max_head_size = 3;
    tiny.max_headers = 0;
    tiny.max_body_size = 0;
    check(data, size, tiny, seed >> 13);
    return 0;
}
