/* wincore.c: egress._wincore, the compiled pre-reduction of network transfers.
 *
 * NetworkReducer.add() takes one batch of network transfers as flat columns and reduces it,
 * with the GIL released, into three accumulators whose meaning is the SQL of
 * egress/windows_sql.py (HOURS_SQL, CELLS_SQL, PRESENCE_SQL, with the same cumulative-floor
 * apportioning in exact 128-bit arithmetic):
 *   hours    (tenant, hour, country, cross_border, crossing) -> bytes in/out, starts,
 *            quality-marked starts, longest duration;
 *   cells    (tenant, 5-minute cell) -> boundary-crossing bytes in/out;
 *   presence (tenant, hour, address hash, asn, country), a set.
 * It also selects evidence candidates: a row is one when its size reaches the n-th largest
 * size seen so far for its (tenant, day) (heaps of n sizes), so the candidates hold the n
 * largest under any tie order. The rows of a batch are taken by hour, then tenant (a stable
 * radix sort), so that a tenant's entries stay in cache while its rows pass; add() returns
 * the candidates' row numbers in that order. As they pass, the entries of the keys just used
 * are tried first (recent), and the index slots of the keys of rows further on are loaded
 * early (look_ahead): what add() does is what adding the rows one by one in that order does.
 *
 * Entries whose time lies more than a horizon before the latest time seen are moved to
 * output buffers (retired) that take_*() hands over as packed little-endian records, so
 * memory follows tenants x recent time, not transfers, on time-ordered input. A key that
 * reappears after its entry was retired starts a new entry: the consumer sums (or, for
 * presence, de-duplicates) across outputs, as the SQL compaction does.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "attrib.h"
#include "distinct.h"
#include "table.h"
#include "text.h"

__extension__ typedef unsigned __int128 u128;

#define HOUR_US 3600000000LL
#define CELL_US 300000000LL
#define DAY_US 86400000000LL

enum { F_CROSSING = 1, F_CROSS_BORDER = 2, F_QUALITY = 4, F_REMOTE = 8, F_ASN = 16 };

static inline int64_t floor_to(int64_t t, int64_t unit) {
    int64_t r = t % unit;
    return t - (r < 0 ? r + unit : r);
}

/* floor(bytes * elapsed / d), exactly (0 <= elapsed <= d, d > 0); in 64 bits when the
 * product fits in them (sizes and durations of most transfers). */
static inline uint64_t part(uint64_t bytes, int64_t elapsed, int64_t d) {
    if (elapsed == d) return bytes;
    if ((bytes | (uint64_t)elapsed) >> 32 == 0) return bytes * (uint64_t)elapsed / (uint64_t)d;
    return (uint64_t)(((u128)bytes * (u128)elapsed) / (u128)d);
}

/* ------------------------------------------------------------------ records */

typedef struct {  /* hours key: 24 bytes */
    int32_t tenant;
    int16_t country;  /* -1: unknown */
    uint8_t cross_border, crossing;
    int64_t t;
    int64_t pad;
} hkey;

typedef struct {
    hkey k;
    uint64_t in_lo, in_hi, out_lo, out_hi;
    int64_t starts, quality, max_duration;
} hent;

typedef struct {  /* cells key: 16 bytes */
    int32_t tenant, pad;
    int64_t t;
} ckey;

typedef struct {
    ckey k;
    uint64_t in_lo, in_hi, out_lo, out_hi;
} cent;

typedef struct {  /* presence key: 32 bytes */
    int32_t tenant;
    int16_t country;
    uint8_t has_asn, pad;
    int64_t t;
    uint64_t addr;
    int64_t asn;
} pkey;

typedef struct {  /* evidence heap of one (tenant, day) */
    int32_t tenant, pad;
    int64_t t;
    int64_t used;
    int64_t at;  /* offset of its sizes in the pool */
} ekey;

static inline void add128(uint64_t *lo, uint64_t *hi, uint64_t v) {
    uint64_t before = *lo;
    *lo += v;
    *hi += *lo < before;
}

typedef struct {
    PyObject_HEAD
    table hours, cells, presence, heaps;
    outbuf hours_out, cells_out, presence_out;
    uint64_t *pool;
    size_t pool_len, pool_cap;
    int64_t top, horizon_us;
    int64_t latest;  /* latest hour seen, INT64_MIN before any */
    int64_t retired_at;
    int64_t cells_done;  /* end of the latest cell handed out, INT64_MIN before any */
    int cells_late;  /* a cell entry was made before cells_done (its key may repeat) */
    int64_t hours_done;  /* end of the latest hour handed out, INT64_MIN before any */
    /* Two crossing hours entries may share (tenant, hour, country): one was made before
     * hours_done, or a country came both with and without cross_border. */
    int hours_split;
    int hours_late;  /* an hours entry was made before hours_done (its (tenant, hour) may
                      * come twice in the totals) */
    int8_t border[32768];  /* cross_border of each country's crossing entries, -1: none */
    ds_store *store;  /* distinct counts as sketches, or NULL: presence is handed out */
    uint8_t *scratch;  /* add()'s sort and sorted columns, kept for the next batch: fresh
                        * pages of a large allocation would be faulted in and zeroed again */
    size_t scratch_cap;
    int busy;  /* add() or take() runs without the GIL: another thread must not enter */
    /* The sketch pass of the last batch, left running in a thread of its own after add()
     * returns (it reads the batch's sorted columns in scratch): every later call that
     * touches the scratch or the store waits for it first (sketch_wait). */
    struct sketch_job *sketch;
    pthread_t sketch_thread;
    int sketching;
} Reducer;

static int reducer_init(Reducer *r, PyObject *args, PyObject *kw) {
    static char *names[] = {"evidence_top", "horizon_s", "sketch_keep_hours", NULL};
    long long top = 10, horizon_s = 7200, keep_hours = -1;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|LLL", names, &top, &horizon_s, &keep_hours))
        return -1;
    if (top < 0 || horizon_s < 0) {
        PyErr_SetString(PyExc_ValueError, "evidence_top and horizon_s must not be negative");
        return -1;
    }
    if (r->store) {
        PyErr_SetString(PyExc_RuntimeError, "NetworkReducer is initialised already");
        return -1;
    }
    if (keep_hours >= 0 && !(r->store = ds_new(keep_hours))) {
        PyErr_NoMemory();
        return -1;
    }
    r->top = top, r->horizon_us = horizon_s * 1000000LL;
    r->latest = r->retired_at = r->cells_done = r->hours_done = INT64_MIN;
    memset(r->border, 0xff, sizeof r->border);
    if (t_init(&r->hours, sizeof(hent), sizeof(hkey), offsetof(hkey, t)) < 0 ||
        t_init(&r->cells, sizeof(cent), sizeof(ckey), offsetof(ckey, t)) < 0 ||
        t_init(&r->presence, sizeof(pkey), sizeof(pkey), offsetof(pkey, t)) < 0 ||
        t_init(&r->heaps, sizeof(ekey), offsetof(ekey, used), offsetof(ekey, t)) < 0) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

static int sketch_wait(Reducer *r);

static void reducer_dealloc(Reducer *r) {
    sketch_wait(r);
    free(r->sketch);
    t_free(&r->hours), t_free(&r->cells), t_free(&r->presence), t_free(&r->heaps);
    free(r->hours_out.p), free(r->cells_out.p), free(r->presence_out.p), free(r->pool);
    free(r->scratch);
    ds_free(r->store);
    Py_TYPE(r)->tp_free((PyObject *)r);
}

/* Claim the reducer for a call that releases the GIL (checked and set under the GIL). */
static int claim(Reducer *r) {
    if (r->busy) {
        PyErr_SetString(PyExc_RuntimeError, "NetworkReducer is in use by another thread");
        return -1;
    }
    r->busy = 1;
    return 0;
}

/* Entry numbers of keys looked up lately in add(), tried before the tables: the rows come by
 * (hour, tenant), so a row's keys mostly repeat those of the rows just before it. An entry
 * is taken only when its key is the one sought (entries move when a table is compacted, and
 * a key is in a table once), so a stale number costs a lookup, never a wrong entry. */
#define GROUP_SLOTS 32
typedef struct {
    int32_t tenant;  /* the (tenant, hour) whose hours entries group holds */
    int64_t t;
    size_t group[GROUP_SLOTS];  /* by group_slot of the key; SIZE_MAX: none */
    size_t cell, heap;  /* the last cell and evidence heap */
} recent;

static void recent_init(recent *rc) {
    rc->tenant = -1, rc->t = INT64_MIN;
    memset(rc->group, 0xff, sizeof rc->group);
    rc->cell = rc->heap = SIZE_MAX;
}

/* The slot of an hours key among those of its (tenant, hour): by country and flags. */
static inline size_t group_slot(const hkey *k) {
    return ((size_t)(uint16_t)(k->country + 1) * 4 + (size_t)k->cross_border * 2 + k->crossing) &
           (GROUP_SLOTS - 1);
}

/* The entry of key k in t if entry number e holds it, else NULL. */
static inline uint8_t *entry_if(const table *t, size_t e, const void *k) {
    if (e >= t->n) return NULL;
    uint8_t *p = t->ents + e * t->esize;
    return same_key(p, k, t->ksize) ? p : NULL;
}

/* Add one piece of a transfer to the hours (the key's hash given when have_h; grouped: the
 * piece of the row's first hour, looked up among its (tenant, hour) first). */
static int add_hour(Reducer *r, recent *rc, const hkey *k, int grouped, int have_h,
                    uint64_t hash, uint64_t in, uint64_t out, int first, int quality,
                    int64_t duration) {
    hent *h = NULL;
    size_t slot = group_slot(k);
    if (grouped) {
        if (k->tenant != rc->tenant || k->t != rc->t) {
            rc->tenant = k->tenant, rc->t = k->t;
            memset(rc->group, 0xff, sizeof rc->group);
        }
        h = (hent *)entry_if(&r->hours, rc->group[slot], k);
    }
    if (!h) {
        int fresh;
        h = (hent *)t_get_hashed(&r->hours, k, have_h, hash, &fresh);
        if (!h) return -1;
        if (fresh) {
            h->max_duration = INT64_MIN;
            if (k->t < r->hours_done) r->hours_split = r->hours_late = 1;
            if (k->crossing && k->country >= 0) {
                int8_t *b = &r->border[k->country];
                if (*b < 0) *b = (int8_t)k->cross_border;
                else if (*b != k->cross_border) r->hours_split = 1;
            }
        }
        if (grouped) rc->group[slot] = (size_t)((uint8_t *)h - r->hours.ents) / r->hours.esize;
    }
    add128(&h->in_lo, &h->in_hi, in);
    add128(&h->out_lo, &h->out_hi, out);
    h->starts += first;
    h->quality += first && quality;
    if (duration > h->max_duration) h->max_duration = duration;
    return 0;
}

static int add_cell(Reducer *r, recent *rc, int32_t tenant, int64_t cell, int have_h,
                    uint64_t hash, uint64_t in, uint64_t out) {
    ckey k = {tenant, 0, cell};
    cent *c = (cent *)entry_if(&r->cells, rc->cell, &k);
    if (!c) {
        int fresh;
        c = (cent *)t_get_hashed(&r->cells, &k, have_h, hash, &fresh);
        if (!c) return -1;
        if (fresh && cell < r->cells_done) r->cells_late = 1;
        rc->cell = (size_t)((uint8_t *)c - r->cells.ents) / r->cells.esize;
    }
    add128(&c->in_lo, &c->in_hi, in);
    add128(&c->out_lo, &c->out_hi, out);
    return 0;
}

/* Is a transfer of this size an evidence candidate of its (tenant, day)? -1: no memory. */
static int candidate(Reducer *r, recent *rc, int32_t tenant, int64_t day, uint64_t size) {
    if (r->top == 0) return 0;
    ekey k = {tenant, 0, day, 0, 0};
    int fresh = 0;
    ekey *e = (ekey *)entry_if(&r->heaps, rc->heap, &k);
    if (!e) {
        e = (ekey *)t_get(&r->heaps, &k, &fresh);
        if (!e) return -1;
        rc->heap = (size_t)((uint8_t *)e - r->heaps.ents) / r->heaps.esize;
    }
    if (fresh) {  /* its sizes at the pool's end */
        if (r->pool_len + (size_t)r->top > r->pool_cap) {
            size_t cap = r->pool_cap ? r->pool_cap * 2 : 4096;
            while (cap < r->pool_len + (size_t)r->top) cap *= 2;
            uint64_t *pool = realloc(r->pool, cap * sizeof *pool);
            if (!pool) return -1;
            r->pool = pool, r->pool_cap = cap;
        }
        e->at = (int64_t)r->pool_len + 1;  /* 1-based */
        r->pool_len += (size_t)r->top;
    }
    uint64_t *heap = r->pool + (e->at - 1);
    int64_t n = e->used;
    if (n < r->top) {  /* sift up */
        int64_t i = n;
        while (i > 0 && heap[(i - 1) / 2] > size) {
            heap[i] = heap[(i - 1) / 2];
            i = (i - 1) / 2;
        }
        heap[i] = size;
        e->used = n + 1;
        return 1;
    }
    if (size < heap[0]) return 0;
    if (size > heap[0]) {  /* replace the least, sift down */
        int64_t i = 0;
        for (;;) {
            int64_t c = 2 * i + 1;
            if (c >= n) break;
            if (c + 1 < n && heap[c + 1] < heap[c]) c++;
            if (heap[c] >= size) break;
            heap[i] = heap[c];
            i = c;
        }
        heap[i] = size;
    }
    return 1;
}

/* The evidence heap of (tenant, day), or NULL (none: never made, or retired). */
static const ekey *find_heap(const Reducer *r, int32_t tenant, int64_t day) {
    const table *t = &r->heaps;
    if (!t->idx) return NULL;
    ekey k = {tenant, 0, day, 0, 0};
    uint64_t h = hash_words(&k, t->ksize), tag = h & 0xFFFFFFFF00000000ULL;
    for (size_t i = h & t->mask;; i = (i + 1) & t->mask) {
        uint64_t slot = t->idx[i];
        if (slot == EMPTY) return NULL;
        const uint8_t *p = t->ents + (slot & 0xFFFFFFFFULL) * t->esize;
        if ((slot & 0xFFFFFFFF00000000ULL) == tag && same_key(p, &k, t->ksize))
            return (const ekey *)p;
    }
}

/* Is a candidate of this size outranked for good: its (tenant, day) heap full of strictly
 * larger sizes? Each came from a candidate, so top candidates rank before it under any
 * order of ties. */
static int outranked(const Reducer *r, int32_t tenant, int64_t day, uint64_t size) {
    const ekey *e = find_heap(r, tenant, day);
    return e && e->used == r->top && size < r->pool[e->at - 1];
}

typedef struct {
    Py_buffer tenant, start, end, opened, bytes_in, bytes_out, flags, country, addr, asn;
} columns;

typedef struct {  /* the columns in the order of sort_rows */
    int32_t *tenant;
    int64_t *start, *end, *opened, *asn;
    uint64_t *bytes_in, *bytes_out, *addr;
    uint8_t *flags;
    int16_t *country;
} sorted_columns;

#define GATHER(dst, src, type)                                     \
    do {                                                           \
        const type *from_ = (src);                                 \
        for (Py_ssize_t i_ = 0; i_ < n; i_++) (dst)[i_] = from_[order[i_]]; \
    } while (0)

/* Bytes of a sorted row (gather) and of a row's sort state (sort_rows). */
#define GATHERED_BYTES (8 * 8 + 4 + 2 + 1)
#define SORTING_BYTES (4 * 8)

/* The columns of c in the given order, into p (n * GATHERED_BYTES; one tight loop per
 * column: the loads are independent, so many cache misses overlap). */
static void gather(sorted_columns *sc, const columns *c, const int64_t *order, Py_ssize_t n,
                   uint8_t *p) {
    size_t m = (size_t)n;
    sc->start = (int64_t *)p, sc->end = sc->start + m, sc->opened = sc->end + m;
    sc->asn = sc->opened + m;
    sc->bytes_in = (uint64_t *)(sc->asn + m), sc->bytes_out = sc->bytes_in + m;
    sc->addr = sc->bytes_out + m;
    sc->tenant = (int32_t *)(sc->addr + m);
    sc->country = (int16_t *)(sc->tenant + m);
    sc->flags = (uint8_t *)(sc->country + m);
    GATHER(sc->start, c->start.buf, int64_t);
    GATHER(sc->end, c->end.buf, int64_t);
    GATHER(sc->opened, c->opened.buf, int64_t);
    GATHER(sc->asn, c->asn.buf, int64_t);
    GATHER(sc->bytes_in, c->bytes_in.buf, uint64_t);
    GATHER(sc->bytes_out, c->bytes_out.buf, uint64_t);
    GATHER(sc->addr, c->addr.buf, uint64_t);
    GATHER(sc->tenant, c->tenant.buf, int32_t);
    GATHER(sc->country, c->country.buf, int16_t);
    GATHER(sc->flags, c->flags.buf, uint8_t);
}

/* The rows in a stable order by (hour of start, tenant as uint32), so that a tenant's
 * entries stay in cache while its rows pass: an LSD radix sort of (key, row) pairs on 11-bit
 * digits, skipping the digits every key shares. The key is hours * (largest tenant + 1) +
 * tenant when that fits in 64 bits (two digits for a day of 10,000 tenants), else hours
 * << 32 | tenant: the same order. p: n * SORTING_BYTES of scratch; returns the rows there. */
static int64_t *sort_rows(const int64_t *start, const int32_t *tenant, Py_ssize_t n, uint8_t *p) {
    enum { BITS = 11, BUCKETS = 1 << BITS };
    size_t m = (size_t)n;
    uint64_t *key = (uint64_t *)p, *key2 = key + m;
    int64_t *row = (int64_t *)(key2 + m), *row2 = row + m;
    size_t count[BUCKETS];
    int64_t low = INT64_MAX, high = INT64_MIN;
    uint32_t most = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        int64_t h = floor_to(start[i], HOUR_US) / HOUR_US;
        if (h < low) low = h;
        if (h > high) high = h;
        if ((uint32_t)tenant[i] > most) most = (uint32_t)tenant[i];
    }
    /* (high - low) * (most + 1) + most < 2^64 */
    uint64_t span = n ? (uint64_t)high - (uint64_t)low : 0, width = (uint64_t)most + 1;
    int packed = span < (UINT64_MAX - most) / width;
    uint64_t all_or = 0, all_and = UINT64_MAX;
    for (Py_ssize_t i = 0; i < n; i++) {
        uint64_t hours = (uint64_t)(floor_to(start[i], HOUR_US) / HOUR_US) - (uint64_t)low;
        key[i] = packed ? hours * width + (uint32_t)tenant[i] : (hours << 32) | (uint32_t)tenant[i];
        row[i] = i;
        all_or |= key[i], all_and &= key[i];
    }
    for (int shift = 0; shift < 64; shift += BITS) {
        if ((((all_or ^ all_and) >> shift) & (BUCKETS - 1)) == 0) continue;  /* all alike */
        memset(count, 0, sizeof count);
        for (Py_ssize_t i = 0; i < n; i++) count[(key[i] >> shift) & (BUCKETS - 1)]++;
        size_t at = 0;
        for (size_t b = 0; b < BUCKETS; b++) {
            size_t c = count[b];
            count[b] = at, at += c;
        }
        for (Py_ssize_t i = 0; i < n; i++) {
            size_t to = count[(key[i] >> shift) & (BUCKETS - 1)]++;
            key2[to] = key[i], row2[to] = row[i];
        }
        uint64_t *k = key; key = key2, key2 = k;
        int64_t *r = row; row = row2, row2 = r;
    }
    return row;
}

static int get(PyObject *o, Py_buffer *b, Py_ssize_t itemsize, Py_ssize_t n, const char *name) {
    if (PyObject_GetBuffer(o, b, PyBUF_C_CONTIGUOUS) < 0) return -1;
    if (b->len != itemsize * n) {
        PyErr_Format(PyExc_ValueError, "column %s: %zd bytes, expected %zd", name, b->len,
                     itemsize * n);
        PyBuffer_Release(b);
        b->obj = NULL;
        return -1;
    }
    return 0;
}

/* Compact the pool of heaps after retiring some (their sizes are dropped). */
static int retire_heaps(Reducer *r, int64_t cutoff) {
    if (t_retire(&r->heaps, NULL, cutoff) < 0) return -1;
    size_t len = 0;
    for (size_t e = 0; e < r->heaps.n; e++) {
        ekey *k = (ekey *)(r->heaps.ents + e * r->heaps.esize);
        memmove(r->pool + len, r->pool + (k->at - 1), (size_t)r->top * sizeof *r->pool);
        k->at = (int64_t)len + 1;
        len += (size_t)r->top;
    }
    r->pool_len = len;
    return 0;
}

/* Presence entries before cutoff into the sketches (none: handed out like the others). */
static int retire_presence(Reducer *r, int64_t cutoff) {
    if (!r->store) return t_retire(&r->presence, &r->presence_out, cutoff);
    for (size_t e = 0; e < r->presence.n; e++) {
        const pkey *p = (const pkey *)(r->presence.ents + e * r->presence.esize);
        if (p->t < cutoff &&
            ds_add(r->store, p->tenant, p->country, p->t, p->addr, p->has_asn, p->asn) < 0)
            return -1;
    }
    return t_retire(&r->presence, NULL, cutoff);
}

/* The entries of t before cutoff out into o, *done past the end of each (its time plus
 * span; the key's time at key_t in each record of esize bytes). */
static int retire_past(table *t, outbuf *o, int64_t cutoff, size_t esize, size_t key_t,
                       int64_t span, int64_t *done) {
    size_t from = o->len;
    if (t_retire(t, o, cutoff) < 0) return -1;
    for (size_t at = from; at < o->len; at += esize) {
        int64_t time;
        memcpy(&time, o->p + at + key_t, sizeof time);
        if (time + span > *done) *done = time + span;
    }
    return 0;
}

static int retire(Reducer *r, int64_t cutoff, int64_t day_cutoff) {
    if (retire_past(&r->hours, &r->hours_out, cutoff, sizeof(hent), offsetof(hkey, t),
                    HOUR_US, &r->hours_done) < 0 ||
        retire_past(&r->cells, &r->cells_out, cutoff, sizeof(cent), offsetof(ckey, t),
                    CELL_US, &r->cells_done) < 0 ||
        retire_presence(r, cutoff) < 0 ||
        retire_heaps(r, day_cutoff) < 0)
        return -1;
    return 0;
}

/* The sketch side of one batch: what the rows add to the distinct-count sketches, and the
 * hours let go as the latest hour advances (the decisions of the main pass, made from the
 * same rows in the same order). It touches only the store, so it runs beside the main pass
 * in a thread of its own. */
typedef struct sketch_job {
    ds_store *store;
    sorted_columns sc;
    Py_ssize_t n;
    int64_t latest, retired_at, horizon_us;
    int failed;
} sketch_job;

/* Rows [from, to) of one tenant and first hour into the sketches (their first hour). */
static int sketch_run(sketch_job *j, Py_ssize_t from, Py_ssize_t to, int64_t hour) {
    const sorted_columns *sc = &j->sc;
    return from < to ? ds_add_rows(j->store, sc->tenant[from], hour, sc->flags + from, F_REMOTE,
                                   F_ASN, sc->country + from, sc->addr + from, sc->asn + from,
                                   (size_t)(to - from))
                     : 0;
}

/* The rows go in by runs of one tenant and first hour (sorted rows come so), each run's
 * first hours at once; the later hours of a longer row right after its first, as a row at
 * a time would: the same slots made in the same order. */
static void *sketch_pass(void *arg) {
    sketch_job *j = arg;
    const sorted_columns *sc = &j->sc;
    Py_ssize_t from = 0;  /* the run: rows [from, i) of tenant run_who, first hour run_h */
    int32_t run_who = -1;
    int64_t run_h = 0;
    for (Py_ssize_t i = 0; i < j->n && !j->failed; i++) {
        int32_t who = sc->tenant[i];
        if (who < 0) {  /* in no sketch; it ends a run */
            if (run_who >= 0) j->failed |= sketch_run(j, from, i, run_h) < 0;
            run_who = -1;
            continue;
        }
        int64_t s = sc->start[i], e = sc->end[i] > s ? sc->end[i] : s;
        int64_t first_h = floor_to(s, HOUR_US), last_h = floor_to(e - 1 > s ? e - 1 : s, HOUR_US);
        if (run_who >= 0 && (who != run_who || first_h != run_h)) {
            j->failed |= sketch_run(j, from, i, run_h) < 0;
            run_who = -1;
            if (j->failed) break;
        }
        if (first_h > j->latest) {
            j->latest = first_h;
            if (j->horizon_us > 0 && j->latest - j->horizon_us >= j->retired_at + HOUR_US) {
                j->retired_at = j->latest - j->horizon_us;
                if (ds_retire(j->store, j->latest) < 0) {
                    j->failed = 1;
                    break;
                }
            }
        }
        if (run_who < 0) run_who = who, run_h = first_h, from = i;
        uint8_t f = sc->flags[i];
        if (!(f & F_REMOTE) || last_h == first_h) continue;
        j->failed |= sketch_run(j, from, i + 1, first_h) < 0;
        from = i + 1;
        for (int64_t ws = first_h + HOUR_US; ws <= last_h && !j->failed; ws += HOUR_US)
            j->failed |= ds_add(j->store, who, sc->country[i], ws, sc->addr[i],
                                (f & F_ASN) != 0, sc->asn[i]) < 0;
    }
    if (run_who >= 0 && !j->failed) j->failed |= sketch_run(j, from, j->n, run_h) < 0;
    return NULL;
}

/* Wait for the sketch pass add() left running; 1 when it failed (reported once), else 0.
 * Call without the GIL, or where the GIL may stay held (the pass never takes it). */
static int sketch_wait(Reducer *r) {
    if (!r->sketching) return 0;
    pthread_join(r->sketch_thread, NULL);
    r->sketching = 0;
    int failed = r->sketch->failed;
    r->sketch->failed = 0;
    return failed;
}

/* sketch_wait with the GIL released for the wait; -1 with MemoryError when it failed. */
static int sketch_done(Reducer *r) {
    int failed;
    Py_BEGIN_ALLOW_THREADS
    failed = sketch_wait(r);
    Py_END_ALLOW_THREADS
    if (failed) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

/* The hours key of a row's first hour. */
static inline hkey hour_key(const sorted_columns *sc, Py_ssize_t i, int64_t first_h) {
    hkey k;
    memset(&k, 0, sizeof k);
    uint8_t f = sc->flags[i];
    k.tenant = sc->tenant[i], k.country = sc->country[i];
    k.cross_border = (f & F_CROSS_BORDER) != 0, k.crossing = (f & F_CROSSING) != 0;
    k.t = first_h;
    return k;
}

/* The presence key of a row's first hour. */
static inline pkey presence_key(const sorted_columns *sc, Py_ssize_t i, int64_t first_h) {
    pkey p;
    memset(&p, 0, sizeof p);
    p.tenant = sc->tenant[i], p.country = sc->country[i], p.addr = sc->addr[i];
    if (sc->flags[i] & F_ASN) p.has_asn = 1, p.asn = sc->asn[i];
    p.t = first_h;
    return p;
}

/* Rows looked ahead: the index slots of their first keys are loaded AHEAD rows before the
 * rows are reduced, so that the cache misses of many rows overlap. */
enum { AHEAD = 16 };

typedef struct {  /* the hashes of a row's first keys; has_*: taken (else not) */
    uint64_t hour, cell, presence;
    uint8_t has_hour, has_cell;
} ahead_hashes;

typedef struct {  /* the keys look_ahead has seen, as recent holds their entries */
    int32_t tenant;  /* the (tenant, hour) of group */
    int64_t t;
    uint32_t group[GROUP_SLOTS];  /* the country and flags (+ 1) of a key seen; 0: none */
    int32_t cell_tenant;  /* the last cell */
    int64_t cell;
} ahead_seen;

static void ahead_init(ahead_seen *seen) {
    memset(seen, 0, sizeof *seen);
    seen->tenant = seen->cell_tenant = -1;
    seen->t = seen->cell = INT64_MIN;
}

/* Hash the first keys of row i and start loading their index slots, unless the keys are
 * those of rows just before it (their entries will be found through recent). */
static inline void look_ahead(const Reducer *r, const sorted_columns *sc, Py_ssize_t i,
                              ahead_hashes *a, ahead_seen *seen) {
    int64_t s = sc->start[i];
    int64_t first_h = floor_to(s, HOUR_US);
    hkey k = hour_key(sc, i, first_h);
    a->hour = a->cell = a->presence = 0;
    if (k.tenant != seen->tenant || k.t != seen->t) {
        seen->tenant = k.tenant, seen->t = k.t;
        memset(seen->group, 0, sizeof seen->group);
    }
    size_t slot = group_slot(&k);
    uint32_t mark = ((uint32_t)(uint16_t)k.country << 2 | (uint32_t)k.cross_border << 1 |
                     k.crossing) + 1;
    a->has_hour = seen->group[slot] != mark;
    if (a->has_hour) {
        seen->group[slot] = mark;
        a->hour = t_hash(&r->hours, &k);
        t_prefetch(&r->hours, a->hour);
    }
    a->has_cell = 0;
    if (sc->flags[i] & F_CROSSING) {
        ckey c = {sc->tenant[i], 0, floor_to(s, CELL_US)};
        a->has_cell = c.tenant != seen->cell_tenant || c.t != seen->cell;
        if (a->has_cell) {
            seen->cell_tenant = c.tenant, seen->cell = c.t;
            a->cell = t_hash(&r->cells, &c);
            t_prefetch(&r->cells, a->cell);
        }
    }
    if ((sc->flags[i] & F_REMOTE) && !r->store) {
        pkey p = presence_key(sc, i, first_h);
        a->presence = t_hash(&r->presence, &p);
        t_prefetch(&r->presence, a->presence);
    }
}

/* Rows below which the sketch pass runs after the main pass rather than beside it. */
#define SKETCH_THREAD_MIN 8192

/* Scratch for a batch of n rows (kept; shrunk when far larger than needed); -1: no memory. */
static int scratch(Reducer *r, size_t n) {
    size_t need = (n ? n : 1) * (SORTING_BYTES + GATHERED_BYTES);
    if (need <= r->scratch_cap && need > r->scratch_cap / 4) return 0;
    free(r->scratch);
    r->scratch = malloc(need);
    r->scratch_cap = r->scratch ? need : 0;
    return r->scratch ? 0 : -1;
}

static PyObject *reducer_add(Reducer *r, PyObject *args) {
    PyObject *objs[10];
    int prune = 0;
    if (!PyArg_ParseTuple(args, "OOOOOOOOOO|p", &objs[0], &objs[1], &objs[2], &objs[3],
                          &objs[4], &objs[5], &objs[6], &objs[7], &objs[8], &objs[9], &prune))
        return NULL;
    columns c;
    memset(&c, 0, sizeof c);
    Py_buffer *bufs[10] = {&c.tenant, &c.start, &c.end, &c.opened, &c.bytes_in,
                           &c.bytes_out, &c.flags, &c.country, &c.addr, &c.asn};
    static const Py_ssize_t sizes[10] = {4, 8, 8, 8, 8, 8, 1, 2, 8, 8};
    static const char *names[10] = {"tenant", "start", "end", "opened", "bytes_in",
                                    "bytes_out", "flags", "country", "addr", "asn"};
    PyObject *result = NULL;
    int64_t *chosen = NULL;
    Py_ssize_t n = -1, got = 0, chosen_n = 0;
    if (PyObject_GetBuffer(objs[0], &c.tenant, PyBUF_C_CONTIGUOUS) < 0) return NULL;
    got = 1;
    n = c.tenant.len / 4;
    PyBuffer_Release(&c.tenant);
    got = 0;
    for (; got < 10; got++)
        if (get(objs[got], bufs[got], sizes[got], n, names[got]) < 0) goto done;
    chosen = malloc((size_t)(n ? n : 1) * sizeof *chosen);
    if (!chosen) {
        PyErr_NoMemory();
        goto done;
    }
    if (!r->sketch && !(r->sketch = calloc(1, sizeof *r->sketch))) {
        PyErr_NoMemory();
        goto done;
    }
    if (claim(r) < 0) goto done;
    int64_t *order = NULL;
    sorted_columns sc;
    memset(&sc, 0, sizeof sc);
    int failed = 0;
    Py_BEGIN_ALLOW_THREADS
    /* the last batch's sketch pass reads the scratch: it ends before the scratch is reused */
    int ready = !sketch_wait(r) && scratch(r, (size_t)n) == 0;
    failed = !ready;
    if (ready) {
        order = sort_rows(c.start.buf, c.tenant.buf, n, r->scratch);
        gather(&sc, &c, order, n, r->scratch + (size_t)n * SORTING_BYTES);
    }
    sketch_job *job = r->sketch;
    *job = (sketch_job){r->store, sc, n, r->latest, r->retired_at, r->horizon_us, 0};
    /* the pass runs beside this one and goes on after add() returns (sketch_wait) */
    r->sketching = ready && r->store && n >= SKETCH_THREAD_MIN &&
                   pthread_create(&r->sketch_thread, NULL, sketch_pass, job) == 0;
    const int32_t *tenant = sc.tenant;
    const int64_t *start = sc.start, *end = sc.end, *opened = sc.opened;
    const uint64_t *bin = sc.bytes_in, *bout = sc.bytes_out;
    const uint8_t *flags = sc.flags;
    ahead_hashes ahead[AHEAD];
    memset(ahead, 0, sizeof ahead);
    ahead_seen seen;
    ahead_init(&seen);
    recent rc;
    recent_init(&rc);
    for (Py_ssize_t i = 0; i < AHEAD && i < n && !failed; i++)
        if (tenant[i] >= 0) look_ahead(r, &sc, i, &ahead[i], &seen);
    for (Py_ssize_t i = 0; i < n && !failed; i++) {
        ahead_hashes hashes = ahead[i % AHEAD];
        if (i + AHEAD < n && tenant[i + AHEAD] >= 0)
            look_ahead(r, &sc, i + AHEAD, &ahead[(i + AHEAD) % AHEAD], &seen);
        int32_t who = tenant[i];
        if (who < 0) continue;
        int64_t s = start[i], e = end[i] > s ? end[i] : s;
        int64_t since = opened[i] < s ? opened[i] : s;
        int64_t age = e - since;
        uint8_t f = flags[i];
        uint64_t in = bin[i], out = bout[i];
        int64_t first_h = floor_to(s, HOUR_US), last_h = floor_to(e - 1 > s ? e - 1 : s, HOUR_US);
        hkey k = hour_key(&sc, i, first_h);
        int quality = (f & F_QUALITY) != 0;
        if (first_h > r->latest) {
            r->latest = first_h;
            if (r->horizon_us > 0 && r->latest - r->horizon_us >= r->retired_at + HOUR_US) {
                r->retired_at = r->latest - r->horizon_us;
                if (retire(r, r->retired_at, floor_to(r->retired_at, DAY_US) - DAY_US) < 0) {
                    failed = 1;
                    break;
                }
            }
        }
        if (first_h == last_h) {
            failed |= add_hour(r, &rc, &k, 1, hashes.has_hour, hashes.hour, in, out, 1, quality,
                               age) < 0;
        } else {
            /* a piece starts where the one before it ended: its share of the cumulative
             * floors is the floor at its end less the one at the end before */
            int64_t d = e - s;
            uint64_t was_in = 0, was_out = 0;
            for (int64_t ws = first_h; ws <= last_h && !failed; ws += HOUR_US) {
                int64_t hi = (ws + HOUR_US < e ? ws + HOUR_US : e) - s;
                uint64_t to_in = part(in, hi, d), to_out = part(out, hi, d);
                k.t = ws;
                failed |= add_hour(r, &rc, &k, ws == first_h, ws == first_h && hashes.has_hour,
                                   hashes.hour, to_in - was_in, to_out - was_out, ws == first_h,
                                   quality, age) < 0;
                was_in = to_in, was_out = to_out;
            }
        }
        if (f & F_CROSSING) {
            int64_t first_c = floor_to(s, CELL_US), last_c = floor_to(e - 1 > s ? e - 1 : s, CELL_US);
            if (first_c == last_c) {
                failed |= add_cell(r, &rc, who, first_c, hashes.has_cell, hashes.cell, in, out) < 0;
            } else {
                int64_t d = e - s;
                uint64_t was_in = 0, was_out = 0;  /* (as the hours) */
                for (int64_t ws = first_c; ws <= last_c && !failed; ws += CELL_US) {
                    int64_t hi = (ws + CELL_US < e ? ws + CELL_US : e) - s;
                    uint64_t to_in = part(in, hi, d), to_out = part(out, hi, d);
                    failed |= add_cell(r, &rc, who, ws, ws == first_c && hashes.has_cell,
                                       hashes.cell, to_in - was_in, to_out - was_out) < 0;
                    was_in = to_in, was_out = to_out;
                }
            }
        }
        if ((f & F_REMOTE) && !r->store) {  /* (with a store: the sketch pass) */
            pkey p = presence_key(&sc, i, first_h);
            for (int64_t ws = first_h; ws <= last_h && !failed; ws += HOUR_US) {
                p.t = ws;
                int fresh;
                failed |= t_get_hashed(&r->presence, &p, ws == first_h, hashes.presence,
                                       &fresh) == NULL;
            }
        }
        int pick = candidate(r, &rc, who, floor_to(s, DAY_US), in > out ? in : out);
        if (pick < 0) failed = 1;
        else if (pick) chosen[chosen_n++] = i;  /* (its row number below) */
    }
    if (!failed) {  /* the candidates' row numbers; pruned: those outranked by now dropped */
        Py_ssize_t kept = 0;
        for (Py_ssize_t j = 0; j < chosen_n; j++) {
            Py_ssize_t i = (Py_ssize_t)chosen[j];
            if (prune && outranked(r, tenant[i], floor_to(start[i], DAY_US),
                                   bin[i] > bout[i] ? bin[i] : bout[i]))
                continue;
            chosen[kept++] = order[i];
        }
        chosen_n = kept;
    }
    if (!r->sketching && r->store && ready) {
        sketch_pass(job);
        failed |= job->failed;
    }
    Py_END_ALLOW_THREADS
    r->busy = 0;
    if (failed) {
        PyErr_NoMemory();
        goto done;
    }
    result = PyBytes_FromStringAndSize((const char *)chosen, chosen_n * (Py_ssize_t)sizeof *chosen);
done:
    for (Py_ssize_t j = 0; j < got; j++) PyBuffer_Release(bufs[j]);
    free(chosen);
    return result;
}

static PyObject *take(outbuf *o) {
    PyObject *b = PyBytes_FromStringAndSize((const char *)o->p, (Py_ssize_t)o->len);
    o->len = 0;
    return b;
}

/* A field of a record: where it lies and its size (1, 2, 4 or 8 bytes). */
typedef struct {
    size_t offset, size;
} field;

#define MAX_FIELDS 20

/* The n records at p (esize bytes each) as a tuple of one bytes object per field, each the
 * field's values one after another: columns a caller wraps as arrays without copying, not
 * records it would copy field by field (and page by fresh page) again. NULL: error set. */
static PyObject *columns_of(const uint8_t *p, size_t n, size_t esize, const field *fields,
                            int nf) {
    uint8_t *dst[MAX_FIELDS];
    PyObject *out = PyTuple_New(nf);
    if (!out) return NULL;
    for (int f = 0; f < nf; f++) {
        PyObject *b = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(n * fields[f].size));
        if (!b) {
            Py_DECREF(out);
            return NULL;
        }
        PyTuple_SET_ITEM(out, f, b);
        dst[f] = (uint8_t *)PyBytes_AS_STRING(b);
    }
    Py_BEGIN_ALLOW_THREADS
    for (size_t e = 0; e < n; e++) {  /* one pass over the records, a stream per field */
        const uint8_t *rec = p + e * esize;
        for (int f = 0; f < nf; f++) {
            const uint8_t *from = rec + fields[f].offset;
            switch (fields[f].size) {
            case 1: dst[f][e] = *from; break;
            case 2: memcpy(dst[f] + e * 2, from, 2); break;
            case 4: memcpy(dst[f] + e * 4, from, 4); break;
            default: memcpy(dst[f] + e * 8, from, 8); break;
            }
        }
    }
    Py_END_ALLOW_THREADS
    return out;
}

/* The fields of the hours records, in the order take(columns=True) hands them out. */
static const field hour_fields[] = {
    {offsetof(hent, k.tenant), 4}, {offsetof(hent, k.country), 2},
    {offsetof(hent, k.cross_border), 1}, {offsetof(hent, k.crossing), 1},
    {offsetof(hent, k.t), 8}, {offsetof(hent, in_lo), 8}, {offsetof(hent, in_hi), 8},
    {offsetof(hent, out_lo), 8}, {offsetof(hent, out_hi), 8}, {offsetof(hent, starts), 8},
    {offsetof(hent, quality), 8}, {offsetof(hent, max_duration), 8},
};
#define HOUR_FIELDS ((int)(sizeof hour_fields / sizeof hour_fields[0]))
_Static_assert(sizeof hour_fields / sizeof hour_fields[0] <= MAX_FIELDS, "too many fields");

/* The fields of the distinct-count rows, in the order distinct(columns=True) hands them out
 * (the flags are the same on every row: the first row's come as an int). */
static const field distinct_fields[] = {
    {offsetof(ds_row, tenant), 4}, {offsetof(ds_row, country), 2}, {offsetof(ds_row, span), 1},
    {offsetof(ds_row, t), 8}, {offsetof(ds_row, addrs), 8}, {offsetof(ds_row, asns), 8},
};
#define DISTINCT_FIELDS ((int)(sizeof distinct_fields / sizeof distinct_fields[0]))
_Static_assert(sizeof distinct_fields / sizeof distinct_fields[0] <= MAX_FIELDS,
               "too many fields");

/* Per (tenant, hour): what hour_base sums of the hours records (net_totals_acc). */
typedef struct {
    ckey k;
    uint64_t in_lo, in_hi, out_lo, out_hi;          /* boundary-crossing */
    uint64_t cb_in_lo, cb_in_hi, cb_out_lo, cb_out_hi;  /* of those, cross-border */
    uint64_t cc_in_lo, cc_in_hi, cc_out_lo, cc_out_hi;  /* of those, to a country of concern */
    int64_t starts, quality, max_duration;
} tent;

/* The fields of the totals, in the order take(concern=...) hands them out. */
static const field total_fields[] = {
    {offsetof(tent, k.tenant), 4}, {offsetof(tent, k.t), 8},
    {offsetof(tent, in_lo), 8}, {offsetof(tent, in_hi), 8},
    {offsetof(tent, out_lo), 8}, {offsetof(tent, out_hi), 8},
    {offsetof(tent, cb_in_lo), 8}, {offsetof(tent, cb_in_hi), 8},
    {offsetof(tent, cb_out_lo), 8}, {offsetof(tent, cb_out_hi), 8},
    {offsetof(tent, cc_in_lo), 8}, {offsetof(tent, cc_in_hi), 8},
    {offsetof(tent, cc_out_lo), 8}, {offsetof(tent, cc_out_hi), 8},
    {offsetof(tent, starts), 8}, {offsetof(tent, quality), 8},
    {offsetof(tent, max_duration), 8},
};
#define TOTAL_FIELDS ((int)(sizeof total_fields / sizeof total_fields[0]))
_Static_assert(sizeof total_fields / sizeof total_fields[0] <= MAX_FIELDS, "too many fields");

/* The hours records in o summed per (tenant, hour) into *out: a tuple of columns
 * (total_fields; the byte sums as 128-bit lo and hi halves, as the records hold them).
 * concern[c] (c < concern_n) is nonzero for a country code c of concern. -1: error (set). */
static int hour_totals(const outbuf *o, const uint8_t *concern, size_t concern_n,
                       PyObject **out) {
    table totals;
    size_t n = o->len / sizeof(hent);
    if (t_init(&totals, sizeof(tent), sizeof(ckey), offsetof(ckey, t)) < 0) {
        PyErr_NoMemory();
        return -1;
    }
    int failed = 0;
    Py_BEGIN_ALLOW_THREADS
    for (size_t e = 0; e < n; e++) {
        hent h;
        memcpy(&h, o->p + e * sizeof h, sizeof h);
        ckey k = {h.k.tenant, 0, h.k.t};
        int fresh;
        tent *x = (tent *)t_get(&totals, &k, &fresh);
        if (!x) {
            failed = 1;
            break;
        }
        if (fresh) x->max_duration = INT64_MIN;  /* (as the entries start) */
        x->starts += h.starts;
        x->quality += h.quality;
        if (h.max_duration > x->max_duration) x->max_duration = h.max_duration;
        if (!h.k.crossing) continue;
        u128 in = (u128)h.in_hi << 64 | h.in_lo, out = (u128)h.out_hi << 64 | h.out_lo;
        int worried = h.k.country >= 0 && (size_t)h.k.country < concern_n &&
                      concern[h.k.country];
#define ADD(lo, hi, v) do { u128 s_ = ((u128)(hi) << 64 | (lo)) + (v); \
                            (lo) = (uint64_t)s_, (hi) = (uint64_t)(s_ >> 64); } while (0)
        ADD(x->in_lo, x->in_hi, in);
        ADD(x->out_lo, x->out_hi, out);
        if (h.k.cross_border) {
            ADD(x->cb_in_lo, x->cb_in_hi, in);
            ADD(x->cb_out_lo, x->cb_out_hi, out);
        }
        if (worried) {
            ADD(x->cc_in_lo, x->cc_in_hi, in);
            ADD(x->cc_out_lo, x->cc_out_hi, out);
        }
#undef ADD
    }
    Py_END_ALLOW_THREADS
    if (failed) {
        t_free(&totals);
        PyErr_NoMemory();
        return -1;
    }
    *out = columns_of(totals.ents, totals.n, sizeof(tent), total_fields, TOTAL_FIELDS);
    t_free(&totals);
    return *out ? 0 : -1;
}

/* Per (tenant, hour), the most bytes in and the most bytes out of one of the cells records
 * in o (48-byte records as cells: tenant, pad, hour, in_lo, in_hi, out_lo, out_hi), in the
 * order the (tenant, hour) first appear, into *peaks; and the records packed into *packed
 * (24 bytes: tenant int32, cell number int32, in uint64, out uint64) when each sum fits 64
 * bits and each cell number 32 (else None). The cells' keys are taken to be distinct (else
 * their sums would have to be added first). -1: error (set). */
static int cell_peaks(const outbuf *o, PyObject **peaks_out, PyObject **packed_out) {
    table peaks;
    size_t n = o->len / sizeof(cent);
    if (t_init(&peaks, sizeof(cent), sizeof(ckey), offsetof(ckey, t)) < 0) {
        PyErr_NoMemory();
        return -1;
    }
    uint8_t *packed = malloc(n ? n * 24 : 1);
    int failed = !packed, fits = 1;
    Py_BEGIN_ALLOW_THREADS
    for (size_t e = 0; e < n && !failed; e++) {
        cent c;
        memcpy(&c, o->p + e * sizeof c, sizeof c);
        ckey k = {c.k.tenant, 0, floor_to(c.k.t, HOUR_US)};
        int fresh;
        cent *p = (cent *)t_get(&peaks, &k, &fresh);
        if (!p) {
            failed = 1;
            break;
        }
        if (c.in_hi > p->in_hi || (c.in_hi == p->in_hi && c.in_lo > p->in_lo))
            p->in_lo = c.in_lo, p->in_hi = c.in_hi;
        if (c.out_hi > p->out_hi || (c.out_hi == p->out_hi && c.out_lo > p->out_lo))
            p->out_lo = c.out_lo, p->out_hi = c.out_hi;
        int64_t number = floor_to(c.k.t, CELL_US) / CELL_US;
        if (c.in_hi || c.out_hi || number < INT32_MIN || number > INT32_MAX ||
            number * CELL_US != c.k.t) {
            fits = 0;
        } else if (fits) {
            int32_t cell = (int32_t)number;
            uint8_t *q = packed + e * 24;
            memcpy(q, &c.k.tenant, 4), memcpy(q + 4, &cell, 4);
            memcpy(q + 8, &c.in_lo, 8), memcpy(q + 16, &c.out_lo, 8);
        }
    }
    Py_END_ALLOW_THREADS
    *peaks_out = *packed_out = NULL;
    if (failed) {
        PyErr_NoMemory();
    } else {
        *peaks_out = PyBytes_FromStringAndSize((const char *)peaks.ents,
                                               (Py_ssize_t)(peaks.n * peaks.esize));
        if (*peaks_out) {
            if (fits) {
                *packed_out = PyBytes_FromStringAndSize((const char *)packed, (Py_ssize_t)(n * 24));
            } else {
                Py_INCREF(Py_None);
                *packed_out = Py_None;
            }
            if (!*packed_out) Py_CLEAR(*peaks_out);
        }
    }
    free(packed);
    t_free(&peaks);
    return *peaks_out ? 0 : -1;
}

static PyObject *take_all(Reducer *r, int all, int peaks, int columns,
                          const Py_buffer *concern);

static PyObject *reducer_take(Reducer *r, PyObject *args) {
    int all = 0, peaks = 0, columns = 0;
    PyObject *concern_o = Py_None;
    if (!PyArg_ParseTuple(args, "|pppO", &all, &peaks, &columns, &concern_o)) return NULL;
    Py_buffer concern = {0};
    if (concern_o != Py_None) {
        if (!peaks) {
            PyErr_SetString(PyExc_ValueError, "concern needs peaks");
            return NULL;
        }
        if (PyObject_GetBuffer(concern_o, &concern, PyBUF_C_CONTIGUOUS) < 0) return NULL;
    }
    PyObject *result = take_all(r, all, peaks, columns, concern_o != Py_None ? &concern : NULL);
    if (concern_o != Py_None) PyBuffer_Release(&concern);
    return result;
}

static PyObject *take_all(Reducer *r, int all, int peaks, int columns,
                          const Py_buffer *concern) {
    if (claim(r) < 0) return NULL;  /* also when not retiring: add() writes the outputs */
    int failed = 0;
    /* The outputs are the main pass's: a sketch pass left running (it touches only the
     * store and the scratch) goes on beside what the caller does with them, unless the
     * scratch is let go. */
    if (all && sketch_done(r) < 0) {
        r->busy = 0;
        return NULL;
    }
    if (all) {
        Py_BEGIN_ALLOW_THREADS
        failed = retire(r, INT64_MAX, INT64_MAX) < 0;
        Py_END_ALLOW_THREADS
        free(r->scratch);  /* the input has ended, as a rule: let go of the batch scratch too */
        r->scratch = NULL, r->scratch_cap = 0;
    }
    r->busy = 0;
    if (failed) return PyErr_NoMemory();
    PyObject *k = NULL, *packed = NULL, *totals = NULL;
    if (peaks && cell_peaks(&r->cells_out, &k, &packed) < 0) return NULL;
    if (concern && hour_totals(&r->hours_out, concern->buf, (size_t)concern->len, &totals) < 0) {
        Py_DECREF(k), Py_DECREF(packed);
        return NULL;
    }
    PyObject *h;
    if (columns) {
        h = columns_of(r->hours_out.p, r->hours_out.len / sizeof(hent), sizeof(hent),
                       hour_fields, HOUR_FIELDS);
        r->hours_out.len = 0;
    } else {
        h = take(&r->hours_out);
    }
    PyObject *c = take(&r->cells_out), *p = take(&r->presence_out);
    if (!h || !c || !p) {
        Py_XDECREF(h), Py_XDECREF(c), Py_XDECREF(p), Py_XDECREF(k), Py_XDECREF(packed);
        Py_XDECREF(totals);
        return NULL;
    }
    if (totals)
        return Py_BuildValue("(NNNNOLNONO)", h, c, p, k, r->cells_late ? Py_True : Py_False,
                             (long long)r->cells_done, packed,
                             r->hours_split ? Py_True : Py_False, totals,
                             r->hours_late ? Py_True : Py_False);
    if (peaks)
        return Py_BuildValue("(NNNNOLNO)", h, c, p, k, r->cells_late ? Py_True : Py_False,
                             (long long)r->cells_done, packed,
                             r->hours_split ? Py_True : Py_False);
    return Py_BuildValue("(NNN)", h, c, p);
}

static PyObject *reducer_distinct(Reducer *r, PyObject *args) {
    PyObject *scope_o = Py_None;
    long long since = INT64_MIN;
    int columns = 0;
    if (!PyArg_ParseTuple(args, "|OLp", &scope_o, &since, &columns)) return NULL;
    if (!r->store) {
        PyErr_SetString(PyExc_ValueError, "NetworkReducer made without sketch_keep_hours");
        return NULL;
    }
    Py_buffer scope = {0};
    if (scope_o != Py_None) {
        if (PyObject_GetBuffer(scope_o, &scope, PyBUF_C_CONTIGUOUS) < 0) return NULL;
        if (scope.len % 4) {
            PyBuffer_Release(&scope);
            PyErr_SetString(PyExc_ValueError, "scope: int32 tenant codes expected");
            return NULL;
        }
    }
    if (claim(r) < 0) {
        if (scope.obj) PyBuffer_Release(&scope);
        return NULL;
    }
    if (sketch_done(r) < 0) {
        r->busy = 0;
        if (scope.obj) PyBuffer_Release(&scope);
        return NULL;
    }
    ds_row *rows = NULL;
    size_t n = 0, cap = 0;
    int failed;
    Py_BEGIN_ALLOW_THREADS
    failed = ds_rows(r->store, scope.obj ? scope.buf : NULL, (size_t)scope.len / 4, since, &rows,
                     &n, &cap) < 0;
    Py_END_ALLOW_THREADS
    r->busy = 0;
    if (scope.obj) PyBuffer_Release(&scope);
    PyObject *out;
    if (failed) {
        out = PyErr_NoMemory();
    } else if (columns) {
        PyObject *cols = columns_of((const uint8_t *)rows, n, sizeof *rows, distinct_fields,
                                    DISTINCT_FIELDS);
        out = cols ? Py_BuildValue("(Ni)", cols, n ? rows[0].flags : 0) : NULL;
    } else {
        out = PyBytes_FromStringAndSize((const char *)rows, (Py_ssize_t)(n * sizeof *rows));
    }
    free(rows);
    return out;
}

static PyObject *reducer_forget(Reducer *r, PyObject *args) {
    long long horizon;
    if (!PyArg_ParseTuple(args, "L", &horizon)) return NULL;
    if (!r->store) {
        PyErr_SetString(PyExc_ValueError, "NetworkReducer made without sketch_keep_hours");
        return NULL;
    }
    if (claim(r) < 0) return NULL;
    if (sketch_done(r) < 0) {
        r->busy = 0;
        return NULL;
    }
    ds_forget(r->store, horizon);
    r->busy = 0;
    Py_RETURN_NONE;
}

static PyObject *reducer_drop_sketches(Reducer *r, PyObject *unused) {
    (void)unused;
    if (claim(r) < 0) return NULL;
    if (sketch_done(r) < 0) {
        r->busy = 0;
        return NULL;
    }
    ds_free(r->store);
    r->store = NULL;
    r->busy = 0;
    Py_RETURN_NONE;
}

static PyObject *reducer_sketch_sizes(Reducer *r, PyObject *unused) {
    (void)unused;
    size_t sketches = 0, bytes = 0;
    if (claim(r) < 0) return NULL;
    int failed = sketch_done(r);
    r->busy = 0;
    if (failed < 0) return NULL;
    if (r->store) ds_sizes(r->store, &sketches, &bytes);
    return Py_BuildValue("(nn)", (Py_ssize_t)sketches, (Py_ssize_t)bytes);
}

static PyObject *reducer_sizes(Reducer *r, PyObject *unused) {
    (void)unused;
    return Py_BuildValue("(nnnn)", (Py_ssize_t)r->hours.n, (Py_ssize_t)r->cells.n,
                         (Py_ssize_t)r->presence.n, (Py_ssize_t)r->heaps.n);
}

/* ------------------------------------------------------------------ string columns */

/* One 64-bit value per string of the array in args, from f, with the GIL released. */
static PyObject *map_strings(PyObject *args, uint64_t (*f)(const uint8_t *, size_t)) {
    strings s;
    if (strings_open(args, &s) < 0) return NULL;
    PyObject *out = PyBytes_FromStringAndSize(NULL, s.length * 8);
    if (out) {
        uint64_t *v = (uint64_t *)PyBytes_AS_STRING(out);
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t i = 0; i < s.length; i++)
            v[i] = f(s.d + s.o[i], (size_t)(s.o[i + 1] - s.o[i]));
        Py_END_ALLOW_THREADS
    }
    strings_close(&s);
    return out;
}

static PyObject *hash_strings(PyObject *self, PyObject *args) {
    (void)self;
    return map_strings(args, hash_bytes);
}

/* dotted_quad as the bits of an int64 (-1: not a dotted quad). */
static uint64_t dotted_quad_bits(const uint8_t *p, size_t len) {
    return (uint64_t)dotted_quad(p, len);
}

static PyObject *ipv4_numbers(PyObject *self, PyObject *args) {
    (void)self;
    return map_strings(args, dotted_quad_bits);
}

/* ------------------------------------------------------------------ module */

static PyMethodDef reducer_methods[] = {
    {"add", (PyCFunction)reducer_add, METH_VARARGS,
     PyDoc_STR("add(tenant, start, end, opened, bytes_in, bytes_out, flags, country, addr, asn,"
               " prune=False) -> bytes: int64 row numbers of the evidence candidates; prune: "
               "without those outranked by the batch's end (top strictly larger candidates "
               "of their tenant and day)")},
    {"take", (PyCFunction)reducer_take, METH_VARARGS,
     PyDoc_STR("take(all=False, peaks=False, columns=False, concern=None) -> (hours, cells, "
               "presence) "
               "retired records as bytes (columns: the hours as a tuple of bytes, one a "
               "field in record order: tenant, country, cross_border, crossing, t, in_lo, "
               "in_hi, out_lo, out_hi, starts, quality, max_duration); all: retire "
               "everything first (and free add()'s scratch, kept between "
               "batches); peaks: also, as records of cells whose time is an hour, each "
               "(tenant, hour)'s most bytes in and out of one of the cells handed out, "
               "whether a cell's key may have been handed out more than once so far (a cell "
               "made again before the end of one handed out: its peaks do not hold), and the "
               "end of the latest cell handed out (int64 min: none), and the cells packed: 24 "
               "bytes each (tenant int32, cell number int32, in, out uint64), or None when a "
               "sum or cell number does not fit; and whether two crossing hours records may "
               "share tenant, hour and country (one made before the end of an hour handed "
               "out, or a country both with and without cross_border); concern (one byte a "
               "country code, nonzero: of concern; with peaks only): last, the hours records "
               "summed per (tenant, hour) as columns: tenant, t, then lo and hi halves of "
               "the boundary-crossing bytes in, out, of those cross-border in, out and to a "
               "country of concern in, out, then starts, quality, max_duration; and whether "
               "a (tenant, hour) of those may have come in an earlier take (an hours entry "
               "made before the end of an hour handed out)")},
    {"distinct", (PyCFunction)reducer_distinct, METH_VARARGS,
     PyDoc_STR("distinct(scope=None, since=min, columns=False) -> bytes: rows of distinct "
               "counts (32 bytes each: tenant int32, country int16, span uint8, flags uint8, "
               "t int64, addrs int64, asns int64) of the tenants in scope (int32 codes; "
               "None: all), from the sketches: hours and days from since on, 7-day windows "
               "ending after it, cumulative rows of every day; columns: instead ((tenant, "
               "country, span, t, addrs, asns) as bytes a field, the flags of every row)")},
    {"forget", (PyCFunction)reducer_forget, METH_VARARGS,
     PyDoc_STR("forget(horizon_us): drop the sketches and final counts before horizon_us")},
    {"drop_sketches", (PyCFunction)reducer_drop_sketches, METH_NOARGS,
     PyDoc_STR("drop_sketches(): free the sketches (remote ends are handed out as presence "
               "afterwards)")},
    {"sketch_sizes", (PyCFunction)reducer_sketch_sizes, METH_NOARGS,
     PyDoc_STR("sketch_sizes() -> (sketches, bytes) held for distinct counts")},
    {"sizes", (PyCFunction)reducer_sizes, METH_NOARGS,
     PyDoc_STR("sizes() -> entries held: (hours, cells, presence, evidence heaps)")},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject ReducerType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "egress._wincore.NetworkReducer",
    .tp_doc = PyDoc_STR("NetworkReducer(evidence_top=10, horizon_s=7200, sketch_keep_hours=-1): "
                        "see module doc; sketch_keep_hours >= 0 keeps distinct counts as "
                        "sketches (hours kept that long behind the latest) instead of "
                        "handing out presence."),
    .tp_basicsize = sizeof(Reducer),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)reducer_init,
    .tp_dealloc = (destructor)reducer_dealloc,
    .tp_methods = reducer_methods,
};

static PyMethodDef module_methods[] = {
    {"hash_strings", hash_strings, METH_VARARGS,
     PyDoc_STR("hash_strings(offsets, data, offset, length) -> bytes: a 64-bit hash of each "
               "string of an Arrow string array (int32 offsets)")},
    {"ipv4_numbers", ipv4_numbers, METH_VARARGS,
     PyDoc_STR("ipv4_numbers(offsets, data, offset, length) -> bytes: int64 per string of an "
               "Arrow string array: the IPv4 address of a dotted quad, else -1")},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "egress._wincore",
    .m_doc = PyDoc_STR("Compiled pre-reduction of network transfers into window accumulators."),
    .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC PyInit__wincore(void) {
    if (PyType_Ready(&ReducerType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    Py_INCREF(&ReducerType);
    if (PyModule_AddObject(m, "NetworkReducer", (PyObject *)&ReducerType) < 0) {
        Py_DECREF(&ReducerType);
        Py_DECREF(m);
        return NULL;
    }
    if (attrib_register(m) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
