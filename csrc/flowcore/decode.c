/*
 * decode.c: link layers, tags, IP and tunnels.
 *
 * Each function takes a pointer to its header, the captured bytes left, and the
 * packet context (tags, VNI, tunnel parents, wire length). Malformed or cut
 * headers are counted as issues, never fatal.
 */
#include "engine.h"

static inline uint32_t wire_left(const Ctx *ctx, const uint8_t *p, const uint8_t *base) {
    Py_ssize_t used = p - base;
    return used >= (Py_ssize_t)ctx->wire_left ? 0 : ctx->wire_left - (uint32_t)used;
}

static int push_parent(Ctx *inner, uint64_t parent) {
    if (inner->nparents < MAX_PARENTS) inner->parents[inner->nparents++] = parent;
    return 0;
}

/* Inner packets start a fresh context: their own tags, the outer conn as parent. */
static Ctx inner_ctx(const Ctx *ctx, const uint8_t *inner, const uint8_t *base) {
    Ctx c = *ctx;
    c.depth++;
    c.vlan = -1; c.inner_vlan = -1;
    c.nparents = 0;
    c.wire_left = wire_left(ctx, inner, base);
    c.base = inner;
    return c;
}

static int teredo_detect(const uint8_t *b, uint32_t n) {
    if (n < 40) return 0;
    if ((b[0] >> 4) != 6 && !(b[0] == 0 && (b[1] == 0 || b[1] == 1))) return 0;
    static const uint8_t pfx[4] = {0x20, 0x01, 0x00, 0x00};
    if ((b[0] & 0xf0) == 0x60 && (!memcmp(b + 8, pfx, 4) || !memcmp(b + 24, pfx, 4))) return 1;
    const uint8_t *q = b; uint32_t qn = n;
    if (q[1] == 1) {
        uint32_t al = 13u + q[2] + q[3];
        if (qn < al) return 0;
        q += al; qn -= al;
        if (qn < 40) return 0;
        if (!(q[0] == 0 && q[1] == 0)) return 0;
    }
    if (q[0] == 0 && q[1] == 0) {
        if (qn < 8) return 0;
        q += 8; qn -= 8;
        return qn >= 40 && (q[0] >> 4) == 6;
    }
    return 0;
}

/* Teredo: optional authentication and origin-indication headers, then IPv6. */
static int teredo(Engine *e, const uint8_t *b, uint32_t cap, uint32_t wire, Ctx *ctx, uint64_t parent) {
    int found_o = 0, found_a = 0;
    for (;;) {
        if (cap < 2) return 0;
        uint16_t tag = rd16be(b);
        if (tag == 0) {
            if (found_o || cap < 8) return 0;
            b += 8; cap -= 8; wire -= 8; found_o = 1;
        } else if (tag == 1) {
            if (found_o || found_a || cap < 4) return 0;
            uint32_t al = 4u + b[2] + b[3] + 9u;
            if (cap < al) return 0;
            b += al; cap -= al; wire -= al; found_a = 1;
        } else if ((tag >> 12) == 6) {
            if (cap < 40) return 0;
            break;
        } else return 0;
    }
    uint32_t plen = rd16be(b + 4);
    if (wire != plen + 40u) {
        if (!(b[6] == 59 && plen == 0 && wire > 40)) return 0;
    }
    if (b[6] == 59) return 0;                 /* a bubble carries no inner packet */
    Ctx in = inner_ctx(ctx, b, ctx->base);
    in.wire_left = wire;
    push_parent(&in, parent);
    return fc_ip(e, b, cap, &in);
}

/* Overlays carried in UDP, chosen by the conn's responder port as Zeek does. */
static int udp_tunnel(Engine *e, const IpInfo *ip, Ctx *ctx, uint64_t parent, int resp_port) {
    if (ip->l4_cap < 8 || ctx->depth >= MAX_DEPTH) return 0;
    const uint8_t *p = ip->l4 + 8;
    uint32_t cap = ip->l4_cap - 8;
    uint32_t wire = ip->l4_len >= 8 ? ip->l4_len - 8 : 0;
    if (resp_port == 4789) {                  /* VXLAN, inner Ethernet */
        if (wire <= 8 || cap < 8) return 0;
        if (!(p[0] & 0x08)) { note_issue(e, ISS_BAD_TUNNEL, ctx->off); return 0; }
        Ctx in = inner_ctx(ctx, p + 8, ctx->base);
        in.wire_left = wire - 8;
        in.vni = (int64_t)((p[4] << 16) | (p[5] << 8) | p[6]);
        push_parent(&in, parent);
        return fc_ether(e, p + 8, cap - 8, &in);
    }
    if (resp_port == 6081) {                  /* Geneve */
        if (wire <= 8 || cap < 8) return 0;
        uint32_t hl = 8 + (uint32_t)(p[0] & 0x3f) * 4;
        if ((p[0] >> 6) != 0 || cap < hl || wire < hl) { note_issue(e, ISS_BAD_TUNNEL, ctx->off); return 0; }
        Ctx in = inner_ctx(ctx, p + hl, ctx->base);
        in.wire_left = wire - hl;
        in.vni = (int64_t)((p[4] << 16) | (p[5] << 8) | p[6]);
        push_parent(&in, parent);
        uint16_t pt = rd16be(p + 2);
        if (pt == 0x6558) return fc_ether(e, p + hl, cap - hl, &in);
        if (pt == 0x0800 || pt == 0x86DD) return fc_ip(e, p + hl, cap - hl, &in);
        note_issue(e, ISS_BAD_TUNNEL, ctx->off);
        return 0;
    }
    if (resp_port == 3544 || teredo_detect(p, cap))
        return teredo(e, p, cap, wire, ctx, parent);
    return 0;
}

static int gre(Engine *e, const IpInfo *ip, Ctx *ctx) {
    const uint8_t *p = ip->l4; uint32_t cap = ip->l4_cap;
    if (cap < 4) { note_issue(e, ISS_TRUNC_PACKET, ctx->off); return 0; }
    uint16_t fl = rd16be(p), proto = rd16be(p + 2);
    int ver = fl & 7;
    uint32_t hl = 4;
    if (fl & 0x8000) hl += 4;                 /* checksum */
    if (fl & 0x2000) hl += 4;                 /* key */
    if (fl & 0x1000) hl += 4;                 /* sequence */
    if (fl & 0x0080) hl += 4;                 /* acknowledgment (enhanced GRE) */
    if (ver > 1 || (fl & 0x4000) || (fl & 0x0078)) { note_issue(e, ISS_BAD_TUNNEL, ctx->off); return 0; }
    if (cap < hl) { note_issue(e, ISS_TRUNC_PACKET, ctx->off); return 0; }
    if (ctx->depth >= MAX_DEPTH) return 0;
    p += hl; cap -= hl;
    /* GRE has no conn of its own; inner conns name the tunnel (the address pair) as parent */
    Ctx in = inner_ctx(ctx, p, ctx->base);
    uint64_t tid = 0x47524500ULL;
    size_t alen = ip->family == 4 ? 4 : 16;
    const uint8_t *lo = memcmp(ip->src, ip->dst, alen) <= 0 ? ip->src : ip->dst;
    const uint8_t *hi = lo == ip->src ? ip->dst : ip->src;
    for (size_t i = 0; i < alen; i++) tid = mix64(tid ^ ((uint64_t)lo[i] << 8) ^ hi[i]);
    push_parent(&in, tid ? tid : 1);
    if (ver == 1) {
        if (proto != 0x880B || cap < 4) { note_issue(e, ISS_BAD_TUNNEL, ctx->off); return 0; }
        uint16_t pp = rd16be(p + 2);
        if (pp != 0x21 && pp != 0x57) return 0;
        in.base = p + 4; in.wire_left = wire_left(ctx, p + 4, ctx->base);
        return fc_ip(e, p + 4, cap - 4, &in);
    }
    switch (proto) {
        case 0x6558: return fc_ether(e, p, cap, &in);
        case 0x88BE: {                        /* ERSPAN: type II has a sequence number */
            uint32_t el = (fl & 0x1000) ? 8 : 0;
            if (cap < el) { note_issue(e, ISS_TRUNC_PACKET, ctx->off); return 0; }
            in.base = p + el; in.wire_left = wire_left(ctx, p + el, ctx->base);
            return fc_ether(e, p + el, cap - el, &in);
        }
        case 0x22EB: {                        /* ERSPAN type III */
            if (cap < 12) { note_issue(e, ISS_TRUNC_PACKET, ctx->off); return 0; }
            uint32_t el = 12 + ((p[11] & 0x01) ? 8 : 0);
            if (cap < el) { note_issue(e, ISS_TRUNC_PACKET, ctx->off); return 0; }
            in.base = p + el; in.wire_left = wire_left(ctx, p + el, ctx->base);
            return fc_ether(e, p + el, cap - el, &in);
        }
        default:
            return fc_ip(e, p, cap, &in);
    }
}

int fc_ip(Engine *e, const uint8_t *p, uint32_t cap, Ctx *ctx) {
    IpInfo ip; memset(&ip, 0, sizeof ip);
    if (cap < 20) { note_issue(e, ISS_TRUNC_PACKET, ctx->off); return 0; }
    uint32_t wl = wire_left(ctx, p, ctx->base);
    int ver = p[0] >> 4;
    if (ver == 4) {
        uint32_t ihl = (uint32_t)(p[0] & 0x0f) * 4;
        uint32_t tot = rd16be(p + 2);
        if (tot == 0) tot = wl;               /* TSO: the NIC fills the length; use the frame's */
        if (ihl < 20 || tot < ihl) { note_issue(e, ISS_BAD_IP, ctx->off); return 0; }
        if (cap < ihl) { note_issue(e, ISS_TRUNC_PACKET, ctx->off); return 0; }
        if (wl < tot) { note_issue(e, ISS_IP_LONGER_THAN_FRAME, ctx->off); return 0; }
        ip.family = 4; ip.src = p + 12; ip.dst = p + 16; ip.proto = p[9];
        ip.ip_len = tot; ip.l4_len = tot - ihl;
        ip.l4 = p + ihl; ip.l4_cap = (cap < tot ? cap : tot) - ihl;
        uint16_t fo = rd16be(p + 6);
        if (fo & 0x3fff) {
            ip.frag_id = rd16be(p + 4);
            ip.frag_off = (uint32_t)(fo & 0x1fff) * 8;
            ip.frag_more = (fo & 0x2000) != 0;
            if (ip.frag_off) ip.frag_later = 1; else ip.frag_first = 1;
            ip.frag_unfrag = ihl;
            ip.frag_payload = p + ihl;
            ip.frag_payload_len = tot - ihl;
            ip.frag_complete_capture = cap >= tot;
        }
    } else if (ver == 6) {
        if (cap < 40) { note_issue(e, ISS_TRUNC_PACKET, ctx->off); return 0; }
        uint32_t plen = rd16be(p + 4);
        ip.family = 6; ip.src = p + 8; ip.dst = p + 24;
        ip.ip_len = plen + 40;
        if (wl < ip.ip_len) { note_issue(e, ISS_IP_LONGER_THAN_FRAME, ctx->off); return 0; }
        uint8_t nh = p[6];
        uint32_t o = 40;
        uint32_t lim = cap < ip.ip_len ? cap : ip.ip_len;
        for (int n = 0; n < 16; n++) {
            if (nh == 0 || nh == 43 || nh == 60) {
                if (o + 2 > lim) { note_issue(e, ISS_TRUNC_PACKET, ctx->off); return 0; }
                uint8_t nn = p[o]; o += ((uint32_t)p[o + 1] + 1) * 8; nh = nn;
            } else if (nh == 44) {
                if (o + 8 > lim) { note_issue(e, ISS_TRUNC_PACKET, ctx->off); return 0; }
                uint8_t nn = p[o]; uint16_t fo = rd16be(p + o + 2);
                ip.frag_id = rd32be(p + o + 4);
                ip.frag_off = (uint32_t)(fo >> 3) * 8;
                ip.frag_more = fo & 1;
                if (ip.frag_off) ip.frag_later = 1; else if (ip.frag_more) ip.frag_first = 1;
                ip.frag_unfrag = o;
                ip.frag_payload = p + o + 8;
                ip.frag_payload_len = ip.ip_len > o + 8 ? ip.ip_len - (o + 8) : 0;
                ip.frag_complete_capture = cap >= ip.ip_len;
                o += 8; nh = nn;
                if (ip.frag_later) break;  /* the rest is payload, not headers */
            } else if (nh == 51) {
                if (o + 2 > lim) { note_issue(e, ISS_TRUNC_PACKET, ctx->off); return 0; }
                uint8_t nn = p[o]; o += ((uint32_t)p[o + 1] + 2) * 4; nh = nn;
            } else break;
        }
        if (o > ip.ip_len) { note_issue(e, ISS_BAD_IP, ctx->off); return 0; }
        ip.proto = nh; ip.l4_len = ip.ip_len - o;
        ip.l4 = p + (o < lim ? o : lim); ip.l4_cap = o < lim ? lim - o : 0;
    } else {
        note_issue(e, ISS_BAD_IP, ctx->off);
        return 0;
    }
    e->ip_packets++;
    if (ctx->depth == 0) e->ip_bytes += ip.ip_len;
    int reassembled = 0;
    if (ip.frag_first || ip.frag_later) {
        if (!fc_fragment(e, &ip, ctx)) return 0;
        reassembled = !ip.frag_first;
    }
    if (!ip.frag_first && !reassembled) {
        if (ip.proto == 4 || ip.proto == 41) {   /* IP in IP: only the inner packet is a conn */
            if (ctx->depth >= MAX_DEPTH) return 0;
            Ctx in = inner_ctx(ctx, ip.l4, ctx->base);
            in.nparents = ctx->nparents;
            memcpy(in.parents, ctx->parents, sizeof in.parents);
            return fc_ip(e, ip.l4, ip.l4_cap, &in);
        }
        if (ip.proto == 47) return gre(e, &ip, ctx);
    }
    uint64_t uid = 0; int resp_port = 0;
    if (fc_account(e, &ip, ctx, &uid, &resp_port) < 0) return -1;
    if (ip.proto == 17 && uid && !ip.frag_first && !reassembled)
        return udp_tunnel(e, &ip, ctx, uid, resp_port);
    return 0;
}

static int ethertype(Engine *e, uint16_t type, const uint8_t *p, uint32_t cap, Ctx *ctx) {
    for (int guard = 0; guard < 16; guard++) {
        switch (type) {
            case 0x0800: case 0x86DD: return fc_ip(e, p, cap, ctx);
            case 0x8100: case 0x88A8: case 0x9100: case 0x9200:
                if (cap < 4) { note_issue(e, ISS_TRUNC_PACKET, ctx->off); return 0; }
                if (ctx->vlan < 0) ctx->vlan = rd16be(p) & 0x0fff;
                else ctx->inner_vlan = rd16be(p) & 0x0fff;
                type = rd16be(p + 2); p += 4; cap -= 4;
                break;
            case 0x8847: case 0x8848:         /* MPLS: pop to the bottom of the stack */
                for (int n = 0;; n++) {
                    if (cap < 4 || n > 32) { note_issue(e, ISS_TRUNC_PACKET, ctx->off); return 0; }
                    int bos = p[2] & 1; p += 4; cap -= 4;
                    if (bos) break;
                }
                if (cap < 1) { note_issue(e, ISS_TRUNC_PACKET, ctx->off); return 0; }
                if ((p[0] >> 4) == 4 || (p[0] >> 4) == 6) return fc_ip(e, p, cap, ctx);
                if (++ctx->depth > MAX_DEPTH) { note_issue(e, ISS_BAD_TUNNEL, ctx->off); return 0; }
                return fc_ether(e, p, cap, ctx);  /* Ethernet pseudowire without control word */
            case 0x8864:                      /* PPPoE session */
                if (cap < 8) { note_issue(e, ISS_TRUNC_PACKET, ctx->off); return 0; }
                {
                    uint16_t pp = rd16be(p + 6);
                    if (pp == 0x0021 || pp == 0x0057) return fc_ip(e, p + 8, cap - 8, ctx);
                }
                note_issue(e, ISS_NON_IP, ctx->off);
                return 0;
            case 0x8903:                      /* Cisco FabricPath: 16-byte outer header */
                if (cap < 2 + 14) { note_issue(e, ISS_TRUNC_PACKET, ctx->off); return 0; }
                type = rd16be(p + 2 + 12); p += 2 + 14; cap -= 2 + 14;
                break;
            default:
                note_issue(e, ISS_NON_IP, ctx->off);
                return 0;
        }
    }
    note_issue(e, ISS_TRUNC_PACKET, ctx->off);
    return 0;
}

int fc_ether(Engine *e, const uint8_t *p, uint32_t cap, Ctx *ctx) {
    if (cap < 14) { note_issue(e, ISS_TRUNC_PACKET, ctx->off); return 0; }
    uint16_t type = rd16be(p + 12);
    if (type <= 1500) {                       /* 802.3 length: LLC/SNAP or other non-IP */
        if (cap >= 22 && p[14] == 0xaa && p[15] == 0xaa && p[16] == 0x03)
            return ethertype(e, rd16be(p + 20), p + 22, cap - 22, ctx);
        note_issue(e, ISS_NON_IP, ctx->off);
        return 0;
    }
    return ethertype(e, type, p + 14, cap - 14, ctx);
}

int fc_packet(Engine *e, int linktype, const uint8_t *p, uint32_t cap, uint32_t wire, int64_t ts_ns, int64_t off) {
    e->packets++;
    e->captured_bytes += cap;
    e->pkt_ns = ts_ns;
    if (ts_ns > e->now_ns) {
        e->now_ns = ts_ns;
        if (fc_advance(e, ts_ns) < 0) return -1;
    } else if (e->now_ns != INT64_MIN && ts_ns < e->now_ns - 1000000000LL) {
        note_issue(e, ISS_TIME_BACKWARDS, off);  /* counted; its flow keeps the packet's own time */
    }
    Ctx ctx;
    ctx.vni = -1; ctx.vlan = -1; ctx.inner_vlan = -1; ctx.nparents = 0; ctx.depth = 0;
    ctx.off = off; ctx.base = p; ctx.wire_left = wire < cap ? cap : wire;
    switch (linktype) {
        case 1: return fc_ether(e, p, cap, &ctx);
        case 101: case 12: case 14: case 228: case 229: return fc_ip(e, p, cap, &ctx);
        case 0: case 108: {                   /* BSD loopback: 4-byte address family */
            if (cap < 4) { note_issue(e, ISS_TRUNC_PACKET, off); return 0; }
            uint32_t af = linktype == 108 ? rd32be(p) : rd32(p, 0);
            if (linktype == 0 && af > 0xffff) af = __builtin_bswap32(af);  /* written big-endian */
            if (af == 2 || af == 24 || af == 28 || af == 30) return fc_ip(e, p + 4, cap - 4, &ctx);
            note_issue(e, ISS_NON_IP, off);
            return 0;
        }
        case 113:                             /* Linux cooked v1 */
            if (cap < 16) { note_issue(e, ISS_TRUNC_PACKET, off); return 0; }
            return ethertype(e, rd16be(p + 14), p + 16, cap - 16, &ctx);
        case 276:                             /* Linux cooked v2 */
            if (cap < 20) { note_issue(e, ISS_TRUNC_PACKET, off); return 0; }
            return ethertype(e, rd16be(p), p + 20, cap - 20, &ctx);
        default:
            note_issue(e, ISS_UNKNOWN_LINKTYPE, off);
            return 0;
    }
}
