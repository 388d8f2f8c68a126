// libFuzzer target: the WebSocket frame parser (http::ws::Receiver), with and without permessage-deflate,
// fed the input whole and in pieces (split at positions derived from the input, and byte by byte). The
// pending bytes are copied into a fresh exact-size heap buffer before each call, so any read past the
// end is caught by ASan. The events (kind, payload, codes) must be identical whatever the split, a
// message must never exceed the size limit, and a text message must be valid UTF-8.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "http/websocket.hpp"
#include "http/ws_deflate.hpp"

using namespace luath::http;

namespace {

struct Ev {
    int kind;
    bool text;
    int code;
    std::string data;
    bool operator==(const Ev&) const = default;
};

std::vector<Ev> run(const std::uint8_t* data, std::size_t size, const std::vector<std::size_t>& cuts,
                    std::uint64_t max, std::size_t view_max, bool deflate) {
    ws::DeflateParams params;
    std::unique_ptr<ws::Deflate> d = deflate ? std::make_unique<ws::Deflate>(params) : nullptr;
    ws::Receiver r;
    r.reset(max, d.get());
    std::vector<Ev> out;
    std::string pending;
    std::size_t done = 0;
    std::vector<std::size_t> all = cuts;
    all.push_back(size);
    for (std::size_t cut : all) {
        if (cut <= done) continue;
        pending.append(reinterpret_cast<const char*>(data) + done, cut - done);
        done = cut;
        std::unique_ptr<char[]> buf(new char[pending.size() ? pending.size() : 1]);
        std::memcpy(buf.get(), pending.data(), pending.size());
        char* p = buf.get();
        char* end = p + pending.size();
        for (;;) {
            auto e = r.next(p, end, view_max);
            if (p < buf.get() || p > end) std::abort();
            if (e == ws::Receiver::Event::NeedMore) break;
            Ev ev{int(e), false, 0, {}};
            if (e == ws::Receiver::Event::Message) {
                ev.text = r.text();
                ev.data.assign(r.data());
                if (max && ev.data.size() > max) std::abort();
                if (ev.text && !ws::valid_utf8(ev.data)) std::abort();
            } else if (e == ws::Receiver::Event::Close) {
                ev.code = r.close_code();
                ev.data.assign(r.close_reason());
            } else if (e == ws::Receiver::Event::Error) {
                ev.code = r.error_code();
                out.push_back(ev);
                return out;
            } else {
                ev.data.assign(r.data());
                if (ev.data.size() > 125) std::abort();
            }
            out.push_back(std::move(ev));
        }
        pending.erase(0, static_cast<std::size_t>(p - buf.get()));
    }
    return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    // First byte: size limit, view limit, deflate on/off.
    const std::uint64_t limits[4] = {0, 16, 1000, 1u << 20};
    const std::uint64_t max = limits[data[0] & 3];
    const std::size_t view_max = (data[0] & 4) ? 0 : 16384;
    const bool deflate = data[0] & 8;
    ++data;
    --size;
    std::uint64_t seed = 1469598103934665603ull;
    for (std::size_t i = 0; i < size; ++i) seed = (seed ^ data[i]) * 1099511628211ull;

    const auto whole = run(data, size, {}, max, view_max, deflate);
    std::vector<std::size_t> cuts;
    std::uint64_t x = seed | 1;
    std::size_t pos = 0;
    for (;;) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        pos += 1 + static_cast<std::size_t>(x % 9);
        if (pos >= size) break;
        cuts.push_back(pos);
    }
    if (!(run(data, size, cuts, max, view_max, deflate) == whole)) {
        std::fprintf(stderr, "MISMATCH: many splits\n");
        std::abort();
    }
    if (size <= 512) {
        cuts.clear();
        for (std::size_t i = 1; i < size; ++i) cuts.push_back(i);
        if (!(run(data, size, cuts, max, view_max, deflate) == whole)) {
            std::fprintf(stderr, "MISMATCH: bytewise\n");
            std::abort();
        }
    }
    return 0;
}
