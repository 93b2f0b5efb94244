/* column.c: typed column buffers and the value rules shared by the TSV and JSON scanners.
 *
 * Values follow the reader's rules (egress/sources/zeek_fields.py): numbers must match Zeek's
 * textual forms exactly, addresses get a shape check, strings must be valid UTF-8. Row r of every
 * column is written at index r, so a row that turns out bad is dropped by not advancing r and
 * cutting variable-length data back to the row's start (zs_rollback). Nothing here touches
 * Python, so the caller may release the GIL.
 */
#include "column.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

/* ------------------------------------------------------------------ buffers */

int zs_buf_alloc_zero(zs_buf *b, size_t n) {
    if (zs_buf_alloc(b, n) < 0) return -1;
    memset(b->p, 0, n);
    return 0;
}

/* n bytes that every kept row overwrites before it is read */
int zs_buf_alloc(zs_buf *b, size_t n) {
    b->p = zs_mem_get(n, &b->cap);
    if (!b->p) return -1;
    b->len = n;
    return 0;
}

void zs_buf_free(zs_buf *b) {
    zs_mem_put(b->p, b->cap);
    b->p = NULL;
    b->len = b->cap = 0;
}

/* ------------------------------------------------------------------ value checks */

/* ^-?[0-9]+(\.[0-9]*)?([eE][-+]?[0-9]+)?$ into its parts; 0 if it does not match. */
int zs_scan_number(const uint8_t *p, size_t n, zs_num *num) {
    size_t i = 0;
    int sig = 0;
    memset(num, 0, sizeof *num);
    num->exact = 1;
    if (i < n && p[i] == '-') { num->neg = 1; i++; }
    size_t start = i;
    for (; i < n && zs_is_digit(p[i]); i++) {
        uint64_t d = (uint64_t)(p[i] - '0');
        if (sig < 19) {
            num->mant = num->mant * 10 + d;
            if (num->mant) sig++;
        } else {
            num->exact = 0;
            num->exp10++;
        }
    }
    num->int_digits = i - start;
    if (num->int_digits == 0) return 0;
    if (i < n && p[i] == '.') {
        i++;
        size_t fstart = i;
        for (; i < n && zs_is_digit(p[i]); i++) {
            uint64_t d = (uint64_t)(p[i] - '0');
            if (sig < 19) {
                num->mant = num->mant * 10 + d;
                if (num->mant) sig++;
                num->exp10--;
            } else if (d) {
                num->exact = 0;
            }
        }
        num->frac_digits = i - fstart;
    }
    if (i < n && (p[i] == 'e' || p[i] == 'E')) {
        i++;
        int eneg = 0;
        if (i < n && (p[i] == '+' || p[i] == '-')) { eneg = p[i] == '-'; i++; }
        size_t estart = i;
        int64_t e = 0;
        for (; i < n && zs_is_digit(p[i]); i++)
            if (e < 100000) e = e * 10 + (p[i] - '0');
        if (i == estart) return 0;
        num->exp10 += eneg ? -e : e;
        num->has_exp = 1;
    }
    return i == n;
}

static const double POW10[23] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
                                 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21,
                                 1e22};

/* The correctly rounded double of a matched number (strtod is the slow path). */
double zs_number_value(const uint8_t *p, size_t n, const zs_num *num) {
    if (num->exact && num->mant < (1ull << 53) && num->exp10 >= -22 && num->exp10 <= 22) {
        double v = (double)num->mant;
        v = num->exp10 < 0 ? v / POW10[-num->exp10] : v * POW10[num->exp10];
        return num->neg ? -v : v;
    }
    if (num->exact && num->mant == 0) return num->neg ? -0.0 : 0.0;
    char local[128];
    char *tmp = n < sizeof local ? local : malloc(n + 1);
    if (!tmp) return NAN; /* reported as a bad value */
    memcpy(tmp, p, n);
    tmp[n] = 0;
    double v = strtod(tmp, NULL);
    if (tmp != local) free(tmp);
    return v;
}

/* Epoch seconds -> microseconds. 1 ok, 0 bad, 2 masked (btest's X+.X+). */
int zs_parse_time(const uint8_t *p, size_t n, int64_t *out) {
    /* The common shape first: -?[0-9]{1,10}(\.[0-9]{0,6})?, in integers. The general path
     * below gives the same result for it (mant * 10^(6 - decimals) under 4e9 s). */
    if (n >= 1 && n <= 18) {
        size_t neg = p[0] == '-', dot;
        uint64_t v;
        size_t k = zs_scan_decimal(p, n, neg, &v, &dot);
        size_t int_digits = dot - neg, decimals = dot == n ? 0 : n - dot - 1;
        if (k == n && int_digits >= 1 && int_digits <= 10 && decimals <= 6) {
            static const int64_t SCALE[7] = {1000000, 100000, 10000, 1000, 100, 10, 1};
            int64_t us = (int64_t)v * SCALE[decimals];
            if (us < 4000000000LL * 1000000LL) {
                *out = neg ? -us : us;
                return 1;
            }
        }
    }
    zs_num num;
    if (!zs_scan_number(p, n, &num)) {
        size_t i = 0;
        while (i < n && p[i] == 'X') i++;
        if (i == 0 || i >= n || p[i] != '.') return 0;
        size_t j = i + 1;
        while (j < n && p[j] == 'X') j++;
        return (j == n && j > i + 1) ? 2 : 0;
    }
    /* Below 4e9 s, Zeek's six decimals give round(double(s) * 1e6) exactly: use integers. */
    if (!num.has_exp && num.exact && num.frac_digits <= 6 && num.int_digits <= 10) {
        int64_t scale = 1;
        for (size_t k = num.frac_digits; k < 6; k++) scale *= 10;
        int64_t us = (int64_t)num.mant * scale;
        if (us < 4000000000LL * 1000000LL) {
            *out = num.neg ? -us : us;
            return 1;
        }
    }
    double x = nearbyint(zs_number_value(p, n, &num) * 1e6);
    if (!(x > -9.2e18 && x < 9.2e18)) return 0;
    *out = (int64_t)x;
    return 1;
}

/* An IPv4/IPv6 text shape: hex digits, '.' and ':', 2..45 chars, a separator in the first 5. */
static uint8_t POPCOUNT8[256];
static uint8_t ADDR_CLASS[256]; /* 1: hex digit, 2: '.' or ':', 0: anything else */

void zs_init(void) {
    for (int c = 0; c < 256; c++) POPCOUNT8[c] = (uint8_t)((c & 1) + POPCOUNT8[c >> 1]);
    for (int c = 0; c < 256; c++)
        ADDR_CLASS[c] = (uint8_t)((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
                                  (c >= 'A' && c <= 'F') ? 1 : (c == '.' || c == ':') ? 2 : 0);
}

int zs_addr_ok(const uint8_t *p, size_t n) {
    if (n < 2 || n > 45) return 0;
    unsigned all = 3, head = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned k = ADDR_CLASS[p[i]];
        all &= k ? 3u : 0u;
        if (i < 5) head |= k;
    }
    return all && (head & 2);
}

/* Strict UTF-8 (as Python's decoder: no overlongs, no surrogates, at most U+10FFFF). */
int zs_utf8_ok(const uint8_t *p, size_t n) {
    size_t i = 0;
    while (i < n) {
        while (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, p + i, 8);
            if (w & 0x8080808080808080ull) break;
            i += 8;
        }
        if (i >= n) break;
        uint8_t c = p[i];
        if (c < 0x80) { i++; continue; }
        size_t k;
        uint32_t cp;
        if (c >= 0xC2 && c <= 0xDF) { k = 1; cp = c & 0x1F; }
        else if (c >= 0xE0 && c <= 0xEF) { k = 2; cp = c & 0x0F; }
        else if (c >= 0xF0 && c <= 0xF4) { k = 3; cp = c & 0x07; }
        else return 0;
        if (n - i <= k) return 0;
        for (size_t j = 1; j <= k; j++) {
            uint8_t d = p[i + j];
            if ((d & 0xC0) != 0x80) return 0;
            cp = (cp << 6) | (d & 0x3F);
        }
        if ((k == 2 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
            (k == 3 && (cp < 0x10000 || cp > 0x10FFFF)))
            return 0;
        i += k + 1;
    }
    return 1;
}

static inline int hexval(uint8_t c) {
    if (zs_is_digit(c)) return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Copy p[0:n) to out decoding \xNN; return the bytes written (at most n). */
size_t zs_unescape(const uint8_t *p, size_t n, uint8_t *out) {
    const uint8_t *bs = memchr(p, '\\', n);
    if (!bs) {
        memcpy(out, p, n);
        return n;
    }
    size_t w = (size_t)(bs - p);
    memcpy(out, p, w);
    for (size_t i = w; i < n;) {
        if (p[i] == '\\' && i + 3 < n && p[i + 1] == 'x' && hexval(p[i + 2]) >= 0 &&
            hexval(p[i + 3]) >= 0) {
            out[w++] = (uint8_t)(hexval(p[i + 2]) * 16 + hexval(p[i + 3]));
            i += 4;
        } else {
            out[w++] = p[i++];
        }
    }
    return w;
}

/* ------------------------------------------------------------------ rows */

void zs_put_null(zs_column *c, int64_t r) {
    zs_bit_put(c->validity.p, r, 0);
    if (c->kind == ZK_STRING || c->kind == ZK_ADDR || c->kind == ZK_SET) {
        int32_t *off32 = (int32_t *)c->offsets.p;
        off32[r + 1] = off32[r];
    } else if (c->kind == ZK_BOOL) {
        zs_bit_put(c->values.p, r, 0);
    } else {
        memset(c->values.p + (size_t)r * (size_t)c->width, 0, (size_t)c->width);
    }
}

/* Forget what a dropped row wrote into variable-length columns. */
void zs_rollback(zs_scan *s, int64_t r) {
    for (int k = 0; k < s->ncols; k++) {
        zs_column *c = &s->cols[k];
        if (c->kind != ZK_STRING && c->kind != ZK_ADDR && c->kind != ZK_SET) continue;
        int32_t *off32 = (int32_t *)c->offsets.p;
        if (c->kind == ZK_SET) {
            c->elements = off32[r];
            c->child_offsets.len = (size_t)(c->elements + 1) * 4;
            c->data.len = (size_t)((int32_t *)c->child_offsets.p)[c->elements];
        } else {
            c->data.len = (size_t)off32[r];
        }
    }
}

void zs_note(zs_scan *s, int kind, int64_t line) {
    if (s->issue_count[kind] < ZS_FIRST_LINES) s->issue_lines[kind][s->issue_count[kind]] = line;
    s->issue_count[kind]++;
}

size_t zs_count_byte(const uint8_t *p, size_t n, uint8_t byte) {
    size_t count = 0, i = 0;
#ifdef __SSE2__
    /* per-byte counters (cmpeq gives -1 per hit) for up to 255 blocks, then summed */
    __m128i needle = _mm_set1_epi8((char)byte);
    while (i + 16 <= n) {
        __m128i acc = _mm_setzero_si128();
        size_t stop = n - i >= 255 * 16 ? i + 255 * 16 : i + (n - i) / 16 * 16;
        for (; i < stop; i += 16) {
            __m128i block = _mm_loadu_si128((const __m128i *)(p + i));
            acc = _mm_sub_epi8(acc, _mm_cmpeq_epi8(block, needle));
        }
        __m128i sums = _mm_sad_epu8(acc, _mm_setzero_si128());
        count += (size_t)_mm_cvtsi128_si32(sums) + (size_t)_mm_extract_epi16(sums, 4);
    }
#endif
    for (; i < n; i++) count += p[i] == byte;
    return count;
}

int zs_setup(zs_scan *s, int64_t n_lines) {
    size_t n = (size_t)n_lines;
    if (zs_buf_alloc(&s->lines, n * 8) < 0) return -1;
    for (int k = 0; k < s->ncols; k++) {
        zs_column *c = &s->cols[k];
        if (zs_buf_alloc_zero(&c->validity, (n + 7) / 8) < 0) return -1;
        switch (c->kind) {
        case ZK_TIME: case ZK_DOUBLE:
            if (zs_buf_alloc(&c->values, n * 8) < 0) return -1;
            break;
        case ZK_UINT: case ZK_INT:
            if (zs_buf_alloc(&c->values, n * (size_t)c->width) < 0) return -1;
            break;
        case ZK_BOOL:
            if (zs_buf_alloc_zero(&c->values, (n + 7) / 8) < 0) return -1;
            break;
        case ZK_SET:
            if (zs_buf_alloc_zero(&c->child_offsets, 4) < 0) return -1;
            /* fall through */
        default: /* ZK_STRING, ZK_ADDR */
            if (zs_buf_alloc_zero(&c->offsets, (n + 1) * 4) < 0) return -1;
            if (zs_buf_reserve(&c->data, 1024) < 0) return -1;
        }
    }
    return 0;
}

void zs_finish(zs_scan *s, int64_t r) {
    s->rows = r;
    for (int k = 0; k < s->ncols; k++) {
        zs_column *c = &s->cols[k];
        int64_t valid = 0;
        const uint8_t *bits = c->validity.p;
        for (int64_t i = 0; i < r / 8; i++) valid += POPCOUNT8[bits[i]];
        for (int64_t i = (r / 8) * 8; i < r; i++) valid += (bits[i >> 3] >> (i & 7)) & 1;
        c->null_count = r - valid;
    }
}

void zs_scan_free(zs_scan *s) {
    zs_buf_free(&s->lines);
    for (int k = 0; k < s->ncols; k++) {
        zs_column *c = &s->cols[k];
        zs_buf_free(&c->validity);
        zs_buf_free(&c->values);
        zs_buf_free(&c->offsets);
        zs_buf_free(&c->data);
        zs_buf_free(&c->child_offsets);
    }
}
