"""``egress deliver``: drain a spool to its sinks on demand and report the counts."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from egress.errors import EgressError, SinkError
from egress.sinks.delivery import Backoff, Delivery
from egress.sinks.registry import SinkSpec, open_sink, parse_sink
from egress.sinks.spool import Spool


@click.command("deliver")
@click.option("--spool", "spool_path", required=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The spool file (SQLite) to drain.")
@click.option("--sink", "sink_urls", multiple=True, required=True, metavar="URL",
              help="A sink URL (repeatable), e.g. syslog+tls://host:6514?ca=ca.pem&format=cef.")
@click.option("--batch-size", default=1000, show_default=True, type=click.IntRange(1, 100_000),
              help="Alerts per send.")
@click.option("--give-up-after", default=60.0, show_default=True, type=click.FloatRange(0),
              help="Seconds one batch is retried before the sink is left for later.")
@click.option("--max-delay", default=30.0, show_default=True, type=click.FloatRange(0),
              help="Longest wait between retries, in seconds.")
def deliver_command(spool_path: Path, sink_urls: tuple[str, ...], batch_size: int,
                    give_up_after: float, max_delay: float) -> None:
    """Deliver the alerts held in the spool to every --sink, then report what was done.

    Each sink has its own cursor: an alert is sent to a sink once its format's alerts
    reach it and is removed when every sink of that format has it. Alerts a sink cannot
    take now stay in the spool (exit code 1); refused alerts are kept as dead letters.
    Secrets never go in a URL: HEC tokens come from token_env= or token_file=.
    """
    specs: list[SinkSpec] = [parse_sink(url) for url in sink_urls]
    backoff = Backoff(cap_s=max_delay, give_up_s=give_up_after)
    with Spool(spool_path) as spool:
        worst = drain_report(spool, spool_path, specs, backoff=backoff, batch_size=batch_size)
    if worst:
        sys.exit(worst)


def drain_report(spool: Spool, spool_path: Path, specs: list[SinkSpec], *, backoff: Backoff,
                 batch_size: int) -> int:
    """Drain ``spool`` to every sink, reporting on stderr; return the worst exit code."""
    worst = 0
    # Every cursor first: an alert is deleted once the registered sinks all have it.
    for spec in specs:
        spool.register(spec.name, format=spec.format)
    for spec in specs:
        transport = open_sink(spec)
        delivery = Delivery(spool, spec.name, transport, format=spec.format,
                            batch_size=batch_size, backoff=backoff)
        error: EgressError | None = None
        try:
            delivery.drain()
        except SinkError as exc:
            error = exc
        finally:
            transport.close()
        stats = delivery.stats
        left = spool.stats().pending.get(spec.name, 0)
        click.echo(f"egress: {spec.name}: {stats.delivered:,} delivered, "
                   f"{stats.rejected:,} refused (dead letters), {stats.retries:,} retries, "
                   f"{left:,} left in the spool", err=True)
        if error is not None:
            click.echo(f"egress: error: {error}", err=True)
            worst = max(worst, error.exit_code)
    held = spool.stats()
    click.echo(f"egress: spool {spool_path}: {held.rows:,} alerts "
               f"({held.bytes:,} bytes) held, {held.dead_letters:,} dead letters, "
               f"{held.full_alarms:,} spool-full alarms", err=True)
    return worst
