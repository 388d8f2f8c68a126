#include "net/outqueue.hpp"

#include <unistd.h>

#include "net/tls.hpp"

#include <sys/sendfile.h>
#include <sys/uio.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <new>
#include <thread>

namespace luath::net {

namespace {
constexpr int kMaxIov = 64;
constexpr std::size_t kShrinkAbove = 1u << 20;
constexpr std::size_t kStageSize = 4096;  // first staging buffer; the size kept as a spare
constexpr std::size_t kSpareSegs = 16;    // segment lists up to this capacity are kept as spares
constexpr std::size_t kKeepSpares = 64;   // 64 x (4 KiB + 16 segments) at most
}  // namespace

// Output memory given back by idle connections (release_memory), for the next response to take.
// One list for the process: a --threads pool thread writes responses into buffers the loop thread gave
// back. A spin lock guards it (held for a push or a pop; the loop and pool threads rarely meet there).
// Created once and never destroyed: a queue released during exit still finds it.
struct OutSpares {
    std::atomic_flag busy = ATOMIC_FLAG_INIT;
    std::vector<char*> stages;                     // kStageSize bytes each
    std::vector<std::vector<OutQueue::Seg>> segs;  // empty, capacity <= kSpareSegs
    OutSpares() {
        stages.reserve(kKeepSpares);  // giving back never allocates
        segs.reserve(kKeepSpares);
    }
    void lock() {
        while (busy.test_and_set(std::memory_order_acquire)) std::this_thread::yield();
    }
    void unlock() { busy.clear(std::memory_order_release); }
};

namespace {
OutSpares* const spares = new OutSpares;
}  // namespace

void OutQueue::Stage::resize(std::size_t n) {
    char* np = static_cast<char*>(std::realloc(p, n));
    if (!np) throw std::bad_alloc();
    p = np;
    cap = n;
}

char* OutQueue::reserve(std::size_t n) {
    if (stage_.empty() && n <= kStageSize) {
        spares->lock();
        if (!spares->stages.empty()) {
            stage_.p = spares->stages.back();
            stage_.cap = kStageSize;
            spares->stages.pop_back();
        }
        spares->unlock();
    }
    if (stage_len_ + n > stage_.size()) {
        std::size_t cap = stage_.empty() ? kStageSize : stage_.size();
        while (cap < stage_len_ + n) cap *= 2;
        stage_.resize(cap);
    }
    return stage_.data() + stage_len_;
}

void OutQueue::commit(std::size_t n) {
    if (n == 0) return;
    if (segs_.size() > head_) {
        Seg& last = segs_.back();
        if (last.kind == Kind::Staged && last.off + last.len == stage_len_) {
            last.len += n;
            stage_len_ += n;
            pending_ += n;
            return;
        }
    }
    push(Seg{Kind::Staged, -1, stage_len_, n, nullptr, nullptr});
    stage_len_ += n;
    pending_ += n;
}

void OutQueue::append(const void* p, std::size_t n) {
    if (n == 0) return;
    std::memcpy(reserve(n), p, n);
    commit(n);
}

void OutQueue::append_ref(const char* p, std::size_t n, void* owner) {
    if (n == 0) {
        if (owner && release_) release_(release_ctx_, owner);
        return;
    }
    push(Seg{Kind::Ref, -1, 0, n, p, owner});
    pending_ += n;
}

void OutQueue::append_file(int fd, std::int64_t off, std::uint64_t len, void* owner) {
    push(Seg{Kind::File, fd, static_cast<std::size_t>(off), static_cast<std::size_t>(len),
             nullptr, owner});
    pending_ += len;
}

void OutQueue::push(const Seg& s) {
    if (segs_.capacity() == 0) {
        spares->lock();
        if (!spares->segs.empty()) {
            segs_.swap(spares->segs.back());
            spares->segs.pop_back();
        }
        spares->unlock();
    }
    segs_.push_back(s);
}

void OutQueue::pop_front() {
    Seg& s = segs_[head_];
    void* owner = s.owner;
    ++head_;
    if (owner && release_) release_(release_ctx_, owner);
}

void OutQueue::release_memory() {
    if (head_ != segs_.size()) return;
    segs_.clear();
    bool keep_stage = stage_.size() == kStageSize;
    bool keep_segs = segs_.capacity() != 0 && segs_.capacity() <= kSpareSegs;
    if (keep_stage || keep_segs) {
        spares->lock();
        if (keep_stage && spares->stages.size() < kKeepSpares) {
            spares->stages.push_back(stage_.p);
            stage_.p = nullptr;
            stage_.cap = 0;
        }
        if (keep_segs && spares->segs.size() < kKeepSpares) spares->segs.push_back(std::move(segs_));
        spares->unlock();
    }
    stage_.release();
    std::vector<Seg>().swap(segs_);
    head_ = 0;
    stage_len_ = 0;
}

void OutQueue::reset_if_empty() {
    if (head_ != segs_.size()) return;
    segs_.clear();
    head_ = 0;
    stage_len_ = 0;
    if (stage_.size() > kShrinkAbove) stage_.release();
}

int OutQueue::flush(int fd) {
    while (head_ < segs_.size()) {
        Seg& first = segs_[head_];
        if (first.kind == Kind::File) {
            if (first.len == 0) {
                pop_front();
                continue;
            }
            off_t off = static_cast<off_t>(first.off);
            std::size_t want = first.len > (1u << 30) ? (1u << 30) : first.len;
            ssize_t n = ::sendfile(fd, first.fd, &off, want);
            if (n < 0) {
                if (errno == EINTR) continue;
                if (errno == EAGAIN) return 1;
                return -errno;
            }
            if (n == 0) {  // the file shrank under us: the response cannot be completed
                return -EIO;
            }
            first.off += static_cast<std::size_t>(n);
            first.len -= static_cast<std::size_t>(n);
            pending_ -= static_cast<std::size_t>(n);
            if (first.len == 0) pop_front();
            continue;
        }
        iovec iov[kMaxIov];
        int cnt = 0;
        std::size_t total = 0;
        for (std::size_t i = head_; i < segs_.size() && cnt < kMaxIov; ++i) {
            const Seg& s = segs_[i];
            if (s.kind == Kind::File) break;
            iov[cnt].iov_base = const_cast<char*>(s.kind == Kind::Staged ? stage_.data() + s.off : s.ptr);
            iov[cnt].iov_len = s.len;
            total += s.len;
            ++cnt;
        }
        ssize_t n = ::writev(fd, iov, cnt);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) return 1;
            return -errno;
        }
        std::size_t left = static_cast<std::size_t>(n);
        pending_ -= left;
        while (left > 0) {
            Seg& s = segs_[head_];
            if (left >= s.len) {
                left -= s.len;
                s.len = 0;
                pop_front();
            } else {
                s.len -= left;
                if (s.kind == Kind::Staged) s.off += left; else s.ptr += left;
                left = 0;
            }
        }
        if (static_cast<std::size_t>(n) < total) return 1;  // short write: the socket is full
    }
    reset_if_empty();
    return 0;
}

#ifdef LUATH_HAVE_TLS
// The start of each round of a TLS flush: earlier ciphertext goes first; then how many plaintext bytes
// the session takes now (at most `cap`). Returns flush()'s result when the round cannot go on (0 all
// sent, 1 wait for the socket, < 0 error), else 2 with `budget` set.
int OutQueue::tls_budget(TlsSession& tls, std::size_t cap, std::size_t& budget) {
    if (int s = tls.send_pending(); s != 0) return s;
    if (head_ == segs_.size()) {
        reset_if_empty();
        return 0;
    }
    budget = tls.write_room();
    if (budget == 0) return 1;
    if (budget > cap) budget = cap;
    return 2;
}

int OutQueue::flush(TlsSession& tls) {
    constexpr std::size_t kCoalesce = 16384;  // one record's worth of small pieces
    constexpr std::size_t kSmall = 4096;
    char co[kCoalesce];
    if (tls.own_records()) return flush_records(tls, co);
    for (;;) {
        std::size_t budget;
        if (int s = tls_budget(tls, 16 * 1024, budget); s != 2) return s;
        std::size_t col = 0;
        auto flush_co = [&] {
            if (col) tls.write(co, col);
            col = 0;
        };
        while (head_ < segs_.size() && budget > 0) {
            Seg& sg = segs_[head_];
            std::size_t take = sg.len < budget ? sg.len : budget;
            if (sg.kind == Kind::File) {
                flush_co();
                if (take > kCoalesce) take = kCoalesce;
                ssize_t n = ::pread(sg.fd, co, take, static_cast<off_t>(sg.off));
                if (n <= 0) return -EIO;
                take = tls.write(co, static_cast<std::size_t>(n));
                sg.off += take;
            } else {
                const char* p = sg.kind == Kind::Staged ? stage_.data() + sg.off : sg.ptr;
                if (take < kSmall && col + take <= kCoalesce) {
                    std::memcpy(co + col, p, take);
                    col += take;
                } else {
                    flush_co();
                    take = tls.write(p, take);
                    if (take == 0) break;
                }
                if (sg.kind == Kind::Staged) sg.off += take; else sg.ptr += take;
            }
            sg.len -= take;
            budget -= take;
            pending_ -= take;
            if (sg.len == 0) pop_front();
        }
        flush_co();
    }
}
#endif

// The own TLS 1.3 record layer: each record gathers the next pieces of the queue (headers and body
// together, up to 2^14 bytes), small ones copied into it, large ones encrypted from where they are: no
// copy but the one into the record. A file piece is read into `co` (one per record).
int OutQueue::flush_records(TlsSession& tls, char* co) {
    constexpr int kMaxPieces = 16;
    for (;;) {
        std::size_t budget;
        if (int s = tls_budget(tls, TlsSession::kMaxRecordPlain, budget); s != 2) return s;
        TlsSession::Piece pieces[kMaxPieces];
        int np = 0;
        std::size_t total = 0;
        for (std::size_t i = head_; i < segs_.size() && total < budget && np < kMaxPieces; ++i) {
            const Seg& sg = segs_[i];
            std::size_t take = sg.len < budget - total ? sg.len : budget - total;
            if (sg.kind == Kind::File) {
                ssize_t n = ::pread(sg.fd, co, take, static_cast<off_t>(sg.off));
                if (n <= 0) return -EIO;
                pieces[np++] = {co, static_cast<std::size_t>(n)};
                total += static_cast<std::size_t>(n);
                break;  // co holds it
            }
            pieces[np++] = {sg.kind == Kind::Staged ? stage_.data() + sg.off : sg.ptr, take};
            total += take;
        }
        if (!tls.write_record(pieces, np)) {  // the connection is failing
            int e = tls.send_pending();
            return e < 0 ? e : -EIO;
        }
        for (std::size_t left = total; left > 0;) {  // take what went into the record off the queue
            Seg& sg = segs_[head_];
            std::size_t take = sg.len < left ? sg.len : left;
            if (sg.kind == Kind::Ref) sg.ptr += take; else sg.off += take;
            sg.len -= take;
            left -= take;
            pending_ -= take;
            if (sg.len == 0) pop_front();
        }
    }
}

void OutQueue::rollback(const Mark& m) {
    if (m.segs < head_) return;  // already partly written: too late
    for (std::size_t i = m.segs; i < segs_.size(); ++i)
        if (segs_[i].owner && release_) release_(release_ctx_, segs_[i].owner);
    segs_.resize(m.segs);
    if (!segs_.empty()) {
        Seg& last = segs_.back();
        if (last.kind == Kind::Staged && last.off + last.len > m.stage_len) last.len = m.stage_len - last.off;
    }
    stage_len_ = m.stage_len;
    pending_ = m.pending;
}

void OutQueue::clear() {
    while (head_ < segs_.size()) pop_front();
    pending_ = 0;
    reset_if_empty();
}

}  // namespace luath::net
