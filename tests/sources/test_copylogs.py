"""Copies from rsync ``--log-file`` and rclone ``--use-json-log`` logs: records, totals, issues.

Samples in ``tests/data/copylogs``: rsync with ``--log-file-format='%i %n %l'``
and ``-v`` (human-formatted closing totals), with ``'%i %l %n'`` (names with
spaces, an I/O error, a corrupt length, the plain log-file trailer), with the
default ``'%i %n%L'`` (no sizes at all), and an rclone JSON log of two runs in
both the logrus-era and the slog-era key order, one copy without ``size``, an
error, and a cut last line.
"""

from __future__ import annotations

import gzip
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from egress.errors import SourceError
from egress.records import CopyRecord, Issue, Provenance
from egress.sources.copylogs import CopyLogReader, CopySummary, detect_copy_log

DATA = Path(__file__).resolve().parent.parent / "data" / "copylogs"
RSYNC_N_L = DATA / "rsync-n-l.log"
RSYNC_L_N = DATA / "rsync-l-n.log"
RSYNC_DEFAULT = DATA / "rsync-default.log"
RCLONE = DATA / "rclone.json.log"
GIB = 1 << 30


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0,
        micro: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)


def copy(path: Path, line: int, time: datetime, name: str, size: int, tool: str = "rsync",
         station: str | None = "station-1") -> CopyRecord:
    return CopyRecord(time=time, station=station, tool=tool, path=name, bytes_copied=size,
                      provenance=Provenance(path=str(path), line=line))


def offset_of(path: Path, line: int) -> int:
    data = path.read_bytes()
    pos = 0
    for _ in range(line - 1):
        pos = data.index(b"\n", pos) + 1
    return pos


def read(paths: list[Path], reader: CopyLogReader | None = None) -> tuple[
        list[CopyRecord], list[CopySummary], tuple[Issue, ...]]:
    reader = reader or CopyLogReader(station="station-1")
    records = list(reader.read(paths))
    return records, reader.summaries, reader.issues


@pytest.mark.parametrize(("path", "kind"), [
    (RSYNC_N_L, "rsync"), (RSYNC_L_N, "rsync"), (RSYNC_DEFAULT, "rsync"), (RCLONE, "rclone"),
    (DATA.parent / "drives" / "kern.log-station-1", None),
])
def test_detect_copy_log(path: Path, kind: str | None) -> None:
    assert detect_copy_log(path) == kind


def test_not_a_copy_log_raises_naming_the_file(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"kern\.log-station-1: not a copy log"):
        list(CopyLogReader().read([RSYNC_N_L, DATA.parent / "drives" / "kern.log-station-1"]))
    with pytest.raises(ValueError, match="log_format must be one of"):
        CopyLogReader(log_format="%o %f %l")


# ----------------------------------------------------------------------------- rsync


def test_rsync_name_then_length_with_verbose_totals() -> None:
    records, summaries, issues = read([RSYNC_N_L])
    assert records == [
        copy(RSYNC_N_L, 4, utc(2026, 11, 27, 4, 51, 2), "data/part-0001.tar", GIB),
        copy(RSYNC_N_L, 5, utc(2026, 11, 27, 4, 51, 9), "data/part-0002.tar", GIB),
        copy(RSYNC_N_L, 6, utc(2026, 11, 27, 4, 51, 9), "data/manifest.json", 2048),
    ]
    assert summaries == [CopySummary(
        time=utc(2026, 11, 27, 4, 51, 10), station="station-1", tool="rsync", files=3,
        bytes_copied=2 * GIB + 2048, bytes_sent=2_147_489_113, bytes_received=131,
        total_size_bytes=2_147_486_320, provenance=Provenance(path=str(RSYNC_N_L), line=11))]
    assert issues == ()


def test_rsync_length_then_name_with_spaces_errors_and_a_bad_length() -> None:
    records, summaries, issues = read([RSYNC_L_N])
    t = utc(2026, 11, 27, 13, 5)
    assert records == [
        copy(RSYNC_L_N, 1, t + timedelta(seconds=41), "ingest/batch 07/shard 0001.bin", GIB),
        copy(RSYNC_L_N, 2, t + timedelta(seconds=48), "ingest/batch 07/shard 0002.bin",
             GIB // 2),
        copy(RSYNC_L_N, 5, t + timedelta(seconds=50), "ingest/batch 07/shard 0004.bin",
             GIB // 4),
    ]
    assert summaries == [CopySummary(
        time=t + timedelta(seconds=51), station="station-1", tool="rsync", files=3,
        bytes_copied=GIB + GIB // 2 + GIB // 4, bytes_sent=1_879_093_417, bytes_received=126,
        total_size_bytes=2 * GIB, provenance=Provenance(path=str(RSYNC_L_N), line=8))]
    assert issues == (
        Issue(path=str(RSYNC_L_N), kind="tool_error", count=2,
              first_offset=offset_of(RSYNC_L_N, 4),
              detail='line 4: rsync: [sender] read errors mapping "/mnt/drive/ingest/batch 07/'
                     'shard 0003.bin": Input/output error (5)'),
        Issue(path=str(RSYNC_L_N), kind="malformed_line", count=1,
              first_offset=offset_of(RSYNC_L_N, 6),
              detail="line 6: 2026/11/27 13:05:50 [52310] >f+++++++++ 1O24 "
                     "ingest/batch 07/shard 0005.bin"),
    )


def test_rsync_default_format_has_no_sizes_so_records_carry_none() -> None:
    records, summaries, issues = read([RSYNC_DEFAULT])
    assert [(r.path, r.bytes_copied) for r in records] == [
        ("run-19/ckpt-000100.safetensors", None), ("run-19/ckpt-000200.safetensors", None)]
    assert [(s.files, s.bytes_copied, s.total_size_bytes) for s in summaries] == [
        (2, 0, 9_663_676_416)]
    assert issues == (Issue(
        path=str(RSYNC_DEFAULT), kind="missing_length", count=2,
        first_offset=offset_of(RSYNC_DEFAULT, 2),
        detail="line 2: log-file-format has no %l: 2026/11/28 02:10:04 [7001] >f+++++++++ "
               "run-19/ckpt-000100.safetensors"),)


def test_rsync_stated_format_beats_guessing_and_local_time_is_converted(tmp_path: Path) -> None:
    log = tmp_path / "rsync.log"
    log.write_text("2026/11/27 05:00:00 [9] >f+++++++++ take 2\n"
                   "2026/11/27 05:00:01 [9] >f+++++++++ notes 7\n")
    plus_two = timezone(timedelta(hours=2))
    guessed, _, _ = read([log], CopyLogReader(station="station-1", tz=plus_two))
    assert [(r.path, r.bytes_copied, r.time) for r in guessed] == [
        ("take", 2, utc(2026, 11, 27, 3, 0, 0)), ("notes", 7, utc(2026, 11, 27, 3, 0, 1))]
    stated, _, issues = read([log], CopyLogReader(station="station-1", tz=plus_two,
                                                         log_format="%i %n%L"))
    assert [(r.path, r.bytes_copied) for r in stated] == [("take 2", None), ("notes 7", None)]
    assert [(i.kind, i.count) for i in issues] == [("missing_length", 2)]


def test_rsync_human_totals_stay_unset_and_an_impossible_sum_is_flagged(tmp_path: Path) -> None:
    log = tmp_path / "rsync.log"
    log.write_text("2026/11/27 05:00:00 [9] >f+++++++++ a.bin 2,000\n"
                   "2026/11/27 05:00:01 [9] sent 2.10K bytes  received 35 bytes  4.27K bytes/sec\n"
                   "2026/11/27 05:00:01 [9] total size is 1,000  speedup is 0.47\n"
                   "garbage without a prefix\n")
    records, summaries, issues = read([log])
    assert [(r.path, r.bytes_copied) for r in records] == [("a.bin", 2000)]
    assert [(s.bytes_sent, s.bytes_received, s.total_size_bytes) for s in summaries] == [
        (None, 35, 1000)]
    assert [(i.kind, i.count, i.detail) for i in issues] == [
        ("copied_exceeds_total", 1, "line 3: files add up to 2000 bytes, total size 1000"),
        ("malformed_line", 1, "line 4: garbage without a prefix"),
    ]


def test_rsync_truncated_gzip_keeps_earlier_copies(tmp_path: Path) -> None:
    whole = gzip.compress(RSYNC_L_N.read_bytes())
    cut = tmp_path / "rsync.log.1.gz"
    cut.write_bytes(whole[: len(whole) - 40])
    records, _, issues = read([cut])
    assert [r.path for r in records][:2] == ["ingest/batch 07/shard 0001.bin",
                                            "ingest/batch 07/shard 0002.bin"]
    assert issues[-1].kind == "truncated_gzip"
    assert all(r.provenance.path == str(cut) for r in records)


# ----------------------------------------------------------------------------- rclone


def test_rclone_json_two_runs() -> None:
    records, summaries, issues = read([RCLONE])
    assert records == [
        copy(RCLONE, 2, utc(2026, 11, 27, 4, 51, 2, 123456), "data/part-0001.tar", GIB,
             tool="rclone"),
        copy(RCLONE, 3, utc(2026, 11, 27, 4, 51, 9, 500000), "data/part-0002.tar", GIB,
             tool="rclone"),
        copy(RCLONE, 5, utc(2026, 11, 27, 4, 51, 10, 200000), "data/manifest.json", 2048,
             tool="rclone"),
        copy(RCLONE, 7, utc(2026, 11, 28, 2, 0, 1), "run-20/ckpt-000100.safetensors",
             4_831_838_208, tool="rclone"),
        CopyRecord(time=utc(2026, 11, 28, 2, 0, 1, 500000), station="station-1",
                   tool="rclone", path="run-20/notes.txt", bytes_copied=None,
                   provenance=Provenance(path=str(RCLONE), line=8)),
    ]
    assert summaries == [
        CopySummary(time=utc(2026, 11, 27, 4, 51, 10, 300000), station="station-1",
                    tool="rclone", files=3, bytes_copied=2 * GIB + 2048,
                    bytes_transferred=2_147_485_696, total_size_bytes=3_221_227_520,
                    provenance=Provenance(path=str(RCLONE), line=6)),
        CopySummary(time=utc(2026, 11, 28, 2, 0, 2, 250000), station="station-1",
                    tool="rclone", files=2, bytes_copied=4_831_838_208,
                    bytes_transferred=4_831_838_304, total_size_bytes=4_831_838_304,
                    provenance=Provenance(path=str(RCLONE), line=9)),
    ]
    assert [(i.kind, i.count, i.first_offset) for i in issues] == [
        ("tool_error", 1, offset_of(RCLONE, 4)),
        ("missing_size", 1, offset_of(RCLONE, 8)),
        ("partial_last_line", 1, offset_of(RCLONE, 10)),
    ]
    assert issues[0].detail == ("line 4: Failed to copy: read /mnt/drive/data/part-0003.tar: "
                                "input/output error")


def test_rclone_bad_entries_are_counted(tmp_path: Path) -> None:
    log = tmp_path / "rclone.log"
    log.write_text(
        '{"level":"info","msg":"Copied (new)","object":"a","size":"12",'
        '"time":"2026-11-27T00:00:00Z"}\n'
        '{"level":"info","msg":"Copied (new)","object":"b","size":"1.5Gi",'
        '"time":"2026-11-27T00:00:01Z"}\n'
        '{"level":"info","msg":"Copied (new)","object":"c","size":3,"time":"yesterday"}\n'
        'not json\n'
        '{"level":"info","msg":"Moved (server-side) to: d2","object":"d","size":4,'
        '"time":"2026-11-27T00:00:02+01:00"}\n')
    records, summaries, issues = read([log])
    assert [(r.path, r.bytes_copied, r.time) for r in records] == [
        ("a", 12, utc(2026, 11, 27)), ("d", 4, utc(2026, 11, 26, 23, 0, 2))]
    assert summaries == []
    assert [(i.kind, i.count, i.first_offset) for i in issues] == [
        ("malformed_line", 3, offset_of(log, 2))]
