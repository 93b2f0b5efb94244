"""``egress analyze``: the offline job, from inputs and an inventory to findings and cases."""

from __future__ import annotations

import os
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import click
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from egress.allocations import with_allocations
from egress.allocations_k8s import read_pods
from egress.allocations_slurm import read_sacct
from egress.cli_deliver import drain_report
from egress.errors import ConfigError
from egress.findings import SEVERITY_ORDER, Finding
from egress.formats.alerts import FORMATS
from egress.formats.findings_json import cases_json
from egress.formats.report import human_bytes, issue_line
from egress.geo import GeoLookup, load_geo
from egress.inventory import Inventory, load_inventory, read_inventory
from egress.pipeline import Analysis, RunOptions, analyze, expand_inputs
from egress.records import Issue
from egress.signatures.load import load_signatures, shipped_directory
from egress.signatures.units import parse_rate
from egress.sinks.alert import Alert
from egress.sinks.delivery import Backoff
from egress.sinks.registry import parse_sink
from egress.sinks.spool import Spool
from egress.sources.registry import ReadOptions
from egress.windows import WindowParams

_SEVERITIES = tuple(reversed(SEVERITY_ORDER))


@click.command("analyze")
@click.argument("inputs", nargs=-1, required=True,
                type=click.Path(exists=True, path_type=Path))
@click.option("--inventory", "inventory_path", required=True,
              type=click.Path(exists=True, path_type=Path),
              help="Inventory: a YAML or JSON file, or a directory of CSV tables.")
@click.option("--geo", "geo_paths", multiple=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Country/ASN data: .mmdb, DB-IP or iptoasn CSV (repeatable).")
@click.option("--slurm", "slurm_paths", multiple=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="GPU allocations from `sacct --parsable2` output (Account = tenant id).")
@click.option("--slurm-cluster", help="Cluster name when the sacct output has no Cluster.")
@click.option("--k8s-pods", "pod_paths", multiple=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="GPU allocations from `kubectl get pods -A -o json` (namespace = tenant id).")
@click.option("--k8s-cluster", default="k8s", show_default=True,
              help="Cluster name of the pods.")
@click.option("--signatures", "signatures_dir", type=click.Path(
    exists=True, file_okay=False, path_type=Path), help="Signature directory [shipped set].")
@click.option("--overrides", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Site overrides of signature thresholds (YAML).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the alerts here instead of stdout.")
@click.option("--format", "fmt", type=click.Choice(list(FORMATS)), default="ecs",
              show_default=True,
              help="Alert format: ECS JSON lines, OCSF 1.8 Detection Finding, ArcSight CEF, "
                   "Zeek notice.log, Splunk HEC events, or egress's own JSON.")
@click.option("--sink", "sink_urls", multiple=True, metavar="URL",
              help="Also deliver the alerts here, through the spool (repeatable), e.g. "
                   "syslog+tls://siem:6514?ca=ca.pem&format=cef; see egress deliver.")
@click.option("--spool", "spool_path", type=click.Path(dir_okay=False, path_type=Path),
              default=lambda: str(default_spool()), show_default="~/.local/state/egress/spool.db",
              help="Durable spool the alerts are written to before delivery.")
@click.option("--cases", "cases_out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the cases (one per tenant, with its timeline) as JSON here.")
@click.option("--windows", "windows_out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the per-tenant windows as Parquet here.")
@click.option("--sustained-rate", default="1 Gbit/s", show_default=True,
              help="Inbound rate whose hours count as hours_above_rate.")
@click.option("--dedupe/--no-dedupe", default=None,
              help="De-duplicate captures across sensors [on when they span directories].")
@click.option("--station", help="Ingest station of dmesg dumps and copy logs.")
@click.option("--boot-time", type=click.DateTime(["%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S%z"]),
              help="Boot time (UTC unless an offset is given) to date dmesg lines.")
@click.option("--fail-on", type=click.Choice(list(reversed(SEVERITY_ORDER))),
              help="Exit with status 1 when a finding is at least this severe.")
@click.option("--quiet", "-q", is_flag=True, help="No report on stderr.")
def analyze_command(inputs: tuple[Path, ...], inventory_path: Path, geo_paths: tuple[Path, ...],
                    slurm_paths: tuple[Path, ...], slurm_cluster: str | None,
                    pod_paths: tuple[Path, ...], k8s_cluster: str, signatures_dir: Path | None,
                    overrides: Path | None, out: Path | None,
                    fmt: str, sink_urls: tuple[str, ...], spool_path: Path,
                    cases_out: Path | None, windows_out: Path | None,
                    sustained_rate: str,
                    dedupe: bool | None, station: str | None, boot_time: datetime | None,
                    fail_on: str | None, quiet: bool) -> None:
    """Find bulk arrivals and the rental pattern in INPUTS (files or directories).

    Reads captures, Zeek conn and long-connection logs, object-store access logs, drive
    kernel/udev logs and copy logs; attributes every record to the tenant that held the
    address, overlay, bucket or drive at that time; aggregates per tenant over 1 h, 24 h,
    7 d and since registration; evaluates the signatures; writes the alerts (ECS JSON lines
    unless --format says otherwise) and a report on stderr. Directories are walked; their
    .yaml/.json/.csv/.md files are taken as notes, not inputs.
    """
    started = time.perf_counter()
    try:
        rate = parse_rate(sustained_rate)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--sustained-rate") from exc
    if boot_time is not None and boot_time.tzinfo is None:
        boot_time = boot_time.replace(tzinfo=UTC)
    inventory, inventory_issues = _inventory(inventory_path, slurm_paths, slurm_cluster,
                                             pod_paths, k8s_cluster)
    sigs = load_signatures(signatures_dir or shipped_directory(), overrides=overrides)
    geo: GeoLookup | None = load_geo(list(geo_paths)) if geo_paths else None
    files, left_out = expand_inputs(list(inputs))
    if not files:
        raise ConfigError("no inputs to read (directories held only notes: "
                          f"{', '.join(str(p) for p in left_out[:3])})")
    options = RunOptions(read=ReadOptions(station=station, boot_time=boot_time),
                         windows=WindowParams(sustained_rate_bps=rate), dedupe=dedupe)
    show = _Progress(enabled=not quiet)
    result = analyze(files, inventory, sigs, geo, options, progress=show)
    show.finish()
    alert = FORMATS[fmt]
    case_of = {fid: case for case in result.cases for fid in case.findings}
    stream = sys.stdout if out is None else out.open("w", encoding="utf-8")
    try:
        now = datetime.now(UTC)
        stream.write(alert.header(opened=now))
        for finding in result.findings:
            stream.write(alert(finding, case_of.get(finding.id)))
        stream.write(alert.footer(closed=now))
    finally:
        if out is not None:
            stream.close()
    if cases_out is not None:
        cases_out.write_text(cases_json(list(result.cases)), encoding="utf-8")
    if windows_out is not None:
        pq.write_table(result.run.tables.windows, windows_out)
    if not quiet:
        report = _report(result, left_out, len(sigs), time.perf_counter() - started)
        report += [f"inventory: {issue_line(i)}" for i in inventory_issues]
        click.echo("\n".join("egress: " + line for line in report), err=True)
    for error in result.run.errors:
        click.echo(f"egress: error: {error}", err=True)
    if result.run.errors:
        sys.exit(1)
    if sink_urls:
        code = _deliver(result, sink_urls, spool_path)
        if code:
            sys.exit(code)
    if fail_on is not None and any(
            SEVERITY_ORDER.index(f.severity) >= SEVERITY_ORDER.index(fail_on)
            for f in result.findings):
        sys.exit(1)


def default_spool() -> Path:
    """``$XDG_STATE_HOME/egress/spool.db`` (``~/.local/state/egress/spool.db``)."""
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "egress" / "spool.db"


def _deliver(result: Analysis, sink_urls: tuple[str, ...], spool_path: Path) -> int:
    """Spool every alert in each sink's format, then drain the spool to the sinks."""
    specs = [parse_sink(url) for url in sink_urls]
    for spec in specs:
        if spec.format not in FORMATS:
            raise ConfigError(f"sink {spec.name}: unknown format {spec.format!r} "
                              f"(known: {', '.join(FORMATS)})")
    case_of = {fid: case for case in result.cases for fid in case.findings}
    raised = time.time()
    spool_path.parent.mkdir(parents=True, exist_ok=True)
    with Spool(spool_path) as spool:
        for name in dict.fromkeys(spec.format for spec in specs):
            fmt = FORMATS[name]
            spool.enqueue(Alert(event_id=f.id, payload=fmt(f, case_of.get(f.id)).encode(),
                                format=name, severity=f.severity, time_s=raised)
                          for f in result.findings)
        return drain_report(spool, spool_path, specs, backoff=Backoff(cap_s=30.0,
                            give_up_s=60.0), batch_size=1000)


def _inventory(path: Path, slurm: tuple[Path, ...], slurm_cluster: str | None,
               pods: tuple[Path, ...], k8s_cluster: str) -> tuple[Inventory, list[Issue]]:
    """The inventory, with scheduler allocations merged in when given."""
    if not slurm and not pods:
        return load_inventory(path), []
    reads = [read_sacct(p, cluster=slurm_cluster) for p in slurm]
    reads += [read_pods(p, cluster=k8s_cluster) for p in pods]
    jobs = [a for r in reads for a in r.allocations]
    inventory, merged = with_allocations(read_inventory(path), jobs)
    return inventory, [*(i for r in reads for i in r.issues), *merged]


class _Progress:
    def __init__(self, *, enabled: bool) -> None:
        self._enabled = enabled and sys.stderr.isatty()
        self._last = 0.0
        self._shown = False

    def __call__(self, kind: str, records: int) -> None:
        now = time.monotonic()
        if not self._enabled or now - self._last < 1.0:
            return
        self._last = now
        sys.stderr.write(f"\regress: {kind}: {records:,} records read\033[K")
        sys.stderr.flush()
        self._shown = True

    def finish(self) -> None:
        if self._shown:
            sys.stderr.write("\n")


def _report(result: Analysis, left_out: list[Path], signatures: int,
            elapsed_s: float) -> list[str]:
    run = result.run
    kinds = Counter(d.kind for d in run.inputs)
    lines = [f"{len(run.inputs)} input file(s): "
             + ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items()))]
    if left_out:
        lines.append(f"left out {len(left_out)} non-input file(s) of the directories "
                     f"(e.g. {left_out[0]})")
    lines += [f"ignored (not used for windows yet): {p}" for p in run.ignored]
    lines.append("records: " + (", ".join(f"{kind} {n:,}" for kind, n in run.records.items())
                                or "none"))
    stats = run.attribution
    unattributed = sum(stats.unattributed.values())
    lines.append(f"attributed {sum(stats.attributed.values()):,}, unattributed "
                 f"{unattributed:,}" + (" (" + ", ".join(
                     f"{kind} {reason} {n:,}" for (kind, reason), n in sorted(
                         stats.reasons.items())) + ")" if stats.reasons else ""))
    if run.unlisted_drives:
        serials = ", ".join(str(d.serial) for d in run.unlisted_drives[:10])
        lines.append(f"drives attached that no media-import manifest lists: "
                     f"{len(run.unlisted_drives)} ({serials})")
    if run.dedup is not None:
        lines.append(f"sensor copies dropped: {run.dedup.duplicates:,} of "
                     f"{run.dedup.records:,} flows")
    lines += [f"skipped or doubtful: {issue_line(i)}" for i in run.issues]
    windows = run.tables.windows
    lines.append(f"{windows.num_rows:,} tenant windows; {signatures} signatures; "
                 f"{len(result.findings)} finding(s) in {len(result.cases)} case(s) "
                 f"in {elapsed_s:.1f} s")
    lines += [_severity_line(result.findings)] if result.findings else []
    for case in result.cases:
        lines.append(f"case {case.tenant} risk {case.risk_score} ({case.severity}): "
                     f"{case.summary}")
    lines += _top_tenants(windows)
    return lines


def _top_tenants(windows: pa.Table, top: int = 5) -> list[str]:
    """The tenants that received the most, with what they received and sent."""
    if windows.num_rows == 0:
        return []
    days = windows.filter(pc.equal(windows.column("span"), "24h"))
    totals = days.group_by("tenant").aggregate([
        ("bytes_in", "sum"), ("bytes_out", "sum"), ("bytes_copied", "sum"),
        ("object_put_bytes", "sum")]).sort_by([("bytes_in_sum", "descending")])
    lines = [f"network bytes in, all tenants: "
             f"{human_bytes(pc.sum(days.column('bytes_in')).as_py() or 0)}"]
    for row in totals.slice(0, top).to_pylist():
        lines.append(f"  {row['tenant']}: in {human_bytes(row['bytes_in_sum'])}, out "
                     f"{human_bytes(row['bytes_out_sum'])}, copied from drives "
                     f"{human_bytes(row['bytes_copied_sum'])}, object writes "
                     f"{human_bytes(row['object_put_bytes_sum'])}")
    return lines


def _severity_line(findings: tuple[Finding, ...]) -> str:
    counts = Counter(f.severity for f in findings)
    return "by severity: " + ", ".join(f"{s} {counts[s]}" for s in _SEVERITIES if counts[s])
