/*
 * capture.c: pcap and pcapng framing. Records are parsed from a byte buffer that
 * may end mid-record; the caller keeps the unconsumed tail for the next call.
 */
#include "engine.h"
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22   /* Linux 5.14 */
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

/* ------------------------------------------------------------------ file formats */

void fc_set_error(Engine *e, int64_t off, const char *msg) {
    e->err = 1; e->err_offset = off;
    snprintf(e->errmsg, sizeof e->errmsg, "%s", msg);
}

/* Parse a classic pcap file header; returns bytes consumed, 0 if more data is needed. */
Py_ssize_t fc_pcap_header(Engine *e, const uint8_t *b, Py_ssize_t n) {
    if (n < 4) return 0;
    uint32_t m; memcpy(&m, b, 4);
    if (m == 0xa1b2c3d4) { e->swap = 0; e->ts_mult = 1000; }
    else if (m == 0xd4c3b2a1) { e->swap = 1; e->ts_mult = 1000; }
    else if (m == 0xa1b23c4d) { e->swap = 0; e->ts_mult = 1; }
    else if (m == 0x4d3cb2a1) { e->swap = 1; e->ts_mult = 1; }
    else { fc_set_error(e, e->file_offset, "not a pcap or pcapng file (bad magic number)"); return -1; }
    if (n < 24) return 0;
    e->snaplen = rd32(b + 16, e->swap);
    e->linktype = (int)(rd32(b + 20, e->swap) & 0x0fffffff);
    e->fmt = 1;
    return 24;
}

static int64_t tsres(uint8_t v, int64_t *div) {
    /* returns the multiplier to nanoseconds; *div > 1 when the unit is finer than 1 ns */
    *div = 1;
    if (v & 0x80) {                       /* power of two */
        int exp = v & 0x7f;
        if (exp <= 30) { *div = (int64_t)1 << exp; return 1000000000LL; }
        *div = (int64_t)1 << 30; return 1000000000LL;  /* clamp: finer than 1 ns */
    }
    int64_t mult = 1000000000LL;
    for (int i = 0; i < v && i < 18; i++) {  /* finer than 1e-18 s is clamped */
        if (mult > 1) mult /= 10; else *div *= 10;
    }
    return mult;
}

static int64_t scale_ts(uint64_t raw, int64_t mult, int64_t div) {
    if (div > 1) return (int64_t)((raw / (uint64_t)div) * (uint64_t)mult + ((raw % (uint64_t)div) * (uint64_t)mult) / (uint64_t)div);
    return (int64_t)(raw * (uint64_t)mult);
}

/* The flow key of a plain TCP or UDP packet (Ethernet with up to two tags, or
 * raw IP; IPv4 unfragmented or IPv6 without extension headers), as fc_account
 * makes it; 0 for anything else. Only used to prefetch, so it may be wrong. */
static int quick_key(const uint8_t *p, uint32_t cap, int linktype, uint64_t k[6]) {
    if (linktype == 1) {
        if (cap < 14) return 0;
        uint16_t t = rd16be(p + 12); p += 14; cap -= 14;
        for (int i = 0; i < 2 && (t == 0x8100 || t == 0x88A8); i++) {
            if (cap < 4) return 0;
            t = rd16be(p + 2); p += 4; cap -= 4;
        }
        if (t != 0x0800 && t != 0x86DD) return 0;
    } else if (linktype != 101 && linktype != 12 && linktype != 14 && linktype != 228 && linktype != 229) {
        return 0;
    }
    if (cap < 20) return 0;
    const uint8_t *src, *dst, *l4; uint8_t proto; size_t alen;
    if ((p[0] >> 4) == 4) {
        uint32_t ihl = (uint32_t)(p[0] & 15) * 4;
        if (ihl < 20 || cap < ihl + 4 || (rd16be(p + 6) & 0x3fff)) return 0;
        proto = p[9]; src = p + 12; dst = p + 16; l4 = p + ihl; alen = 4;
    } else if ((p[0] >> 4) == 6) {
        if (cap < 44) return 0;
        proto = p[6]; src = p + 8; dst = p + 24; l4 = p + 40; alen = 16;
    } else {
        return 0;
    }
    if (proto != 6 && proto != 17) return 0;
    uint16_t sport = rd16be(l4), dport = rd16be(l4 + 2);
    int c = fc_addr_cmp(src, dst, alen);
    if (c < 0 || (c == 0 && sport <= dport)) fc_key_words(k, src, dst, alen == 4 ? 4 : 6, sport, dport, proto, 0, -1);
    else fc_key_words(k, dst, src, alen == 4 ? 4 : 6, dport, sport, proto, 0, -1);
    return proto == 6 ? 2 : 1;
}

/* Packets are looked up ahead of time in two steps: PF_SLOT records ahead, the
 * table slot of the packet's key is fetched; PF_FLOW records ahead, the flow
 * that slot names. The record headers are fetched one record before they are
 * read: large packets put them pages apart, beyond the hardware's prefetcher. */
#define PF_SLOT 12
#define PF_FLOW 6
#define PF_RING 16

Py_ssize_t fc_feed_pcap(Engine *e, const uint8_t *b, Py_ssize_t n, int final) {
    Py_ssize_t o = 0, ahead = 0;          /* ahead: the next record to look up */
    uint64_t done = 0, looked = 0;        /* records handled, records looked up */
    uint64_t ring_h[PF_RING]; uint8_t ring_kind[PF_RING];
    uint32_t prev_cl = 0;                 /* the length of the record before the last looked up */
    /* a record longer than the snaplen (at least 256 KiB, at most 64 MiB) is corrupt */
    uint32_t limit = e->snaplen > 262144 ? (e->snaplen < 67108864 ? e->snaplen : 67108864) : 262144;
    while (n - o >= 16) {
        while (looked < done + PF_SLOT && n - ahead >= 16) {
            uint32_t cl = rd32(b + ahead + 8, e->swap);
            if (cl > limit || n - ahead - 16 < (Py_ssize_t)cl) break;
            uint64_t k[6];
            int kind = quick_key(b + ahead + 16, cl, e->linktype, k);
            ring_kind[looked % PF_RING] = (uint8_t)kind;
            if (kind) {
                uint64_t h = fc_hash_words(k);
                ring_h[looked % PF_RING] = h;
                fc_prefetch_slot(e, h);
            }
            ahead += 16 + cl; looked++;
            /* the next record's header and packet headers, needed one packet later */
            if (n - ahead >= 128) { fc_prefetch(b + ahead); fc_prefetch(b + ahead + 64); }
            /* Reading the headers is a chain of dependent loads, whose misses this
             * loop waits for on large packets: also fetch the header after that one,
             * guessing that its record is as long as this one or the one before. */
            if (n - ahead - 16 - (Py_ssize_t)cl >= 64) fc_prefetch(b + ahead + 16 + cl);
            if (n - ahead - 16 - (Py_ssize_t)prev_cl >= 64) fc_prefetch(b + ahead + 16 + prev_cl);
            prev_cl = cl;
        }
        if (done + PF_FLOW < looked && ring_kind[(done + PF_FLOW) % PF_RING])
            fc_prefetch_flow(e, ring_h[(done + PF_FLOW) % PF_RING], ring_kind[(done + PF_FLOW) % PF_RING] == 2);
        const uint8_t *h = b + o;
        uint32_t sec = rd32(h, e->swap), frac = rd32(h + 4, e->swap);
        uint32_t incl = rd32(h + 8, e->swap), orig = rd32(h + 12, e->swap);
        if (incl > limit) {
            char msg[160];
            snprintf(msg, sizeof msg, "corrupt packet record: captured length %u exceeds the limit %u", incl, limit);
            note_issue(e, ISS_BAD_RECORD_LEN, e->file_offset + o);
            fc_set_error(e, e->file_offset + o, msg);
            return o;
        }
        if (n - o < 16 + (Py_ssize_t)incl) break;
        int64_t ts = (int64_t)sec * 1000000000LL + (int64_t)frac * e->ts_mult;
        if (fc_packet(e, e->linktype, h + 16, incl, orig, ts, e->file_offset + o) < 0) return -1;
        o += 16 + incl; done++;
    }
    if (final && o < n) note_issue(e, ISS_TRUNC_RECORD, e->file_offset + o);
    return o;
}

Py_ssize_t fc_feed_pcapng(Engine *e, const uint8_t *b, Py_ssize_t n, int final) {
    Py_ssize_t o = 0;
    while (n - o >= 12) {
        const uint8_t *h = b + o;
        uint32_t type; memcpy(&type, h, 4);
        if (type == 0x0A0D0D0A) {         /* section header: byte order may change */
            uint32_t bom; memcpy(&bom, h + 8, 4);
            if (bom == 0x1A2B3C4D) e->swap = 0;
            else if (bom == 0x4D3C2B1A) e->swap = 1;
            else { fc_set_error(e, e->file_offset + o, "bad pcapng section header (byte-order magic)"); return -1; }
            e->nif = 0;
        }
        type = rd32(h, e->swap);
        uint32_t len = rd32(h + 4, e->swap);
        if (len < 12 || (len & 3) || len > 64u * 1024 * 1024) {
            char msg[120];
            snprintf(msg, sizeof msg, "bad pcapng block: total length %u (type 0x%08x)", len, type);
            note_issue(e, ISS_BAD_BLOCK, e->file_offset + o);
            fc_set_error(e, e->file_offset + o, msg);
            return o;
        }
        if (n - o < (Py_ssize_t)len) break;
        if (rd32(h + len - 4, e->swap) != len) {
            note_issue(e, ISS_BAD_BLOCK, e->file_offset + o);
            fc_set_error(e, e->file_offset + o, "bad pcapng block: trailing length does not match");
            return o;
        }
        int64_t boff = e->file_offset + o;
        if (type == 1) {                  /* interface description */
            if (len < 20) { note_issue(e, ISS_BAD_BLOCK, boff); }
            else if (e->nif < MAX_IFACES) {
                int i = e->nif++;
                e->if_link[i] = rd16(h + 8, e->swap);
                int64_t div = 1;
                e->if_mult[i] = tsres(6, &div); e->if_div[i] = div;
                uint32_t p = 16;
                while (p + 4 <= len - 4) {
                    uint16_t code = rd16(h + p, e->swap), olen = rd16(h + p + 2, e->swap);
                    if (code == 0) break;
                    if (p + 4 + olen > len - 4) break;
                    if (code == 9 && olen >= 1) { e->if_mult[i] = tsres(h[p + 4], &div); e->if_div[i] = div; }
                    p += 4 + ((olen + 3u) & ~3u);
                }
            }
        } else if (type == 6 || type == 3) {
            uint32_t ifid = 0, incl, wire; uint64_t raw = 0; const uint8_t *data;
            if (type == 6) {
                if (len < 32) { note_issue(e, ISS_BAD_BLOCK, boff); o += len; continue; }
                ifid = rd32(h + 8, e->swap);
                raw = ((uint64_t)rd32(h + 12, e->swap) << 32) | rd32(h + 16, e->swap);
                incl = rd32(h + 20, e->swap);
                wire = rd32(h + 24, e->swap);
                data = h + 28;
                if (28 + (uint64_t)incl + 4 > len) { note_issue(e, ISS_BAD_BLOCK, boff); o += len; continue; }
            } else {
                if (len < 16) { note_issue(e, ISS_BAD_BLOCK, boff); o += len; continue; }
                uint32_t orig = rd32(h + 8, e->swap);
                incl = len - 16;
                if (incl > orig) incl = orig;
                wire = orig;
                data = h + 12;
            }
            if (ifid >= (uint32_t)e->nif) { note_issue(e, ISS_NO_INTERFACE, boff); o += len; continue; }
            if (type == 3 && e->now_ns == INT64_MIN) {
                /* a simple packet block has no time: it takes the last one seen, and
                 * before any there is none to take */
                note_issue(e, ISS_NO_TIMESTAMP, boff); o += len; continue;
            }
            int64_t ts = type == 6 ? scale_ts(raw, e->if_mult[ifid], e->if_div[ifid]) : e->now_ns;
            if (fc_packet(e, e->if_link[ifid], data, incl, wire, ts, boff) < 0) return -1;
        } else if (type == 2) {           /* obsolete packet block */
            if (len < 32) { note_issue(e, ISS_BAD_BLOCK, boff); o += len; continue; }
            uint32_t ifid = rd16(h + 8, e->swap);
            uint64_t raw = ((uint64_t)rd32(h + 12, e->swap) << 32) | rd32(h + 16, e->swap);
            uint32_t incl = rd32(h + 20, e->swap);
            if (ifid >= (uint32_t)e->nif || 28 + (uint64_t)incl + 4 > len) { note_issue(e, ISS_BAD_BLOCK, boff); o += len; continue; }
            if (fc_packet(e, e->if_link[ifid], h + 28, incl, rd32(h + 24, e->swap), scale_ts(raw, e->if_mult[ifid], e->if_div[ifid]), boff) < 0) return -1;
        } else if (type != 0x0A0D0D0A && type != 5 && type != 4 && type != 0x0A) {
            note_issue(e, ISS_UNKNOWN_BLOCK, boff);
        }
        o += len;
    }
    if (final && o < n) note_issue(e, ISS_TRUNC_RECORD, e->file_offset + o);
    return o;
}


/* ------------------------------------------------------------------ the file's mapping */

/*
 * Reading a capture through a memory map costs the kernel about as much as the
 * parse itself on large packets: every 4 KiB page is mapped on a fault and
 * dropped again behind the reader (so that the resident size stays flat). A
 * helper thread does both off the parser's path: while the parser reads one
 * window, it maps the next (MADV_POPULATE_READ) and drops the pages the parser
 * has left. It touches no Python object. Without the thread (or without
 * MADV_POPULATE_READ) the parser faults the pages in itself, as a plain map.
 * Read-ahead of pages not yet in the page cache stays the kernel's.
 *
 * The same thread also faults in the next pages of the flow array and of the
 * timer heap before the engine reaches them, and the next hash table before the
 * table grows (fc_helper_prefault): the kernel zeroes each new page, and in a
 * virtual machine that costs about as much per byte as reading the capture.
 */
struct FileMap {
    const uint8_t *base; size_t size, page; int fd;
    dev_t dev; ino_t ino;       /* the file mapped */
    pid_t pid;                  /* the process that made the thread (a forked child has none) */
    pthread_t thread; pthread_mutex_t mu; pthread_cond_t cv;
    int has_thread, stop;
    uintptr_t pop_from, pop_to;     /* requested: map these addresses of the file ahead of the parser */
    uintptr_t drop_from, drop_to;   /* requested: drop these behind it */
    size_t dropped;                 /* file bytes below this were handed on to be dropped */
    struct { void *base; uintptr_t from, to; } pf[PF_REGIONS];  /* requested: fault in [from, to) */
    int pf_busy;                /* 1 + the region whose request is being served; 0: none */
    pthread_cond_t idle;        /* signalled when it is done */
};

/* Requests are served a piece at a time, so that a new or cancelled one waits
 * little, and the address space's lock is held briefly (the parser's own
 * mappings, Python's arenas among them, wait on it). */
#define HELPER_PIECE ((uintptr_t)2 << 20)

static uintptr_t take_piece(uintptr_t *from, uintptr_t to) {
    uintptr_t a = *from;
    *from = to - a > HELPER_PIECE ? a + HELPER_PIECE : to;
    return a;
}

static int pending_region(const struct FileMap *m) {
    for (int r = 0; r < PF_REGIONS; r++) if (m->pf[r].to > m->pf[r].from) return r;
    return -1;
}

static void *filemap_helper(void *arg) {
    struct FileMap *m = arg;
    int populate = 1;
    pthread_mutex_lock(&m->mu);
    while (!m->stop) {
        uintptr_t a, b; int advice, region = -1;
        if (m->pop_to > m->pop_from) {
            a = take_piece(&m->pop_from, m->pop_to); b = m->pop_from; advice = MADV_POPULATE_READ;
        } else if ((region = pending_region(m)) >= 0) {
            a = take_piece(&m->pf[region].from, m->pf[region].to); b = m->pf[region].from;
            advice = MADV_POPULATE_WRITE;
            m->pf_busy = region + 1;
        } else if (m->drop_to > m->drop_from) {
            a = take_piece(&m->drop_from, m->drop_to); b = m->drop_from; advice = MADV_DONTNEED;
        } else {
            pthread_cond_wait(&m->cv, &m->mu);
            continue;
        }
        pthread_mutex_unlock(&m->mu);
        /* an old kernel refuses to populate: the parser then faults pages in itself */
        if ((populate || advice == MADV_DONTNEED) && madvise((void *)a, b - a, advice) != 0 &&
            advice != MADV_DONTNEED && errno == EINVAL)
            populate = 0;
        pthread_mutex_lock(&m->mu);
        if (region >= 0) { m->pf_busy = 0; pthread_cond_broadcast(&m->idle); }
    }
    pthread_mutex_unlock(&m->mu);
    return NULL;
}

/* The helper only pays when it gets a processor of its own: with every one busy
 * it takes time from the parser (or is late), and the work it takes over costs
 * more than the parser doing it itself. Judged by the load average when a file
 * is opened: less than one runnable task per processor, with half a one spare. */
static int cpu_to_spare(void) {
    double load;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    return cpus > 1 && getloadavg(&load, 1) == 1 && load < (double)cpus - 0.5;
}

static int helper_here(const struct FileMap *m) { return m && m->has_thread && m->pid == getpid(); }

int fc_map_open(Engine *e, int fd) {
    struct stat st;
    if (fstat(fd, &st) != 0) return -1;
    if (!S_ISREG(st.st_mode) || st.st_size <= 0) { errno = EINVAL; return -1; }
    size_t size = (size_t)st.st_size;
    void *base = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED) return -1;
    struct FileMap *m = calloc(1, sizeof *m);
    if (!m) { munmap(base, size); errno = ENOMEM; return -1; }
    m->base = base; m->size = size; m->fd = fd; m->pid = getpid();
    m->dev = st.st_dev; m->ino = st.st_ino;
    long page = sysconf(_SC_PAGESIZE);
    m->page = page > 0 ? (size_t)page : 4096;
    if (cpu_to_spare() && pthread_mutex_init(&m->mu, NULL) == 0) {
        if (pthread_cond_init(&m->cv, NULL) == 0) {
            if (pthread_cond_init(&m->idle, NULL) == 0) {
                m->has_thread = pthread_create(&m->thread, NULL, filemap_helper, m) == 0;
#ifdef SCHED_BATCH
                if (m->has_thread) {
                    struct sched_param sp = {0};
                    pthread_setschedparam(m->thread, SCHED_BATCH, &sp);
                }
#endif
                if (!m->has_thread) pthread_cond_destroy(&m->idle);
            }
            if (!m->has_thread) pthread_cond_destroy(&m->cv);
        }
        if (!m->has_thread) pthread_mutex_destroy(&m->mu);
    }
    e->fmap = m;
    e->helper_on = m->has_thread;
    return 0;
}

/* The bytes [offset, offset + length) of the mapped file (NULL if outside it).
 * The pages before offset are dropped, and the next window is mapped ahead, by
 * the helper; the parser drops pages itself when the helper has fallen behind,
 * so that at most two windows stay resident. */
const uint8_t *fc_map_window(Engine *e, int64_t offset, int64_t length, int64_t *size) {
    struct FileMap *m = e->fmap;
    *size = (int64_t)m->size;
    if (offset < 0 || length < 0 || (uint64_t)offset > m->size || (uint64_t)length > m->size - (uint64_t)offset)
        return NULL;
    size_t start = (size_t)offset, end = start + (size_t)length;
    size_t drop = start - start % m->page;
    uintptr_t base = (uintptr_t)m->base, mine_from = 0, mine_to = 0;
    if (helper_here(m)) {
        size_t next_to = end + (size_t)length < m->size ? end + (size_t)length : m->size;
        pthread_mutex_lock(&m->mu);
        if (drop > m->dropped) {
            if (m->drop_to > m->drop_from) {    /* the last request is still waiting */
                mine_from = m->drop_from; mine_to = base + drop;
                m->drop_from = m->drop_to = 0;
            } else {
                m->drop_from = base + m->dropped; m->drop_to = base + drop;
            }
            m->dropped = drop;
        }
        if (next_to > end) { m->pop_from = base + end - end % m->page; m->pop_to = base + next_to; }
        pthread_cond_signal(&m->cv);
        pthread_mutex_unlock(&m->mu);
    } else if (drop > m->dropped) {
        mine_from = base + m->dropped; mine_to = base + drop;
        m->dropped = drop;
    }
    if (mine_to > mine_from) madvise((void *)mine_from, mine_to - mine_from, MADV_DONTNEED);
    return m->base + start;
}

/* 1 if fd is the file mapped (the same descriptor, still naming the same file). */
int fc_map_is(const Engine *e, int fd) {
    struct stat st;
    const struct FileMap *m = e->fmap;
    return m && m->fd == fd && fstat(fd, &st) == 0 && st.st_dev == m->dev && st.st_ino == m->ino;
}

int fc_helper_prefault(Engine *e, int region, void *base, size_t from, size_t to) {
    struct FileMap *m = e->fmap;
    if (!helper_here(m)) return 0;
    uintptr_t a = (uintptr_t)base + from, b = (uintptr_t)base + to;
    a -= a % m->page;  /* madvise takes whole pages */
    pthread_mutex_lock(&m->mu);
    if (m->pf[region].to > m->pf[region].from && m->pf[region].base == base && m->pf[region].to >= a) {
        if (b > m->pf[region].to) m->pf[region].to = b;   /* still waiting: extend it */
    } else {
        m->pf[region].base = base; m->pf[region].from = a; m->pf[region].to = b;
    }
    pthread_cond_signal(&m->cv);
    pthread_mutex_unlock(&m->mu);
    return 1;
}

void fc_helper_settle(Engine *e, int region) {
    struct FileMap *m = e->fmap;
    if (!helper_here(m)) return;
    pthread_mutex_lock(&m->mu);
    m->pf[region].from = m->pf[region].to = 0;
    while (m->pf_busy == region + 1) pthread_cond_wait(&m->idle, &m->mu);
    pthread_mutex_unlock(&m->mu);
}

void fc_map_close(Engine *e) {
    struct FileMap *m = e->fmap;
    if (!m) return;
    e->fmap = NULL; e->helper_on = 0;
    if (helper_here(m)) {
        pthread_mutex_lock(&m->mu);
        m->stop = 1;
        pthread_cond_signal(&m->cv);
        pthread_mutex_unlock(&m->mu);
        pthread_join(m->thread, NULL);
        pthread_cond_destroy(&m->idle); pthread_cond_destroy(&m->cv); pthread_mutex_destroy(&m->mu);
    }
    munmap((void *)(uintptr_t)m->base, m->size);
    free(m);
}
