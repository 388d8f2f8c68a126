// A connection's unsent output: small pieces (headers, chunk framing, small bodies) copied into one
// staging buffer that is reused across responses; large bodies referenced through an owner that is
// released when they are written; regular files sent with sendfile. One writev sends everything queued.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <vector>

namespace luath::net {

// Releases an owner once the bytes it keeps alive are written or dropped.
using ReleaseFn = void (*)(void* ctx, void* owner);

class OutQueue {
public:
    OutQueue() = default;
    OutQueue(const OutQueue&) = delete;
    OutQueue& operator=(const OutQueue&) = delete;
    ~OutQueue() { clear(); }

    void set_release(ReleaseFn fn, void* ctx) { release_ = fn; release_ctx_ = ctx; }

    // Copies bytes into the staging buffer.
    void append(const void* p, std::size_t n);
    void append(std::string_view s) { append(s.data(), s.size()); }
    // Room for n staged bytes; commit(k) keeps the first k of them.
    char* reserve(std::size_t n);
    void commit(std::size_t n);
    // References n bytes kept alive by owner (the queue takes over one reference).
    void append_ref(const char* p, std::size_t n, void* owner);
    // Sends len bytes of file fd from offset off with sendfile; owner released when done.
    void append_file(int fd, std::int64_t off, std::uint64_t len, void* owner);

    // A point to roll back to: everything appended after it is dropped (owners released).
    struct Mark {
        std::size_t segs, stage_len, pending;
    };
    Mark mark() const { return {segs_.size(), stage_len_, pending_}; }
    void rollback(const Mark& m);

    std::size_t pending() const { return pending_; }
    bool empty() const { return pending_ == 0 && segs_.size() == head_; }

    // Writes as much as the socket takes. Returns 0 when everything was written, 1 when the socket is
    // full (EAGAIN), or -errno on a write error.
    int flush(int fd);
    // The same through a TLS session: encrypts what the session has room for, sends the records.
    int flush(class TlsSession& tls);
    // Drops everything unsent, releasing owners.
    void clear();
    // Gives the staging buffer and segment list back when nothing is queued (an idle keep-alive
    // connection should not hold 4 KiB+ of output memory): to a small spare list (64 at most) that the
    // next response on any connection takes them from, so that a keep-alive connection which goes
    // idle after every response does not malloc and free them per request.
    void release_memory();

private:
    enum class Kind : std::uint8_t { Staged, Ref, File };
    struct Seg {
        Kind kind;
        int fd;
        std::size_t off;   // Staged: offset in stage_; Ref: unused; File: file offset
        std::size_t len;   // bytes left
        const char* ptr;   // Ref: next byte to write
        void* owner;
    };
    friend struct OutSpares;
    void pop_front();
#ifdef LUATH_HAVE_TLS
    int flush_records(class TlsSession& tls, char* co);  // flush(TlsSession&) on the own TLS 1.3 layer
    int tls_budget(class TlsSession& tls, std::size_t cap, std::size_t& budget);  // one round's start
#endif
    void reset_if_empty();
    void push(const Seg& s);

    // The staging bytes: malloc'd, grown with realloc and never zero-filled (a std::vector would clear
    // every new buffer, 4 KiB per response on a connection that goes idle between requests).
    struct Stage {
        char* p = nullptr;
        std::size_t cap = 0;
        Stage() = default;
        Stage(const Stage&) = delete;
        Stage& operator=(const Stage&) = delete;
        ~Stage() { std::free(p); }
        char* data() const { return p; }
        std::size_t size() const { return cap; }
        bool empty() const { return cap == 0; }
        void resize(std::size_t n);
        void release() {
            std::free(p);
            p = nullptr;
            cap = 0;
        }
    };
    Stage stage_;
    std::size_t stage_len_ = 0;
    std::vector<Seg> segs_;
    std::size_t head_ = 0;     // first unsent segment
    std::size_t pending_ = 0;  // bytes not yet written
    ReleaseFn release_ = nullptr;
    void* release_ctx_ = nullptr;
};

}  // namespace luath::net
