/* distinct.c: distinct remote ends per tenant and window as sketches (see distinct.h). */
#include "distinct.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "sketch.h"
#include "table.h"

#define HOUR 3600000000LL
#define DAY 86400000000LL

typedef struct {  /* slot key: 16 bytes */
    int32_t tenant;
    int16_t country;
    uint8_t span, pad;
    int64_t t;
} skey;

typedef struct {
    skey k;
    sketch addrs, asns;
    int64_t dirty;  /* an hour with values not yet merged into its day */
} slot;

#define SLOT(t, i) ((slot *)((t)->ents + (i) * sizeof(slot)))

typedef struct {  /* entity key: 8 bytes */
    int32_t tenant;
    int16_t country, pad;
} ekey;

typedef struct {
    ekey k;
    int64_t final_we;  /* 7-day windows ending at or before this are final rows */
    int64_t last_gone;  /* the latest day let go */
    sketch addrs, asns;  /* union of the days let go */
} entity;

/* Threads that make the rows of the live slots (entities split between them), and the
 * fewest live slots worth a second thread. */
#define DS_THREADS 2
#define DS_THREAD_MIN 4096

#define CACHE 512  /* recently used hour slots: consecutive remote ends share their keys */

struct ds_store {
    table hours, days, entities;  /* slots of hours, slots of days */
    sk_pool pool;  /* the memory of the slots' and entities' sketches */
    struct {
        skey k;
        size_t at;  /* entry number, SIZE_MAX: none */
    } cache[CACHE];
    ds_row *final;
    size_t final_n, final_cap;
    int64_t keep_us;
    int64_t hour_cut, day_cut;  /* let go of times before these */
    int late;  /* took a remote end for an hour before hour_cut: keys may repeat */
};

static inline int64_t day_of(int64_t t) {
    int64_t r = t % DAY;
    return t - (r < 0 ? r + DAY : r);
}

ds_store *ds_new(int64_t keep_hours) {
    ds_store *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->keep_us = keep_hours * HOUR;
    s->hour_cut = s->day_cut = INT64_MIN;
    for (size_t i = 0; i < CACHE; i++) s->cache[i].at = SIZE_MAX;
    if (t_init(&s->hours, sizeof(slot), sizeof(skey), offsetof(skey, t)) < 0 ||
        t_init(&s->days, sizeof(slot), sizeof(skey), offsetof(skey, t)) < 0 ||
        t_init(&s->entities, sizeof(entity), sizeof(ekey), 0) < 0) {
        ds_free(s);
        return NULL;
    }
    return s;
}

/* Drop the slots of a table before cut (their sketches freed). */
static void drop_before(ds_store *s, table *in, int64_t cut) {
    size_t kept = 0;
    for (size_t i = 0; i < in->n; i++) {
        slot *p = SLOT(in, i);
        if (p->k.t < cut) {
            sk_free(&s->pool, &p->addrs), sk_free(&s->pool, &p->asns);
        } else {
            if (kept != i) memmove(SLOT(in, kept), p, sizeof(slot));
            kept++;
        }
    }
    if (kept != in->n) {
        in->n = kept;
        t_reindex(in);
    }
}

void ds_free(ds_store *s) {
    if (!s) return;
    t_free(&s->hours), t_free(&s->days), t_free(&s->entities);
    sk_pool_free(&s->pool);  /* every slot's and entity's sketch */
    free(s->final);
    free(s);
}

/* The entry of key (at most 16 bytes) in a table, NULL when absent; reads only (threads
 * may share it). */
static uint8_t *find(const table *in, const void *key) {
    uint64_t words[2] = {0, 0};  /* the key read as words through a copy, not a cast */
    memcpy(words, key, in->ksize);
    uint64_t h = hash_words(words, in->ksize), tag = h & 0xFFFFFFFF00000000ULL;
    for (size_t i = h & in->mask;; i = (i + 1) & in->mask) {
        uint64_t at = in->idx[i];
        if (at == EMPTY) return NULL;
        if ((at & 0xFFFFFFFF00000000ULL) == tag) {
            uint8_t *p = in->ents + (at & 0xFFFFFFFFULL) * in->esize;
            if (same_key(p, words, in->ksize)) return p;
        }
    }
}

/* The slot of a key, NULL when out of memory; with find_only, NULL when absent. */
static slot *slot_of(ds_store *s, int32_t tenant, int16_t country, uint8_t span, int64_t t,
                     int find_only) {
    skey k = {tenant, country, span, 0, t};
    table *in = span == DS_HOUR ? &s->hours : &s->days;
    if (find_only) return (slot *)find(in, &k);
    int fresh;
    return (slot *)t_get(in, &k, &fresh);
}

static entity *entity_of(ds_store *s, int32_t tenant, int16_t country) {
    ekey k = {tenant, country, 0};
    int fresh;
    entity *e = (entity *)t_get(&s->entities, &k, &fresh);
    if (e && fresh) e->final_we = e->last_gone = INT64_MIN;
    return e;
}

/* The hour slot of (tenant, country, hour), found through the cache; NULL: no memory. */
static slot *hour_slot(ds_store *s, int32_t tenant, int16_t country, int64_t hour) {
    size_t c = ((size_t)tenant * 8 + (size_t)(country + 1) + (size_t)(hour / HOUR) * 4099) % CACHE;
    if (s->cache[c].at != SIZE_MAX && s->cache[c].k.tenant == tenant &&
        s->cache[c].k.country == country && s->cache[c].k.t == hour)
        return SLOT(&s->hours, s->cache[c].at);
    slot *p = slot_of(s, tenant, country, DS_HOUR, hour, 0);
    if (p) {
        s->cache[c].k = p->k;
        s->cache[c].at = (size_t)((uint8_t *)p - s->hours.ents) / sizeof(slot);
    }
    return p;
}

/* Add a value to the hour slot of (tenant, country, hour). */
static int put(ds_store *s, int32_t tenant, int16_t country, int64_t hour, uint64_t addr,
               int has_asn, int64_t asn) {
    if (hour < s->hour_cut) s->late = 1;  /* its hour (and day) may have been let go */
    slot *p = hour_slot(s, tenant, country, hour);
    if (!p || sk_add(&s->pool, &p->addrs, addr) < 0) return -1;
    if (has_asn && sk_add(&s->pool, &p->asns, (uint64_t)asn) < 0) return -1;
    p->dirty = 1;
    return 0;
}

/* Values go into the hours only; an hour is merged into its day (a union: merging again
 * changes nothing) before the day is read or let go. */
int ds_add(ds_store *s, int32_t tenant, int16_t country, int64_t hour, uint64_t addr,
           int has_asn, int64_t asn) {
    if (put(s, tenant, -1, hour, addr, has_asn, asn) < 0) return -1;
    if (country >= 0 && put(s, tenant, country, hour, addr, 0, 0) < 0) return -1;
    return 0;
}

/* Hour slots MERGE_AHEAD apart go through the stages of a merge at once: the hour's
 * sketches and the index slot of its day are loaded, then the day's entry, then the day
 * memory the merge will touch, then the hour is merged: the cache misses of a few hours
 * overlap instead of coming one after another. */
#define MERGE_AHEAD 4

typedef struct {
    size_t hour, day;  /* entry numbers */
    uint64_t h;        /* the day key's hash */
    skey k;            /* the day key */
} merging;

/* Countries of a run of rows whose hour slots ds_add_rows keeps at hand (more: looked up). */
#define RUN_COUNTRIES 16
/* The most addresses an empty overall slot makes room for at the start of a run. */
#define RUN_RESERVE 96

int ds_add_rows(ds_store *s, int32_t tenant, int64_t hour, const uint8_t *flags,
                uint8_t remote, uint8_t has_asn, const int16_t *country, const uint64_t *addr,
                const int64_t *asn, size_t n) {
    size_t all = SIZE_MAX, at[RUN_COUNTRIES];  /* entry numbers: the table may move */
    int16_t known[RUN_COUNTRIES];
    size_t known_n = 0;
    for (size_t i = 0; i < n; i++) {
        if (!(flags[i] & remote)) continue;
        if (all == SIZE_MAX) {  /* the first remote end: as ds_add does, the overall slot first */
            if (hour < s->hour_cut) s->late = 1;
            slot *p = hour_slot(s, tenant, -1, hour);
            size_t remote_n = 0;
            for (size_t r = i; r < n; r++) remote_n += (flags[r] & remote) != 0;
            /* room for the run's addresses (a few: rows may repeat them) at once */
            if (!p || sk_reserve(&s->pool, &p->addrs,
                                 (uint32_t)(remote_n < RUN_RESERVE ? remote_n : RUN_RESERVE)) < 0)
                return -1;
            all = (size_t)((uint8_t *)p - s->hours.ents) / sizeof(slot);
        }
        slot *p = SLOT(&s->hours, all);
        uint32_t h = sk_fingerprint(addr[i]);
        if (sk_add_fingerprint(&s->pool, &p->addrs, h) < 0) return -1;
        if ((flags[i] & has_asn) &&
            sk_add_fingerprint(&s->pool, &p->asns, sk_fingerprint((uint64_t)asn[i])) < 0)
            return -1;
        p->dirty = 1;
        int16_t k = country[i];
        if (k < 0) continue;
        size_t j = 0;
        while (j < known_n && known[j] != k) j++;
        slot *c;
        if (j < known_n) {
            c = SLOT(&s->hours, at[j]);
        } else {
            if (!(c = hour_slot(s, tenant, k, hour))) return -1;
            if (known_n < RUN_COUNTRIES) {
                known[known_n] = k;
                at[known_n++] = (size_t)((uint8_t *)c - s->hours.ents) / sizeof(slot);
            }
        }
        if (sk_add_fingerprint(&s->pool, &c->addrs, h) < 0) return -1;
        c->dirty = 1;
    }
    return 0;
}

/* Merge the changed hours (of the tenants marked, or all) into their days. */
static int merge_hours(ds_store *s, const uint8_t *marks, size_t marks_n) {
    size_t n = 0;
    for (size_t i = 0; i < s->hours.n; i++) {
        const slot *h = SLOT(&s->hours, i);
        n += h->dirty && (!marks || ((size_t)h->k.tenant < marks_n && marks[h->k.tenant]));
    }
    if (!n) return 0;
    merging *m = malloc(n * sizeof *m);
    if (!m) return -1;
    n = 0;
    for (size_t i = 0; i < s->hours.n; i++) {
        const slot *h = SLOT(&s->hours, i);
        if (!h->dirty || (marks && ((size_t)h->k.tenant >= marks_n || !marks[h->k.tenant])))
            continue;
        m[n].hour = i;
        m[n].k = (skey){h->k.tenant, h->k.country, DS_DAY, 0, day_of(h->k.t)};
        m[n].h = t_hash(&s->days, &m[n].k);
        n++;
    }
    table *days = &s->days;
    int failed = 0;
    for (size_t j = 0; j < n + 3 * MERGE_AHEAD && !failed; j++) {
        if (j < n) {  /* load the hour's sketches and its day's index slot */
            const slot *h = SLOT(&s->hours, m[j].hour);
            sk_prefetch(&h->addrs), sk_prefetch(&h->asns);
            t_prefetch(days, m[j].h);
        }
        if (j >= MERGE_AHEAD && j - MERGE_AHEAD < n) {  /* load the day's entry */
            uint64_t at = days->idx[m[j - MERGE_AHEAD].h & days->mask];
            if (at != EMPTY) __builtin_prefetch(days->ents + (at & 0xFFFFFFFFULL) * days->esize);
        }
        if (j >= 2 * MERGE_AHEAD && j - 2 * MERGE_AHEAD < n) {  /* find the day, load its memory */
            merging *g = &m[j - 2 * MERGE_AHEAD];
            int fresh;
            slot *day = (slot *)t_get_hashed(days, &g->k, 1, g->h, &fresh);
            if (!day) {
                failed = 1;
                break;
            }
            g->day = (size_t)((uint8_t *)day - days->ents) / sizeof(slot);
            const slot *h = SLOT(&s->hours, g->hour);
            sk_prefetch_merge(&day->addrs, &h->addrs), sk_prefetch_merge(&day->asns, &h->asns);
        }
        if (j >= 3 * MERGE_AHEAD) {  /* merge */
            const merging *g = &m[j - 3 * MERGE_AHEAD];
            slot *h = SLOT(&s->hours, g->hour), *day = SLOT(days, g->day);
            if (sk_merge(&s->pool, &day->addrs, &h->addrs) < 0 ||
                sk_merge(&s->pool, &day->asns, &h->asns) < 0)
                failed = 1;
            else
                h->dirty = 0;
        }
    }
    free(m);
    return failed ? -1 : 0;
}

static int row_out(ds_row **rows, size_t *n, size_t *cap, const skey *k, uint8_t span,
                   int64_t t, int64_t addrs, int64_t asns) {
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 1024;
        ds_row *r = realloc(*rows, c * sizeof *r);
        if (!r) return -1;
        *rows = r, *cap = c;
    }
    ds_row *r = *rows + (*n)++;
    memset(r, 0, sizeof *r);
    r->tenant = k->tenant, r->country = k->country, r->span = span;
    r->t = t, r->addrs = addrs, r->asns = asns;
    return 0;
}

/* How the cumulative union grows with a day: adds it to cum, whose counts are counts[0..1]
 * before and after; -1 when out of memory. */
static int grow(sk_pool *pool, sketch *cum_addrs, sketch *cum_asns, const slot *day,
                int64_t counts[2], int64_t *addrs, int64_t *asns) {
    if (sk_merge(pool, cum_addrs, &day->addrs) < 0 || sk_merge(pool, cum_asns, &day->asns) < 0)
        return -1;
    int64_t a = sk_count(cum_addrs), b = sk_count(cum_asns);
    *addrs = a - counts[0], *asns = b - counts[1];
    counts[0] = a, counts[1] = b;
    return 0;
}

typedef struct {
    sketch addrs, asns;
} pair;

/* The 7-day block (epoch-aligned) of a time. */
static inline int64_t block_of(int64_t t) {
    int64_t q = t / (7 * DAY);
    return t % (7 * DAY) < 0 ? q - 1 : q;
}

static void free_pairs(pair *p, size_t n) {
    for (size_t i = 0; i < n; i++) sk_free(NULL, &p[i].addrs), sk_free(NULL, &p[i].asns);
    free(p);
}

/* dst = x, or the union of x and y (y non-NULL): a copy of the larger with the other
 * merged in (the running unions of a block grow by a day at a time: copying the union so
 * far is cheaper than adding its values again). */
static int union_of(sketch *dst, const sketch *x, const sketch *y) {
    if (!y) return sk_copy(NULL, dst, x);
    int y_larger = y->cap == SK_DENSE || (x->cap != SK_DENSE && y->n >= x->n);
    const sketch *big = y_larger ? y : x, *small = y_larger ? x : y;
    return sk_copy(NULL, dst, big) < 0 || sk_merge(NULL, dst, small) < 0 ? -1 : 0;
}

/* p = the union of the non-NULL of x, y (sketch pairs). */
static int union_pair(pair *p, const sketch *xa, const sketch *xb, const sketch *ya,
                      const sketch *yb) {
    return union_of(&p->addrs, xa, ya) < 0 || union_of(&p->asns, xb, yb) < 0 ? -1 : 0;
}

/* Unions of the sorted days[0..n) within their 7-day blocks: pre[i] of the block's days up
 * to day i, suf[i] of its days from day i on. A 7-day window spans at most two blocks, so
 * its union is one of these or the union of two (van Herk and Gil-Werman's sliding
 * maximum): a union of two sketches a window, not of seven. */
static int block_unions(slot *const *days, size_t n, pair *pre, pair *suf) {
    for (size_t i = 0; i < n; i++) {
        int joined = i > 0 && block_of(days[i - 1]->k.t) == block_of(days[i]->k.t);
        if (union_pair(&pre[i], &days[i]->addrs, &days[i]->asns,
                       joined ? &pre[i - 1].addrs : NULL, joined ? &pre[i - 1].asns : NULL) < 0)
            return -1;
    }
    for (size_t i = n; i-- > 0;) {
        int joined = i + 1 < n && block_of(days[i + 1]->k.t) == block_of(days[i]->k.t);
        if (union_pair(&suf[i], &days[i]->addrs, &days[i]->asns,
                       joined ? &suf[i + 1].addrs : NULL, joined ? &suf[i + 1].asns : NULL) < 0)
            return -1;
    }
    return 0;
}

/* Counts of the union of days[lo..hi) (hi > lo, all within 7 days), from the block unions. */
static int window_counts(slot *const *days, size_t lo, size_t hi, const pair *pre,
                         const pair *suf, int64_t *addrs, int64_t *asns) {
    size_t last = hi - 1;
    if (block_of(days[lo]->k.t) == block_of(days[last]->k.t)) {
        /* one block: from its first day (pre), or to its last (earlier days of the block lie
         * before the window, so the block ends before the window does: suf) */
        int first = lo == 0 || block_of(days[lo - 1]->k.t) != block_of(days[lo]->k.t);
        const pair *p = first ? &pre[last] : &suf[lo];
        *addrs = sk_count(&p->addrs), *asns = sk_count(&p->asns);
        return 0;
    }
    pair both = {{0}, {0}};
    int failed = union_pair(&both, &suf[lo].addrs, &suf[lo].asns, &pre[last].addrs,
                            &pre[last].asns) < 0;
    *addrs = sk_count(&both.addrs), *asns = sk_count(&both.asns);
    sk_free(NULL, &both.addrs), sk_free(NULL, &both.asns);
    return failed ? -1 : 0;
}

/* The 7-day windows after final_we that the sorted days[0..n) of one entity reach, as
 * rows: each window end we counts the union of the days in [we - 7 d, we). */
static int week_rows(slot *const *days, size_t n, int64_t final_we, int64_t last_we,
                     ds_row **rows, size_t *rn, size_t *cap) {
    pair *pre = calloc(n ? n : 1, sizeof *pre), *suf = calloc(n ? n : 1, sizeof *suf);
    int failed = !pre || !suf || block_unions(days, n, pre, suf) < 0;
    size_t lo = 0, hi = 0;
    for (size_t i = 0; i < n && !failed; i++) {
        int64_t from = days[i]->k.t + DAY;
        if (i > 0 && days[i - 1]->k.t + 8 * DAY > from) from = days[i - 1]->k.t + 8 * DAY;
        if (from <= final_we) from = final_we + DAY;
        for (int64_t we = from; we <= days[i]->k.t + 7 * DAY && we <= last_we && !failed;
             we += DAY) {
            while (hi < n && days[hi]->k.t < we) hi++;
            while (lo < hi && days[lo]->k.t < we - 7 * DAY) lo++;
            int64_t a, b;
            failed = window_counts(days, lo, hi, pre, suf, &a, &b) < 0 ||
                     row_out(rows, rn, cap, &days[i]->k, DS_WEEK, we, a, b) < 0;
        }
    }
    if (pre) free_pairs(pre, n);
    if (suf) free_pairs(suf, n);
    return failed ? -1 : 0;
}

typedef struct {
    skey k;
    slot *p;
} keyed;

static int by_key(const void *a, const void *b) {
    const skey *x = &((const keyed *)a)->k, *y = &((const keyed *)b)->k;
    if (x->tenant != y->tenant) return x->tenant < y->tenant ? -1 : 1;
    if (x->country != y->country) return x->country < y->country ? -1 : 1;
    if (x->span != y->span) return x->span < y->span ? -1 : 1;
    return x->t < y->t ? -1 : x->t > y->t;
}

static int in_scope(const uint8_t *scope, size_t scope_n, int32_t t) {
    return !scope || (t >= 0 && (size_t)t < scope_n && scope[t]);
}

/* The slots of sparse or negative tenant codes: sorted by key (so grouped by tenant). */
static keyed *slots_sorted(ds_store *s, const uint8_t *scope, size_t scope_n, size_t *n) {
    keyed *all = malloc((s->hours.n + s->days.n + 1) * sizeof *all);
    if (!all) return NULL;
    size_t m = 0;
    for (int which = 0; which < 2; which++) {
        table *in = which ? &s->days : &s->hours;
        for (size_t i = 0; i < in->n; i++) {
            slot *p = SLOT(in, i);
            if (in_scope(scope, scope_n, p->k.tenant)) all[m].k = p->k, all[m++].p = p;
        }
    }
    qsort(all, m, sizeof *all, by_key);
    *n = m;
    return all;
}

/* The slots (of the tenants marked in scope, or all) grouped by tenant, in the order of
 * the tenants (a counting sort: sorting each tenant's by key then sorts them all, and
 * tenants can be sorted apart); NULL on no memory. Codes that are negative, or far more
 * than the slots (the pipeline's are dense from 0), are sorted by key instead. */
static keyed *slots_by_tenant(ds_store *s, const uint8_t *scope, size_t scope_n, size_t *n) {
    size_t tenants = 0, total = s->hours.n + s->days.n;
    for (int which = 0; which < 2; which++) {
        table *in = which ? &s->days : &s->hours;
        for (size_t i = 0; i < in->n; i++) {
            int32_t t = SLOT(in, i)->k.tenant;
            if (t < 0) return slots_sorted(s, scope, scope_n, n);
            if ((size_t)t >= tenants) tenants = (size_t)t + 1;
        }
    }
    if (tenants > 4 * total + 1024) return slots_sorted(s, scope, scope_n, n);
    keyed *all = malloc((total + 1) * sizeof *all);
    size_t *at = calloc(tenants + 1, sizeof *at);  /* where each tenant's slots go */
    if (!all || !at) {
        free(all), free(at);
        return NULL;
    }
    for (int which = 0; which < 2; which++) {
        table *in = which ? &s->days : &s->hours;
        for (size_t i = 0; i < in->n; i++) {
            int32_t t = SLOT(in, i)->k.tenant;  /* not negative here */
            if (in_scope(scope, scope_n, t)) at[t + 1]++;
        }
    }
    for (size_t t = 0; t < tenants; t++) at[t + 1] += at[t];
    *n = at[tenants];
    for (int which = 0; which < 2; which++) {
        table *in = which ? &s->days : &s->hours;
        for (size_t i = 0; i < in->n; i++) {
            slot *p = SLOT(in, i);
            if (!in_scope(scope, scope_n, p->k.tenant)) continue;
            keyed *to = all + at[p->k.tenant]++;
            to->k = p->k, to->p = p;
        }
    }
    free(at);
    return all;
}

/* Let go of the day slots in sorted[0..n) (all of them old), entity by entity, oldest
 * first: final 24h and cumulative rows, and the 7-day windows that reach them. */
static int let_go_days(ds_store *s, keyed *sorted, size_t n) {
    slot **days = malloc((n ? n : 1) * sizeof *days);
    if (!days) return -1;
    int failed = 0;
    for (size_t g = 0; g < n && !failed;) {
        const skey *k = &sorted[g].k;
        size_t end = g;
        while (end < n && sorted[end].k.tenant == k->tenant && sorted[end].k.country == k->country)
            end++;
        /* the entity's days: the old ones, then those kept (windows may reach both) */
        size_t m = 0;
        for (size_t i = g; i < end; i++) days[m++] = sorted[i].p;
        entity *e = entity_of(s, k->tenant, k->country);
        if (!e) { failed = 1; break; }
        for (size_t i = 0; i < m && !failed; i++) {
            slot *d = days[i];
            int64_t a, b;
            failed = row_out(&s->final, &s->final_n, &s->final_cap, &d->k, DS_DAY, d->k.t,
                             sk_count(&d->addrs), sk_count(&d->asns)) < 0;
            /* a day at or before one let go already (it arrived late) was not in the
             * windows made final then: they get its own counts */
            for (int64_t we = d->k.t + DAY; d->k.t <= e->last_gone && we <= d->k.t + 7 * DAY &&
                 we <= e->final_we && !failed; we += DAY)
                failed = row_out(&s->final, &s->final_n, &s->final_cap, &d->k, DS_WEEK, we,
                                 sk_count(&d->addrs), sk_count(&d->asns)) < 0;
            if (failed) break;
            if (d->k.t > e->last_gone) e->last_gone = d->k.t;
            /* the rest reach this day and later ones, old or kept */
            slot *reach[8];
            size_t r = 0;
            for (int64_t t = d->k.t; t < d->k.t + 7 * DAY; t += DAY) {
                slot *p = slot_of(s, d->k.tenant, d->k.country, DS_DAY, t, 1);
                if (p) reach[r++] = p;
            }
            int64_t from = e->final_we;
            failed = week_rows(reach, r, from, d->k.t + 7 * DAY, &s->final, &s->final_n,
                               &s->final_cap) < 0;
            if (d->k.t + 7 * DAY > e->final_we) e->final_we = d->k.t + 7 * DAY;
            int64_t counts[2] = {sk_count(&e->addrs), sk_count(&e->asns)};
            failed = failed || grow(&s->pool, &e->addrs, &e->asns, d, counts, &a, &b) < 0 ||
                     row_out(&s->final, &s->final_n, &s->final_cap, &d->k, DS_CUMULATIVE,
                             d->k.t, a, b) < 0;
        }
        g = end;
    }
    free(days);
    return failed ? -1 : 0;
}

int ds_retire(ds_store *s, int64_t latest_hour) {
    int64_t hour_cut = latest_hour - s->keep_us;
    int64_t day_cut = day_of(latest_hour - s->keep_us) - DS_KEEP_DAYS * DAY;
    if (hour_cut <= s->hour_cut) return 0;
    s->hour_cut = hour_cut;
    if (merge_hours(s, NULL, 0) < 0) return -1;
    for (size_t i = 0; i < s->hours.n; i++) {
        slot *p = SLOT(&s->hours, i);
        if (p->k.t < hour_cut &&
            row_out(&s->final, &s->final_n, &s->final_cap, &p->k, DS_HOUR, p->k.t,
                    sk_count(&p->addrs), sk_count(&p->asns)) < 0)
            return -1;
    }
    drop_before(s, &s->hours, hour_cut);
    for (size_t i = 0; i < CACHE; i++) s->cache[i].at = SIZE_MAX;
    if (day_cut <= s->day_cut) return 0;
    s->day_cut = day_cut;
    size_t n = 0;
    for (size_t i = 0; i < s->days.n; i++) n += SLOT(&s->days, i)->k.t < day_cut;
    keyed *old = malloc((n ? n : 1) * sizeof *old);
    if (!old) return -1;
    n = 0;
    for (size_t i = 0; i < s->days.n; i++) {
        slot *p = SLOT(&s->days, i);
        if (p->k.t < day_cut) old[n].k = p->k, old[n++].p = p;
    }
    qsort(old, n, sizeof *old, by_key);
    int failed = let_go_days(s, old, n) < 0;
    free(old);
    if (failed) return -1;
    drop_before(s, &s->days, day_cut);
    return 0;
}

void ds_forget(ds_store *s, int64_t horizon) {
    size_t kept = 0;
    for (size_t i = 0; i < s->final_n; i++) {
        const ds_row *r = s->final + i;
        if (r->span == DS_WEEK ? r->t <= horizon : r->t < horizon) continue;
        s->final[kept++] = *r;
    }
    s->final_n = kept;
    drop_before(s, &s->hours, horizon);
    drop_before(s, &s->days, horizon);
    for (size_t i = 0; i < CACHE; i++) s->cache[i].at = SIZE_MAX;
}

/* An entity that has let go of nothing (no days before the live ones). */
static const entity NO_ENTITY = {{0, 0, 0}, INT64_MIN, INT64_MIN, {0}, {0}};

/* Rows of one entity's live slots sorted[0..n) (hours, then days). Reads the store only,
 * so threads may make the rows of different entities at once. */
static int entity_rows(const ds_store *s, const keyed *sorted, size_t n, slot **days,
                       int64_t since, ds_row **rows, size_t *rn, size_t *cap) {
    const skey *k = &sorted[0].k;
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        slot *p = sorted[i].p;
        if (p->k.span == DS_DAY) days[m++] = p;
        if (p->k.t >= since && row_out(rows, rn, cap, &p->k, p->k.span, p->k.t,
                                       sk_count(&p->addrs), sk_count(&p->asns)) < 0)
            return -1;
    }
    if (m == 0) return 0;
    ekey ek = {k->tenant, k->country, 0};
    const entity *e = (const entity *)find(&s->entities, &ek);
    if (!e) e = &NO_ENTITY;
    sketch a = {0}, b = {0};
    int failed = sk_merge(NULL, &a, &e->addrs) < 0 || sk_merge(NULL, &b, &e->asns) < 0;
    int64_t counts[2] = {sk_count(&a), sk_count(&b)};
    for (size_t i = 0; i < m && !failed; i++) {
        int64_t da, db;
        failed = grow(NULL, &a, &b, days[i], counts, &da, &db) < 0 ||
                 row_out(rows, rn, cap, &days[i]->k, DS_CUMULATIVE, days[i]->k.t, da, db) < 0;
    }
    sk_free(NULL, &a), sk_free(NULL, &b);
    if (failed) return -1;
    return week_rows(days, m, e->final_we > since ? e->final_we : since, INT64_MAX, rows, rn, cap);
}

/* The rows of the entities whose live slots are live[lo..hi) (whole tenants, grouped by
 * tenant: sorted here), into a buffer of the job's own. */
typedef struct {
    const ds_store *s;
    keyed *live;
    size_t lo, hi;
    int64_t since;
    ds_row *rows;
    size_t n, cap;
    int failed;
} rows_job;

static void *job_rows(void *arg) {
    rows_job *j = arg;
    for (size_t g = j->lo; g < j->hi;) {
        size_t end = g;
        while (end < j->hi && j->live[end].k.tenant == j->live[g].k.tenant) end++;
        qsort(j->live + g, end - g, sizeof *j->live, by_key);
        g = end;
    }
    slot **days = malloc((j->hi - j->lo + 1) * sizeof *days);
    j->failed = !days;
    for (size_t g = j->lo; g < j->hi && !j->failed;) {
        size_t end = g;
        while (end < j->hi && j->live[end].k.tenant == j->live[g].k.tenant &&
               j->live[end].k.country == j->live[g].k.country)
            end++;
        j->failed = entity_rows(j->s, j->live + g, end - g, days, j->since, &j->rows, &j->n,
                                &j->cap) < 0;
        g = end;
    }
    free(days);
    return NULL;
}

/* The rows of the live slots live[0..n) (grouped by tenant), in the order of their keys,
 * appended to *rows: the tenants split into DS_THREADS runs of about equal slots, each
 * sorted and made by a thread (the first by the caller's), then put together in order: the
 * same rows as one thread makes. */
static int live_rows(const ds_store *s, keyed *live, size_t n, int64_t since,
                     ds_row **rows, size_t *rn, size_t *cap) {
    size_t parts = n >= DS_THREAD_MIN ? DS_THREADS : 1;
    rows_job jobs[DS_THREADS];
    pthread_t threads[DS_THREADS];
    int started[DS_THREADS] = {0};
    size_t lo = 0;
    for (size_t p = 0; p < parts; p++) {
        size_t hi = p + 1 == parts ? n : n / parts * (p + 1);
        if (hi < lo) hi = lo;
        while (hi > lo && hi < n && live[hi].k.tenant == live[hi - 1].k.tenant)
            hi++;  /* a tenant stays in one run */
        jobs[p] = (rows_job){s, live, lo, hi, since, NULL, 0, 0, 0};
        lo = hi;
    }
    for (size_t p = 1; p < parts; p++)
        started[p] = pthread_create(&threads[p], NULL, job_rows, &jobs[p]) == 0;
    job_rows(&jobs[0]);
    int failed = 0;
    for (size_t p = 1; p < parts; p++) {
        if (started[p]) pthread_join(threads[p], NULL);
        else job_rows(&jobs[p]);  /* no thread to be had: this one makes them */
    }
    for (size_t p = 0; p < parts; p++) {
        failed |= jobs[p].failed;
        if (!failed && jobs[p].n) {
            if (*rn + jobs[p].n > *cap) {
                size_t c = *cap ? *cap : 1024;
                while (c < *rn + jobs[p].n) c *= 2;
                ds_row *grown = realloc(*rows, c * sizeof *grown);
                if (!grown) failed = 1;
                else *rows = grown, *cap = c;
            }
            if (!failed) memcpy(*rows + *rn, jobs[p].rows, jobs[p].n * sizeof **rows);
            if (!failed) *rn += jobs[p].n;
        }
        free(jobs[p].rows);
    }
    return failed ? -1 : 0;
}

int ds_rows(ds_store *s, const int32_t *scope, size_t scope_n, int64_t since, ds_row **rows,
            size_t *n, size_t *cap) {
    uint8_t *marks = NULL;
    size_t marks_n = 0, first = *n;
    if (scope) {
        for (size_t i = 0; i < scope_n; i++)
            if (scope[i] >= 0 && (size_t)scope[i] + 1 > marks_n) marks_n = (size_t)scope[i] + 1;
        marks = calloc(marks_n ? marks_n : 1, 1);
        if (!marks) return -1;
        for (size_t i = 0; i < scope_n; i++)
            if (scope[i] >= 0) marks[scope[i]] = 1;
    }
    int failed = merge_hours(s, marks, marks_n) < 0;
    for (size_t i = 0; i < s->final_n && !failed; i++) {
        const ds_row *r = s->final + i;
        if (marks && ((size_t)r->tenant >= marks_n || !marks[r->tenant])) continue;
        if (r->span != DS_CUMULATIVE && (r->span == DS_WEEK ? r->t <= since : r->t < since))
            continue;
        if (*n == *cap) {
            size_t c = *cap ? *cap * 2 : 1024;
            ds_row *grown = realloc(*rows, c * sizeof *grown);
            if (!grown) { failed = 1; break; }
            *rows = grown, *cap = c;
        }
        (*rows)[(*n)++] = *r;
    }
    size_t live_n = 0;
    keyed *live = failed ? NULL : slots_by_tenant(s, marks, marks_n, &live_n);
    failed = failed || !live || live_rows(s, live, live_n, since, rows, n, cap) < 0;
    free(live), free(marks);
    if (failed) return -1;
    if (s->late)  /* rows are made with flags 0 */
        for (size_t i = first; i < *n; i++) (*rows)[i].flags = DS_REPEATS;
    return 0;
}

void ds_sizes(const ds_store *s, size_t *sketches, size_t *bytes) {
    size_t count = 0, total = 0;
    for (int which = 0; which < 2; which++) {
        const table *in = which ? &s->days : &s->hours;
        for (size_t i = 0; i < in->n; i++) {
            const slot *p = SLOT(in, i);
            count += 2, total += sk_bytes(&p->addrs) + sk_bytes(&p->asns);
        }
    }
    for (size_t i = 0; i < s->entities.n; i++) {
        const entity *e = (const entity *)(s->entities.ents + i * sizeof(entity));
        count += 2, total += sk_bytes(&e->addrs) + sk_bytes(&e->asns);
    }
    *sketches = count, *bytes = total;
}
