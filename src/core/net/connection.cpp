#include "net/connection.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>

#include "http/proxy_protocol.hpp"
#include "http/response.hpp"
#include "net/server.hpp"

namespace luath::net {

namespace {
constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
constexpr std::uint64_t kTlsTrimMs = 1000;
}

Connection::Connection(Server& s) : server_(s) {
    out_.set_release([](void* ctx, void* owner) { static_cast<Server*>(ctx)->handler().release(owner); },
                     &server_);
    timer.owner = this;
    trim_timer.owner = this;
}

Connection::~Connection() { release_buffer(); }

void Connection::start(int fd, const sockaddr_storage& peer, const sockaddr_storage& local) {
    fd_ = fd;
    peer_ = peer;
    local_ = local;
    state_ = State::Head;
    close_pending_ = in_handler_ = backpressured_ = waiting_drain_ = write_blocked_ = peer_closed_ = false;
    in_thread_ = thread_done_ = false;
    served_ = 0;
    keep_alive_ = true;
    poll_events_ = 0;
    rstart_ = rend_ = 0;
    head_state_ = {};
    head_started_ = false;
    body_done_ = true;
    body_failed_ = false;
    ws_active_ = ws_paused_ = ws_close_sent_ = ws_ended_ = ws_awaiting_pong_ = false;
    user = nullptr;
    uv_poll_init(server_.loop(), &poll_, fd);
    poll_.data = this;
    if (server_.config().proxy_protocol) {  // the header must be complete within the head timeout
        state_ = State::Proxy;
        server_.head_list().push(&timer, server_.now_ms() + server_.config().head_timeout_ms);
        server_.arm_sweep();
        update_poll();
        return;
    }
    begin_session();
}

void Connection::begin_session() {
#ifdef LUATH_HAVE_TLS
    if (server_.tls_context()) {
        tls_ = std::make_unique<TlsSession>(*server_.tls_context(), fd_);
        state_ = State::Handshake;
        server_.handshake_list().push(&timer, server_.now_ms() + server_.config().tls_handshake_timeout_ms);
        server_.arm_sweep();
        update_poll();
        return;
    }
#endif
    go_idle();
    update_poll();
}

long Connection::io_recv(char* dst, std::size_t n) {
#ifdef LUATH_HAVE_TLS
    if (tls_) return tls_->read(dst, n);
#endif
    ssize_t r;
    do {
        r = ::recv(fd_, dst, n, 0);
    } while (r < 0 && errno == EINTR);
    return static_cast<long>(r);
}

int Connection::write_out() {
#ifdef LUATH_HAVE_TLS
    if (tls_) return out_.flush(*tls_);
#endif
    return out_.flush(fd_);
}

bool Connection::output_empty() const {
#ifdef LUATH_HAVE_TLS
    if (tls_ && tls_->has_pending_output()) return false;
#endif
    return out_.empty();
}

bool Connection::tls_buffered() const {
#ifdef LUATH_HAVE_TLS
    return tls_ && tls_->has_buffered_input();
#else
    return false;
#endif
}

void Connection::on_handshake() {
#ifdef LUATH_HAVE_TLS
    int r = tls_->handshake();
    if (r < 0) {  // not TLS, a bad ClientHello, a refused certificate: close quietly
        close();
        return;
    }
    write_blocked_ = tls_->has_pending_output();
    if (r == 0) {
        update_poll();
        return;
    }
    if (timer.list) timer.list->remove(&timer);
    state_ = State::Head;
    if (tls_buffered()) {  // the first request came with the handshake's last flight
        on_readable();
        return;
    }
    go_idle();
    update_poll();
#endif
}

// The PROXY protocol header, read straight from the socket (before TLS). Bytes are peeked, and only
// those that belong to the header are taken, so whatever follows it (HTTP, or the TLS ClientHello)
// stays in the socket for the next state. The parser sees every header byte received so far (kept in
// the read buffer) and is a pure function of them, so the header may arrive split at any byte.
// A malformed, unsupported or missing header closes the connection without a response.
void Connection::on_proxy_header() {
    if (!ensure_buffer()) {
        close();
        return;
    }
    const std::uint32_t cap = rcap_ < http::kProxyHeaderMax ? rcap_ : std::uint32_t(http::kProxyHeaderMax);
    ssize_t n;
    do {
        n = ::recv(fd_, rbuf_ + rend_, cap - rend_, MSG_PEEK);
    } while (n < 0 && errno == EINTR);
    if (n <= 0) {
        if (n == 0 || errno != EAGAIN) close();
        return;
    }
    http::ProxyHeader h;
    const http::ProxyResult r = http::parse_proxy_header(rbuf_, rend_ + static_cast<std::size_t>(n), h);
    if (r.status == http::ProxyStatus::Error) {
        // Take what was peeked, so that the close is a FIN rather than a reset when nothing else came.
        while (::recv(fd_, rbuf_, static_cast<std::size_t>(n), 0) < 0 && errno == EINTR) {
        }
        close();
        return;
    }
    if (r.status == http::ProxyStatus::Done && r.consumed < rend_) {  // cannot happen: every prefix was NeedMore
        close();
        return;
    }
    const std::size_t take = r.status == http::ProxyStatus::Done ? r.consumed - rend_ : static_cast<std::size_t>(n);
    ssize_t got;
    do {
        got = ::recv(fd_, rbuf_ + rend_, take, 0);
    } while (got < 0 && errno == EINTR);
    if (got != static_cast<ssize_t>(take)) {
        close();
        return;
    }
    rend_ += static_cast<std::uint32_t>(take);
    if (r.status == http::ProxyStatus::NeedMore) {
        if (rend_ >= cap) close();  // cannot happen: the parser bounds the header
        return;
    }
    // The addresses replace the peer's (the local address stays: SERVER_NAME/SERVER_PORT are ours).
    if (h.family == http::ProxyHeader::Family::Inet) {
        sockaddr_in a{};
        a.sin_family = AF_INET;
        std::memcpy(&a.sin_addr, h.src_addr, 4);
        a.sin_port = htons(h.src_port);
        peer_ = {};
        std::memcpy(&peer_, &a, sizeof a);
    } else if (h.family == http::ProxyHeader::Family::Inet6) {
        sockaddr_in6 a{};
        a.sin6_family = AF_INET6;
        std::memcpy(&a.sin6_addr, h.src_addr, 16);
        a.sin6_port = htons(h.src_port);
        peer_ = {};
        std::memcpy(&peer_, &a, sizeof a);
    }
    rstart_ = rend_ = 0;
    if (timer.list) timer.list->remove(&timer);
    state_ = State::Head;
    begin_session();
}

// ---------------------------------------------------------------- buffer

bool Connection::ensure_buffer() {
    if (rbuf_) return true;
    rbuf_ = server_.buffers().get();
    rcap_ = server_.buffers().size();
    rstart_ = rend_ = 0;
    return rbuf_ != nullptr;
}

void Connection::release_buffer() {
    if (!rbuf_) return;
    server_.buffers().put(rbuf_, rcap_);
    rbuf_ = nullptr;
    rcap_ = rstart_ = rend_ = 0;
}

void Connection::compact() {
    std::uint32_t from = rstart_;
    if (framing_ == http::Framing::Chunked && piece_len_ > 0 && piece_off_ < from) from = piece_off_;
    if (from == 0) return;
    std::memmove(rbuf_, rbuf_ + from, rend_ - from);
    rend_ -= from;
    rstart_ -= from;
    if (piece_len_ > 0) piece_off_ -= from;
}

// Room to read more: compact, else grow (only while a head is being read, up to the head limit).
bool Connection::make_room() {
    if (rend_ < rcap_) return true;
    compact();
    if (rend_ < rcap_) return true;
    const std::uint32_t limit = server_.config().limits.max_head_size + 1024;
    if (rcap_ >= limit) return false;
    std::uint32_t cap = rcap_ * 2 < limit ? rcap_ * 2 : limit;
    char* p = static_cast<char*>(std::malloc(cap));
    if (!p) return false;
    std::memcpy(p, rbuf_, rend_);
    server_.buffers().put(rbuf_, rcap_);
    rbuf_ = p;
    rcap_ = cap;
    return true;
}

// ---------------------------------------------------------------- poll

void Connection::update_poll() {
    if (state_ == State::Closed) return;
    int ev = 0;
    if ((state_ == State::Head && !backpressured_) || state_ == State::Lingering || state_ == State::Handshake ||
        state_ == State::Proxy)
        ev |= UV_READABLE;
    // While the app runs (ASGI), keep reading body bytes and watching for the client leaving, as long
    // as the buffer has room (a full buffer is the backpressure on an upload the app is not reading).
    if (state_ == State::App && server_.handler().reads_during_app() && !peer_closed_ &&
        (!rbuf_ || rend_ < rcap_ || rstart_ > 0 || piece_off_ > 0))
        ev |= UV_READABLE;
    if (state_ == State::WebSocket && !ws_paused_) ev |= UV_READABLE;
    if (write_blocked_) ev |= UV_WRITABLE;
    if (ev == poll_events_) return;
    poll_events_ = ev;
    server_.mark_dirty();
    if (ev) uv_poll_start(&poll_, ev, &Connection::on_poll);
    else uv_poll_stop(&poll_);
}

void Connection::on_poll(uv_poll_t* h, int status, int events) {
    auto* c = static_cast<Connection*>(h->data);
    if (c->state_ == State::Closed) return;
    if (status < 0) {
        c->close();
        return;
    }
    if (c->state_ == State::Proxy) {
        c->on_proxy_header();
        return;
    }
    if (c->state_ == State::Handshake) {
        c->on_handshake();
        return;
    }
    if (events & UV_WRITABLE) c->on_writable();
    if ((events & UV_READABLE) && c->state_ != State::Closed) c->on_readable();
}

void Connection::on_readable() {
    if (state_ == State::Lingering) {
        char sink[4096];
        for (;;) {
            long n = io_recv(sink, sizeof sink);
            if (n > 0) continue;
            if (n < 0 && errno == EAGAIN) return;
            close();
            return;
        }
    }
    if (state_ == State::App) {
        read_during_app();
        return;
    }
    if (state_ == State::WebSocket) {
        ws_read();
        return;
    }
    if (state_ != State::Head) return;
    if (!ensure_buffer()) {
        close();
        return;
    }
    if (!make_room()) {
        // Cannot happen while the parser enforces the head limit; be safe anyway.
        queue_canned(http::error_response(http::Error::HeadTooLarge));
        begin_close();
        return;
    }
    long n = io_recv(rbuf_ + rend_, rcap_ - rend_);
    if (n == 0) {
#ifdef LUATH_HAVE_TLS
        if (tls_ && tls_->established()) {  // the peer's close_notify (or EOF) gets ours, best effort
            tls_->shutdown();
            tls_->send_pending();
        }
#endif
        close();
        return;
    }
    if (n < 0) {
        if (errno != EAGAIN) close();
        else if (!output_empty()) flush();  // TLS: post-handshake records (tickets) to send
        return;
    }
    rend_ += static_cast<std::uint32_t>(n);
    process_buffer();
}

void Connection::resume_reading() {
    // With TLS, bytes may wait in the session that the socket will not signal again: pull them into
    // the buffer now (the handler takes them on its next read; no on_input from inside its call).
    if (state_ == State::App && tls_buffered() && rbuf_) {
        if (rend_ == rcap_) compact();
        while (rend_ < rcap_ && tls_buffered()) {
            long n = io_recv(rbuf_ + rend_, rcap_ - rend_);
            if (n <= 0) break;
            rend_ += static_cast<std::uint32_t>(n);
        }
    }
    update_poll();
}

void Connection::read_during_app() {
    if (body_wanted_ && framing_ == http::Framing::ContentLength && !body_done_ && rstart_ == rend_) {
        // The handler reads the socket itself, straight into its message.
        std::uint64_t before = body_left_;
        server_.handler().on_input(*this);
        if (state_ != State::App) return;
        if (body_left_ == before) body_wanted_ = false;  // it took nothing: read into the buffer next time
        update_poll();
        return;
    }
    if (!ensure_buffer()) {
        close();
        return;
    }
    if (rend_ == rcap_) compact();
    if (rend_ == rcap_) {  // full: wait for the app to take some
        update_poll();
        return;
    }
    long n = io_recv(rbuf_ + rend_, rcap_ - rend_);
    if (n < 0 && errno == EAGAIN) return;
    if (n <= 0) {
        // The client is gone (a half-close counts: HTTP/1.1 clients do not half-close and wait).
        peer_closed_ = true;
        if (!body_done_) body_failed_ = true;
        close();
        return;
    }
    rend_ += static_cast<std::uint32_t>(n);
    if (timer.list == &server_.body_list()) arm_body_timeout();  // progress restarts the clock
    server_.handler().on_input(*this);
    if (state_ == State::App && tls_buffered() && rend_ < rcap_) {
        read_during_app();
        return;
    }
    update_poll();
}

void Connection::arm_body_timeout() {
    server_.body_list().push(&timer, server_.now_ms() + server_.config().body_timeout_ms);
    server_.arm_sweep();
}

void Connection::cancel_body_timeout() {
    if (timer.list == &server_.body_list()) server_.body_list().remove(&timer);
}

void Connection::on_writable() {
    int r = write_out();
    if (r < 0) {
        close();
        return;
    }
    if (r == 1) {  // progress, but not done: restart the write timeout
        server_.write_list().push(&timer, server_.now_ms() + server_.config().write_timeout_ms);
        server_.arm_sweep();
        return;
    }
    write_blocked_ = false;
    if (timer.list == &server_.write_list()) server_.write_list().remove(&timer);
    if (state_ == State::Closing) {
        begin_linger();
        return;
    }
    if ((state_ == State::App || state_ == State::WebSocket) && waiting_drain_) {
        waiting_drain_ = false;
        in_handler_ = true;
        server_.handler().on_drain(*this);
        in_handler_ = false;
        if (close_pending_) {
            do_close();
            return;
        }
    }
    if (state_ == State::Head && backpressured_) backpressured_ = false;
    if (state_ == State::Head) process_buffer();
    else update_poll();
    if (state_ == State::WebSocket && !timer.list) ws_arm_timer();
}

// ---------------------------------------------------------------- requests

void Connection::go_idle() {
    if (rstart_ == rend_) {
        release_buffer();
        head_started_ = false;
        server_.keepalive_list().push(&timer, server_.now_ms() + server_.config().keepalive_timeout_ms);
#ifdef LUATH_HAVE_TLS
        // OpenSSL keeps its record buffers (~34 KiB) while the connection is busy; freeing them after
        // every request cost 5% of a TLS request. An idle connection gives them back after a second.
        if (tls_) server_.trim_list().push(&trim_timer, server_.now_ms() + kTlsTrimMs);
#endif
        server_.arm_sweep();
    }
}

void Connection::on_trim() {
#ifdef LUATH_HAVE_TLS
    if (tls_ && state_ == State::Head && timer.list == &server_.keepalive_list()) tls_->release_buffers();
#endif
}

void Connection::process_buffer() {
    const Server& srv = server_;
    while (state_ == State::Head && !close_pending_) {
        if (rstart_ == rend_) {
            rstart_ = rend_ = 0;
            if (srv.stopping()) {
                close();
                return;
            }
            go_idle();
            break;
        }
        if (!head_started_) {
            head_started_ = true;
            server_.head_list().push(&timer, server_.now_ms() + srv.config().head_timeout_ms);
            server_.arm_sweep();
        }
        http::Request& req = server_.req_;
        http::ParseResult r =
            http::parse_request_head(rbuf_ + rstart_, rend_ - rstart_, req, srv.config().limits, head_state_);
        if (r.status == http::Status::Incomplete) {
            if (rend_ == rcap_ && rstart_ > 0) {
                compact();
            }
            break;
        }
        if (r.status == http::Status::Error) {
            queue_canned(http::error_response(r.error));
            begin_close();
            return;
        }
        rstart_ += static_cast<std::uint32_t>(r.consumed);
        head_state_ = {};
        head_started_ = false;
        if (timer.list) timer.list->remove(&timer);
        dispatch(req);
        if (in_thread_) return;  // a pool thread owns the connection now: touch nothing
        if (close_pending_) {
            do_close();
            return;
        }
        if (state_ != State::Head) break;
        if (out_.pending() > srv.config().write_high_water) {
            flush();
            if (state_ == State::Closed) return;
            if (out_.pending() > srv.config().write_high_water) {
                backpressured_ = true;
                break;
            }
        }
    }
    if (state_ == State::Closed) return;
    flush();
    // TLS may hold bytes already taken from the socket, which poll will not report again.
    if (tls_buffered() && state_ == State::Head && !backpressured_ && (!rbuf_ || rend_ < rcap_)) on_readable();
}

void Connection::dispatch(const http::Request& req) {
    framing_ = req.framing;
    body_left_ = req.framing == http::Framing::ContentLength ? req.content_length : 0;
    body_done_ = req.framing == http::Framing::None ||
                 (req.framing == http::Framing::ContentLength && req.content_length == 0);
    body_failed_ = false;
    body_error_ = http::Error::None;
    piece_off_ = piece_len_ = 0;
    if (req.framing == http::Framing::Chunked) {
        chunked_.reset(server_.config().limits.max_body_size);
        // A malformed body that is already here is answered now, before the app sees the request.
        http::ChunkedDecoder probe = chunked_;
        const char* p = rbuf_ + rstart_;
        const char* end = rbuf_ + rend_;
        std::string_view piece;
        http::ChunkedDecoder::Result res;
        do {
            res = probe.next(p, end, piece);
        } while (res == http::ChunkedDecoder::Result::Data);
        if (res == http::ChunkedDecoder::Result::Error) {
            state_ = State::App;
            queue_canned(http::error_response(probe.error()));
            begin_close();
            return;
        }
    }
    expect_continue_ = req.expect_continue && !body_done_;
    body_wanted_ = false;
    keep_alive_ = req.keep_alive;
    waiting_drain_ = false;
    state_ = State::App;
    in_handler_ = true;
    ++served_;
    server_.count_request();  // may start a graceful stop: this response then says Connection: close
    server_.handler().on_request(*this, req);
    if (in_thread_) return;  // in_handler_ stays set until thread_returned()
    in_handler_ = false;
}

bool Connection::can_keep_alive() {
    if (!keep_alive_ || server_.stopping()) return false;
    if (!body_done_) {
        // Skip the rest of the body if it is already here; otherwise the connection cannot be reused.
        while (!body_done_ && !body_failed_) {
            if (framing_ == http::Framing::ContentLength) {
                std::uint32_t avail = rend_ - rstart_;
                if (avail < body_left_) break;
                rstart_ += static_cast<std::uint32_t>(body_left_);
                body_left_ = 0;
                body_done_ = true;
            } else {
                if (piece_len_ == 0) {
                    if (rstart_ == rend_) break;
                    const char* p = rbuf_ + rstart_;
                    std::string_view piece;
                    auto res = chunked_.next(p, rbuf_ + rend_, piece);
                    rstart_ = static_cast<std::uint32_t>(p - rbuf_);
                    if (res == http::ChunkedDecoder::Result::Done) body_done_ = true;
                    else if (res == http::ChunkedDecoder::Result::Error) body_failed_ = true;
                    else if (res == http::ChunkedDecoder::Result::NeedMore) break;
                } else {
                    piece_len_ = 0;
                }
            }
        }
    }
    if (!body_done_) keep_alive_ = false;
    return keep_alive_;
}

void Connection::finish_response() {
    if (state_ != State::App) return;
    if (in_thread_) {  // a pool thread: the loop finishes it in thread_returned()
        thread_done_ = true;
        return;
    }
    waiting_drain_ = false;
    if (!keep_alive_ || server_.stopping() || !body_done_) {
        begin_close();
        return;
    }
    state_ = State::Head;
    // If this completes a streamed response (called from on_drain), parse what is buffered next.
    if (!in_handler_) process_buffer();
}

// ---------------------------------------------------------------- body

bool Connection::wait_fd(short events, std::uint32_t timeout_ms) {
    pollfd p{fd_, events, 0};
    for (;;) {
        int r = ::poll(&p, 1, static_cast<int>(timeout_ms));
        if (r < 0 && errno == EINTR) continue;
        return r > 0 && (p.revents & (events | POLLHUP | POLLERR));
    }
}

std::int64_t Connection::recv_blocking(char* dst, std::size_t n) {
    for (;;) {
        long r = io_recv(dst, n);
        if (r > 0) return r;
        if (r == 0) return -1;  // the client went away mid-body
        if (errno != EAGAIN) return -1;
        if (!output_empty() && !flush_blocking()) return -1;
        if (!wait_fd(POLLIN, server_.config().body_timeout_ms)) return -1;
    }
}

bool Connection::send_continue() {
    if (!expect_continue_) return true;
    expect_continue_ = false;
    out_.append(kContinue);
    return flush_blocking();
}

std::int64_t Connection::body_read(char* dst, std::size_t n) {
    std::size_t got = 0;
    if (framing_ == http::Framing::ContentLength) {
        if (n > body_left_) n = static_cast<std::size_t>(body_left_);
        std::uint32_t avail = rend_ - rstart_;
        std::size_t take = avail < n ? avail : n;
        std::memcpy(dst, rbuf_ + rstart_, take);
        rstart_ += static_cast<std::uint32_t>(take);
        got = take;
        if (got < n) {
            if (!send_continue()) return -1;
            // Large reads go straight from the socket into the caller's buffer.
            while (got < n) {
                std::int64_t r = recv_blocking(dst + got, n - got);
                if (r < 0) {
                    body_failed_ = true;
                    body_left_ -= got;
                    return -1;
                }
                got += static_cast<std::size_t>(r);
            }
        }
        body_left_ -= got;
        if (body_left_ == 0) body_done_ = true;
        return static_cast<std::int64_t>(got);
    }
    while (got < n) {
        if (framing_ == http::Framing::Chunked && piece_len_ == 0 && rstart_ == rend_ && !body_failed_) {
            // Inside a chunk's data with nothing buffered: the rest of the chunk goes straight from the
            // socket into the caller's buffer.
            if (const std::uint64_t left = chunked_.data_left(); left > 0) {
                if (!send_continue()) {
                    body_failed_ = true;
                    return -1;
                }
                std::size_t want = n - got;
                if (want > left) want = static_cast<std::size_t>(left);
                std::int64_t r = recv_blocking(dst + got, want);
                if (r < 0) {
                    body_failed_ = true;
                    return -1;
                }
                chunked_.skip_data(static_cast<std::uint64_t>(r));
                got += static_cast<std::size_t>(r);
                continue;
            }
        }
        std::string_view v = body_peek();
        if (v.empty()) {
            if (body_failed_) return -1;
            break;
        }
        std::size_t take = v.size() < n - got ? v.size() : n - got;
        std::memcpy(dst + got, v.data(), take);
        body_consume(take);
        got += take;
    }
    return static_cast<std::int64_t>(got);
}

void Connection::continue_async() {
    if (!expect_continue_) return;
    expect_continue_ = false;
    out_.append(kContinue);
    flush();
}

std::string_view Connection::body_peek(bool block) {
    if (body_failed_) return {};
    if (framing_ == http::Framing::ContentLength) {
        if (body_done_) return {};
        if (rend_ == rstart_) {
            if (!block) return {};
            if (!send_continue()) {
                body_failed_ = true;
                return {};
            }
            if (!ensure_buffer()) return {};
            compact();
            std::size_t want = rcap_ - rend_;
            if (want > body_left_) want = static_cast<std::size_t>(body_left_);
            std::int64_t r = recv_blocking(rbuf_ + rend_, want);
            if (r < 0) {
                body_failed_ = true;
                return {};
            }
            rend_ += static_cast<std::uint32_t>(r);
        }
        std::uint32_t avail = rend_ - rstart_;
        std::size_t take = avail < body_left_ ? avail : static_cast<std::size_t>(body_left_);
        return {rbuf_ + rstart_, take};
    }
    if (framing_ != http::Framing::Chunked) return {};
    while (piece_len_ == 0 && !body_done_) {
        if (rstart_ < rend_) {
            const char* p = rbuf_ + rstart_;
            std::string_view piece;
            auto res = chunked_.next(p, rbuf_ + rend_, piece);
            rstart_ = static_cast<std::uint32_t>(p - rbuf_);
            if (res == http::ChunkedDecoder::Result::Data) {
                piece_off_ = static_cast<std::uint32_t>(piece.data() - rbuf_);
                piece_len_ = static_cast<std::uint32_t>(piece.size());
                break;
            }
            if (res == http::ChunkedDecoder::Result::Done) {
                body_done_ = true;
                break;
            }
            if (res == http::ChunkedDecoder::Result::Error) {
                body_error_ = chunked_.error();
                body_failed_ = true;
                return {};
            }
            continue;  // NeedMore: everything buffered was consumed
        }
        if (!block) return {};
        if (!send_continue()) {
            body_failed_ = true;
            return {};
        }
        if (!ensure_buffer()) return {};
        rstart_ = rend_ = 0;
        std::int64_t r = recv_blocking(rbuf_, rcap_);
        if (r < 0) {
            body_failed_ = true;
            return {};
        }
        rend_ = static_cast<std::uint32_t>(r);
    }
    return {rbuf_ + piece_off_, piece_len_};
}

std::int64_t Connection::body_read_now(char* dst, std::size_t n) {
    if (body_failed_) return -1;
    std::size_t got = 0;
    if (framing_ == http::Framing::ContentLength) {
        if (n > body_left_) n = static_cast<std::size_t>(body_left_);
        std::uint32_t avail = rend_ - rstart_;
        std::size_t take = avail < n ? avail : n;
        if (take) std::memcpy(dst, rbuf_ + rstart_, take);
        rstart_ += static_cast<std::uint32_t>(take);
        got = take;
        // The buffer is empty now (or n is reached): the next body bytes are the socket's.
        while (got < n) {
            std::size_t want = n - got;
            long r = io_recv(dst + got, want);
            if (r > 0) {
                got += static_cast<std::size_t>(r);
                // Plaintext: a short read emptied the socket (skip the recv that would say EAGAIN).
                // TLS hands over one record per read: read until it says there is no more.
                if (!tls_ && static_cast<std::size_t>(r) < want) break;
                continue;
            }
            if (r < 0 && errno == EAGAIN) break;
            peer_closed_ = true;  // the client went away mid-body (or the read failed)
            body_failed_ = true;
            return -1;
        }
        body_left_ -= got;
        if (body_left_ == 0) body_done_ = true;
        return static_cast<std::int64_t>(got);
    }
    if (framing_ != http::Framing::Chunked) return 0;
    bool drained = false;
    while (got < n) {
        std::string_view v = body_peek(false);
        if (!v.empty()) {
            std::size_t take = v.size() < n - got ? v.size() : n - got;
            std::memcpy(dst + got, v.data(), take);
            body_consume(take);
            got += take;
            continue;
        }
        if (body_failed_) return -1;
        if (body_done_ || drained) break;
        // Everything buffered was decoded. Inside a chunk's data, the rest of the chunk goes from the
        // socket straight into dst, as a Content-Length body does; between chunks, into the emptied buffer.
        const std::uint64_t left = chunked_.data_left();
        char* to = dst + got;
        std::size_t want = n - got;
        if (left > 0) {
            if (want > left) want = static_cast<std::size_t>(left);
        } else {
            if (!ensure_buffer()) {
                body_failed_ = true;
                return -1;
            }
            rstart_ = rend_ = 0;
            to = rbuf_;
            want = rcap_;
        }
        long r = io_recv(to, want);
        if (r < 0 && errno == EAGAIN) break;
        if (r <= 0) {
            peer_closed_ = true;
            body_failed_ = true;
            return -1;
        }
        drained = !tls_ && static_cast<std::size_t>(r) < want;
        if (left > 0) {
            chunked_.skip_data(static_cast<std::uint64_t>(r));
            got += static_cast<std::size_t>(r);
        } else {
            rend_ = static_cast<std::uint32_t>(r);
        }
    }
    return static_cast<std::int64_t>(got);
}

void Connection::body_consume(std::size_t n) {
    if (framing_ == http::Framing::ContentLength) {
        rstart_ += static_cast<std::uint32_t>(n);
        body_left_ -= n;
        if (body_left_ == 0) body_done_ = true;
    } else {
        piece_off_ += static_cast<std::uint32_t>(n);
        piece_len_ -= static_cast<std::uint32_t>(n);
    }
}

// ---------------------------------------------------------------- output

bool Connection::over_high_water() const { return out_.pending() > server_.config().write_high_water; }

void Connection::flush() {
    if (state_ == State::Closed || output_empty()) {
        if (state_ == State::Closing && output_empty()) begin_linger();
        else update_poll();
        // Idle keep-alive (no read buffer, nothing to send): give the output memory back.
        if (state_ == State::Head && !rbuf_ && out_.empty()) out_.release_memory();
        return;
    }
    int r = write_out();
    if (r < 0) {
        close();
        return;
    }
    if (r == 1) {
        if (!write_blocked_) {
            write_blocked_ = true;
            server_.write_list().push(&timer, server_.now_ms() + server_.config().write_timeout_ms);
            server_.arm_sweep();
        }
    } else {
        write_blocked_ = false;
        if (timer.list == &server_.write_list()) {
            // Everything written: the write timeout no longer applies (WebSocket: back to the ping timer).
            server_.write_list().remove(&timer);
            if (state_ == State::WebSocket) ws_arm_timer();
        }
        if (state_ == State::Closing) {
            begin_linger();
            return;
        }
        if ((state_ == State::App || state_ == State::WebSocket) && waiting_drain_) {
            // Drained here rather than in on_writable (this write took the rest): the handler waiting
            // for the drain must hear of it now, or it waits for a writable event that never comes.
            waiting_drain_ = false;
            bool nested = in_handler_;
            in_handler_ = true;
            server_.handler().on_drain(*this);
            in_handler_ = nested;
            if (!nested && close_pending_) {
                do_close();
                return;
            }
        }
        if (state_ == State::Head && !rbuf_) out_.release_memory();  // idle keep-alive: see above
    }
    update_poll();
}

bool Connection::flush_blocking() {
    if (state_ == State::Closed || close_pending_) return false;
    for (;;) {
        int r = write_out();
        if (r == 0) return true;
        if (r < 0 || !wait_fd(POLLOUT, server_.config().write_timeout_ms)) {
            close();
            return false;
        }
    }
}

void Connection::queue_canned(http::Canned r) {
    keep_alive_ = false;
    out_.append(r.head);
    out_.append(date_line());
    out_.append("\r\n", 2);
    out_.append(r.body);
}

std::string_view Connection::date_line() {
    if (!in_thread_) return server_.date_line();
    thread_local http::DateCache cache;  // the server's cache belongs to the loop thread
    return cache.line(std::time(nullptr));
}

// ---------------------------------------------------------------- pool threads

void Connection::detach_to_thread() {
    if (timer.list) timer.list->remove(&timer);
    if (poll_events_) {
        uv_poll_stop(&poll_);
        poll_events_ = 0;
        server_.mark_dirty();
    }
    write_blocked_ = false;  // flush() after thread_returned() re-arms the write timeout if needed
    thread_done_ = false;
    in_thread_ = true;
}

void Connection::thread_flush() {
    if (close_pending_ || state_ == State::Closed || output_empty()) return;
    if (write_out() < 0) close();  // in_handler_ is set: only marks close_pending_
}

void Connection::thread_returned() {
    in_thread_ = false;
    in_handler_ = false;
    if (close_pending_) {
        do_close();
        return;
    }
    if (!thread_done_) {  // cannot happen: the handler always finishes or aborts
        close();
        return;
    }
    thread_done_ = false;
    if (!over_high_water()) {
        finish_response();  // next pipelined request, keep-alive idle, or closing (each flushes)
        return;
    }
    // The client is not taking its responses: as in process_buffer, parse no further request until
    // the output drains (on_writable resumes).
    in_handler_ = true;
    finish_response();  // Head, or Closing (which flushes)
    in_handler_ = false;
    if (close_pending_) {
        do_close();
        return;
    }
    if (state_ != State::Head) return;
    backpressured_ = true;
    flush();
    if (state_ == State::Head && !write_blocked_) {
        backpressured_ = false;
        process_buffer();
    }
}

void Connection::interrupt_thread() {
    if (in_thread_ && fd_ >= 0) ::shutdown(fd_, SHUT_RDWR);
}

// ---------------------------------------------------------------- closing

void Connection::begin_close() {
    if (state_ == State::Closed) return;
    state_ = State::Closing;
    backpressured_ = false;
    flush();
}

void Connection::begin_linger() {
    if (timer.list) timer.list->remove(&timer);
#ifdef LUATH_HAVE_TLS
    if (tls_ && tls_->established()) {
        tls_->shutdown();
        tls_->send_pending();
    }
#endif
    if (server_.stopping()) {
        close();
        return;
    }
    ::shutdown(fd_, SHUT_WR);
    state_ = State::Lingering;
    release_buffer();
    server_.linger_list().push(&timer, server_.now_ms() + server_.config().linger_ms);
    server_.arm_sweep();
    update_poll();
}

bool Connection::idle_for_shutdown() const {
    if (served_ == 0 || rend_ > rstart_ || tls_buffered()) return false;
    int unread = 0;
    return ::ioctl(fd_, FIONREAD, &unread) != 0 || unread == 0;
}

void Connection::on_timeout(TimerList* which) {
    if (which == &server_.ws_ping_list() || which == &server_.ws_pong_list()) {
        ws_on_timeout(which);
        return;
    }
    close();
}

void Connection::close() {
    if (state_ == State::Closed) return;
    if (in_handler_) {
        close_pending_ = true;
        return;
    }
    do_close();
}

void Connection::do_close() {
    if (state_ == State::Closed) return;
    state_ = State::Closed;
    close_pending_ = false;
    if (timer.list) timer.list->remove(&timer);
    if (trim_timer.list) trim_timer.list->remove(&trim_timer);
    if (ws_active_ && !ws_ended_) {
        ws_ended_ = true;
        server_.handler().on_ws_closed(*this, http::ws::kAbnormal, {});
    }
    server_.handler().on_close(*this);
    out_.clear();
    release_buffer();
    tls_.reset();
    uv_poll_stop(&poll_);
    server_.mark_dirty();  // the close completes (and the fd is closed) inside the next uv_run
    uv_close(reinterpret_cast<uv_handle_t*>(&poll_), &Connection::on_closed);
}

void Connection::on_closed(uv_handle_t* h) {
    auto* c = static_cast<Connection*>(h->data);
    ::close(c->fd_);
    c->fd_ = -1;
    c->server_.connection_closed(c);
}

}  // namespace luath::net
