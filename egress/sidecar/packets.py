"""Live packets: a pcap stream on a command's stdout, through the capture flow engine.

The command (default ``tcpdump -i IFACE -w - -U [BPF]``) is read in a thread; each read
goes to a :class:`~egress.sources.live_pcap.CaptureStream` (the engine of ``egress
flows``, with its Zeek timeouts and ``interim_s`` as the interim interval), and the
records it completes wait in memory for the next tick. When the command ends, its
stream is ended (every open flow gets its final record); a restarted command is a new
stream.

A flow's interim records are running totals. :func:`flow_increments` turns every record
(interim or final) into the increment since the flow's previous record, spanning from
that record's end (or the flow's start) to this one's, with ``opened`` the flow's start,
as the Zeek long-connection records are treated, so a long transfer counts in the windows
while it runs and each byte once.

What is kept across a restart: the increments committed. Packets are not replayed: the
flows open when the process stops lose what they carried since their last interim
record (at most ``interim_s`` plus a tick), and a connection still open afterwards is
seen as a new flow (no handshake) from its next packet, counting only the new bytes.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

import pyarrow as pa

from egress.records import Attributed, Flow, Issue
from egress.sidecar.command import Command
from egress.sidecar.config import PacketsConfig
from egress.sources.live_pcap import CaptureStream
from egress.sources.pcap import FlowOptions
from egress.transfers import TIMESTAMP, TRANSFERS_SCHEMA, transfer_batches

log = logging.getLogger(__name__)


@dataclasses.dataclass(slots=True)
class _Seen:
    bytes_in: int
    bytes_out: int
    end: datetime


class FlowIncrements:
    """Per open flow (``uid``), the totals and end of its last record (module doc)."""

    def __init__(self) -> None:
        self._seen: dict[str, _Seen] = {}

    def __len__(self) -> int:
        return len(self._seen)

    def table(self, items: Iterable[Attributed]) -> pa.Table:
        """The :data:`~egress.transfers.TRANSFERS_SCHEMA` rows of the increments of the
        attributed flow records ``items`` (unattributed ones only update the totals)."""
        kept: list[Attributed] = []
        opened: list[datetime | None] = []
        for item in items:
            flow = item.record
            if not isinstance(flow, Flow):
                raise TypeError(f"expected flows, got {type(flow).__name__}")
            end = flow.start + timedelta(seconds=max(flow.duration_s, 0.0))
            before = self._seen.get(flow.uid)
            if flow.interim:
                self._seen[flow.uid] = _Seen(item.bytes_in, item.bytes_out, end)
            else:
                self._seen.pop(flow.uid, None)
            if item.tenant is None:
                continue
            if before is None:
                start, was_in, was_out = flow.start, 0, 0
            else:
                start, was_in, was_out = min(before.end, end), before.bytes_in, before.bytes_out
            part = dataclasses.replace(
                flow, interim=False, start=start,
                duration_s=max((end - start).total_seconds(), 0.0))
            kept.append(dataclasses.replace(
                item, record=part, bytes_in=max(item.bytes_in - was_in, 0),
                bytes_out=max(item.bytes_out - was_out, 0)))
            opened.append(flow.start)
        table = pa.Table.from_batches(list(transfer_batches(kept)), schema=TRANSFERS_SCHEMA)
        index = table.schema.get_field_index("opened")
        return table.set_column(index, TRANSFERS_SCHEMA.field(index),
                                pa.array(opened, TIMESTAMP))


class PacketInput:
    """One ``packets`` input (module doc): the command, its stream, the flows waiting."""

    def __init__(self, spec: PacketsConfig) -> None:
        self.spec = spec
        self._options = FlowOptions(interim_interval_s=spec.interim_s)
        self._lock = threading.Lock()
        self._flows: list[Flow] = []
        self._stream: CaptureStream | None = None
        self._issues: dict[tuple[str, str], Issue] = {}
        self.increments = FlowIncrements()
        self.command = Command(spec.name, on_data=self._take, on_end=self._end)

    def _take(self, data: bytes) -> None:
        stream = self._stream
        if stream is None:
            return
        was_ended = stream.ended
        flows = stream.feed(data)
        if stream.ended and not was_ended:
            log.error("%s: the capture stream is broken, the rest of it is ignored "
                      "(restart the command): %s", self.spec.name, stream.errors[-1])
        if flows:
            with self._lock:
                self._flows += flows

    def _end(self, status: int | None) -> None:
        stream = self._stream
        if stream is None:
            return
        flows = stream.end()
        with self._lock:
            self._flows += flows
            for issue in stream.stats.issues:
                key = (issue.path, issue.kind)
                old = self._issues.get(key)
                self._issues[key] = dataclasses.replace(
                    issue, count=issue.count + (old.count if old else 0))

    def pump(self) -> list[Flow]:
        """The records completed since the last call; start or restart the command when
        due (a new stream)."""
        restart = self.command.due(self.spec.restart_after_s)
        with self._lock:
            flows, self._flows = self._flows, []
        if restart:
            self._stream = CaptureStream(f"{self.spec.name}:{' '.join(self.spec.argv)}",
                                         options=self._options)
            self.command.start(self.spec.argv)
        return flows

    @property
    def issues(self) -> Sequence[Issue]:
        """Problems of the streams that ended (truncated packets, unreadable streams)."""
        with self._lock:
            return list(self._issues.values())

    def close(self) -> None:
        """Stop the command."""
        self.command.stop()
