"""Zeek's JSON log format (one object per line) to typed columns.

Zeek's JSON writer writes one flat object per line with the same field names as
the TSV header (``id.orig_h``, ...); unset fields are simply absent. ``ts`` is
epoch seconds, or an ISO-8601 string when the writer was set to
``JSON::TS_ISO8601`` (both may even be mixed in hand-made files).

A chunk of lines is parsed by the compiled scanner (:mod:`egress.sources.zeek_scan`),
which drops and counts bad lines itself; what it leaves to Python (ISO-8601
``ts``, ``NaN``, repeated keys) goes to pyarrow's JSON reader in one call. If that
fails (a malformed line, a value of the wrong JSON type, mixed ``ts`` styles,
blank lines) the chunk is parsed line by line instead, so only the bad lines are
lost; they are counted, never raised.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.json as pjson

from egress.sources import zeek_scan
from egress.sources.zeek_fields import (
    LogSpec,
    Mask,
    ParsedRows,
    address_bad_rows,
    empty_rows,
    finish_rows,
    json_time,
    json_type,
    narrow,
)


def parse_chunk(buf: bytes | bytearray, start: int, end: int, first_line: int, n_lines: int,
                spec: LogSpec, *, compiled: bool = True) -> ParsedRows:
    """Parse the ``n_lines`` complete JSON lines ``buf[start:end]``.

    ``first_line`` is the 1-based line number of the first of them. The compiled
    scanner (:mod:`egress.sources.zeek_scan`) parses it when it can and
    ``compiled`` is true; otherwise pyarrow's JSON reader does, with the same result.
    """
    if compiled:
        scanned = zeek_scan.scan_json_chunk(buf, start, end, first_line, n_lines, spec)
        if scanned is not None:
            return scanned
    lines = np.arange(first_line, first_line + n_lines, dtype=np.int64)
    # pyarrow skips blank lines: a row count short of n_lines sends the chunk line by line.
    table = _read_fast(buf, start, end, spec, n_lines)
    if table is None:
        return _parse_lines(bytes(buf[start:end]), lines, spec)
    rows = empty_rows()
    rows.lines = lines
    bad: dict[str, Mask] = {}
    for zeek, fs in spec.fields.items():
        values = table.column(zeek).combine_chunks()
        typ = spec.column_type(fs.column)
        wrong: Mask | None
        if fs.kind == "time":
            values, wrong = json_time(values)
        elif fs.kind == "addr":
            wrong = address_bad_rows(values)
            if wrong is not None:
                bad["bad_address"] = bad["bad_address"] | wrong if "bad_address" in bad else wrong
            wrong = None
        elif values.type != typ:
            values, wrong = narrow(values, typ)
        else:
            wrong = None
        if wrong is not None:
            bad["bad_value"] = bad["bad_value"] | wrong if "bad_value" in bad else wrong
        rows.columns[fs.column] = values
    return finish_rows(rows, spec, bad)


def _read_fast(buf: bytes | bytearray, start: int, end: int, spec: LogSpec,
               n_lines: int) -> pa.Table | None:
    iso = buf.find(b'"ts":"', start, end) >= 0
    fields = []
    for zeek, fs in spec.fields.items():
        typ = json_type(fs.kind, spec.column_type(fs.column))
        if fs.kind == "time" and iso:
            typ = pa.string()
        fields.append(pa.field(zeek, typ))
    data = pa.py_buffer(buf).slice(start, end - start)
    try:
        table = pjson.read_json(
            pa.BufferReader(data),
            read_options=pjson.ReadOptions(use_threads=False,
                                           block_size=max(data.size + 1, 1 << 16)),
            parse_options=pjson.ParseOptions(explicit_schema=pa.schema(fields),
                                              unexpected_field_behavior="ignore"),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    return table if table.num_rows == n_lines else None


_INT_RANGES = {"count": (0, 2**64 - 1), "port": (0, 65535), "int": (-(2**63), 2**63 - 1)}


def _time_value(value: object) -> int | None:
    """Epoch seconds or ISO-8601 text -> microseconds since the epoch; None if neither."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        if not math.isfinite(value):
            return None
        return round(value * 1_000_000)
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
        return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds
    return None


def _check(kind: str, value: object) -> tuple[bool, Any]:
    """Validate one JSON value for a field of ``kind``: (ok, value to store)."""
    if kind == "time":
        micros = _time_value(value)
        return micros is not None, micros
    if kind in ("string", "addr"):
        return isinstance(value, str), value
    if kind in _INT_RANGES:
        lo, hi = _INT_RANGES[kind]
        ok = isinstance(value, int) and not isinstance(value, bool) and lo <= value <= hi
        return ok, value
    if kind == "double":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return ok, float(value) if ok else None  # type: ignore[arg-type]
    if kind == "bool":
        return isinstance(value, bool), value
    if kind == "set":
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
        return ok, value
    raise ValueError(f"unknown Zeek field kind {kind!r}")


def _parse_lines(text: bytes, lines: np.ndarray, spec: LogSpec) -> ParsedRows:
    """Slow path: parse line by line so one bad line costs only itself."""
    rows = empty_rows()
    items = list(spec.fields.items())
    values: dict[str, list[Any]] = {fs.column: [] for _, fs in items}
    kept: list[int] = []
    blank: list[int] = []
    bad_json: list[int] = []
    bad_value: list[int] = []
    for i, line in enumerate(text.split(b"\n")[: len(lines)]):
        number = int(lines[i])
        if not line.strip():
            blank.append(number)
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            bad_json.append(number)
            continue
        if not isinstance(obj, dict):
            bad_json.append(number)
            continue
        row: list[Any] = []
        ok = True
        for zeek, fs in items:
            if zeek not in obj or obj[zeek] is None:
                row.append(None)
                continue
            good, value = _check(fs.kind, obj[zeek])
            ok &= good
            row.append(value)
        if not ok:
            bad_value.append(number)
            continue
        kept.append(number)
        for (_, fs), value in zip(items, row, strict=True):
            values[fs.column].append(value)
    rows.note("blank_line", blank)
    rows.note("bad_json", bad_json)
    rows.note("bad_value", bad_value)
    rows.lines = np.array(kept, dtype=np.int64)
    bad: dict[str, Mask] = {}
    for _, fs in items:
        typ = spec.column_type(fs.column)
        if fs.kind == "time":
            rows.columns[fs.column] = pa.array(values[fs.column], pa.int64()).cast(typ)
            continue
        wide = {"count": pa.uint64(), "int": pa.int64()}.get(fs.kind, typ)
        rows.columns[fs.column] = pa.array(values[fs.column], wide)
        if wide != typ:  # a count or int narrower than 64 bits: out of range is a bad value
            narrowed, wrong = narrow(rows.columns[fs.column], typ)
            rows.columns[fs.column] = narrowed
            if wrong is not None:
                bad["bad_value"] = bad["bad_value"] | wrong if "bad_value" in bad else wrong
        if fs.kind == "addr":
            wrong = address_bad_rows(rows.columns[fs.column])
            if wrong is not None:
                bad["bad_address"] = bad["bad_address"] | wrong if "bad_address" in bad else wrong
    return finish_rows(rows, spec, bad)


def first_object(line: bytes) -> dict[str, Any] | None:
    """The JSON object on ``line``, or ``None`` if it is not one."""
    try:
        obj = json.loads(line)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None
