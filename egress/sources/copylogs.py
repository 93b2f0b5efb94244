"""Copy-tool logs at ingest stations (rsync ``--log-file``, rclone ``--use-json-log``) as copies.

rsync
    Every line of an rsync log file starts ``YYYY/MM/DD HH:MM:SS [pid] `` (local
    time). Per-item lines follow ``--log-file-format`` (default ``%i %n%L``): the
    11-character itemize string ``YXcstpoguax`` (``Y``: ``<`` sent, ``>`` received,
    ``c`` local change, ``h`` hard link, ``.`` unchanged, or ``*deleting``; ``X``:
    ``f`` file, ``d`` directory, ``L`` symlink, ``D`` device, ``S`` special), then
    the name (directories end with ``/``). Only ``%l`` (file length) gives a size;
    it may stand before or after the name (``%i %l %n`` or ``%i %n %l``, plain or
    with ``%'l`` thousands separators). With ``log_format=None`` the layout is
    read from the file: from its first directory line, else from the first 64
    item lines (a length position is taken only if every one of them has a
    number there). A run ends with ``sent N bytes  received N bytes  total size N``
    (or, with ``-v``, ``sent ... bytes/sec`` and ``total size is N  speedup is X``).
rclone
    One JSON object per line (``time``, ``level``, ``msg``, ``object``,
    ``objectType``, ``source``; ``size`` since rclone added it to copy messages).
    ``Copied (...)`` / ``Moved (...)`` messages (also ``Multi-thread Copied``) are
    copies of ``object``. Entries with a ``stats`` object carry the run's running
    totals; a run ends when ``elapsedTime`` goes back (a new rclone process).

A :class:`~egress.records.CopyRecord` is one regular file received or sent by
rsync, or copied/moved by rclone: ``path`` is the name relative to the copy's
root (rsync ``%n``; rclone ``object``, the source side), ``bytes_copied`` the
file's size (rsync ``%l``, not the wire bytes of ``%b``; rclone ``size``),
``time`` when the tool logged it. A copy with no size in its log line keeps
``bytes_copied=None`` (no size is made up) and is also counted as issue
``missing_length`` (rsync) or ``missing_size`` (rclone), so the report shows
how much volume is unknown.

Totals. The tools' closing totals become :class:`CopySummary` values in
:attr:`CopyLogReader.summaries`, with the count and byte sum of the records of
the same run. The two sums measure different things (rsync's ``total size`` is
every file considered, copied or not; rclone's ``bytes`` are bytes moved), so
they need not agree; only a per-file sum larger than the tool's own total,
which a complete log cannot produce, is counted as ``copied_exceeds_total``.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from pathlib import Path

from egress.errors import SourceError
from egress.records import CopyRecord, Issue, Provenance
from egress.sources.logfile import IssueTally, Line, LineSource, read_head

log = logging.getLogger(__name__)

COPY_LOG_KINDS = ("rsync", "rclone")
RSYNC_FORMATS = ("%i %n%L", "%i %n %l", "%i %l %n")
"""``log_format`` values :class:`CopyLogReader` understands for rsync logs."""

_LAYOUT_OF_FORMAT = {"%i %n%L": "none", "%i %n %l": "last", "%i %l %n": "first"}
_RSYNC_PREFIX = re.compile(r"^(\d{4})/(\d{2})/(\d{2}) (\d{2}):(\d{2}):(\d{2}) \[(\d+)\] ?(.*)$")
_ITEM = re.compile(r"^([<>ch.][fdLDS][.+?cstTpogunbax ]{9}|\*deleting  ) (.*)$")
_LEN_FIRST = re.compile(r"^\s*(\d[\d,.]*)\s+(\S.*)$")
_LEN_LAST = re.compile(r"^(.*\S)\s+(\d[\d,.]*)$")
_TRAILER = re.compile(r"^sent (\S+) bytes  received (\S+) bytes  total size (\S+)$")
_TRAILER_V1 = re.compile(r"^sent (\S+) bytes  received (\S+) bytes  \S+ bytes/sec$")
_TRAILER_V2 = re.compile(r"^total size is (\S+)  speedup is \S+")
_INT = re.compile(r"^\d+$|^\d{1,3}(?:([,.])\d{3})(?:\1\d{3})*$")
_RSYNC_INFO = (
    "building file list", "receiving file list", "sending incremental file list",
    "receiving incremental file list", "created directory", "done", "delta-transmission",
    "Number of ", "Total ", "Literal data", "Matched data", "File list ", "deleting ",
    "connect from", "rsync on ", "rsync to ", "rsync allowed", "skipping ",
    "cannot delete non-empty directory", "IO error encountered",
)
_RCLONE_COPY = re.compile(r"^(?:Multi-thread )?(?:Copied|Moved) \(")
_DECIDE_AFTER = 64


@dataclass(frozen=True, slots=True, kw_only=True)
class CopySummary:
    """The closing totals of one copy run, as the tool logged them, beside what its lines add up to.

    ``files``/``bytes_copied`` count the records of the run. rsync fills
    ``bytes_sent``/``bytes_received`` (wire bytes, protocol included) and
    ``total_size_bytes`` (all files considered); rclone fills
    ``bytes_transferred`` (stats ``bytes``) and ``total_size_bytes`` (stats
    ``totalBytes``). A total printed in human units (rsync ``-h``) is ``None``.
    """

    time: datetime | None
    station: str | None
    tool: str
    files: int
    bytes_copied: int
    bytes_sent: int | None = None
    bytes_received: int | None = None
    bytes_transferred: int | None = None
    total_size_bytes: int | None = None
    provenance: Provenance


def _int(text: str) -> int | None:
    """An integer as rsync prints it (plain, or with ``,``/``.`` thousands separators)."""
    if _INT.match(text) is None:
        return None
    return int(text.replace(",", "").replace(".", ""))


def _kind_of_line(text: str) -> str | None:
    if _RSYNC_PREFIX.match(text):
        return "rsync"
    if text.startswith("{"):
        try:
            obj = json.loads(text)
        except ValueError:
            return None
        if isinstance(obj, dict) and "level" in obj and "msg" in obj:
            return "rclone"
    return None


def detect_copy_log(path: Path | str) -> str | None:
    """Name the kind of copy log ``path`` is (``rsync`` or ``rclone``), or ``None``.

    The first non-blank line of the (decompressed) file decides. Raises
    :class:`~egress.errors.SourceError` when the file cannot be opened.
    """
    head = read_head(Path(path))
    lines = head.decode("utf-8", "replace").split("\n")
    if len(head) >= 64 * 1024:
        lines = lines[:-1]
    for text in lines:
        if text.strip():
            return _kind_of_line(text.rstrip("\r"))
    return None


@dataclass(slots=True)
class _Run:
    files: int = 0
    bytes_copied: int = 0
    sent: int | None = None
    received: int | None = None


class CopyLogReader:
    """Read rsync and rclone logs into :class:`~egress.records.CopyRecord` s.

    ``station`` names the station (these logs carry no host name). ``tz`` is
    the zone of rsync's local-time stamps. ``log_format`` states the rsync
    ``--log-file-format`` (one of :data:`RSYNC_FORMATS`) instead of reading it
    from each file. Bad lines are counted in :attr:`issues` (``malformed_line``,
    ``unrecognized_line``, ``missing_length``/``missing_size``, ``tool_error`` for
    the tool's own error lines, ``copied_exceeds_total``, truncation), never raised.
    """

    def __init__(self, *, station: str | None = None, tz: tzinfo = UTC,
                 log_format: str | None = None) -> None:
        if log_format is not None and log_format not in _LAYOUT_OF_FORMAT:
            raise ValueError(f"log_format must be one of {RSYNC_FORMATS} or None")
        self._station = station
        self._tz = tz
        self._layout = _LAYOUT_OF_FORMAT[log_format] if log_format is not None else None
        self._tally = IssueTally()
        self.summaries: list[CopySummary] = []

    @property
    def issues(self) -> tuple[Issue, ...]:
        """Counted problems of every read so far, per file and kind, with first positions."""
        return self._tally.issues

    def read(self, paths: Iterable[Path | str]) -> Iterator[CopyRecord]:
        """Yield the copies logged in ``paths``, file by file, in log order.

        Every path is checked first: one that cannot be opened or is neither an
        rsync nor an rclone log raises :class:`~egress.errors.SourceError`
        naming it, before anything is read.
        """
        files: list[tuple[Path, str]] = []
        for p in paths:
            path = Path(p)
            kind = detect_copy_log(path)
            if kind is None:
                raise SourceError("not a copy log (rsync --log-file or rclone --use-json-log)",
                                  path=path)
            files.append((path, kind))
        for path, kind in files:
            src = LineSource(path)
            if kind == "rsync":
                yield from self._rsync(path, src)
            else:
                yield from self._rclone(path, src)
            if src.truncation is not None:
                self._tally.add_truncation(path, src.truncation)

    # ---------------------------------------------------------------- rsync

    def _rsync(self, path: Path, src: LineSource) -> Iterator[CopyRecord]:
        layout = self._layout
        pending: list[tuple[Line, datetime, str, str]] = []
        run = _Run()
        for line in src:
            if not line.text.strip():
                continue
            m = _RSYNC_PREFIX.match(line.text)
            when = self._rsync_time(m) if m is not None else None
            if m is None or when is None:
                self._bad(path, line, "malformed_line")
                continue
            msg = m.group(8)
            item = _ITEM.match(msg)
            if item is not None:
                if layout is None:
                    pending.append((line, when, item.group(1), item.group(2)))
                    layout = _layout_from_dir(item.group(1), item.group(2))
                    if layout is None and len(pending) < _DECIDE_AFTER:
                        continue
                    layout = layout or _layout_by_vote(pending)
                    for args in pending:
                        yield from self._rsync_item(path, run, layout, *args)
                    pending.clear()
                else:
                    yield from self._rsync_item(path, run, layout, line, when, item.group(1),
                                                item.group(2))
                continue
            if pending:  # a non-item line: decide on what we have
                layout = _layout_by_vote(pending)
                for args in pending:
                    yield from self._rsync_item(path, run, layout, *args)
                pending.clear()
            if self._rsync_message(path, line, when, msg, run):
                run = _Run()
        if pending:
            layout = _layout_by_vote(pending)
            for args in pending:
                yield from self._rsync_item(path, run, layout, *args)

    def _rsync_time(self, m: re.Match[str]) -> datetime | None:
        try:
            y, mo, d, h, mi, sec = (int(m.group(i)) for i in range(1, 7))
            local = datetime(y, mo, d, h, mi, sec)
        except ValueError:
            return None
        return local.replace(tzinfo=self._tz).astimezone(UTC)

    def _rsync_item(self, path: Path, run: _Run, layout: str, line: Line, when: datetime,
                    item: str, rest: str) -> Iterator[CopyRecord]:
        if item[0] not in "<>" or item[1] != "f":
            return  # not a file's data: directories, links, attribute changes, deletions
        if layout == "none":
            self._bad(path, line, "missing_length",
                      detail="log-file-format has no %l: " + line.text[:160])
            run.files += 1
            yield CopyRecord(time=when, station=self._station, tool="rsync", path=rest,
                             bytes_copied=None,
                             provenance=Provenance(path=str(path), line=line.number))
            return
        m = (_LEN_FIRST if layout == "first" else _LEN_LAST).match(rest)
        size = _int(m.group(1 if layout == "first" else 2)) if m is not None else None
        if m is None or size is None:
            self._bad(path, line, "malformed_line")
            return
        name = m.group(2 if layout == "first" else 1)
        run.files += 1
        run.bytes_copied += size
        yield CopyRecord(time=when, station=self._station, tool="rsync", path=name,
                         bytes_copied=size, provenance=Provenance(path=str(path),
                                                                  line=line.number))

    def _rsync_message(self, path: Path, line: Line, when: datetime, msg: str,
                       run: _Run) -> bool:
        """Handle a non-item message; return True when it closed the run."""
        m = _TRAILER.match(msg)
        if m is not None:
            self._close_rsync(path, line, when, run, _int(m.group(1)), _int(m.group(2)),
                              _int(m.group(3)))
            return True
        m = _TRAILER_V1.match(msg)
        if m is not None:
            run.sent, run.received = _int(m.group(1)), _int(m.group(2))
            return False
        m = _TRAILER_V2.match(msg)
        if m is not None:
            self._close_rsync(path, line, when, run, run.sent, run.received, _int(m.group(1)))
            return True
        if msg.startswith(("rsync:", "rsync error:", "rsync warning:")):
            self._bad(path, line, "tool_error", detail=msg[:200])
        elif msg.strip() and not msg.startswith(_RSYNC_INFO):
            self._bad(path, line, "unrecognized_line")
        return False

    def _close_rsync(self, path: Path, line: Line, when: datetime, run: _Run, sent: int | None,
                     received: int | None, total: int | None) -> None:
        summary = CopySummary(time=when, station=self._station, tool="rsync", files=run.files,
                              bytes_copied=run.bytes_copied, bytes_sent=sent,
                              bytes_received=received, total_size_bytes=total,
                              provenance=Provenance(path=str(path), line=line.number))
        self.summaries.append(summary)
        if total is not None and run.bytes_copied > total:
            self._bad(path, line, "copied_exceeds_total",
                      detail=f"files add up to {run.bytes_copied} bytes, total size {total}")

    # --------------------------------------------------------------- rclone

    def _rclone(self, path: Path, src: LineSource) -> Iterator[CopyRecord]:
        # Stats entries are running totals, so a run is known to be over only when
        # the next one's elapsed time goes back; copies logged since the last stats
        # entry (``tail``) go to whichever run that turns out to be.
        run, tail = _Run(), _Run()
        last_stats: tuple[Line, datetime | None, dict[str, object]] | None = None
        last_elapsed: float | None = None
        for line in src:
            if not line.text.strip():
                continue
            try:
                entry = json.loads(line.text)
            except ValueError:
                entry = None
            msg = entry.get("msg") if isinstance(entry, dict) else None
            if not isinstance(entry, dict) or not isinstance(msg, str):
                self._bad(path, line, "malformed_line")
                continue
            when = _iso_time(entry.get("time"))
            stats = entry.get("stats")
            if isinstance(stats, dict):
                elapsed = stats.get("elapsedTime")
                new_run = (isinstance(elapsed, int | float) and last_elapsed is not None
                           and elapsed < last_elapsed)
                if new_run and last_stats is not None:
                    self._close_rclone(path, run, *last_stats)
                    run = tail
                else:
                    run = _Run(files=run.files + tail.files,
                               bytes_copied=run.bytes_copied + tail.bytes_copied)
                tail = _Run()
                last_elapsed = float(elapsed) if isinstance(elapsed, int | float) else None
                last_stats = (line, when, stats)
                continue
            if "starting with parameters" in msg and msg.startswith("Version "):
                if last_stats is not None:  # a new rclone process: the last run is over
                    run.files += tail.files
                    run.bytes_copied += tail.bytes_copied
                    self._close_rclone(path, run, *last_stats)
                run, tail, last_stats, last_elapsed = _Run(), _Run(), None, None
                continue
            if entry.get("level") in ("error", "critical", "alert", "emergency"):
                self._bad(path, line, "tool_error", detail=msg[:200])
            if _RCLONE_COPY.match(msg) is None:
                continue
            record = self._rclone_copy(path, line, entry, when)
            if record is not None:
                tail.files += 1
                tail.bytes_copied += record.bytes_copied or 0
                yield record
        if last_stats is not None:
            self._close_rclone(path, run, *last_stats)

    def _rclone_copy(self, path: Path, line: Line, entry: dict[str, object],
                     when: datetime | None) -> CopyRecord | None:
        obj = entry.get("object")
        if not isinstance(obj, str) or not obj or when is None:
            self._bad(path, line, "malformed_line")
            return None
        size = entry.get("size")
        if size is None:
            self._bad(path, line, "missing_size", detail="no size (rclone too old?): "
                      + line.text[:160])
            return CopyRecord(time=when, station=self._station, tool="rclone", path=obj,
                              bytes_copied=None,
                              provenance=Provenance(path=str(path), line=line.number))
        if isinstance(size, str) and size.isdigit():
            size = int(size)
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            self._bad(path, line, "malformed_line")
            return None
        return CopyRecord(time=when, station=self._station, tool="rclone", path=obj,
                          bytes_copied=size, provenance=Provenance(path=str(path),
                                                                   line=line.number))

    def _close_rclone(self, path: Path, run: _Run, line: Line, when: datetime | None,
                      stats: dict[str, object]) -> None:
        def num(key: str) -> int | None:
            value = stats.get(key)
            return value if isinstance(value, int) and not isinstance(value, bool) else None

        moved = num("bytes")
        summary = CopySummary(time=when, station=self._station, tool="rclone", files=run.files,
                              bytes_copied=run.bytes_copied, bytes_transferred=moved,
                              total_size_bytes=num("totalBytes"),
                              provenance=Provenance(path=str(path), line=line.number))
        self.summaries.append(summary)
        if moved is not None:
            limit = moved + (num("serverSideCopyBytes") or 0) + (num("serverSideMoveBytes") or 0)
            if run.bytes_copied > limit:
                self._bad(path, line, "copied_exceeds_total",
                          detail=f"files add up to {run.bytes_copied} bytes, "
                                 f"stats say {limit} moved")

    def _bad(self, path: Path, line: Line, kind: str, *, detail: str | None = None) -> None:
        self._tally.add(path, kind, offset=line.offset, line=line.number,
                        detail=detail if detail is not None else line.text[:200])


def _layout_from_dir(item: str, rest: str) -> str | None:
    """Where ``%l`` stands, told by a directory line (names of directories end with ``/``)."""
    if item[1] != "d":
        return None
    if rest.endswith("/"):
        m = _LEN_FIRST.match(rest)
        return "first" if m is not None and _int(m.group(1)) is not None else "none"
    m = _LEN_LAST.match(rest)
    if m is not None and m.group(1).endswith("/") and _int(m.group(2)) is not None:
        return "last"
    return None


def _layout_by_vote(pending: list[tuple[Line, datetime, str, str]]) -> str:
    """``first``/``last`` if every pending item line has a number there, else ``none``."""
    def all_match(pattern: re.Pattern[str], group: int) -> bool:
        for _, _, _, rest in pending:
            m = pattern.match(rest)
            if m is None or _int(m.group(group)) is None:
                return False
        return True

    if all_match(_LEN_FIRST, 1):
        return "first"
    if all_match(_LEN_LAST, 2):
        return "last"
    return "none"


def _iso_time(value: object) -> datetime | None:
    """An rclone ``time`` (RFC 3339, up to nanoseconds) as UTC, or ``None``."""
    if not isinstance(value, str):
        return None
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        return None
    return t.astimezone(UTC) if t.tzinfo is not None else None
