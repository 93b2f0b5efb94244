"""The compiled pre-reduction of network transfers computes what the window SQL computes.

:class:`~egress.windows_network.NetworkReduction` (``egress._wincore``) against DuckDB
running :data:`~egress.windows_sql.HOURS_SQL`, :data:`~egress.windows_sql.CELLS_SQL` and
:data:`~egress.windows_sql.PRESENCE_SQL` on the same rows, under every horizon, input order
and batch split; its evidence candidates against :data:`~egress.windows_sql.EVIDENCE_RESULT_SQL`
over all rows; the C entry points against bad input.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from itertools import pairwise
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from egress._wincore import NetworkReducer, hash_strings, ipv4_numbers
from egress.transfers import TRANSFERS_SCHEMA
from egress.windows_network import HeldCells, NetworkReduction, Retired, TenantCodes
from egress.windows_sql import (
    CELL_US,
    CELLS_SQL,
    DAY_US,
    EVIDENCE_RESULT_SQL,
    HOUR_US,
    HOURS_SQL,
    PRESENCE_SQL,
)

#: The transfers schema with tenants as :class:`TenantCodes` codes, as the reduction sees it.
SCHEMA = TRANSFERS_SCHEMA.set(0, pa.field("tenant", pa.int32(), nullable=False))
U64 = 2**64 - 1
#: Instants transfers start around: before 1970, the epoch, 2026.
ANCHORS = [-3 * DAY_US - 1, 0, 1_790_000_000 * 10**6]
ADDRS = ["192.0.2.1", "192.0.2.2", "2001:db8::1", "", "203.0.113.77"]
SETTINGS = settings(derandomize=True, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow])


@st.composite
def network_rows(draw: st.DrawFn, max_rows: int = 24) -> list[dict[str, Any]]:
    """Network transfers over hours and days, with every optional column sometimes null."""
    rows = []
    for i in range(draw(st.integers(0, max_rows))):
        start = draw(st.sampled_from(ANCHORS)) + draw(st.one_of(
            st.integers(-2 * DAY_US, 2 * DAY_US), st.integers(0, 6 * HOUR_US),
            st.builds(lambda k, j: k * CELL_US + j, st.integers(-600, 600),
                      st.sampled_from([0, 1, -1, CELL_US // 2]))))
        duration = draw(st.one_of(
            st.just(0), st.integers(1, CELL_US), st.integers(1, 3 * HOUR_US),
            st.integers(1, 3 * DAY_US), st.sampled_from([CELL_US, HOUR_US, DAY_US, -5])))
        size = st.one_of(st.sampled_from([0, 5, U64]), st.integers(0, 1000),
                         st.integers(0, U64))
        remote = draw(st.sampled_from([None, *ADDRS]))
        rows.append({
            "tenant": draw(st.integers(0, 2)),
            "kind": "network",
            "start": start,
            "end": start + duration,
            "direction": draw(st.sampled_from(["inbound", "outbound", "internal"])),
            "bytes_in": draw(size),
            "bytes_out": draw(size),
            "remote_addr": remote,
            "remote_asn": draw(st.sampled_from([None, 0, 64512, 2**40])),
            "remote_country": draw(st.sampled_from([None, "CN", "NL", "US"])),
            "cross_border": draw(st.sampled_from([None, True, False])),
            "quality": draw(st.booleans()),
            "ref": f"r{i:03d}",
            "opened": draw(st.one_of(st.none(), st.integers(start - 2 * DAY_US,
                                                            start + HOUR_US))),
        })
    return rows


def table(rows: list[dict[str, Any]]) -> pa.Table:
    """Rows (times as microseconds) -> a table of :data:`SCHEMA`."""
    return pa.Table.from_arrays([
        pa.array([row.get(field.name) for row in rows],
                 pa.int64() if pa.types.is_timestamp(field.type) else field.type
                 ).cast(field.type)
        for field in SCHEMA], schema=SCHEMA)


def our_hashes(strings: Sequence[str | None]) -> list[int]:
    array = pa.array(strings, pa.string())
    _, offsets, data = array.buffers()
    hashes = np.frombuffer(hash_strings(offsets, b"" if data is None else data, array.offset,
                                        len(array)), np.uint64)
    return [int(h) for h in hashes]


@pytest.fixture(scope="module")
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect(config={"threads": 1})
    yield connection
    connection.close()


def sql_rows(con: duckdb.DuckDBPyConnection, transfers: pa.Table,
             statements: tuple[str, str]) -> list[tuple[Any, ...]]:
    """The rows both statements of a pair return for ``transfers``."""
    con.register("transfers", transfers)
    return [row for statement in statements for row in con.execute(statement).fetchall()]


def sql_hours(con: duckdb.DuckDBPyConnection,
              transfers: pa.Table) -> dict[tuple[Any, ...], list[int]]:
    out: dict[tuple[Any, ...], list[int]] = {}
    for tenant, t, country, cross_border, kind, crossing, b_in, b_out, starts, quality, \
            capacity, duration in sql_rows(con, transfers, HOURS_SQL):
        assert (kind, capacity) == ("network", None)
        merge_hour(out, (tenant, t, country, cross_border, crossing),
                   [b_in, b_out, starts, quality, duration])
    return out


def merge_hour(out: dict[tuple[Any, ...], list[int]], key: tuple[Any, ...],
               values: list[int]) -> None:
    if key in out:
        held = out[key]
        out[key] = [*(a + b for a, b in zip(held[:4], values[:4], strict=True)),
                    max(held[4], values[4])]
    else:
        out[key] = values


def sql_cells(con: duckdb.DuckDBPyConnection,
              transfers: pa.Table) -> dict[tuple[int, int], tuple[int, int]]:
    out: dict[tuple[int, int], tuple[int, int]] = defaultdict(lambda: (0, 0))
    for tenant, cell, b_in, b_out in sql_rows(con, transfers, CELLS_SQL):
        held = out[tenant, cell]
        out[tenant, cell] = (held[0] + b_in, held[1] + b_out)
    return dict(out)


def sql_presence(con: duckdb.DuckDBPyConnection, transfers: pa.Table) -> set[tuple[Any, ...]]:
    """The presence rows with each address mapped to our hash (the SQL keeps DuckDB's)."""
    statements = tuple(s.replace("hash(remote_addr)", "remote_addr") for s in PRESENCE_SQL)
    assert all(s != o for s, o in zip(statements, PRESENCE_SQL, strict=True))
    rows = sql_rows(con, transfers, (statements[0], statements[1]))
    hashes = dict(zip(ADDRS, our_hashes(ADDRS), strict=True))
    return {(tenant, t, hashes[addr], asn, country) for tenant, t, addr, asn, country in rows}


def wide(rows: dict[str, list[Any]], name: str, i: int) -> int:
    return int(rows[f"{name}_lo"][i]) + (int(rows[f"{name}_hi"][i]) << 64)


def reduced(parts: list[Retired]) -> tuple[dict[tuple[Any, ...], list[int]],
                                           dict[tuple[int, int], tuple[int, int]],
                                           set[tuple[Any, ...]], int]:
    """Retired rows summed per key (as the accumulators' compaction does); also how many
    presence rows there were."""
    hours: dict[tuple[Any, ...], list[int]] = {}
    cells: dict[tuple[int, int], tuple[int, int]] = defaultdict(lambda: (0, 0))
    presence: set[tuple[Any, ...]] = set()
    presence_rows = 0
    for part in parts:
        h = part.hours.to_pydict()
        for i in range(part.hours.num_rows):
            merge_hour(hours, (h["tenant"][i], h["t"][i], h["country"][i], h["cross_border"][i],
                               h["crossing"][i]),
                       [wide(h, "in", i), wide(h, "out", i), h["starts"][i],
                        h["quality_marked"][i], h["max_duration_us"][i]])
        c = part.cells.to_pydict()
        for i in range(part.cells.num_rows):
            held = cells[c["tenant"][i], c["cell"][i]]
            cells[c["tenant"][i], c["cell"][i]] = (held[0] + wide(c, "in", i),
                                                   held[1] + wide(c, "out", i))
        presence |= {tuple(row.values()) for row in part.presence.to_pylist()}
        presence_rows += part.presence.num_rows
    return hours, dict(cells), presence, presence_rows


def run(transfers: pa.Table, *, top: int, horizon_s: int, order: list[int],
        cuts: list[int]) -> tuple[list[Retired], pa.Table]:
    """Feed ``transfers`` in ``order``, split at ``cuts``; the retired parts and the
    candidates."""
    reduction = NetworkReduction(top, horizon_s=horizon_s)
    ordered = transfers.take(pa.array(order, pa.int64()))
    parts, candidates = [], []
    bounds = [0, *sorted(cuts), len(order)]
    for lo, hi in pairwise(bounds):
        candidates.append(reduction.add(ordered.slice(lo, hi - lo)))
        parts.append(reduction.retired())
        if horizon_s == 0:
            assert [p.num_rows for p in (parts[-1].hours, parts[-1].cells,
                                         parts[-1].presence)] == [0, 0, 0]
    parts.append(reduction.retired(everything=True))
    assert reduction.sizes() == (0, 0, 0, 0)
    assert reduction.retired(everything=True).hours.num_rows == 0
    check_peaks(parts)
    return parts, pa.concat_tables(candidates)


def check_peaks(parts: list[Retired]) -> None:
    """Each part's peaks are its cells' most bytes in and out per tenant and hour; a cell
    handed back again is flagged late (in that part and every later one), and
    ``cells_done`` is the end of the latest cell handed back so far."""
    seen: set[tuple[int, int]] = set()
    done, late = -(1 << 63), False
    for part in parts:
        c = part.cells.to_pydict()
        maxima: dict[tuple[int, int], tuple[int, int]] = {}
        keys = list(zip(c["tenant"], c["cell"], strict=True))
        for i, (tenant, cell) in enumerate(keys):
            was = maxima.get((tenant, cell // HOUR_US * HOUR_US), (0, 0))
            maxima[tenant, cell // HOUR_US * HOUR_US] = (max(was[0], wide(c, "in", i)),
                                                          max(was[1], wide(c, "out", i)))
            done = max(done, cell + CELL_US)
        p = part.peaks.to_pydict()
        assert {(p["tenant"][i], p["t"][i]): (wide(p, "in", i), wide(p, "out", i))
                for i in range(part.peaks.num_rows)} == maxima
        assert part.peaks.num_rows == len(maxima)
        fits = all(wide(c, "in", i) < 2**64 and wide(c, "out", i) < 2**64
                   and -2**31 <= cell // CELL_US < 2**31 for i, (_, cell) in enumerate(keys))
        if fits:  # packed: tenant, cell number, in, out
            packed = np.frombuffer(part.packed_cells or b"", HeldCells.PACKED)
            assert [tuple(int(x) for x in row) for row in packed.tolist()] == [
                (tenant, cell // CELL_US, c["in_lo"][i], c["out_lo"][i])
                for i, (tenant, cell) in enumerate(keys)]
        else:
            assert part.packed_cells is None
        if any(wide(p, "in", i) >= 2**64 or wide(p, "out", i) >= 2**64
               for i in range(part.peaks.num_rows)):
            assert part.cells_needed
        late = late or len(set(keys)) < len(keys) or not seen.isdisjoint(keys)
        if late:
            assert part.cells_needed
        seen.update(keys)
        assert part.cells_done == done


def evidence(con: duckdb.DuckDBPyConnection, rows: pa.Table, top: int) -> list[str]:
    """The refs :data:`EVIDENCE_RESULT_SQL` keeps of ``rows``."""
    con.register("evidence_acc", rows)
    return [ref for (ref,) in con.execute(
        f"SELECT ref FROM ({EVIDENCE_RESULT_SQL})", {"top": top}).fetchall()]


@st.composite
def runs(draw: st.DrawFn, n: int) -> tuple[int, list[int], list[int]]:
    """A horizon, an input order and batch cuts."""
    horizon = draw(st.sampled_from([0, 1, 3600, 7200, 86400]))
    order = draw(st.one_of(st.just(list(range(n))), st.permutations(range(n))))
    cuts = draw(st.lists(st.integers(0, n), max_size=4))
    return horizon, order, cuts


@settings(SETTINGS, max_examples=60)
@given(data=st.data(), rows=network_rows(), top=st.integers(0, 3))
def test_reduction_matches_sql(con: duckdb.DuckDBPyConnection, data: st.DataObject,
                               rows: list[dict[str, Any]], top: int) -> None:
    """Against HOURS_SQL, CELLS_SQL, PRESENCE_SQL (both statements of each) and the
    evidence ranking over all rows: sorted in one batch with no horizon, then in a drawn
    order, split and horizon."""
    transfers = table(rows)
    expected_hours = sql_hours(con, transfers)
    expected_cells = sql_cells(con, transfers)
    expected_presence = sql_presence(con, transfers)
    expected_evidence = evidence(con, transfers, top)
    by_start = sorted(range(len(rows)), key=lambda i: rows[i]["start"])
    for horizon, order, cuts in [(0, by_start, []), data.draw(runs(len(rows)))]:
        parts, candidates = run(transfers, top=top, horizon_s=horizon, order=order, cuts=cuts)
        hours, cells, presence, _ = reduced(parts)
        assert hours == expected_hours
        assert cells == expected_cells
        assert presence == expected_presence
        refs = candidates.column("ref").to_pylist()
        assert len(set(refs)) == len(refs)
        assert candidates.equals(transfers.take(pa.array(
            [int(ref[1:]) for ref in refs], pa.int64())))
        assert evidence(con, candidates, top) == expected_evidence


@settings(SETTINGS, max_examples=30)
@given(rows=network_rows())
def test_distinct_addresses_match_duckdb_hash(con: duckdb.DuckDBPyConnection,
                                              rows: list[dict[str, Any]]) -> None:
    """Per (tenant, hour), as many distinct address hashes as DuckDB's ``hash`` gives;
    and the same (tenant, hour, asn, country) sets."""
    transfers = table(rows)
    con_rows = sql_rows(con, transfers, PRESENCE_SQL)
    parts, _ = run(transfers, top=1, horizon_s=1, order=list(range(len(rows))), cuts=[])
    _, _, presence, _ = reduced(parts)

    def distinct(found: list[tuple[Any, ...]] | set[tuple[Any, ...]]
                 ) -> tuple[dict[tuple[int, int], int], set[tuple[Any, ...]]]:
        addrs: dict[tuple[int, int], set[int]] = defaultdict(set)
        for tenant, t, addr, _asn, _country in found:
            addrs[tenant, t].add(addr)
        return ({key: len(value) for key, value in addrs.items()},
                {(tenant, t, asn, country) for tenant, t, _, asn, country in found})

    assert distinct(presence) == distinct(con_rows)


def test_sums_beyond_64_bits_and_cumulative_floor() -> None:
    base = 1_790_000_000 * 10**6 // HOUR_US * HOUR_US
    s = base + 1000
    rows: list[dict[str, Any]] = [
        {"tenant": 0, "start": base, "end": base + 10, "bytes_in": U64, "bytes_out": 1},
        {"tenant": 0, "start": base + 5, "end": base + 5, "bytes_in": U64, "bytes_out": U64},
        {"tenant": 0, "start": s, "end": s + 3 * HOUR_US, "bytes_in": U64, "bytes_out": 7,
         "opened": s - 5},
    ]
    for row in rows:
        row.update(kind="network", direction="inbound", quality=True, ref="r")
    parts, _ = run(table(rows), top=0, horizon_s=0, order=[0, 1, 2], cuts=[])
    hours, cells, _, presence_rows = reduced(parts)
    d = 3 * HOUR_US

    def share(total: int, lo: int, hi: int) -> int:
        return total * hi // d - total * lo // d

    first, last = HOUR_US - 1000, 3 * HOUR_US - 1000
    assert hours == {
        (0, base, None, False, True): [2 * U64 + share(U64, 0, first),
                                       U64 + 1 + share(7, 0, first), 3, 3, 3 * HOUR_US + 5],
        (0, base + HOUR_US, None, False, True): [share(U64, first, first + HOUR_US),
                                                 share(7, first, first + HOUR_US), 0, 0,
                                                 3 * HOUR_US + 5],
        (0, base + 2 * HOUR_US, None, False, True): [share(U64, first + HOUR_US, last),
                                                     share(7, first + HOUR_US, last), 0, 0,
                                                     3 * HOUR_US + 5],
        (0, base + 3 * HOUR_US, None, False, True): [share(U64, last, d), share(7, last, d),
                                                     0, 0, 3 * HOUR_US + 5],
    }
    assert sum(v[0] for v in hours.values()) == 3 * U64
    assert len(cells) == 37 and sum(v[0] for v in cells.values()) == 3 * U64
    assert cells[0, base] == (2 * U64 + share(U64, 0, CELL_US - 1000),
                              U64 + 1 + share(7, 0, CELL_US - 1000))
    assert presence_rows == 0


def test_horizon_bounds_memory_on_time_ordered_input() -> None:
    """Hour by hour over 100 hours, two tenants: entries of the last three hours are held
    (horizon 2 h), what is handed back lies before the horizon, and nothing is lost."""
    reduction = NetworkReduction(2)
    first = 1_790_000_000 * 10**6 // DAY_US * DAY_US
    total = 0
    for k in range(100):
        t = first + k * HOUR_US
        batch = table([{"tenant": tenant, "kind": "network", "start": t, "end": t + HOUR_US,
                        "direction": "outbound", "bytes_in": 12, "bytes_out": 0,
                        "remote_addr": "192.0.2.1", "quality": False, "ref": f"{k}"}
                       for tenant in (0, 1)])
        assert reduction.add(batch).num_rows == 2  # ties with the top-th are kept
        retired = reduction.retired()
        for name in ("hours", "presence"):
            assert all(x < t - 2 * HOUR_US for x in getattr(retired, name).column("t").to_pylist())
        assert all(x < t - 2 * HOUR_US for x in retired.cells.column("cell").to_pylist())
        total += sum(retired.hours.column("in_lo").to_pylist())
        hours, cells, presence, heaps = reduction.sizes()
        held = min(k + 1, 3)
        assert (hours, cells, presence) == (2 * held, 2 * 12 * held, 2 * held)
        day = t // DAY_US * DAY_US
        assert heaps == 2 * len(range(max(first, (t - 2 * HOUR_US) // DAY_US * DAY_US - DAY_US),
                                      day + 1, DAY_US))  # down to the day before the horizon's
    last = reduction.retired(everything=True)
    assert total + sum(last.hours.column("in_lo").to_pylist()) == 100 * 2 * 12
    assert not last.cells_needed and last.cells_done == first + 100 * HOUR_US
    peaks = last.peaks.to_pydict()  # 12 bytes over an hour's 12 cells: 1 byte each
    assert [peaks[name] for name in ("in_lo", "in_hi", "out_lo", "out_hi")] == [
        [1] * 6, [0] * 6, [0] * 6, [0] * 6]
    assert sorted(zip(last.peaks.column("tenant").to_pylist(),
                      last.peaks.column("t").to_pylist(), strict=True)) == [
        (tenant, first + k * HOUR_US) for tenant in (0, 1) for k in (97, 98, 99)]
    # a row in a cell handed back: the peaks no longer stand for the cells
    reduction.add(table([{"tenant": 0, "kind": "network", "start": first, "end": first,
                          "direction": "outbound", "bytes_in": 5, "bytes_out": 0,
                          "remote_addr": "192.0.2.1", "quality": False, "ref": "late"}]))
    again = reduction.retired(everything=True)
    assert again.cells_needed and again.cells.num_rows == 1


@settings(SETTINGS, max_examples=60)
@given(sizes=st.lists(st.tuples(st.integers(0, 1), st.integers(-2, 2),
                                st.sampled_from([0, 1, 5, 5, 9, U64])), max_size=30),
       top=st.integers(0, 3))
def test_candidates_are_the_rows_reaching_the_top_so_far(
        sizes: list[tuple[int, int, int]], top: int) -> None:
    """One row per batch (no retiring): a row is a candidate exactly when fewer than
    ``top`` earlier rows of its tenant and UTC day are larger."""
    reduction = NetworkReduction(top, horizon_s=0)
    seen: dict[tuple[int, int], list[int]] = defaultdict(list)
    for i, (tenant, day, size) in enumerate(sizes):
        start = day * DAY_US - (i % 2)  # odd: the last microsecond of the day before
        bytes_in, bytes_out = (size, i % 3) if i % 2 else (i % 3, size)
        row = table([{"tenant": tenant, "kind": "network", "start": start, "end": start,
                      "direction": "inbound", "bytes_in": bytes_in, "bytes_out": bytes_out,
                      "quality": False, "ref": f"{i}"}])
        key = (tenant, start // DAY_US)
        expected = sum(earlier > max(size, i % 3) for earlier in seen[key]) < top
        assert reduction.add(row).num_rows == int(expected)
        seen[key].append(max(size, i % 3))


def test_tenant_codes() -> None:
    codes = TenantCodes()
    encoded = codes.encode(pa.chunked_array([["b", "a"], [None, "b", "c"]]))
    assert encoded.to_pylist() == [0, 1, None, 0, 2]
    assert codes.code_of("a") == 1 and codes.code_of("d") == 3
    assert codes.names().to_pydict() == {"tenant": [0, 1, 2, 3], "name": ["b", "a", "c", "d"],
                                         "name_rank": [1, 0, 2, 3]}


# -- hash_strings -------------------------------------------------------------------------

@settings(SETTINGS, max_examples=60)
@given(strings=st.lists(st.one_of(st.none(), st.text(alphabet="ab\x00é", max_size=12),
                                  st.sampled_from(ADDRS)), max_size=40),
       cut=st.integers(0, 10))
def test_hash_strings_equal_for_equal_strings(strings: list[str | None], cut: int) -> None:
    array = pa.array(strings, pa.string())
    sliced = array.slice(min(cut, len(array)))
    _, offsets, data = sliced.buffers()
    assert sliced.offset == min(cut, len(array))
    got = np.frombuffer(hash_strings(offsets, b"" if data is None else data, sliced.offset,
                                     len(sliced)), np.uint64).tolist()
    values = sliced.to_pylist()
    for value, h in zip(values, got, strict=True):
        if value is not None:
            assert our_hashes([value]) == [h]  # alone, at offset 0, as in the slice
    by_value = {v: h for v, h in zip(values, got, strict=True) if v is not None}
    assert len(set(by_value.values())) == len(by_value)


def test_hash_strings_no_collision_in_100k_distinct() -> None:
    strings = [f"10.{i >> 16}.{(i >> 8) & 255}.{i & 255}" for i in range(90_000)]
    strings += [f"2001:db8::{i:x}" for i in range(9_800)]
    strings += ["\x00" * n for n in range(100)] + ["a" * n for n in range(1, 101)]
    assert len(set(strings)) == 100_000
    assert len(set(our_hashes(strings))) == 100_000


# -- bad input ----------------------------------------------------------------------------

def columns(n: int) -> list[np.ndarray[Any, Any]]:
    return [np.zeros(n, np.int32), *(np.zeros(n, np.int64) for _ in range(3)),
            np.zeros(n, np.uint64), np.zeros(n, np.uint64), np.zeros(n, np.uint8),
            np.zeros(n, np.int16), np.zeros(n, np.uint64), np.zeros(n, np.int64)]


@pytest.mark.parametrize("column", range(10))
def test_reducer_rejects_a_column_of_another_length(column: int) -> None:
    reducer = NetworkReducer(3, 0)
    args = columns(4)
    args[column] = args[column][:3]
    names = ["tenant", "start", "end", "opened", "bytes_in", "bytes_out", "flags", "country",
             "addr", "asn"]
    with pytest.raises(ValueError, match=f"column {names[max(column, 1)]}: "):
        reducer.add(*args)
    assert reducer.sizes() == (0, 0, 0, 0)
    assert np.frombuffer(reducer.add(*columns(4)), np.int64).tolist() == [0, 1, 2, 3]


def test_reducer_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="must not be negative"):
        NetworkReducer(-1)
    with pytest.raises(ValueError, match="must not be negative"):
        NetworkReducer(1, -1)
    reducer = NetworkReducer()
    with pytest.raises(TypeError):
        reducer.add(*columns(2)[:9])
    with pytest.raises(ValueError, match="column start: 12 bytes, expected 16"):
        reducer.add(columns(2)[0], b"\x00" * 12, *columns(2)[2:])
    with pytest.raises(TypeError):
        reducer.add([0, 0], *columns(2)[1:])
    strided = np.zeros(4, np.int64)[::2]
    with pytest.raises(ValueError, match="not C-contiguous"):
        reducer.add(columns(2)[0], strided, *columns(2)[2:])
    assert reducer.take(True) == (b"", b"", b"")


def test_reducer_refuses_a_second_thread() -> None:
    """While one thread's add() runs without the GIL, calls from another raise instead of
    corrupting the tables."""
    reducer = NetworkReducer(3, 0)
    n = 50_000
    args = columns(n)
    args[2] = np.full(n, DAY_US, np.int64)  # each row: 24 hours and 288 cells, same keys
    args[6] = np.full(n, 1, np.uint8)
    worker = threading.Thread(target=reducer.add, args=args)
    calls: dict[str, Callable[[], object]] = {
        "take": reducer.take, "add": lambda: reducer.add(*columns(0))}
    refused = dict.fromkeys(calls, 0)
    worker.start()
    while worker.is_alive():
        for name, call in calls.items():
            try:
                call()
            except RuntimeError as exc:
                assert str(exc) == "NetworkReducer is in use by another thread"
                refused[name] += 1
    worker.join()
    assert min(refused.values()) > 0
    assert reducer.sizes() == (24, 288, 0, 1)


@pytest.mark.parametrize("function", [hash_strings, ipv4_numbers])
@pytest.mark.parametrize(("offsets", "data", "offset", "length", "message"), [
    ([0, 1, 2], b"ab", 0, 3, "offsets buffer too short"),
    ([0, 1, 2], b"ab", 3, 0, "offsets buffer too short"),
    ([0, 1, 2], b"ab", -1, 1, "offsets buffer too short"),
    ([0, 1, 2], b"ab", 0, -1, "offsets buffer too short"),
    ([0, 1, 2], b"ab", 2**61, 0, "offsets buffer too short"),  # 4 * offset overflows
    ([0, 1, 2], b"ab", 2**62 - 1, 0, "offsets buffer too short"),
    ([0, 1, 2], b"ab", 1, 2**62, "offsets buffer too short"),
    ([0, 1, 3], b"ab", 0, 2, "bad string offsets"),  # past the data
    ([0, 2, 1], b"ab", 0, 2, "bad string offsets"),  # decreasing
    ([-1, 1, 2], b"ab", 0, 2, "bad string offsets"),
    ([5, 0, 1, 2], b"ab", 1, 2, None),  # only the slice's offsets are read
    ([0, 1, 2], b"ab", 2, 0, None),
])
def test_string_functions_check_offsets(function: Any, offsets: list[int], data: bytes,
                                        offset: int, length: int, message: str | None) -> None:
    raw = np.array(offsets, np.int32).tobytes()
    if message is None:
        assert len(function(raw, data, offset, length)) == 8 * length
    else:
        with pytest.raises(ValueError, match=message):
            function(raw, data, offset, length)
