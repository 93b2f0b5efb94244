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

/* Add a value; -1 when out of memory (the sketch is unchanged). */
int sk_add(sketch *s, uint64_t value);
/* dst |= src; -1 when out of memory. */
int sk_merge(sketch *dst, const sketch *src);
/* dst = a copy of src (dst's own values are dropped); -1 when out of memory. */
int sk_copy(sketch *dst, const sketch *src);
/* The number of distinct values: exact while a set, else the estimate (rounded). */
int64_t sk_count(const sketch *s);
void sk_free(sketch *s);
/* Bytes held (for memory accounting). */
size_t sk_bytes(const sketch *s);

#endif
