"""The window definitions as SQL: the statements :mod:`egress.windows` runs on DuckDB.

Everything here is a declarative definition so that another engine (Spark SQL) can run
the same statements; the dialect notes on :func:`floor_to` list the few DuckDB-only
spellings. All times are integer microseconds since the Unix epoch (``BIGINT``); tables and
parameters:

* ``transfers``: the input (:data:`egress.windows.TRANSFERS_SCHEMA`), one batch at a time;
* :data:`CELLS_SQL` reduces a batch to 5-minute *cells* per ``(tenant, cell, country)``
  with every additive metric, bytes apportioned with cumulative-floor rounding (see
  :mod:`egress.windows`); :data:`PRESENCE_SQL` to the distinct remote ends per
  ``(tenant, hour)``. Both are appended to accumulator tables, batch after batch;
* :func:`rollup_statements` turns the accumulators into the per-span windows.

Rounding composes: the cumulative-floor share of a run of consecutive cells equals the
share computed directly for their union, so hours and days rolled up from cells are exactly
what apportioning by hours or days would give.
"""

from __future__ import annotations

CELL_US = 300_000_000
HOUR_US = 3_600_000_000
DAY_US = 86_400_000_000

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
    ``explode(sequence(a, b - 1, s))``; ``HUGEINT`` -> ``DECIMAL(38, 0)``; ``//`` -> ``div``;
    ``UBIGINT`` -> ``DECIMAL(20, 0)``; ``list_contains`` -> ``array_contains``; ``$name``
    -> ``:name``. Integer ``%`` truncates toward zero in both, hence the floor-modulo.
    """
    return f"({expr} - ((({expr}) % {size}) + {size}) % {size})"


def _share(column: str) -> str:
    """Cumulative-floor share of ``column`` for the piece ``[ws, ws + cell)``."""
    return (
        f"CASE WHEN e = s THEN CAST({column} AS HUGEINT) "
        f"ELSE CAST({column} AS HUGEINT) * (least(e, ws + {CELL_US}) - s) // (e - s) "
        f"- CAST({column} AS HUGEINT) * (greatest(s, ws) - s) // (e - s) END"
    )


_SPANS = f"""
spans AS (
    SELECT
        tenant, kind, bytes_in, bytes_out, capacity_bytes, remote_addr, remote_asn,
        remote_country, cross_border, quality,
        kind = 'network' AND NOT (direction = 'internal' AND remote_addr IS NULL) AS crossing,
        coalesce(list_contains($concern, remote_country), false) AS concern,
        epoch_us("start") AS s,
        greatest(epoch_us("end"), epoch_us("start")) AS e
    FROM transfers
),
grid AS (
    SELECT *,
        {floor_to("s", "$unit")} AS first_ws,
        {floor_to("greatest(e - 1, s)", "$unit")} AS last_ws
    FROM spans
)"""

#: One batch of ``transfers`` -> additive metrics per ``(tenant, cell, country)``.
#: ``max_duration_us`` is the longest network transfer overlapping the cell.
CELLS_SQL = f"""
WITH {_SPANS.strip()},
pieces AS (
    SELECT *, unnest(range(first_ws, last_ws + 1, $unit)) AS ws FROM grid
),
shares AS (
    SELECT
        tenant, ws, remote_country, kind, crossing, cross_border, concern, quality,
        capacity_bytes, s, e,
        {_share("bytes_in")} AS in_share,
        {_share("bytes_out")} AS out_share,
        s >= ws AND s < ws + {CELL_US} AS starts_here
    FROM pieces
)
SELECT
    tenant,
    ws AS cell,
    remote_country AS country,
    sum(CASE WHEN crossing THEN in_share ELSE 0 END) AS bytes_in,
    sum(CASE WHEN crossing THEN out_share ELSE 0 END) AS bytes_out,
    sum(CASE WHEN crossing AND cross_border THEN in_share ELSE 0 END)
        AS cross_border_bytes_in,
    sum(CASE WHEN crossing AND cross_border THEN out_share ELSE 0 END)
        AS cross_border_bytes_out,
    sum(CASE WHEN crossing AND concern THEN in_share ELSE 0 END) AS concern_bytes_in,
    sum(CASE WHEN crossing AND concern THEN out_share ELSE 0 END) AS concern_bytes_out,
    sum(CASE WHEN kind = 'object_put' THEN in_share ELSE 0 END) AS object_put_bytes,
    count(*) FILTER (WHERE kind = 'object_put' AND starts_here) AS object_puts,
    count(*) FILTER (WHERE kind = 'drive' AND starts_here) AS drives_attached,
    sum(CASE WHEN kind = 'drive' AND starts_here THEN coalesce(capacity_bytes, 0) ELSE 0 END)
        AS drive_capacity_bytes,
    sum(CASE WHEN kind = 'copy' THEN in_share ELSE 0 END) AS bytes_copied,
    count(*) FILTER (WHERE kind = 'network' AND starts_here) AS flows,
    count(*) FILTER (WHERE quality AND starts_here) AS quality_marked,
    coalesce(max(CASE WHEN kind = 'network' THEN e - s END), 0) AS max_duration_us
FROM shares
GROUP BY tenant, ws, remote_country
"""

#: One batch of ``transfers`` -> distinct remote ends of network transfers per hour.
PRESENCE_SQL = f"""
WITH {_SPANS.strip()}
SELECT DISTINCT
    tenant,
    unnest(range(first_ws, last_ws + 1, $unit)) AS t,
    remote_addr AS addr,
    remote_asn AS asn,
    remote_country AS country
FROM grid
WHERE kind = 'network' AND remote_addr IS NOT NULL
"""

#: One batch of ``transfers`` -> its largest transfers per tenant and day, as evidence.
EVIDENCE_SQL = f"""
SELECT tenant, kind, "start", "end", bytes_in, bytes_out, remote_addr, remote_country,
       "where", ref, quality
FROM transfers
QUALIFY row_number() OVER (
    PARTITION BY tenant, {floor_to('epoch_us("start")', str(DAY_US))}
    ORDER BY greatest(bytes_in, bytes_out) DESC, "start", ref
) <= $top
"""

#: The evidence kept in the end: the same ranking over all batches.
EVIDENCE_RESULT_SQL = f"""
SELECT * FROM evidence_acc
QUALIFY row_number() OVER (
    PARTITION BY tenant, {floor_to('epoch_us("start")', str(DAY_US))}
    ORDER BY greatest(bytes_in, bytes_out) DESC, "start", ref
) <= $top
ORDER BY tenant, "start", ref
"""

#: Accumulator tables the per-batch statements append to.
CREATE_ACCUMULATORS = f"""
CREATE OR REPLACE TEMP TABLE cells_acc (
    tenant VARCHAR, cell BIGINT, country VARCHAR,
    {", ".join(f"{m} HUGEINT" for m in ADDITIVE)},
    max_duration_us BIGINT
);
CREATE OR REPLACE TEMP TABLE presence_acc (
    tenant VARCHAR, t BIGINT, addr VARCHAR, asn BIGINT, country VARCHAR
);
CREATE OR REPLACE TEMP TABLE evidence_acc (
    tenant VARCHAR, kind VARCHAR, "start" TIMESTAMPTZ, "end" TIMESTAMPTZ, bytes_in UBIGINT,
    bytes_out UBIGINT, remote_addr VARCHAR, remote_country VARCHAR, "where" VARCHAR,
    ref VARCHAR, quality BOOLEAN
);
"""


def _sums(prefix: str = "") -> str:
    return ", ".join(f"sum({prefix}{m}) AS {m}" for m in ADDITIVE)


def _running(order: str) -> str:
    over = f"OVER (PARTITION BY tenant ORDER BY {order} ROWS UNBOUNDED PRECEDING)"
    return ", ".join(f"sum({m}) {over} AS {m}" for m in ADDITIVE)


#: Final statements, run once after all batches: hourly and daily bases, then the spans.
#: ``$rate_bytes_per_hour`` is the sustained inbound rate, as bytes per hour.
_BASES = f"""
CREATE OR REPLACE TEMP TABLE hour_base AS
WITH cells AS (
    SELECT tenant, cell, {_sums()}, max(max_duration_us) AS max_duration_us
    FROM cells_acc GROUP BY tenant, cell
)
SELECT
    tenant,
    {floor_to("cell", str(HOUR_US))} AS t,
    {_sums()},
    max(max_duration_us) AS max_duration_us,
    max(bytes_in) AS peak_cell_in,
    max(bytes_out) AS peak_cell_out,
    CASE WHEN sum(bytes_in) >= $rate_bytes_per_hour THEN 1 ELSE 0 END AS hours_above_rate
FROM cells
GROUP BY tenant, t;

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

CREATE OR REPLACE TEMP TABLE tenant_start AS
SELECT d.tenant, coalesce(any_value(r.registered_us), min(d.t)) AS ws
FROM day_base d LEFT JOIN registrations r USING (tenant)
GROUP BY d.tenant;

CREATE OR REPLACE TEMP TABLE hour_presence AS SELECT DISTINCT * FROM presence_acc;

CREATE OR REPLACE TEMP TABLE day_presence AS
SELECT DISTINCT tenant, {floor_to("t", str(DAY_US))} AS t, addr, asn, country
FROM hour_presence;

CREATE OR REPLACE TEMP TABLE country_hour AS
SELECT tenant, {floor_to("cell", str(HOUR_US))} AS t, country,
       sum(bytes_in) AS bytes_in, sum(bytes_out) AS bytes_out
FROM cells_acc WHERE country IS NOT NULL
GROUP BY ALL;

CREATE OR REPLACE TEMP TABLE country_day AS
SELECT tenant, {floor_to("t", str(DAY_US))} AS t, country,
       sum(bytes_in) AS bytes_in, sum(bytes_out) AS bytes_out
FROM country_hour GROUP BY ALL
"""
BASES_SQL = tuple(statement.strip() for statement in _BASES.split(";\n\n"))

_METRICS_OUT = ", ".join(f"CAST({m} AS {'UBIGINT' if 'bytes' in m else 'BIGINT'}) AS {m}"
                         for m in ADDITIVE)


def _tumbling(span: str, base: str, presence: str, size_us: int) -> str:
    return f"""
SELECT
    b.tenant, '{span}' AS span, b.t AS ws, b.t + {size_us} AS we,
    {", ".join(f"b.{m}" for m in ADDITIVE)},
    b.max_duration_us, b.peak_cell_in, b.peak_cell_out, b.hours_above_rate,
    coalesce(p.addrs, 0) AS remote_addrs, coalesce(p.asns, 0) AS remote_asns
FROM {base} b
LEFT JOIN (
    SELECT tenant, t, count(DISTINCT addr) AS addrs, count(DISTINCT asn) AS asns
    FROM {presence} GROUP BY tenant, t
) p USING (tenant, t)"""


_SLIDING = f"""
SELECT
    b.tenant, '7d' AS span, b.we - {7 * DAY_US} AS ws, b.we,
    {_sums("b.")},
    max(b.max_duration_us) AS max_duration_us,
    max(b.peak_cell_in) AS peak_cell_in,
    max(b.peak_cell_out) AS peak_cell_out,
    sum(b.hours_above_rate) AS hours_above_rate,
    any_value(coalesce(p.addrs, 0)) AS remote_addrs,
    any_value(coalesce(p.asns, 0)) AS remote_asns
FROM (
    SELECT *, t + k * {DAY_US} AS we FROM day_base, range(1, 8) AS r(k)
) b
LEFT JOIN (
    SELECT tenant, t + k * {DAY_US} AS we,
           count(DISTINCT addr) AS addrs, count(DISTINCT asn) AS asns
    FROM day_presence, range(1, 8) AS r(k)
    GROUP BY tenant, we
) p USING (tenant, we)
GROUP BY b.tenant, b.we"""

_CUMULATIVE = f"""
SELECT
    b.tenant, 'cumulative' AS span,
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
        sum(coalesce(a.n, 0)) OVER w AS remote_addrs,
        sum(coalesce(n.n, 0)) OVER w AS remote_asns
    FROM day_base d
    LEFT JOIN (
        SELECT tenant, t, count(*) AS n FROM (
            SELECT tenant, addr, min(t) AS t FROM day_presence GROUP BY tenant, addr
        ) GROUP BY tenant, t
    ) a USING (tenant, t)
    LEFT JOIN (
        SELECT tenant, t, count(*) AS n FROM (
            SELECT tenant, asn, min(t) AS t FROM day_presence
            WHERE asn IS NOT NULL GROUP BY tenant, asn
        ) GROUP BY tenant, t
    ) n USING (tenant, t)
    WINDOW w AS (PARTITION BY d.tenant ORDER BY d.t ROWS UNBOUNDED PRECEDING)
) b
JOIN tenant_start r USING (tenant)"""

#: All spans, in the column order of :data:`egress.windows.WINDOWS_SCHEMA`.
WINDOWS_SQL = f"""
SELECT
    tenant, span, make_timestamp(ws) AS window_start, make_timestamp(we) AS window_end,
    {_METRICS_OUT},
    CAST(remote_addrs AS BIGINT) AS remote_addrs,
    CAST(remote_asns AS BIGINT) AS remote_asns,
    CAST(peak_cell_in AS DOUBLE) * 8 / {CELL_US // 1_000_000} AS peak_rate_in_bps,
    CAST(peak_cell_out AS DOUBLE) * 8 / {CELL_US // 1_000_000} AS peak_rate_out_bps,
    CAST(hours_above_rate AS BIGINT) AS hours_above_rate,
    CAST(max_duration_us AS DOUBLE) / 1e6 AS max_transfer_duration_s
FROM (
    {_tumbling("1h", "hour_base", "hour_presence", HOUR_US)}
    UNION ALL
    {_tumbling("24h", "day_base", "day_presence", DAY_US)}
    UNION ALL
    {_SLIDING}
    UNION ALL
    {_CUMULATIVE}
)
ORDER BY tenant, span, window_start, window_end
"""


def _country_tumbling(span: str, base: str, presence: str, size_us: int) -> str:
    return f"""
SELECT b.tenant, '{span}' AS span, b.t AS ws, b.t + {size_us} AS we, b.country,
       b.bytes_in, b.bytes_out, coalesce(p.addrs, 0) AS remote_addrs
FROM {base} b
LEFT JOIN (
    SELECT tenant, t, country, count(DISTINCT addr) AS addrs
    FROM {presence} GROUP BY tenant, t, country
) p USING (tenant, t, country)"""


#: Per remote country, the same spans (bytes and distinct addresses only).
COUNTRIES_SQL = f"""
SELECT tenant, span, make_timestamp(ws) AS window_start, make_timestamp(we) AS window_end,
       country, CAST(bytes_in AS UBIGINT) AS bytes_in, CAST(bytes_out AS UBIGINT) AS bytes_out,
       CAST(remote_addrs AS BIGINT) AS remote_addrs
FROM (
    {_country_tumbling("1h", "country_hour", "hour_presence", HOUR_US)}
    UNION ALL
    {_country_tumbling("24h", "country_day", "day_presence", DAY_US)}
    UNION ALL
    SELECT b.tenant, '7d', b.we - {7 * DAY_US}, b.we, b.country,
           sum(b.bytes_in), sum(b.bytes_out), any_value(coalesce(p.addrs, 0))
    FROM (SELECT *, t + k * {DAY_US} AS we FROM country_day, range(1, 8) AS r(k)) b
    LEFT JOIN (
        SELECT tenant, t + k * {DAY_US} AS we, country, count(DISTINCT addr) AS addrs
        FROM day_presence, range(1, 8) AS r(k) GROUP BY tenant, we, country
    ) p USING (tenant, we, country)
    GROUP BY b.tenant, b.we, b.country
    UNION ALL
    SELECT b.tenant, 'cumulative',
           r.ws, b.t + {DAY_US}, b.country,
           b.bytes_in, b.bytes_out, b.remote_addrs
    FROM (
        SELECT d.tenant, d.t, d.country,
               sum(d.bytes_in) OVER w AS bytes_in, sum(d.bytes_out) OVER w AS bytes_out,
               sum(coalesce(a.n, 0)) OVER w AS remote_addrs
        FROM country_day d
        LEFT JOIN (
            SELECT tenant, t, country, count(*) AS n FROM (
                SELECT tenant, addr, country, min(t) AS t FROM day_presence
                WHERE country IS NOT NULL GROUP BY tenant, addr, country
            ) GROUP BY tenant, t, country
        ) a USING (tenant, t, country)
        WINDOW w AS (PARTITION BY d.tenant, d.country ORDER BY d.t ROWS UNBOUNDED PRECEDING)
    ) b
    JOIN tenant_start r USING (tenant)
)
ORDER BY tenant, span, window_start, window_end, country
"""
