"""Wire-form DaemonSets, nodes and pods for the DaemonSet controller's tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

NOW = datetime(2026, 12, 5, 12, 0, 0, tzinfo=UTC)
DS_UID = "ds-uid-1"
NEW = "newhash"
OLD = "oldhash"


def stamp(seconds_ago: float) -> str:
    return (NOW - timedelta(seconds=seconds_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def make_node(
    name: str,
    labels: dict[str, str] | None = None,
    taints: list[dict[str, Any]] | None = None,
    *,
    unschedulable: bool = False,
) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    if taints:
        spec["taints"] = taints
    if unschedulable:
        spec["unschedulable"] = True
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
        "spec": spec,
    }


def taint(key: str, effect: str, value: str | None = None) -> dict[str, Any]:
    out = {"key": key, "effect": effect}
    if value is not None:
        out["value"] = value
    return out


def make_ds(
    name: str = "agent",
    *,
    uid: str = DS_UID,
    pod_spec: dict[str, Any] | None = None,
    strategy: dict[str, Any] | None = None,
    min_ready: int = 0,
    generation: int = 1,
    status: dict[str, Any] | None = None,
    history_limit: int | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "selector": {"matchLabels": {"app": name}},
        "template": {
            "metadata": {"labels": {"app": name}},
            "spec": pod_spec
            if pod_spec is not None
            else {"containers": [{"name": "c", "image": "busybox"}], "restartPolicy": "Always"},
        },
        "updateStrategy": strategy
        if strategy is not None
        else {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}},
    }
    if min_ready:
        spec["minReadySeconds"] = min_ready
    if history_limit is not None:
        spec["revisionHistoryLimit"] = history_limit
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": name, "namespace": "ns", "uid": uid, "generation": generation},
        "spec": spec,
        "status": status if status is not None else {},
    }


def rolling(max_unavailable: int | str | None = 1, max_surge: int | str | None = 0) -> dict[str, Any]:
    ru: dict[str, Any] = {}
    if max_unavailable is not None:
        ru["maxUnavailable"] = max_unavailable
    if max_surge is not None:
        ru["maxSurge"] = max_surge
    return {"type": "RollingUpdate", "rollingUpdate": ru}


def make_pod(
    name: str,
    node: str | None,
    *,
    hash_: str = NEW,
    phase: str = "Running",
    ready: bool = True,
    ready_ago: float = 3600,
    created_ago: float = 3600,
    bound: bool = True,
    deleting: bool = False,
    owner_uid: str = DS_UID,
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A daemon pod for ``node``: bound (``spec.nodeName``) or only pinned by affinity."""
    meta: dict[str, Any] = {
        "name": name,
        "namespace": "ns",
        "uid": f"uid-{name}",
        "creationTimestamp": stamp(created_ago),
        "labels": labels if labels is not None else {"app": "agent", "controller-revision-hash": hash_},
        "ownerReferences": [
            {
                "apiVersion": "apps/v1",
                "kind": "DaemonSet",
                "name": "agent",
                "uid": owner_uid,
                "controller": True,
            }
        ],
    }
    if deleting:
        meta["deletionTimestamp"] = stamp(1)
    spec: dict[str, Any] = {"containers": [{"name": "c", "image": "busybox"}]}
    if node is not None:
        spec["affinity"] = {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}
                    ]
                }
            }
        }
        if bound:
            spec["nodeName"] = node
    conditions = [
        {"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": stamp(ready_ago)}
    ]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": spec,
        "status": {"phase": phase, "conditions": conditions},
    }
