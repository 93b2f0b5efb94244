"""Busy but ordinary tenants that must stay below high (issue 6, point 5).

Each builder returns a :class:`~scenegen.scenes.Scene` with the same bystander as the
threat scenarios (:func:`scenegen.threats.bystander`).
"""

from __future__ import annotations

from scenegen.plan import MY_CDN, SG_CLOUD, US_CDN, US_CLOUD, utc
from scenegen.scenes import (
    GB,
    SITE_BACKUP,
    TB,
    Scene,
    bulk_streams,
    daily,
    object_days,
    plan_tenant,
)
from scenegen.threats import SEED, bystander


def established_ingest() -> Scene:
    """An established, verified tenant with 1,024 GPUs ingesting about 2 PB in four weeks
    (70 TB a day from CDNs), sending results out every day."""
    scene = Scene(name="established-ingest", seed=SEED, start=utc(2026, 5, 1),
                  end=utc(2026, 5, 29))
    t = scene.add(plan_tenant(
        "t-0701", name="Nusantara Media Analytics Bhd", registered="2023-01-10",
        cidr="10.71.0.0/16",
        allocations=(("h100-pod-1", "H100", 1024, "2023-02-01", None),),
        role="established verified tenant ingesting 2 PB a month"))
    daily(scene, t, MY_CDN, start=scene.start, end=scene.end, per_day=(5, 7),
          size=(4 * TB, 8 * TB), rate=(400e6, 900e6), subnet=8)
    daily(scene, t, US_CDN, start=scene.start, end=scene.end, per_day=(5, 7),
          size=(4 * TB, 8 * TB), rate=(400e6, 900e6), subnet=8)
    daily(scene, t, SG_CLOUD, start=scene.start, end=scene.end, per_day=(2, 4),
          size=(100 * GB, 500 * GB), direction="out")
    object_days(scene, t, start=scene.start, end=scene.end, per_day=(3, 8),
                size=(1 * GB, 30 * GB))
    bystander(scene)
    return scene


def small_new_tenant() -> Scene:
    """A new tenant with 8 GPUs receives 20 TB over two days."""
    scene = Scene(name="small-new-tenant", seed=SEED, start=utc(2026, 5, 4),
                  end=utc(2026, 5, 25))
    t = scene.add(plan_tenant(
        "t-0702", name="Cendana Vision Sdn Bhd", registered="2026-05-04",
        cidr="10.72.0.0/16", kyc="basic", payment="card",
        allocations=(("l40s-pod-1", "L40S", 8, "2026-05-05", None),),
        role="new tenant, 8 GPUs, 20 TB"))
    daily(scene, t, US_CDN, start=utc(2026, 5, 5), end=scene.end, per_day=(1, 4),
          size=(100_000_000, 5 * GB))
    bulk_streams(scene, t, US_CLOUD, start=utc(2026, 5, 12, 9), hours=40, total=20 * TB,
                 streams=4, sources=2, pull_every=1)
    bystander(scene)
    return scene


def new_gpu_no_arrival() -> Scene:
    """A new tenant reserves 1,024 GPUs and only pulls containers and code."""
    scene = Scene(name="new-gpu-no-arrival", seed=SEED, start=utc(2026, 5, 4),
                  end=utc(2026, 6, 1))
    t = scene.add(plan_tenant(
        "t-0703", name="Rimba Foundation Models Sdn Bhd", registered="2026-05-04",
        cidr="10.73.0.0/16", kyc="basic", payment="wire",
        allocations=(("h100-pod-2", "H100", 1024, "2026-05-06", None),),
        role="new large-GPU tenant without a bulk arrival"))
    daily(scene, t, US_CDN, start=utc(2026, 5, 6), end=scene.end, per_day=(5, 10),
          size=(20 * GB, 300 * GB))
    daily(scene, t, US_CLOUD, start=utc(2026, 5, 6), end=scene.end, per_day=(1, 3),
          size=(5 * GB, 100 * GB), direction="out")
    object_days(scene, t, start=utc(2026, 5, 6), end=scene.end, per_day=(5, 10),
                size=(5 * GB, 60 * GB))
    bystander(scene)
    return scene


def backup_restore() -> Scene:
    """The site's backup service restores 600 TB into an established tenant over three
    days (east-west inside the site: both ends are site addresses)."""
    scene = Scene(name="backup-restore", seed=SEED, start=utc(2026, 5, 1),
                  end=utc(2026, 5, 22))
    t = scene.add(plan_tenant(
        "t-0704", name="Maju Genomics Bhd", registered="2024-03-01", cidr="10.74.0.0/16",
        allocations=(("a100-pod-3", "A100", 512, "2024-03-10", None),),
        role="established tenant restored from the site's backups"))
    daily(scene, t, US_CDN, start=scene.start, end=scene.end, per_day=(2, 5),
          size=(1 * GB, 50 * GB))
    bulk_streams(scene, t, SITE_BACKUP, start=utc(2026, 5, 11, 3), hours=72,
                 total=600 * TB, streams=24, sources=8, pull_every=1)
    bystander(scene)
    return scene


def software_mirror() -> Scene:
    """A software mirror without GPUs: 60-70 TB a day in from upstream mirrors, about
    as much out to its users."""
    scene = Scene(name="software-mirror", seed=SEED, start=utc(2026, 5, 1),
                  end=utc(2026, 5, 29))
    t = scene.add(plan_tenant(
        "t-0705", name="Jaring Open Source Mirror", registered="2025-12-01",
        cidr="10.75.0.0/16", kyc="basic", payment="card",
        role="software mirror: heavy inbound, no GPUs"))
    daily(scene, t, US_CDN, start=scene.start, end=scene.end, per_day=(14, 20),
          size=(1 * TB, 3 * TB), rate=(200e6, 500e6))
    daily(scene, t, SG_CLOUD, start=scene.start, end=scene.end, per_day=(10, 16),
          size=(1 * TB, 3 * TB), rate=(200e6, 500e6))
    daily(scene, t, MY_CDN, start=scene.start, end=scene.end, per_day=(20, 30),
          size=(1 * TB, 3 * TB), rate=(200e6, 500e6), direction="out")
    bystander(scene)
    return scene


DECOYS = {s.__name__.replace("_", "-"): s for s in (
    established_ingest, small_new_tenant, new_gpu_no_arrival, backup_restore,
    software_mirror)}
"""Decoy builders by scenario name."""
