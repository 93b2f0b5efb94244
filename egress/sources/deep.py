"""Deep look at the largest flows of a capture: tshark, through pyshark.

The flow reader (:mod:`egress.sources.pcap`) counts volume; this module tells an
analyst what the biggest flows *are*. :func:`inspect_flows` picks the ``top``
flows by IP volume, runs tshark once over the capture with a display filter that
keeps only their packets, and maps each dissected packet back to its flow by
5-tuple and time. It reports TLS server names (SNI) and certificate subjects,
HTTP requests (method, host, URI, Content-Length, as object-store PUTs carry
them), and SMB2 / NFS write volumes.

Only what tshark dissected is reported: encrypted payloads (TLS 1.3 certificates,
HTTPS requests, SMB3 encryption) yield nothing, and nothing is guessed in their
place. tshark runs with pinned preferences (see :data:`TSHARK_PREFS`): HTTP
bodies are not reassembled, so a multi-gigabyte PUT costs no memory and its
headers are reported even when body segments were not captured; retransmitted
segments are not dissected twice, so nothing is counted twice.

Certificate subjects are decoded by :mod:`egress.sources.x509_names`; the report
for people is written by :mod:`egress.formats.insights`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import shutil
import subprocess
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyshark
from pyshark.capture.capture import TSharkCrashException
from pyshark.tshark.tshark import TSharkNotFoundException, TSharkVersionException

from egress.errors import ConfigError, SourceError
from egress.records import Flow
from egress.sources.x509_names import certificate_subject

log = logging.getLogger(__name__)

TSHARK_PREFS: dict[str, str] = {
    # Reassemble what carries the fields we read (TLS handshakes, SMB2 and RPC messages
    # spanning segments), whatever the user's Wireshark preferences say.
    "tcp.desegment_tcp_streams": "TRUE",
    "tls.desegment_ssl_records": "TRUE",
    "nbss.desegment_nbss_commands": "TRUE",
    "rpc.desegment_rpc_over_tcp": "TRUE",
    "http.desegment_headers": "TRUE",
    # Not the body: reassembling it would hold a whole upload in tshark's memory and
    # hide the request when one body segment is missing from the capture.
    "http.desegment_body": "FALSE",
    # A retransmitted request must not be reported (and its bytes counted) twice.
    "tcp.no_subdissector_on_error": "TRUE",
}
"""tshark preferences :func:`inspect_flows` runs with."""

_PDML_PROTOCOLS = "ip ipv6 tcp udp tls quic http rpc nfs smb2"
"""Protocols whose fields tshark writes out (``-J``); others appear as empty layers."""

_PORT_PROTOCOLS = {6: "tcp", 17: "udp"}
_TSHARK_EXIT_WAIT_S = 5.0  # once its output has ended
_TIME_SLACK_S = 0.001  # Flow.start is truncated to microseconds; packet times are not
_NFS3_WRITE_PROCEDURE = 7
_RPC_CALL = 0

_INSTALL_HINT = (
    "install Wireshark's command-line tool (apt install tshark) "
    "or give the path of a tshark executable"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpRequest:
    """One HTTP/1.x request line and the headers that size it.

    ``host`` is ``None`` when the request had no Host header; ``content_length``
    (bytes) is ``None`` when it had no Content-Length header (a bodiless or
    chunked request).
    """

    method: str
    host: str | None
    uri: str
    content_length: int | None


@dataclass(frozen=True, slots=True, kw_only=True)
class FlowInsight:
    """What tshark found in one of the largest flows.

    The identity fields copy the :class:`~egress.records.Flow`. Tuples keep the
    order of first appearance, without repeats (``http_requests`` keeps every
    request). Volume fields are ``None`` when the protocol was not seen in the
    flow, otherwise the sum in bytes (possibly 0):

    * ``http_put_bytes``: Content-Length of the PUT and POST requests (``None``
      when no HTTP request was seen);
    * ``smb_write_bytes``: Length of the SMB2 WRITE requests (``None`` when no
      SMB2 message was seen);
    * ``nfs_write_bytes``: count of the NFSv3 WRITE calls plus data length of the
      NFSv4 WRITE operations (``None`` when no NFS message was seen).

    ``packets_inspected`` counts the flow's packets that carried a reported
    message (TLS ClientHello or Certificate, HTTP request, SMB2 WRITE, NFS) and
    were matched back to it by 5-tuple and time; tshark dissects every packet of
    the chosen flows, but only those reach Python (see :data:`APPLICATION_FILTER`). It is
    ``None`` for flows without ports (ICMP, ESP, GRE, ...), which are reported
    for their volume but not inspected.
    """

    uid: str
    community_id: str
    proto: str
    orig_h: str
    orig_p: int
    resp_h: str
    resp_p: int
    total_ip_bytes: int
    tls_server_names: tuple[str, ...] = ()
    tls_certificate_subjects: tuple[str, ...] = ()
    http_requests: tuple[HttpRequest, ...] = ()
    http_put_bytes: int | None = None
    smb_write_bytes: int | None = None
    nfs_write_bytes: int | None = None
    packets_inspected: int | None = None


@dataclass(slots=True)
class _Tally:
    """Mutable accumulator for one flow while tshark's packets stream by."""

    flow: Flow
    start_s: float
    end_s: float
    server_names: dict[str, None] = field(default_factory=dict)
    subjects: dict[str, None] = field(default_factory=dict)
    requests: list[HttpRequest] = field(default_factory=list)
    put_bytes: int | None = None
    smb_bytes: int | None = None
    nfs_bytes: int | None = None
    packets: int = 0

    def insight(self, *, inspected: bool) -> FlowInsight:
        f = self.flow
        return FlowInsight(
            uid=f.uid, community_id=f.community_id, proto=f.proto,
            orig_h=f.orig_h, orig_p=f.orig_p, resp_h=f.resp_h, resp_p=f.resp_p,
            total_ip_bytes=f.total_ip_bytes,
            tls_server_names=tuple(self.server_names),
            tls_certificate_subjects=tuple(self.subjects),
            http_requests=tuple(self.requests),
            http_put_bytes=self.put_bytes,
            smb_write_bytes=self.smb_bytes,
            nfs_write_bytes=self.nfs_bytes,
            packets_inspected=self.packets if inspected else None,
        )


_Key = tuple[int, frozenset[tuple[str, int]]]


def inspect_flows(
    capture: Path,
    flows: Sequence[Flow],
    *,
    top: int = 10,
    tshark_path: str | None = None,
) -> list[FlowInsight]:
    """Dissect the ``top`` largest flows of ``capture`` with tshark, largest first.

    ``flows`` are the flows read from ``capture`` (interim records are ignored);
    they are ranked by ``total_ip_bytes`` (ties by start time, then uid). tshark
    runs once, with a display filter that keeps only the chosen flows' packets.
    ``tshark_path`` is a tshark executable (found on ``PATH`` when ``None``); as
    pyshark runs it, its file name must be ``tshark``. pyshark runs an event loop of
    its own, so this must not be called from a thread whose event loop is running.

    Raises :class:`ValueError` when ``top`` is below 1,
    :class:`~egress.errors.ConfigError` when tshark cannot be found or run, and
    :class:`~egress.errors.SourceError` when tshark cannot read the capture.
    """
    if top < 1:
        raise ValueError(f"top must be at least 1, got {top}")
    chosen = sorted(
        (f for f in flows if not f.interim),
        key=lambda f: (-f.total_ip_bytes, f.start, f.uid),
    )[:top]
    if not chosen:
        return []
    tallies = [_tally(f) for f in chosen]
    by_key: dict[_Key, list[_Tally]] = {}
    for t in tallies:
        key = _flow_key(t.flow)
        if key is not None:
            by_key.setdefault(key, []).append(t)
    if by_key:
        tshark = _resolve_tshark(tshark_path)
        display_filter = build_display_filter(chosen)
        log.debug("tshark display filter for %d flows: %s", len(by_key), display_filter)
        with contextlib.closing(
            _dissect(capture, tshark=tshark, display_filter=display_filter)
        ) as packets:
            for packet in packets:
                _take_packet(packet, by_key)
    return [t.insight(inspected=_flow_key(t.flow) is not None) for t in tallies]


APPLICATION_FILTER = (
    "(tls.handshake.type == 1 || tls.handshake.type == 11 || http.request || smb2.cmd == 9"
    " || nfs)"
)
"""Only packets that carry what is reported reach Python: parsing tshark's output
per packet is the slow part, and a bulk flow has millions of packets without any."""


def build_display_filter(flows: Sequence[Flow]) -> str:
    """Return one tshark display filter that matches the packets of ``flows``.

    Flows without ports are left out; the result is ``""`` when none is left.
    Packets inside ICMP errors (which quote a flow's headers) are excluded.
    """
    terms: dict[str, None] = {}
    for f in flows:
        transport = _PORT_PROTOCOLS.get(f.ip_proto)
        if transport is None:
            continue
        ip = "ip" if ipaddress.ip_address(f.orig_h).version == 4 else "ipv6"
        terms[
            f"({ip}.addr=={f.orig_h} && {ip}.addr=={f.resp_h}"
            f" && {transport}.port=={f.orig_p} && {transport}.port=={f.resp_p})"
        ] = None
    if not terms:
        return ""
    return "(" + " || ".join(terms) + ") && !icmp && !icmpv6 && " + APPLICATION_FILTER


# --- running tshark -------------------------------------------------------------------------


def _resolve_tshark(tshark_path: str | None) -> str:
    """Return the tshark executable to run, or raise ConfigError."""
    name = "tshark" if tshark_path is None else tshark_path
    found = shutil.which(name)
    if found is None:
        where = "on PATH" if tshark_path is None else f"at {tshark_path!r}"
        raise ConfigError(f"tshark not found {where}: {_INSTALL_HINT}")
    # pyshark runs "<directory>/tshark" whatever the file name given, so a differently
    # named executable would silently be swapped for another tshark.
    if Path(found).name != "tshark":
        raise ConfigError(f"{found!r} is not named 'tshark', which pyshark requires")
    return found


class _FileCapture(pyshark.FileCapture):  # type: ignore[misc]  # pyshark has no types
    """pyshark's FileCapture, keeping tshark's exit status instead of guessing at it.

    pyshark 0.6 kills tshark when its output ends and raises only if it happened to
    see the exit first, so a capture tshark cannot read would pass for an empty
    one. This override of its private ``_cleanup_subprocess`` (the tests check it
    still takes effect) lets tshark exit, records the status, and never raises.
    """

    exit_status: int | None = None
    stderr_lines: tuple[str, ...] = ()

    async def _handle_process_stderr_forever(self, stderr: Any) -> None:
        # pyshark keeps only the last line; tshark explains a bad file over two.
        while line := await stderr.readline():
            text = line.decode(errors="replace").strip()
            if text and not text.startswith("Running as user"):
                self.stderr_lines = (*self.stderr_lines[-4:], text)

    async def _cleanup_subprocess(self, process: Any) -> None:
        if process.returncode is None and getattr(self, "_eof_reached", True):
            # tshark's output has ended: it is exiting by itself.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.wait(), _TSHARK_EXIT_WAIT_S)
        if process.returncode is None:  # stopped before the end, or hung
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
        self.exit_status = process.returncode


def _dissect(
    capture: Path, *, tshark: str, display_filter: str
) -> Generator[Any, None, None]:
    """Yield pyshark packets of ``capture`` that match ``display_filter``.

    pyshark drives tshark through asyncio; it gets an event loop of its own, closed
    after the tshark process and its pipes, however the iteration ends.
    """
    loop = asyncio.new_event_loop()
    try:
        yield from _dissect_on(loop, capture, tshark=tshark, display_filter=display_filter)
    finally:
        _close_loop(loop)


def _dissect_on(
    loop: asyncio.AbstractEventLoop, capture: Path, *, tshark: str, display_filter: str
) -> Iterator[Any]:
    try:
        cap = _FileCapture(
            str(capture),
            display_filter=display_filter,
            keep_packets=False,
            use_json=False,
            include_raw=False,
            tshark_path=tshark,
            override_prefs=TSHARK_PREFS,
            custom_parameters=["-J", _PDML_PROTOCOLS],
            eventloop=loop,
        )
    except FileNotFoundError as exc:
        raise SourceError("cannot open capture: no such file", path=capture) from exc
    crash: TSharkCrashException | None = None
    try:
        packets = iter(cap)
        try:
            yield from packets
        finally:
            packets.close()  # a generator: ends tshark now if iteration stopped early
    except TSharkCrashException as exc:  # tshark died at start
        crash = exc
    except (TSharkNotFoundException, TSharkVersionException, subprocess.CalledProcessError,
            OSError) as exc:
        if isinstance(exc, PermissionError):
            raise SourceError(f"cannot open capture: {exc}", path=capture) from exc
        raise ConfigError(f"cannot run tshark at {tshark!r}: {exc}") from exc
    finally:
        cap.close()
    status = cap.exit_status
    if crash is not None or (status is not None and status > 0):
        detail = " ".join(cap.stderr_lines).removeprefix("tshark: ")
        cause = crash or subprocess.CalledProcessError(
            status or 0, [tshark, "-r", str(capture)], stderr=detail
        )
        raise SourceError(
            f"tshark cannot read the capture (exit status {status})"
            + (f": {detail}" if detail else ""),
            path=capture,
        ) from cause


def _close_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Close ``loop`` as :func:`asyncio.run` does: cancel what is left, then close."""
    try:
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        loop.close()


# --- mapping packets to flows ---------------------------------------------------------------


def _tally(flow: Flow) -> _Tally:
    start = flow.start.timestamp()
    return _Tally(
        flow=flow,
        start_s=start - _TIME_SLACK_S,
        end_s=start + flow.duration_s + _TIME_SLACK_S,
    )


def _flow_key(flow: Flow) -> _Key | None:
    if flow.ip_proto not in _PORT_PROTOCOLS:
        return None
    return _key(flow.ip_proto, flow.orig_h, flow.orig_p, flow.resp_h, flow.resp_p)


def _key(ip_proto: int, a: str, a_port: int, b: str, b_port: int) -> _Key:
    # Address text is normalized so tshark's and the flow reader's IPv6 spellings agree.
    return ip_proto, frozenset(
        {(str(ipaddress.ip_address(a)), a_port), (str(ipaddress.ip_address(b)), b_port)}
    )


def _packet_keys(packet: Any) -> Iterator[tuple[_Key, int]]:
    """Yield each (5-tuple key, index of its transport layer), innermost first.

    A tunnelled packet has one network/transport pair per level; a packet quoted
    inside an ICMP error is not the flow's, so layers after ICMP are not used.
    """
    pairs: list[tuple[_Key, int]] = []
    network: Any = None
    for index, layer in enumerate(packet.layers):
        name = layer.layer_name
        if name in ("icmp", "icmpv6"):
            break
        if name in ("ip", "ipv6"):
            network = layer
        elif network is not None and name in ("tcp", "udp"):
            proto = 6 if name == "tcp" else 17
            prefix = "ip" if network.layer_name == "ip" else "ipv6"
            try:
                src = _first(network, f"{prefix}.src")
                dst = _first(network, f"{prefix}.dst")
                sport = _first(layer, f"{name}.srcport")
                dport = _first(layer, f"{name}.dstport")
                if src is None or dst is None or sport is None or dport is None:
                    continue
                pairs.append((_key(proto, src, int(sport), dst, int(dport)), index))
            except ValueError:
                continue
            network = None
    yield from reversed(pairs)


def _take_packet(packet: Any, by_key: dict[_Key, list[_Tally]]) -> None:
    """Credit ``packet`` to the chosen flows it belongs to; read its fields into the innermost."""
    try:
        when = float(packet.sniff_timestamp)
    except (TypeError, ValueError):
        log.debug("packet %s has no usable timestamp; skipped", packet.number)
        return
    owner: tuple[_Tally, int] | None = None
    for key, index in _packet_keys(packet):
        for t in by_key.get(key, ()):
            if t.start_s <= when <= t.end_s:
                t.packets += 1
                if owner is None:
                    owner = (t, index)
                break
    if owner is not None:
        tally, index = owner
        _read_application(packet.layers[index + 1:], tally)


def _read_application(layers: Sequence[Any], tally: _Tally) -> None:
    """Read the fields of the layers above a flow's transport into its tally."""
    rpc_message_type: int | None = None
    for layer in layers:
        name = layer.layer_name
        if name in ("ip", "ipv6"):
            break  # a tunnelled packet: what follows belongs to the inner flow
        if name in ("tls", "quic"):  # QUIC carries its TLS handshake inside
            for server_name in _all(layer, "tls.handshake.extensions_server_name"):
                tally.server_names[server_name] = None
            for subject_der in _all(layer, "x509af.subject", raw=True):
                subject = certificate_subject(subject_der)
                if subject is not None:
                    tally.subjects[subject] = None
        elif name == "http":
            _read_http(layer, tally)
        elif name == "smb2":
            tally.smb_bytes = (tally.smb_bytes or 0) + sum(
                _ints(_all(layer, "smb2.write_length"))
            )
        elif name == "rpc":
            types = _ints(_all(layer, "rpc.msgtyp"))
            rpc_message_type = types[0] if types else None
        elif name == "nfs":
            written = 0
            if rpc_message_type == _RPC_CALL:
                # NFSv4: data length of each WRITE operation in the COMPOUND.
                written += sum(_ints(_all(layer, "nfs.write.data_length")))
                if _ints(_all(layer, "nfs.procedure_v3")) == [_NFS3_WRITE_PROCEDURE]:
                    written += sum(_ints(_all(layer, "nfs.count3")))
            tally.nfs_bytes = (tally.nfs_bytes or 0) + written


def _read_http(layer: Any, tally: _Tally) -> None:
    method = _first(layer, "http.request.method")
    if method is None:
        return  # a response or a continuation
    if tally.put_bytes is None:
        tally.put_bytes = 0
    uri = _first(layer, "http.request.uri") or ""
    lengths = _ints(_all(layer, "http.content_length_header"))
    length = lengths[0] if lengths else None
    tally.requests.append(
        HttpRequest(method=method, host=_first(layer, "http.host"), uri=uri, content_length=length)
    )
    if method in ("PUT", "POST") and length is not None:
        tally.put_bytes = (tally.put_bytes or 0) + length


# --- field access ---------------------------------------------------------------------------


def _all(layer: Any, name: str, *, raw: bool = False) -> list[str]:
    """Every value of field ``name`` in ``layer`` (shown text, or hex bytes when ``raw``)."""
    container = layer.get_field(name)
    if container is None:
        return []
    values = (f.raw_value if raw else f.show for f in container.all_fields)
    return [str(v) for v in values if v is not None]


def _first(layer: Any, name: str) -> str | None:
    values = _all(layer, name)
    return values[0] if values else None


def _ints(values: Sequence[str]) -> list[int]:
    out = []
    for v in values:
        try:
            out.append(int(v, 16) if v.lower().startswith("0x") else int(v))
        except ValueError:
            log.debug("not an integer field value: %r", v)
    return out
