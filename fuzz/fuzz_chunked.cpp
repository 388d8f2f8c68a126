// libFuzzer target: ChunkedDecoder fed the input whole and in pieces (split at positions derived from the
// input, and byte by byte), each piece in a fresh exact-size heap buffer. The decoded bytes, the final
// result, the error and the position after Done must be identical.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "http/parser.hpp"

using namespace luath;

namespace {

struct Out {
    std::string body;
    http::ChunkedDecoder::Result result = http::ChunkedDecoder::Result::NeedMore;
    http::Error error = http::Error::None;
    std::size_t end_pos = 0;  // offset just past the final CRLF when Done
    std::uint64_t total = 0;
    bool operator==(const Out&) const = default;
};

Out decode(const std::uint8_t* data, std::size_t size, const std::vector<std::size_t>& cuts, std::uint64_t max) {
    http::ChunkedDecoder dec(max);
    Out o;
    std::size_t done = 0;  // bytes consumed so far
    std::vector<std::size_t> all = cuts;
    all.push_back(size);
    for (std::size_t cut : all) {
        if (cut <= done) continue;
        const std::size_t n = cut - done;
        std::unique_ptr<char[]> buf(new char[n]);
        std::memcpy(buf.get(), data + done, n);
        const char* p = buf.get();
        const char* end = p + n;
        for (;;) {
            std::string_view piece;
            const auto r = dec.next(p, end, piece);
            if (p < buf.get() || p > end) std::abort();
            if (r == http::ChunkedDecoder::Result::Data) {
                if (piece.empty() || piece.data() < buf.get() || piece.data() + piece.size() > end) std::abort();
                o.body.append(piece);
                continue;
            }
            o.result = r;
            if (r == http::ChunkedDecoder::Result::NeedMore) {
                if (p != end) std::abort();
                break;
            }
            if (r == http::ChunkedDecoder::Result::Done) {
                o.end_pos = done + static_cast<std::size_t>(p - buf.get());
                if (!dec.done()) std::abort();
            } else {
                o.error = dec.error();
                if (o.error == http::Error::None) std::abort();
            }
            o.total = dec.total();
            if (o.total != o.body.size()) std::abort();
            if (max && o.total > max) std::abort();
            return o;
        }
        done = cut;
    }
    o.total = dec.total();
    if (o.total != o.body.size()) std::abort();
    return o;
}

void die(const char* what, const Out& a, const Out& b) {
    std::fprintf(stderr, "MISMATCH (%s): result %d/%d error %d/%d end %zu/%zu body %zu/%zu\n", what,
                 int(a.result), int(b.result), int(a.error), int(b.error), a.end_pos, b.end_pos, a.body.size(),
                 b.body.size());
    std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    // First byte chooses the body limit; the rest is the chunked body.
    const std::uint64_t limits[4] = {0, 16, 1000, 1u << 20};
    const std::uint64_t max = limits[data[0] & 3];
    ++data;
    --size;
    std::uint64_t seed = 1469598103934665603ull;
    for (std::size_t i = 0; i < size; ++i) seed = (seed ^ data[i]) * 1099511628211ull;

    const Out whole = decode(data, size, {}, max);
    if (size > 1) {
        const Out two = decode(data, size, {1 + static_cast<std::size_t>(seed % (size - 1))}, max);
        if (!(two == whole)) die("one split", whole, two);
    }
    {
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
        const Out many = decode(data, size, cuts, max);
        if (!(many == whole)) die("many splits", whole, many);
    }
    if (size <= 1024) {
        std::vector<std::size_t> cuts;
        for (std::size_t i = 1; i < size; ++i) cuts.push_back(i);
        const Out bytes = decode(data, size, cuts, max);
        if (!(bytes == whole)) die("bytewise", whole, bytes);
    }
    return 0;
}
