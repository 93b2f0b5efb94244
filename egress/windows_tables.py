"""The aggregation's inputs and outputs: :class:`WindowParams` and the result tables.

:data:`WINDOWS_SCHEMA` (per tenant, span and window; the metrics are described in
:mod:`egress.windows`), :data:`COUNTRIES_SCHEMA` (the same per remote country) and
:data:`EVIDENCE_SCHEMA` (the largest transfers each tenant keeps per kind and day), held
together by :class:`WindowTables`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

import pyarrow as pa

from egress.transfers import TIMESTAMP, TRANSFERS_SCHEMA
from egress.windows_sql import ADDITIVE, SPANS

__all__ = ["COUNTRIES_SCHEMA", "EVIDENCE_SCHEMA", "SPANS", "WINDOWS_SCHEMA", "WindowParams",
           "WindowTables"]

#: The largest transfers of each tenant, kind and day (``where``: file and line or offset;
#: ``ref``: the connection's uid, the request id): the evidence findings cite.
EVIDENCE_SCHEMA = pa.schema([
    TRANSFERS_SCHEMA.field(name) for name in (
        "tenant", "kind", "start", "end", "bytes_in", "bytes_out", "remote_addr",
        "remote_country", "where", "ref", "quality", "community_id")
])

_COUNTS = frozenset({"object_puts", "drives_attached", "flows", "quality_marked"})

#: Columns of the per-(tenant, span, window) table (module doc for the metrics).
WINDOWS_SCHEMA = pa.schema([
    pa.field("tenant", pa.string(), nullable=False),
    pa.field("span", pa.string(), nullable=False),
    pa.field("window_start", TIMESTAMP, nullable=False),
    pa.field("window_end", TIMESTAMP, nullable=False),
    *(pa.field(m, pa.int64() if m in _COUNTS else pa.uint64(), nullable=False)
      for m in ADDITIVE),
    pa.field("remote_addrs", pa.int64(), nullable=False),
    pa.field("remote_asns", pa.int64(), nullable=False),
    pa.field("peak_rate_in_bps", pa.float64(), nullable=False),
    pa.field("peak_rate_out_bps", pa.float64(), nullable=False),
    pa.field("hours_above_rate", pa.int64(), nullable=False),
    pa.field("max_transfer_duration_s", pa.float64(), nullable=False),
])

#: Per remote country: the same spans, bytes and distinct remote addresses.
COUNTRIES_SCHEMA = pa.schema([
    pa.field("tenant", pa.string(), nullable=False),
    pa.field("span", pa.string(), nullable=False),
    pa.field("window_start", TIMESTAMP, nullable=False),
    pa.field("window_end", TIMESTAMP, nullable=False),
    pa.field("country", pa.string(), nullable=False),
    pa.field("bytes_in", pa.uint64(), nullable=False),
    pa.field("bytes_out", pa.uint64(), nullable=False),
    pa.field("remote_addrs", pa.int64(), nullable=False),
])



@dataclass(frozen=True, slots=True, kw_only=True)
class WindowParams:
    """Parameters of the aggregation.

    ``evidence_per_day`` is how many of its largest transfers of each kind (network, object
    write, drive, copy) each tenant keeps per day.
    ``registrations`` maps tenant ids to registration times (start of ``cumulative``).
    ``memory_limit`` (DuckDB syntax, e.g. ``"3GB"``) and ``temp_directory`` bound memory:
    DuckDB spills to the directory beyond the limit. At the end of a run, the memory the
    compiled sketches and held cells free is added to the limit for the roll-up.
    ``exact_distinct``: count distinct remote addresses and ASNs exactly, from every
    remote end per tenant and hour (memory and time grow with them); by default they are
    counted by sketches, exact up to 768 values per window and within about 1.6 %
    (standard error) beyond (:mod:`egress.windows_network`). ``distinct_late_hours``:
    how far behind the latest transfer start the sketches of an hour stay open (then
    their counts are final; a transfer arriving later for that time may count an address
    twice); more keeps more memory.
    """

    sustained_rate_bps: float = 1e9
    evidence_per_day: int = 10
    concern_countries: tuple[str, ...] = ()
    registrations: Mapping[str, datetime] = field(default_factory=dict)
    memory_limit: str | None = None
    temp_directory: str | None = None
    exact_distinct: bool = False
    distinct_late_hours: int = 6


@dataclass(frozen=True, slots=True)
class WindowTables:
    """The aggregation's result: :data:`WINDOWS_SCHEMA`, :data:`COUNTRIES_SCHEMA` and
    :data:`EVIDENCE_SCHEMA` tables."""

    windows: pa.Table
    countries: pa.Table
    evidence: pa.Table
