/* pool.c: freed output buffers kept for the next scan.
 *
 * Every scan fills fresh column buffers of about the same sizes (one chunk of a file after
 * another), and memory fresh from the system costs a page fault and a clearing per 4 KiB: more
 * than parsing the values it holds. Large buffers freed by Python (module.c) or by a scan are
 * therefore kept here, up to ZS_POOL_BYTES in all, and handed out again for requests of nearly
 * their size. Thread-safe: scans run without the GIL.
 */
#include "scan.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

#define SLOTS 64
#define ZS_POOL_BYTES ((size_t)48 << 20)

static struct {
    void *p;
    size_t cap;
} slots[SLOTS];
static int used;
static size_t held;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

/* n rounded up to its size class (steps of an eighth of its power of two, at least 64 KiB), so
 * that the buffers of chunks of slightly different sizes are interchangeable. */
static size_t size_class(size_t n) {
    size_t top = (size_t)1 << (63 - __builtin_clzll((unsigned long long)n));
    size_t step = top / 8 > ZS_POOL_MIN ? top / 8 : ZS_POOL_MIN;
    return n > SIZE_MAX - step ? n : (n + step - 1) / step * step;
}

void *zs_mem_get(size_t n, size_t *cap) {
    if (n >= ZS_POOL_MIN) {
        n = size_class(n);
        int best = -1;
        pthread_mutex_lock(&lock);
        for (int i = 0; i < used; i++) /* the smallest that fits, if not much larger */
            if (slots[i].cap >= n && slots[i].cap - n <= n / 4 &&
                (best < 0 || slots[i].cap < slots[best].cap))
                best = i;
        if (best >= 0) {
            void *p = slots[best].p;
            *cap = slots[best].cap;
            held -= slots[best].cap;
            slots[best] = slots[--used];
            pthread_mutex_unlock(&lock);
            return p;
        }
        pthread_mutex_unlock(&lock);
    }
    void *p = malloc(n ? n : 1);
    *cap = n ? n : 1;
    return p;
}

void zs_mem_put(void *p, size_t cap) {
    if (!p) return;
    if (cap < ZS_POOL_MIN || cap > ZS_POOL_BYTES / 4) {
        free(p);
        return;
    }
    void *drop[SLOTS];
    int n_drop = 0;
    pthread_mutex_lock(&lock);
    /* room for it: the oldest blocks go (the sizes wanted may have changed) */
    while (used && (used == SLOTS || cap > ZS_POOL_BYTES - held)) {
        drop[n_drop++] = slots[0].p;
        held -= slots[0].cap;
        for (int i = 1; i < used; i++) slots[i - 1] = slots[i];
        used--;
    }
    slots[used].p = p;
    slots[used].cap = cap;
    used++;
    held += cap;
    pthread_mutex_unlock(&lock);
    for (int i = 0; i < n_drop; i++) free(drop[i]);
}
