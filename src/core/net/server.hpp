// One worker's event loop: listening sockets, connections, the timeout sweep, signals.
// No Python: the application layer plugs in through Handler.
#pragma once

#include <uv.h>

#include <atomic>
#include <cstdint>
#include <vector>

#include "http/parser.hpp"
#include "http/response.hpp"
#include "net/bufpool.hpp"
#include "net/timer_list.hpp"
#include "net/tls.hpp"

#include <memory>
#include <string>
#include <string_view>

namespace luath::net {

class Connection;

struct Config {
    http::Limits limits;
    std::uint32_t keepalive_timeout_ms = 5000;    // idle keep-alive connection (also a new, silent one)
    std::uint32_t head_timeout_ms = 30000;        // from a head's first byte to its end
    std::uint32_t body_timeout_ms = 30000;        // longest gap while the app waits for body bytes
    std::uint32_t write_timeout_ms = 30000;       // longest wait for a client to take more output
    std::uint32_t graceful_timeout_ms = 30000;    // how long in-flight responses may take at shutdown
    std::uint32_t linger_ms = 2000;               // read-and-discard after an error response before close
    std::size_t write_high_water = 512 * 1024;    // stop producing/reading while more is unsent
    std::size_t write_low_water = 64 * 1024;      // resume when unsent output falls below this
    std::uint32_t read_buffer_size = 16384;
    std::uint32_t max_connections = 0;            // 0: no limit
    std::uint64_t max_requests = 0;               // stop gracefully after this many requests; 0: never
    std::uint32_t tls_handshake_timeout_ms = 10000;
    bool proxy_protocol = false;                  // every connection starts with a PROXY protocol header
    bool tls = false;                             // terminate TLS with `tls_config`
    TlsConfig tls_config;
    // WebSocket (ASGI): upgrades accepted at all, largest message, keep-alive pings, permessage-deflate
    bool ws_enabled = true;
    std::uint64_t ws_max_size = 16u << 20;        // bytes after inflation; 0: no limit
    std::uint32_t ws_ping_interval_ms = 20000;    // 0: no pings
    std::uint32_t ws_ping_timeout_ms = 20000;     // no pong within this: close 1011; 0: wait forever
    std::uint32_t ws_close_timeout_ms = 5000;     // after our close frame, wait this long for the peer's
    bool ws_deflate = true;
};

// The application side of the server (WSGI, ASGI). Every callback runs on the loop thread. (A WSGI
// handler with a thread pool hands a request's connection to a pool thread: Connection::detach_to_thread.)
class Handler {
public:
    virtual ~Handler() = default;
    // A request head was parsed. The handler answers through the connection and calls
    // Connection::finish_response() when the response is complete — now or later (streaming).
    virtual void on_request(Connection& c, const http::Request& req) = 0;
    // A streaming response paused for backpressure may produce more: output fell below low water.
    virtual void on_drain(Connection& c) = 0;
    // The connection is going away; drop any per-request state (call the app's close()).
    virtual void on_close(Connection& c) = 0;
    // New bytes arrived (or the client closed) while a request is with the handler; only called when
    // the handler asked to read during the app (reads_during_app()).
    virtual void on_input(Connection&) {}
    // True for handlers that let the app run while the loop goes on (ASGI): the connection keeps
    // reading body bytes and notices a client that leaves.
    virtual bool reads_during_app() const { return false; }
    // WebSocket (after Connection::ws_start): a whole text or binary message arrived (the view is valid
    // only during the call).
    virtual void on_ws_message(Connection&, bool /*text*/, std::string_view) {}
    // The WebSocket ended: the peer's close frame (its code, kNoStatus 1005 when none), a protocol
    // error (the code we closed with), the peer vanishing (1006) or a ping timeout (1011). Called once;
    // the connection is closing and sends nothing more.
    virtual void on_ws_closed(Connection&, int /*code*/, std::string_view /*reason*/) {}
    // An owner handed to OutQueue::append_ref/append_file is no longer needed.
    virtual void release(void* owner) = 0;
    // The loop is about to wait for events (drop the GIL here).
    virtual void before_wait() {}
};

class Server {
public:
    Server(uv_loop_t* loop, const Config& cfg, Handler& handler);
    ~Server();
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    // Serve on an already listening, non-blocking socket (the fd stays owned by the caller).
    int add_listener(int fd);
    // Runs the loop until stop() (or SIGINT/SIGTERM when handle_signals is set) and every
    // connection is closed. Returns 0, or a negative libuv error.
    int run(bool handle_signals);
    // For an outer event loop (asyncio) driving this one: start() once, then run_nowait() whenever
    // backend_fd() is readable or backend_timeout() ms have passed. done() once stopped and drained.
    void start(bool handle_signals);
    int run_nowait() { return uv_run(loop_, UV_RUN_NOWAIT); }
    int backend_fd() const { return uv_backend_fd(loop_); }
    int backend_timeout() const { return uv_backend_timeout(loop_); }
    bool done() const { return finished_; }
    // Set when a handle changed outside the loop's own callbacks (libuv applies watcher changes and
    // timers only inside uv_run): the outer loop should call run_nowait() soon.
    bool dirty() const { return dirty_; }
    void mark_dirty() { dirty_ = true; }
    int run_pending() {
        int r = 0;
        for (int i = 0; i < 4; ++i) {  // a changed watcher reaches epoll on the next pass
            dirty_ = false;
            r = uv_run(loop_, UV_RUN_NOWAIT);
            if (!dirty_ || finished_) break;
        }
        return r;
    }
    // Graceful stop: stop accepting, close idle connections, let in-flight responses finish (up to
    // Config::graceful_timeout_ms), then return from run().
    void stop();

    uv_loop_t* loop() const { return loop_; }
    const Config& config() const { return cfg_; }
    Handler& handler() const { return handler_; }
    BufPool& buffers() { return bufs_; }
    std::string_view date_line();
    std::uint64_t now_ms() const { return uv_now(loop_); }
    // Read from pool threads too (WSGI --threads): atomic, relaxed (a plain load on x86).
    bool stopping() const { return stopping_.load(std::memory_order_relaxed); }
    std::size_t connection_count() const { return nconns_; }

    // Connection bookkeeping (used by Connection).
    TimerList& keepalive_list() { return ka_list_; }
    TimerList& head_list() { return head_list_; }
    TimerList& linger_list() { return linger_list_; }
    TimerList& write_list() { return write_list_; }
    TimerList& body_list() { return body_list_; }
    TimerList& handshake_list() { return hs_list_; }
    TimerList& ws_ping_list() { return ws_ping_list_; }
    TimerList& ws_pong_list() { return ws_pong_list_; }
    TimerList& ws_close_list() { return ws_close_list_; }
    TimerList& trim_list() { return trim_list_; }
    TlsContext* tls_context() const { return tls_.get(); }
    // Why the TLS context could not be made (bad certificate, key, ...); empty when fine.
    const std::string& tls_error() const { return tls_error_; }
    void arm_sweep();
    // A request head was parsed (counts toward max_requests).
    void count_request() {
        if (++requests_ == cfg_.max_requests) stop();
    }
    void connection_closed(Connection* c);

private:
    struct Listener {
        uv_poll_t poll;
        int fd;
        Server* server;
    };
    static void on_accept(uv_poll_t* h, int status, int events);
    static void on_sweep(uv_timer_t* t);
    static void on_prepare(uv_prepare_t* p);
    static void on_signal(uv_signal_t* s, int signum);
    static void on_grace(uv_timer_t* t);
    void accept_from(Listener& l);
    void sweep();
    void close_idle();
    void maybe_finish();

    uv_loop_t* loop_;
    Config cfg_;
    Handler& handler_;
    BufPool bufs_;
    std::vector<Listener*> listeners_;
    std::vector<Connection*> free_conns_;
    std::size_t nconns_ = 0;
    TimerList ka_list_, head_list_, linger_list_, write_list_, body_list_, hs_list_;
    TimerList ws_ping_list_, ws_pong_list_, ws_close_list_;
    TimerList trim_list_;  // TLS connections that went idle: their record buffers are freed after 1 s
    std::unique_ptr<TlsContext> tls_;
    std::string tls_error_;
    uv_timer_t sweep_timer_;
    uv_timer_t grace_timer_;
    uv_prepare_t prepare_;
    uv_signal_t sig_int_, sig_term_;
    bool signals_ = false;
    bool sweep_armed_ = false;
    std::atomic<bool> stopping_{false};
    bool finished_ = false;
    bool dirty_ = false;
    std::uint64_t requests_ = 0;
    http::DateCache date_;
    std::uint64_t date_ms_ = 0;
    // A spare descriptor: when the process runs out (EMFILE/ENFILE) it is freed to accept the waiting
    // connection, answer it 503 and close it, so the level-triggered listener does not spin. Opened by
    // start(), so a worker's descriptor count is the same before and after its first connection.
    int spare_fd_ = -1;
    std::time_t date_sec_ = 0;
    Connection* all_head_ = nullptr;  // every live connection (for shutdown)
    http::Request req_;               // the head being parsed (one at a time per loop)
    friend class Connection;
};

}  // namespace luath::net
