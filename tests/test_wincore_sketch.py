"""Distinct counts of :class:`egress._wincore.NetworkReducer` sketches.

A sketch is a set of fingerprints up to its limit (768 values), then HyperLogLog registers.
What it holds depends on the values only: not on the order they come in, how often, or how
the rows are cut into batches; a set is exact up to its limit, also when values repeat there.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from egress._wincore import NetworkReducer

HOUR_US = 3_600_000_000
REMOTE, HAS_ASN = 8, 16
BASE = 1_790_000_000 * 10**6 // HOUR_US * HOUR_US  # an hour start
SET_LIMIT = 768
ROW = np.dtype([("tenant", "<i4"), ("country", "<i2"), ("span", "u1"), ("flags", "u1"),
                ("t", "<i8"), ("addrs", "<i8"), ("asns", "<i8")])
HOUR, DAY = 0, 1


def batch(tenant: Any, start: Any, country: Any, addr: Any,
          asn: Any = None) -> list[np.ndarray[Any, Any]]:
    """Columns of rows of remote ends (each a minute long), ASNs when given."""
    n = len(addr)
    start = np.broadcast_to(np.asarray(start, np.int64), n).copy()
    flags = np.full(n, REMOTE | (HAS_ASN if asn is not None else 0), np.uint8)
    return [np.broadcast_to(np.asarray(tenant, np.int32), n).copy(), start,
            start + 60_000_000, start, np.zeros(n, np.uint64), np.zeros(n, np.uint64), flags,
            np.broadcast_to(np.asarray(country, np.int16), n).copy(),
            np.asarray(addr, np.uint64),
            np.zeros(n, np.int64) if asn is None else np.asarray(asn, np.int64)]


def counts(reducer: NetworkReducer) -> dict[tuple[int, int, int, int], tuple[int, int]]:
    """(tenant, country, span, t) -> (addrs, asns) of every row (none repeats here)."""
    rows = np.frombuffer(reducer.distinct(), ROW)
    got = {(int(r["tenant"]), int(r["country"]), int(r["span"]), int(r["t"])):
           (int(r["addrs"]), int(r["asns"])) for r in rows}
    assert len(got) == len(rows)
    return got


def test_a_set_at_its_limit_stays_exact_when_values_repeat() -> None:
    """768 addresses, then each of them again (in the same batch and in later ones): the
    hour, its day and the country count 768, not an estimate."""
    reducer = NetworkReducer(0, 0, sketch_keep_hours=6)
    addrs = np.arange(1, SET_LIMIT + 1, dtype=np.uint64) * 7919
    reducer.add(*batch(0, BASE, 3, np.concatenate([addrs, addrs[::-1]])))
    reducer.add(*batch(0, BASE + 60_000_000, 3, addrs[:100]))
    got = counts(reducer)
    assert got[(0, -1, HOUR, BASE)] == (SET_LIMIT, 0)
    assert got[(0, 3, HOUR, BASE)] == (SET_LIMIT, 0)
    assert got[(0, -1, DAY, BASE // (24 * HOUR_US) * 24 * HOUR_US)] == (SET_LIMIT, 0)
    reducer.add(*batch(0, BASE, 3, np.array([1], np.uint64)))  # one more: registers
    assert abs(counts(reducer)[(0, -1, HOUR, BASE)][0] - (SET_LIMIT + 1)) < 0.05 * SET_LIMIT


def test_counts_do_not_depend_on_the_order_values_come_in() -> None:
    """The same remote ends, in order in one batch or shuffled over many: the same counts,
    sets (exact, one at its limit) and registers alike, in hours and in the days they are
    merged into."""
    rng = np.random.default_rng(11)
    parts = []
    for who, distinct in ((0, 40), (1, SET_LIMIT), (2, 3_000), (3, 700)):
        for hour in range(3):
            addr = rng.integers(1, 2**63, distinct, dtype=np.int64).astype(np.uint64)
            if who == 3:  # the same 700 every hour: the day's set holds 700
                addr = np.arange(1, 701, dtype=np.uint64)
            addr = np.concatenate([addr, addr[: distinct // 2]])  # repeats
            n = len(addr)
            parts.append((np.full(n, who), np.full(n, BASE + hour * HOUR_US),
                          rng.integers(-1, 4, n), addr, rng.integers(0, 50, n)))
    tenant, start, country, addr, asn = (np.concatenate(c) for c in zip(*parts, strict=True))
    ordered = NetworkReducer(0, 0, sketch_keep_hours=6)
    ordered.add(*batch(tenant, start, country, addr, asn))
    shuffled = NetworkReducer(0, 0, sketch_keep_hours=6)
    order = rng.permutation(len(addr))
    for part in np.array_split(order, 7):
        shuffled.add(*batch(tenant[part], start[part], country[part], addr[part], asn[part]))
    got = counts(ordered)
    assert got == counts(shuffled)
    assert got[(1, -1, HOUR, BASE)] == (SET_LIMIT, 50)
    assert got[(3, -1, DAY, BASE // (24 * HOUR_US) * 24 * HOUR_US)] == (700, 50)
    assert abs(got[(2, -1, HOUR, BASE)][0] - 3_000) < 3_000 * 0.05  # registers: an estimate


WEEK, CUMULATIVE = 2, 3


def test_a_week_over_two_blocks_counts_the_union_of_its_days() -> None:
    """Two days either side of a 7-day block boundary: the 7-day window over both counts
    their union (made from the blocks' unions without materializing it) exactly as the
    cumulative count made by merging counts it, for sets of either size, sets whose union
    outgrows a set, registers and sets, and registers both."""
    day = 24 * HOUR_US
    boundary = (BASE // (7 * day) + 1) * 7 * day  # (blocks start at the epoch)
    sizes = ((300, 300), (100, 600), (600, 100), (500, 500), (700, 100), (2_000, 300),
             (300, 2_000), (2_000, 2_000))
    reducer = NetworkReducer(0, 0, sketch_keep_hours=6)
    rng = np.random.default_rng(3)
    for tenant, (first, second) in enumerate(sizes):
        shared = min(first, second) // 3  # the second day repeats some of the first's
        a = rng.integers(1, 2**63, first, dtype=np.int64).astype(np.uint64)
        b = np.concatenate([a[:shared], rng.integers(1, 2**63, second - shared,
                                                     dtype=np.int64).astype(np.uint64)])
        asn = np.arange(len(a)) % 50
        reducer.add(*batch(tenant, boundary - day, 0, a, asn))
        reducer.add(*batch(tenant, boundary, 0, b, np.arange(len(b)) % 70))
    got = counts(reducer)
    for tenant, (first, second) in enumerate(sizes):
        cumulative = tuple(sum(got[(tenant, -1, CUMULATIVE, t)][i]
                               for t in (boundary - day, boundary)) for i in (0, 1))
        assert got[(tenant, -1, WEEK, boundary + day)] == cumulative, (first, second)
        union = first + second - min(first, second) // 3
        if union <= SET_LIMIT:
            assert cumulative[0] == union
        else:
            assert abs(cumulative[0] - union) < 0.05 * union
