/* text.h: strings of Arrow string arrays as the Python side passes them, their 64-bit
 * hash, and dotted-quad IPv4 text as numbers. Shared by wincore.c and attrib.c. */
#ifndef EGRESS_WINCORE_TEXT_H
#define EGRESS_WINCORE_TEXT_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <string.h>

/* A 64-bit hash of bytes (the hash of remote addresses in distinct counts). */
static inline uint64_t hash_bytes(const uint8_t *p, size_t len) {
    uint64_t h = 0xCBF29CE484222325ULL ^ (len * 0x9E3779B97F4A7C15ULL);
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        h = (h ^ w) * 0xBF58476D1CE4E5B9ULL;
        h ^= h >> 31;
    }
    /* the last len - i (< 8) bytes, little-endian, as a memcpy into a zeroed word would
     * give them; read as two overlapping 4-byte words, or three single bytes, since a
     * variable-length copy through the stack stalls the load that follows */
    uint64_t tail = 0;
    size_t rest = len - i;
    const uint8_t *q = p + i;
    if (rest >= 4) {
        uint32_t low, high;
        memcpy(&low, q, 4);
        memcpy(&high, q + rest - 4, 4);
        tail = low | (uint64_t)high << (8 * (rest - 4));
    } else if (rest) {
        tail = q[0] | (uint64_t)q[rest / 2] << (8 * (rest / 2)) |
               (uint64_t)q[rest - 1] << (8 * (rest - 1));
    }
    h = (h ^ tail) * 0x94D049BB133111EBULL;
    h ^= h >> 29;
    h *= 0xBF58476D1CE4E5B9ULL;
    return h ^ (h >> 32);
}

/* An Arrow string array (int32 offsets) as the Python side passes it: offsets and data
 * buffers, the array's offset and length, all checked. */
typedef struct {
    Py_buffer offs, data;
    const int32_t *o;  /* length + 1 offsets, ascending, inside data */
    const uint8_t *d;
    Py_ssize_t length;
} strings;

/* Parse (offsets, data, offset, length) into s; -1 with an exception set. */
static inline int strings_open(PyObject *args, strings *s) {
    PyObject *offsets_o, *data_o;
    Py_ssize_t offset, length;
    if (!PyArg_ParseTuple(args, "OOnn", &offsets_o, &data_o, &offset, &length)) return -1;
    if (PyObject_GetBuffer(offsets_o, &s->offs, PyBUF_SIMPLE) < 0) return -1;
    if (PyObject_GetBuffer(data_o, &s->data, PyBUF_SIMPLE) < 0) {
        PyBuffer_Release(&s->offs);
        return -1;
    }
    /* offset + length + 1 <= entries, without overflow for any offset and length */
    if (offset < 0 || length < 0 || offset > s->offs.len / 4 ||
        length >= s->offs.len / 4 - offset) {
        PyErr_SetString(PyExc_ValueError, "offsets buffer too short");
        goto bad;
    }
    s->o = (const int32_t *)s->offs.buf + offset;
    s->d = s->data.buf;
    s->length = length;
    for (Py_ssize_t i = 0; i <= length; i++) {
        if (s->o[i] < 0 || s->o[i] > s->data.len || (i && s->o[i] < s->o[i - 1])) {
            PyErr_SetString(PyExc_ValueError, "bad string offsets");
            goto bad;
        }
    }
    return 0;
bad:
    PyBuffer_Release(&s->offs);
    PyBuffer_Release(&s->data);
    return -1;
}

static inline void strings_close(strings *s) {
    PyBuffer_Release(&s->offs);
    PyBuffer_Release(&s->data);
}

/* ------------------------------------------------------------------ IPv4 text */

/* The address of a dotted quad exactly as Python's ipaddress accepts it (four decimal
 * octets 0-255, no sign, no leading zero but in "0"); -1 otherwise. */
static inline int64_t dotted_quad(const uint8_t *p, size_t len) {
    uint32_t value = 0;
    size_t i = 0;
    for (int octet = 0; octet < 4; octet++) {
        if (octet) {
            if (i >= len || p[i] != '.') return -1;
            i++;
        }
        size_t begin = i;
        uint32_t v = 0;
        while (i < len && p[i] >= '0' && p[i] <= '9' && i - begin < 3) v = v * 10 + (p[i++] - '0');
        size_t digits = i - begin;
        if (digits == 0 || v > 255 || (digits > 1 && p[begin] == '0')) return -1;
        value = value << 8 | v;
    }
    return i == len ? (int64_t)value : -1;
}

#endif
