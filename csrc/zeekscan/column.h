/* column.h: helpers shared by the scanners (column.c, tsv.c, json.c); not the module's API. */
#ifndef ZEEKSCAN_COLUMN_H
#define ZEEKSCAN_COLUMN_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "scan.h"

/* Outcome of converting one value. */
enum { OK = 0, BAD_VALUE = 1, BAD_ADDRESS = 2, MASKED = 3, STOP = 4, BAD_JSON = 5 };

static inline int zs_buf_reserve(zs_buf *b, size_t extra) {
    if (extra > SIZE_MAX / 2 - b->len) return -1;
    size_t need = b->len + extra;
    if (need <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < need) cap *= 2;
    if (b->len == 0 && cap >= ZS_POOL_MIN) { /* nothing to keep: maybe a pooled block */
        uint8_t *q = zs_mem_get(cap, &cap);
        if (!q) return -1;
        zs_mem_put(b->p, b->cap);
        b->p = q;
        b->cap = cap;
        return 0;
    }
    uint8_t *p = realloc(b->p, cap);
    if (!p) return -1;
    b->p = p;
    b->cap = cap;
    return 0;
}

static inline void zs_bit_put(uint8_t *bits, int64_t i, int on) {
    uint8_t m = (uint8_t)(1u << (i & 7));
    if (on) bits[i >> 3] |= m;
    else bits[i >> 3] &= (uint8_t)~m;
}

static inline int zs_is_digit(uint8_t c) { return c >= '0' && c <= '9'; }

static inline int zs_same(const uint8_t *p, size_t n, const uint8_t *lit, size_t lit_len) {
    if (n != lit_len) return 0;
    for (size_t i = 0; i < n; i++)
        if (p[i] != lit[i]) return 0;
    return 1;
}

typedef struct {
    int neg;
    uint64_t mant;     /* up to 19 significant digits */
    int exact;         /* mant holds every significant digit */
    int64_t exp10;     /* value = mant * 10^exp10 when exact */
    size_t int_digits; /* digits before the point */
    size_t frac_digits;
    int has_exp;
} zs_num;

/* ^[0-9]{1,max_digits}$ and at most umax */
static inline int zs_parse_uint(const uint8_t *p, size_t n, int max_digits, uint64_t umax,
                                uint64_t *out) {
    if (n == 0 || n > (size_t)max_digits) return 0;
    uint64_t v = 0;
    size_t safe = n < 19 ? n : 19; /* 19 digits cannot overflow 64 bits */
    for (size_t i = 0; i < safe; i++) {
        unsigned d = (unsigned)p[i] - '0';
        if (d > 9) return 0;
        v = v * 10 + d;
    }
    if (n > 19) {
        unsigned d = (unsigned)p[19] - '0';
        if (d > 9 || __builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, d, &v))
            return 0;
    }
    if (v > umax) return 0;
    *out = v;
    return 1;
}

/* ^-?[0-9]{1,19}$ within [imin, imax] */
static inline int zs_parse_int(const uint8_t *p, size_t n, int64_t imin, int64_t imax,
                               int64_t *out) {
    int neg = n > 0 && p[0] == '-';
    size_t i = (size_t)neg;
    if (n - i == 0 || n - i > 19) return 0;
    uint64_t v = 0;
    for (; i < n; i++) {
        if (!zs_is_digit(p[i])) return 0;
        v = v * 10 + (uint64_t)(p[i] - '0'); /* 19 digits cannot overflow 64 bits */
    }
    if (neg) {
        if (v > (uint64_t)INT64_MAX + 1) return 0;
        int64_t x = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
        if (x < imin) return 0;
        *out = x;
    } else {
        if (v > (uint64_t)INT64_MAX || (int64_t)v > imax) return 0;
        *out = (int64_t)v;
    }
    return 1;
}

static inline void zs_put_uint(zs_column *c, int64_t r, uint64_t v) {
    uint8_t *at = c->values.p + (size_t)r * (size_t)c->width;
    switch (c->width) {
    case 1: *at = (uint8_t)v; break;
    case 2: { uint16_t x = (uint16_t)v; memcpy(at, &x, 2); break; }
    case 4: { uint32_t x = (uint32_t)v; memcpy(at, &x, 4); break; }
    default: memcpy(at, &v, 8);
    }
}

static inline void zs_put_int(zs_column *c, int64_t r, int64_t v) {
    uint8_t *at = c->values.p + (size_t)r * (size_t)c->width;
    switch (c->width) {
    case 1: { int8_t x = (int8_t)v; memcpy(at, &x, 1); break; }
    case 2: { int16_t x = (int16_t)v; memcpy(at, &x, 2); break; }
    case 4: { int32_t x = (int32_t)v; memcpy(at, &x, 4); break; }
    default: memcpy(at, &v, 8);
    }
}

int zs_buf_alloc_zero(zs_buf *b, size_t n);
int zs_buf_alloc(zs_buf *b, size_t n);
void zs_buf_free(zs_buf *b);

int zs_scan_number(const uint8_t *p, size_t n, zs_num *num);
double zs_number_value(const uint8_t *p, size_t n, const zs_num *num);
int zs_parse_time(const uint8_t *p, size_t n, int64_t *out);
int zs_addr_ok(const uint8_t *p, size_t n);
int zs_utf8_ok(const uint8_t *p, size_t n);
size_t zs_unescape(const uint8_t *p, size_t n, uint8_t *out);

/* Row r of fixed-width columns; offsets of variable-length ones. */
void zs_put_null(zs_column *c, int64_t r);

int zs_setup(zs_scan *s, int64_t n_lines);
void zs_rollback(zs_scan *s, int64_t r);
void zs_note(zs_scan *s, int kind, int64_t line);
void zs_finish(zs_scan *s, int64_t rows);

/* The digits of p[from..n) with at most one '.' as one integer (*digits) and the dot's
 * position (*dot; n when there is none); returns where the scan stopped (n: at the end). */
static inline size_t zs_scan_decimal(const uint8_t *p, size_t n, size_t from, uint64_t *digits,
                                     size_t *dot) {
    uint64_t v = 0;
    size_t k, at = n;
    for (k = from; k < n; k++) {
        unsigned d = (unsigned)p[k] - '0';
        if (d <= 9) v = v * 10 + d;
        else if (p[k] == '.' && at == n) at = k;
        else break;
    }
    *digits = v, *dot = at;
    return k;
}

#endif
