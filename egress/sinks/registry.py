"""Sink URLs: which transport, where, in which format.

::

    file:///var/log/egress/alerts.log?format=ecs&max_bytes=104857600&keep=5
    stdout://?format=ecs
    syslog+udp://127.0.0.1:514?format=cef&facility=local0
    syslog+tcp://127.0.0.1:514?format=cef
    syslog+tls://siem.example:6514?ca=/etc/egress/ca.pem&cert=...&key=...&format=cef
    hec+https://splunk:8088/services/collector?token_env=HEC_TOKEN&format=ecs&ack=1

:data:`SCHEMES` is the explicit registry, keyed by scheme; packages add schemes through
the ``egress.sinks`` entry-point group (an object with the fields of :class:`Scheme`).
Secrets never appear in a URL: a ``token``, ``password`` or ``secret`` option or a user
name and password are refused; the HEC token comes from ``token_env`` (default
``EGRESS_HEC_TOKEN``) or ``token_file``, TLS keys from files.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib.metadata import entry_points
from urllib.parse import parse_qsl, urlsplit

from egress.errors import ConfigError
from egress.sinks.alert import Transport
from egress.sinks.file import FileTransport
from egress.sinks.hec import HecTransport, read_token
from egress.sinks.stdout import StdoutTransport
from egress.sinks.syslog import FACILITIES, MessageBuilder, TcpTransport, UdpTransport, tls_context

DEFAULT_FORMAT = "ecs"
_SECRETS = frozenset({"token", "password", "passwd", "secret", "api_key"})


@dataclass(frozen=True, slots=True, kw_only=True)
class SinkSpec:
    """A parsed sink URL; ``name`` (the URL itself) keys the sink's cursor in the spool."""

    name: str
    scheme: str
    format: str
    host: str | None
    port: int | None
    path: str
    options: Mapping[str, str]

    def text(self, key: str, default: str | None = None) -> str | None:
        """Option ``key`` or ``default``."""
        return self.options.get(key, default)

    def integer(self, key: str, default: int | None = None) -> int | None:
        """Option ``key`` as an integer; raises :class:`ConfigError` when it is not one."""
        value = self.options.get(key)
        if value is None:
            return default
        try:
            return int(value)
        except ValueError:
            raise ConfigError(f"sink {self.name}: {key}={value!r} is not an integer") from None

    def flag(self, key: str, default: bool) -> bool:
        """Option ``key`` as a boolean (1/0, true/false, yes/no)."""
        value = self.options.get(key)
        if value is None:
            return default
        if value.lower() in ("1", "true", "yes", "on"):
            return True
        if value.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"sink {self.name}: {key}={value!r} is not a yes/no value")


@dataclass(frozen=True, slots=True, kw_only=True)
class Scheme:
    """How to open one kind of sink: its options, default port and transport factory."""

    options: frozenset[str]
    open: Callable[[SinkSpec], Transport]
    default_port: int | None = None
    needs_host: bool = False


def _builder(spec: SinkSpec) -> MessageBuilder:
    facility = spec.text("facility", "local0") or "local0"
    if facility not in FACILITIES:
        raise ConfigError(f"sink {spec.name}: unknown syslog facility {facility!r} "
                          f"(one of {', '.join(FACILITIES)})")
    return MessageBuilder(facility=FACILITIES[facility], hostname=spec.text("hostname"))


def _file(spec: SinkSpec) -> Transport:
    if not spec.path:
        raise ConfigError(f"sink {spec.name}: a file sink needs a path (file:///path)")
    return FileTransport(spec.path, max_bytes=spec.integer("max_bytes"),
                         keep=spec.integer("keep", 5) or 0, fsync=spec.flag("fsync", True))


def _stdout(spec: SinkSpec) -> Transport:
    return StdoutTransport()


def _udp(spec: SinkSpec) -> Transport:
    assert spec.host is not None and spec.port is not None
    return UdpTransport(spec.host, spec.port, builder=_builder(spec),
                        max_datagram=spec.integer("max_datagram", 8192) or 8192)


def _tcp(spec: SinkSpec) -> Transport:
    assert spec.host is not None and spec.port is not None
    return TcpTransport(spec.host, spec.port, builder=_builder(spec),
                        timeout_s=float(spec.integer("timeout", 10) or 10))


def _tls(spec: SinkSpec) -> Transport:
    assert spec.host is not None and spec.port is not None
    ca = spec.text("ca")
    if ca is None:
        raise ConfigError(f"sink {spec.name}: syslog+tls needs ca=/path/to/ca.pem "
                          "to verify the server")
    try:
        context = tls_context(ca_file=ca, cert_file=spec.text("cert"), key_file=spec.text("key"))
    except OSError as exc:
        raise ConfigError(f"sink {spec.name}: cannot load TLS files: {exc}") from exc
    return TcpTransport(spec.host, spec.port, tls=context, server_hostname=spec.text("servername"),
                        builder=_builder(spec),
                        timeout_s=float(spec.integer("timeout", 10) or 10))


def _hec(spec: SinkSpec) -> Transport:
    assert spec.host is not None
    try:
        token = read_token(env=spec.text("token_env"), file=spec.text("token_file"))
    except ValueError as exc:
        raise ConfigError(f"sink {spec.name}: {exc}") from exc
    ca = spec.text("ca")
    context = None
    if ca is not None:
        try:
            context = tls_context(ca_file=ca)
        except OSError as exc:
            raise ConfigError(f"sink {spec.name}: cannot load {ca}: {exc}") from exc
    return HecTransport(f"https://{spec.host}:{spec.port}{spec.path or '/services/collector'}",
                        token=token, context=context, compress=spec.flag("gzip", True),
                        ack=spec.flag("ack", False), index=spec.text("index"),
                        timeout_s=float(spec.integer("timeout", 30) or 30))


_SYSLOG = frozenset({"facility", "hostname"})

#: The built-in sinks, keyed by URL scheme.
SCHEMES: dict[str, Scheme] = {
    "file": Scheme(options=frozenset({"max_bytes", "keep", "fsync"}), open=_file),
    "stdout": Scheme(options=frozenset(), open=_stdout),
    "syslog+udp": Scheme(options=_SYSLOG | {"max_datagram"}, open=_udp, default_port=514,
                         needs_host=True),
    "syslog+tcp": Scheme(options=_SYSLOG | {"timeout"}, open=_tcp, default_port=514,
                         needs_host=True),
    "syslog+tls": Scheme(options=_SYSLOG | {"timeout", "ca", "cert", "key", "servername"},
                         open=_tls, default_port=6514, needs_host=True),
    "hec+https": Scheme(options=frozenset({"token_env", "token_file", "ack", "gzip", "index",
                                           "ca", "timeout"}),
                        open=_hec, default_port=8088, needs_host=True),
}


def schemes() -> dict[str, Scheme]:
    """The built-in schemes and those of installed ``egress.sinks`` entry points."""
    found = dict(SCHEMES)
    for point in entry_points(group="egress.sinks"):
        scheme = point.load()
        if not isinstance(scheme, Scheme):
            raise ConfigError(f"entry point egress.sinks:{point.name} is not a Scheme")
        found.setdefault(point.name, scheme)
    return found


def parse_sink(url: str, *, registry: Mapping[str, Scheme] | None = None) -> SinkSpec:
    """Parse and check a sink URL; raises :class:`ConfigError` naming the URL and fault."""
    known = schemes() if registry is None else registry
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in known:
        raise ConfigError(f"sink {url}: unknown scheme {scheme!r} "
                          f"(one of {', '.join(sorted(known))})")
    if parts.username is not None or parts.password is not None:
        raise ConfigError(f"sink {url}: credentials do not belong in a URL; "
                          "use token_env= or token_file=")
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    options: dict[str, str] = {}
    kind = known[scheme]
    for key, value in pairs:
        if key.lower() in _SECRETS:
            raise ConfigError(f"sink {scheme}://{parts.netloc}{parts.path}: a secret ({key}=) "
                              "must not be given in a URL (it would show in process lists "
                              "and shell history); use token_env= or token_file=")
        if key != "format" and key not in kind.options:
            allowed = ", ".join(sorted(kind.options | {"format"}))
            raise ConfigError(f"sink {url}: unknown option {key!r} (allowed: {allowed})")
        if key in options:
            raise ConfigError(f"sink {url}: option {key!r} given twice")
        options[key] = value
    try:
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"sink {url}: {exc}") from None
    host = parts.hostname
    if kind.needs_host and not host:
        raise ConfigError(f"sink {url}: needs a host ({scheme}://host:port)")
    fmt = options.pop("format", DEFAULT_FORMAT)
    if not fmt:
        raise ConfigError(f"sink {url}: format= is empty")
    return SinkSpec(name=url, scheme=scheme, format=fmt, host=host,
                    port=port if port is not None else kind.default_port,
                    path=parts.path, options=options)


def open_sink(spec: SinkSpec, *, registry: Mapping[str, Scheme] | None = None) -> Transport:
    """A transport for ``spec``; raises :class:`ConfigError` for unusable options."""
    known = schemes() if registry is None else registry
    return known[spec.scheme].open(spec)
