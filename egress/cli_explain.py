"""``egress explain``: why an alert fired, from the findings file ``egress analyze`` wrote."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from egress.errors import ConfigError
from egress.findings import SEVERITY_ORDER
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
            if isinstance(item, dict) and "event" in item and "egress" in item:
                item = _from_ecs(item)
            if not isinstance(item, dict) or "metrics" not in item:
                raise ConfigError(f"{path}:{number}: not an egress finding (native JSON or "
                                  "ECS as egress analyze writes them)")
            out.append(item)
    return out


def _from_ecs(doc: dict[str, Any]) -> dict[str, Any]:
    """An ECS alert of :mod:`egress.formats.ecs` in the shape :func:`explain_lines` reads."""
    event, rule, extra = doc["event"], doc.get("rule", {}), doc["egress"]
    return {
        "id": event.get("id"), "title": rule.get("name"), "signature_id": rule.get("id"),
        "signature_version": rule.get("version"),
        "severity": SEVERITY_ORDER[int(event.get("severity", 1)) - 1],
        "signature_severity": extra.get("signature_severity"),
        "risk_score": int(event.get("risk_score") or 0),
        "attack": list(doc.get("threat", {}).get("technique", {}).get("id", [])),
        "tenant": doc.get("cloud", {}).get("account", {}).get("id"),
        "tenant_name": extra.get("tenant_name"), "span": extra.get("span"),
        "window_start": event.get("start"), "window_end": event.get("end"),
        "message": doc.get("message"),
        "metrics": [{"kind": "number", "threshold_name": None, **m}
                    for m in extra.get("metrics", [])],
        "facts": [{"step": "", "detail": None, **f} for f in extra.get("facts", [])],
        "steps": [{"span": None, "detail": None, **s} for s in extra.get("steps", [])],
        "risk_factors": [{"reason": None, **r} for r in extra.get("risk_factors", [])],
        "countries": extra.get("countries", []),
        "transfers": [{"remote_addr": None, "where": None, "ref": None, "quality": False, **t}
                      for t in extra.get("transfers", [])],
        "suppressed": extra.get("suppressed", 0),
    }
