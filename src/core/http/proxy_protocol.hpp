// PROXY protocol header (HAProxy's spec, versions 1 and 2): what an L4 proxy (nginx `listen ...
// proxy_protocol`, HAProxy `send-proxy`/`send-proxy-v2`, cloud load balancers) writes before the first
// byte of the client's stream, carrying the client's address.
// No Python, no libuv, no allocation.
//
// parse_proxy_header() looks at the bytes received so far, from the start of the connection, and
// returns NeedMore, Done (with the header's length and addresses) or Error. It is a pure function of
// those bytes, scanned left to right: feeding any prefix of an input gives either NeedMore or exactly
// the result of the whole input, so the header may arrive split at any byte. Bytes after `consumed`
// are the client's stream (HTTP, or a TLS ClientHello).
//
// v1: "PROXY TCP4 <src> <dst> <sport> <dport>\r\n", "PROXY TCP6 ..." or "PROXY UNKNOWN[ <anything>]\r\n",
//     at most 107 bytes. Strict: single spaces, dotted-quad IPv4 without leading zeros, IPv6 text
//     without zone, ports 0..65535 in decimal without leading zeros, CRLF.
// v2: the 12-byte signature, version 2, command LOCAL or PROXY, family UNSPEC/INET/INET6/UNIX with
//     transport STREAM or DGRAM (UNSPEC only as 0x00), a 16-bit length that covers at least the
//     family's address block; TLVs after the addresses are checked to be well framed and skipped, but a
//     PP2_TYPE_CRC32C TLV (0x03) must be 4 bytes and match the CRC32c of the whole header computed with
//     its value as zeros (as HAProxy does). The whole header is at most kProxyHeaderMax bytes.
// The addresses are used only for PROXY over INET/INET6 (v1 TCP4/TCP6): for v2 LOCAL (a proxy's own
// health check), v1 UNKNOWN, v2 UNSPEC and UNIX the connection's real peer stays the peer.
#pragma once

#include <cstddef>
#include <cstdint>

namespace luath::http {

inline constexpr std::size_t kProxyV1Max = 107;      // the spec's bound, CRLF included
inline constexpr std::size_t kProxyHeaderMax = 1040;  // v2: 16 + 1024 (the spec suggests 536 is enough)

enum class ProxyStatus : std::uint8_t { NeedMore, Done, Error };

enum class ProxyError : std::uint8_t {
    None,
    BadSignature,  // neither "PROXY " nor the v2 signature
    BadSyntax,     // v1: unknown protocol, wrong separator, bare CR or LF
    BadAddress,    // v1: an address that is not valid for its protocol
    BadPort,       // v1: not 0..65535, or a leading zero
    TooLong,       // v1 over 107 bytes, v2 over kProxyHeaderMax
    BadVersion,    // v2: version nibble is not 2
    BadCommand,    // v2: neither LOCAL nor PROXY
    BadFamily,     // v2: unknown address family or transport
    BadLength,     // v2: length shorter than the family's address block
    BadTlv,        // v2: a TLV that overruns the header, or a CRC32C TLV whose length is not 4
    BadChecksum,   // v2: the CRC32C TLV does not match the header
};

struct ProxyHeader {
    enum class Family : std::uint8_t { None, Inet, Inet6 };
    std::uint8_t version = 0;  // 1 or 2
    bool local = false;        // v2 LOCAL
    // Inet/Inet6: use the addresses; None: keep the connection's real peer.
    Family family = Family::None;
    std::uint8_t src_addr[16] = {};  // network byte order; Inet uses the first 4 bytes
    std::uint8_t dst_addr[16] = {};
    std::uint16_t src_port = 0;  // host byte order
    std::uint16_t dst_port = 0;
};

struct ProxyResult {
    ProxyStatus status = ProxyStatus::NeedMore;
    ProxyError error = ProxyError::None;
    std::size_t consumed = 0;  // Done: the header's length
};

// buf[0..len): every byte received so far on the connection. `out` is written only on Done.
ProxyResult parse_proxy_header(const char* buf, std::size_t len, ProxyHeader& out);

const char* proxy_error_name(ProxyError e);

// CRC-32C (Castagnoli, reflected, as iSCSI and the PROXY protocol use it) of n bytes, continuing from
// `crc` (0 to start): crc32c("123456789") == 0xE3069283.
std::uint32_t crc32c(const void* data, std::size_t n, std::uint32_t crc = 0);

}  // namespace luath::http
