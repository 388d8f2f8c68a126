#include "net/server.hpp"

#include <fcntl.h>
#include <pthread.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <ctime>

#include "net/connection.hpp"

namespace luath::net {

namespace {
constexpr int kAcceptBatch = 64;
constexpr std::uint64_t kSweepMs = 250;
}  // namespace

Server::Server(uv_loop_t* loop, const Config& cfg, Handler& handler)
    : loop_(loop), cfg_(cfg), handler_(handler), bufs_(cfg.read_buffer_size) {
    uv_timer_init(loop_, &sweep_timer_);
    sweep_timer_.data = this;
    uv_timer_init(loop_, &grace_timer_);
    grace_timer_.data = this;
    uv_prepare_init(loop_, &prepare_);
    prepare_.data = this;
    uv_unref(reinterpret_cast<uv_handle_t*>(&prepare_));
    if (cfg_.tls) {
#ifdef LUATH_HAVE_TLS
        tls_ = TlsContext::create(cfg_.tls_config, tls_error_);
#else
        tls_error_ = "luath was built without TLS support";
#endif
    }
}

Server::~Server() {
    if (spare_fd_ >= 0) ::close(spare_fd_);
    for (Connection* c : free_conns_) delete c;
    for (Listener* l : listeners_) delete l;
}

std::string_view Server::date_line() {
    std::uint64_t now = uv_now(loop_);
    if (date_ms_ == 0 || now - date_ms_ >= 1000 || now < date_ms_) {
        date_ms_ = now;
        date_sec_ = std::time(nullptr);
    }
    return date_.line(date_sec_);
}

int Server::add_listener(int fd) {
    auto* l = new Listener{};
    l->fd = fd;
    l->server = this;
    int r = uv_poll_init(loop_, &l->poll, fd);
    if (r < 0) {
        delete l;
        return r;
    }
    l->poll.data = l;
    listeners_.push_back(l);
    return 0;
}

void Server::start(bool handle_signals) {
    if (spare_fd_ < 0) spare_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    for (Listener* l : listeners_) uv_poll_start(&l->poll, UV_READABLE, &Server::on_accept);
    uv_prepare_start(&prepare_, &Server::on_prepare);
    signals_ = handle_signals;
    if (signals_) {
        uv_signal_init(loop_, &sig_int_);
        uv_signal_init(loop_, &sig_term_);
        sig_int_.data = sig_term_.data = this;
        uv_signal_start(&sig_int_, &Server::on_signal, SIGINT);
        uv_signal_start(&sig_term_, &Server::on_signal, SIGTERM);
        // A caller may block SIGINT/SIGTERM until these handlers exist (the gunicorn worker does, so a
        // SIGTERM that arrives while it starts is not lost); one that arrived meanwhile is delivered now.
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGINT);
        sigaddset(&set, SIGTERM);
        pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
    }
}

int Server::run(bool handle_signals) {
    start(handle_signals);
    int r = uv_run(loop_, UV_RUN_DEFAULT);
    return r < 0 ? r : 0;
}

void Server::on_signal(uv_signal_t* s, int) { static_cast<Server*>(s->data)->stop(); }

void Server::stop() {
    if (stopping_) return;
    stopping_ = true;
    dirty_ = true;
    for (Listener* l : listeners_) {
        uv_poll_stop(&l->poll);
        uv_close(reinterpret_cast<uv_handle_t*>(&l->poll), nullptr);
    }
    close_idle();
    uv_timer_start(&grace_timer_, &Server::on_grace, cfg_.graceful_timeout_ms, 0);
    maybe_finish();
}

// Idle keep-alive connections are closed at once; the others close after their response. A
// connection with a request already on its way (bytes buffered or unread in the socket), or one just
// accepted that has not sent its first request yet, is served first: the client sent it before it
// could know of the stop.
void Server::close_idle() {
    for (Connection* c = all_head_; c;) {
        Connection* next = c->all_next;
        if (c->state() == Connection::State::Head || c->state() == Connection::State::Handshake) {
            if (c->idle_for_shutdown()) c->close();
        } else if (c->state() == Connection::State::WebSocket) {
            c->ws_close(1001, "server shutting down");  // going away; closes when the peer answers
        }
        c = next;
    }
}

void Server::on_grace(uv_timer_t* t) {
    auto* s = static_cast<Server*>(t->data);
    for (Connection* c = s->all_head_; c;) {
        Connection* next = c->all_next;
        if (c->in_thread()) c->interrupt_thread();  // closed when its pool thread hands it back
        else c->close();
        c = next;
    }
}

void Server::maybe_finish() {
    if (!stopping_ || finished_ || nconns_ != 0) return;
    finished_ = true;
    uv_timer_stop(&sweep_timer_);
    uv_close(reinterpret_cast<uv_handle_t*>(&sweep_timer_), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&grace_timer_), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&prepare_), nullptr);
    if (signals_) {
        uv_close(reinterpret_cast<uv_handle_t*>(&sig_int_), nullptr);
        uv_close(reinterpret_cast<uv_handle_t*>(&sig_term_), nullptr);
    }
}

void Server::on_prepare(uv_prepare_t* p) { static_cast<Server*>(p->data)->handler_.before_wait(); }

void Server::on_accept(uv_poll_t* h, int status, int) {
    auto* l = static_cast<Listener*>(h->data);
    if (status < 0) return;
    l->server->accept_from(*l);
}

void Server::accept_from(Listener& l) {
    // Over the connection limit (or out of descriptors): 503 with Connection: close, closed at once.
    // What the client already sent is read first so that close() does not reset the connection
    // before the 503 reaches it.
    auto refuse = [this](int fd) {
        char sink[4096];
        for (int k = 0; k < 4 && ::recv(fd, sink, sizeof sink, MSG_DONTWAIT) > 0; ++k) {
        }
        const http::Canned r = http::canned_response(503);
        const std::string_view date = date_line();
        struct iovec iov[4] = {{const_cast<char*>(r.head.data()), r.head.size()},
                               {const_cast<char*>(date.data()), date.size()},
                               {const_cast<char*>("\r\n"), 2},
                               {const_cast<char*>(r.body.data()), r.body.size()}};
        msghdr msg{};
        msg.msg_iov = iov;
        msg.msg_iovlen = 4;
        (void)::sendmsg(fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
        ::shutdown(fd, SHUT_WR);
        ::close(fd);
    };
    for (int i = 0; i < kAcceptBatch && !stopping_; ++i) {
        sockaddr_storage peer{};
        socklen_t plen = sizeof peer;
        int fd = ::accept4(l.fd, reinterpret_cast<sockaddr*>(&peer), &plen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            if ((errno == EMFILE || errno == ENFILE) && spare_fd_ >= 0) {
                ::close(spare_fd_);
                fd = ::accept4(l.fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (fd >= 0) refuse(fd);
                spare_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
                if (fd >= 0) continue;
            }
            return;  // EAGAIN (another worker took it), or out of descriptors: retried on the next wakeup
        }
        if (cfg_.max_connections != 0 && nconns_ >= cfg_.max_connections) {
            refuse(fd);
            continue;
        }
        sockaddr_storage local{};
        socklen_t llen = sizeof local;
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &llen);
        if (peer.ss_family == AF_INET || peer.ss_family == AF_INET6) {
            int one = 1;
            ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        }
        Connection* c;
        if (!free_conns_.empty()) {
            c = free_conns_.back();
            free_conns_.pop_back();
        } else {
            c = new Connection(*this);
        }
        ++nconns_;
        c->all_prev = nullptr;
        c->all_next = all_head_;
        if (all_head_) all_head_->all_prev = c;
        all_head_ = c;
        c->start(fd, peer, local);
    }
}

void Server::connection_closed(Connection* c) {
    if (c->all_prev) c->all_prev->all_next = c->all_next; else all_head_ = c->all_next;
    if (c->all_next) c->all_next->all_prev = c->all_prev;
    c->all_prev = c->all_next = nullptr;
    --nconns_;
    if (free_conns_.size() < 4096) free_conns_.push_back(c);
    else delete c;
    maybe_finish();
}

void Server::arm_sweep() {
    if (sweep_armed_ || finished_) return;
    sweep_armed_ = true;
    dirty_ = true;
    uv_timer_start(&sweep_timer_, &Server::on_sweep, kSweepMs, kSweepMs);
}

void Server::on_sweep(uv_timer_t* t) { static_cast<Server*>(t->data)->sweep(); }

void Server::sweep() {
    const std::uint64_t now = uv_now(loop_);
    for (TimerList* list : {&ka_list_, &head_list_, &linger_list_, &write_list_, &body_list_, &hs_list_,
                            &ws_ping_list_, &ws_pong_list_, &ws_close_list_}) {
        while (list->head && list->head->deadline <= now) {
            TimerNode* n = list->head;
            list->remove(n);
            auto* c = static_cast<Connection*>(n->owner);
            c->on_timeout(list);
        }
    }
    while (trim_list_.head && trim_list_.head->deadline <= now) {
        TimerNode* n = trim_list_.head;
        trim_list_.remove(n);
        static_cast<Connection*>(n->owner)->on_trim();
    }
    if (ka_list_.empty() && head_list_.empty() && linger_list_.empty() && write_list_.empty() &&
        body_list_.empty() && hs_list_.empty() && ws_ping_list_.empty() && ws_pong_list_.empty() &&
        ws_close_list_.empty() && trim_list_.empty()) {
        uv_timer_stop(&sweep_timer_);
        sweep_armed_ = false;
    }
}

}  // namespace luath::net
