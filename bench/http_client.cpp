// HTTP/1.1 keep-alive load generator for the tls scenario (bench/measure.py): N connections, each with
// one request in flight (send, read the whole response, send again), for a fixed time, over TLS or plain
// TCP.  epoll edge-triggered, one thread, every socket registered once, one send() and one recv() per
// request.
//
// Why not wrk for TLS: wrk spends about twice its plaintext CPU per TLS request (OpenSSL's record layer:
// ~4,000 instructions a record more than a direct AEAD call, two read() calls per record since it leaves
// read-ahead off, two epoll_ctl() per request).  With the load generator on one core and the server on the
// other, the tls scenario measured wrk: wrk at 99% of its core, the server idle 15-25% of the time.  So
// this client does the TLS 1.3 handshake with OpenSSL, then protects and opens the application-data
// records itself (keys from the handshake's traffic secrets, RFC 8446 7.1-7.3; AES-GCM or
// ChaCha20-Poly1305 through EVP; the framing and key schedule from luath's src/core/net/tls_record.hpp
// and tls13_keys.hpp, the cipher calls its own).  Session tickets the server sends after the handshake
// are opened and skipped.  --openssl-records keeps OpenSSL's record layer (SSL_read/SSL_write) instead,
// for comparison; so does a TLS 1.2 connection.
//
//   http_client [-c CONNECTIONS] [-d SECONDS] [--latency] [--spin] [--openssl-records] URL
//
// URL: http:// or https://, an IPv4 address.  --spin: epoll_wait never sleeps (the client's core is
// busy by construction; the server then never pays for waking the client).  Prints wrk's summary lines
// (requests, Requests/sec, latency percentiles, errors), which measure.parse_wrk() reads.  The server's
// certificate is not verified (like wrk).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <initializer_list>

#include "net/tls13_keys.hpp"
#include "net/tls_record.hpp"

namespace tls13 = luath::net::tls13;

namespace {

enum State { kConnecting, kHandshake, kSending, kReading };
constexpr std::size_t kBufCap = 64 * 1024;
constexpr std::size_t kLatBuckets = 1000000;  // 1 us each, up to 1 s; slower requests go into the last

// One direction of the client's own record layer.
struct Direction {
    EVP_CIPHER_CTX* ctx = nullptr;
    unsigned char iv[tls13::kNonceLen];
    std::uint64_t seq = 0;
    unsigned char secret[48];
    std::size_t secret_len = 0;
};

struct Conn {
    int fd;
    State state;
    SSL* ssl;
    bool own;                 // records protected here, not by SSL_read/SSL_write
    Direction out, in;
    std::size_t len;          // plaintext of the response so far, in buf
    std::size_t sent;         // bytes of the request (or of its record, own) written so far
    std::size_t head_end;     // 0 until the blank line is in
    long long body;           // Content-Length, or -1: chunked (up to the terminating 0-size chunk)
    std::uint64_t t0;         // when the request was first written, ns
    std::size_t wlen;         // own: length of the record in wbuf
    std::size_t rlen;         // own: ciphertext bytes in rbuf
    char buf[kBufCap];
    unsigned char wbuf[2048];
    unsigned char rbuf[tls13::kMaxRecord + kBufCap];
};

sockaddr_in addr;
SSL_CTX* tls;
bool openssl_records;
char request[1024];
std::size_t request_len;
int ep;
unsigned long long done, non2xx, err_connect, err_read, err_write, own_handshakes, openssl_handshakes;
unsigned* lat;

std::uint64_t now_ns() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000u + static_cast<std::uint64_t>(ts.tv_nsec);
}

[[noreturn]] void die(const char* what) {
    std::fprintf(stderr, "http_client: %s\n", what);
    std::exit(2);
}

// ------------------------------------------------------------------ the own record layer

using tls13::kSuites;
using tls13::Suite;

bool direction_init(Direction& d, int i, bool encrypt) {  // i: index into kSuites
    static EVP_CIPHER* ciphers[tls13::kSuiteCount] = {};
    const Suite& s = kSuites[i];
    if (!ciphers[i]) ciphers[i] = EVP_CIPHER_fetch(nullptr, s.cipher, nullptr);
    unsigned char key[32];
    if (!ciphers[i] || d.secret_len != s.hash_len || !tls13::expand_label(s, d.secret, "key", key, s.key_len) ||
        !tls13::expand_label(s, d.secret, "iv", d.iv, tls13::kNonceLen))
        return false;
    d.ctx = EVP_CIPHER_CTX_new();
    d.seq = 0;
    return d.ctx && EVP_CipherInit_ex2(d.ctx, ciphers[i], key, nullptr, encrypt, nullptr) == 1;
}

// The keylog callback hands over the traffic secrets of the handshake (the only public way to get them).
void keylog(const SSL* ssl, const char* line) {
    Conn* c = static_cast<Conn*>(SSL_get_app_data(ssl));
    unsigned char secret[48];
    tls13::KeylogSecret k = tls13::parse_keylog(line, secret);
    if (k.side == tls13::KeylogSecret::kNone) return;
    Direction& d = k.side == tls13::KeylogSecret::kClient ? c->out : c->in;
    std::memcpy(d.secret, secret, sizeof secret);
    d.secret_len = k.len;
}

// After the handshake: take over the records when the connection is TLS 1.3 with a known suite.
void own_records_start(Conn* c) {
    if (openssl_records || SSL_version(c->ssl) != TLS1_3_VERSION) return;
    int i = tls13::suite_index(SSL_CIPHER_get_protocol_id(SSL_get_current_cipher(c->ssl)));
    if (i < 0) return;
    if (!direction_init(c->out, i, true) || !direction_init(c->in, i, false))
        die("own record layer");
    c->own = true;
    c->rlen = 0;
}

void own_seal(Conn* c) {  // the request, as one record, into wbuf
    Direction& d = c->out;
    unsigned char* h = c->wbuf;
    std::size_t n = request_len + 1;  // and the content type, which main() put after the request
    tls13::write_header(h, n + tls13::kTagLen);
    unsigned char nonce[tls13::kNonceLen];
    tls13::make_nonce(d.iv, d.seq++, nonce);
    int l = 0;
    if (EVP_EncryptInit_ex(d.ctx, nullptr, nullptr, nullptr, nonce) != 1 ||
        EVP_EncryptUpdate(d.ctx, nullptr, &l, h, tls13::kHeaderLen) != 1 ||
        EVP_EncryptUpdate(d.ctx, h + tls13::kHeaderLen, &l, reinterpret_cast<const unsigned char*>(request),
                          static_cast<int>(n)) != 1 ||
        EVP_EncryptFinal_ex(d.ctx, h + tls13::kHeaderLen + n, &l) != 1 ||
        EVP_CIPHER_CTX_ctrl(d.ctx, EVP_CTRL_AEAD_GET_TAG, tls13::kTagLen, h + tls13::kHeaderLen + n) != 1)
        die("seal");
    c->wlen = tls13::kHeaderLen + n + tls13::kTagLen;
}

// Opens the complete records in rbuf straight into buf, keeping application data there; false on a bad
// record, one that does not fit in buf, or an alert (close_notify included).
bool own_open(Conn* c) {
    Direction& d = c->in;
    std::size_t off = 0;
    for (;;) {
        tls13::HeaderView v = tls13::parse_header(c->rbuf + off, c->rlen - off);
        if (v.status == tls13::HeaderView::Bad || (v.status == tls13::HeaderView::Complete &&
                                                   v.type != tls13::kApplicationData))
            return false;
        if (v.status == tls13::HeaderView::Partial) break;
        unsigned char* h = c->rbuf + off;
        unsigned char* body = h + tls13::kHeaderLen;
        std::size_t n = v.cipher_len - tls13::kTagLen;
        if (n > kBufCap - c->len) return false;
        unsigned char* out = reinterpret_cast<unsigned char*>(c->buf + c->len);
        unsigned char nonce[tls13::kNonceLen];
        tls13::make_nonce(d.iv, d.seq++, nonce);
        int l = 0;
        if (EVP_DecryptInit_ex(d.ctx, nullptr, nullptr, nullptr, nonce) != 1 ||
            EVP_DecryptUpdate(d.ctx, nullptr, &l, h, tls13::kHeaderLen) != 1 ||
            EVP_DecryptUpdate(d.ctx, out, &l, body, static_cast<int>(n)) != 1 ||
            EVP_CIPHER_CTX_ctrl(d.ctx, EVP_CTRL_AEAD_SET_TAG, tls13::kTagLen, body + n) != 1 ||
            EVP_DecryptFinal_ex(d.ctx, body + n, &l) != 1)
            return false;
        std::size_t content = 0;
        std::uint8_t type = tls13::inner_type(out, n, content);
        if (type == tls13::kApplicationData) {
            c->len += content;
        } else if (type != tls13::kHandshake) {  // tickets are skipped; an alert ends the connection
            return false;
        }
        off += tls13::kHeaderLen + v.cipher_len;
    }
    std::memmove(c->rbuf, c->rbuf + off, c->rlen - off);
    c->rlen -= off;
    return true;
}

// ------------------------------------------------------------------ connections

void conn_open(Conn* c) {
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) die("socket");
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->state = kConnecting;
    c->len = c->sent = c->head_end = c->wlen = c->rlen = 0;
    c->ssl = nullptr;
    c->own = false;
    if (connect(c->fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0 && errno != EINPROGRESS)
        die("connect");
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT | EPOLLET;
    ev.data.ptr = c;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) < 0) die("epoll_ctl");
}

void conn_reopen(Conn* c) {
    if (c->ssl) SSL_free(c->ssl);
    for (Direction* d : {&c->out, &c->in}) {
        EVP_CIPHER_CTX_free(d->ctx);
        *d = Direction{};
    }
    close(c->fd);  // also leaves the epoll set
    conn_open(c);
}

// Appends response bytes to buf: > 0 appended, 0: would block, -1: closed or failed.
long io_read(Conn* c) {
    if (c->own) {
        for (;;) {
            ssize_t r = recv(c->fd, c->rbuf + c->rlen, sizeof c->rbuf - c->rlen, 0);
            if (r <= 0) return (r < 0 && errno == EAGAIN) ? 0 : -1;
            c->rlen += static_cast<std::size_t>(r);
            std::size_t before = c->len;
            if (!own_open(c)) return -1;
            if (c->len > before) return static_cast<long>(c->len - before);
        }
    }
    char* p = c->buf + c->len;
    std::size_t n = kBufCap - c->len;
    if (!c->ssl) {
        ssize_t r = recv(c->fd, p, n, 0);
        if (r <= 0) return (r < 0 && errno == EAGAIN) ? 0 : -1;
        c->len += static_cast<std::size_t>(r);
        return r;
    }
    int r = SSL_read(c->ssl, p, static_cast<int>(n));
    if (r > 0) {
        c->len += static_cast<std::size_t>(r);
        return r;
    }
    int e = SSL_get_error(c->ssl, r);
    return (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) ? 0 : -1;
}

// Writes more of the request: true when all of it is out, false when the socket is full; -1 in err.
bool io_write(Conn* c, bool& failed) {
    failed = false;
    if (c->own) {
        if (c->sent == 0) own_seal(c);
        ssize_t r = send(c->fd, c->wbuf + c->sent, c->wlen - c->sent, MSG_NOSIGNAL);
        if (r < 0) {
            failed = errno != EAGAIN;
            return false;
        }
        c->sent += static_cast<std::size_t>(r);
        return c->sent == c->wlen;
    }
    const char* p = request + c->sent;
    std::size_t n = request_len - c->sent;
    long r;
    if (!c->ssl) {
        r = send(c->fd, p, n, MSG_NOSIGNAL);
        if (r < 0) {
            failed = errno != EAGAIN;
            return false;
        }
    } else {
        r = SSL_write(c->ssl, p, static_cast<int>(n));
        if (r <= 0) {
            int e = SSL_get_error(c->ssl, static_cast<int>(r));
            failed = !(e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE);
            return false;
        }
    }
    c->sent += static_cast<std::size_t>(r);
    return c->sent == request_len;
}

// The response in buf is complete: 1; not yet: 0; not a response this client reads: -1.
int response_complete(Conn* c) {
    if (!c->head_end) {
        char* e = static_cast<char*>(memmem(c->buf, c->len, "\r\n\r\n", 4));
        if (!e) return c->len == kBufCap ? -1 : 0;
        c->head_end = static_cast<std::size_t>(e - c->buf) + 4;
        if (c->len < 12 || std::memcmp(c->buf, "HTTP/1.", 7) != 0) return -1;
        int status = std::atoi(c->buf + 9);
        if (status < 200 || status > 399) non2xx++;
        c->body = 0;
        for (char* l = static_cast<char*>(std::memchr(c->buf, '\n', c->head_end)); l && l + 1 < e;
             l = static_cast<char*>(std::memchr(l + 1, '\n', static_cast<std::size_t>(e - l)))) {
            if (!strncasecmp(l + 1, "content-length:", 15)) c->body = std::atoll(l + 16);
            else if (!strncasecmp(l + 1, "transfer-encoding:", 18)) c->body = -1;
        }
    }
    if (c->body >= 0) {
        std::size_t want = c->head_end + static_cast<std::size_t>(c->body);
        if (want > kBufCap) return -1;
        return c->len >= want;
    }
    return c->len >= c->head_end + 5 && !std::memcmp(c->buf + c->len - 5, "0\r\n\r\n", 5);
}

// Runs the connection as far as it goes without blocking.
void conn_step(Conn* c) {
    for (;;) {
        switch (c->state) {
            case kConnecting: {
                int err = 0;
                socklen_t l = sizeof err;
                getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
                if (err) {
                    err_connect++;
                    conn_reopen(c);
                    return;
                }
                if (tls) {
                    c->ssl = SSL_new(tls);
                    SSL_set_app_data(c->ssl, c);
                    SSL_set_fd(c->ssl, c->fd);
                    // The own record layer starts right after the handshake: OpenSSL must not read past
                    // the server's Finished.
                    SSL_set_read_ahead(c->ssl, openssl_records);
                    SSL_set_connect_state(c->ssl);
                    c->state = kHandshake;
                } else {
                    c->state = kSending;
                }
                break;
            }
            case kHandshake: {
                int r = SSL_do_handshake(c->ssl);
                if (r == 1) {
                    own_records_start(c);
                    ++(c->own ? own_handshakes : openssl_handshakes);
                    c->state = kSending;
                    break;
                }
                int e = SSL_get_error(c->ssl, r);
                if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return;
                err_connect++;
                conn_reopen(c);
                return;
            }
            case kSending: {
                if (c->sent == 0) c->t0 = now_ns();
                bool failed;
                if (!io_write(c, failed)) {
                    if (failed) {
                        err_write++;
                        conn_reopen(c);
                    }
                    return;  // EPOLLOUT brings the rest
                }
                c->state = kReading;
                c->len = c->head_end = 0;
                break;
            }
            case kReading: {
                long r = io_read(c);
                if (r == 0) return;  // the next edge brings the rest
                int complete = r < 0 ? -1 : response_complete(c);
                if (complete < 0) {
                    err_read++;
                    conn_reopen(c);
                    return;
                }
                if (!complete) break;
                done++;
                std::uint64_t us = (now_ns() - c->t0) / 1000;
                lat[us < kLatBuckets ? us : kLatBuckets - 1]++;
                // One request in flight: nothing more is coming, so the next request goes out now
                // without reading to EAGAIN first (that read would be a wasted system call a request).
                c->state = kSending;
                c->sent = 0;
                break;
            }
        }
    }
}

void print_latency(const char* label, double us) {
    if (us < 1000) std::printf("    %s  %.2fus\n", label, us);
    else std::printf("    %s  %.2fms\n", label, us / 1000);
}

}  // namespace

int main(int argc, char** argv) {
    int conns = 50;
    bool latency = false, spin = false;
    double seconds = 3;
    const char* url = nullptr;
    for (int i = 1; i < argc; i++) {
        if (!std::strcmp(argv[i], "-c") && i + 1 < argc) conns = std::atoi(argv[++i]);
        else if (!std::strcmp(argv[i], "-d") && i + 1 < argc) seconds = std::atof(argv[++i]);
        else if (!std::strcmp(argv[i], "--latency")) latency = true;
        else if (!std::strcmp(argv[i], "--spin")) spin = true;
        else if (!std::strcmp(argv[i], "--openssl-records")) openssl_records = true;
        else url = argv[i];
    }
    if (!url || conns < 1)
        die("usage: http_client [-c CONNECTIONS] [-d SECONDS] [--latency] [--spin] [--openssl-records] URL");
    bool https = !std::strncmp(url, "https://", 8);
    if (!https && std::strncmp(url, "http://", 7)) die("the URL must be http:// or https://");
    const char* host = url + (https ? 8 : 7);
    const char* slash = std::strchr(host, '/');
    const char* path = slash ? slash : "/";
    char hostport[256], ip[256];
    std::size_t hl = slash ? static_cast<std::size_t>(slash - host) : std::strlen(host);
    if (hl >= sizeof hostport) die("host too long");
    std::memcpy(hostport, host, hl);
    hostport[hl] = 0;
    char* colon = std::strrchr(hostport, ':');
    int port = colon ? std::atoi(colon + 1) : (https ? 443 : 80);
    std::snprintf(ip, sizeof ip, "%.*s", colon ? static_cast<int>(colon - hostport) : static_cast<int>(hl), hostport);
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    if (inet_pton(AF_INET, ip, &addr.sin_addr) != 1) die("the host must be an IPv4 address");
    request_len = static_cast<std::size_t>(
        std::snprintf(request, sizeof request, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", path, hostport));
    if (request_len >= sizeof request - 1) die("path too long");
    request[request_len] = static_cast<char>(tls13::kApplicationData);  // own_seal's inner content type

    if (https) {
        tls = SSL_CTX_new(TLS_client_method());
        if (!tls) die("SSL_CTX_new");
        SSL_CTX_set_verify(tls, SSL_VERIFY_NONE, nullptr);
        SSL_CTX_set_session_cache_mode(tls, SSL_SESS_CACHE_OFF);
        SSL_CTX_set_keylog_callback(tls, keylog);
    }
    lat = static_cast<unsigned*>(std::calloc(kLatBuckets, sizeof *lat));
    Conn* cs = static_cast<Conn*>(std::calloc(static_cast<std::size_t>(conns), sizeof(Conn)));
    if (!lat || !cs) die("out of memory");
    ep = epoll_create1(EPOLL_CLOEXEC);
    for (int i = 0; i < conns; i++) conn_open(&cs[i]);

    epoll_event evs[512];
    std::uint64_t start = now_ns(), end = start + static_cast<std::uint64_t>(seconds * 1e9), t = start;
    while (t < end) {
        int n = epoll_wait(ep, evs, 512, spin ? 0 : 100);
        for (int i = 0; i < n; i++) conn_step(static_cast<Conn*>(evs[i].data.ptr));
        t = now_ns();
    }
    double elapsed = static_cast<double>(t - start) / 1e9;

    if (latency) {
        std::printf("  Latency Distribution\n");
        const int pct[] = {50, 75, 90, 99};
        unsigned long long seen = 0;
        std::size_t b = 0;
        for (int p : pct) {
            unsigned long long want = (done * static_cast<unsigned long long>(p) + 99) / 100;
            while (b < kLatBuckets && seen + lat[b] < want) seen += lat[b++];
            char label[8];
            std::snprintf(label, sizeof label, "%d%%", p);
            print_latency(label, static_cast<double>(b) + 0.5);
        }
    }
    // "N requests in Ts," is wrk's wording, which measure.parse_wrk() reads
    if (https)
        std::printf("  %llu requests in %.2fs, TLS handshakes: %llu own records, %llu OpenSSL's\n", done, elapsed,
                    own_handshakes, openssl_handshakes);
    else
        std::printf("  %llu requests in %.2fs, plain TCP\n", done, elapsed);
    if (err_connect + err_read + err_write)
        std::printf("  Socket errors: connect %llu, read %llu, write %llu, timeout 0\n", err_connect, err_read,
                    err_write);
    if (non2xx) std::printf("  Non-2xx or 3xx responses: %llu\n", non2xx);
    std::printf("Requests/sec: %10.2f\n", static_cast<double>(done) / elapsed);
    return 0;
}
