/* table.h: the open-addressing hash table and output buffers of egress._wincore.
 *
 * A table keeps fixed-size entries (key first, its int64 time at tpos) densely in one
 * array and an index of hash tags beside entry numbers; t_get finds or adds an entry,
 * t_retire moves out the entries older than a cutoff. A few recently used entries are
 * remembered by key (memo), so runs of rows with the same keys (sorted input) skip the
 * index. A caller that knows its keys early hashes them (t_hash), starts loading their index
 * slots (t_prefetch) and passes the hash on (t_get_hashed). Not thread-safe.
 */
#ifndef EGRESS_WINCORE_TABLE_H
#define EGRESS_WINCORE_TABLE_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define EMPTY UINT64_MAX
#define MEMO_BITS 5
#define MEMO (1 << MEMO_BITS)  /* recently used entries remembered */

typedef struct {
    uint8_t *ents;      /* dense entries, key first */
    size_t esize, ksize, tpos; /* entry and key size, offset of the int64 time in the key */
    size_t n, cap;      /* entries used, allocated */
    uint64_t *idx;      /* open addressing: hash upper half | entry number */
    size_t mask;
    size_t memo[MEMO];  /* entry numbers by memo_slot of their key; SIZE_MAX: none */
} table;

typedef struct {
    uint8_t *p;
    size_t len, cap;
} outbuf;

/* The i-th 64-bit word of a key. Keys are structs of narrower fields: they are read through
 * memcpy, not a uint64_t pointer, so that the compiler sees the reads of the fields just
 * written (strict aliasing) when it inlines a lookup beside the key's making. */
static inline uint64_t key_word(const void *key, size_t i) {
    uint64_t w;
    memcpy(&w, (const uint8_t *)key + i * 8, sizeof w);
    return w;
}

static inline uint64_t hash_words(const void *key, size_t size) {
    uint64_t h = 0x9E3779B97F4A7C15ULL ^ size;
    for (size_t i = 0; i < size / 8; i++) {
        h ^= key_word(key, i);
        h *= 0xBF58476D1CE4E5B9ULL;
        h ^= h >> 29;
    }
    h *= 0x94D049BB133111EBULL;
    return h ^ (h >> 32);
}

static inline void t_forget_memo(table *t) {
    for (size_t i = 0; i < MEMO; i++) t->memo[i] = SIZE_MAX;
}

/* A key's memo slot: from its first two words (keys are at least 8 bytes). The words are
 * mixed before the top bits are taken: keys that differ only in high bits of the first word
 * (a country, a flag) must not share a slot. */
static inline size_t memo_slot(const void *key, size_t size) {
    uint64_t w1 = key_word(key, size >= 16);  /* (the first word again of an 8-byte key) */
    uint64_t x = key_word(key, 0) * 0x9E3779B97F4A7C15ULL ^
                 (size >= 16 ? w1 : 0) * 0xC2B2AE3D27D4EB4FULL;
    x ^= x >> 29;
    x *= 0xBF58476D1CE4E5B9ULL;
    return (size_t)(x >> (64 - MEMO_BITS));
}

static inline int t_init(table *t, size_t esize, size_t ksize, size_t tpos) {
    memset(t, 0, sizeof *t);
    t_forget_memo(t);
    t->esize = esize, t->ksize = ksize, t->tpos = tpos;
    t->mask = 1023;
    t->idx = malloc((t->mask + 1) * sizeof *t->idx);
    if (!t->idx) return -1;
    memset(t->idx, 0xff, (t->mask + 1) * sizeof *t->idx);
    return 0;
}

static inline void t_free(table *t) {
    free(t->ents);
    free(t->idx);
    t->ents = NULL, t->idx = NULL;
}

/* Index the entries afresh. The hashes are taken REINDEX_AHEAD entries ahead and their
 * slots prefetched, so that the cache misses of the random slot writes overlap. */
#define REINDEX_AHEAD 16
static inline void t_reindex(table *t) {
    t_forget_memo(t);  /* entries may have moved */
    memset(t->idx, 0xff, (t->mask + 1) * sizeof *t->idx);
    uint64_t ahead[REINDEX_AHEAD];
    for (size_t e = 0; e < t->n && e < REINDEX_AHEAD; e++) {
        ahead[e] = hash_words(t->ents + e * t->esize, t->ksize);
        __builtin_prefetch(t->idx + (ahead[e] & t->mask), 1);
    }
    for (size_t e = 0; e < t->n; e++) {
        uint64_t h = ahead[e % REINDEX_AHEAD];
        if (e + REINDEX_AHEAD < t->n) {
            uint64_t g = hash_words(t->ents + (e + REINDEX_AHEAD) * t->esize, t->ksize);
            ahead[e % REINDEX_AHEAD] = g;
            __builtin_prefetch(t->idx + (g & t->mask), 1);
        }
        size_t i = h & t->mask;
        while (t->idx[i] != EMPTY) i = (i + 1) & t->mask;
        t->idx[i] = (h & 0xFFFFFFFF00000000ULL) | e;
    }
}

static inline int same_key(const uint8_t *p, const void *key, size_t size) {
    for (size_t i = 0; i < size / 8; i++)
        if (key_word(p, i) != key_word(key, i)) return 0;
    return 1;
}

/* A key's hash, for t_prefetch and t_get_hashed. */
static inline uint64_t t_hash(const table *t, const void *key) {
    return hash_words(key, t->ksize);
}

/* Start loading the index slot where the key of hash h is looked up first: a lookup a few
 * rows later finds it in cache (a hint only: the index may grow in between). */
static inline void t_prefetch(const table *t, uint64_t h) {
    __builtin_prefetch(t->idx + (h & t->mask));
}

/* t_get with the key's hash h given when have_h (as t_hash computes it). */
static inline uint8_t *t_get_hashed(table *t, const void *key, int have_h, uint64_t h,
                                    int *fresh) {
    *fresh = 0;
    size_t m = memo_slot(key, t->ksize);
    if (t->memo[m] < t->n) {
        uint8_t *p = t->ents + t->memo[m] * t->esize;
        if (same_key(p, key, t->ksize)) return p;
    }
    if ((t->n + 1) * 2 > t->mask + 1) {
        size_t size = (t->mask + 1) * 2;
        uint64_t *idx = realloc(t->idx, size * sizeof *idx);
        if (!idx) return NULL;
        t->idx = idx, t->mask = size - 1;
        t_reindex(t);
    }
    if (!have_h) h = hash_words(key, t->ksize);
    uint64_t tag = h & 0xFFFFFFFF00000000ULL;
    size_t i = h & t->mask;
    for (;;) {
        uint64_t slot = t->idx[i];
        if (slot == EMPTY) break;
        if ((slot & 0xFFFFFFFF00000000ULL) == tag) {
            uint8_t *p = t->ents + (slot & 0xFFFFFFFFULL) * t->esize;
            if (same_key(p, key, t->ksize)) {
                t->memo[m] = slot & 0xFFFFFFFFULL;
                return p;
            }
        }
        i = (i + 1) & t->mask;
    }
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 1024;
        uint8_t *ents = realloc(t->ents, cap * t->esize);
        if (!ents) return NULL;
        t->ents = ents, t->cap = cap;
    }
    if (t->n >= 0xFFFFFFFEULL) return NULL;
    uint8_t *p = t->ents + t->n * t->esize;
    memset(p, 0, t->esize);
    memcpy(p, key, t->ksize);
    t->memo[m] = t->n;
    t->idx[i] = tag | t->n++;
    *fresh = 1;
    return p;
}

/* The entry of key (zeroed but for the key when new, and *fresh set); NULL when out of
 * memory. The index holds the hash's upper half beside each entry number, so a probe
 * touches an entry only when the halves agree. */
static inline uint8_t *t_get(table *t, const void *key, int *fresh) {
    return t_get_hashed(t, key, 0, 0, fresh);
}

static inline int out_append(outbuf *o, const void *p, size_t size) {
    if (o->len + size > o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 1 << 16;
        while (cap < o->len + size) cap *= 2;
        uint8_t *q = realloc(o->p, cap);
        if (!q) return -1;
        o->p = q, o->cap = cap;
    }
    memcpy(o->p + o->len, p, size);
    o->len += size;
    return 0;
}

/* Move the entries whose time is before cutoff to o (o NULL: drop them). */
static inline int t_retire(table *t, outbuf *o, int64_t cutoff) {
    size_t kept = 0;
    for (size_t e = 0; e < t->n; e++) {
        uint8_t *p = t->ents + e * t->esize;
        int64_t when;
        memcpy(&when, p + t->tpos, sizeof when);
        if (when < cutoff) {
            if (o && out_append(o, p, t->esize) < 0) return -1;
        } else {
            if (kept != e) memmove(t->ents + kept * t->esize, p, t->esize);
            kept++;
        }
    }
    if (kept != t->n) {
        t->n = kept;
        t_reindex(t);
    }
    return 0;
}

#endif
