"""Live packets: a pcap stream on a command's stdout, through the capture flow engine."""

from __future__ import annotations

import gzip
import itertools
import json
import random
import shutil
import socket
import threading
import time
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pytest
from click.testing import CliRunner

from egress.attribution import Attributor
from egress.cli import cli
from egress.errors import ConfigError
from egress.formats.zeek_conn import json_line
from egress.inventory import load_inventory
from egress.records import Flow
from egress.sidecar.config import PacketsConfig, load_config
from egress.sidecar.packets import FlowIncrements, PacketInput
from egress.sidecar.service import Sidecar
from egress.sources.live_pcap import CaptureStream
from egress.sources.pcap import CaptureReader, FlowOptions
from egress.transfers import TRANSFERS_SCHEMA, transfer_batches

PCAPS = Path(__file__).resolve().parents[2] / "pcaps"
UPLOAD = PCAPS / "datacenter-upload.pcap.gz"  # 34 flows, the longest 770 s
INVENTORY = """\
site: {name: lab, country: MY, networks: [10.0.0.0/8]}
concern_countries: []
tenants:
  - {id: t-0100, name: Lab Tenant, country: MY, kyc: verified, payment: invoice,
     registered: 2024-01-01, networks: [{cidr: 10.42.0.0/16, from: 2024-01-01}]}
"""


FLOW_COUNTS = {c["file"]: c["flow_count"] for c in json.loads(
    (PCAPS / "expected.json").read_text())["captures"]}


def captures() -> list[Path]:
    return sorted(p for p in PCAPS.iterdir() if p.suffix in (".pcap", ".pcapng", ".gz"))


@pytest.mark.parametrize("capture", captures(), ids=lambda p: p.name)
def test_stream_in_pieces_gives_the_flows_of_the_file(capture: Path) -> None:
    data = capture.read_bytes()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    for interim in (None, 30.0):
        options = FlowOptions(interim_interval_s=interim)
        expected = list(CaptureReader(options=options).read([capture]))
        stream = CaptureStream("pipe", options=options)
        got: list[Flow] = []
        rng = random.Random(7)
        pos = 0
        while pos < len(data):
            size = rng.choice((1, 7, 24, 1500, 65536))
            got += stream.feed(data[pos:pos + size])
            pos += size
        got += stream.end()
        assert got == expected
        assert stream.errors == []
        assert sum(1 for f in got if not f.interim) == FLOW_COUNTS[capture.name]


def test_a_broken_stream_keeps_the_flows_before_the_fault() -> None:
    data = (PCAPS / "ethernet.pcap").read_bytes()
    stream = CaptureStream("pipe")
    flows = stream.feed(data) + stream.feed(b"\x00" * 8 + b"\xff\xff\xff\x7f" * 2)
    flows += stream.end()
    assert stream.ended
    assert len(stream.errors) == 1
    assert len([f for f in flows if not f.interim]) == 6
    assert stream.feed(data) == []  # ignored once broken


def take_all(packets: PacketInput, timeout_s: float = 20.0) -> list[Flow]:
    """Start the command, then take records until it ended and all were taken."""
    flows = packets.pump()
    assert packets.command.wait(timeout_s), "the command did not end"
    return flows + packets.pump()


def egress_flows(capture: Path, *extra: str) -> list[str]:
    result = CliRunner().invoke(cli, ["flows", str(capture), "--format", "json", "--quiet",
                                      *extra])
    assert result.exit_code == 0, result.output
    return result.output.splitlines(keepends=True)


@pytest.mark.parametrize(("capture", "interim"), [
    (PCAPS / "ethernet.pcap", None),
    (PCAPS / "pcapng-multi.pcapng", None),
    (UPLOAD, 30.0),
])
def test_cat_into_the_pipe_equals_egress_flows(capture: Path, interim: float | None) -> None:
    command = ["zcat", str(capture)] if capture.suffix == ".gz" else ["cat", str(capture)]
    spec = PacketsConfig(name="wire", kind="packets", command=tuple(command),
                         interim_s=interim, restart_after_s=None)
    packets = PacketInput(spec)
    try:
        flows = take_all(packets)
        assert packets.pump() == []  # not run again: restart_after_s is null
        assert packets.command.started == 1
    finally:
        packets.close()
    extra = () if interim is None else ("--interim", str(interim))
    assert [json_line(f) for f in flows] == egress_flows(capture, *extra)
    if interim is not None:
        assert Counter(f.interim for f in flows) == {True: 49, False: 34}


def test_increments_add_up_to_the_final_flows(tmp_path: Path) -> None:
    (tmp_path / "inventory.yaml").write_text(INVENTORY)
    inventory = load_inventory(tmp_path / "inventory.yaml")
    flows = list(CaptureReader(options=FlowOptions(interim_interval_s=30.0)).read([UPLOAD]))
    attributor = Attributor(inventory, None)
    increments = FlowIncrements()
    items = [attributor.attribute(f) for f in flows]
    live = pa.concat_tables([increments.table(items[:40]), increments.table(items[40:])])
    assert len(increments) == 0  # every flow ended
    finals = [i for i, f in zip(items, flows, strict=True) if not f.interim]
    batch = pa.Table.from_batches(list(transfer_batches(finals)), schema=TRANSFERS_SCHEMA)
    assert live.num_rows == 83 and batch.num_rows == 34

    def per_flow(table: pa.Table) -> dict[str, tuple[int, int]]:
        out: dict[str, tuple[int, int]] = {}
        for row in table.select(["ref", "bytes_in", "bytes_out"]).to_pylist():
            was = out.get(row["ref"], (0, 0))
            out[row["ref"]] = (was[0] + row["bytes_in"], was[1] + row["bytes_out"])
        return out

    assert per_flow(live) == per_flow(batch)
    # Each increment starts where the flow's previous record ended; ``opened`` is its start.
    rows = sorted(live.to_pylist(), key=lambda r: (r["ref"], r["start"]))
    for before, after in itertools.pairwise(rows):
        if before["ref"] == after["ref"]:
            assert after["start"] == before["end"]
            assert after["opened"] == before["opened"]
    firsts = {r["ref"]: r for r in reversed(rows)}
    assert all(r["opened"] == r["start"] for r in firsts.values())


def test_sidecar_keeps_the_increments_of_a_live_capture(tmp_path: Path) -> None:
    (tmp_path / "inventory.yaml").write_text(INVENTORY)
    (tmp_path / "sidecar.yaml").write_text("\n".join([
        "inventory: inventory.yaml",
        "inputs:",
        f"  - {{name: wire, kind: packets, command: [zcat, {UPLOAD}], interim_s: 30, "
        "restart_after_s: null}",
        "state_directory: state",
        "listen: null",
    ]) + "\n")
    sidecar = Sidecar(load_config(tmp_path / "sidecar.yaml"), clock=lambda: 1.8e9)
    try:
        first = sidecar.tick()  # starts the command
        assert sidecar.live.packets["wire"].command.wait(20)
        report = sidecar.tick()
        records = first.records.get("wire", 0) + report.records.get("wire", 0)
        assert (records, report.transfers) == (83, 83)
        table = pa.concat_tables(sidecar.state.transfers(sidecar.checkpoint))
        assert sidecar.tick().records == {}
    finally:
        sidecar.close()
    total = sum(f.total_ip_bytes for f in CaptureReader().read([UPLOAD]))
    assert pa.compute.sum(table["bytes_in"]).as_py() + \
        pa.compute.sum(table["bytes_out"]).as_py() == total == 2250548333


@pytest.mark.skipif(shutil.which("tcpdump") is None, reason="tcpdump is not installed")
def test_real_tcpdump_on_loopback() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        spec = PacketsConfig(name="lo", kind="packets", interface="lo",
                             bpf=f"tcp port {port}", interim_s=None, restart_after_s=None)
        assert spec.argv == ("tcpdump", "-i", "lo", "-w", "-", "-U", f"tcp port {port}")
        packets = PacketInput(spec)
        try:
            packets.pump()
            time.sleep(1.0)  # tcpdump opens the interface
            if not packets.command.running:
                pytest.skip(f"tcpdump cannot capture on lo here (status "
                            f"{packets.command.last_status})")
            listener.listen()

            def serve() -> None:
                conn, _ = listener.accept()
                with conn:
                    while conn.recv(65536):
                        pass

            server = threading.Thread(target=serve)
            server.start()
            with socket.create_connection(("127.0.0.1", port)) as client:
                client.sendall(b"x" * 100_000)
            server.join(10)
            time.sleep(2.0)  # libpcap hands packets on in blocks, at least every second
        finally:
            packets.close()  # SIGTERM: tcpdump flushes, the stream ends
        flows = [f for f in packets.pump() if f.resp_p == port]
    assert len(flows) == 1
    assert (flows[0].orig_bytes, flows[0].resp_bytes, flows[0].conn_state) == (100_000, 0, "SF")


@pytest.mark.parametrize(("entry", "message"), [
    ("{name: w, kind: packets}", r"inputs\[0\]: give exactly one of interface"),
    ("{name: w, kind: packets, command: [cat, x], bpf: 'port 1'}",
     r"inputs\[0\]: bpf goes with interface"),
    ("{name: w, kind: packets, interface: 'eth0 -w /etc/x'}",
     r"inputs\[0\]\.interface: 'eth0 -w /etc/x' is not an interface name"),
    ("{name: w, kind: packets, interface: eth0, interim_s: -1}",
     r"inputs\[0\]\.interim_s: Input should be greater than 0"),
])
def test_config_errors(tmp_path: Path, entry: str, message: str) -> None:
    path = tmp_path / "sidecar.yaml"
    path.write_text(f"inventory: i.yaml\ninputs:\n  - {entry}\nstate_directory: s\n")
    with pytest.raises(ConfigError, match=r"sidecar\.yaml:3: " + message):
        load_config(path)


def test_drain_ends_the_open_flows_and_stores_them(tmp_path: Path) -> None:
    """A capture that keeps running (as tcpdump does): flows still open when the sidecar
    stops get their final records and are stored by the last tick."""
    (tmp_path / "inventory.yaml").write_text(INVENTORY)
    (tmp_path / "sidecar.yaml").write_text("\n".join([
        "inventory: inventory.yaml",
        "inputs:",
        f"  - {{name: wire, kind: packets, command: [sh, -c, 'zcat {UPLOAD}; exec sleep 600'],"
        " interim_s: null}",
        "state_directory: state",
        "listen: null",
    ]) + "\n")
    sidecar = Sidecar(load_config(tmp_path / "sidecar.yaml"), clock=lambda: 1.8e9)
    try:
        sidecar.tick()
        deadline = time.monotonic() + 20
        before = 0
        while before < 32 and time.monotonic() < deadline:  # flows ended by packet time
            time.sleep(0.05)
            before += sidecar.tick().records.get("wire", 0)
        assert sidecar.live.packets["wire"].command.running
        report = sidecar.drain()
        assert report is not None
        assert not sidecar.live.packets["wire"].command.running
        assert sidecar.live.packets["wire"].pump() == []  # retired: not started again
        table = pa.concat_tables(sidecar.state.transfers(sidecar.checkpoint))
    finally:
        sidecar.close()
    assert (before, report.records, report.transfers) == (32, {"wire": 2}, 34)
    assert pa.compute.sum(table["bytes_in"]).as_py() + \
        pa.compute.sum(table["bytes_out"]).as_py() == 2250548333
