// The WebSocket state of a connection (RFC 6455): after the handler accepted an upgrade, reads go to
// the frame parser; pings are answered, the close handshake and protocol errors are handled here and
// only whole, valid messages reach the handler. Writes go through the output queue like HTTP's.
#include <cerrno>

#include "net/connection.hpp"
#include "net/server.hpp"

namespace luath::net {

namespace ws = http::ws;

void Connection::ws_start(std::unique_ptr<ws::Deflate> deflate) {
    if (state_ != State::App) return;
    if (timer.list && timer.list != &server_.write_list()) timer.list->remove(&timer);
    state_ = State::WebSocket;
    ws_active_ = true;
    ws_deflate_ = std::move(deflate);
    ws_rx_.reset(server_.config().ws_max_size, ws_deflate_.get());
    keep_alive_ = false;
    flush();  // the 101 response
    if (state_ != State::WebSocket) return;
    if (server_.stopping()) {  // accepted while the server stops: going away at once
        ws_close(ws::kGoingAway, "server shutting down");
        return;
    }
    ws_arm_timer();
    // Frames sent right behind the handshake are already buffered: poll will not report them.
    if (rbuf_ && rstart_ < rend_) ws_process();
    if (state_ == State::WebSocket && tls_buffered()) {
        ws_read();
        return;
    }
    update_poll();
}

void Connection::ws_read() {
    if (!ensure_buffer()) {
        close();
        return;
    }
    // Sixteen reads from the socket at most, for fairness; records the TLS session already holds are
    // always taken (the socket will not signal them again, and taking them reads nothing from it).
    for (int round = 0; round < 16 || tls_buffered(); ++round) {
        if (rend_ == rcap_) compact();
        if (rend_ == rcap_) break;  // full (only while paused)
        const std::size_t room = rcap_ - rend_;
        long n = io_recv(rbuf_ + rend_, room);
        if (n < 0 && errno == EAGAIN) break;
        if (n <= 0) {  // the peer vanished without a close frame
            peer_closed_ = true;
            ws_end(ws::kAbnormal, {});
            close();
            return;
        }
        rend_ += static_cast<std::uint32_t>(n);
        ws_process();
        if (state_ != State::WebSocket || ws_paused_) break;
        if (static_cast<std::size_t>(n) < room && !tls_buffered()) break;
    }
    if (state_ == State::Closed) return;
    // An idle WebSocket holds no read buffer.
    if (state_ == State::WebSocket && rbuf_ && rstart_ == rend_) release_buffer();
    update_poll();
}

void Connection::ws_process() {
    using E = ws::Receiver::Event;
    bool queued = false;
    char f[160];
    while (state_ == State::WebSocket && !ws_paused_ && rbuf_ && rstart_ < rend_) {
        char* p = rbuf_ + rstart_;
        E e = ws_rx_.next(p, rbuf_ + rend_, rcap_);
        rstart_ = static_cast<std::uint32_t>(p - rbuf_);
        if (e == E::NeedMore) break;
        if (e == E::Message) {
            if (ws_close_sent_) continue;  // after our close frame, data is discarded
            in_handler_ = true;
            server_.handler().on_ws_message(*this, ws_rx_.text(), ws_rx_.data());
            in_handler_ = false;
            ws_rx_.trim();
            if (close_pending_) {
                do_close();
                return;
            }
        } else if (e == E::Ping) {
            if (ws_close_sent_) continue;
            std::string_view d = ws_rx_.data();
            out_.append(f, ws::frame_header(f, ws::kPong, d.size()));
            out_.append(d);
            queued = true;
        } else if (e == E::Pong) {
            ws_awaiting_pong_ = false;
            if (timer.list == &server_.ws_pong_list()) {
                timer.list->remove(&timer);
                ws_arm_timer();
            }
        } else if (e == E::Close) {
            std::uint16_t code = ws_rx_.close_code();
            if (!ws_close_sent_) {  // echo the code, then close the TCP connection
                out_.append(f, ws::close_frame(f, code == ws::kNoStatus ? 0 : code, {}));
                ws_close_sent_ = true;
            }
            ws_end(code, ws_rx_.close_reason());
            if (close_pending_) {
                do_close();
                return;
            }
            begin_close();
            return;
        } else {  // protocol error: close with its code; nothing of it reaches the application
            if (!ws_close_sent_) {
                out_.append(f, ws::close_frame(f, ws_rx_.error_code(), ws_rx_.error_reason()));
                ws_close_sent_ = true;
            }
            ws_end(ws_rx_.error_code(), ws_rx_.error_reason());
            if (close_pending_) {
                do_close();
                return;
            }
            begin_close();
            return;
        }
    }
    if (rbuf_ && rstart_ == rend_) rstart_ = rend_ = 0;
    if (queued) flush();
}

void Connection::ws_end(int code, std::string_view reason) {
    if (ws_ended_ || !ws_active_) return;
    ws_ended_ = true;
    bool was = in_handler_;
    in_handler_ = true;
    server_.handler().on_ws_closed(*this, code, reason);
    in_handler_ = was;
}

bool Connection::ws_send(bool text, const char* p, std::size_t n, void* owner) {
    auto release = [&] {
        if (owner) server_.handler().release(owner);
    };
    if (!ws_open()) {
        release();
        return false;
    }
    char h[10];
    const std::uint8_t op = text ? ws::kText : ws::kBinary;
    if (ws_deflate_) {
        bool ok = ws_deflate_->compress(p, n, ws_zbuf_);
        release();
        if (!ok) {
            ws_close(ws::kInternalError, "compression failed");
            return false;
        }
        out_.append(h, ws::frame_header(h, op, ws_zbuf_.size(), true, true));
        out_.append(ws_zbuf_);
        if (ws_zbuf_.capacity() > (1u << 20)) std::string().swap(ws_zbuf_);
    } else {
        out_.append(h, ws::frame_header(h, op, n));
        if (owner && n >= 4096) {
            out_.append_ref(p, n, owner);
        } else {
            out_.append(p, n);
            release();
        }
    }
    flush();
    return state_ != State::Closed;
}

void Connection::ws_close(std::uint16_t code, std::string_view reason) {
    if (state_ != State::WebSocket || ws_close_sent_) return;
    char f[160];
    out_.append(f, ws::close_frame(f, code, reason));
    ws_close_sent_ = true;
    ws_arm_timer();
    flush();
}

void Connection::ws_pause() {
    if (ws_paused_) return;
    ws_paused_ = true;
    update_poll();
}

void Connection::ws_resume() {
    if (!ws_paused_) return;
    ws_paused_ = false;
    if (state_ != State::WebSocket) return;
    if (rbuf_ && rstart_ < rend_) ws_process();
    if (state_ != State::WebSocket || ws_paused_) return;
    if (tls_buffered()) {
        ws_read();
        return;
    }
    update_poll();
}

void Connection::ws_arm_timer() {
    if (state_ != State::WebSocket || timer.list == &server_.write_list()) return;
    const Config& cfg = server_.config();
    const std::uint64_t now = server_.now_ms();
    if (ws_close_sent_) {
        if (timer.list != &server_.ws_close_list()) server_.ws_close_list().push(&timer, now + cfg.ws_close_timeout_ms);
    } else if (ws_awaiting_pong_) {
        if (cfg.ws_ping_timeout_ms == 0) {
            if (timer.list) timer.list->remove(&timer);
            return;
        }
        if (timer.list != &server_.ws_pong_list()) server_.ws_pong_list().push(&timer, now + cfg.ws_ping_timeout_ms);
    } else if (cfg.ws_ping_interval_ms) {
        if (timer.list != &server_.ws_ping_list()) server_.ws_ping_list().push(&timer, now + cfg.ws_ping_interval_ms);
    } else {
        if (timer.list) timer.list->remove(&timer);
        return;
    }
    server_.arm_sweep();
}

void Connection::ws_on_timeout(TimerList* which) {
    if (state_ != State::WebSocket) {
        close();
        return;
    }
    char f[160];
    if (which == &server_.ws_ping_list()) {
        static constexpr char kPayload[4] = {'l', 'u', 'a', 't'};
        out_.append(f, ws::frame_header(f, ws::kPing, sizeof kPayload));
        out_.append(kPayload, sizeof kPayload);
        ws_awaiting_pong_ = true;
        ws_arm_timer();
        flush();
        return;
    }
    // No pong in time: the peer is gone or stuck.
    if (!ws_close_sent_) {
        out_.append(f, ws::close_frame(f, ws::kInternalError, "keepalive ping timeout"));
        ws_close_sent_ = true;
    }
    ws_end(ws::kInternalError, "keepalive ping timeout");
    if (close_pending_) {
        do_close();
        return;
    }
    begin_close();
}

}  // namespace luath::net
