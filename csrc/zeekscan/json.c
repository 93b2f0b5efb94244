/* json.c: Zeek JSON lines (one flat object per line) -> column buffers, bounds-checked.
 *
 * Each line must be one JSON object as Python's json.loads accepts it (strict strings and
 * numbers, any whitespace between tokens), else it is counted as ZI_JSON; a blank line as
 * ZI_BLANK. Keys are matched against the plan's names (Zeek writes them in the same order on
 * every line, so the next planned key is tried first); other keys are skipped whatever their
 * value. null and absent keys are null. A value of the wrong JSON type or out of the column's
 * range drops the row as a bad value, an address of the wrong shape as a bad address.
 * A string holding a lone surrogate (\ud800) is a bad value too: no Arrow string can hold it.
 * Inputs the plan leaves to Python make the whole call fall back: ISO-8601 "ts" strings,
 * NaN/Infinity, repeated keys, escaped keys, nesting deeper than 64.
 */
#include "column.h"

#include <math.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

typedef struct {
    const uint8_t *p, *end;
    int fallback;
    int lone; /* the last string checked holds a lone surrogate (no Arrow string can) */
} cursor;

static inline void skip_ws(cursor *cu) {
    while (cu->p < cu->end && (*cu->p == ' ' || *cu->p == '\t' || *cu->p == '\r' || *cu->p == '\n'))
        cu->p++;
}

static inline int hex4(const uint8_t *p, uint32_t *out) {
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        uint8_t c = p[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
              : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) return 0;
        v = v * 16 + (uint32_t)d;
    }
    *out = v;
    return 1;
}

/* Check the string at cu->p (on its opening quote) and step past it. Sets raw and raw_len to
 * its content and escaped if it holds escapes. 0 if it is not valid JSON. */
static int check_string(cursor *cu, const uint8_t **raw, size_t *raw_len, int *escaped) {
    const uint8_t *p = cu->p + 1, *end = cu->end;
    unsigned high = 0;
    *escaped = 0;
    cu->lone = 0;
    while (p < end) {
#ifdef __SSE2__
        /* 16 plain bytes at a time: no quote, backslash, control or non-ASCII byte */
        const __m128i quote = _mm_set1_epi8('"'), slash = _mm_set1_epi8('\\'),
                      space = _mm_set1_epi8(0x20);
        while (end - p >= 16) {
            __m128i b = _mm_loadu_si128((const __m128i *)p);
            __m128i special = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(b, quote),
                                                        _mm_cmpeq_epi8(b, slash)),
                                           _mm_cmplt_epi8(b, space)); /* signed: >= 0x80 too */
            unsigned m = (unsigned)_mm_movemask_epi8(special);
            if (m) { p += __builtin_ctz(m); break; }
            p += 16;
        }
        if (p >= end) break;
#endif
        uint8_t c = *p;
        if (c == '"') break;
        if (c < 0x20) return 0;
        high |= c;
        if (c != '\\') { p++; continue; }
        *escaped = 1;
        if (end - p < 2) return 0;
        uint8_t e = p[1];
        if (e == 'u') {
            uint32_t u, lo;
            if (end - p < 6 || !hex4(p + 2, &u)) return 0;
            p += 6;
            if (u >= 0xD800 && u <= 0xDBFF) {
                if (end - p >= 6 && p[0] == '\\' && p[1] == 'u' && hex4(p + 2, &lo) &&
                    lo >= 0xDC00 && lo <= 0xDFFF) {
                    p += 6;
                } else {
                    cu->lone = 1;
                }
            } else if (u >= 0xDC00 && u <= 0xDFFF) {
                cu->lone = 1;
            }
            continue;
        }
        if (!strchr("\"\\/bfnrt", e) || e == 0) return 0;
        p += 2;
    }
    if (p >= end) return 0;
    *raw = cu->p + 1;
    *raw_len = (size_t)(p - (cu->p + 1));
    if ((high & 0x80) && !zs_utf8_ok(*raw, *raw_len)) return 0;
    cu->p = p + 1;
    return 1;
}

/* Decode a checked string's content into out (at most n bytes); return the length. */
static size_t decode_string(const uint8_t *p, size_t n, uint8_t *out) {
    size_t w = 0;
    for (size_t i = 0; i < n;) {
        uint8_t c = p[i];
        if (c != '\\') { out[w++] = c; i++; continue; }
        uint8_t e = p[i + 1];
        if (e != 'u') {
            out[w++] = e == 'b' ? 8 : e == 'f' ? 12 : e == 'n' ? 10 : e == 'r' ? 13
                     : e == 't' ? 9 : e;
            i += 2;
            continue;
        }
        uint32_t u = 0, lo = 0;
        hex4(p + i + 2, &u);
        i += 6;
        if (u >= 0xD800 && u <= 0xDBFF && i + 6 <= n && p[i] == '\\' && p[i + 1] == 'u' &&
            hex4(p + i + 2, &lo) && lo >= 0xDC00 && lo <= 0xDFFF) {
            u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
            i += 6;
        }
        if (u < 0x80) {
            out[w++] = (uint8_t)u;
        } else if (u < 0x800) {
            out[w++] = (uint8_t)(0xC0 | (u >> 6));
            out[w++] = (uint8_t)(0x80 | (u & 0x3F));
        } else if (u < 0x10000) {
            out[w++] = (uint8_t)(0xE0 | (u >> 12));
            out[w++] = (uint8_t)(0x80 | ((u >> 6) & 0x3F));
            out[w++] = (uint8_t)(0x80 | (u & 0x3F));
        } else {
            out[w++] = (uint8_t)(0xF0 | (u >> 18));
            out[w++] = (uint8_t)(0x80 | ((u >> 12) & 0x3F));
            out[w++] = (uint8_t)(0x80 | ((u >> 6) & 0x3F));
            out[w++] = (uint8_t)(0x80 | (u & 0x3F));
        }
    }
    return w;
}

/* A JSON number at cu->p: step past it; *integer if it has no fraction or exponent. */
static int check_number(cursor *cu, const uint8_t **tok, size_t *len, int *integer) {
    const uint8_t *p = cu->p, *end = cu->end;
    *integer = 1;
    if (p < end && *p == '-') p++;
    if (p >= end || !zs_is_digit(*p)) return 0;
    if (*p == '0') p++;
    else while (p < end && zs_is_digit(*p)) p++;
    if (p < end && *p == '.') {
        *integer = 0;
        p++;
        if (p >= end || !zs_is_digit(*p)) return 0;
        while (p < end && zs_is_digit(*p)) p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        *integer = 0;
        p++;
        if (p < end && (*p == '+' || *p == '-')) p++;
        if (p >= end || !zs_is_digit(*p)) return 0;
        while (p < end && zs_is_digit(*p)) p++;
    }
    *tok = cu->p;
    *len = (size_t)(p - cu->p);
    cu->p = p;
    return 1;
}

static int literal(cursor *cu, const char *word) {
    size_t n = strlen(word);
    if ((size_t)(cu->end - cu->p) < n || memcmp(cu->p, word, n) != 0) return 0;
    cu->p += n;
    return 1;
}

/* Step past any JSON value; 0 if it is not valid JSON. */
static int skip_value(cursor *cu, int depth) {
    const uint8_t *raw;
    size_t n;
    int flag;
    if (depth > 64) { cu->fallback = 1; return 0; }
    skip_ws(cu);
    if (cu->p >= cu->end) return 0;
    switch (*cu->p) {
    case '"': return check_string(cu, &raw, &n, &flag);
    case 't': return literal(cu, "true");
    case 'f': return literal(cu, "false");
    case 'n': return literal(cu, "null");
    case 'N': case 'I': cu->fallback = 1; return 0;
    case '[': case '{': {
        uint8_t close = *cu->p == '[' ? ']' : '}';
        int object = close == '}';
        cu->p++;
        skip_ws(cu);
        if (cu->p < cu->end && *cu->p == close) { cu->p++; return 1; }
        for (;;) {
            if (object) {
                skip_ws(cu);
                if (cu->p >= cu->end || *cu->p != '"' || !check_string(cu, &raw, &n, &flag))
                    return 0;
                skip_ws(cu);
                if (cu->p >= cu->end || *cu->p != ':') return 0;
                cu->p++;
            }
            if (!skip_value(cu, depth + 1)) return 0;
            skip_ws(cu);
            if (cu->p >= cu->end) return 0;
            if (*cu->p == ',') { cu->p++; continue; }
            if (*cu->p == close) { cu->p++; return 1; }
            return 0;
        }
    }
    default:
        if (*cu->p == '-' && cu->end - cu->p > 1 && cu->p[1] == 'I') { cu->fallback = 1; return 0; }
        {
            const uint8_t *tok;
            int integer;
            return check_number(cu, &tok, &n, &integer);
        }
    }
}

/* Append a checked string to c's data (decoded); STOP when out of room. */
static int append_string(zs_scan *s, zs_column *c, const uint8_t *raw, size_t n, int escaped,
                         size_t *written) {
    if (zs_buf_reserve(&c->data, n) < 0) { s->oom = 1; return STOP; }
    uint8_t *out = c->data.p + c->data.len;
    size_t w = escaped ? decode_string(raw, n, out) : (memcpy(out, raw, n), n);
    if (c->data.len + w > INT32_MAX) { s->fallback = 1; return STOP; }
    *written = w;
    return OK;
}

/* Parse the value at cu->p into row r of column c. */
static int put_json(zs_scan *s, cursor *cu, zs_column *c, int64_t r) {
    skip_ws(cu);
    if (cu->p >= cu->end) return BAD_JSON;
    uint8_t first = *cu->p;
    int32_t *off32 = (int32_t *)c->offsets.p;
    if (first == 'n') {
        if (!literal(cu, "null")) return BAD_JSON;
        zs_put_null(c, r);
        return OK;
    }
    zs_bit_put(c->validity.p, r, 1);
    const uint8_t *tok;
    size_t n;
    int flag;
    if (first == '"') {
        if (!check_string(cu, &tok, &n, &flag)) return BAD_JSON;
        if (cu->lone) { zs_put_null(c, r); return BAD_VALUE; }
        if (c->kind == ZK_TIME) { cu->fallback = 1; return STOP; } /* ISO-8601: Python's */
        if (c->kind != ZK_STRING && c->kind != ZK_ADDR) { zs_put_null(c, r); return BAD_VALUE; }
        size_t w;
        int rc = append_string(s, c, tok, n, flag, &w);
        if (rc != OK) return rc;
        if (c->kind == ZK_ADDR && !zs_addr_ok(c->data.p + c->data.len, w)) {
            zs_put_null(c, r);
            return BAD_ADDRESS;
        }
        c->data.len += w;
        off32[r + 1] = (int32_t)c->data.len;
        return OK;
    }
    if (first == '[' && c->kind == ZK_SET) {
        cu->p++;
        skip_ws(cu);
        int bad = 0;
        if (cu->p < cu->end && *cu->p == ']') {
            cu->p++;
        } else {
            for (;;) {
                skip_ws(cu);
                if (cu->p < cu->end && *cu->p == '"') {
                    if (!check_string(cu, &tok, &n, &flag)) return BAD_JSON;
                    size_t w;
                    if (cu->lone) {
                        bad = 1;
                    } else {
                        if (zs_buf_reserve(&c->child_offsets, 4) < 0) { s->oom = 1; return STOP; }
                        int rc = append_string(s, c, tok, n, flag, &w);
                        if (rc != OK) return rc;
                        if (c->elements >= INT32_MAX - 1) { s->fallback = 1; return STOP; }
                        c->data.len += w;
                        c->elements++;
                        ((int32_t *)c->child_offsets.p)[c->elements] = (int32_t)c->data.len;
                        c->child_offsets.len += 4;
                    }
                } else {
                    if (!skip_value(cu, 1)) return BAD_JSON;
                    bad = 1;
                }
                skip_ws(cu);
                if (cu->p >= cu->end) return BAD_JSON;
                if (*cu->p == ',') { cu->p++; continue; }
                if (*cu->p == ']') { cu->p++; break; }
                return BAD_JSON;
            }
        }
        off32[r + 1] = (int32_t)c->elements;
        return bad ? BAD_VALUE : OK;
    }
    if (first == 't' || first == 'f') {
        if (!literal(cu, first == 't' ? "true" : "false")) return BAD_JSON;
        if (c->kind != ZK_BOOL) { zs_put_null(c, r); return BAD_VALUE; }
        zs_bit_put(c->values.p, r, first == 't');
        return OK;
    }
    if (first == '-' || zs_is_digit(first)) {
        if (first == '-' && cu->end - cu->p > 1 && cu->p[1] == 'I') { /* -Infinity */
            cu->fallback = 1;
            return STOP;
        }
        if (!check_number(cu, &tok, &n, &flag)) return BAD_JSON;
        int64_t i64;
        uint64_t u64;
        switch (c->kind) {
        case ZK_TIME: {
            int rc = zs_parse_time(tok, n, &i64);
            ((int64_t *)c->values.p)[r] = i64;
            return rc == 1 ? OK : BAD_VALUE;
        }
        case ZK_UINT:
            if (!flag || !zs_parse_uint(tok, n, 20, c->umax, &u64)) break;
            zs_put_uint(c, r, u64);
            return OK;
        case ZK_INT:
            if (!flag || !zs_parse_int(tok, n, c->imin, c->imax, &i64)) break;
            zs_put_int(c, r, i64);
            return OK;
        case ZK_DOUBLE: {
            zs_num num;
            zs_scan_number(tok, n, &num);
            ((double *)c->values.p)[r] = zs_number_value(tok, n, &num);
            return OK;
        }
        default:
            break;
        }
        zs_put_null(c, r);
        return BAD_VALUE;
    }
    if (first == 'N' || first == 'I') { cu->fallback = 1; return STOP; }
    if (!skip_value(cu, 0)) return BAD_JSON; /* an object, or an array for a scalar column */
    zs_put_null(c, r);
    return BAD_VALUE;
}

/* Index of the planned column named key (the expected one first), or -1. */
static inline int key_is(const uint8_t *key, size_t n, const uint8_t *name, size_t len) {
    if (n != len) return 0;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t a, b;
        memcpy(&a, key + i, 8);
        memcpy(&b, name + i, 8);
        if (a != b) return 0;
    }
    for (; i < n; i++)
        if (key[i] != name[i]) return 0;
    return 1;
}

static int find_column(const zs_scan *s, const uint8_t *key, size_t n, int guess) {
    if (guess < s->ncols && key_is(key, n, s->names[guess], s->name_lens[guess])) return guess;
    for (int k = 0; k < s->ncols; k++)
        if (key_is(key, n, s->names[k], s->name_lens[k])) return k;
    return -1;
}

/* One line's object; the row's outcome (OK, BAD_*, STOP). */
static int parse_object(zs_scan *s, cursor *cu, int64_t r, uint8_t *seen,
                        const uint8_t *plain) {
    int fault = OK, guess = 0;
    if (cu->p >= cu->end || *cu->p != '{') return BAD_JSON;
    cu->p++;
    skip_ws(cu);
    if (cu->p < cu->end && *cu->p == '}') {
        cu->p++;
    } else {
        for (;;) {
            const uint8_t *key;
            size_t n;
            int escaped;
            skip_ws(cu);
            if (cu->p >= cu->end || *cu->p != '"') return BAD_JSON;
            int k = -1;
            if (guess < s->ncols && plain[guess]) {
                /* the expected key, written plainly: no need to check it as a string */
                size_t len = s->name_lens[guess];
                if ((size_t)(cu->end - cu->p) > len + 1 && cu->p[len + 1] == '"' &&
                    key_is(cu->p + 1, len, s->names[guess], len)) {
                    k = guess;
                    cu->p += len + 2;
                }
            }
            if (k < 0) {
                if (!check_string(cu, &key, &n, &escaped)) return BAD_JSON;
                if (escaped) { cu->fallback = 1; return STOP; }
                k = s->ncols ? find_column(s, key, n, guess) : -1;
            }
            skip_ws(cu);
            if (cu->p >= cu->end || *cu->p != ':') return BAD_JSON;
            cu->p++;
            if (k < 0) {
                if (!skip_value(cu, 1)) return cu->fallback ? STOP : BAD_JSON;
            } else {
                if (seen[k]) { cu->fallback = 1; return STOP; } /* repeated key */
                seen[k] = 1;
                guess = k + 1 < s->ncols ? k + 1 : 0;
                int rc = put_json(s, cu, &s->cols[k], r);
                if (rc == STOP || rc == BAD_JSON) return cu->fallback ? STOP : rc;
                if (rc == BAD_VALUE || (rc == BAD_ADDRESS && fault == OK)) fault = rc;
            }
            skip_ws(cu);
            if (cu->p >= cu->end) return BAD_JSON;
            if (*cu->p == ',') { cu->p++; continue; }
            if (*cu->p == '}') { cu->p++; break; }
            return BAD_JSON;
        }
    }
    skip_ws(cu);
    if (cu->p != cu->end) return BAD_JSON;
    for (int k = 0; k < s->ncols; k++)
        if (!seen[k]) zs_put_null(&s->cols[k], r);
    return fault;
}

void zs_scan_json(zs_scan *s, const uint8_t *data, size_t len, int64_t first_line,
                  int64_t n_lines) {
    if (n_lines < 0) { s->fallback = 1; return; }
    if (zs_setup(s, n_lines) < 0) { s->oom = 1; return; }
    size_t ncols = (size_t)(s->ncols ? s->ncols : 1);
    uint8_t *seen = calloc(2 * ncols, 1);
    if (!seen) { s->oom = 1; return; }
    uint8_t *plain = seen + ncols; /* names a JSON string holds as they are */
    for (int k = 0; k < s->ncols; k++) {
        plain[k] = 1;
        for (size_t i = 0; i < s->name_lens[k]; i++) {
            uint8_t c = s->names[k][i];
            if (c < 0x20 || c >= 0x7F || c == '"' || c == '\\') plain[k] = 0;
        }
    }
    int64_t *lines_out = (int64_t *)s->lines.p;
    int64_t r = 0, line = first_line, done = 0;
    size_t pos = 0;
    while (pos < len && done < n_lines) {
        const uint8_t *p = data + pos;
        const uint8_t *nl = memchr(p, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - p) : len - pos;
        pos += n + 1;
        done++;
        int64_t this_line = line++;
        cursor cu = {p, p + n, 0, 0};
        size_t k = 0; /* blank as Python's bytes.strip() sees it */
        while (k < n && (p[k] == ' ' || (p[k] >= '\t' && p[k] <= '\r'))) k++;
        if (k == n) { zs_note(s, ZI_BLANK, this_line); continue; }
        skip_ws(&cu);
        memset(seen, 0, (size_t)s->ncols);
        int rc = parse_object(s, &cu, r, seen, plain);
        if (cu.fallback) { s->fallback = 1; break; }
        if (rc == STOP) break;
        if (rc != OK) {
            zs_note(s, rc == BAD_JSON ? ZI_JSON : rc == BAD_ADDRESS ? ZI_ADDRESS : ZI_VALUE,
                    this_line);
            zs_rollback(s, r);
            continue;
        }
        lines_out[r++] = this_line;
    }
    free(seen);
    if (done < n_lines && !s->fallback && !s->oom) s->fallback = 1;
    zs_finish(s, r);
}
