"""Bring the control plane up on a Ray cluster, find it again, and take it down.

``raykube up`` is idempotent: it starts (or joins) Ray, creates whatever named actors are missing
(with ``get_if_exists``), and waits until the store serves a linearizable read. Everything raykube
runs lives in one Ray namespace (``raykube`` unless told otherwise), so a second ``up`` finds the
first one's actors. A namespace belongs to one data directory (``cluster.ownership``): the CLI
refuses to mix the actors of one with the files of another. Everything written under the data
directory is private to its user (``cluster.machinery.files``: directories 0700, files 0600).

Placement of store replicas: one replica is pinned to the node that ran ``up`` (its data is on that
node's disk). With ``--replicas N`` and at least N alive Ray nodes, a detached STRICT_SPREAD
placement group puts each replica on a different node; with fewer nodes they share the local node
(and the CLI says so).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray
from ray.util.placement_group import placement_group, remove_placement_group
from ray.util.scheduling_strategies import (
    NodeAffinitySchedulingStrategy,
    PlacementGroupSchedulingStrategy,
)

from cluster.machinery.files import private_dir, write_private
from cluster.store.actor import StoreReplicaActor, replica_name
from cluster.store.membership import cluster_created, record_cluster
from cluster.store.replica import ReplicaOptions

DEFAULT_NAMESPACE = "raykube"
PG_NAME = "raykube-store"
RAY_MARKER = "ray-started-by-raykube"


def default_namespace() -> str:
    return os.environ.get("RAYKUBE_NAMESPACE", DEFAULT_NAMESPACE)


def default_data_dir() -> Path:
    return Path(os.environ.get("RAYKUBE_DATA_DIR", Path.home() / ".raykube"))


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    replicas: int
    namespace: str = DEFAULT_NAMESPACE

    @staticmethod
    def load(data_dir: Path) -> ClusterConfig | None:
        path = data_dir / "cluster.json"
        if not path.exists():
            return None
        raw = json.loads(path.read_text())
        return ClusterConfig(replicas=int(raw["replicas"]), namespace=raw.get("namespace", DEFAULT_NAMESPACE))

    def save(self, data_dir: Path) -> None:
        private_dir(data_dir, tighten=True)  # also tightens a data directory an older raykube made
        write_private(
            data_dir / "cluster.json",
            json.dumps({"replicas": self.replicas, "namespace": self.namespace}, indent=2),
        )


# ---------------------------------------------------------------------- Ray


def connect_ray(address: str | None, data_dir: Path, *, start_if_missing: bool = True) -> bool:
    """Connect this process to Ray; start a local head when there is none. Returns True if started."""
    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    started = False
    if address in (None, "local"):
        try:
            ray.init(
                address="auto", namespace=DEFAULT_NAMESPACE, logging_level=logging.ERROR, log_to_driver=False
            )
            return False
        except ConnectionError:
            if not start_if_missing:
                raise
        ray_bin = shutil.which("ray") or str(Path(sys.executable).with_name("ray"))
        cmd = [ray_bin, "start", "--head", "--disable-usage-stats", "--include-dashboard=false"]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        private_dir(data_dir, tighten=True)
        write_private(data_dir / RAY_MARKER, str(time.time()))
        started = True
        address = "auto"
    ray.init(address=address, namespace=DEFAULT_NAMESPACE, logging_level=logging.ERROR, log_to_driver=False)
    return started


def stop_local_ray_if_ours(data_dir: Path) -> bool:
    marker = data_dir / RAY_MARKER
    if not marker.exists():
        return False
    if ray.is_initialized():
        ray.shutdown()
    ray_bin = shutil.which("ray") or str(Path(sys.executable).with_name("ray"))
    subprocess.run(
        [ray_bin, "stop", "--force"], check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    marker.unlink(missing_ok=True)
    return True


# ---------------------------------------------------------------------- store


def _alive_nodes() -> list[dict[str, Any]]:
    return [n for n in ray.nodes() if n.get("Alive")]


def deploy_store(
    replicas: int,
    data_dir: Path,
    namespace: str = DEFAULT_NAMESPACE,
    options: ReplicaOptions | None = None,
    *,
    detached: bool = True,
) -> tuple[list[Any], str]:
    """Create (or find) the store replicas; returns their handles and a placement description."""
    voters = list(range(1, replicas + 1))
    nodes = _alive_nodes()
    here = ray.get_runtime_context().get_node_id()
    strategies: list[Any]
    if replicas > 1 and len(nodes) >= replicas:
        pg = None
        with contextlib.suppress(ValueError):
            pg = ray.util.get_placement_group(f"{PG_NAME}-{namespace}")
        if pg is None:
            pg = placement_group(
                [{"CPU": 0.01}] * replicas,
                strategy="STRICT_SPREAD",
                name=f"{PG_NAME}-{namespace}",
                lifetime="detached" if detached else None,
            )
        ray.get(pg.ready(), timeout=60)
        strategies = [
            PlacementGroupSchedulingStrategy(pg, placement_group_bundle_index=i) for i in range(replicas)
        ]
        placement = f"{replicas} replicas on {replicas} distinct Ray nodes (STRICT_SPREAD)"
    else:
        strategies = [NodeAffinitySchedulingStrategy(here, soft=False)] * replicas
        placement = f"{replicas} replica(s) on this node"
        if replicas > 1:
            placement += f" (only {len(nodes)} Ray node(s); STRICT_SPREAD needs {replicas})"
    # An empty replica directory may bootstrap only when this store directory never held a cluster.
    initial = not cluster_created(data_dir / "store")
    handles = []
    for rid, strategy in zip(voters, strategies, strict=True):
        handle = StoreReplicaActor.options(  # type: ignore[attr-defined]
            name=replica_name(rid),
            namespace=namespace,
            get_if_exists=True,
            lifetime="detached" if detached else None,
            scheduling_strategy=strategy,
        ).remote(rid, voters, str(data_dir / "store" / f"replica-{rid}"), namespace, options, initial=initial)
        handles.append(handle)
    ray.get([h.ready.remote() for h in handles], timeout=120)
    record_cluster(data_dir / "store", voters)
    return handles, placement


async def wait_until_serving(namespace: str, timeout: float = 60.0) -> None:
    """Return once a linearizable read succeeds (a leader exists and has committed in its term)."""
    from cluster.store.client import StoreClient

    client = await StoreClient.connect(namespace, deadline=timeout, request_timeout=2.0)
    try:
        await client.get(b"/raykube/health")
    finally:
        await client.close()


def deploy_apiserver(
    data_dir: Path, namespace: str = DEFAULT_NAMESPACE, *, host: str = "0.0.0.0", port: int = 6443
) -> tuple[int, Path]:
    """Create (or find) the API server actor on this node; write the kubeconfig. Returns (port, path)."""
    from cluster.apiserver.actor import ACTOR_NAME, ApiServerActor
    from cluster.apiserver.kubeconfig import write_kubeconfig
    from cluster.apiserver.tls import ensure_pki

    node_ip = ray.util.get_node_ip_address()
    pki = ensure_pki(data_dir / "pki", hosts=[node_ip, socket.gethostname()])
    here = ray.get_runtime_context().get_node_id()
    actor = ApiServerActor.options(  # type: ignore[attr-defined]
        name=ACTOR_NAME,
        namespace=namespace,
        get_if_exists=True,
        lifetime="detached",
        scheduling_strategy=NodeAffinitySchedulingStrategy(here, soft=False),
    ).remote(namespace, str(data_dir / "pki"), host, port)
    bound: int = ray.get(actor.ready.remote(), timeout=120)
    path = write_kubeconfig(data_dir / "kubeconfig", server=f"https://127.0.0.1:{bound}", pki=pki)
    return bound, path


def deploy_scheduler(data_dir: Path, namespace: str = DEFAULT_NAMESPACE) -> list[str]:
    """Create (or find) the scheduler actor on this node, talking to the API server through
    ``data_dir/kubeconfig``; ``data_dir/scheduler-config.yaml``, when present, is its
    KubeSchedulerConfiguration. Returns the profiles' scheduler names once it has synced."""
    from cluster.scheduler.actor import ACTOR_NAME, SchedulerActor

    config = data_dir / "scheduler-config.yaml"
    here = ray.get_runtime_context().get_node_id()
    actor = SchedulerActor.options(  # type: ignore[attr-defined]
        name=ACTOR_NAME,
        namespace=namespace,
        get_if_exists=True,
        lifetime="detached",
        scheduling_strategy=NodeAffinitySchedulingStrategy(here, soft=False),
    ).remote(str(data_dir / "kubeconfig"), str(config) if config.exists() else None)
    profiles: list[str] = ray.get(actor.ready.remote(), timeout=120)
    return profiles


def deploy_controller_manager(
    data_dir: Path,
    namespace: str = DEFAULT_NAMESPACE,
    *,
    node_monitor_grace: float | None = None,
    agents: dict[str, Any] | None = None,
) -> list[str]:
    """Create (or find) the controller manager on this node; returns the controllers it runs.
    ``node_monitor_grace`` defaults to ``$RAYKUBE_NODE_MONITOR_GRACE`` or 40 s (Kubernetes' default).
    ``agents`` (``deploy_node_agents``' keyword arguments plus ``data_dir``) makes it give Ray nodes
    that join later their runtime and node agent."""
    from cluster.controllers.manager import ACTOR_NAME, ControllerManagerActor

    grace = node_monitor_grace or float(os.environ.get("RAYKUBE_NODE_MONITOR_GRACE", "40"))
    here = ray.get_runtime_context().get_node_id()
    actor = ControllerManagerActor.options(  # type: ignore[attr-defined]
        name=ACTOR_NAME,
        namespace=namespace,
        get_if_exists=True,
        lifetime="detached",
        scheduling_strategy=NodeAffinitySchedulingStrategy(here, soft=False),
    ).remote(str(data_dir / "kubeconfig"), grace, namespace, agents)
    names: list[str] = ray.get(actor.ready.remote(), timeout=120)
    return names


def node_names(nodes: list[dict[str, Any]]) -> dict[str, str]:
    """Ray node id -> Kubernetes node name: the host name, made unique with the Ray node id's first
    eight characters when several Ray nodes share a host (``ray.cluster_utils`` test clusters)."""
    hosts: dict[str, int] = {}
    for node in nodes:
        host = str(node.get("NodeManagerHostname") or socket.gethostname()).lower()
        hosts[host] = hosts.get(host, 0) + 1
    names = {}
    for node in nodes:
        host = str(node.get("NodeManagerHostname") or socket.gethostname()).lower()
        names[node["NodeID"]] = host if hosts[host] == 1 else f"{host}-{node['NodeID'][:8]}"
    return names


def _cri_socket(namespace: str, node_name: str) -> str:
    # Unix socket paths are limited to 108 bytes: keep them short and out of deep data dirs.
    digest = uuid.uuid5(uuid.NAMESPACE_DNS, f"{namespace}/{node_name}").hex[:12]
    return str(Path(tempfile.gettempdir()) / f"raykube-cri-{digest}.sock")


def deploy_node_agents(
    data_dir: Path,
    namespace: str = DEFAULT_NAMESPACE,
    *,
    apiserver_port: int,
    runtime: str = "process",
    manifests_dir: Path | None = None,
    timeout: float = 120.0,
    only_missing: bool = False,
    api_host: str | None = None,
    head_node_id: str | None = None,
) -> list[dict[str, Any]]:
    """On every alive Ray node: a CRI runtime actor and a node agent actor, pinned there.

    The agents reach the API server at this node's IP on ``apiserver_port`` with a client
    certificate for ``system:node:<name>`` (group ``system:nodes``), serve logs/exec with a
    certificate from the cluster CA, and run static pods from ``manifests_dir`` (default
    ``data_dir/manifests``; only the head node, ``head_node_id`` or this one, runs them). With
    ``only_missing`` nodes that already have an agent are skipped (the controller manager calls it so
    to follow Ray's membership). Returns ``[{node, port, runtime}]`` once those Nodes are registered.
    """
    import yaml

    from cluster.apiserver.kubeconfig import kubeconfig_document
    from cluster.apiserver.tls import Pki, issue_client_cert
    from nodeagent.actor import NodeAgentActor, RuntimeActor, agent_actor_name, runtime_actor_name
    from nodeagent.server.tls import ensure_agent_cert

    pki = Pki.in_dir(data_dir / "pki")
    api_host = api_host or ray.util.get_node_ip_address()
    manifests = manifests_dir or data_dir / "manifests"
    private_dir(manifests)  # a folder the user made keeps its mode
    nodes = _alive_nodes()
    names = node_names(nodes)
    existing = {
        e["name"] for e in ray.util.list_named_actors(all_namespaces=True) if e["namespace"] == namespace
    }
    head = head_node_id or ray.get_runtime_context().get_node_id()
    started = []
    for node in nodes:
        node_id, name = node["NodeID"], names[node["NodeID"]]
        if only_missing and agent_actor_name(name) in existing:
            continue
        ip = str(node.get("NodeManagerAddress") or api_host)
        pin = NodeAffinitySchedulingStrategy(node_id, soft=False)
        node_dir = data_dir / "nodes" / name
        runtime_actor = RuntimeActor.options(  # type: ignore[attr-defined]
            name=runtime_actor_name(name),
            namespace=namespace,
            get_if_exists=True,
            lifetime="detached",
            scheduling_strategy=pin,
        ).remote(runtime, str(node_dir / "runtime"), _cri_socket(namespace, name))
        served = ray.get(runtime_actor.ready.remote(), timeout=timeout)
        cert_pem, key_pem = issue_client_cert(pki, f"system:node:{name}", ["system:nodes"])
        kubeconfig = kubeconfig_document(
            server=f"https://{api_host}:{apiserver_port}",
            cluster_name="raykube",
            user=f"system:node:{name}",
            context="raykube",
            certificate_authority=pki.ca_cert.read_bytes(),
            client_certificate=cert_pem,
            client_key=key_pem,
        )
        agent_cert, agent_key = ensure_agent_cert(pki, node_dir / "serving", name, [ip])
        resources = node.get("Resources") or {}
        config = {
            "data_dir": str(node_dir),
            "kubeconfig": yaml.safe_dump(kubeconfig, sort_keys=False),
            "ca_pem": pki.ca_cert.read_text(),
            "cert_pem": agent_cert.read_text(),
            "key_pem": agent_key.read_text(),
            "internal_ips": [ip],
            "runtime_socket": served["socket"],
            "runtime_version": served["version"],
            "manifests_dir": str(manifests) if node_id == head else None,
            "ray_cpus": resources.get("CPU"),
            "ray_memory": resources.get("memory"),
        }
        agent = NodeAgentActor.options(  # type: ignore[attr-defined]
            name=agent_actor_name(name),
            namespace=namespace,
            get_if_exists=True,
            lifetime="detached",
            scheduling_strategy=pin,
        ).remote(name, config)
        started.append((agent, runtime))
    out = []
    for agent, kind in started:
        info = ray.get(agent.ready.remote(), timeout=timeout)
        out.append({**info, "runtime": kind})
    return out


def stop_node_agents(namespace: str = DEFAULT_NAMESPACE, *, remove_pods: bool = True) -> list[str]:
    """Stop every node agent, then every runtime (which stops the pods); returns the actors stopped."""
    stopped = []
    entries = ray.util.list_named_actors(all_namespaces=True)
    for prefix, call in (("agent-", "shutdown"), ("runtime-", "shutdown")):
        for entry in entries:
            if entry["namespace"] != namespace or not entry["name"].startswith(prefix):
                continue
            with contextlib.suppress(Exception):
                actor = ray.get_actor(entry["name"], namespace=namespace)
                args = (remove_pods,) if prefix == "agent-" else ()
                ray.get(getattr(actor, call).remote(*args), timeout=60)
                stopped.append(entry["name"])
    return stopped


def find_store(namespace: str = DEFAULT_NAMESPACE) -> list[str]:
    return sorted(
        e["name"]
        for e in ray.util.list_named_actors(all_namespaces=True)
        if e["namespace"] == namespace and e["name"].startswith("store-")
    )


def teardown(namespace: str = DEFAULT_NAMESPACE) -> list[str]:
    """Kill every raykube actor in ``namespace`` and its placement group; returns what was killed."""
    killed = []
    for entry in ray.util.list_named_actors(all_namespaces=True):
        if entry["namespace"] != namespace:
            continue
        with contextlib.suppress(ValueError):
            ray.kill(ray.get_actor(entry["name"], namespace=namespace), no_restart=True)
            killed.append(entry["name"])
    with contextlib.suppress(ValueError):
        remove_placement_group(ray.util.get_placement_group(f"{PG_NAME}-{namespace}"))
    return killed


@contextlib.asynccontextmanager
async def start_store_for_bench(
    replicas: int, data_dir: str | os.PathLike[str] | None = None, options: ReplicaOptions | None = None
) -> AsyncIterator[str]:
    """A throw-away store in its own namespace (for benchmarks and tests); yields the namespace."""
    if not ray.is_initialized():
        connect_ray(None, default_data_dir())
    namespace = f"raykube-bench-{uuid.uuid4().hex[:8]}"
    tmp = None
    if data_dir is None:
        tmp = tempfile.mkdtemp(prefix="raykube-bench-")
        data_dir = tmp
    handles: list[Any] = []
    try:
        # Keep the handles: a non-detached actor dies with the last handle to it.
        handles, _ = await asyncio.to_thread(
            deploy_store, replicas, Path(data_dir), namespace, options, detached=False
        )
        await wait_until_serving(namespace)
        yield namespace
    finally:
        del handles
        await asyncio.to_thread(teardown, namespace)
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
