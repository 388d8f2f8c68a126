// Parser microbenchmark: ns per request head for luath, picohttpparser and llhttp on three realistic
// requests. Built and run by bench/parser/run (picohttpparser and llhttp are compiled from their PyPI
// sdists at benchmark time; this file only sees their headers when LUATH_BENCH_PICO / _LLHTTP are set).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <functional>
#include <vector>

#include "http/parser.hpp"
#include "http/scan.hpp"

#ifdef LUATH_BENCH_PICO
extern "C" {
#include "picohttpparser.h"
}
#endif
#ifdef LUATH_BENCH_LLHTTP
extern "C" {
#include "llhttp.h"
}
#endif

namespace {

// wrk's GET as used in the usual plaintext benchmark setup (TechEmpower): Host, Accept, Connection.
const std::string kWrk =
    "GET /plaintext HTTP/1.1\r\n"
    "Host: localhost:8080\r\n"
    "Accept: text/plain,text/html;q=0.9,application/xhtml+xml;q=0.9,application/xml;q=0.8,*/*;q=0.7\r\n"
    "Connection: keep-alive\r\n"
    "\r\n";

const std::string kBrowser =
    "GET /products/category/shoes?page=2&sort=price_asc&filter=color%3Ablack HTTP/1.1\r\n"
    "Host: www.example-shop.com\r\n"
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 "
    "Safari/537.36\r\n"
    "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8,"
    "application/signed-exchange;v=b3;q=0.7\r\n"
    "Accept-Language: en-US,en;q=0.9,de;q=0.8\r\n"
    "Accept-Encoding: gzip, deflate, br\r\n"
    "Referer: https://www.example-shop.com/products/category/shoes?page=1&sort=price_asc\r\n"
    "Cookie: session_id=8f2a9c4e7b1d3f6a0e5c2b8d4f7a1e3c; _ga=GA1.2.1234567890.1700000000; "
    "_gid=GA1.2.987654321.1700000000; cart=%7B%22items%22%3A3%7D; theme=dark; consent=analytics%2Cmarketing\r\n"
    "Connection: keep-alive\r\n"
    "Upgrade-Insecure-Requests: 1\r\n"
    "Sec-Fetch-Dest: document\r\n"
    "Sec-Fetch-Mode: navigate\r\n"
    "Sec-Fetch-Site: same-origin\r\n"
    "\r\n";

std::string api_post() {
    std::string s =
        "POST /api/v2/orders/batch?validate=true HTTP/1.1\r\n"
        "Host: api.internal.example.com\r\n"
        "User-Agent: example-sdk-python/3.4.1 python/3.12.1 linux/x86_64\r\n"
        "Accept: application/json\r\n"
        "Accept-Encoding: gzip, deflate\r\n"
        "Content-Type: application/json; charset=utf-8\r\n"
        "Content-Length: 1834\r\n"
        "Authorization: Bearer eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJzdmMtb3JkZXJzIiwiaWF0IjoxNzAwMDAw"
        "MDAwLCJleHAiOjE3MDAwMDM2MDAsInNjb3BlIjoib3JkZXJzOndyaXRlIn0.c2lnbmF0dXJl\r\n"
        "X-Request-Id: 0f8fad5b-d9cb-469f-a165-70867728950e\r\n"
        "X-Correlation-Id: 7c9e6679-7425-40de-944b-e07fc1f90ae7\r\n"
        "X-Forwarded-For: 203.0.113.195, 70.41.3.18, 150.172.238.178\r\n"
        "X-Forwarded-Proto: https\r\n"
        "X-Forwarded-Host: api.example.com\r\n"
        "X-Forwarded-Port: 443\r\n"
        "X-Real-IP: 203.0.113.195\r\n"
        "Traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n"
        "Tracestate: congo=t61rcWkgMzE,rojo=00f067aa0ba902b7\r\n"
        "X-B3-TraceId: 80f198ee56343ba864fe8b2a57d3eff7\r\n"
        "X-B3-SpanId: e457b5a2e4d86bd1\r\n"
        "X-B3-Sampled: 1\r\n"
        "Idempotency-Key: 5f1c2d3e-4b5a-6978-8a9b-0c1d2e3f4a5b\r\n"
        "X-Api-Version: 2024-01-15\r\n"
        "X-Client-Name: checkout-service\r\n"
        "X-Client-Version: 1.42.0\r\n"
        "X-Tenant-Id: acme-corp-eu-west-1\r\n"
        "Cache-Control: no-cache\r\n"
        "Pragma: no-cache\r\n"
        "Origin: https://checkout.example.com\r\n"
        "Connection: keep-alive\r\n"
        "Expect: 100-continue\r\n"
        "X-Feature-Flags: new-pricing,fast-checkout,beta-ui\r\n"
        "\r\n";
    return s;
}

using Clock = std::chrono::steady_clock;

template <class F>
double ns_per_call(F&& f, int iters) {
    const auto t0 = Clock::now();
    for (int i = 0; i < iters; ++i) f();
    const auto t1 = Clock::now();
    return std::chrono::duration<double, std::nano>(t1 - t0).count() / iters;
}

// The parsers of one request are measured in interleaved rounds (each round runs each parser once), so
// that noise from other load on the machine hits all of them alike; the median round is reported.
struct Round {
    std::string name;
    std::function<double(int)> run;  // ns per parse over `iters` parses (the loop is inside)
    std::vector<double> samples;
};

template <class F>
std::function<double(int)> timed(F f) {
    return [f](int iters) mutable { return ns_per_call(f, iters); };
}

volatile std::size_t g_sink;
bool g_int3 = std::getenv("LUATH_BENCH_NO_INT3") == nullptr;  // set it to profile --count with callgrind

}  // namespace

// Instruction-count mode (run under bench/parser/count_insns.c, which counts the instructions executed
// between two int3 markers): one parser's loop of `iters` parses between two markers. Two regions per
// parser, 1 and 1 + K parses: their difference / K is the exact count per parse, loop overhead excluded.
__attribute__((noinline)) void counted(const std::function<double(int)>& run, int iters) {
#if defined(__x86_64__)
    if (g_int3) __asm__ volatile("int3" ::: "memory");
    g_sink = static_cast<std::size_t>(run(iters));
    if (g_int3) __asm__ volatile("int3" ::: "memory");
#else
    g_sink = static_cast<std::size_t>(run(iters));
#endif
}

int main(int argc, char** argv) {
    // parser_bench RUNS ITERS              timing mode: JSON with the median ns per request
    // parser_bench --count REQ K [P]       instruction-count mode (under count_insns, x86-64): for request
    //                                      REQ, each parser (or only the P-th) runs 1 and then 1 + K parses
    //                                      inside int3 markers; prints the parser names, one per line.
    const bool count_mode = argc > 1 && std::strcmp(argv[1], "--count") == 0;
    const int count_req = count_mode && argc > 2 ? std::atoi(argv[2]) : -1;
    const int count_only = count_mode && argc > 4 ? std::atoi(argv[4]) : -1;
    const int runs = count_mode ? 1 : argc > 1 ? std::atoi(argv[1]) : 9;
    const int iters = argc > (count_mode ? 3 : 2) ? std::atoi(argv[count_mode ? 3 : 2]) : 200000;
    struct Req {
        const char* name;
        std::string text;
        int headers;
    };
    const std::vector<Req> reqs = {{"wrk GET (3 headers)", kWrk, 3},
                                   {"browser GET (12 headers, cookies)", kBrowser, 12},
                                   {"API POST (30 headers)", api_post(), 30}};

    using namespace luath::http;
    auto luath_req = std::make_unique<Request>();
    const Limits limits;

    if (!count_mode) std::printf("{\"runs\": %d, \"iters\": %d, \"results\": [\n", runs, iters);
    bool first = true;
    auto emit = [&](const char* parser, const Req& r, double ns) {
        std::printf("%s  {\"parser\": \"%s\", \"request\": \"%s\", \"bytes\": %zu, \"headers\": %d, \"ns\": %.1f}",
                    first ? "" : ",\n", parser, r.name, r.text.size(), r.headers, ns);
        first = false;
    };
    for (std::size_t ri = 0; ri < reqs.size(); ++ri) {
        const Req& r = reqs[ri];
        if (count_mode && static_cast<int>(ri) != count_req) continue;
        // Copy into an exact-size heap buffer (like a socket read buffer).
        std::unique_ptr<char[]> buf(new char[r.text.size()]);
        std::memcpy(buf.get(), r.text.data(), r.text.size());
        const std::size_t len = r.text.size();
        std::vector<Round> rounds;

        for (ScanImpl impl : {ScanImpl::AVX2, ScanImpl::SSE42, ScanImpl::Scalar, ScanImpl::NEON}) {
            if (!set_scan_impl(impl)) continue;
            // Sanity check once.
            HeadState st0;
            const ParseResult pr = parse_request_head(buf.get(), len, *luath_req, limits, st0);
            if (pr.status != Status::Complete || static_cast<int>(luath_req->num_headers) != r.headers) {
                std::fprintf(stderr, "luath failed on %s\n", r.name);
                return 1;
            }
            rounds.push_back({std::string("luath (") + scan_impl_name(impl) + ")",
                              [&, impl](int n) {
                                  set_scan_impl(impl);
                                  return ns_per_call(
                                      [&] {
                                          HeadState st;
                                          const ParseResult res =
                                              parse_request_head(buf.get(), len, *luath_req, limits, st);
                                          g_sink = res.consumed + luath_req->num_headers;
                                      },
                                      n);
                              },
                              {}});
        }
#ifdef LUATH_BENCH_PICO
        {
            const char *method, *path;
            std::size_t method_len, path_len, num_headers;
            int minor;
            struct phr_header headers[100];
            num_headers = 100;
            const int n = phr_parse_request(buf.get(), len, &method, &method_len, &path, &path_len, &minor, headers,
                                            &num_headers, 0);
            if (n != static_cast<int>(len) || static_cast<int>(num_headers) != r.headers) {
                std::fprintf(stderr, "picohttpparser failed on %s (%d)\n", r.name, n);
                return 1;
            }
            rounds.push_back({"picohttpparser", timed([&buf, len] {
                                  const char *method, *path;
                                  std::size_t method_len, path_len, nh = 100;
                                  int minor;
                                  struct phr_header headers[100];
                                  const int res = phr_parse_request(buf.get(), len, &method, &method_len, &path,
                                                                    &path_len, &minor, headers, &nh, 0);
                                  g_sink = static_cast<std::size_t>(res) + nh;
                              }),
                              {}});
        }
#endif
#ifdef LUATH_BENCH_LLHTTP
        {
            // Callbacks record the spans like an application would (llhttp may call data callbacks more
            // than once per span; with the whole head in one buffer it calls each once).
            struct Ctx {
                const char* url = nullptr;
                std::size_t url_len = 0;
                int fields = 0;
                int values = 0;
                const char* last = nullptr;
                std::size_t last_len = 0;
            };
            static Ctx ctx;
            llhttp_settings_t settings;
            llhttp_settings_init(&settings);
            settings.on_url = [](llhttp_t*, const char* at, std::size_t n) -> int {
                ctx.url = at;
                ctx.url_len = n;
                return 0;
            };
            settings.on_header_field = [](llhttp_t*, const char* at, std::size_t n) -> int {
                ++ctx.fields;
                ctx.last = at;
                ctx.last_len = n;
                return 0;
            };
            settings.on_header_value = [](llhttp_t*, const char* at, std::size_t n) -> int {
                ++ctx.values;
                ctx.last = at;
                ctx.last_len = n;
                return 0;
            };
            settings.on_headers_complete = [](llhttp_t*) -> int { return 0; };
            llhttp_t parser;
            llhttp_init(&parser, HTTP_REQUEST, &settings);
            ctx = Ctx{};
            const llhttp_errno_t err = llhttp_execute(&parser, buf.get(), len);
            if (err != HPE_OK || ctx.fields != r.headers) {
                std::fprintf(stderr, "llhttp failed on %s (%s, %d fields)\n", r.name, llhttp_errno_name(err),
                             ctx.fields);
                return 1;
            }
            rounds.push_back({"llhttp", timed([&buf, len, settings] {
                                  llhttp_t parser;
                                  llhttp_init(&parser, HTTP_REQUEST, &settings);
                                  ctx.fields = 0;
                                  const llhttp_errno_t e = llhttp_execute(&parser, buf.get(), len);
                                  g_sink = static_cast<std::size_t>(e) + static_cast<std::size_t>(ctx.fields);
                              }),
                              {}});
        }
#endif
        if (count_mode) {
            for (std::size_t k = 0; k < rounds.size(); ++k) {
                if (count_only >= 0 && static_cast<int>(k) != count_only) continue;
                rounds[k].run(1);  // warm up (lazy binding, first-touch) outside the counted regions
                counted(rounds[k].run, 1);
                counted(rounds[k].run, 1 + iters);
                std::printf("%s\n", rounds[k].name.c_str());
            }
            continue;
        }
        for (auto& rd : rounds) rd.run(iters / 10);  // warm up
        for (int k = 0; k < runs; ++k)
            for (auto& rd : rounds) rd.samples.push_back(rd.run(iters));
        for (auto& rd : rounds) {
            std::sort(rd.samples.begin(), rd.samples.end());
            emit(rd.name.c_str(), r, rd.samples[rd.samples.size() / 2]);
        }
    }
    if (!count_mode) std::printf("\n]}\n");
    return 0;
}
