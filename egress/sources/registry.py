"""Which source reads a file: detection from content, and the registry of input kinds.

Each kind has a detector (``path -> format or None``, reading only the start of
the file) and a reader factory. The registry is an explicit dict; installed
packages may add kinds through the ``egress.sources`` entry-point group (each
entry point names an :class:`InputKind`). Detection tries the kinds in order and
the first that recognizes a file wins.
"""

from __future__ import annotations

import gzip
import logging
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from importlib.metadata import entry_points
from pathlib import Path
from typing import Protocol

from egress.columns import batch_path
from egress.errors import SourceError
from egress.records import Issue
from egress.sources.copylogs import CopyLogReader, detect_copy_log
from egress.sources.drives import DriveLogReader, detect_drive_log
from egress.sources.objectstore import ObjectStoreLogReader, detect_objectstore_log
from egress.sources.pcap import CaptureReader
from egress.sources.zeek import ZeekLogReader, detect_zeek_log
from egress.sources.zeek_fields import HTTP_SPEC, SSL_SPEC
from egress.sources.zeek_files import CONN_LOGS

log = logging.getLogger(__name__)

_CAPTURE_MAGICS = {
    b"\xd4\xc3\xb2\xa1": "pcap", b"\xa1\xb2\xc3\xd4": "pcap",
    b"\x4d\x3c\xb2\xa1": "pcap-ns", b"\xa1\xb2\x3c\x4d": "pcap-ns",
    b"\x0a\x0d\x0d\x0a": "pcapng",
}


class RecordReader(Protocol):
    """What every source offers: records from paths, and the issues counted meanwhile."""

    def read(self, paths: Iterable[Path | str]) -> Iterator[object]: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadOptions:
    """Facts about inputs that their content does not say."""

    station: str | None = None
    """Ingest station name for dmesg dumps and copy logs (syslog/journal name their host)."""
    boot_time: datetime | None = None
    """Boot time of the station, to date dmesg lines given in seconds since boot."""


@dataclass(frozen=True, slots=True)
class InputKind:
    """One kind of input: how to recognize it and how to read it."""

    name: str
    detect: Callable[[Path], str | None]
    reader: Callable[[ReadOptions], RecordReader]
    issues: Callable[[RecordReader], Sequence[Issue]]


def _head(path: Path, size: int) -> bytes:
    with path.open("rb") as raw:
        start = raw.read(size)
    if start[:2] == b"\x1f\x8b":
        try:
            with gzip.open(path, "rb") as fh:
                return fh.read(size)
        except (OSError, EOFError, zlib.error):
            return b""
    return start


def detect_capture(path: Path) -> str | None:
    """Return ``pcap``, ``pcap-ns`` or ``pcapng`` when the file (or its gzip) is a capture."""
    return _CAPTURE_MAGICS.get(_head(path, 4))


class ZeekRows:
    """Zeek logs as rows (dicts) for ``egress read``; the pipeline uses the Arrow batches.

    conn and long-connection logs give ``CONN_SCHEMA`` rows with their increments;
    ssl and http logs their enrichment columns; other Zeek logs are not read yet.
    """

    _LOGS = ((CONN_LOGS, None), (frozenset({"ssl"}), SSL_SPEC), (frozenset({"http"}), HTTP_SPEC))

    def __init__(self) -> None:
        self.reader = ZeekLogReader()

    def read(self, paths: Iterable[Path | str]) -> Iterator[object]:
        files = [Path(p) for p in paths]
        kinds = {p: detect_zeek_log(p) for p in files}
        for logs, spec in self._LOGS:
            chosen = [p for p in files if kinds[p] in logs]
            if not chosen:
                continue
            batches = (self.reader.read_conn(chosen) if spec is None
                       else self.reader.read_log(chosen, spec, logs))
            for batch in batches:
                source = batch_path(batch)
                name = f"Zeek.{spec.name if spec else 'conn'}"
                for row in batch.to_pylist():
                    line = row.pop("line", None)
                    yield {"record": name, **row, "source.path": source, "source.line": line}
        for path, kind in kinds.items():
            if not any(kind in logs for logs, _ in self._LOGS):
                raise SourceError(f"Zeek {kind}.log is not read by egress yet", path=path)


def _zeek_issues(reader: RecordReader) -> Sequence[Issue]:
    assert isinstance(reader, ZeekRows)
    return reader.reader.stats.issues


def _capture_issues(reader: RecordReader) -> Sequence[Issue]:
    assert isinstance(reader, CaptureReader)
    return reader.stats.issues


def _issues_attr(reader: RecordReader) -> Sequence[Issue]:
    issues: Sequence[Issue] = getattr(reader, "issues", ())
    return issues


BUILTIN_KINDS: dict[str, InputKind] = {
    "capture": InputKind("capture", detect_capture, lambda _: CaptureReader(), _capture_issues),
    "zeek": InputKind("zeek", detect_zeek_log, lambda _: ZeekRows(), _zeek_issues),
    "objectstore": InputKind("objectstore", detect_objectstore_log,
                             lambda _: ObjectStoreLogReader(), _issues_attr),
    "drives": InputKind("drives", detect_drive_log,
                        lambda o: DriveLogReader(station=o.station, boot_time=o.boot_time),
                        _issues_attr),
    "copylog": InputKind("copylog", detect_copy_log, lambda o: CopyLogReader(station=o.station),
                         _issues_attr),
}


def input_kinds() -> dict[str, InputKind]:
    """The built-in kinds followed by those installed packages register."""
    kinds = dict(BUILTIN_KINDS)
    for ep in entry_points(group="egress.sources"):
        kind = ep.load()
        if not isinstance(kind, InputKind):
            log.warning("entry point %s is not an egress InputKind; ignored", ep.name)
            continue
        kinds.setdefault(kind.name, kind)
    return kinds


@dataclass(frozen=True, slots=True)
class Detected:
    """A file and what it was recognized as."""

    path: Path
    kind: str
    format: str


def detect(path: Path, kinds: dict[str, InputKind] | None = None) -> Detected:
    """Recognize one file from its content.

    Raises:
        SourceError: the file cannot be opened or is of no known kind.
    """
    try:
        if not path.is_file():
            raise SourceError("not a readable file", path=path)
        for kind in (kinds or input_kinds()).values():
            fmt = kind.detect(path)
            if fmt is not None:
                return Detected(path, kind.name, fmt)
    except OSError as exc:
        raise SourceError(f"cannot read: {exc.strerror}", path=path) from exc
    raise SourceError(
        "not a recognized input (expected a capture, a Zeek log, an object-store access log, "
        "kernel/udev log lines of drives, or an rsync/rclone copy log)", path=path)


def group_by_kind(detected: Iterable[Detected]) -> dict[str, list[Detected]]:
    """Group files by kind, keeping their order (captures are one continuous stream)."""
    groups: dict[str, list[Detected]] = {}
    for d in detected:
        groups.setdefault(d.kind, []).append(d)
    return groups
