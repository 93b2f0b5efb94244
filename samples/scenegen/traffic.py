"""The scenario's network connections: the bulk arrival, the weights leaving, ordinary days.

Sizes are payload bytes; :mod:`scenegen.zeek` turns them into packets and IP bytes.
Every random choice comes from the ``random.Random`` passed in, in a fixed order.
"""

from __future__ import annotations

import math
import random
from datetime import datetime, timedelta

from scenegen.plan import (
    BACKGROUND_END,
    BACKGROUND_START,
    BULK_START,
    CN_CLOUD,
    CN_TELECOM,
    CN_UNICOM,
    DNS_ANYCAST,
    MY_CDN,
    MY_ISP,
    OUTBOUND_START,
    SG_CLOUD,
    US_CDN,
    US_CLOUD,
    RemoteRange,
    TenantPlan,
    tenant,
    utc,
)
from scenegen.zeek import Conn, micros, new_uid

HOUR_US = 3_600_000_000
DAY_US = 24 * HOUR_US
GB = 1_000_000_000
TB = 1_000 * GB


def _port(rng: random.Random) -> int:
    return rng.randrange(32768, 61000)


def _at(rng: random.Random, start: datetime, span_us: int) -> int:
    return micros(start) + rng.randrange(span_us)


def _pool(rng: random.Random, where: RemoteRange, n: int) -> list[str]:
    seen: list[str] = []
    while len(seen) < n:
        addr = where.address(rng)
        if addr not in seen:
            seen.append(addr)
    return seen


class ConnFactory:
    """Makes connections of a tenant with a shared random source."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.conns: list[Conn] = []

    def pull(self, who: TenantPlan | None, local: str, remote: str, where: RemoteRange,
             start_us: int, size: int, rate_bps: float, *, story: str, port: int = 443,
             service: str = "ssl") -> Conn:
        """The local host connects out and receives ``size`` bytes (a download)."""
        request = max(600, size // 90_000)
        return self._add(who, local, remote, where, start_us, size, rate_bps, story=story,
                         local_orig=True, orig_payload=request, resp_payload=size, port=port,
                         service=service)

    def push_out(self, who: TenantPlan, local: str, remote: str, where: RemoteRange,
                 start_us: int, size: int, rate_bps: float, *, story: str) -> Conn:
        """The local host connects out and sends ``size`` bytes (an upload)."""
        reply = max(900, size // 60_000)
        return self._add(who, local, remote, where, start_us, size, rate_bps, story=story,
                         local_orig=True, orig_payload=size, resp_payload=reply, port=443,
                         service="ssl")

    def push_in(self, who: TenantPlan, local: str, remote: str, where: RemoteRange,
                start_us: int, size: int, rate_bps: float, *, story: str, port: int = 22,
                service: str = "ssh") -> Conn:
        """A remote host connects in and sends ``size`` bytes (a push to the tenant)."""
        reply = max(2_000, size // 4_000)
        return self._add(who, local, remote, where, start_us, size, rate_bps, story=story,
                         local_orig=False, orig_payload=size, resp_payload=reply, port=port,
                         service=service)

    def _add(self, who: TenantPlan | None, local: str, remote: str, where: RemoteRange,
             start_us: int, size: int, rate_bps: float, *, story: str, local_orig: bool,
             orig_payload: int, resp_payload: int, port: int, service: str) -> Conn:
        duration_us = max(40_000, int(size / rate_bps * 1_000_000))
        orig_h, resp_h = (local, remote) if local_orig else (remote, local)
        conn = Conn(start_us=start_us, duration_us=duration_us, uid=new_uid(self.rng),
                    orig_h=orig_h, orig_p=_port(self.rng), resp_h=resp_h, resp_p=port,
                    proto="tcp", service=service, orig_payload=orig_payload,
                    resp_payload=resp_payload, tenant=None if who is None else who.id,
                    remote_is_orig=not local_orig, remote_country=where.country, story=story)
        self.conns.append(conn)
        return conn

    def udp(self, local: str, remote: str, where: RemoteRange, start_us: int, port: int,
            service: str, query: int, answer: int) -> Conn:
        """A site resolver or clock asking outside (no tenant owns it)."""
        conn = Conn(start_us=start_us, duration_us=self.rng.randrange(800, 60_000),
                    uid=new_uid(self.rng), orig_h=local, orig_p=_port(self.rng),
                    resp_h=remote, resp_p=port, proto="udp", service=service,
                    orig_payload=query, resp_payload=answer, tenant=None,
                    remote_is_orig=False, remote_country=where.country, story="site")
        self.conns.append(conn)
        return conn


def bulk_arrival(f: ConnFactory) -> list[Conn]:
    """40 parallel streams from 38 addresses in CN into t-0042, over four days.

    Two thirds push over SSH (the remote end originates and sends), a third are HTTPS
    pulls (t-0042's hosts originate, the remote end sends). All streams start on the
    first day and finish within 12 hours of each other on the fourth.
    """
    rng = f.rng
    t = tenant("t-0042")
    sources = (_pool(rng, CN_TELECOM, 16) + _pool(rng, CN_UNICOM, 12)
               + _pool(rng, CN_CLOUD, 10))
    streams = [*sources, sources[3], sources[20]]
    out = []
    for i, remote in enumerate(streams):
        where = (CN_TELECOM if remote in sources[:16] else
                 CN_UNICOM if remote in sources[16:28] else CN_CLOUD)
        start = micros(BULK_START) + rng.randrange(20 * HOUR_US)
        end = micros(BULK_START + timedelta(days=3, hours=10)) + rng.randrange(12 * HOUR_US)
        size = rng.randrange(7 * TB, 13 * TB + TB // 2)
        rate = size / ((end - start) / 1_000_000)
        local = f"10.42.8.{10 + i % 16}"
        if i % 3 == 2:
            conn = f.pull(t, local, remote, where, start, size, rate, story="bulk")
        else:
            conn = f.push_in(t, local, remote, where, start, size, rate, story="bulk")
        conn.duration_us = end - start
        conn.plan_interim(rng)
        out.append(conn)
    return out


def follow_on_outbound(f: ConnFactory) -> list[Conn]:
    """About 30 TB leaving t-0042 for CN over two days, three weeks after the arrival."""
    rng = f.rng
    t = tenant("t-0042")
    targets = _pool(rng, CN_CLOUD, 8)
    out = []
    for i in range(24):
        start = micros(OUTBOUND_START) + i * 105 * 60_000_000 + rng.randrange(20 * 60_000_000)
        size = rng.randrange(1_100 * GB, 1_400 * GB)
        hours = rng.uniform(3.0, 5.5)
        conn = f.push_out(t, f"10.42.9.{20 + i % 4}", targets[i % 8], CN_CLOUD, start, size,
                          size / (hours * 3600), story="outbound")
        out.append(conn)
    return out


def university_long_pull(f: ConnFactory) -> Conn:
    """An 11-hour dataset pull by the university lab from the MY CDN (in conn_long.log)."""
    rng = f.rng
    start = micros(utc(2026, 5, 17, 4, 12, 9))
    conn = f.pull(tenant("t-0003"), "10.3.2.41", MY_CDN.address(rng), MY_CDN, start,
                  3_210_554_112_000, 3_210_554_112_000 / (11 * 3600), story="ordinary")
    conn.plan_interim(rng)
    return conn


def _lognormal_size(rng: random.Random, median: float, sigma: float, lo: int, hi: int) -> int:
    return int(min(hi, max(lo, rng.lognormvariate(math.log(median), sigma))))


def ordinary_days(f: ConnFactory) -> None:
    """Ordinary traffic of every tenant and of the site, day by day."""
    rng = f.rng
    uni, video, startup, new = (tenant("t-0003"), tenant("t-0008"), tenant("t-0051"),
                                tenant("t-0042"))
    cdn_my = _pool(rng, MY_CDN, 12)
    cdn_us = _pool(rng, US_CDN, 10)
    video_edges = [(a, US_CDN) for a in _pool(rng, US_CDN, 6)] + [
        (a, SG_CLOUD) for a in _pool(rng, SG_CLOUD, 4)]
    studios = _pool(rng, MY_ISP, 5)
    cloud_us = _pool(rng, US_CLOUD, 6)
    admins = _pool(rng, MY_ISP, 3)
    resolvers = _pool(rng, DNS_ANYCAST, 2)
    day = BACKGROUND_START
    while day < BACKGROUND_END:
        for _ in range(rng.randint(30, 44)):  # public datasets from the CDN in MY
            size = _lognormal_size(rng, 12 * GB, 1.0, 50_000_000, 250 * GB)
            f.pull(uni, uni.host(rng, rng.randint(1, 4)), rng.choice(cdn_my), MY_CDN,
                   _at(rng, day, DAY_US), size, rng.uniform(150e6, 800e6), story="ordinary")
        for _ in range(rng.randint(8, 16)):  # packages and code
            size = rng.randrange(1_000_000, 800_000_000)
            f.pull(uni, uni.host(rng, 1), rng.choice(cdn_us), US_CDN, _at(rng, day, DAY_US),
                   size, rng.uniform(20e6, 120e6), story="ordinary")
        for _ in range(rng.randint(22, 30)):  # renders to the CDNs
            remote, where = rng.choice(video_edges)
            size = rng.randrange(40 * GB, 140 * GB)
            f.push_out(video, video.host(rng, 2), remote, where, _at(rng, day, DAY_US), size,
                       rng.uniform(300e6, 900e6), story="ordinary")
        for _ in range(rng.randint(5, 10)):  # footage from studios
            size = rng.randrange(1 * GB, 20 * GB)
            f.push_in(video, video.host(rng, 1), rng.choice(studios), MY_ISP,
                      _at(rng, day, DAY_US), size, rng.uniform(50e6, 200e6), story="ordinary",
                      port=443, service="ssl")
        for _ in range(rng.randint(4, 9)):
            size = rng.randrange(10_000_000, 3 * GB)
            f.pull(startup, startup.host(rng, 1), rng.choice(cloud_us), US_CLOUD,
                   _at(rng, day, DAY_US), size, rng.uniform(30e6, 200e6), story="ordinary")
        if day == utc(2026, 5, 21):  # the startup's 2 TB dataset, 16 objects
            for k in range(16):
                f.pull(startup, "10.51.1.20", rng.choice(cloud_us), US_CLOUD,
                       micros(day) + k * 40 * 60_000_000 + rng.randrange(60_000_000),
                       125 * GB + rng.randrange(GB), rng.uniform(250e6, 400e6),
                       story="ordinary")
        if day >= utc(2026, 5, 13):  # t-0042 admins and images
            for _ in range(rng.randint(2, 5)):
                size = rng.randrange(1_000_000, 50_000_000)
                f.push_in(new, "10.42.0.5", rng.choice(admins), MY_ISP, _at(rng, day, DAY_US),
                          size, rng.uniform(1e6, 10e6), story="ordinary")
            for _ in range(rng.randint(1, 4)):
                size = rng.randrange(2 * GB, 20 * GB)
                f.pull(new, new.host(rng, 1), rng.choice(cdn_us), US_CDN,
                       _at(rng, day, DAY_US), size, rng.uniform(100e6, 400e6),
                       story="ordinary")
        if day == utc(2026, 5, 13):  # test pulls from CN the day before the arrival
            for k in range(3):
                size = rng.randrange(50 * GB, 200 * GB)
                f.pull(new, "10.42.8.10", CN_TELECOM.address(rng), CN_TELECOM,
                       micros(day) + (9 + 3 * k) * HOUR_US + rng.randrange(HOUR_US // 3), size,
                       rng.uniform(200e6, 400e6),
                       story="ordinary")
        for _ in range(rng.randint(6, 10)):
            f.udp("10.0.1.53", rng.choice(resolvers), DNS_ANYCAST, _at(rng, day, DAY_US), 53,
                  "dns", rng.randrange(30, 60), rng.randrange(60, 300))
        for _ in range(2):
            f.udp("10.0.1.123", rng.choice(resolvers), DNS_ANYCAST, _at(rng, day, DAY_US), 123,
                  "ntp", 48, 48)
        day += timedelta(days=1)


def all_connections(rng: random.Random) -> list[Conn]:
    """Every connection of the scenario, in a fixed order."""
    f = ConnFactory(rng)
    bulk_arrival(f)
    university_long_pull(f)
    follow_on_outbound(f)
    ordinary_days(f)
    for conn in f.conns:
        if conn.proto == "tcp" and not conn.interim_payloads and (
                conn.duration_us > 6 * HOUR_US):
            raise AssertionError(f"{conn.uid} would need interim records: {conn.story}")
    return f.conns
