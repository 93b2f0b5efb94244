/* attrib.c: egress._wincore.Ipv4Attributor, the attribution of Zeek conn rows whose two
 * addresses are dotted-quad IPv4 text, in one pass per batch with the GIL released.
 *
 * The rules are those of egress/attribution_batch.py, whose tables the Python side hands
 * over once per inventory (Ipv4Attributor(tables), the order of T_* below):
 *   - the outcome of every case of facts about a row (_OUTCOMES: source, remote, direction,
 *     reason, how; 5 x 2048 int8), so the rules themselves live in Python only;
 *   - the site's and the private/reserved IPv4 networks as sorted, merged [start, end)
 *     bounds;
 *   - tenant address ranges by prefix length, longest first: sorted network numbers and
 *     their timeline, or a dense table of timelines by number minus a base;
 *   - the timelines' spans (first, count, starts, ends, owners; times as POSIX seconds,
 *     half-open) and the VNIs' the same way;
 *   - optionally one geo range table (starts, inclusive ends, the country code and
 *     cross-border value of each range, AS numbers), else geo is the caller's.
 * solve() writes per row: tenant (-1 none), how, direction, remote end (1 originator,
 * 0 responder, -1 none), reason, country (-1), AS number, AS known, cross-border (-1
 * unknown, 0, 1), the remote end's text hash (text.h; 0 none), the remote end's IPv4
 * number (-1 none) and whether the row is left to the caller: an address that is not a
 * dotted quad, or a time beyond 2^53 microseconds (where a double no longer divides
 * exactly as Python does). A row without a time is solved here whatever its addresses.
 *
 * Two module functions serve the batches after solving: network_rows (the transfer columns
 * of egress/windows_conn.py for the kept rows, one pass) and quality_marked (the marked rows
 * of egress/quality.py batch_marked, one pass over the count columns).
 */
#include "attrib.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "text.h"

#define EXACT_US 9007199254740992LL /* 2^53 */
#define CASES 2048

enum {
    T_OUTCOMES, T_SITE, T_PRIVATE,
    T_P_LENGTHS, T_P_OFFSETS, T_P_KEYS, T_P_VALUES, T_D_BASES, T_D_OFFSETS, T_D_VALUES,
    T_S_FIRST, T_S_COUNT, T_S_STARTS, T_S_ENDS, T_S_OWNERS,
    T_V_KEYS, T_V_FIRST, T_V_COUNT, T_V_STARTS, T_V_ENDS, T_V_OWNERS,
    T_G_STARTS, T_G_ENDS, T_G_COUNTRY, T_G_CROSS, T_G_ASN,
    T_COUNT
};

/* Item size of each table (bytes). */
static const Py_ssize_t item_size[T_COUNT] = {
    1, 8, 8,
    8, 8, 8, 8, 8, 8, 8,
    8, 8, 8, 8, 8,
    8, 8, 8, 8, 8, 8,
    8, 8, 8, 8, 8,
};

/* Bits of a row's case and the rules' answers, as in attribution_batch._decide. */
enum { VALID = 1, SITE = 2, PRIVATE = 4 };
enum { FROM_ORIG = 1, FROM_RESP = 2 };
enum { D_INTERNAL = 3 };

/* Timelines and spans packed (one cache line or two a lookup, not five). A timeline holds
 * its first span too: most have one, read without a second dependent load. */
typedef struct {
    double start, end;  /* of the first span */
    int64_t owner;
    int32_t first, count;
} timeline_t;

typedef struct {
    double start, end;
    int64_t owner;
} span_t;

typedef struct {
    timeline_t *timelines;
    span_t *spans;
    Py_ssize_t n_timelines, n_spans;
} spans_t;

typedef struct {
    PyObject_HEAD
    Py_buffer t[T_COUNT];
    int held;            /* buffers of t[] held */
    Py_ssize_t n[T_COUNT];  /* items of each table */
    spans_t nets, vnis;
    int32_t *dense;      /* T_D_VALUES as int32 (half the cache lines) */
    int geo;             /* a geo table was given */
} Attributor;

/* How many of the sorted a[0..n) are at or below x; without branches on the data, which a
 * bisection over random addresses would mispredict half the time. */
static inline Py_ssize_t upper_bound_u64(const uint64_t *a, Py_ssize_t n, uint64_t x) {
    if (n == 0) return 0;
    const uint64_t *base = a;
    while (n > 1) {
        Py_ssize_t half = n >> 1;
        base = base[half] <= x ? base + half : base;
        n -= half;
    }
    return (base - a) + (*base <= x);
}

/* In a union of [start, end) bounds: an odd number of bounds at or below x. */
static inline int in_bounds(const uint64_t *b, Py_ssize_t n, uint64_t x) {
    return (int)(upper_bound_u64(b, n, x) & 1);
}

/* Owner of timeline tl at t, -1 none (bisect_right over its starts, then the span's end). */
static inline int64_t owner_at(const spans_t *s, int64_t tl, double t) {
    const timeline_t *line = s->timelines + tl;
    if (line->count == 1) return line->start <= t && t < line->end ? line->owner : -1;
    int64_t first = line->first, lo = first, hi = first + line->count;
    while (lo < hi) {
        int64_t mid = (lo + hi) >> 1;
        if (s->spans[mid].start <= t) lo = mid + 1; else hi = mid;
    }
    if (lo - 1 < first) return -1;
    const span_t *found = s->spans + lo - 1;
    return t < found->end ? found->owner : -1;
}

/* The tenant holding address x at t: the longest range containing it with an owner then. */
static inline int64_t address_owner(const Attributor *a, uint64_t x, double t) {
    const int64_t *lengths = a->t[T_P_LENGTHS].buf, *offsets = a->t[T_P_OFFSETS].buf;
    const uint64_t *keys = a->t[T_P_KEYS].buf, *bases = a->t[T_D_BASES].buf;
    const int64_t *values = a->t[T_P_VALUES].buf, *d_offsets = a->t[T_D_OFFSETS].buf;
    const int32_t *dense = a->dense;
    for (Py_ssize_t level = 0; level < a->n[T_P_LENGTHS]; level++) {
        uint64_t wanted = x >> (32 - lengths[level]);
        int64_t timeline = -1;
        int64_t d_first = d_offsets[level], d_size = d_offsets[level + 1] - d_first;
        if (d_size > 0) {
            uint64_t offset = wanted - bases[level];  /* wraps round below the base */
            if (offset < (uint64_t)d_size) timeline = dense[d_first + (int64_t)offset];
        } else {
            int64_t first = offsets[level], size = offsets[level + 1] - first;
            Py_ssize_t pos = upper_bound_u64(keys + first, size, wanted) - 1;
            if (pos >= 0 && keys[first + pos] == wanted) timeline = values[first + pos];
        }
        if (timeline >= 0) {
            int64_t owner = owner_at(&a->nets, timeline, t);
            if (owner >= 0) return owner;
        }
    }
    return -1;
}

static int64_t vni_owner(const Attributor *a, int64_t vni, double t) {
    const int64_t *keys = a->t[T_V_KEYS].buf;
    Py_ssize_t lo = 0, hi = a->n[T_V_KEYS];
    while (lo < hi) {
        Py_ssize_t mid = (lo + hi) >> 1;
        if (keys[mid] < vni) lo = mid + 1; else hi = mid;
    }
    if (lo == a->n[T_V_KEYS] || keys[lo] != vni) return -1;
    return owner_at(&a->vnis, lo, t);
}

/* ------------------------------------------------------------------ construction */

/* Check the five span tables from t[first] on and pack them into s (freed by release). */
static int pack_spans(const Attributor *a, int first, spans_t *s, const char *what) {
    const int64_t *firsts = a->t[first].buf, *counts = a->t[first + 1].buf;
    const double *starts = a->t[first + 2].buf, *ends = a->t[first + 3].buf;
    const int64_t *owners = a->t[first + 4].buf;
    Py_ssize_t timelines = a->n[first], spans = a->n[first + 2];
    if (a->n[first + 1] != timelines || a->n[first + 3] != spans || a->n[first + 4] != spans) {
        PyErr_Format(PyExc_ValueError, "%s spans: tables of different lengths", what);
        return -1;
    }
    if (spans > INT32_MAX || timelines > INT32_MAX) {
        PyErr_Format(PyExc_ValueError, "%s spans: more than 2^31 - 1", what);
        return -1;
    }
    for (Py_ssize_t i = 0; i < timelines; i++) {
        if (counts[i] < 1 || firsts[i] < 0 || firsts[i] > spans - counts[i]) {
            PyErr_Format(PyExc_ValueError, "%s timeline %zd: spans out of range", what, i);
            return -1;
        }
    }
    s->timelines = PyMem_Malloc(sizeof *s->timelines * (size_t)(timelines ? timelines : 1));
    s->spans = PyMem_Malloc(sizeof *s->spans * (size_t)(spans ? spans : 1));
    if (!s->timelines || !s->spans) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < timelines; i++)
        s->timelines[i] = (timeline_t){starts[firsts[i]], ends[firsts[i]], owners[firsts[i]],
                                       (int32_t)firsts[i], (int32_t)counts[i]};
    for (Py_ssize_t i = 0; i < spans; i++)
        s->spans[i] = (span_t){starts[i], ends[i], owners[i]};
    s->n_timelines = timelines;
    s->n_spans = spans;
    return 0;
}

/* Check the prefix tables; copy the dense one as int32 into a->dense (freed by release). */
static int check_levels(Attributor *a) {
    Py_ssize_t levels = a->n[T_P_LENGTHS];
    const int64_t *lengths = a->t[T_P_LENGTHS].buf;
    const int64_t *offsets = a->t[T_P_OFFSETS].buf, *d_offsets = a->t[T_D_OFFSETS].buf;
    const int64_t *values = a->t[T_P_VALUES].buf, *dense = a->t[T_D_VALUES].buf;
    if (a->n[T_P_OFFSETS] != levels + 1 || a->n[T_D_OFFSETS] != levels + 1 ||
        a->n[T_D_BASES] != levels || a->n[T_P_VALUES] != a->n[T_P_KEYS]) {
        PyErr_SetString(PyExc_ValueError, "prefix tables of different lengths");
        return -1;
    }
    for (Py_ssize_t i = 0; i < levels; i++) {
        if (lengths[i] < 0 || lengths[i] > 32 || offsets[i] < 0 || offsets[i + 1] < offsets[i] ||
            offsets[i + 1] > a->n[T_P_KEYS] || d_offsets[i] < 0 ||
            d_offsets[i + 1] < d_offsets[i] || d_offsets[i + 1] > a->n[T_D_VALUES]) {
            PyErr_Format(PyExc_ValueError, "prefix level %zd out of range", i);
            return -1;
        }
    }
    if ((levels && offsets[0] != 0) || (levels && d_offsets[0] != 0)) {
        PyErr_SetString(PyExc_ValueError, "prefix offsets do not start at 0");
        return -1;
    }
    for (Py_ssize_t i = 0; i < a->n[T_P_VALUES]; i++)
        if (values[i] < 0 || values[i] >= a->nets.n_timelines) goto bad_timeline;
    for (Py_ssize_t i = 0; i < a->n[T_D_VALUES]; i++)
        if (dense[i] < -1 || dense[i] >= a->nets.n_timelines) goto bad_timeline;
    Py_ssize_t size = a->n[T_D_VALUES];
    a->dense = PyMem_Malloc(sizeof *a->dense * (size_t)(size ? size : 1));
    if (!a->dense) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < size; i++) a->dense[i] = (int32_t)dense[i];
    return 0;
bad_timeline:
    PyErr_SetString(PyExc_ValueError, "prefix table names a timeline that does not exist");
    return -1;
}

static void release(Attributor *a) {
    for (int i = 0; i < a->held; i++) PyBuffer_Release(&a->t[i]);
    a->held = 0;
    spans_t *all[2] = {&a->nets, &a->vnis};
    for (int i = 0; i < 2; i++) {
        PyMem_Free(all[i]->timelines);
        PyMem_Free(all[i]->spans);
        *all[i] = (spans_t){0};
    }
    PyMem_Free(a->dense);
    a->dense = NULL;
}

static int attributor_init(Attributor *a, PyObject *args, PyObject *kw) {
    (void)kw;
    PyObject *tables;
    if (!PyArg_ParseTuple(args, "O!", &PyTuple_Type, &tables)) return -1;
    release(a);
    if (PyTuple_GET_SIZE(tables) != T_COUNT) {
        PyErr_Format(PyExc_ValueError, "expected %d tables", T_COUNT);
        return -1;
    }
    for (int i = 0; i < T_COUNT; i++) {
        if (PyObject_GetBuffer(PyTuple_GET_ITEM(tables, i), &a->t[i], PyBUF_C_CONTIGUOUS) < 0) {
            release(a);
            return -1;
        }
        a->held = i + 1;
        if (a->t[i].len % item_size[i]) {
            PyErr_Format(PyExc_ValueError, "table %d: not a whole number of items", i);
            release(a);
            return -1;
        }
        a->n[i] = a->t[i].len / item_size[i];
    }
    a->geo = a->n[T_G_STARTS] > 0;
    if (a->n[T_OUTCOMES] != 5 * CASES || a->n[T_SITE] % 2 || a->n[T_PRIVATE] % 2 ||
        pack_spans(a, T_S_FIRST, &a->nets, "network") < 0 ||
        a->n[T_V_KEYS] != a->n[T_V_FIRST] ||
        pack_spans(a, T_V_FIRST, &a->vnis, "VNI") < 0 || check_levels(a) < 0 ||
        a->n[T_G_ENDS] != a->n[T_G_STARTS] || a->n[T_G_COUNTRY] != a->n[T_G_STARTS] ||
        a->n[T_G_CROSS] != a->n[T_G_STARTS] || a->n[T_G_ASN] != a->n[T_G_STARTS]) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "inconsistent tables");
        release(a);
        return -1;
    }
    return 0;
}

static void attributor_dealloc(Attributor *a) {
    release(a);
    Py_TYPE(a)->tp_free((PyObject *)a);
}

/* ------------------------------------------------------------------ solving */

typedef struct {
    const int64_t *micros;
    const uint8_t *has_ts, *orig_ok, *resp_ok, *overlay;  /* NULL: all set (overlay: none) */
    const int64_t *vni;
    const uint64_t *b_orig, *b_resp;
    const strings *orig, *resp;
    int64_t *tenant, *country, *asn, *cross, *number;
    int8_t *how, *direction, *remote, *reason;
    uint8_t *has_asn, *other;
    uint64_t *addr;
} batch_t;

/* Country, AS number and cross-border of the remote address x, from the geo table
 * (private: x is a private or reserved address, never looked up). */
static inline void geo_of(const Attributor *a, uint64_t x, int private, int64_t *country,
                          int64_t *asn, int64_t *cross) {
    *country = -1;
    *asn = -1;
    *cross = -1;
    if (private) return;
    const uint64_t *starts = a->t[T_G_STARTS].buf, *ends = a->t[T_G_ENDS].buf;
    Py_ssize_t i = upper_bound_u64(starts, a->n[T_G_STARTS], x) - 1;
    if (i < 0 || x > ends[i]) return;
    *country = ((const int64_t *)a->t[T_G_COUNTRY].buf)[i];
    *asn = ((const int64_t *)a->t[T_G_ASN].buf)[i];
    *cross = ((const int64_t *)a->t[T_G_CROSS].buf)[i];
}

static Py_ssize_t solve_rows(const Attributor *a, const batch_t *b, Py_ssize_t n) {
    const int8_t *outcomes = a->t[T_OUTCOMES].buf;
    const uint64_t *site = a->t[T_SITE].buf, *private = a->t[T_PRIVATE].buf;
    Py_ssize_t n_site = a->n[T_SITE], n_private = a->n[T_PRIVATE], others = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        int timed = b->has_ts ? b->has_ts[i] : 1;
        int64_t us = b->micros[i];
        int64_t x_o = -1, x_r = -1;
        const strings *so = b->orig, *sr = b->resp;
        b->other[i] = 0;
        b->addr[i] = 0;
        b->number[i] = -1;
        b->country[i] = -1;
        b->asn[i] = 0;
        b->has_asn[i] = 0;
        b->cross[i] = -1;
        if (timed) {
            if (!b->orig_ok || b->orig_ok[i])
                x_o = dotted_quad(so->d + so->o[i], (size_t)(so->o[i + 1] - so->o[i]));
            if (!b->resp_ok || b->resp_ok[i])
                x_r = dotted_quad(sr->d + sr->o[i], (size_t)(sr->o[i + 1] - sr->o[i]));
            if (x_o < 0 || x_r < 0 || us >= EXACT_US || us <= -EXACT_US) {
                b->other[i] = 1;
                b->tenant[i] = -1;
                others++;
                continue;
            }
        }
        int case_ = 0, overlay = 0, f_o = 0, f_r = 0;
        if (timed) {
            double t = (double)us / 1e6;
            overlay = b->overlay ? b->overlay[i] : 0;
            f_o = VALID | (in_bounds(site, n_site, (uint64_t)x_o) ? SITE : 0) |
                  (in_bounds(private, n_private, (uint64_t)x_o) ? PRIVATE : 0);
            f_r = VALID | (in_bounds(site, n_site, (uint64_t)x_r) ? SITE : 0) |
                  (in_bounds(private, n_private, (uint64_t)x_r) ? PRIVATE : 0);
            int64_t own_o = address_owner(a, (uint64_t)x_o, t);
            int64_t own_r = address_owner(a, (uint64_t)x_r, t);
            int64_t v_owner = overlay ? vni_owner(a, b->vni[i], t) : -1;
            int inside = overlay ? SITE | PRIVATE : SITE;
            int64_t o_t = overlay ? v_owner : own_o, r_t = overlay ? v_owner : own_r;
            uint64_t bo = b->b_orig[i], br = b->b_resp[i];
            case_ = 1 | 2 | overlay << 2 | (v_owner >= 0) << 3 |
                    (own_o >= 0 || (f_o & inside)) << 4 | (own_r >= 0 || (f_r & inside)) << 5 |
                    (o_t >= 0) << 6 | (r_t >= 0) << 7 | (o_t == r_t) << 8 | (bo > br) << 9 |
                    (bo < br) << 10;
            int source = outcomes[case_];
            b->tenant[i] = source == FROM_ORIG ? o_t : source == FROM_RESP ? r_t : -1;
        } else {
            b->tenant[i] = -1;
        }
        int remote = outcomes[CASES + case_];
        b->remote[i] = (int8_t)remote;
        b->direction[i] = outcomes[2 * CASES + case_];
        b->reason[i] = outcomes[3 * CASES + case_];
        b->how[i] = outcomes[4 * CASES + case_];
        if (a->geo && b->direction[i] == D_INTERNAL) b->cross[i] = 0;
        if (remote < 0) continue;
        const strings *s = remote == 1 ? so : sr;
        int64_t x = remote == 1 ? x_o : x_r;
        b->number[i] = x;
        b->addr[i] = hash_bytes(s->d + s->o[i], (size_t)(s->o[i + 1] - s->o[i]));
        if (!a->geo) continue;
        int64_t country, asn, cross;
        geo_of(a, (uint64_t)x, ((remote == 1 ? f_o : f_r) & PRIVATE) != 0, &country, &asn,
               &cross);
        b->country[i] = country;
        b->has_asn[i] = asn >= 0;
        b->asn[i] = asn >= 0 ? asn : 0;
        if (b->direction[i] != D_INTERNAL) b->cross[i] = cross;
    }
    return others;
}

/* A writable or readable buffer of exactly n items of size bytes; NULL None allowed. */
static int column(PyObject *o, Py_buffer *b, Py_ssize_t size, Py_ssize_t n, int writable,
                  const char *name) {
    b->obj = NULL;
    b->buf = NULL;
    if (o == Py_None) return 0;
    if (PyObject_GetBuffer(o, b, PyBUF_C_CONTIGUOUS | (writable ? PyBUF_WRITABLE : 0)) < 0)
        return -1;
    if (b->len != size * n) {
        PyErr_Format(PyExc_ValueError, "%s: %zd bytes, expected %zd", name, b->len, size * n);
        PyBuffer_Release(b);
        b->obj = NULL;
        return -1;
    }
    return 0;
}

enum {
    IN_MICROS, IN_HAS_TS, IN_ORIG_OK, IN_RESP_OK, IN_OVERLAY, IN_VNI, IN_B_ORIG, IN_B_RESP,
    OUT_TENANT, OUT_HOW, OUT_DIRECTION, OUT_REMOTE, OUT_REASON, OUT_COUNTRY, OUT_ASN,
    OUT_HAS_ASN, OUT_CROSS, OUT_ADDR, OUT_NUMBER, OUT_OTHER, N_COLUMNS
};

static const struct { Py_ssize_t size; int writable, optional; const char *name; }
columns[N_COLUMNS] = {
    {8, 0, 0, "micros"}, {1, 0, 1, "has_ts"}, {1, 0, 1, "orig_ok"}, {1, 0, 1, "resp_ok"},
    {1, 0, 1, "overlay"}, {8, 0, 0, "vni"}, {8, 0, 0, "bytes_orig"}, {8, 0, 0, "bytes_resp"},
    {8, 1, 0, "tenant"}, {1, 1, 0, "how"}, {1, 1, 0, "direction"}, {1, 1, 0, "remote"},
    {1, 1, 0, "reason"}, {8, 1, 0, "country"}, {8, 1, 0, "asn"}, {1, 1, 0, "has_asn"},
    {8, 1, 0, "cross"}, {8, 1, 0, "addr"}, {8, 1, 0, "number"}, {1, 1, 0, "other"},
};

static PyObject *attributor_solve(Attributor *a, PyObject *args) {
    PyObject *orig_o, *resp_o, *cols_o;
    if (!PyArg_ParseTuple(args, "O!O!O!", &PyTuple_Type, &orig_o, &PyTuple_Type, &resp_o,
                          &PyTuple_Type, &cols_o))
        return NULL;
    if (!a->held) {
        PyErr_SetString(PyExc_ValueError, "Ipv4Attributor not initialised");
        return NULL;
    }
    if (PyTuple_GET_SIZE(cols_o) != N_COLUMNS) {
        PyErr_Format(PyExc_ValueError, "expected %d columns", N_COLUMNS);
        return NULL;
    }
    strings orig, resp;
    if (strings_open(orig_o, &orig) < 0) return NULL;
    if (strings_open(resp_o, &resp) < 0) {
        strings_close(&orig);
        return NULL;
    }
    Py_ssize_t n = orig.length, others = -1;
    Py_buffer buf[N_COLUMNS];
    int held = 0;
    if (resp.length != n) {
        PyErr_SetString(PyExc_ValueError, "address columns of different lengths");
        goto done;
    }
    for (; held < N_COLUMNS; held++) {
        PyObject *o = PyTuple_GET_ITEM(cols_o, held);
        if (o == Py_None && !columns[held].optional) {
            PyErr_Format(PyExc_ValueError, "%s missing", columns[held].name);
            goto done;
        }
        if (column(o, &buf[held], columns[held].size, n, columns[held].writable,
                   columns[held].name) < 0)
            goto done;
    }
    batch_t b = {
        .micros = buf[IN_MICROS].buf, .has_ts = buf[IN_HAS_TS].buf,
        .orig_ok = buf[IN_ORIG_OK].buf, .resp_ok = buf[IN_RESP_OK].buf,
        .overlay = buf[IN_OVERLAY].buf, .vni = buf[IN_VNI].buf, .b_orig = buf[IN_B_ORIG].buf,
        .b_resp = buf[IN_B_RESP].buf, .orig = &orig, .resp = &resp,
        .tenant = buf[OUT_TENANT].buf, .how = buf[OUT_HOW].buf,
        .direction = buf[OUT_DIRECTION].buf, .remote = buf[OUT_REMOTE].buf,
        .reason = buf[OUT_REASON].buf, .country = buf[OUT_COUNTRY].buf,
        .asn = buf[OUT_ASN].buf, .has_asn = buf[OUT_HAS_ASN].buf, .cross = buf[OUT_CROSS].buf,
        .addr = buf[OUT_ADDR].buf, .number = buf[OUT_NUMBER].buf, .other = buf[OUT_OTHER].buf,
    };
    Py_BEGIN_ALLOW_THREADS
    others = solve_rows(a, &b, n);
    Py_END_ALLOW_THREADS
done:
    for (int i = 0; i < held; i++)
        if (buf[i].obj) PyBuffer_Release(&buf[i]);
    strings_close(&orig);
    strings_close(&resp);
    return others < 0 ? NULL : PyLong_FromSsize_t(others);
}

static PyMethodDef attributor_methods[] = {
    {"solve", (PyCFunction)attributor_solve, METH_VARARGS,
     PyDoc_STR("solve(orig, resp, columns) -> int: rows left to the caller. orig, resp: "
               "(offsets, data, offset, length) of the address columns; columns: micros, "
               "has_ts, orig_ok, resp_ok, overlay (bool or None), vni (int64), bytes_orig, "
               "bytes_resp (uint64), then the outputs tenant, how, direction, remote, reason, "
               "country, asn, has_asn, cross, addr, number, other")},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject AttributorType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "egress._wincore.Ipv4Attributor",
    .tp_doc = PyDoc_STR("Ipv4Attributor(tables): the attribution of conn rows with dotted-quad "
                        "addresses (see attribution_batch.py for the tables)."),
    .tp_basicsize = sizeof(Attributor),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)attributor_init,
    .tp_dealloc = (destructor)attributor_dealloc,
    .tp_methods = attributor_methods,
};

/* ------------------------------------------------------------------ network rows */

enum {
    N_TENANT, N_REMOTE, N_DIRECTION, N_CROSS, N_COUNTRY, N_ADDR, N_ASN, N_HAS_ASN,
    N_D_ORIG, N_D_RESP, N_MARKED,
    NO_TENANT, NO_BYTES_IN, NO_BYTES_OUT, NO_FLAGS, NO_QUALITY, NO_COUNTRY, NO_ADDR, NO_ASN,
    N_NETWORK
};

static const struct { Py_ssize_t size; int writable; const char *name; }
network_columns[N_NETWORK] = {
    {8, 0, "tenant"}, {1, 0, "remote"}, {1, 0, "direction"}, {8, 0, "cross"},
    {8, 0, "country"}, {8, 0, "addr"}, {8, 0, "asn"}, {1, 0, "has_asn"}, {8, 0, "bytes_orig"},
    {8, 0, "bytes_resp"}, {1, 0, "marked"},
    {8, 1, "tenant out"}, {8, 1, "bytes_in"}, {8, 1, "bytes_out"}, {1, 1, "flags"},
    {1, 1, "quality"}, {8, 1, "country out"}, {8, 1, "addr out"}, {8, 1, "asn out"},
};

/* network_rows(rows, flags, columns): the network transfer columns of the kept rows, one
 * pass (see network_doc). */
static PyObject *network_rows(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *rows_o, *flags_o, *cols_o;
    if (!PyArg_ParseTuple(args, "OOO!", &rows_o, &flags_o, &PyTuple_Type, &cols_o)) return NULL;
    if (PyTuple_GET_SIZE(cols_o) != N_NETWORK) {
        PyErr_Format(PyExc_ValueError, "expected %d columns", N_NETWORK);
        return NULL;
    }
    Py_buffer rows, flags, buf[N_NETWORK];
    int held = 0, ok = 0, have_flags = 0;
    if (PyObject_GetBuffer(rows_o, &rows, PyBUF_C_CONTIGUOUS) < 0) return NULL;
    Py_ssize_t m = rows.len / 8, n = -1;
    if (rows.len % 8) {
        PyErr_SetString(PyExc_ValueError, "rows: not int64");
        goto done;
    }
    if (PyObject_GetBuffer(flags_o, &flags, PyBUF_C_CONTIGUOUS) < 0) goto done;
    have_flags = 1;
    if (flags.len != 32) {
        PyErr_SetString(PyExc_ValueError, "flags: expected 32 bytes");
        goto done;
    }
    for (; held < N_NETWORK; held++) {
        PyObject *o = PyTuple_GET_ITEM(cols_o, held);
        int out = network_columns[held].writable;
        if (PyObject_GetBuffer(o, &buf[held], PyBUF_C_CONTIGUOUS | (out ? PyBUF_WRITABLE : 0)) < 0)
            goto done;
        Py_ssize_t items = buf[held].len / network_columns[held].size;
        if (n < 0 && !out) n = items;
        if (buf[held].len % network_columns[held].size || items != (out ? m : n)) {
            PyErr_Format(PyExc_ValueError, "%s: wrong length", network_columns[held].name);
            held++;
            goto done;
        }
    }
    const int64_t *r = rows.buf;
    for (Py_ssize_t j = 0; j < m; j++) {
        if (r[j] < 0 || r[j] >= n) {
            PyErr_Format(PyExc_IndexError, "row %lld out of range", (long long)r[j]);
            goto done;
        }
    }
    const int64_t *tenant = buf[N_TENANT].buf, *cross = buf[N_CROSS].buf;
    const int64_t *country = buf[N_COUNTRY].buf, *asn = buf[N_ASN].buf;
    const int8_t *remote = buf[N_REMOTE].buf, *direction = buf[N_DIRECTION].buf;
    const uint8_t *has_asn = buf[N_HAS_ASN].buf, *marked = buf[N_MARKED].buf;
    const uint8_t *table = flags.buf;
    const uint64_t *addr = buf[N_ADDR].buf, *d_orig = buf[N_D_ORIG].buf;
    const uint64_t *d_resp = buf[N_D_RESP].buf;
    int64_t *o_tenant = buf[NO_TENANT].buf, *o_country = buf[NO_COUNTRY].buf;
    int64_t *o_asn = buf[NO_ASN].buf;
    uint64_t *o_in = buf[NO_BYTES_IN].buf, *o_out = buf[NO_BYTES_OUT].buf;
    uint64_t *o_addr = buf[NO_ADDR].buf;
    uint8_t *o_flags = buf[NO_FLAGS].buf, *o_quality = buf[NO_QUALITY].buf;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t j = 0; j < m; j++) {
        /* without branches on the data: masks of all ones or zeros */
        int64_t i = r[j];
        int has_remote = remote[i] >= 0, known = has_asn[i] != 0, quality = marked[i] != 0;
        uint64_t swap = -(uint64_t)(remote[i] == 0), far = -(uint64_t)has_remote;
        uint64_t bo = d_orig[i], br = d_resp[i];
        o_tenant[j] = tenant[i];
        o_in[j] = (br & swap) | (bo & ~swap);
        o_out[j] = (bo & swap) | (br & ~swap);
        o_flags[j] = table[(direction[i] == D_INTERNAL) | has_remote << 1 |
                           (has_remote & (cross[i] == 1)) << 2 | quality << 3 | known << 4];
        o_quality[j] = (uint8_t)quality;
        o_country[j] = (int64_t)(((uint64_t)country[i] & far) | ~far);  /* -1 without */
        o_addr[j] = addr[i] & far;
        o_asn[j] = (int64_t)((uint64_t)asn[i] & -(uint64_t)known);
    }
    Py_END_ALLOW_THREADS
    ok = 1;
done:
    for (int k = 0; k < held; k++) PyBuffer_Release(&buf[k]);
    if (have_flags) PyBuffer_Release(&flags);
    PyBuffer_Release(&rows);
    if (!ok) return NULL;
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------------ quality marks */

enum { Q_ORIG_IP, Q_RESP_IP, Q_MISSED, Q_ORIG, Q_RESP, Q_ORIG_PKTS, Q_RESP_PKTS, Q_COUNT };

/* One direction's payload_exceeds_ip or payload_far_below_ip (quality.batch_marked). */
static inline int direction_marked(uint64_t payload, int payload_set, uint64_t ip, int ip_set,
                                   uint64_t pkts, int pkts_set, double header,
                                   double fraction, double min_gap) {
    if (!(payload_set && ip_set)) return 0;
    if (payload > ip) return 1;
    if (!pkts_set || (double)ip < min_gap) return 0;
    double gap = (double)ip - (double)pkts * header, p = (double)payload;
    return p < gap * fraction && gap - p >= min_gap;
}

/* quality_marked(values, valid, rules, out): see the method table. */
static PyObject *quality_marked(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *values_o, *valid_o, *out_o;
    double header, fraction, min_gap;
    if (!PyArg_ParseTuple(args, "O!O!(ddd)O", &PyTuple_Type, &values_o, &PyTuple_Type,
                          &valid_o, &header, &fraction, &min_gap, &out_o))
        return NULL;
    if (PyTuple_GET_SIZE(values_o) != Q_COUNT || PyTuple_GET_SIZE(valid_o) != Q_COUNT) {
        PyErr_Format(PyExc_ValueError, "expected %d columns", Q_COUNT);
        return NULL;
    }
    Py_buffer out, values[Q_COUNT], valid[Q_COUNT];
    int held = 0, ok = 0;
    if (PyObject_GetBuffer(out_o, &out, PyBUF_C_CONTIGUOUS | PyBUF_WRITABLE) < 0) return NULL;
    Py_ssize_t n = out.len;
    for (; held < Q_COUNT; held++) {
        valid[held].obj = NULL;
        if (column(PyTuple_GET_ITEM(values_o, held), &values[held], 8, n, 0, "values") < 0)
            goto done;
        if (values[held].obj == NULL) {
            PyErr_SetString(PyExc_ValueError, "values: None");
            held++;
            goto done;
        }
        if (column(PyTuple_GET_ITEM(valid_o, held), &valid[held], 1, n, 0, "valid") < 0) {
            held++;
            goto done;
        }
    }
    const uint64_t *v[Q_COUNT];
    const uint8_t *set[Q_COUNT];
    for (int k = 0; k < Q_COUNT; k++) {
        v[k] = values[k].buf;
        set[k] = valid[k].buf;  /* NULL: all set */
    }
    uint8_t *marked = out.buf;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < n; i++) {
        int s[Q_COUNT];
        for (int k = 0; k < Q_COUNT; k++) s[k] = set[k] ? set[k][i] != 0 : 1;
        marked[i] = (uint8_t)(
            !(s[Q_ORIG_IP] && s[Q_RESP_IP]) || v[Q_MISSED][i] > 0 ||
            direction_marked(v[Q_ORIG][i], s[Q_ORIG], v[Q_ORIG_IP][i], s[Q_ORIG_IP],
                             v[Q_ORIG_PKTS][i], s[Q_ORIG_PKTS], header, fraction, min_gap) ||
            direction_marked(v[Q_RESP][i], s[Q_RESP], v[Q_RESP_IP][i], s[Q_RESP_IP],
                             v[Q_RESP_PKTS][i], s[Q_RESP_PKTS], header, fraction, min_gap));
    }
    Py_END_ALLOW_THREADS
    ok = 1;
done:
    for (int k = 0; k < held; k++) {
        if (values[k].obj) PyBuffer_Release(&values[k]);
        if (valid[k].obj) PyBuffer_Release(&valid[k]);
    }
    PyBuffer_Release(&out);
    if (!ok) return NULL;
    Py_RETURN_NONE;
}

static PyMethodDef network_methods[] = {
    {"network_rows", network_rows, METH_VARARGS,
     PyDoc_STR("network_rows(rows, flags, columns) -> None: the network transfer columns of "
               "the kept rows (int64 positions), in one pass. columns: of every row tenant, "
               "remote, direction, cross, country, addr, asn, has_asn (a ConnSolution), "
               "bytes_orig, bytes_resp (uint64), marked (bool); then, written for each kept "
               "row, tenant, bytes_in, bytes_out (swapped where the responder is remote), "
               "flags (flags[internal | has_remote << 1 | cross_border << 2 | quality << 3 | "
               "has_asn << 4], 32 uint8), quality, country (-1 without a remote end), addr "
               "(0 without), asn (0 unknown)")},
    {"quality_marked", quality_marked, METH_VARARGS,
     PyDoc_STR("quality_marked(values, valid, rules, out) -> None: which conn rows carry a "
               "quality mark (egress.quality.batch_marked). values: orig_ip_bytes, "
               "resp_ip_bytes, missed_bytes, orig_bytes, resp_bytes, orig_pkts, resp_pkts "
               "(uint64, null 0); valid: which are set, each bool or None (all); rules: "
               "(header bytes per packet, far-below fraction, least gap); out: bool")},
    {NULL, NULL, 0, NULL},
};

int attrib_register(PyObject *module) {
    if (PyModule_AddFunctions(module, network_methods) < 0) return -1;
    if (PyType_Ready(&AttributorType) < 0) return -1;
    Py_INCREF(&AttributorType);
    if (PyModule_AddObject(module, "Ipv4Attributor", (PyObject *)&AttributorType) < 0) {
        Py_DECREF(&AttributorType);
        return -1;
    }
    return 0;
}
