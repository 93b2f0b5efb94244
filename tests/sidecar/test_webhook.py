"""The MinIO audit webhook input: real POSTs to 127.0.0.1, the records and alerts they give."""

from __future__ import annotations

import dataclasses
import http.client
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from egress.errors import ConfigError
from egress.records import ObjectStoreRequest, Provenance
from egress.sidecar.config import load_config
from egress.sidecar.follow import Chunk
from egress.sidecar.service import Sidecar
from egress.sidecar.webhook import chunk_records, entry_lines
from egress.sources.objectstore import MinioAuditLogReader
from tests.sidecar.replay import GEO, SCENARIO
from tests.sidecar.test_service import REPO, Lines

DOCS = Path(__file__).resolve().parents[1] / "data" / "objectstore" / \
    "minio_audit_docs_example.jsonl"
TOKEN = "s3cr3t-t0ken"
TB = 10 ** 12


def config_text(root: Path, *, token: str = "token_file: token") -> str:
    return "\n".join([
        f"inventory: {SCENARIO / 'inventory.yaml'}",
        f"geo: [{GEO[0]}, {GEO[1]}]",
        "inputs:",
        f"  - {{name: minio, kind: minio_webhook, listen: 127.0.0.1:0, {token}}}",
        f"sinks: ['file://{root / 'alerts.log'}?format=ecs']",
        f"state_directory: {root / 'state'}",
        "listen: null",
    ]) + "\n"


def put_entry(n: int, *, size: int, bucket: str = "t0003-research") -> dict[str, object]:
    """A MinIO audit entry of a successful PutObject of ``size`` bytes."""
    return {
        "version": "1", "deploymentid": "d1", "time": f"2026-11-20T10:{n:02d}:00.000000001Z",
        "api": {"name": "PutObject", "bucket": bucket, "object": f"shard-{n:04d}.tar",
                "status": "OK", "statusCode": 200, "rx": size + 300, "tx": 0},
        "remotehost": "203.0.113.7", "requestID": f"REQ{n:06d}", "userAgent": "rclone/v1.66",
        "requestHeader": {"Content-Length": str(size)}, "accessKey": "AKIAT0003",
    }


@pytest.fixture
def sidecar(tmp_path: Path) -> Iterator[Sidecar]:
    (tmp_path / "token").write_text(TOKEN + "\n")
    (tmp_path / "token").chmod(0o600)
    (tmp_path / "sidecar.yaml").write_text(config_text(tmp_path))
    running = Sidecar(load_config(tmp_path / "sidecar.yaml"), clock=lambda: 1.8e9)
    yield running
    running.close()


def post(port: int, body: bytes, *, auth: str | None = f"Bearer {TOKEN}",
         path: str = "/minio/audit", method: str = "POST") -> tuple[int, dict[str, object]]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        headers = {"Content-Type": "application/json"}
        if auth is not None:
            headers["Authorization"] = auth
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        data = response.read()
        return response.status, json.loads(data) if data else {}
    finally:
        connection.close()


def port_of(sidecar: Sidecar) -> int:
    host, port = sidecar.live.servers["minio"].address
    assert host == "127.0.0.1"
    return port


def stripped(records: list[ObjectStoreRequest]) -> list[ObjectStoreRequest]:
    return [dataclasses.replace(r, provenance=Provenance(path="")) for r in records]


def test_entry_lines() -> None:
    one = json.dumps(put_entry(1, size=5)).encode()
    assert entry_lines(one) == ([json.dumps(put_entry(1, size=5), separators=(",", ":"))
                                 .encode() + b"\n"], 1, 0)
    batch = one + b"\n" + json.dumps(put_entry(2, size=5)).encode() + b"\n"
    assert [len(x) if isinstance(x, list) else x for x in entry_lines(batch)] == [2, 2, 0]
    assert entry_lines(b"[" + one + b"," + one + b"]")[1:] == (2, 0)
    assert entry_lines(b"{}") == ([], 1, 0)  # MinIO's probe of the endpoint
    assert entry_lines(one + b"\nnot json\n" + one)[1:] == (3, 1)
    assert entry_lines(b'{"api": {}}\n' + one) == ([], 2, 1)


def test_answers_and_durable_before_200(sidecar: Sidecar) -> None:
    port = port_of(sidecar)
    body = DOCS.read_bytes()
    assert post(port, body, auth=None) == (401, {"error": "missing or wrong token"})
    assert post(port, body, auth="Bearer wrong")[0] == 401
    assert post(port, body, auth=f"Basic {TOKEN}")[0] == 401
    assert post(port, body, path="/other") == (404, {"error": "not found"})
    assert post(port, b"", method="GET")[0] == 405
    assert post(port, b"", method="HEAD") == (200, {})
    assert post(port, b"{}") == (200, {"accepted": 0})
    bad = body + b"{not json\n"
    assert post(port, bad) == (400, {"error": "not MinIO audit entries", "malformed": 1,
                                     "entries": 3})
    store = sidecar.live.stores["minio"]
    assert store.files() == []  # nothing of a rejected body is kept
    assert post(port, body) == (200, {"accepted": 2})
    # Stored and fsynced before the answer: the file holds both entries now.
    lines = store.current.read_bytes().splitlines()
    assert [json.loads(line) for line in lines] == \
        [json.loads(line) for line in body.splitlines()]
    assert post(port, body, auth=TOKEN) == (200, {"accepted": 2})  # a bare auth_token
    metrics = sidecar.metrics.render()
    for status, n in ((200, 4), (400, 1), (401, 3), (404, 1), (405, 1)):
        assert (f'egress_sidecar_webhook_requests_total{{input="minio",status="{status}"}} '
                f'{n}\n') in metrics


def test_records_equal_those_of_a_log_file(sidecar: Sidecar, tmp_path: Path) -> None:
    port = port_of(sidecar)
    lines = DOCS.read_bytes().splitlines(keepends=True)
    for line in lines:  # one entry per request, as MinIO sends them by default
        assert post(port, line) == (200, {"accepted": 1})
    report = sidecar.tick()
    assert report.records == {"minio": 2}
    stored = sidecar.live.stores["minio"].current
    chunk = Chunk(path=stored, identity="x", data=stored.read_bytes(), first_line=1)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    records, issues = chunk_records(chunk, scratch)
    expected = list(MinioAuditLogReader().read([DOCS]))
    assert stripped(records) == stripped(expected)
    assert [str(r.provenance) for r in records] == [f"{stored}:1", f"{stored}:2"]
    assert issues == []
    assert sidecar.tick().records == {}  # nothing new


def test_alert_from_posted_entries_and_restart(tmp_path: Path) -> None:
    (tmp_path / "token").write_text(TOKEN)
    (tmp_path / "token").chmod(0o600)
    (tmp_path / "sidecar.yaml").write_text(config_text(tmp_path))
    config = load_config(tmp_path / "sidecar.yaml")
    sidecar = Sidecar(config, clock=lambda: 1.8e9)
    try:
        port = port_of(sidecar)
        batch = b"".join(json.dumps(put_entry(n, size=4 * TB)).encode() + b"\n"
                         for n in range(4))
        assert post(port, batch) == (200, {"accepted": 4})  # 16 TB: under 20 TB
        first = sidecar.tick()
        assert (first.records, first.transfers, first.new_alerts) == ({"minio": 4}, 4, ())
        assert post(port, json.dumps(put_entry(4, size=4 * TB)).encode()) == \
            (200, {"accepted": 1})
        second = sidecar.tick()
        assert (second.records, second.transfers, len(second.new_alerts)) == \
            ({"minio": 1}, 5, 1)
    finally:
        sidecar.close()
    alerts = [json.loads(line) for line in (tmp_path / "alerts.log").read_text().splitlines()]
    assert [(a["rule"]["id"], a["cloud"]["account"]["id"]) for a in alerts] == \
        [("object-store-put-volume", "t-0003")]
    # A restart: the entries stay counted once, the endpoint takes more.
    again = Sidecar(config, clock=lambda: 1.8e9)
    try:
        assert again.tick().transfers == 5
        assert post(port_of(again), json.dumps(put_entry(5, size=TB)).encode()) == \
            (200, {"accepted": 1})
        report = again.tick()
        assert (report.records, report.transfers, report.new_alerts) == ({"minio": 1}, 6, ())
    finally:
        again.close()
    assert len((tmp_path / "alerts.log").read_text().splitlines()) == 1


def test_token_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "sidecar.yaml").write_text(config_text(tmp_path, token="token_env: EG_TOKEN"))
    config = load_config(tmp_path / "sidecar.yaml")
    monkeypatch.delenv("EG_TOKEN", raising=False)
    with pytest.raises(ConfigError, match=r"input minio: no token in environment variable "
                                          r"EG_TOKEN"):
        Sidecar(config)
    monkeypatch.setenv("EG_TOKEN", TOKEN)
    sidecar = Sidecar(config)  # the state directory was released by the failed start
    try:
        port = port_of(sidecar)
        assert post(port, b"{}", auth="Bearer nope")[0] == 401
        assert post(port, b"{}") == (200, {"accepted": 0})
    finally:
        sidecar.close()


@pytest.mark.parametrize(("entry", "message"), [
    ("{name: m, kind: minio_webhook, token: abc}", r"inputs\[0\]\.token: unknown key"),
    ("{name: m, kind: minio_webhook}", r"inputs\[0\]: give exactly one of token_file and "
                                       r"token_env"),
    ("{name: m, kind: minio_webhook, token_env: X, listen: 0.0.0.0:9741}",
     r"inputs\[0\]: listen: '0\.0\.0\.0' is not a loopback address .*allow_remote"),
    ("{name: m, kind: minio_webhook, token_env: X, url_path: audit}",
     r"inputs\[0\]\.url_path: expected a URL path"),
])
def test_config_errors(tmp_path: Path, entry: str, message: str) -> None:
    path = tmp_path / "sidecar.yaml"
    path.write_text(f"inventory: i.yaml\ninputs:\n  - {entry}\nstate_directory: s\n")
    with pytest.raises(ConfigError, match=r"sidecar\.yaml:3: " + message):
        load_config(path)


def test_files_rotate_and_are_removed_once_read(tmp_path: Path) -> None:
    (tmp_path / "token").write_text(TOKEN)
    (tmp_path / "token").chmod(0o600)
    (tmp_path / "sidecar.yaml").write_text(config_text(tmp_path).replace(
        "token_file: token", "token_file: token, rotate_bytes: 1024"))
    sidecar = Sidecar(load_config(tmp_path / "sidecar.yaml"), clock=lambda: 1.8e9)
    try:
        port = port_of(sidecar)
        store = sidecar.live.stores["minio"]
        for n in range(6):
            assert post(port, json.dumps(put_entry(n, size=TB)).encode())[0] == 200
        size = len(entry_lines(json.dumps(put_entry(0, size=TB)).encode())[0][0])
        assert size == 365  # three entries pass 1024 bytes: two files of three
        assert [p.name for p in store.files()] == ["audit-000001.jsonl", "audit-000002.jsonl"]
        assert sidecar.tick().records == {"minio": 6}
        assert [p.name for p in store.files()] == ["audit-000002.jsonl"]  # the current one
        assert post(port, json.dumps(put_entry(6, size=TB)).encode())[0] == 200
        report = sidecar.tick()
        assert (report.records, report.transfers) == ({"minio": 1}, 7)
    finally:
        sidecar.close()


def test_acknowledged_entries_survive_sigkill(tmp_path: Path) -> None:
    """Entries answered 200 are on disk: SIGKILL right after, and a restart reads them."""
    (tmp_path / "token").write_text(TOKEN)
    (tmp_path / "token").chmod(0o600)
    (tmp_path / "sidecar.yaml").write_text(
        config_text(tmp_path) + "interval_s: 3600\n")  # no tick reads them before the kill
    process = subprocess.Popen(
        [sys.executable, "-c", "from egress.cli_sidecar import sidecar_command; "
         "sidecar_command()", "--config", str(tmp_path / "sidecar.yaml")],
        env={**os.environ, "PYTHONPATH": str(REPO)}, stderr=subprocess.PIPE, text=True)
    lines = Lines(process)
    try:
        port = int(lines.wait_for(r"minio: MinIO audit webhook on 127\.0\.0\.1:(\d+)")[1])
        for n in range(5):
            assert post(port, json.dumps(put_entry(n, size=5 * TB)).encode()) == \
                (200, {"accepted": 1})
        process.kill()
        assert process.wait(timeout=30) == -signal.SIGKILL
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        lines.close()
    sidecar = Sidecar(load_config(tmp_path / "sidecar.yaml"), clock=lambda: 1.8e9)
    try:
        report = sidecar.tick()
    finally:
        sidecar.close()
    assert (report.records, report.transfers, len(report.new_alerts)) == ({"minio": 5}, 5, 1)


def test_concurrent_posts_are_all_stored_once(sidecar: Sidecar) -> None:
    port = port_of(sidecar)
    answers: list[tuple[int, dict[str, object]]] = []

    def client(k: int) -> None:
        for n in range(20):
            answers.append(post(port, json.dumps(put_entry(n, size=k + 1)).encode()))

    clients = [threading.Thread(target=client, args=(k,)) for k in range(8)]
    for thread in clients:
        thread.start()
    for thread in clients:
        thread.join(30)
    assert answers == [(200, {"accepted": 1})] * 160
    stored = [json.loads(line) for line in
              sidecar.live.stores["minio"].current.read_bytes().splitlines()]
    assert sorted((e["api"]["object"], e["requestHeader"]["Content-Length"])
                  for e in stored) == sorted(
        (f"shard-{n:04d}.tar", str(k + 1)) for k in range(8) for n in range(20))
    report = sidecar.tick()
    assert (report.records, report.transfers) == ({"minio": 160}, 160)


def test_too_large_and_unstorable_bodies(tmp_path: Path) -> None:
    (tmp_path / "token").write_text(TOKEN)
    (tmp_path / "token").chmod(0o600)
    (tmp_path / "sidecar.yaml").write_text(config_text(tmp_path).replace(
        "token_file: token", "token_file: token, max_body_bytes: 1024"))
    sidecar = Sidecar(load_config(tmp_path / "sidecar.yaml"), clock=lambda: 1.8e9)
    try:
        port = port_of(sidecar)
        big = json.dumps(put_entry(1, size=TB) | {"userAgent": "x" * 2000}).encode()
        assert post(port, big) == (413, {"error": "body over 1024 bytes"})
        store = sidecar.live.stores["minio"]
        store.current.mkdir()  # the entries cannot be written: MinIO must send them again
        assert post(port, json.dumps(put_entry(1, size=TB)).encode()) == \
            (503, {"error": "cannot store the entries now"})
        assert sidecar.tick().records == {}
    finally:
        sidecar.close()
