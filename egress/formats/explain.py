"""Why an alert fired, in plain words: the text of ``egress explain``.

Works on the native JSON form of a finding (:mod:`egress.formats.findings_json`), so an
analyst can explain an alert from the file ``egress analyze`` wrote, without rerunning it.
"""

from __future__ import annotations

from typing import Any

from egress.signatures.units import format_bytes, format_value


def _when(text: str | None) -> str:
    """``2026-05-14T16:42:09.825616Z`` -> ``2026-05-14 16:42:09 UTC``."""
    return "-" if not text else text.replace("T", " ")[:19] + " UTC"


def _fact_value(fact: dict[str, Any]) -> str:
    value = fact["value"]
    if value is None:
        return "unset"
    if fact["fact"] == "tenant.age" and isinstance(value, int | float):
        return f"{value / 86_400:.1f} days"
    return str(value)


def explain_lines(finding: dict[str, Any]) -> list[str]:
    """The explanation of one finding, line by line."""
    lines = [
        f"Alert {finding['id']}: {finding['title']} "
        f"({finding['signature_id']} v{finding['signature_version']})",
        f"Severity {finding['severity']} (signature: {finding.get('signature_severity', '-')}),"
        f" risk {finding['risk_score']} of 100; ATT&CK {', '.join(finding['attack']) or '-'}",
        f"Tenant {finding['tenant']}" + (f" ({finding['tenant_name']})"
                                         if finding.get("tenant_name") else "")
        + f"; {finding['span']} window {_when(finding['window_start'])} to "
        f"{_when(finding['window_end'])}",
        f"What happened: {finding['message']}",
        "Why it fired (each test: value against threshold):",
    ]
    for m in finding["metrics"]:
        value = format_value(m["kind"], m["value"])
        name = f" (threshold {m['threshold_name']})" if m.get("threshold_name") else ""
        lines.append(f"  [{'held' if m['held'] else 'not held'}] step {m['step']}: "
                     f"{m['metric']} = {value} {m['op']} {m['threshold_text']}{name}")
    facts = [f for f in finding["facts"] if f["step"] != "risk"]
    if facts:
        lines.append("Tenant context at the time:")
        lines += [f"  [{'held' if f['held'] else 'not held'}] {f['test']}: "
                  f"{_fact_value(f)}" + (f" ({f['detail']})" if f.get("detail") else "")
                  for f in facts]
    if finding["steps"]:
        lines.append("Sequence, earliest first:")
        lines += [f"  {n}. {s['name']} ({s['kind']}"
                  + (f", {s['span']} window" if s.get("span") else "")
                  + f") {_when(s['start'])}" + (f": {s['detail']}" if s.get("detail") else "")
                  for n, s in enumerate(finding["steps"], 1)]
    lines.append("Risk score, factor by factor:")
    lines += [f"  {r['points']:+d} {r['name']}" + (f": {r['reason']}" if r.get("reason") else "")
              for r in finding["risk_factors"]]
    if finding["countries"]:
        lines.append("Remote countries of the window:")
        lines += [f"  {c['country']}: {format_bytes(c['bytes_in'])} in, "
                  f"{format_bytes(c['bytes_out'])} out, {c['remote_addrs']:,} addresses"
                  for c in finding["countries"]]
    if finding["transfers"]:
        lines.append("Evidence records (largest transfers of the window):")
        lines += [f"  {t['where'] or '(capture)'}  {t['kind']} {t['ref'] or ''}  "
                  f"{format_bytes(t['bytes_in'])} in, {format_bytes(t['bytes_out'])} out, "
                  f"{_when(t['start'])} to {_when(t['end'])}"
                  + (f", remote {t['remote_addr']}" if t.get("remote_addr") else "")
                  + (" [data-quality mark]" if t.get("quality") else "")
                  for t in finding["transfers"]]
    if finding.get("suppressed"):
        lines.append(f"{finding['suppressed']} later hit(s) with the same dedup key were folded "
                     "into this alert.")
    return lines
