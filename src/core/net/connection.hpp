// One client connection as a small state machine:
//   Proxy     reading the PROXY protocol header (--proxy-protocol only), before anything else
//   Handshake TLS handshake in progress (TLS listeners only)
//   Head      waiting for / reading a request head (keep-alive idle when the buffer is empty)
//   App       a request is with the handler (its response may be streaming)
//   Closing   flushing the last response before shutting down the write side
//   WebSocket the handler accepted an upgrade: frames are parsed, messages go to the handler
//   Lingering write side shut; reading and discarding until the client closes or linger_ms pass
//   Closed    handle closing; the object returns to the server's free list
// Every error reaches the one close path, close().
#pragma once

#include <sys/socket.h>
#include <uv.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "http/parser.hpp"
#include "http/response.hpp"
#include "http/websocket.hpp"
#include "http/ws_deflate.hpp"
#include "net/outqueue.hpp"
#include "net/tls.hpp"
#include "net/timer_list.hpp"

namespace luath::net {

class Server;

class Connection {
public:
    enum class State : std::uint8_t { Proxy, Handshake, Head, App, Closing, Lingering, Closed, WebSocket };

    explicit Connection(Server& s);
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;
    ~Connection();

    // --- identity
    int fd() const { return fd_; }
    const sockaddr_storage& peer() const { return peer_; }
    const sockaddr_storage& local() const { return local_; }
    Server& server() const { return server_; }
    State state() const { return state_; }
    bool closed() const { return state_ == State::Closed || close_pending_; }
    void* user = nullptr;  // the handler's per-connection data

    // --- the request now with the handler
    bool keep_alive() const { return keep_alive_; }
    void set_keep_alive(bool on) { keep_alive_ = keep_alive_ && on; }
    // True when the connection can serve another request after this response: keep-alive asked for,
    // the server not stopping, and the request body fully read (what is buffered is skipped here).
    bool can_keep_alive();
    bool body_done() const { return body_done_; }
    http::Error body_error() const { return body_error_; }
    // Reads up to n body bytes into dst, waiting for the client as needed (sends 100 Continue first
    // when the client expects it). Returns bytes read (< n only at the end of the body), or -1 when the
    // body is malformed (body_error()), the client went away, or it timed out.
    std::int64_t body_read(char* dst, std::size_t n);
    // Decoded body bytes available now. With block, waits once for the client when none are buffered
    // (sending 100 Continue first if expected). Empty at the end of the body, on error (body_failed()),
    // or, without block, when nothing is buffered yet (the handler then waits for on_input).
    std::string_view body_peek(bool block = true);
    // Sends 100 Continue now if the client expects it (without waiting for the socket).
    void continue_async();
    // After the handler consumed buffered body bytes: read again if reading had paused on a full buffer.
    void resume_reading();
    bool peer_closed() const { return peer_closed_; }
    // The TLS session, or null on a plaintext connection.
    const TlsSession* tls() const { return tls_.get(); }
    // The app waits for body bytes that are not here (ASGI): close if none come within the body timeout.
    void arm_body_timeout();
    void cancel_body_timeout();
    void body_consume(std::size_t n);
    bool body_failed() const { return body_failed_; }
    // Non-blocking (ASGI): copies up to n decoded body bytes into dst, the buffered ones first, then
    // with Content-Length straight from the socket (through TLS when on), with chunked framing through
    // the read buffer, until n, the end of the body, or nothing more is there now. Never reads past
    // the body. Returns the bytes copied (0: none yet, or the body is done), or -1 when the body is
    // malformed (body_error()) or the client went away (peer_closed()).
    std::int64_t body_read_now(char* dst, std::size_t n);
    // The handler waits for body bytes and reads them itself with body_read_now from on_input:
    // while set, a readable socket (Content-Length, nothing buffered) goes straight to on_input, not
    // through the read buffer (one copy less). Cleared by the next request.
    void set_body_wanted(bool on) { body_wanted_ = on; }
    // Content-Length: body bytes not yet read. -1 with chunked framing (not known).
    std::int64_t body_remaining() const {
        return framing_ == http::Framing::Chunked ? -1 : static_cast<std::int64_t>(body_left_);
    }

    // --- output
    OutQueue& out() { return out_; }
    bool over_high_water() const;
    // Writes everything queued, waiting for the socket (up to the write timeout).
    // False when the client is gone: the connection is then closing.
    bool flush_blocking();
    // Writes what the socket takes now; the rest goes when it is writable.
    void flush();
    // The handler queued the whole response.
    void finish_response();
    // The handler stops producing until on_drain (output over high water).
    void wait_for_drain() { waiting_drain_ = true; }
    // Queues a response the server wrote itself (an error), with the Date line; the connection closes
    // after it.
    void queue_canned(http::Canned r);
    // Close now, dropping unsent output (the app failed after the headers went out, or the client left).
    void abort() { close(); }
    // The Date header line; safe to call from a pool thread.
    std::string_view date_line();

    // --- a request handed to a pool thread (WSGI --threads). From detach_to_thread() to
    // thread_returned() the thread owns the connection: the loop neither polls the socket nor runs its
    // timers, and the thread reads the body and writes with the blocking paths (poll() timeouts).
    // finish_response() from the thread only records that the response is complete.
    void detach_to_thread();   // loop thread, from Handler::on_request
    void thread_flush();       // pool thread, no GIL: write what the socket takes now
    void thread_returned();    // loop thread: the pool thread is done; finish the response and go on
    bool in_thread() const { return in_thread_; }
    // Loop thread, graceful timeout: make the pool thread's socket I/O fail so it hands back soon.
    void interrupt_thread();

    // --- WebSocket (net/websocket.cpp)
    // The handler queued the 101 response: from now on the connection speaks WebSocket. deflate: the
    // negotiated permessage-deflate state, or null. Frames already buffered are parsed now.
    void ws_start(std::unique_ptr<http::ws::Deflate> deflate);
    // Queues one message (compressed when permessage-deflate is on); owner (may be null) keeps the
    // bytes alive and is released through the handler. False when the WebSocket is no longer open.
    bool ws_send(bool text, const char* p, std::size_t n, void* owner);
    // Sends a close frame (code 0: none) and waits for the peer's, up to ws_close_timeout_ms.
    void ws_close(std::uint16_t code, std::string_view reason);
    // Stop / resume parsing frames and reading (the handler holds too many unread messages).
    void ws_pause();
    void ws_resume();
    bool ws_open() const { return state_ == State::WebSocket && !ws_close_sent_; }

    // --- used by Server
    void start(int fd, const sockaddr_storage& peer, const sockaddr_storage& local);
    void close();
    void on_timeout(TimerList* which);
    // TLS: idle a while on keep-alive: give OpenSSL's record buffers back (server's trim list).
    void on_trim();
    // Nothing of a request is here or on its way, and the connection has served one already.
    bool idle_for_shutdown() const;
    Connection* all_prev = nullptr;
    Connection* all_next = nullptr;
    TimerNode timer;
    TimerNode trim_timer;  // TLS only: in the server's trim list while the connection goes idle

private:
    static void on_poll(uv_poll_t* h, int status, int events);
    static void on_closed(uv_handle_t* h);
    void on_readable();
    void read_during_app();
    void on_writable();
    void process_buffer();
    void dispatch(const http::Request& req);
    void update_poll();
    void begin_close();
    void begin_linger();
    void go_idle();
    bool ensure_buffer();
    bool make_room();
    void compact();
    bool wait_fd(short events, std::uint32_t timeout_ms);
    std::int64_t recv_blocking(char* dst, std::size_t n);
    bool send_continue();
    long io_recv(char* dst, std::size_t n);  // plaintext bytes from the socket (decrypted with TLS)
    int write_out();                         // OutQueue::flush through TLS when on
    bool output_empty() const;
    void on_handshake();
    void begin_session();   // after accept (or the PROXY header): the TLS handshake, or the first head
    void on_proxy_header();
    bool tls_buffered() const;
    void release_buffer();
    void do_close();
    void ws_read();
    void ws_process();
    void ws_end(int code, std::string_view reason);
    void ws_control(std::uint8_t opcode, const char* p, std::size_t n);
    void ws_arm_timer();
    void ws_on_timeout(TimerList* which);

    Server& server_;
    uv_poll_t poll_;
    int fd_ = -1;
    int poll_events_ = 0;
    State state_ = State::Closed;
    bool close_pending_ = false;
    bool in_handler_ = false;
    bool keep_alive_ = true;
    bool backpressured_ = false;
    bool waiting_drain_ = false;
    bool write_blocked_ = false;
    bool peer_closed_ = false;
    bool in_thread_ = false;    // a pool thread owns the connection
    bool thread_done_ = false;  // the pool thread completed the response (finish_response)
    std::uint32_t served_ = 0;  // requests dispatched on this connection
    sockaddr_storage peer_{};
    sockaddr_storage local_{};

    // read buffer: [rstart_, rend_) not yet consumed
    char* rbuf_ = nullptr;
    std::uint32_t rcap_ = 0;
    std::uint32_t rstart_ = 0;
    std::uint32_t rend_ = 0;
    http::HeadState head_state_{};
    bool head_started_ = false;

    // body of the current request
    http::Framing framing_ = http::Framing::None;
    std::uint64_t body_left_ = 0;          // ContentLength: bytes not yet read
    http::ChunkedDecoder chunked_;
    std::uint32_t piece_off_ = 0;          // Chunked: current decoded piece in rbuf_
    std::uint32_t piece_len_ = 0;
    bool body_done_ = true;
    bool body_failed_ = false;
    http::Error body_error_ = http::Error::None;
    bool expect_continue_ = false;
    bool body_wanted_ = false;             // see set_body_wanted

    OutQueue out_;

    // WebSocket
    http::ws::Receiver ws_rx_;
    std::unique_ptr<http::ws::Deflate> ws_deflate_;
    std::string ws_zbuf_;               // a compressed outgoing message
    bool ws_active_ = false;            // ws_start was called on this connection
    bool ws_paused_ = false;
    bool ws_close_sent_ = false;
    bool ws_ended_ = false;             // on_ws_closed was called
    bool ws_awaiting_pong_ = false;
#ifdef LUATH_HAVE_TLS
    std::unique_ptr<TlsSession> tls_;
#else
    std::unique_ptr<TlsSession> tls_;  // always null
#endif
};

}  // namespace luath::net
