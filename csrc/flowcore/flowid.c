/*
 * flowid.c: the text identities of a flow, made in C because they are made once
 * per flow and captures have millions of flows: the Zeek-style uid, the
 * Community ID v1 (SHA-1 over the canonical 5-tuple, base64) and the addresses.
 * egress/community_id.py is the reference the tests compare against.
 */
#include "engine.h"
#include <arpa/inet.h>

/* ---- SHA-1 (FIPS 180-4), enough for short messages ---- */

static inline uint32_t rol(uint32_t x, int n) { return (x << n) | (x >> (32 - n)); }

/* One 64-byte block, unrolled: a 16-word rolling message schedule and the
 * variables renamed per round instead of moved. */
#define SHA1_W(i) (w[(i) & 15] = rol(w[((i) + 13) & 15] ^ w[((i) + 8) & 15] ^ w[((i) + 2) & 15] ^ w[(i) & 15], 1))
#define SHA1_R(a, b, c, d, e, f, k, x) \
    do { e += rol(a, 5) + (f) + (k) + (x); b = rol(b, 30); } while (0)
#define F1(b, c, d) (d ^ (b & (c ^ d)))
#define F2(b, c, d) (b ^ c ^ d)
#define F3(b, c, d) ((b & c) | (d & (b | c)))
#define R0(a, b, c, d, e, i) SHA1_R(a, b, c, d, e, F1(b, c, d), 0x5A827999u, w[i])
#define R1(a, b, c, d, e, i) SHA1_R(a, b, c, d, e, F1(b, c, d), 0x5A827999u, SHA1_W(i))
#define R2(a, b, c, d, e, i) SHA1_R(a, b, c, d, e, F2(b, c, d), 0x6ED9EBA1u, SHA1_W(i))
#define R3(a, b, c, d, e, i) SHA1_R(a, b, c, d, e, F3(b, c, d), 0x8F1BBCDCu, SHA1_W(i))
#define R4(a, b, c, d, e, i) SHA1_R(a, b, c, d, e, F2(b, c, d), 0xCA62C1D6u, SHA1_W(i))
#define FIVE(R, i) R(a, b, c, d, e, i); R(e, a, b, c, d, i + 1); R(d, e, a, b, c, i + 2); \
                   R(c, d, e, a, b, i + 3); R(b, c, d, e, a, i + 4)

static void sha1_block(uint32_t h[5], const uint8_t *p) {
    uint32_t w[16];
    for (int i = 0; i < 16; i++) w[i] = rd32be(p + 4 * i);
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    FIVE(R0, 0); FIVE(R0, 5); FIVE(R0, 10);
    R0(a, b, c, d, e, 15); R1(e, a, b, c, d, 16); R1(d, e, a, b, c, 17); R1(c, d, e, a, b, 18);
    R1(b, c, d, e, a, 19);
    FIVE(R2, 20); FIVE(R2, 25); FIVE(R2, 30); FIVE(R2, 35);
    FIVE(R3, 40); FIVE(R3, 45); FIVE(R3, 50); FIVE(R3, 55);
    FIVE(R4, 60); FIVE(R4, 65); FIVE(R4, 70); FIVE(R4, 75);
    h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e;
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>
#include <immintrin.h>
#define HAVE_SHA_NI 1

/* The same block with the SHA extensions (most x86 CPUs since 2017), chosen at
 * run time: the build may not assume them (no -march). Four rounds per step. */
__attribute__((target("sha,sse4.1")))
static void sha1_block_ni(uint32_t h[5], const uint8_t *p) {
    const __m128i bswap = _mm_set_epi64x(0x0001020304050607LL, 0x08090a0b0c0d0e0fLL);
    __m128i abcd = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)h), 0x1B);
    __m128i e0 = _mm_set_epi32((int)h[4], 0, 0, 0);
    const __m128i abcd_in = abcd, e_in = e0;
    __m128i w[20];
    for (int i = 0; i < 4; i++) w[i] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 16 * i)), bswap);
    for (int i = 4; i < 20; i++)
        w[i] = _mm_sha1msg2_epu32(_mm_xor_si128(_mm_sha1msg1_epu32(w[i - 4], w[i - 3]), w[i - 2]), w[i - 1]);
    __m128i prev = abcd, e = _mm_add_epi32(e0, w[0]);
    abcd = _mm_sha1rnds4_epu32(abcd, e, 0);
#define NI_STEP(i, f) do { e = _mm_sha1nexte_epu32(prev, w[i]); prev = abcd; \
                           abcd = _mm_sha1rnds4_epu32(abcd, e, f); } while (0)
    for (int i = 1; i < 5; i++) NI_STEP(i, 0);
    for (int i = 5; i < 10; i++) NI_STEP(i, 1);
    for (int i = 10; i < 15; i++) NI_STEP(i, 2);
    for (int i = 15; i < 20; i++) NI_STEP(i, 3);
#undef NI_STEP
    e = _mm_sha1nexte_epu32(prev, _mm_setzero_si128());
    abcd = _mm_shuffle_epi32(_mm_add_epi32(abcd, abcd_in), 0x1B);
    e = _mm_add_epi32(e, e_in);
    _mm_storeu_si128((__m128i *)h, abcd);
    h[4] = (uint32_t)_mm_extract_epi32(e, 3);
}

static int cpu_has_sha(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || !((b >> 29) & 1)) return 0;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    return (c >> 19) & 1 && (c >> 9) & 1;   /* SSE4.1, SSSE3 */
}
#endif

typedef void (*sha1_block_fn)(uint32_t h[5], const uint8_t *p);

/* Scalar until proven otherwise: the SHA-extension block is used once it gave
 * the scalar block's result on a test block. */
static sha1_block_fn pick_block(void) {
#ifdef HAVE_SHA_NI
    if (cpu_has_sha()) {
        uint8_t blk[64];
        for (int i = 0; i < 64; i++) blk[i] = (uint8_t)(i * 37 + 11);
        uint32_t x[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0}, y[5];
        memcpy(y, x, sizeof y);
        sha1_block(x, blk); sha1_block_ni(y, blk);
        if (!memcmp(x, y, sizeof x)) return sha1_block_ni;
    }
#endif
    return sha1_block;
}

/* SHA-1 of a message of at most 55 bytes (one block), as Community ID needs. */
static void sha1_short(const uint8_t *msg, size_t n, uint8_t out[20]) {
    static sha1_block_fn block;
    if (!block) block = pick_block();
    uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
    uint8_t blk[64];
    memcpy(blk, msg, n);
    memset(blk + n, 0, 64 - n);
    blk[n] = 0x80;
    uint64_t bits = (uint64_t)n * 8;
    for (int j = 0; j < 8; j++) blk[63 - j] = (uint8_t)(bits >> (8 * j));
    block(h, blk);
    for (int j = 0; j < 5; j++) { out[4*j] = (uint8_t)(h[j] >> 24); out[4*j+1] = (uint8_t)(h[j] >> 16);
                                  out[4*j+2] = (uint8_t)(h[j] >> 8); out[4*j+3] = (uint8_t)h[j]; }
}

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int icmp_one_way(int v6, int type) {
    static const uint8_t v4[] = {8, 0, 13, 14, 15, 16, 10, 9, 17, 18};
    static const uint8_t v6t[] = {128, 129, 133, 134, 135, 136, 130, 131, 139, 140, 144, 145};
    const uint8_t *t = v6 ? v6t : v4; size_t n = v6 ? sizeof v6t : sizeof v4;
    for (size_t i = 0; i < n; i++) if (t[i] == type) return 0;
    return 1;
}

PyObject *fc_community_id(const uint8_t *oa, int op, const uint8_t *ra, int rp, int family, int proto) {
    size_t alen = family == 4 ? 4 : 16;
    const uint8_t *s = oa, *d = ra; int sp = op, dp = rp;
    int one_way = (proto == 1 || proto == 58) && icmp_one_way(proto == 58, op);
    if (!one_way) {
        int c = memcmp(s, d, alen);
        if (c > 0 || (c == 0 && sp > dp)) { s = ra; d = oa; sp = rp; dp = op; }
    }
    uint8_t buf[2 + 32 + 2 + 4]; size_t n = 0;
    buf[n++] = 0; buf[n++] = 0;                      /* seed 0 */
    memcpy(buf + n, s, alen); n += alen;
    memcpy(buf + n, d, alen); n += alen;
    buf[n++] = (uint8_t)proto; buf[n++] = 0;
    if (proto == 6 || proto == 17 || proto == 132 || proto == 1 || proto == 58) {
        buf[n++] = (uint8_t)(sp >> 8); buf[n++] = (uint8_t)sp;
        buf[n++] = (uint8_t)(dp >> 8); buf[n++] = (uint8_t)dp;
    }
    uint8_t dg[21]; sha1_short(buf, n, dg); dg[20] = 0;
    char txt[2 + 28 + 1]; txt[0] = '1'; txt[1] = ':';
    int o = 2;
    for (int i = 0; i < 21; i += 3) {
        uint32_t v = ((uint32_t)dg[i] << 16) | (i + 1 < 21 ? (uint32_t)dg[i + 1] << 8 : 0) |
                     (i + 2 < 21 ? dg[i + 2] : 0);
        txt[o++] = B64[(v >> 18) & 63]; txt[o++] = B64[(v >> 12) & 63];
        txt[o++] = i + 1 < 20 ? B64[(v >> 6) & 63] : '=';
        txt[o++] = i + 2 < 20 ? B64[v & 63] : '=';
    }
    return fc_ascii_text(txt, 2 + 28);
}

PyObject *fc_uid_text(uint64_t uid) {
    static const char D[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    char tmp[16]; int n = 0;
    while (uid) { tmp[n++] = D[uid % 62]; uid /= 62; }
    char txt[16]; int o = 0;
    txt[o++] = 'C';
    for (int i = n; i < 11; i++) txt[o++] = '0';
    while (n) txt[o++] = tmp[--n];
    return fc_ascii_text(txt, o);
}

PyObject *fc_addr_text(const uint8_t *a, int family) {
    char txt[INET6_ADDRSTRLEN];
    if (family == 4) {  /* inet_ntop formats IPv4 through sprintf: this is much cheaper */
        int o = 0;
        for (int i = 0; i < 4; i++) {
            unsigned v = a[i];
            if (v >= 100) { txt[o++] = (char)('0' + v / 100); v %= 100; txt[o++] = (char)('0' + v / 10); }
            else if (v >= 10) txt[o++] = (char)('0' + v / 10);
            txt[o++] = (char)('0' + v % 10);
            if (i < 3) txt[o++] = '.';
        }
        return fc_ascii_text(txt, o);
    }
    if (!inet_ntop(AF_INET6, a, txt, sizeof txt)) txt[0] = 0;
    return fc_ascii_text(txt, (Py_ssize_t)strlen(txt));
}
