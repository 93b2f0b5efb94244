/* tsv.c: Zeek TSV lines -> column buffers, one pass, every access bounds-checked.
 *
 * Each line is cut into fields at the separator; a line whose field count differs from the
 * header's is counted (ZI_COLUMNS), a blank one too (ZI_BLANK). Planned fields are converted
 * straight into their column (column.c); unset -> null, #empty_field -> "" or [], \xNN decoded.
 *
 * Speed: one pass over a line finds its separators and its newline together (SSE2 on x86-64, a
 * byte loop elsewhere). Values of the common shapes take fast paths (decimal counts 8 digits at
 * a time, times and doubles of a few digits in integers, short strings and addresses checked and
 * copied 16 bytes at a time) that fall back to the general rules of column.c for anything else,
 * so the result is the same. A fast path may read up to SLACK bytes past a field, never past the
 * end of the input (limit), and write up to SLACK bytes past a string (reserved).
 * Validity bits start set; a null clears its bit, a dropped row sets them again.
 */
#include "column.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#define SLACK 32

/* -DZS_NO_SWAR builds the byte-by-byte paths (as on a big-endian CPU), for testing them */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ && !defined(ZS_NO_SWAR)
#define ZS_SWAR 1
/* The number p[0:n) writes (n in 1..8, p[0:8) readable), or -1 if a byte is not a digit. */
static inline int64_t digits8_of(uint64_t x, size_t n) {
    x <<= 8 * (8 - n); /* the field's bytes to the top (byte 0 = first digit at 8 - n) */
    if (n < 8) x |= 0x3030303030303030ull >> (8 * n); /* leading '0's below */
    const uint64_t hi = 0xF0F0F0F0F0F0F0F0ull;
    if (((x & hi) | (((x + 0x0606060606060606ull) & hi) >> 4)) != 0x3333333333333333ull)
        return -1;
    x -= 0x3030303030303030ull;
    x = (x * 10 + (x >> 8)) & 0x00FF00FF00FF00FFull;   /* pairs */
    x = (x * 100 + (x >> 16)) & 0x0000FFFF0000FFFFull; /* quads */
    x = (x * 10000 + (x >> 32)) & 0xFFFFFFFFull;
    return (int64_t)x;
}

static inline int64_t digits8(const uint8_t *p, size_t n) {
    uint64_t x;
    memcpy(&x, p, 8);
    return digits8_of(x, n);
}
#endif

/* zs_parse_uint; up to 16 digits 8 at a time (no branch per digit). */
static inline int parse_uint(const uint8_t *limit, const zs_column *c, const uint8_t *p,
                             size_t n, uint64_t *out) {
#ifdef ZS_SWAR
    if (n >= 1 && n <= 16 && n <= (size_t)c->max_digits && (n >= 8 || limit - p >= 8)) {
        int64_t v;
        if (n <= 8) {
            v = digits8(p, n);
        } else {
            int64_t hi = digits8(p, n - 8), lo = digits8(p + n - 8, 8);
            v = (hi | lo) < 0 ? -1 : hi * 100000000 + lo;
        }
        if (v < 0 || (uint64_t)v > c->umax) return 0;
        *out = (uint64_t)v;
        return 1;
    }
#else
    (void)limit;
#endif
    return zs_parse_uint(p, n, c->max_digits, c->umax, out);
}

/* zs_parse_time for seconds with exactly six decimals (as Zeek writes them), 8 digits at a time:
 * the same microseconds; other shapes go to zs_parse_time. */
static inline int parse_time(const uint8_t *limit, const uint8_t *p, size_t n, int64_t *out) {
#ifdef ZS_SWAR
    if (n >= 8 && n <= 17 && p[n - 7] == '.' && limit - (p + n) >= 2) {
        size_t k = n - 7; /* 1..10 digits of seconds */
        if (k == 10) { /* digits 0-7, then 8, 9 and the six decimals as one word */
            uint64_t a, b;
            memcpy(&a, p + 8, 8);
            memcpy(&b, p + 11, 8);
            int64_t hi = digits8(p, 8), lo = digits8_of((a & 0xFFFF) | (b << 16), 8);
            if ((hi | lo) >= 0 && hi < 40000000LL) {
                *out = hi * 100000000 + lo;
                return 1;
            }
            return zs_parse_time(p, n, out);
        }
        int64_t sec = k <= 8 ? digits8(p, k) : digits8(p, k - 8), lo = 0;
        if (k > 8) {
            lo = digits8(p + k - 8, 8);
            sec = (sec | lo) < 0 ? -1 : sec * 100000000 + lo;
        }
        int64_t frac = digits8(p + k + 1, 6);
        if ((sec | frac) >= 0 && sec < 4000000000LL) {
            *out = sec * 1000000 + frac;
            return 1;
        }
    }
#else
    (void)limit;
#endif
    return zs_parse_time(p, n, out);
}

static const double POW10[16] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
                                 1e12, 1e13, 1e14, 1e15};

/* -?[0-9]+(\.[0-9]*)? of at most 15 digits: (double)digits / 10^decimals, as
 * zs_number_value computes it for such a number. 1 done, 0 not this shape. */
static inline int parse_double(const uint8_t *limit, const uint8_t *p, size_t n, double *out) {
#ifdef ZS_SWAR
    /* Zeek's intervals: 1 to 9 digits, '.', six decimals; the same digits, the same division */
    if (n >= 8 && n <= 16 && p[n - 7] == '.' && limit - (p + n) >= 2) {
        size_t k = n - 7;
        int64_t whole = k <= 8 ? digits8(p, k) : digits8(p, 1), lo = 0;
        if (k > 8) {
            lo = digits8(p + 1, 8);
            whole = (whole | lo) < 0 ? -1 : whole * 100000000 + lo;
        }
        int64_t frac = digits8(p + k + 1, 6);
        if ((whole | frac) >= 0) {
            *out = (double)(uint64_t)(whole * 1000000 + frac) / POW10[6];
            return 1;
        }
    }
#else
    (void)limit;
#endif
    if (n < 1 || n > 17) return 0;
    size_t neg = p[0] == '-', dot;
    uint64_t v;
    if (zs_scan_decimal(p, n, neg, &v, &dot) != n) return 0;
    size_t int_digits = dot - neg, decimals = dot == n ? 0 : n - dot - 1;
    if (int_digits < 1 || int_digits + decimals > 15) return 0;
    double x = (double)v / POW10[decimals];
    *out = neg ? -x : x;
    return 1;
}

/* zs_addr_ok, 16 bytes at a time. */
static inline int addr_ok(const uint8_t *limit, const uint8_t *p, size_t n) {
#ifdef __SSE2__
    if (n >= 2 && n <= 32 && limit - p >= 32) {
        uint32_t ok = 0, sep = 0;
        for (size_t h = 0; h < n; h += 16) {
            __m128i x = _mm_loadu_si128((const __m128i *)(p + h));
            __m128i y = _mm_or_si128(x, _mm_set1_epi8(0x20)); /* A-F -> a-f */
            /* signed compares: bytes >= 0x80 are negative, in no class */
            __m128i digit = _mm_and_si128(_mm_cmpgt_epi8(x, _mm_set1_epi8('0' - 1)),
                                          _mm_cmplt_epi8(x, _mm_set1_epi8('9' + 1)));
            __m128i alpha = _mm_and_si128(_mm_cmpgt_epi8(y, _mm_set1_epi8('a' - 1)),
                                          _mm_cmplt_epi8(y, _mm_set1_epi8('f' + 1)));
            __m128i dots = _mm_or_si128(_mm_cmpeq_epi8(x, _mm_set1_epi8('.')),
                                        _mm_cmpeq_epi8(x, _mm_set1_epi8(':')));
            ok |= (uint32_t)_mm_movemask_epi8(_mm_or_si128(_mm_or_si128(digit, alpha), dots))
                  << h;
            sep |= (uint32_t)_mm_movemask_epi8(dots) << h;
        }
        uint32_t want = n == 32 ? 0xFFFFFFFFu : (1u << n) - 1;
        return (ok & want) == want && (sep & 0x1F);
    }
#else
    (void)limit;
#endif
    return zs_addr_ok(p, n);
}

/* ------------------------------------------------------------------ values */

/* Append a string value (raw or unescaped); BAD_VALUE if not UTF-8, STOP if out of memory. */
static inline __attribute__((always_inline)) int put_string(zs_scan *s, zs_column *c, int64_t r,
                                                           const uint8_t *p, size_t n,
                                                           int decode, const uint8_t *limit) {
    if (zs_buf_reserve(&c->data, n + SLACK) < 0) { s->oom = 1; return STOP; }
    size_t at = c->data.len;
    uint8_t *out = c->data.p + at;
    size_t w = n;
    int check = decode; /* decode and look again: a backslash or a non-ASCII byte may be here */
    (void)limit;
#ifdef __SSE2__
    if (n <= 32 && limit - p >= 32) { /* copy 32 bytes; flag '\\' and bytes >= 0x80 */
        __m128i x = _mm_loadu_si128((const __m128i *)p);
        __m128i y = _mm_loadu_si128((const __m128i *)(p + 16));
        _mm_storeu_si128((__m128i *)out, x);
        _mm_storeu_si128((__m128i *)(out + 16), y);
        if (decode) {
            const __m128i bs = _mm_set1_epi8('\\');
            uint64_t m = (uint32_t)_mm_movemask_epi8(_mm_or_si128(x, _mm_cmpeq_epi8(x, bs))) |
                         (uint64_t)(uint32_t)_mm_movemask_epi8(
                             _mm_or_si128(y, _mm_cmpeq_epi8(y, bs))) << 16;
            check = (m & ((1ull << n) - 1)) != 0;
        }
    } else
#endif
    if (n <= 64) { /* short values: one plain loop beats the libc calls */
        unsigned high = 0, slash = 0;
        for (size_t i = 0; i < n; i++) {
            uint8_t ch = p[i];
            out[i] = ch;
            high |= ch;
            slash |= ch == '\\';
        }
        check = decode && (slash || (high & 0x80));
    } else if (!decode) {
        memcpy(out, p, n);
    }
    if (check) {
        w = zs_unescape(p, n, out);
        if (!zs_utf8_ok(out, w)) return BAD_VALUE; /* \xNN may have made any byte */
    }
    if (at + w > INT32_MAX) { s->fallback = 1; return STOP; }
    c->data.len = at + w;
    ((int32_t *)c->offsets.p)[r + 1] = (int32_t)c->data.len;
    return OK;
}

static int put_set(zs_scan *s, zs_column *c, int64_t r, const uint8_t *p, size_t n) {
    if (!zs_utf8_ok(p, n)) return BAD_VALUE;
    const uint8_t *end = p + n, *q = p;
    for (;;) {
        const uint8_t *e = NULL;
        if (s->set_sep_len == 1) {
            e = memchr(q, s->set_sep[0], (size_t)(end - q));
        } else {
            for (const uint8_t *t = q; t + s->set_sep_len <= end; t++)
                if (memcmp(t, s->set_sep, s->set_sep_len) == 0) { e = t; break; }
        }
        size_t m = (size_t)((e ? e : end) - q);
        if (zs_buf_reserve(&c->data, m) < 0 || zs_buf_reserve(&c->child_offsets, 4) < 0) {
            s->oom = 1;
            return STOP;
        }
        size_t at = c->data.len;
        size_t w = zs_unescape(q, m, c->data.p + at);
        /* Python decodes an escaped element with errors="replace": leave that to it. */
        if (w != m && !zs_utf8_ok(c->data.p + at, w)) { s->fallback = 1; return STOP; }
        if (at + w > INT32_MAX || c->elements >= INT32_MAX - 1) { s->fallback = 1; return STOP; }
        c->data.len = at + w;
        c->elements++;
        ((int32_t *)c->child_offsets.p)[c->elements] = (int32_t)c->data.len;
        c->child_offsets.len += 4;
        if (!e) break;
        q = e + s->set_sep_len;
    }
    ((int32_t *)c->offsets.p)[r + 1] = (int32_t)c->elements;
    return OK;
}

/* Convert field p[0:n) into row r of column c (whose validity bit is already set). */
/* Column ops: the kinds, with ZK_UINT split by width (one switch per value). */
enum { OP_U8 = ZK_NKINDS, OP_U16, OP_U32, OP_U64 };

static int op_of(const zs_column *c) {
    if (c->kind != ZK_UINT) return c->kind;
    return c->width == 1 ? OP_U8 : c->width == 2 ? OP_U16 : c->width == 4 ? OP_U32 : OP_U64;
}

/* The scan's constants, passed by value: kept in registers (a byte store through any uint8_t *
 * might change what a pointer to them reads). */
typedef struct {
    const uint8_t *limit;
    size_t unset_len;
    uint8_t unset0;
} consts;

static inline int put_value(zs_scan *s, zs_column *c, int64_t r, const uint8_t *p, size_t n,
                            consts k) {
    const uint8_t *limit = k.limit;
    int32_t *off32 = (int32_t *)c->offsets.p;
    if (n == k.unset_len && (n == 0 || (p[0] == k.unset0 &&
                                         (n == 1 || memcmp(p + 1, s->unset + 1, n - 1) == 0)))) {
        zs_bit_put(c->validity.p, r, 0);
        switch (c->kind) { /* zs_put_null */
        case ZK_STRING: case ZK_ADDR: case ZK_SET: off32[r + 1] = off32[r]; break;
        case ZK_BOOL: zs_bit_put(c->values.p, r, 0); break;
        default: memset(c->values.p + (size_t)r * (size_t)c->width, 0, (size_t)c->width);
        }
        return OK;
    }
    switch (c->op) {
    case ZK_TIME: {
        int64_t us = 0;
        int rc = parse_time(limit, p, n, &us);
        ((int64_t *)c->values.p)[r] = us;
        if (rc == 2) { zs_bit_put(c->validity.p, r, 0); return MASKED; }
        return rc ? OK : BAD_VALUE;
    }
#define PUT_UINT(T)                                              \
    {                                                            \
        uint64_t v;                                              \
        if (!parse_uint(limit, c, p, n, &v)) return BAD_VALUE;   \
        ((T *)c->values.p)[r] = (T)v;                            \
        return OK;                                               \
    }
    case OP_U8: PUT_UINT(uint8_t)
    case OP_U16: PUT_UINT(uint16_t)
    case OP_U32: PUT_UINT(uint32_t)
    case OP_U64: PUT_UINT(uint64_t)
#undef PUT_UINT
    case ZK_INT: {
        int64_t v;
        if (!zs_parse_int(p, n, c->imin, c->imax, &v)) return BAD_VALUE;
        zs_put_int(c, r, v);
        return OK;
    }
    case ZK_DOUBLE: {
        double v;
        if (!parse_double(limit, p, n, &v)) {
            zs_num num;
            if (!zs_scan_number(p, n, &num)) return BAD_VALUE;
            v = zs_number_value(p, n, &num);
            if (isnan(v)) return BAD_VALUE;
        }
        ((double *)c->values.p)[r] = v;
        return OK;
    }
    case ZK_BOOL:
        if (n == 1 && (p[0] == 'T' || p[0] == 'F')) {
            zs_bit_put(c->values.p, r, p[0] == 'T');
            return OK;
        }
        return BAD_VALUE;
    case ZK_STRING:
        if (s->empty_len && zs_same(p, n, s->empty, s->empty_len)) {
            off32[r + 1] = off32[r];
            return OK;
        }
        return put_string(s, c, r, p, n, 1, limit);
    case ZK_ADDR:
        if (!addr_ok(limit, p, n)) return BAD_ADDRESS;
        return put_string(s, c, r, p, n, 0, limit);
    case ZK_SET:
        if (zs_same(p, n, s->empty, s->empty_len)) {
            off32[r + 1] = off32[r];
            return OK;
        }
        return put_set(s, c, r, p, n);
    default:
        return BAD_VALUE;
    }
}

/* ------------------------------------------------------------------ lines */

/* Positions of the separator in line[0:n) into at[] (at most cap); return the count found
 * (which may exceed cap: then only the first cap are stored). */
static size_t find_seps(const uint8_t *line, size_t n, uint8_t sep, size_t *at, size_t cap) {
    size_t found = 0, i = 0;
#ifdef __SSE2__
    __m128i needle = _mm_set1_epi8((char)sep);
    for (; i + 16 <= n; i += 16) {
        __m128i block = _mm_loadu_si128((const __m128i *)(line + i));
        unsigned mask = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(block, needle));
        while (mask) {
            unsigned b = (unsigned)__builtin_ctz(mask);
            if (found < cap) at[found] = i + b;
            found++;
            mask &= mask - 1;
        }
    }
#endif
    for (; i < n; i++) {
        if (line[i] == sep) {
            if (found < cap) at[found] = i;
            found++;
        }
    }
    return found;
}

/* The same for a separator of several bytes: non-overlapping, left to right (as str.split). */
static size_t find_seps_long(const uint8_t *line, size_t n, const uint8_t *sep, size_t len,
                             size_t *at, size_t cap) {
    size_t found = 0, i = 0;
    while (i + len <= n) {
        const uint8_t *hit = memchr(line + i, sep[0], n - len + 1 - i);
        if (!hit) break;
        i = (size_t)(hit - line);
        if (memcmp(line + i, sep, len) == 0) {
            if (found < cap) at[found] = i;
            found++;
            i += len;
        } else {
            i++;
        }
    }
    return found;
}

/* Lines cut at a one-byte separator (not '\n' or '\r') through bit masks of the separators
 * and newlines of data[0:len), 64 bytes at a time: each byte is compared once, whatever the
 * line lengths, and a line's separators are taken from the masks without a branch per bit. */
typedef struct {
    const uint8_t *data;
    size_t len;
    size_t blk;      /* offset of the block the masks describe */
    uint64_t sm, nm; /* its separators and newlines not yet consumed */
    uint8_t sep;
} cutter;

static inline void cutter_load(cutter *c) {
    const uint8_t *p = c->data + c->blk;
    size_t left = c->len - c->blk;
    uint8_t tail[64];
    if (left < 64) { /* the last block: only its bytes count */
        memset(tail, 0, sizeof tail);
        memcpy(tail, p, left);
        p = tail;
    }
    uint64_t sm = 0, nm = 0;
#ifdef __SSE2__
    const __m128i vs = _mm_set1_epi8((char)c->sep), vn = _mm_set1_epi8('\n');
    for (int h = 0; h < 64; h += 16) {
        __m128i b = _mm_loadu_si128((const __m128i *)(p + h));
        sm |= (uint64_t)(uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(b, vs)) << h;
        nm |= (uint64_t)(uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(b, vn)) << h;
    }
#else
    for (int h = 0; h < 64; h++) {
        sm |= (uint64_t)(p[h] == c->sep) << h;
        nm |= (uint64_t)(p[h] == '\n') << h;
    }
#endif
    if (left < 64) {
        uint64_t keep = (1ull << left) - 1;
        sm &= keep;
        nm &= keep;
    }
    c->sm = sm;
    c->nm = nm;
}

static void cutter_init(cutter *c, const uint8_t *data, size_t len, uint8_t sep) {
    c->data = data, c->len = len, c->blk = 0, c->sep = sep, c->sm = c->nm = 0;
    if (len) cutter_load(c);
}

/* Append base + the positions of s's bits to at[k..]; return the new count. Stores only while
 * k <= cap (at[] has room for cap + 68), so a line with too many separators is only counted. */
static inline size_t flatten(size_t *at, size_t k, size_t cap, size_t base, uint64_t s) {
    if (k > cap) return k + (size_t)__builtin_popcountll(s);
    const uint64_t top = 1ull << 63; /* ctz of a spent (0) mask: a junk store past the count */
    while (s) {
        at[k] = base + (size_t)__builtin_ctzll(s | top); k += s != 0; s &= s - 1;
        at[k] = base + (size_t)__builtin_ctzll(s | top); k += s != 0; s &= s - 1;
        at[k] = base + (size_t)__builtin_ctzll(s | top); k += s != 0; s &= s - 1;
        at[k] = base + (size_t)__builtin_ctzll(s | top); k += s != 0; s &= s - 1;
    }
    return k;
}

/* The line that starts at the first unconsumed byte: the offsets (in data) of its separators
 * into at[] and their count into *found; return where it ends (its newline, or len). */
static inline size_t cutter_next(cutter *c, size_t *at, size_t cap, size_t *found) {
    size_t k = 0;
    for (;;) {
        uint64_t nl = c->nm;
        if (nl) {
            uint64_t below = (nl & (0 - nl)) - 1; /* the bits before the newline */
            k = flatten(at, k, cap, c->blk, c->sm & below);
            c->sm &= ~below;
            c->nm = nl & (nl - 1);
            *found = k;
            return c->blk + (size_t)__builtin_ctzll(nl);
        }
        k = flatten(at, k, cap, c->blk, c->sm);
        c->blk += 64;
        if (c->blk >= c->len) {
            c->sm = c->nm = 0;
            *found = k;
            return c->len;
        }
        cutter_load(c);
    }
}

void zs_scan_tsv(zs_scan *s, const uint8_t *data, size_t len, int64_t first_line,
                 int64_t n_lines) {
    if (n_lines < 0 || s->nfields < 1 || s->sep_len < 1) { s->fallback = 1; return; }
    if (zs_setup(s, n_lines) < 0) { s->oom = 1; return; }
    for (int k = 0; k < s->ncols; k++) {
        zs_column *c = &s->cols[k];
        c->op = op_of(c);
        memset(c->validity.p, 0xFF, c->validity.len);
        /* room for 8 bytes a row: short strings need no growing (copying) on the way; not
         * more, since untouched reserved pages would still be faulted in as the heap reuses them */
        if (c->data.p && zs_buf_reserve(&c->data, (size_t)n_lines * 8 + SLACK) < 0) {
            s->oom = 1;
            return;
        }
    }
    size_t cap = (size_t)s->nfields - 1;
    /* bounds[f] + sep_len is where field f starts, bounds[f + 1] where it ends (offsets in
     * data for a one-byte separator, else in the line); room for flatten() past the count */
    size_t *bounds = malloc((cap + 2 + 72) * sizeof *bounds);
    if (!bounds) { s->oom = 1; return; }
    size_t *seps = bounds + 1;
    int one = s->sep_len == 1 && s->sep[0] != '\n' && s->sep[0] != '\r';
    cutter cut;
    cutter_init(&cut, data, one ? len : 0, one ? s->sep[0] : 0);
    int64_t *lines_out = (int64_t *)s->lines.p;
    const consts env = {data + len, s->unset_len, s->unset_len ? s->unset[0] : 0};
    const size_t sep_len = s->sep_len;
    zs_column *const cols = s->cols;
    const int ncols = s->ncols;
    int64_t r = 0, line = first_line, seen = 0;
    size_t pos = 0;
    while (pos < len && seen < n_lines) {
        const uint8_t *p = data + pos;
        size_t n, found = 0;
        if (one) {
            n = cutter_next(&cut, seps, cap, &found) - pos;
        } else {
            const uint8_t *nl = memchr(p, '\n', len - pos);
            n = nl ? (size_t)(nl - p) : len - pos;
        }
        size_t origin = one ? pos : 0; /* the offset the positions in bounds[] count from */
        pos += n + 1;
        seen++;
        int64_t this_line = line++;
        size_t m = n;
        while (m && p[m - 1] == '\r') m--;
        if (m == 0) { zs_note(s, ZI_BLANK, this_line); continue; }
        if (n && p[n - 1] == '\r') n--;
        if (!one)
            found = s->sep_len == 1 ? find_seps(p, n, s->sep[0], seps, cap)
                                    : find_seps_long(p, n, s->sep, s->sep_len, seps, cap);
        if (found != cap) {
            zs_note(s, ZI_COLUMNS, this_line);
            continue;
        }
        bounds[0] = origin - sep_len;
        seps[cap] = origin + n;
        const uint8_t *base = p - origin;
        int fault = OK;
        for (int k = 0; k < ncols; k++) {
            zs_column *c = cols + k;
            size_t a = bounds[c->field] + sep_len;
            int rc = put_value(s, c, r, base + a, bounds[c->field + 1] - a, env);
            if (rc == MASKED) { zs_note(s, ZI_MASKED, this_line); continue; }
            if (rc != OK) { fault = rc; break; }
        }
        if (fault == STOP) break;
        if (fault != OK) {
            zs_note(s, fault == BAD_ADDRESS ? ZI_ADDRESS : ZI_VALUE, this_line);
            zs_rollback(s, r);
            for (int k = 0; k < s->ncols; k++) zs_bit_put(s->cols[k].validity.p, r, 1);
            continue;
        }
        lines_out[r++] = this_line;
    }
    free(bounds);
    /* lines the caller counted but the buffer did not hold (cannot happen with its framing) */
    if (seen < n_lines && !s->fallback && !s->oom) s->fallback = 1;
    zs_finish(s, r);
}
