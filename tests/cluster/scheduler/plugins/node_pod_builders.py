"""Small builders for the Node and Pod JSON dicts the basic plugins' tests use."""

from __future__ import annotations

from typing import Any

from cluster.scheduler.framework.types import NodeInfo

Obj = dict[str, Any]


def node(
    name: str = "n1",
    *,
    labels: dict[str, str] | None = None,
    taints: list[Obj] | None = None,
    allocatable: dict[str, str] | None = None,
    unschedulable: bool = False,
) -> Obj:
    spec: Obj = {}
    if taints is not None:
        spec["taints"] = taints
    if unschedulable:
        spec["unschedulable"] = True
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": spec,
        "status": {"allocatable": allocatable or {"cpu": "4", "memory": "8Gi", "pods": "110"}},
    }


def container(requests: dict[str, str] | None = None, ports: list[Obj] | None = None, name: str = "c") -> Obj:
    out: Obj = {"name": name, "image": "busybox"}
    if requests is not None:
        out["resources"] = {"requests": requests}
    if ports is not None:
        out["ports"] = ports
    return out


def pod(
    name: str = "p",
    *,
    requests: dict[str, str] | None = None,
    containers: list[Obj] | None = None,
    node_name: str | None = None,
    node_selector: dict[str, str] | None = None,
    affinity: Obj | None = None,
    tolerations: list[Obj] | None = None,
    uid: str | None = None,
) -> Obj:
    spec: Obj = {"containers": containers if containers is not None else [container(requests)]}
    if node_name is not None:
        spec["nodeName"] = node_name
    if node_selector is not None:
        spec["nodeSelector"] = node_selector
    if affinity is not None:
        spec["affinity"] = affinity
    if tolerations is not None:
        spec["tolerations"] = tolerations
    meta: Obj = {"name": name, "namespace": "default"}
    if uid is not None:
        meta["uid"] = uid
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}


def info(n: Obj, *pods: Obj) -> NodeInfo:
    return NodeInfo(n, list(pods))
