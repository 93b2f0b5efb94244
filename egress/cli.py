"""The egress command line; the only module that talks to the terminal.

Exit codes: 0 done; 1 an input could not be read (its flows are still written);
2 usage or configuration error.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TextIO

import click

from egress import __version__
from egress.cli_analyze import analyze_command
from egress.cli_deliver import deliver_command
from egress.cli_explain import explain_command
from egress.cli_sidecar import sidecar_command
from egress.cli_signatures import signatures
from egress.errors import EgressError, SourceError
from egress.formats.insights import render_insights
from egress.formats.parquet import FlowParquetWriter, write_records_parquet
from egress.formats.records_json import record_json_line
from egress.formats.report import human_bytes, issue_line
from egress.formats.zeek_conn import conn_footer, conn_header, conn_line, json_line
from egress.pipeline import expand_inputs
from egress.records import Flow, Issue, ReadStats
from egress.sources.deep import inspect_flows
from egress.sources.pcap import CaptureReader, FlowOptions
from egress.sources.registry import ReadOptions, detect, group_by_kind, input_kinds


class Progress:
    """Report reading progress on stderr, at most every ``interval_s`` seconds.

    Quiet for inputs that take less than one interval, so short runs print only
    the closing line.
    """

    def __init__(self, stream: TextIO, *, interval_s: float = 2.0) -> None:
        self._stream = stream
        self._interval = interval_s
        self._started = time.monotonic()
        self._last = self._started
        self._tty = stream.isatty()
        self._shown = False

    def __call__(self, path: Path, done: int, total: int | None) -> None:
        now = time.monotonic()
        if now - self._last < self._interval:
            return
        self._last = now
        rate = done / max(now - self._started, 1e-9)
        share = f" ({100 * done / total:.0f}%)" if total else ""
        msg = f"{path.name}: {human_bytes(done)}{share} read, {human_bytes(rate)}/s"
        self._stream.write(("\r" + msg + "\033[K") if self._tty else msg + "\n")
        self._stream.flush()
        self._shown = True

    def finish(self) -> None:
        if self._shown and self._tty:
            self._stream.write("\n")


def summary_line(stats: ReadStats, *, elapsed_s: float) -> str:
    """The closing line: packets, flows, bytes and what was skipped, and where."""
    parts = [
        f"{stats.packets:,} packets",
        f"{stats.flows:,} flows",
        f"{human_bytes(stats.ip_bytes)} at the IP layer",
    ]
    if stats.interim_records:
        parts.append(f"{stats.interim_records:,} interim records")
    text = "egress: " + ", ".join(parts) + f" in {elapsed_s:.1f} s"
    if stats.issues:
        details = "; ".join(
            f"{i.kind} {i.count:,} in {i.path}"
            + (f" (first at byte {i.first_offset})" if i.first_offset is not None else "")
            for i in stats.issues
        )
        text += f"\negress: skipped or not counted: {details}"
    return text


@contextmanager
def _text_out(out: Path | None) -> Iterator[IO[str]]:
    if out is None:
        yield sys.stdout
        return
    with out.open("w", encoding="utf-8") as fh:
        yield fh


def _write_flows(flows: Iterator[Flow], fmt: str, out: Path | None) -> None:
    if fmt == "parquet":
        if out is None:
            raise click.UsageError("--format parquet needs --out FILE")
        with FlowParquetWriter(out) as writer:
            writer.write(flows)
        return
    with _text_out(out) as fh:
        if fmt == "conn":
            fh.write(conn_header(opened=datetime.now(UTC)))
            for flow in flows:
                fh.write(conn_line(flow))
            fh.write(conn_footer(closed=datetime.now(UTC)))
        else:
            for flow in flows:
                fh.write(json_line(flow))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="egress")
def cli() -> None:
    """egress: find bulk data arrivals at GPU clouds and attribute them to tenants."""


@cli.command()
@click.argument("captures", nargs=-1, required=True,
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["conn", "json", "parquet"]), default="conn",
              show_default=True, help="conn: Zeek conn.log TSV; json: Zeek-style JSON lines.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write here instead of stdout (required for parquet).")
@click.option("--interim", "interim_s", type=click.FloatRange(min=0, min_open=True),
              help="Also emit running totals of open flows every N seconds of capture time.")
@click.option("--tcp-timeout", type=click.FloatRange(min=0, min_open=True), default=300.0,
              show_default=True, help="TCP inactivity timeout, seconds.")
@click.option("--udp-timeout", type=click.FloatRange(min=0, min_open=True), default=60.0,
              show_default=True, help="UDP inactivity timeout, seconds.")
@click.option("--icmp-timeout", type=click.FloatRange(min=0, min_open=True), default=60.0,
              show_default=True, help="ICMP inactivity timeout, seconds.")
@click.option("--strict", is_flag=True, help="Stop at the first unreadable capture.")
@click.option("--quiet", "-q", is_flag=True, help="No progress and no closing line.")
def flows(captures: tuple[Path, ...], fmt: str, out: Path | None, interim_s: float | None,
          tcp_timeout: float, udp_timeout: float, icmp_timeout: float, strict: bool,
          quiet: bool) -> None:
    """Turn CAPTURES (pcap, pcapng, gzip) into Zeek-compatible flows.

    Several captures are read in order as one continuous capture. Packet and
    IP byte counts follow Zeek's conn.log (IP total lengths, so snaplen-cut
    captures still give the wire volume); checksums are not verified, as with
    `zeek -C`.
    """
    options = FlowOptions(tcp_timeout_s=tcp_timeout, udp_timeout_s=udp_timeout,
                          icmp_timeout_s=icmp_timeout, interim_interval_s=interim_s)
    progress = Progress(sys.stderr)
    reader = CaptureReader(options=options, progress=None if quiet else progress, strict=strict)
    started = time.monotonic()
    _write_flows(reader.read(captures), fmt, out)
    progress.finish()
    if not quiet:
        click.echo(summary_line(reader.stats, elapsed_s=time.monotonic() - started), err=True)
    for error in reader.errors:
        click.echo(f"egress: error: {error}", err=True)
    if reader.errors:
        sys.exit(1)


@cli.command()
@click.argument("capture", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--top", type=click.IntRange(min=1), default=10, show_default=True,
              help="How many of the largest flows (by IP bytes) to look into.")
@click.option("--tshark", "tshark_path", type=click.Path(dir_okay=False),
              help="Path of the tshark executable (default: the one on PATH).")
def inspect(capture: Path, top: int, tshark_path: str | None) -> None:
    """Look into the largest flows of CAPTURE with tshark (through pyshark).

    Reports what helps judge a bulk transfer: TLS server names and certificate
    subjects, HTTP requests with their Content-Length (object-store PUTs), and
    SMB2/NFS write volume. Only the chosen flows are dissected.
    """
    reader = CaptureReader(strict=True)
    all_flows = [f for f in reader.read([capture]) if not f.interim]
    insights = inspect_flows(capture, all_flows, top=top, tshark_path=tshark_path)
    click.echo(render_insights(insights), nl=False)


@cli.command()
@click.argument("inputs", nargs=-1, required=True,
                type=click.Path(exists=True, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["jsonl", "parquet"]), default="jsonl",
              show_default=True, help="jsonl: one JSON object per record.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write here instead of stdout (required for parquet).")
@click.option("--station", help="Ingest station of dmesg dumps and copy logs.")
@click.option("--boot-time", type=click.DateTime(["%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S%z"]),
              help="Boot time (UTC unless an offset is given) to date dmesg lines.")
@click.option("--quiet", "-q", is_flag=True, help="No report on stderr.")
def read(inputs: tuple[Path, ...], fmt: str, out: Path | None, station: str | None,
         boot_time: datetime | None, quiet: bool) -> None:
    """Show what egress understands of INPUTS (files or directories): their detected type and
    normalized records.

    Any input egress reads: captures, Zeek conn/long-connection/ssl/http logs,
    object-store access logs (S3, MinIO, Ceph RGW),
    kernel and udev logs of drives, rsync/rclone copy logs. The report on stderr
    gives each file's type, the records read and every skipped or doubtful line
    with its position.
    """
    if fmt == "parquet" and out is None:
        raise click.UsageError("--format parquet needs --out FILE")
    kinds = input_kinds()
    if boot_time is not None and boot_time.tzinfo is None:
        boot_time = boot_time.replace(tzinfo=UTC)
    options = ReadOptions(station=station, boot_time=boot_time)
    files, left_out = expand_inputs(list(inputs))
    detected = [detect(path, kinds) for path in files]
    report: list[str] = [f"{d.path}: {d.kind} ({d.format})" for d in detected]
    report += [f"{p}: left out (not an input: notes, inventory or geo data)" for p in left_out]
    counts: dict[str, int] = {}
    issues: list[Issue] = []
    errors: list[SourceError] = []

    def records() -> Iterator[object]:
        for kind, group in group_by_kind(detected).items():
            reader = kinds[kind].reader(options)
            n = 0
            try:
                for record in reader.read([d.path for d in group]):
                    n += 1
                    yield record
            finally:
                counts[kind] = n
                issues.extend(kinds[kind].issues(reader))
                errors.extend(getattr(reader, "errors", []))

    if fmt == "jsonl":
        with _text_out(out) as fh:
            for record in records():
                fh.write(record_json_line(record))
    else:
        assert out is not None
        written = write_records_parquet(records(), out)
        report.extend(f"wrote {p}" for p in written)
    if not quiet:
        report.extend(f"{kind}: {n:,} records" for kind, n in counts.items())
        report.extend(f"skipped or doubtful: {issue_line(i)}" for i in issues)
        click.echo("\n".join("egress: " + line for line in report), err=True)
    for error in errors:
        click.echo(f"egress: error: {error}", err=True)
    if errors:
        sys.exit(1)


cli.add_command(signatures)
cli.add_command(analyze_command)
cli.add_command(explain_command)
cli.add_command(deliver_command)
cli.add_command(sidecar_command)


def main() -> None:
    """Console-script entry point: map egress errors to exit codes, never a traceback."""
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except EgressError as exc:
        click.echo(f"egress: error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except BrokenPipeError:
        # the reader of our output went away (| head): not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
    except KeyboardInterrupt:
        sys.exit(130)
