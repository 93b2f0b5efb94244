"""Zeek field types to typed Arrow columns, vectorized, with bad values flagged per row.

Each Zeek log egress reads is described by a :class:`LogSpec`: which Zeek fields
it uses, the column each becomes and the Zeek type (``kind``) that says how to
parse it. The converters here work on whole columns (numpy over Arrow buffers,
Arrow compute kernels): a value that does not parse never raises, it sets the
row's bit in a ``bad`` mask so the caller can drop and count the line.

Unset values (Zeek's ``-``, or an absent JSON key) become null; a set written as
Zeek's ``(empty)`` becomes an empty list, a string written so becomes ``""``.
Address columns get a shape check (hex digits, ``.`` and ``:`` only, 2 to 45
characters, at least one separator), not a full RFC parse.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from egress.columns import (
    CONN_SCHEMA,
    HTTP_SCHEMA,
    SSL_SCHEMA,
    STRING_LIST,
    TIMESTAMP,
)

Mask = npt.NDArray[np.bool_]

KINDS = ("time", "string", "addr", "port", "count", "int", "double", "bool", "set")


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One Zeek field: its output column and its Zeek type class."""

    column: str
    kind: str


@dataclass(frozen=True, slots=True)
class LogSpec:
    """The Zeek fields one output schema is built from."""

    name: str
    schema: pa.Schema
    fields: dict[str, FieldSpec]

    def column_type(self, column: str) -> pa.DataType:
        """Return the output type of ``column``."""
        return self.schema.field(column).type

    def project(self, columns: set[str]) -> LogSpec:
        """The spec restricted to the Zeek fields that make ``columns``."""
        return LogSpec(self.name, self.schema, {
            zeek: fs for zeek, fs in self.fields.items() if fs.column in columns})


def _spec(name: str, schema: pa.Schema, pairs: tuple[tuple[str, str, str], ...]) -> LogSpec:
    return LogSpec(name, schema, {zeek: FieldSpec(col, kind) for zeek, col, kind in pairs})


CONN_SPEC = _spec("conn", CONN_SCHEMA, (
    ("ts", "ts", "time"), ("uid", "uid", "string"),
    ("id.orig_h", "orig_h", "addr"), ("id.orig_p", "orig_p", "port"),
    ("id.resp_h", "resp_h", "addr"), ("id.resp_p", "resp_p", "port"),
    ("proto", "proto", "string"), ("service", "service", "string"),
    ("duration", "duration_s", "double"), ("orig_bytes", "orig_bytes", "count"),
    ("resp_bytes", "resp_bytes", "count"), ("conn_state", "conn_state", "string"),
    ("local_orig", "local_orig", "bool"), ("local_resp", "local_resp", "bool"),
    ("missed_bytes", "missed_bytes", "count"), ("history", "history", "string"),
    ("orig_pkts", "orig_pkts", "count"), ("orig_ip_bytes", "orig_ip_bytes", "count"),
    ("resp_pkts", "resp_pkts", "count"), ("resp_ip_bytes", "resp_ip_bytes", "count"),
    ("tunnel_parents", "tunnel_parents", "set"), ("ip_proto", "ip_proto", "count"),
    ("community_id", "community_id", "string"), ("vlan", "vlan", "int"),
    ("inner_vlan", "inner_vlan", "int"), ("vni", "vni", "count"),
    ("interim", "interim", "bool"),
))
SSL_SPEC = _spec("ssl", SSL_SCHEMA, (
    ("ts", "ts", "time"), ("uid", "uid", "string"), ("server_name", "server_name", "string"),
))
HTTP_SPEC = _spec("http", HTTP_SCHEMA, (
    ("ts", "ts", "time"), ("uid", "uid", "string"), ("trans_depth", "trans_depth", "count"),
    ("method", "method", "string"), ("host", "host", "string"), ("uri", "uri", "string"),
    ("request_body_len", "request_body_len", "count"),
))


@dataclass(frozen=True, slots=True)
class TextConventions:
    """How a TSV log writes unset and empty values and separates set elements."""

    unset: bytes = b"-"
    empty: bytes = b"(empty)"
    set_separator: bytes = b","


# ------------------------------------------------------------------ buffers


def _binary_parts(arr: pa.Array) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.uint8]]:
    """Return (offsets relative to ``data``, data bytes) of a binary/string array."""
    bufs = arr.buffers()
    n = len(arr)
    offsets = np.frombuffer(bufs[1], dtype=np.int32, count=n + 1, offset=arr.offset * 4)
    base = int(offsets[0]) if n else 0
    end = int(offsets[-1]) if n else 0
    data = (np.frombuffer(bufs[2], dtype=np.uint8)[base:end] if bufs[2] is not None and end > base
            else np.zeros(0, dtype=np.uint8))
    return offsets.astype(np.int64) - base, data


def _null_mask(arr: pa.Array) -> Mask:
    if arr.null_count == 0:
        return np.zeros(len(arr), dtype=np.bool_)
    return np.asarray(pc.is_null(arr).to_numpy(zero_copy_only=False), dtype=np.bool_)


def literal_mask(arr: pa.Array, literal: bytes) -> Mask:
    """Rows of a binary/string array whose value is exactly ``literal`` (nulls: False)."""
    offsets, data = _binary_parts(arr)
    lengths = np.diff(offsets)
    hit: Mask = np.asarray(lengths == len(literal), dtype=np.bool_)
    if not hit.any():
        return hit
    starts = offsets[:-1][hit]
    sub = np.ones(len(starts), dtype=np.bool_)
    for k, byte in enumerate(literal):
        sub &= data[starts + k] == byte
    hit[hit] = sub
    if arr.null_count:
        hit &= ~_null_mask(arr)
    return hit


def _rows_of(positions: npt.NDArray[np.intp], offsets: npt.NDArray[np.int64], n: int) -> Mask:
    mask = np.zeros(n, dtype=np.bool_)
    if len(positions):
        mask[np.searchsorted(offsets, positions, side="right") - 1] = True
    return mask


def _with_validity(arr: pa.Array, typ: pa.DataType, invalid: Mask) -> pa.Array:
    """Reinterpret a binary array's buffers as ``typ`` with ``invalid`` rows null (no copy)."""
    bufs = arr.buffers()
    if arr.null_count:
        invalid = invalid | _null_mask(arr)
    nulls = int(invalid.sum())
    validity = None
    if nulls:
        bits = ~invalid
        if arr.offset:  # the bitmap is read from the array's offset on
            bits = np.concatenate((np.zeros(arr.offset, dtype=np.bool_), bits))
        validity = pa.py_buffer(np.packbits(bits, bitorder="little"))
    return pa.Array.from_buffers(typ, len(arr), [validity, bufs[1], bufs[2]], null_count=nulls,
                                 offset=arr.offset)


_ESCAPE = re.compile(rb"\\x([0-9a-fA-F]{2})")


def _unescape(value: bytes) -> bytes:
    return _ESCAPE.sub(lambda m: bytes([int(m.group(1), 16)]), value)


# ------------------------------------------------------------------ text (TSV) columns


def text_to_string(arr: pa.Array, conv: TextConventions, *,
                   unescape: bool = True) -> tuple[pa.Array, Mask | None]:
    """Binary TSV column -> string; unset -> null, empty -> "", ``\\xNN`` escapes decoded.

    Returns the column and a mask of rows whose bytes are not valid UTF-8 (or ``None``).
    """
    arr = arr.cast(pa.binary()) if arr.type != pa.binary() else arr
    unset = literal_mask(arr, conv.unset)
    _, data = _binary_parts(arr)
    result = _with_validity(arr, pa.string(), unset)
    bad: Mask | None = None
    needs_fix = bool(data.size) and (int(data.max()) >= 0x80
                                     or (unescape and bool((data == 0x5C).any())))
    empty = literal_mask(arr, conv.empty) if conv.empty and data.size else None
    if needs_fix:
        values: list[bytes | None] = arr.to_pylist()
        fixed: list[str | None] = []
        bad = np.zeros(len(arr), dtype=np.bool_)
        for i, raw in enumerate(values):
            if raw is None or unset[i]:
                fixed.append(None)
                continue
            try:
                text = _unescape(raw) if unescape and b"\\x" in raw else raw
                fixed.append(text.decode("utf-8"))
            except UnicodeDecodeError:
                bad[i] = True
                fixed.append(None)
        result = pa.array(fixed, pa.string())
        if not bad.any():
            bad = None
    if empty is not None and empty.any():
        result = pc.if_else(pa.array(empty), pa.scalar("", pa.string()), result)
    return result, bad


def text_to_list(arr: pa.Array, conv: TextConventions) -> tuple[pa.Array, Mask | None]:
    """Binary TSV set/vector column -> ``list<string>``; unset -> null, empty -> [].

    Elements are split on the set separator first, then ``\\xNN`` escapes (an
    escaped separator among them) are decoded.
    """
    unset = literal_mask(arr, conv.unset)
    if unset.all():
        return pa.nulls(len(arr), STRING_LIST), None
    empty = literal_mask(arr, conv.empty)
    strings, bad = text_to_string(arr, TextConventions(unset=conv.unset, empty=b""),
                                  unescape=False)
    lists = pc.split_pattern(strings, conv.set_separator.decode("latin-1"))
    if empty.any():
        lists = pc.if_else(pa.array(empty), pa.scalar([], STRING_LIST), lists)
    flat = lists.values
    if len(flat) and pc.any(pc.match_substring(flat, "\\x")).as_py():
        fixed = pa.array([None if v is None else _unescape(v.encode()).decode("utf-8", "replace")
                          for v in flat.to_pylist()], pa.string())
        lists = pa.ListArray.from_arrays(lists.offsets, fixed, mask=pc.is_null(lists))
    return lists, bad


_MASKED_TS = "^X+\\.X+$"
_FLOAT_RE = "^-?[0-9]+(\\.[0-9]*)?([eE][-+]?[0-9]+)?$"


def text_to_time(arr: pa.Array, conv: TextConventions) -> tuple[pa.Array, Mask | None, Mask | None]:
    """Binary epoch-seconds column -> ``timestamp[us, UTC]``.

    Returns (column, bad rows, masked rows). Masked rows hold btest's
    ``XXXXXXXXXX.XXXXXX`` placeholder: they become null and are kept.
    """
    strings = _with_validity(arr, pa.string(), literal_mask(arr, conv.unset))
    masked = _true_rows(pc.match_substring_regex(strings, _MASKED_TS))
    numeric = _true_rows(pc.match_substring_regex(strings, _FLOAT_RE))
    present = ~_null_mask(strings)
    bad = present & ~numeric & ~masked
    return _seconds_to_time(strings, ~numeric), _none_if_clear(bad), _none_if_clear(masked)


def seconds_to_time(seconds: pa.Array) -> pa.Array:
    """Float epoch seconds -> ``timestamp[us, UTC]``, rounded to the microsecond.

    Exact for Zeek's six decimals: a double's error near today's epoch (< 0.25 us)
    is far below the half microsecond that rounding forgives.
    """
    return pc.round(pc.multiply(seconds, 1e6)).cast(pa.int64()).cast(TIMESTAMP)


def _seconds_to_time(values: pa.Array, invalid: Mask) -> pa.Array:
    if invalid.any():
        values = pc.if_else(pa.array(invalid), pa.scalar(None, values.type), values)
    return seconds_to_time(values.cast(pa.float64()) if values.type != pa.float64() else values)


def _true_rows(result: pa.Array) -> Mask:
    return np.asarray(pc.fill_null(result, False).to_numpy(zero_copy_only=False), dtype=np.bool_)


def _none_if_clear(mask: Mask) -> Mask | None:
    return mask if mask.any() else None


_ADDR_OK = np.zeros(256, dtype=np.bool_)
for _c in b"0123456789abcdefABCDEF.:":
    _ADDR_OK[_c] = True
_ADDR_SEP = np.zeros(256, dtype=np.int8)
_ADDR_SEP[ord(".")] = 1
_ADDR_SEP[ord(":")] = 1


def address_bad_rows(arr: pa.Array) -> Mask | None:
    """Rows of an address column that do not look like an IPv4/IPv6 address (nulls pass).

    A shape check: only hex digits, ``.`` and ``:``; 2 to 45 characters; a
    separator within the first five (every IPv4 and IPv6 text form has one).
    """
    offsets, data = _binary_parts(arr)
    n = len(arr)
    lengths = np.diff(offsets)
    bad: Mask = np.asarray((lengths < 2) | (lengths > 45), dtype=np.bool_)
    if data.size:
        wrong = np.flatnonzero(~_ADDR_OK[data])
        if len(wrong):
            bad |= _rows_of(wrong, offsets, n)
        starts = offsets[:-1]
        has_sep = np.zeros(n, dtype=np.bool_)
        for k in range(5):
            inside = lengths > k
            at = np.where(inside, starts + k, 0)
            has_sep |= inside & (_ADDR_SEP[data[at]] > 0)
        bad |= ~has_sep
    if arr.null_count:
        bad &= ~_null_mask(arr)
    return _none_if_clear(bad)


def text_to_address(arr: pa.Array, conv: TextConventions) -> tuple[pa.Array, Mask | None]:
    """Binary address column -> string; unset -> null; malformed rows flagged."""
    unset = literal_mask(arr, conv.unset)
    result = _with_validity(arr, pa.string(), unset)
    return result, address_bad_rows(result)


_INT_RE = {"count": "^[0-9]{1,20}$", "port": "^[0-9]{1,5}$", "int": "^-?[0-9]{1,19}$"}
_BOOL_VALUES = {"T": True, "F": False}


def text_to_scalar(arr: pa.Array, kind: str, typ: pa.DataType,
                   conv: TextConventions) -> tuple[pa.Array, Mask | None]:
    """Binary count/port/int/double/bool column -> ``typ``; bad values flagged, set null."""
    strings = _with_validity(arr, pa.string(), literal_mask(arr, conv.unset))
    present = ~_null_mask(strings)
    if kind == "bool":
        ok = _true_rows(pc.is_in(strings, value_set=pa.array(list(_BOOL_VALUES))))
        bad = present & ~ok
        values = pc.equal(strings, "T")
        if bad.any():
            values = pc.if_else(pa.array(bad), pa.scalar(None, pa.bool_()), values)
        return values, _none_if_clear(bad)
    pattern = _FLOAT_RE if kind == "double" else _INT_RE[kind]
    ok = _true_rows(pc.match_substring_regex(strings, pattern))
    bad = present & ~ok
    if bad.any():
        strings = pc.if_else(pa.array(bad), pa.scalar(None, pa.string()), strings)
    wide = pa.float64() if kind == "double" else (pa.int64() if kind == "int" else pa.uint64())
    try:
        values = strings.cast(wide)
    except pa.ArrowInvalid:  # 20 digits above 2**64 - 1
        parsed = [None if s is None or int(s) >= 2**64 else int(s) for s in strings.to_pylist()]
        over = np.array([s is not None and p is None for s, p in
                         zip(strings.to_pylist(), parsed, strict=True)], dtype=np.bool_)
        bad |= over
        values = pa.array(parsed, wide)
    return narrow(values, typ, bad)


def narrow(values: pa.Array, typ: pa.DataType,
           bad: Mask | None = None) -> tuple[pa.Array, Mask | None]:
    """Cast a parsed column to ``typ``; values out of its range are flagged and set null."""
    if values.type == typ:
        return values, _none_if_clear(bad) if bad is not None else None
    out_of_range: Mask | None = None
    if pa.types.is_integer(typ):
        info = np.iinfo(typ.to_pandas_dtype())
        hi = pc.greater(values, pa.scalar(int(info.max), values.type))
        lo = pc.less(values, pa.scalar(int(info.min), values.type)) if info.min < 0 else None
        oor = pc.or_(hi, lo) if lo is not None else hi
        if pc.any(oor).as_py():
            out_of_range = _true_rows(oor)
            values = pc.if_else(oor, pa.scalar(None, values.type), values)
    result = values.cast(typ, safe=False)
    if out_of_range is not None:
        bad = out_of_range if bad is None else bad | out_of_range
    return result, (_none_if_clear(bad) if bad is not None else None)


# ------------------------------------------------------------------ JSON columns


def json_time(values: pa.Array) -> tuple[pa.Array, Mask | None]:
    """A JSON ``ts`` column (epoch seconds, or ISO-8601 strings) -> ``timestamp[us, UTC]``."""
    if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
        try:
            return values.cast(TIMESTAMP), None
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            ok = _true_rows(pc.match_substring_regex(
                values, "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+(Z|[+-][0-9:]+)?$"))
            bad = ~ok & ~_null_mask(values)
            kept = pc.if_else(pa.array(bad), pa.scalar(None, values.type), values)
            return kept.cast(TIMESTAMP), _none_if_clear(bad)
    return _seconds_to_time(values, np.zeros(len(values), dtype=np.bool_)), None


def json_type(kind: str, typ: pa.DataType) -> pa.DataType:
    """Arrow type to ask pyarrow's JSON reader for, for a field of ``kind``."""
    if kind == "time":
        return pa.float64()
    if kind in ("string", "addr"):
        return pa.string()
    if kind == "set":
        return STRING_LIST
    if kind in ("count", "port"):
        return pa.uint64()
    if kind == "int":
        return pa.int64()
    if kind == "double":
        return pa.float64()
    if kind == "bool":
        return pa.bool_()
    raise ValueError(f"unknown Zeek field kind {kind!r}")


def tsv_type(kind: str, typ: pa.DataType) -> pa.DataType:
    """Arrow type for pyarrow's CSV reader to parse a TSV field of ``kind`` as, directly."""
    if kind in ("string", "addr", "set"):
        return pa.binary()
    if kind == "time":
        return pa.float64()
    if kind in ("count", "port"):
        return pa.uint64() if typ != pa.uint16() else pa.uint16()
    if kind == "int":
        return pa.int64()
    if kind == "double":
        return pa.float64()
    if kind == "bool":
        return pa.bool_()
    raise ValueError(f"unknown Zeek field kind {kind!r}")


# ------------------------------------------------------------------ parsed chunks

FIRST_LINES_KEPT = 5


@dataclass(slots=True)
class ParsedRows:
    """Typed columns of one parsed chunk, each row's line, and the rows that were dropped.

    ``issues`` maps an issue kind to (count, first few line numbers).
    """

    columns: dict[str, pa.Array]
    lines: npt.NDArray[np.int64]
    issues: dict[str, tuple[int, list[int]]]

    @property
    def num_rows(self) -> int:
        """Number of rows kept."""
        return len(self.lines)

    def note(self, kind: str, lines: npt.NDArray[np.int64] | list[int]) -> None:
        """Count ``lines`` under ``kind`` (keeping the first few line numbers)."""
        if len(lines) == 0:
            return
        count, first = self.issues.get(kind, (0, []))
        room = FIRST_LINES_KEPT - len(first)
        more = [int(x) for x in lines[:room]] if room > 0 else []
        self.issues[kind] = (count + len(lines), first + more)


def empty_rows() -> ParsedRows:
    """A chunk with no rows and no issues."""
    return ParsedRows({}, np.zeros(0, dtype=np.int64), {})


def finish_rows(rows: ParsedRows, spec: LogSpec, bad: dict[str, Mask]) -> ParsedRows:
    """Drop rows flagged in ``bad`` (kind -> mask), counting them; add absent columns as nulls."""
    n = rows.num_rows
    if bad:
        drop = np.zeros(n, dtype=np.bool_)
        for kind, mask in bad.items():
            fresh = mask & ~drop  # a row counts once, under its first fault
            rows.note(kind, rows.lines[fresh])
            drop |= mask
        if drop.any():
            keep = pa.array(~drop)
            rows.columns = {name: col.filter(keep) for name, col in rows.columns.items()}
            rows.lines = rows.lines[~drop]
            n = rows.num_rows
    for column in {f.column for f in spec.fields.values()}:
        if column not in rows.columns:  # absent from this log's header
            rows.columns[column] = pa.nulls(n, spec.column_type(column))
    return rows
