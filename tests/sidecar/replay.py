"""Replay of the sample scenario's logs in steps, as a live sensor and station would write them.

Zeek lines go out in the order Zeek writes them: by log time (``ts + duration``), so every
interim record of a connection (``conn_long.log``) is written before its final conn.log
record. Each step appends, to every file, its lines whose log time falls in the step (the
header with the first step, ``#close`` with the last). Kernel log and copy logs are cut
by line count; the gzip access log appears whole in the second step.
"""

from __future__ import annotations

from pathlib import Path

SCENARIO = Path(__file__).resolve().parents[2] / "samples" / "scenario"
GEO = (SCENARIO / "geo" / "dbip-country-lite.csv", SCENARIO / "geo" / "ip2asn-combined.tsv")

Step = dict[str, bytes]
"""Relative path -> bytes to append."""


def _end_time(line: bytes) -> float:
    fields = line.split(b"\t")
    duration = fields[8]
    return float(fields[0]) + (0.0 if duration == b"-" else float(duration))


def plan(steps: int) -> list[Step]:
    """The bytes each step appends to each file (module doc)."""
    out: list[Step] = [{} for _ in range(steps)]

    def add(step: int, rel: str, data: bytes) -> None:
        out[step][rel] = out[step].get(rel, b"") + data

    zeek = {rel: (SCENARIO / rel).read_bytes().splitlines(keepends=True)
            for rel in ("zeek/conn_long.log", "zeek/conn.log")}
    ends = sorted(_end_time(line) for lines in zeek.values() for line in lines
                  if not line.startswith(b"#"))
    cuts = [ends[len(ends) * (k + 1) // steps - 1] for k in range(steps)]
    for rel, lines in zeek.items():
        for line in lines:
            if line.startswith(b"#close"):
                add(steps - 1, rel, line)
            elif line.startswith(b"#"):
                add(0, rel, line)
            else:
                end = _end_time(line)
                add(next(k for k, cut in enumerate(cuts) if end <= cut), rel, line)
    storage = sorted((SCENARIO / "storage").iterdir())
    for n, path in enumerate(storage):
        rel = f"storage/{path.name}"
        if path.suffix == ".gz":
            add(min(1, steps - 1), rel, path.read_bytes())
            continue
        lines = path.read_bytes().splitlines(keepends=True)
        if path.name == "kern.log" or n % 4 == 0:  # some copy logs grow over several steps
            for k in range(steps):
                add(k, rel, b"".join(lines[len(lines) * k // steps:
                                           len(lines) * (k + 1) // steps]))
        else:
            add(n % steps, rel, b"".join(lines))
    return out


def apply(step: Step, root: Path) -> None:
    """Append one step's bytes under ``root``."""
    for rel, data in step.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("ab") as fh:
            fh.write(data)


def config_text(root: Path, *, listen: str | None = None, interval_s: float = 5.0,
                signatures: Path | None = None, inventory: Path | None = None) -> str:
    """A sidecar config following the replay under ``root`` (alerts to ``root/alerts.log``)."""
    lines = [
        f"inventory: {inventory or SCENARIO / 'inventory.yaml'}",
        f"geo: [{GEO[0]}, {GEO[1]}]",
        "inputs:",
        f"  - {{name: zeek, kind: zeek, path: {root / 'zeek'}}}",
        f"  - {{name: s3, kind: objectstore, path: {root / 'storage'}}}",
        f"  - {{name: kern, kind: drives, path: {root / 'storage' / 'kern.log'}}}",
        f"  - {{name: rsync, kind: copylog, path: {root / 'storage'}}}",
        f"sinks: ['file://{root / 'alerts.log'}?format=ecs']",
        f"state_directory: {root / 'state'}",
        f"interval_s: {interval_s}",
        f"listen: {listen or 'null'}",
    ]
    if signatures is not None:
        lines.append(f"signatures: {{directory: {signatures}}}")
    return "\n".join(lines) + "\n"
