/*
 * limit_server.c -- the "speed of light" reference for the luath benchmark.
 *
 * A minimal HTTP/1.1 responder on libuv with no Python and no real parser:
 * it accepts, reads, finds the end of each request head ("\r\n\r\n") and,
 * for every complete request, appends a fixed "Hello, World!" response.
 * All responses produced by one read are sent with ONE uv_write, so
 * pipelined requests are answered in a batch.  Keep-alive always; TCP_NODELAY.
 *
 * It ignores request bodies (GET only) and the request line: it bounds what
 * a single-threaded libuv server can do on one core, nothing more.
 *
 * With BODY_BYTES the body is that many 'x' instead (the 12k and 1m
 * scenarios).  A response over 4 KiB is not copied: the write points at the
 * one prebuilt response, once per request answered (a writev), so a large
 * body costs the kernel's copy into the socket and nothing else.
 *
 * Build:  gcc -O2 -o limit_server limit_server.c -luv
 * Run:    ./limit_server PORT [HOST [BODY_BYTES]]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <signal.h>
#include <uv.h>

#define READ_BUF_SIZE 65536

#define COPY_MAX 4096

static const char HELLO[] = "Hello, World!";
static const char *body = HELLO;
static size_t body_len = 13;

/* The response, with a Date header refreshed once per second (in place: the
 * date has a fixed length, so a write still pending sees a valid response). */
static char *response;
static size_t response_len;

typedef struct {
    uv_tcp_t handle;      /* must be first: we cast uv_handle_t* back */
    int match;            /* how many bytes of "\r\n\r\n" matched so far */
    char buf[READ_BUF_SIZE];
} conn_t;

typedef struct {
    uv_write_t req;       /* must be first */
    uv_buf_t *bufs;
    uv_buf_t buf;         /* small responses: one copy per request, in data */
    char data[];
} write_req_t;

static uv_loop_t *loop;

static void build_response(void) {
    char date[64], head[256];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 200 OK\r\n"
                     "Server: limit\r\n"
                     "Date: %s\r\n"
                     "Content-Type: text/plain\r\n"
                     "Content-Length: %zu\r\n"
                     "\r\n",
                     date, body_len);
    if (!response) {
        response = malloc((size_t)n + body_len);
        if (!response)
            abort();
        memcpy(response + n, body, body_len);
        response_len = (size_t)n + body_len;
    }
    memcpy(response, head, (size_t)n);
}

static void on_date_timer(uv_timer_t *t) {
    (void)t;
    build_response();
}

static void on_close(uv_handle_t *h) { free(h); }

static void on_write(uv_write_t *req, int status) {
    write_req_t *wr = (write_req_t *)req;
    if (status < 0 && !uv_is_closing((uv_handle_t *)req->handle))
        uv_close((uv_handle_t *)req->handle, on_close);
    free(wr);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    (void)suggested;
    conn_t *c = (conn_t *)h;
    buf->base = c->buf;
    buf->len = sizeof c->buf;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
    conn_t *c = (conn_t *)s;
    if (nread < 0) {
        if (!uv_is_closing((uv_handle_t *)s))
            uv_close((uv_handle_t *)s, on_close);
        return;
    }
    if (nread == 0)
        return;

    /* Count complete request heads with a small state machine so a
     * terminator split across reads is still found. */
    size_t complete = 0;
    int m = c->match;
    const char *p = buf->base;
    for (ssize_t i = 0; i < nread; i++) {
        char ch = p[i];
        if (ch == '\r')
            m = (m == 2) ? 3 : 1;
        else if (ch == '\n' && (m == 1 || m == 3)) {
            if (m == 3) {
                complete++;
                m = 0;
            } else {
                m = 2;
            }
        } else
            m = 0;
    }
    c->match = m;
    if (complete == 0)
        return;

    int copy = response_len <= COPY_MAX;
    size_t extra = copy ? complete * response_len : complete * sizeof(uv_buf_t);
    write_req_t *wr = malloc(sizeof *wr + extra);
    if (!wr) {
        uv_close((uv_handle_t *)s, on_close);
        return;
    }
    unsigned nbufs = 1;
    if (copy) {
        char *out = wr->data;
        for (size_t i = 0; i < complete; i++) {
            memcpy(out, response, response_len);
            out += response_len;
        }
        wr->buf = uv_buf_init(wr->data, (unsigned)extra);
        wr->bufs = &wr->buf;
    } else {
        wr->bufs = (uv_buf_t *)wr->data;
        for (size_t i = 0; i < complete; i++)
            wr->bufs[i] = uv_buf_init(response, (unsigned)response_len);
        nbufs = (unsigned)complete;
    }
    if (uv_write(&wr->req, s, wr->bufs, nbufs, on_write) != 0) {
        free(wr);
        if (!uv_is_closing((uv_handle_t *)s))
            uv_close((uv_handle_t *)s, on_close);
    }
}

static void on_connection(uv_stream_t *server, int status) {
    if (status < 0)
        return;
    conn_t *c = malloc(sizeof *c);
    if (!c)
        return;
    c->match = 0;
    uv_tcp_init(loop, &c->handle);
    if (uv_accept(server, (uv_stream_t *)&c->handle) == 0) {
        uv_tcp_nodelay(&c->handle, 1);
        uv_read_start((uv_stream_t *)&c->handle, on_alloc, on_read);
    } else {
        uv_close((uv_handle_t *)&c->handle, on_close);
    }
}

static void on_signal(uv_signal_t *h, int signum) {
    (void)signum;
    uv_stop(h->loop);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s PORT [HOST [BODY_BYTES]]\n", argv[0]);
        return 2;
    }
    int port = atoi(argv[1]);
    const char *host = argc > 2 ? argv[2] : "127.0.0.1";
    if (argc > 3 && atol(argv[3]) > 0) {
        body_len = (size_t)atol(argv[3]);
        char *b = malloc(body_len);
        if (!b)
            return 1;
        memset(b, 'x', body_len);
        body = b;
    }
    signal(SIGPIPE, SIG_IGN);
    loop = uv_default_loop();
    build_response();

    uv_timer_t date_timer;
    uv_timer_init(loop, &date_timer);
    uv_timer_start(&date_timer, on_date_timer, 1000, 1000);
    uv_unref((uv_handle_t *)&date_timer);

    uv_signal_t sigterm, sigint;
    uv_signal_init(loop, &sigterm);
    uv_signal_start(&sigterm, on_signal, SIGTERM);
    uv_signal_init(loop, &sigint);
    uv_signal_start(&sigint, on_signal, SIGINT);

    uv_tcp_t server;
    struct sockaddr_in addr;
    uv_tcp_init(loop, &server);
    uv_ip4_addr(host, port, &addr);
    int r = uv_tcp_bind(&server, (const struct sockaddr *)&addr, 0);
    if (r == 0)
        r = uv_listen((uv_stream_t *)&server, 4096, on_connection);
    if (r != 0) {
        fprintf(stderr, "listen %s:%d: %s\n", host, port, uv_strerror(r));
        return 1;
    }
    fprintf(stderr, "limit_server listening on %s:%d\n", host, port);
    uv_run(loop, UV_RUN_DEFAULT);
    return 0;
}
