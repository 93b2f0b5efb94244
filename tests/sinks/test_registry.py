"""Sink URLs."""

from __future__ import annotations

from pathlib import Path

import pytest

from egress.errors import ConfigError
from egress.sinks.file import FileTransport
from egress.sinks.hec import HecTransport
from egress.sinks.registry import SCHEMES, Scheme, SinkSpec, open_sink, parse_sink
from egress.sinks.stdout import StdoutTransport
from egress.sinks.syslog import TcpTransport, UdpTransport
from tests.sinks.conftest import Certs


def test_parses_each_scheme(certs: Certs) -> None:
    spec = parse_sink(f"syslog+tls://127.0.0.1:6514?ca={certs.ca}&format=cef")
    assert (spec.scheme, spec.host, spec.port, spec.format) == ("syslog+tls", "127.0.0.1",
                                                                 6514, "cef")
    assert spec.options == {"ca": str(certs.ca)}
    transport = open_sink(spec)
    assert isinstance(transport, TcpTransport) and transport.tls is not None
    tcp = parse_sink("syslog+tcp://siem.example?format=cef&facility=authpriv")
    assert (tcp.port, tcp.format) == (514, "cef")
    tcp_transport = open_sink(tcp)
    assert isinstance(tcp_transport, TcpTransport)
    assert tcp_transport.builder.facility == 10
    assert isinstance(open_sink(parse_sink("syslog+udp://127.0.0.1:5514")), UdpTransport)
    assert parse_sink("stdout://?format=ecs") == SinkSpec(
        name="stdout://?format=ecs", scheme="stdout", format="ecs", host=None, port=None,
        path="", options={})
    assert isinstance(open_sink(parse_sink("stdout://")), StdoutTransport)
    f = open_sink(parse_sink("file:///var/log/alerts.log?format=ecs&max_bytes=1000&keep=3"))
    assert isinstance(f, FileTransport)
    assert (f.path, f.max_bytes, f.keep) == (Path("/var/log/alerts.log"), 1000, 3)


def test_hec_token_from_environment_or_file(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEC_TOKEN", "abc-123")
    spec = parse_sink("hec+https://splunk.example:8088/services/collector"
                      "?token_env=HEC_TOKEN&format=ecs&ack=1")
    hec = open_sink(spec)
    assert isinstance(hec, HecTransport)
    assert (hec.url, hec.ack, hec.compress) == (
        "https://splunk.example:8088/services/collector", True, True)
    token = tmp_path / "token"
    token.write_text("from-file\n")
    assert isinstance(open_sink(parse_sink(f"hec+https://h?token_file={token}")), HecTransport)
    monkeypatch.delenv("EGRESS_HEC_TOKEN", raising=False)
    with pytest.raises(ConfigError, match="environment variable EGRESS_HEC_TOKEN is not set"):
        open_sink(parse_sink("hec+https://h:8088/services/collector"))


@pytest.mark.parametrize(("url", "message"), [
    ("hec+https://h:8088/services/collector?token=s3cret",
     r"^sink hec\+https://h:8088/services/collector: a secret \(token=\) must not be given"),
    ("hec+https://user:pw@h:8088/", "credentials do not belong in a URL"),
    ("gopher://h", "unknown scheme 'gopher' \\(one of file, hec\\+https, stdout,"),
    ("syslog+tcp://h?colour=red", "unknown option 'colour' \\(allowed: facility, format,"),
    ("syslog+tcp://h?format=cef&format=ecs", "option 'format' given twice"),
    ("syslog+tcp://:514", "needs a host"),
    ("syslog+tcp://h:99999", "Port out of range"),
    ("file:///a?max_bytes=lots", "max_bytes='lots' is not an integer"),
    ("file:///a?fsync=maybe", "fsync='maybe' is not a yes/no value"),
    ("syslog+udp://h?facility=mail2", "unknown syslog facility 'mail2'"),
    ("syslog+tls://h", "syslog\\+tls needs ca=/path/to/ca.pem"),
    ("syslog+tls://h?ca=/nonexistent/ca.pem", "cannot load TLS files"),
    ("file://", "a file sink needs a path"),
])
def test_bad_urls_are_refused(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        open_sink(parse_sink(url))


def test_registry_is_an_explicit_dict() -> None:
    assert sorted(SCHEMES) == ["file", "hec+https", "stdout", "syslog+tcp", "syslog+tls",
                               "syslog+udp"]
    extra = {"null": Scheme(options=frozenset(), open=lambda spec: StdoutTransport())}
    assert parse_sink("null://?format=x", registry=extra).format == "x"
    with pytest.raises(ConfigError, match="unknown scheme 'file'"):
        parse_sink("file:///a", registry=extra)
