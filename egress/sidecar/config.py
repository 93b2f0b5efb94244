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
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from egress.errors import ConfigError
from egress.signatures.units import parse_rate
from egress.yaml_lines import FieldPath, YamlSyntaxError, line_of, parse_document

INPUT_KINDS = ("zeek", "objectstore", "drives", "copylog")
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InputConfig(_Strict):
    """One followed input: a file or a directory of files of one kind."""

    name: str
    kind: Literal["zeek", "objectstore", "drives", "copylog"]
    path: Path
    station: str | None = None
    """Ingest station of kernel and copy logs (syslog lines name their host)."""

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("use 1 to 64 letters, digits, '.', '_' or '-'")
        return value


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
    inputs: tuple[InputConfig, ...] = Field(min_length=1)
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
    def _unique(cls, value: tuple[InputConfig, ...]) -> tuple[InputConfig, ...]:
        names = [i.name for i in value]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"input names must be unique: {', '.join(dupes)}")
        return value

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
            "inputs": tuple(i.model_copy(update={"path": at(i.path)}) for i in self.inputs),
            "spool": None if self.spool is None else at(self.spool),
            "state_directory": at(self.state_directory),
        })


def listen_address(text: str) -> tuple[str, int]:
    """``host:port`` (``[::1]:port`` for IPv6) as a pair; the host must be loopback.

    Raises ``ValueError`` otherwise: the endpoints have no authentication.
    """
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"expected host:port, got {text!r}")
    host = host.strip("[]")
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
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
    for error in exc.errors(include_url=False):
        # Literal and union errors carry the alternative in the location: drop non-fields.
        path = tuple(p for p in error["loc"] if isinstance(p, int) or not p.startswith(
            "function-"))
        if error["type"] == "extra_forbidden":
            message = "unknown key"
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
