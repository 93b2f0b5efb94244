"""Tests for the plain-text deep-look report: golden text from literal insights."""

from __future__ import annotations

from egress.formats.insights import render_insights
from egress.sources.deep import FlowInsight, HttpRequest


def test_render_insights_report() -> None:
    insights = [
        FlowInsight(
            uid="CAAAAAAAAAA1", community_id="1:abc=", proto="tcp",
            orig_h="10.0.0.1", orig_p=40000, resp_h="2001:db8::5", resp_p=443,
            total_ip_bytes=1234567,
            tls_server_names=("evil\x1b[2J.example",),
            tls_certificate_subjects=("CN=evil.example",),
            packets_inspected=12,
        ),
        FlowInsight(
            uid="CAAAAAAAAAA2", community_id="1:def=", proto="tcp",
            orig_h="10.0.0.2", orig_p=40001, resp_h="198.51.100.7", resp_p=80,
            total_ip_bytes=900,
            http_requests=(
                *(HttpRequest(method="PUT", host="s3.example.net", uri=f"/b/part-{n}",
                              content_length=10) for n in range(6)),
                HttpRequest(method="GET", host=None, uri="/", content_length=None),
            ),
            http_put_bytes=60,
            packets_inspected=30,
        ),
        FlowInsight(
            uid="CAAAAAAAAAA3", community_id="1:ghi=", proto="udp",
            orig_h="10.0.0.3", orig_p=5000, resp_h="10.0.0.4", resp_p=5001,
            total_ip_bytes=100, smb_write_bytes=0, nfs_write_bytes=4096, packets_inspected=2,
        ),
        FlowInsight(
            uid="CAAAAAAAAAA4", community_id="1:jkl=", proto="udp",
            orig_h="10.0.0.3", orig_p=5002, resp_h="10.0.0.4", resp_p=5003,
            total_ip_bytes=90, packets_inspected=1,
        ),
    ]
    assert render_insights(insights) == (
        "1. CAAAAAAAAAA1  tcp 10.0.0.1:40000 -> [2001:db8::5]:443  1,234,567 bytes\n"
        "   community_id: 1:abc=\n"
        "   packets with application messages: 12\n"
        "   TLS server name: evil\\x1b[2J.example\n"
        "   TLS certificate subject: CN=evil.example\n"
        "2. CAAAAAAAAAA2  tcp 10.0.0.2:40001 -> 198.51.100.7:80  900 bytes\n"
        "   community_id: 1:def=\n"
        "   packets with application messages: 30\n"
        "   HTTP PUT s3.example.net /b/part-0 (Content-Length 10)\n"
        "   HTTP PUT s3.example.net /b/part-1 (Content-Length 10)\n"
        "   HTTP PUT s3.example.net /b/part-2 (Content-Length 10)\n"
        "   HTTP PUT s3.example.net /b/part-3 (Content-Length 10)\n"
        "   HTTP PUT s3.example.net /b/part-4 (Content-Length 10)\n"
        "   ... and 2 more HTTP requests\n"
        "   HTTP PUT/POST Content-Length total: 60 bytes\n"
        "3. CAAAAAAAAAA3  udp 10.0.0.3:5000 -> 10.0.0.4:5001  100 bytes\n"
        "   community_id: 1:ghi=\n"
        "   packets with application messages: 2\n"
        "   SMB2 write volume: 0 bytes\n"
        "   NFS write volume: 4,096 bytes\n"
        "4. CAAAAAAAAAA4  udp 10.0.0.3:5002 -> 10.0.0.4:5003  90 bytes\n"
        "   community_id: 1:jkl=\n"
        "   packets with application messages: 1\n"
        "   no TLS, HTTP, SMB2 or NFS details found\n"
    )
    assert render_insights([]) == "No flows to inspect.\n"
