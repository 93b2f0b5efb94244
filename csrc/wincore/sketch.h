/* sketch.h: distinct counting that is exact for small sets and bounded for large ones.
 *
 * A value is mixed (a bijection of 64-bit values) and kept as a 32-bit fingerprint, its
 * upper half. A sketch starts as a set of fingerprints (open addressing), so its count is
 * exact but for fingerprints that collide (two of n values with probability about
 * n^2 / 2^33: 7e-5 at SK_EXACT_MAX), and turns into a HyperLogLog of 2^SK_P one-byte
 * registers once the set would take more memory than the registers (more than SK_EXACT_MAX
 * values): the first SK_P bits of a fingerprint choose the register, the other 32 - SK_P
 * its rank (enough for counts far beyond 2^32). Sketches merge (union) in either form.
 * The estimate of a HyperLogLog is Ertl's improved raw estimator ("New cardinality
 * estimation algorithms for HyperLogLog sketches", 2017), which needs no bias tables and
 * has a standard error of about 1.04 / sqrt(2^SK_P) over the whole range.
 */
#ifndef EGRESS_WINCORE_SKETCH_H
#define EGRESS_WINCORE_SKETCH_H

#include <stddef.h>
#include <stdint.h>

#define SK_P 12
#define SK_M (1u << SK_P)
/* A set of at most SK_M / 4 slots (the registers' size), at most 3/4 full. */
#define SK_SET_MAX (SK_M / 4)
#define SK_EXACT_MAX (SK_SET_MAX / 4 * 3)
#define SK_DENSE UINT32_MAX

typedef struct {
    void *p;       /* uint32_t set slots (0: free), or SK_M registers when cap == SK_DENSE */
    uint32_t n;    /* values in the set */
    uint32_t cap;  /* set slots (0: nothing allocated yet), or SK_DENSE */
} sketch;

/* Memory for many sketches of one owner: blocks of 16 << k bytes (set slots, or registers
 * at 4096 bytes) cut from large chunks and kept on a free list per size once freed, so
 * that sets growing and sketches let go cost no malloc or free (glibc's free would give
 * the top of the heap back, and the next growth takes fresh zeroed pages again). The
 * chunks go back at sk_pool_free. Not thread-safe: functions passed a NULL pool use
 * malloc and free (threads make their own sketches so). */
#define SK_CLASSES 9
typedef struct {
    void *free[SK_CLASSES];  /* blocks freed, by size class */
    void *chunks;            /* chunks allocated, linked through their first word */
    uint8_t *bump;           /* the rest of the newest chunk */
    size_t left;
} sk_pool;

void sk_pool_free(sk_pool *pool);

/* Add a value; -1 when out of memory (the sketch is unchanged). The first value of a set
 * makes room for SK_FIRST. */
#define SK_FIRST 16
int sk_add(sk_pool *pool, sketch *s, uint64_t value);

/* A value's fingerprint: the upper half of splitmix64's finalizer (a bijection of 64-bit
 * values that spreads every input bit). */
static inline uint32_t sk_fingerprint(uint64_t x) {
    x ^= x >> 30;
    x *= 0xBF58476D1CE4E5B9ULL;
    x ^= x >> 27;
    x *= 0x94D049BB133111EBULL;
    return (uint32_t)((x ^ (x >> 31)) >> 32);
}

/* sk_add of a value by its fingerprint, for any sketch (sk_add_fingerprint below). */
int sk_add_hashed(sk_pool *pool, sketch *s, uint32_t h);

/* sk_add of a value by its fingerprint: a set with room takes it here (inlined where the
 * values come one at a time), the rest in sk_add_hashed. */
static inline int sk_add_fingerprint(sk_pool *pool, sketch *s, uint32_t h) {
    if (s->cap && s->cap != SK_DENSE) {
        uint32_t *slots = s->p, mask = s->cap - 1, v = h ? h : 1;  /* 0 marks a free slot */
        uint32_t i = (v ^ (v >> 16)) & mask;
        for (; slots[i]; i = (i + 1) & mask)
            if (slots[i] == v) return 0;
        if ((s->n + 1) * 4 <= s->cap * 3) {
            slots[i] = v, s->n++;
            return 0;
        }
    }
    return sk_add_hashed(pool, s, h);
}

/* Make an empty sketch a set with room for values values (its slots a power of two, from
 * SK_FIRST up to SK_SET_MAX), so that it need not grow on the way there; -1 when out of
 * memory. Room only: what the sketch holds and counts is the same whatever room it has. */
int sk_reserve(sk_pool *pool, sketch *s, uint32_t values);

/* dst |= src; -1 when out of memory. The sketch is the same (values, registers) whatever
 * order values come in: a value already held changes nothing. */
int sk_merge(sk_pool *pool, sketch *dst, const sketch *src);
/* Start loading the memory of dst that merging src will touch (a hint). */
void sk_prefetch_merge(const sketch *dst, const sketch *src);
/* Start loading a sketch's own memory (a hint). */
void sk_prefetch(const sketch *s);
/* dst = a copy of src (dst's own values are dropped); -1 when out of memory. */
int sk_copy(sk_pool *pool, sketch *dst, const sketch *src);
/* The number of distinct values: exact while a set, else the estimate (rounded). */
int64_t sk_count(const sketch *s);
void sk_free(sk_pool *pool, sketch *s);
/* Bytes held (for memory accounting). */
size_t sk_bytes(const sketch *s);

#endif
