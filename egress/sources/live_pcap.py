"""A pcap or pcapng byte stream (``tcpdump -w -``) fed piece by piece to the capture engine.

:class:`CaptureStream` is a :class:`~egress.sources.pcap.CaptureReader` whose bytes come
from the caller (a pipe's reads) instead of files: :meth:`CaptureStream.feed` takes any
piece of the stream and returns the flows that ended (and interim records), keeping the
unparsed tail (a record cut by the read) for the next piece; :meth:`CaptureStream.end`
ends the stream and every open flow. The engine, its options and its counting are those
of ``egress flows``, so a capture streamed in any pieces gives the flows of the file.
"""

from __future__ import annotations

from pathlib import Path

from egress.errors import SourceError
from egress.records import Flow
from egress.sources.pcap import CaptureReader, FlowOptions

MAX_PENDING_BYTES = 256 * 1024 * 1024
"""Most unparsed bytes kept (one record cannot be larger): beyond, the stream is broken."""


class CaptureStream(CaptureReader):
    """One capture stream (module doc). ``name`` is the path its issues and errors cite.

    A fault in the stream (not a capture, a corrupt record length) ends it: the flows
    before the fault are kept, the fault is in :attr:`errors` and :attr:`stats`, and later
    pieces are ignored (a new stream, e.g. a restarted tcpdump, needs a new object).
    Not thread-safe: feed it from one thread.
    """

    def __init__(self, name: str, *, options: FlowOptions | None = None) -> None:
        super().__init__(options=options)
        self._name = Path(name)
        self._pending = b""
        self._ended = False
        self._engine.begin_file()

    @property
    def ended(self) -> bool:
        """Whether the stream ended (:meth:`end`, or a fault)."""
        return self._ended

    def feed(self, data: bytes) -> list[Flow]:
        """Take the next piece of the stream; return the records it completed."""
        if self._ended or not data:
            return []
        buffer = self._pending + data if self._pending else data
        try:
            consumed = self._feed(memoryview(buffer), False, self._name)
        except SourceError as exc:
            return self._fault(exc)
        self._pending = buffer[consumed:]
        if len(self._pending) > MAX_PENDING_BYTES:
            return self._fault(SourceError("a capture record larger than "
                                           f"{MAX_PENDING_BYTES} bytes", path=self._name))
        return list(self._drain())

    def end(self) -> list[Flow]:
        """End the stream: parse what is left and end every open flow."""
        if self._ended:
            return []
        self._ended = True
        out: list[Flow] = []
        try:
            self._feed(memoryview(self._pending), True, self._name)
        except SourceError as exc:
            self.errors.append(exc)
        self._pending = b""
        out += self._drain()
        out += self._flush()
        self._note_issues(self._name)
        return out

    def _fault(self, exc: SourceError) -> list[Flow]:
        self.errors.append(exc)
        self._ended = True
        self._pending = b""
        out = [*self._drain(), *self._flush()]
        self._note_issues(self._name)
        return out
