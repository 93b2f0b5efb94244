/* sketch.c: exact-then-HyperLogLog distinct counting (see sketch.h). */
#include "sketch.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SK_Q (32 - SK_P)

/* A register from a 32-bit fingerprint: the first SK_P bits choose it, the rest give the
 * rank (at most SK_Q + 1). */
static inline void reg_put(uint8_t *regs, uint32_t h) {
    uint32_t w = h << SK_P;
    uint8_t rank = (uint8_t)(w ? __builtin_clz(w) + 1 : SK_Q + 1);
    uint8_t *r = regs + (h >> SK_Q);
    if (rank > *r) *r = rank;
}

/* Pool chunks: 1 MiB, 64-byte aligned; blocks of 64 bytes or more are 64-byte aligned. */
#define CHUNK ((size_t)1 << 20)

/* A block of bytes (16 << k, k < SK_CLASSES), uninitialized; NULL when out of memory. */
static void *block_get(sk_pool *pool, size_t bytes) {
    if (!pool) return malloc(bytes);
    int k = __builtin_ctzll(bytes) - 4;
    void *b = pool->free[k];
    if (b) {
        memcpy(&pool->free[k], b, sizeof b);  /* a free block holds the next one */
        return b;
    }
    size_t align = bytes < 64 ? bytes : 64;
    size_t pad = (size_t)(-(uintptr_t)pool->bump) & (align - 1);
    if (!pool->bump || pool->left < pad + bytes) {
        uint8_t *c = aligned_alloc(64, CHUNK);
        if (!c) return NULL;
        memcpy(c, &pool->chunks, sizeof pool->chunks);
        pool->chunks = c, pool->bump = c + 64, pool->left = CHUNK - 64, pad = 0;
    }
    b = pool->bump + pad;
    pool->bump += pad + bytes, pool->left -= pad + bytes;
    return b;
}

static void block_put(sk_pool *pool, void *b, size_t bytes) {
    if (!pool) {
        free(b);
        return;
    }
    int k = __builtin_ctzll(bytes) - 4;
    memcpy(b, &pool->free[k], sizeof b);
    pool->free[k] = b;
}

void sk_pool_free(sk_pool *pool) {
    void *c = pool->chunks;
    while (c) {
        void *next;
        memcpy(&next, c, sizeof next);
        free(c);
        c = next;
    }
    memset(pool, 0, sizeof *pool);
}

/* Insert a fingerprint into a set with room for it (cap a power of two). 1 if new. */
static inline int set_put(uint32_t *slots, uint32_t cap, uint32_t h) {
    uint32_t i = (h ^ (h >> 16)) & (cap - 1);
    while (slots[i]) {
        if (slots[i] == h) return 0;
        i = (i + 1) & (cap - 1);
    }
    slots[i] = h;
    return 1;
}

/* The values of a set, gathered into out (room for cap): their number. Branch-free: a
 * set is a quarter to three quarters full, so a test per slot would be a coin toss. */
static inline uint32_t set_values(const uint32_t *slots, uint32_t cap, uint32_t *out) {
    uint32_t n = 0;
    for (uint32_t i = 0; i < cap; i++) {
        out[n] = slots[i];
        n += slots[i] != 0;
    }
    return n;
}

static int densify(sk_pool *pool, sketch *s) {
    uint8_t *regs = block_get(pool, SK_M);
    if (!regs) return -1;
    memset(regs, 0, SK_M);
    uint32_t values[SK_SET_MAX];
    uint32_t n = set_values(s->p, s->cap, values);
    for (uint32_t i = 0; i < n; i++) reg_put(regs, values[i]);
    block_put(pool, s->p, sk_bytes(s));
    s->p = regs, s->n = 0, s->cap = SK_DENSE;
    return 0;
}

/* Room for one more value: the set 2^shift times as large (up to SK_SET_MAX slots;
 * SK_FIRST slots at first), or registers once it would outgrow SK_SET_MAX slots. */
static int grow(sk_pool *pool, sketch *s, int shift) {
    if (s->cap == SK_SET_MAX) return densify(pool, s);
    uint32_t cap = s->cap ? s->cap << shift : SK_FIRST;
    if (cap > SK_SET_MAX) cap = SK_SET_MAX;
    uint32_t *slots = block_get(pool, (size_t)cap * sizeof *slots);
    if (!slots) return -1;
    memset(slots, 0, (size_t)cap * sizeof *slots);
    uint32_t *old = s->p;
    if (old) {
        uint32_t values[SK_SET_MAX / 2];
        uint32_t n = set_values(old, s->cap, values);
        for (uint32_t i = 0; i < n; i++) set_put(slots, cap, values[i]);
        block_put(pool, old, sk_bytes(s));
    }
    s->p = slots, s->cap = cap;
    return 0;
}

/* Add a fingerprint. A set grows only for a value it does not hold, so that the sketch of
 * a set of values is one whatever the order they came in (or how often). */
static inline int add_hash(sk_pool *pool, sketch *s, uint32_t h, int shift) {
    if (s->cap == SK_DENSE) {
        reg_put(s->p, h);
        return 0;
    }
    if (!h) h = 1;  /* 0 marks a free slot */
    if (s->cap) {
        uint32_t *slots = s->p, mask = s->cap - 1, i = (h ^ (h >> 16)) & mask;
        for (; slots[i]; i = (i + 1) & mask)
            if (slots[i] == h) return 0;
        if ((uint64_t)(s->n + 1) * 4 <= (uint64_t)s->cap * 3) {
            slots[i] = h, s->n++;
            return 0;
        }
    }
    if (grow(pool, s, shift) < 0) return -1;
    if (s->cap == SK_DENSE) reg_put(s->p, h);
    else s->n += (uint32_t)set_put(s->p, s->cap, h);
    return 0;
}

int sk_add(sk_pool *pool, sketch *s, uint64_t value) {
    return add_hash(pool, s, sk_fingerprint(value), 1);
}

int sk_add_hashed(sk_pool *pool, sketch *s, uint32_t h) { return add_hash(pool, s, h, 1); }

/* Add the fingerprints values[0..n) (none 0) to a set or registers. A set takes them a
 * stretch at a time, as many as it has room for whether they are new or not, without a
 * check each; when full, a value goes through add_hash (a set grows only for a new one). */
static int add_values(sk_pool *pool, sketch *s, const uint32_t *values, uint32_t n) {
    uint32_t i = 0;
    while (i < n && s->cap != SK_DENSE) {
        uint32_t room = s->cap / 4 * 3 - s->n;  /* (cap >= SK_FIRST: a multiple of 4) */
        if (!room) {
            if (add_hash(pool, s, values[i++], 1) < 0) return -1;
            continue;
        }
        uint32_t *slots = s->p, mask = s->cap - 1, end = n - i < room ? n : i + room, added = 0;
        for (; i < end; i++) {
            uint32_t h = values[i], at = (h ^ (h >> 16)) & mask;
            while (slots[at] && slots[at] != h) at = (at + 1) & mask;
            added += !slots[at];
            slots[at] = h;
        }
        s->n += added;
    }
    for (; i < n; i++) reg_put(s->p, values[i]);
    return 0;
}

int sk_merge(sk_pool *pool, sketch *dst, const sketch *src) {
    if (!src->cap) return 0;
    if (!dst->cap) return sk_copy(pool, dst, src);  /* the same values, slot for slot */
    if (src->cap == SK_DENSE) {
        if (dst->cap != SK_DENSE && densify(pool, dst) < 0) return -1;
        uint8_t *d = dst->p;
        const uint8_t *r = src->p;
        for (uint32_t i = 0; i < SK_M; i++) d[i] = d[i] > r[i] ? d[i] : r[i];
        return 0;
    }
    uint32_t values[SK_SET_MAX];
    return add_values(pool, dst, values, set_values(src->p, src->cap, values));
}

void sk_prefetch_merge(const sketch *dst, const sketch *src) {
    if (!dst->cap || !src->cap || src->cap == SK_DENSE) return;
    const uint32_t *slots = src->p;  /* (a free slot's prefetch is harmless) */
    if (dst->cap == SK_DENSE) {
        const uint8_t *regs = dst->p;
        for (uint32_t i = 0; i < src->cap; i++) __builtin_prefetch(regs + (slots[i] >> SK_Q), 1);
        return;
    }
    const uint32_t *to = dst->p;
    uint32_t mask = dst->cap - 1;
    for (uint32_t i = 0; i < src->cap; i++)
        __builtin_prefetch(to + ((slots[i] ^ (slots[i] >> 16)) & mask), 1);
}

void sk_prefetch(const sketch *s) {
    size_t bytes = s->cap ? sk_bytes(s) : 0;
    if (bytes > 1024) bytes = 1024;
    for (size_t at = 0; at < bytes; at += 64) __builtin_prefetch((const uint8_t *)s->p + at);
}

int sk_reserve(sk_pool *pool, sketch *s, uint32_t values) {
    if (s->cap) return 0;
    uint32_t cap = SK_FIRST;
    while ((uint64_t)values * 4 > (uint64_t)cap * 3 && cap < SK_SET_MAX) cap *= 2;
    if (!(s->p = block_get(pool, (size_t)cap * sizeof(uint32_t)))) return -1;
    memset(s->p, 0, (size_t)cap * sizeof(uint32_t));
    s->n = 0, s->cap = cap;
    return 0;
}

int sk_copy(sk_pool *pool, sketch *dst, const sketch *src) {
    sk_free(pool, dst);
    if (!src->cap) return 0;
    size_t bytes = sk_bytes(src);
    if (!(dst->p = block_get(pool, bytes))) return -1;
    memcpy(dst->p, src->p, bytes);
    dst->n = src->n, dst->cap = src->cap;
    return 0;
}

/* sigma and tau of Ertl's improved raw estimator (fixed-point iterations). */
static double sigma(double x) {
    if (x == 1.0) return INFINITY;
    double y = 1.0, z = x, before;
    do {
        x *= x;
        before = z;
        z += x * y;
        y += y;
    } while (z != before);
    return z;
}

static double tau(double x) {
    if (x == 0.0 || x == 1.0) return 0.0;
    double y = 1.0, z = 1.0 - x, before;
    do {
        x = sqrt(x);
        before = z;
        y *= 0.5;
        z -= (1.0 - x) * (1.0 - x) * y;
    } while (z != before);
    return z / 3.0;
}

int64_t sk_count(const sketch *s) {
    if (s->cap != SK_DENSE) return s->n;
    uint32_t part[4][SK_Q + 2], hist[SK_Q + 2];
    memset(part, 0, sizeof part);
    const uint8_t *regs = s->p;
    for (uint32_t i = 0; i < SK_M; i += 4)  /* four histograms: no chain of increments */
        part[0][regs[i]]++, part[1][regs[i + 1]]++, part[2][regs[i + 2]]++,
            part[3][regs[i + 3]]++;
    for (int k = 0; k < SK_Q + 2; k++) hist[k] = part[0][k] + part[1][k] + part[2][k] + part[3][k];
    double m = SK_M;
    double z = m * tau(1.0 - hist[SK_Q + 1] / m);
    for (int k = SK_Q; k >= 1; k--) z = 0.5 * (z + hist[k]);
    z += m * sigma(hist[0] / m);
    return (int64_t)llround(0.5 / log(2.0) * m * m / z);
}

void sk_free(sk_pool *pool, sketch *s) {
    if (s->p) block_put(pool, s->p, sk_bytes(s));
    s->p = NULL, s->n = 0, s->cap = 0;
}

size_t sk_bytes(const sketch *s) {
    return s->cap == SK_DENSE ? SK_M : (size_t)s->cap * sizeof(uint32_t);
}
