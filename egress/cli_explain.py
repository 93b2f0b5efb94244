"""``egress explain``: why an alert fired, from the findings file ``egress analyze`` wrote."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from egress.errors import ConfigError
from egress.formats.explain import explain_lines


@click.command("explain")
@click.argument("alert_id")
@click.option("--alerts", "alerts_path", required=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Findings as written by egress analyze (JSON lines).")
def explain_command(alert_id: str, alerts_path: Path) -> None:
    """Print in plain words why alert ALERT_ID (its id, or a unique prefix) fired."""
    matches = [f for f in _findings(alerts_path) if str(f.get("id", "")).startswith(alert_id)]
    if not matches:
        raise ConfigError(f"{alerts_path}: no alert with id {alert_id!r}")
    if len(matches) > 1:
        raise ConfigError(f"{alerts_path}: {len(matches)} alerts have ids starting with "
                          f"{alert_id!r}; give more of the id")
    click.echo("\n".join(explain_lines(matches[0])))


def _findings(path: Path) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{path}:{number}: not a JSON line ({exc.msg})") from None
            if not isinstance(item, dict) or "metrics" not in item:
                raise ConfigError(f"{path}:{number}: not an egress finding (native JSON form)")
            out.append(item)
    return out
