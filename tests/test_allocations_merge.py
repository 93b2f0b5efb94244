"""Scheduler allocations merged into the inventory: concurrent GPUs, unknown tenants, overlaps."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from egress.allocations import with_allocations
from egress.allocations_slurm import read_sacct
from egress.errors import ConfigError
from egress.inventory import Allocation, load_inventory, read_inventory
from egress.records import Issue

INVENTORY = """\
site: {name: kul-1, country: MY, networks: [10.0.0.0/8]}
concern_countries: [CN]
tenants:
  - id: t-0042
    name: Example AI Sdn Bhd
    registered: 2026-05-02
    country: MY
    kyc: basic
    payment: crypto
    allocations:
      - {cluster: h100-pod-1, gpu_model: H100, gpus: 64, from: 2026-05-01, until: 2026-06-01}
  - id: t-0050
    name: Other Ltd
    registered: 2026-05-02
    country: MY
    kyc: verified
    payment: invoice
"""
HEADER = "JobID|Account|Cluster|AllocTRES|State|Start|End\n"
JOBS = HEADER + (
    "1001|acme|h100-pod-3|cpu=64,gres/gpu:h100=8,gres/gpu=8|COMPLETED"
    "|2026-05-10T08:00:00|2026-05-10T20:00:00\n"
    "1002|acme|h100-pod-3|gres/gpu=4|RUNNING|2026-05-10T12:00:00|Unknown\n"
    "1010+0|acme|h100-pod-3|gres/gpu=1|COMPLETED|2026-05-10T10:00:00|2026-05-10T14:00:00\n"
    "1011|acme|h100-pod-3|gres/gpu=1|COMPLETED|2026-05-10T14:00:00|2026-05-10T16:00:00\n"
    "1012|other|h100-pod-3|gres/gpu=2|COMPLETED|2026-05-11T00:00:00|2026-05-11T01:00:00\n"
)
ACCOUNTS = {"acme": "t-0042", "other": "t-0050"}


def utc(day: int, hour: int = 0) -> datetime:
    return datetime(2026, 5, day, hour, tzinfo=UTC)


def files(tmp_path: Path, jobs: str = JOBS) -> tuple[Path, Path]:
    inventory, sacct = tmp_path / "inventory.yaml", tmp_path / "sacct.txt"
    inventory.write_text(INVENTORY, encoding="utf-8")
    sacct.write_text(jobs, encoding="utf-8")
    return inventory, sacct


def test_concurrent_jobs_sum_and_spans_coalesce(tmp_path: Path) -> None:
    inventory_path, sacct = files(tmp_path)
    jobs = read_sacct(sacct, accounts=ACCOUNTS).allocations
    inventory, issues = with_allocations(read_inventory(inventory_path), jobs)
    assert issues == ()
    assert load_inventory(inventory_path).tenant("t-0042").allocations == (
        Allocation(
            cluster="h100-pod-1", gpu_model="H100", gpus=64, valid_from=utc(1),
            valid_until=datetime(2026, 6, 1, tzinfo=UTC),
        ),
    )
    added = inventory.tenant("t-0042").allocations[1:]
    assert [(a.gpu_model, a.gpus, a.valid_from, a.valid_until) for a in added] == [
        (None, 1, utc(10, 10), utc(10, 12)),
        (None, 5, utc(10, 12), utc(10, 16)),  # 1010+0 ends as 1011 starts: still 5
        (None, 4, utc(10, 16), None),
        ("h100", 8, utc(10, 8), utc(10, 20)),
    ]
    hours = (7, 9, 11, 13, 15, 17, 21)
    at = {hour: inventory.gpus_allocated("t-0042", utc(10, hour)) for hour in hours}
    assert at == {7: 64, 9: 72, 11: 73, 13: 77, 15: 77, 17: 76, 21: 68}
    assert inventory.gpus_allocated("t-0042", datetime(2026, 7, 1, tzinfo=UTC)) == 4
    assert inventory.gpus_allocated("t-0050", utc(11)) == 2
    assert inventory.gpus_allocated("t-0050", utc(11, 1)) == 0


def test_unknown_accounts_are_an_error_or_counted(tmp_path: Path) -> None:
    inventory_path, sacct = files(tmp_path)
    jobs = read_sacct(sacct).allocations
    with pytest.raises(
        ConfigError,
        match=r"^scheduler allocations for 2 accounts that are not tenants: "
        rf"'acme' \(4 jobs, first {tmp_path}/sacct\.txt:2\), "
        rf"'other' \(1 jobs, first {tmp_path}/sacct\.txt:6\); map them to tenant ids",
    ):
        with_allocations(read_inventory(inventory_path), jobs)
    inventory, issues = with_allocations(
        read_inventory(inventory_path), read_sacct(sacct, accounts={"acme": "t-0042"}).allocations,
        skip_unknown=True,
    )
    assert issues == (
        Issue(
            path=str(sacct), kind="unknown_tenant", count=1,
            detail=f"'other' (1 jobs, first {sacct}:6)",
        ),
    )
    assert inventory.gpus_allocated("t-0042", utc(10, 13)) == 64 + 13
    assert inventory.tenant("t-0050").allocations == ()


def test_a_job_inside_a_static_allocation_would_count_twice(tmp_path: Path) -> None:
    inventory_path, sacct = files(tmp_path, HEADER + (
        "5|acme|h100-pod-1|gres/gpu=8|RUNNING|2026-05-31T12:00:00|Unknown\n"
        "6|acme|h100-pod-1|gres/gpu=8|COMPLETED|2026-06-01T00:00:00|2026-06-02T00:00:00\n"
    ))
    jobs = read_sacct(sacct, accounts=ACCOUNTS).allocations
    with pytest.raises(
        ConfigError,
        match=r"^inventory\.yaml:11: tenants\[0\]\.allocations\[0\]: cluster 'h100-pod-1' is also "
        rf"given by 1 scheduler job\(s\), first 5 at {tmp_path}/sacct\.txt:2; give a tenant's",
    ):
        with_allocations(read_inventory(inventory_path), jobs)
    inventory, _ = with_allocations(read_inventory(inventory_path), jobs[1:])
    assert inventory.gpus_allocated("t-0042", datetime(2026, 6, 1, 1, tzinfo=UTC)) == 8


def test_a_job_in_two_exports_counts_once_with_its_end(tmp_path: Path) -> None:
    inventory_path, sacct = files(tmp_path)
    later = tmp_path / "sacct-later.txt"
    later.write_text(
        HEADER
        + "1002|acme|h100-pod-3|gres/gpu=4|COMPLETED|2026-05-10T12:00:00|2026-05-12T00:00:00\n",
        encoding="utf-8",
    )
    for order in ((sacct, later), (later, sacct)):
        jobs = [j for path in order for j in read_sacct(path, accounts=ACCOUNTS).allocations]
        inventory, issues = with_allocations(read_inventory(inventory_path), jobs)
        assert [(i.kind, i.count) for i in issues] == [("duplicate_job", 1)]
        assert inventory.gpus_allocated("t-0042", utc(11)) == 64 + 4
        assert inventory.gpus_allocated("t-0042", utc(12)) == 64
