"""The sidecar config: defaults, paths, and errors naming file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from egress.errors import ConfigError
from egress.sidecar.config import InputConfig, listen_address, load_config

REPO = Path(__file__).resolve().parents[2]

GOOD = """\
inventory: inventory.yaml
inputs:
  - {name: zeek, kind: zeek, path: logs/zeek}
state_directory: /var/lib/egress/sidecar
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sidecar.yaml"
    path.write_text(text)
    return path


def test_defaults_and_relative_paths(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD))
    assert config.inventory == tmp_path / "inventory.yaml"
    zeek = config.inputs[0]
    assert isinstance(zeek, InputConfig)
    assert zeek.path == tmp_path / "logs" / "zeek"
    assert config.listen == "127.0.0.1:9740"
    assert config.interval_s == 5.0
    assert config.spool_path == Path("/var/lib/egress/sidecar/spool.db")
    assert config.windows.sustained_rate_bps == 1e9


def test_example_config_loads() -> None:
    config = load_config(REPO / "examples" / "sidecar.yaml")
    assert [i.kind for i in config.inputs] == [
        "zeek", "objectstore", "drives", "copylog", "minio_webhook", "journal", "packets"]
    assert config.retention_days == 35


@pytest.mark.parametrize(("text", "message"), [
    (GOOD + "intervall_s: 5\n", r"sidecar\.yaml:5: intervall_s: unknown key"),
    (GOOD.replace("kind: zeek", "kind: pcap"),
     r"sidecar\.yaml:3: inputs\[0\]\.kind: unknown input kind 'pcap' \(known: zeek, "
     r"objectstore, drives, copylog, minio_webhook, journal, packets\)$"),
    (GOOD + "listen: 0.0.0.0:9740\n",
     r"sidecar\.yaml:5: listen: .*'0\.0\.0\.0' is not a loopback address"),
    (GOOD + "interval_s: 0\n", r"sidecar\.yaml:5: interval_s: Input should be greater than 0"),
    (GOOD + "windows:\n  sustained_rate: fast\n", r"sidecar\.yaml:6: windows\.sustained_rate"),
    (GOOD.replace("inputs:\n", "inputs:\n  - {name: zeek, kind: zeek, path: b}\n"),
     r"sidecar\.yaml:2: inputs: input names must be unique: zeek"),
    (GOOD.replace("inventory: inventory.yaml\n", ""), r"sidecar\.yaml:1: inventory: Field"),
    (GOOD + "sinks: [a\n", r"sidecar\.yaml:6: not valid YAML"),
    (GOOD + "interval_s: 1\ninterval_s: 2\n", r"sidecar\.yaml:6: not valid YAML: duplicate"),
    ("- 1\n", r"sidecar\.yaml:1: the config must be a mapping"),
])
def test_errors_name_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, text))


def test_listen_address() -> None:
    assert listen_address("127.0.0.1:0") == ("127.0.0.1", 0)
    assert listen_address("[::1]:9740") == ("::1", 9740)
    with pytest.raises(ValueError, match="expected host:port"):
        listen_address("localhost")
    with pytest.raises(ValueError, match="not a loopback address"):
        listen_address("example.org:80")


def test_command_reports_config_errors(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from egress.cli_sidecar import sidecar_command

    result = CliRunner().invoke(sidecar_command, ["--config", str(write(
        tmp_path, GOOD + "intervall_s: 5\n"))])
    assert result.exit_code == 2
    assert "sidecar.yaml:5: intervall_s: unknown key" in result.output
    assert "Traceback" not in result.output
