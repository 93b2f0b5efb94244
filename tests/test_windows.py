"""Windows: every span per tenant, apportioning, rounding that preserves totals."""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from egress.records import (
    Attributed,
    CopyRecord,
    DriveAttach,
    Flow,
    ObjectStoreRequest,
    Provenance,
)
from egress.transfers import TRANSFERS_SCHEMA, transfer_batches, transfers_table
from egress.windows import (
    COUNTRIES_SCHEMA,
    WINDOWS_SCHEMA,
    WindowAggregator,
    WindowParams,
    compute_windows,
)

T0 = datetime(2026, 6, 1, tzinfo=UTC)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MIN5 = timedelta(minutes=5)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
US = timedelta(microseconds=1)
#: Sketches kept open longer than any test's input spans, for tests that add rows in any
#: order (tests/test_windows_distinct.py covers what is let go when).
LATE = 1000


@dataclass(frozen=True, slots=True, kw_only=True)
class T:
    """One transfer row, for building input tables by hand."""

    tenant: str
    start: datetime
    end: datetime
    kind: str = "network"
    bytes_in: int = 0
    bytes_out: int = 0
    capacity_bytes: int | None = None
    remote_addr: str | None = None
    remote_asn: int | None = None
    remote_country: str | None = None
    cross_border: bool | None = None
    quality: bool = False
    direction: str = "inbound"
    where: str | None = None
    ref: str | None = None
    opened: datetime | None = None
    community_id: str | None = None


def table(rows: list[T]) -> pa.Table:
    return pa.Table.from_pylist(
        [{name: getattr(r, name) for name in TRANSFERS_SCHEMA.names} for r in rows],
        schema=TRANSFERS_SCHEMA,
    )


def windows(rows: list[T], span: str, **params: Any) -> list[dict[str, Any]]:
    result = compute_windows(table(rows), WindowParams(**params)).windows
    return [r for r in result.to_pylist() if r["span"] == span]


# -- golden ---------------------------------------------------------------------------------


def test_three_day_upload_adds_equal_hours_and_days() -> None:
    upload = T(tenant="a", start=T0, end=T0 + 3 * DAY, bytes_in=259_200_000,
               remote_addr="198.51.100.7", remote_asn=64500, remote_country="CN",
               cross_border=True)
    result = compute_windows(table([upload]), WindowParams(concern_countries=("CN",)))
    assert result.windows.schema == WINDOWS_SCHEMA
    assert result.countries.schema == COUNTRIES_SCHEMA
    hours = [r for r in result.windows.to_pylist() if r["span"] == "1h"]
    assert [r["window_start"] for r in hours] == [T0 + k * HOUR for k in range(72)]
    assert {(r["bytes_in"], r["cross_border_bytes_in"], r["concern_bytes_in"])
            for r in hours} == {(3_600_000, 3_600_000, 3_600_000)}
    assert [r["flows"] for r in hours] == [1] + [0] * 71  # counted where it starts
    assert {(r["remote_addrs"], r["remote_asns"], r["max_transfer_duration_s"])
            for r in hours} == {(1, 1, 259_200.0)}
    days = windows([upload], "24h")
    assert [(r["window_start"], r["window_end"], r["bytes_in"]) for r in days] == [
        (T0 + k * DAY, T0 + (k + 1) * DAY, 86_400_000) for k in range(3)]
    countries = [r for r in result.countries.to_pylist() if r["span"] == "24h"]
    assert [(r["country"], r["bytes_in"], r["remote_addrs"]) for r in countries] == [
        ("CN", 86_400_000, 1)] * 3


def test_sliding_week_and_cumulative() -> None:
    rows = [
        T(tenant="a", start=T0, end=T0, bytes_in=10, remote_addr="192.0.2.1"),
        T(tenant="a", start=T0 + 3 * DAY, end=T0 + 3 * DAY, bytes_in=20,
          remote_addr="192.0.2.2"),
    ]
    week = windows(rows, "7d")
    assert [(r["window_end"], r["bytes_in"], r["remote_addrs"], r["flows"]) for r in week] == [
        (T0 + DAY, 10, 1, 1), (T0 + 2 * DAY, 10, 1, 1), (T0 + 3 * DAY, 10, 1, 1),
        (T0 + 4 * DAY, 30, 2, 2), (T0 + 5 * DAY, 30, 2, 2), (T0 + 6 * DAY, 30, 2, 2),
        (T0 + 7 * DAY, 30, 2, 2), (T0 + 8 * DAY, 20, 1, 1), (T0 + 9 * DAY, 20, 1, 1),
        (T0 + 10 * DAY, 20, 1, 1),
    ]
    assert all(r["window_start"] == r["window_end"] - 7 * DAY for r in week)
    registered = T0 - 40 * DAY
    cumulative = windows(rows, "cumulative", registrations={"a": registered})
    assert [(r["window_start"], r["window_end"], r["bytes_in"], r["remote_addrs"])
            for r in cumulative] == [
        (registered, T0 + DAY, 10, 1), (registered, T0 + 4 * DAY, 30, 2)]
    unregistered = windows(rows, "cumulative")
    assert [r["window_start"] for r in unregistered] == [T0, T0]


def test_transfer_starting_mid_window_apportions_exactly() -> None:
    start = T0 + timedelta(minutes=30)
    transfer = T(tenant="a", start=start, end=start + 2 * HOUR, bytes_in=7_200, bytes_out=720)
    assert [(r["window_start"], r["bytes_in"], r["bytes_out"])
            for r in windows([transfer], "1h")] == [
        (T0, 1_800, 180), (T0 + HOUR, 3_600, 360), (T0 + 2 * HOUR, 1_800, 180)]


def test_uneven_split_uses_cumulative_floor() -> None:
    # 10 bytes over three hours: floor(10/3)=3, floor(20/3)-3=3, 10-6=4.
    transfer = T(tenant="a", start=T0, end=T0 + 3 * HOUR, bytes_in=10)
    assert [r["bytes_in"] for r in windows([transfer], "1h")] == [3, 3, 4]


def test_largest_volume_is_exact() -> None:
    start = T0 + timedelta(minutes=17)
    most = 2**64 - 1
    transfer = T(tenant="a", start=start, end=start + 7 * HOUR, bytes_in=most)
    got = [r["bytes_in"] for r in windows([transfer], "1h")]
    assert got == [r["bytes_in"] for r in reference([transfer], {}, 1e9)["1h"]]
    assert sum(got) == most


def test_peak_rate_and_hours_above_rate() -> None:
    # 3.75 TB in 5 minutes (100 Gbit/s), then 1.2 GB spread over the next hour.
    rows = [
        T(tenant="a", start=T0, end=T0 + MIN5, bytes_in=3_750_000_000_000),
        T(tenant="a", start=T0 + HOUR, end=T0 + 2 * HOUR, bytes_in=1_200_000_000),
    ]
    hours = windows(rows, "1h", sustained_rate_bps=8e9 / 3600 * 1.2)  # 1.2 GB per hour
    assert [(r["peak_rate_in_bps"], r["hours_above_rate"]) for r in hours] == [
        (1e11, 1), (100_000_000 * 8 / 300, 1)]
    [day] = windows(rows, "24h", sustained_rate_bps=8e9 / 3600 * 1.3)
    assert (day["peak_rate_in_bps"], day["hours_above_rate"]) == (1e11, 1)


def test_storage_metrics() -> None:
    rows = [
        T(tenant="a", kind="object_put", start=T0, end=T0, bytes_in=100),
        T(tenant="a", kind="object_put", start=T0 + MIN5, end=T0 + MIN5, bytes_in=50),
        T(tenant="a", kind="drive", start=T0, end=T0, capacity_bytes=20 * 10**12),
        T(tenant="a", kind="drive", start=T0, end=T0, capacity_bytes=None),
        T(tenant="a", kind="copy", start=T0, end=T0, bytes_in=7),
        T(tenant="a", start=T0, end=T0, bytes_in=3, quality=True),
    ]
    [day] = windows(rows, "24h")
    assert {k: day[k] for k in ("bytes_in", "object_put_bytes", "object_puts", "drives_attached",
                                "drive_capacity_bytes", "bytes_copied", "flows",
                                "quality_marked")} == {
        "bytes_in": 3, "object_put_bytes": 150, "object_puts": 2, "drives_attached": 2,
        "drive_capacity_bytes": 20 * 10**12, "bytes_copied": 7, "flows": 1,
        "quality_marked": 1}


def test_instantaneous_and_boundaries() -> None:
    rows = [
        T(tenant="a", start=T0 + HOUR, end=T0 + HOUR, bytes_in=5),  # on a boundary: next
        T(tenant="a", start=T0, end=T0 + HOUR, bytes_in=7),  # ends on a boundary: one window
        T(tenant="a", start=T0 + HOUR - US, end=T0 + HOUR - US),  # zero bytes
    ]
    assert [(r["window_start"], r["bytes_in"], r["flows"]) for r in windows(rows, "1h")] == [
        (T0, 7, 2), (T0 + HOUR, 5, 1)]


def test_before_1970_windows_align_on_epoch() -> None:
    start = datetime(1969, 12, 31, 23, 30, tzinfo=UTC)
    rows = windows([T(tenant="a", start=start, end=start + HOUR, bytes_in=60)], "1h")
    assert [(r["window_start"], r["bytes_in"]) for r in rows] == [
        (datetime(1969, 12, 31, 23, tzinfo=UTC), 30), (EPOCH, 30)]


def test_empty_input() -> None:
    result = compute_windows(table([]))
    assert (result.windows.num_rows, result.countries.num_rows) == (0, 0)
    assert result.windows.schema == WINDOWS_SCHEMA
    assert compute_windows(iter([])).windows.num_rows == 0


def test_batches_and_passed_connection() -> None:
    data = table([T(tenant="a", start=T0, end=T0 + 2 * HOUR, bytes_in=2,
                    remote_addr="192.0.2.9")] * 3)
    expected = compute_windows(data)
    con = duckdb.connect()
    try:
        got = compute_windows(iter(data.to_batches(max_chunksize=1)), connection=con)
        assert got.windows.equals(expected.windows)
        assert con.sql("SELECT 1").fetchall() == [(1,)]  # left open, accumulators gone
        assert not {"cells_acc", "presence_acc"} & {r[0] for r in con.sql("SHOW TABLES").fetchall()}
    finally:
        con.close()


def test_rejects_missing_column() -> None:
    with pytest.raises(KeyError, match="bytes_in"):
        compute_windows(table([T(tenant="a", start=T0, end=T0)]).drop_columns(["bytes_in"]))


# -- transfers_table --------------------------------------------------------------------------


def flow(*, start: datetime, duration_s: float, interim: bool = False) -> Flow:
    return Flow(
        uid="C1", start=start, duration_s=duration_s, orig_h="203.0.113.9", orig_p=40000,
        resp_h="10.0.0.5", resp_p=443, proto="tcp", ip_proto=6, conn_state="SF", history="ShADad",
        orig_pkts=1, orig_ip_bytes=100, orig_bytes=60, resp_pkts=1, resp_ip_bytes=40,
        resp_bytes=0, community_id="1:x", interim=interim,
    )


def request(time: datetime, *, operation: str = "put_object",
            status: int = 200) -> ObjectStoreRequest:
    return ObjectStoreRequest(
        time=time, store="s3", operation=operation, raw_operation="REST.PUT.OBJECT",
        bucket="b", key="k", status=status, bytes_in=9, object_size_bytes=9,
        remote_addr="192.0.2.3", requester=None, user_agent=None, request_id=None,
        provenance=Provenance(path="log"),
    )


def copy(time: datetime | None) -> CopyRecord:
    return CopyRecord(time=time, station="st1", tool="rsync", path="/d/f", bytes_copied=11,
                      provenance=Provenance(path="copy.log"))


def test_transfers_table_from_attributed() -> None:
    drive = DriveAttach(station="st1", device="sdb", serial="S1", model=None, bus="usb",
                        capacity_bytes=10**12, attached=T0, detached=None,
                        provenance=Provenance(path="kern.log"))
    common = {"capacity_bytes": None, "remote_asn": None, "quality": False, "opened": None,
              "community_id": None}
    wheres = [{"where": None, "ref": "C1"}, {"where": "log", "ref": "b/k"},
              {"where": "copy.log", "ref": "/d/f"}, {"where": "kern.log", "ref": "S1"}]
    items = [
        Attributed(record=flow(start=T0, duration_s=1.5), tenant="a", how="address",
                   direction="inbound", remote_addr="203.0.113.9", remote_country="NL",
                   remote_asn=64501, cross_border=True, bytes_in=100, bytes_out=40),
        Attributed(record=flow(start=T0, duration_s=1.0, interim=True), tenant="a",
                   how="address", direction="inbound", bytes_in=50),
        Attributed(record=request(T0 + HOUR), tenant="b", how="bucket", direction="inbound",
                   remote_addr="192.0.2.3", bytes_in=9),
        Attributed(record=request(T0, status=403), tenant="b", how="bucket",
                   direction="inbound"),
        Attributed(record=request(T0, operation="get_object"), tenant="b", how="bucket",
                   direction="outbound"),
        Attributed(record=request(T0), tenant=None, how="unattributed", direction="inbound"),
        Attributed(record=copy(T0 + DAY), tenant="c", how="copy_log", direction="inbound",
                   bytes_in=11, job="J1"),
        Attributed(record=copy(None), tenant="c", how="copy_log", direction="inbound",
                   bytes_in=11, job="J1"),
        Attributed(record=drive, tenant="c", how="drive_serial", direction="inbound", job="J1"),
    ]
    result = transfers_table(items)
    assert result.schema == TRANSFERS_SCHEMA
    got = result.to_pylist()
    assert [{k: row.pop(k) for k in ("where", "ref")} for row in got] == wheres
    assert got == [
        {**common, "community_id": "1:x", "tenant": "a", "kind": "network", "start": T0,
         "end": T0 + timedelta(seconds=1.5), "direction": "inbound", "bytes_in": 100,
         "bytes_out": 40, "remote_addr": "203.0.113.9", "remote_asn": 64501,
         "remote_country": "NL", "cross_border": True},
        {**common, "tenant": "b", "kind": "object_put", "start": T0 + HOUR, "end": T0 + HOUR,
         "direction": "inbound", "bytes_in": 9, "bytes_out": 0, "remote_addr": "192.0.2.3",
         "remote_country": None, "cross_border": None},
        {**common, "tenant": "c", "kind": "copy", "start": T0 + DAY, "end": T0 + DAY,
         "direction": "inbound", "bytes_in": 11, "bytes_out": 0, "remote_addr": None,
         "remote_country": None, "cross_border": None},
        {**common, "tenant": "c", "kind": "drive", "start": T0, "end": T0,
         "direction": "inbound", "bytes_in": 0, "bytes_out": 0, "capacity_bytes": 10**12,
         "remote_addr": None, "remote_country": None, "cross_border": None},
    ]
    assert [b.num_rows for b in transfer_batches(items, batch_rows=3)] == [3, 1]
    assert transfers_table([]).num_rows == 0


def test_transfer_batches_rejects_bad_batch_rows() -> None:
    with pytest.raises(ValueError, match="batch_rows must be positive"):
        next(transfer_batches([], batch_rows=0))


# -- property: DuckDB against a plain Python reference ------------------------------------------

CELL_US, HOUR_US, DAY_US = MIN5 // US, HOUR // US, DAY // US


def pieces(s: int, e: int, size_us: int, amount: int) -> Iterator[tuple[int, int]]:
    """(window start, share) of ``amount`` over ``[s, e)`` by cumulative floor."""
    if e == s:
        yield s - s % size_us, amount
        return
    ws, done = s - s % size_us, 0
    while ws < e:
        upto = min(e, ws + size_us) - s
        yield ws, amount * upto // (e - s) - amount * done // (e - s)
        done = upto
        ws += size_us


def covered(s: int, e: int, size_us: int) -> list[int]:
    return [ws for ws, _ in pieces(s, e, size_us, 0)]


ADDITIVE = ("bytes_in", "bytes_out", "cross_border_bytes_in", "cross_border_bytes_out",
            "concern_bytes_in", "concern_bytes_out", "object_put_bytes", "object_puts",
            "drives_attached", "drive_capacity_bytes", "bytes_copied", "flows",
            "quality_marked")


def reference(rows: list[T], registrations: dict[str, datetime], rate_bps: float,
              concern: tuple[str, ...] = ()) -> dict[str, list[dict[str, Any]]]:
    """Every span, row by row in plain Python, from 5-minute cells."""
    cells: dict[tuple[str, int], dict[str, int]] = defaultdict(lambda: dict.fromkeys(ADDITIVE, 0))
    longest: dict[tuple[str, int], int] = defaultdict(int)
    ends: dict[tuple[str, int], set[tuple[str, int | None]]] = defaultdict(set)
    for r in rows:
        s, e = (r.start - EPOCH) // US, (r.end - EPOCH) // US
        net = r.kind == "network"
        crossing = net and not (r.direction == "internal" and r.remote_addr is None)
        for (ws, share_in), (_, share_out) in zip(
                pieces(s, e, CELL_US, r.bytes_in), pieces(s, e, CELL_US, r.bytes_out),
                strict=True):
            c = cells[r.tenant, ws]
            starts = ws <= s < ws + CELL_US
            if crossing:
                c["bytes_in"] += share_in
                c["bytes_out"] += share_out
                if r.cross_border:
                    c["cross_border_bytes_in"] += share_in
                    c["cross_border_bytes_out"] += share_out
                if r.remote_country in concern:
                    c["concern_bytes_in"] += share_in
                    c["concern_bytes_out"] += share_out
            if net:
                c["flows"] += starts
                opened = s if r.opened is None else min((r.opened - EPOCH) // US, s)
                longest[r.tenant, ws] = max(longest[r.tenant, ws], e - opened)
                if r.remote_addr is not None:
                    ends[r.tenant, ws].add((r.remote_addr, r.remote_asn))
            c["quality_marked"] += starts and r.quality
            if r.kind == "object_put":
                c["object_put_bytes"] += share_in
                c["object_puts"] += starts
            if r.kind == "drive" and starts:
                c["drives_attached"] += 1
                c["drive_capacity_bytes"] += r.capacity_bytes or 0
            if r.kind == "copy":
                c["bytes_copied"] += share_in

    cell_starts = {t: sorted(c for u, c in cells if u == t) for t, _ in cells}

    def window(tenant: str, span: str, ws: int, we: int) -> dict[str, Any]:
        times = cell_starts[tenant]
        inside = [(tenant, c) for c in times[bisect_left(times, ws):bisect_left(times, we)]]
        hours: dict[int, int] = defaultdict(int)
        for k in inside:
            hours[k[1] - k[1] % HOUR_US] += cells[k]["bytes_in"]
        seen = set().union(*(ends[k] for k in inside))
        return {
            "tenant": tenant, "span": span, "window_start": EPOCH + ws * US,
            "window_end": EPOCH + we * US,
            **{m: sum(cells[k][m] for k in inside) for m in ADDITIVE},
            "remote_addrs": len({a for a, _ in seen}),
            "remote_asns": len({n for _, n in seen if n is not None}),
            # bits as a double, then divided: as the SQL does (not Python's exact int / int)
            "peak_rate_in_bps": float(max(cells[k]["bytes_in"] for k in inside) * 8) / 300,
            "peak_rate_out_bps": float(max(cells[k]["bytes_out"] for k in inside) * 8) / 300,
            "hours_above_rate": sum(v >= rate_bps * 3600 / 8 for v in hours.values()),
            "max_transfer_duration_s": max(longest[k] for k in inside) / 1e6,
        }

    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    tenants = sorted({t for t, _ in cells})
    for tenant in tenants:
        hours = sorted({c - c % HOUR_US for t, c in cells if t == tenant})
        days = sorted({c - c % DAY_US for t, c in cells if t == tenant})
        out["1h"] += [window(tenant, "1h", h, h + HOUR_US) for h in hours]
        out["24h"] += [window(tenant, "24h", d, d + DAY_US) for d in days]
        week_ends = sorted({d + k * DAY_US for d in days for k in range(1, 8)})
        out["7d"] += [window(tenant, "7d", we - 7 * DAY_US, we) for we in week_ends]
        start = ((registrations[tenant] - EPOCH) // US if tenant in registrations else days[0])
        out["cumulative"] += [window(tenant, "cumulative", start, d + DAY_US) for d in days]
    return out


@st.composite
def transfer_rows(draw: st.DrawFn) -> list[T]:
    rows = []
    for _ in range(draw(st.integers(0, 10))):
        start = T0 + US * draw(st.integers(-DAY_US, 9 * DAY_US))
        duration_us = draw(st.one_of(
            st.just(0), st.integers(1, 3 * HOUR_US), st.integers(1, 9 * DAY_US),
            st.sampled_from([CELL_US, HOUR_US, DAY_US])))
        kind = draw(st.sampled_from(["network", "network", "object_put", "drive", "copy"]))
        addr = draw(st.sampled_from([None, ("192.0.2.1", 1), ("192.0.2.2", 1),
                                     ("2001:db8::1", None)]))
        rows.append(T(
            tenant=draw(st.sampled_from(["a", "b", "c"])),
            kind=kind,
            start=start,
            end=start + US * (duration_us if kind == "network" else 0),
            bytes_in=draw(st.one_of(st.just(0), st.integers(0, 2**56), st.integers(0, 10))),
            bytes_out=draw(st.one_of(st.just(0), st.integers(0, 10**12))),
            capacity_bytes=draw(st.sampled_from([None, 10**12])),
            remote_addr=None if addr is None else addr[0],
            remote_asn=None if addr is None else addr[1],
            remote_country=draw(st.sampled_from([None, "CN", "NL"])),
            cross_border=draw(st.sampled_from([None, True, False])),
            quality=draw(st.booleans()),
            direction=draw(st.sampled_from(["inbound", "outbound", "internal"])),
            opened=draw(st.sampled_from([None, start - HOUR, start])),
        ))
    return rows


@settings(max_examples=40, deadline=None)
@given(transfer_rows(), st.sampled_from([1e3, 1e6, 1e9]), st.booleans())
@example([T(tenant="a", start=T0, end=T0, bytes_in=18_014_398_509_481_983)], 1e3,
         False)  # > 2**53
def test_matches_reference(rows: list[T], rate: float, exact_distinct: bool) -> None:
    """Both ways of counting distinct remote ends (the sketches are exact sets at these
    sizes) give the reference's windows."""
    registrations = {"a": T0 - 3 * DAY}
    result = compute_windows(table(rows), WindowParams(
        registrations=registrations, sustained_rate_bps=rate, concern_countries=("CN",),
        exact_distinct=exact_distinct))
    expected = reference(rows, registrations, rate, ("CN",))
    got = result.windows.to_pylist()
    for span in ("1h", "24h", "7d", "cumulative"):
        assert [r for r in got if r["span"] == span] == expected[span], span


def test_countries_table() -> None:
    rows = [
        T(tenant="a", start=T0, end=T0, bytes_in=5, remote_addr="192.0.2.1",
          remote_country="CN"),
        T(tenant="a", start=T0, end=T0, bytes_in=7, bytes_out=1, remote_addr="192.0.2.2",
          remote_country="CN"),
        T(tenant="a", start=T0 + 2 * DAY, end=T0 + 2 * DAY, bytes_in=3,
          remote_addr="192.0.2.3", remote_country="NL"),
        T(tenant="a", start=T0, end=T0, bytes_in=100, remote_addr="192.0.2.4"),  # unknown
    ]
    countries = compute_windows(table(rows)).countries.to_pylist()
    picked = [(r["span"], r["window_end"], r["country"], r["bytes_in"], r["bytes_out"],
               r["remote_addrs"]) for r in countries if r["span"] != "1h"]
    assert picked == [
        ("24h", T0 + DAY, "CN", 12, 1, 2), ("24h", T0 + 3 * DAY, "NL", 3, 0, 1),
        *[("7d", T0 + k * DAY, "CN", 12, 1, 2) for k in range(1, 3)],
        *[("7d", T0 + k * DAY, c, b, o, 2 if c == "CN" else 1)
          for k in range(3, 8) for c, b, o in (("CN", 12, 1), ("NL", 3, 0))],
        *[("7d", T0 + k * DAY, "NL", 3, 0, 1) for k in range(8, 10)],
        ("cumulative", T0 + DAY, "CN", 12, 1, 2), ("cumulative", T0 + 3 * DAY, "NL", 3, 0, 1),
    ]


def test_evidence_keeps_the_largest_per_tenant_and_day() -> None:
    rows = [T(tenant="a", start=T0 + k * MIN5, end=T0 + k * MIN5, bytes_in=k, ref=f"r{k}",
              where=f"conn.log:{k}") for k in range(15)]
    rows.append(T(tenant="a", start=T0 + DAY, end=T0 + DAY, bytes_out=1, ref="next-day"))
    evidence = compute_windows(
        iter(table(rows).to_batches(max_chunksize=4)), WindowParams(evidence_per_day=3)
    ).evidence.to_pylist()
    assert [(r["ref"], r["where"], r["bytes_in"]) for r in evidence] == [
        ("r12", "conn.log:12", 12), ("r13", "conn.log:13", 13), ("r14", "conn.log:14", 14),
        ("next-day", None, 0)]


def evidence_key(evidence: pa.Table) -> list[tuple[Any, ...]]:
    """Evidence up to the order of full ties (same tenant, size, start and ref)."""
    return sorted((r["tenant"], r["start"], max(r["bytes_in"], r["bytes_out"]), r["ref"])
                  for r in evidence.to_pylist())


@settings(max_examples=30, deadline=None)
@given(transfer_rows(), st.integers(1, 4), st.integers(1, 3), st.integers(1, 3),
       st.booleans(), st.booleans())
def test_flushing_and_compaction_do_not_change_results(
        rows: list[T], batch: int, flush_rows: int, compact_rows: int,
        background: bool, exact_distinct: bool) -> None:
    params = WindowParams(registrations={"b": T0 - DAY}, concern_countries=("NL",),
                          evidence_per_day=2, exact_distinct=exact_distinct,
                          distinct_late_hours=LATE)
    whole = compute_windows(table(rows), params)
    aggregator = WindowAggregator(params, flush_rows=flush_rows, compact_rows=compact_rows,
                                  background=background)
    for part in table(rows).to_batches(max_chunksize=batch):
        aggregator.add(part)
    got = aggregator.result()
    assert got.windows.equals(whole.windows)
    assert got.countries.equals(whole.countries)
    assert evidence_key(got.evidence) == evidence_key(whole.evidence)


def test_evidence_floor_across_flushes() -> None:
    # Day one arrives in three flushes; the floor from the first two drops the small ones.
    sizes = [50, 40, 30, 5, 60, 1, 45, 2, 70]
    rows = [T(tenant="a", start=T0 + k * MIN5, end=T0 + k * MIN5, bytes_in=b, ref=f"r{k}")
            for k, b in enumerate(sizes)]
    aggregator = WindowAggregator(WindowParams(evidence_per_day=3), flush_rows=3,
                                  compact_rows=100)
    for part in table(rows).to_batches(max_chunksize=1):
        aggregator.add(part)
    evidence = aggregator.result().evidence.to_pylist()
    assert [(r["ref"], r["bytes_in"]) for r in evidence] == [("r0", 50), ("r4", 60), ("r8", 70)]


def test_aggregator_rejects_bad_sizes() -> None:
    with pytest.raises(ValueError, match="flush_rows and compact_rows must be positive"):
        WindowAggregator(flush_rows=0)


@settings(max_examples=30, deadline=None)
@given(transfer_rows(), st.integers(1, 4), st.booleans())
def test_incremental_snapshots_equal_one_aggregation(rows: list[T], parts: int,
                                                     exact_distinct: bool) -> None:
    """Snapshots taken as parts arrive, each of the tenants with new rows only, add up to
    the windows of all rows aggregated at once (the sidecar's use)."""
    params = WindowParams(registrations={"b": T0 - DAY}, concern_countries=("NL",),
                          evidence_per_day=2, exact_distinct=exact_distinct,
                          distinct_late_hours=LATE)
    whole = compute_windows(table(rows), params)
    aggregator = WindowAggregator(params, background=False)
    latest: dict[str, dict[str, list[dict[str, Any]]]] = {}
    try:
        all_rows = table(rows)
        size = max(1, -(-all_rows.num_rows // parts))
        for first in range(0, all_rows.num_rows, size):
            part = all_rows.slice(first, size)
            aggregator.add(part)
            snap = aggregator.snapshot(changed_only=True)
            assert set(snap.windows.column("tenant").to_pylist()) <= set(
                part.column("tenant").to_pylist())
            for tenant in set(part.column("tenant").to_pylist()):
                latest[tenant] = {
                    name: [r for r in getattr(snap, name).to_pylist() if r["tenant"] == tenant]
                    for name in ("windows", "countries", "evidence")}
        full = aggregator.snapshot()
    finally:
        aggregator.close()
    assert full.windows.equals(whole.windows)
    for name in ("windows", "countries"):
        merged = [r for tenant in sorted(latest) for r in latest[tenant][name]]
        assert merged == getattr(whole, name).to_pylist()
    merged_evidence = pa.Table.from_pylist(
        [r for tenant in sorted(latest) for r in latest[tenant]["evidence"]],
        schema=whole.evidence.schema)
    assert evidence_key(merged_evidence) == evidence_key(whole.evidence)


@settings(max_examples=25, deadline=None)
@given(transfer_rows(), st.integers(-1, 9), st.booleans())
def test_forgetting_after_equals_forgetting_before(rows: list[T], day: int,
                                                   exact_distinct: bool) -> None:
    """Forgetting the windows before a horizon once the rows are in leaves what forgetting
    first leaves; the hours and days from the horizon on are those of no forgetting; and
    a horizon never moves back."""
    params = WindowParams(registrations={"b": T0 - DAY}, concern_countries=("NL",),
                          evidence_per_day=2, exact_distinct=exact_distinct,
                          distinct_late_hours=LATE)
    cut = T0 + day * DAY
    whole = compute_windows(table(rows), params)
    late = WindowAggregator(params, background=False)
    late.add(table(rows))
    late.snapshot()
    assert late.forget_before(cut - HOUR)  # rounded up to the day: cut
    assert not late.forget_before(cut - DAY)
    got = late.result()
    early = WindowAggregator(params, background=False)
    assert early.forget_before(cut)
    early.add(table(rows))
    first = early.result()
    assert got.windows.equals(first.windows)
    assert got.countries.equals(first.countries)
    assert evidence_key(got.evidence) == evidence_key(first.evidence)
    assert all(r["start"] >= cut for r in got.evidence.to_pylist())
    for span in ("1h", "24h"):
        assert [r for r in got.windows.to_pylist() if r["span"] == span] == [
            r for r in whole.windows.to_pylist()
            if r["span"] == span and r["window_start"] >= cut]


@settings(max_examples=30, deadline=None)
@given(transfer_rows(), transfer_rows(), st.integers(1, 4), st.booleans())
def test_changed_only_snapshots_equal_fresh_aggregations(
        first: list[T], rows: list[T], parts: int, exact_distinct: bool) -> None:
    """After a full snapshot, each changed-only snapshot (which recomputes only from the
    day the new rows start in, and takes older windows from the tables it keeps) shows
    exactly what a fresh aggregation of every row so far shows for the tenants in it."""
    params = WindowParams(registrations={"b": T0 - DAY}, concern_countries=("NL",),
                          evidence_per_day=2, exact_distinct=exact_distinct,
                          distinct_late_hours=LATE)
    aggregator = WindowAggregator(params, background=False)
    try:
        aggregator.add(table(first))
        aggregator.snapshot()
        added = list(first)
        size = max(1, -(-len(rows) // parts))
        for start in range(0, len(rows), size):
            part = rows[start:start + size]
            aggregator.add(table(part))
            added += part
            snap = aggregator.snapshot(changed_only=True)
            tenants = {r.tenant for r in part}
            fresh = compute_windows(table(added), params)
            for name in ("windows", "countries"):
                want = [r for r in getattr(fresh, name).to_pylist() if r["tenant"] in tenants]
                assert getattr(snap, name).to_pylist() == want, name
            assert evidence_key(snap.evidence) == evidence_key(fresh.evidence.filter(
                pc.is_in(fresh.evidence.column("tenant"), value_set=pa.array(sorted(tenants)))))
        whole = aggregator.snapshot()
    finally:
        aggregator.close()
    assert whole.windows.equals(compute_windows(table(added), params).windows)


def test_byte_sums_past_64_bits_saturate_and_keep_their_high_half() -> None:
    """An hour holding 2**64 + 1 bytes (two corrupt counts) reports 2**64 - 1 and is above
    the sustained rate: the high half of the 128-bit sum is not lost on the way."""
    most = 2**64 - 1
    rows = [T(tenant="a", start=T0, end=T0, bytes_in=most),
            T(tenant="a", start=T0 + MIN5, end=T0 + MIN5, bytes_in=2)]
    [hour] = windows(rows, "1h", sustained_rate_bps=8 * 1e6 / 3600)  # 1 MB per hour
    assert (hour["bytes_in"], hour["hours_above_rate"]) == (most, 1)
    [day] = windows(rows, "24h")
    assert day["bytes_in"] == most
