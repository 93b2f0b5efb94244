"""The compiled path: a column plan for :mod:`egress._zeekscan`, Arrow arrays from its output.

:func:`scan_segment` turns a TSV header and a :class:`~egress.sources.zeek_fields.LogSpec`
into a plan (which field goes to which typed column), lets the C scanner parse the
segment with the GIL released, and wraps the buffers it fills as Arrow arrays
without copying. The rules are those of the pyarrow path in
:mod:`egress.sources.zeek_tsv` (unset is null, ``#empty_field``, ``\\xNN``
escapes, numbers in Zeek's textual forms, the address shape check); inputs the
plan cannot express (an output type it has no kind for, an escaped set element
that is not UTF-8) return ``None`` and the caller takes
the pyarrow path. :func:`scan_json_chunk` does the same for JSON lines, with the
rules of the line-by-line path of :mod:`egress.sources.zeek_json`. Without the
compiled module (a checkout that was not built) :data:`AVAILABLE` is false and
every call returns ``None``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from egress.columns import STRING_LIST, TIMESTAMP
from egress.sources.zeek_fields import FieldSpec, LogSpec, ParsedRows, empty_rows, finish_rows

if TYPE_CHECKING:
    from egress.sources.zeek_tsv import TsvHeader

try:
    from egress import _zeekscan
except ImportError:  # pragma: no cover - only in an unbuilt checkout
    _zeekscan = None  # type: ignore[assignment]

AVAILABLE = _zeekscan is not None

PlanEntry = tuple[int, int, int, int, int, int]

_UNSIGNED = {pa.uint8(): 1, pa.uint16(): 2, pa.uint32(): 4, pa.uint64(): 8}
_SIGNED = {pa.int8(): 1, pa.int16(): 2, pa.int32(): 4, pa.int64(): 8}
_MAX_DIGITS = {"count": 20, "port": 5}


def count_lines(buf: bytes | bytearray, start: int, end: int) -> int:
    """Number of newlines in ``buf[start:end]`` (SSE2 when compiled)."""
    if _zeekscan is None:
        return buf.count(b"\n", start, end)
    return _zeekscan.count_byte(buf, start, end, 0x0A)


def plan_entry(index: int, kind: str, typ: pa.DataType) -> PlanEntry | None:
    """(field index, scanner kind, width, max digits, low, high) for one field, or ``None``."""
    if _zeekscan is None:
        return None
    zs = _zeekscan
    if kind == "time" and typ == TIMESTAMP:
        return (index, zs.KIND_TIME, 8, 0, 0, 0)
    if kind in ("string", "addr") and typ == pa.string():
        return (index, zs.KIND_STRING if kind == "string" else zs.KIND_ADDR, 8, 0, 0, 0)
    if kind == "set" and typ == STRING_LIST:
        return (index, zs.KIND_SET, 8, 0, 0, 0)
    if kind in _MAX_DIGITS and typ in _UNSIGNED:
        width = _UNSIGNED[typ]
        return (index, zs.KIND_UINT, width, _MAX_DIGITS[kind], 0, 2 ** (8 * width) - 1)
    if kind == "int" and typ in _SIGNED:
        width = _SIGNED[typ]
        bound = 2 ** (8 * width - 1)
        return (index, zs.KIND_INT, width, 19, -bound, bound - 1)
    if kind == "double" and typ == pa.float64():
        return (index, zs.KIND_DOUBLE, 8, 0, 0, 0)
    if kind == "bool" and typ == pa.bool_():
        return (index, zs.KIND_BOOL, 8, 0, 0, 0)
    return None


def scan_segment(buf: bytes | bytearray, start: int, end: int, first_line: int, n_lines: int,
                 header: TsvHeader, spec: LogSpec,
                 fields: list[tuple[int, FieldSpec, str]]) -> ParsedRows | None:
    """Parse ``buf[start:end]`` (``n_lines`` complete lines) with the compiled tokenizer.

    ``fields`` lists the wanted fields as (index in the header, field spec, kind).
    Returns ``None`` when the plan cannot express the segment exactly.
    """
    if _zeekscan is None or header.fields is None or not header.separator:
        return None
    plan: list[PlanEntry] = []
    for index, fs, kind in fields:
        entry = plan_entry(index, kind, spec.column_type(fs.column))
        if entry is None:
            return None
        plan.append(entry)
    conv = header.conventions
    scanned = _zeekscan.scan_tsv(
        buf, start, end, first_line, n_lines, separator=header.separator, unset=conv.unset,
        empty=conv.empty, set_separator=conv.set_separator, n_fields=len(header.fields),
        plan=plan)
    if scanned is None:
        return None
    return _rows(scanned, spec, [fs for _, fs, _ in fields], plan)


def scan_json_chunk(buf: bytes | bytearray, start: int, end: int, first_line: int,
                    n_lines: int, spec: LogSpec) -> ParsedRows | None:
    """Parse the ``n_lines`` complete JSON lines ``buf[start:end]`` with the compiled scanner.

    Returns ``None`` when the chunk holds what the scanner leaves to Python
    (ISO-8601 ``ts`` strings, ``NaN``, repeated keys, lone surrogates, deep nesting).
    """
    if _zeekscan is None:
        return None
    names: list[bytes] = []
    plan: list[PlanEntry] = []
    fields: list[FieldSpec] = []
    for zeek, fs in spec.fields.items():
        entry = plan_entry(0, fs.kind, spec.column_type(fs.column))
        if entry is None:
            return None
        names.append(zeek.encode())
        plan.append(entry)
        fields.append(fs)
    scanned = _zeekscan.scan_json(buf, start, end, first_line, n_lines, names=names, plan=plan)
    if scanned is None:
        return None
    return _rows(scanned, spec, fields, plan)


def _rows(scanned: tuple[int, _zeekscan.Buffer, list[_zeekscan.Column],
                         dict[str, tuple[int, list[int]]]],
          spec: LogSpec, fields: list[FieldSpec], plan: list[PlanEntry]) -> ParsedRows:
    n, lines, columns, issues = scanned
    rows = empty_rows()
    if n:
        rows.lines = np.frombuffer(memoryview(lines), dtype=np.int64, count=n)
    for kind, (count, first) in issues.items():
        rows.issues[kind] = (count, first)
    for fs, entry, col in zip(fields, plan, columns, strict=True):
        rows.columns[fs.column] = _array(entry[1], spec.column_type(fs.column), n, col)
    return finish_rows(rows, spec, {})


def _array(kind: int, typ: pa.DataType, n: int, col: _zeekscan.Column) -> pa.Array:
    nulls, elements, validity, values, offsets, data, child = col
    bits = pa.py_buffer(validity) if nulls and validity is not None else None
    if kind == _zeekscan.KIND_SET:
        strings = pa.Array.from_buffers(pa.string(), elements,
                                        [None, pa.py_buffer(child), pa.py_buffer(data)])
        return pa.Array.from_buffers(typ, n, [bits, pa.py_buffer(offsets)], null_count=nulls,
                                     children=[strings])
    if kind in (_zeekscan.KIND_STRING, _zeekscan.KIND_ADDR):
        return pa.Array.from_buffers(typ, n, [bits, pa.py_buffer(offsets), pa.py_buffer(data)],
                                     null_count=nulls)
    return pa.Array.from_buffers(typ, n, [bits, pa.py_buffer(values)], null_count=nulls)
