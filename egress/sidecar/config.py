"""The sidecar's YAML config, validated with pydantic; errors name the file and line.

::

    inventory: /etc/egress/inventory.yaml
    geo: [/etc/egress/dbip-country-lite.csv]
    signatures: {directory: /etc/egress/signatures, overrides: /etc/egress/overrides.yaml}
    inputs:
      - {name: zeek, kind: zeek, path: /opt/zeek/logs}
      - {name: s3, kind: objectstore, path: /var/log/s3}
      - {name: kern, kind: drives, path: /var/log/kern.log, station: ingest-1}
      - {name: rsync, kind: copylog, path: /var/log/imports, station: ingest-1}
      - {name: minio, kind: minio_webhook, listen: 127.0.0.1:9741,
         token_file: /etc/egress/minio-audit.token}
      - {name: journal, kind: journal, station: ingest-1}
      - {name: wire, kind: packets, interface: eth1, bpf: "not port 22", interim_s: 60}
    sinks: ["file:///var/log/egress/alerts.log?format=ecs"]
    spool: /var/lib/egress/spool.db
    state_directory: /var/lib/egress/sidecar
    interval_s: 5
    listen: 127.0.0.1:9740
    windows: {sustained_rate: 1 Gbit/s, evidence_per_day: 10}

Relative paths are taken from the config file's directory.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from egress.errors import ConfigError
from egress.signatures.units import parse_rate
from egress.yaml_lines import FieldPath, YamlSyntaxError, line_of, parse_document

FILE_KINDS = ("zeek", "objectstore", "drives", "copylog")
INPUT_KINDS = (*FILE_KINDS, "minio_webhook", "journal", "packets")
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
JOURNAL_COMMAND = ("journalctl", "-f", "-k", "-o", "json", "--no-pager")
"""The default command of a ``journal`` input (``--after-cursor=`` is added on restarts)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Input(_Strict):
    name: str

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("use 1 to 64 letters, digits, '.', '_' or '-'")
        return value


class InputConfig(_Input):
    """One followed input: a file or a directory of files of one kind."""

    kind: Literal["zeek", "objectstore", "drives", "copylog"]
    path: Path
    station: str | None = None
    """Ingest station of kernel and copy logs (syslog lines name their host)."""


class MinioWebhookConfig(_Input):
    """MinIO's audit webhook: an HTTP endpoint on a loopback address, with a token.

    The token is read from ``token_file`` or from the environment variable ``token_env``
    (exactly one of them), never from this file.
    """

    kind: Literal["minio_webhook"]
    listen: str = "127.0.0.1:9741"
    url_path: str = "/minio/audit"
    token_file: Path | None = None
    token_env: str | None = None
    max_body_bytes: int = Field(default=16 * 1024 * 1024, ge=1024, le=1024 ** 3)
    rotate_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    """The received entries go to a new file in the state directory past this size."""
    allow_remote: bool = False
    """Let ``listen`` be a non-loopback address (plain HTTP: the token crosses the network
    in clear; put a TLS proxy in front instead where you can)."""

    @model_validator(mode="after")
    def _listen(self) -> MinioWebhookConfig:
        try:
            listen_address(self.listen, loopback=not self.allow_remote)
        except ValueError as exc:
            hint = "" if self.allow_remote else " (or set allow_remote: true)"
            raise ValueError(f"listen: {exc}{hint}") from None
        return self

    @field_validator("url_path")
    @classmethod
    def _url_path(cls, value: str) -> str:
        if not value.startswith("/") or any(c in value for c in "?# "):
            raise ValueError(f"expected a URL path such as /minio/audit, got {value!r}")
        return value

    @field_validator("token_env")
    @classmethod
    def _env(cls, value: str | None) -> str | None:
        if value is not None and not _ENV_NAME.match(value):
            raise ValueError(f"{value!r} is not an environment variable name")
        return value

    @model_validator(mode="after")
    def _one_token(self) -> MinioWebhookConfig:
        if (self.token_file is None) == (self.token_env is None):
            raise ValueError("give exactly one of token_file and token_env (the token "
                             "itself never goes in the config)")
        return self

    def token(self) -> str:
        """The token, from its file (surrounding whitespace removed) or its variable.

        Raises :class:`~egress.errors.ConfigError` when it is missing or empty.
        """
        if self.token_file is not None:
            try:
                token = self.token_file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(f"input {self.name}: cannot read token_file "
                                  f"{self.token_file}: {exc.strerror}") from exc
            where = f"token_file {self.token_file}"
        else:
            token = os.environ.get(self.token_env or "", "").strip()
            where = f"environment variable {self.token_env}"
        if not token:
            raise ConfigError(f"input {self.name}: no token in {where}")
        if any(c.isspace() for c in token):
            raise ConfigError(f"input {self.name}: the token in {where} contains whitespace")
        return token


def _argv(value: object) -> object:
    if isinstance(value, str):
        raise ValueError("expected a list of arguments such as [journalctl, -f, -k] (the "
                         "command is run without a shell)")
    return value


class JournalConfig(_Input):
    """Kernel messages from ``journalctl -f -k -o json`` (drive attachments)."""

    kind: Literal["journal"]
    command: tuple[str, ...] = Field(default=JOURNAL_COMMAND, min_length=1)
    """The command printing journal JSON lines; ``--after-cursor=C`` is added on restarts."""
    station: str | None = None
    """Station name when entries carry no ``_HOSTNAME``."""
    restart_after_s: float | None = Field(default=10.0, gt=0)
    """Start the command again this long after it ended; null: never."""

    _command = field_validator("command", mode="before")(_argv)


class PacketsConfig(_Input):
    """Live packets: a pcap stream on a command's stdout (``tcpdump -w -``)."""

    kind: Literal["packets"]
    interface: str | None = None
    bpf: str | None = None
    """A BPF filter expression (passed to tcpdump as one argument)."""
    command: tuple[str, ...] | None = Field(default=None, min_length=1)
    """Instead of ``tcpdump -i INTERFACE -w - -U [BPF]``: any command writing pcap or
    pcapng to stdout."""
    interim_s: float | None = Field(default=60.0, gt=0, le=86400)
    """Interim records of flows open this long (increments, as Zeek's long connections);
    null: only final records."""
    restart_after_s: float | None = Field(default=10.0, gt=0)
    """Start the command again this long after it ended; null: never."""

    _command = field_validator("command", mode="before")(_argv)

    @field_validator("interface")
    @classmethod
    def _interface(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[A-Za-z0-9_.:@-]{1,64}", value):
            raise ValueError(f"{value!r} is not an interface name")
        return value

    @model_validator(mode="after")
    def _source(self) -> PacketsConfig:
        if (self.interface is None) == (self.command is None):
            raise ValueError("give exactly one of interface (tcpdump is run) and command")
        if self.command is not None and self.bpf is not None:
            raise ValueError("bpf goes with interface; put the filter into the command")
        return self

    @property
    def argv(self) -> tuple[str, ...]:
        """The command run: ``command``, else tcpdump on ``interface`` with ``bpf``."""
        if self.command is not None:
            return self.command
        bpf = () if self.bpf is None else (self.bpf,)
        return ("tcpdump", "-i", self.interface or "", "-w", "-", "-U", *bpf)


AnyInput = Annotated[InputConfig | MinioWebhookConfig | JournalConfig | PacketsConfig,
                     Field(discriminator="kind")]


class SignaturesConfig(_Strict):
    """Signature directory (default: the shipped set) and site overrides."""

    directory: Path | None = None
    overrides: Path | None = None


class WindowsConfig(_Strict):
    """Window parameters (as ``egress analyze``)."""

    sustained_rate: str = "1 Gbit/s"
    evidence_per_day: int = Field(default=10, ge=1, le=1000)
    memory_limit: str | None = None

    @field_validator("sustained_rate")
    @classmethod
    def _rate(cls, value: str) -> str:
        parse_rate(value)  # raises ValueError with the reason
        return value

    @property
    def sustained_rate_bps(self) -> float:
        """The sustained rate in bits per second."""
        return parse_rate(self.sustained_rate)


class SidecarConfig(_Strict):
    """The whole config (module doc)."""

    inventory: Path
    geo: tuple[Path, ...] = ()
    signatures: SignaturesConfig = SignaturesConfig()
    inputs: tuple[AnyInput, ...] = Field(min_length=1)
    sinks: tuple[str, ...] = ()
    spool: Path | None = None
    """Default: ``spool.db`` in the state directory."""
    state_directory: Path
    interval_s: float = Field(default=5.0, gt=0, le=3600)
    listen: str | None = "127.0.0.1:9740"
    """``host:port`` of ``/healthz`` and ``/metrics`` (a loopback address); null: off."""
    retention_days: float | None = Field(default=None, gt=0)
    """Transfers older than this (log time, behind the newest) are dropped; null: kept."""
    windows: WindowsConfig = WindowsConfig()

    @field_validator("inputs")
    @classmethod
    def _unique(cls, value: tuple[AnyInput, ...]) -> tuple[AnyInput, ...]:
        names = [i.name for i in value]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"input names must be unique: {', '.join(dupes)}")
        ports = [i.listen for i in value if isinstance(i, MinioWebhookConfig)
                 and not i.listen.endswith(":0")]
        same = sorted({p for p in ports if ports.count(p) > 1})
        if same:
            raise ValueError(f"two webhook inputs listen on {', '.join(same)}")
        return value

    @model_validator(mode="after")
    def _ports_apart(self) -> SidecarConfig:
        hooks = {i.listen for i in self.inputs if isinstance(i, MinioWebhookConfig)}
        if self.listen is not None and self.listen in hooks and not self.listen.endswith(":0"):
            raise ValueError(f"listen {self.listen} is also a webhook input's address")
        return self

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str | None) -> str | None:
        if value is not None:
            listen_address(value)
        return value

    @property
    def spool_path(self) -> Path:
        """Where alerts are spooled before delivery."""
        return self.spool or self.state_directory / "spool.db"

    def resolved(self, base: Path) -> SidecarConfig:
        """A copy with relative paths taken from ``base``."""

        def at(path: Path) -> Path:
            return path if path.is_absolute() else base / path

        sigs = self.signatures
        return self.model_copy(update={
            "inventory": at(self.inventory),
            "geo": tuple(at(p) for p in self.geo),
            "signatures": SignaturesConfig(
                directory=None if sigs.directory is None else at(sigs.directory),
                overrides=None if sigs.overrides is None else at(sigs.overrides)),
            "inputs": tuple(_resolved_input(i, at) for i in self.inputs),
            "spool": None if self.spool is None else at(self.spool),
            "state_directory": at(self.state_directory),
        })


def _resolved_input(spec: AnyInput, at: Callable[[Path], Path]) -> AnyInput:
    if isinstance(spec, InputConfig):
        return spec.model_copy(update={"path": at(spec.path)})
    if isinstance(spec, MinioWebhookConfig) and spec.token_file is not None:
        return spec.model_copy(update={"token_file": at(spec.token_file)})
    return spec


def listen_address(text: str, *, loopback: bool = True) -> tuple[str, int]:
    """``host:port`` (``[::1]:port`` for IPv6) as a pair; the host must be loopback unless
    ``loopback`` is false (then any IP address).

    Raises ``ValueError`` otherwise: ``/healthz`` and ``/metrics`` have no authentication.
    """
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"expected host:port, got {text!r}")
    host = host.strip("[]")
    try:
        is_loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        if not loopback:
            raise ValueError(f"{host!r} is not an IP address") from None
        is_loopback = False
    if loopback and not is_loopback:
        raise ValueError(f"{host!r} is not a loopback address (the endpoints have no "
                         "authentication; use 127.0.0.1 or ::1)")
    return host, int(port)


def _locator(name: str, root: yaml.Node) -> Callable[[FieldPath], str]:
    def locate(path: FieldPath) -> str:
        return f"{name}:{line_of(root, path)}"

    return locate


def _where(path: FieldPath) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def _problems(exc: ValidationError) -> Sequence[tuple[FieldPath, str]]:
    problems: list[tuple[FieldPath, str]] = []
    errors = exc.errors(include_url=False)
    deeper = {e["loc"][:n] for e in errors for n in range(1, len(e["loc"]))}
    for error in errors:
        if error["type"] == "too_short" and error["loc"] in deeper:
            continue  # a list whose items failed: those errors say why
        # Literal and union errors carry the alternative in the location: drop non-fields.
        loc = error["loc"]
        # Discriminated inputs carry their kind in the location: drop it as well.
        path = tuple(p for n, p in enumerate(loc) if isinstance(p, int) or not (
            p.startswith("function-") or (p in INPUT_KINDS and n and loc[n - 1] != "kind"
                                          and isinstance(loc[n - 1], int))))
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        elif error["type"] in ("union_tag_invalid", "union_tag_not_found"):
            path = (*path, "kind")
            tag = error.get("ctx", {}).get("tag")
            message = (f"unknown input kind {tag!r}" if tag is not None else "missing") + \
                f" (known: {', '.join(INPUT_KINDS)})"
        elif error["type"] == "value_error":
            message = str(error["ctx"]["error"])
        else:
            message = error["msg"]
        problems.append((path, message))
    return problems


def load_config(path: Path) -> SidecarConfig:
    """Read and validate a sidecar config; relative paths are resolved against its folder.

    Raises :class:`~egress.errors.ConfigError` naming ``file:line`` of each problem.
    """
    name = str(path)
    try:
        data, root = parse_document(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the sidecar config: {exc.strerror}") from exc
    except YamlSyntaxError as exc:
        where = f"{name}:{exc.line}" if exc.line is not None else name
        raise ConfigError(f"{where}: not valid YAML: {exc.problem}") from exc
    if root is None or not isinstance(data, dict):
        raise ConfigError(f"{name}:1: the config must be a mapping of settings")
    try:
        config = SidecarConfig.model_validate(data)
    except ValidationError as exc:
        locate = _locator(name, root)
        lines = [f"{locate(p)}: {_where(p)}: {m}" if p else f"{locate(p)}: {m}"
                 for p, m in _problems(exc)[:10]]
        raise ConfigError("\n".join(lines)) from exc
    return config.resolved(path.parent)
