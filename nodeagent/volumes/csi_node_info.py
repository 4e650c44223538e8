"""What a registered CSI driver tells the cluster about this node (the kubelet's nodeinfomanager).

Two objects carry it: the ``CSINode`` named after the node (owned by the Node, so it goes with it)
lists each driver with its ``nodeID``, the topology keys it reports and, when the driver has a limit,
``allocatable.count``; the ``Node`` gains the driver's topology segments as labels and its node id
in the ``csi.volume.kubernetes.io/nodeid`` annotation (a JSON map driver -> node id). The scheduler's
VolumeBinding plugin and the provisioner read the labels and the CSINode.

The functions that decide what to write are pure (``csinode_driver``, ``merged_drivers``,
``node_patch``); ``install_driver`` does the reads and writes and is safe to repeat: it writes
nothing when the objects already say the same, keeps other drivers and other labels, and raises
``TopologyCollision`` when a label the driver reports already holds another value (as the kubelet,
it does not overwrite a label someone else set).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cluster.client.errors import ApiError
from nodeagent.agent.api import AgentApi

STORAGE = "storage.k8s.io/v1"
NODE_ID_ANNOTATION = "csi.volume.kubernetes.io/nodeid"


@dataclass(frozen=True, slots=True)
class DriverNodeInfo:
    """What NodeGetInfo and GetPluginInfo said, plus the node capabilities publish needs."""

    name: str
    node_id: str
    topology: Mapping[str, str]
    max_volumes: int = 0
    stage_unstage: bool = False
    expand: bool = False
    single_node_multi_writer: bool = False


class TopologyCollision(Exception):
    """A topology label the driver reports is already on the Node with another value."""


def csinode_driver(info: DriverNodeInfo) -> dict[str, Any]:
    """The ``spec.drivers[]`` entry of the CSINode for ``info`` (topology keys sorted, as Kubernetes)."""
    entry: dict[str, Any] = {"name": info.name, "nodeID": info.node_id, "topologyKeys": sorted(info.topology)}
    if info.max_volumes > 0:
        entry["allocatable"] = {"count": info.max_volumes}
    return entry


def merged_drivers(drivers: list[dict[str, Any]], entry: dict[str, Any]) -> list[dict[str, Any]] | None:
    """``drivers`` with ``entry`` in place of the one of the same name; None when nothing changes."""
    others = [d for d in drivers if d.get("name") != entry["name"]]
    mine = [d for d in drivers if d.get("name") == entry["name"]]
    if len(mine) == 1 and _same_entry(mine[0], entry):
        return None
    return [*others, entry]


def _same_entry(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    return (
        a.get("nodeID") == b.get("nodeID")
        and sorted(a.get("topologyKeys") or []) == sorted(b.get("topologyKeys") or [])
        and (a.get("allocatable") or {}).get("count") == (b.get("allocatable") or {}).get("count")
    )


def node_patch(node: Mapping[str, Any], info: DriverNodeInfo) -> dict[str, Any] | None:
    """The merge patch adding the driver's topology labels and node id annotation; None when present.

    Raises ``TopologyCollision`` when a reported label already has another value on the Node.
    """
    meta = node.get("metadata") or {}
    labels: Mapping[str, str] = meta.get("labels") or {}
    for key, value in info.topology.items():
        if key in labels and labels[key] != value:
            raise TopologyCollision(
                f"driver {info.name} reports topology {key}={value} but node {meta.get('name')} has the "
                f"label {key}={labels[key]}: remove or correct the node label, or the driver's topology"
            )
    add_labels = {k: v for k, v in info.topology.items() if labels.get(k) != v}
    raw = (meta.get("annotations") or {}).get(NODE_ID_ANNOTATION) or ""
    try:
        ids = json.loads(raw) if raw else {}
    except ValueError:
        ids = {}  # a damaged annotation is rewritten (Kubernetes would refuse; nothing else reads it)
    if not isinstance(ids, dict):
        ids = {}
    patch_meta: dict[str, Any] = {}
    if add_labels:
        patch_meta["labels"] = add_labels
    if ids.get(info.name) != info.node_id:
        ids[info.name] = info.node_id
        patch_meta["annotations"] = {
            NODE_ID_ANNOTATION: json.dumps(ids, sort_keys=True, separators=(",", ":"))
        }
    return {"metadata": patch_meta} if patch_meta else None


async def install_driver(api: AgentApi, node_name: str, info: DriverNodeInfo) -> None:
    """Write ``info`` to the Node (labels, annotation) and the CSINode (created when missing).

    Raises ``ApiError`` (e.g. 404 while the Node is not registered yet, 409 on a conflicting write) or
    ``TopologyCollision``; the caller retries.
    """
    node = await api.get("v1", "nodes", None, node_name)
    patch = node_patch(node, info)
    if patch is not None:
        await api.patch("v1", "nodes", None, node_name, patch)
    entry = csinode_driver(info)
    try:
        csinode = await api.get(STORAGE, "csinodes", None, node_name)
    except ApiError as err:
        if err.status != 404:
            raise
        meta = node.get("metadata") or {}
        body = {
            "apiVersion": STORAGE,
            "kind": "CSINode",
            "metadata": {
                "name": node_name,
                "ownerReferences": [
                    {"apiVersion": "v1", "kind": "Node", "name": node_name, "uid": meta.get("uid", "")}
                ],
            },
            "spec": {"drivers": [entry]},
        }
        await api.create(STORAGE, "csinodes", None, body)
        return
    spec = csinode.setdefault("spec", {})
    drivers = merged_drivers(list(spec.get("drivers") or []), entry)
    if drivers is not None:
        spec["drivers"] = drivers
        await api.update(STORAGE, "csinodes", None, csinode)
