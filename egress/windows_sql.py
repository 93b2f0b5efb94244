"""The window definitions as SQL: the statements :mod:`egress.windows` runs on DuckDB.

Everything here is a declarative definition so that another engine (Spark SQL) can run
the same statements; the dialect notes on :func:`floor_to` list the few DuckDB-only
spellings. All times are integer microseconds since the Unix epoch (``BIGINT``); tables and
parameters:

* ``transfers``: the input (:data:`egress.transfers.TRANSFERS_SCHEMA`), one batch at a time;
* per batch, each a pair of statements (transfers inside one window: no arithmetic, no
  unnest; transfers over several: apportioned with cumulative-floor rounding, see
  :mod:`egress.windows`), appended to accumulator tables:
  :data:`HOURS_SQL` every additive metric per ``(tenant, hour, country, ...)``,
  :data:`CELLS_SQL` boundary-crossing bytes per ``(tenant, 5-minute cell)`` (peak rates),
  :data:`PRESENCE_SQL` the remote ends per ``(tenant, hour)``; :data:`EVIDENCE_SQL` the
  evidence candidates;
* :data:`COMPACT_SQL` reduces an accumulator to one row per key (same meaning), so
  accumulators stay at tenants x time cells however many batches arrive;
* :func:`peaks_sql`, :data:`BASES_SQL`, :data:`WINDOWS_SQL`, :data:`COUNTRIES_SQL` turn the
  accumulators into the per-span windows (:data:`EVIDENCE_OUT_SQL` ranks the evidence),
  tenant codes named by ``tenant_names``; their distinct counts come from
  ``distinct_counts``, made exactly
  by :data:`EXACT_DISTINCT_SQL` from ``presence_acc`` or handed in from the compiled
  sketches (:mod:`egress.windows_network`; on Spark, DataSketches' ``hll_sketch_agg`` and
  ``hll_union_agg`` would fill the same table) and summed by :data:`DISTINCT_SUMS_SQL`
  (:data:`DISTINCT_ROWS_SQL` when they come one row per key);
* :data:`FORGET_SQL` drops the accumulated rows before a horizon.

Rounding composes: the cumulative-floor share of a run of consecutive cells equals the
share computed directly for their union, so an hour's share computed directly equals the
sum of its cells' shares, and days rolled up from hours are exactly what apportioning by
days would give.
"""

from __future__ import annotations

CELL_US = 300_000_000
HOUR_US = 3_600_000_000
DAY_US = 86_400_000_000

#: The spans, in the order of their names (a span's code in the results is its place).
SPANS = ("1h", "24h", "7d", "cumulative")

#: The kinds of transfer ``hours_acc`` tells apart, by their code there (its place here;
#: any other kind: ``len(KINDS)``).
KINDS = ("network", "object_put", "drive", "copy")


def kind_code(kind: str) -> int:
    """The code of ``kind`` in ``hours_acc``."""
    return KINDS.index(kind)


#: Additive metrics of a cell, in :data:`egress.windows.WINDOWS_SCHEMA` order.
ADDITIVE = (
    "bytes_in", "bytes_out", "cross_border_bytes_in", "cross_border_bytes_out",
    "concern_bytes_in", "concern_bytes_out", "object_put_bytes", "object_puts",
    "drives_attached", "drive_capacity_bytes", "bytes_copied", "flows", "quality_marked",
)


def floor_to(expr: str, size: str) -> str:
    """SQL for ``expr`` rounded down to a multiple of ``size`` (also before 1970).

    Dialect notes for Spark SQL: ``epoch_us(x)`` -> ``unix_micros(x)``;
    ``make_timestamp(us)`` -> ``timestamp_micros(us)``; ``unnest(range(a, b, s))`` ->
    ``explode(sequence(a, b - 1, s))`` (an empty range: no row in both); ``FROM t,
    range(1, 8) AS r(k)`` -> ``LATERAL VIEW explode(sequence(1, 7)) r AS k``; ``HUGEINT``
    -> ``DECIMAL(38, 0)``; ``//`` -> ``div``; ``UBIGINT`` -> ``DECIMAL(20, 0)``;
    ``list_contains`` -> ``array_contains``; ``hash(x)`` (64-bit) -> ``xxhash64(x)``;
    ``max(x, n)`` (the ``n`` largest, a list) -> ``slice(sort_array(collect_list(x),
    false), 1, n)``; ``list_min`` -> ``array_min``; ``GROUP BY ALL`` -> the non-aggregate
    columns listed; ``QUALIFY f <= n`` -> a subquery filtering on ``f``; ``$name`` ->
    ``:name``. Integer ``%`` truncates toward zero in both, hence the floor-modulo;
    ``greatest`` skips ``NULL`` in both; ``count(*) FILTER (WHERE c)`` is in both.
    """
    return f"({expr} - ((({expr}) % {size}) + {size}) % {size})"


#: Network bytes cross the tenant's boundary unless internal with no remote end.
_CROSSING = "kind = 'network' AND NOT (direction = 'internal' AND remote_addr IS NULL)"


def _part(column: str, elapsed: str) -> str:
    """``floor(column * elapsed / (e - s))`` exactly, as ``UBIGINT`` (``0 <= elapsed <= e - s``):
    in 64-bit arithmetic when the product fits, else in 128-bit."""
    return (f"CASE WHEN {column} <= {2**63 - 1} // (e - s) "
            f"THEN CAST(CAST({column} AS BIGINT) * ({elapsed}) // (e - s) AS UBIGINT) "
            f"ELSE CAST(CAST({column} AS HUGEINT) * ({elapsed}) // (e - s) AS UBIGINT) END")


def _share(column: str, unit: int) -> str:
    """Cumulative-floor share of ``column`` for the piece ``[ws, ws + unit)`` of ``[s, e)``
    (``e > s``), as ``UBIGINT`` (a share never exceeds the whole)."""
    return (f"{_part(column, f'least(e, ws + {unit}) - s')} "
            f"- {_part(column, 'greatest(s, ws) - s')}")


_S = 'epoch_us("start")'
_E = 'greatest(epoch_us("end"), epoch_us("start"))'
#: How long the connection has lasted by the transfer's end (an increment of a long
#: connection starts after the connection opened).
_D = f'{_E} - least(coalesce(epoch_us("opened"), {_S}), {_S})'


def _one(unit: int) -> str:
    """Condition: the transfer lies inside one window of ``unit``."""
    return f"{floor_to(_S, str(unit))} = {floor_to(f'greatest({_E} - 1, {_S})', str(unit))}"


def _grid(unit: int, where: str) -> str:
    """CTE ``grid``: the transfers over two or more windows of ``unit`` (and ``where``),
    with ``s``, ``e`` and their first and last window ``first_ws``, ``last_ws``."""
    return f"""
grid AS (
    SELECT
        tenant, kind, bytes_in, bytes_out, capacity_bytes, remote_addr, remote_asn,
        remote_country, coalesce(cross_border, false) AS cross_border, quality,
        {_CROSSING} AS crossing,
        {_S} AS s,
        {_E} AS e,
        {_D} AS d,
        {floor_to(_S, str(unit))} AS first_ws,
        {floor_to(f"greatest({_E} - 1, {_S})", str(unit))} AS last_ws
    FROM transfers
    WHERE NOT ({_one(unit)}) AND {where}
)"""


def _pieces(columns: str, unit: int) -> str:
    """``grid`` rows -> one row per (transfer, window of ``unit`` it touches) with
    ``ws``, ``in_share``, ``out_share`` and ``starts_here``: a first and a last piece by
    the cumulative floor, and only for a transfer over three or more windows the middle
    pieces (unnest)."""
    return f"""
    SELECT {columns}, first_ws AS ws,
           {_part("bytes_in", f"first_ws + {unit} - s")} AS in_share,
           {_part("bytes_out", f"first_ws + {unit} - s")} AS out_share,
           TRUE AS starts_here
    FROM grid
    UNION ALL
    SELECT {columns}, last_ws AS ws,
           bytes_in - {_part("bytes_in", "last_ws - s")},
           bytes_out - {_part("bytes_out", "last_ws - s")},
           FALSE
    FROM grid
    UNION ALL
    SELECT {columns}, ws, {_share("bytes_in", unit)}, {_share("bytes_out", unit)}, FALSE
    FROM (
        SELECT *, unnest(range(first_ws + {unit}, last_ws, {unit})) AS ws
        FROM grid WHERE last_ws - first_ws > {unit}
    )"""


_HOURS_KEYS = ("tenant", "t", "country", "cross_border", "kind", "crossing")

#: One batch of ``transfers`` -> per ``(tenant, hour, country, cross_border, kind,
#: crossing)``: the bytes apportioned to the hour, the transfers starting in it
#: (``starts``, ``quality_marked``, ``capacity_bytes`` of those) and the longest network
#: transfer overlapping it; every metric of :data:`ADDITIVE` is a sum over these keys.
#: Two statements, their rows appended together: transfers inside one hour (the bulk:
#: each falls wholly in its hour), then those over several (apportioned).
HOURS_SQL = (f"""
SELECT
    tenant, {floor_to(_S, str(HOUR_US))} AS t, remote_country AS country,
    coalesce(cross_border, false) AS cross_border, kind, {_CROSSING} AS crossing,
    sum(bytes_in) AS bytes_in,
    sum(bytes_out) AS bytes_out,
    count(*) AS starts,
    count(*) FILTER (WHERE quality) AS quality_marked,
    sum(capacity_bytes) AS capacity_bytes,
    max({_D}) FILTER (WHERE kind = 'network') AS max_duration_us
FROM transfers
WHERE {_one(HOUR_US)}
GROUP BY ALL
""", f"""
WITH {_grid(HOUR_US, "TRUE").strip()},
pieces AS ({_pieces(
    "tenant, kind, remote_country, cross_border, crossing, quality, capacity_bytes, s, e, d",
    HOUR_US)}
)
SELECT
    tenant, ws AS t, remote_country AS country, cross_border, kind, crossing,
    sum(in_share) AS bytes_in,
    sum(out_share) AS bytes_out,
    count(*) FILTER (WHERE starts_here) AS starts,
    count(*) FILTER (WHERE starts_here AND quality) AS quality_marked,
    sum(capacity_bytes) FILTER (WHERE starts_here) AS capacity_bytes,
    max(d) FILTER (WHERE kind = 'network') AS max_duration_us
FROM pieces
GROUP BY ALL
""")

#: One batch of ``transfers`` -> boundary-crossing network bytes per ``(tenant, cell)``
#: (5-minute cells: the peak rates); inside one cell, then over several.
CELLS_SQL = (f"""
SELECT tenant, {floor_to(_S, str(CELL_US))} AS cell,
       sum(bytes_in) AS bytes_in, sum(bytes_out) AS bytes_out
FROM transfers
WHERE {_CROSSING} AND {_one(CELL_US)}
GROUP BY ALL
""", f"""
WITH {_grid(CELL_US, _CROSSING).strip()},
pieces AS ({_pieces("tenant, s, e", CELL_US)}
)
SELECT tenant, ws AS cell, sum(in_share) AS bytes_in, sum(out_share) AS bytes_out
FROM pieces
GROUP BY ALL
""")

_REMOTE = "kind = 'network' AND remote_addr IS NOT NULL"

#: One batch of ``transfers`` -> the remote ends of network transfers per hour they
#: overlap. ``addr`` is a 64-bit hash of the address: distinct counts are per tenant, so
#: with ``n`` distinct addresses of a tenant two collide with probability about
#: ``n^2 / 2^65`` (1e-9 for 200,000 addresses). Duplicates are removed when the
#: accumulator is compacted and at the end.
PRESENCE_SQL = (f"""
SELECT tenant, {floor_to(_S, str(HOUR_US))} AS t, hash(remote_addr) AS addr,
       remote_asn AS asn, remote_country AS country
FROM transfers
WHERE {_REMOTE} AND {_one(HOUR_US)}
""", f"""
WITH {_grid(HOUR_US, _REMOTE).strip()}
SELECT tenant, unnest(range(first_ws, last_ws + 1, {HOUR_US})) AS t, hash(remote_addr),
       remote_asn, remote_country
FROM grid
""")

_EVIDENCE_RANK = f"""row_number() OVER (
    PARTITION BY tenant, kind, {floor_to('epoch_us("start")', str(DAY_US))}
    ORDER BY greatest(bytes_in, bytes_out) DESC, "start", ref
)"""

EVIDENCE_COLUMNS = """tenant, kind, "start", "end", bytes_in, bytes_out, remote_addr,
       remote_country, "where", ref, quality, community_id"""

#: One batch of ``transfers`` -> the candidates for evidence (with ``day`` and ``size``):
#: every transfer at least as large as the ``$top``-th largest of its tenant, kind and day in the
#: batch, and as the ``floor`` of ``evidence_floor`` (a size at least ``$top`` earlier
#: transfers of that tenant and day reach). A transfer below either has ``$top`` larger
#: ones, so the candidates hold the top ``$top`` under any tie order;
#: :data:`EVIDENCE_RESULT_SQL` ranks them.
EVIDENCE_SQL = f"""
WITH sized AS (
    SELECT {EVIDENCE_COLUMNS},
           {floor_to(_S, str(DAY_US))} AS day,
           greatest(bytes_in, bytes_out) AS size
    FROM transfers
),
kept AS (
    SELECT sized.* FROM sized LEFT JOIN evidence_floor f USING (tenant, kind, day)
    WHERE f.floor IS NULL OR sized.size >= f.floor
),
floors AS (
    SELECT tenant, kind, day, list_min(max(size, $top)) AS floor FROM kept GROUP BY ALL
)
SELECT kept.* FROM kept JOIN floors USING (tenant, kind, day)
WHERE size >= floor
"""

#: ``evidence_floor`` raised by a batch's candidates (``evidence_batch``).
EVIDENCE_FLOOR_SQL = """
SELECT tenant, kind, day, greatest(f.floor, b.floor) AS floor
FROM evidence_floor f FULL JOIN (
    SELECT tenant, kind, day, list_min(max(size, $top)) AS floor
    FROM evidence_batch GROUP BY ALL HAVING count(*) >= $top
) b USING (tenant, kind, day)
"""

#: The evidence kept: the ranking over all candidates (also compacts the accumulator).
EVIDENCE_RESULT_SQL = f"""
SELECT * FROM evidence_acc
QUALIFY {_EVIDENCE_RANK} <= $top
ORDER BY tenant, "start", ref
"""

#: The evidence as a result: :data:`EVIDENCE_RESULT_SQL` of ``evidence_acc`` with the
#: tenants' ``name_rank`` and order as :data:`WINDOWS_SQL`.
EVIDENCE_OUT_SQL = f"""
SELECT n.name_rank AS tenant, {EVIDENCE_COLUMNS.replace("tenant, ", "", 1)}
FROM (
    SELECT * FROM evidence_acc
    QUALIFY {_EVIDENCE_RANK} <= $top
) JOIN tenant_names n USING (tenant)
ORDER BY n.name_rank, "start", ref
"""

_NET, _PUT, _DRIVE, _COPY = range(len(KINDS))
_KIND_CODE = ("CASE kind " + " ".join(f"WHEN '{k}' THEN {i}" for i, k in enumerate(KINDS))
              + f" ELSE {len(KINDS)} END")


def hours_coded(statement: str) -> str:
    """A statement of :data:`HOURS_SQL` with its ``kind`` coded as ``hours_acc`` holds it
    (:func:`kind_code`)."""
    return (f"SELECT tenant, t, country, cross_border, {_KIND_CODE} AS kind, crossing, "
            "bytes_in, bytes_out, starts, quality_marked, capacity_bytes, max_duration_us "
            f"FROM ({statement})")


#: Compaction of each accumulator to one row per key (same columns, same meaning).
COMPACT_SQL = {
    "hours_acc": """
SELECT tenant, t, country, cross_border, kind, crossing,
       sum(bytes_in) AS bytes_in, sum(bytes_out) AS bytes_out, sum(starts) AS starts,
       sum(quality_marked) AS quality_marked, sum(capacity_bytes) AS capacity_bytes,
       max(max_duration_us) AS max_duration_us
FROM hours_acc GROUP BY tenant, t, country, cross_border, kind, crossing""",
    "cells_acc": """
SELECT tenant, cell, sum(bytes_in) AS bytes_in, sum(bytes_out) AS bytes_out
FROM cells_acc GROUP BY tenant, cell""",
    "presence_acc": "SELECT DISTINCT * FROM presence_acc",
    "evidence_acc": EVIDENCE_RESULT_SQL,
}

#: The daily bases kept across snapshots and the tables they are made from each time.
_KEPT_DAYS = (("day_base_all", "day_base"), ("country_day_all", "country_day"))

#: Forgetting: the accumulated rows before ``$horizon`` (a day boundary), table by table.
FORGET_SQL = (
    "DELETE FROM hours_acc WHERE t < $horizon",
    "DELETE FROM net_hours_acc WHERE t < $horizon",
    "DELETE FROM net_totals_acc WHERE t < $horizon",
    "DELETE FROM wide_totals_acc WHERE t < $horizon",
    "DELETE FROM cells_acc WHERE cell < $horizon",
    "DELETE FROM net_cells_acc WHERE cell < $horizon",
    "DELETE FROM net_peaks_acc WHERE t < $horizon",
    "DELETE FROM presence_acc WHERE t < $horizon",
    'DELETE FROM evidence_acc WHERE epoch_us("start") < $horizon',
    "DELETE FROM evidence_floor WHERE day < $horizon",
)
#: The same for the kept daily bases (once a snapshot made them).
FORGET_DAYS_SQL = tuple(f"DELETE FROM {kept} WHERE t < $horizon" for kept, _ in _KEPT_DAYS)

#: Accumulator tables the per-batch statements append to (``tenant``: an integer code
#: of the tenant id, ``country`` of the remote country, both mapped back on output: the
#: statements run on transfers whose ``remote_country`` is that code; ``kind`` in
#: ``hours_acc``: :func:`kind_code`, see :func:`hours_coded`). Network transfers all go
#: through the compiled reduction, whose hours come in two parts: their sums per tenant and
#: hour, as ``hour_base`` makes them (``net_totals_acc``, and ``wide_totals_acc`` for sums
#: past 64 bits), and the bytes per tenant, hour and country that ``country_hour`` sums
#: (``net_hours_acc``, or ``hours_acc`` with the network kind for sums past 64 bits).
#: ``net_cells_acc`` holds the compiled reduction's cells whose sums fit 64 bits (nearly
#: all). :data:`COUNTRY_ROWS_ALL`, :data:`TOTALS_ALL` and :data:`CELLS_ALL` read both tables
#: of each. ``net_peaks_acc`` holds, instead of the compiled reduction's cells, their most
#: bytes in and out per tenant and hour (the peaks are maxima of those), while no cell it
#: handed back came again and those fit 64 bits (its cells are held meanwhile, and appended
#: to the cell accumulators once not).
CREATE_ACCUMULATORS = """
CREATE OR REPLACE TEMP TABLE hours_acc (
    tenant INTEGER, t BIGINT, country SMALLINT, cross_border BOOLEAN, kind UTINYINT,
    crossing BOOLEAN, bytes_in HUGEINT, bytes_out HUGEINT, starts BIGINT,
    quality_marked BIGINT, capacity_bytes HUGEINT, max_duration_us BIGINT
);
CREATE OR REPLACE TEMP TABLE cells_acc (
    tenant INTEGER, cell BIGINT, bytes_in HUGEINT, bytes_out HUGEINT
);
CREATE OR REPLACE TEMP TABLE net_hours_acc (
    tenant INTEGER, t BIGINT, country SMALLINT, crossing BOOLEAN, bytes_in UBIGINT,
    bytes_out UBIGINT
);
CREATE OR REPLACE TEMP TABLE net_totals_acc (
    tenant INTEGER, t BIGINT, bytes_in UBIGINT, bytes_out UBIGINT,
    cross_border_bytes_in UBIGINT, cross_border_bytes_out UBIGINT, concern_bytes_in UBIGINT,
    concern_bytes_out UBIGINT, flows BIGINT, quality_marked BIGINT, max_duration_us BIGINT
);
CREATE OR REPLACE TEMP TABLE wide_totals_acc (
    tenant INTEGER, t BIGINT, bytes_in HUGEINT, bytes_out HUGEINT,
    cross_border_bytes_in HUGEINT, cross_border_bytes_out HUGEINT, concern_bytes_in HUGEINT,
    concern_bytes_out HUGEINT, flows BIGINT, quality_marked BIGINT, max_duration_us BIGINT
);
CREATE OR REPLACE TEMP TABLE net_cells_acc (
    tenant INTEGER, cell BIGINT, bytes_in UBIGINT, bytes_out UBIGINT
);
CREATE OR REPLACE TEMP TABLE net_peaks_acc (
    tenant INTEGER, t BIGINT, peak_cell_in UBIGINT, peak_cell_out UBIGINT
);
CREATE OR REPLACE TEMP TABLE presence_acc (
    tenant INTEGER, t BIGINT, addr UBIGINT, asn BIGINT, country SMALLINT
);
CREATE OR REPLACE TEMP TABLE evidence_floor (
    tenant INTEGER, kind VARCHAR, day BIGINT, floor UBIGINT
);
CREATE OR REPLACE TEMP TABLE evidence_acc (
    tenant INTEGER, kind VARCHAR, "start" TIMESTAMPTZ, "end" TIMESTAMPTZ, bytes_in UBIGINT,
    bytes_out UBIGINT, remote_addr VARCHAR, remote_country VARCHAR, "where" VARCHAR,
    ref VARCHAR, quality BOOLEAN, community_id VARCHAR
);
"""


#: The bytes per tenant, hour and country of ``hours_acc`` and ``net_hours_acc`` together.
COUNTRY_ROWS_ALL = """(
    SELECT tenant, t, country, crossing, bytes_in, bytes_out FROM hours_acc
    UNION ALL
    SELECT tenant, t, country, crossing, CAST(bytes_in AS HUGEINT) AS bytes_in,
           CAST(bytes_out AS HUGEINT) AS bytes_out
    FROM net_hours_acc
)"""
#: The network sums per tenant and hour of ``net_totals_acc`` and ``wide_totals_acc``.
TOTALS_ALL = """(
    SELECT * FROM wide_totals_acc
    UNION ALL
    SELECT * FROM net_totals_acc
)"""
#: The rows of ``cells_acc`` and ``net_cells_acc`` together, as ``cells_acc`` holds them.
CELLS_ALL = """(
    SELECT * FROM cells_acc
    UNION ALL
    SELECT tenant, cell, CAST(bytes_in AS HUGEINT), CAST(bytes_out AS HUGEINT)
    FROM net_cells_acc
)"""


def _sums(prefix: str = "") -> str:
    return ", ".join(f"sum({prefix}{m}) AS {m}" for m in ADDITIVE)


def _running(order: str) -> str:
    over = f"OVER (PARTITION BY tenant ORDER BY {order} ROWS UNBOUNDED PRECEDING)"
    return ", ".join(f"sum({m}) {over} AS {m}" for m in ADDITIVE)


def peaks_sql(*, unique: bool, source: str = "cells_acc", peaks: str | None = None) -> str:
    """The statement making ``peaks``: per tenant and hour the most bytes in (and out) of
    one of its 5-minute cells, from the rows of ``source`` (``cells_acc``, or
    :data:`CELLS_ALL`) and the rows of ``peaks`` (such maxima of other cells, or of some of
    the same cells at most: ``net_peaks_acc``). ``unique``: ``source`` holds one row per
    ``(tenant, cell)`` already, so they are the cells' sums (one aggregation fewer)."""
    cells = (source if unique else
             "(SELECT tenant, cell, sum(bytes_in) AS bytes_in, sum(bytes_out) AS bytes_out\n"
             f"      FROM {source} GROUP BY tenant, cell)")
    maxima = f"""SELECT tenant, {floor_to("cell", str(HOUR_US))} AS t,
       max(bytes_in) AS peak_cell_in, max(bytes_out) AS peak_cell_out
FROM {cells}
GROUP BY ALL"""
    if peaks is not None:
        maxima = f"""SELECT tenant, t, max(peak_cell_in) AS peak_cell_in,
       max(peak_cell_out) AS peak_cell_out
FROM ({maxima}
      UNION ALL SELECT tenant, t, CAST(peak_cell_in AS HUGEINT),
                       CAST(peak_cell_out AS HUGEINT) FROM {peaks})
GROUP BY tenant, t"""
    return f"CREATE OR REPLACE TEMP TABLE peaks AS\n{maxima}"


#: Final statements, run once after all batches (after :func:`peaks_sql`): hourly and
#: daily bases, then the spans. ``$rate_bytes_per_hour`` is the sustained inbound rate,
#: as bytes per hour; ``$concern`` the list of countries of concern.
_BASES = f"""
CREATE OR REPLACE TEMP TABLE hour_base AS
WITH metrics AS (
    SELECT
        tenant, t,
        {", ".join(f"sum({m}) AS {m}" for m in ADDITIVE)},
        coalesce(max(max_duration_us), 0) AS max_duration_us
    FROM (
        SELECT
            tenant, t,
            sum(CASE WHEN crossing THEN bytes_in ELSE 0 END) AS bytes_in,
            sum(CASE WHEN crossing THEN bytes_out ELSE 0 END) AS bytes_out,
            sum(CASE WHEN crossing AND cross_border THEN bytes_in ELSE 0 END)
                AS cross_border_bytes_in,
            sum(CASE WHEN crossing AND cross_border THEN bytes_out ELSE 0 END)
                AS cross_border_bytes_out,
            sum(CASE WHEN crossing AND coalesce(list_contains($concern, country), false)
                THEN bytes_in ELSE 0 END) AS concern_bytes_in,
            sum(CASE WHEN crossing AND coalesce(list_contains($concern, country), false)
                THEN bytes_out ELSE 0 END) AS concern_bytes_out,
            sum(CASE WHEN kind = {_PUT} THEN bytes_in ELSE 0 END) AS object_put_bytes,
            sum(CASE WHEN kind = {_PUT} THEN starts ELSE 0 END) AS object_puts,
            sum(CASE WHEN kind = {_DRIVE} THEN starts ELSE 0 END) AS drives_attached,
            sum(CASE WHEN kind = {_DRIVE} THEN coalesce(capacity_bytes, 0) ELSE 0 END)
                AS drive_capacity_bytes,
            sum(CASE WHEN kind = {_COPY} THEN bytes_in ELSE 0 END) AS bytes_copied,
            sum(0) AS flows,
            sum(quality_marked) AS quality_marked,
            max(max_duration_us) AS max_duration_us
        FROM hours_acc WHERE kind <> {_NET}  -- (the network's are in the totals)
        GROUP BY tenant, t
        UNION ALL
        SELECT
            tenant, t, bytes_in, bytes_out, cross_border_bytes_in, cross_border_bytes_out,
            concern_bytes_in, concern_bytes_out, 0, 0, 0, 0, 0, flows, quality_marked,
            max_duration_us
        FROM {TOTALS_ALL}
    )
    GROUP BY tenant, t
)
SELECT
    m.*,
    coalesce(p.peak_cell_in, 0) AS peak_cell_in,
    coalesce(p.peak_cell_out, 0) AS peak_cell_out,
    CASE WHEN m.bytes_in >= $rate_bytes_per_hour THEN 1 ELSE 0 END AS hours_above_rate
FROM metrics m LEFT JOIN peaks p USING (tenant, t);

CREATE OR REPLACE TEMP TABLE day_base AS
SELECT
    tenant,
    {floor_to("t", str(DAY_US))} AS t,
    {_sums()},
    max(max_duration_us) AS max_duration_us,
    max(peak_cell_in) AS peak_cell_in,
    max(peak_cell_out) AS peak_cell_out,
    sum(hours_above_rate) AS hours_above_rate
FROM hour_base
GROUP BY tenant, {floor_to("t", str(DAY_US))};

CREATE OR REPLACE TEMP TABLE country_hour AS
SELECT tenant, t, country,
       sum(CASE WHEN crossing THEN bytes_in ELSE 0 END) AS bytes_in,
       sum(CASE WHEN crossing THEN bytes_out ELSE 0 END) AS bytes_out
FROM {COUNTRY_ROWS_ALL} WHERE country IS NOT NULL
GROUP BY ALL;

CREATE OR REPLACE TEMP TABLE country_day AS
SELECT tenant, {floor_to("t", str(DAY_US))} AS t, country,
       sum(bytes_in) AS bytes_in, sum(bytes_out) AS bytes_out
FROM country_hour GROUP BY ALL
"""
BASES_SQL = tuple(statement.strip() for statement in _BASES.split(";\n\n"))

#: ``country_hour`` when ``hours_acc`` is empty and the boundary-crossing rows of
#: ``net_hours_acc`` hold one row per tenant, hour and country: those rows are the sums
#: (no aggregation), and the keys only other rows have add rows of no bytes.
COUNTRY_HOUR_UNIQUE_SQL = """
CREATE OR REPLACE TEMP TABLE country_hour AS
WITH quiet AS (
    SELECT DISTINCT tenant, t, country FROM net_hours_acc
    WHERE NOT crossing AND country IS NOT NULL
)
SELECT tenant, t, country, CAST(bytes_in AS HUGEINT) AS bytes_in,
       CAST(bytes_out AS HUGEINT) AS bytes_out
FROM net_hours_acc WHERE crossing AND country IS NOT NULL
UNION ALL
SELECT tenant, t, country, CAST(0 AS HUGEINT), CAST(0 AS HUGEINT)
FROM (
    SELECT * FROM quiet
    EXCEPT  -- (the few quiet keys are looked up among the crossing rows, not the reverse)
    SELECT c.tenant, c.t, c.country
    FROM net_hours_acc AS c SEMI JOIN quiet USING (tenant, t, country) WHERE c.crossing
)""".strip()


#: The network sums :data:`HOUR_BASE_UNIQUE_SQL` takes as they are (the other metrics: 0).
_NETWORK_SUMS = ("bytes_in", "bytes_out", "cross_border_bytes_in", "cross_border_bytes_out",
                 "concern_bytes_in", "concern_bytes_out", "flows", "quality_marked")

#: ``hour_base`` when ``hours_acc`` and ``wide_totals_acc`` are empty and
#: ``net_totals_acc`` holds one row per tenant and hour: those rows are the sums (no
#: aggregation), with the types the sums have.
HOUR_BASE_UNIQUE_SQL = f"""
CREATE OR REPLACE TEMP TABLE hour_base AS
SELECT
    m.*,
    coalesce(p.peak_cell_in, 0) AS peak_cell_in,
    coalesce(p.peak_cell_out, 0) AS peak_cell_out,
    CASE WHEN m.bytes_in >= $rate_bytes_per_hour THEN 1 ELSE 0 END AS hours_above_rate
FROM (
    SELECT
        tenant, t,
        {", ".join(f"CAST({m if m in _NETWORK_SUMS else 0} AS HUGEINT) AS {m}"
                   for m in ADDITIVE)},
        coalesce(max_duration_us, 0) AS max_duration_us
    FROM net_totals_acc
) m LEFT JOIN peaks p USING (tenant, t)""".strip()


def bases_sql(*, unique_country_hours: bool, unique_hours: bool = False) -> tuple[str, ...]:
    """:data:`BASES_SQL`, with :data:`COUNTRY_HOUR_UNIQUE_SQL` for ``country_hour`` when
    ``unique_country_hours`` and :data:`HOUR_BASE_UNIQUE_SQL` for ``hour_base`` when
    ``unique_hours`` (see there)."""
    instead = {"hour_base": HOUR_BASE_UNIQUE_SQL if unique_hours else None,
               "country_hour": COUNTRY_HOUR_UNIQUE_SQL if unique_country_hours else None}
    # each statement starts "CREATE OR REPLACE TEMP TABLE <name> AS"
    return tuple(instead.get(statement.split()[5]) or statement for statement in BASES_SQL)


#: The daily bases kept across snapshots (``day_base_all``, ``country_day_all``): a
#: snapshot computes ``day_base`` and ``country_day`` only for the days it covers and
#: puts them in place of those days' rows (of the tenants in ``scope_tenants`` when
#: scoped); 7-day and cumulative windows read every day through ``day_base_win`` and
#: ``country_day_win``.


def keep_days_sql(*, replace: bool, since: bool, scoped: bool) -> tuple[str, ...]:
    """Statements that update the kept daily bases from this snapshot's (``replace``:
    they become this snapshot's; ``since``: rows from day ``$since`` on are replaced;
    ``scoped``: only the tenants in ``scope_tenants``) and define the ``*_win`` views."""
    tenants = "tenant IN (SELECT tenant FROM scope_tenants)"
    out: list[str] = []
    for kept, fresh in _KEPT_DAYS:
        if replace:
            out.append(f"CREATE OR REPLACE TEMP TABLE {kept} AS SELECT * FROM {fresh}")
        else:
            out.append(f"CREATE TEMP TABLE IF NOT EXISTS {kept} AS SELECT * FROM {fresh} "
                       "LIMIT 0")
            where = " AND ".join(
                [c for c, on in (("t >= $since", since), (tenants, scoped)) if on] or ["TRUE"])
            out.append(f"DELETE FROM {kept} WHERE {where}")
            out.append(f"INSERT INTO {kept} SELECT * FROM {fresh}")
        out.append(f"CREATE OR REPLACE TEMP VIEW {kept.replace('_all', '_win')} AS "
                   f"SELECT * FROM {kept}{f' WHERE {tenants}' if scoped else ''}")
    return tuple(out)


#: Where each tenant's cumulative windows start: its registration, else its first day.
TENANT_START_SQL = """
CREATE OR REPLACE TEMP TABLE tenant_start AS
SELECT d.tenant, coalesce(any_value(r.registered_us), min(d.t)) AS ws
FROM day_base_win d LEFT JOIN registrations r USING (tenant)
GROUP BY d.tenant
"""

#: The largest byte total a window reports: sums past it (over 18 EB, only from corrupt
#: counts) saturate instead of failing the cast.
BYTES_MAX = (1 << 64) - 1


def _bytes_out(column: str) -> str:
    return f"CAST(least({column}, {BYTES_MAX}) AS UBIGINT) AS {column}"


_METRICS_OUT = ", ".join(_bytes_out(m) if "bytes" in m else f"CAST({m} AS BIGINT) AS {m}"
                         for m in ADDITIVE)


def _distinct(span: str, keys: str = "t", countries: bool = False) -> str:
    """The distinct counts of one span from ``distinct_sums`` (``keys``: its time as)."""
    where = "country IS NOT NULL" if countries else "country IS NULL"
    return (f"(SELECT tenant, {'country, ' if countries else ''}{keys}, addrs, asns "
            f"FROM distinct_sums WHERE span = '{span}' AND {where})")


def _span(span: str) -> str:
    """The code of ``span`` in the results (its place in :data:`SPANS`)."""
    return f"CAST({SPANS.index(span)} AS UTINYINT)"


def _tumbling(span: str, base: str, size_us: int) -> str:
    return f"""
SELECT
    b.tenant, {_span(span)} AS span, b.t AS ws, b.t + {size_us} AS we,
    {", ".join(f"b.{m}" for m in ADDITIVE)},
    b.max_duration_us, b.peak_cell_in, b.peak_cell_out, b.hours_above_rate,
    coalesce(p.addrs, 0) AS remote_addrs, coalesce(p.asns, 0) AS remote_asns
FROM {base} b
LEFT JOIN {_distinct(span)} p USING (tenant, t)"""


def _week_counts(group: str, item: str, source: str) -> str:
    """Rows (``group``, ``we``, ``n``): for every day ``we`` from the first to the last
    7-day window end a ``group`` has, how many distinct ``item`` values it saw in the 7
    days before ``we``, from the days ``t`` they are seen in ``source``. A day ``t`` covers
    the window ends ``t + 1 d .. t + 7 d``; those not covered already by the previous day
    the value was seen (``prev``) start a run: +1 where it starts, -1 after ``t + 7 d``,
    and a running sum over the days gives the counts (no row per window end and value)."""
    return f"""
        WITH runs AS (
            SELECT {group}, t, lag(t) OVER (PARTITION BY {group}, {item} ORDER BY t) AS prev
            FROM (SELECT DISTINCT {group}, {item}, t FROM {source})
        ),
        deltas AS (
            SELECT {group}, we, sum(d) AS d FROM (
                SELECT {group},
                       greatest(t + {DAY_US}, coalesce(prev + {8 * DAY_US}, t + {DAY_US}))
                       AS we, 1 AS d
                FROM runs
                UNION ALL
                SELECT {group}, t + {8 * DAY_US}, -1 FROM runs
            ) GROUP BY ALL
        ),
        days AS (
            SELECT {group}, unnest(range(lo, hi + {DAY_US}, {DAY_US})) AS we
            FROM (SELECT {group}, min(we) AS lo, max(we) AS hi FROM deltas GROUP BY ALL)
        )
        SELECT {group}, we, sum(coalesce(d, 0)) OVER (
            PARTITION BY {group} ORDER BY we ROWS UNBOUNDED PRECEDING) AS n
        FROM days LEFT JOIN deltas USING ({group}, we)"""


_SLIDING = f"""
SELECT
    b.tenant, {_span("7d")} AS span, b.we - {7 * DAY_US} AS ws, b.we,
    {_sums("b.")},
    max(b.max_duration_us) AS max_duration_us,
    max(b.peak_cell_in) AS peak_cell_in,
    max(b.peak_cell_out) AS peak_cell_out,
    sum(b.hours_above_rate) AS hours_above_rate,
    any_value(coalesce(p.addrs, 0)) AS remote_addrs,
    any_value(coalesce(p.asns, 0)) AS remote_asns
FROM (
    SELECT *, t + k * {DAY_US} AS we FROM day_base_win, range(1, 8) AS r(k)
) b
LEFT JOIN {_distinct("7d", "t AS we")} p USING (tenant, we)
GROUP BY b.tenant, b.we"""

_CUMULATIVE = f"""
SELECT
    b.tenant, {_span("cumulative")} AS span,
    r.ws,
    b.t + {DAY_US} AS we,
    {", ".join(f"b.{m}" for m in ADDITIVE)},
    b.max_duration_us, b.peak_cell_in, b.peak_cell_out, b.hours_above_rate,
    b.remote_addrs, b.remote_asns
FROM (
    SELECT
        d.tenant, d.t,
        {_running("d.t")},
        max(d.max_duration_us) OVER w AS max_duration_us,
        max(d.peak_cell_in) OVER w AS peak_cell_in,
        max(d.peak_cell_out) OVER w AS peak_cell_out,
        sum(d.hours_above_rate) OVER w AS hours_above_rate,
        sum(coalesce(a.addrs, 0)) OVER w AS remote_addrs,
        sum(coalesce(a.asns, 0)) OVER w AS remote_asns
    FROM day_base_win d
    LEFT JOIN {_distinct("cumulative")} a USING (tenant, t)
    WINDOW w AS (PARTITION BY d.tenant ORDER BY d.t ROWS UNBOUNDED PRECEDING)
) b
JOIN tenant_start r USING (tenant)"""

#: All spans, in the column order of :data:`egress.windows.WINDOWS_SCHEMA`, in the order
#: of the tenants' ids (``tenant_names``: ``tenant`` code, ``name``, ``name_rank`` its place
#: in the order of the ids) and spans, with numbers for names (the caller names them):
#: ``tenant`` is the ``name_rank``, ``span`` the code (:func:`_span`), the window's start
#: and end are microseconds. Within a tenant and span the window end alone orders the
#: windows as (start, end) does (tumbling and 7-day windows have a fixed length, the
#: cumulative ones one start), and sorting by one key fewer is much cheaper.
WINDOWS_SQL = f"""
SELECT
    n.name_rank AS tenant, span, ws AS window_start, we AS window_end,
    {_METRICS_OUT},
    CAST(remote_addrs AS BIGINT) AS remote_addrs,
    CAST(remote_asns AS BIGINT) AS remote_asns,
    CAST(CAST(peak_cell_in AS HUGEINT) * 8 AS DOUBLE) / {CELL_US // 1_000_000} AS peak_rate_in_bps,
    CAST(CAST(peak_cell_out AS HUGEINT) * 8 AS DOUBLE) / {CELL_US // 1_000_000}
        AS peak_rate_out_bps,
    CAST(hours_above_rate AS BIGINT) AS hours_above_rate,
    CAST(max_duration_us AS DOUBLE) / 1e6 AS max_transfer_duration_s
FROM (
    {_tumbling("1h", "hour_base", HOUR_US)}
    UNION ALL
    {_tumbling("24h", "day_base", DAY_US)}
    UNION ALL
    {_SLIDING}
    UNION ALL
    {_CUMULATIVE}
) JOIN tenant_names n USING (tenant)
WHERE we > $since
ORDER BY n.name_rank, span, we
"""


def _country_tumbling(span: str, base: str, size_us: int) -> str:
    return f"""
SELECT b.tenant, {_span(span)} AS span, b.t AS ws, b.t + {size_us} AS we, b.country,
       b.bytes_in, b.bytes_out, coalesce(p.addrs, 0) AS remote_addrs
FROM {base} b
LEFT JOIN {_distinct(span, countries=True)} p USING (tenant, t, country)"""


#: Per remote country, the same spans (bytes and distinct addresses only); numbers and
#: order as :data:`WINDOWS_SQL`, then by country name: ``country`` is the ``name_rank`` of
#: the country's code in ``country_names`` (``code``, ``name_rank``).
COUNTRIES_SQL = f"""
SELECT n.name_rank AS tenant, span, ws AS window_start, we AS window_end,
       c.name_rank AS country, {_bytes_out("bytes_in")}, {_bytes_out("bytes_out")},
       CAST(remote_addrs AS BIGINT) AS remote_addrs
FROM (
    {_country_tumbling("1h", "country_hour", HOUR_US)}
    UNION ALL
    {_country_tumbling("24h", "country_day", DAY_US)}
    UNION ALL
    SELECT b.tenant, {_span("7d")}, b.we - {7 * DAY_US}, b.we, b.country,
           sum(b.bytes_in), sum(b.bytes_out), any_value(coalesce(p.addrs, 0))
    FROM (SELECT *, t + k * {DAY_US} AS we FROM country_day_win, range(1, 8) AS r(k)) b
    LEFT JOIN {_distinct("7d", "t AS we", countries=True)} p USING (tenant, we, country)
    GROUP BY b.tenant, b.we, b.country
    UNION ALL
    SELECT b.tenant, {_span("cumulative")},
           r.ws, b.t + {DAY_US}, b.country,
           b.bytes_in, b.bytes_out, b.remote_addrs
    FROM (
        SELECT d.tenant, d.t, d.country,
               sum(d.bytes_in) OVER w AS bytes_in, sum(d.bytes_out) OVER w AS bytes_out,
               sum(coalesce(a.addrs, 0)) OVER w AS remote_addrs
        FROM country_day_win d
        LEFT JOIN {_distinct("cumulative", countries=True)} a USING (tenant, t, country)
        WINDOW w AS (PARTITION BY d.tenant, d.country ORDER BY d.t ROWS UNBOUNDED PRECEDING)
    ) b
    JOIN tenant_start r USING (tenant)
) JOIN tenant_names n USING (tenant) JOIN country_names c ON country = c.code
WHERE we > $since
ORDER BY n.name_rank, span, we, c.name_rank
"""


def _exact(span: str, source: str, size_us: int | None = None) -> str:
    """Distinct counts of one span, overall and per country, from presence rows."""
    t = "t" if size_us is None else floor_to("t", str(size_us))
    return f"""
SELECT tenant, NULL AS country, '{span}' AS span, t, count(*) AS addrs, 0 AS asns
FROM (SELECT DISTINCT tenant, {t} AS t, addr FROM {source}) GROUP BY ALL
UNION ALL
SELECT tenant, NULL, '{span}', t, 0, count(*)
FROM (SELECT DISTINCT tenant, {t} AS t, asn FROM {source} WHERE asn IS NOT NULL) GROUP BY ALL
UNION ALL
SELECT tenant, country, '{span}', t, count(*), 0
FROM (SELECT DISTINCT tenant, {t} AS t, country, addr FROM {source}
      WHERE country IS NOT NULL) GROUP BY ALL"""


#: The exact distinct counts (``WindowParams.exact_distinct``): the rows of
#: ``distinct_counts`` (:data:`DISTINCT_COUNTS_SCHEMA` in :mod:`egress.windows`) computed
#: from the remote ends per hour (``presence_acc``). ``1h``/``24h``: distinct remote
#: addresses and ASNs per window start ``t``; ``7d``: per window end ``t``; ``cumulative``:
#: how many are first seen on day ``t`` (a running sum gives the count since the start).
#: Overall rows have a null ``country``; per-country rows count addresses only.
EXACT_DISTINCT_SQL = (f"""
CREATE OR REPLACE TEMP TABLE day_presence AS
SELECT DISTINCT tenant, {floor_to("t", str(DAY_US))} AS t, addr, asn, country
FROM presence_acc
""", f"""
CREATE OR REPLACE TEMP TABLE distinct_counts AS
{_exact("1h", "presence_acc")}
UNION ALL
{_exact("24h", "day_presence")}
UNION ALL
SELECT tenant, NULL, '7d', we, n, 0
FROM ({_week_counts("tenant", "addr", "day_presence")})
UNION ALL
SELECT tenant, NULL, '7d', we, 0, n
FROM ({_week_counts("tenant", "asn", "day_presence WHERE asn IS NOT NULL")})
UNION ALL
SELECT tenant, country, '7d', we, n, 0
FROM ({_week_counts("tenant, country", "addr", "day_presence WHERE country IS NOT NULL")})
UNION ALL
SELECT tenant, NULL, 'cumulative', t, count(*), 0 FROM (
    SELECT tenant, addr, min(t) AS t FROM day_presence GROUP BY tenant, addr
) GROUP BY ALL
UNION ALL
SELECT tenant, NULL, 'cumulative', t, 0, count(*) FROM (
    SELECT tenant, asn, min(t) AS t FROM day_presence WHERE asn IS NOT NULL
    GROUP BY tenant, asn
) GROUP BY ALL
UNION ALL
SELECT tenant, country, 'cumulative', t, count(*), 0 FROM (
    SELECT tenant, addr, country, min(t) AS t FROM day_presence
    WHERE country IS NOT NULL GROUP BY tenant, addr, country
) GROUP BY ALL
""")

#: ``distinct_counts`` (exact, or from the sketches) summed per key: the windows' source.
DISTINCT_SUMS_SQL = """
CREATE OR REPLACE TEMP TABLE distinct_sums AS
SELECT tenant, country, CAST(span AS VARCHAR) AS span, t, addrs, asns
FROM (
    SELECT tenant, country, span, t, sum(addrs) AS addrs, sum(asns) AS asns
    FROM distinct_counts GROUP BY ALL
)
"""

#: The same when ``distinct_counts`` has one row per key already (sketches that never
#: took a remote end late): the rows are their sums.
DISTINCT_ROWS_SQL = """
CREATE OR REPLACE TEMP TABLE distinct_sums AS
SELECT tenant, country, CAST(span AS VARCHAR) AS span, t, addrs, asns
FROM distinct_counts
"""
