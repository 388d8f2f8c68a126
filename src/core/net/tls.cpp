#include "net/tls.hpp"

#ifdef LUATH_HAVE_TLS

#include "net/tls13_keys.hpp"
#include "net/tls_record.hpp"

#include <openssl/core_dispatch.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/pem.h>
#include <openssl/provider.h>
#include <openssl/x509.h>
#include <strings.h>
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
    const char* rec = std::getenv("LUATH_TLS_RECORDS");
    t->own_records_ = !(rec && std::strcmp(rec, "openssl") == 0);
    t->own_strict_ = rec && std::strcmp(rec, "own") == 0;
    if (t->own_records_) SSL_CTX_set_keylog_callback(ctx, &TlsSession::keylog_cb);
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
// used. After a TLS 1.3 handshake the own record layer below takes the socket over from this BIO.
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
    if (s->want_own_ && !s->own_) {  // the handshake: follow the record boundaries
        const auto* q = reinterpret_cast<const unsigned char*>(data);
        for (std::size_t left = n; left > 0;) {
            if (s->wbody_left_ > 0) {
                std::size_t k = left < s->wbody_left_ ? left : s->wbody_left_;
                s->wbody_left_ -= k;
                q += k;
                left -= k;
                continue;
            }
            s->whdr_[s->whdr_len_++] = *q++;
            --left;
            if (s->whdr_len_ == 5) {
                s->wbody_left_ = (static_cast<std::size_t>(s->whdr_[3]) << 8) | s->whdr_[4];
                s->whdr_len_ = 0;
                if (s->wr_) ++s->wire_after_key_;
            }
        }
    }
    if (s->werr_) return 1;  // the connection is failing: send_pending() reports it
    if (s->out_off_ == s->out_len_ && !s->corked_) {
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
    unsigned char* dst = out_reserve(n);
    if (!dst) {
        werr_ = ENOMEM;
        return;
    }
    std::memcpy(dst, p, n);
    out_len_ += n;
}

// ---------------------------------------------------------------------------------------------------
// luath's own TLS 1.3 record layer. OpenSSL's record layer costs ~13k instructions for one small record
// read and one written (state machine, BIO calls, and EVP calls that each re-query the provider); sealing
// and opening them with the provider's AEAD functions directly costs about a third of that. OpenSSL does the whole handshake
// (and TLS 1.2, and anything unusual: start_own() declines); once a TLS 1.3 handshake is done, the
// records are read from and written to the socket here, with keys derived from the traffic secrets that
// the keylog callback hands over.
//
// Sequence numbers: the client's application records start at 0 because OpenSSL reads the handshake
// without read-ahead (it takes exactly the records up to the client's Finished) and start_own() checks
// that it holds nothing more; the server's start after the records OpenSSL wrote under its application
// key (the session tickets), counted by the message callback from the moment the key was installed
// (the keylog callback for SERVER_TRAFFIC_SECRET_0 runs right then).

namespace {

constexpr std::size_t kRbufCap = 2 * tls13::kMaxRecord;
constexpr std::uint64_t kWriteKeyLimit = std::uint64_t{1} << 24;  // records per write key (RFC 8446 5.5)

// TLS 1.3 alerts (RFC 8446 6).
constexpr unsigned char kUnexpectedMessage = 10, kBadRecordMac = 20, kRecordOverflow = 22,
                        kDecodeError = 50, kInternalError = 80;

using tls13::expand_label;
using tls13::kSuites;
using tls13::Suite;

// The cipher functions of the provider implementation EVP_CIPHER_fetch() picks. The record layer calls
// them directly, making the calls EVP_CipherInit_ex2/EVP_CipherUpdate/EVP_CipherFinal_ex and the tag
// ctrl make (provider-cipher(7)) without EVP's per-call work around them (it queries the IV length from
// the provider, through a parameter lookup, several times a record: ~1,000 instructions per record).
struct Aead {
    EVP_CIPHER* cipher = nullptr;  // holds the provider
    void* provctx = nullptr;
    OSSL_FUNC_cipher_newctx_fn* newctx = nullptr;
    OSSL_FUNC_cipher_freectx_fn* freectx = nullptr;
    OSSL_FUNC_cipher_encrypt_init_fn* einit = nullptr;
    OSSL_FUNC_cipher_decrypt_init_fn* dinit = nullptr;
    OSSL_FUNC_cipher_update_fn* update = nullptr;
    OSSL_FUNC_cipher_final_fn* final = nullptr;
    OSSL_FUNC_cipher_get_ctx_params_fn* get_params = nullptr;
    OSSL_FUNC_cipher_set_ctx_params_fn* set_params = nullptr;

    bool complete() const {
        return provctx && newctx && freectx && einit && dinit && update && final && get_params && set_params;
    }
};

bool has_name(const char* names, const char* name) {  // "AES-128-GCM:id-aes128-GCM:2.16..."
    std::size_t n = std::strlen(name);
    for (const char* p = names; p && *p;) {
        const char* e = std::strchr(p, ':');
        std::size_t len = e ? static_cast<std::size_t>(e - p) : std::strlen(p);
        if (len == n && strncasecmp(p, name, n) == 0) return true;
        p = e ? e + 1 : nullptr;
    }
    return false;
}

Aead resolve_aead(const char* name) {
    Aead a;
    a.cipher = EVP_CIPHER_fetch(nullptr, name, nullptr);
    if (!a.cipher) return a;
    OSSL_PROVIDER* prov = const_cast<OSSL_PROVIDER*>(EVP_CIPHER_get0_provider(a.cipher));
    const char* fetched = EVP_CIPHER_get0_name(a.cipher);
    int no_store = 0;
    const OSSL_ALGORITHM* algs = prov ? OSSL_PROVIDER_query_operation(prov, OSSL_OP_CIPHER, &no_store) : nullptr;
    for (const OSSL_ALGORITHM* alg = algs; alg && alg->algorithm_names; ++alg) {
        if (!has_name(alg->algorithm_names, fetched)) continue;
        for (const OSSL_DISPATCH* d = alg->implementation; d->function_id; ++d) {
            switch (d->function_id) {
                case OSSL_FUNC_CIPHER_NEWCTX: a.newctx = OSSL_FUNC_cipher_newctx(d); break;
                case OSSL_FUNC_CIPHER_FREECTX: a.freectx = OSSL_FUNC_cipher_freectx(d); break;
                case OSSL_FUNC_CIPHER_ENCRYPT_INIT: a.einit = OSSL_FUNC_cipher_encrypt_init(d); break;
                case OSSL_FUNC_CIPHER_DECRYPT_INIT: a.dinit = OSSL_FUNC_cipher_decrypt_init(d); break;
                case OSSL_FUNC_CIPHER_UPDATE: a.update = OSSL_FUNC_cipher_update(d); break;
                case OSSL_FUNC_CIPHER_FINAL: a.final = OSSL_FUNC_cipher_final(d); break;
                case OSSL_FUNC_CIPHER_GET_CTX_PARAMS: a.get_params = OSSL_FUNC_cipher_get_ctx_params(d); break;
                case OSSL_FUNC_CIPHER_SET_CTX_PARAMS: a.set_params = OSSL_FUNC_cipher_set_ctx_params(d); break;
                default: break;
            }
        }
        a.provctx = OSSL_PROVIDER_get0_provider_ctx(prov);
        break;
    }
    if (algs) OSSL_PROVIDER_unquery_operation(prov, OSSL_OP_CIPHER, algs);
    return a;
}

// Null when the cipher is not available (the connection stays on OpenSSL's record layer).
const Aead* aead_for(int i) {
    static const Aead a[3] = {resolve_aead(kSuites[0].cipher), resolve_aead(kSuites[1].cipher),
                              resolve_aead(kSuites[2].cipher)};
    return a[i].complete() ? &a[i] : nullptr;
}

}  // namespace

// One direction's traffic state: the secret (for KeyUpdate), the static IV, the keyed cipher context
// and the next record's sequence number.
struct TlsSession::Direction {
    unsigned char secret[48] = {};
    std::size_t secret_len = 0;  // from the key log: 32 or 48, must be the suite's hash length
    bool have_secret = false;
    unsigned char iv[tls13::kNonceLen] = {};
    const Aead* aead = nullptr;
    void* ctx = nullptr;  // the provider's cipher context
    std::uint64_t seq = 0;
    const Suite* suite = nullptr;

    ~Direction() {
        if (ctx) aead->freectx(ctx);  // the provider cleanses its key schedule
        OPENSSL_cleanse(secret, sizeof secret);
        OPENSSL_cleanse(iv, sizeof iv);
    }
    // Keys from `secret` (key and iv, RFC 8446 7.3); the sequence number starts again at `first_seq`.
    bool install(bool encrypt, std::uint64_t first_seq) {
        unsigned char key[32];
        bool ok = expand_label(*suite, secret, "key", key, suite->key_len) &&
                  expand_label(*suite, secret, "iv", iv, tls13::kNonceLen);
        if (ok && !ctx) ok = (ctx = aead->newctx(aead->provctx)) != nullptr;
        if (ok) {
            ok = (encrypt ? aead->einit : aead->dinit)(ctx, key, suite->key_len, nullptr, 0, nullptr) == 1;
            std::size_t ivlen = 0;
            OSSL_PARAM q[] = {OSSL_PARAM_construct_size_t(OSSL_CIPHER_PARAM_IVLEN, &ivlen), OSSL_PARAM_construct_end()};
            ok = ok && aead->get_params(ctx, q) == 1 && ivlen == tls13::kNonceLen;
        }
        OPENSSL_cleanse(key, sizeof key);
        seq = first_seq;
        return ok;
    }
    // KeyUpdate: the next generation of the secret (RFC 8446 7.2), then its keys.
    bool update(bool encrypt) {
        unsigned char next[48];
        bool ok = expand_label(*suite, secret, "traffic upd", next, suite->hash_len);
        std::memcpy(secret, next, suite->hash_len);
        OPENSSL_cleanse(next, sizeof next);
        return ok && install(encrypt, 0);
    }

    // One record: start (nonce from the sequence number, the header as AAD), then update(s), then
    // seal_tag or open_tag. The calls EVP makes for the same (see Aead).
    bool start(const unsigned char* header, bool encrypt) {
        unsigned char nonce[tls13::kNonceLen];
        tls13::make_nonce(iv, seq, nonce);
        std::size_t l = 0;
        return (encrypt ? aead->einit : aead->dinit)(ctx, nullptr, 0, nonce, sizeof nonce, nullptr) == 1 &&
               aead->update(ctx, nullptr, &l, tls13::kHeaderLen, header, tls13::kHeaderLen) == 1;
    }
    bool crypt(unsigned char* out, const unsigned char* in, std::size_t n) {
        std::size_t l = 0;
        return n == 0 || (aead->update(ctx, out, &l, n, in, n) == 1 && l == n);
    }
    bool seal_tag(unsigned char* tag) {
        std::size_t l = 0;
        OSSL_PARAM q[] = {OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG, tag, tls13::kTagLen),
                          OSSL_PARAM_construct_end()};
        return aead->final(ctx, nullptr, &l, 0) == 1 && l == 0 && aead->get_params(ctx, q) == 1;
    }
    bool open_tag(const unsigned char* tag) {  // false: the tag does not match
        std::size_t l = 0;
        OSSL_PARAM q[] = {OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG, const_cast<unsigned char*>(tag),
                                                            tls13::kTagLen),
                          OSSL_PARAM_construct_end()};
        return aead->set_params(ctx, q) == 1 && aead->final(ctx, nullptr, &l, 0) == 1 && l == 0;
    }
};

TlsSession::TlsSession(TlsContext& ctx, int fd) : fd_(fd) {
    ssl_ = SSL_new(ctx.ctx());
    BIO* bio = BIO_new(bio_method());
    BIO_set_data(bio, this);
    SSL_set_bio(ssl_, bio, bio);
    SSL_set_accept_state(ssl_);
    if (ctx.own_records()) {
        // The own record layer takes over right after the client's Finished: OpenSSL must not read a
        // byte past it (no read-ahead during the handshake), and the records it writes under the
        // server's application key (the session tickets) are counted, for the first sequence number.
        want_own_ = true;
        own_strict_ = ctx.own_records_strict();
        SSL_set_app_data(ssl_, this);
        SSL_set_read_ahead(ssl_, 0);
        SSL_set_msg_callback(ssl_, &TlsSession::msg_cb);
        SSL_set_msg_callback_arg(ssl_, this);
    }
}

TlsSession::~TlsSession() {
    if (ssl_) SSL_free(ssl_);  // frees the BIO
    std::free(out_);
    std::free(rbuf_);
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
    if (own_) {  // the own layer seals into out_: keep it while busy (release_buffers() frees it)
        out_off_ = out_len_ = 0;
        return 0;
    }
    if (out_cap_ > 0) {  // drained: an idle connection keeps no output buffer
        std::free(out_);
        out_ = nullptr;
        out_cap_ = out_off_ = out_len_ = 0;
    }
    return 0;
}

bool TlsSession::has_pending_output() const { return out_off_ < out_len_; }

bool TlsSession::has_buffered_input() const {
    if (own_) {
        if (plain_len_ > 0) return true;
        return tls13::parse_header(rbuf_ + r_off_, r_len_ - r_off_).status != tls13::HeaderView::Partial;
    }
    return SSL_has_pending(ssl_) == 1;
}

int TlsSession::handshake() {
    ERR_clear_error();
    corked_ = true;  // a flight (or the session tickets after it) leaves in one send
    int r = SSL_do_handshake(ssl_);
    corked_ = false;
    if (send_pending() < 0) return -1;
    if (r == 1) {
        established_ = true;
        if (want_own_) {
            SSL_set_msg_callback(ssl_, nullptr);
            if (!start_own()) {  // TLS 1.2 or an unusual case: OpenSSL's path
                rd_.reset();  // the secrets, cleansed
                wr_.reset();
                if (own_strict_ && SSL_version(ssl_) == TLS1_3_VERSION) return -1;
                SSL_set_read_ahead(ssl_, 1);
            }
        }
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
    if (own_) return own_read(dst, n);
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
    if (own_) {
        while (n > 0 && !werr_ && write_room() > 0) {
            std::size_t take = n < tls13::kMaxPlain ? n : tls13::kMaxPlain;
            if (take > write_room()) take = write_room();
            if (!seal(tls13::kApplicationData, p, take)) break;
            total += take;
            p += take;
            n -= take;
        }
        return total;
    }
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

void TlsSession::release_buffers() {
    if (!own_) {
        SSL_free_buffers(ssl_);
        return;
    }
    if (rbuf_ && r_off_ == r_len_ && plain_len_ == 0) {
        std::free(rbuf_);
        rbuf_ = nullptr;
        r_off_ = r_len_ = 0;
    }
    if (out_ && out_off_ == out_len_) {
        std::free(out_);
        out_ = nullptr;
        out_cap_ = out_off_ = out_len_ = 0;
    }
}

void TlsSession::shutdown() {
    if (own_) {
        if (!dead_ && !closing_) {
            static const char kCloseNotify[] = {1, 0};
            closing_ = true;
            seal(tls13::kAlert, kCloseNotify, 2);
        }
        return;
    }
    ERR_clear_error();
    SSL_shutdown(ssl_);
}

void TlsSession::keylog_cb(const SSL* ssl, const char* line) {
    auto* s = static_cast<TlsSession*>(SSL_get_app_data(ssl));
    if (!s || !s->want_own_) return;
    unsigned char secret[48];
    tls13::KeylogSecret k = tls13::parse_keylog(line, secret);
    if (k.side == tls13::KeylogSecret::kNone) return;
    bool client = k.side == tls13::KeylogSecret::kClient;
    auto& d = client ? s->rd_ : s->wr_;
    if (!d) d = std::make_unique<Direction>();
    d->have_secret = k.len > 0;
    d->secret_len = k.len;
    std::memcpy(d->secret, secret, sizeof secret);
    OPENSSL_cleanse(secret, sizeof secret);
    // Records OpenSSL handles from now on in this direction are under this secret's key.
    if (client) {
        s->rcount_ = 0;
    } else {
        s->wcount_ = 0;
        s->wire_after_key_ = 0;
        s->wire_aligned_ = s->whdr_len_ == 0 && s->wbody_left_ == 0;
    }
}

void TlsSession::msg_cb(int write_p, int, int content_type, const void*, std::size_t, SSL*, void* arg) {
    if (content_type != SSL3_RT_HEADER) return;
    auto* s = static_cast<TlsSession*>(arg);
    if (write_p) {
        if (s->wr_) ++s->wcount_;
    } else {
        if (s->rd_) ++s->rcount_;
    }
}

bool TlsSession::start_own() {
    if (SSL_version(ssl_) != TLS1_3_VERSION || !rd_ || !wr_ || !rd_->have_secret || !wr_->have_secret) return false;
    // OpenSSL must hold nothing the own layer would miss: no byte read past the client's Finished, no
    // application record read, nothing queued to write.
    if (SSL_has_pending(ssl_) || SSL_pending(ssl_) > 0 || rcount_ != 0) return false;
    // The write side's first sequence number: the records OpenSSL wrote under the application key, as
    // its callback counted them and as they went through our BIO (a nonce must never be used twice).
    if (!wire_aligned_ || whdr_len_ != 0 || wbody_left_ != 0 || wire_after_key_ != wcount_) return false;
    const SSL_CIPHER* c = SSL_get_current_cipher(ssl_);
    if (!c) return false;
    int idx = tls13::suite_index(SSL_CIPHER_get_protocol_id(c));
    if (idx < 0 || !aead_for(idx)) return false;
    if (rd_->secret_len != kSuites[idx].hash_len || wr_->secret_len != kSuites[idx].hash_len) return false;
    for (Direction* d : {rd_.get(), wr_.get()}) {
        d->suite = &kSuites[idx];
        d->aead = aead_for(idx);
    }
    if (!rd_->install(false, 0) || !wr_->install(true, wcount_)) {
        ERR_clear_error();
        return false;  // nothing was sent or read with these keys yet: OpenSSL's path still works
    }
    own_ = true;
    SSL_free_buffers(ssl_);
    return true;
}

// Room for n more bytes at the end of out_ (the unsent ciphertext), or null when out of memory.
unsigned char* TlsSession::out_reserve(std::size_t n) {
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
            if (!np) return nullptr;
            out_ = np;
            out_cap_ = cap;
        }
    }
    return reinterpret_cast<unsigned char*>(out_ + out_len_);
}

bool TlsSession::seal(unsigned char type, const char* p, std::size_t n) {
    Piece one{p, n};
    return seal_pieces(type, &one, 1);
}

bool TlsSession::write_record(const Piece* pieces, int count) { return seal_pieces(tls13::kApplicationData, pieces, count); }

// Appends one record (content type `type`, the pieces' bytes: at most 2^14, no padding) to out_.
bool TlsSession::seal_pieces(unsigned char type, const Piece* pieces, int count) {
    std::size_t n = 0;
    for (int i = 0; i < count; ++i) n += pieces[i].n;
    if (n > tls13::kMaxPlain) {
        werr_ = EINVAL;
        return false;
    }
    if (werr_ || dead_) return false;
    Direction& w = *wr_;
    if (w.seq >= kWriteKeyLimit && type != tls13::kHandshake && !update_write_key()) return false;
    if (w.seq == UINT64_MAX) {  // never reached in practice (the key is updated long before)
        werr_ = EPROTO;
        dead_ = true;
        return false;
    }
    std::size_t clen = n + 1 + tls13::kTagLen;
    unsigned char* rec = out_reserve(tls13::kHeaderLen + clen);
    if (!rec) {
        werr_ = ENOMEM;
        return false;
    }
    tls13::write_header(rec, clen);
    unsigned char* body = rec + tls13::kHeaderLen;
    bool ok = w.start(rec, true);
    // [0, done) encrypted; [done, done + staged) copied in, not yet encrypted. Small pieces are copied
    // (one update for all of them is cheaper than one each), large ones encrypted from where they are.
    std::size_t done = 0, staged = 0;
    for (int i = 0; ok && i < count; ++i) {
        const Piece& pc = pieces[i];
        if (pc.n <= 2048) {
            std::memcpy(body + done + staged, pc.p, pc.n);
            staged += pc.n;
            continue;
        }
        ok = w.crypt(body + done, body + done, staged);
        done += staged;
        staged = 0;
        ok = ok && w.crypt(body + done, reinterpret_cast<const unsigned char*>(pc.p), pc.n);
        done += pc.n;
    }
    body[n] = type;
    ok = ok && w.crypt(body + done, body + done, staged + 1) && w.seal_tag(body + n + 1);
    ++w.seq;  // never reused, even when sealing failed
    if (!ok) {
        ERR_clear_error();
        werr_ = EIO;
        dead_ = true;
        return false;
    }
    out_len_ += tls13::kHeaderLen + clen;
    return true;
}

// Our own KeyUpdate (update_not_requested), then the next write key.
bool TlsSession::update_write_key() {
    static const char kKeyUpdate[] = {24, 0, 0, 1, 0};
    if (!seal(tls13::kHandshake, kKeyUpdate, sizeof kKeyUpdate)) return false;
    if (!wr_->update(true)) {
        ERR_clear_error();
        werr_ = EIO;
        dead_ = true;
        return false;
    }
    return true;
}

void TlsSession::fail(unsigned char alert) {
    if (!dead_ && alert) {
        const char a[2] = {2, static_cast<char>(alert)};
        seal(tls13::kAlert, a, 2);
        send_pending();
    }
    dead_ = true;
}

// A handshake record after the handshake: only KeyUpdate is accepted, alone in its record (a key
// change must fall on a record boundary).
bool TlsSession::post_handshake(const unsigned char* m, std::size_t n) {
    if (n < 4 || m[0] != 24) {
        fail(kUnexpectedMessage);
        return false;
    }
    if (n != 5 || m[1] != 0 || m[2] != 0 || m[3] != 1 || m[4] > 1) {
        fail(n > 5 ? kUnexpectedMessage : kDecodeError);
        return false;
    }
    if (!rd_->update(false)) {
        ERR_clear_error();
        fail(kInternalError);
        return false;
    }
    if (m[4] == 1 && !update_write_key()) {  // update_requested: answer before any more data
        fail(0);
        return false;
    }
    return true;
}

long TlsSession::own_read(char* dst, std::size_t n) {
    using tls13::HeaderView;
    if (n == 0) {  // 0 would read as the peer's close
        errno = EINVAL;
        return -1;
    }
    for (;;) {
        if (plain_len_ > 0) {
            std::size_t k = plain_len_ < n ? plain_len_ : n;
            std::memcpy(dst, plain_, k);
            plain_ += k;
            plain_len_ -= k;
            return static_cast<long>(k);
        }
        if (dead_) {
            errno = EPROTO;
            return -1;
        }
        if (peer_closed_) return 0;
        HeaderView h = tls13::parse_header(rbuf_ + r_off_, r_len_ - r_off_);
        if (r_len_ - r_off_ >= tls13::kHeaderLen && h.type != tls13::kApplicationData) {
            fail(kUnexpectedMessage);  // change_cipher_spec, a plaintext alert, ... after the handshake
            errno = EPROTO;
            return -1;
        }
        if (h.status == HeaderView::Bad) {
            fail(h.cipher_len > tls13::kMaxCipher ? kRecordOverflow : kDecodeError);
            errno = EPROTO;
            return -1;
        }
        if (h.status == HeaderView::Partial) {
            if (eof_) return 0;  // closed (maybe mid-record) without close_notify
            if (!rbuf_) {
                rbuf_ = static_cast<unsigned char*>(std::malloc(kRbufCap));
                if (!rbuf_) {
                    errno = ENOMEM;
                    return -1;
                }
            }
            if (r_off_ == r_len_) {
                r_off_ = r_len_ = 0;
            } else if (r_off_ > 0 && (r_len_ == kRbufCap || r_off_ + tls13::kMaxRecord > kRbufCap)) {
                std::memmove(rbuf_, rbuf_ + r_off_, r_len_ - r_off_);  // a partial record, to the front
                r_len_ -= r_off_;
                r_off_ = 0;
            }
            ssize_t k;
            do {
                k = ::recv(fd_, rbuf_ + r_len_, kRbufCap - r_len_, 0);
            } while (k < 0 && errno == EINTR);
            if (k > 0) {
                r_len_ += static_cast<std::size_t>(k);
                continue;
            }
            if (k == 0) {
                eof_ = true;
                return 0;
            }
            return -1;  // errno: EAGAIN or the error
        }
        unsigned char* rec = rbuf_ + r_off_;
        std::size_t clen = h.cipher_len;
        r_off_ += tls13::kHeaderLen + clen;
        Direction& r = *rd_;
        std::size_t plen = clen - tls13::kTagLen;
        // Straight into the caller's buffer when it has room, else in place.
        unsigned char* out = plen <= n ? reinterpret_cast<unsigned char*>(dst) : rec + tls13::kHeaderLen;
        bool ok = r.seq != UINT64_MAX && r.start(rec, false) && r.crypt(out, rec + tls13::kHeaderLen, plen) &&
                  r.open_tag(rec + tls13::kHeaderLen + plen);
        if (!ok) {
            ERR_clear_error();
            fail(kBadRecordMac);
            errno = EPROTO;
            return -1;
        }
        ++r.seq;
        std::size_t m = 0;
        unsigned char type = tls13::inner_type(out, plen, m);
        if (m > tls13::kMaxPlain) {  // content over 2^14 (padding is not counted, as OpenSSL does)
            fail(kRecordOverflow);
            errno = EPROTO;
            return -1;
        }
        switch (type) {
            case tls13::kApplicationData:
                if (m == 0) continue;  // an empty record (allowed)
                if (out == reinterpret_cast<unsigned char*>(dst)) return static_cast<long>(m);
                plain_ = out;
                plain_len_ = m;
                continue;
            case tls13::kAlert:
                if (m != 2) {
                    fail(kDecodeError);
                    errno = EPROTO;
                    return -1;
                }
                if (out[1] == 0) {  // close_notify
                    peer_closed_ = true;
                    return 0;
                }
                if (out[1] == 90) continue;  // user_canceled: close_notify follows
                dead_ = true;                // a fatal alert: no answer
                errno = ECONNRESET;
                return -1;
            case tls13::kHandshake:
                if (m == 0) {
                    fail(kUnexpectedMessage);
                } else if (post_handshake(out, m)) {
                    continue;
                }
                errno = EPROTO;
                return -1;
            default:
                fail(kUnexpectedMessage);
                errno = EPROTO;
                return -1;
        }
    }
}

}  // namespace luath::net

#endif
