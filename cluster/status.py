"""What ``raykube status`` shows beyond the store table: Ray's nodes beside their Node objects, the
control-plane instances with the Lease each one holds, and what the autoscaler asked Ray for.

``collect`` gathers (Ray calls in a thread; the API server through the admin kubeconfig, when it
answers); ``node_rows`` and ``instance_rows`` are pure, so the joining rules (a Ray node without a
Node, a Node whose Ray node is gone, which instance holds which Lease) are tested without a cluster.
A part that cannot be read is reported as such (``errors``), never left out silently.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ray

from cluster.autoscaler.marks import standing_request
from cluster.client.rest import ApiClient
from cluster.naming import node_names

# Replicated control-plane actors: Kubernetes component name -> the Ray actor name's base. The
# instance on the node that ran ``up`` has the base name, the others ``<base>-<node name>``.
INSTANCE_BASES = {
    "kube-apiserver": "apiserver",
    "kube-scheduler": "scheduler",
    "kube-controller-manager": "controller-manager",
}
# The Leases of the leader-elected components (kube-system), as Kubernetes names them.
LEASES = {"kube-scheduler": "kube-scheduler", "kube-controller-manager": "kube-controller-manager"}


@dataclass(frozen=True, slots=True)
class NodeRow:
    name: str
    ray_node_id: str  # "" for a Node whose Ray node Ray no longer lists
    ip: str
    ray_state: str  # ALIVE, DEAD, or "-" (unknown to Ray)
    node_ready: str  # the Node's Ready condition: True, False, Unknown; "-" when there is no Node
    schedulable: bool
    node_type: str


@dataclass(frozen=True, slots=True)
class InstanceRow:
    component: str
    actor: str
    node: str
    leader: str  # "yes" / "no" for leader-elected components, "-" for the API servers (all serve)


@dataclass(slots=True)
class ClusterStatus:
    nodes: list[NodeRow] = field(default_factory=list)
    instances: list[InstanceRow] = field(default_factory=list)
    autoscaler_request: list[dict[str, Any]] | None = None  # None: no standing request
    errors: list[str] = field(default_factory=list)


def _ready(node: Mapping[str, Any]) -> str:
    for c in (node.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return str(c.get("status", "Unknown"))
    return "Unknown"


def node_rows(
    ray_nodes: Iterable[Mapping[str, Any]], k8s_nodes: Iterable[Mapping[str, Any]] | None
) -> list[NodeRow]:
    """Ray's nodes (alive first, then dead, as Ray still remembers them) joined by name with the
    Node objects; Nodes no Ray node answers to come last. ``k8s_nodes`` None: the API server did not
    answer (every ``node_ready`` is then ``?``)."""
    ray_nodes = list(ray_nodes)
    names = node_names(ray_nodes)
    by_name = {str(n["metadata"]["name"]): n for n in k8s_nodes or []}
    rows: list[NodeRow] = []
    seen: set[str] = set()
    for alive in (True, False):
        for rn in ray_nodes:
            if bool(rn.get("Alive")) is not alive:
                continue
            name = names[rn["NodeID"]]
            if name in seen:  # a dead node whose name an alive one now carries
                continue
            seen.add(name)
            node = by_name.get(name)
            labels = (node or {}).get("metadata", {}).get("labels") or {}
            rows.append(
                NodeRow(
                    name=name,
                    ray_node_id=str(rn["NodeID"]),
                    ip=str(rn.get("NodeManagerAddress") or ""),
                    ray_state="ALIVE" if alive else "DEAD",
                    node_ready="?" if k8s_nodes is None else (_ready(node) if node else "-"),
                    schedulable=not (node or {}).get("spec", {}).get("unschedulable", False),
                    node_type=str(labels.get("raykube.io/ray-node-type", "")),
                )
            )
    for name, node in sorted(by_name.items()):
        if name in seen:
            continue
        addresses = (node.get("status") or {}).get("addresses") or []
        rows.append(
            NodeRow(
                name=name,
                ray_node_id="",
                ip=next((str(a.get("address")) for a in addresses if a.get("type") == "InternalIP"), ""),
                ray_state="-",
                node_ready=_ready(node),
                schedulable=not (node.get("spec") or {}).get("unschedulable", False),
                node_type=str((node["metadata"].get("labels") or {}).get("raykube.io/ray-node-type", "")),
            )
        )
    return rows


def instance_rows(
    actor_names: Iterable[str], head: str, holders: Mapping[str, str | None] | None
) -> list[InstanceRow]:
    """The control-plane instances among ``actor_names`` (the Ray namespace's named actors), each
    with its node (``head`` for the base name) and, for leader-elected components, whether it holds
    the Lease. ``holders``: component -> the Lease's holderIdentity (``<node name>_<uuid>``); None
    when the API server did not answer (leader then ``?``)."""
    rows = []
    names = set(actor_names)
    for component, base in INSTANCE_BASES.items():
        for actor in sorted(n for n in names if n == base or n.startswith(base + "-")):
            node = head if actor == base else actor[len(base) + 1 :]
            if component not in LEASES:
                leader = "-"
            elif holders is None:
                leader = "?"
            else:
                holder = holders.get(component) or ""
                leader = "yes" if holder.rsplit("_", 1)[0] == node and holder else "no"
            rows.append(InstanceRow(component, actor, node, leader))
    return rows


async def collect(namespace: str, kubeconfig: Path | None) -> ClusterStatus:
    """Gather the status of the cluster in Ray ``namespace``; the API server through ``kubeconfig``."""

    def ray_side() -> tuple[list[dict[str, Any]], list[str], str, list[dict[str, Any]] | None]:
        everything = ray.nodes()  # type: ignore[no-untyped-call]
        actors = [
            e["name"] for e in ray.util.list_named_actors(all_namespaces=True) if e["namespace"] == namespace
        ]
        alive = [n for n in everything if n.get("Alive")]
        here = ray.get_runtime_context().get_node_id()
        head_id = next(
            (n["NodeID"] for n in alive if "node:__internal_head__" in (n.get("Resources") or {})), here
        )
        head = node_names(everything).get(head_id, "")
        return everything, actors, head, standing_request(namespace)

    status = ClusterStatus()
    everything, actors, head, request = await asyncio.to_thread(ray_side)
    status.autoscaler_request = request
    k8s_nodes: list[dict[str, Any]] | None = None
    holders: dict[str, str | None] | None = None
    if kubeconfig is not None and kubeconfig.exists():
        try:
            async with ApiClient.from_kubeconfig(str(kubeconfig)) as client:
                listed = await asyncio.wait_for(client.list("v1", "nodes"), 10)
                k8s_nodes = list(listed.get("items") or [])
                holders = {}
                for component, lease in LEASES.items():
                    try:
                        obj = await asyncio.wait_for(
                            client.get("coordination.k8s.io/v1", "leases", lease, "kube-system"), 10
                        )
                    except Exception:
                        holders[component] = None
                        continue
                    holders[component] = (obj.get("spec") or {}).get("holderIdentity")
        except Exception as err:
            status.errors.append(f"the API server did not answer ({type(err).__name__}: {err})")
            k8s_nodes, holders = None, None
    else:
        status.errors.append("no kubeconfig: Node objects and Leases not read")
    status.nodes = node_rows(everything, k8s_nodes)
    status.instances = instance_rows(actors, head, holders)
    return status
