"""Wire-form ReplicaSets and pods for the ReplicaSet controller's tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

NOW = datetime(2026, 12, 5, 12, 0, 0, tzinfo=UTC)
RS_UID = "rs-uid-1"


def stamp(seconds_ago: float) -> str:
    return (NOW - timedelta(seconds=seconds_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def make_rs(
    name: str = "web",
    *,
    replicas: int | None = 3,
    uid: str = RS_UID,
    selector: dict[str, Any] | None = None,
    template_labels: dict[str, str] | None = None,
    generation: int = 1,
    min_ready: int = 0,
    status: dict[str, Any] | None = None,
    deleting: bool = False,
    owner_uid: str | None = None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": "ns", "uid": uid, "generation": generation}
    if deleting:
        meta["deletionTimestamp"] = stamp(1)
    if owner_uid:
        meta["ownerReferences"] = [
            {"apiVersion": "apps/v1", "kind": "Deployment", "name": "d", "uid": owner_uid, "controller": True}
        ]
    spec: dict[str, Any] = {
        "selector": selector if selector is not None else {"matchLabels": {"app": name}},
        "template": {
            "metadata": {"labels": template_labels if template_labels is not None else {"app": name}},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]},
        },
    }
    if replicas is not None:
        spec["replicas"] = replicas
    if min_ready:
        spec["minReadySeconds"] = min_ready
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": meta,
        "spec": spec,
        "status": status if status is not None else {"replicas": 0},
    }


def controller_ref(uid: str = RS_UID, name: str = "web", kind: str = "ReplicaSet") -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": kind,
        "name": name,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def make_pod(
    name: str,
    *,
    uid: str | None = None,
    labels: dict[str, str] | None = None,
    owner: dict[str, Any] | None = None,
    other_owners: list[dict[str, Any]] | None = None,
    node: str | None = "n1",
    phase: str = "Running",
    ready_ago: float | None = None,
    not_ready: bool = False,
    created_ago: float | None = 600,
    restarts: int = 0,
    sidecar_restarts: int | None = None,
    cost: str | None = None,
    deleting: bool = False,
    resource_version: str = "7",
) -> dict[str, Any]:
    """A pod; ``ready_ago`` makes it Ready since that many seconds, ``not_ready`` adds Ready=False."""
    meta: dict[str, Any] = {
        "name": name,
        "namespace": "ns",
        "uid": uid or f"uid-{name}",
        "labels": labels if labels is not None else {"app": "web"},
        "resourceVersion": resource_version,
    }
    if created_ago is not None:
        meta["creationTimestamp"] = stamp(created_ago)
    refs = list(other_owners or []) + ([owner] if owner else [])
    if refs:
        meta["ownerReferences"] = refs
    if cost is not None:
        meta["annotations"] = {"controller.kubernetes.io/pod-deletion-cost": cost}
    if deleting:
        meta["deletionTimestamp"] = stamp(1)
    spec: dict[str, Any] = {"containers": [{"name": "c", "image": "busybox"}]}
    if node:
        spec["nodeName"] = node
    status: dict[str, Any] = {"phase": phase, "containerStatuses": [{"name": "c", "restartCount": restarts}]}
    if ready_ago is not None:
        status["conditions"] = [{"type": "Ready", "status": "True", "lastTransitionTime": stamp(ready_ago)}]
    elif not_ready:
        status["conditions"] = [{"type": "Ready", "status": "False", "lastTransitionTime": stamp(5)}]
    if sidecar_restarts is not None:
        spec["initContainers"] = [{"name": "side", "image": "busybox", "restartPolicy": "Always"}]
        status["initContainerStatuses"] = [{"name": "side", "restartCount": sidecar_restarts}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec, "status": status}
