#include "net/tls.hpp"

#ifdef LUATH_HAVE_TLS

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

namespace luath::net {

namespace {

constexpr std::size_t kPairSize = 24 * 1024;  // ciphertext buffered each way: a record and a half
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
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
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

TlsSession::TlsSession(TlsContext& ctx, int fd) : fd_(fd) {
    ssl_ = SSL_new(ctx.ctx());
    BIO* inner = nullptr;
    BIO_new_bio_pair(&inner, kPairSize, &net_, kPairSize);
    SSL_set_bio(ssl_, inner, inner);
    SSL_set_accept_state(ssl_);
}

TlsSession::~TlsSession() {
    if (ssl_) SSL_free(ssl_);  // frees the inner BIO
    if (net_) BIO_free(net_);
}

int TlsSession::pull() {
    char* p = nullptr;
    int space = BIO_nwrite0(net_, &p);
    if (space <= 0) {
        errno = EAGAIN;
        return -1;
    }
    ssize_t n;
    do {
        n = ::recv(fd_, p, static_cast<std::size_t>(space), 0);
    } while (n < 0 && errno == EINTR);
    if (n > 0) BIO_nwrite(net_, &p, static_cast<int>(n));
    return static_cast<int>(n);
}

int TlsSession::send_pending() {
    for (;;) {
        char* p = nullptr;
        int avail = BIO_nread0(net_, &p);
        if (avail <= 0) return 0;
        ssize_t n = ::send(fd_, p, static_cast<std::size_t>(avail), MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) return 1;
            return -errno;
        }
        BIO_nread(net_, &p, static_cast<int>(n));
        if (n < avail) return 1;
    }
}

bool TlsSession::has_pending_output() const { return BIO_ctrl_pending(net_) > 0; }

bool TlsSession::has_buffered_input() const {
    return SSL_pending(ssl_) > 0 || BIO_ctrl_pending(SSL_get_rbio(ssl_)) > 0;
}

int TlsSession::handshake() {
    for (;;) {
        ERR_clear_error();
        int r = SSL_do_handshake(ssl_);
        if (send_pending() < 0) return -1;
        if (r == 1) {
            established_ = true;
            return 1;
        }
        int err = SSL_get_error(ssl_, r);
        if (err != SSL_ERROR_WANT_READ) return -1;
        int n = pull();
        if (n == 0) return -1;
        if (n < 0) return errno == EAGAIN ? 0 : -1;
    }
}

long TlsSession::read(char* dst, std::size_t n) {
    for (;;) {
        ERR_clear_error();
        std::size_t got = 0;
        int r = SSL_read_ex(ssl_, dst, n, &got);
        if (r == 1) return static_cast<long>(got);
        int err = SSL_get_error(ssl_, r);
        if (err == SSL_ERROR_ZERO_RETURN) return 0;
        if (err == SSL_ERROR_WANT_WRITE) {  // post-handshake output (tickets, key update) first
            int s = send_pending();
            if (s < 0) return -1;
            if (s == 1) {
                errno = EAGAIN;
                return -1;
            }
            continue;
        }
        if (err != SSL_ERROR_WANT_READ) {
            errno = EIO;
            return -1;
        }
        if (has_pending_output() && send_pending() < 0) return -1;
        int p = pull();
        if (p == 0) return 0;
        if (p < 0) return -1;
    }
}

std::size_t TlsSession::write_room() const {
    std::size_t room = BIO_ctrl_get_write_guarantee(SSL_get_wbio(ssl_));
    return room > kRecordOverhead * 4 ? room - kRecordOverhead * 4 : 0;
}

std::size_t TlsSession::write(const char* p, std::size_t n) {
    std::size_t total = 0;
    while (n > 0 && write_room() > 0) {
        std::size_t take = n < 16384 ? n : 16384;
        if (take > write_room()) take = write_room();
        std::size_t done = 0;
        ERR_clear_error();
        if (SSL_write_ex(ssl_, p, take, &done) != 1) break;
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

void TlsSession::shutdown() {
    ERR_clear_error();
    SSL_shutdown(ssl_);
}

}  // namespace luath::net

#endif
