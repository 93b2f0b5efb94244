"""A batch reduces as its rows one by one, in the order the reducer takes them.

:class:`egress._wincore.NetworkReducer` sorts a batch by (hour, tenant), looks the keys of
rows ahead up early and remembers the entries of the keys just used. None of this may change
what it hands out: fed the same rows one per call, in that order, a reducer must hand back the
same bytes (retired records, candidates, counts, sizes) after every batch. The rows are drawn
to reach the edges of that machinery: many countries in one (tenant, hour) (recent slots
shared), rows of no tenant between others, late rows behind the horizon, times before 1970,
transfers over many hours and cells, tenant codes too wide for the packed sort key, batches
growing and shrinking.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import numpy as np
import pytest

from egress._wincore import NetworkReducer

HOUR_US = 3_600_000_000
CELL_US = 300_000_000
#: flags: crossing, cross-border, quality, remote, ASN (egress.windows_network)
CROSSING, CROSS_BORDER, QUALITY, REMOTE, HAS_ASN = 1, 2, 4, 8, 16

Columns = list[np.ndarray[Any, Any]]


def rows(n: int, *, seed: int, wide_tenants: bool = False) -> Columns:
    """``n`` rows near time order over a few hours, with the edges named in the module doc."""
    rng = np.random.default_rng(seed)
    base = 1_790_000_000 * 10**6
    start = base + np.sort(rng.integers(0, 5 * HOUR_US, n))
    late = rng.random(n) < 0.05
    start[late] -= rng.integers(1, 12, late.sum()) * HOUR_US  # behind a 2 h horizon
    old = rng.random(n) < 0.02
    start[old] = rng.integers(-3 * HOUR_US, HOUR_US, old.sum())  # around and before 1970
    duration = rng.integers(0, CELL_US, n)
    long = rng.random(n) < 0.03
    duration[long] = rng.integers(CELL_US, 7 * HOUR_US, long.sum())
    tenants = np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, -1] if not wide_tenants
                       else [0, 3, 2**31 - 1, 2**31 - 5, 70_000, -1, -7], np.int32)
    tenant = rng.choice(tenants, n)
    flags = rng.choice(np.array([0, CROSSING, CROSSING | CROSS_BORDER | REMOTE,
                                 CROSSING | REMOTE | HAS_ASN, REMOTE | QUALITY,
                                 CROSSING | CROSS_BORDER | REMOTE | HAS_ASN | QUALITY],
                                np.uint8), n)
    # countries -1 .. 12: keys of one (tenant, hour) share recent slots (8 countries apart)
    country = rng.integers(-1, 13, n).astype(np.int16)
    sizes = rng.integers(0, 10**6, n).astype(np.uint64)
    sizes[rng.random(n) < 0.01] = 2**64 - 1
    return [tenant, start, start + duration, start - rng.integers(0, HOUR_US, n),
            sizes, rng.integers(0, 10**5, n).astype(np.uint64), flags, country,
            rng.integers(0, 50, n).astype(np.uint64), rng.integers(0, 5, n).astype(np.int64)]


def taken_order(cols: Columns) -> np.ndarray[Any, Any]:
    """The order a batch is reduced in: stably by hour of start, then tenant as uint32."""
    return np.lexsort((cols[0].astype(np.uint32), cols[1] // HOUR_US))


def state(reducer: NetworkReducer, sketches: bool) -> tuple[Any, ...]:
    counts = reducer.distinct() if sketches else b""
    return reducer.take(False, True), reducer.sizes(), counts  # (with the cells' peaks)


@pytest.mark.parametrize("wide", [False, True])
@pytest.mark.parametrize(("top", "horizon_s", "keep_hours"),
                         [(3, 7200, -1), (2, 3600, 6), (0, 0, 2), (5, 86400, -1)])
def test_batches_reduce_as_their_rows_one_by_one(wide: bool, top: int, horizon_s: int,
                                                 keep_hours: int) -> None:
    sketches = keep_hours >= 0
    batched = NetworkReducer(top, horizon_s, sketch_keep_hours=keep_hours)
    single = NetworkReducer(top, horizon_s, sketch_keep_hours=keep_hours)
    data = rows(26_000, seed=7 + wide, wide_tenants=wide)
    cuts = [0, 300, 9_300, 9_301, 19_000, 19_050, 26_000]  # the scratch grows and shrinks
    held = 0
    for lo, hi in pairwise(cuts):
        cols = [np.ascontiguousarray(c[lo:hi]) for c in data]
        chosen = np.frombuffer(batched.add(*cols), np.int64).tolist()
        expected = []
        for row in taken_order(cols).tolist():
            if single.add(*(c[row:row + 1] for c in cols)):
                expected.append(row)
        assert chosen == expected
        got, want = state(batched, sketches), state(single, sketches)
        assert got == want
        held += sum(len(part) for part in got[0][:3])
    assert batched.take(True) == single.take(True)  # (frees the scratch: it comes back)
    cols = [np.ascontiguousarray(c[:2_000]) for c in rows(2_000, seed=5, wide_tenants=wide)]
    chosen = np.frombuffer(batched.add(*cols), np.int64).tolist()
    assert chosen == [row for row in taken_order(cols).tolist()
                      if single.add(*(c[row:row + 1] for c in cols))]
    assert state(batched, sketches) == state(single, sketches)
    # retired records were compared along the way, not only at the end (horizon 0: none)
    assert (held > 0) == (horizon_s > 0)
    if sketches:
        assert batched.distinct() == single.distinct()


def test_rows_of_no_tenant_leave_the_keys_of_their_neighbours_alone() -> None:
    """Rows of tenant -1 are skipped, also when looked ahead: the batch with them reduces as
    the batch without them (candidates: the same rows)."""
    data = rows(5_000, seed=3)
    data[0][:] = np.where(np.arange(5_000) % 3 == 0, -1, data[0] % 4)
    keep = np.flatnonzero(data[0] >= 0)
    with_none, without = NetworkReducer(4, 7200), NetworkReducer(4, 7200)
    chosen = np.frombuffer(with_none.add(*data), np.int64)
    chosen_without = np.frombuffer(without.add(*(np.ascontiguousarray(c[keep])
                                                 for c in data)), np.int64)
    assert keep[chosen_without].tolist() == chosen.tolist()
    assert with_none.take(True) == without.take(True)
    assert with_none.sizes() == without.sizes() == (0, 0, 0, 0)


def test_hours_sum_the_rows_of_every_key_in_a_crowded_tenant_hour() -> None:
    """One tenant, one hour, every country and flag mix (recent slots shared by several
    keys): each hours record holds the sums of exactly its rows."""
    rng = np.random.default_rng(11)
    n = 4_000
    hour = 100 * HOUR_US
    start = hour + np.sort(rng.integers(0, HOUR_US - 1, n))
    country = rng.integers(-1, 40, n).astype(np.int16)
    flags = rng.choice(np.array([0, CROSSING, CROSS_BORDER, CROSSING | CROSS_BORDER],
                                np.uint8), n)
    bytes_in = rng.integers(0, 1000, n).astype(np.uint64)
    cols = [np.zeros(n, np.int32), start, start + 1, start, bytes_in, np.zeros(n, np.uint64),
            flags, country, np.zeros(n, np.uint64), np.zeros(n, np.int64)]
    reducer = NetworkReducer(1, 0)
    reducer.add(*cols)
    hours, _, _ = reducer.take(True)
    records = np.frombuffer(hours, np.dtype([
        ("tenant", "<i4"), ("country", "<i2"), ("cross_border", "u1"), ("crossing", "u1"),
        ("t", "<i8"), ("pad", "<i8"), ("in_lo", "<u8"), ("in_hi", "<u8"), ("out_lo", "<u8"),
        ("out_hi", "<u8"), ("starts", "<i8"), ("quality", "<i8"), ("max_duration", "<i8")]))
    got = {(int(r["country"]), int(r["cross_border"]), int(r["crossing"])):
           (int(r["in_lo"]), int(r["starts"])) for r in records}
    assert len(got) == len(records)  # one record a key
    want: dict[tuple[int, int, int], tuple[int, int]] = {}
    for c, f, b in zip(country.tolist(), flags.tolist(), bytes_in.tolist(), strict=True):
        key = (c, int(f & CROSS_BORDER != 0), int(f & CROSSING != 0))
        total, starts = want.get(key, (0, 0))
        want[key] = (total + b, starts + 1)
    assert got == want
    assert set(records["t"].tolist()) == {hour}


def test_sketch_passes_left_running_end_before_the_next_call() -> None:
    """add() returns while the sketch pass of a batch of 8,192 rows or more still runs; the
    next add, sketch_sizes, forget, distinct or take(True) waits for it; take() hands over
    the main pass's outputs beside it. Batches added back to back count as their rows one
    by one."""
    batched = NetworkReducer(2, 3600, sketch_keep_hours=3)
    single = NetworkReducer(2, 3600, sketch_keep_hours=3)
    data = rows(30_000, seed=13)
    taken: list[list[bytes]] = [[], []]
    for lo in range(0, 30_000, 10_000):
        cols = [np.ascontiguousarray(c[lo:lo + 10_000]) for c in data]
        batched.add(*cols)
        taken[0].append(b"".join(batched.take()))  # beside the pass still running
        for row in taken_order(cols).tolist():
            single.add(*(c[row:row + 1] for c in cols))
        taken[1].append(b"".join(single.take()))
    assert taken[0] == taken[1]
    assert any(taken[0])
    assert batched.sketch_sizes() == single.sketch_sizes()
    assert batched.sketch_sizes()[0] > 0
    cols = [np.ascontiguousarray(c[:9_000]) for c in rows(9_000, seed=14)]
    batched.add(*cols)
    for row in taken_order(cols).tolist():
        single.add(*(c[row:row + 1] for c in cols))
    horizon = int(data[1].min()) + 2 * HOUR_US
    batched.forget(horizon)
    single.forget(horizon)
    assert batched.distinct() == single.distinct()
    assert batched.take(True) == single.take(True)


@pytest.mark.parametrize(("top", "horizon_s"), [(1, 0), (3, 0), (2, 7200)])
def test_pruned_candidates_drop_only_those_outranked_at_the_batch_end(top: int,
                                                                     horizon_s: int) -> None:
    """``prune``: the candidates less those whose (tenant, day) has ``top`` candidates
    strictly larger by the end of the batch (never more: a heap let go keeps nothing); the
    reduction itself is the same."""
    pruned, plain = NetworkReducer(top, horizon_s), NetworkReducer(top, horizon_s)
    data = rows(20_000, seed=11)
    day_us = 24 * HOUR_US
    picked: dict[tuple[int, int], list[int]] = {}
    dropped_total = 0
    for lo, hi in pairwise([0, 5_000, 5_001, 12_000, 20_000]):
        cols = [np.ascontiguousarray(c[lo:hi]) for c in data]
        got = np.frombuffer(pruned.add(*cols, True), np.int64).tolist()
        every = np.frombuffer(plain.add(*cols), np.int64).tolist()
        assert np.frombuffer(plain.add(*(c[:0] for c in cols), False), np.int64).size == 0
        size = np.maximum(cols[4], cols[5])
        for row in every:
            key = (int(cols[0][row]), int(cols[1][row]) // day_us)
            picked.setdefault(key, []).append(int(size[row]))

        def outranked(row: int, size: Any = size, cols: Columns = cols) -> bool:
            larger = sorted(picked[(int(cols[0][row]), int(cols[1][row]) // day_us)])[-top:]
            return len(larger) == top and int(size[row]) < larger[0]

        if horizon_s == 0:  # no heap let go: exactly the outranked ones dropped
            assert got == [row for row in every if not outranked(row)]
        else:
            assert set(got) <= set(every)
            assert all(outranked(row) for row in set(every) - set(got))
        dropped_total += len(every) - len(got)
        assert pruned.take() == plain.take() and pruned.sizes() == plain.sizes()
    assert dropped_total > 0
    assert pruned.take(True) == plain.take(True)


def test_hours_split_tells_when_a_crossing_key_may_come_twice() -> None:
    """take(..., True)[7]: whether two crossing hours records may share (tenant, hour,
    country): an hour entry made again after its hour was handed out, or one country both
    with and without cross_border; never for keys that stay one entry."""
    base = 1_790_000_000 * 10**6

    def row(hour: int, flags: int, country: int = 3) -> Columns:
        start = np.array([base + hour * HOUR_US + 60 * 10**6], np.int64)
        return [np.array([7], np.int32), start, start, start, np.array([10], np.uint64),
                np.array([1], np.uint64), np.array([flags], np.uint8),
                np.array([country], np.int16), np.array([1], np.uint64),
                np.array([1], np.int64)]

    def split(*batches: Columns) -> bool:
        reducer = NetworkReducer(2, 3600)
        for batch in batches:
            reducer.add(*batch)
        return reducer.take(False, True)[7]

    across, within = CROSSING | CROSS_BORDER | REMOTE, CROSSING | REMOTE
    assert split(row(0, across), row(0, across), row(1, within, 4)) is False
    assert split(row(0, across), row(1, within)) is True  # country 3 both ways
    assert split(row(0, REMOTE | CROSS_BORDER), row(0, REMOTE), row(0, within)) is False
    assert split(row(0, across), row(3, across), row(4, across)) is False  # hour 0 out
    assert split(row(0, across), row(3, across), row(0, across)) is True  # hour 0 again
    assert split(row(0, across, -1), row(0, within, -1)) is False  # no country


HOUR_RECORD = np.dtype([
    ("tenant", "<i4"), ("country", "<i2"), ("cross_border", "u1"), ("crossing", "u1"),
    ("t", "<i8"), ("pad", "<i8"), ("in_lo", "<u8"), ("in_hi", "<u8"), ("out_lo", "<u8"),
    ("out_hi", "<u8"), ("starts", "<i8"), ("quality", "<i8"), ("max_duration", "<i8"),
])
DISTINCT_ROW = np.dtype([
    ("tenant", "<i4"), ("country", "<i2"), ("span", "u1"), ("flags", "u1"), ("t", "<i8"),
    ("addrs", "<i8"), ("asns", "<i8"),
])


@pytest.mark.parametrize("late", [False, True])
def test_columns_are_the_records_field_by_field(late: bool) -> None:
    """take(..., columns=True) and distinct(..., columns=True) hand out the fields of the
    records the plain calls hand out, each field's values one after another."""
    cols = rows(3_000, seed=11)
    as_records, as_columns = (NetworkReducer(3, 7200, 2) for _ in range(2))
    for reducer in (as_records, as_columns):
        reducer.add(*cols)
        if late:  # a batch a day behind, long after its hours' sketches were let go
            reducer.add(*cols[:1], cols[1] - 24 * HOUR_US, cols[2] - 24 * HOUR_US,
                        cols[3] - 24 * HOUR_US, *cols[4:])
    hours, *rest = as_records.take(True, True)
    columns, *rest_columns = as_columns.take(True, True, True)
    assert rest == rest_columns
    records = np.frombuffer(hours, HOUR_RECORD)
    names = [n for n in HOUR_RECORD.names or () if n != "pad"]
    assert len(records) > 100
    assert len(columns) == len(names)
    for name, column in zip(names, columns, strict=True):
        assert np.array_equal(np.frombuffer(column, HOUR_RECORD[name]), records[name]), name
    counts = np.frombuffer(as_records.distinct(), DISTINCT_ROW)
    (tenant, country, span, t, addrs, asns), flags = as_columns.distinct(None, -(1 << 63), True)
    assert len(counts) > 100
    assert flags == counts["flags"][0] and set(counts["flags"]) == {1 if late else 0}
    for name, column in (("tenant", tenant), ("country", country), ("span", span), ("t", t),
                         ("addrs", addrs), ("asns", asns)):
        assert np.array_equal(np.frombuffer(column, DISTINCT_ROW[name]), counts[name]), name
    assert as_columns.take(False, True, True)[0] == tuple(b"" for _ in names)
    assert NetworkReducer(3, 7200, 2).distinct(None, 0, True) == ((b"",) * 6, 0)


def expected_totals(records: np.ndarray[Any, Any],
                    concern: set[int]) -> dict[tuple[int, int], list[int]]:
    """The hours records summed per (tenant, hour) as ``hour_base`` sums them, in Python."""
    totals: dict[tuple[int, int], list[int]] = {}
    for r in records:
        x = totals.setdefault((int(r["tenant"]), int(r["t"])), [0] * 9)
        if r["crossing"]:
            got_in = int(r["in_lo"]) + (int(r["in_hi"]) << 64)
            got_out = int(r["out_lo"]) + (int(r["out_hi"]) << 64)
            worried = int(r["country"]) in concern
            for at, on in ((0, True), (2, bool(r["cross_border"])), (4, worried)):
                if on:
                    x[at] += got_in
                    x[at + 1] += got_out
        x[6] += int(r["starts"])
        x[7] += int(r["quality"])
        x[8] = max(x[8], int(r["max_duration"]))
    return totals


TOTAL_TYPES = ("<i4", "<i8", *("<u8",) * 12, "<i8", "<i8", "<i8")


def totals_of(taken: tuple[bytes, ...]) -> list[tuple[tuple[int, int], list[int]]]:
    """take(..., concern)'s totals as ((tenant, hour), [in, out, cross-border in, out,
    concern in, out, starts, quality, longest duration]) with 128-bit sums whole."""
    columns = [np.frombuffer(c, t).tolist() for c, t in zip(taken, TOTAL_TYPES, strict=True)]
    out = []
    for tenant, t, *rest in zip(*columns, strict=True):
        sums = [lo + (hi << 64) for lo, hi in zip(rest[0:12:2], rest[1:12:2], strict=True)]
        out.append(((tenant, t), [*sums, *rest[12:]]))
    return out


def test_hour_totals_are_the_hours_records_summed_per_tenant_and_hour() -> None:
    """take(..., concern) sums the hours records it hands out per (tenant, hour): the bytes
    of crossing records, of those the cross-border ones and those to a country of concern
    (codes 2 and 7 here), their starts, quality marks and longest duration."""
    cols = rows(3_000, seed=13)
    cols[4] = cols[4] % 10**6  # (no sum past 64 bits)
    reducer, plain = NetworkReducer(3, 7200, 2), NetworkReducer(3, 7200, 2)
    concern = np.zeros(13, np.uint8)
    concern[[2, 7]] = 1
    got: dict[tuple[int, int], list[int]] = {}
    handed: list[bytes] = []
    for lo, hi in ((0, 1_500), (1_500, 3_000)):
        reducer.add(*(c[lo:hi] for c in cols))
        plain.add(*(c[lo:hi] for c in cols))
        taken = reducer.take(hi == 3_000, True, False, concern.tobytes())
        assert taken[:8] == plain.take(hi == 3_000, True)  # the rest as without totals
        handed.append(taken[0])
        totals = totals_of(taken[8])
        assert len({key for key, _ in totals}) == len(totals)  # one row a key a take
        for key, sums in totals:
            old = got.setdefault(key, [0] * 9)  # (a late key comes in a later take too)
            got[key] = [*(a + b for a, b in zip(old[:8], sums[:8], strict=True)),
                        max(old[8], sums[8])]
    records = np.frombuffer(b"".join(handed), HOUR_RECORD)
    assert len(got) > 50 and len(records) > len(got)
    expected = expected_totals(records, {2, 7})
    assert got == expected
    assert any(v[4] for v in got.values()) and any(v[2] != v[0] for v in got.values())


def test_hour_totals_past_64_bits_keep_their_high_halves() -> None:
    """A (tenant, hour) whose crossing bytes, two countries' records within 64 bits each,
    sum past 64 bits: the totals hold the whole sums."""
    cols = [np.ascontiguousarray(c[:2]) for c in rows(2, seed=3)]
    cols[0][:] = 1
    cols[1][:] = cols[1][0]
    cols[2][:] = cols[1]  # (an instant: all in one hour and cell)
    cols[4][:] = 2**63 + 5
    cols[6][:] = CROSSING | CROSS_BORDER
    cols[7][:] = [3, 4]
    reducer = NetworkReducer(3, 7200, -1)
    reducer.add(*cols)
    [(_, sums)] = totals_of(reducer.take(True, True, True, bytes([0, 0, 0, 0, 1]))[8])
    assert sums[:6] == [2**64 + 10, int(cols[5].sum()), 2**64 + 10, int(cols[5].sum()),
                        2**63 + 5, int(cols[5][1])]
    with pytest.raises(ValueError, match="concern needs peaks"):
        reducer.take(True, False, False, b"")  # type: ignore[call-overload]


def test_totals_repeat_once_an_hour_handed_out_comes_again() -> None:
    """The totals' last flag: false while every hours entry is made after the end of the
    hours handed out, true from the first one made before it."""
    cols = [np.ascontiguousarray(c[:3]) for c in rows(3, seed=5)]
    hour = cols[1][0] // HOUR_US * HOUR_US
    cols[0][:] = 2
    cols[1][:] = [hour, hour + 3 * HOUR_US, hour + 6 * HOUR_US]
    cols[2][:] = cols[1]
    reducer = NetworkReducer(3, 7200, -1)

    def repeats() -> bool:
        return reducer.take(False, True, True, b"")[9]

    reducer.add(*(c[:2] for c in cols))  # the first hour handed out (3 h behind the latest)
    assert not repeats()
    reducer.add(*(c[2:] for c in cols))
    assert not repeats()
    reducer.add(*(c[:1] for c in cols))  # the first hour again
    assert repeats()
