"""Deep-look insights as a plain-text report for a terminal.

:func:`render_insights` turns the :class:`~egress.sources.deep.FlowInsight` records
that :func:`~egress.sources.deep.inspect_flows` returns into one block of text per
flow, largest first as given. It only builds a string; the CLI prints it.
"""

from __future__ import annotations

from collections.abc import Sequence

from egress.sources.deep import FlowInsight

_REQUESTS_SHOWN = 5
"""HTTP requests listed per flow; the rest are counted in one line."""


def render_insights(insights: Sequence[FlowInsight]) -> str:
    """Render insights as a plain-text report for a terminal, one block per flow.

    Text taken from the capture is shown with non-printable characters escaped,
    so a hostile capture cannot send control sequences to the terminal.
    """
    if not insights:
        return "No flows to inspect.\n"
    lines: list[str] = []
    for rank, ins in enumerate(insights, start=1):
        orig = _endpoint(ins.orig_h, ins.orig_p)
        resp = _endpoint(ins.resp_h, ins.resp_p)
        lines.append(
            f"{rank}. {ins.uid}  {ins.proto} {orig} -> {resp}  {ins.total_ip_bytes:,} bytes"
        )
        lines.append(f"   community_id: {ins.community_id}")
        if ins.packets_inspected is None:
            lines.append(f"   not inspected: {ins.proto} flows have no ports to filter on")
            continue
        lines.append(f"   packets with application messages: {ins.packets_inspected:,}")
        lines.extend(f"   TLS server name: {_printable(n)}" for n in ins.tls_server_names)
        lines.extend(
            f"   TLS certificate subject: {_printable(s)}" for s in ins.tls_certificate_subjects
        )
        for req in ins.http_requests[:_REQUESTS_SHOWN]:
            host = _printable(req.host) if req.host is not None else "(no Host)"
            size = (
                f"Content-Length {req.content_length:,}"
                if req.content_length is not None else "no Content-Length"
            )
            lines.append(
                f"   HTTP {_printable(req.method)} {host} {_printable(req.uri)} ({size})"
            )
        hidden = len(ins.http_requests) - _REQUESTS_SHOWN
        if hidden > 0:
            lines.append(f"   ... and {hidden:,} more HTTP requests")
        if ins.http_put_bytes is not None:
            lines.append(f"   HTTP PUT/POST Content-Length total: {ins.http_put_bytes:,} bytes")
        if ins.smb_write_bytes is not None:
            lines.append(f"   SMB2 write volume: {ins.smb_write_bytes:,} bytes")
        if ins.nfs_write_bytes is not None:
            lines.append(f"   NFS write volume: {ins.nfs_write_bytes:,} bytes")
        if not (
            ins.tls_server_names or ins.tls_certificate_subjects or ins.http_requests
            or ins.smb_write_bytes is not None or ins.nfs_write_bytes is not None
        ):
            lines.append("   no TLS, HTTP, SMB2 or NFS details found")
    return "\n".join(lines) + "\n"


def _endpoint(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _printable(text: str) -> str:
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)
