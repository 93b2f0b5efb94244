"""Conn batches as numbers (:mod:`egress.windows_conn`): the windows of the string path."""

from __future__ import annotations

from datetime import timedelta
from ipaddress import ip_network
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from egress.attribution import Attributor
from egress.attribution_batch import INTERNAL_CODE
from egress.geo import RangeCsvGeo
from egress.inventory import Inventory, Site
from egress.transfers import conn_transfers
from egress.windows import WindowAggregator, WindowParams, WindowTables
from egress.windows_conn import conn_network
from tests import test_attribution_batch
from tests.test_attribution_batch import (
    ADDRESSES,
    BASE,
    conn_batch,
    inventories,
    tenant,
)

geo = test_attribution_batch.geo  # the fixture: ranges of a few countries and AS numbers

#: Times within a few days, some sharing an hour, some an exact boundary.
TIMES = [BASE + timedelta(hours=h, minutes=m) for h in (0, 1, 5, 30, 80) for m in (0, 7, 59)]
counts = st.one_of(st.none(), st.integers(0, 50_000_000))
rows_strategy = st.lists(st.fixed_dictionaries({
    "ts": st.one_of(st.none(), st.sampled_from(TIMES)),
    "uid": st.sampled_from(["Ca", "Cb", "Cc"]),
    "orig_h": st.one_of(st.none(), st.sampled_from(ADDRESSES)),
    "resp_h": st.one_of(st.none(), st.sampled_from(ADDRESSES)),
    "vni": st.one_of(st.none(), st.sampled_from([1, 2, 99])),
    "duration_s": st.one_of(st.none(), st.sampled_from([0.0, 0.5, 59.9999995, 4000.0, -1.0])),
    "delta_since": st.one_of(st.none(), st.sampled_from(TIMES)),
    "delta_orig_ip_bytes": counts,
    "delta_resp_ip_bytes": counts,
    "orig_ip_bytes": counts,
    "resp_ip_bytes": counts,
    "orig_bytes": counts,
    "resp_bytes": counts,
    "orig_pkts": st.one_of(st.none(), st.integers(0, 10)),
    "resp_pkts": st.one_of(st.none(), st.integers(0, 10)),
    "missed_bytes": st.one_of(st.none(), st.integers(0, 2)),
    "line": st.integers(1, 9),
}), max_size=40)


def windows_both_ways(inventory: Inventory, geo: RangeCsvGeo | None,
                      batches: list[pa.RecordBatch], *, exact: bool = False
                      ) -> tuple[WindowTables, WindowTables]:
    """The windows of ``batches`` through :func:`conn_transfers` and through
    :func:`conn_network` (small flushes, so several reductions and retirements run)."""
    params = WindowParams(registrations={}, exact_distinct=exact, evidence_per_day=2)
    strings, numbers = (WindowAggregator(params, flush_rows=16, background=False)
                        for _ in range(2))
    by_strings, by_numbers = Attributor(inventory, geo), Attributor(inventory, geo)
    for batch in batches:
        strings.add(conn_transfers(by_strings.attribute_batch(batch)))
        numbers.add_conn(conn_network(batch, by_numbers.solve_batch(batch)))
    assert by_strings.stats() == by_numbers.stats()
    return strings.result(), numbers.result()


def assert_same(want: WindowTables, got: WindowTables) -> None:
    for name in ("windows", "countries", "evidence"):
        a, b = getattr(want, name), getattr(got, name)
        assert a.schema == b.schema, name
        assert a.to_pylist() == b.to_pylist(), name


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(inventory=inventories(), batches=st.lists(rows_strategy, min_size=1, max_size=3),
       with_geo=st.booleans(), exact=st.booleans())
def test_same_windows_as_transfer_rows(inventory: Inventory, batches: list[list[dict[str, Any]]],
                                       with_geo: bool, exact: bool, geo: RangeCsvGeo) -> None:
    want, got = windows_both_ways(inventory, geo if with_geo else None,
                                  [conn_batch(rows) for rows in batches], exact=exact)
    assert_same(want, got)


def test_known_values(geo: RangeCsvGeo) -> None:
    """A hand-checked batch: an inbound transfer over two hours, a capture-loss mark, an
    interim increment, an east-west pair and rows left out (no tenant, no time)."""
    site = Site(name="s", country="MY", networks=(ip_network("10.0.0.0/8"),), ingest_stations=())
    inventory = Inventory(site=site, concern_countries=(), tenants=(
        tenant("t-a", ("10.1.0.0/16", BASE, None)), tenant("t-b", ("10.2.0.0/16", BASE, None))))
    t0 = BASE + timedelta(minutes=30)
    rows: list[dict[str, Any]] = [
        {"ts": t0, "uid": "C1", "orig_h": "8.8.8.8", "resp_h": "10.1.0.1", "duration_s": 3600.0,
         "delta_orig_ip_bytes": 4_000, "delta_resp_ip_bytes": 100, "orig_ip_bytes": 4_000,
         "resp_ip_bytes": 100, "line": 5},
        {"ts": t0, "uid": "C2", "orig_h": "10.1.0.1", "resp_h": "203.0.113.70",
         "duration_s": 1.0, "delta_orig_ip_bytes": 10, "delta_resp_ip_bytes": 900,
         "orig_ip_bytes": 10, "resp_ip_bytes": 900, "missed_bytes": 1, "line": 6},
        {"ts": t0, "uid": "C3", "orig_h": "10.1.0.1", "resp_h": "10.2.0.1", "duration_s": 0.0,
         "delta_orig_ip_bytes": 50, "delta_resp_ip_bytes": 5, "orig_ip_bytes": 50,
         "resp_ip_bytes": 5, "line": 7},
        {"ts": t0, "uid": "C4", "orig_h": "8.8.8.8", "resp_h": "10.77.0.1", "line": 8},
        {"ts": None, "uid": "C5", "orig_h": "8.8.8.8", "resp_h": "10.1.0.1", "line": 9},
    ]
    batch = conn_batch(rows)
    part = conn_network(batch, Attributor(inventory, geo).solve_batch(batch))
    assert part.rows.tolist() == [0, 1, 2]
    assert part.bytes_in.tolist() == [4_000, 900, 50]
    assert part.bytes_out.tolist() == [100, 10, 5]
    start_us = int(t0.timestamp()) * 1_000_000
    assert part.start.tolist() == [start_us] * 3
    assert part.end.tolist() == [start_us + 3_600_000_000, start_us + 1_000_000, start_us]
    # crossing 1, cross-border 2, quality 4, remote 8, ASN 16
    assert part.flags.tolist() == [1 | 2 | 8 | 16, 1 | 2 | 4 | 8, 1 | 8]
    countries = part.solution.countries.to_pylist()
    assert [countries[c] if c >= 0 else None for c in part.country] == ["US", "CN", None]
    assert part.asn.tolist() == [15169, 0, 0]
    evidence = part.evidence(np.array([1, 0, 2]), np.array([7, 7, 8], np.int32))
    assert evidence.column("ref").to_pylist() == ["C2", "C1", "C3"]
    assert evidence.column("where").to_pylist() == ["conn.log:6", "conn.log:5", "conn.log:7"]
    assert evidence.column("tenant").to_pylist() == [7, 7, 8]
    assert evidence.column("quality").to_pylist() == [True, False, False]
    # the responder's address, the originator's, the other tenant's (east-west)
    assert evidence.column("remote_addr").to_pylist() == ["203.0.113.70", "8.8.8.8",
                                                          "10.1.0.1"]
    assert evidence.column("remote_country").to_pylist() == ["CN", "US", None]
    assert evidence.column("bytes_in").to_pylist() == [900, 4_000, 50]
    assert evidence.column("start").to_pylist() == [t0, t0, t0]
    assert evidence.column("kind").to_pylist() == ["network"] * 3
    assert evidence.schema.field("remote_addr").type == pa.string()
    assert evidence.column("remote_addr").num_chunks == 1
    want, got = windows_both_ways(inventory, geo, [batch])
    assert_same(want, got)
    hours = [r for r in got.windows.to_pylist() if r["span"] == "1h" and r["tenant"] == "t-a"]
    assert [r["bytes_in"] for r in hours] == [2_000 + 900, 2_000]


def test_evidence_without_a_remote_end(geo: RangeCsvGeo) -> None:
    site = Site(name="s", country="MY", networks=(ip_network("10.0.0.0/8"),),
                ingest_stations=())
    inventory = Inventory(site=site, concern_countries=(), tenants=(
        tenant("t-a", ("10.1.0.0/16", BASE, None)),))
    t0 = BASE + timedelta(minutes=30)
    batch = conn_batch([
        {"ts": t0, "uid": "C1", "orig_h": "10.1.0.1", "resp_h": "10.1.0.2", "line": 3,
         "delta_orig_ip_bytes": 10, "delta_resp_ip_bytes": 20},
        {"ts": t0, "uid": "C2", "orig_h": "10.1.0.3", "resp_h": "8.8.8.8", "line": 4,
         "delta_orig_ip_bytes": 30, "delta_resp_ip_bytes": 40},
    ])
    part = conn_network(batch, Attributor(inventory, geo).solve_batch(batch))
    assert part.solution.remote[part.rows].tolist() == [-1, 0]
    evidence = part.evidence(np.array([0, 1]), np.array([0, 0], np.int32))
    assert evidence.column("remote_addr").to_pylist() == [None, "8.8.8.8"]
    assert evidence.column("ref").to_pylist() == ["C1", "C2"]


def test_empty_batch(geo: RangeCsvGeo) -> None:
    inventory = Inventory(site=Site(name="s", country="MY", networks=(), ingest_stations=()),
                          concern_countries=(), tenants=(tenant("t-a"),))
    batch = conn_batch([])
    part = conn_network(batch, Attributor(inventory, geo).solve_batch(batch))
    assert part.num_rows == 0
    aggregator = WindowAggregator(background=False)
    aggregator.add_conn(part)
    assert aggregator.result().windows.num_rows == 0


@pytest.mark.parametrize("exact", [False, True])
def test_mixed_with_transfer_rows(geo: RangeCsvGeo, exact: bool) -> None:
    """Numbers and transfer rows into one aggregator: the windows of all rows as strings.
    Batches come in time order (two hours each), as sketches count late arrivals apart."""
    site = Site(name="s", country="MY", networks=(ip_network("10.0.0.0/8"),), ingest_stations=())
    inventory = Inventory(site=site, concern_countries=(), tenants=(
        tenant("t-a", ("10.1.0.0/16", BASE, None)), tenant("t-b", ("10.2.0.0/16", BASE, None))))
    rng = np.random.default_rng(3)
    batches = []
    for first in range(0, 400, 100):
        rows = [{"ts": BASE + timedelta(minutes=int(first * 1.2 + m)), "uid": f"C{first + i}",
                 "orig_h": ["8.8.8.8", "10.1.0.1", "203.0.113.70"][i % 3],
                 "resp_h": ["10.2.0.9", "203.0.113.5", "10.1.0.7"][i % 3],
                 "duration_s": float(rng.integers(0, 9000)),
                 "delta_orig_ip_bytes": int(rng.integers(0, 10**9)),
                 "delta_resp_ip_bytes": int(rng.integers(0, 10**6)), "line": first + i}
                for i, m in enumerate(np.sort(rng.integers(0, 120, 100)))]
        batches.append(conn_batch(rows))
    params = WindowParams(exact_distinct=exact, evidence_per_day=3)
    strings, mixed = (WindowAggregator(params, flush_rows=150, background=False)
                      for _ in range(2))
    a, b = Attributor(inventory, geo), Attributor(inventory, geo)
    for i, batch in enumerate(batches):
        strings.add(conn_transfers(a.attribute_batch(batch)))
        if i % 2:
            mixed.add_conn(conn_network(batch, b.solve_batch(batch)))
        else:
            mixed.add(conn_transfers(b.attribute_batch(batch)))
    want, got = strings.result(), mixed.result()
    assert want.windows.num_rows > 30  # not vacuous: both tenants, hours to cumulative
    assert want.evidence.num_rows == 2 * 3  # two tenants, one day, top 3
    assert_same(want, got)


_I8 = st.integers(-1, 3)
_I64 = st.integers(-(2**63), 2**63 - 1)
_U64 = st.integers(0, 2**64 - 1)


@settings(max_examples=200, deadline=None)
@given(rows=st.lists(st.tuples(st.integers(-1, 40), _I8, _I8, st.integers(-1, 2), _I64, _U64,
                               _I64, st.booleans(), _U64, _U64, st.booleans()),
                     min_size=1, max_size=40),
       data=st.data())
def test_network_rows_matches_numpy(rows: list[tuple[Any, ...]], data: st.DataObject) -> None:
    """The compiled pass of :func:`conn_network` gives what numpy gives, row by row."""
    from egress._wincore import network_rows
    from egress.windows_conn import _FLAGS
    from egress.windows_network import network_flags

    kinds = (np.int64, np.int8, np.int8, np.int64, np.int64, np.uint64, np.int64, np.bool_,
             np.uint64, np.uint64, np.bool_)
    cols: list[npt.NDArray[Any]] = [
        np.array(c, k) for c, k in zip(zip(*rows, strict=True), kinds, strict=True)]
    tenant, remote, direction, cross, country, addr, asn, has_asn, d_o, d_r, marked = cols
    picked = np.array(data.draw(st.lists(st.integers(0, len(rows) - 1))), np.int64)
    m = len(picked)
    outs = [np.empty(m, k) for k in (np.int64, np.uint64, np.uint64, np.uint8, np.bool_,
                                     np.int64, np.uint64, np.int64)]
    network_rows(picked, _FLAGS, (*cols, *outs))
    rem, known = remote[picked], has_asn[picked]
    swap, far = rem == 0, rem >= 0
    want = [
        tenant[picked], np.where(swap, d_r[picked], d_o[picked]),
        np.where(swap, d_o[picked], d_r[picked]),
        network_flags(internal=direction[picked] == INTERNAL_CODE, has_remote=far,
                      cross_border=far & (cross[picked] == 1), quality=marked[picked],
                      has_asn=known),
        marked[picked], np.where(far, country[picked], -1),
        np.where(far, addr[picked], np.uint64(0)), np.where(known, asn[picked], 0),
    ]
    for got, expected in zip(outs, want, strict=True):
        assert got.tolist() == expected.tolist()


def test_network_rows_refuses_bad_input() -> None:
    from egress._wincore import network_rows
    from egress.windows_conn import _FLAGS

    kinds = (np.int64, np.int8, np.int8, np.int64, np.int64, np.uint64, np.int64, np.bool_,
             np.uint64, np.uint64, np.bool_)
    cols = [np.zeros(4, k) for k in kinds]
    cols[1][:] = -1  # no remote end
    outs = [np.empty(2, k) for k in (np.int64, np.uint64, np.uint64, np.uint8, np.bool_,
                                     np.int64, np.uint64, np.int64)]
    network_rows(np.array([3, 0]), _FLAGS, (*cols, *outs))
    assert outs[5].tolist() == [-1, -1]  # no remote end: no country
    with pytest.raises(IndexError, match="row 4 out of range"):
        network_rows(np.array([4, 0]), _FLAGS, (*cols, *outs))
    with pytest.raises(IndexError, match="row -1 out of range"):
        network_rows(np.array([-1, 0]), _FLAGS, (*cols, *outs))
    with pytest.raises(ValueError, match="bytes_in: wrong length"):
        network_rows(np.array([0]), _FLAGS, (*cols, outs[0][:1], *outs[1:]))
    with pytest.raises(ValueError, match="marked: wrong length"):
        network_rows(np.array([0, 1]), _FLAGS, (*cols[:-1], np.zeros(3, np.bool_), *outs))
    with pytest.raises(ValueError, match="flags: expected 32 bytes"):
        network_rows(np.array([0, 1]), _FLAGS[:8], (*cols, *outs))
    with pytest.raises(ValueError, match="expected 19 columns"):
        network_rows(np.array([0, 1]), _FLAGS, tuple(cols))
