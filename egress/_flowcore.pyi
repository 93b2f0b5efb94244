"""Type stub of the compiled capture engine (sources in csrc/flowcore/)."""

from typing import TypedDict

from egress.records import Flow

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
        record_type: type[Flow] | None = ...,
        record_fields: tuple[str, ...] = ...,
    ) -> None: ...
    def begin_file(self) -> None: ...
    def feed(self, buffer: bytes | bytearray | memoryview, final: bool = ..., /) -> int: ...
    def feed_fd(self, fd: int, offset: int, length: int, final: bool = ..., /) -> int: ...
    def take(self) -> list[Flow]: ...
    def flush(self, max_records: int = ..., /) -> bool: ...
    def stats(self) -> EngineStats: ...
    @property
    def error(self) -> tuple[str, int] | None: ...
