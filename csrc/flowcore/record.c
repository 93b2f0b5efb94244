/*
 * record.c: a finished or interim flow as a Python record (egress.records.Flow,
 * or a plain tuple in the same field order).
 *
 * Captures of small packets end hundreds of thousands of flows per second, so
 * the record is built without Py_BuildValue's format parsing: constant texts
 * (protocol, conn_state) are made once, ASCII texts are written straight into
 * new str objects, and the record's slots are filled through their offsets.
 */
#include "engine.h"
#include <datetime.h>
#include <structmember.h>
#include <time.h>

enum { CS_S0 = 0, CS_S1, CS_SF, CS_REJ, CS_S2, CS_S3, CS_SH, CS_SHR, CS_RSTO, CS_RSTR,
       CS_RSTOS0, CS_RSTRH, CS_OTH, NSTATES };
static const char *const STATE_NAMES[NSTATES] = {
    "S0", "S1", "SF", "REJ", "S2", "S3", "SH", "SHR", "RSTO", "RSTR", "RSTOS0", "RSTRH", "OTH"};
static const char *const L4_NAMES[] = {"tcp", "udp", "icmp", "unknown_transport"};

static PyObject *state_text[NSTATES];
static PyObject *l4_text[4];

int fc_record_init(void) {
    PyDateTime_IMPORT;
    if (!PyDateTimeAPI) return -1;
    for (int i = 0; i < NSTATES; i++)
        if (!state_text[i] && !(state_text[i] = PyUnicode_InternFromString(STATE_NAMES[i]))) return -1;
    for (int i = 0; i < 4; i++)
        if (!l4_text[i] && !(l4_text[i] = PyUnicode_InternFromString(L4_NAMES[i]))) return -1;
    return 0;
}

int fc_record_slot_offset(PyTypeObject *type, PyObject *descr) {
    /* a plain object slot (what __slots__ makes) is written straight through its offset */
    if (!Py_IS_TYPE(descr, &PyMemberDescr_Type)) return -1;
    if (!PyType_IsSubtype(type, PyDescr_TYPE(descr))) return -1;
    PyMemberDef *m = ((PyMemberDescrObject *)descr)->d_member;
    if (m->type != T_OBJECT_EX || (m->flags & READONLY) || m->offset <= 0) return -1;
    return (int)m->offset;
}

/* ------------------------------------------------------------------ Zeek's summaries */

static uint64_t tcp_size(const Endpoint *ep) {
    int64_t sz = ep->last64 > ep->ack64 ? ep->last64 : ep->ack64;
    if (sz < 0) sz = 0;
    if (sz) sz--;                       /* the SYN's sequence number carries no data */
    if (ep->fin_seen && sz) sz--;       /* nor does the FIN's */
    return (uint64_t)sz;
}

static int history_matches_rstos0(const Flow *f) {
    /* ^?S[^HAFGIQ]*R.* */
    int i = 0;
    if (i < f->hlen && f->history[i] == '^') i++;
    if (i >= f->hlen || f->history[i] != 'S') return 0;
    for (i++; i < f->hlen; i++) {
        char c = f->history[i];
        if (c == 'R') return 1;
        if (strchr("HAFGIQ", c)) return 0;
    }
    return 0;
}

static int conn_state(const Flow *f) {
    if (f->l4 == L4_UDP) {
        if (f->plen[0] >= 0) return f->plen[1] >= 0 ? CS_SF : CS_S0;
        return f->plen[1] >= 0 ? CS_SHR : CS_OTH;
    }
    if (f->l4 != L4_TCP) return CS_OTH;
    int os = f->ep[0].state, rs = f->ep[1].state;
    int o_inactive = os == ST_INACTIVE || os == ST_PARTIAL;
    int r_inactive = rs == ST_INACTIVE || rs == ST_PARTIAL;
    if (rs == ST_RESET) {
        if (os == ST_SYN_SENT || os == ST_SYN_ACK_SENT ||
            (os == ST_RESET && tcp_size(&f->ep[0]) == 0 && tcp_size(&f->ep[1]) == 0))
            return CS_REJ;
        return o_inactive ? CS_RSTRH : CS_RSTR;
    }
    if (os == ST_RESET) {
        if (r_inactive) return history_matches_rstos0(f) ? CS_RSTOS0 : CS_OTH;
        return CS_RSTO;
    }
    if (rs == ST_CLOSED && os == ST_CLOSED) return CS_SF;
    if (os == ST_CLOSED) return r_inactive ? CS_SH : CS_S2;
    if (rs == ST_CLOSED) return o_inactive ? CS_SHR : CS_S3;
    if (os == ST_SYN_SENT && rs == ST_INACTIVE) return CS_S0;
    if (os == ST_ESTABLISHED && rs == ST_ESTABLISHED) return CS_S1;
    return CS_OTH;
}

/* ------------------------------------------------------------------ field values */

static PyObject *utc_datetime(int64_t ns) {
    /* flows that end together mostly started in the same second: keep its calendar */
    static int64_t cached_sec = INT64_MIN;
    static struct tm cached_tm;
    int64_t sec = ns / 1000000000LL, rem = ns % 1000000000LL;
    if (rem < 0) { sec -= 1; rem += 1000000000LL; }  /* floor, without negating INT64_MIN */
    int us = (int)(rem / 1000);
    if (sec != cached_sec) {
        time_t t = (time_t)sec;
        if (!gmtime_r(&t, &cached_tm)) {
            cached_sec = INT64_MIN;
            PyErr_SetString(PyExc_OverflowError, "timestamp out of range");
            return NULL;
        }
        cached_sec = sec;
    }
    const struct tm *tm = &cached_tm;
    return PyDateTimeAPI->DateTime_FromDateAndTime(tm->tm_year + 1900, tm->tm_mon + 1, tm->tm_mday,
        tm->tm_hour, tm->tm_min, tm->tm_sec, us, PyDateTime_TimeZone_UTC, PyDateTimeAPI->DateTimeType);
}

/* Ports repeat across flows (servers' above all): one int object per port,
 * made when first needed and shared by every record after. */
static PyObject *port_obj[65536];

static PyObject *port_int(int port) {
    PyObject *o = port_obj[port & 0xffff];
    if (!o && !(o = port_obj[port & 0xffff] = PyLong_FromLong(port))) return NULL;
    Py_INCREF(o);
    return o;
}

static PyObject *opt_int(int64_t v) {
    if (v < 0) Py_RETURN_NONE;
    return PyLong_FromLongLong(v);
}

static PyObject *parents_tuple(const Engine *e, const Flow *f) {
    PyObject *t = PyTuple_New(f->nparents);
    if (!t) return NULL;
    for (int i = 0; i < f->nparents; i++) {
        PyObject *v = fc_uid_text(e->parents[f->parents_at - 1].uid[i]);
        if (!v) { Py_DECREF(t); return NULL; }
        PyTuple_SET_ITEM(t, i, v);
    }
    return t;
}

#define NFIELDS 23

/* Append a flow record (final or interim) to the output list. */
int fc_emit(Engine *e, Flow *f, int interim) {
    const uint8_t *oa = f->orig_is_a ? f->key.a : f->key.b;
    const uint8_t *ra = f->orig_is_a ? f->key.b : f->key.a;
    int op = f->orig_is_a ? f->key.pa : f->key.pb;
    int rp = f->orig_is_a ? f->key.pb : f->key.pa;
    uint64_t ob, rb;
    if (f->l4 == L4_TCP) { ob = tcp_size(&f->ep[0]); rb = tcp_size(&f->ep[1]); }
    else if (f->l4 == L4_OTHER) { ob = rb = 0; }
    else { ob = f->plen[0] > 0 ? (uint64_t)f->plen[0] : 0; rb = f->plen[1] > 0 ? (uint64_t)f->plen[1] : 0; }
    PyObject *l4 = l4_text[f->l4], *state = state_text[conn_state(f)];
    Py_INCREF(l4); Py_INCREF(state);
    PyObject *fin = interim ? Py_True : Py_False;
    Py_INCREF(fin);
    /* the order of egress.records.Flow's fields */
    PyObject *v[NFIELDS] = {
        fc_uid_text(f->uid), utc_datetime(f->first_ns),
        PyFloat_FromDouble((double)(f->last_ns - f->first_ns) / 1e9),
        fc_addr_text(oa, f->key.family), port_int(op),
        fc_addr_text(ra, f->key.family), port_int(rp),
        l4, PyLong_FromLong(f->key.proto), state, fc_ascii_text(f->history, f->hlen),
        PyLong_FromUnsignedLongLong(f->pkts[0]), PyLong_FromUnsignedLongLong(f->ipbytes[0]),
        PyLong_FromUnsignedLongLong(ob),
        PyLong_FromUnsignedLongLong(f->pkts[1]), PyLong_FromUnsignedLongLong(f->ipbytes[1]),
        PyLong_FromUnsignedLongLong(rb),
        fc_community_id(oa, op, ra, rp, f->key.family, f->key.proto),
        opt_int(f->key.vni), opt_int(f->vlan), opt_int(f->inner_vlan), parents_tuple(e, f), fin,
    };
    PyObject *item = NULL;
    for (int i = 0; i < NFIELDS; i++) if (!v[i]) goto fail;
    if (e->record_type) {
        item = e->record_type->tp_alloc(e->record_type, 0);
        if (!item) goto fail;
        for (int i = 0; i < NFIELDS; i++) {
            if (e->record_off[i] > 0) {
                /* a fresh object's slots are NULL: the value's reference moves in */
                *(PyObject **)((char *)item + e->record_off[i]) = v[i];
                v[i] = NULL;
            } else {
                PyObject *d = e->record_slots[i];
                if (Py_TYPE(d)->tp_descr_set(d, item, v[i]) < 0) goto fail;
            }
        }
        /* Its fields are strings, numbers, a datetime and a tuple of strings, so a
         * record can never be part of a reference cycle: keep it out of the cyclic
         * collector, which otherwise rescans millions of live records. */
        if (PyObject_GC_IsTracked(item)) PyObject_GC_UnTrack(item);
    } else {
        item = PyTuple_New(NFIELDS);
        if (!item) goto fail;
        for (int i = 0; i < NFIELDS; i++) { PyTuple_SET_ITEM(item, i, v[i]); v[i] = NULL; }
    }
    for (int i = 0; i < NFIELDS; i++) Py_XDECREF(v[i]);
    int rc = PyList_Append(e->out, item);
    Py_DECREF(item);
    if (interim) e->interims++; else e->flows_done++;
    return rc;
fail:
    Py_XDECREF(item);
    for (int i = 0; i < NFIELDS; i++) Py_XDECREF(v[i]);
    return -1;
}
