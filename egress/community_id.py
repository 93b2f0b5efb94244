"""Community ID v1: the flow hash that Zeek, Suricata and Elastic share.

Computed here with :mod:`hashlib` rather than the ``communityid`` package because
it runs once per flow on captures with millions of flows; the tests check this
implementation against that package.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import struct

# Two-way ICMP message types and their counterparts (requests and replies).
_ICMP4_COUNTERPART = {8: 0, 0: 8, 13: 14, 14: 13, 15: 16, 16: 15, 10: 9, 9: 10, 17: 18, 18: 17}
_ICMP6_COUNTERPART = {
    128: 129, 129: 128, 133: 134, 134: 133, 135: 136, 136: 135,
    130: 131, 131: 130, 139: 140, 140: 139, 144: 145, 145: 144,
}
_PORTED = {6, 17, 132}


def community_id(
    orig_addr: bytes, orig_port: int, resp_addr: bytes, resp_port: int, ip_proto: int,
    *, seed: int = 0,
) -> str:
    """Return ``1:<base64 sha1>`` for a flow given packed addresses and ports.

    For ICMP and ICMPv6 the ports are the message type and code as Zeek keys
    them (``orig_port`` = type, ``resp_port`` = counterpart type or code).
    """
    src, dst, sport, dport = orig_addr, resp_addr, orig_port, resp_port
    one_way = False
    if ip_proto in (1, 58):
        table = _ICMP4_COUNTERPART if ip_proto == 1 else _ICMP6_COUNTERPART
        one_way = sport not in table
    if not one_way and (src, sport) > (dst, dport):
        src, dst, sport, dport = dst, src, dport, sport
    data = struct.pack("!H", seed) + src + dst + struct.pack("!BB", ip_proto, 0)
    if ip_proto in _PORTED or ip_proto in (1, 58):
        data += struct.pack("!HH", sport, dport)
    return "1:" + base64.b64encode(hashlib.sha1(data, usedforsecurity=False).digest()).decode()


def community_id_text(
    orig_h: str, orig_p: int, resp_h: str, resp_p: int, ip_proto: int, *, seed: int = 0
) -> str:
    """Community ID from textual addresses (convenience for logs and tests)."""
    return community_id(
        ipaddress.ip_address(orig_h).packed, orig_p,
        ipaddress.ip_address(resp_h).packed, resp_p, ip_proto, seed=seed,
    )
