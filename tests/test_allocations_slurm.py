"""Slurm adapter: sacct --parsable2 output into GPU allocations per job."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from egress.allocations_slurm import gpus_by_model, read_sacct
from egress.errors import SourceError
from egress.records import Issue

HEADER = "JobID|Account|Cluster|Partition|AllocTRES|State|Start|End"
ROWS = [
    # line 2: a finished H100 job and its steps (steps are skipped: the job holds the GPUs)
    "1001|acme|h100-pod-3|gpu|billing=64,cpu=64,gres/gpu:h100=8,gres/gpu=8,mem=512G,node=1"
    "|COMPLETED|2026-05-10T08:00:00|2026-05-10T20:00:00",
    "1001.batch|acme|h100-pod-3||cpu=64,gres/gpu:h100=8,gres/gpu=8,mem=512G,node=1"
    "|COMPLETED|2026-05-10T08:00:00|2026-05-10T20:00:00",
    "1001.extern|acme|h100-pod-3||billing=64,cpu=64,gres/gpu=8,mem=512G,node=1"
    "|COMPLETED|2026-05-10T08:00:00|2026-05-10T20:00:00",
    # line 5: still running, untyped GPUs
    "1002|acme|h100-pod-3|gpu|cpu=32,gres/gpu=4,mem=256G,node=1|RUNNING|2026-05-10T12:00:00|Unknown",
    # line 6: CPU only
    "1003|beta|h100-pod-3|cpu|cpu=128,mem=1T,node=2|COMPLETED"
    "|2026-05-10T09:00:00|2026-05-10T10:00:00",
    # line 7: pending
    "1004|beta|h100-pod-3|gpu||PENDING|Unknown|Unknown",
    # line 8: two typed models and one untyped GPU
    "1005_3|beta|h100-pod-3|gpu|cpu=16,gres/gpu:a100=2,gres/gpu:h100=1,gres/gpu=4,node=2"
    "|CANCELLED by 1000|2026-05-11T00:00:00|2026-05-11T06:30:00",
    # line 9: bad count
    "1006|beta|h100-pod-3|gpu|cpu=8,gres/gpu=x|FAILED|2026-05-11T01:00:00|2026-05-11T02:00:00",
    # line 10: a field short
    "1007|acme|h100-pod-3|gpu|cpu=8,gres/gpu=2|COMPLETED|2026-05-12T00:00:00",
    # line 11: ends before it starts
    "1008|ops|h100-pod-3|gpu|gres/gpu=1|COMPLETED|2026-05-12T01:00:00|2026-05-12T00:00:00",
    # line 12: cancelled before it started
    "1009|acme|h100-pod-3|gpu|gres/gpu:h100=2,gres/gpu=2|CANCELLED|None|2026-05-12T03:00:00",
    "",
    # line 14: a heterogeneous job component
    "1010+0|acme|h100-pod-3|gpu|cpu=4,gres/gpu=1|COMPLETED|2026-05-10T10:00:00|2026-05-10T14:00:00",
]
SACCT = "\n".join([HEADER, *ROWS]) + "\n"


def utc(day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(2026, 5, day, hour, minute, tzinfo=UTC)


def write(tmp_path: Path, text: str, name: str = "sacct.txt") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def rows_of(path: Path, **options: object) -> list[tuple[object, ...]]:
    read = read_sacct(path, **options)  # type: ignore[arg-type]
    return [
        (
            s.tenant_id,
            s.account,
            s.job,
            s.position,
            s.allocation.cluster,
            s.allocation.gpu_model,
            s.allocation.gpus,
            s.allocation.valid_from,
            s.allocation.valid_until,
        )
        for s in read.allocations
    ]


def test_reads_jobs_steps_and_typed_gres(tmp_path: Path) -> None:
    path = write(tmp_path, SACCT)
    read = read_sacct(path, accounts={"acme": "t-0042"})
    assert rows_of(path, accounts={"acme": "t-0042"}) == [
        ("t-0042", "acme", "1001", "2", "h100-pod-3", "h100", 8, utc(10, 8), utc(10, 20)),
        ("t-0042", "acme", "1002", "5", "h100-pod-3", None, 4, utc(10, 12), None),
        ("beta", "beta", "1005_3", "8", "h100-pod-3", "a100", 2, utc(11), utc(11, 6, 30)),
        ("beta", "beta", "1005_3", "8", "h100-pod-3", "h100", 1, utc(11), utc(11, 6, 30)),
        ("beta", "beta", "1005_3", "8", "h100-pod-3", None, 1, utc(11), utc(11, 6, 30)),
        ("t-0042", "acme", "1010+0", "14", "h100-pod-3", None, 1, utc(10, 10), utc(10, 14)),
    ]
    assert read.rows == 12
    assert read.skipped == {"job_step": 2, "no_gpus": 1, "not_started": 2}
    line9 = len((HEADER + "\n" + "\n".join(ROWS[:7]) + "\n").encode())
    assert read.issues == (
        Issue(
            path=str(path),
            kind="malformed",
            count=3,
            first_offset=line9,
            detail="line 9: GPU count in 'gres/gpu=x' is not a whole number",
        ),
    )
    assert read.allocations[0].source == f"{path}:2"


def test_each_malformed_row_is_described(tmp_path: Path) -> None:
    for row, detail in [
        (ROWS[8], "line 2: 7 fields, the header has 8"),
        (ROWS[9], "line 2: End 2026-05-12T00:00:00 is before Start"),
        ("1|a|c|p|gres/gpu:h100=4,gres/gpu=2|COMPLETED|2026-05-01T00:00:00|Unknown",
         "line 2: gres/gpu=2 is less than its typed counts (4)"),
        ("1|a|c|p|gres/gpu=2|COMPLETED|yesterday|Unknown", "line 2: not a time: 'yesterday'"),
        ("1||c|p|gres/gpu=2|RUNNING|2026-05-01T00:00:00|Unknown", "line 2: no JobID or Account"),
    ]:
        read = read_sacct(write(tmp_path, f"{HEADER}\n{row}\n"))
        assert read.allocations == ()
        assert [(i.kind, i.count, i.first_offset, i.detail) for i in read.issues] == [
            ("malformed", 1, len(HEADER) + 1, detail)
        ]


def test_parsable_with_trailing_pipes_and_local_time(tmp_path: Path) -> None:
    text = (
        "JobID|Account|AllocTRES|Start|End|\r\n"
        "77|acme|cpu=8,gres/gpu:h100=2,gres/gpu=2|2026-05-10T08:00:00|2026-05-10T09:30:00|\r\n"
    )
    path = write(tmp_path, text)
    kul = timezone(timedelta(hours=8))
    assert rows_of(path, cluster="kul-a", tz=kul) == [
        ("acme", "acme", "77", "2", "kul-a", "h100", 2, utc(10, 0), utc(10, 1, 30)),
    ]


def test_an_empty_cluster_cell_takes_the_given_cluster(tmp_path: Path) -> None:
    text = f"{HEADER}\n1|acme||gpu|gres/gpu=2|RUNNING|2026-05-10T08:00:00Z|Unknown\n"
    path = write(tmp_path, text)
    assert rows_of(path, cluster="fallback")[0][4] == "fallback"
    read = read_sacct(path)
    assert [(i.kind, i.detail) for i in read.issues] == [("malformed", "line 2: no Cluster")]


def test_files_that_are_not_sacct_output(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"sacct\.txt at byte 0: line 1: not sacct --parsable2 "
                       r"output: the header lacks AllocTRES, Start, End \(it needs JobID, "):
        read_sacct(write(tmp_path, "JobID|Account\n1|acme\n"), cluster="c")
    with pytest.raises(SourceError, match=r"no Cluster column; give the cluster name"):
        read_sacct(write(tmp_path, "JobID|Account|AllocTRES|Start|End\n"))
    with pytest.raises(SourceError, match=r"empty: no sacct header"):
        read_sacct(write(tmp_path, ""))
    with pytest.raises(SourceError, match=r"missing\.txt: cannot read sacct output"):
        read_sacct(tmp_path / "missing.txt", cluster="c")
    path = tmp_path / "latin.txt"
    path.write_bytes(b"JobID|Account|AllocTRES|Start|End\n1|caf\xe9|gres/gpu=1|Unknown|Unknown\n")
    read = read_sacct(path, cluster="c")
    assert [(i.kind, i.first_offset, i.detail) for i in read.issues] == [
        ("malformed", 34, "line 2: not UTF-8 text")
    ]


def test_gpus_by_model() -> None:
    assert gpus_by_model("cpu=4,mem=16G,node=1") == {}
    assert gpus_by_model("gres/gpu=3") == {None: 3}
    assert gpus_by_model("gres/gpu:h100=4,gres/gpu=4") == {"h100": 4}
    assert gpus_by_model("gres/gpu:h100=4") == {"h100": 4}
    assert gpus_by_model("gres/gpu=0,gres/gpumem=80G,gres/gpuutil=90") == {}
    assert gpus_by_model("gres/gpu:1g.10gb=2,gres/gpu:h100=1,gres/gpu=5") == {
        "1g.10gb": 2,
        "h100": 1,
        None: 2,
    }
    with pytest.raises(ValueError, match=r"GPU type in 'gres/gpu:=1' is empty"):
        gpus_by_model("gres/gpu:=1")
    with pytest.raises(ValueError, match=r"GPU count in 'gres/gpu' is not a whole number"):
        gpus_by_model("gres/gpu")
    with pytest.raises(ValueError, match=r"GPU count in 'gres/gpu=-1' is not a whole number"):
        gpus_by_model("gres/gpu=-1")
