/* sketch.c: exact-then-HyperLogLog distinct counting (see sketch.h). */
#include "sketch.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SK_Q (32 - SK_P)

/* splitmix64's finalizer: a bijection of 64-bit values that spreads every input bit. */
static inline uint64_t mix(uint64_t x) {
    x ^= x >> 30;
    x *= 0xBF58476D1CE4E5B9ULL;
    x ^= x >> 27;
    x *= 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

/* A register from a 32-bit fingerprint: the first SK_P bits choose it, the rest give the
 * rank (at most SK_Q + 1). */
static inline void reg_put(uint8_t *regs, uint32_t h) {
    uint32_t w = h << SK_P;
    uint8_t rank = (uint8_t)(w ? __builtin_clz(w) + 1 : SK_Q + 1);
    uint8_t *r = regs + (h >> SK_Q);
    if (rank > *r) *r = rank;
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

static int densify(sketch *s) {
    uint8_t *regs = calloc(SK_M, 1);
    if (!regs) return -1;
    uint32_t *slots = s->p;
    for (uint32_t i = 0; i < s->cap; i++)
        if (slots[i]) reg_put(regs, slots[i]);
    free(s->p);
    s->p = regs, s->n = 0, s->cap = SK_DENSE;
    return 0;
}

/* Room for one more value in the set, growing it (or turning it into registers). */
static int room(sketch *s) {
    if ((uint64_t)(s->n + 1) * 4 <= (uint64_t)s->cap * 3) return 0;
    uint32_t cap = s->cap ? s->cap * 2 : 4;
    if (cap > SK_SET_MAX) return densify(s);
    uint32_t *slots = calloc(cap, sizeof *slots);
    if (!slots) return -1;
    uint32_t *old = s->p;
    for (uint32_t i = 0; i < s->cap; i++)
        if (old[i]) set_put(slots, cap, old[i]);
    free(old);
    s->p = slots, s->cap = cap;
    return 0;
}

static int add_hash(sketch *s, uint32_t h) {
    if (s->cap != SK_DENSE) {
        if (!h) h = 1;  /* 0 marks a free slot */
        if (room(s) < 0) return -1;
        if (s->cap != SK_DENSE) {
            s->n += (uint32_t)set_put(s->p, s->cap, h);
            return 0;
        }
    }
    reg_put(s->p, h);
    return 0;
}

int sk_add(sketch *s, uint64_t value) { return add_hash(s, (uint32_t)(mix(value) >> 32)); }

int sk_merge(sketch *dst, const sketch *src) {
    if (src->cap == SK_DENSE) {
        if (dst->cap != SK_DENSE) {
            if (!dst->cap) {
                dst->p = calloc(SK_M, 1);
                if (!dst->p) return -1;
                dst->n = 0, dst->cap = SK_DENSE;
            } else if (densify(dst) < 0) {
                return -1;
            }
        }
        uint8_t *d = dst->p;
        const uint8_t *r = src->p;
        for (uint32_t i = 0; i < SK_M; i++) d[i] = d[i] > r[i] ? d[i] : r[i];
        return 0;
    }
    const uint32_t *slots = src->p;
    for (uint32_t i = 0; i < src->cap; i++)
        if (slots[i] && add_hash(dst, slots[i]) < 0) return -1;
    return 0;
}

int sk_copy(sketch *dst, const sketch *src) {
    sk_free(dst);
    if (!src->cap) return 0;
    size_t bytes = sk_bytes(src);
    if (!(dst->p = malloc(bytes))) return -1;
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

void sk_free(sketch *s) {
    free(s->p);
    s->p = NULL, s->n = 0, s->cap = 0;
}

size_t sk_bytes(const sketch *s) {
    return s->cap == SK_DENSE ? SK_M : (size_t)s->cap * sizeof(uint32_t);
}
