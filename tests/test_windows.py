"""Windows: tumbling per-tenant windows, apportioning, rounding that preserves totals."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from egress.records import (
    Attributed,
    CopyRecord,
    DriveAttach,
    Flow,
    ObjectStoreRequest,
    Provenance,
)
from egress.windows import (
    TRANSFERS_SCHEMA,
    WINDOWS_SCHEMA,
    aggregate_windows,
    transfer_batches,
    transfers_table,
)

T0 = datetime(2026, 6, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
US = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True, kw_only=True)
class T:
    """One transfer row, for building input tables by hand."""

    tenant: str
    start: datetime
    end: datetime
    bytes_in: int = 0
    bytes_out: int = 0
    remote_addr: str | None = None
    cross_border: bool | None = None
    direction: str = "inbound"


def table(rows: list[T]) -> pa.Table:
    return pa.Table.from_pylist(
        [
            {
                "tenant": r.tenant, "start": r.start, "end": r.end, "direction": r.direction,
                "bytes_in": r.bytes_in, "bytes_out": r.bytes_out, "remote_addr": r.remote_addr,
                "remote_country": None, "cross_border": r.cross_border,
            }
            for r in rows
        ],
        schema=TRANSFERS_SCHEMA,
    )


def rows_of(result: pa.Table) -> list[dict[str, Any]]:
    return result.to_pylist()  # type: ignore[no-any-return]


# -- golden ---------------------------------------------------------------------------------


def test_three_day_upload_adds_equal_hours() -> None:
    upload = T(tenant="a", start=T0, end=T0 + 3 * DAY, bytes_in=259_200_000,
               remote_addr="198.51.100.7", cross_border=True)
    result = aggregate_windows(table([upload]), size=HOUR)
    assert result.schema == WINDOWS_SCHEMA
    rows = rows_of(result)
    assert [r["window_start"] for r in rows] == [T0 + k * HOUR for k in range(72)]
    assert {r["bytes_in"] for r in rows} == {3_600_000}
    assert {r["cross_border_bytes_in"] for r in rows} == {3_600_000}
    assert {(r["bytes_out"], r["remote_addrs"], r["transfers"]) for r in rows} == {(0, 1, 1)}


def test_three_day_upload_adds_equal_days() -> None:
    upload = T(tenant="a", start=T0, end=T0 + 3 * DAY, bytes_in=259_200_000)
    rows = rows_of(aggregate_windows(table([upload]), size=DAY))
    assert [(r["window_start"], r["bytes_in"], r["cross_border_bytes_in"]) for r in rows] == [
        (T0, 86_400_000, 0), (T0 + DAY, 86_400_000, 0), (T0 + 2 * DAY, 86_400_000, 0),
    ]


def test_transfer_starting_mid_window_apportions_exactly() -> None:
    start = T0 + timedelta(minutes=30)
    transfer = T(tenant="a", start=start, end=start + 2 * HOUR, bytes_in=7_200, bytes_out=720)
    rows = rows_of(aggregate_windows(table([transfer]), size=HOUR))
    assert [(r["window_start"], r["bytes_in"], r["bytes_out"]) for r in rows] == [
        (T0, 1_800, 180), (T0 + HOUR, 3_600, 360), (T0 + 2 * HOUR, 1_800, 180),
    ]


def test_uneven_split_uses_cumulative_floor() -> None:
    # 10 bytes over three equal thirds of one hour each: floor(10/3)=3, floor(20/3)-3=3, 4.
    transfer = T(tenant="a", start=T0, end=T0 + 3 * HOUR, bytes_in=10)
    rows = rows_of(aggregate_windows(table([transfer]), size=HOUR))
    assert [r["bytes_in"] for r in rows] == [3, 3, 4]


def test_largest_volume_is_exact() -> None:
    # 2**64 - 1 bytes over 7 hours from mid-hour: 128-bit arithmetic, no float rounding.
    start = T0 + timedelta(minutes=17)
    most = 2**64 - 1
    transfer = T(tenant="a", start=start, end=start + 7 * HOUR, bytes_in=most)
    rows = rows_of(aggregate_windows(table([transfer]), size=HOUR))
    assert [r["bytes_in"] for r in rows] == [r["bytes_in"] for r in reference([transfer], HOUR)]
    assert sum(r["bytes_in"] for r in rows) == most


def test_instantaneous_and_boundaries() -> None:
    rows = rows_of(aggregate_windows(table([
        T(tenant="a", start=T0 + HOUR, end=T0 + HOUR, bytes_in=5),  # on a boundary: next window
        T(tenant="a", start=T0, end=T0 + HOUR, bytes_in=7),  # ends on a boundary: one window
        T(tenant="a", start=T0 + HOUR - US, end=T0 + HOUR - US, bytes_out=0),  # zero bytes
    ]), size=HOUR))
    assert [(r["window_start"], r["bytes_in"], r["transfers"]) for r in rows] == [
        (T0, 7, 2), (T0 + HOUR, 5, 1),
    ]


def test_metrics_per_tenant_and_window() -> None:
    rows = rows_of(aggregate_windows(table([
        T(tenant="b", start=T0, end=T0, bytes_in=1, remote_addr="192.0.2.1", cross_border=True),
        T(tenant="b", start=T0, end=T0, bytes_in=2, remote_addr="192.0.2.1", cross_border=None),
        T(tenant="b", start=T0, end=T0, bytes_in=4, remote_addr="192.0.2.2", cross_border=False),
        T(tenant="b", start=T0, end=T0, bytes_in=8, remote_addr=None, cross_border=True),
        T(tenant="a", start=T0 + DAY, end=T0 + DAY, bytes_out=3),
    ]), size=DAY))
    assert rows == [
        {"tenant": "a", "window_start": T0 + DAY, "bytes_in": 0, "bytes_out": 3,
         "cross_border_bytes_in": 0, "remote_addrs": 0, "transfers": 1},
        {"tenant": "b", "window_start": T0, "bytes_in": 15, "bytes_out": 0,
         "cross_border_bytes_in": 9, "remote_addrs": 2, "transfers": 4},
    ]


def test_before_1970_windows_align_on_epoch() -> None:
    start = datetime(1969, 12, 31, 23, 30, tzinfo=UTC)
    rows = rows_of(aggregate_windows(
        table([T(tenant="a", start=start, end=start + HOUR, bytes_in=60)]), size=HOUR))
    assert [(r["window_start"], r["bytes_in"]) for r in rows] == [
        (datetime(1969, 12, 31, 23, tzinfo=UTC), 30), (datetime(1970, 1, 1, tzinfo=UTC), 30),
    ]


def test_empty_input() -> None:
    result = aggregate_windows(table([]), size=HOUR)
    assert result.schema == WINDOWS_SCHEMA
    assert result.num_rows == 0
    assert aggregate_windows(iter([]), size=HOUR).num_rows == 0


def test_batches_and_passed_connection() -> None:
    data = table([T(tenant="a", start=T0, end=T0 + 2 * HOUR, bytes_in=2)] * 3)
    expected = aggregate_windows(data, size=HOUR)
    con = duckdb.connect()
    try:
        got = aggregate_windows(iter(data.to_batches(max_chunksize=1)), size=HOUR, connection=con)
        assert got.equals(expected)
        assert con.sql("SELECT 1").fetchall() == [(1,)]  # left open, view gone
        assert "transfers" not in {row[0] for row in con.sql("SHOW TABLES").fetchall()}
    finally:
        con.close()


@pytest.mark.parametrize("size", [timedelta(0), -HOUR])
def test_rejects_non_positive_size(size: timedelta) -> None:
    with pytest.raises(ValueError, match="window size must be positive"):
        aggregate_windows(table([]), size=size)


def test_rejects_missing_column() -> None:
    with pytest.raises(KeyError, match="bytes_in"):
        aggregate_windows(table([]).drop_columns(["bytes_in"]), size=HOUR)


# -- transfers_table --------------------------------------------------------------------------


def flow(*, start: datetime, duration_s: float, interim: bool = False) -> Flow:
    return Flow(
        uid="C1", start=start, duration_s=duration_s, orig_h="203.0.113.9", orig_p=40000,
        resp_h="10.0.0.5", resp_p=443, proto="tcp", ip_proto=6, conn_state="SF", history="ShADad",
        orig_pkts=1, orig_ip_bytes=100, orig_bytes=60, resp_pkts=1, resp_ip_bytes=40,
        resp_bytes=0, community_id="1:x", interim=interim,
    )


def request(time: datetime) -> ObjectStoreRequest:
    return ObjectStoreRequest(
        time=time, store="s3", operation="put_object", raw_operation="REST.PUT.OBJECT",
        bucket="b", key="k", status=200, bytes_in=9, object_size_bytes=9, remote_addr="192.0.2.3",
        requester=None, user_agent=None, request_id=None, provenance=Provenance(path="log"),
    )


def copy(time: datetime | None) -> CopyRecord:
    return CopyRecord(time=time, station="st1", tool="rsync", path="/d/f", bytes_copied=11,
                      provenance=Provenance(path="copy.log"))


def test_transfers_table_from_attributed() -> None:
    drive = DriveAttach(station="st1", device="sdb", serial="S1", model=None, bus="usb",
                        capacity_bytes=10**12, attached=T0, detached=None,
                        provenance=Provenance(path="kern.log"))
    items = [
        Attributed(record=flow(start=T0, duration_s=1.5), tenant="a", how="address",
                   direction="inbound", remote_addr="203.0.113.9", remote_country="NL",
                   cross_border=True, bytes_in=100, bytes_out=40),
        Attributed(record=flow(start=T0, duration_s=1.0, interim=True), tenant="a",
                   how="address", direction="inbound", bytes_in=50),
        Attributed(record=request(T0 + HOUR), tenant="b", how="bucket", direction="inbound",
                   remote_addr="192.0.2.3", bytes_in=9),
        Attributed(record=request(T0), tenant=None, how="unattributed", direction="inbound"),
        Attributed(record=copy(T0 + DAY), tenant="c", how="copy_log", direction="inbound",
                   bytes_in=11, job="J1"),
        Attributed(record=copy(None), tenant="c", how="copy_log", direction="inbound",
                   bytes_in=11, job="J1"),
        Attributed(record=drive, tenant="c", how="drive_serial", direction="inbound", job="J1"),
    ]
    result = transfers_table(items)
    assert result.schema == TRANSFERS_SCHEMA
    assert result.to_pylist() == [
        {"tenant": "a", "start": T0, "end": T0 + timedelta(seconds=1.5), "direction": "inbound",
         "bytes_in": 100, "bytes_out": 40, "remote_addr": "203.0.113.9",
         "remote_country": "NL", "cross_border": True},
        {"tenant": "b", "start": T0 + HOUR, "end": T0 + HOUR, "direction": "inbound",
         "bytes_in": 9, "bytes_out": 0, "remote_addr": "192.0.2.3", "remote_country": None,
         "cross_border": None},
        {"tenant": "c", "start": T0 + DAY, "end": T0 + DAY, "direction": "inbound",
         "bytes_in": 11, "bytes_out": 0, "remote_addr": None, "remote_country": None,
         "cross_border": None},
    ]
    assert [b.num_rows for b in transfer_batches(items, batch_rows=2)] == [2, 1]
    assert transfers_table([]).num_rows == 0


def test_transfer_batches_rejects_bad_batch_rows() -> None:
    with pytest.raises(ValueError, match="batch_rows must be positive"):
        next(transfer_batches([], batch_rows=0))


# -- property: DuckDB against a plain Python reference ------------------------------------------


def reference(rows: list[T], size: timedelta) -> list[dict[str, Any]]:
    """Apportion with exact integer arithmetic on microseconds, row by row."""
    size_us = size // US
    acc: dict[tuple[str, int], dict[str, Any]] = defaultdict(
        lambda: {"bytes_in": 0, "bytes_out": 0, "cross_border_bytes_in": 0,
                 "remote_addrs": set(), "transfers": 0})
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    for r in rows:
        s, e = (r.start - epoch) // US, (r.end - epoch) // US
        for ws, share_in, share_out in pieces(s, e, size_us, r.bytes_in, r.bytes_out):
            cell = acc[r.tenant, ws]
            cell["bytes_in"] += share_in
            cell["bytes_out"] += share_out
            cell["cross_border_bytes_in"] += share_in if r.cross_border else 0
            if r.remote_addr is not None:
                cell["remote_addrs"].add(r.remote_addr)
            cell["transfers"] += 1
    return [
        {"tenant": tenant, "window_start": epoch + ws * US, **cell,
         "remote_addrs": len(cell["remote_addrs"])}
        for (tenant, ws), cell in sorted(acc.items())
    ]


def pieces(s: int, e: int, size_us: int, b_in: int, b_out: int) -> Iterator[tuple[int, int, int]]:
    if e == s:
        yield s - s % size_us, b_in, b_out
        return
    ws = s - s % size_us
    done = 0
    while ws < e:
        upto = min(e, ws + size_us) - s
        yield (ws, b_in * upto // (e - s) - b_in * done // (e - s),
               b_out * upto // (e - s) - b_out * done // (e - s))
        done = upto
        ws += size_us


@st.composite
def transfers(draw: st.DrawFn) -> tuple[list[T], timedelta]:
    size = draw(st.sampled_from([HOUR, DAY]))
    size_us = size // US
    rows = []
    for _ in range(draw(st.integers(0, 12))):
        start = T0 + US * draw(st.integers(0, 3 * size_us))
        duration_us = draw(st.one_of(
            st.just(0), st.integers(1, 5 * size_us), st.sampled_from([size_us, 2 * size_us])))
        rows.append(T(
            tenant=draw(st.sampled_from(["a", "b", "c"])),
            start=start,
            end=start + US * duration_us,
            bytes_in=draw(st.one_of(st.just(0), st.integers(0, 2**56), st.integers(0, 10))),
            bytes_out=draw(st.one_of(st.just(0), st.integers(0, 10**12))),
            remote_addr=draw(st.sampled_from([None, "192.0.2.1", "192.0.2.2", "2001:db8::1"])),
            cross_border=draw(st.sampled_from([None, True, False])),
        ))
    return rows, size


@settings(max_examples=60, deadline=None)
@given(transfers())
def test_matches_reference(case: tuple[list[T], timedelta]) -> None:
    rows, size = case
    got = rows_of(aggregate_windows(table(rows), size=size))
    assert got == reference(rows, size)
    assert sum(r["bytes_in"] for r in got) == sum(r.bytes_in for r in rows)
    assert sum(r["bytes_out"] for r in got) == sum(r.bytes_out for r in rows)
    assert sum(r["transfers"] for r in got) >= len(rows)
