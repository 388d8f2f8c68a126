// TLS 1.3 key schedule pieces shared by luath's own record layer (tls.cpp) and the benchmark's client
// (bench/http_client.cpp): the suites it handles, the traffic secrets OpenSSL's key log hands over, and
// HKDF-Expand-Label (RFC 8446 7.1) through OpenSSL's HKDF. No Python, no libuv.
#pragma once

#include "net/tls_record.hpp"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>

#include <cstddef>
#include <cstring>

namespace luath::net::tls13 {

struct Suite {
    int id;              // IANA number (SSL_CIPHER_get_protocol_id)
    const char* cipher;  // EVP name
    const char* digest;  // the HKDF hash
    std::size_t key_len;
    std::size_t hash_len;  // also the traffic secret's length
};
inline constexpr Suite kSuites[] = {
    {0x1301, "AES-128-GCM", "SHA256", 16, 32},
    {0x1302, "AES-256-GCM", "SHA384", 32, 48},
    {0x1303, "ChaCha20-Poly1305", "SHA256", 32, 32},
};
inline constexpr int kSuiteCount = 3;

// Index into kSuites, or -1.
inline int suite_index(int id) {
    for (int i = 0; i < kSuiteCount; ++i)
        if (kSuites[i].id == id) return i;
    return -1;
}

// A key-log line (SSL_CTX_set_keylog_callback) carrying a first application traffic secret:
// "CLIENT_TRAFFIC_SECRET_0 <client random> <secret>" or SERVER_..., the secret in hex.
struct KeylogSecret {
    enum Side { kNone, kClient, kServer } side = kNone;  // kNone: another line
    std::size_t len = 0;                                 // bytes in secret: 32 or 48; 0 when malformed
};
inline KeylogSecret parse_keylog(const char* line, unsigned char (&secret)[48]) {
    KeylogSecret k;
    if (std::strncmp(line, "CLIENT_TRAFFIC_SECRET_0 ", 24) == 0) k.side = KeylogSecret::kClient;
    else if (std::strncmp(line, "SERVER_TRAFFIC_SECRET_0 ", 24) == 0) k.side = KeylogSecret::kServer;
    else return k;
    const char* sp = std::strchr(line + 24, ' ');  // after the client random
    if (!sp) return k;
    std::size_t hlen = std::strlen(sp + 1);
    if ((hlen == 64 || hlen == 96) && unhex(sp + 1, hlen, secret, hlen / 2)) k.len = hlen / 2;
    return k;
}

// HKDF-Expand-Label(secret, label, "", out_len) with the suite's hash; secret is hash_len bytes.
inline bool expand_label(const Suite& s, const unsigned char* secret, const char* label, unsigned char* out,
                         std::size_t out_len) {
    static EVP_KDF* kdf = EVP_KDF_fetch(nullptr, "HKDF", nullptr);
    if (!kdf) return false;
    unsigned char info[2 + 1 + 255 + 1];
    std::size_t info_len = hkdf_label(info, out_len, label);
    EVP_KDF_CTX* k = EVP_KDF_CTX_new(kdf);
    if (!k) return false;
    int mode = EVP_KDF_HKDF_MODE_EXPAND_ONLY;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode),
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, const_cast<char*>(s.digest), 0),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, const_cast<unsigned char*>(secret), s.hash_len),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info, info_len),
        OSSL_PARAM_construct_end(),
    };
    bool ok = info_len > 0 && EVP_KDF_derive(k, out, out_len, params) == 1;
    EVP_KDF_CTX_free(k);
    return ok;
}

}  // namespace luath::net::tls13
