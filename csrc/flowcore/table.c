/*
 * table.c: where flows live. An array of Flow slots (grown by doubling, never
 * touched beyond the slots in use) and an open-addressing hash table over it
 * whose slots hold a 32-bit tag of the key's hash and the flow's index.
 * Lookup and insertion are inline in engine.h (they run per packet).
 */
#include "engine.h"
#include <stdlib.h>
#include <sys/mman.h>

void fc_htab_delete(Engine *e, int32_t idx) {
    uint32_t s = (uint32_t)fc_table_hash(&e->flows[idx].key) & e->hmask;
    while (slot_flow(e->htab[s]) != idx) s = (s + 1) & e->hmask;
    /* backward-shift deletion keeps probe chains intact without tombstones */
    uint32_t j = s;
    for (;;) {
        j = (j + 1) & e->hmask;
        uint64_t v = e->htab[j];
        if (v == SLOT_EMPTY) break;
        uint32_t home = slot_tag(v) & e->hmask;
        if (((j - home) & e->hmask) >= ((j - s) & e->hmask)) { e->htab[s] = v; s = j; }
    }
    e->htab[s] = SLOT_EMPTY;
}

/* Large tables are touched at random, one flow per packet: back them with huge
 * pages where the kernel offers them, so each access costs one TLB entry less. */
static void *table_alloc(size_t bytes) {
    const size_t huge = 2u << 20;
    void *p = NULL;
    if (bytes < huge) return posix_memalign(&p, 64, bytes) == 0 ? p : NULL;
    size_t rounded = (bytes + huge - 1) & ~(huge - 1);
    if (posix_memalign(&p, huge, rounded) != 0) return NULL;
#ifdef MADV_HUGEPAGE
    madvise(p, rounded, MADV_HUGEPAGE);
#endif
    return p;
}

static void table_free(void *p) { free(p); }

/* The flow array grows by doubling. On Linux the pages move, not the bytes
 * (mremap): copying hundreds of MB into freshly zeroed pages cost more than
 * the packets that filled them. */
static Flow *flows_resize(Flow *old, size_t oldcap, size_t newcap, size_t used) {
#if defined(__linux__) && defined(MREMAP_MAYMOVE)
    (void)used;
    size_t nb = sizeof(Flow) * newcap;
    void *p = old ? mremap(old, sizeof(Flow) * oldcap, nb, MREMAP_MAYMOVE)
                  : mmap(NULL, nb, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return NULL;
#ifdef MADV_HUGEPAGE
    madvise(p, nb, MADV_HUGEPAGE);
#endif
    return p;
#else
    Flow *p = table_alloc(sizeof(Flow) * newcap);
    if (p && old) { memcpy(p, old, sizeof(Flow) * used); table_free(old); }
    (void)oldcap;
    return p;
#endif
}

static void flows_free(Flow *p, size_t cap) {
    if (!p) return;
#if defined(__linux__) && defined(MREMAP_MAYMOVE)
    munmap(p, sizeof(Flow) * cap);
#else
    (void)cap; table_free(p);
#endif
}

/* Free slots form a stack (linked through hnext) that the original table made
 * by pushing every new slot when it grew. Here the slots never used are handed
 * out in the same order without being touched beforehand, so a table that grew
 * to 2^k slots keeps only the slots it used resident: a link FREE_FRESH stands
 * for "the slots from e->fresh on, then e->fresh_below". */
#define FREE_FRESH (-2)

static int32_t pop_slot(Engine *e) {
    for (;;) {
        int32_t h = e->free_head;
        if (h >= 0) { e->free_head = e->flows[h].hnext; return h; }
        if (h != FREE_FRESH) return -1;
        if (e->fresh < e->cap) {
            /* fresh slots are taken in order: have the next MB faulted in ahead */
            if (e->helper_on) fc_prefault_ahead(e, PF_FLOWS, e->flows, (size_t)e->fresh * sizeof(Flow),
                                           (size_t)e->cap * sizeof(Flow), &e->flows_prefaulted);
            Flow *f = &e->flows[e->fresh];
            f->used = 0; f->gen = 0;
            return e->fresh++;
        }
        e->free_head = e->fresh_below;
    }
}

static int grow_table(Engine *e) {
    int32_t newcap = e->cap ? e->cap * 2 : 4096;
    /* the table grows with one slot left, which goes under the new ones */
    int32_t below = e->cap ? pop_slot(e) : -1;
    if (below >= 0) e->flows[below].hnext = -1;
    fc_helper_settle(e, PF_FLOWS);  /* no page of the array is being faulted in while it moves */
    Flow *nf = flows_resize(e->flows, (size_t)e->cap, (size_t)newcap, (size_t)e->fresh);
    if (!nf) { PyErr_NoMemory(); e->pyerr = 1; return -1; }
    e->flows = nf;
    e->fresh_below = below; e->free_head = FREE_FRESH; e->fresh = e->cap;
    e->cap = newcap;
    uint32_t hsize = (uint32_t)newcap * 2;
    uint64_t *nh = e->htab_next;
    if (nh) fc_helper_settle(e, PF_HTAB);
    else nh = table_alloc(sizeof(uint64_t) * hsize);
    e->htab_next = NULL;
    if (!nh) { PyErr_NoMemory(); e->pyerr = 1; return -1; }
    memset(nh, 0xff, sizeof(uint64_t) * hsize);
    uint32_t newmask = hsize - 1;
    if (e->htab) {
        /* the tags give each flow's home slot: no key is read or hashed again */
        for (uint32_t s = 0; s <= e->hmask; s++) {
            uint64_t v = e->htab[s];
            if (v == SLOT_EMPTY) continue;
            uint32_t t = slot_tag(v) & newmask;
            while (nh[t] != SLOT_EMPTY) t = (t + 1) & newmask;
            nh[t] = v;
        }
        table_free(e->htab);
    }
    e->htab = nh; e->hmask = newmask;
    return 0;
}

/* A free slot for a new flow (the table grows first when one slot is left).
 * While a file is mapped, the next hash table is made at three quarters, and
 * the helper faults it in meanwhile. */
int32_t fc_alloc_slot(Engine *e) {
    if (e->live >= e->cap - 1) {
        if (grow_table(e) < 0) return -1;
    } else if (e->live >= e->cap - e->cap / 4 && !e->htab_next && e->helper_on) {
        size_t bytes = sizeof(uint64_t) * (size_t)e->cap * 4;
        e->htab_next = table_alloc(bytes);
        if (e->htab_next) fc_helper_prefault(e, PF_HTAB, e->htab_next, 0, bytes);
    }
    return pop_slot(e);
}

int fc_conn_init(Engine *e) {
    e->free_head = -1;
    e->parents_free = -1;
    e->frags = PyMem_Calloc(FRAG_SLOTS, sizeof(FragEntry));
    if (!e->frags) { PyErr_NoMemory(); return -1; }
    return grow_table(e);
}

void fc_conn_free(Engine *e) {
    flows_free(e->flows, (size_t)e->cap);
    PyMem_Free(e->parents); e->parents = NULL;
    table_free(e->htab); table_free(e->htab_next);
    PyMem_Free(e->heap); PyMem_Free(e->frags); PyMem_Free(e->flush_order);
    e->flush_order = NULL;
    e->flows = NULL; e->htab = NULL; e->htab_next = NULL; e->heap = NULL; e->frags = NULL;
}

/* Rebuild the table from the flows in use (after a flush that left it stale). */
void fc_table_rehash(Engine *e) {
    memset(e->htab, 0xff, sizeof(uint64_t) * ((size_t)e->hmask + 1));
    for (int32_t i = 0; e->live && i < e->fresh; i++)  /* (no scan when none is open) */
        if (e->flows[i].used) fc_htab_insert(e, i, (uint32_t)fc_table_hash(&e->flows[i].key));
    e->flushing = 0;
}

void fc_table_settle(Engine *e) {
    if (e->flushing) fc_table_rehash(e);
}

/* Tunnel parents live in a pool beside the flows: few flows have any, and the
 * four uids would otherwise take a cache line of every flow. */
uint64_t *fc_parents_of(Engine *e, Flow *f) {
    if (f->parents_at) return e->parents[f->parents_at - 1].uid;
    int32_t i;
    if (e->parents_free >= 0) {
        i = e->parents_free;
        e->parents_free = (int32_t)e->parents[i].uid[0];
    } else {
        if (e->parents_used == e->parents_cap) {
            int32_t nc = e->parents_cap ? e->parents_cap * 2 : 256;
            Parents *np = PyMem_Realloc(e->parents, sizeof(Parents) * (size_t)nc);
            if (!np) { PyErr_NoMemory(); e->pyerr = 1; return NULL; }
            e->parents = np; e->parents_cap = nc;
        }
        i = e->parents_used++;
    }
    f->parents_at = i + 1;
    return e->parents[i].uid;
}

void fc_parents_release(Engine *e, Flow *f) {
    if (!f->parents_at) return;
    int32_t i = f->parents_at - 1;
    e->parents[i].uid[0] = (uint64_t)(int64_t)e->parents_free;
    e->parents_free = i;
    f->parents_at = 0;
}
