"""Drive attachments at ingest stations, from kernel logs, the journal and udev monitor dumps.

Inputs (plain or gzip), told apart by :func:`detect_drive_log`:

``dmesg``
    ``[12345.678901] msg`` (seconds since boot), ``dmesg -T``'s
    ``[Fri Nov 27 04:50:12 2026] msg`` (local time) or ``dmesg --time-format=iso``.
``kern.log``
    syslog files: ``Nov 27 04:50:12 station-1 kernel: [12345.678901] msg`` (no year:
    see ``year_reference``) or RFC 3339 ``2026-11-27T04:50:12.123456+00:00 station-1
    kernel: msg``. Lines from other programs are skipped.
``journal-json``
    ``journalctl -k -o json``: one object per line; ``MESSAGE`` may be a string or,
    when it holds non-UTF-8 or control bytes, an array of byte values.
``udev-monitor``
    ``udevadm monitor --udev --property`` (see :mod:`egress.sources.drives_udev`).

Kernel lines are correlated per station by :mod:`egress.sources.drives_kernel`;
udev attachments of the same read are then matched to kernel attachments of the
same block device whose times (wall clock, else seconds since boot) are at most
:data:`MATCH_WINDOW_S` apart, and fill in what the kernel lacks. A udev
attachment that matches none is a record of its own.

Times. ``[12345.678901]`` and udev times count seconds since boot: they become
wall-clock times only with ``boot_time``. Without it those records keep
``attached``/``detached`` ``None`` and every drive line that needed the conversion
is counted as issue ``relative_time_without_boot_time`` (the records are still
correlated and, where udev and kernel lines share the boot clock, matched).
Local times (traditional syslog, ``dmesg -T``) are read in ``tz``. All record times
are UTC.

Record fields. ``device`` is the block device name (``sdb``, ``nvme1n1``).
``serial``: udev's ``ID_SERIAL_SHORT``, else the serial in a journal entry's
``/dev/disk/by-id`` links, else the USB ``SerialNumber`` (the bridge's, for a disk
in a dock). ``model``: libata's full model, else udev's model when udev read it
from the drive itself (``ID_BUS`` ata or nvme), else the SCSI inquiry
``vendor model`` (vendor left out when it is libata's ``ATA``), else udev's model,
else the USB ``Product``. ``bus`` is the host-side transport: ``usb`` when the disk
hangs off a USB port (even a SATA disk in a dock), ``nvme``, else what the udev
path says, else ``ata`` for libata disks and ``scsi`` for other SCSI disks.
``capacity_bytes`` is the kernel's logical blocks x block size. ``provenance`` is
the first line of the attachment.

Memory grows with the number of attachments, not with the size of the logs:
lines are streamed, and records are yielded once all inputs of a read are done
(udev dumps may come after the kernel log they complete).
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta, tzinfo
from itertools import count
from pathlib import Path

from egress.errors import SourceError
from egress.records import DriveAttach, Issue, Provenance
from egress.sources.drives_kernel import (
    LOOKS_LIKE_DRIVE,
    NO_TIME,
    Attachment,
    KernelTracker,
    Verdict,
    When,
    gap_s,
)
from egress.sources.drives_udev import UdevAttachment, UdevMonitorParser, UdevVerdict
from egress.sources.logfile import IssueTally, Line, LineSource, read_head

log = logging.getLogger(__name__)

MATCH_WINDOW_S = 120.0
"""Longest gap between a kernel attachment's start and the udev ``add`` of the same disk."""

_DMESG_RAW = re.compile(r"^\[\s*(\d+\.\d+)\]\s?(.*)$")
_DMESG_HUMAN = re.compile(
    r"^\[([A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d{2}:\d{2}:\d{2} \d{4})\]\s?(.*)$")
_DMESG_ISO = re.compile(
    r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}),(\d{6})([+-]\d{2}:?\d{2}) (.*)$")
_CALLER = re.compile(r"^\[\s*[TC]\d+\]\s?")
_SYSLOG = re.compile(
    r"^([A-Z][a-z]{2}) ([ \d]\d) (\d{2}):(\d{2}):(\d{2}) (\S+) ([^\s:\[]+)(?:\[\d+\])?: ?(.*)$")
_RFC3339 = re.compile(
    r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})) (\S+) "
    r"([^\s:\[]+)(?:\[\d+\])?: ?(.*)$")
_UDEV_START = re.compile(r"^(?:UDEV|KERNEL)\s*\[\s*\d+\.\d+\]\s+\w+\s+/")
_MONTHS = {m: i for i, m in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1)}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

DRIVE_LOG_KINDS = ("dmesg", "kern.log", "journal-json", "udev-monitor")


def _kind_of_line(text: str) -> str | None:
    if text.startswith("{"):
        try:
            obj = json.loads(text)
        except ValueError:
            return None
        if isinstance(obj, dict) and ("MESSAGE" in obj or "__REALTIME_TIMESTAMP" in obj):
            return "journal-json"
        return None
    if _UDEV_START.match(text) or text.startswith("monitor will print the received events"):
        return "udev-monitor"
    if _DMESG_RAW.match(text) or _DMESG_HUMAN.match(text) or _DMESG_ISO.match(text):
        return "dmesg"
    if _SYSLOG.match(text) or _RFC3339.match(text):
        return "kern.log"
    return None


def detect_drive_log(path: Path | str) -> str | None:
    """Name the kind of drive log ``path`` is (one of :data:`DRIVE_LOG_KINDS`), or ``None``.

    Looks at the first 20 non-blank lines of the (decompressed) start of the
    file; the first line of a known shape decides. Raises
    :class:`~egress.errors.SourceError` when the file cannot be opened.
    """
    head = read_head(Path(path))
    lines = head.decode("utf-8", "replace").split("\n")
    if len(head) >= 64 * 1024:
        lines = lines[:-1]  # possibly cut
    seen = 0
    for text in lines:
        if not text.strip():
            continue
        kind = _kind_of_line(text.rstrip("\r"))
        if kind is not None:
            return kind
        seen += 1
        if seen >= 20:
            break
    return None


class DriveLogReader:
    """Read drive logs of ingest stations into :class:`~egress.records.DriveAttach` records.

    ``station`` names the station of inputs that carry no host name (dmesg,
    udev monitor); syslog and journal inputs use their own host names.
    ``boot_time`` (tz-aware) turns seconds-since-boot into wall-clock times.
    ``tz`` is the zone of local-time stamps (traditional syslog, ``dmesg -T``).
    ``year_reference`` dates yearless syslog stamps: each goes in the latest year
    that puts it no more than a day after ``year_reference`` (default: the file's
    modification time), which also handles a log running across New Year.

    Bad input is counted in :attr:`issues`, never raised: drive lines that do
    not parse (``malformed_drive_line``), undecodable journal lines
    (``malformed_json``), udev lines out of shape (``malformed_udev_line``),
    relative times with no boot time, a truncated gzip or half last line.
    Lines about anything else are not issues.
    """

    def __init__(self, *, station: str | None = None, boot_time: datetime | None = None,
                 tz: tzinfo = UTC, year_reference: datetime | None = None) -> None:
        if boot_time is not None and boot_time.tzinfo is None:
            raise ValueError("boot_time must be timezone-aware")
        if year_reference is not None and year_reference.tzinfo is None:
            raise ValueError("year_reference must be timezone-aware")
        self._station = station
        self._boot = boot_time
        self._tz = tz
        self._year_ref = year_reference
        self._tally = IssueTally()

    @property
    def issues(self) -> tuple[Issue, ...]:
        """Counted problems of every read so far, per file and kind, with first positions."""
        return self._tally.issues

    def read(self, paths: Iterable[Path | str]) -> Iterator[DriveAttach]:
        """Yield one record per attachment found in ``paths``, in the order they began.

        Every path is checked first: one that cannot be opened or is not a
        drive log raises :class:`~egress.errors.SourceError` naming it, before
        anything is read.
        """
        files: list[tuple[Path, str]] = []
        for p in paths:
            path = Path(p)
            kind = detect_drive_log(path)
            if kind is None:
                raise SourceError("not a drive log (dmesg, kern.log, journal JSON or "
                                  "udev monitor)", path=path)
            files.append((path, kind))
        seq = count()

        def new_seq() -> int:
            return next(seq)

        trackers: dict[str | None, KernelTracker] = {}
        boots: dict[str | None, str] = {}
        udev: list[UdevAttachment] = []
        for path, kind in files:
            log.debug("reading %s as %s", path, kind)
            if kind == "udev-monitor":
                udev.extend(self._read_udev(path, new_seq))
            else:
                self._read_kernel(path, kind, trackers, boots, new_seq)
        kernel = [a for t in trackers.values() for a in t.attachments]
        yield from _merge(kernel, udev)

    # ----------------------------------------------------------------- time

    def _from_mono(self, mono: float) -> When:
        wall = self._boot + timedelta(seconds=mono) if self._boot is not None else None
        return When(wall.astimezone(UTC) if wall is not None else None, mono)

    def _year_for(self, path: Path, month: int, day: int, hms: tuple[int, int, int]) -> datetime:
        ref = self._year_ref
        if ref is None:
            ref = datetime.fromtimestamp(os.stat(path).st_mtime, tz=UTC)
        ref = ref.astimezone(self._tz)
        limit = ref.replace(tzinfo=None) + timedelta(days=1)
        for year in (limit.year, limit.year - 1):
            try:
                t = datetime(year, month, day, *hms)
            except ValueError:  # Feb 29 in a common year
                continue
            if t <= limit:
                return t.replace(tzinfo=self._tz).astimezone(UTC)
        raise ValueError("no year fits")

    # --------------------------------------------------------------- kernel

    def _read_kernel(self, path: Path, kind: str, trackers: dict[str | None, KernelTracker],
                     boots: dict[str | None, str], new_seq: Callable[[], int]) -> None:
        src = LineSource(path)
        for line in src:
            if kind == "journal-json":
                parsed = self._journal_line(path, line, trackers, boots, new_seq)
            elif kind == "dmesg":
                parsed = self._dmesg_line(line)
            else:
                parsed = self._syslog_line(path, line)
            if parsed is None:
                if kind != "journal-json" and _unframed(kind, line.text) and any(
                        s in line.text for s in LOOKS_LIKE_DRIVE):
                    self._tally.add(path, "malformed_drive_line", offset=line.offset,
                                    line=line.number, detail=line.text[:200])
                continue
            station, when, msg = parsed
            tracker = trackers.get(station)
            if tracker is None:
                tracker = trackers[station] = KernelTracker(station, new_seq)
            prov = Provenance(path=str(path), line=line.number)
            verdict = tracker.feed(msg.lstrip(), when, prov)
            if verdict is Verdict.MALFORMED:
                self._tally.add(path, "malformed_drive_line", offset=line.offset,
                                line=line.number, detail=line.text[:200])
            elif verdict is Verdict.USED and when.wall is None and when.mono is not None:
                self._tally.add(path, "relative_time_without_boot_time", offset=line.offset,
                                line=line.number, detail="pass boot_time to date these lines")
        if src.truncation is not None:
            self._tally.add_truncation(path, src.truncation)

    def _dmesg_line(self, line: Line) -> tuple[str | None, When, str] | None:
        text = line.text
        m = _DMESG_RAW.match(text)
        if m is not None:
            return self._station, self._from_mono(float(m.group(1))), _CALLER.sub("", m.group(2))
        m = _DMESG_HUMAN.match(text)
        if m is not None:
            local = _human_time(text)
            if local is None:
                return None
            wall = local.replace(tzinfo=self._tz).astimezone(UTC)
            return self._station, When(wall, None), _CALLER.sub("", m.group(2))
        m = _DMESG_ISO.match(text)
        if m is not None:
            try:
                wall = datetime.fromisoformat(f"{m.group(1)}.{m.group(2)}{m.group(3)}")
            except ValueError:
                return None
            return self._station, When(wall.astimezone(UTC), None), m.group(4)
        return None

    def _syslog_line(self, path: Path, line: Line) -> tuple[str | None, When, str] | None:
        m = _SYSLOG.match(line.text)
        if m is not None:
            if m.group(7) != "kernel":
                return None
            month = _MONTHS.get(m.group(1))
            if month is None:
                return None
            try:
                wall: datetime | None = self._year_for(
                    path, month, int(m.group(2)),
                    (int(m.group(3)), int(m.group(4)), int(m.group(5))))
            except ValueError:
                wall = None
            host, msg = m.group(6), m.group(8)
        else:
            r = _RFC3339.match(line.text)
            if r is None or r.group(3) != "kernel":
                return None
            try:
                wall = datetime.fromisoformat(r.group(1)).astimezone(UTC)
            except ValueError:
                wall = None
            host, msg = r.group(2), r.group(4)
        mono: float | None = None
        d = _DMESG_RAW.match(msg)
        if d is not None:
            mono, msg = float(d.group(1)), _CALLER.sub("", d.group(2))
        return host, When(wall, mono), msg

    def _journal_line(self, path: Path, line: Line, trackers: dict[str | None, KernelTracker],
                      boots: dict[str | None, str],
                      new_seq: Callable[[], int]) -> tuple[str | None, When, str] | None:
        if not line.text.strip():
            return None
        try:
            entry = json.loads(line.text)
        except ValueError:
            entry = None
        if not isinstance(entry, dict):
            self._tally.add(path, "malformed_json", offset=line.offset, line=line.number,
                            detail=line.text[:200])
            return None
        if (_field(entry, "_TRANSPORT") or "kernel") != "kernel" and \
                _field(entry, "SYSLOG_IDENTIFIER") != "kernel":
            return None
        station = _field(entry, "_HOSTNAME") or self._station
        boot = _field(entry, "_BOOT_ID")
        tracker = trackers.get(station)
        if tracker is None:
            tracker = trackers[station] = KernelTracker(station, new_seq)
        if boot is not None:
            if boots.get(station, boot) != boot:
                tracker.reset()
            boots[station] = boot
        msg = _field(entry, "MESSAGE")
        realtime = _field(entry, "__REALTIME_TIMESTAMP")
        mono_us = _field(entry, "_SOURCE_MONOTONIC_TIMESTAMP") or _field(
            entry, "__MONOTONIC_TIMESTAMP")
        if msg is None or realtime is None or not realtime.isdigit():
            self._tally.add(path, "malformed_json", offset=line.offset, line=line.number,
                            detail="entry without MESSAGE or __REALTIME_TIMESTAMP")
            return None
        wall = _EPOCH + timedelta(microseconds=int(realtime))
        mono = int(mono_us) / 1e6 if mono_us is not None and mono_us.isdigit() else None
        devnode = _field(entry, "_UDEV_DEVNODE")
        links = _values(entry.get("_UDEV_DEVLINK"))
        if devnode is not None and links:
            tracker.note_devlinks(devnode, links)
        return station, When(wall, mono), msg

    # ----------------------------------------------------------------- udev

    def _read_udev(self, path: Path, new_seq: Callable[[], int]) -> list[UdevAttachment]:
        parser = UdevMonitorParser(self._station, new_seq, self._from_mono)
        src = LineSource(path)
        last: Line | None = None
        for line in src:
            last = line
            verdict = parser.feed(line.text, Provenance(path=str(path), line=line.number))
            self._note_udev(path, line, verdict)
        if last is not None:
            self._note_udev(path, last, parser.finish())
        if src.truncation is not None:
            self._tally.add_truncation(path, src.truncation)
        return parser.attachments

    def _note_udev(self, path: Path, line: Line, verdict: UdevVerdict) -> None:
        if verdict is UdevVerdict.MALFORMED:
            self._tally.add(path, "malformed_udev_line", offset=line.offset, line=line.number,
                            detail=line.text[:200])
        elif verdict is UdevVerdict.USED and self._boot is None:
            self._tally.add(path, "relative_time_without_boot_time", offset=line.offset,
                            line=line.number, detail="pass boot_time to date these events")


def _unframed(kind: str, text: str) -> bool:
    """True if ``text`` lacks (or has a broken) line prefix of its kind of log."""
    if kind == "dmesg":
        return _DMESG_RAW.match(text) is None and _DMESG_ISO.match(text) is None and (
            _DMESG_HUMAN.match(text) is None or _human_time(text) is None)
    return _SYSLOG.match(text) is None and _RFC3339.match(text) is None


def _human_time(text: str) -> datetime | None:
    m = _DMESG_HUMAN.match(text)
    if m is None:
        return None
    try:
        return datetime.strptime(m.group(1), "%a %b %d %H:%M:%S %Y")
    except ValueError:
        return None


def _values(value: object) -> list[str]:
    """A journal JSON field as text values: a string, a byte array, or a list of either."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        if value and all(isinstance(b, int) and 0 <= b <= 255 for b in value):
            return [bytes(value).decode("utf-8", "replace")]
        out: list[str] = []
        for item in value:
            out.extend(_values(item))
        return out
    return []


def _field(entry: dict[str, object], name: str) -> str | None:
    """The first value of a journal field (``None`` if absent or too large to export)."""
    values = _values(entry.get(name))
    return values[0] if values else None


# ------------------------------------------------------------------- merging


def _compatible(k: Attachment, u: UdevAttachment) -> float | None:
    """Gap in seconds if ``u`` can be the udev view of ``k``, else ``None``."""
    if k.device != u.device:
        return None
    if k.station is not None and u.station is not None and k.station != u.station:
        return None
    if k.hctl is not None and u.hctl is not None and k.hctl != u.hctl:
        return None
    if k.attached != NO_TIME and u.added is not None:
        gap = gap_s(k.attached, u.added)
    elif k.detached is not None and u.removed is not None:
        gap = gap_s(k.detached, u.removed)
    else:
        return None
    return gap if gap is not None and gap <= MATCH_WINDOW_S else None


def _merge(kernel: list[Attachment], udev: list[UdevAttachment]) -> Iterator[DriveAttach]:
    pairs: dict[int, UdevAttachment] = {}
    taken: set[int] = set()
    for k in kernel:
        best: tuple[float, UdevAttachment] | None = None
        for u in udev:
            if u.seq in taken:
                continue
            gap = _compatible(k, u)
            if gap is not None and (best is None or gap < best[0]):
                best = (gap, u)
        if best is not None:
            pairs[k.seq] = best[1]
            taken.add(best[1].seq)
    out: list[tuple[int, DriveAttach]] = [(k.seq, _record(k, pairs.get(k.seq))) for k in kernel]
    out.extend((u.seq, _udev_record(u)) for u in udev if u.seq not in taken)
    out.sort(key=lambda item: item[0])
    for _, record in out:
        yield record


def _scsi_model(k: Attachment) -> str | None:
    if k.scsi is None or k.scsi.model is None:
        return None
    vendor = k.scsi.vendor
    return k.scsi.model if vendor in (None, "ATA") else f"{vendor} {k.scsi.model}"


def _record(k: Attachment, u: UdevAttachment | None) -> DriveAttach:
    usb = k.usb
    model = (k.ata_model
             or (u.model if u is not None and u.id_bus in ("ata", "nvme") else None)
             or _scsi_model(k)
             or (u.model if u is not None else None)
             or (usb.product if usb is not None else None))
    serial = ((u.serial if u is not None else None) or k.devlink_serial
              or (usb.serial if usb is not None else None))
    if usb is not None:
        bus: str | None = "usb"
    elif k.nvme:
        bus = "nvme"
    elif u is not None and u.transport is not None:
        bus = u.transport
    elif k.ata_model is not None or (k.scsi is not None and k.scsi.vendor == "ATA"):
        bus = "ata"
    elif k.hctl is not None:
        bus = "scsi"
    else:
        bus = None
    attached = k.attached.wall
    if attached is None and k.attached == NO_TIME and u is not None and u.added is not None:
        attached = u.added.wall
    detached = k.detached.wall if k.detached is not None else None
    if k.detached is None and u is not None and u.removed is not None:
        detached = u.removed.wall
    return DriveAttach(station=k.station, device=k.device, serial=serial, model=model, bus=bus,
                       capacity_bytes=k.capacity_bytes, attached=attached, detached=detached,
                       provenance=k.provenance)


def _udev_record(u: UdevAttachment) -> DriveAttach:
    return DriveAttach(
        station=u.station, device=u.device, serial=u.serial, model=u.model, bus=u.transport,
        capacity_bytes=None, attached=u.added.wall if u.added is not None else None,
        detached=u.removed.wall if u.removed is not None else None, provenance=u.provenance)
