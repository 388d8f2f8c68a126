/* WebSocket echo load generator for bench/ws.py: N connections, each with one message in flight
 * (send, wait for the echo, send again), for a fixed time; epoll, one thread, no library, so that the
 * client is not the bottleneck.
 *   ws_client HOST PORT PATH CONNECTIONS SECONDS SIZE [WARMUP_SECONDS]
 * Prints one JSON line: {"messages": n, "seconds": s, "rate": n/s, "errors": e}. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    int fd;
    unsigned char *buf;
    size_t len, cap;
} Conn;

static unsigned char *frame;
static size_t frame_len;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int send_all(int fd, const void *p, size_t n) {
    const char *c = p;
    while (n > 0) {
        ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) { usleep(100); continue; }
            return -1;
        }
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

static size_t build_frame(unsigned char *out, int opcode, const unsigned char *payload, size_t n) {
    static const unsigned char key[4] = {0x11, 0x22, 0x33, 0x44};
    size_t h = 0;
    out[h++] = (unsigned char)(0x80 | opcode);
    if (n < 126) {
        out[h++] = (unsigned char)(0x80 | n);
    } else if (n < 65536) {
        out[h++] = 0x80 | 126;
        out[h++] = (unsigned char)(n >> 8);
        out[h++] = (unsigned char)n;
    } else {
        out[h++] = 0x80 | 127;
        for (int i = 7; i >= 0; --i) out[h++] = (unsigned char)((uint64_t)n >> (8 * i));
    }
    memcpy(out + h, key, 4);
    h += 4;
    for (size_t i = 0; i < n; ++i) out[h + i] = payload[i] ^ key[i & 3];
    return h + n;
}

static int handshake(int fd, const char *host, const char *path) {
    char req[1024];
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
                     path, host);
    if (send_all(fd, req, (size_t)n) < 0) return -1;
    char resp[4096];
    size_t got = 0;
    while (got < sizeof resp - 1) {
        ssize_t r = recv(fd, resp + got, 1, 0); /* byte by byte: stop exactly at the head's end */
        if (r <= 0) return -1;
        got += (size_t)r;
        resp[got] = 0;
        if (got >= 4 && memcmp(resp + got - 4, "\r\n\r\n", 4) == 0) break;
    }
    return strncmp(resp, "HTTP/1.1 101", 12) == 0 ? 0 : -1;
}

int main(int argc, char **argv) {
    if (argc < 7) {
        fprintf(stderr, "usage: %s HOST PORT PATH CONNECTIONS SECONDS SIZE [WARMUP]\n", argv[0]);
        return 2;
    }
    const char *host = argv[1];
    int port = atoi(argv[2]);
    const char *path = argv[3];
    int nconn = atoi(argv[4]);
    double seconds = atof(argv[5]);
    size_t size = (size_t)atol(argv[6]);
    double warmup = argc > 7 ? atof(argv[7]) : 1.0;

    unsigned char *payload = malloc(size ? size : 1);
    for (size_t i = 0; i < size; ++i) payload[i] = (unsigned char)('a' + i % 26);
    frame = malloc(size + 14);
    frame_len = build_frame(frame, 1, payload, size);

    int ep = epoll_create1(0);
    Conn *conns = calloc((size_t)nconn, sizeof(Conn));
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    inet_pton(AF_INET, host, &sa.sin_addr);
    for (int i = 0; i < nconn; ++i) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || handshake(fd, host, path) < 0) {
            fprintf(stderr, "connection %d: handshake failed\n", i);
            return 1;
        }
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
        conns[i].fd = fd;
        conns[i].cap = size + 64 > 65536 ? size + 64 : 65536;
        conns[i].buf = malloc(conns[i].cap);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &conns[i]};
        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    }
    for (int i = 0; i < nconn; ++i) send_all(conns[i].fd, frame, frame_len);

    double t0 = now(), start = t0 + warmup, end = start + seconds;
    long counted = 0, errors = 0;
    int measuring = 0;
    struct epoll_event evs[256];
    for (;;) {
        double t = now();
        if (t >= end) break;
        if (!measuring && t >= start) measuring = 1;
        int n = epoll_wait(ep, evs, 256, 100);
        for (int k = 0; k < n; ++k) {
            Conn *c = evs[k].data.ptr;
            for (;;) {
                if (c->len == c->cap) {
                    c->cap *= 2;
                    c->buf = realloc(c->buf, c->cap);
                }
                ssize_t r = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
                if (r < 0 && (errno == EAGAIN || errno == EINTR)) break;
                if (r <= 0) {
                    ++errors;
                    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                    break;
                }
                c->len += (size_t)r;
                /* whole frames in the buffer */
                size_t off = 0;
                for (;;) {
                    if (c->len - off < 2) break;
                    unsigned char *b = c->buf + off;
                    uint64_t plen = b[1] & 0x7f;
                    size_t h = 2;
                    if (plen == 126) {
                        if (c->len - off < 4) break;
                        plen = ((uint64_t)b[2] << 8) | b[3];
                        h = 4;
                    } else if (plen == 127) {
                        if (c->len - off < 10) break;
                        plen = 0;
                        for (int i = 0; i < 8; ++i) plen = (plen << 8) | b[2 + i];
                        h = 10;
                    }
                    if (c->len - off < h + plen) break;
                    int opcode = b[0] & 0x0f;
                    if (opcode == 9) {
                        unsigned char pong[160];
                        size_t pl = build_frame(pong, 10, b + h, (size_t)plen);
                        send_all(c->fd, pong, pl);
                    } else if (opcode == 1 || opcode == 2) {
                        if (plen != size) ++errors;
                        if (measuring) ++counted;
                        send_all(c->fd, frame, frame_len);
                    } else if (opcode == 8) {
                        ++errors;
                    }
                    off += h + plen;
                }
                if (off) {
                    memmove(c->buf, c->buf + off, c->len - off);
                    c->len -= off;
                }
            }
        }
    }
    double took = now() - start;
    printf("{\"messages\": %ld, \"seconds\": %.3f, \"rate\": %.1f, \"errors\": %ld}\n", counted, took,
           counted / took, errors);
    return 0;
}
