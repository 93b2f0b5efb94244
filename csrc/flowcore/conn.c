/*
 * conn.c: the flow table, the timer heap and Zeek's connection rules.
 *
 * Rules follow Zeek's session manager, TCP session adapter and conn scripts:
 * who is the originator (likely server ports), TCP endpoint states and
 * conn_state, history letters, connection reuse on a new SYN, and removal by
 * timers (inactivity, TCP attempt/close/expire, DNS session) driven by packet
 * time. Packet checksums are not verified (as `zeek -C`).
 */
#include "engine.h"
#include <stdlib.h>

/* ------------------------------------------------------------------ hashing */

_Static_assert(sizeof(FlowKey) == 48, "FlowKey is compared and hashed as six words");
_Static_assert(sizeof(Endpoint) == 56, "two endpoints fill the two lines after a flow's first two");
_Static_assert(sizeof(Flow) == 320, "a flow is five cache lines");

/* The uid's hash of a key: stronger than the table's, made once per flow. */
static uint64_t key_hash(const uint64_t w[6]) {
    uint64_t h = 0x9e3779b97f4a7c15ULL;
    for (int i = 0; i < 5; i++) h = mix64(h ^ w[i]) + 0x632be59bd9b4e019ULL;
    return mix64(h ^ w[5]);
}

/* ------------------------------------------------------------------ timers */

static inline int timer_less(const Timer *a, const Timer *b) {
    return a->t < b->t || (a->t == b->t && a->seq < b->seq);
}

static int timer_add(Engine *e, int64_t t, int32_t flow, uint8_t kind, uint32_t ver) {
    if (e->nheap == e->heapcap) {
        Py_ssize_t nc = e->heapcap ? e->heapcap * 2 : 8192;
        fc_helper_settle(e, PF_TIMERS);  /* the heap may move */
        Timer *nh = PyMem_Realloc(e->heap, sizeof(Timer) * (size_t)nc);
        if (!nh) { PyErr_NoMemory(); e->pyerr = 1; return -1; }
        e->heap = nh; e->heapcap = nc;
        e->timers_prefaulted = 0;  /* it may have moved */
    }
    Timer tm = { t, e->timer_seq++, flow, e->flows[flow].gen, ver, kind };
    Py_ssize_t i = e->nheap++;
    if (e->helper_on) fc_prefault_ahead(e, PF_TIMERS, e->heap, sizeof(Timer) * (size_t)e->nheap,
                                   sizeof(Timer) * (size_t)e->heapcap, &e->timers_prefaulted);
    while (i > 0) {
        Py_ssize_t p = (i - 1) / 2;
        if (!timer_less(&tm, &e->heap[p])) break;
        e->heap[i] = e->heap[p]; i = p;
    }
    e->heap[i] = tm;
    return 0;
}

static Timer timer_pop(Engine *e) {
    Timer top = e->heap[0];
    Timer last = e->heap[--e->nheap];
    Py_ssize_t i = 0, n = e->nheap;
    for (;;) {
        Py_ssize_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && timer_less(&e->heap[c + 1], &e->heap[c])) c++;
        if (!timer_less(&e->heap[c], &last)) break;
        e->heap[i] = e->heap[c]; i = c;
    }
    if (n) e->heap[i] = last;
    return top;
}

static int set_inactivity(Engine *e, int32_t idx, int64_t timeout) {
    Flow *f = &e->flows[idx];
    if (timeout == f->inact_ns) return 0;
    f->inact_ns = timeout; f->inact_ver++;
    return timer_add(e, f->last_ns + timeout, idx, T_INACTIVITY, f->inact_ver);
}

static int remove_flow(Engine *e, int32_t idx) {
    Flow *f = &e->flows[idx];
    if (!f->used) return 0;
    int rc = fc_emit(e, f, 0);
    if (rc < 0) e->pyerr = 1;
    if (!e->flushing) fc_htab_delete(e, idx);
    fc_parents_release(e, f);
    f->used = 0; f->gen++; f->hnext = e->free_head; e->free_head = idx; e->live--;
    return rc;
}

/* ------------------------------------------------------------------ timer actions */

static int tcp_expire(Engine *e, int32_t idx, int64_t t) {
    Flow *f = &e->flows[idx];
    if (!f->active) return 0;
    Endpoint *o = &f->ep[0], *r = &f->ep[1];
    if (f->last_ns + e->close_delay_ns < t) {
        if (o->did_close || r->did_close) {
            if ((o->did_close && r->did_close) || o->state == ST_RESET || r->state == ST_RESET ||
                o->state == ST_INACTIVE || r->state == ST_INACTIVE)
                return remove_flow(e, idx);
        }
        if (o->state == ST_INACTIVE && r->state == ST_INACTIVE) return remove_flow(e, idx);
    }
    return timer_add(e, t + e->close_delay_ns + 1000000000LL, idx, T_EXPIRE, 0);
}

static int fire(Engine *e, const Timer *tm, int64_t t) {
    Flow *f = &e->flows[tm->flow];
    if (!f->used || f->gen != tm->gen) return 0;
    switch (tm->kind) {
        case T_INACTIVITY:
            if (tm->ver != f->inact_ver) return 0;
            if (f->last_ns + f->inact_ns <= t) return remove_flow(e, tm->flow);
            return timer_add(e, f->last_ns + f->inact_ns, tm->flow, T_INACTIVITY, f->inact_ver);
        case T_ATTEMPT:
            if (f->active && (f->ep[0].state == ST_SYN_SENT || f->ep[0].state == ST_SYN_ACK_SENT) &&
                f->ep[1].state == ST_INACTIVE) {
                f->active = 0;
                return remove_flow(e, tm->flow);
            }
            return 0;
        case T_EXPIRE:
            return tcp_expire(e, tm->flow, t);
        case T_REMOVE:
            return remove_flow(e, tm->flow);
        case T_DNS:
            if (t - f->last_ns >= 9000000000LL) return remove_flow(e, tm->flow);
            return timer_add(e, t + 10000000000LL, tm->flow, T_DNS, 0);
    }
    return 0;
}

int fc_advance(Engine *e, int64_t now) {
    while (e->nheap && e->heap[0].t <= now) {
        Timer tm = timer_pop(e);
        if (fire(e, &tm, now) < 0) return -1;
    }
    return 0;
}

typedef struct { int64_t first_ns; int32_t idx; } FlushItem;

static int by_first_seen(const void *a, const void *b) {
    const FlushItem *x = a, *y = b;
    if (x->first_ns != y->first_ns) return x->first_ns < y->first_ns ? -1 : 1;
    return x->idx < y->idx ? -1 : 1;
}

int fc_flush(Engine *e, Py_ssize_t max_records, int *done) {
    /* end of input: every open flow ends, oldest first, at most max_records per call
     * so that the caller can hand them on in bounded batches */
    if (!e->flush_order) {
        e->nheap = 0;
        size_t live = (size_t)(e->live > 0 ? e->live : 1);
        e->flush_order = PyMem_Malloc(sizeof(int32_t) * live);
        FlushItem *items = PyMem_Malloc(sizeof(FlushItem) * live);
        if (!e->flush_order || !items) {
            PyMem_Free(items); PyMem_Free(e->flush_order); e->flush_order = NULL;
            PyErr_NoMemory(); return -1;
        }
        int32_t n = 0;
        for (int32_t i = 0; i < e->fresh; i++)
            if (e->flows[i].used) { items[n].first_ns = e->flows[i].first_ns; items[n].idx = i; n++; }
        /* sorted apart from the flows, so that the comparisons touch no flow */
        qsort(items, (size_t)n, sizeof(FlushItem), by_first_seen);
        for (int32_t i = 0; i < n; i++) e->flush_order[i] = items[i].idx;
        PyMem_Free(items);
        e->flush_n = n; e->flush_pos = 0;
    }
    /* Every flow goes: the table is not kept up to date meanwhile, but rebuilt
     * if packets come before the flush is done (fc_table_settle), or emptied. */
    e->flushing = 1;
    Py_ssize_t emitted = 0;
    while (e->flush_pos < e->flush_n && emitted < max_records) {
        if (e->flush_pos + 8 < e->flush_n) {   /* the flows are in no useful order in memory */
            const char *f = (const char *)&e->flows[e->flush_order[e->flush_pos + 8]];
            for (size_t l = 0; l < sizeof(Flow); l += 64) fc_prefetch(f + l);
        }
        if (remove_flow(e, e->flush_order[e->flush_pos++]) < 0) return -1;
        emitted++;
    }
    *done = e->flush_pos >= e->flush_n;
    if (*done) {
        PyMem_Free(e->flush_order); e->flush_order = NULL;
        fc_table_rehash(e);  /* empty, unless flows started meanwhile */
    }
    return 0;
}

/* ------------------------------------------------------------------ history */

enum { HM_SYN = 0x01, HM_FIN = 0x02, HM_RST = 0x04, HM_DATA = 0x08, HM_ACK = 0x10,
       HM_MULTI_Q = 0x20, HM_MULTI_I = 0x40 };

static void hist_put(Flow *f, char c) {
    if (f->hlen < sizeof f->history) f->history[f->hlen++] = c;
}

/* Record a letter once per direction; returns 1 if it had been recorded before. */
static int hist_once(Flow *f, int dir, uint8_t mask, char upper) {
    int seen = f->hmask[dir] & mask;
    if (!seen) { f->hmask[dir] |= mask; hist_put(f, dir == 0 ? upper : (char)(upper + 32)); }
    return seen != 0;
}

/* Letters recorded at the 1st, 10th, 100th... occurrence (up to 10^9, then never). */
static void hist_scaled(Flow *f, int dir, uint32_t *count, uint8_t *exp, char upper) {
    static const uint32_t at[11] = {1u, 10u, 100u, 1000u, 10000u, 100000u, 1000000u, 10000000u,
                                    100000000u, 1000000000u, UINT32_MAX};
    if (++*count == at[*exp]) {
        hist_put(f, dir == 0 ? upper : (char)(upper + 32));
        if (*exp < 10) ++*exp;
    }
}

static void flip_roles(Flow *f) {
    uint64_t t;
    f->orig_is_a ^= 1;
    t = f->pkts[0]; f->pkts[0] = f->pkts[1]; f->pkts[1] = t;
    t = f->ipbytes[0]; f->ipbytes[0] = f->ipbytes[1]; f->ipbytes[1] = t;
    int64_t p = f->plen[0]; f->plen[0] = f->plen[1]; f->plen[1] = p;
    Endpoint ep = f->ep[0]; f->ep[0] = f->ep[1]; f->ep[1] = ep;
    hist_put(f, '^');
}

/* ------------------------------------------------------------------ TCP */

static inline int32_t sdelta(uint32_t a, uint32_t b) { return (int32_t)(a - b); }

/* A packet extends its flow to the packet's own time (never backwards). */
static inline void touch(Engine *e, Flow *f) {
    if (e->pkt_ns > f->last_ns) f->last_ns = e->pkt_ns;
}

static int set_state(Engine *e, int32_t idx, Endpoint *ep, Endpoint *peer, uint8_t ns) {
    if (ns == ep->state) return 0;
    int hs_old = ep->state <= ST_SYN_ACK_SENT, hs_peer = peer->state <= ST_SYN_ACK_SENT;
    int hs_new = ns <= ST_SYN_ACK_SENT;
    ep->prev = ep->state; ep->state = ns;
    if (!hs_new && hs_old && hs_peer) {
        Flow *f = &e->flows[idx];
        int64_t to = f->inact_ns == e->long_tcp_timeout_ns ? f->inact_ns : e->tcp_timeout_ns;
        return set_inactivity(e, idx, to);
    }
    return 0;
}

static int tcp_is_reuse(const Flow *f, uint8_t flags, uint32_t seq) {
    int syn = flags & 0x02, ack = flags & 0x10;
    if (!syn) return 0;
    const Endpoint *co = &f->ep[0];
    if (ack) {
        if (f->ep[0].state != ST_INACTIVE) return 0;
        co = &f->ep[1];
    }
    if (!(f->ep[0].did_close || f->ep[1].did_close)) {
        if (seq == co->start) return 0;
        if (!ack && co->state == ST_SYN_ACK_SENT && f->ep[1].state == ST_INACTIVE && seq == f->ep[1].start)
            return 0;
    }
    return 1;
}

static int is_long_lived_port(int port) { return port == 21 || port == 22 || port == 23 || port == 513; }

/* Zeek's per-packet TCP processing for a packet of direction `dir` (0 = orig). */
static int tcp_packet(Engine *e, int32_t idx, int *dirp, const uint8_t *th, uint32_t dlen) {
    Flow *f = &e->flows[idx];
    int dir = *dirp;
    uint8_t flags = th[13];
    int SYN = flags & 0x02, FIN = flags & 0x01, RST = flags & 0x04, ACK = flags & 0x10;
    uint32_t seq = rd32be(th + 4), ackn = rd32be(th + 8);
    uint16_t win = rd16be(th + 14);
    Endpoint *E = &f->ep[dir], *P = &f->ep[1 - dir];
    uint32_t seglen = dlen + (SYN ? 1 : 0) + (FIN ? 1 : 0);
    if (RST) seglen -= dlen;
    uint32_t end = seq + seglen;

    /* init_endpoint */
    int reinit = 0;
    if (E->state == ST_INACTIVE) {
        if (SYN) { E->start = E->ack = seq; E->last = end; }
        else { E->start = E->ack = seq - 1; E->last = seq; }
        reinit = 1;
    } else if (SYN && (((E->state == ST_SYN_SENT || E->state == ST_SYN_ACK_SENT) && seq != E->start) ||
                       E->state == ST_ESTABLISHED || E->state == ST_PARTIAL ||
                       (E->state == ST_RESET && E->prev == ST_INACTIVE))) {
        E->start = E->ack = seq; E->last = end; reinit = 1;
    }
    if (reinit) {
        E->last64 = sdelta(E->last, E->start); E->ack64 = 0;
    }
    int32_t rel = sdelta(seq, E->start);

    /* history */
    int bits = (SYN ? 1 : 0) + (FIN ? 1 : 0) + (RST ? 1 : 0);
    if (bits > 1) {
        if (FIN && RST) hist_once(f, dir, HM_MULTI_I, 'I'); else hist_once(f, dir, HM_MULTI_Q, 'Q');
    } else if (bits == 1) {
        if (SYN) {
            char code = ACK ? 'H' : 'S';
            if (hist_once(f, dir, HM_SYN, code) && rel != E->hsyn) hist_put(f, dir ? (char)(code + 32) : code);
            E->hsyn = rel;
        }
        if (FIN) {
            if (hist_once(f, dir, HM_FIN, 'F') && rel + (int32_t)dlen != E->hfin) hist_put(f, dir ? 'f' : 'F');
            E->hfin = rel + (int32_t)dlen;
        }
        if (RST) {
            if (hist_once(f, dir, HM_RST, 'R') && rel != E->hrst) hist_put(f, dir ? 'r' : 'R');
            E->hrst = rel;
        }
    } else {
        if (dlen) hist_once(f, dir, HM_DATA, 'D');
        else if (ACK) hist_once(f, dir, HM_ACK, 'A');
    }
    if (win == 0 && !RST && P->state != ST_CLOSED && E->state != ST_RESET && !SYN)
        hist_scaled(f, dir, &E->zw, &E->zw_exp, 'W');

    if (!(f->ep[0].did_close && f->ep[1].did_close)) touch(e, f);
    if (FIN) E->fin_seen = 1;
    if (ACK) {
        if (P->state == ST_INACTIVE) {
            P->start = P->ack = P->last = ackn - 1;
            P->last64 = 0; P->ack64 = 0;
        } else if (!RST) {
            int32_t d = sdelta(ackn, P->ack);
            if (d > 0 && !(ackn == 0 && d > 1048576)) { P->ack = ackn; P->ack64 += d; }
        }
    }
    int32_t dl = sdelta(end, E->last);
    if ((SYN || RST) && (dl > 1048576 || dl < -1048576)) {
        /* a far-off SYN or RST sequence number is not trusted */
    } else if (FIN && E->last == E->start + 1) {
        E->last64 += dl; E->last = end;
    } else if (E->state == ST_RESET) {
    } else if (dl > 0) {
        E->last64 += dl; E->last = end;
    } else if (dlen > 0) {
        hist_scaled(f, dir, &E->rx, &E->rx_exp, 'T');
    }

    /* endpoint state machine */
    int do_close = 0;
    int is_orig = dir == 0;
    if (E->state == ST_INACTIVE) {
        if (SYN) {
            if (is_orig) {
                if (set_state(e, idx, E, P, ACK ? ST_SYN_ACK_SENT : ST_SYN_SENT) < 0) return -1;
                if (timer_add(e, e->now_ns + e->attempt_delay_ns, idx, T_ATTEMPT, 0) < 0) return -1;
            } else {
                if (!ACK && P->state == ST_SYN_ACK_SENT && seq == E->start) {
                    /* the SYN-ACK was seen before its SYN: the roles were reversed */
                    flip_roles(f);
                    dir = 1 - dir; *dirp = dir; is_orig = !is_orig;
                    E = &f->ep[dir]; P = &f->ep[1 - dir];
                    if (set_state(e, idx, P, E, ST_ESTABLISHED) < 0) return -1;
                }
                if (P->state == ST_SYN_SENT && set_state(e, idx, P, E, ST_ESTABLISHED) < 0) return -1;
                if (set_state(e, idx, E, P, ST_ESTABLISHED) < 0) return -1;
                int rp = f->orig_is_a ? f->key.pb : f->key.pa, op = f->orig_is_a ? f->key.pa : f->key.pb;
                if (is_long_lived_port(rp) || is_long_lived_port(op)) {
                    if (set_inactivity(e, idx, e->long_tcp_timeout_ns) < 0) return -1;
                }
            }
        }
        if (FIN) { if (set_state(e, idx, E, P, ST_CLOSED) < 0) return -1; do_close = 1; }
        if (RST) { if (set_state(e, idx, E, P, ST_RESET) < 0) return -1; do_close = 1; }
        if (E->state == ST_INACTIVE) {
            if (!is_orig && dlen == 0 && f->ep[0].state == ST_SYN_SENT) {
            } else if (ACK && P->state == ST_ESTABLISHED) {
                if (set_state(e, idx, E, P, ST_ESTABLISHED) < 0) return -1;
            } else if (set_state(e, idx, E, P, ST_PARTIAL) < 0) return -1;
        }
    } else if (E->state == ST_SYN_SENT || E->state == ST_SYN_ACK_SENT) {
        if (FIN) { if (set_state(e, idx, E, P, ST_CLOSED) < 0) return -1; do_close = 1; }
        if (RST) { if (set_state(e, idx, E, P, ST_RESET) < 0) return -1; do_close = 1; }
    } else if (E->state == ST_ESTABLISHED || E->state == ST_PARTIAL) {
        if (SYN && E->state == ST_PARTIAL && P->state == ST_INACTIVE && !ACK) {
            if (set_state(e, idx, E, P, ST_SYN_SENT) < 0) return -1;
        }
        if (FIN && !RST) {
            if (set_state(e, idx, E, P, ST_CLOSED) < 0) return -1;
            if (P->state == ST_RESET && P->prev == ST_CLOSED && set_state(e, idx, P, E, ST_CLOSED) < 0) return -1;
            do_close = 1;
        }
        if (RST) { if (set_state(e, idx, E, P, ST_RESET) < 0) return -1; do_close = 1; }
    } else if (E->state == ST_CLOSED) {
        if (RST && P->state != ST_CLOSED) {
            if (set_state(e, idx, E, P, ST_RESET) < 0) return -1;
            if (!E->did_close) do_close = 1;
        }
    }
    if (do_close && !E->did_close) {
        E->did_close = 1;
        if (E->state == ST_RESET || P->did_close || P->state == ST_INACTIVE) {
            f->active = 0;
            if (timer_add(e, f->last_ns + e->close_delay_ns, idx, T_REMOVE, 0) < 0) return -1;
        } else if (E->prev != ST_INACTIVE) {
            if (timer_add(e, f->last_ns + e->close_delay_ns + 1000000000LL, idx, T_EXPIRE, 0) < 0) return -1;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------ accounting */

static int icmp_counterpart(int v6, int type, int code, int *one_way) {
    *one_way = 0;
    if (!v6) {
        switch (type) {
            case 8: return 0; case 0: return 8; case 13: return 14; case 14: return 13;
            case 15: return 16; case 16: return 15; case 10: return 9; case 9: return 10;
            case 17: return 18; case 18: return 17;
            default: *one_way = 1; return code;
        }
    }
    switch (type) {
        case 128: return 129; case 129: return 128; case 133: return 134; case 134: return 133;
        case 135: return 136; case 136: return 135; case 130: return 131; case 131: return 130;
        case 139: return 140; case 140: return 139; case 144: return 145; case 145: return 144;
        default: *one_way = 1; return code;
    }
}

static int add_parents(Engine *e, Flow *f, const Ctx *ctx) {
    uint64_t *parents = fc_parents_of(e, f);
    if (!parents) return -1;
    for (int i = 0; i < ctx->nparents; i++) {
        int found = 0;
        for (int j = 0; j < f->nparents; j++) if (parents[j] == ctx->parents[i]) found = 1;
        if (!found && f->nparents < MAX_PARENTS) parents[f->nparents++] = ctx->parents[i];
    }
    return 0;
}

static int is_v4_broadcast(const IpInfo *ip) {
    return ip->family == 4 && ip->dst[0] == 255 && ip->dst[1] == 255 && ip->dst[2] == 255 && ip->dst[3] == 255;
}

int fc_account(Engine *e, IpInfo *ip, Ctx *ctx, uint64_t *uid_out, int *resp_port_out) {
    *uid_out = 0;
    const uint8_t *th = ip->l4;
    uint32_t thcap = ip->l4_cap;
    int sport = 0, dport = 0, l4, one_way = 0;
    uint32_t dlen = 0;
    int tcp_full = 0;
    switch (ip->proto) {
        case 6: {
            l4 = L4_TCP;
            if (thcap < 4) { note_issue(e, ISS_TRUNC_PACKET, ctx->off); return 0; }
            sport = rd16be(th); dport = rd16be(th + 2);
            if (thcap >= 16) {
                uint32_t hl = (uint32_t)(th[12] >> 4) * 4;
                if (hl < 20 || hl > ip->l4_len) { note_issue(e, ISS_BAD_TCP_HEADER, ctx->off); return 0; }
                dlen = ip->l4_len - hl;
                tcp_full = 1;
            }
            break;
        }
        case 17:
            l4 = L4_UDP;
            if (thcap < 4) { note_issue(e, ISS_TRUNC_PACKET, ctx->off); return 0; }
            sport = rd16be(th); dport = rd16be(th + 2);
            break;
        case 1: case 58:
            l4 = L4_ICMP;
            if (thcap < 2) { note_issue(e, ISS_TRUNC_PACKET, ctx->off); return 0; }
            sport = th[0];
            dport = icmp_counterpart(ip->proto == 58, th[0], th[1], &one_way);
            break;
        default:
            l4 = L4_OTHER;
            break;
    }

    size_t alen = ip->family == 4 ? 4 : 16;
    int src_is_a;
    if (one_way) src_is_a = 1;
    else {
        int c = fc_addr_cmp(ip->src, ip->dst, alen);
        src_is_a = c < 0 || (c == 0 && sport <= dport);
    }
    uint64_t k[6];
    if (src_is_a) fc_key_words(k, ip->src, ip->dst, ip->family, (uint16_t)sport, (uint16_t)dport, ip->proto, (uint8_t)one_way, ctx->vni);
    else fc_key_words(k, ip->dst, ip->src, ip->family, (uint16_t)dport, (uint16_t)sport, ip->proto, (uint8_t)one_way, ctx->vni);
    uint64_t h = fc_hash_words(k);
    int32_t idx = fc_htab_find(e, k, h);
    if (idx >= 0 && l4 == L4_TCP && tcp_full && tcp_is_reuse(&e->flows[idx], th[13], rd32be(th + 4))) {
        if (remove_flow(e, idx) < 0) return -1;
        idx = -1;
    }
    Flow *f;
    if (idx < 0) {
        idx = fc_alloc_slot(e);
        if (idx < 0) return -1;
        f = &e->flows[idx];
        uint32_t gen = f->gen;
        memset(f, 0, sizeof *f);
        f->gen = gen;
        memcpy(&f->key, k, sizeof f->key); f->used = 1; f->l4 = (uint8_t)l4; f->active = 1;
        f->first_ns = f->last_ns = e->pkt_ns;
        f->next_interim_ns = e->interim_ns > 0 ? e->now_ns + e->interim_ns : INT64_MAX;
        f->vlan = (int16_t)ctx->vlan; f->inner_vlan = (int16_t)ctx->inner_vlan;
        f->plen[0] = f->plen[1] = -1;
        /* originator: the sender of the first packet, unless Zeek's port heuristics flip it */
        int flip = 0;
        if (l4 == L4_TCP) {
            int syn = tcp_full ? th[13] & 0x02 : 0, ack = tcp_full ? th[13] & 0x10 : 0;
            if ((!syn || ack) && port_in(e->lsp_tcp, sport)) {
                if (port_in(e->lsp_tcp, dport)) flip = !syn && sport < dport;
                else flip = 1;
            }
        } else if (l4 == L4_UDP) {
            flip = port_in(e->lsp_udp, sport) && !port_in(e->lsp_udp, dport);
        }
        if (flip && is_v4_broadcast(ip)) flip = 0;
        f->orig_is_a = (uint8_t)(flip ? !src_is_a : src_is_a);
        if (flip) hist_put(f, '^');
        f->uid = mix64(key_hash(k) ^ mix64((uint64_t)e->pkt_ns) ^ (++e->uid_seq * 0x9e3779b97f4a7c15ULL));
        if (!f->uid) f->uid = 1;
        fc_htab_insert(e, idx, (uint32_t)h);
        e->live++;
        if (set_inactivity(e, idx, l4 == L4_TCP ? e->udp_timeout_ns :
                                   l4 == L4_UDP ? e->udp_timeout_ns :
                                   l4 == L4_ICMP ? e->icmp_timeout_ns : e->other_timeout_ns) < 0) return -1;
        if (l4 == L4_TCP && timer_add(e, e->now_ns + e->close_delay_ns, idx, T_EXPIRE, 0) < 0) return -1;
        if (l4 == L4_UDP) {
            int rp = f->orig_is_a ? f->key.pb : f->key.pa;
            if (port_in(e->dns_ports, rp) && timer_add(e, e->now_ns + 10000000000LL, idx, T_DNS, 0) < 0) return -1;
        }
    } else {
        f = &e->flows[idx];
    }
    int dir = (src_is_a == f->orig_is_a) ? 0 : 1;
    if (ctx->nparents && add_parents(e, f, ctx) < 0) return -1;
    if (l4 == L4_TCP) {
        if (tcp_full) {
            if (tcp_packet(e, idx, &dir, th, dlen) < 0) return -1;
            f = &e->flows[idx];
        } else if (!(f->ep[0].did_close && f->ep[1].did_close)) {
            touch(e, f);   /* header cut by the snaplen: count it, no state */
        }
    } else if (l4 == L4_UDP) {
        touch(e, f);
        int64_t ulen = thcap >= 6 ? rd16be(th + 4) : (int64_t)ip->l4_len;
        if (ulen < 8) ulen = 8;
        f->plen[dir] = (f->plen[dir] < 0 ? 0 : f->plen[dir]) + ulen - 8;
        hist_once(f, dir, HM_DATA, 'D');
    } else if (l4 == L4_ICMP) {
        touch(e, f);
        f->plen[dir] = (f->plen[dir] < 0 ? 0 : f->plen[dir]) + (ip->l4_len > 8 ? ip->l4_len - 8 : 0);
    } else {
        touch(e, f);
    }
    f->pkts[dir]++;
    f->ipbytes[dir] += ip->ip_len;
    if (e->now_ns >= f->next_interim_ns) {
        if (fc_emit(e, f, 1) < 0) { e->pyerr = 1; return -1; }
        f->next_interim_ns = e->now_ns + e->interim_ns;
    }
    *uid_out = f->uid;
    *resp_port_out = f->orig_is_a ? f->key.pb : f->key.pa;
    return 0;
}
