"""The sidecar loop: follow the inputs, keep the transfers, evaluate, spool new alerts.

One :meth:`Sidecar.tick`:

1. reload the inventory if its file changed, the signatures if :meth:`Sidecar.request_reload`
   was called (SIGHUP) and they load (a bad set keeps the old one and logs why);
2. take what the journal and packet commands printed (:mod:`egress.sidecar.inputs`), then
   poll every input (:mod:`egress.sidecar.follow`; webhook entries and journal lines are
   in files of the state directory by then); read the new Zeek conn and
   long-connection lines with the Zeek reader (one per input, its long-connection totals
   kept in the checkpoint), and read files of the other kinds again in whole when they
   changed (their readers correlate lines: a drive attachment, an rsync run); attribute;
3. store the new transfers as segments and commit them with the new file marks in one
   checkpoint (:mod:`egress.sidecar.state`);
4. add the new segments to the :class:`~egress.windows.WindowAggregator` kept across ticks
   and take a snapshot of the windows of the tenants with new transfers
   (:meth:`Sidecar.windows`), evaluate the signatures over them and build the findings
   exactly as ``egress analyze`` does (the other tenants keep their findings: their windows
   did not change), and spool the findings whose ids were never spooled
   (:class:`~egress.sidecar.state.AlertLedger`);
5. drain the spool to the sinks.

The windows are those of ``egress analyze`` over the retained lines: the accumulators are
sums, maxima and distinct sets, whatever order and grouping the transfers arrive in. A
tick's cost follows the new transfers plus the snapshot, whose cost follows tenants x time
cells of the tenants in it; after a start (or an inventory reload, or retention dropping a
segment) the aggregator is built again from the retained segments and every tenant is
evaluated. An alert is raised once per finding id, with the figures of the tick that first
found it.
"""

from __future__ import annotations

import logging
import os
import pickle
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from egress.attribution import Attributor
from egress.columns import META_PATH
from egress.errors import EgressError, SinkError, SourceError
from egress.findings import Case, Finding, build_cases, build_findings, unlisted_drive_findings
from egress.formats.alerts import FORMATS
from egress.geo import GeoLookup, load_geo
from egress.inventory import load_inventory
from egress.pipeline import ZEEK_DEDUP_HORIZON_S, deduped_conn_batch, expand_inputs
from egress.quality import SensorDeduplicator
from egress.records import Attributed, DriveAttach
from egress.sidecar.config import InputConfig, JournalConfig, SidecarConfig
from egress.sidecar.follow import Chunk, Follower
from egress.sidecar.http import Metrics
from egress.sidecar.inputs import LiveInputs
from egress.sidecar.state import AlertLedger, Checkpoint, StateDirectory
from egress.sidecar.webhook import chunk_records
from egress.signatures.compile import Signature
from egress.signatures.evaluate import evaluate
from egress.signatures.load import load_signatures, shipped_directory
from egress.sinks.alert import Alert, Transport
from egress.sinks.delivery import Backoff, Delivery
from egress.sinks.registry import SinkSpec, open_sink, parse_sink
from egress.sinks.spool import Spool
from egress.sources.registry import ReadOptions, input_kinds
from egress.sources.zeek import ZeekLogReader
from egress.sources.zeek_files import CONN_LOGS, log_files
from egress.transfers import TRANSFERS_SCHEMA, conn_transfers, transfer_batches
from egress.windows import WindowAggregator, WindowParams, WindowTables

log = logging.getLogger(__name__)

FAILPOINTS = ("segments", "commit", "enqueue")
_DAY_US = 86_400_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
"""Where ``failpoint`` kills the process (tests of crash safety): after the segments of
a tick are written, after its checkpoint is committed, after its alerts are enqueued."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TickReport:
    """What one tick did."""

    tick: int
    records: dict[str, int]
    transfers: int
    findings: int
    new_alerts: tuple[str, ...]
    evaluated: bool


class Sidecar:
    """The service over one config (module doc). Not thread-safe: one loop drives it."""

    def __init__(self, config: SidecarConfig, *, clock: Callable[[], float] = time.time,
                 failpoint: str | None = None) -> None:
        """Open the state directory and the spool, load inventory, geo and signatures.

        ``failpoint`` is ``point:n`` (a :data:`FAILPOINTS` name): SIGKILL this process the
        ``n``-th time that point is reached. Raises :class:`~egress.errors.EgressError`
        for a bad inventory, geo file, signature set, sink URL or state directory.
        """
        self.config = config
        self._clock = clock
        self._failpoint = _parse_failpoint(failpoint)
        self._reached: Counter[str] = Counter()
        self.metrics = Metrics(clock=clock)
        self._geo: GeoLookup | None = load_geo(list(config.geo)) if config.geo else None
        self._inventory_mtime = _mtime(config.inventory)
        self.inventory = load_inventory(config.inventory)
        self._attributor = Attributor(self.inventory, self._geo)
        self.signatures = self._load_signatures()
        self._reload = threading.Event()
        self._specs: list[SinkSpec] = [parse_sink(url) for url in config.sinks]
        for spec in self._specs:
            if spec.format not in FORMATS:
                raise EgressError(f"sink {spec.name}: unknown format {spec.format!r} "
                                  f"(known: {', '.join(FORMATS)})")
        # The state directory is locked once everything else has loaded.
        self.state = StateDirectory(config.state_directory)
        self.checkpoint = self.state.load()
        config.spool_path.parent.mkdir(parents=True, exist_ok=True)
        self.spool = Spool(config.spool_path)
        for spec in self._specs:
            self.spool.register(spec.name, format=spec.format)
        self._transports: dict[str, Transport] = {}
        self.ledger = AlertLedger.open(config.state_directory / "alerted.json")
        self.ledger.recover(self.spool.event_ids())
        try:
            self.live = LiveInputs(config, self.metrics)
        except BaseException:
            self.spool.close()
            self.state.close()
            raise
        self._followers = {i.name: self.live.follower(i.name) or self._follower(i)
                           for i in config.inputs}
        self._readers: dict[str, ZeekLogReader] = {
            name: pickle.loads(blob) for name, blob in self.checkpoint.readers.items()}
        sensors = [i for i in config.inputs if isinstance(i, InputConfig) and i.kind == "zeek"]
        self._sensors = len(sensors) > 1  # the same connection from two sensors counts once
        self._dedup = self._deduplicator()
        self._evaluate_next = True  # always evaluate once after a start
        self._aggregator: WindowAggregator | None = None
        self._aggregator_params: WindowParams | None = None
        self._aggregated: set[str] = set()
        self._expired: set[str] = set()  # segments retention dropped since the last snapshot
        self._matched: dict[str, tuple[Finding, ...]] = {}  # per tenant, at the last snapshot
        self._snapshot_full = True
        self._written: dict[str, pa.Table] = {}  # segments stored by this process, not added
        self.last_findings: tuple[Finding, ...] = ()
        now = clock()
        for i in config.inputs:
            self.metrics.caught_up_at.setdefault(i.name, now)
        self.live.start(self.checkpoint.marks)

    # -- reloading ------------------------------------------------------------------------

    def request_reload(self) -> None:
        """Reload the signatures at the start of the next tick (SIGHUP)."""
        self._reload.set()

    def _load_signatures(self) -> tuple[Signature, ...]:
        sigs = self.config.signatures
        return load_signatures(sigs.directory or shipped_directory(), overrides=sigs.overrides)

    def _reload_if_asked(self) -> None:
        if self._reload.is_set():
            self._reload.clear()
            try:
                self.signatures = self._load_signatures()
            except EgressError as exc:
                log.error("signatures not reloaded, the old set is kept: %s", exc)
            else:
                log.info("signatures reloaded: %d", len(self.signatures))
                self._evaluate_next = True
        mtime = _mtime(self.config.inventory)
        if mtime != self._inventory_mtime:
            self._inventory_mtime = mtime
            try:
                inventory = load_inventory(self.config.inventory)
            except EgressError as exc:
                log.error("inventory not reloaded, the old one is kept: %s", exc)
            else:
                self.inventory = inventory
                self._attributor = Attributor(inventory, self._geo)
                self._evaluate_next = True
                log.info("inventory reloaded: %d tenants", len(inventory.tenants))

    # -- the tick -------------------------------------------------------------------------

    def tick(self) -> TickReport:
        """Read, store, evaluate, spool and deliver once (module doc)."""
        started = time.perf_counter()
        self._reload_if_asked()
        checkpoint = self.checkpoint
        new = Checkpoint(tick=checkpoint.tick + 1, marks=dict(checkpoint.marks),
                         segments=dict(checkpoint.segments), readers=dict(checkpoint.readers),
                         unlisted=dict(checkpoint.unlisted), issues=dict(checkpoint.issues),
                         horizon_us=checkpoint.horizon_us)
        dropped: list[str] = []
        records: Counter[str] = Counter()
        self._pump(new, records)
        for spec in self.config.inputs:
            polled = self._followers[spec.name].poll(checkpoint.marks.get(spec.name, {}))
            for chunk in polled.chunks:
                if chunk.whole:
                    kind = spec.kind if isinstance(spec, InputConfig) else "drives"
                    station = spec.station if isinstance(spec, InputConfig | JournalConfig) \
                        else None
                    dropped += self._read_whole(spec.name, kind, station, chunk, new, records)
                elif spec.kind == "minio_webhook":
                    self._read_audit(spec.name, chunk, new, records)
                else:
                    self._read_zeek(spec.name, chunk, new, records)
            if spec.name in self._readers:
                new.readers[spec.name] = pickle.dumps(self._readers[spec.name])
            new.marks[spec.name] = polled.marks
            if not polled.waiting:
                self.metrics.caught_up_at[spec.name] = self._clock()
        if self._dedup is not None:
            new.dedup = pickle.dumps(self._dedup, protocol=pickle.HIGHEST_PROTOCOL)
        dropped += self._retain(new)
        self._reach("segments")
        self.state.commit(new, dropped=dropped)
        self.checkpoint = new
        self._reach("commit")
        self.live.discard_read(new.marks)
        changed = bool(records) or bool(dropped) or self._evaluate_next
        new_ids: tuple[str, ...] = ()
        if changed:
            everything, self._evaluate_next = self._evaluate_next, False
            findings, cases = self._findings(everything=everything)
            self.last_findings = findings
            new_ids = self._spool(findings, cases)
        self._deliver()
        elapsed = time.perf_counter() - started
        rows = sum(s.rows for s in new.segments.values())
        with self.metrics.lock:
            for name, n in records.items():
                self.metrics.records[name] += n
            self.metrics.malformed = self._malformed(new)
            self.metrics.transfers = rows
            self.metrics.spool_depth = self.spool.stats().rows
            self.metrics.ticks += 1
            self.metrics.last_tick_s = elapsed
            self.metrics.last_tick_at = self._clock()
        return TickReport(tick=new.tick, records=dict(records), transfers=rows,
                          findings=len(self.last_findings), new_alerts=new_ids,
                          evaluated=changed)

    def _read_zeek(self, name: str, chunk: Chunk, new: Checkpoint,
                   records: Counter[str]) -> None:
        reader = self._readers.setdefault(name, ZeekLogReader())
        tables: list[pa.Table] = []
        unattributed = 0
        for batch in _zeek_batches(reader, chunk, self.state.scratch):
            records[name] += batch.num_rows
            kept = batch if self._dedup is None else deduped_conn_batch(batch, self._dedup, name)
            attributed = self._attributor.attribute_batch(kept)
            unattributed += attributed.column("tenant").null_count
            tables.append(conn_transfers(attributed))
        self._count_unattributed(name, unattributed)
        self._store(tables, owner="", new=new)

    def _pump(self, new: Checkpoint, records: Counter[str]) -> None:
        """Take what the journal and packet commands gave since the last tick."""
        for journal in self.live.journals.values():
            journal.pump()
        for name, packets in self.live.packets.items():
            flows = packets.pump()
            self.metrics.caught_up_at[name] = self._clock()
            if not flows:
                continue
            records[name] += len(flows)
            items = [self._attributor.attribute(f) for f in flows]
            self._count_unattributed(name, sum(1 for i in items if i.tenant is None))
            self._store([packets.increments.table(items)], owner="", new=new)
            new.issues[f"{name}/streams"] = sum(i.count for i in packets.issues)

    def _read_audit(self, name: str, chunk: Chunk, new: Checkpoint,
                    records: Counter[str]) -> None:
        """New lines of a webhook input's file: its records, attributed and stored."""
        found, issues = chunk_records(chunk, self.state.scratch)
        records[name] += len(found)
        items = [self._attributor.attribute(r) for r in found]
        self._count_unattributed(name, sum(1 for i in items if i.tenant is None))
        key = f"{name}/lines"
        new.issues[key] = new.issues.get(key, 0) + sum(
            i.count for i in issues if i.kind != "upload_size_unknown")
        self._store([pa.Table.from_batches(list(transfer_batches(items)),
                                           schema=TRANSFERS_SCHEMA)], owner="", new=new)

    def _read_whole(self, name: str, kind: str, station: str | None, chunk: Chunk,
                    new: Checkpoint, records: Counter[str]) -> list[str]:
        """Read a changed file again in whole; its segment replaces the previous one."""
        owner = f"{name}/{chunk.identity}/{chunk.generation}"
        kinds = input_kinds()
        source = kinds[kind].reader(ReadOptions(station=station))
        unlisted: list[DriveAttach] = []
        items: list[Attributed] = []
        try:
            for record in source.read([chunk.path]):
                item = self._attributor.attribute(record)  # type: ignore[arg-type]
                if item.how == "unlisted_drive" and isinstance(item.record, DriveAttach):
                    unlisted.append(item.record)
                items.append(item)
        except SourceError as exc:
            log.error("%s: not read: %s", name, exc)
            return []
        previous = [s.name for s in new.segments.values() if s.owner == owner]
        for seg in previous:
            del new.segments[seg]
        records[name] += len(items)
        self._count_unattributed(name, sum(1 for i in items if i.tenant is None))
        new.unlisted[owner] = tuple(unlisted)
        new.issues[owner] = sum(i.count for i in kinds[kind].issues(source))
        self._store([pa.Table.from_batches(list(transfer_batches(items)),
                                           schema=TRANSFERS_SCHEMA)], owner=owner, new=new)
        return previous

    def _store(self, tables: Sequence[pa.Table], *, owner: str, new: Checkpoint) -> None:
        table = pa.concat_tables(tables) if tables else TRANSFERS_SCHEMA.empty_table()
        if table.num_rows == 0 and not owner:
            return
        newest = pc.max(table.column("end")).cast(pa.int64()).as_py() if table.num_rows else None
        segment = self.state.write_segment(table, owner=owner, newest_end_us=newest)
        new.segments[segment.name] = segment
        self._written[segment.name] = table  # the aggregator takes it without reading it back

    def _retain(self, new: Checkpoint) -> list[str]:
        """Drop the segments wholly older than ``retention_days`` behind the newest end,
        and move the horizon of the windows to the retention's (windows before it are
        forgotten: a dropped segment's transfers end before it)."""
        days = self.config.retention_days
        ends = [s.newest_end_us for s in new.segments.values() if s.newest_end_us is not None]
        if days is None or not ends:
            return []
        cutoff = max(ends) - int(days * 86_400e6)
        horizon = -(-cutoff // _DAY_US) * _DAY_US
        if new.horizon_us is None or horizon > new.horizon_us:
            new.horizon_us = horizon
        old = [s for s in new.segments.values()
               if s.newest_end_us is not None and s.newest_end_us < cutoff]
        for seg in old:
            del new.segments[seg.name]
        self._expired.update(s.name for s in old)
        return [s.name for s in old]

    def _count_unattributed(self, name: str, n: int) -> None:
        if n:
            with self.metrics.lock:
                self.metrics.unattributed[name] += n

    def _malformed(self, checkpoint: Checkpoint) -> dict[str, int]:
        out: dict[str, int] = {i.name: 0 for i in self.config.inputs}
        for name, reader in self._readers.items():
            out[name] = out.get(name, 0) + reader.stats.skipped
        for owner, n in checkpoint.issues.items():
            name = owner.split("/", 1)[0]
            out[name] = out.get(name, 0) + n
        return out

    # -- windows, findings, alerts --------------------------------------------------------

    def window_params(self) -> WindowParams:
        """The window parameters, completed from the inventory as ``egress analyze`` does."""
        w = self.config.windows
        return WindowParams(
            sustained_rate_bps=w.sustained_rate_bps, evidence_per_day=w.evidence_per_day,
            concern_countries=self.inventory.concern_countries,
            registrations={t.id: t.registered for t in self.inventory.tenants},
            memory_limit=w.memory_limit)

    def windows(self, *, changed_only: bool = False) -> WindowTables:
        """The windows of every retained transfer after the retention horizon, kept
        incrementally: one aggregator lives across ticks and takes each new segment once;
        segments dropped by retention are forgotten with the windows before the horizon
        (:meth:`~egress.windows.WindowAggregator.forget_before`). It is built again from
        the retained segments after a start, when the window parameters change (inventory
        reload) or when a segment it holds was replaced (a whole file read again).
        ``changed_only``: only the tenants with new transfers since the last call (all
        tenants when the aggregator was built again or the horizon moved)."""
        params = self.window_params()
        segments = self.checkpoint.segments
        gone = self._aggregated - segments.keys()
        if (self._aggregator is None or params != self._aggregator_params
                or not gone <= self._expired):
            self._drop_aggregator()
            self._aggregator = WindowAggregator(params)
            self._aggregator_params = params
            changed_only = False
        self._aggregated -= gone
        self._expired.clear()
        try:
            for name in segments:
                if name not in self._aggregated:
                    table = self._written.pop(name, None)
                    self._aggregator.add(self.state.segment(name) if table is None else table)
                    self._aggregated.add(name)
            self._written.clear()
            horizon = self.checkpoint.horizon_us
            if horizon is not None and self._aggregator.forget_before(
                    _EPOCH + timedelta(microseconds=horizon)):
                changed_only = False  # every tenant's older windows are gone
            self._snapshot_full = not changed_only
            return self._aggregator.snapshot(changed_only=changed_only)
        except BaseException:
            self._drop_aggregator()
            raise

    def _drop_aggregator(self) -> None:
        if self._aggregator is not None:
            self._aggregator.close()
        self._aggregator, self._aggregator_params = None, None
        self._aggregated = set()

    def _findings(self, *, everything: bool) -> tuple[tuple[Finding, ...], dict[str, Case]]:
        """Evaluate the signatures over the windows of the tenants with new transfers
        (``everything``: of all tenants; after a start or a reload); the other tenants'
        findings are those of their last evaluation, as their windows did not change."""
        tables = self.windows(changed_only=not everything)
        matches = tuple(evaluate(self.signatures, tables.windows, self.inventory,
                                 countries=tables.countries))
        fresh: dict[str, list[Finding]] = {}
        for finding in build_findings(matches, self.signatures, self.inventory,
                                      tables.evidence):
            fresh.setdefault(finding.tenant, []).append(finding)
        if self._snapshot_full:
            self._matched = {}
        for tenant in set(tables.windows.column("tenant").to_pylist()):
            self._matched.pop(tenant, None)
        self._matched.update({tenant: tuple(items) for tenant, items in fresh.items()})
        drives = [d for ds in self.checkpoint.unlisted.values() for d in ds]
        findings = (*(f for items in self._matched.values() for f in items),
                    *unlisted_drive_findings(drives))
        cases = build_cases(findings, self.inventory)
        return findings, {fid: case for case in cases for fid in case.findings}

    def _spool(self, findings: Sequence[Finding], case_of: dict[str, Case]) -> tuple[str, ...]:
        fresh = [f for f in findings if f.id not in self.ledger.sent]
        fresh = list({f.id: f for f in fresh}.values())
        if not fresh:
            return ()
        self.ledger.pending = {f.id for f in fresh}
        self.ledger.save()
        raised = self._clock()
        alerts = [Alert(event_id=f.id, payload=FORMATS[name](f, case_of.get(f.id)).encode(),
                        format=name, severity=f.severity, time_s=raised)
                  for name in dict.fromkeys(s.format for s in self._specs) for f in fresh]
        if alerts:
            self.spool.enqueue(alerts)
        self._reach("enqueue")
        self.ledger.sent |= self.ledger.pending
        self.ledger.pending = set()
        self.ledger.save()
        with self.metrics.lock:
            for f in fresh:
                self.metrics.alerts[f.severity] += 1
        log.info("%d new alert(s) spooled", len(fresh))
        return tuple(f.id for f in fresh)

    def _deliver(self) -> None:
        for spec in self._specs:
            transport = self._transports.get(spec.name)
            if transport is None:
                transport = self._transports[spec.name] = open_sink(spec)
            delivery = Delivery(self.spool, spec.name, transport, format=spec.format,
                                backoff=Backoff(cap_s=2.0, give_up_s=5.0))
            try:
                delivery.drain()
            except SinkError as exc:
                log.warning("%s: delivery left for a later tick: %s", spec.name, exc)
                transport.close()
                del self._transports[spec.name]

    # -- running --------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Tick every ``interval_s`` until ``stop`` is set; a tick under way finishes first,
        then (with journal or packets inputs) :meth:`drain` stores what the commands gave
        until they stopped.

        A tick that fails with an :class:`~egress.errors.EgressError` or an ``OSError``
        (disk full) is logged and counted; the next tick starts from the last checkpoint.
        """
        while not stop.is_set():
            began = time.monotonic()
            try:
                report = self.tick()
                if report.new_alerts:
                    log.info("tick %d: %d new alert(s)", report.tick, len(report.new_alerts))
            except (EgressError, OSError) as exc:
                log.error("tick failed, retried from the last checkpoint: %s", exc)
                with self.metrics.lock:
                    self.metrics.tick_errors += 1
                self._recover()
            stop.wait(max(0.0, self.config.interval_s - (time.monotonic() - began)))
        if self.live.journals or self.live.packets:
            self.drain()

    def drain(self) -> TickReport | None:
        """Stop the journal and packet commands, then store what they gave in a last tick
        (flows still open get their final records); ``None`` when that tick failed."""
        self.live.retire_commands()
        try:
            return self.tick()
        except (EgressError, OSError) as exc:
            log.error("last tick failed; the next start goes on from the last checkpoint: "
                      "%s", exc)
            return None

    def _deduplicator(self) -> SensorDeduplicator | None:
        """With two or more Zeek inputs (sensors), the de-duplicator ``egress analyze``
        applies to conn logs from several directories, as of the checkpoint."""
        if not self._sensors:
            return None
        blob = getattr(self.checkpoint, "dedup", None)  # absent from older checkpoints
        if blob is None:
            return SensorDeduplicator(horizon_s=ZEEK_DEDUP_HORIZON_S)
        dedup = pickle.loads(blob)
        assert isinstance(dedup, SensorDeduplicator)
        return dedup

    def _recover(self) -> None:
        self.checkpoint = self.state.load()
        self._readers = {n: pickle.loads(b) for n, b in self.checkpoint.readers.items()}
        self._dedup = self._deduplicator()
        self.live.recover(self.checkpoint.marks)
        self.ledger.recover(self.spool.event_ids())
        self._evaluate_next = True

    def close(self) -> None:
        """Stop the inputs' endpoints and commands; close the sinks and the spool."""
        self.live.close()
        for transport in self._transports.values():
            transport.close()
        self._transports.clear()
        self._drop_aggregator()
        self.spool.close()
        self.state.close()

    # -- inputs ---------------------------------------------------------------------------

    def _follower(self, spec: object) -> Follower:
        assert isinstance(spec, InputConfig)
        kind, path = spec.kind, spec.path
        if kind == "zeek":
            # A missing input is no error: the sensor may not have written it yet.
            return Follower(lambda: log_files(path, CONN_LOGS) if path.is_dir()
                            else [path] if path.exists() else [])
        detect = input_kinds()[kind].detect

        def files() -> list[Path]:
            # A directory may hold other logs too: only files of this kind are followed.
            found = expand_inputs([path])[0] if path.exists() else []
            return [p for p in found if _detected(detect, p)]

        return Follower(files, whole_file=True)

    def _reach(self, point: str) -> None:
        self._reached[point] += 1
        if self._failpoint is not None and self._failpoint == (point, self._reached[point]):
            log.warning("failpoint %s:%d reached: killing this process", *self._failpoint)
            os.kill(os.getpid(), signal.SIGKILL)


def _zeek_batches(reader: ZeekLogReader, chunk: Chunk, scratch: Path) -> Iterator[pa.RecordBatch]:
    """Conn batches of a chunk, with the file's own path and line numbers.

    The chunk (after its header) is written to a scratch file of the original's name (the
    name tells ``conn`` from ``conn_long`` in JSON logs) and read with ``reader``, whose
    long-connection state goes on from the chunks before.
    """
    name = chunk.path.name.removesuffix(".gz")
    scratch_file = scratch / name
    scratch_file.write_bytes(chunk.header + chunk.data)
    shift = chunk.first_line - 1 - chunk.header.count(b"\n")
    try:
        for batch in reader.read_conn([scratch_file]):
            yield _relocated(batch, chunk.path, shift)
    except SourceError as exc:
        log.error("%s: not read: %s", chunk.path, exc)
    finally:
        scratch_file.unlink(missing_ok=True)


def _relocated(batch: pa.RecordBatch, path: Path, shift: int) -> pa.RecordBatch:
    meta = dict(batch.schema.metadata or {})
    meta[META_PATH] = str(path).encode()
    index = batch.schema.get_field_index("line")
    arrays = list(batch.columns)
    if shift:
        arrays[index] = pc.add(arrays[index], shift).cast(batch.schema.field(index).type)
    return pa.RecordBatch.from_arrays(arrays, schema=batch.schema.with_metadata(meta))


def _detected(detect: Callable[[Path], str | None], path: Path) -> bool:
    try:
        return detect(path) is not None
    except (OSError, SourceError):
        return False


def _mtime(path: Path) -> int | None:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return None


def _parse_failpoint(text: str | None) -> tuple[str, int] | None:
    if not text:
        return None
    point, _, n = text.partition(":")
    if point not in FAILPOINTS or not (n or "1").isdigit():
        raise ValueError(f"failpoint must be one of {', '.join(FAILPOINTS)} with :n, "
                         f"got {text!r}")
    return point, int(n or "1")


def run_with_signals(sidecar: Sidecar) -> None:
    """Run until SIGTERM or SIGINT (the tick under way finishes and is checkpointed);
    SIGHUP reloads the signatures. Call from the main thread."""
    stop = threading.Event()

    def on_stop(signum: int, frame: object) -> None:
        log.info("signal %d: stopping after this tick", signum)
        stop.set()

    def on_hup(signum: int, frame: object) -> None:
        log.info("SIGHUP: signatures reload at the next tick")
        sidecar.request_reload()

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    signal.signal(signal.SIGHUP, on_hup)
    sidecar.run(stop)



