// TLS over a connection's socket with OpenSSL 3: the server context (certificates, verification,
// ALPN, session tickets shared by all workers) and one session per connection. The session's own BIO
// reads ciphertext straight from the socket into OpenSSL's record buffer and sends each record as it is
// made; what the socket does not take waits in the session, so a partly written record never has to be
// re-encrypted. After a TLS 1.3 handshake, application data goes through luath's own record layer
// (tls.cpp; tls_record.hpp) unless LUATH_TLS_RECORDS=openssl. No Python.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#ifdef LUATH_HAVE_TLS
#include <openssl/ssl.h>
#endif

namespace luath::net {

struct TlsConfig {
    std::string certfile;
    std::string keyfile;        // empty: in certfile
    std::string password;       // for an encrypted key
    std::string ca_certs;       // CA bundle for client certificates
    std::string ciphers;        // TLS 1.2 cipher list; empty: OpenSSL's default
    std::string ticket_keys;    // 80 random bytes shared by the workers; empty: per process
    int cert_reqs = 0;          // 0 none, 1 optional, 2 required
    int min_version = 0x0303;   // TLS 1.2
};

// What the application may learn about a connection's TLS (the ASGI tls extension).
struct TlsInfo {
    int version = 0;                 // e.g. 0x0304 for TLS 1.3
    int cipher_suite = 0;            // IANA id
    std::vector<std::string> chain;  // client certificate chain, PEM, leaf first
    std::string subject;             // the client certificate's subject (RFC 4514), or empty
    std::string verify_error;        // why the client certificate failed verification, or empty
};

#ifdef LUATH_HAVE_TLS

class TlsContext {
public:
    // Null with `error` set when a file is missing, a key does not match its certificate, ...
    static std::unique_ptr<TlsContext> create(const TlsConfig& cfg, std::string& error);
    ~TlsContext();
    SSL_CTX* ctx() const { return ctx_; }
    // TLS 1.3 application data through luath's own record layer (off: LUATH_TLS_RECORDS=openssl).
    // LUATH_TLS_RECORDS=own (diagnostics, tests): a TLS 1.3 connection that cannot use it is refused.
    bool own_records() const { return own_records_; }
    bool own_records_strict() const { return own_strict_; }

private:
    SSL_CTX* ctx_ = nullptr;
    bool own_records_ = true;
    bool own_strict_ = false;
};

class TlsSession {
    friend class TlsContext;

public:
    TlsSession(TlsContext& ctx, int fd);
    ~TlsSession();
    TlsSession(const TlsSession&) = delete;
    TlsSession& operator=(const TlsSession&) = delete;

    // 1 done, 0 in progress (wait for the socket), -1 failed.
    int handshake();
    bool established() const { return established_; }
    // Decrypted bytes: > 0 read, 0 the peer closed, -1 with errno (EAGAIN: wait for readable).
    long read(char* dst, std::size_t n);
    // Encrypts n bytes into records (all of them unless the pair is full: returns what was taken).
    std::size_t write(const char* p, std::size_t n);
    // The own TLS 1.3 record layer only (own_records()): one record holding the pieces in order (at most
    // 2^14 bytes in all): small pieces are copied into the record, large ones encrypted straight from
    // where they are. False when the connection is failing (send_pending() reports it).
    struct Piece {
        const char* p;
        std::size_t n;
    };
    static constexpr std::size_t kMaxRecordPlain = 16384;
    bool write_record(const Piece* pieces, int count);
    // Room for plaintext before send_pending() must run.
    std::size_t write_room() const;
    // Sends queued ciphertext: 0 all sent, 1 the socket is full, -errno on error.
    int send_pending();
    bool has_pending_output() const;
    // Decrypted or undecrypted bytes already read from the socket (poll will not report them).
    bool has_buffered_input() const;
    void shutdown();  // queue close_notify
    void release_buffers();  // frees OpenSSL's record buffers when they hold nothing (idle connection)
    TlsInfo info() const;
    SSL* ssl() const { return ssl_; }
    // True once application data goes through luath's own TLS 1.3 record layer.
    bool own_records() const { return own_; }

private:
    static BIO_METHOD* bio_method();
    static int bio_write(BIO* b, const char* data, std::size_t n, std::size_t* written);
    static int bio_read(BIO* b, char* dst, std::size_t n, std::size_t* got);
    static long bio_ctrl(BIO* b, int cmd, long num, void* ptr);
    void queue(const char* p, std::size_t n);  // ciphertext the socket did not take
    unsigned char* out_reserve(std::size_t n);  // room for n more bytes at out_ + out_len_, or null

    // luath's own TLS 1.3 record layer (tls.cpp): OpenSSL does the handshake; application data, alerts
    // and KeyUpdate after it go through these, with keys from the handshake's traffic secrets.
    struct Direction;
    static void keylog_cb(const SSL* ssl, const char* line);
    static void msg_cb(int write_p, int version, int content_type, const void* buf, std::size_t len, SSL* ssl,
                       void* arg);
    bool start_own();
    bool seal(unsigned char type, const char* p, std::size_t n);
    bool seal_pieces(unsigned char type, const Piece* pieces, int count);
    long own_read(char* dst, std::size_t n);
    bool post_handshake(const unsigned char* msg, std::size_t n);
    bool update_write_key();
    void fail(unsigned char alert);  // sends a fatal alert (0: none) and stops the record layer

    std::unique_ptr<Direction> rd_, wr_;  // own layer: client -> server and server -> client
    unsigned char* rbuf_ = nullptr;        // own layer: ciphertext read, [r_off_, r_len_) unprocessed
    std::size_t r_off_ = 0, r_len_ = 0;
    unsigned char* plain_ = nullptr;       // decrypted application data not yet returned (inside rbuf_)
    std::size_t plain_len_ = 0;
    std::uint64_t rcount_ = 0, wcount_ = 0;  // records OpenSSL read/wrote under the application keys
    // The records OpenSSL hands our BIO, parsed from the bytes (a cross-check of wcount_ that does not
    // depend on OpenSSL's callbacks): header bytes seen, body bytes left of the current record.
    unsigned char whdr_[5] = {};
    std::size_t whdr_len_ = 0, wbody_left_ = 0;
    std::uint64_t wire_after_key_ = 0;  // records started after SERVER_TRAFFIC_SECRET_0
    bool wire_aligned_ = false;         // that secret came between two records
    bool want_own_ = false;  // the context allows the own layer: secrets and records are being tracked
    bool own_strict_ = false;  // LUATH_TLS_RECORDS=own: a TLS 1.3 handshake that cannot use it fails
    bool own_ = false;
    bool dead_ = false;         // own layer: a fatal alert went or came; nothing more is sealed
    bool peer_closed_ = false;  // own layer: close_notify received
    bool closing_ = false;      // own layer: close_notify sent

    SSL* ssl_ = nullptr;
    int fd_;
    char* out_ = nullptr;  // unsent ciphertext: [out_off_, out_len_) of out_cap_ bytes
    std::size_t out_off_ = 0, out_len_ = 0, out_cap_ = 0;
    int werr_ = 0;  // send error (errno), reported by send_pending()
    int rerr_ = 0;  // recv error (errno)
    bool eof_ = false;  // the peer closed its side
    bool again_ = false;  // the last read stopped at EAGAIN
    bool corked_ = false;  // inside SSL_do_handshake: records wait in out_ for one send afterwards
    bool established_ = false;
};

#else

class TlsContext {};
class TlsSession {
public:
    TlsInfo info() const { return {}; }
};

#endif

}  // namespace luath::net
