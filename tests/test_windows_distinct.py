"""Distinct remote ends counted by sketches: exact sets up to 768 values, HyperLogLog
estimates beyond, and what is let go as time moves on (egress.windows_network,
csrc/wincore/distinct.c)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pytest

from egress.transfers import TRANSFERS_SCHEMA
from egress.windows import WindowAggregator, WindowParams, compute_windows
from egress.windows_network import EXACT_UP_TO, NetworkReduction, TenantCodes

T0 = datetime(2026, 6, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
HOUR_US = 3_600_000_000


def address(k: int) -> str:
    return f"2001:db8::{k // 65536:x}:{k % 65536:x}"


def network(rows: Sequence[tuple[str, datetime, timedelta, int, str | None]]) -> pa.Table:
    """Network transfers from (tenant, start, duration, address number, country)."""
    given: dict[str, list[Any]] = {
        "tenant": [r[0] for r in rows],
        "kind": ["network"] * len(rows),
        "start": [r[1] for r in rows],
        "end": [r[1] + r[2] for r in rows],
        "bytes_in": [1] * len(rows),
        "bytes_out": [0] * len(rows),
        "remote_addr": [address(r[3]) for r in rows],
        "remote_asn": [64_500 + r[3] % 7 for r in rows],
        "remote_country": [r[4] for r in rows],
        "direction": ["inbound"] * len(rows),
        "quality": [False] * len(rows),
    }
    return pa.table({field.name: pa.array(given.get(field.name, [None] * len(rows)), field.type)
                     for field in TRANSFERS_SCHEMA}, schema=TRANSFERS_SCHEMA)


def counts(result: Any, span: str) -> list[tuple[datetime, int, int]]:
    return [(r["window_end"], r["remote_addrs"], r["remote_asns"])
            for r in result.windows.to_pylist() if r["span"] == span]


@pytest.mark.parametrize("n", [1, 2, EXACT_UP_TO])
def test_exact_up_to_the_set_size(n: int) -> None:
    rows = [("a", T0 + k * timedelta(seconds=1), timedelta(0), k, "NL") for k in range(n)]
    result = compute_windows(network(rows))
    asns = min(n, 7)
    assert counts(result, "1h") == [(T0 + HOUR, n, asns)]
    assert counts(result, "24h") == [(T0 + DAY, n, asns)]
    assert counts(result, "7d") == [(T0 + k * DAY, n, asns) for k in range(1, 8)]
    assert counts(result, "cumulative") == [(T0 + DAY, n, asns)]
    assert {r["remote_addrs"] for r in result.countries.to_pylist()} == {n}


@pytest.mark.parametrize("n", [EXACT_UP_TO + 1, 5_000, 200_000])
def test_estimates_beyond_within_three_standard_errors(n: int) -> None:
    """1.04 / sqrt(4096) = 1.6 % standard error; the hashes are fixed, so is the result."""
    rows = [("a", T0 + k * timedelta(microseconds=10), timedelta(0), k, "NL") for k in range(n)]
    result = compute_windows(network(rows))
    for span in ("1h", "24h", "7d", "cumulative"):
        for _, addrs, asns in counts(result, span):
            assert abs(addrs - n) <= 0.049 * n, (span, addrs)
            assert asns == 7
    exact = compute_windows((network(rows)), WindowParams(exact_distinct=True))
    assert counts(exact, "24h") == [(T0 + DAY, n, 7)]


def test_week_unions_overlapping_days() -> None:
    """Each day 2,000 addresses, half of them the previous day's: a 7-day window holds
    1,000 per day it covers plus 1,000; the estimates stay within 5 %."""
    rows = [("a", T0 + d * DAY + k * timedelta(seconds=40), timedelta(0), d * 1000 + k, None)
            for d in range(10) for k in range(2000)]
    result = compute_windows(network(rows))
    week = counts(result, "7d")
    assert [we for we, _, _ in week] == [T0 + k * DAY for k in range(1, 17)]
    for we, addrs, _ in week:
        days = len([d for d in range(10) if we - 7 * DAY <= T0 + d * DAY < we])
        expected = 1000 * days + 1000
        assert abs(addrs - expected) <= 0.05 * expected, (we, addrs, expected)
    cumulative = counts(result, "cumulative")
    assert abs(cumulative[-1][1] - 11_000) <= 0.05 * 11_000


@pytest.mark.parametrize("days_per_add", [1, 30])
def test_time_ordered_month_equals_exact_counts(days_per_add: int) -> None:
    """30 days of hourly transfers (some over several hours, shorter than the 6 hours
    kept) added day by day, or at once (8,640 rows: the reducer's sketch pass then runs in
    a thread beside its main pass): with hours and days let go as time moves on, every
    count equals the exact one (sets of at most 300 values per tenant and window)."""
    tenants = ("a", "bb", "ccc")
    rows = [(tenant, T0 + h * HOUR + m * timedelta(minutes=7), timedelta(hours=m % 4),
             (h * 37 + m * 11 + len(tenant)) % 300, ("NL", "CN", None)[(h + m) % 3])
            for h in range(30 * 24) for m in range(4) for tenant in tenants]
    table = network(rows)
    per_day = 24 * 4 * len(tenants)
    results = []
    for exact in (False, True):
        aggregator = WindowAggregator(WindowParams(exact_distinct=exact), background=False)
        for day in range(0, 30, days_per_add):
            aggregator.add(table.slice(day * per_day, days_per_add * per_day))
            aggregator.flush()
        results.append(aggregator.result())
    sketched, exact_result = results
    assert sketched.windows.equals(exact_result.windows)
    assert sketched.countries.equals(exact_result.countries)
    # 31 days with remote ends (the last transfers reach into day 31): 37 window ends each
    assert len(counts(sketched, "7d")) == len(tenants) * 37


def reduction_rows(reduction: NetworkReduction, codes: TenantCodes,
                   rows: Sequence[tuple[str, datetime, timedelta, int, str | None]]) -> None:
    table = network(rows)
    reduction.add(table.set_column(0, "tenant", codes.encode(table.column("tenant"))))
    reduction.retired()


def test_sketches_held_follow_retained_time() -> None:
    """Hour by hour over 40 days, 3 tenants in 2 countries: the sketches held stay at
    tenants x (kept hours + kept days), whatever the days before."""
    reduction, codes = NetworkReduction(1, sketches=True), TenantCodes()
    held = []
    for h in range(40 * 24):
        reduction_rows(reduction, codes, [(t, T0 + h * HOUR, timedelta(0), h % 50 + k,
                                           ("NL", "CN")[k % 2]) for t in "abc" for k in range(3)])
        held.append(reduction.sketch_sizes()[0])
    # per tenant: overall and 2 countries x (about 6 + 3 hours and 10 days), plus the
    # entities' unions: 2 sketches (addresses, ASNs) each
    assert max(held[20 * 24:]) == max(held[10 * 24:20 * 24])
    assert max(held) <= 3 * 3 * 2 * (9 + 11 + 1)
    final = reduction.distinct_counts()
    assert final.rows.num_rows > 0 and final.unique


def test_late_remote_end_beyond_the_kept_hours_may_count_twice() -> None:
    """The documented cost of letting go: an hour's sketch closed 6 hours behind the
    latest start; the same address arriving for it later is counted again. Keeping more
    hours open (``distinct_late_hours``) avoids it; exact counting never has it."""
    first = [("a", T0, timedelta(0), 1, None), ("a", T0 + 20 * HOUR, timedelta(0), 2, None)]
    late = [("a", T0 + 10 * timedelta(minutes=1), timedelta(0), 1, None)]

    def first_hour(params: WindowParams) -> tuple[int, int]:
        aggregator = WindowAggregator(params, background=False)
        aggregator.add(network(first))
        aggregator.flush()
        aggregator.add(network(late))
        hours = counts(aggregator.result(), "1h")
        return hours[0][1], hours[0][2]

    assert first_hour(WindowParams()) == (2, 2)
    assert first_hour(WindowParams(distinct_late_hours=24)) == (1, 1)
    assert first_hour(WindowParams(exact_distinct=True)) == (1, 1)


def test_distinct_counts_needs_sketches_and_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="without sketch_keep_hours"):
        NetworkReduction(1).distinct_counts()
    with pytest.raises(ValueError, match="late_hours must not be negative"):
        NetworkReduction(1, sketches=True, late_hours=-1)
