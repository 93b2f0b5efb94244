"""Wiring only: inputs -> records -> attribution -> windows -> signatures -> findings.

:func:`run_windows` detects each input's kind, reads it with its source, attributes every
record to a tenant with the inventory (and geo data when given), streams the transfers into
a :class:`~egress.windows.WindowAggregator` and returns the windows with the counts a run
report needs. Zeek conn and long-connection logs stay columnar end to end; captures,
object-store, drive and copy logs are attributed record by record.

Sensor de-duplication (the same connection reported by two sensors counted once: same
Community ID, or same 5-tuple and start within a second) applies to captures and to Zeek
conn logs: each directory is one sensor, and de-duplication is on when captures or conn
logs come from more than one directory (``dedupe`` forces it on or off). Zeek logs of
several sensors are read interleaved by rotated-file name (see :func:`_zeek_order`), so give
rotated archives, not one whole-period file per sensor: a connection is remembered for
:data:`ZEEK_DEDUP_HORIZON_S` of log time.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from egress.attribution import AttributionStats, Attributor
from egress.columns import DELTA_COLUMNS
from egress.errors import SourceError
from egress.findings import (
    Case,
    Finding,
    build_cases,
    build_findings,
    unlisted_drive_findings,
)
from egress.geo import GeoLookup
from egress.inventory import Inventory
from egress.quality import DedupStats, SensorDeduplicator
from egress.records import Attributed, DriveAttach, Flow, Issue
from egress.signatures.compile import Signature
from egress.signatures.evaluate import evaluate
from egress.signatures.match import Match
from egress.sources.registry import Detected, ReadOptions, detect, group_by_kind, input_kinds
from egress.sources.zeek import ZeekLogReader, detect_zeek_log
from egress.sources.zeek_files import CONN_LOGS, LONG_CONN_LOGS
from egress.transfers import transfer_batches
from egress.windows import WindowAggregator, WindowParams, WindowTables
from egress.windows_conn import conn_network

#: The conn columns the windows read: attribution, the numeric transfers and their evidence,
#: quality marks and sensor de-duplication. The reader does not parse the others (service,
#: state, history, tunnels, VLANs: about an eighth of its time).
WINDOW_CONN_COLUMNS: tuple[str, ...] | None = (
    "ts", "uid", "orig_h", "orig_p", "resp_h", "resp_p", "proto", "duration_s", "orig_bytes",
    "resp_bytes", "missed_bytes", "orig_pkts", "orig_ip_bytes", "resp_pkts", "resp_ip_bytes",
    "community_id", "vni", "interim", *DELTA_COLUMNS, "delta_since", "line",
)
#: Of those, the ones only sensor de-duplication reads (the five-tuple beside the
#: addresses): left unparsed when there is no de-duplication (about 8 % of the reading).
DEDUP_CONN_COLUMNS = ("orig_p", "resp_p", "proto")
#: How the window run reads conn logs: chunks of 16 MB, each one batch (about 110,000
#: records), 6 parsed ahead. Every batch costs the attribution, the transfer columns and
#: the reduction a fixed amount besides its rows; half as many batches as the reader's
#: defaults make (8 MB chunks, batches of at most 65,536 rows) took 1-2 s less of a 47 s
#: run of 100 M records, for about the same memory in flight (96 MB of chunks, not 64).
CONN_READ = {"chunk_bytes": 16 << 20, "batch_rows": 1 << 18, "read_ahead": 6}
Progress = Callable[[str, int], None]
"""Called now and then with the kind being read and the records read so far."""
#: Files a directory input may hold that are not inputs (the inventory, geo data, notes).
NOT_INPUTS = frozenset({".yaml", ".yml", ".md", ".json", ".csv", ".tsv", ".mmdb", ".txt"})


@dataclass(frozen=True, slots=True, kw_only=True)
class RunOptions:
    """What a run needs besides its inputs, inventory and geo data."""

    read: ReadOptions = field(default_factory=ReadOptions)
    windows: WindowParams = field(default_factory=WindowParams)
    dedupe: bool | None = None
    """``None``: de-duplicate captures when they come from more than one directory."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RunResult:
    """Windows and what the run saw: inputs, record counts, issues, attribution."""

    tables: WindowTables
    inputs: tuple[Detected, ...]
    records: dict[str, int]
    issues: tuple[Issue, ...]
    errors: tuple[SourceError, ...]
    attribution: AttributionStats
    dedup: DedupStats | None
    unlisted_drives: tuple[DriveAttach, ...]
    ignored: tuple[Path, ...]
    """Inputs recognized but not used for windows (e.g. Zeek logs other than conn)."""


def run_windows(
    inputs: Sequence[Path],
    inventory: Inventory,
    geo: GeoLookup | None = None,
    options: RunOptions | None = None,
    *,
    progress: Progress | None = None,
) -> RunResult:
    """Read, attribute and aggregate ``inputs`` (files; see the module doc).

    Raises :class:`~egress.errors.SourceError` when an input is of no known kind or cannot
    be opened; malformed content inside a file is counted in the result's ``issues``.
    """
    options = options or RunOptions()
    kinds = input_kinds()
    detected = tuple(detect(path, kinds) for path in inputs)
    attributor = Attributor(inventory, geo)
    registrations = {t.id: t.registered for t in inventory.tenants}
    params = WindowParams(
        sustained_rate_bps=options.windows.sustained_rate_bps,
        concern_countries=options.windows.concern_countries or inventory.concern_countries,
        registrations={**registrations, **options.windows.registrations},
        evidence_per_day=options.windows.evidence_per_day,
        memory_limit=options.windows.memory_limit,
        temp_directory=options.windows.temp_directory,
    )
    aggregator = WindowAggregator(params)
    counts: Counter[str] = Counter()
    issues: list[Issue] = []
    errors: list[SourceError] = []
    unlisted: list[DriveAttach] = []
    ignored: list[Path] = []
    dedup: SensorDeduplicator | None = None
    report = progress or (lambda kind, n: None)
    try:
        for kind, group in group_by_kind(detected).items():
            paths = [d.path for d in group]
            if kind == "zeek":
                conn = [p for p in paths if detect_zeek_log(p) in CONN_LOGS]
                ignored.extend(p for p in paths if p not in conn)
                zeek_dedup = (SensorDeduplicator(horizon_s=ZEEK_DEDUP_HORIZON_S)
                              if _dedupe(options.dedupe, conn) else None)
                dedup = zeek_dedup or dedup
                reader = ZeekLogReader(columns=_conn_columns(dedupe=zeek_dedup is not None),
                                       **CONN_READ)
                for path in _zeek_order(conn):
                    sensor = str(path.resolve().parent)
                    for batch in reader.read_conn([path]):
                        counts[kind] += batch.num_rows
                        kept = (batch if zeek_dedup is None
                                else deduped_conn_batch(batch, zeek_dedup, sensor))
                        aggregator.add_conn(conn_network(kept, attributor.solve_batch(kept)))
                        report(kind, counts[kind])
                issues.extend(reader.stats.issues)
                continue
            sensors = _sensors(paths) if kind == "capture" and _dedupe(
                options.dedupe, paths) else {"": paths}
            if kind == "capture" and (len(sensors) > 1 or options.dedupe):
                dedup = SensorDeduplicator(horizon_s=float("inf"))
            for sensor, sensor_paths in sensors.items():
                source = kinds[kind].reader(options.read)
                records: Iterator[object] = iter(source.read(sensor_paths))
                if dedup is not None and kind == "capture":
                    records = _deduped(records, dedup, sensor)
                try:
                    for batch in transfer_batches(
                            _attributed(records, attributor, unlisted, counts, kind, report)):
                        aggregator.add(batch)
                finally:
                    issues.extend(kinds[kind].issues(source))
                    errors.extend(getattr(source, "errors", []))
    except BaseException:
        aggregator.close()
        raise
    return RunResult(
        tables=aggregator.result(), inputs=detected, records=dict(counts),
        issues=tuple(issues), errors=tuple(errors), attribution=attributor.stats(),
        dedup=None if dedup is None else dedup.stats(), unlisted_drives=tuple(unlisted),
        ignored=tuple(ignored),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Analysis:
    """A whole run: the windows and run counts, the signature hits, findings and cases."""

    run: RunResult
    matches: tuple[Match, ...]
    findings: tuple[Finding, ...]
    cases: tuple[Case, ...]


def analyze(
    inputs: Sequence[Path],
    inventory: Inventory,
    signatures: Sequence[Signature],
    geo: GeoLookup | None = None,
    options: RunOptions | None = None,
    *,
    progress: Progress | None = None,
) -> Analysis:
    """:func:`run_windows`, then every signature over the windows, then findings and cases."""
    run = run_windows(inputs, inventory, geo, options, progress=progress)
    matches = tuple(evaluate(signatures, run.tables.windows, inventory,
                             countries=run.tables.countries))
    findings = (*build_findings(matches, signatures, inventory, run.tables.evidence),
                *unlisted_drive_findings(run.unlisted_drives))
    return Analysis(run=run, matches=matches, findings=findings,
                    cases=tuple(build_cases(findings, inventory)))


def expand_inputs(paths: Sequence[Path]) -> tuple[list[Path], list[Path]]:
    """Files to read, and files of the given directories that are left out.

    A file named explicitly is always read (detection reports what it is not). A directory
    is walked in name order; files with the suffixes of :data:`NOT_INPUTS` (the inventory,
    geo data, notes kept beside the logs) and hidden files are left out.
    """
    files: list[Path] = []
    skipped: list[Path] = []
    for path in paths:
        if not path.is_dir():
            files.append(path)
            continue
        for found in sorted(p for p in path.rglob("*") if p.is_file()):
            hidden = any(part.startswith(".") for part in found.relative_to(path).parts)
            if hidden or found.suffix.lower() in NOT_INPUTS:
                skipped.append(found)
            else:
                files.append(found)
    return files, skipped


def _conn_columns(*, dedupe: bool) -> tuple[str, ...] | None:
    """The conn columns to parse (None: all): :data:`WINDOW_CONN_COLUMNS`, without
    :data:`DEDUP_CONN_COLUMNS` unless the sensors' copies are de-duplicated."""
    if WINDOW_CONN_COLUMNS is None or dedupe:
        return WINDOW_CONN_COLUMNS
    return tuple(c for c in WINDOW_CONN_COLUMNS if c not in DEDUP_CONN_COLUMNS)


def _dedupe(setting: bool | None, paths: Sequence[Path]) -> bool:
    if setting is not None:
        return setting
    return len(_sensors(paths)) > 1


#: How long a connection is remembered for matching another sensor's copy (log time).
ZEEK_DEDUP_HORIZON_S = 86_400.0


def _zeek_order(conn: Sequence[Path]) -> list[Path]:
    """Long-connection logs first (a connection's final conn.log record then adds only what
    its interim records did not); then by file name, then sensor, so that the rotated
    archives of several sensors (``conn.10:00:00-11:00:00.log.gz``) alternate hour by hour
    and each sensor's copy of a connection is met within the de-duplication horizon."""
    return sorted(conn, key=lambda p: (detect_zeek_log(p) not in LONG_CONN_LOGS, p.name,
                                       str(p.resolve().parent)))


def deduped_conn_batch(batch: pa.RecordBatch, dedup: SensorDeduplicator,
                   sensor: str) -> pa.RecordBatch:
    """The rows of a conn batch that no other sensor reported first."""
    cols = {name: batch.column(name).to_pylist() for name in (
        "community_id", "orig_h", "orig_p", "resp_h", "resp_p", "proto", "ts", "vni")}
    keep = [
        ts is None or orig is None or resp is None or not dedup.seen(
            cid or None, (orig, o_port or 0, resp, r_port or 0, proto or ""), ts, sensor,
            vni=vni)
        for cid, orig, o_port, resp, r_port, proto, ts, vni in zip(
            cols["community_id"], cols["orig_h"], cols["orig_p"], cols["resp_h"],
            cols["resp_p"], cols["proto"], cols["ts"], cols["vni"], strict=True)
    ]
    return batch if all(keep) else batch.filter(pa.array(keep, pa.bool_()))


def _sensors(paths: Sequence[Path]) -> dict[str, list[Path]]:
    """Captures by directory: each directory holds one sensor's captures."""
    groups: dict[str, list[Path]] = {}
    for path in paths:
        groups.setdefault(str(path.resolve().parent), []).append(path)
    return groups


def _deduped(records: Iterable[object], dedup: SensorDeduplicator,
             sensor: str) -> Iterator[object]:
    """Drop the flows another sensor already reported (sensors are read one after the
    other, so the de-duplicator never forgets: memory grows with the captures' flows)."""
    for record in records:
        if isinstance(record, Flow):
            five = (record.orig_h, record.orig_p, record.resp_h, record.resp_p, record.proto)
            if dedup.seen(record.community_id or None, five, record.start, sensor,
                          vni=record.vni):
                continue
        yield record


def _attributed(records: Iterable[object], attributor: Attributor,
                unlisted: list[DriveAttach], counts: Counter[str], kind: str,
                report: Progress) -> Iterator[Attributed]:
    for record in records:
        item = attributor.attribute(record)  # type: ignore[arg-type]
        counts[kind] += 1
        if counts[kind] % 100_000 == 0:
            report(kind, counts[kind])
        if item.how == "unlisted_drive" and isinstance(item.record, DriveAttach):
            unlisted.append(item.record)
        yield item
