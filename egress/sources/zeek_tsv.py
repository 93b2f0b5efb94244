"""Zeek's TSV ("ASCII") log format: header directives and data segments to typed columns.

A TSV log is a header block (``#separator``, ``#set_separator``,
``#empty_field``, ``#unset_field``, ``#path``, ``#open``, ``#fields``,
``#types``), data lines, and ``#close`` when the writer finished. Header blocks
may repeat mid-file (concatenated logs; fields may change), so the caller cuts
the file into *segments*: runs of data lines under one header, each parsed here
by pyarrow's CSV reader in one call. Lines starting with ``#`` that are not
directives (btest's ``### BTest`` banner) are ignored.

Parsing a segment never raises for bad data: lines with the wrong column count,
blank lines and values that do not parse are dropped and counted in the
returned :class:`~egress.sources.zeek_fields.ParsedRows`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.csv as pcsv

from egress.sources import zeek_scan
from egress.sources.zeek_fields import (
    FieldSpec,
    LogSpec,
    Mask,
    ParsedRows,
    TextConventions,
    empty_rows,
    finish_rows,
    narrow,
    seconds_to_time,
    text_to_address,
    text_to_list,
    text_to_scalar,
    text_to_string,
    text_to_time,
    tsv_type,
)

_HEX_ESCAPE = re.compile(r"\\x([0-9a-fA-F]{2})")


def _decode(value: str) -> bytes:
    return _HEX_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), value).encode("latin-1")


@dataclass(frozen=True, slots=True)
class TsvHeader:
    """The header in force for a run of data lines."""

    separator: bytes = b"\t"
    conventions: TextConventions = field(default_factory=TextConventions)
    path: str | None = None
    fields: tuple[str, ...] | None = None
    types: tuple[str, ...] | None = None
    closed: bool = False

    def feed(self, line: bytes) -> TsvHeader:
        """Return the header after the directive ``line`` (which starts with ``#``)."""
        text = line.rstrip(b"\r").decode("utf-8", "replace")
        if text.startswith("#separator"):
            value = text[len("#separator"):].lstrip(" \t")
            # A new header block: a new writer, so nothing carries over but defaults.
            return TsvHeader(separator=_decode(value) or b"\t")
        sep = self.separator.decode("latin-1")
        name, _, rest = text.partition(sep)
        if name == "#fields":
            return replace(self, fields=tuple(rest.split(sep)), closed=False)
        if name == "#types":
            return replace(self, types=tuple(rest.split(sep)))
        if name == "#path":
            return replace(self, path=rest)
        if name == "#close":
            return replace(self, closed=True)
        conv = self.conventions
        if name == "#set_separator":
            return replace(self, conventions=replace(conv, set_separator=_decode(rest)))
        if name == "#empty_field":
            return replace(self, conventions=replace(conv, empty=_decode(rest)))
        if name == "#unset_field":
            return replace(self, conventions=replace(conv, unset=_decode(rest)))
        return self  # #open, btest banners, comments

    def kind_of(self, zeek_field: str, default: str, target: pa.DataType) -> str:
        """The field's kind: ``set`` when ``#types`` says container and a list is wanted."""
        if self.fields is None or self.types is None or len(self.types) != len(self.fields):
            return default
        if zeek_field not in self.fields:
            return default
        typ = self.types[self.fields.index(zeek_field)]
        if typ.startswith(("set[", "table[", "vector[")) and pa.types.is_list(target):
            return "set"
        return default


def _column_names(fields: tuple[str, ...]) -> list[str]:
    seen: set[str] = set()
    names = []
    for i, name in enumerate(fields):
        names.append(name if name not in seen else f"{name}#{i}")
        seen.add(name)
    return names


class _RowCounter:
    """pyarrow invalid-row handler: skip the row, remember that one was skipped."""

    def __init__(self) -> None:
        self.skipped = 0

    def __call__(self, row: object) -> str:
        self.skipped += 1
        return "skip"


def _read(data: pa.Buffer, header: TsvHeader, types: dict[str, pa.DataType],
          counter: _RowCounter) -> pa.Table:
    assert header.fields is not None
    return pcsv.read_csv(
        pa.BufferReader(data),
        read_options=pcsv.ReadOptions(
            column_names=_column_names(header.fields), use_threads=False,
            block_size=max(data.size + 1, 1 << 16)),
        parse_options=pcsv.ParseOptions(
            delimiter=header.separator.decode("latin-1"), quote_char=False, escape_char=False,
            double_quote=False, newlines_in_values=False, ignore_empty_lines=True,
            invalid_row_handler=counter),
        convert_options=pcsv.ConvertOptions(
            column_types=types, include_columns=list(types),
            null_values=[header.conventions.unset.decode("latin-1")],
            true_values=["T"], false_values=["F"], strings_can_be_null=False,
            quoted_strings_can_be_null=False),
    )


def _clean_lines(text: bytes, lines: npt.NDArray[np.int64], header: TsvHeader,
                 rows: ParsedRows) -> tuple[pa.Buffer, npt.NDArray[np.int64]]:
    """Drop blank lines and lines with the wrong column count, in Python.

    Used only for segments where the fast parse found such lines, so that every
    kept row keeps its exact line number. ``lines`` numbers the lines of ``text``.
    """
    assert header.fields is not None
    want = len(header.fields) - 1
    sep = header.separator
    kept: list[bytes] = []
    keep_idx: list[int] = []
    blank: list[int] = []
    wrong: list[int] = []
    for i, line in enumerate(text.split(b"\n")[:-1]):
        if not line.strip(b"\r"):
            blank.append(int(lines[i]))
        elif line.count(sep) != want:
            wrong.append(int(lines[i]))
        else:
            kept.append(line)
            keep_idx.append(i)
    rows.note("blank_line", blank)
    rows.note("wrong_column_count", wrong)
    out = b"\n".join(kept) + b"\n" if kept else b""
    return pa.py_buffer(out), lines[np.array(keep_idx, dtype=np.int64)]


def parse_segment(buf: bytes | bytearray, start: int, end: int, first_line: int, n_lines: int,
                  header: TsvHeader, spec: LogSpec, *, compiled: bool = True) -> ParsedRows:
    """Parse the ``n_lines`` complete data lines ``buf[start:end]`` written under ``header``.

    ``first_line`` is the 1-based line number of the first of them. The compiled
    tokenizer (:mod:`egress.sources.zeek_scan`) parses it when it can and
    ``compiled`` is true; otherwise pyarrow's CSV reader does, with the same result.
    """
    rows = empty_rows()
    lines = np.arange(first_line, first_line + n_lines, dtype=np.int64)
    if header.fields is None:
        rows.note("no_header", lines)
        return finish_rows(rows, spec, {})
    names = _column_names(header.fields)
    wanted = {name: spec.fields[zeek] for name, zeek in zip(names, header.fields, strict=True)
              if zeek in spec.fields}
    kinds = {name: header.kind_of(name, fs.kind, spec.column_type(fs.column))
             for name, fs in wanted.items()}
    if compiled:
        index = {name: i for i, name in enumerate(names)}
        scanned = zeek_scan.scan_segment(
            buf, start, end, first_line, n_lines, header, spec,
            [(index[name], fs, kinds[name]) for name, fs in wanted.items()])
        if scanned is not None:
            return scanned
    fast_types = {name: tsv_type(kinds[name], spec.column_type(fs.column))
                  for name, fs in wanted.items()}
    all_binary = dict.fromkeys(wanted, pa.binary())
    text = pa.py_buffer(buf).slice(start, end - start)
    robust = False  # a value did not convert: parse as text, validate column by column
    table = None
    for attempt in range(2):
        if not len(lines):
            return finish_rows(rows, spec, {})
        counter = _RowCounter()
        try:
            table = _read(text, header, all_binary if robust else fast_types, counter)
        except pa.ArrowInvalid:
            robust = True
            counter = _RowCounter()
            table = _read(text, header, all_binary, counter)
        # pyarrow skips blank lines silently: a short count tells of them too.
        if attempt or (not counter.skipped and table.num_rows == len(lines)):
            break
        text, lines = _clean_lines(text.to_pybytes(), lines, header, rows)
    assert table is not None
    rows.lines = lines
    bad = _convert(table, wanted, kinds, header.conventions, spec, rows, robust=robust)
    return finish_rows(rows, spec, bad)


def _convert(table: pa.Table, wanted: dict[str, FieldSpec], kinds: dict[str, str],
             conv: TextConventions, spec: LogSpec, rows: ParsedRows, *,
             robust: bool) -> dict[str, Mask]:
    """Turn the parsed table into output columns; return bad-row masks by issue kind."""
    bad: dict[str, Mask] = {}

    def flag(kind: str, mask: Mask | None) -> None:
        if mask is not None:
            bad[kind] = bad[kind] | mask if kind in bad else mask

    for name, fs in wanted.items():
        typ = spec.column_type(fs.column)
        kind = kinds[name]
        raw = table.column(name).combine_chunks()
        values: pa.Array
        if kind == "time" and not robust:
            values, wrong = seconds_to_time(raw), None
        elif kind == "time":
            values, wrong, masked = text_to_time(raw, conv)
            if masked is not None:
                rows.note("masked_ts", rows.lines[masked])
        elif kind == "string":
            values, wrong = text_to_string(raw, conv)
        elif kind == "addr":
            values, wrong = text_to_address(raw, conv)
            flag("bad_address", wrong)
            wrong = None
        elif kind == "set":
            values, wrong = text_to_list(raw, conv)
        elif robust:
            values, wrong = text_to_scalar(raw, kind, typ, conv)
        else:
            values, wrong = narrow(raw, typ)
        flag("bad_value", wrong)
        rows.columns[fs.column] = values
    return bad
