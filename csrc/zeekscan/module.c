/* module.c: egress._zeekscan, the Python face of the Zeek log scanners (tsv.c, json.c).
 *
 * scan_tsv() and scan_json() parse a run of complete lines with the GIL released and return the
 * columns as Buffer objects (malloc'd memory exposed through the buffer protocol) that
 * pyarrow.Array.from_buffers wraps without copying.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "scan.h"

/* ------------------------------------------------------------------ Buffer */

typedef struct {
    PyObject_HEAD
    uint8_t *p;
    Py_ssize_t len;
    size_t cap; /* bytes allocated (zs_mem_get) */
    Py_ssize_t exports;
} Buffer;

static void Buffer_dealloc(Buffer *b) {
    zs_mem_put(b->p, b->cap);
    Py_TYPE(b)->tp_free((PyObject *)b);
}

static int Buffer_getbuffer(Buffer *b, Py_buffer *view, int flags) {
    if (PyBuffer_FillInfo(view, (PyObject *)b, b->p, b->len, 1, flags) < 0) return -1;
    b->exports++;
    return 0;
}

static void Buffer_releasebuffer(Buffer *b, Py_buffer *view) {
    (void)view;
    b->exports--;
}

static Py_ssize_t Buffer_length(Buffer *b) { return b->len; }

static PyBufferProcs Buffer_as_buffer = {
    (getbufferproc)Buffer_getbuffer,
    (releasebufferproc)Buffer_releasebuffer,
};

static PySequenceMethods Buffer_as_sequence = {.sq_length = (lenfunc)Buffer_length};

static PyTypeObject BufferType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "egress._zeekscan.Buffer",
    .tp_doc = PyDoc_STR("Read-only memory filled by the scanner (buffer protocol)."),
    .tp_basicsize = sizeof(Buffer),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_dealloc = (destructor)Buffer_dealloc,
    .tp_as_buffer = &Buffer_as_buffer,
    .tp_as_sequence = &Buffer_as_sequence,
};

/* Hand b's memory to a new Buffer (b is left empty); None for an unused buffer. */
static PyObject *wrap(zs_buf *b) {
    if (!b->p) Py_RETURN_NONE;
    Buffer *o = PyObject_New(Buffer, &BufferType);
    if (!o) return NULL;
    o->p = b->p;
    o->len = (Py_ssize_t)b->len;
    o->cap = b->cap;
    o->exports = 0;
    b->p = NULL;
    b->len = b->cap = 0;
    return (PyObject *)o;
}

/* ------------------------------------------------------------------ scan_tsv */

static int read_plan(PyObject *plan, int nfields, zs_column **out, int *ncols) {
    PyObject *seq = PySequence_Fast(plan, "plan must be a sequence");
    if (!seq) return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    if (n > INT_MAX / 2) {
        Py_DECREF(seq);
        PyErr_SetString(PyExc_ValueError, "plan too long");
        return -1;
    }
    zs_column *cols = calloc((size_t)(n ? n : 1), sizeof *cols);
    if (!cols) { Py_DECREF(seq); PyErr_NoMemory(); return -1; }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(seq, i);
        int field, kind, width, digits;
        PyObject *lo, *hi;
        if (!PyArg_ParseTuple(item, "iiiiOO", &field, &kind, &width, &digits, &lo, &hi)) goto fail;
        if (field < 0 || field >= nfields || kind < 0 || kind >= ZK_NKINDS) {
            PyErr_Format(PyExc_ValueError, "bad plan entry %zd", i);
            goto fail;
        }
        zs_column *c = &cols[i];
        c->field = field;
        c->kind = kind;
        c->width = 8;
        if (kind == ZK_UINT || kind == ZK_INT) {
            if (width != 1 && width != 2 && width != 4 && width != 8) {
                PyErr_Format(PyExc_ValueError, "bad width in plan entry %zd", i);
                goto fail;
            }
            c->width = width;
            c->max_digits = digits < 1 ? 1 : (digits > 20 ? 20 : digits);
        }
        if (kind == ZK_UINT) {
            c->umax = PyLong_AsUnsignedLongLong(hi);
            if (PyErr_Occurred()) goto fail;
        } else if (kind == ZK_INT) {
            c->imin = PyLong_AsLongLong(lo);
            c->imax = PyLong_AsLongLong(hi);
            if (PyErr_Occurred()) goto fail;
        }
    }
    Py_DECREF(seq);
    *out = cols;
    *ncols = (int)n;
    return 0;
fail:
    Py_DECREF(seq);
    free(cols);
    return -1;
}

static const char *ISSUE_NAMES[ZI_NISSUES] = {
    "blank_line", "wrong_column_count", "bad_value", "bad_address", "masked_ts", "bad_json",
};

static PyObject *result_of(zs_scan *s) {
    PyObject *cols = PyList_New(s->ncols);
    PyObject *issues = PyDict_New();
    PyObject *lines = NULL, *res = NULL;
    if (!cols || !issues) goto done;
    for (int k = 0; k < s->ncols; k++) {
        zs_column *c = &s->cols[k];
        PyObject *t = Py_BuildValue("(LLNNNNN)", (long long)c->null_count,
                                    (long long)c->elements, wrap(&c->validity), wrap(&c->values),
                                    wrap(&c->offsets), wrap(&c->data), wrap(&c->child_offsets));
        if (!t) goto done;
        PyList_SET_ITEM(cols, k, t);
    }
    for (int i = 0; i < ZI_NISSUES; i++) {
        if (!s->issue_count[i]) continue;
        int64_t kept = s->issue_count[i] < ZS_FIRST_LINES ? s->issue_count[i] : ZS_FIRST_LINES;
        PyObject *first = PyList_New((Py_ssize_t)kept);
        if (!first) goto done;
        for (int64_t j = 0; j < kept; j++) {
            PyObject *v = PyLong_FromLongLong(s->issue_lines[i][j]);
            if (!v) { Py_DECREF(first); goto done; }
            PyList_SET_ITEM(first, (Py_ssize_t)j, v);
        }
        PyObject *entry = Py_BuildValue("(LN)", (long long)s->issue_count[i], first);
        if (!entry || PyDict_SetItemString(issues, ISSUE_NAMES[i], entry) < 0) {
            Py_XDECREF(entry);
            goto done;
        }
        Py_DECREF(entry);
    }
    lines = wrap(&s->lines);
    if (!lines) goto done;
    res = Py_BuildValue("(LOOO)", (long long)s->rows, lines, cols, issues);
done:
    Py_XDECREF(lines);
    Py_XDECREF(cols);
    Py_XDECREF(issues);
    return res;
}

/* What a finished scan gives Python: its columns, None for the slow path, or an error. */
static PyObject *outcome(zs_scan *s) {
    if (s->oom) return PyErr_NoMemory();
    if (s->fallback) return Py_NewRef(Py_None);
    return result_of(s);
}

static PyObject *scan_tsv(PyObject *self, PyObject *args, PyObject *kw) {
    (void)self;
    static char *kwlist[] = {"data", "start", "end", "first_line", "n_lines", "separator",
                             "unset", "empty", "set_separator", "n_fields", "plan", NULL};
    Py_buffer data = {0};
    Py_ssize_t start, end;
    long long first_line, n_lines;
    const char *sep, *unset, *empty, *set_sep;
    Py_ssize_t sep_len, unset_len, empty_len, set_sep_len;
    int nfields;
    PyObject *plan, *res = NULL;
    zs_scan s;
    memset(&s, 0, sizeof s);
    if (!PyArg_ParseTupleAndKeywords(args, kw, "y*nnLL$y#y#y#y#iO", kwlist, &data, &start, &end,
                                     &first_line, &n_lines, &sep, &sep_len, &unset, &unset_len,
                                     &empty, &empty_len, &set_sep, &set_sep_len, &nfields, &plan))
        return NULL;
    if (start < 0 || end < start || end > data.len || n_lines < 0 || n_lines > end - start ||
        nfields < 1) {
        PyErr_SetString(PyExc_ValueError, "need 0 <= start <= end <= len(data), "
                                          "0 <= n_lines <= end - start and n_fields >= 1");
        goto done;
    }
    if (sep_len < 1 || set_sep_len < 1) {
        res = Py_NewRef(Py_None); /* no separator: left to the slow path */
        goto done;
    }
    if (read_plan(plan, nfields, &s.cols, &s.ncols) < 0) goto done;
    s.sep = (const uint8_t *)sep; s.sep_len = (size_t)sep_len;
    s.unset = (const uint8_t *)unset; s.unset_len = (size_t)unset_len;
    s.empty = (const uint8_t *)empty; s.empty_len = (size_t)empty_len;
    s.set_sep = (const uint8_t *)set_sep; s.set_sep_len = (size_t)set_sep_len;
    s.nfields = nfields;
    Py_BEGIN_ALLOW_THREADS
    zs_scan_tsv(&s, (const uint8_t *)data.buf + start, (size_t)(end - start), first_line, n_lines);
    Py_END_ALLOW_THREADS
    res = outcome(&s);
done:
    zs_scan_free(&s);
    free(s.cols);
    PyBuffer_Release(&data);
    return res;
}

static PyObject *scan_json(PyObject *self, PyObject *args, PyObject *kw) {
    (void)self;
    static char *kwlist[] = {"data", "start", "end", "first_line", "n_lines", "names", "plan",
                             NULL};
    Py_buffer data = {0};
    Py_ssize_t start, end;
    long long first_line, n_lines;
    PyObject *names, *plan, *res = NULL, *seq = NULL;
    zs_scan s;
    memset(&s, 0, sizeof s);
    if (!PyArg_ParseTupleAndKeywords(args, kw, "y*nnLL$OO", kwlist, &data, &start, &end,
                                     &first_line, &n_lines, &names, &plan))
        return NULL;
    if (start < 0 || end < start || end > data.len || n_lines < 0 || n_lines > end - start) {
        PyErr_SetString(PyExc_ValueError, "need 0 <= start <= end <= len(data) and "
                                          "0 <= n_lines <= end - start");
        goto done;
    }
    if (read_plan(plan, 1, &s.cols, &s.ncols) < 0) goto done;
    seq = PySequence_Fast(names, "names must be a sequence of bytes");
    if (!seq) goto done;
    if (PySequence_Fast_GET_SIZE(seq) != s.ncols) {
        PyErr_SetString(PyExc_ValueError, "names and plan differ in length");
        goto done;
    }
    s.names = calloc((size_t)(s.ncols ? s.ncols : 1), sizeof *s.names);
    s.name_lens = calloc((size_t)(s.ncols ? s.ncols : 1), sizeof *s.name_lens);
    if (!s.names || !s.name_lens) { PyErr_NoMemory(); goto done; }
    for (int k = 0; k < s.ncols; k++) {
        PyObject *name = PySequence_Fast_GET_ITEM(seq, k);
        char *p;
        Py_ssize_t n;
        if (PyBytes_AsStringAndSize(name, &p, &n) < 0) goto done;
        s.names[k] = (const uint8_t *)p;
        s.name_lens[k] = (size_t)n;
    }
    Py_BEGIN_ALLOW_THREADS
    zs_scan_json(&s, (const uint8_t *)data.buf + start, (size_t)(end - start), first_line,
                 n_lines);
    Py_END_ALLOW_THREADS
    res = outcome(&s);
done:
    zs_scan_free(&s);
    free(s.cols);
    free(s.names);
    free(s.name_lens);
    Py_XDECREF(seq);
    PyBuffer_Release(&data);
    return res;
}

static PyObject *count_byte(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer data = {0};
    Py_ssize_t start, end;
    unsigned char byte;
    if (!PyArg_ParseTuple(args, "y*nnb", &data, &start, &end, &byte)) return NULL;
    if (start < 0) start = 0;
    if (end > data.len) end = data.len;
    size_t count = 0;
    if (end > start) {
        Py_BEGIN_ALLOW_THREADS
        count = zs_count_byte((const uint8_t *)data.buf + start, (size_t)(end - start), byte);
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&data);
    return PyLong_FromSize_t(count);
}

static PyMethodDef methods[] = {
    {"scan_json", (PyCFunction)(void (*)(void))scan_json, METH_VARARGS | METH_KEYWORDS,
     PyDoc_STR("Parse complete Zeek JSON lines into Arrow column buffers (see the stub).")},
    {"count_byte", count_byte, METH_VARARGS,
     PyDoc_STR("count_byte(data, start, end, byte): occurrences of byte in data[start:end].")},
    {"scan_tsv", (PyCFunction)(void (*)(void))scan_tsv, METH_VARARGS | METH_KEYWORDS,
     PyDoc_STR("Parse complete Zeek TSV data lines into Arrow column buffers (see the stub).")},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT, "_zeekscan", "Compiled Zeek log tokenizer.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__zeekscan(void) {
    zs_init();
    if (PyType_Ready(&BufferType) < 0) return NULL;
    PyObject *m = PyModule_Create(&moduledef);
    if (!m) return NULL;
    Py_INCREF(&BufferType);
    if (PyModule_AddObject(m, "Buffer", (PyObject *)&BufferType) < 0) {
        Py_DECREF(&BufferType);
        Py_DECREF(m);
        return NULL;
    }
    if (PyModule_AddIntConstant(m, "KIND_TIME", ZK_TIME) < 0 ||
        PyModule_AddIntConstant(m, "KIND_UINT", ZK_UINT) < 0 ||
        PyModule_AddIntConstant(m, "KIND_INT", ZK_INT) < 0 ||
        PyModule_AddIntConstant(m, "KIND_DOUBLE", ZK_DOUBLE) < 0 ||
        PyModule_AddIntConstant(m, "KIND_BOOL", ZK_BOOL) < 0 ||
        PyModule_AddIntConstant(m, "KIND_STRING", ZK_STRING) < 0 ||
        PyModule_AddIntConstant(m, "KIND_ADDR", ZK_ADDR) < 0 ||
        PyModule_AddIntConstant(m, "KIND_SET", ZK_SET) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
