"""GPU allocations from Slurm accounting: the output of ``sacct --parsable2``.

Ask sacct for whole jobs with the columns used here, for example::

    sacct --allusers --allocations --parsable2 --starttime 2026-05-01 \\
          --format=JobID,Account,Cluster,Partition,AllocTRES,State,Start,End > sacct.txt

``JobID``, ``Account``, ``AllocTRES``, ``Start`` and ``End`` are required; ``Cluster``
names the cluster (else pass ``cluster=``); ``State`` is optional. ``--parsable``
output (a trailing ``|``) reads the same. Job steps (``123.batch``, ``123.0``) are
skipped: their job's row already holds the GPUs. GPUs come from ``gres/gpu=N`` and
typed ``gres/gpu:TYPE=N`` entries; the type as written is the GPU model, and GPUs
without a type have no model (``None``). Start and End without a UTC offset are in
``tz`` (sacct prints the cluster's local time); ``Unknown`` or ``None`` as End means
the job still runs. Rows that never started, or hold no GPUs, are counted as
skipped; malformed rows are counted as issues with their first line, never raised.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from pathlib import Path

from egress.errors import SourceError
from egress.inventory import Allocation, ScheduledAllocation
from egress.records import Issue

REQUIRED_COLUMNS = ("JobID", "Account", "AllocTRES", "Start", "End")
_UNSET_TIMES = frozenset({"", "Unknown", "None"})
_NOT_STARTED_STATES = ("PENDING", "REQUEUED")


@dataclass(frozen=True, slots=True, kw_only=True)
class AllocationRead:
    """What an adapter read: the allocations, rows seen, rows skipped by reason, issues."""

    allocations: tuple[ScheduledAllocation, ...]
    rows: int
    skipped: Mapping[str, int]
    issues: tuple[Issue, ...]


class IssueTally:
    """Counts malformed rows by kind, keeping the first position and message of each."""

    def __init__(self, path: Path) -> None:
        self._path = str(path)
        self._found: dict[str, tuple[int, int | None, str]] = {}
        self.skipped: dict[str, int] = {}

    def issue(self, kind: str, where: str, message: str, offset: int | None = None) -> None:
        """Count one problem of ``kind`` at ``where`` (``line 7``, ``$.items[2]``)."""
        count, first_offset, detail = self._found.get(kind, (0, offset, f"{where}: {message}"))
        self._found[kind] = (count + 1, first_offset, detail)

    def skip(self, reason: str) -> None:
        """Count one usable row left out on purpose (no GPUs, not started)."""
        self.skipped[reason] = self.skipped.get(reason, 0) + 1

    def issues(self) -> tuple[Issue, ...]:
        """The issues counted so far, by kind."""
        return tuple(
            Issue(path=self._path, kind=kind, count=count, first_offset=offset, detail=detail)
            for kind, (count, offset, detail) in sorted(self._found.items())
        )


def gpus_by_model(tres: str) -> dict[str | None, int]:
    """GPUs in an AllocTRES value by type (``None``: untyped); ValueError if malformed.

    ``gres/gpu=N`` is the job's total and typed entries split it, so
    ``gres/gpu:h100=4,gres/gpu=4`` is four H100s, not eight.
    """
    typed: dict[str | None, int] = {}
    total: int | None = None
    for item in tres.split(","):
        if not item:
            continue
        key, sep, value = item.partition("=")
        if key != "gres/gpu" and not key.startswith("gres/gpu:"):
            continue  # cpu, mem, node, billing, gres/gpumem, gres/gpuutil, ...
        if not sep or not value.isdigit():
            raise ValueError(f"GPU count in {item!r} is not a whole number")
        if key == "gres/gpu":
            total = int(value)
        else:
            model = key.removeprefix("gres/gpu:")
            if not model:
                raise ValueError(f"GPU type in {item!r} is empty")
            typed[model] = typed.get(model, 0) + int(value)
    typed_sum = sum(typed.values())
    if total is not None and total < typed_sum:
        raise ValueError(f"gres/gpu={total} is less than its typed counts ({typed_sum})")
    found = {model: n for model, n in typed.items() if n > 0}
    if total is not None and total > typed_sum:
        found[None] = total - typed_sum
    return found


def _time(text: str, tz: tzinfo) -> datetime | None:
    if text in _UNSET_TIMES:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"not a time: {text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=tz)
    return moment.astimezone(UTC)


def _header(path: Path, first: bytes) -> tuple[list[str], bool]:
    try:
        names = first.decode("utf-8").rstrip("\r\n").split("|")
    except UnicodeDecodeError as exc:
        raise SourceError(f"line 1: not UTF-8 text: {exc.reason}", path=path, offset=0) from exc
    trailing = len(names) > 1 and names[-1] == ""
    if trailing:
        names.pop()
    missing = [name for name in REQUIRED_COLUMNS if name not in names]
    if missing:
        raise SourceError(
            f"line 1: not sacct --parsable2 output: the header lacks {', '.join(missing)} "
            f"(it needs {', '.join(REQUIRED_COLUMNS)}, separated by '|')",
            path=path,
            offset=0,
        )
    return names, trailing


def read_sacct(
    path: Path,
    *,
    accounts: Mapping[str, str] | None = None,
    cluster: str | None = None,
    tz: tzinfo = UTC,
) -> AllocationRead:
    """Read one ``sacct --parsable2`` file into an allocation per job and GPU type.

    ``accounts`` maps a Slurm account to a tenant id; an account it lacks is its
    own tenant id. ``cluster`` names the cluster for rows without a ``Cluster``
    cell. Raises SourceError when the file cannot be read, has no header with the
    required columns, or names no cluster either way.
    """
    mapping = accounts or {}
    tally = IssueTally(path)
    found: list[ScheduledAllocation] = []
    rows = 0
    try:
        with path.open("rb") as handle:
            first = handle.readline()
            if not first.strip():
                raise SourceError("empty: no sacct header", path=path, offset=0)
            names, trailing = _header(path, first)
            if "Cluster" not in names and cluster is None:
                raise SourceError(
                    "line 1: no Cluster column; give the cluster name", path=path, offset=0
                )
            offset, line_no = len(first), 1
            for raw in handle:
                line_no += 1
                where, at = f"line {line_no}", offset
                offset += len(raw)
                try:
                    line = raw.decode("utf-8").rstrip("\r\n")
                except UnicodeDecodeError:
                    tally.issue("malformed", where, "not UTF-8 text", at)
                    continue
                if not line.strip():
                    continue
                rows += 1
                cells = line.split("|")
                if trailing and cells and cells[-1] == "":
                    cells.pop()
                if len(cells) != len(names):
                    message = f"{len(cells)} fields, the header has {len(names)}"
                    tally.issue("malformed", where, message, at)
                    continue
                row = dict(zip(names, cells, strict=True))
                job = row["JobID"]
                if "." in job:
                    tally.skip("job_step")
                    continue
                if row.get("State", "").startswith(_NOT_STARTED_STATES):
                    tally.skip("not_started")
                    continue
                try:
                    start, end = _time(row["Start"], tz), _time(row["End"], tz)
                    gpus = gpus_by_model(row["AllocTRES"])
                except ValueError as exc:
                    tally.issue("malformed", where, str(exc), at)
                    continue
                if start is None:
                    tally.skip("not_started")
                    continue
                if not gpus:
                    tally.skip("no_gpus")
                    continue
                account, cluster_name = row["Account"], row.get("Cluster") or cluster
                if not account or not job:
                    tally.issue("malformed", where, "no JobID or Account", at)
                    continue
                if cluster_name is None:
                    tally.issue("malformed", where, "no Cluster", at)
                    continue
                if end is not None and end < start:
                    tally.issue("malformed", where, f"End {row['End']} is before Start", at)
                    continue
                found.extend(
                    ScheduledAllocation(
                        tenant_id=mapping.get(account, account),
                        account=account,
                        job=job,
                        path=str(path),
                        position=str(line_no),
                        allocation=Allocation(
                            cluster=cluster_name,
                            gpu_model=model,
                            gpus=count,
                            valid_from=start,
                            valid_until=end,
                        ),
                    )
                    for model, count in gpus.items()
                )
    except OSError as exc:
        raise SourceError(f"cannot read sacct output: {exc.strerror}", path=path) from exc
    return AllocationRead(
        allocations=tuple(found), rows=rows, skipped=dict(tally.skipped), issues=tally.issues()
    )
