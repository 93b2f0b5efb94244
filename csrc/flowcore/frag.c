/*
 * frag.c: IP fragment reassembly, as far as counting needs it.
 *
 * Zeek counts a fragmented datagram once it is complete: one packet, with the
 * reassembled length, at the time of the fragment that completed it, in any
 * arrival order. Only the start of the transport header is kept (ports, flags,
 * sequence numbers); the payload is not copied. Fragments that were not fully
 * captured are not reassembled: a first fragment is then counted on its own
 * and later ones are dropped, as Zeek does.
 */
#include "engine.h"
#include <stddef.h>

#define FRAG_TIMEOUT_NS (300LL * 1000000000LL)

static uint32_t frag_slot(const IpInfo *ip) {
    size_t alen = ip->family == 4 ? 4 : 16;
    uint64_t h = 0x6a09e667f3bcc909ULL ^ ip->frag_id ^ ((uint64_t)ip->family << 40);
    for (size_t i = 0; i < alen; i++) h = (h ^ ip->src[i] ^ ((uint64_t)ip->dst[i] << 8)) * 0x100000001b3ULL;
    if (ip->family == 4) h ^= (uint64_t)ip->proto << 48;
    return (uint32_t)mix64(h) & (FRAG_SLOTS - 1);
}

static int same_datagram(const FragEntry *fe, const IpInfo *ip) {
    size_t alen = ip->family == 4 ? 4 : 16;
    return fe->used && fe->id == ip->frag_id && fe->family == ip->family &&
           (ip->family == 6 || fe->proto == ip->proto) &&
           !memcmp(fe->src, ip->src, alen) && !memcmp(fe->dst, ip->dst, alen);
}

int fc_fragment(Engine *e, IpInfo *ip, const Ctx *ctx) {
    if (!ip->frag_complete_capture) {
        if (ip->frag_first) return 1;  /* counted alone with its own length */
        note_issue(e, ISS_TRUNC_PACKET, ctx->off);
        return 0;
    }
    FragEntry *fe = &e->frags[frag_slot(ip)];
    if (fe->used && (!same_datagram(fe, ip) || e->now_ns - fe->first_seen_ns > FRAG_TIMEOUT_NS)) {
        note_issue(e, ISS_INCOMPLETE_DATAGRAM, ctx->off);  /* evicted before it was complete */
        fe->used = 0;
    }
    if (!fe->used) {
        memset(fe, 0, offsetof(FragEntry, hdr));
        size_t alen = ip->family == 4 ? 4 : 16;
        memcpy(fe->src, ip->src, alen); memcpy(fe->dst, ip->dst, alen);
        fe->id = ip->frag_id; fe->proto = ip->proto; fe->family = (uint8_t)ip->family;
        fe->used = 1; fe->first_seen_ns = e->now_ns;
    }
    fe->received += ip->frag_payload_len;
    if (!ip->frag_more) fe->total = ip->frag_off + ip->frag_payload_len;
    if (ip->frag_off == 0) {
        fe->have_first = 1;
        fe->unfrag_len = ip->frag_unfrag;
        fe->l4_proto = ip->proto;
        fe->l4_skip = (uint32_t)(ip->l4 - ip->frag_payload);
        fe->hdr_cap = ip->l4_cap < FRAG_HDR_BYTES ? ip->l4_cap : FRAG_HDR_BYTES;
        memcpy(fe->hdr, ip->l4, fe->hdr_cap);
    }
    if (!fe->have_first || !fe->total || fe->received < fe->total) return 0;
    /* complete: describe the reassembled datagram */
    fe->used = 0;
    if (fe->l4_skip > fe->total) { note_issue(e, ISS_BAD_IP, ctx->off); return 0; }
    ip->proto = fe->l4_proto;
    ip->ip_len = fe->unfrag_len + fe->total;
    ip->l4_len = fe->total - fe->l4_skip;
    ip->l4 = fe->hdr;
    ip->l4_cap = fe->hdr_cap < ip->l4_len ? fe->hdr_cap : ip->l4_len;
    ip->frag_first = ip->frag_later = 0;
    return 1;
}
