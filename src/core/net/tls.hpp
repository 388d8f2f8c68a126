// TLS over a connection's socket with OpenSSL 3: the server context (certificates, verification,
// ALPN, session tickets shared by all workers) and one session per connection. The session reads
// ciphertext straight from the socket into a BIO pair and writes records into it, so a partly
// written record never has to be re-encrypted: unsent ciphertext simply waits in the pair. No Python.
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

private:
    SSL_CTX* ctx_ = nullptr;
};

class TlsSession {
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
    // Room for plaintext before send_pending() must run.
    std::size_t write_room() const;
    // Sends queued ciphertext: 0 all sent, 1 the socket is full, -errno on error.
    int send_pending();
    bool has_pending_output() const;
    // Decrypted or undecrypted bytes already read from the socket (poll will not report them).
    bool has_buffered_input() const;
    void shutdown();  // queue close_notify
    TlsInfo info() const;
    SSL* ssl() const { return ssl_; }

private:
    int pull();  // recv ciphertext into the pair: > 0 bytes, 0 EOF, -1 errno
    SSL* ssl_ = nullptr;
    BIO* net_ = nullptr;  // our end of the pair
    int fd_;
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
