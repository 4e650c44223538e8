"""Where the control plane runs: the Ray nodes of the store replicas and the instances of the
replicated control-plane actors on them.

Ray glue shared by the bootstrap (which deploys one API server, scheduler and controller manager per
control-plane node), the autoscaler (which never releases a control-plane node) and the benchmarks;
it sits apart from ``cluster.bootstrap`` because the controller manager, which the bootstrap deploys,
needs it too. Blocking calls (Ray's GCS and the replicas' ``status``); from async code run them in a
thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import ray

from cluster.naming import DEFAULT_NAMESPACE
from cluster.node_agents import ray_node_names


def _alive_nodes() -> list[dict[str, Any]]:
    return [n for n in ray.nodes() if n.get("Alive")]  # type: ignore[no-untyped-call]


def control_plane_nodes(namespace: str = DEFAULT_NAMESPACE, *, first: str | None = None) -> list[str]:
    """The Ray node ids of the control plane: ``first`` (default: this process's node, the one
    running ``up``), then each distinct node hosting a store replica that answers ``status`` (in
    replica order). Replicated control-plane actors (API servers, schedulers, controller managers)
    run one instance per entry."""
    nodes = [first or ray.get_runtime_context().get_node_id()]
    for name in find_store(namespace):
        try:
            status: Any = ray.get(ray.get_actor(name, namespace=namespace).status.remote(), timeout=5)
        except Exception:  # a replica that is gone or unreachable hosts nothing we can use
            continue
        node = status.get("node_id")
        if node and node not in nodes:
            nodes.append(node)
    return nodes


def find_store(namespace: str = DEFAULT_NAMESPACE) -> list[str]:
    """The names of the store replica actors (``store-<id>``) running in ``namespace``."""
    return sorted(
        e["name"]
        for e in ray.util.list_named_actors(all_namespaces=True)
        if e["namespace"] == namespace and e["name"].startswith("store-")
    )


def apiserver_hosts(namespace: str = DEFAULT_NAMESPACE) -> tuple[str, ...]:
    """The IPs of the control-plane nodes, where the API servers listen (``NodeAgentsConfig.api_host``)."""
    alive = {n["NodeID"]: n for n in _alive_nodes()}
    nodes = [n for n in control_plane_nodes(namespace) if n in alive]
    ips = [str(alive[n].get("NodeManagerAddress") or "") for n in nodes]
    return tuple(dict.fromkeys(ip for ip in ips if ip))


@dataclass(frozen=True, slots=True)
class Instance:
    """Where one instance of a replicated control-plane actor runs, and its actor name."""

    actor: str  # ``<base>`` on the node running ``up``, ``<base>-<node name>`` elsewhere
    node_id: str
    node_name: str


def control_plane_instances(base: str, namespace: str = DEFAULT_NAMESPACE) -> list[Instance]:
    """One instance of ``base`` per control-plane node (``control_plane_nodes``), this node's first.
    Blocking (Ray calls)."""
    names = ray_node_names()
    nodes = control_plane_nodes(namespace)
    return [
        Instance(base if i == 0 else f"{base}-{names[node]}", node, names[node])
        for i, node in enumerate(nodes)
        if node in names
    ]
