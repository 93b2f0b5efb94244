"""Where the window accumulators keep the compiled reduction's rows: sums that fit 64 bits
in the narrow tables, wider ones in the general tables; a key in both adds up."""

from __future__ import annotations

from datetime import timedelta

import duckdb

from egress.windows import WindowAggregator, WindowParams
from tests.test_windows import MIN5, T0, T, table

MOST = 2**64 - 1


def test_a_key_in_the_wide_and_the_narrow_table_adds_up() -> None:
    con = duckdb.connect()
    aggregator = WindowAggregator(WindowParams(distinct_late_hours=1000), connection=con,
                                  flush_rows=1, background=False)
    try:
        # one hour of tenant a past 64 bits (two rows), retired by a row 5 hours later
        for row in (T(tenant="a", start=T0, end=T0, bytes_in=MOST, remote_country="NL"),
                    T(tenant="a", start=T0 + MIN5, end=T0 + MIN5, bytes_in=2,
                      remote_country="NL"),
                    T(tenant="a", start=T0 + timedelta(hours=5),
                      end=T0 + timedelta(hours=5), bytes_in=1, remote_country="NL")):
            aggregator.add(table([row]))
        wide = con.sql("SELECT count(*) FROM hours_acc").fetchall()
        narrow = con.sql("SELECT count(*) FROM net_hours_acc").fetchall()
        assert (wide, narrow) == ([(1,)], [(0,)])
        # a late row of that hour: a new entry, narrow this time
        aggregator.add(table([T(tenant="a", start=T0 + 2 * MIN5, end=T0 + 2 * MIN5,
                                bytes_in=3, remote_country="NL")]))
        result = aggregator.snapshot()
        assert con.sql("SELECT count(*) FROM net_hours_acc").fetchall() == [(2,)]
    finally:
        aggregator.close()
        con.close()
    [hour] = [r for r in result.windows.to_pylist()
              if r["span"] == "1h" and r["window_start"] == T0]
    assert (hour["bytes_in"], hour["flows"]) == (MOST, 3)
    [country] = [r for r in result.countries.to_pylist()
                 if r["span"] == "1h" and r["window_start"] == T0]
    assert (country["country"], country["bytes_in"]) == ("NL", MOST)
    assert [r["peak_rate_in_bps"] for r in result.windows.to_pylist()
            if r["span"] == "1h"] == [MOST * 8 / 300, 8 / 300]
