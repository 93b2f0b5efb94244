"""Followers: growth, partial lines, new files, renames, truncation, gzip archives."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

from egress.sidecar.follow import Chunk, FileMark, Follower, PollResult

HEADER = b"#separator \\x09\n#path\tconn\n#open\t2026-05-13-00-00-00\n#fields\tts\tuid\n"


def listing(*paths: Path) -> Follower:
    """A follower of the files among ``paths`` that exist (directories: their files)."""

    def files() -> list[Path]:
        out: list[Path] = []
        for p in paths:
            if p.is_dir():
                out += sorted(f for f in p.iterdir() if f.is_file())
            elif p.exists():
                out.append(p)
        return out

    return Follower(files)


def poll(follower: Follower, marks: dict[str, FileMark]) -> tuple[list[Chunk], PollResult]:
    result = follower.poll(marks)
    marks.clear()
    marks.update(result.marks)
    return list(result.chunks), result


def test_complete_lines_only_then_the_rest(tmp_path: Path) -> None:
    log = tmp_path / "conn.log"
    log.write_bytes(HEADER + b"1\ta\n2\tb")
    follower = listing(log)
    marks: dict[str, FileMark] = {}
    chunks, _ = poll(follower, marks)
    assert [(c.data, c.first_line, c.header) for c in chunks] == [(HEADER + b"1\ta\n", 1, b"")]
    assert poll(follower, marks)[0] == []  # the partial line waits
    with log.open("ab") as fh:
        fh.write(b"b\n3\tc\n")
    chunks, _ = poll(follower, marks)
    assert [(c.data, c.first_line, c.header) for c in chunks] == [(b"2\tbb\n3\tc\n", 6, HEADER)]
    (mark,) = marks.values()
    assert (mark.offset, mark.lines) == (len(HEADER) + 13, 7)


def test_new_file_and_rename_into_an_archive(tmp_path: Path) -> None:
    live, archive = tmp_path / "live", tmp_path / "archive"
    live.mkdir()
    archive.mkdir()
    (live / "conn.log").write_bytes(HEADER + b"1\ta\n")
    follower = listing(live, archive)
    marks: dict[str, FileMark] = {}
    assert len(poll(follower, marks)[0]) == 1
    # Zeek rotates: the file moves to the archive with a last line; a new live file starts.
    with (live / "conn.log").open("ab") as fh:
        fh.write(b"2\tb\n")
    os.rename(live / "conn.log", archive / "conn.00:00:00-01:00:00.log")
    (live / "conn.log").write_bytes(HEADER + b"3\tc\n")
    chunks, _ = poll(follower, marks)
    got = {c.path.name: (c.data, c.first_line) for c in chunks}
    assert got == {"conn.00:00:00-01:00:00.log": (b"2\tb\n", 6),
                   "conn.log": (HEADER + b"3\tc\n", 1)}
    assert poll(follower, marks)[0] == []


def test_truncation_and_rewrite_read_again(tmp_path: Path) -> None:
    log = tmp_path / "s3.log"
    log.write_bytes(b"one\ntwo\nthree\n")
    follower = listing(log)
    marks: dict[str, FileMark] = {}
    poll(follower, marks)
    log.write_bytes(b"new\n")  # truncated in place (copytruncate), shorter
    chunks, result = poll(follower, marks)
    assert [(c.data, c.first_line) for c in chunks] == [(b"new\n", 1)]
    assert result.truncations == 1
    with log.open("r+b") as fh:  # same inode, longer, other first bytes
        fh.write(b"NEW\nfour\nfive\nsix\n")
    chunks, result = poll(follower, marks)
    assert [(c.data, c.first_line) for c in chunks] == [(b"NEW\nfour\nfive\nsix\n", 1)]
    assert result.truncations == 1


def test_gzip_archive_of_a_followed_file_gives_only_the_rest(tmp_path: Path) -> None:
    live = tmp_path / "conn.log"
    live.write_bytes(HEADER + b"1\ta\n")
    follower = listing(tmp_path)
    marks: dict[str, FileMark] = {}
    poll(follower, marks)
    whole = HEADER + b"1\ta\n2\tb\n#close\t2026-05-13-01-00-00\n"
    archive = tmp_path / "conn.00:00:00-01:00:00.log.gz"
    archive.write_bytes(gzip.compress(whole)[:-6])  # still being written
    live.unlink()
    chunks, result = poll(follower, marks)
    assert chunks == [] and result.waiting == 1
    archive.write_bytes(gzip.compress(whole))
    chunks, result = poll(follower, marks)
    assert [(c.data, c.first_line, c.header) for c in chunks] == [
        (b"2\tb\n#close\t2026-05-13-01-00-00\n", 6, HEADER)]
    assert poll(follower, marks)[0] == []  # read once
    other = tmp_path / "conn.01:00:00-02:00:00.log.gz"
    other.write_bytes(gzip.compress(HEADER.replace(b"00-00-00", b"01-00-00") + b"9\tz\n"))
    chunks, _ = poll(follower, marks)
    assert [(c.path.name, c.first_line, c.header) for c in chunks] == [
        ("conn.01:00:00-02:00:00.log.gz", 1, b"")]


def test_whole_file_mode_waits_for_complete_lines(tmp_path: Path) -> None:
    log = tmp_path / "kern.log"
    log.write_bytes(b"a\nb")
    follower = Follower(lambda: [log], whole_file=True)
    marks: dict[str, FileMark] = {}
    assert poll(follower, marks)[0] == []
    with log.open("ab") as fh:
        fh.write(b"\n")
    chunks, _ = poll(follower, marks)
    assert [(c.whole, c.data) for c in chunks] == [(True, b"")]
    assert poll(follower, marks)[0] == []  # unchanged
    with log.open("ab") as fh:
        fh.write(b"c\n")
    assert [c.whole for c in poll(follower, marks)[0]] == [True]


def test_marks_are_not_changed_and_vanished_files_are_forgotten(tmp_path: Path) -> None:
    log = tmp_path / "s3.log"
    log.write_bytes(b"one\n")
    follower = listing(log)
    first = follower.poll({})
    before = dict(first.marks)
    log.write_bytes(b"one\ntwo\n")
    follower.poll(first.marks)
    assert first.marks == before
    log.unlink()
    assert follower.poll(first.marks).marks == {}  # not a Zeek file: nothing to match later


def test_whole_file_truncation_starts_a_generation(tmp_path: Path) -> None:
    log = tmp_path / "kern.log"
    log.write_bytes(b"drive one\ndrive two\n")
    follower = Follower(lambda: [log], whole_file=True)
    marks: dict[str, FileMark] = {}
    assert [c.generation for c in poll(follower, marks)[0]] == [0]
    with log.open("ab") as fh:
        fh.write(b"drive three\n")
    assert [c.generation for c in poll(follower, marks)[0]] == [0]  # grew: same content
    log.write_bytes(b"drive four\n")  # copytruncate, then a new line
    assert [c.generation for c in poll(follower, marks)[0]] == [1]
    log.write_bytes(b"DRIVE FIVE, longer than all before it together\n")
    assert [c.generation for c in poll(follower, marks)[0]] == [2]
