"""Plain-text lines of a run report (what the CLI prints on stderr)."""

from __future__ import annotations

from egress.records import Issue


def issue_line(issue: Issue) -> str:
    """``malformed 3 in conn.log (first at byte 812): detail``."""
    return (f"{issue.kind} {issue.count:,} in {issue.path}"
            + (f" (first at byte {issue.first_offset})" if issue.first_offset is not None else "")
            + (f": {issue.detail}" if issue.detail else ""))


def human_bytes(n: float) -> str:
    """``1234567`` -> ``1.2 MB`` (decimal units)."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} PB"
