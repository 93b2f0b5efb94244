"""The compiled scanners (egress._zeekscan): same results as the pyarrow path, any bytes.

The differential tests parse generated segments both ways
(:func:`egress.sources.zeek_tsv.parse_segment` with ``compiled`` on and off)
and compare columns, line numbers and issues exactly. The fuzz tests feed
arbitrary bytes to the scanner and check that it never fails, that every line is
either a row or an issue, and that the buffers it fills are valid Arrow arrays.
"""

from __future__ import annotations

import json
from dataclasses import replace

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from egress.columns import STRING_LIST, TIMESTAMP
from egress.formats.zeek_conn import CONN_FIELDS
from egress.sources import zeek_json, zeek_scan, zeek_tsv
from egress.sources.zeek_fields import CONN_SPEC, ParsedRows

pytestmark = pytest.mark.skipif(not zeek_scan.AVAILABLE, reason="egress._zeekscan not built")

NAMES = tuple(name for name, _ in CONN_FIELDS)
TYPES = tuple(kind for _, kind in CONN_FIELDS)


def header(fields: tuple[str, ...] = NAMES, types: tuple[str, ...] = TYPES, *,
           sep: str = "\\x09", unset: str = "-", empty: str = "(empty)",
           set_sep: str = ",") -> zeek_tsv.TsvHeader:
    real = sep.encode().decode("unicode_escape")
    h = zeek_tsv.TsvHeader()
    for line in (f"#separator {sep}", f"#set_separator{real}{set_sep}",
                 f"#empty_field{real}{empty}", f"#unset_field{real}{unset}", f"#path{real}conn",
                 f"#fields{real}" + real.join(fields), f"#types{real}" + real.join(types)):
        h = h.feed(line.encode())
    return h


def parse(text: bytes, h: zeek_tsv.TsvHeader, *, compiled: bool,
          first_line: int = 10) -> ParsedRows:
    buf = bytearray(b"xx" + text + b"yy")  # the segment is a slice of a larger buffer
    return zeek_tsv.parse_segment(buf, 2, 2 + len(text), first_line, text.count(b"\n"), h,
                                  CONN_SPEC, compiled=compiled)


def both(text: bytes, h: zeek_tsv.TsvHeader | None = None) -> ParsedRows:
    """Parse both ways, assert the results are equal, return the compiled one."""
    h = h or header()
    fast = parse(text, h, compiled=True)
    slow = parse(text, h, compiled=False)
    assert fast.lines.tolist() == slow.lines.tolist()
    assert fast.issues == slow.issues
    assert set(fast.columns) == set(slow.columns)
    for name, column in slow.columns.items():
        assert fast.columns[name].type == column.type, name
        assert fast.columns[name].to_pylist() == column.to_pylist(), name
    for column in fast.columns.values():
        column.validate(full=True)
    return fast


GOOD = ["1714521600.123456", "CAbc1", "10.0.0.5", "51000", "2001:db8::1", "443", "tcp", "ssl",
        "12.5", "1000", "2000", "SF", "T", "F", "0", "ShADadFf", "10", "1520", "12", "2624",
        "-", "6", "1:abc=", "-", "-", "-", "-"]


def line(**changes: str) -> bytes:
    values = list(GOOD)
    for name, value in changes.items():
        values[NAMES.index(name.replace("__", "."))] = value
    return ("\t".join(values) + "\n").encode()


# ------------------------------------------------------------------ exact values


def test_values_unset_empty_escapes_and_sets() -> None:
    text = (line() + line(service="-", tunnel_parents="(empty)", duration="-")
            + line(service="(empty)", tunnel_parents="a,b\\x2cc", history="x\\x09y\\x5c")
            + line(uid="caf\xc3\xa9".encode("latin-1").decode(), vlan="-2147483648",
                   inner_vlan="2147483647", vni="4294967295", interim="T"))
    rows = both(text)
    assert rows.lines.tolist() == [10, 11, 12, 13]
    cols = rows.columns
    assert cols["ts"].type == TIMESTAMP
    assert cols["ts"].cast(pa.int64()).to_pylist() == [1714521600123456] * 4
    assert cols["service"].to_pylist() == ["ssl", None, "", "ssl"]
    assert cols["tunnel_parents"].type == STRING_LIST
    assert cols["tunnel_parents"].to_pylist() == [None, [], ["a", "b,c"], None]
    assert cols["history"].to_pylist() == ["ShADadFf", "ShADadFf", "x\ty\\", "ShADadFf"]
    assert cols["duration_s"].to_pylist() == [12.5, None, 12.5, 12.5]
    assert cols["uid"].to_pylist()[3] == "café"
    assert cols["vlan"].to_pylist() == [None, None, None, -2147483648]
    assert cols["inner_vlan"].to_pylist() == [None, None, None, 2147483647]
    assert cols["vni"].to_pylist() == [None, None, None, 4294967295]
    assert cols["interim"].to_pylist() == [None, None, None, True]
    assert cols["orig_p"].type == pa.uint16()
    assert cols["orig_p"].to_pylist() == [51000] * 4
    assert rows.issues == {}


def test_bad_values_are_dropped_and_counted_with_their_lines() -> None:
    text = (line(orig_bytes="18446744073709551615")                    # 10: largest count
            + line(orig_bytes="18446744073709551616")                  # 11: one more
            + line(id__orig_p="65536")                                 # 12
            + line(id__orig_p="000080")                                # 13: six digits
            + line(vlan="2147483648")                                  # 14
            + line(ip_proto="256")                                     # 15: uint8
            + line(local_orig="true")                                  # 16
            + line(duration="1e3")                                     # 17: fine
            + line(duration=".5")                                      # 18
            + line(ts="XXXXXXXXXX.XXXXXX")                             # 19: masked, kept
            + line(ts="17145x")                                        # 20
            + line(id__resp_h="10.0.0.1/24")                           # 21
            + line(uid="\xff")                                        # 22: U+00FF is fine
            + b"\n" + b"a\tb\n" + line()[:-1] + b"\r\n" + b"\r\n")     # 23..26
    rows = both(text)
    assert rows.lines.tolist() == [10, 17, 19, 22, 25]
    assert rows.issues == {
        "bad_value": (8, [11, 12, 13, 14, 15]),
        "masked_ts": (1, [19]),
        "bad_address": (1, [21]),
        "blank_line": (2, [23, 26]),
        "wrong_column_count": (1, [24]),
    }
    assert rows.columns["orig_bytes"].to_pylist()[0] == 2**64 - 1
    assert rows.columns["duration_s"].to_pylist()[1] == 1000.0
    assert rows.columns["ts"].to_pylist()[2] is None
    assert rows.columns["uid"].to_pylist()[3] == "ÿ"


def test_invalid_utf8_string_is_a_bad_value() -> None:
    raw = line().replace(b"CAbc1", b"C\xff\xfe")
    escaped = line(uid="C\\xff")
    rows = both(raw + escaped + line())
    assert rows.lines.tolist() == [12]
    assert rows.issues == {"bad_value": (2, [10, 11])}


def test_times_round_like_arrow() -> None:
    stamps = ["0", "1.5", "-1.25", "1714521600", "1714521600.1", "1714521600.9999995",
              "1714521600.12345678", "4102444800.000001", "99999999999.5", "1e9", "1.5E-3"]
    rows = both(b"".join(line(ts=s) for s in stamps))
    micros = rows.columns["ts"].cast(pa.int64()).to_pylist()
    assert micros[:5] == [0, 1500000, -1250000, 1714521600000000, 1714521600100000]
    assert micros[9:] == [1000000000000000, 1500]


def test_other_conventions_and_repeated_names() -> None:
    h = header(("ts", "uid", "service", "tunnel_parents", "uid", "id.orig_p"),
               ("time", "string", "string", "set[string]", "string", "port"),
               sep="|", unset="NONE", empty="EMPTY", set_sep=";")
    rows = both(b"1.0|CA|NONE|x;y|other|1\n2.0|CB|EMPTY|EMPTY|o|NONE\n3|CC|-|-;|o|2\n", h)
    assert rows.columns["uid"].to_pylist() == ["other", "o", "o"]  # the last of a repeat wins
    assert rows.columns["service"].to_pylist() == [None, "", "-"]
    assert rows.columns["tunnel_parents"].to_pylist() == [["x", "y"], [], ["-", ""]]
    assert rows.columns["orig_p"].to_pylist() == [1, None, 2]
    assert rows.columns["orig_h"].to_pylist() == [None, None, None]  # not in this header


def test_multibyte_separator() -> None:
    # pyarrow's CSV reader takes one-byte delimiters only; the scanner splits as bytes.split.
    h = replace(header(("ts", "uid", "service"), ("time", "string", "string")), separator=b"||")
    rows = parse(b"1||a||b|c\n2||x|||y\n3||too||many||\n4||short\n", h, compiled=True)
    assert rows.lines.tolist() == [10, 11]
    assert rows.columns["uid"].to_pylist() == ["a", "x"]
    assert rows.columns["service"].to_pylist() == ["b|c", "|y"]
    assert rows.issues == {"wrong_column_count": (2, [12, 13])}


def test_escaped_set_element_that_is_not_utf8_takes_the_pyarrow_path() -> None:
    rows = both(line(tunnel_parents="a,\\xff"))
    assert rows.columns["tunnel_parents"].to_pylist() == [["a", "\ufffd"]]


def test_scanner_checks_its_arguments() -> None:
    from egress import _zeekscan

    def call(start: int = 0, end: int = 4, n_lines: int = 1,
             plan: list[tuple[int, int, int, int, int, int]] | None = None
             ) -> tuple[int, _zeekscan.Buffer, list[_zeekscan.Column],
                        dict[str, tuple[int, list[int]]]] | None:
        return _zeekscan.scan_tsv(b"a\tb\n", start, end, 1, n_lines, separator=b"\t",
                                  unset=b"-", empty=b"", set_separator=b",", n_fields=2,
                                  plan=plan or [])

    result = call()  # no planned column: the lines are still framed and counted
    assert result is not None and result[0] == 1 and result[2:] == ([], {})
    for kwargs in ({"end": 5}, {"start": -1}, {"start": 3, "end": 2}, {"n_lines": 9}):
        with pytest.raises(ValueError, match="start"):
            call(**kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="plan entry 0"):
        call(plan=[(2, _zeekscan.KIND_STRING, 8, 0, 0, 0)])
    with pytest.raises(ValueError, match="width"):
        call(plan=[(0, _zeekscan.KIND_UINT, 3, 20, 0, 1)])
    assert _zeekscan.count_byte(b"a\nb\n\n", 1, 99, 10) == 3


# ------------------------------------------------------------------ fast paths

# Values around the edges of the scanner's fast paths (times of ten digits and six decimals,
# counts 8 digits at a time, doubles of up to 15 digits, strings and addresses 16 bytes at a
# time): each must parse as the pyarrow path parses it.
_EDGES: dict[str, list[str]] = {
    "ts": ["0.000000", "1.000000", "12345678.123456", "123456789.123456", "1234567890.123456",
           "3999999999.999999", "4000000000.000000", "4000000000.5", "9999999999.999999",
           "0000000001.000001", "1714521600.12345", "1714521600.1234567", "1714521600.",
           "-1714521600.123456", "1714521600.12345x", "17145216x0.123456", "1714521600,123456",
           "+1.000000", "1.5e3", ".123456", "12345678901.123456", "1714521600.-12345",
           "171452160x.123456", "1714521600.1x3456", "1714521600.12345\\", "0123456789.000001"],
    "orig_bytes": ["0", "7", "1234", "12345", "99999999", "123456789", "1234567890123456",
                   "12345678901234567", "18446744073709551615", "18446744073709551616",
                   "0000000000000000001", "1234x678", "12345678x", "1234567890123x56", "-5",
                   "+5", " 12345", "12345 ", "9" * 21, "1x", "x", "12x4", "00"],
    "id__orig_p": ["65535", "65536", "00080", "99999", "6553x", "80808", "8080", "8x", "1"],
    "ip_proto": ["255", "256", "00255", "99999999", "000000001"],
    "vni": ["4294967295", "4294967296", "0004294967295"],
    "duration": ["0", "0.5", "-0.0", "-0", "123456789012345", "123456789012345.6",
                 "12345678901234.5", "0.000000000000001", "1.", "00001.5", "1.5.5", "1.5e3",
                 "-.5", "99999999999999999", "1.0000000000000002", "0.1", "2.675", "-7.25",
                 "0.000000", "1.000000", "12345678.123456", "123456789.123456",
                 "999999999.999999", "1234567890.123456", "-1.000000", "1x.000000", "1.00000x",
                 "12.34567", "147.934479", "0000000.000001"],
    "history": ["", "a" * 15, "a" * 16, "a" * 17, "a" * 31, "a" * 32, "a" * 33, "a" * 40,
                "\\x41" + "b" * 20, "b" * 14 + "\\x41", "b" * 29 + "\\x41", "é" * 16,
                "b" * 15 + "é", "b" * 31 + "é", "b" * 32 + "é"],
    "id__resp_h": ["1.2.3.4", "::", "a:", "ab.c", "abcd:", "abcde:", "ABCD::1",
                   "1234567890123456:", "2001:db8:0:0:0:0:0:1",
                   "2001:0db8:0000:0000:0000:0000:0000:0001",
                   "a" * 31 + ":", ":" + "a" * 31, "a:" + "g" * 1, "a:" + "b" * 14 + "g",
                   "a:" + "b" * 29 + "g", "1.2.3.4 ", "1.2.3.é", "x"],
}


# pyarrow's number parser takes these when no other value of the segment fails, so the
# reference path is lenient with them alone (a difference of that path, older than the fast
# paths); in a segment with other bad values it rejects them, as the scanner always does.
_LENIENT = {"+1.000000", ".123456", " 12345", "12345 ", "-.5"}


def test_fast_path_edges_parse_as_the_pyarrow_path_does() -> None:
    cases = [(value, line(**{field: value})) for field, values in _EDGES.items()
             for value in values]
    for n in (0, 14, 15, 16, 30, 31, 32):  # a byte that is not UTF-8, raw and escaped
        cases += [("", line(uid="b" * n + "@").replace(b"@", b"\xff")),
                  ("", line(uid="b" * n + "\\xff"))]
    both(b"".join(case for _, case in cases) + line())  # mid-buffer: the fast paths
    for value, case in cases:  # the last line of its buffer: fields near its end go the slow way
        if value in _LENIENT:
            assert parse(case, header(), compiled=True).issues == {"bad_value": (1, [10])}
        else:
            both(case)
    rows = both(line(ts="3999999999.999999") + line(orig_bytes="18446744073709551615")
                + line(duration="123456789012345") + line(id__orig_p="00080")
                + line(history="\\x41" + "b" * 20) + line())
    assert rows.columns["ts"].cast(pa.int64()).to_pylist()[0] == 3999999999999999
    assert rows.columns["orig_bytes"].to_pylist()[1] == 2**64 - 1
    assert rows.columns["duration_s"].to_pylist()[2] == 123456789012345.0
    assert rows.columns["orig_p"].to_pylist()[3] == 80
    assert rows.columns["history"].to_pylist()[4] == "A" + "b" * 20


def test_lines_cut_at_every_position_of_a_64_byte_block() -> None:
    # Lines of every length modulo 64 put newlines and separators on every bit of the masks;
    # long and short lines (too many separators in one block, or too few) are counted.
    text = b"".join(line(uid="u" * n) for n in range(1, 80))
    text += line(uid="\t" * 70) + line(uid="\t" * 200) + b"\t" * 63 + b"\n" + line(uid="x" * 300)
    text += b"\n" * 3 + b"\r\n" + line(uid="last")
    for start in range(0, 64, 7):  # the segment at every offset of its first block
        rows = both(text[start:] if start == 0 else text[text.index(b"\n", start) + 1:])
        assert rows.columns["uid"].to_pylist()[-1] == "last"
    rows = both(text)
    assert rows.columns["uid"].to_pylist() == ["u" * n for n in range(1, 80)] + ["x" * 300,
                                                                               "last"]
    assert rows.issues == {"wrong_column_count": (3, [89, 90, 91]),
                           "blank_line": (4, [93, 94, 95, 96])}


def test_count_byte_over_many_blocks() -> None:
    from egress import _zeekscan

    data = (b"\n" * 5000 + b"ab\ncd") * 3  # more than 255 blocks of 16 bytes between sums
    for start, end in ((0, len(data)), (1, len(data) - 1), (17, 9000), (4999, 5003)):
        assert _zeekscan.count_byte(data, start, end, 10) == data.count(b"\n", start, end)
    assert _zeekscan.count_byte(data, 0, len(data), ord("a")) == 3


# ------------------------------------------------------------------ generated


def _value(kind: str) -> st.SearchStrategy[str]:
    """Valid values of a Zeek type, and unset, empty and clearly malformed ones."""
    special = st.sampled_from(["-", "(empty)", "", "zz"])
    if kind == "time":
        good = st.builds(lambda s, f: f"{s}.{f}", st.integers(0, 4_000_000_000),
                         st.integers(0, 999_999).map(lambda f: f"{f:06d}"))
    elif kind in ("count", "port"):
        good = st.integers(0, 2**64 + 5 if kind == "count" else 70_000).map(str)
    elif kind == "int":
        good = st.integers(-(2**31) - 2, 2**31 + 2).map(str)
    elif kind == "interval":
        good = st.floats(0, 1e6, allow_nan=False).map(lambda v: f"{v:.6f}")
    elif kind == "bool":
        good = st.sampled_from(["T", "F", "t"])
    elif kind == "addr":
        good = st.sampled_from(["10.0.0.1", "::1", "fe80::1%eth0", "1.2.3.4.5", "g::1"])
    else:
        good = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=8).map(
            lambda t: t.replace("\t", "\\x09"))
    return st.one_of(good, special)


@st.composite
def _segment(draw: st.DrawFn) -> bytes:
    out = []
    for _ in range(draw(st.integers(0, 12))):
        shape = draw(st.sampled_from(["row", "row", "row", "row", "blank", "short", "long"]))
        if shape == "blank":
            out.append(b"\n")
            continue
        values = [draw(_value(kind.split("[")[0] if "[" not in kind else "string"))
                  for kind in TYPES]
        # At most one malformed field per row: the two paths name a row's first fault
        # differently when there are several (column order versus chunk order).
        bad = [i for i, v in enumerate(values) if not _plausible(NAMES[i], TYPES[i], v)]
        for i in bad[1:]:
            values[i] = "-"
        if shape == "short":
            values = values[:-1]
        elif shape == "long":
            values.append("x")
        out.append(("\t".join(values) + "\n").encode())
    return b"".join(out)


def _plausible(name: str, kind: str, value: str) -> bool:
    if value == "-":
        return True
    if kind == "time":
        return value not in ("(empty)", "", "zz")
    if kind in ("count", "port", "int"):
        typ = CONN_SPEC.column_type(CONN_SPEC.fields[name].column)
        bits = typ.bit_width
        low, high = ((-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if pa.types.is_signed_integer(typ)
                     else (0, 2**bits - 1))
        return value.lstrip("-").isdigit() and low <= int(value) <= high
    if kind == "interval":
        return value not in ("(empty)", "", "zz")
    if kind == "bool":
        return value in ("T", "F")
    if kind == "addr":
        return value in ("10.0.0.1", "::1")
    return True


@settings(max_examples=150, deadline=None)
@given(_segment())
def test_generated_segments_parse_the_same_both_ways(text: bytes) -> None:
    both(text)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=60).map(lambda b: b.replace(b"\n", b"")), max_size=20),
       st.sampled_from([b"\t", b",", b"::"]), st.sampled_from([b"-", b""]),
       st.sampled_from([b"(empty)", b""]), st.sampled_from([b",", b"::"]))
def test_any_bytes_never_break_the_scanner(lines: list[bytes], sep: bytes, unset: bytes,
                                           empty: bytes, set_sep: bytes) -> None:
    from egress import _zeekscan

    text = b"".join(x + b"\n" for x in lines)
    kinds = [_zeekscan.KIND_TIME, _zeekscan.KIND_UINT, _zeekscan.KIND_INT,
             _zeekscan.KIND_DOUBLE, _zeekscan.KIND_BOOL, _zeekscan.KIND_STRING,
             _zeekscan.KIND_ADDR, _zeekscan.KIND_SET]
    plan = [(i % 3, kind, 2 if kind == _zeekscan.KIND_UINT else 4, 5, -100, 65535)
            for i, kind in enumerate(kinds)]
    types = [TIMESTAMP, pa.uint16(), pa.int32(), pa.float64(), pa.bool_(), pa.string(),
             pa.string(), STRING_LIST]
    result = _zeekscan.scan_tsv(text, 0, len(text), 1, len(lines), separator=sep, unset=unset,
                                empty=empty, set_separator=set_sep, n_fields=3, plan=plan)
    if result is None:  # an escaped set element that is not UTF-8
        return
    n, line_buf, columns, issues = result
    dropped = sum(count for kind, (count, _) in issues.items() if kind != "masked_ts")
    assert n + dropped == len(lines)
    kept = pa.Array.from_buffers(pa.int64(), n, [None, pa.py_buffer(line_buf)]).to_pylist()
    assert kept == sorted(kept) and set(kept).isdisjoint(
        line for kind, (_, first) in issues.items() if kind != "masked_ts" for line in first)
    for (_, kind, *_), typ, col in zip(plan, types, columns, strict=True):
        arr = zeek_scan._array(kind, typ, n, col)
        arr.validate(full=True)
        assert len(arr) == n


# ------------------------------------------------------------------ JSON


def parse_json(text: bytes, *, compiled: bool, first_line: int = 10) -> ParsedRows:
    buf = bytearray(b"zz" + text + b"zz")
    return zeek_json.parse_chunk(buf, 2, 2 + len(text), first_line, text.count(b"\n"),
                                 CONN_SPEC, compiled=compiled)


def both_json(text: bytes) -> ParsedRows:
    """Parse JSON lines both ways, assert the results are equal, return the compiled one."""
    fast = parse_json(text, compiled=True)
    slow = parse_json(text, compiled=False)
    assert fast.lines.tolist() == slow.lines.tolist()
    # The line-by-line path notes range faults (a count too big for uint8) after the
    # others, so its first few lines need not be the first; the scanner's are.
    assert {k: c for k, (c, _) in fast.issues.items()} == {
        k: c for k, (c, _) in slow.issues.items()}
    for kind, (count, first) in fast.issues.items():
        assert first == sorted(first)
        if count <= len(first):
            assert sorted(slow.issues[kind][1]) == first
    for name, column in slow.columns.items():
        assert fast.columns[name].type == column.type, name
        assert fast.columns[name].to_pylist() == column.to_pylist(), name
    for column in fast.columns.values():
        column.validate(full=True)
    return fast


GOOD_JSON = {"ts": 1714521600.123456, "uid": "CAbc1", "id.orig_h": "10.0.0.5",
             "id.orig_p": 51000, "id.resp_h": "2001:db8::1", "id.resp_p": 443, "proto": "tcp",
             "duration": 12.5, "orig_bytes": 1000, "local_orig": True,
             "tunnel_parents": ["a"], "vlan": -5, "ip_proto": 6}


def obj(**changes: object) -> bytes:
    values: dict[str, object] = dict(GOOD_JSON)
    for name, value in changes.items():
        key = name.replace("__", ".")
        if value is ...:
            values.pop(key, None)
        else:
            values[key] = value
    return json.dumps(values).encode() + b"\n"


def test_json_values_escapes_and_absent_keys() -> None:
    text = (obj() + obj(uid="caf\u00e9 \"q\" \\ \t \U0001f600", tunnel_parents=[], vlan=None)
            + obj(duration=..., ip_proto=..., ts=1714521600, extra={"a": [1, {"b": None}]})
            + b' { "uid" : "C\\u00e9\\ud83d\\ude00" , "ts":1.5e9 }  \r\n')
    rows = both_json(text)
    cols = rows.columns
    assert rows.lines.tolist() == [10, 11, 12, 13]
    assert cols["uid"].to_pylist() == ["CAbc1", "café \"q\" \\ \t \U0001f600", "CAbc1",
                                       "Cé\U0001f600"]
    assert cols["ts"].cast(pa.int64()).to_pylist() == [1714521600123456, 1714521600123456,
                                                      1714521600000000, 1500000000000000]
    assert cols["tunnel_parents"].to_pylist() == [["a"], [], ["a"], None]
    assert cols["vlan"].to_pylist() == [-5, None, -5, None]
    assert cols["duration_s"].to_pylist() == [12.5, 12.5, None, None]
    assert cols["ip_proto"].to_pylist() == [6, 6, None, None]
    assert cols["local_orig"].to_pylist() == [True, True, True, None]
    assert rows.issues == {}


def test_json_bad_lines_are_dropped_and_counted() -> None:
    text = (obj(orig_bytes=-1)                     # 10 bad value
            + obj(orig_bytes=1.5)                  # 11 bad value: not an integer
            + obj(uid=5)                           # 12 bad value: not a string
            + obj(ip_proto=256, vlan=2**31)        # 13 bad value: uint8, int32
            + obj(local_orig="T")                  # 14 bad value
            + obj(tunnel_parents=["a", 1])         # 15 bad value
            + obj(id__orig_h="10.0.0.1/24")        # 16 bad address
            + b'{"uid": "C1",}\n'                  # 17 bad json
            + b'["not", "an", "object"]\n'         # 18 bad json
            + b'{"uid": "C\\x41"}\n'               # 19 bad json: not a JSON escape
            + b'{"uid": "C\xff"}\n'                # 20 bad json: not UTF-8
            + b'{"uid": "a\tb"}\n'                 # 21 bad json: raw control character
            + b"   \n"                             # 22 blank
            + obj(orig_bytes=2**64 - 1) + b'{"ts": 01}\n' + b'{} x\n' + obj())  # 23..26
    rows = both_json(text)
    assert rows.lines.tolist() == [23, 26]
    assert rows.issues == {
        "bad_value": (6, [10, 11, 12, 13, 14]),
        "bad_address": (1, [16]),
        "bad_json": (7, [17, 18, 19, 20, 21]),
        "blank_line": (1, [22]),
    }


def test_json_lone_surrogate_is_a_bad_value_where_it_is_stored() -> None:
    # Python's json keeps "\ud800"; no Arrow string can hold it (the line-by-line path fails).
    text = (b'{"uid": "C\\ud800"}\n{"tunnel_parents": ["\\udc00"]}\n'
            b'{"uid": "C1", "other": "\\ud800"}\n')
    rows = parse_json(text, compiled=True)
    assert rows.lines.tolist() == [12]
    assert rows.columns["uid"].to_pylist() == ["C1"]
    assert rows.issues == {"bad_value": (2, [10, 11])}


@pytest.mark.parametrize("line", [
    b'{"ts": "2024-05-01T00:00:00Z", "uid": "C1"}\n',   # ISO-8601 time
    b'{"duration": NaN, "uid": "C1"}\n',                # Python's json accepts NaN
    b'{"uid": "C1", "uid": "C2"}\n',                    # repeated key: the last one wins
    b'{"u\\u0069d": "C1"}\n',                           # escaped key
])
def test_json_inputs_left_to_python(line: bytes) -> None:
    assert zeek_scan.scan_json_chunk(line, 0, len(line), 1, 1, CONN_SPEC) is None
    rows = parse_json(line, compiled=True)
    assert rows.num_rows + sum(count for count, _ in rows.issues.values()) == 1


_JSON_VALUES: dict[str, st.SearchStrategy[object]] = {
    "time": st.one_of(st.floats(0, 4e9).map(lambda v: round(v, 6)), st.integers(0, 4 * 10**9)),
    "string": st.text(max_size=6),
    "addr": st.sampled_from(["10.0.0.1", "::1", "fe80::1%eth0", "1.2.3.4.5"]),
    "port": st.integers(0, 70_000),
    "count": st.integers(0, 2**64 + 5),
    "int": st.integers(-(2**31) - 2, 2**31 + 2),
    "double": st.one_of(st.floats(-1e6, 1e6), st.integers(-5, 5)),
    "bool": st.booleans(),
    "set": st.lists(st.text(max_size=3), max_size=3),
}


@st.composite
def _json_segment(draw: st.DrawFn) -> bytes:
    out = []
    for _ in range(draw(st.integers(0, 10))):
        shape = draw(st.sampled_from(["row", "row", "row", "blank", "broken", "wrong"]))
        if shape == "blank":
            out.append(b"\n")
            continue
        values: dict[str, object] = {}
        for zeek, fs in CONN_SPEC.fields.items():
            if draw(st.integers(0, 3)) == 0:
                continue  # absent
            values[zeek] = None if draw(st.integers(0, 6)) == 0 else draw(_JSON_VALUES[fs.kind])
        faults = [k for k, v in values.items() if not _json_ok(k, v)]
        for key in faults[1:]:  # one fault per row (see _segment)
            values[key] = None
        if shape == "wrong" and not faults and values:
            key = draw(st.sampled_from(sorted(values)))
            values[key] = draw(st.sampled_from([[1], {"a": 1}, "x", 1.5, True]))
            if _json_ok(key, values[key]):
                values[key] = {"a": 1}
        text = json.dumps(values, indent=draw(st.sampled_from([None, None, 0])))
        text = text.replace("\n", " ")
        if shape == "broken":
            text = text[: draw(st.integers(0, max(0, len(text) - 1)))]
        out.append(text.encode() + b"\n")
    return b"".join(out)


def _json_ok(key: str, value: object) -> bool:
    if value is None:
        return True
    fs = CONN_SPEC.fields[key]
    typ = CONN_SPEC.column_type(fs.column)
    if fs.kind == "addr":
        return value in ("10.0.0.1", "::1")
    if pa.types.is_integer(typ) and isinstance(value, int):
        bits: int = typ.bit_width
        low, high = ((-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if pa.types.is_signed_integer(typ)
                     else (0, 2**bits - 1))
        return bool(low <= value <= high)
    return True


@settings(max_examples=150, deadline=None)
@given(_json_segment())
def test_generated_json_parses_the_same_both_ways(text: bytes) -> None:
    both_json(text)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(
    st.binary(max_size=60),
    st.text(alphabet='{}[]":,.-+0123456789eEtrufalsn \\u\tabc\x00\x7f\xe9', max_size=60).map(
        lambda t: t.encode()),
), max_size=20))
def test_any_bytes_never_break_the_json_scanner(lines: list[bytes]) -> None:
    from egress import _zeekscan

    text = b"".join(x.replace(b"\n", b"") + b"\n" for x in lines)
    names = [zeek.encode() for zeek in CONN_SPEC.fields]
    plan = []
    for fs in CONN_SPEC.fields.values():
        entry = zeek_scan.plan_entry(0, fs.kind, CONN_SPEC.column_type(fs.column))
        assert entry is not None
        plan.append(entry)
    result = _zeekscan.scan_json(text, 0, len(text), 1, len(lines), names=names, plan=plan)
    if result is None:
        return
    n, _, columns, issues = result
    assert n + sum(count for count, _ in issues.values()) == len(lines)
    for fs, entry, col in zip(CONN_SPEC.fields.values(), plan, columns, strict=True):
        arr = zeek_scan._array(entry[1], CONN_SPEC.column_type(fs.column), n, col)
        arr.validate(full=True)
