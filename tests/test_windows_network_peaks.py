"""The compiled reduction's cells as hourly peaks, and the cells held behind them.

While no cell it handed back comes again, the aggregator appends, of the cells the reduction
hands back, only each tenant and hour's most bytes in and out (``net_peaks_acc``): the peak
rates are maxima of those. The cells are held meanwhile; once one comes again (its sums then
add up), the held cells and every later one go to the cell accumulators, and the peaks are
the same as if they always had.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from egress.windows import WindowAggregator, WindowParams, _memory_bytes
from egress.windows_network import _CELLS, HeldCells, Retired
from tests.test_windows_rollup import MINUTE, T0, aggregate, assert_same, network

CELL_US = 300_000_000
HOUR_US = 3_600_000_000


def records(cells: list[tuple[int, int, int, int]]) -> bytes:
    """Cells records from (tenant, cell, bytes in, bytes out), sums of up to 128 bits."""
    c = np.zeros(len(cells), _CELLS)
    for i, (tenant, cell, bytes_in, bytes_out) in enumerate(cells):
        c[i]["tenant"], c[i]["cell"] = tenant, cell
        c[i]["in_lo"], c[i]["in_hi"] = bytes_in & (2**64 - 1), bytes_in >> 64
        c[i]["out_lo"], c[i]["out_hi"] = bytes_out & (2**64 - 1), bytes_out >> 64
    return c.tobytes()


def retired(cells: list[tuple[int, int, int, int]]) -> Retired:
    """``cells`` handed back, packed if they all fit."""
    raw = records(cells)
    c = np.frombuffer(raw, _CELLS)
    fits = all(0 <= i < 2**64 and 0 <= o < 2**64 and -2**31 <= cell // CELL_US < 2**31
               for _, cell, i, o in cells)
    packed = np.zeros(len(c), HeldCells.PACKED)
    packed["tenant"], packed["cell"] = c["tenant"], (c["cell"] // CELL_US).astype(np.int32)
    packed["in"], packed["out"] = c["in_lo"], c["out_lo"]
    empty = pa.table({})
    return Retired(hours=empty, cell_records=raw, packed_cells=packed.tobytes() if fits else None,
                   presence=empty, peaks=empty, cells_needed=False, cells_done=0)


def held(cells: HeldCells) -> set[tuple[int, int, int, int]]:
    t = cells.take().to_pydict()
    return {(t["tenant"][i], t["cell"][i], t["in_lo"][i] + (t["in_hi"][i] << 64),
             t["out_lo"][i] + (t["out_hi"][i] << 64)) for i in range(len(t["tenant"]))}


def test_held_cells_come_back_as_they_went_in() -> None:
    """Packed or not (sums beyond 64 bits, cell numbers beyond 32), every cell comes back
    once; forgetting drops those before the horizon."""
    first = [(0, 7 * CELL_US, 5, 0), (3, -2 * CELL_US, 2**64 - 1, 1), (1, 0, 7, 9)]
    second = [(2, (1 << 31) * CELL_US, 1, 2), (2**31 - 1, 8 * CELL_US, 0, 2**70 + 3)]
    cells = HeldCells()
    assert retired(first).packed_cells is not None and retired(second).packed_cells is None
    cells.add(retired(first))
    cells.add(retired(second))
    cells.add(retired([]))
    assert held(cells) == set(first + second)
    assert held(cells) == set()  # taken
    cells.add(retired(first))
    cells.add(retired(second))
    cells.forget_before(7 * CELL_US)
    assert held(cells) == {first[0], *second}


def hours_of_rows(rows: int) -> list[tuple[str, datetime, timedelta, int, int]]:
    return [(tenant, T0 + k * 7 * MINUTE, timedelta(seconds=k * 97 % 900), k, 10**6 * (k % 13))
            for k in range(rows) for tenant in ("b", "a")]


def test_time_ordered_cells_go_as_hourly_peaks() -> None:
    """In time order over 46 hours: the cells handed back are appended as one row per tenant
    and hour, none as cells."""
    con = duckdb.connect()
    aggregator = WindowAggregator(WindowParams(), connection=con, background=False)
    aggregator.add(network(hours_of_rows(400)))
    aggregator.flush()
    aggregator.snapshot()  # (hands back every cell)
    [(cells,)] = con.execute("SELECT count(*) FROM net_cells_acc").fetchall()
    [(peaks, keys)] = con.execute(
        "SELECT count(*), count(DISTINCT (tenant, t)) FROM net_peaks_acc").fetchall()
    assert (cells, peaks, keys) == (0, 2 * 47, 2 * 47)  # 400 x 7 min: hours 0 .. 46
    aggregator.close()
    con.close()


def test_a_cell_coming_again_sends_the_held_cells_to_the_accumulators() -> None:
    """Hours handed back, then a part reaching back into their cells (no snapshot between):
    the cells go to the accumulators from then on, and the windows equal those of the rows
    in time order (the sketches keep the hours reached back to)."""
    rows = hours_of_rows(400)
    params = WindowParams(evidence_per_day=3, distinct_late_hours=48)
    ordered, _ = aggregate([network(rows)], snapshot_between=False, params=params)
    late = [network(rows[200:]), network(rows[:200])]
    con = duckdb.connect()
    aggregator = WindowAggregator(params, connection=con, background=False)
    for part in late:
        aggregator.add(part)
        aggregator.flush()
    assert aggregator.snapshot().windows.equals(ordered.windows)
    [(cells,)] = con.execute("SELECT count(*) FROM net_cells_acc").fetchall()
    assert cells > 0
    aggregator.close()
    con.close()
    reordered, skipped = aggregate(late, snapshot_between=True, params=params)
    assert_same(reordered, ordered)
    assert "peaks" not in skipped


def test_a_cell_summed_again_raises_its_hours_peak() -> None:
    """A cell handed back (not its hour's peak) gets more bytes later: the peak is its sum,
    which neither the peak handed back nor the later bytes alone reach."""
    rows = [("a", T0, timedelta(0), 1, 10), ("a", T0 + 5 * MINUTE, timedelta(0), 2, 8),
            ("a", T0 + 4 * 60 * MINUTE, timedelta(0), 3, 1)]
    late = [("a", T0 + 6 * MINUTE, timedelta(0), 4, 5)]
    params = WindowParams(distinct_late_hours=48)
    together, _ = aggregate([network(rows + late)], snapshot_between=False, params=params)
    apart, skipped = aggregate([network(rows), network(late)], snapshot_between=False,
                               params=params)
    assert_same(apart, together)
    assert "peaks" not in skipped
    hour = together.windows.filter(pc.equal(together.windows.column("span"), "1h"))
    assert hour.column("peak_rate_in_bps").to_pylist()[0] == 13 * 8 / 300


def test_held_cells_beyond_the_cap_go_to_the_accumulators() -> None:
    """Cells held beyond ``held_cells_bytes`` go to the cell accumulators (so memory stays
    bounded however many days the input covers): the windows are the same whatever the cap,
    the cells are in DuckDB once the cap is passed, and none are held after."""
    rows = hours_of_rows(400)
    params = WindowParams(evidence_per_day=3)
    uncapped, _ = aggregate([network(rows[i:i + 100]) for i in range(0, 800, 100)],
                            snapshot_between=False, params=params)
    for cap, appended in ((0, True), (2_000, True), (1 << 30, False)):
        con = duckdb.connect()
        aggregator = WindowAggregator(params, connection=con, background=False,
                                      held_cells_bytes=cap)
        for i in range(0, 800, 100):
            aggregator.add(network(rows[i:i + 100]))
            aggregator.flush()
        result = aggregator.snapshot()
        [(cells,)] = con.execute("SELECT count(*) FROM net_cells_acc").fetchall()
        assert (cells > 0) is appended, cap
        assert_same(result, uncapped)
        aggregator.close()
        con.close()
    with pytest.raises(ValueError, match="held_cells_bytes must not be negative"):
        WindowAggregator(held_cells_bytes=-1)


def test_the_memory_freed_at_the_end_goes_to_duckdb() -> None:
    """:meth:`result` frees the held cells and the sketches and adds their bytes to the
    DuckDB limit set (restored on a connection passed in); the windows are unchanged."""
    rows = hours_of_rows(400)
    params = WindowParams(evidence_per_day=3, memory_limit="1GB")
    unlimited, _ = aggregate([network(rows)], snapshot_between=False,
                             params=WindowParams(evidence_per_day=3))
    con = duckdb.connect()
    aggregator = WindowAggregator(params, connection=con, background=False)
    aggregator.add(network(rows))
    aggregator.snapshot()
    held, (_, sketches) = aggregator._held_cells.nbytes, aggregator._network.sketch_sizes()
    assert held > 0 and sketches > 0
    assert_same(aggregator.result(), unlimited)
    assert aggregator.memory_handed_over == held + sketches
    [(limit,)] = con.execute("SELECT current_setting('memory_limit')").fetchall()
    assert limit == "953.6 MiB"  # 1 GB, as DuckDB renders it
    con.close()


def test_handing_over_raises_the_duckdb_limit_until_closed() -> None:
    con = duckdb.connect()
    aggregator = WindowAggregator(WindowParams(memory_limit="1GB"), connection=con)
    aggregator._hand_over(1 << 30)
    [(limit,)] = con.execute("SELECT current_setting('memory_limit')").fetchall()
    assert (limit, aggregator.memory_handed_over) == ("1.9 GiB", 1 << 30)
    aggregator.close()
    [(limit,)] = con.execute("SELECT current_setting('memory_limit')").fetchall()
    assert limit == "953.6 MiB"
    unset = WindowAggregator(WindowParams(), connection=con)  # no limit of ours: untouched
    unset._hand_over(1 << 30)
    assert unset.memory_handed_over == 0
    unset.close()
    con.close()


@pytest.mark.parametrize(("rendered", "size"), [
    ("953.6 MiB", int(953.6 * 2**20)), ("1.5 GiB", 3 * 2**29), ("512 bytes", 512),
    ("2.0 TiB", 2**41), ("80%", None), ("", None)])
def test_memory_limits_as_duckdb_renders_them(rendered: str, size: int | None) -> None:
    assert _memory_bytes(rendered) == size
