"""The store replicas on Ray: create or find them (``deploy_store``), wait until they serve.

Placement: one replica is pinned to the node that ran ``up`` (its data is on that node's disk). With
``--replicas N`` and at least N alive Ray nodes, a detached STRICT_SPREAD placement group puts each
replica on a different node (on the control-plane nodes when there are enough); with fewer nodes they
share the local node (and the CLI says so). A restart goes back to the hosts holding the replicas'
data, as the store directory records them.

Listening (``store_port``): each replica serves etcd's v3 API on a client port and Raft on a peer
port of its node, with TLS from the cluster CA (``cluster.store.tls``; ``store_pki`` makes the
certificates). The ports are ``cluster.store.network.choose_ports``'s, recorded per replica in the
store directory once the replicas answer (``ENDPOINTS_MARKER``), so a later ``up`` keeps them.
"""

from __future__ import annotations

import contextlib
import socket
from pathlib import Path
from typing import Any

import ray
from ray.util.placement_group import placement_group
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy, PlacementGroupSchedulingStrategy

from cluster.apiserver.tls import ensure_pki
from cluster.control_plane import find_store
from cluster.naming import DEFAULT_NAMESPACE
from cluster.store.actor import StoreReplicaActor, replica_name
from cluster.store.clients import connect_store
from cluster.store.membership import (
    cluster_created,
    home_placement,
    record_cluster,
    record_homes,
    recorded_homes,
    recorded_members,
)
from cluster.store.network import Endpoint, StoreNetwork, choose_ports, record_endpoints, recorded_endpoints
from cluster.store.replica import ReplicaOptions
from cluster.store.tls import StoreTls, ensure_store_pki, server_hosts

PG_NAME = "raykube-store"
CONTROL_PLANE_RESOURCE = "raykube_control_plane"  # the Ray resource deploy/ gives control-plane nodes


def alive_nodes() -> list[dict[str, Any]]:
    return [n for n in ray.nodes() if n.get("Alive")]


def store_bundles(replicas: int, nodes: list[dict[str, Any]]) -> list[dict[str, float]]:
    """The placement group's bundles, one per replica: on the control-plane nodes (Ray resource
    ``raykube_control_plane``, as ``deploy/`` gives them) when there are enough of them alive, so a
    worker that happened to join first does not get a replica; else on any node."""
    planes = [n for n in nodes if (n.get("Resources") or {}).get(CONTROL_PLANE_RESOURCE, 0) > 0]
    bundle = {"CPU": 0.01, CONTROL_PLANE_RESOURCE: 0.01} if len(planes) >= replicas else {"CPU": 0.01}
    return [dict(bundle) for _ in range(replicas)]


def deploy_store(
    replicas: int,
    data_dir: Path,
    namespace: str = DEFAULT_NAMESPACE,
    options: ReplicaOptions | None = None,
    *,
    detached: bool = True,
    store_port: int | None = None,
    tls: StoreTls | None = None,
) -> tuple[list[Any], str]:
    """Create (or find) the store replicas; returns their handles and a placement description.

    The members are the ones the cluster marker records (after a replacement or an operator's
    change they are not ``1..N``: removed ids must never come back); only missing ones are created.
    ``store_port``: the replicas listen (client and peer ports from there, 0: free ones; see
    ``cluster.store.network``), with ``tls`` when given; None: they talk through Ray only."""
    recorded = recorded_members(data_dir / "store")
    voters = recorded[0] if recorded else list(range(1, replicas + 1))
    networks: dict[int, StoreNetwork | None] = dict.fromkeys(voters)
    if store_port is not None:
        had = {rid: (e.client_port, e.peer_port) for rid, e in recorded_endpoints(data_dir / "store").items()}
        ports = choose_ports(voters, had, store_port)
        networks = {rid: StoreNetwork(*ports[rid], tls=tls) for rid in voters}
    running = set(find_store(namespace))
    if all(replica_name(rid) in running for rid in voters):
        handles = [ray.get_actor(replica_name(rid), namespace=namespace) for rid in voters]
        # A quorum answering is enough: a member on a dead node is the store keeper's to replace.
        ray.wait([h.ready.remote() for h in handles], num_returns=len(handles) // 2 + 1, timeout=120)
        _record_homes(data_dir, voters, handles)
        return handles, f"{len(voters)} replica(s): {', '.join(replica_name(r) for r in voters)}"
    nodes = alive_nodes()
    here = ray.get_runtime_context().get_node_id()
    strategies: list[Any]
    alive = [
        (n["NodeID"], str(n.get("NodeManagerAddress")), str(n.get("NodeManagerHostname"))) for n in nodes
    ]
    recorded_hosts = recorded_homes(data_dir / "store") if recorded else {}
    homes = home_placement(voters, recorded_hosts, alive) if recorded_hosts else None
    if homes is not None and len(voters) > 1:
        # A restart of a cluster whose replicas each have a host of their own: back to their disks.
        strategies = [NodeAffinitySchedulingStrategy(homes[rid], soft=False) for rid in voters]
        placement = f"{len(voters)} replicas back on the hosts holding their data"
    elif replicas > 1 and len(nodes) >= replicas:
        pg = None
        with contextlib.suppress(ValueError):
            pg = ray.util.get_placement_group(f"{PG_NAME}-{namespace}")
        if pg is None:
            pg = placement_group(
                store_bundles(replicas, nodes),
                strategy="STRICT_SPREAD",
                name=f"{PG_NAME}-{namespace}",
                lifetime="detached" if detached else None,
            )
        ray.get(pg.ready(), timeout=60)
        strategies = [
            PlacementGroupSchedulingStrategy(pg, placement_group_bundle_index=i) for i in range(replicas)
        ]
        placement = f"{replicas} replicas on {replicas} distinct Ray nodes (STRICT_SPREAD)"
        if recorded_hosts and len(voters) > 1:
            hosts = ", ".join(sorted({ip for ip, _ in recorded_hosts.values()}))
            placement += (
                f"; their hosts ({hosts}) are not each one alive Ray node, so a replica placed away from "
                "its data waits for the store keeper to replace it"
            )
    else:
        strategies = [NodeAffinitySchedulingStrategy(here, soft=False)] * replicas
        placement = f"{replicas} replica(s) on this node"
        if replicas > 1:
            placement += f" (only {len(nodes)} Ray node(s); STRICT_SPREAD needs {replicas})"
    # An empty replica directory may bootstrap only when this store directory never held a cluster.
    initial = not cluster_created(data_dir / "store")
    handles = []
    for i, rid in enumerate(voters):
        # More members than bundles (an operator added one): the extra ones go next to this node.
        strategy = strategies[i] if i < len(strategies) else NodeAffinitySchedulingStrategy(here, soft=True)
        handle = StoreReplicaActor.options(  # type: ignore[attr-defined]
            name=replica_name(rid),
            namespace=namespace,
            get_if_exists=True,
            lifetime="detached" if detached else None,
            scheduling_strategy=strategy,
        ).remote(
            rid,
            voters,
            str(data_dir / "store" / f"replica-{rid}"),
            namespace,
            options,
            initial=initial,
            network=networks[rid],
        )
        handles.append(handle)
    ray.get([h.ready.remote() for h in handles], timeout=120)
    record_cluster(data_dir / "store", voters)
    _record_homes(data_dir, voters, handles)
    return handles, placement


def _record_homes(data_dir: Path, voters: list[int], handles: list[Any]) -> None:
    """Record the host of every replica that answers (``membership.record_homes``), and where it
    listens (``network.record_endpoints``)."""
    hosts = {
        n["NodeID"]: (str(n.get("NodeManagerAddress")), str(n.get("NodeManagerHostname")))
        for n in alive_nodes()
    }
    homes = recorded_homes(data_dir / "store")
    endpoints = recorded_endpoints(data_dir / "store")
    for rid, handle in zip(voters, handles, strict=True):
        with contextlib.suppress(Exception):
            st = ray.get(handle.status.remote(), timeout=5)
            node = st.get("node_id")
            if node in hosts:
                homes[rid] = hosts[node]
            if st.get("client_port"):
                endpoints[rid] = Endpoint(
                    rid, str(st["node_ip"]), int(st["client_port"]), int(st["peer_port"])
                )
    record_homes(data_dir / "store", {rid: home for rid, home in homes.items() if rid in voters})
    record_endpoints(data_dir / "store", [e for rid, e in endpoints.items() if rid in voters])


def store_pki(data_dir: Path) -> StoreTls:
    """The store's certificates (``cluster.store.tls.ensure_store_pki``), the cluster CA made first
    when this is a new cluster: named for loopback, every alive Ray node and this host, and the
    replica names (``store-1`` to ``store-5``, or to the highest id used)."""
    pki_dir = data_dir / "pki"
    ensure_pki(pki_dir, hosts=[])  # the CA (and a first API server certificate, re-issued with its names)
    recorded = recorded_members(data_dir / "store")
    ids = range(1, max(5, recorded[1] if recorded else 0) + 1)
    nodes = [
        (str(n.get("NodeManagerAddress") or ""), str(n.get("NodeManagerHostname") or ""))
        for n in alive_nodes()
    ]
    nodes.append((ray.util.get_node_ip_address(), socket.gethostname()))  # type: ignore[no-untyped-call]
    hosts = server_hosts(nodes, [replica_name(rid) for rid in ids])
    return StoreTls.load(ensure_store_pki(pki_dir, hosts))


async def wait_until_serving(namespace: str, timeout: float = 60.0, data_dir: Path | None = None) -> None:
    """Return once a linearizable read succeeds (a leader exists and has committed in its term). With
    ``data_dir``, through the client our components use (``cluster.store.clients``: etcd's API with
    the certificate in ``data_dir/pki``, unless ``$RAYKUBE_STORE_CLIENT=ray``), else through Ray calls."""
    kind = None if data_dir is not None else "ray"
    client = await connect_store(
        namespace, data_dir=data_dir, kind=kind, deadline=timeout, request_timeout=2.0
    )
    try:
        await client.get(b"/raykube/health")
    finally:
        await client.close()
