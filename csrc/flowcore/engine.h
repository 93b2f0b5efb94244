/*
 * Shared declarations of the _flowcore extension: the compiled hot loop of
 * egress's capture reader.
 *
 *   capture.c  pcap / pcapng record framing -> packets
 *   decode.c   link layers, tags, IP, tunnels -> IP packets with their context
 *   table.c    flow storage and the hash table over it
 *   conn.c     timers and Zeek's connection rules
 *   record.c   flows -> Python records
 *   module.c   the Python type that drives it all
 *
 * Why C and not numba: the loop is branchy (link layers, tunnels, a hash table
 * with deletions, a TCP state machine, a timer heap), which numba compiles
 * poorly, and a C extension adds no run-time dependency or JIT warm-up.
 */
#ifndef EGRESS_FLOWCORE_H
#define EGRESS_FLOWCORE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

static inline uint16_t rd16be(const uint8_t *p) { return (uint16_t)((p[0] << 8) | p[1]); }
static inline uint32_t rd32be(const uint8_t *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static inline uint16_t rd16(const uint8_t *p, int swap) {
    uint16_t v; memcpy(&v, p, 2); return swap ? __builtin_bswap16(v) : v;
}
static inline uint32_t rd32(const uint8_t *p, int swap) {
    uint32_t v; memcpy(&v, p, 4); return swap ? __builtin_bswap32(v) : v;
}
static inline uint64_t mix64(uint64_t x) {
    x ^= x >> 33; x *= 0xff51afd7ed558ccdULL; x ^= x >> 33; x *= 0xc4ceb9fe1a85ec53ULL; x ^= x >> 33;
    return x;
}

/* TCP endpoint states, as Zeek names them */
enum { ST_INACTIVE = 0, ST_SYN_SENT, ST_SYN_ACK_SENT, ST_PARTIAL, ST_ESTABLISHED,
       ST_CLOSED, ST_RESET };

enum { L4_TCP = 0, L4_UDP, L4_ICMP, L4_OTHER };

/* counted problems; names in module.c */
enum {
    ISS_TRUNC_RECORD = 0, ISS_BAD_RECORD_LEN, ISS_UNKNOWN_LINKTYPE, ISS_BAD_BLOCK,
    ISS_TRUNC_PACKET, ISS_BAD_IP, ISS_NON_IP, ISS_ORPHAN_FRAGMENT, ISS_BAD_TUNNEL,
    ISS_UNKNOWN_BLOCK, ISS_NO_INTERFACE, ISS_IP_LONGER_THAN_FRAME, ISS_BAD_TCP_HEADER,
    ISS_INCOMPLETE_DATAGRAM, ISS_TIME_BACKWARDS, ISS_NO_TIMESTAMP,
    NISSUES
};
extern const char *ISSUE_NAMES[NISSUES];

/* timer kinds */
enum { T_INACTIVITY = 0, T_ATTEMPT, T_EXPIRE, T_REMOVE, T_DNS };

#define MAX_PARENTS 4
#define MAX_DEPTH 6
#define FRAG_SLOTS 4096
#define MAX_IFACES 256

typedef struct {
    uint8_t a[16], b[16];   /* canonical order (a, pa) <= (b, pb), unless one-way ICMP */
    uint16_t pa, pb;
    uint8_t proto, family;
    uint8_t one_way, pad;
    int64_t vni;            /* -1 outside an overlay */
} FlowKey;

typedef struct {
    uint8_t state, prev, did_close;
    uint8_t fin_seen;                   /* a FIN was sent (its sequence number carries no data) */
    uint32_t start, last, ack;          /* raw 32-bit sequence numbers */
    int64_t last64, ack64;              /* unwrapped, relative to start */
    int32_t hsyn, hfin, hrst;           /* rel. seq of the last SYN/FIN/RST (history repeats) */
    uint32_t rx, zw;                    /* retransmits and zero windows seen, for the history */
    uint8_t rx_exp, zw_exp;             /* their next history letter comes at 10^exp (10: never) */
} Endpoint;

/* A flow's state, laid out by use in five cache lines: a packet of a flow
 * already in the table reads and writes the first two (TCP also the next two,
 * its endpoints); the rest is touched when the flow starts, ends or changes
 * state. Each line less is 64 bytes less per open flow of memory the kernel
 * must hand over zeroed, and one miss less when a flow starts or ends. The
 * tunnel parents of the few flows that have them live in a side pool. */
typedef struct __attribute__((aligned(64))) {
    FlowKey key;
    uint8_t used, orig_is_a, l4, nparents, active, hlen;
    uint8_t hmask[2];       /* history letters recorded, per direction at recording time */
    uint64_t uid;
    int64_t last_ns, next_interim_ns;
    uint64_t pkts[2], ipbytes[2];
    int64_t plen[2];        /* UDP/ICMP payload bytes; -1 = that side never sent */
    Endpoint ep[2];         /* index 0 = originator */
    int64_t first_ns, inact_ns;
    int32_t hnext;          /* free-list link */
    uint32_t gen;           /* bumped when the slot is reused: stale timers ignore it */
    uint32_t inact_ver;
    int16_t vlan, inner_vlan;
    int32_t parents_at;     /* 1 + its entry in the parents pool; 0: none */
    char history[40];
} Flow;

typedef struct { uint64_t uid[MAX_PARENTS]; } Parents;

typedef struct { int64_t t; uint64_t seq; int32_t flow; uint32_t gen; uint32_t ver; uint8_t kind; } Timer;

#define FRAG_HDR_BYTES 64

/* a datagram being reassembled from its fragments */
typedef struct {
    uint8_t src[16], dst[16];
    uint32_t id;
    uint8_t proto, family, used, have_first;
    int64_t first_seen_ns;
    uint32_t received;      /* fragment payload bytes received */
    uint32_t total;         /* payload length, known once the last fragment arrived (0 before) */
    uint32_t unfrag_len;    /* IP header bytes that are not fragmented (v6: without the fragment header) */
    uint32_t l4_skip;       /* bytes of the fragmentable part before the transport header */
    uint8_t l4_proto;
    uint32_t hdr_cap;
    uint8_t hdr[FRAG_HDR_BYTES];  /* start of the transport header, from the first fragment */
} FragEntry;

typedef struct {
    PyObject_HEAD
    /* options */
    int64_t tcp_timeout_ns, udp_timeout_ns, icmp_timeout_ns, other_timeout_ns, long_tcp_timeout_ns;
    int64_t close_delay_ns, attempt_delay_ns, interim_ns;
    uint8_t lsp_tcp[8192], lsp_udp[8192], dns_ports[8192];
    /* flow storage */
    Flow *flows; int32_t cap; int32_t free_head; int32_t live;
    Parents *parents; int32_t parents_cap, parents_used, parents_free;  /* pool; free list through uid[0] */
    int32_t fresh, fresh_below;  /* slots from fresh on have never been used (see conn.c) */
    size_t flows_prefaulted, timers_prefaulted;  /* bytes asked to be faulted in ahead (fc_prefault_ahead) */
    uint64_t *htab; uint32_t hmask;  /* slots: hash tag << 32 | flow index; empty: all ones */
    uint64_t *htab_next;    /* the table's next size, made (and faulted in) ahead of growing */
    Timer *heap; Py_ssize_t nheap, heapcap; uint64_t timer_seq;
    FragEntry *frags;
    PyObject *out;          /* list of finished/interim flow tuples */
    /* capture format state */
    int fmt, swap, linktype; int64_t ts_mult; uint32_t snaplen;
    int nif; int if_link[MAX_IFACES]; int64_t if_mult[MAX_IFACES], if_div[MAX_IFACES];
    int64_t file_offset;
    /* fatal format error */
    int err; char errmsg[200]; int64_t err_offset;
    /* statistics */
    uint64_t packets, captured_bytes, ip_packets, ip_bytes, flows_done, interims;
    uint64_t issues[NISSUES]; int64_t issue_first[NISSUES];
    int64_t now_ns;         /* the clock: the latest packet time seen; drives the timers */
    int64_t pkt_ns;         /* the time of the packet being handled */
    uint64_t uid_seq;       /* makes uids unique when a 5-tuple repeats at one instant */
    int pyerr;              /* a Python exception is pending (allocation failure) */
    PyTypeObject *record_type;      /* egress.records.Flow, or NULL for plain tuples */
    PyObject *record_slots[32];     /* its member descriptors, in field order */
    int record_off[32];             /* their slot offsets (0: set through the descriptor) */
    int nslots;
    int32_t *flush_order; int32_t flush_n, flush_pos;  /* an end-of-input flush under way */
    int flushing;           /* flows leave without being taken out of the table (conn.c) */
    struct FileMap *fmap;   /* the file being read through the engine's own mapping (filemap in capture.c) */
    int helper_on;          /* it has a helper thread, which takes prefault requests */
} Engine;

/* the context of a (possibly encapsulated) packet */
typedef struct {
    int64_t vni;
    int vlan, inner_vlan;
    int nparents;
    uint64_t parents[MAX_PARENTS];
    int depth;
    int64_t off;            /* byte offset of the record in the file, for issues */
    const uint8_t *base;    /* where wire_left is measured from */
    uint32_t wire_left;     /* wire length from base on (for IP length checks) */
} Ctx;

typedef struct {
    int family;
    const uint8_t *src, *dst;
    uint8_t proto;
    uint32_t ip_len;        /* total length from the IP header: wire volume */
    uint32_t l4_len;        /* ip_len minus IP headers */
    const uint8_t *l4;      /* transport header, may be cut by the snaplen */
    uint32_t l4_cap;        /* captured bytes from l4 on */
    int frag_first, frag_later, frag_more;
    uint32_t frag_id;
    uint32_t frag_off;      /* offset of this fragment's payload, bytes */
    uint32_t frag_unfrag;   /* header bytes before the fragmentable part (v6: without frag header) */
    const uint8_t *frag_payload;  /* start of this fragment's payload */
    uint32_t frag_payload_len;    /* its length on the wire */
    int frag_complete_capture;    /* the whole fragment was captured */
} IpInfo;

static inline void note_issue(Engine *e, int kind, int64_t offset) {
    if (e->issues[kind]++ == 0) e->issue_first[kind] = offset;
}
static inline int port_in(const uint8_t *set, int port) { return (set[port >> 3] >> (port & 7)) & 1; }

/* decode.c */
int fc_packet(Engine *e, int linktype, const uint8_t *p, uint32_t cap, uint32_t wire, int64_t ts_ns, int64_t off);
int fc_ip(Engine *e, const uint8_t *p, uint32_t cap, Ctx *ctx);
int fc_ether(Engine *e, const uint8_t *p, uint32_t cap, Ctx *ctx);

/* frag.c: 1 when ip now describes a complete datagram, 0 when it was buffered or dropped */
int fc_fragment(Engine *e, IpInfo *ip, const Ctx *ctx);

/* table.c: flow storage and the hash table */
int fc_conn_init(Engine *e);
void fc_conn_free(Engine *e);
int32_t fc_alloc_slot(Engine *e);
void fc_htab_delete(Engine *e, int32_t idx);
void fc_table_rehash(Engine *e);
uint64_t *fc_parents_of(Engine *e, Flow *f);   /* its pool entry, made on first use; NULL: no memory */
void fc_parents_release(Engine *e, Flow *f);

/* conn.c */
int fc_advance(Engine *e, int64_t now);
int fc_flush(Engine *e, Py_ssize_t max_records, int *done);
void fc_table_settle(Engine *e);  /* table.c */
/* Count one IP packet into its connection; *uid_out gets the conn's uid (0 if none). */
int fc_account(Engine *e, IpInfo *ip, Ctx *ctx, uint64_t *uid_out, int *resp_port_out);

/* record.c */
int fc_record_init(void);
int fc_record_slot_offset(PyTypeObject *type, PyObject *descr);
int fc_emit(Engine *e, Flow *f, int interim);

/* A str from ASCII bytes, written in place (no UTF-8 decoding). */
static inline PyObject *fc_ascii_text(const char *s, Py_ssize_t n) {
    PyObject *o = PyUnicode_New(n, 127);
    if (o && n) memcpy(PyUnicode_1BYTE_DATA(o), s, (size_t)n);
    return o;
}

/* A flow key as six words, in FlowKey's layout (on a little-endian host built in
 * registers, so hashing and comparing it read no bytes just written). */
static inline void fc_key_words(uint64_t w[6], const uint8_t *x, const uint8_t *y, int family,
                                uint16_t px, uint16_t py, uint8_t proto, uint8_t one_way, int64_t vni) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    if (family == 4) {
        uint32_t a, b; memcpy(&a, x, 4); memcpy(&b, y, 4);
        w[0] = a; w[1] = 0; w[2] = b; w[3] = 0;
    } else {
        memcpy(&w[0], x, 8); memcpy(&w[1], x + 8, 8); memcpy(&w[2], y, 8); memcpy(&w[3], y + 8, 8);
    }
    w[4] = (uint64_t)px | (uint64_t)py << 16 | (uint64_t)proto << 32 | (uint64_t)(uint8_t)family << 40 |
           (uint64_t)one_way << 48;
    w[5] = (uint64_t)vni;
#else
    FlowKey k; memset(&k, 0, sizeof k);
    size_t alen = family == 4 ? 4 : 16;
    memcpy(k.a, x, alen); memcpy(k.b, y, alen);
    k.pa = px; k.pb = py; k.proto = proto; k.family = (uint8_t)family; k.one_way = one_way; k.vni = vni;
    memcpy(w, &k, sizeof k);
#endif
}

/* The flow table's hash of a key (the uid is made from a stronger one). */
static inline uint64_t fc_hash_words(const uint64_t w[6]) {
    uint64_t h = w[0] * 0x9e3779b97f4a7c15ULL + w[1] * 0xc2b2ae3d27d4eb4fULL +
                 w[2] * 0x165667b19e3779f9ULL + w[3] * 0xd6e8feb86659fd93ULL +
                 w[4] * 0xff51afd7ed558ccdULL + w[5] * 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 32; h *= 0x94d049bb133111ebULL; h ^= h >> 29;
    return h;
}

static inline uint64_t fc_table_hash(const FlowKey *k) {
    uint64_t w[6]; memcpy(w, k, sizeof w);
    return fc_hash_words(w);
}

static inline int fc_key_eq(const FlowKey *x, const uint64_t b[6]) {
    uint64_t a[6]; memcpy(a, x, 48);
    return !((a[0] ^ b[0]) | (a[1] ^ b[1]) | (a[2] ^ b[2]) | (a[3] ^ b[3]) | (a[4] ^ b[4]) | (a[5] ^ b[5]));
}

/* Open addressing with linear probing. A slot holds the low 32 bits of the key's
 * hash (its tag, which also gives its home slot) and the flow's index, so most
 * probes and all moves need no access to the flow itself. */
#define SLOT_EMPTY UINT64_MAX
static inline int32_t slot_flow(uint64_t v) { return (int32_t)(uint32_t)v; }
static inline uint32_t slot_tag(uint64_t v) { return (uint32_t)(v >> 32); }

static inline int32_t fc_htab_find(Engine *e, const uint64_t k[6], uint64_t h) {
    uint32_t tag = (uint32_t)h, s = tag & e->hmask;
    for (;;) {
        uint64_t v = e->htab[s];
        if (v == SLOT_EMPTY) return -1;
        if (slot_tag(v) == tag && fc_key_eq(&e->flows[slot_flow(v)].key, k)) return slot_flow(v);
        s = (s + 1) & e->hmask;
    }
}

static inline void fc_htab_insert(Engine *e, int32_t idx, uint32_t tag) {
    uint32_t s = tag & e->hmask;
    while (e->htab[s] != SLOT_EMPTY) s = (s + 1) & e->hmask;
    e->htab[s] = ((uint64_t)tag << 32) | (uint32_t)idx;
}

/* Order of two addresses as memcmp gives it (network byte order), without a call. */
static inline int fc_addr_cmp(const uint8_t *x, const uint8_t *y, size_t alen) {
    if (alen == 4) {
        uint32_t a = rd32be(x), b = rd32be(y);
        return (a > b) - (a < b);
    }
    uint64_t a, b;
    memcpy(&a, x, 8); memcpy(&b, y, 8);
    a = __builtin_bswap64(a); b = __builtin_bswap64(b);
    if (a != b) return a < b ? -1 : 1;
    memcpy(&a, x + 8, 8); memcpy(&b, y + 8, 8);
    a = __builtin_bswap64(a); b = __builtin_bswap64(b);
    return (a > b) - (a < b);
}

/* A prefetch the compiler keeps: GCC 12 deleted __builtin_prefetch of a flow
 * found through the table (its only effect), so on x86 it is written out. */
static inline void fc_prefetch(const void *p) {
#if defined(__x86_64__) || defined(__i386__)
    __asm__ volatile("prefetcht0 %0" : : "m"(*(const char *)p));
#else
    __builtin_prefetch(p);
#endif
}

/* Ask for the table slot of a key hash, and (next call, once the slot is in
 * cache) for the flow it names: packets a few records ahead of the one being
 * handled are looked up this way, so that their cache misses overlap. */
static inline void fc_prefetch_slot(const Engine *e, uint64_t h) {
    fc_prefetch(&e->htab[(uint32_t)h & e->hmask]);
}
static inline void fc_prefetch_flow(const Engine *e, uint64_t h, int tcp) {
    uint32_t tag = (uint32_t)h, s = tag & e->hmask;
    int32_t idx = -1;
    for (int i = 0; i < 4; i++) {
        uint64_t v = e->htab[s];
        if (v == UINT64_MAX) break;
        if ((uint32_t)(v >> 32) == tag) { idx = (int32_t)(uint32_t)v; break; }
        s = (s + 1) & e->hmask;
    }
    if (idx < 0) return;
    const char *f = (const char *)&e->flows[idx];
    fc_prefetch(f); fc_prefetch(f + 64);
    if (tcp) { fc_prefetch(f + 128); fc_prefetch(f + 192); }
}

/* flowid.c */
PyObject *fc_community_id(const uint8_t *oa, int op, const uint8_t *ra, int rp, int family, int proto);
PyObject *fc_uid_text(uint64_t uid);
PyObject *fc_addr_text(const uint8_t *a, int family);

/* capture.c */
void fc_set_error(Engine *e, int64_t off, const char *msg);
Py_ssize_t fc_pcap_header(Engine *e, const uint8_t *b, Py_ssize_t n);
Py_ssize_t fc_feed_pcap(Engine *e, const uint8_t *b, Py_ssize_t n, int final);
Py_ssize_t fc_feed_pcapng(Engine *e, const uint8_t *b, Py_ssize_t n, int final);
/* A file read from its own mapping, whose pages a helper thread maps ahead of the
 * parser and drops behind it. fc_map_open: 0, or -1 with errno set. */
int fc_map_open(Engine *e, int fd);
const uint8_t *fc_map_window(Engine *e, int64_t offset, int64_t length, int64_t *size);
void fc_map_close(Engine *e);
int fc_map_is(const Engine *e, int fd);
/* While a file is mapped: fault in bytes [from, to) of a growing array ahead of
 * use (1: asked), and wait until no request of it is pending or running (before
 * the array moves). Regions: */
enum { PF_FLOWS = 0, PF_TIMERS, PF_HTAB, PF_REGIONS };
int fc_helper_prefault(Engine *e, int region, void *base, size_t from, size_t to);
void fc_helper_settle(Engine *e, int region);
/* The helper faults in the next few MB of the flow array and the timer heap
 * while the engine fills them (table.c, conn.c). */
#define PREFAULT_STEP ((size_t)4 << 20)
static inline void fc_prefault_ahead(Engine *e, int region, void *base, size_t used, size_t limit, size_t *asked) {
    if (*asked < used) *asked = used;
    if (*asked - used >= PREFAULT_STEP / 2 || *asked >= limit) return;
    size_t to = *asked + PREFAULT_STEP < limit ? *asked + PREFAULT_STEP : limit;
    if (fc_helper_prefault(e, region, base, *asked, to)) *asked = to;
}

#endif
