"""Forgetting in place: a moved horizon trims the kept windows instead of starting anew."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from egress.windows import WindowAggregator, WindowParams, WindowTables
from tests.test_windows import (
    DAY,
    EPOCH,
    HOUR,
    LATE,
    T0,
    T,
    evidence_key,
    table,
    transfer_rows,
)

Op = tuple[str, Any]


class StartingAnew(WindowAggregator):
    """The aggregator as it was: a moved horizon drops the kept tables, so the next
    snapshot is a full one over every retained hour."""

    def forget_before(self, horizon: datetime) -> bool:
        moved = super().forget_before(horizon)
        if moved:
            self._kept = None
            self._reach_us = None
        return moved


def fresh(rows: list[T], params: WindowParams, horizon: datetime | None) -> WindowTables:
    """A new aggregator fed ``rows``, forgotten before ``horizon``, snapshotted fully."""
    aggregator = WindowAggregator(params, background=False)
    if horizon is not None:
        aggregator.forget_before(horizon)
    aggregator.add(table(rows))
    return aggregator.result()


def of_tenants(tables: WindowTables, tenants: set[str]) -> WindowTables:
    chosen = pa.array(sorted(tenants), pa.string())
    return WindowTables(*(t.filter(pc.is_in(t.column("tenant"), value_set=chosen))
                          for t in (tables.windows, tables.countries, tables.evidence)))


def assert_same(got: WindowTables, want: WindowTables) -> None:
    assert got.windows.equals(want.windows)
    assert got.countries.equals(want.countries)
    assert evidence_key(got.evidence) == evidence_key(want.evidence)


def hours_from(tables: WindowTables, since: datetime | None) -> int:
    """How many 1-hour windows start at or after ``since`` (``None``: none)."""
    if since is None:
        return 0
    return sum(1 for r in tables.windows.to_pylist()
               if r["span"] == "1h" and r["window_start"] >= since)


def day_of(rows: list[T]) -> datetime | None:
    """Start of the day the earliest of ``rows`` starts in, ``None`` without rows."""
    if not rows:
        return None
    first = min(r.start for r in rows)
    return EPOCH + (first - EPOCH) // DAY * DAY


@st.composite
def operations(draw: st.DrawFn) -> list[Op]:
    ops: list[Op] = []
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["add", "add", "snapshot", "forget"]))
        if kind == "add":
            ops.append(("add", draw(transfer_rows())))
        elif kind == "snapshot":
            ops.append(("snapshot", draw(st.booleans())))
        else:
            ops.append(("forget", draw(st.integers(-1, 10))))
    return ops


@settings(max_examples=40, deadline=None)
@given(transfer_rows(), operations(), st.booleans())
def test_kept_windows_after_forgetting_equal_fresh_aggregations(
        first: list[T], ops: list[Op], exact_distinct: bool) -> None:
    """Adds, changed-only snapshots and moving horizons in any order: after each snapshot
    the windows kept (and the snapshot itself, for the tenants in it) equal a fresh
    aggregation of every row added, forgotten before the same horizon; and the snapshot
    after a horizon moved rolls up only the hours from the day the new rows start in."""
    params = WindowParams(registrations={"b": T0 - DAY}, concern_countries=("NL",),
                          evidence_per_day=2, exact_distinct=exact_distinct,
                          distinct_late_hours=LATE)
    aggregator = WindowAggregator(params, background=False)
    added, new, horizon, moved = list(first), list(first), None, False
    try:
        aggregator.add(table(first))
        aggregator.snapshot()
        new = []
        for op, arg in [*ops, ("snapshot", True)]:
            if op == "add":
                aggregator.add(table(arg))
                added += arg
                new += arg
                continue
            if op == "forget":
                cut = T0 + arg * DAY
                if aggregator.forget_before(cut):
                    horizon, moved = cut, True
                continue
            snap = aggregator.snapshot(changed_only=arg)
            want = fresh(added, params, horizon)
            kept = aggregator.kept
            assert kept is not None
            assert_same(kept, want)
            tenants = set(snap.windows.column("tenant").to_pylist())
            if moved or not arg:  # every tenant after a horizon moved
                assert_same(snap, want)
            else:
                assert tenants <= {r.tenant for r in new}
                assert_same(snap, of_tenants(want, {r.tenant for r in new}))
            if moved:
                assert aggregator.hours_rolled_up == hours_from(want, day_of(new))
            new, moved = [], False
    finally:
        aggregator.close()


def day_rows(rng: random.Random, day: int) -> list[T]:
    """A day of short network transfers in time order, from a pool of remote ends."""
    rows = []
    for k in range(rng.randint(0, 12)):
        start = T0 + day * DAY + k * 2 * HOUR + timedelta(minutes=rng.randint(0, 100))
        addr = rng.randint(0, 40)
        rows.append(T(
            tenant=rng.choice("abc"), start=start,
            end=start + timedelta(minutes=rng.randint(0, 15)),
            bytes_in=rng.randint(0, 10**9), bytes_out=rng.randint(0, 10**6),
            remote_addr=f"198.51.100.{addr}", remote_asn=addr % 7,
            remote_country=("NL", "CN", "DE")[addr % 3], cross_border=addr % 2 == 0,
            ref=f"d{day}k{k}"))
    return rows


@pytest.mark.parametrize(("seed", "exact_distinct"),
                         [(1, False), (2, False), (3, True)])
def test_sidecar_pace_trims_instead_of_starting_anew(seed: int, exact_distinct: bool) -> None:
    """A sidecar's pace: a day of transfers a tick in time order, a changed-only snapshot
    a tick, a horizon three days behind moving daily, sketches letting old hours and days
    go (their counts remember forgotten days). Every snapshot equals the old aggregator's
    (a full snapshot after each horizon move) and the kept tables equal its last full
    snapshot, while the snapshot after a move rolls up the new day's hours only."""
    params = WindowParams(registrations={"a": T0 - 2 * DAY}, concern_countries=("CN",),
                          evidence_per_day=2, exact_distinct=exact_distinct,
                          distinct_late_hours=0)
    rng = random.Random(seed)
    trimmed = WindowAggregator(params, background=False)
    anew = StartingAnew(params, background=False)
    rolled: list[tuple[int, int]] = []
    try:
        for day in range(16):
            rows = day_rows(rng, day)
            moved = False
            for aggregator in (trimmed, anew):
                aggregator.add(table(rows))
                if day >= 4:
                    moved = aggregator.forget_before(T0 + (day - 3) * DAY)
            changed_only = day > 0 and not moved  # as the sidecar asks
            got = trimmed.snapshot(changed_only=changed_only)
            want = anew.snapshot(changed_only=changed_only)
            assert_same(got, want)
            if not changed_only:
                kept = trimmed.kept
                assert kept is not None
                assert_same(kept, want)
            if moved:
                rolled.append((trimmed.hours_rolled_up, anew.hours_rolled_up))
                assert trimmed.hours_rolled_up == hours_from(want, day_of(rows))
    finally:
        trimmed.close()
        anew.close()
    assert len(rolled) == 12
    assert sum(r for r, _ in rolled) * 3 < sum(a for _, a in rolled)
