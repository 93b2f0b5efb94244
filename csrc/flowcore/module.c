/* module.c: the Python type that drives the engine. */
#include "engine.h"
#include <math.h>

/* ------------------------------------------------------------------ Python type */

const char *ISSUE_NAMES[NISSUES] = {
    "truncated_record", "bad_record_length", "unknown_link_type", "bad_block",
    "truncated_packet", "bad_ip_header", "non_ip", "orphan_fragment", "bad_tunnel_header",
    "unknown_block_skipped", "packet_without_interface", "ip_length_exceeds_frame",
    "bad_tcp_header", "incomplete_fragmented_datagram", "timestamp_went_backwards",
    "packet_without_timestamp",
};

static int fill_ports(uint8_t *set, Py_buffer *buf) {
    memset(set, 0, 8192);
    if (!buf->buf) return 0;
    const uint16_t *pp = buf->buf;
    for (Py_ssize_t i = 0; i < buf->len / 2; i++) set[pp[i] >> 3] |= (uint8_t)(1 << (pp[i] & 7));
    return 0;
}

static int seconds_to_ns(double s, int64_t *out, const char *name) {
    /* up to ten years; NaN and infinities are refused (the cast would be undefined) */
    if (!isfinite(s) || s < 0 || s > 315576000.0) {
        PyErr_Format(PyExc_ValueError, "%s must be a finite number of seconds, at most ten years", name);
        return -1;
    }
    *out = (int64_t)(s * 1e9);
    return 0;
}

static int Engine_init(Engine *e, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"tcp_timeout", "udp_timeout", "icmp_timeout", "other_timeout",
                             "long_tcp_timeout", "close_delay", "attempt_delay", "interim_interval",
                             "tcp_server_ports", "udp_server_ports", "dns_ports",
                             "record_type", "record_fields", NULL};
    double tcp = 300, udp = 60, icmp = 60, other = 60, long_tcp = 3600, close_delay = 5, attempt = 5,
           interim = 0;
    Py_buffer ptcp = {0}, pudp = {0}, pdns = {0};
    PyObject *rtype = NULL, *rfields = NULL;
    int rc = -1;
    if (e->flows) { PyErr_SetString(PyExc_RuntimeError, "Engine is already initialised"); return -1; }
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|$ddddddddy*y*y*OO", kwlist, &tcp, &udp, &icmp, &other,
                                     &long_tcp, &close_delay, &attempt, &interim, &ptcp, &pudp, &pdns,
                                     &rtype, &rfields))
        return -1;
    if (seconds_to_ns(tcp, &e->tcp_timeout_ns, "tcp_timeout") < 0 ||
        seconds_to_ns(udp, &e->udp_timeout_ns, "udp_timeout") < 0 ||
        seconds_to_ns(icmp, &e->icmp_timeout_ns, "icmp_timeout") < 0 ||
        seconds_to_ns(other, &e->other_timeout_ns, "other_timeout") < 0 ||
        seconds_to_ns(long_tcp, &e->long_tcp_timeout_ns, "long_tcp_timeout") < 0 ||
        seconds_to_ns(close_delay, &e->close_delay_ns, "close_delay") < 0 ||
        seconds_to_ns(attempt, &e->attempt_delay_ns, "attempt_delay") < 0 ||
        seconds_to_ns(interim, &e->interim_ns, "interim_interval") < 0)
        goto done;
    if (rtype && rtype != Py_None) {
        /* records are built through the type's member descriptors, in field order */
        if (!PyType_Check(rtype) || !rfields || !PyTuple_Check(rfields) || PyTuple_GET_SIZE(rfields) != 23) {
            PyErr_SetString(PyExc_TypeError, "record_type needs record_fields: a tuple of its 23 field names");
            goto done;
        }
        for (Py_ssize_t i = 0; i < 23; i++) {
            PyObject *d = PyObject_GetAttr(rtype, PyTuple_GET_ITEM(rfields, i));
            if (!d) goto done;
            if (!Py_TYPE(d)->tp_descr_set) {
                Py_DECREF(d);
                PyErr_SetString(PyExc_TypeError, "record fields must be slots");
                goto done;
            }
            int off = fc_record_slot_offset((PyTypeObject *)rtype, d);
            e->record_off[e->nslots] = off > 0 ? off : 0;
            e->record_slots[e->nslots++] = d;
        }
        Py_INCREF(rtype);
        e->record_type = (PyTypeObject *)rtype;
    }
    fill_ports(e->lsp_tcp, &ptcp); fill_ports(e->lsp_udp, &pudp); fill_ports(e->dns_ports, &pdns);
    e->now_ns = INT64_MIN;
    e->out = PyList_New(0);
    if (!e->out) goto done;
    rc = fc_conn_init(e);
done:
    if (ptcp.buf) PyBuffer_Release(&ptcp);
    if (pudp.buf) PyBuffer_Release(&pudp);
    if (pdns.buf) PyBuffer_Release(&pdns);
    if (rc < 0) {  /* leave nothing half-made behind */
        for (int i = 0; i < e->nslots; i++) Py_CLEAR(e->record_slots[i]);
        e->nslots = 0;
        Py_CLEAR(e->record_type);
    }
    return rc;
}

static int ready(Engine *e) {
    if (e->out && e->flows) return 1;
    PyErr_SetString(PyExc_RuntimeError, "Engine is not initialised");
    return 0;
}

static void Engine_dealloc(Engine *e) {
    fc_map_close(e);
    fc_conn_free(e);
    for (int i = 0; i < e->nslots; i++) Py_XDECREF(e->record_slots[i]);
    Py_XDECREF(e->record_type);
    Py_XDECREF(e->out);
    Py_TYPE(e)->tp_free((PyObject *)e);
}

static PyObject *Engine_begin_file(Engine *e, PyObject *noargs) {
    (void)noargs;
    if (!ready(e)) return NULL;
    fc_map_close(e);
    e->fmt = 0; e->nif = 0; e->file_offset = 0; e->err = 0; e->errmsg[0] = 0;
    memset(e->issues, 0, sizeof e->issues);  /* issues are reported per file */
    Py_RETURN_NONE;
}

/* Parse complete records of b[0:n]; returns bytes consumed, or -1 with a Python
 * error set. A fatal format error sets e->err and ends the file. */
static Py_ssize_t feed_bytes(Engine *e, const uint8_t *b, Py_ssize_t n, int final) {
    Py_ssize_t o = 0;
    if (e->err) return 0;
    fc_table_settle(e);
    if (e->fmt == 0) {
        if (n < 4) {
            if (final) {
                if (n == 0 && e->file_offset == 0) fc_set_error(e, 0, "empty file");
                else fc_set_error(e, e->file_offset, "file too short for a capture header");
            }
            return 0;
        }
        uint32_t m; memcpy(&m, b, 4);
        if (m == 0x0A0D0D0A) e->fmt = 2;
        else {
            Py_ssize_t c = fc_pcap_header(e, b, n);
            if (c < 0) return 0;
            if (c == 0) {
                if (final) fc_set_error(e, e->file_offset, "file too short for a pcap header");
                return 0;
            }
            o = c;
        }
    }
    e->file_offset += o;        /* record offsets below count the file header */
    Py_ssize_t c;
    if (e->fmt == 1) c = fc_feed_pcap(e, b + o, n - o, final);
    else c = fc_feed_pcapng(e, b + o, n - o, final);
    if (c < 0) return PyErr_Occurred() ? -1 : o;
    e->file_offset += c;
    return o + c;
}

/* feed(buffer, final) -> bytes consumed. A fatal format error sets .error. */
static PyObject *Engine_feed(Engine *e, PyObject *args) {
    Py_buffer buf; int final = 0;
    if (!ready(e)) return NULL;
    if (!PyArg_ParseTuple(args, "y*|p", &buf, &final)) return NULL;
    Py_ssize_t c = feed_bytes(e, buf.buf, buf.len, final);
    PyBuffer_Release(&buf);
    return c < 0 ? NULL : PyLong_FromSsize_t(c);
}

/* feed_fd(fd, offset, length, final) -> bytes consumed: feed() on the bytes
 * [offset, offset + length) of a regular file, read through the engine's own
 * mapping (see capture.c). The file is mapped at the first call after
 * begin_file() and unmapped after the final window or a fatal format error.
 * OSError if the file cannot be mapped. */
static PyObject *Engine_feed_fd(Engine *e, PyObject *args) {
    int fd, final = 0; long long offset, length;
    if (!ready(e)) return NULL;
    if (!PyArg_ParseTuple(args, "iLL|p", &fd, &offset, &length, &final)) return NULL;
    if (e->err) return PyLong_FromSsize_t(0);
    if (e->fmap && !fc_map_is(e, fd)) fc_map_close(e);
    if (!e->fmap && fc_map_open(e, fd) < 0) return PyErr_SetFromErrno(PyExc_OSError);
    int64_t size;
    const uint8_t *b = fc_map_window(e, offset, length, &size);
    if (!b) {
        PyErr_Format(PyExc_ValueError, "window %lld+%lld is outside the mapped file (%lld bytes)",
                     offset, length, (long long)size);
        return NULL;
    }
    Py_ssize_t c = feed_bytes(e, b, (Py_ssize_t)length, final);
    if (final || e->err || c < 0) fc_map_close(e);
    return c < 0 ? NULL : PyLong_FromSsize_t(c);
}

static PyObject *Engine_take(Engine *e, PyObject *noargs) {
    (void)noargs;
    if (!ready(e)) return NULL;
    PyObject *r = e->out;
    e->out = PyList_New(0);
    if (!e->out) { e->out = r; return NULL; }
    return r;
}

static PyObject *Engine_flush(Engine *e, PyObject *args) {
    Py_ssize_t max_records = PY_SSIZE_T_MAX; int done = 0;
    if (!ready(e)) return NULL;
    if (!PyArg_ParseTuple(args, "|n", &max_records)) return NULL;
    if (fc_flush(e, max_records, &done) < 0) return NULL;
    return PyBool_FromLong(done);
}

static PyObject *Engine_stats(Engine *e, PyObject *noargs) {
    (void)noargs;
    if (!ready(e)) return NULL;
    PyObject *iss = PyDict_New();
    if (!iss) return NULL;
    for (int i = 0; i < NISSUES; i++) {
        if (!e->issues[i]) continue;
        PyObject *v = Py_BuildValue("(KL)", (unsigned long long)e->issues[i], (long long)e->issue_first[i]);
        if (!v || PyDict_SetItemString(iss, ISSUE_NAMES[i], v) < 0) { Py_XDECREF(v); Py_DECREF(iss); return NULL; }
        Py_DECREF(v);
    }
    return Py_BuildValue("{sKsKsKsKsKsKsisN}", "packets", (unsigned long long)e->packets,
                         "captured_bytes", (unsigned long long)e->captured_bytes,
                         "ip_packets", (unsigned long long)e->ip_packets,
                         "ip_bytes", (unsigned long long)e->ip_bytes,
                         "flows", (unsigned long long)e->flows_done,
                         "interim_records", (unsigned long long)e->interims,
                         "open_flows", (int)e->live, "issues", iss);  /* of the current file */
}

static PyObject *Engine_error(Engine *e, void *closure) {
    (void)closure;
    if (!e->err) Py_RETURN_NONE;
    return Py_BuildValue("(sL)", e->errmsg, (long long)e->err_offset);
}

static PyMethodDef Engine_methods[] = {
    {"begin_file", (PyCFunction)Engine_begin_file, METH_NOARGS, "Reset the format state for a new file."},
    {"feed", (PyCFunction)Engine_feed, METH_VARARGS, "Parse complete records from a buffer; return bytes consumed."},
    {"feed_fd", (PyCFunction)Engine_feed_fd, METH_VARARGS, "Parse complete records of a window of a regular file; return bytes consumed."},
    {"take", (PyCFunction)Engine_take, METH_NOARGS, "Return and clear the finished and interim flow tuples."},
    {"flush", (PyCFunction)Engine_flush, METH_VARARGS, "End open flows, oldest first, at most N per call; True when none is left."},
    {"stats", (PyCFunction)Engine_stats, METH_NOARGS, "Counters and issues as a dict."},
    {NULL, NULL, 0, NULL}
};

static PyGetSetDef Engine_getset[] = {
    {"error", (getter)Engine_error, NULL, "(message, byte offset) of a fatal format error, or None", NULL},
    {NULL, NULL, NULL, NULL, NULL}
};

static PyTypeObject EngineType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "egress._flowcore.Engine",
    .tp_basicsize = sizeof(Engine),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Engine_init,
    .tp_dealloc = (destructor)Engine_dealloc,
    .tp_methods = Engine_methods,
    .tp_getset = Engine_getset,
    .tp_doc = "Capture parser and flow table (see egress.sources.pcap).",
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT, "_flowcore", "Compiled capture parser and flow engine.", -1, NULL,
    NULL, NULL, NULL, NULL
};

PyMODINIT_FUNC PyInit__flowcore(void) {
    if (PyType_Ready(&EngineType) < 0 || fc_record_init() < 0) return NULL;
    PyObject *m = PyModule_Create(&moduledef);
    if (!m) return NULL;
    Py_INCREF(&EngineType);
    if (PyModule_AddObject(m, "Engine", (PyObject *)&EngineType) < 0) { Py_DECREF(&EngineType); Py_DECREF(m); return NULL; }
    return m;
}
