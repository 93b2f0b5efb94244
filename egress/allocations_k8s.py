"""GPU allocations from Kubernetes: the JSON of ``kubectl get pods -A -o json``.

A pod holds the GPUs Kubernetes accounts to it: the larger of what its regular
containers (plus sidecar init containers) hold together and what any init
container needs while it runs, as the scheduler computes a pod's effective
request. A container's GPUs are its ``limits`` of the resource (``nvidia.com/gpu``
by default), else its ``requests``. A pod holds them from ``status.startTime``
(``metadata.creationTimestamp`` when a started pod lacks it) until the last
container's ``finishedAt`` once the pod has Succeeded or Failed; a pod still
running has no end. Pods never started, or without GPUs, are counted as skipped;
malformed pods are counted as issues with their JSON path, never raised.

The GPU model comes from the pod's ``nodeSelector`` label ``nvidia.com/gpu.product``,
else from the node it ran on (``kubectl get nodes -o json``, read with
:func:`read_node_models`), else it is unknown (``None``). ``kubectl get namespaces
-o json`` gives each namespace's creation time and labels (:func:`read_namespaces`),
from which :func:`tenants_from_label` builds a namespace-to-tenant mapping.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from egress.allocations_slurm import AllocationRead, IssueTally
from egress.errors import SourceError
from egress.inventory import Allocation, ScheduledAllocation

GPU_RESOURCE = "nvidia.com/gpu"
PRODUCT_LABEL = "nvidia.com/gpu.product"
_FINISHED = ("Succeeded", "Failed")


@dataclass(frozen=True, slots=True, kw_only=True)
class Namespace:
    """A namespace as the API server reports it."""

    name: str
    created: datetime
    deleting_since: datetime | None
    labels: Mapping[str, str]


class _Malformed(ValueError):
    def __init__(self, where: str, message: str) -> None:
        super().__init__(message)
        self.where = where


def _load(path: Path) -> list[tuple[str, object]]:
    """The objects of a kubectl JSON file (a List or one object) with their JSON paths."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SourceError(f"cannot read kubectl output: {exc.strerror}", path=path) from exc
    try:
        text = raw.decode("utf-8")
        data = json.loads(text)
    except UnicodeDecodeError as exc:
        raise SourceError(f"not UTF-8 text: {exc.reason}", path=path, offset=exc.start) from exc
    except json.JSONDecodeError as exc:
        offset = len(text[: exc.pos].encode("utf-8"))
        raise SourceError(
            f"line {exc.lineno}: not valid JSON: {exc.msg}", path=path, offset=offset
        ) from exc
    if isinstance(data, dict) and isinstance(data.get("items"), list):
        return [(f"$.items[{i}]", item) for i, item in enumerate(data["items"])]
    if isinstance(data, dict) and isinstance(data.get("metadata"), dict):
        return [("$", data)]
    raise SourceError("not kubectl JSON: expected an object with an 'items' list", path=path)


def _get(obj: object, where: str, *keys: str) -> object:
    """``obj[k1][k2]...``; None when a key is absent, _Malformed when a step is not an object."""
    for key in keys:
        if obj is None:
            return None
        if not isinstance(obj, dict):
            raise _Malformed(where, "expected an object")
        obj = obj.get(key)
        where = f"{where}.{key}"
    return obj


def _text(obj: object, where: str, *keys: str) -> str | None:
    value = _get(obj, where, *keys)
    if value is not None and not (isinstance(value, str) and value):
        raise _Malformed(f"{where}.{'.'.join(keys)}", f"expected a non-empty string: {value!r}")
    return value


def _time(obj: object, where: str, *keys: str) -> datetime | None:
    text = _text(obj, where, *keys)
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise _Malformed(f"{where}.{'.'.join(keys)}", f"not a time: {text!r}") from None
    if moment.tzinfo is None:
        raise _Malformed(f"{where}.{'.'.join(keys)}", f"time {text!r} has no UTC offset")
    return moment.astimezone(UTC)


def _gpus(container: object, where: str, resource: str) -> int:
    for kind in ("limits", "requests"):
        value = _get(container, where, "resources", kind, resource)
        if value is None:
            continue
        if isinstance(value, str) and value.isdigit():
            return int(value)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
        raise _Malformed(
            f'{where}.resources.{kind}["{resource}"]', f"not a whole number of GPUs: {value!r}"
        )
    return 0


def _containers(spec: object, where: str, key: str) -> list[tuple[str, object]]:
    items = _get(spec, where, key)
    if items is None:
        return []
    if not isinstance(items, list):
        raise _Malformed(f"{where}.{key}", "expected a list")
    return [(f"{where}.{key}[{i}]", item) for i, item in enumerate(items)]


def pod_gpus(spec: object, where: str = "$.spec", resource: str = GPU_RESOURCE) -> int:
    """GPUs a pod spec holds: max(containers + sidecars, each init container's need).

    Init containers run one after another before the regular ones, so their
    GPUs are not added to those; sidecars (init containers with ``restartPolicy:
    Always``) keep running and are. Raises ValueError on a malformed spec.
    """
    sidecars = init_peak = 0
    for at, init in _containers(spec, where, "initContainers"):
        gpus = _gpus(init, at, resource)
        if _get(init, at, "restartPolicy") == "Always":
            sidecars += gpus
            init_peak = max(init_peak, sidecars)
        else:
            init_peak = max(init_peak, sidecars + gpus)
    regular = _containers(spec, where, "containers")
    if not regular:
        raise _Malformed(f"{where}.containers", "a pod needs at least one container")
    main = sum(_gpus(container, at, resource) for at, container in regular)
    return max(init_peak, main + sidecars)


def _finished_at(status: object, where: str) -> datetime | None:
    ends: list[datetime] = []
    for key in ("containerStatuses", "initContainerStatuses"):
        for at, item in _containers(status, where, key):
            end = _time(item, at, "state", "terminated", "finishedAt")
            if end is not None:
                ends.append(end)
    return max(ends, default=None)


def read_pods(
    path: Path,
    *,
    cluster: str,
    namespaces: Mapping[str, str] | None = None,
    node_models: Mapping[str, str] | None = None,
    resource: str = GPU_RESOURCE,
) -> AllocationRead:
    """Read ``kubectl get pods -A -o json`` output into one allocation per GPU pod.

    ``namespaces`` maps a namespace to a tenant id (a namespace it lacks is its
    own tenant id); ``node_models`` maps a node name to its GPU model. The job
    of each allocation is ``namespace/name:uid`` (a pod re-created under its
    name is another job). Raises SourceError when the file
    cannot be read or is not kubectl JSON.
    """
    mapping, models = namespaces or {}, node_models or {}
    tally = IssueTally(path)
    found: list[ScheduledAllocation] = []
    items = _load(path)
    for where, pod in items:
        try:
            kind = _get(pod, where, "kind")
            if kind not in (None, "Pod"):
                raise _Malformed(f"{where}.kind", f"not a Pod: {kind!r}")
            name = _text(pod, where, "metadata", "name")
            namespace = _text(pod, where, "metadata", "namespace")
            if name is None or namespace is None:
                raise _Malformed(f"{where}.metadata", "a pod needs a name and a namespace")
            gpus = pod_gpus(_get(pod, where, "spec"), f"{where}.spec", resource)
            phase = _get(pod, where, "status", "phase")
            start = _time(pod, where, "status", "startTime")
            if start is None and phase in ("Running", *_FINISHED):
                start = _time(pod, where, "metadata", "creationTimestamp")
            end = None
            if phase in _FINISHED:
                end = _finished_at(_get(pod, where, "status"), f"{where}.status")
                if end is None and gpus and start is not None:
                    raise _Malformed(f"{where}.status", f"{phase} pod without a finishedAt")
            model = _text(pod, where, "spec", "nodeSelector", PRODUCT_LABEL)
            node = _text(pod, where, "spec", "nodeName")
            uid = _text(pod, where, "metadata", "uid")
        except _Malformed as exc:
            tally.issue("malformed", exc.where, str(exc))
            continue
        if start is None:
            tally.skip("not_started")
            continue
        if gpus == 0:
            tally.skip("no_gpus")
            continue
        if end is not None and end < start:
            tally.issue("malformed", f"{where}.status", "finishedAt is before startTime")
            continue
        found.append(
            ScheduledAllocation(
                tenant_id=mapping.get(namespace, namespace),
                account=namespace,
                job=f"{namespace}/{name}" + (f":{uid}" if uid else ""),
                path=str(path),
                position=where,
                allocation=Allocation(
                    cluster=cluster,
                    gpu_model=model or (models.get(node) if node else None),
                    gpus=gpus,
                    valid_from=start,
                    valid_until=end,
                ),
            )
        )
    return AllocationRead(
        allocations=tuple(found),
        rows=len(items),
        skipped=dict(tally.skipped),
        issues=tally.issues(),
    )


def read_namespaces(path: Path) -> tuple[Namespace, ...]:
    """Read ``kubectl get namespaces -o json``; SourceError names the JSON path of a fault."""
    namespaces = []
    for where, item in _load(path):
        try:
            name = _text(item, where, "metadata", "name")
            created = _time(item, where, "metadata", "creationTimestamp")
            if name is None or created is None:
                raise _Malformed(f"{where}.metadata", "needs a name and a creationTimestamp")
            labels = _get(item, where, "metadata", "labels") or {}
            if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
                raise _Malformed(f"{where}.metadata.labels", "expected string labels")
            namespaces.append(
                Namespace(
                    name=name,
                    created=created,
                    deleting_since=_time(item, where, "metadata", "deletionTimestamp"),
                    labels=dict(labels),
                )
            )
        except _Malformed as exc:
            raise SourceError(f"{exc.where}: {exc}", path=path) from exc
    return tuple(namespaces)


def tenants_from_label(namespaces: Iterable[Namespace], label: str) -> dict[str, str]:
    """Namespace name to tenant id, from the namespaces that carry ``label``."""
    return {ns.name: ns.labels[label] for ns in namespaces if label in ns.labels}


def read_node_models(path: Path, label: str = PRODUCT_LABEL) -> dict[str, str]:
    """Node name to GPU model, from ``kubectl get nodes -o json`` node labels."""
    models = {}
    for where, item in _load(path):
        try:
            name = _text(item, where, "metadata", "name")
            model = _text(item, where, "metadata", "labels", label)
        except _Malformed as exc:
            raise SourceError(f"{exc.where}: {exc}", path=path) from exc
        if name is not None and model is not None:
            models[name] = model
    return models
