"""Zeek's ``likely_server_ports``: the ports that decide who originated a flow.

When a connection is first seen mid-stream (no SYN) or as a reply, Zeek makes
the side on a likely server port the responder. The set is the union of the
ports its loaded analyzers register; the defaults here are those of a default
(non-bare) Zeek run. ``TUNNEL_UDP_PORTS`` are registered even in bare mode.
"""

from __future__ import annotations

TUNNEL_UDP_PORTS: frozenset[int] = frozenset({4789, 6081, 3544, 5072, 2152, 2123})

DEFAULT_TCP_SERVER_PORTS: frozenset[int] = frozenset({
    21, 22, 25, 79, 80, 81, 88, 110, 135, 139, 143, 389, 443, 445, 502, 563, 585, 587,
    614, 631, 636, 989, 990, 992, 993, 995, 1080, 1883, 2811, 3128, 3268, 3306, 3389,
    5060, 5222, 5223, 5269, 5432, 6379, 6666, 6667, 6668, 6669, 8000, 8080, 8888, 20000,
})

DEFAULT_UDP_SERVER_PORTS: frozenset[int] = TUNNEL_UDP_PORTS | frozenset({
    53, 67, 88, 123, 137, 161, 162, 389, 443, 514, 547, 1812, 5060, 5353, 5355, 20000,
})

DNS_PORTS: frozenset[int] = frozenset({53, 137, 5353, 5355})
"""UDP responder ports where Zeek's DNS analyzer ends idle sessions after 10 s."""
