"""Community ID v1 against the reference implementation and Suricata's output."""

from __future__ import annotations

from pathlib import Path

import communityid
import pytest

from egress.community_id import community_id_text
from egress.sources.pcap import read_flows

CASES = [
    ("10.0.0.1", 40000, "192.0.2.7", 443, 6),
    ("192.0.2.7", 443, "10.0.0.1", 40000, 6),
    ("2001:db8::1", 5353, "2001:db8::2", 53, 17),
    ("10.0.0.1", 8, "10.0.0.2", 0, 1),      # echo request
    ("10.0.0.2", 0, "10.0.0.1", 8, 1),      # echo reply
    ("10.0.0.9", 3, "10.0.0.1", 3, 1),      # one-way: destination unreachable
    ("2001:db8::1", 128, "2001:db8::2", 129, 58),
    ("10.0.0.1", 0, "10.0.0.1", 0, 6),
]


def _reference(orig_h: str, orig_p: int, resp_h: str, resp_p: int, proto: int, seed: int) -> str:
    cid = communityid.CommunityID(seed=seed)
    if proto == 6:
        tpl = communityid.FlowTuple.make_tcp(orig_h, resp_h, orig_p, resp_p)
    elif proto == 17:
        tpl = communityid.FlowTuple.make_udp(orig_h, resp_h, orig_p, resp_p)
    elif proto == 1:
        tpl = communityid.FlowTuple.make_icmp(orig_h, resp_h, orig_p, resp_p)
    else:
        tpl = communityid.FlowTuple.make_icmp6(orig_h, resp_h, orig_p, resp_p)
    return str(cid.calc(tpl))


@pytest.mark.parametrize("seed", [0, 7])
@pytest.mark.parametrize("case", CASES)
def test_matches_reference_implementation(case: tuple[str, int, str, int, int], seed: int) -> None:
    assert community_id_text(*case, seed=seed) == _reference(*case, seed=seed)


def test_unknown_protocol_hashes_without_ports() -> None:
    # SCTP (132) has ports but Zeek (since 7.1) hashes only addresses and protocol for it
    assert community_id_text("10.0.0.1", 0, "10.0.0.2", 0, 132) == community_id_text(
        "10.0.0.2", 0, "10.0.0.1", 0, 132)


def test_suricata_expected_value_for_ipv6_tls(corpus: Path) -> None:
    case = corpus / "suricata-verify__community-id-ipv6"
    flows = read_flows([case / "input.pcap"])
    by_port = {f.orig_p: f for f in flows}
    flow = by_port[33892]
    assert flow.resp_p == 443
    # Suricata ran that test with seed 7; our flows carry seed 0, so recompute with 7
    assert community_id_text(flow.orig_h, flow.orig_p, flow.resp_h, flow.resp_p, 6, seed=7) == (
        "1:PGf+a0eBbs1OhuPtJmsF0Sm51v4=")
    assert (flow.orig_pkts, flow.resp_pkts) == (17, 17)


def test_engine_community_ids_match_the_reference_on_every_sample_capture() -> None:
    from tests.conftest import REPO

    checked = 0
    for capture in sorted((REPO / "pcaps").glob("*.pcap*")):
        for f in read_flows([capture]):
            assert f.community_id == community_id_text(
                f.orig_h, f.orig_p, f.resp_h, f.resp_p, f.ip_proto), (capture.name, f)
            checked += 1
    assert checked > 100
