"""``egress sidecar``: continuous detection from followed logs (see egress/sidecar/README.md)."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import NoReturn

import click

from egress.errors import ConfigError, EgressError
from egress.sidecar.config import listen_address, load_config
from egress.sidecar.http import MetricsServer
from egress.sidecar.service import Sidecar, run_with_signals

log = logging.getLogger(__name__)

#: Environment variable naming a failpoint (``point:n``) for crash tests; never set it in use.
FAILPOINT_ENV = "EGRESS_SIDECAR_FAILPOINT"


@click.command("sidecar")
@click.option("--config", "config_path", required=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The sidecar's YAML config (see examples/sidecar.yaml).")
@click.option("--once", is_flag=True, help="Run one tick and exit (cron, checks).")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"]))
def sidecar_command(config_path: Path, once: bool, log_level: str) -> None:
    """Follow the configured logs and raise alerts while transfers are under way.

    Each tick reads the new lines of every input, keeps the attributed transfers in the
    state directory, evaluates the signatures over the windows and spools the alerts not
    raised before, then delivers them to the sinks. SIGTERM or SIGINT: finish the tick,
    checkpoint, exit 0. SIGHUP: reload the signatures (a bad set keeps the old one). The
    inventory is reloaded when its file changes. /healthz and /metrics are served on the
    configured loopback address.
    """
    logging.basicConfig(level=log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = load_config(config_path)
        sidecar = Sidecar(config, failpoint=os.environ.get(FAILPOINT_ENV))
    except EgressError as exc:
        _fail(exc)
    except ValueError as exc:  # a bad failpoint
        _fail(ConfigError(str(exc)))
    server: MetricsServer | None = None
    try:
        if once:
            report = sidecar.tick()
            click.echo(f"tick {report.tick}: {sum(report.records.values())} records, "
                       f"{report.transfers} transfers retained, {report.findings} findings, "
                       f"{len(report.new_alerts)} new alert(s)", err=True)
            return
        if config.listen is not None:
            host, port = listen_address(config.listen)
            server = MetricsServer(sidecar.metrics, host, port,
                                   stale_after_s=max(60.0, 3 * config.interval_s))
            server.start()
            log.info("serving /healthz and /metrics on %s:%d", *server.address)
        run_with_signals(sidecar)
    finally:
        if server is not None:
            server.close()
        sidecar.close()


def _fail(error: EgressError) -> NoReturn:
    """Report ``error`` as ``egress analyze`` does (no traceback) and exit with its code."""
    click.echo(f"egress: error: {error}", err=True)
    sys.exit(error.exit_code)
