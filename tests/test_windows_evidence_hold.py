"""Held-back evidence candidates (:class:`~egress.windows_network.EvidenceHold`): what they
let through ranks exactly as all candidates do."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from egress.transfers import TIMESTAMP
from egress.windows_network import EvidenceHold, _by_group_largest_first
from egress.windows_sql import CREATE_ACCUMULATORS, DAY_US, EVIDENCE_RESULT_SQL

SETTINGS = settings(derandomize=True, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow,
                                           HealthCheck.function_scoped_fixture])


def candidates(rows: list[tuple[int, int, int | None, int | None]], first: int = 0) -> pa.Table:
    """Network candidates from (tenant, start, bytes in, bytes out); refs numbered on from
    ``first``."""
    n = len(rows)
    return pa.table({
        "tenant": pa.array([r[0] for r in rows], pa.int32()),
        "kind": pa.array(["network"] * n, pa.string()),
        "start": pa.array([r[1] for r in rows], pa.int64()).cast(TIMESTAMP),
        "end": pa.array([r[1] for r in rows], pa.int64()).cast(TIMESTAMP),
        "bytes_in": pa.array([r[2] for r in rows], pa.uint64()),
        "bytes_out": pa.array([r[3] for r in rows], pa.uint64()),
        "remote_addr": pa.nulls(n, pa.string()),
        "remote_country": pa.nulls(n, pa.string()),
        "where": pa.nulls(n, pa.string()),
        "ref": pa.array([f"r{first + i:04d}" for i in range(n)], pa.string()),
        "quality": pa.array([False] * n),
        "community_id": pa.nulls(n, pa.string()),
    })


@pytest.fixture()
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect(config={"threads": 1})
    yield connection
    connection.close()


def ranked(con: duckdb.DuckDBPyConnection, tables: list[pa.Table], top: int) -> list[Any]:
    """The refs :data:`EVIDENCE_RESULT_SQL` keeps of ``tables`` appended to the evidence."""
    con.execute(CREATE_ACCUMULATORS)
    for table in tables:
        con.register("rows", table)
        con.execute("INSERT INTO evidence_acc SELECT * FROM rows")
        con.unregister("rows")
    return [row[0] for row in con.execute(f"SELECT ref FROM ({EVIDENCE_RESULT_SQL})",
                                          {"top": top}).fetchall()]


def test_only_candidates_that_can_still_rank_pass() -> None:
    hold = EvidenceHold(2, rows=100)
    day = DAY_US
    hold.add(candidates([(0, 5, 5, 0), (0, 6, 1, None), (0, 7, 0, 7), (0, 8, 7, 7),
                         (0, -1, 3, 3), (1, 9, 1, 1)]))
    assert not hold.full
    [out] = hold.release()
    # tenant 0, day 0: two of 7 outrank 5 and 1; day -1 and tenant 1 alone
    assert out.column("ref").to_pylist() == ["r0002", "r0003", "r0004", "r0005"]
    assert hold.release() == []
    hold.add(candidates([(0, 9, 7, 0), (0, 10, 6, 6), (0, day, 1, 0)], first=10))
    [out] = hold.release()
    assert out.column("ref").to_pylist() == ["r0010", "r0012"]  # a tie with the floor stays


def test_full_after_rows_and_empty_after_clear() -> None:
    hold = EvidenceHold(1, rows=3)
    hold.add(candidates([(0, 0, 1, 1), (0, 1, 2, 2)]))
    assert not hold.full
    hold.add(candidates([(0, 2, 3, 3)]))
    assert hold.full
    hold.clear()
    assert not hold.full
    assert hold.release() == []


@settings(SETTINGS, max_examples=80)
@given(
    batches=st.lists(st.lists(st.tuples(
        st.integers(0, 2),
        st.builds(lambda d, s: d * DAY_US + s, st.integers(-2, 1), st.integers(0, 3)),
        st.one_of(st.none(), st.integers(0, 6)), st.one_of(st.none(), st.integers(0, 6))),
        max_size=12), max_size=6),
    top=st.integers(1, 4), rows=st.integers(1, 20))
def test_what_passes_ranks_as_all_candidates(con: duckdb.DuckDBPyConnection,
                                             batches: list[list[Any]], top: int,
                                             rows: int) -> None:
    hold = EvidenceHold(top, rows=rows)
    tables, passed, first = [], [], 0
    for batch in batches:
        tables.append(candidates(batch, first))
        first += len(batch)
        hold.add(tables[-1])
        if hold.full:
            passed.extend(hold.release())
    passed.extend(hold.release())
    assert ranked(con, passed, top) == ranked(con, tables, top)


def test_days_forgotten_let_candidates_through_again() -> None:
    hold = EvidenceHold(1, rows=100)
    hold.add(candidates([(0, 0, 9, 9), (0, DAY_US, 9, 9)]))
    assert len(hold.release()[0]) == 2
    hold.forget_before(DAY_US)
    hold.add(candidates([(0, 1, 1, 1), (0, DAY_US + 1, 1, 1)], first=2))
    [out] = hold.release()
    assert out.column("ref").to_pylist() == ["r0002"]  # day 0 forgotten, day 1 not


def test_what_passes_comes_in_one_table_a_schema() -> None:
    """Consecutive held tables of one schema are let through as one table (one append);
    a table of another schema (here a column of nulls typed null) comes on its own."""
    hold = EvidenceHold(5, rows=100)
    hold.add(candidates([(0, 0, 1, 1), (0, 1, 2, 2)]))
    hold.add(candidates([(1, 0, 3, 3)], first=2))
    odd = candidates([(2, 0, 4, 4)], first=3)
    hold.add(odd.set_column(odd.schema.get_field_index("where"), "where", pa.nulls(1)))
    hold.add(candidates([(3, 0, 5, 5)], first=4))
    out = hold.release()
    assert [table.column("ref").to_pylist() for table in out] == [
        ["r0000", "r0001", "r0002"], ["r0003"], ["r0004"]]
    assert [table.schema.field("where").type for table in out] == [
        pa.string(), pa.null(), pa.string()]


@pytest.mark.parametrize("extreme", [False, True])
def test_release_order_is_by_tenant_day_and_largest_first(extreme: bool) -> None:
    """The order the release ranks in: tenant, day, then size from the largest, a packed
    key's one sort (codes and days of a small range) or three (past 63 bits)."""
    rng = np.random.default_rng(5)
    n = 5_000
    if extreme:  # 32 bits of tenants, 40 of days: no packed key
        tenant = rng.choice(np.array([-2**31, 0, 2**31 - 1], np.int32), n)
        day = rng.choice(np.array([-2**39, 0, 2**39], np.int64), n)
    else:
        tenant = rng.integers(0, 40, n).astype(np.int32)
        day = rng.integers(20_000, 20_009, n).astype(np.int64)
    size = rng.choice(np.array([0, 1, 2**63, 2**64 - 1, *range(100)], np.uint64), n)
    order = _by_group_largest_first(tenant, day, size)
    assert sorted(order.tolist()) == list(range(n))
    got = [(int(tenant[i]), int(day[i]), -int(size[i])) for i in order]
    assert got == sorted(got)
    assert _by_group_largest_first(tenant[:0], day[:0], size[:0]).tolist() == []
