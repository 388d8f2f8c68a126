#include "net/tls.hpp"

#ifdef LUATH_HAVE_TLS

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace luath::net {

namespace {

constexpr std::size_t kOutLimit = 24 * 1024;  // unsent ciphertext accepted before write_room() is 0
constexpr std::size_t kRecordOverhead = 256;
constexpr unsigned char kSessionContext[] = "luath";

std::string last_error() {
    unsigned long e = ERR_get_error();
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    ERR_clear_error();
    return e ? std::string(buf) : std::string("unknown error");
}

int alpn_select(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in, unsigned inlen,
                void*) {
    static const unsigned char kHttp11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
    unsigned char* sel = nullptr;
    if (SSL_select_next_proto(&sel, outlen, kHttp11, sizeof kHttp11, in, inlen) == OPENSSL_NPN_NEGOTIATED) {
        *out = sel;
        return SSL_TLSEXT_ERR_OK;
    }
    return SSL_TLSEXT_ERR_NOACK;  // no overlap (an h2-only client): go on without ALPN
}

bool cpu_has_aes() {
#if defined(__x86_64__) || defined(__i386__)
    return __builtin_cpu_supports("aes") && __builtin_cpu_supports("pclmul");
#else
    return true;  // ARMv8 and the other 64-bit targets luath runs on have AES instructions
#endif
}

int password_cb(char* buf, int size, int, void* userdata) {
    auto* pw = static_cast<const std::string*>(userdata);
    int n = static_cast<int>(pw->size()) < size ? static_cast<int>(pw->size()) : size;
    std::memcpy(buf, pw->data(), static_cast<std::size_t>(n));
    return n;
}

}  // namespace

std::unique_ptr<TlsContext> TlsContext::create(const TlsConfig& cfg, std::string& error) {
    auto t = std::unique_ptr<TlsContext>(new TlsContext());
    SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        error = "cannot create a TLS context: " + last_error();
        return nullptr;
    }
    t->ctx_ = ctx;
    SSL_CTX_set_min_proto_version(ctx, cfg.min_version);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION |
                                 SSL_OP_PRIORITIZE_CHACHA);
    // TLS 1.3: AES-128-GCM first where the CPU has AES instructions (OpenSSL's default puts AES-256
    // first), ChaCha20 first where it has not; a client that lists ChaCha20 first gets it anyway
    // (SSL_OP_PRIORITIZE_CHACHA: phones without AES hardware).
    SSL_CTX_set_ciphersuites(ctx, cpu_has_aes() ? "TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_256_GCM_SHA384"
                                                : "TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384");
    // No SSL_MODE_RELEASE_BUFFERS: a busy connection keeps its record buffers (a malloc and free of
    // ~17 KiB for each record read and written otherwise); the connection frees them once idle.
    SSL_CTX_set_read_ahead(ctx, 1);  // one recv takes every record already there
    SSL_CTX_set_session_id_context(ctx, kSessionContext, sizeof kSessionContext - 1);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
    std::string pw = cfg.password;
    SSL_CTX_set_default_passwd_cb(ctx, password_cb);
    SSL_CTX_set_default_passwd_cb_userdata(ctx, &pw);
    if (SSL_CTX_use_certificate_chain_file(ctx, cfg.certfile.c_str()) != 1) {
        error = "cannot load the certificate " + cfg.certfile + ": " + last_error();
        return nullptr;
    }
    const std::string& key = cfg.keyfile.empty() ? cfg.certfile : cfg.keyfile;
    if (SSL_CTX_use_PrivateKey_file(ctx, key.c_str(), SSL_FILETYPE_PEM) != 1) {
        error = "cannot load the private key " + key + ": " + last_error();
        return nullptr;
    }
    SSL_CTX_set_default_passwd_cb_userdata(ctx, nullptr);
    if (SSL_CTX_check_private_key(ctx) != 1) {
        error = "the private key " + key + " does not match the certificate " + cfg.certfile;
        return nullptr;
    }
    if (!cfg.ciphers.empty() && SSL_CTX_set_cipher_list(ctx, cfg.ciphers.c_str()) != 1) {
        error = "invalid cipher list: " + cfg.ciphers;
        return nullptr;
    }
    if (!cfg.ca_certs.empty()) {
        if (SSL_CTX_load_verify_locations(ctx, cfg.ca_certs.c_str(), nullptr) != 1) {
            error = "cannot load the CA certificates " + cfg.ca_certs + ": " + last_error();
            return nullptr;
        }
        if (STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(cfg.ca_certs.c_str()))
            SSL_CTX_set_client_CA_list(ctx, names);
    }
    int mode = SSL_VERIFY_NONE;
    if (cfg.cert_reqs == 1) mode = SSL_VERIFY_PEER;
    if (cfg.cert_reqs == 2) mode = SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    SSL_CTX_set_verify(ctx, mode, nullptr);
    SSL_CTX_set_alpn_select_cb(ctx, alpn_select, nullptr);
    if (cfg.ticket_keys.size() == 80) {
        SSL_CTX_ctrl(ctx, SSL_CTRL_SET_TLSEXT_TICKET_KEYS, 80,
                     const_cast<char*>(cfg.ticket_keys.data()));
    }
    return t;
}

TlsContext::~TlsContext() {
    if (ctx_) SSL_CTX_free(ctx_);
}

// The session's BIO: reads ciphertext straight from the socket into OpenSSL's record buffer (read-ahead
// on, so one recv takes every record that is there) and sends each record as it is made. What the socket
// does not take waits in out_, so OpenSSL never sees a partial write (nothing is ever re-encrypted and
// SSL_write never has to be retried). Kernel TLS (SSL_OP_ENABLE_KTLS) would need OpenSSL's own socket
// BIO and a kernel with the "tls" TCP ULP; the machines this was measured on had none, so it is not
// used (the record layer costs ~12k instructions a request: see bench/README.md, TLS).
BIO_METHOD* TlsSession::bio_method() {
    static BIO_METHOD* m = [] {
        BIO_METHOD* bm = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "luath socket");
        BIO_meth_set_write_ex(bm, &TlsSession::bio_write);
        BIO_meth_set_read_ex(bm, &TlsSession::bio_read);
        BIO_meth_set_ctrl(bm, &TlsSession::bio_ctrl);
        BIO_meth_set_create(bm, [](BIO* b) {
            BIO_set_init(b, 1);
            return 1;
        });
        return bm;
    }();
    return m;
}

int TlsSession::bio_write(BIO* b, const char* data, std::size_t n, std::size_t* written) {
    auto* s = static_cast<TlsSession*>(BIO_get_data(b));
    BIO_clear_retry_flags(b);
    *written = n;
    if (s->werr_) return 1;  // the connection is failing: send_pending() reports it
    if (s->out_off_ == s->out_len_) {
        while (n > 0) {
            ssize_t k = ::send(s->fd_, data, n, MSG_NOSIGNAL);
            if (k < 0) {
                if (errno == EINTR) continue;
                if (errno != EAGAIN) s->werr_ = errno;
                break;
            }
            data += k;
            n -= static_cast<std::size_t>(k);
        }
        if (n == 0 || s->werr_) return 1;
    }
    s->queue(data, n);
    return 1;
}

int TlsSession::bio_read(BIO* b, char* dst, std::size_t n, std::size_t* got) {
    auto* s = static_cast<TlsSession*>(BIO_get_data(b));
    BIO_clear_retry_flags(b);
    ssize_t k;
    do {
        k = ::recv(s->fd_, dst, n, 0);
    } while (k < 0 && errno == EINTR);
    if (k > 0) {
        *got = static_cast<std::size_t>(k);
        return 1;
    }
    *got = 0;
    if (k == 0) {
        s->eof_ = true;
        return 0;
    }
    if (errno == EAGAIN) {
        BIO_set_retry_read(b);
        s->again_ = true;
    } else {
        s->rerr_ = errno;
    }
    return 0;
}

long TlsSession::bio_ctrl(BIO* b, int cmd, long, void*) {
    auto* s = static_cast<TlsSession*>(BIO_get_data(b));
    switch (cmd) {
        case BIO_CTRL_FLUSH:
            return 1;  // records are sent as they are written
        case BIO_CTRL_WPENDING:
            return static_cast<long>(s->out_len_ - s->out_off_);
        case BIO_CTRL_EOF:
            return s->eof_ ? 1 : 0;
        default:
            return 0;
    }
}

void TlsSession::queue(const char* p, std::size_t n) {
    if (out_off_ > 0 && out_off_ == out_len_) out_off_ = out_len_ = 0;
    if (out_len_ + n > out_cap_) {
        if (out_off_ > 0) {  // slide the unsent bytes to the front first
            std::memmove(out_, out_ + out_off_, out_len_ - out_off_);
            out_len_ -= out_off_;
            out_off_ = 0;
        }
        if (out_len_ + n > out_cap_) {
            std::size_t cap = out_cap_ ? out_cap_ : 4096;
            while (cap < out_len_ + n) cap *= 2;
            char* np = static_cast<char*>(std::realloc(out_, cap));
            if (!np) {
                werr_ = ENOMEM;
                return;
            }
            out_ = np;
            out_cap_ = cap;
        }
    }
    std::memcpy(out_ + out_len_, p, n);
    out_len_ += n;
}

TlsSession::TlsSession(TlsContext& ctx, int fd) : fd_(fd) {
    ssl_ = SSL_new(ctx.ctx());
    BIO* bio = BIO_new(bio_method());
    BIO_set_data(bio, this);
    SSL_set_bio(ssl_, bio, bio);
    SSL_set_accept_state(ssl_);
}

TlsSession::~TlsSession() {
    if (ssl_) SSL_free(ssl_);  // frees the BIO
    std::free(out_);
}

int TlsSession::send_pending() {
    if (werr_) return -werr_;
    while (out_off_ < out_len_) {
        ssize_t n = ::send(fd_, out_ + out_off_, out_len_ - out_off_, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) return 1;
            werr_ = errno;
            return -werr_;
        }
        out_off_ += static_cast<std::size_t>(n);
    }
    if (out_cap_ > 0) {  // drained: an idle connection keeps no output buffer
        std::free(out_);
        out_ = nullptr;
        out_cap_ = out_off_ = out_len_ = 0;
    }
    return 0;
}

bool TlsSession::has_pending_output() const { return out_off_ < out_len_; }

bool TlsSession::has_buffered_input() const { return SSL_has_pending(ssl_) == 1; }

int TlsSession::handshake() {
    ERR_clear_error();
    int r = SSL_do_handshake(ssl_);
    if (send_pending() < 0) return -1;
    if (r == 1) {
        established_ = true;
        return 1;
    }
    int err = SSL_get_error(ssl_, r);
    ERR_clear_error();
    return err == SSL_ERROR_WANT_READ ? 0 : -1;
}

// No ERR_clear_error() before each call (it costs more than a tenth of a record): the queue is cleared
// after every failure instead, and "wait for the socket" is told by our BIO having hit EAGAIN in this
// very call, never by the queue, so an error another library left in it cannot pass for one of ours.
long TlsSession::read(char* dst, std::size_t n) {
    again_ = false;
    std::size_t got = 0;
    if (SSL_read_ex(ssl_, dst, n, &got) == 1) return static_cast<long>(got);
    if (again_) {
        errno = EAGAIN;
        return -1;
    }
    int err = SSL_get_error(ssl_, 0);
    ERR_clear_error();
    if (err == SSL_ERROR_ZERO_RETURN || eof_) return 0;  // close_notify, or closed without one
    errno = rerr_ ? rerr_ : EIO;
    return -1;
}

std::size_t TlsSession::write_room() const {
    std::size_t used = out_len_ - out_off_ + kRecordOverhead * 4;
    return used < kOutLimit ? kOutLimit - used : 0;
}

std::size_t TlsSession::write(const char* p, std::size_t n) {
    std::size_t total = 0;
    while (n > 0 && !werr_ && write_room() > 0) {
        std::size_t take = n < 16384 ? n : 16384;
        if (take > write_room()) take = write_room();
        std::size_t done = 0;
        if (SSL_write_ex(ssl_, p, take, &done) != 1) {  // fatal: our BIO never blocks
            ERR_clear_error();
            if (!werr_) werr_ = EIO;  // send_pending() reports it and the connection closes
            break;
        }
        total += done;
        p += done;
        n -= done;
    }
    return total;
}

TlsInfo TlsSession::info() const {
    TlsInfo t;
    t.version = SSL_version(ssl_);
    if (const SSL_CIPHER* c = SSL_get_current_cipher(ssl_)) t.cipher_suite = SSL_CIPHER_get_protocol_id(c);
    X509* leaf = SSL_get1_peer_certificate(ssl_);
    if (!leaf) return t;
    auto pem = [](X509* x) {
        std::string out;
        BIO* b = BIO_new(BIO_s_mem());
        if (b && PEM_write_bio_X509(b, x) == 1) {
            char* data = nullptr;
            long n = BIO_get_mem_data(b, &data);
            out.assign(data, static_cast<std::size_t>(n));
        }
        BIO_free(b);
        return out;
    };
    t.chain.push_back(pem(leaf));
    if (STACK_OF(X509)* chain = SSL_get_peer_cert_chain(ssl_)) {
        // On a server the peer chain does not include the leaf.
        for (int i = 0; i < sk_X509_num(chain); ++i) {
            X509* x = sk_X509_value(chain, i);
            if (X509_cmp(x, leaf) != 0) t.chain.push_back(pem(x));
        }
    }
    BIO* b = BIO_new(BIO_s_mem());
    if (b && X509_NAME_print_ex(b, X509_get_subject_name(leaf), 0, XN_FLAG_RFC2253) >= 0) {
        char* data = nullptr;
        long n = BIO_get_mem_data(b, &data);
        t.subject.assign(data, static_cast<std::size_t>(n));
    }
    BIO_free(b);
    long v = SSL_get_verify_result(ssl_);
    if (v != X509_V_OK) t.verify_error = X509_verify_cert_error_string(v);
    X509_free(leaf);
    return t;
}

void TlsSession::release_buffers() { SSL_free_buffers(ssl_); }

void TlsSession::shutdown() {
    ERR_clear_error();
    SSL_shutdown(ssl_);
}

}  // namespace luath::net

#endif
