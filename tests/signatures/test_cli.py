"""``egress signatures lint | list | show`` through click's runner."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from egress.cli_signatures import DEFAULT_DIR, signatures
from tests.conftest import REPO
from tests.signatures.builders import signature_text, write_signature


def test_default_directory_is_the_shipped_one() -> None:
    assert DEFAULT_DIR == REPO / "signatures"


def test_lint_clean_exits_zero() -> None:
    result = CliRunner().invoke(signatures, ["lint"])
    assert result.exit_code == 0
    assert result.stdout == ""
    assert result.stderr == "0 error(s), 0 warning(s)\n"


def test_lint_errors_exit_one(tmp_path: Path) -> None:
    write_signature(tmp_path, signature_text("a", condition="condition: bytes_in < 0",
                                             thresholds=""))
    write_signature(tmp_path, signature_text("b", window="1h"))
    result = CliRunner().invoke(signatures, ["lint", "--dir", str(tmp_path)])
    assert result.exit_code == 1
    assert result.stdout == (
        f"{tmp_path}/a.yaml:9: error: never-holds: condition can never hold: "
        "'bytes_in < 0' can never hold\n")
    assert result.stderr == "1 error(s), 0 warning(s)\n"


def test_lint_warnings_only_exit_zero(tmp_path: Path) -> None:
    write_signature(tmp_path, signature_text("a"))
    write_signature(tmp_path, signature_text("b"))
    result = CliRunner().invoke(signatures, ["lint", "--dir", str(tmp_path)])
    assert result.exit_code == 0
    assert result.stdout == (
        f"{tmp_path}/b.yaml:11: warning: overlap: same window (24h) and condition structure "
        "as 'a' (a.yaml): one of them may be redundant\n")


def test_list(tmp_path: Path) -> None:
    write_signature(tmp_path, signature_text("bulk"))
    result = CliRunner().invoke(signatures, ["list", "--dir", str(tmp_path)])
    assert result.exit_code == 0
    assert result.stdout == (
        "bulk                             medium        24h        test         v1   Test bulk\n")


def test_list_shipped_has_every_file() -> None:
    result = CliRunner().invoke(signatures, ["list"])
    assert result.exit_code == 0
    listed = [line.split()[0] for line in result.stdout.splitlines()]
    assert listed == sorted(p.stem for p in (REPO / "signatures").glob("*.yaml"))


def test_show_with_override(tmp_path: Path) -> None:
    write_signature(tmp_path / "sigs", signature_text(
        "bulk", extra="risk:\n  amplifiers:\n    - {name: crypto, when: tenant.payment == crypto,"
        " points: 15}\n"))
    site = tmp_path / "site.yaml"
    site.write_text("bulk: {volume: 80 TB}\n", encoding="utf-8")
    result = CliRunner().invoke(signatures, ["show", "bulk", "--dir", str(tmp_path / "sigs"),
                                             "--overrides", str(site)])
    assert result.exit_code == 0
    assert result.stdout == (
        f"bulk  v1  test  ({tmp_path}/sigs/bulk.yaml)\n"
        "Test bulk\n"
        "severity: medium (base risk 50)\n"
        "window: 24h\n"
        "attack: T1105\n"
        "description: test signature\n"
        "thresholds:\n"
        "  volume = 80 TB (site override): big\n"
        "condition:\n"
        "  bytes_in >= 80 TB ($volume)\n"
        "risk +15 crypto:\n"
        "  tenant.payment == crypto\n"
        "dedup key: signature, tenant, span, window_start; suppress: none\n"
    )


def test_show_sequence() -> None:
    result = CliRunner().invoke(signatures, ["show", "follow-on-outbound"])
    assert result.exit_code == 0
    assert "sequence within 30d:\n  step bulk arrival (24h window):\n    all of:\n" \
        "      any of:\n        bytes_in >= 50 TB ($arrival)\n" \
        "        bytes_copied >= 50 TB ($arrival)\n      tenant.gpus >= 64 ($gpus)\n" \
        "  then outbound volume (24h window):\n    all of:\n" \
        "      bytes_out >= 1 TB ($outbound)\n      not:\n" \
        in result.stdout


def test_show_unknown_and_bad_files_exit_two(tmp_path: Path) -> None:
    result = CliRunner().invoke(signatures, ["show", "nope"])
    assert result.exit_code == 2
    assert result.stderr == "egress: error: no signature 'nope' (see 'egress signatures list')\n"
    write_signature(tmp_path, signature_text("a", severity="dire"))
    result = CliRunner().invoke(signatures, ["list", "--dir", str(tmp_path)])
    assert result.exit_code == 2
    assert result.stderr == (
        f"egress: error: {tmp_path}/a.yaml:4: severity: must be one of 'informational', "
        "'low', 'medium', 'high' or 'critical'\n")
    result = CliRunner().invoke(signatures, ["list", "--dir", str(tmp_path / "none")])
    assert result.exit_code == 2
    assert result.stderr == (
        f"egress: error: {tmp_path}/none: no signatures directory (give --dir)\n")
