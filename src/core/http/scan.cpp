// Byte scans of the request line and header block: scalar, SSE4.2, AVX2 (x86-64, chosen at run time with
// __builtin_cpu_supports; the vector code is compiled with target pragmas, so no -march flag is needed)
// and NEON (arm64). Every implementation returns exactly what the scalar one returns.
//
// Vector loops only load whole 16/32-byte blocks inside [p, end); the rest is scanned byte by byte.
#include "http/scan.hpp"

#include "http/head_internal.hpp"

#include <array>
#include <cstring>
#include <optional>
#include <string_view>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define LUATH_SCAN_X86 1
#include <immintrin.h>
#endif
#if defined(__aarch64__) && defined(__ARM_NEON)
#define LUATH_SCAN_NEON 1
#include <arm_neon.h>
#endif

// The scans are inlined into the field-line loop of the same instruction set (and kept out of line for the
// function table too).
#define LUATH_SCAN_INLINE inline __attribute__((always_inline))

namespace luath::http {
namespace scan {
namespace {

enum : std::uint8_t { kTchar = 1, kValue = 2, kTarget = 4 };

constexpr bool in(std::string_view set, int c) {
    for (char s : set)
        if (static_cast<unsigned char>(s) == c) return true;
    return false;
}

constexpr bool is_tchar(int c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           in("!#$%&'*+-.^_`|~", c);
}

constexpr std::array<std::uint8_t, 256> kClass = [] {
    std::array<std::uint8_t, 256> t{};
    for (int c = 0; c < 256; ++c) {
        std::uint8_t f = 0;
        if (is_tchar(c)) f |= kTchar;
        if (c == '\t' || (c >= 0x20 && c <= 0x7e) || c >= 0x80) f |= kValue;
        if ((c >= 0x21 && c <= 0x7e && c != '#') || c >= 0x80) f |= kTarget;
        t[static_cast<std::size_t>(c)] = f;
    }
    return t;
}();

inline bool has(char c, std::uint8_t f) { return kClass[static_cast<unsigned char>(c)] & f; }

inline const char* tail(const char* p, const char* end, std::uint8_t f) {
    while (p < end && has(*p, f)) ++p;
    return p;
}

// Nibble tables for tchar (used by the pshufb / tbl classifiers): a byte b is a tchar iff
// kTokLo[b & 15] & kTokHi[b >> 4] != 0. Bit h of kTokLo[l] is set when (h << 4 | l) is a tchar (h < 8).
constexpr std::array<std::uint8_t, 16> kTokLo = [] {
    std::array<std::uint8_t, 16> t{};
    for (int c = 0; c < 128; ++c)
        if (is_tchar(c)) t[static_cast<std::size_t>(c & 15)] |= static_cast<std::uint8_t>(1u << (c >> 4));
    return t;
}();
constexpr std::array<std::uint8_t, 16> kTokHi = {1, 2, 4, 8, 16, 32, 64, 128, 0, 0, 0, 0, 0, 0, 0, 0};
// The same for reg-name bytes (RFC 3986 3.2.2: unreserved / sub-delims; kTokHi is the high-nibble table).
constexpr bool is_regname(int c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || in("-._~!$&'()*+,;=", c);
}
constexpr std::array<std::uint8_t, 16> kRegLo = [] {
    std::array<std::uint8_t, 16> t{};
    for (int c = 0; c < 128; ++c)
        if (is_regname(c)) t[static_cast<std::size_t>(c & 15)] |= static_cast<std::uint8_t>(1u << (c >> 4));
    return t;
}();

// The line classifier of head_fast.inc: one pshufb pair gives m = kLineLo[b & 15] & kLineHi[b >> 4], whose
// bits 0-4 are set only for tchar bytes (one bit per high nibble 2, 3, 4, 5 and 7; high nibble 6 is all
// tchar, and every low nibble has a tchar in one of the others) and bit 7 only for DEL: b is a tchar iff
// (int8_t)m > 0, i.e. iff the sign bit of m - 1 with signed saturation is clear (m is 0 or 0x80 = -128
// otherwise), and b is DEL iff m & 0x80.
constexpr std::array<std::uint8_t, 16> kLineHi = {0, 0, 1, 2, 4, 8, 0x1f, 16 | 0x80, 0, 0, 0, 0, 0, 0, 0, 0};
constexpr std::array<std::uint8_t, 16> kLineLo = [] {
    std::array<std::uint8_t, 16> t{};
    for (int c = 0x20; c < 0x80; ++c)
        if (is_tchar(c) && (c >> 4) != 6)
            t[static_cast<std::size_t>(c & 15)] |= kLineHi[static_cast<std::size_t>(c >> 4)] & 0x1f;
    t[15] |= 0x80;
    return t;
}();
constexpr bool line_tables_ok() {
    for (int c = 0; c < 256; ++c) {
        const std::uint8_t m = kLineLo[static_cast<std::size_t>(c & 15)] & kLineHi[static_cast<std::size_t>(c >> 4)];
        if (is_tchar(c) != (m != 0 && m < 0x80)) return false;
        if ((c == 0x7f) != ((m & 0x80) != 0)) return false;
    }
    return true;
}
static_assert(line_tables_ok());

// 32-byte constants for vector loads (AVX2 uses all, SSE4.2 the first 16 bytes).
struct alignas(32) Splat {
    std::uint8_t b[32];
};
constexpr Splat splat(std::uint8_t v) {
    Splat s{};
    for (auto& x : s.b) x = v;
    return s;
}
constexpr Splat twice(const std::array<std::uint8_t, 16>& t) {
    Splat s{};
    for (int i = 0; i < 32; ++i) s.b[i] = t[static_cast<std::size_t>(i & 15)];
    return s;
}

}  // namespace

// The constants of head_fast.inc's classifiers. Not const on purpose: the compiler then takes them from
// memory (as operands of the vector instructions) instead of rebuilding them from immediates in the loops
// or keeping copies in stack slots. Never written.
struct HeadConsts {
    Splat nib, c1f, c20, del, hash, qmark, one, digit0, nine, line_lo, line_hi, reg_lo, tok_hi;
};
extern HeadConsts g_head_consts;
HeadConsts g_head_consts = {splat(0x0f), splat(0x1f), splat(0x20), splat(0x7f), splat('#'), splat('?'), splat(1),
                            splat('0'),  splat(9),    twice(kLineLo), twice(kLineHi), twice(kRegLo), twice(kTokHi)};

namespace {

// Two bit masks of one block (see head_fast.inc).
struct Masks2 {
    std::uint32_t a, b;
};

// ---------------------------------------------------------------------------------------------------------
namespace scalar {

// SWAR: true when the 8 bytes in x may hold a CTL or DEL (HTAB included: then checked byte by byte).
inline bool suspect(std::uint64_t x) {
    constexpr std::uint64_t kOnes = 0x0101010101010101ull, kHighs = 0x8080808080808080ull;
    const std::uint64_t below_space = (x - kOnes * 0x20) & ~x & kHighs;
    const std::uint64_t y = x ^ (kOnes * 0x7f);
    const std::uint64_t del = (y - kOnes) & ~y & kHighs;
    return (below_space | del) != 0;
}

LUATH_SCAN_INLINE const char* find_value(const char* p, const char* end) {
    for (;;) {
        while (end - p >= 8) {
            std::uint64_t x;
            std::memcpy(&x, p, 8);
            if (suspect(x)) break;
            p += 8;
        }
        const char* stop = end - p >= 8 ? p + 8 : end;
        while (p < stop && has(*p, kValue)) ++p;
        if (p < stop || p == end) return p;
    }
}
LUATH_SCAN_INLINE const char* find_target(const char* p, const char* end) { return tail(p, end, kTarget); }
LUATH_SCAN_INLINE const char* find_token(const char* p, const char* end) { return tail(p, end, kTchar); }

#include "http/scan_fields.inc"

}  // namespace scalar

// ---------------------------------------------------------------------------------------------------------
#ifdef LUATH_SCAN_X86
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("sse4.2"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("sse4.2")
#endif
namespace sse42 {

inline int token_mask16(__m128i x) {
    const __m128i lo_t = _mm_loadu_si128(reinterpret_cast<const __m128i*>(kTokLo.data()));
    const __m128i hi_t = _mm_loadu_si128(reinterpret_cast<const __m128i*>(kTokHi.data()));
    const __m128i nib = _mm_set1_epi8(0x0f);
    const __m128i lo = _mm_shuffle_epi8(lo_t, _mm_and_si128(x, nib));
    const __m128i hi = _mm_shuffle_epi8(hi_t, _mm_and_si128(_mm_srli_epi16(x, 4), nib));
    const __m128i ok = _mm_cmpeq_epi8(_mm_and_si128(lo, hi), _mm_setzero_si128());  // 0xff = not tchar
    return _mm_movemask_epi8(ok);
}

// PCMPESTRI with the ranges of allowed bytes, negated: index of the first byte outside all of them (16 when
// none). (Negative polarity rather than the forbidden ranges: same cost, and valgrind can run this mode.)
constexpr int kOutsideRanges = _SIDD_UBYTE_OPS | _SIDD_CMP_RANGES | _SIDD_NEGATIVE_POLARITY | _SIDD_LEAST_SIGNIFICANT;
LUATH_SCAN_INLINE const char* find_value(const char* p, const char* end) {
    static const char kRanges[16] = "\x09\x09\x20\x7e\x80\xff";
    const __m128i r = _mm_loadu_si128(reinterpret_cast<const __m128i*>(kRanges));
    while (end - p >= 16) {
        const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
        const int i = _mm_cmpestri(r, 6, x, 16, kOutsideRanges);
        if (i != 16) return p + i;
        p += 16;
    }
    return tail(p, end, kValue);
}
LUATH_SCAN_INLINE const char* find_target(const char* p, const char* end) {
    static const char kRanges[16] = "\x21\x22\x24\x7e\x80\xff";
    const __m128i r = _mm_loadu_si128(reinterpret_cast<const __m128i*>(kRanges));
    while (end - p >= 16) {
        const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
        const int i = _mm_cmpestri(r, 6, x, 16, kOutsideRanges);
        if (i != 16) return p + i;
        p += 16;
    }
    return tail(p, end, kTarget);
}
LUATH_SCAN_INLINE const char* find_token(const char* p, const char* end) {
    while (end - p >= 16) {
        const int m = token_mask16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
        if (m) return p + __builtin_ctz(static_cast<unsigned>(m));
        p += 16;
    }
    return tail(p, end, kTchar);
}

// The block classifier of scan_fields.inc (constants set up once per call of fields()).
struct Block {
    __m128i lo_t, hi_t, nib, c1f, tab, del;
    // (A user-provided constructor: an implicit one would not get the target pragma.)
    LUATH_SCAN_INLINE Block()
        : lo_t(_mm_loadu_si128(reinterpret_cast<const __m128i*>(kTokLo.data()))),
          hi_t(_mm_loadu_si128(reinterpret_cast<const __m128i*>(kTokHi.data()))),
          nib(_mm_set1_epi8(0x0f)),
          c1f(_mm_set1_epi8(0x1f)),
          tab(_mm_set1_epi8('\t')),
          del(_mm_set1_epi8(0x7f)) {}
    LUATH_SCAN_INLINE void masks(const char* q, std::uint32_t& tok, std::uint32_t& val) const {
        const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(q));
        const __m128i lo = _mm_shuffle_epi8(lo_t, _mm_and_si128(x, nib));
        const __m128i hi = _mm_shuffle_epi8(hi_t, _mm_and_si128(_mm_srli_epi16(x, 4), nib));
        tok = static_cast<std::uint32_t>(
            _mm_movemask_epi8(_mm_cmpeq_epi8(_mm_and_si128(lo, hi), _mm_setzero_si128())));
        const __m128i le1f = _mm_cmpeq_epi8(_mm_min_epu8(x, c1f), x);
        val = static_cast<std::uint32_t>(_mm_movemask_epi8(
            _mm_or_si128(_mm_andnot_si128(_mm_cmpeq_epi8(x, tab), le1f), _mm_cmpeq_epi8(x, del))));
    }
};
#define LUATH_SCAN_BLOCK 16
#include "http/scan_fields.inc"

// head_fast.inc's classifier: 32-byte blocks, each from two 16-byte halves.
#define LUATH_K(name) _mm_load_si128(reinterpret_cast<const __m128i*>(g_head_consts.name.b))
struct HeadBlock {
    static LUATH_SCAN_INLINE __m128i load(const char* q) {
        return _mm_loadu_si128(reinterpret_cast<const __m128i*>(q));
    }
    static LUATH_SCAN_INLINE std::uint32_t bits(__m128i m) { return static_cast<std::uint32_t>(_mm_movemask_epi8(m)); }
    // x <= 0x1f
    static LUATH_SCAN_INLINE __m128i le1f(__m128i x) { return _mm_cmpeq_epi8(_mm_min_epu8(x, LUATH_K(c1f)), x); }
    LUATH_SCAN_INLINE void line16(__m128i x, std::uint32_t& tok, std::uint32_t& ctl) const {
        const __m128i nib = LUATH_K(nib);
        const __m128i lo = _mm_shuffle_epi8(LUATH_K(line_lo), _mm_and_si128(x, nib));
        const __m128i hi = _mm_shuffle_epi8(LUATH_K(line_hi), _mm_and_si128(_mm_srli_epi16(x, 4), nib));
        const __m128i m = _mm_and_si128(lo, hi);
        tok = bits(_mm_subs_epi8(m, LUATH_K(one)));
        ctl = bits(_mm_or_si128(le1f(x), m));
    }
    LUATH_SCAN_INLINE std::uint32_t ctl16(__m128i x) const {
        return bits(_mm_or_si128(le1f(x), _mm_cmpeq_epi8(x, LUATH_K(del))));
    }
    // {not a tchar, a CTL (HTAB included) or DEL}; the tchar classification of the second half only when
    // the first half is all tchar (the head parser looks at the first non-tchar only).
    LUATH_SCAN_INLINE Masks2 line(const char* q) const {
        std::uint32_t t0, c0;
        line16(load(q), t0, c0);
        const __m128i x1 = load(q + 16);
        if (t0) [[likely]]
            return {t0, c0 | ctl16(x1) << 16};
        std::uint32_t t1, c1;
        line16(x1, t1, c1);
        return {t1 << 16, c0 | c1 << 16};
    }
    // The same with every bit of both masks (for blocks shifted afterwards).
    LUATH_SCAN_INLINE Masks2 line_full(const char* q) const {
        std::uint32_t t0, c0, t1, c1;
        line16(load(q), t0, c0);
        line16(load(q + 16), t1, c1);
        return {t0 | t1 << 16, c0 | c1 << 16};
    }
    // a CTL (HTAB included) or DEL
    LUATH_SCAN_INLINE std::uint32_t ctl(const char* q) const { return ctl16(load(q)) | ctl16(load(q + 16)) << 16; }
    // {not a request-target byte, '?'} of 16 bytes
    LUATH_SCAN_INLINE Masks2 target16(const char* q) const {
        const __m128i x = load(q);
        const __m128i le20 = _mm_cmpeq_epi8(_mm_min_epu8(x, LUATH_K(c20)), x);
        const __m128i del_hash = _mm_or_si128(_mm_cmpeq_epi8(x, LUATH_K(del)), _mm_cmpeq_epi8(x, LUATH_K(hash)));
        return {bits(_mm_or_si128(le20, del_hash)), bits(_mm_cmpeq_epi8(x, LUATH_K(qmark)))};
    }
    // {not a request-target byte, '?'}; the second half only when the first has no byte that is not a
    // target byte (the head parser looks at the '?' before the first such byte only).
    LUATH_SCAN_INLINE Masks2 target(const char* q) const {
        const Masks2 m0 = target16(q);
        if (m0.a) [[likely]]
            return m0;
        const Masks2 m1 = target16(q + 16);
        return {m1.a << 16, m0.b | m1.b << 16};
    }
    LUATH_SCAN_INLINE Masks2 target_full(const char* q) const {
        const Masks2 m0 = target16(q), m1 = target16(q + 16);
        return {m0.a | m1.a << 16, m0.b | m1.b << 16};
    }
    // {not a reg-name byte ('%' included), not a digit} of 16 bytes
    LUATH_SCAN_INLINE Masks2 regname16(const char* q) const {
        const __m128i x = load(q);
        const __m128i nib = LUATH_K(nib);
        const __m128i lo = _mm_shuffle_epi8(LUATH_K(reg_lo), _mm_and_si128(x, nib));
        const __m128i hi = _mm_shuffle_epi8(LUATH_K(tok_hi), _mm_and_si128(_mm_srli_epi16(x, 4), nib));
        const __m128i d = _mm_sub_epi8(x, LUATH_K(digit0));
        const __m128i digit = _mm_cmpeq_epi8(_mm_min_epu8(d, LUATH_K(nine)), d);
        return {bits(_mm_cmpeq_epi8(_mm_and_si128(lo, hi), _mm_setzero_si128())), bits(digit) ^ 0xffffu};
    }
    // {not a reg-name byte ('%' included), not a digit}, for the first n (< 32) bytes at least
    LUATH_SCAN_INLINE Masks2 regname(const char* q, std::size_t n) const {
        const Masks2 m0 = regname16(q);
        if (n <= 16) return m0;
        const Masks2 m1 = regname16(q + 16);
        return {m0.a | m1.a << 16, m0.b | m1.b << 16};
    }
};
#include "http/head_fast.inc"
#undef LUATH_K

}  // namespace sse42
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,bmi,bmi2"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,bmi,bmi2")
#endif
namespace avx2 {

inline unsigned value_mask32(__m256i x) {
    const __m256i le1f = _mm256_cmpeq_epi8(_mm256_min_epu8(x, _mm256_set1_epi8(0x1f)), x);
    const __m256i tab = _mm256_cmpeq_epi8(x, _mm256_set1_epi8('\t'));
    const __m256i del = _mm256_cmpeq_epi8(x, _mm256_set1_epi8(0x7f));
    return static_cast<unsigned>(_mm256_movemask_epi8(_mm256_or_si256(_mm256_andnot_si256(tab, le1f), del)));
}
inline unsigned target_mask32(__m256i x) {
    const __m256i le20 = _mm256_cmpeq_epi8(_mm256_min_epu8(x, _mm256_set1_epi8(0x20)), x);
    const __m256i del = _mm256_cmpeq_epi8(x, _mm256_set1_epi8(0x7f));
    const __m256i hash = _mm256_cmpeq_epi8(x, _mm256_set1_epi8('#'));
    return static_cast<unsigned>(_mm256_movemask_epi8(_mm256_or_si256(le20, _mm256_or_si256(del, hash))));
}
inline unsigned token_mask32(__m256i x) {
    const __m256i lo_t = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(kTokLo.data())));
    const __m256i hi_t = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(kTokHi.data())));
    const __m256i nib = _mm256_set1_epi8(0x0f);
    const __m256i lo = _mm256_shuffle_epi8(lo_t, _mm256_and_si256(x, nib));
    const __m256i hi = _mm256_shuffle_epi8(hi_t, _mm256_and_si256(_mm256_srli_epi16(x, 4), nib));
    return static_cast<unsigned>(
        _mm256_movemask_epi8(_mm256_cmpeq_epi8(_mm256_and_si256(lo, hi), _mm256_setzero_si256())));
}

LUATH_SCAN_INLINE const char* find_value(const char* p, const char* end) {
    while (end - p >= 32) {
        const unsigned m = value_mask32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
        if (m) return p + __builtin_ctz(m);
        p += 32;
    }
    return sse42::find_value(p, end);
}
LUATH_SCAN_INLINE const char* find_target(const char* p, const char* end) {
    while (end - p >= 32) {
        const unsigned m = target_mask32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
        if (m) return p + __builtin_ctz(m);
        p += 32;
    }
    return sse42::find_target(p, end);
}
LUATH_SCAN_INLINE const char* find_token(const char* p, const char* end) {
    // Field names are short: one 16-byte step first avoids the 32-byte path's setup for most of them.
    if (end - p >= 16) {
        const int m = sse42::token_mask16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
        if (m) return p + __builtin_ctz(static_cast<unsigned>(m));
        p += 16;
    }
    while (end - p >= 32) {
        const unsigned m = token_mask32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
        if (m) return p + __builtin_ctz(m);
        p += 32;
    }
    return sse42::find_token(p, end);
}

// The block classifier of scan_fields.inc (constants set up once per call of fields()).
struct Block {
    __m256i lo_t, hi_t, nib, c1f, tab, del;
    // (A user-provided constructor: an implicit one would not get the target pragma.)
    LUATH_SCAN_INLINE Block()
        : lo_t(_mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(kTokLo.data())))),
          hi_t(_mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(kTokHi.data())))),
          nib(_mm256_set1_epi8(0x0f)),
          c1f(_mm256_set1_epi8(0x1f)),
          tab(_mm256_set1_epi8('\t')),
          del(_mm256_set1_epi8(0x7f)) {}
    LUATH_SCAN_INLINE void masks(const char* q, std::uint32_t& tok, std::uint32_t& val) const {
        const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q));
        const __m256i lo = _mm256_shuffle_epi8(lo_t, _mm256_and_si256(x, nib));
        const __m256i hi = _mm256_shuffle_epi8(hi_t, _mm256_and_si256(_mm256_srli_epi16(x, 4), nib));
        tok = static_cast<std::uint32_t>(
            _mm256_movemask_epi8(_mm256_cmpeq_epi8(_mm256_and_si256(lo, hi), _mm256_setzero_si256())));
        const __m256i le1f = _mm256_cmpeq_epi8(_mm256_min_epu8(x, c1f), x);
        val = static_cast<std::uint32_t>(_mm256_movemask_epi8(
            _mm256_or_si256(_mm256_andnot_si256(_mm256_cmpeq_epi8(x, tab), le1f), _mm256_cmpeq_epi8(x, del))));
    }
};
#define LUATH_SCAN_BLOCK 32
#include "http/scan_fields.inc"

// head_fast.inc's classifier: 32-byte blocks.
#define LUATH_K(name) _mm256_load_si256(reinterpret_cast<const __m256i*>(g_head_consts.name.b))
struct HeadBlock {
    static LUATH_SCAN_INLINE __m256i load(const char* q) {
        return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q));
    }
    static LUATH_SCAN_INLINE std::uint32_t bits(__m256i m) {
        return static_cast<std::uint32_t>(_mm256_movemask_epi8(m));
    }
    // x <= 0x1f
    static LUATH_SCAN_INLINE __m256i le1f(__m256i x) {
        return _mm256_cmpeq_epi8(_mm256_min_epu8(x, LUATH_K(c1f)), x);
    }
    // {not a tchar, a CTL (HTAB included) or DEL}
    LUATH_SCAN_INLINE Masks2 line(const char* q) const {
        const __m256i x = load(q);
        const __m256i nib = LUATH_K(nib);
        const __m256i lo = _mm256_shuffle_epi8(LUATH_K(line_lo), _mm256_and_si256(x, nib));
        const __m256i hi = _mm256_shuffle_epi8(LUATH_K(line_hi), _mm256_and_si256(_mm256_srli_epi16(x, 4), nib));
        const __m256i m = _mm256_and_si256(lo, hi);
        return {bits(_mm256_subs_epi8(m, LUATH_K(one))), bits(_mm256_or_si256(le1f(x), m))};
    }
    LUATH_SCAN_INLINE Masks2 line_full(const char* q) const { return line(q); }
    // a CTL (HTAB included) or DEL
    LUATH_SCAN_INLINE std::uint32_t ctl(const char* q) const {
        const __m256i x = load(q);
        return bits(_mm256_or_si256(le1f(x), _mm256_cmpeq_epi8(x, LUATH_K(del))));
    }
    // {not a request-target byte, '?'}
    LUATH_SCAN_INLINE Masks2 target(const char* q) const {
        const __m256i x = load(q);
        const __m256i le20 = _mm256_cmpeq_epi8(_mm256_min_epu8(x, LUATH_K(c20)), x);
        const __m256i del_hash =
            _mm256_or_si256(_mm256_cmpeq_epi8(x, LUATH_K(del)), _mm256_cmpeq_epi8(x, LUATH_K(hash)));
        return {bits(_mm256_or_si256(le20, del_hash)), bits(_mm256_cmpeq_epi8(x, LUATH_K(qmark)))};
    }
    LUATH_SCAN_INLINE Masks2 target_full(const char* q) const { return target(q); }
    // {not a reg-name byte ('%' included), not a digit}
    LUATH_SCAN_INLINE Masks2 regname(const char* q, std::size_t) const {
        const __m256i x = load(q);
        const __m256i nib = LUATH_K(nib);
        const __m256i lo = _mm256_shuffle_epi8(LUATH_K(reg_lo), _mm256_and_si256(x, nib));
        const __m256i hi = _mm256_shuffle_epi8(LUATH_K(tok_hi), _mm256_and_si256(_mm256_srli_epi16(x, 4), nib));
        const __m256i d = _mm256_sub_epi8(x, LUATH_K(digit0));
        const __m256i digit = _mm256_cmpeq_epi8(_mm256_min_epu8(d, LUATH_K(nine)), d);
        return {bits(_mm256_cmpeq_epi8(_mm256_and_si256(lo, hi), _mm256_setzero_si256())), ~bits(digit)};
    }
};
#include "http/head_fast.inc"
#undef LUATH_K

}  // namespace avx2
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
#endif  // LUATH_SCAN_X86

// ---------------------------------------------------------------------------------------------------------
#ifdef LUATH_SCAN_NEON
namespace neon {

// 16 mask bytes (0x00/0xff) -> 64-bit word with 4 bits per byte; first set byte = ctz / 4.
inline std::uint64_t pack(uint8x16_t m) {
    return vget_lane_u64(vreinterpret_u64_u8(vshrn_n_u16(vreinterpretq_u16_u8(m), 4)), 0);
}
inline uint8x16_t value_bad(uint8x16_t x) {
    const uint8x16_t le1f = vcleq_u8(x, vdupq_n_u8(0x1f));
    const uint8x16_t tab = vceqq_u8(x, vdupq_n_u8('\t'));
    const uint8x16_t del = vceqq_u8(x, vdupq_n_u8(0x7f));
    return vorrq_u8(vbicq_u8(le1f, tab), del);
}
inline uint8x16_t target_bad(uint8x16_t x) {
    return vorrq_u8(vcleq_u8(x, vdupq_n_u8(0x20)),
                    vorrq_u8(vceqq_u8(x, vdupq_n_u8(0x7f)), vceqq_u8(x, vdupq_n_u8('#'))));
}
inline uint8x16_t token_bad(uint8x16_t x) {
    const uint8x16_t lo = vqtbl1q_u8(vld1q_u8(kTokLo.data()), vandq_u8(x, vdupq_n_u8(0x0f)));
    const uint8x16_t hi = vqtbl1q_u8(vld1q_u8(kTokHi.data()), vshrq_n_u8(x, 4));
    return vceqq_u8(vandq_u8(lo, hi), vdupq_n_u8(0));
}

template <uint8x16_t (*Bad)(uint8x16_t)>
inline const char* find(const char* p, const char* end, std::uint8_t f) {
    while (end - p >= 16) {
        const std::uint64_t m = pack(Bad(vld1q_u8(reinterpret_cast<const std::uint8_t*>(p))));
        if (m) return p + (__builtin_ctzll(m) >> 2);
        p += 16;
    }
    return tail(p, end, f);
}

LUATH_SCAN_INLINE const char* find_value(const char* p, const char* end) { return find<value_bad>(p, end, kValue); }
LUATH_SCAN_INLINE const char* find_target(const char* p, const char* end) { return find<target_bad>(p, end, kTarget); }
LUATH_SCAN_INLINE const char* find_token(const char* p, const char* end) { return find<token_bad>(p, end, kTchar); }

#include "http/scan_fields.inc"

}  // namespace neon
#endif  // LUATH_SCAN_NEON

constexpr Fns kScalar{scalar::find_value, scalar::find_target, scalar::find_token, scalar::fields, detail::fast_head,
                      detail::fast_head_or_lines};

Fns fns_of(ScanImpl impl) {
    switch (impl) {
#ifdef LUATH_SCAN_X86
        case ScanImpl::SSE42:
            return {sse42::find_value, sse42::find_target, sse42::find_token,
                    sse42::fields,     sse42::head_len,     sse42::head};
        case ScanImpl::AVX2:
            return {avx2::find_value, avx2::find_target, avx2::find_token,
                    avx2::fields,     avx2::head_len,     avx2::head};
#endif
#ifdef LUATH_SCAN_NEON
        case ScanImpl::NEON:
            return {neon::find_value,  neon::find_target,   neon::find_token,
                    neon::fields,      detail::fast_head,   detail::fast_head_or_lines};
#endif
        default: return kScalar;
    }
}

ScanImpl g_impl = ScanImpl::Scalar;

ScanImpl best_impl() {
    for (ScanImpl i : {ScanImpl::AVX2, ScanImpl::NEON, ScanImpl::SSE42})
        if (scan_impl_available(i)) return i;
    return ScanImpl::Scalar;
}

}  // namespace

// Constant-initialized to the scalar path (safe even if parsing starts during static initialization),
// then switched to the best one during dynamic initialization.
constinit Fns g_fns = kScalar;
namespace {
const bool kSelected = set_scan_impl(best_impl());
}  // namespace

}  // namespace scan

bool scan_impl_available(ScanImpl impl) {
    switch (impl) {
        case ScanImpl::Scalar: return true;
#ifdef LUATH_SCAN_X86
        case ScanImpl::SSE42:
            __builtin_cpu_init();  // may run during static initialization, before libgcc's own init
            return __builtin_cpu_supports("sse4.2");
        case ScanImpl::AVX2:
            __builtin_cpu_init();
            return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("bmi") && __builtin_cpu_supports("bmi2") &&
                   __builtin_cpu_supports("sse4.2");
#endif
#ifdef LUATH_SCAN_NEON
        case ScanImpl::NEON: return true;
#endif
        default: return false;
    }
}

bool set_scan_impl(ScanImpl impl) {
    if (!scan_impl_available(impl)) return false;
    scan::g_fns = scan::fns_of(impl);
    scan::g_impl = impl;
    return true;
}

ScanImpl scan_impl() { return scan::g_impl; }

const char* scan_impl_name(ScanImpl impl) {
    switch (impl) {
        case ScanImpl::Scalar: return "scalar";
        case ScanImpl::SSE42: return "sse4.2";
        case ScanImpl::AVX2: return "avx2";
        case ScanImpl::NEON: return "neon";
    }
    return "?";
}

}  // namespace luath::http
