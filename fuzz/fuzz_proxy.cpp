// libFuzzer target: the PROXY protocol header parser. Each parse gets a fresh exact-size heap buffer (ASan
// sees any over-read). Checks: every prefix of the input gives NeedMore or exactly the whole input's
// result (so a header split across reads at any byte is read the same), Done stays within the size
// bounds, and a v1 TCP4/TCP6 header re-rendered in canonical form parses to the same addresses.
#include <arpa/inet.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "http/proxy_protocol.hpp"

using namespace luath::http;

namespace {

bool same(const ProxyHeader& a, const ProxyHeader& b) {
    return a.version == b.version && a.local == b.local && a.family == b.family &&
           std::memcmp(a.src_addr, b.src_addr, 16) == 0 && std::memcmp(a.dst_addr, b.dst_addr, 16) == 0 &&
           a.src_port == b.src_port && a.dst_port == b.dst_port;
}

struct Out {
    ProxyResult r;
    ProxyHeader h;
    bool operator==(const Out& o) const {
        return r.status == o.r.status && r.error == o.r.error && r.consumed == o.r.consumed &&
               (r.status != ProxyStatus::Done || same(h, o.h));
    }
};

Out parse(const std::uint8_t* data, std::size_t n) {
    std::unique_ptr<char[]> buf(new char[n ? n : 1]);
    if (n) std::memcpy(buf.get(), data, n);
    Out o;
    o.r = parse_proxy_header(buf.get(), n, o.h);
    return o;
}

[[noreturn]] void die(const char* what, std::size_t at, const Out& a, const Out& b) {
    std::fprintf(stderr, "MISMATCH (%s at %zu): status %d/%d error %d/%d consumed %zu/%zu\n", what, at,
                 int(a.r.status), int(b.r.status), int(a.r.error), int(b.r.error), a.r.consumed, b.r.consumed);
    std::abort();
}

void check_prefix(const std::uint8_t* data, std::size_t n, const Out& whole) {
    const Out p = parse(data, n);
    if (p.r.status == ProxyStatus::NeedMore) {
        if (p.r.consumed != 0) die("NeedMore consumed", n, whole, p);
        return;
    }
    if (!(p == whole)) die("prefix", n, whole, p);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const Out whole = parse(data, size);
    const ProxyResult& r = whole.r;
    if (r.status == ProxyStatus::Done) {
        if (r.consumed == 0 || r.consumed > size || r.consumed > kProxyHeaderMax) std::abort();
        if (whole.h.version == 1 && r.consumed > kProxyV1Max) std::abort();
        if (whole.h.version != (data[0] == 'P' ? 1 : 2)) std::abort();
        if (whole.h.local && (whole.h.version != 2 || whole.h.family != ProxyHeader::Family::None)) std::abort();
    } else if (r.consumed != 0) {
        std::abort();
    }
    if (r.status == ProxyStatus::Error && r.error == ProxyError::None) std::abort();

    // Prefixes: every one for small inputs, else a spread of them.
    const std::size_t limit = size < kProxyHeaderMax + 8 ? size : kProxyHeaderMax + 8;
    if (limit <= 300) {
        for (std::size_t n = 0; n < limit; ++n) check_prefix(data, n, whole);
    } else {
        std::uint64_t x = 0x9E3779B97F4A7C15ull ^ size;
        for (int k = 0; k < 64; ++k) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            check_prefix(data, static_cast<std::size_t>(x % limit), whole);
        }
    }

    // A v1 TCP header in canonical form parses to the same header.
    if (r.status == ProxyStatus::Done && whole.h.version == 1 && whole.h.family != ProxyHeader::Family::None) {
        const bool v6 = whole.h.family == ProxyHeader::Family::Inet6;
        char s[64], d[64];
        inet_ntop(v6 ? AF_INET6 : AF_INET, whole.h.src_addr, s, sizeof s);
        inet_ntop(v6 ? AF_INET6 : AF_INET, whole.h.dst_addr, d, sizeof d);
        char line[256];
        const int len = std::snprintf(line, sizeof line, "PROXY %s %s %s %u %u\r\n", v6 ? "TCP6" : "TCP4", s, d,
                                      unsigned(whole.h.src_port), unsigned(whole.h.dst_port));
        const Out again = parse(reinterpret_cast<const std::uint8_t*>(line), static_cast<std::size_t>(len));
        if (again.r.status != ProxyStatus::Done || again.r.consumed != static_cast<std::size_t>(len) ||
            !same(again.h, whole.h)) {
            std::fprintf(stderr, "MISMATCH (canonical v1): %s", line);
            std::abort();
        }
    }
    return 0;
}
