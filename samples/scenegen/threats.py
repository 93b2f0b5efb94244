"""The rental patterns of public reporting, as acceptance scenarios (issue 6, point 5).

Each builder returns a :class:`~scenegen.scenes.Scene`; ``samples/SCENARIOS.md`` tells each
story and the outcome ``tests/test_scenarios.py`` asserts. Every scenario also holds a
bystander, an established university lab with ordinary traffic, that must stay silent.
"""

from __future__ import annotations

from datetime import timedelta

from scenegen.plan import (
    CN_CLOUD,
    CN_TELECOM,
    CN_UNICOM,
    DNS_ANYCAST,
    HK_TRANSIT,
    INGEST_STATION,
    MY_CDN,
    SG_CLOUD,
    US_CDN,
    US_CLOUD,
    utc,
)
from scenegen.scenes import (
    GB,
    TB,
    Scene,
    bulk_streams,
    daily,
    drive_import,
    multipart,
    object_days,
    outbound,
    plan_tenant,
    site_dns,
)
from scenegen.zeek import micros

SEED = "egress-acceptance-v1"


def bystander(scene: Scene) -> None:
    """An established, verified university lab: datasets from the CDN in MY (one of them
    an 11-hour pull), a routine import of four drives at the ingest station, checkpoints
    in its bucket."""
    uni = scene.add(plan_tenant(
        "t-0003", name="Universiti Contoh Malaysia - Vision Lab", registered="2024-02-01",
        cidr="10.3.0.0/16", allocations=(("a100-pod-1", "A100", 256, "2024-02-15", None),),
        role="bystander: established university lab with ordinary traffic"))
    daily(scene, uni, MY_CDN, start=scene.start, end=scene.end, per_day=(3, 6),
          size=(5 * GB, 80 * GB))
    if not any(c.interim_payloads for c in scene.conns.conns):
        # An 11-hour pull of a public dataset, so that every scenario has a conn_long.log.
        # Only where no other connection has interim records: egress reads all interim
        # records before conn.log and forgets those 24 h older than the newest (see
        # SCENARIOS.md), so long connections of one scenario end within a day of each other.
        at = scene.start + timedelta(days=6, hours=3)
        size = 3_100 * GB
        conn = scene.conns.pull(uni, uni.host(scene.rng, 2), MY_CDN.address(scene.rng), MY_CDN,
                                micros(at), size, size / (11 * 3600), story="ordinary")
        conn.plan_interim(scene.rng)
    # A routine media import: four 20 TB drives of survey imagery, copied in a day.
    day = scene.start + timedelta(days=4)
    drive_import(scene, uni, received=day, waves=[day.replace(hour=9)], per_wave=4,
                 size_tb=20, rate=450e6, file_bytes=(300 * GB, 600 * GB), prefix="ZR",
                 job="imp-12")
    object_days(scene, uni, start=scene.start, end=scene.end, per_day=(1, 3),
                size=(200_000_000, 4 * GB))
    site_dns(scene, DNS_ANYCAST, start=scene.start, end=scene.end)


def drive_courier() -> Scene:
    """A local company replaces a foreign subsidiary's account, reserves 300 x 8 GPUs and
    ships 60 drives of 80 TB, attached over 3 days and copied into its bucket."""
    scene = Scene(name="drive-courier", seed=SEED, start=utc(2026, 3, 1),
                  end=utc(2026, 4, 1))
    shared_ref, shared = "PAY-MY-55120", ("infra@huaxin-ai.example", "+60 3 2711 5120")
    scene.add(plan_tenant(
        "t-0117", name="Huaxin AI (Malaysia) Sdn Bhd", registered="2025-04-01",
        cidr="10.117.0.0/16", kyc="basic", payment="wire", parent_country="CN",
        net_until="2026-02-27", offboarded="2026-02-27", payment_ref=shared_ref,
        contacts=shared,
        allocations=(("h100-pod-2", "H100", 1024, "2025-04-10", "2026-02-27"),),
        role="predecessor: foreign subsidiary, offboarded before the logs begin"))
    new = scene.add(plan_tenant(
        "t-0142", name="Semenanjung Data Solutions Sdn Bhd", registered="2026-03-02",
        cidr="10.142.0.0/16", kyc="basic", payment="wire", predecessor="t-0117",
        payment_ref=shared_ref, contacts=(*shared, "admin@semenanjung-data.example.my"),
        allocations=(("h100-pod-2", "H100", 2400, "2026-03-09", None),),
        role="successor: 300 servers x 8 GPUs, then 60 drives of 80 TB"))
    daily(scene, new, US_CDN, start=utc(2026, 3, 9), end=scene.end, per_day=(2, 4),
          size=(2 * GB, 40 * GB))
    waves = [utc(2026, 3, 23 + d, h, 30) for d in range(3) for h in (0, 12)]
    media = drive_import(scene, new, received=utc(2026, 3, 22), waves=waves, per_wave=10,
                         size_tb=80, rate=2.2e9, file_bytes=(1_500 * GB, 3_000 * GB),
                         job="imp-142")
    first = media.drives[0]
    for when, name, size in first.files[:2]:  # the uploader's first objects (an excerpt)
        multipart(scene, new, at=when + timedelta(seconds=3), key=f"imp/{name}",
                  size=size, remote=INGEST_STATION)
    bystander(scene)
    return scene


def crypto_rental() -> Scene:
    """No KYC, paid in crypto, 300 H100 servers; 640 TB from CN within three weeks of
    registration; 3.6 TB of weights leave for CN three weeks after the arrival."""
    scene = Scene(name="crypto-rental", seed=SEED, start=utc(2026, 4, 1), end=utc(2026, 5, 10))
    renter = scene.add(plan_tenant(
        "t-0201", name="Bright Horizon Compute Ltd", registered="2026-04-01",
        cidr="10.201.0.0/16", kyc="none", payment="crypto",
        allocations=(("h100-pod-3", "H100", 2400, "2026-04-03", None),),
        role="crypto-paid renter without KYC"))
    daily(scene, renter, US_CDN, start=utc(2026, 4, 3), end=scene.end, per_day=(2, 4),
          size=(1 * GB, 20 * GB))
    bulk_streams(scene, renter, CN_TELECOM, start=utc(2026, 4, 12, 6), hours=120,
                 total=330 * TB, streams=24, sources=20)
    bulk_streams(scene, renter, CN_UNICOM, start=utc(2026, 4, 12, 18), hours=108,
                 total=310 * TB, streams=24, sources=20, subnet=9)
    outbound(scene, renter, CN_CLOUD, start=utc(2026, 5, 6, 8), transfers=12,
             size=(250 * GB, 350 * GB))
    bystander(scene)
    return scene


def foreign_parent_expansion() -> Scene:
    """A long-standing subsidiary of a CN parent, with steady traffic to and from HK and
    CN, adds 1,536 GPUs and eight days later receives 420 TB from CN."""
    scene = Scene(name="foreign-parent-expansion", seed=SEED, start=utc(2026, 3, 20),
                  end=utc(2026, 5, 1))
    sub = scene.add(plan_tenant(
        "t-0301", name="Dongfang Cloud Intelligence (M) Sdn Bhd", registered="2022-07-01",
        cidr="10.31.0.0/16", parent_country="CN",
        allocations=(("a100-pod-2", "A100", 256, "2022-08-01", None),
                     ("h100-pod-4", "H100", 1536, "2026-04-06", None)),
        role="long-standing foreign-parented tenant: expansion, then a bulk arrival"))
    daily(scene, sub, HK_TRANSIT, start=scene.start, end=scene.end, per_day=(3, 6),
          size=(50 * GB, 250 * GB))
    daily(scene, sub, CN_CLOUD, start=scene.start, end=scene.end, per_day=(1, 3),
          size=(20 * GB, 200 * GB))
    daily(scene, sub, CN_CLOUD, start=scene.start, end=scene.end, per_day=(2, 4),
          size=(30 * GB, 150 * GB), direction="out")
    bulk_streams(scene, sub, CN_UNICOM, start=utc(2026, 4, 14, 2), hours=96,
                 total=420 * TB, streams=24, sources=16)
    object_days(scene, sub, start=scene.start, end=scene.end, per_day=(2, 5),
                size=(1 * GB, 20 * GB))
    bystander(scene)
    return scene


def next_gen_reservation() -> Scene:
    """A new HK company reserves 512 B200 GPUs at the site, then 40 Gbit/s arrives for
    four days (1.8 PB)."""
    scene = Scene(name="next-gen-reservation", seed=SEED, start=utc(2026, 5, 4),
                  end=utc(2026, 5, 28))
    renter = scene.add(plan_tenant(
        "t-0401", name="Pearl Delta Frontier Compute Ltd", registered="2026-05-04",
        country="HK", cidr="10.41.0.0/16", kyc="basic", payment="wire",
        allocations=(("b200-pod-1", "B200", 512, "2026-05-11", None),),
        role="new foreign tenant reserving next-generation GPUs"))
    daily(scene, renter, SG_CLOUD, start=utc(2026, 5, 11), end=scene.end, per_day=(2, 4),
          size=(1 * GB, 30 * GB))
    hours = 100
    bulk_streams(scene, renter, HK_TRANSIT, start=utc(2026, 5, 18), hours=hours,
                 total=int(40e9 / 8 * hours * 3600), streams=32, sources=24)
    bystander(scene)
    return scene


def startup_dataset() -> Scene:
    """A startup renting 64 GPUs pulls a 20 TB dataset from a US cloud in ten hours."""
    scene = Scene(name="startup-dataset", seed=SEED, start=utc(2026, 3, 16),
                  end=utc(2026, 4, 20))
    startup = scene.add(plan_tenant(
        "t-0501", name="Kopi Labs Sdn Bhd", registered="2026-03-16", cidr="10.51.0.0/16",
        kyc="basic", payment="card",
        allocations=(("h100-pod-1", "H100", 64, "2026-03-20", None),),
        role="startup: 64 GPUs and a 20 TB dataset"))
    daily(scene, startup, US_CLOUD, start=utc(2026, 3, 20), end=scene.end, per_day=(3, 8),
          size=(50_000_000, 5 * GB))
    bulk_streams(scene, startup, US_CLOUD, start=utc(2026, 4, 7, 8), hours=10,
                 total=20 * TB, streams=8, sources=6, pull_every=1)
    object_days(scene, startup, start=utc(2026, 3, 20), end=scene.end, per_day=(1, 4),
                size=(100_000_000, 3 * GB))
    bystander(scene)
    return scene


MARKET = ((SG_CLOUD, 512, 150), (HK_TRANSIT, 256, 110), (US_CLOUD, 384, 130),
          (SG_CLOUD, 256, 120), (HK_TRANSIT, 512, 170), (US_CLOUD, 256, 105))
"""Each marketplace rental: where its data comes from, GPUs, TB arriving."""


def no_kyc_marketplace() -> Scene:
    """A marketplace without KYC: six renters on successive days, each with a large
    cluster for 19 hours and 105-170 TB arriving during the rental (16 parallel 4-hour
    copies, four times over); the same address range serves each in turn."""
    scene = Scene(name="no-kyc-marketplace", seed=SEED, start=utc(2026, 6, 1),
                  end=utc(2026, 6, 10))
    for i, (where, gpus, tb) in enumerate(MARKET):
        day = utc(2026, 6, 2 + i)
        stamp = day.date().isoformat()
        renter = scene.add(plan_tenant(
            f"t-06{i + 1:02d}", name=f"GPU Market Renter {i + 1}",
            registered=f"{stamp}T02:00:00Z", net_from=f"{stamp}T02:00:00Z",
            net_until=f"{(day + timedelta(days=1)).date().isoformat()}T00:00:00Z",
            cidr="10.60.0.0/16", kyc="none", payment="card",
            allocations=(("h100-pod-5", "H100", gpus, f"{stamp}T03:00:00Z",
                          f"{stamp}T22:00:00Z"),),
            role="marketplace renter for under a day"))
        for wave in range(4):  # four waves of 4-hour copies, one shard set each
            bulk_streams(scene, renter, where, start=day.replace(hour=4 + 4 * wave),
                         hours=4, total=tb * TB // 4, streams=16, sources=12)
    bystander(scene)
    return scene


THREATS = {s.__name__.replace("_", "-"): s for s in (
    drive_courier, crypto_rental, foreign_parent_expansion, next_gen_reservation,
    startup_dataset, no_kyc_marketplace)}
"""Scenario builders by scenario name."""
