"""Scheduler allocations (Slurm jobs, Kubernetes pods) added to an inventory's tenants.

The adapters (:mod:`egress.allocations_slurm`, :mod:`egress.allocations_k8s`) read what the
scheduler ran; :func:`with_allocations` merges it into the inventory as allocation spans.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime
from math import inf

from egress.errors import ConfigError
from egress.inventory import Allocation, Inventory, ScheduledAllocation, _ts, build_inventory
from egress.inventory_model import MAX_ERRORS_SHOWN, Parsed, config_error
from egress.records import Issue
from egress.yaml_lines import FieldPath


def _steps(jobs: list[Allocation]) -> list[Allocation]:
    """Jobs of one cluster and GPU model as spans of constant concurrent GPUs, in time order."""
    deltas: dict[datetime, int] = defaultdict(int)
    for job in jobs:
        deltas[job.valid_from] += job.gpus
        if job.valid_until is not None:
            deltas[job.valid_until] -= job.gpus
    steps: list[Allocation] = []
    level, start = 0, jobs[0].valid_from
    for moment in sorted(deltas):
        new = level + deltas[moment]
        if new == level:
            continue
        if level > 0:
            steps.append(replace(jobs[0], gpus=level, valid_from=start, valid_until=moment))
        level, start = new, moment
    if level > 0:
        steps.append(replace(jobs[0], gpus=level, valid_from=start, valid_until=None))
    return steps


def _overlap(a: Allocation, b: Allocation) -> bool:
    a_end, b_end = _ts(a.valid_until, default=inf), _ts(b.valid_until, default=inf)
    return a.valid_from.timestamp() < b_end and b.valid_from.timestamp() < a_end


def with_allocations(
    parsed: Parsed, scheduled: Iterable[ScheduledAllocation], *, skip_unknown: bool = False
) -> tuple[Inventory, tuple[Issue, ...]]:
    """Build the inventory with scheduler allocations (Slurm jobs, pods) added to its tenants.

    The jobs of a tenant on one cluster and GPU model become one Allocation per
    span of constant concurrent GPUs, so :meth:`Inventory.gpus_allocated` at any
    moment is the sum of the GPUs its running jobs hold (open-ended while one runs).
    A job given twice (overlapping exports) counts once, with the latest end seen,
    and is reported as a ``duplicate_job`` issue. Raises ConfigError when a job
    names a tenant the inventory lacks (listing the names; with ``skip_unknown``
    they are counted as ``unknown_tenant`` issues instead), or overlaps an
    allocation the inventory itself gives the tenant on
    the same cluster: counting both would count those GPUs twice.
    """
    model, locate = parsed
    inventory = build_inventory(model, locate)
    position = {tenant.id: i for i, tenant in enumerate(inventory.tenants)}
    groups: dict[tuple[str, str, str], list[Allocation]] = defaultdict(list)
    unknown: dict[str, list[ScheduledAllocation]] = defaultdict(list)
    twice: dict[tuple[int, int], list[ScheduledAllocation]] = defaultdict(list)
    latest: dict[tuple[str, str, str], ScheduledAllocation] = {}
    duplicates: list[ScheduledAllocation] = []
    for item in scheduled:
        key = (item.allocation.cluster, item.job, item.allocation.gpu_model or "")
        seen = latest.get(key)
        if seen is not None:
            duplicates.append(item)
            # a job seen running in one export and finished in a later one: keep the end
            if _ts(item.allocation.valid_until, default=-inf) <= _ts(
                seen.allocation.valid_until, default=-inf
            ):
                continue
        latest[key] = item
    for item in latest.values():
        job = item.allocation
        i = position.get(item.tenant_id)
        if i is None:
            unknown[item.tenant_id].append(item)
            continue
        for j, static in enumerate(inventory.tenants[i].allocations):
            if static.cluster == job.cluster and _overlap(static, job):
                twice[(i, j)].append(item)
        groups[(item.tenant_id, job.cluster, job.gpu_model or "")].append(job)
    if twice:
        problems: list[tuple[FieldPath, str]] = [
            (
                ("tenants", i, "allocations", j),
                f"cluster {items[0].allocation.cluster!r} is also given by "
                f"{len(items)} scheduler job(s), first {items[0].job} at {items[0].source}; "
                "give a tenant's GPUs on a cluster in one place",
            )
            for (i, j), items in sorted(twice.items())
        ]
        raise config_error(problems, locate)
    listed = [
        f"{name!r} ({len(items)} jobs, first {items[0].source})"
        for name, items in sorted(unknown.items())
    ]
    if unknown and not skip_unknown:
        more = len(listed) - MAX_ERRORS_SHOWN
        raise ConfigError(
            f"scheduler allocations for {len(unknown)} accounts that are not tenants: "
            + ", ".join(listed[:MAX_ERRORS_SHOWN])
            + (f" and {more} more" if more > 0 else "")
            + "; map them to tenant ids or skip them"
        )
    issues = tuple(
        Issue(path=items[0].path, kind="unknown_tenant", count=len(items), detail=text)
        for text, items in zip(listed, (unknown[name] for name in sorted(unknown)), strict=True)
    )
    if duplicates:
        issues += (
            Issue(
                path=duplicates[0].path,
                kind="duplicate_job",
                count=len(duplicates),
                detail=f"job {duplicates[0].job} again at {duplicates[0].source}",
            ),
        )
    added: dict[str, list[Allocation]] = defaultdict(list)
    for (tenant_id, _, _), jobs in sorted(groups.items()):
        added[tenant_id] += _steps(jobs)
    tenants = tuple(
        replace(t, allocations=t.allocations + tuple(added[t.id])) if t.id in added else t
        for t in inventory.tenants
    )
    return replace(inventory, tenants=tenants), issues
