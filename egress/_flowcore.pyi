"""Type stub of the compiled capture engine (sources in csrc/flowcore/)."""

from typing import TypedDict

FlowTuple = tuple[
    int, tuple[int, ...], int, bytes, int, bytes, int, int, int, int, int,
    int, int, int, int, int, int, str, str, int, int, int, int,
]
"""(uid, parent uids, family, orig addr, orig port, resp addr, resp port, ip proto,
l4 kind, first ns, last ns, orig pkts, orig ip bytes, orig bytes, resp pkts,
resp ip bytes, resp bytes, conn_state, history, vni or -1, vlan or -1,
inner vlan or -1, interim)"""

class EngineStats(TypedDict):
    packets: int
    captured_bytes: int
    ip_packets: int
    ip_bytes: int
    flows: int
    interim_records: int
    open_flows: int
    issues: dict[str, tuple[int, int]]

class Engine:
    def __init__(
        self,
        *,
        tcp_timeout: float = ...,
        udp_timeout: float = ...,
        icmp_timeout: float = ...,
        other_timeout: float = ...,
        long_tcp_timeout: float = ...,
        close_delay: float = ...,
        attempt_delay: float = ...,
        interim_interval: float = ...,
        tcp_server_ports: bytes = ...,
        udp_server_ports: bytes = ...,
        dns_ports: bytes = ...,
    ) -> None: ...
    def begin_file(self) -> None: ...
    def feed(self, buffer: bytes | bytearray | memoryview, final: bool = ..., /) -> int: ...
    def take(self) -> list[FlowTuple]: ...
    def flush(self) -> None: ...
    def stats(self) -> EngineStats: ...
    @property
    def error(self) -> tuple[str, int] | None: ...
