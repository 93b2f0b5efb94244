"""The roll-up's shortcuts (egress.windows, egress.windows_sql, csrc/wincore/distinct.c):
aggregations skipped when their input has one row per key already, and distinct counts made
on two threads, give the same tables as the general statements."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from egress.transfers import TRANSFERS_SCHEMA
from egress.windows import WindowAggregator, WindowParams, WindowTables
from egress.windows_sql import (
    BASES_SQL,
    CELL_US,
    DISTINCT_ROWS_SQL,
    DISTINCT_SUMS_SQL,
    HOUR_BASE_UNIQUE_SQL,
    peaks_sql,
)

T0 = datetime(2026, 6, 1, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
SPANS = ["1h", "24h", "7d", "cumulative"]


@pytest.fixture
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect(":memory:")
    yield connection
    connection.close()


def rows_of(con: duckdb.DuckDBPyConnection, table: str) -> list[tuple[object, ...]]:
    return con.execute(f"SELECT * FROM {table} ORDER BY ALL").fetchall()


@settings(max_examples=40, deadline=None)
@given(st.dictionaries(
    st.tuples(st.integers(0, 3), st.integers(-30, 30)),
    st.tuples(st.integers(0, 2**80), st.integers(0, 2**70)), max_size=40))
def test_peaks_of_unique_cells_equal_the_general_statement(
        cells: dict[tuple[int, int], tuple[int, int]]) -> None:
    """Over cells with one row per (tenant, cell), 128-bit sums and cells before 1970
    included, the statement without the inner aggregation makes the same peaks."""
    con = duckdb.connect(":memory:")
    try:
        con.execute("CREATE TABLE cells_acc (tenant INTEGER, cell BIGINT, bytes_in HUGEINT, "
                    "bytes_out HUGEINT)")
        for (tenant, cell), (b_in, b_out) in cells.items():
            con.execute("INSERT INTO cells_acc VALUES (?, ?, ?, ?)",
                        [tenant, cell * CELL_US, b_in, b_out])
        found = []
        for unique in (False, True):
            con.execute(peaks_sql(unique=unique))
            found.append(rows_of(con, "peaks"))
        assert found[0] == found[1]
        assert len(found[0]) == len({(t, c * CELL_US // 3_600_000_000) for t, c in cells})
    finally:
        con.close()


def test_peaks_statements_differ_on_repeated_cells(con: duckdb.DuckDBPyConnection) -> None:
    """Why the shortcut needs unique keys: two rows of one cell are one cell's bytes."""
    con.execute("CREATE TABLE cells_acc (tenant INTEGER, cell BIGINT, bytes_in HUGEINT, "
                "bytes_out HUGEINT)")
    con.execute("INSERT INTO cells_acc VALUES (0, 0, 5, 1), (0, 0, 7, 1), (0, $c, 9, 0)",
                {"c": CELL_US})
    con.execute(peaks_sql(unique=False))
    assert rows_of(con, "peaks") == [(0, 0, 12, 2)]
    con.execute(peaks_sql(unique=True))
    assert rows_of(con, "peaks") == [(0, 0, 9, 1)]


def test_distinct_rows_equal_their_sums_when_unique(con: duckdb.DuckDBPyConnection) -> None:
    counts = pa.table({
        "tenant": pa.array([0, 0, 1, 1], pa.int32()),
        "country": pa.DictionaryArray.from_arrays(pa.array([None, 0, None, 1], pa.int16()),
                                                  pa.array(["NL", "CN"])),
        "span": pa.DictionaryArray.from_arrays(pa.array([0, 0, 3, 2], pa.int8()),
                                               pa.array(SPANS)),
        "t": pa.array([0, 0, 5, 5], pa.int64()),
        "addrs": pa.array([3, 2, 1, 4], pa.int64()),
        "asns": pa.array([1, 0, 1, 0], pa.int64()),
    })
    con.register("distinct_counts", counts)
    found = []
    for statement in (DISTINCT_SUMS_SQL, DISTINCT_ROWS_SQL):
        con.execute(statement)
        found.append(rows_of(con, "distinct_sums"))
    assert found[0] == found[1] == [  # (nulls last)
        (0, "NL", "1h", 0, 2, 0), (0, None, "1h", 0, 3, 1), (1, "CN", "7d", 5, 4, 0),
        (1, None, "cumulative", 5, 1, 1)]


def network(rows: list[tuple[str, datetime, timedelta, int, int]]) -> pa.Table:
    """Network transfers from (tenant, start, duration, address number, bytes in)."""
    n = len(rows)
    given_columns: dict[str, list[object]] = {
        "tenant": [r[0] for r in rows], "kind": ["network"] * n,
        "start": [r[1] for r in rows], "end": [r[1] + r[2] for r in rows],
        "bytes_in": [r[4] for r in rows], "bytes_out": [1] * n,
        "remote_addr": [f"198.51.{r[3] // 256}.{r[3] % 256}" for r in rows],
        "remote_asn": [64_500 + r[3] % 5 for r in rows],
        "remote_country": [("NL", "CN", None)[r[3] % 3] for r in rows],
        "direction": ["inbound"] * n, "quality": [False] * n,
        "ref": [f"C{r[3]}-{r[0]}" for r in rows],
    }
    return pa.table({f.name: pa.array(given_columns.get(f.name, [None] * n), f.type)
                     for f in TRANSFERS_SCHEMA}, schema=TRANSFERS_SCHEMA)


def aggregate(parts: list[pa.Table], *, snapshot_between: bool,
              params: WindowParams) -> tuple[WindowTables, frozenset[str]]:
    """The result of ``parts`` added in turn (each flushed; ``snapshot_between``: a
    snapshot after each but the last) and the aggregations its roll-up skipped."""
    aggregator = WindowAggregator(params, background=False)
    for i, part in enumerate(parts):
        aggregator.add(part)
        aggregator.flush()
        if snapshot_between and i + 1 < len(parts):
            aggregator.snapshot()
    result = aggregator.result()
    return result, aggregator.skipped


def assert_same(a: WindowTables, b: WindowTables) -> None:
    for name in ("windows", "countries", "evidence"):
        assert getattr(a, name).equals(getattr(b, name)), name


ROWS = [(tenant, T0 + k * 7 * MINUTE, timedelta(seconds=k * 97 % 900), k, 10**6 * (k % 13))
        for k in range(400) for tenant in ("b", "a")]


#: Every aggregation a roll-up can skip.
SHORTCUTS = {"peaks", "distinct", "country_hours", "hours"}


def test_time_ordered_input_takes_every_shortcut() -> None:
    """Rows in time order, in one part or several: no cell or hour comes back after it
    was handed back, so every shortcut is taken, and the windows are those of the
    general statements (the same rows with a snapshot between parts)."""
    params = WindowParams(evidence_per_day=3)
    whole, skipped = aggregate([network(ROWS)], snapshot_between=False, params=params)
    assert skipped == SHORTCUTS
    parts = [network(ROWS[:300]), network(ROWS[300:])]
    split, skipped = aggregate(parts, snapshot_between=False, params=params)
    assert skipped == SHORTCUTS
    assert_same(split, whole)


def test_cells_reached_again_after_a_snapshot_are_summed() -> None:
    """A snapshot hands back every cell; a later part starting in a cell handed back adds
    a second row of its key, so the peaks take the general statement, and equal those of
    one aggregation."""
    params = WindowParams(evidence_per_day=3)
    whole, _ = aggregate([network(ROWS)], snapshot_between=False, params=params)
    # the second part starts in the cell of the first part's last start (tenant "b"'s)
    parts = [network(ROWS[:301]), network(ROWS[301:])]
    split, skipped = aggregate(parts, snapshot_between=True, params=params)
    assert skipped == {"distinct"}
    assert_same(split, whole)
    # beyond the hours the sketches keep, a late remote end: the counts are summed too
    late = [network(ROWS[400:]), network(ROWS[:400])]
    _, skipped = aggregate(late, snapshot_between=False,
                           params=WindowParams(distinct_late_hours=0))
    assert skipped == frozenset()


def test_later_part_in_fresh_cells_keeps_the_peaks_shortcut() -> None:
    params = WindowParams()
    first = network([("a", T0, timedelta(0), 1, 5)])
    second = network([("a", T0 + timedelta(hours=3), timedelta(0), 2, 7)])
    _, skipped = aggregate([first, second], snapshot_between=True, params=params)
    assert skipped == SHORTCUTS
    # earlier cells (and hours) than those handed back: two rows of a key could follow
    _, skipped = aggregate([second, first], snapshot_between=True, params=params)
    assert skipped == {"distinct"}
    # without a snapshot between, the later cell was not handed back yet
    _, skipped = aggregate([second, first], snapshot_between=False, params=params)
    assert skipped == SHORTCUTS


def with_directions(rows: list[tuple[str, datetime, timedelta, int, int]],
                    directions: list[str], borders: list[bool | None]) -> pa.Table:
    """``network(rows)`` with these directions and cross-border marks; internal rows have
    no remote address (not boundary-crossing), their remote countries stay."""
    table = network(rows)
    addrs = [None if d == "internal" else a for d, a in zip(
        directions, table.column("remote_addr").to_pylist(), strict=True)]
    for name, values, kind in (("direction", directions, pa.string()),
                               ("cross_border", borders, pa.bool_()),
                               ("remote_addr", addrs, pa.string())):
        at = table.schema.get_field_index(name)
        table = table.set_column(at, table.schema.field(at), pa.array(values, kind))
    return table


def general(parts: list[pa.Table], params: WindowParams) -> WindowTables:
    """The result of ``parts`` with ``country_hour`` made by the general statement."""
    aggregator = WindowAggregator(params, background=False)
    for part in parts:
        aggregator.add(part)
    aggregator.flush()
    aggregator._hours_unique = False
    result = aggregator.result()
    assert "country_hours" not in aggregator.skipped
    return result


def test_country_hours_without_aggregation_equal_the_general_statement() -> None:
    """Time-ordered rows, some internal without a remote address (not boundary-crossing),
    one country only so in an hour: the shortcut gives the general statement's rows, those
    of no bytes included."""
    rows = [("a", T0 + k * 11 * MINUTE, timedelta(seconds=k * 37 % 700), k, 1000 + k)
            for k in range(60)]
    # NL (k % 3 == 0) only internal in the first hour (k = 0, 3); later, sometimes
    directions = ["internal" if k in (0, 3) or k % 4 == 0 else ("inbound", "outbound")[k % 2]
                  for k in range(60)]
    borders = [None if k % 3 == 2 else k % 3 == 1 for k in range(60)]  # CN: True
    parts = [with_directions(rows, directions, borders)]
    params = WindowParams(evidence_per_day=2)
    fast, skipped = aggregate(parts, snapshot_between=False, params=params)
    assert "country_hours" in skipped
    assert_same(fast, general(parts, params))
    hourly = fast.countries.filter(pc.equal(fast.countries.column("span"), "1h"))
    assert 0 in hourly.column("bytes_in").to_pylist()  # a country with internal rows only


def test_hour_bases_of_unique_sums_equal_the_general_statement(
        con: duckdb.DuckDBPyConnection) -> None:
    """With one row of sums per tenant and hour, ``hour_base`` takes them as they are:
    the same rows and types as the general statement."""
    aggregator = WindowAggregator(WindowParams(concern_countries=("CN",)), connection=con,
                                  background=False)
    aggregator.add(with_directions(ROWS[:200], ["inbound", "outbound", "internal", "inbound"]
                                   * 50, [True, False, None, None] * 50))
    aggregator.flush()
    aggregator.snapshot()  # (hands back every hour, makes peaks)
    assert "hours" in aggregator.skipped
    [cn] = aggregator._network.country_codes(pa.array(["CN"])).tolist()
    found = []
    for statement in (BASES_SQL[0], HOUR_BASE_UNIQUE_SQL):
        con.execute(statement, {"rate_bytes_per_hour": 10**3, "concern": [cn]}
                    if "$concern" in statement else {"rate_bytes_per_hour": 10**3})
        found.append((con.execute("DESCRIBE hour_base").fetchall(), rows_of(con, "hour_base")))
    assert found[0] == found[1]
    assert len(found[0][1]) == 2 * 12  # rows 7 minutes apart, 100 a tenant: 12 hours each
    assert {row[6] != 0 for row in found[0][1]} == {True, False}  # concern bytes in: some
    aggregator.close()


def test_a_country_both_across_and_within_the_border_takes_the_general_statement() -> None:
    """Two crossing rows of one tenant, hour and country, one marked cross-border and one
    not (as a caller may give them): two hours rows share the key, so they are summed."""
    rows = [("a", T0, timedelta(0), 1, 5), ("a", T0 + MINUTE, timedelta(0), 4, 7)]  # CN
    parts = [with_directions(rows, ["inbound", "inbound"], [True, False])]
    params = WindowParams()
    result, skipped = aggregate(parts, snapshot_between=False, params=params)
    assert "country_hours" not in skipped
    hourly = result.countries.filter(pc.equal(result.countries.column("span"), "1h"))
    assert hourly.select(["country", "bytes_in"]).to_pylist() == [
        {"country": "CN", "bytes_in": 12}]


def test_distinct_counts_on_two_threads_equal_exact_counts() -> None:
    """With more live sketches than one thread takes (4,096), the rows made on two threads
    (and, with a worker thread, beside the statements of the bases) give the windows the
    exact counts give (sets this small are exact)."""
    rows = [(f"t{k:04d}", T0 + (k % 50) * MINUTE + h * timedelta(hours=1), timedelta(0),
             k * 7 + h, 1000) for k in range(1200) for h in range(2)]
    aggregator = WindowAggregator(WindowParams(), background=True)
    aggregator.add(network(rows))
    aggregator.flush()
    sketches, _ = aggregator._network.sketch_sizes()
    assert sketches >= 2 * 4096  # two per live slot (addresses, ASNs), more than one thread's
    sketched = aggregator.result()
    exact, _ = aggregate([network(rows)], snapshot_between=False,
                         params=WindowParams(exact_distinct=True))
    assert_same(sketched, exact)
    spans = sketched.windows.column("span").to_pylist()
    addrs = sketched.windows.column("remote_addrs").to_pylist()
    assert {a for s, a in zip(spans, addrs, strict=True) if s == "24h"} == {2}


def _in_key_order(table: pa.Table, keys: list[str]) -> bool:
    ordered = table.sort_by([(key, "ascending") for key in keys])
    return bool(ordered.equals(table))


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(0, 20 * 24 * 60),
                          st.integers(0, 3 * 24 * 60), st.integers(0, 40),
                          st.integers(0, 10**9)), min_size=1, max_size=30),
       st.booleans())
def test_results_are_in_start_then_end_order(
        drawn: list[tuple[str, int, int, int, int]], registered: bool) -> None:
    """The results are sorted by the window end alone within a tenant and span (and
    country): the order is that of (start, end), as documented, for every span, also with
    cumulative windows starting at a registration before the first activity."""
    rows = [(tenant, T0 + start * MINUTE, length * MINUTE, addr, size)
            for tenant, start, length, addr, size in drawn]
    params = WindowParams(registrations={"a": T0 - timedelta(days=3)} if registered else {})
    result, _ = aggregate([network(rows)], snapshot_between=False, params=params)
    keys = ["tenant", "span", "window_start", "window_end"]
    assert result.windows.num_rows > 0
    assert _in_key_order(result.windows, keys)
    assert _in_key_order(result.countries, [*keys, "country"])
    # the spans come in their documented order within each tenant
    for tenant in set(result.windows.column("tenant").to_pylist()):
        spans = [s for t, s in zip(result.windows.column("tenant").to_pylist(),
                                   result.windows.column("span").to_pylist(), strict=True)
                 if t == tenant]
        assert spans == sorted(spans, key=SPANS.index)


def test_cumulative_windows_of_a_registered_tenant_in_order() -> None:
    """A tenant registered two days before its transfers on three days: its cumulative
    windows share the registration as start and follow their ends."""
    rows = [("a", T0 + timedelta(days=d, hours=5), timedelta(0), d, 100) for d in (2, 0, 1)]
    params = WindowParams(registrations={"a": T0 - timedelta(days=2)})
    result, _ = aggregate([network(rows)], snapshot_between=False, params=params)
    windows = result.windows.filter(pc.equal(result.windows.column("span"),
                                                     "cumulative"))
    assert windows.column("window_start").to_pylist() == [T0 - timedelta(days=2)] * 3
    assert windows.column("window_end").to_pylist() == [
        T0 + timedelta(days=1), T0 + timedelta(days=2), T0 + timedelta(days=3)]
    assert windows.column("bytes_in").to_pylist() == [100, 200, 300]


def test_hour_sums_handed_back_twice_add_up() -> None:
    """The compiled reduction's sums per tenant and hour, with a country of concern and
    internal rows, the later rows first (their hours handed back, then the same keys again
    from the earlier part, with a snapshot between or not): the bytes and counts of one
    aggregation in time order (the distinct counts aside: the late part's remote ends
    come after their hours' sketches were let go)."""
    params = WindowParams(concern_countries=("CN",), evidence_per_day=3)
    directions = ["inbound", "outbound", "internal", "inbound"] * 200
    borders = [True, False, None, None] * 200
    rows = with_directions(ROWS, directions, borders)
    whole, _ = aggregate([rows], snapshot_between=False, params=params)
    counted = ("remote_addrs", "remote_asns")
    for between in (False, True):
        late, _ = aggregate([rows.slice(400), rows.slice(0, 400)], snapshot_between=between,
                            params=params)
        assert late.windows.drop_columns(list(counted)).equals(
            whole.windows.drop_columns(list(counted)))
        assert late.countries.drop_columns(["remote_addrs"]).equals(
            whole.countries.drop_columns(["remote_addrs"]))
    hourly = whole.windows.filter(pc.equal(whole.windows.column("span"), "1h"))
    assert 0 < pc.sum(hourly.column("concern_bytes_in")).as_py() < pc.sum(
        hourly.column("cross_border_bytes_in")).as_py() < pc.sum(
        hourly.column("bytes_in")).as_py()


def test_hour_sums_past_64_bits_saturate_the_window() -> None:
    """Two countries' bytes of one tenant and hour, each within 64 bits, together past:
    the sums are kept whole (``wide_totals_acc``), the window saturates."""
    rows = [("a", T0, timedelta(0), 1, 2**63), ("a", T0 + MINUTE, timedelta(0), 2, 2**63)]
    result, _ = aggregate([network(rows)], snapshot_between=False,
                          params=WindowParams(concern_countries=("CN",)))
    hourly = result.windows.filter(pc.equal(result.windows.column("span"), "1h"))
    assert hourly.select(["bytes_in", "concern_bytes_in", "flows"]).to_pylist() == [
        {"bytes_in": 2**64 - 1, "concern_bytes_in": 2**63, "flows": 2}]
