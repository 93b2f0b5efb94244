/* tsv.c: Zeek TSV lines -> column buffers, one pass, every access bounds-checked.
 *
 * Each line is cut into fields at the separator; a line whose field count differs from the
 * header's is counted (ZI_COLUMNS), a blank one too (ZI_BLANK). Planned fields are converted
 * straight into their column (column.c); unset -> null, #empty_field -> "" or [], \xNN decoded.
 */
#include "column.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

/* ------------------------------------------------------------------ values */

/* Append a string value (raw or unescaped); BAD_VALUE if not UTF-8, STOP if out of memory. */
static int put_string(zs_scan *s, zs_column *c, int64_t r, const uint8_t *p, size_t n,
                      int decode) {
    if (zs_buf_reserve(&c->data, n) < 0) { s->oom = 1; return STOP; }
    size_t at = c->data.len;
    uint8_t *out = c->data.p + at;
    size_t w = n;
    if (n <= 64) { /* short values: one plain loop beats the libc calls */
        unsigned high = 0, slash = 0;
        for (size_t i = 0; i < n; i++) {
            uint8_t ch = p[i];
            out[i] = ch;
            high |= ch;
            slash |= ch == '\\';
        }
        if (decode && slash) {
            w = zs_unescape(p, n, out);
            if (!zs_utf8_ok(out, w)) return BAD_VALUE; /* \xNN may have made any byte */
        } else if (decode && (high & 0x80) && !zs_utf8_ok(out, w)) {
            return BAD_VALUE;
        }
    } else {
        w = decode ? zs_unescape(p, n, out) : (memcpy(out, p, n), n);
        if (decode && !zs_utf8_ok(out, w)) return BAD_VALUE;
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

/* Convert field p[0:n) into row r of column c. */
static int put_value(zs_scan *s, zs_column *c, int64_t r, const uint8_t *p, size_t n) {
    uint8_t *bits = c->validity.p;
    int32_t *off32 = (int32_t *)c->offsets.p;
    if (zs_same(p, n, s->unset, s->unset_len)) {
        zs_put_null(c, r);
        return OK;
    }
    zs_bit_put(bits, r, 1);
    switch (c->kind) {
    case ZK_TIME: {
        int64_t us = 0;
        int rc = zs_parse_time(p, n, &us);
        ((int64_t *)c->values.p)[r] = us;
        if (rc == 2) { zs_bit_put(bits, r, 0); return MASKED; }
        return rc ? OK : BAD_VALUE;
    }
    case ZK_UINT: {
        uint64_t v;
        if (!zs_parse_uint(p, n, c->max_digits, c->umax, &v)) return BAD_VALUE;
        zs_put_uint(c, r, v);
        return OK;
    }
    case ZK_INT: {
        int64_t v;
        if (!zs_parse_int(p, n, c->imin, c->imax, &v)) return BAD_VALUE;
        zs_put_int(c, r, v);
        return OK;
    }
    case ZK_DOUBLE: {
        zs_num num;
        if (!zs_scan_number(p, n, &num)) return BAD_VALUE;
        double v = zs_number_value(p, n, &num);
        if (isnan(v)) return BAD_VALUE;
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
        return put_string(s, c, r, p, n, 1);
    case ZK_ADDR:
        if (!zs_addr_ok(p, n)) return BAD_ADDRESS;
        return put_string(s, c, r, p, n, 0);
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

void zs_scan_tsv(zs_scan *s, const uint8_t *data, size_t len, int64_t first_line,
                 int64_t n_lines) {
    if (n_lines < 0 || s->nfields < 1 || s->sep_len < 1) { s->fallback = 1; return; }
    if (zs_setup(s, n_lines) < 0) { s->oom = 1; return; }
    size_t cap = (size_t)s->nfields - 1;
    size_t *seps = malloc((cap ? cap : 1) * sizeof *seps);
    if (!seps) { s->oom = 1; return; }
    int64_t *lines_out = (int64_t *)s->lines.p;
    int64_t r = 0, line = first_line, seen = 0;
    size_t pos = 0;
    while (pos < len && seen < n_lines) {
        const uint8_t *p = data + pos;
        const uint8_t *nl = memchr(p, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - p) : len - pos;
        pos += n + 1;
        seen++;
        int64_t this_line = line++;
        size_t m = n;
        while (m && p[m - 1] == '\r') m--;
        if (m == 0) { zs_note(s, ZI_BLANK, this_line); continue; }
        if (n && p[n - 1] == '\r') n--;
        size_t found = s->sep_len == 1 ? find_seps(p, n, s->sep[0], seps, cap)
                                        : find_seps_long(p, n, s->sep, s->sep_len, seps, cap);
        if (found != cap) {
            zs_note(s, ZI_COLUMNS, this_line);
            continue;
        }
        int fault = OK;
        for (int k = 0; k < s->ncols; k++) {
            zs_column *c = &s->cols[k];
            size_t a = c->field == 0 ? 0 : seps[c->field - 1] + s->sep_len;
            size_t b = (size_t)c->field == cap ? n : seps[c->field];
            int rc = put_value(s, c, r, p + a, b - a);
            if (rc == MASKED) { zs_note(s, ZI_MASKED, this_line); continue; }
            if (rc != OK) { fault = rc; break; }
        }
        if (fault == STOP) break;
        if (fault != OK) {
            zs_note(s, fault == BAD_ADDRESS ? ZI_ADDRESS : ZI_VALUE, this_line);
            zs_rollback(s, r);
            continue;
        }
        lines_out[r++] = this_line;
    }
    free(seps);
    /* lines the caller counted but the buffer did not hold (cannot happen with its framing) */
    if (seen < n_lines && !s->fallback && !s->oom) s->fallback = 1;
    zs_finish(s, r);
}
