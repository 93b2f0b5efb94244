"""Kubernetes adapter: pods' GPU limits into allocations, namespaces, node GPU models."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from egress.allocations import with_allocations
from egress.allocations_k8s import (
    Namespace,
    pod_gpus,
    read_namespaces,
    read_node_models,
    read_pods,
    tenants_from_label,
)
from egress.errors import SourceError
from egress.inventory import read_inventory
from egress.records import Issue

GPU = "nvidia.com/gpu"


def container(name: str, gpus: object = None, *, kind: str = "limits") -> dict[str, Any]:
    resources = {kind: {"cpu": "8", GPU: gpus}} if gpus is not None else {"limits": {"cpu": "1"}}
    return {"name": name, "image": "registry.example/train:1", "resources": resources}


def pod(
    name: str,
    namespace: str,
    containers: list[dict[str, Any]],
    *,
    init: list[dict[str, Any]] | None = None,
    phase: str = "Running",
    start: str | None = "2026-05-10T08:00:00Z",
    finished: list[str] | None = None,
    node: str | None = None,
    product: str | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": containers}
    if init is not None:
        spec["initContainers"] = init
    if node is not None:
        spec["nodeName"] = node
    if product is not None:
        spec["nodeSelector"] = {"nvidia.com/gpu.product": product}
    status: dict[str, Any] = {"phase": phase}
    if start is not None:
        status["startTime"] = start
    if finished is not None:
        status["containerStatuses"] = [
            {"name": f"c{i}", "state": {"terminated": {"exitCode": 0, "finishedAt": end}}}
            for i, end in enumerate(finished)
        ]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": f"uid-{name}",
            "creationTimestamp": "2026-05-10T07:59:00Z",
        },
        "spec": spec,
        "status": status,
    }


PODS = [
    # 0: two containers (4 + 2) and an init container needing 8: holds 8
    pod(
        "train-0", "acme-ml",
        [container("trainer", "4"), container("loader", 2)],
        init=[container("warmup", "8")],
        product="NVIDIA-H100-80GB-HBM3", node="gpu-node-1",
    ),
    # 1: 2 + 2, a plain init needing 1 and a sidecar holding 1: holds 2 + 2 + 1
    pod(
        "eval-7", "acme-ml",
        [container("eval", "2"), container("judge", "2")],
        init=[container("fetch", "1"), {**container("proxy", "1"), "restartPolicy": "Always"}],
        phase="Succeeded", finished=["2026-05-10T09:30:00Z", "2026-05-10T10:00:00Z"],
        node="gpu-node-7",
    ),
    # 2: no GPUs
    pod("web-0", "acme-ml", [container("web")]),
    # 3: waiting to be scheduled
    pod("train-1", "beta", [container("trainer", "8")], phase="Pending", start=None),
    # 4: a fractional GPU
    pod("bad-0", "beta", [container("trainer", "500m")]),
    # 5: failed without telling when
    pod("crash-0", "beta", [container("trainer", "1")], phase="Failed"),
    # 6: requests only, and no startTime though running: the creation time stands in
    pod("infer-0", "beta", [container("server", "1", kind="requests")], start=None),
]
NAMESPACES = {
    "apiVersion": "v1",
    "kind": "List",
    "items": [
        {
            "kind": "Namespace",
            "metadata": {
                "name": "acme-ml",
                "creationTimestamp": "2026-05-02T03:00:00Z",
                "labels": {"kubernetes.io/metadata.name": "acme-ml", "tenant": "t-0042"},
            },
        },
        {
            "kind": "Namespace",
            "metadata": {
                "name": "beta",
                "creationTimestamp": "2026-05-03T00:00:00+08:00",
                "deletionTimestamp": "2026-05-20T00:00:00Z",
            },
        },
    ],
}
NODES = {
    "kind": "NodeList",
    "items": [
        {"metadata": {"name": "gpu-node-7", "labels": {
            "nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"}}},
        {"metadata": {"name": "cpu-node-1", "labels": {}}},
    ],
}


def utc(day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(2026, 5, day, hour, minute, tzinfo=UTC)


def write(tmp_path: Path, name: str, data: object) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data, indent=1), encoding="utf-8")
    return path


def test_reads_gpu_pods(tmp_path: Path) -> None:
    path = write(tmp_path, "pods.json", {"apiVersion": "v1", "kind": "List", "items": PODS})
    models = read_node_models(write(tmp_path, "nodes.json", NODES))
    assert models == {"gpu-node-7": "NVIDIA-A100-SXM4-80GB"}
    read = read_pods(path, cluster="kul-k8s", namespaces={"acme-ml": "t-0042"}, node_models=models)
    assert [
        (
            s.tenant_id, s.account, s.job, s.position, s.allocation.cluster,
            s.allocation.gpu_model, s.allocation.gpus, s.allocation.valid_from,
            s.allocation.valid_until,
        )
        for s in read.allocations
    ] == [
        ("t-0042", "acme-ml", "acme-ml/train-0:uid-train-0", "$.items[0]", "kul-k8s",
         "NVIDIA-H100-80GB-HBM3", 8, utc(10, 8), None),
        ("t-0042", "acme-ml", "acme-ml/eval-7:uid-eval-7", "$.items[1]", "kul-k8s",
         "NVIDIA-A100-SXM4-80GB", 5, utc(10, 8), utc(10, 10)),
        ("beta", "beta", "beta/infer-0:uid-infer-0", "$.items[6]", "kul-k8s",
         None, 1, utc(10, 7, 59), None),
    ]
    assert read.rows == 7
    assert read.skipped == {"no_gpus": 1, "not_started": 1}
    assert read.issues == (
        Issue(
            path=str(path), kind="malformed", count=2,
            detail='$.items[4].spec.containers[0].resources.limits["nvidia.com/gpu"]: '
            "not a whole number of GPUs: '500m'",
        ),
    )


def test_each_malformed_pod_is_described(tmp_path: Path) -> None:
    good = pod("p", "ns", [container("c", "1")])
    for broken, detail in [
        (PODS[5], "$.items[0].status: Failed pod without a finishedAt"),
        ({**good, "spec": {"containers": []}}, "$.items[0].spec.containers: "
         "a pod needs at least one container"),
        ({**good, "spec": {"containers": "c"}}, "$.items[0].spec.containers: expected a list"),
        ({**good, "kind": "Service"}, "$.items[0].kind: not a Pod: 'Service'"),
        ({**good, "metadata": {"name": "p"}}, "$.items[0].metadata: a pod needs a name and a "
         "namespace"),
        ({**good, "status": {"phase": "Running", "startTime": "2026-05-10 08:00"}},
         "$.items[0].status.startTime: time '2026-05-10 08:00' has no UTC offset"),
        ({**good, "status": {"phase": "Running", "startTime": 5}},
         "$.items[0].status.startTime: expected a non-empty string: 5"),
        ("pod", "$.items[0]: expected an object"),
        (pod("p", "ns", [container("c", "1")], phase="Succeeded",
             finished=["2026-05-10T07:00:00Z"]),
         "$.items[0].status: finishedAt is before startTime"),
        (pod("p", "ns", [container("c", True)]),
         '$.items[0].spec.containers[0].resources.limits["nvidia.com/gpu"]: '
         "not a whole number of GPUs: True"),
    ]:
        path = write(tmp_path, "pods.json", {"kind": "PodList", "items": [broken]})
        read = read_pods(path, cluster="c")
        assert read.allocations == ()
        assert [(i.kind, i.count, i.detail) for i in read.issues] == [("malformed", 1, detail)]


def test_pod_gpus_follows_the_effective_request_rule() -> None:
    def spec(main: list[int], init: list[tuple[int, bool]]) -> dict[str, Any]:
        return {
            "containers": [container(f"m{i}", g) for i, g in enumerate(main)],
            "initContainers": [
                {**container(f"i{i}", g), **({"restartPolicy": "Always"} if side else {})}
                for i, (g, side) in enumerate(init)
            ],
        }

    assert pod_gpus(spec([1, 1], [])) == 2
    assert pod_gpus(spec([1, 1], [(4, False), (3, False)])) == 4
    assert pod_gpus(spec([2], [(1, False), (1, True)])) == 3
    # a sidecar started before an init container runs beside it
    assert pod_gpus(spec([0], [(2, True), (3, False)])) == 5
    assert pod_gpus(spec([1], [(3, False), (2, True)])) == 3
    assert pod_gpus({"containers": [container("a", 2)]}, resource="amd.com/gpu") == 0


def test_namespaces_give_creation_times_and_tenant_labels(tmp_path: Path) -> None:
    namespaces = read_namespaces(write(tmp_path, "ns.json", NAMESPACES))
    assert namespaces == (
        Namespace(
            name="acme-ml", created=datetime(2026, 5, 2, 3, tzinfo=UTC), deleting_since=None,
            labels={"kubernetes.io/metadata.name": "acme-ml", "tenant": "t-0042"},
        ),
        Namespace(
            name="beta", created=datetime(2026, 5, 2, 16, tzinfo=UTC),
            deleting_since=utc(20), labels={},
        ),
    )
    assert tenants_from_label(namespaces, "tenant") == {"acme-ml": "t-0042"}
    broken = {"items": [{"metadata": {"name": "x"}}]}
    with pytest.raises(SourceError, match=r"ns\.json: \$\.items\[0\]\.metadata: needs a name "
                       "and a creationTimestamp"):
        read_namespaces(write(tmp_path, "ns.json", broken))


def test_files_that_are_not_kubectl_json(tmp_path: Path) -> None:
    path = tmp_path / "pods.json"
    path.write_text('{"items": [\n  {"metadata": },\n]}', encoding="utf-8")
    with pytest.raises(SourceError, match=r"pods\.json at byte 27: line 2: not valid JSON: "
                       "Expecting value"):
        read_pods(path, cluster="c")
    with pytest.raises(SourceError, match=r"not kubectl JSON: expected an object with an 'items'"):
        read_pods(write(tmp_path, "pods.json", [PODS[0]]), cluster="c")
    with pytest.raises(SourceError, match=r"gone\.json: cannot read kubectl output"):
        read_pods(tmp_path / "gone.json", cluster="c")
    one = read_pods(write(tmp_path, "pod.json", PODS[0]), cluster="c")
    assert [(s.position, s.allocation.gpus) for s in one.allocations] == [("$", 8)]


def test_pods_merge_into_the_inventory(tmp_path: Path) -> None:
    inventory_path = tmp_path / "inventory.yaml"
    inventory_path.write_text(
        "site: {name: kul-1, country: MY, networks: [10.0.0.0/8]}\n"
        "concern_countries: [CN]\n"
        "tenants:\n"
        "  - {id: t-0042, name: Example, registered: 2026-05-02, country: MY, kyc: basic,"
        " payment: crypto}\n",
        encoding="utf-8",
    )
    namespaces = read_namespaces(write(tmp_path, "ns.json", NAMESPACES))
    pods = read_pods(
        write(tmp_path, "pods.json", {"items": PODS}),
        cluster="kul-k8s",
        namespaces=tenants_from_label(namespaces, "tenant"),
    )
    inventory, issues = with_allocations(
        read_inventory(inventory_path), pods.allocations, skip_unknown=True
    )
    assert [(i.kind, i.count) for i in issues] == [("unknown_tenant", 1)]
    assert inventory.gpus_allocated("t-0042", utc(10, 7)) == 0
    assert inventory.gpus_allocated("t-0042", utc(10, 9)) == 13
    assert inventory.gpus_allocated("t-0042", utc(10, 10)) == 8
    assert inventory.gpus_allocated("t-0042", utc(30)) == 8
