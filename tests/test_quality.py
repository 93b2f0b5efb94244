"""Quality marks (payload vs IP-level counts, capture loss) and sensor de-duplication."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from egress.columns import CONN_SCHEMA
from egress.quality import (
    CAPTURE_LOSS,
    NO_IP_COUNTS,
    PAYLOAD_EXCEEDS_IP,
    PAYLOAD_FAR_BELOW_IP,
    QUALITY_FIELD,
    DedupStats,
    SensorDeduplicator,
    batch_marked,
    batch_quality,
    dedupe_flows,
    flow_quality,
    quality_marks,
)
from egress.records import Flow

T0 = datetime(2026, 6, 10, 12, 0, tzinfo=UTC)
GB4 = 4 * 1024**3

# A clean bulk upload: 10,000 data packets of 1,460 bytes, 5,000 pure ACKs with timestamps.
CLEAN: dict[str, int | None] = {
    "orig_bytes": 14_600_000, "orig_ip_bytes": 15_000_000, "orig_pkts": 10_000,
    "resp_bytes": 0, "resp_ip_bytes": 260_000, "resp_pkts": 5_000, "missed_bytes": 0,
}


def marks(**changes: int | None) -> tuple[str, ...]:
    return quality_marks(**{**CLEAN, **changes})


def test_clean_record_has_no_marks() -> None:
    assert marks() == ()


def test_zeek_orig_bytes_4gb_above_ip_bytes() -> None:
    # The classic: a small connection whose sequence-derived orig_bytes is off by 4 GB.
    assert marks(orig_bytes=1_200 + GB4, orig_ip_bytes=1_800, orig_pkts=6,
                 resp_bytes=300, resp_ip_bytes=620, resp_pkts=4) == (PAYLOAD_EXCEEDS_IP,)


def test_payload_exceeds_ip_by_one_byte_in_resp() -> None:
    assert marks(resp_bytes=260_001) == (PAYLOAD_EXCEEDS_IP,)
    assert marks(resp_bytes=260_000) == ()


def test_payload_far_below_ip() -> None:
    # gap = 15,000,000 - 80 * 10,000 = 14,200,000; half of it is 7,100,000.
    assert marks(orig_bytes=7_099_999) == (PAYLOAD_FAR_BELOW_IP,)
    assert marks(orig_bytes=7_100_000) == ()


def test_far_below_needs_a_one_mib_gap() -> None:
    # gap = 2,000,000 - 80 * 100 = 1,992,000; payload 943,425 leaves a gap of 1,048,575.
    assert marks(orig_ip_bytes=2_000_000, orig_pkts=100, orig_bytes=943_425) == ()
    assert marks(orig_ip_bytes=2_000_000, orig_pkts=100, orig_bytes=943_424) == (
        PAYLOAD_FAR_BELOW_IP,)


def test_ipv6_ack_stream_is_within_header_allowance() -> None:
    # 1M pure ACKs over IPv6 with TCP timestamps: 72 bytes each, no payload.
    assert marks(resp_bytes=0, resp_ip_bytes=72_000_000, resp_pkts=1_000_000) == ()


def test_capture_loss() -> None:
    assert marks(missed_bytes=1) == (CAPTURE_LOSS,)
    assert marks(missed_bytes=None) == ()


def test_no_ip_counts() -> None:
    assert marks(orig_ip_bytes=None) == (NO_IP_COUNTS,)
    assert marks(resp_ip_bytes=None, orig_bytes=None, orig_pkts=None) == (NO_IP_COUNTS,)


def test_marks_are_listed_once_in_order() -> None:
    assert marks(orig_ip_bytes=None, resp_bytes=GB4, orig_bytes=GB4, missed_bytes=GB4) == (
        NO_IP_COUNTS, PAYLOAD_EXCEEDS_IP, CAPTURE_LOSS)
    assert marks(orig_bytes=GB4, resp_ip_bytes=10_000_000, resp_pkts=10,
                 missed_bytes=5) == (PAYLOAD_EXCEEDS_IP, PAYLOAD_FAR_BELOW_IP, CAPTURE_LOSS)


def flow(*, sensor_uid: str = "C1", start: datetime = T0, orig_h: str = "10.0.0.5",
         orig_p: int = 40000, resp_h: str = "203.0.113.9", resp_p: int = 443,
         community_id: str = "1:abc=", vni: int | None = None,
         orig_bytes: int = 14_600_000) -> Flow:
    return Flow(
        uid=sensor_uid, start=start, duration_s=1.0, orig_h=orig_h, orig_p=orig_p,
        resp_h=resp_h, resp_p=resp_p, proto="tcp", ip_proto=6, conn_state="SF",
        history="ShADadFf", community_id=community_id, vni=vni,
        orig_bytes=orig_bytes, orig_ip_bytes=15_000_000, orig_pkts=10_000,
        resp_bytes=0, resp_ip_bytes=260_000, resp_pkts=5_000,
    )


def test_flow_quality() -> None:
    assert flow_quality(flow()) == ()
    assert flow_quality(flow(orig_bytes=GB4)) == (PAYLOAD_EXCEEDS_IP,)


def conn_batch(rows: list[dict[str, Any]]) -> pa.RecordBatch:
    columns = {f.name: [row.get(f.name, False if f.name == "interim" else None) for row in rows]
               for f in CONN_SCHEMA}
    columns["line"] = list(range(1, len(rows) + 1))
    return pa.RecordBatch.from_pydict(columns, schema=CONN_SCHEMA)


BATCH_ROWS: list[dict[str, int | None]] = [
    dict(CLEAN),
    {**CLEAN, "orig_bytes": 1_200 + GB4, "orig_ip_bytes": 1_800, "orig_pkts": 6},
    {**CLEAN, "orig_bytes": 7_099_999},
    {**CLEAN, "missed_bytes": 1_460},
    {**CLEAN, "orig_ip_bytes": None, "resp_ip_bytes": None},
    {**CLEAN, "orig_bytes": None, "resp_bytes": None, "missed_bytes": None},
    {**CLEAN, "orig_bytes": GB4, "resp_ip_bytes": 10_000_000, "resp_pkts": 10,
     "missed_bytes": 5},
    {k: None for k in CLEAN},
]


def test_batch_quality_equals_row_rules() -> None:
    result = batch_quality(conn_batch(BATCH_ROWS))
    assert result.type == QUALITY_FIELD.type
    assert result.null_count == 0
    assert result.to_pylist() == [
        [],
        [PAYLOAD_EXCEEDS_IP],
        [PAYLOAD_FAR_BELOW_IP],
        [CAPTURE_LOSS],
        [NO_IP_COUNTS],
        [],
        [PAYLOAD_EXCEEDS_IP, PAYLOAD_FAR_BELOW_IP, CAPTURE_LOSS],
        [NO_IP_COUNTS],
    ]
    assert result.to_pylist() == [list(quality_marks(**row)) for row in BATCH_ROWS]


def test_batch_quality_of_empty_batch() -> None:
    assert batch_quality(conn_batch([])).to_pylist() == []


FIVE = ("10.0.0.5", 40000, "203.0.113.9", 443, "tcp")


def test_dedup_by_community_id() -> None:
    dedup = SensorDeduplicator()
    other = ("10.9.9.9", 1, "10.9.9.8", 2, "tcp")  # a sensor that saw NAT-ed or odd tuples
    assert dedup.seen("1:abc=", FIVE, T0, "tap-a") is False
    assert dedup.seen("1:abc=", other, T0 + timedelta(seconds=30), "tap-b") is True
    assert dedup.stats() == DedupStats(records=2, duplicates=1, pairs={("tap-a", "tap-b"): 1},
                                       expired=0, tracked=1)


def test_dedup_by_five_tuple_within_window() -> None:
    dedup = SensorDeduplicator()
    assert dedup.seen(None, FIVE, T0, "tap-a") is False
    # Reversed direction, 1 s later, other sensor: the same connection.
    rev = ("203.0.113.9", 443, "10.0.0.5", 40000, "TCP")
    assert dedup.seen("", rev, T0 + timedelta(seconds=1), "tap-b") is True
    assert dedup.seen(None, FIVE, T0 - timedelta(seconds=0.5), "tap-c") is True
    assert dedup.stats().pairs == {("tap-a", "tap-b"): 1, ("tap-a", "tap-c"): 1}


def test_dedup_not_beyond_window() -> None:
    dedup = SensorDeduplicator()
    assert dedup.seen(None, FIVE, T0, "tap-a") is False
    assert dedup.seen(None, FIVE, T0 + timedelta(seconds=1.001), "tap-b") is False
    assert dedup.stats().duplicates == 0
    assert dedup.stats().tracked == 2


def test_dedup_not_within_same_sensor() -> None:
    dedup = SensorDeduplicator()
    # Interim and final records of one uid from one sensor are both kept ...
    assert dedup.seen("1:abc=", FIVE, T0, "tap-a") is False
    assert dedup.seen("1:abc=", FIVE, T0, "tap-a") is False
    # ... and the other sensor's copies of it are dropped, each time.
    assert dedup.seen("1:abc=", FIVE, T0, "tap-b") is True
    assert dedup.seen("1:abc=", FIVE, T0, "tap-b") is True
    assert dedup.stats() == DedupStats(records=4, duplicates=2, pairs={("tap-a", "tap-b"): 2},
                                       expired=0, tracked=1)


def test_dedup_keeps_overlays_apart() -> None:
    dedup = SensorDeduplicator()
    assert dedup.seen("1:abc=", FIVE, T0, "tap-a", vni=100) is False
    assert dedup.seen("1:abc=", FIVE, T0, "tap-b", vni=200) is False


def test_dedup_expiry_bounds_memory() -> None:
    dedup = SensorDeduplicator(horizon_s=60.0)
    for i in range(1_000):
        five = ("10.0.0.5", 10_000 + i, "203.0.113.9", 443, "tcp")
        assert dedup.seen(f"1:{i}=", five, T0 + timedelta(seconds=i), "tap-a") is False
    stats = dedup.stats()
    assert stats.tracked == 61  # starts 939 .. 999 s
    assert stats.expired == 939
    # A forgotten connection is registered afresh by whoever reports it next.
    old = ("10.0.0.5", 10_000, "203.0.113.9", 443, "tcp")
    assert dedup.seen("1:0=", old, T0, "tap-b") is False


def test_dedup_rejects_naive_start_and_bad_window() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        SensorDeduplicator().seen(None, FIVE, datetime(2026, 6, 10), "tap-a")
    with pytest.raises(ValueError, match="window_s <= horizon_s"):
        SensorDeduplicator(window_s=5.0, horizon_s=1.0)


def test_dedupe_flows() -> None:
    a1 = flow(sensor_uid="Ca1")
    a1_final = flow(sensor_uid="Ca1", orig_bytes=14_600_001)
    b1 = flow(sensor_uid="Cb1", start=T0 + timedelta(seconds=0.2), community_id="")
    b2 = flow(sensor_uid="Cb2", orig_p=40001, community_id="1:def=")
    dedup = SensorDeduplicator()
    kept = list(dedupe_flows(
        [("a", a1), ("b", b1), ("a", a1_final), ("b", b2)], dedup=dedup))
    assert kept == [("a", a1), ("a", a1_final), ("b", b2)]
    assert dedup.stats().pairs == {("a", "b"): 1}
    assert list(dedupe_flows([("a", a1), ("b", a1)])) == [("a", a1)]


def test_a_long_connection_still_re_logged_is_not_forgotten() -> None:
    """The horizon counts from the last record that matched a connection."""
    dedup = SensorDeduplicator(horizon_s=10.0)
    t0 = datetime(2026, 5, 1, tzinfo=UTC)
    long_conn = ("10.0.0.1", 40000, "1.2.3.4", 443, "tcp")
    assert not dedup.seen("1:long", long_conn, t0, "a")
    for k in range(1, 8):  # other connections move log time on; "a" re-logs every 8 s
        at = t0 + timedelta(seconds=8 * k)
        assert not dedup.seen(None, ("10.0.0.2", 40000 + k, "5.6.7.8", 443, "tcp"), at, "a")
        assert not dedup.seen("1:long", long_conn, t0, "a")  # interim record, start t0
    # 56 s after it started, sensor b's copy is still recognized
    assert dedup.seen("1:long", long_conn, t0, "b")
    # a connection last matched beyond the horizon is forgotten
    quiet = SensorDeduplicator(horizon_s=10.0)
    assert not quiet.seen("1:x", long_conn, t0, "a")
    assert not quiet.seen(None, ("10.0.0.2", 1, "5.6.7.8", 443, "tcp"),
                          t0 + timedelta(seconds=30), "a")
    assert not quiet.seen("1:x", long_conn, t0, "b")
    assert quiet.stats().expired == 1


_COUNT = st.one_of(
    st.none(), st.integers(0, 3_000_000), st.sampled_from(
        [0, 1, 80, 1 << 20, (1 << 20) + 1, 2 * (1 << 20), 2**53, 2**53 + 1, 2**63, 2**64 - 1]),
    st.integers(0, 2**64 - 1))


@settings(max_examples=300, deadline=None)
@given(rows=st.lists(st.fixed_dictionaries({name: _COUNT for name in CLEAN}), max_size=40))
def test_batch_marked_equals_row_rules(rows: list[dict[str, int | None]]) -> None:
    """The numpy test of marked rows gives the row rules' answer, nulls and edges too."""
    marked = batch_marked(conn_batch(rows)).tolist()
    assert marked == [bool(quality_marks(**row)) for row in rows]
    assert marked == [bool(marks) for marks in batch_quality(conn_batch(rows)).to_pylist()]


def test_quality_marked_refuses_bad_input() -> None:
    """The compiled pass checks its columns: count, length, None values."""
    import numpy as np

    from egress._wincore import quality_marked

    rules = (80.0, 0.5, float(1 << 20))
    values = tuple(np.zeros(3, np.uint64) for _ in range(7))
    valid = (None,) * 7
    out = np.ones(3, np.bool_)
    quality_marked(values, valid, rules, out)
    assert out.tolist() == [False, False, False]
    with pytest.raises(ValueError, match="expected 7 columns"):
        quality_marked(values[:6], valid[:6], rules, out)
    with pytest.raises(ValueError, match="values"):
        quality_marked((np.zeros(2, np.uint64), *values[1:]), valid, rules, out)
    with pytest.raises(ValueError, match="values: None"):
        quality_marked((None, *values[1:]), valid, rules, out)
    with pytest.raises(ValueError, match="valid"):
        quality_marked(values, (np.ones(2, np.bool_), *valid[1:]), rules, out)
