"""Bring the control plane up on a Ray cluster (``up``: the steps of ``raykube up``), find it again,
and take it down.

``raykube up`` is idempotent: it starts (or joins) Ray, creates whatever named actors are missing
(with ``get_if_exists``), and waits until the store serves a linearizable read. Everything raykube
runs lives in one Ray namespace (``raykube`` unless told otherwise), so a second ``up`` finds the
first one's actors. A namespace belongs to one data directory (``cluster.ownership``): ``up``
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
import importlib.util
import ipaddress
import json
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import ray
from ray.util.placement_group import placement_group, remove_placement_group
from ray.util.scheduling_strategies import (
    NodeAffinitySchedulingStrategy,
    PlacementGroupSchedulingStrategy,
)

from cluster.addons import DnsUp, IngressUp, deploy_dns, deploy_ingress, stop_ingress
from cluster.apiserver.actor import ApiServerActor, instance_name
from cluster.apiserver.admission.service_allocation import SERVICE_CIDR, ServiceNetwork
from cluster.apiserver.auth.options import SecurityOptions
from cluster.apiserver.kubeconfig import write_kubeconfig
from cluster.apiserver.proxy import ensure_kubelet_client_cert
from cluster.apiserver.tls import ensure_pki, serving_hosts
from cluster.apiserver.tokens import signing_key
from cluster.autoscaler.ray_autoscaler import autoscaling_settings
from cluster.control_plane import apiserver_hosts, control_plane_instances, control_plane_nodes, find_store
from cluster.controllers.actor import ACTOR_NAME as CONTROLLER_MANAGER_ACTOR
from cluster.controllers.actor import AUTOSCALER_ACCOUNT, FOLLOWER_ACCOUNT, ControllerManagerActor
from cluster.controllers.registry import SERVICE_ACCOUNTS, UnknownController
from cluster.controllers.registry import enabled as enabled_controllers
from cluster.identities import (
    CONTROLLER_MANAGER,
    SCHEDULER,
    component_kubeconfig,
    service_account_kubeconfigs,
)
from cluster.machinery.cidrset import DEFAULT_CLUSTER_CIDR, CidrError, parse_cluster_cidrs
from cluster.machinery.files import private_dir, write_private
from cluster.machinery.ippool import DEFAULT_LB_POOL, PoolError, parse_pool
from cluster.naming import DEFAULT_NAMESPACE, default_namespace
from cluster.node_agents import AgentInfo, NodeAgentsConfig, deploy_node_agents, ray_node_names
from cluster.ownership import claim
from cluster.ray_auth import token_auth_env
from cluster.scheduler.actor import ACTOR_NAME as SCHEDULER_ACTOR
from cluster.scheduler.actor import SchedulerActor
from cluster.security import security_options
from cluster.storage_defaults import ensure_with_kubeconfig as ensure_storage_defaults
from cluster.store.actor import StoreReplicaActor, replica_name
from cluster.store.client import StoreClient
from cluster.store.membership import (
    cluster_created,
    home_placement,
    record_cluster,
    record_homes,
    recorded_homes,
    recorded_members,
)
from cluster.store.replica import ReplicaOptions
from netplugins.cni.plugin import PluginLoadError, load_plugin
from nodeagent.actor import load_runtime
from nodeagent.csi.plugin import PluginLoadError as CSIPluginLoadError
from nodeagent.csi.plugin import load_volume_plugin

CNI_BIN = "/usr/lib/cni"  # Debian's containernetworking-plugins
NETWORK_BACKENDS = ("host-gw", "vxlan")  # across nodes; the first is the default
HOST_SERVICE_CIDR = "127.96.0.0/16"  # the default Service CIDR with --network host (loopback)
DEFAULT_VOLUME_PLUGIN = "hostpath"  # the built-in CSI driver hostpath.csi.raykube.io

PG_NAME = "raykube-store"
CONTROL_PLANE_RESOURCE = "raykube_control_plane"  # the Ray resource deploy/ gives control-plane nodes
RAY_MARKER = "ray-started-by-raykube"


def default_data_dir() -> Path:
    return Path(os.environ.get("RAYKUBE_DATA_DIR", Path.home() / ".raykube"))


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    replicas: int
    namespace: str = DEFAULT_NAMESPACE
    cluster_cidr: str = DEFAULT_CLUSTER_CIDR  # a cluster.json from before --cluster-cidr: the default
    service_cidr: str = str(SERVICE_CIDR)  # likewise for --service-cidr (ClusterIPs already given out)
    lb_pool: str = DEFAULT_LB_POOL
    network: str | None = None  # --network; None: a cluster.json from before it (the default then)
    network_backend: str | None = None
    tls_sans: tuple[str, ...] = ()  # --tls-san: extra names in the API server certificate
    volume_plugin: str | None = None  # --volume-plugin; None: a cluster.json from before it (hostpath)
    security: dict[str, Any] | None = None  # SecurityOptions.to_dict(); None: the defaults

    @staticmethod
    def load(data_dir: Path) -> ClusterConfig | None:
        path = data_dir / "cluster.json"
        if not path.exists():
            return None
        raw = json.loads(path.read_text())
        return ClusterConfig(
            replicas=int(raw["replicas"]),
            namespace=raw.get("namespace", DEFAULT_NAMESPACE),
            cluster_cidr=raw.get("cluster_cidr", DEFAULT_CLUSTER_CIDR),
            service_cidr=raw.get("service_cidr", str(SERVICE_CIDR)),
            lb_pool=raw.get("lb_pool", DEFAULT_LB_POOL),
            network=raw.get("network"),
            network_backend=raw.get("network_backend"),
            tls_sans=tuple(raw.get("tls_sans") or ()),
            volume_plugin=raw.get("volume_plugin"),
            security=raw.get("security"),
        )

    def save(self, data_dir: Path) -> None:
        private_dir(data_dir, tighten=True)  # also tightens a data directory an older raykube made
        write_private(
            data_dir / "cluster.json",
            json.dumps(
                {
                    "replicas": self.replicas,
                    "namespace": self.namespace,
                    "cluster_cidr": self.cluster_cidr,
                    "service_cidr": self.service_cidr,
                    "lb_pool": self.lb_pool,
                    "network": self.network,
                    "network_backend": self.network_backend,
                    "tls_sans": list(self.tls_sans),
                    "volume_plugin": self.volume_plugin,
                    "security": self.security,
                },
                indent=2,
            ),
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
        env = token_auth_env()  # Ray's token authentication on (cluster.ray_auth), unless opted out
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
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
) -> tuple[list[Any], str]:
    """Create (or find) the store replicas; returns their handles and a placement description.

    The members are the ones the cluster marker records (after a replacement or an operator's
    change they are not ``1..N``: removed ids must never come back); only missing ones are created."""
    recorded = recorded_members(data_dir / "store")
    voters = recorded[0] if recorded else list(range(1, replicas + 1))
    running = set(find_store(namespace))
    if all(replica_name(rid) in running for rid in voters):
        handles = [ray.get_actor(replica_name(rid), namespace=namespace) for rid in voters]
        # A quorum answering is enough: a member on a dead node is the store keeper's to replace.
        ray.wait([h.ready.remote() for h in handles], num_returns=len(handles) // 2 + 1, timeout=120)
        _record_homes(data_dir, voters, handles)
        return handles, f"{len(voters)} replica(s): {', '.join(replica_name(r) for r in voters)}"
    nodes = _alive_nodes()
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
        ).remote(rid, voters, str(data_dir / "store" / f"replica-{rid}"), namespace, options, initial=initial)
        handles.append(handle)
    ray.get([h.ready.remote() for h in handles], timeout=120)
    record_cluster(data_dir / "store", voters)
    _record_homes(data_dir, voters, handles)
    return handles, placement


def _record_homes(data_dir: Path, voters: list[int], handles: list[Any]) -> None:
    """Record the host of every replica that answers (``membership.record_homes``)."""
    hosts = {
        n["NodeID"]: (str(n.get("NodeManagerAddress")), str(n.get("NodeManagerHostname")))
        for n in _alive_nodes()
    }
    homes = recorded_homes(data_dir / "store")
    for rid, handle in zip(voters, handles, strict=True):
        with contextlib.suppress(Exception):
            node = ray.get(handle.status.remote(), timeout=5).get("node_id")
            if node in hosts:
                homes[rid] = hosts[node]
    record_homes(data_dir / "store", {rid: home for rid, home in homes.items() if rid in voters})


async def wait_until_serving(namespace: str, timeout: float = 60.0) -> None:
    """Return once a linearizable read succeeds (a leader exists and has committed in its term)."""
    client = await StoreClient.connect(namespace, deadline=timeout, request_timeout=2.0)
    try:
        await client.get(b"/raykube/health")
    finally:
        await client.close()


def pinned(name: str, node_id: str, namespace: str) -> dict[str, Any]:
    """Ray options of a detached, named control-plane actor pinned to one node (found, not started
    twice, when it runs already)."""
    return {
        "name": name,
        "namespace": namespace,
        "get_if_exists": True,
        "lifetime": "detached",
        "scheduling_strategy": NodeAffinitySchedulingStrategy(node_id, soft=False),
    }


def deploy_apiserver(
    data_dir: Path,
    namespace: str = DEFAULT_NAMESPACE,
    *,
    host: str = "0.0.0.0",
    port: int = 6443,
    service_cidr: str = str(SERVICE_CIDR),
    tls_sans: tuple[str, ...] = (),
    security: SecurityOptions | None = None,
) -> tuple[int, Path]:
    """Create (or find) one API server per control-plane node (``control_plane_nodes``): ``apiserver``
    on this node, ``apiserver-<node name>`` on the others, all on the same port of their node (this
    node's instance picks it when ``port`` is 0); write the kubeconfig. Returns (port, path).

    The serving certificate names every control-plane node's IP and host name, the ``kubernetes``
    Service's ClusterIP and ``tls_sans`` (``--tls-san``); when that set changed it is re-issued
    (same CA) and the running instances switch to it. The kubeconfig's ``server`` is this node's
    loopback (kubectl reads that one); its ``raykube.io/servers`` extension lists every instance,
    for our client's failover. ``service_cidr`` is where ClusterIPs come from (``--service-cidr``)."""
    alive = {n["NodeID"]: n for n in _alive_nodes()}
    names = ray_node_names()  # as the Nodes are named: over every node Ray remembers
    nodes = [n for n in control_plane_nodes(namespace) if n in alive]
    addresses = [str(alive[n].get("NodeManagerAddress") or "") for n in nodes]
    hosts = serving_hosts(
        [(ip, str(alive[n].get("NodeManagerHostname") or "")) for n, ip in zip(nodes, addresses, strict=True)]
        + [(ray.util.get_node_ip_address(), socket.gethostname())],
        ServiceNetwork.parse(service_cidr).kubernetes_ip,
        tls_sans,
    )
    pki_dir = data_dir / "pki"
    cert = pki_dir / "apiserver.crt"
    before = cert.read_bytes() if cert.exists() else b""
    pki = ensure_pki(pki_dir, hosts=hosts, exact=True)
    signing_key(pki_dir)  # one service-account key for every instance: made here, shipped below
    ensure_kubelet_client_cert(pki_dir)  # likewise, so no two instances issue it at once
    reissued = bool(before) and before != pki.server_cert.read_bytes()
    files = {p.name: p.read_bytes() for p in sorted(pki_dir.iterdir()) if p.is_file()}
    bound = port
    for i, node in enumerate(nodes):
        first = i == 0
        name = instance_name(names[node], first=first)
        actor = ApiServerActor.options(**pinned(name, node, namespace)).remote(  # type: ignore[attr-defined]
            namespace, str(pki_dir), host, bound, service_cidr,
            node=names[node], reuse_port=True, claim_port=first, pki_files=None if first else files,
            security=(security or SecurityOptions()).to_dict(),
        )  # fmt: skip
        served: int = ray.get(actor.ready.remote(), timeout=120)
        if first:
            bound = served
        if reissued:
            ray.get(actor.reload_certificate.remote(None if first else files), timeout=30)
    urls = [f"https://127.0.0.1:{bound}"] + [f"https://{ip}:{bound}" for ip in addresses if ip]
    servers = list(dict.fromkeys(urls))
    path = write_kubeconfig(data_dir / "kubeconfig", server=servers[0], pki=pki, servers=servers)
    return bound, path


def deploy_scheduler(data_dir: Path, namespace: str = DEFAULT_NAMESPACE) -> list[str]:
    """Create (or find) one scheduler per control-plane node, each talking to the API servers of
    ``data_dir/kubeconfig`` as ``system:kube-scheduler``; ``data_dir/scheduler-config.yaml``, when
    present, is their KubeSchedulerConfiguration (both handed over as text: instances on other hosts
    lack the files).
    They elect a leader (Lease ``kube-system/kube-scheduler``); only it schedules. Returns the
    profiles' scheduler names once every instance campaigns (and, when this node's instance leads,
    once it has synced)."""
    config = data_dir / "scheduler-config.yaml"
    config_text = config.read_text() if config.exists() else None
    kubeconfig = component_kubeconfig(data_dir, SCHEDULER)  # not the admin's
    actors = [
        SchedulerActor.options(**pinned(instance.actor, instance.node_id, namespace)).remote(  # type: ignore[attr-defined]
            str(data_dir / "kubeconfig"),
            str(config) if config.exists() else None,
            instance.node_name,
            kubeconfig=kubeconfig,
            config_text=config_text,
        )
        for instance in control_plane_instances(SCHEDULER_ACTOR, namespace)
    ]
    profiles: list[list[str]] = ray.get([a.ready.remote() for a in actors], timeout=120)
    return profiles[0]


def deploy_controller_manager(
    data_dir: Path,
    namespace: str = DEFAULT_NAMESPACE,
    *,
    node_monitor_grace: float | None = None,
    agents: NodeAgentsConfig | None = None,
    controllers: tuple[str, ...] | None = None,
    cluster_cidr: str = DEFAULT_CLUSTER_CIDR,
    lb_pool: str = DEFAULT_LB_POOL,
    autoscale: bool | None = None,
    scale_down_unneeded: float | None = None,
) -> list[str]:
    """Create (or find) the controller manager on this node; returns the controllers it runs.
    ``node_monitor_grace`` defaults to ``$RAYKUBE_NODE_MONITOR_GRACE`` or 40 s (Kubernetes' default).
    ``agents`` makes it give Ray nodes that join later their runtime and node agent. ``controllers``
    is kube-controller-manager's ``--controllers`` list (default ``$RAYKUBE_CONTROLLERS`` or ``*``);
    an unknown name raises ``UpRefused`` before anything starts. ``cluster_cidr`` is what the node
    IPAM controller carves into the Nodes' ``spec.podCIDR``, ``lb_pool`` where the service-lb-controller
    takes LoadBalancer addresses from. ``autoscale`` (default ``$RAYKUBE_AUTOSCALE``, else on when Ray has
    an autoscaler) and ``scale_down_unneeded`` (seconds, default ``$RAYKUBE_SCALE_DOWN_UNNEEDED``, else
    600) are for its autoscaler loop (docs/autoscaling.md)."""
    grace = node_monitor_grace or float(os.environ.get("RAYKUBE_NODE_MONITOR_GRACE", "40"))
    autoscaling = autoscaling_settings(autoscale, scale_down_unneeded)
    spec = _controllers_spec(controllers)
    instances = control_plane_instances(CONTROLLER_MANAGER_ACTOR, namespace)
    home = instances[0].node_name
    # Texts, not files: instances on other hosts lack them. The informers and the Lease as
    # system:kube-controller-manager, each controller and loop as its own ServiceAccount.
    kubeconfig = component_kubeconfig(data_dir, CONTROLLER_MANAGER)
    accounts = {SERVICE_ACCOUNTS[name] for name in enabled_controllers(spec) if name in SERVICE_ACCOUNTS}
    identities = service_account_kubeconfigs(data_dir, accounts | {FOLLOWER_ACCOUNT, AUTOSCALER_ACCOUNT})
    actors = [
        ControllerManagerActor.options(**pinned(instance.actor, instance.node_id, namespace)).remote(  # type: ignore[attr-defined]
            str(data_dir / "kubeconfig"),
            grace,
            namespace,
            agents,
            spec,
            cluster_cidr,
            lb_pool,
            node_name=instance.node_name,
            home=home,
            kubeconfig=kubeconfig,
            autoscaling=autoscaling,
            identities=identities,
            signing_ca=_signing_ca(data_dir / "pki"),
        )
        for instance in instances
    ]
    names: list[list[str]] = ray.get([a.ready.remote() for a in actors], timeout=180)
    return names[0]


def _signing_ca(pki_dir: Path) -> tuple[str, str] | None:
    """The cluster CA (certificate, key) as PEM texts for the csrsigning controller (kube-controller-
    manager's --cluster-signing-cert-file/--cluster-signing-key-file); None without a PKI."""
    cert, key = pki_dir / "ca.crt", pki_dir / "ca.key"
    if not cert.exists() or not key.exists():
        return None
    return cert.read_text(), key.read_text()


def _controllers_spec(controllers: tuple[str, ...] | None) -> tuple[str, ...]:
    spec = controllers or tuple(os.environ.get("RAYKUBE_CONTROLLERS", "*").split(","))
    try:
        enabled_controllers(spec)
    except UnknownController as err:
        raise UpRefused(f"--controllers: {err}") from None
    return spec


def teardown(namespace: str = DEFAULT_NAMESPACE) -> list[str]:
    """Kill every raykube actor in ``namespace`` and its placement group; returns what was killed."""
    killed = []
    stop_ingress(namespace)
    _release_leases(namespace)
    for entry in ray.util.list_named_actors(all_namespaces=True):
        if entry["namespace"] != namespace:
            continue
        with contextlib.suppress(ValueError):
            ray.kill(ray.get_actor(entry["name"], namespace=namespace), no_restart=True)
            killed.append(entry["name"])
    with contextlib.suppress(ValueError):
        remove_placement_group(ray.util.get_placement_group(f"{PG_NAME}-{namespace}"))
    return killed


def _release_leases(namespace: str, timeout: float = 10.0) -> None:
    """Let every scheduler and controller manager stop and release its Lease while the store and
    API server still run, so the next ``up`` does not wait out a 15 s lease held by the dead."""
    bases = (SCHEDULER_ACTOR, CONTROLLER_MANAGER_ACTOR)
    pending: list[Any] = []
    for entry in ray.util.list_named_actors(all_namespaces=True):
        name = entry["name"]
        if entry["namespace"] == namespace and any(name == b or name.startswith(f"{b}-") for b in bases):
            with contextlib.suppress(Exception):
                pending.append(ray.get_actor(name, namespace=namespace).shutdown.remote())
    if pending:
        ray.wait(pending, num_returns=len(pending), timeout=timeout)


# ---------------------------------------------------------------------- raykube up


@dataclass(frozen=True, slots=True)
class UpConfig:
    """What ``raykube up`` was asked for. ``None`` means: what ``data_dir/cluster.json`` says, else
    the default (1 replica; the namespace from ``$RAYKUBE_NAMESPACE`` or ``raykube``). ``runtime``
    ``none`` deploys no node agents (control plane only)."""

    data_dir: Path
    address: str | None = None
    replicas: int | None = None
    namespace: str | None = None
    port: int = 6443
    runtime: str = "process"
    manifests_dir: Path | None = None
    timeout: float = 120.0
    controllers: tuple[str, ...] | None = None  # --controllers; None: $RAYKUBE_CONTROLLERS or "*"
    cluster_cidr: str | None = None  # --cluster-cidr; None: cluster.json's, else 10.244.0.0/16
    service_cidr: str | None = None  # --service-cidr; None: cluster.json's, else service_cidr_for()
    lb_pool: str | None = None  # --lb-pool; None: cluster.json's, else 172.29.0.0/24
    network: str | None = None  # --network; None: cluster.json's, else default_network()
    network_backend: str | None = None  # --network-backend; None: cluster.json's, else host-gw
    autoscale: bool | None = None  # --autoscale / --no-autoscale; None: $RAYKUBE_AUTOSCALE, else detect
    scale_down_unneeded: float | None = None  # --scale-down-unneeded-time; None: $RAYKUBE_SCALE_DOWN_UNNEEDED
    tls_sans: tuple[str, ...] | None = None  # --tls-san (repeatable); None: cluster.json's, else none
    volume_plugin: str | None = None  # --volume-plugin; None: cluster.json's, else hostpath
    authorization_mode: str | None = None  # --authorization-mode; None: cluster.json's, else Node,RBAC
    anonymous_auth: bool | None = None  # --anonymous-auth; None: cluster.json's, else true
    token_auth_file: Path | None = None  # --token-auth-file
    encryption_provider_config: Path | None = None  # --encryption-provider-config
    audit_policy_file: Path | None = None  # --audit-policy-file
    audit_log_path: str | None = None  # --audit-log-path


class UpRefused(ValueError):
    """``up`` started and wrote nothing: the request contradicts the data directory or is invalid."""


@dataclass(frozen=True, slots=True)
class RayJoined:
    started: bool  # True: a local Ray head was started (``raykube down`` stops it again)
    data_dir: Path


@dataclass(frozen=True, slots=True)
class StoreUp:
    already_running: bool
    placement: str


@dataclass(frozen=True, slots=True)
class ApiServerUp:
    port: int
    kubeconfig: Path
    ready_after: float  # seconds since ``up`` began


@dataclass(frozen=True, slots=True)
class SchedulerUp:
    profiles: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ControllersUp:
    controllers: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class NodeAgentsUp:
    agents: tuple[AgentInfo, ...]
    manifests_dir: Path


UpStep = RayJoined | StoreUp | ApiServerUp | SchedulerUp | ControllersUp | IngressUp | DnsUp | NodeAgentsUp


def _replicas(config: UpConfig, existing: ClusterConfig | None) -> int:
    replicas = config.replicas or (existing.replicas if existing else 1)
    if existing and config.replicas and config.replicas != existing.replicas:
        raise UpRefused(
            f"the store in {config.data_dir} was created with {existing.replicas} replica(s); "
            f"`raykube down --purge` first to start over with {config.replicas} (or change membership "
            "one replica at a time)."
        )
    if replicas not in (1, 3, 5):
        raise UpRefused("--replicas must be 1, 3 or 5")
    return replicas


def _cluster_cidr(config: UpConfig, existing: ClusterConfig | None) -> str:
    """The cluster CIDR, normalized; a different one than the data directory's is refused (the Nodes
    keep their podCIDRs, so it cannot change under a running cluster)."""
    asked = config.cluster_cidr
    try:
        cidr = ",".join(str(c) for c in parse_cluster_cidrs(asked)) if asked else None
    except CidrError as err:
        raise UpRefused(f"--cluster-cidr: {err}") from None
    if existing and cidr and cidr != existing.cluster_cidr:
        raise UpRefused(
            f"the cluster in {config.data_dir} was created with --cluster-cidr {existing.cluster_cidr}; "
            f"`raykube down --purge` first to start over with {cidr}."
        )
    return cidr or (existing.cluster_cidr if existing else DEFAULT_CLUSTER_CIDR)


def service_cidr_for(plugin: str) -> str:
    """The default Service CIDR: ``10.96.0.0/12``; with the ``host`` plugin a loopback range, since
    there the userspace proxy listens on each ClusterIP, and only loopback addresses are local to
    every node without adding addresses (which needs root)."""
    return HOST_SERVICE_CIDR if plugin == "host" else str(SERVICE_CIDR)


def _service_cidr(config: UpConfig, existing: ClusterConfig | None, plugin: str) -> str:
    """The Service CIDR, normalized; a different one than the data directory's is refused (the
    Services keep their ClusterIPs)."""
    try:
        asked = str(ServiceNetwork.parse(config.service_cidr).cidr) if config.service_cidr else None
    except ValueError as err:
        raise UpRefused(f"--service-cidr: {err}") from None
    if existing and asked and asked != existing.service_cidr:
        raise UpRefused(
            f"the cluster in {config.data_dir} was created with --service-cidr {existing.service_cidr}; "
            f"`raykube down --purge` first to start over with {asked}."
        )
    return asked or (existing.service_cidr if existing else service_cidr_for(plugin))


def _lb_pool(config: UpConfig, existing: ClusterConfig | None) -> str:
    """The LoadBalancer pool, normalized; it may change between runs (the controller moves Services
    whose address left the pool)."""
    if not config.lb_pool:
        return existing.lb_pool if existing else DEFAULT_LB_POOL
    try:
        parse_pool(config.lb_pool)
    except PoolError as err:
        raise UpRefused(f"--lb-pool: {err}") from None
    return ",".join(part.strip() for part in config.lb_pool.split(",") if part.strip())


def _tls_sans(config: UpConfig, existing: ClusterConfig | None) -> tuple[str, ...]:
    """The extra names of the API server certificate: as asked (``--tls-san``, replacing the recorded
    ones), else what ``cluster.json`` recorded. Each must be an IP address or a DNS name."""
    asked = config.tls_sans if config.tls_sans is not None else (existing.tls_sans if existing else ())
    names = tuple(dict.fromkeys(name.strip().lower() for name in asked if name.strip()))
    for name in names:
        with contextlib.suppress(ValueError):
            ipaddress.ip_address(name)
            continue
        if not _DNS_NAME.fullmatch(name):
            raise UpRefused(f"--tls-san {name!r}: give an IP address or a DNS name (e.g. api.example.com)")
    return names


_DNS_NAME = re.compile(r"(\*\.)?([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\.)*[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


def default_network() -> str:
    """``bridge`` as root where the CNI reference plugins are installed (and the bridge plugin is
    part of this raykube), else ``host``."""
    has_bridge = importlib.util.find_spec("netplugins.bridge") is not None
    if os.geteuid() == 0 and Path(CNI_BIN, "bridge").exists() and has_bridge:
        return "bridge"
    return "host"


@dataclass(frozen=True, slots=True)
class NetworkChoice:
    plugin: str
    backend: str


def _network(config: UpConfig, existing: ClusterConfig | None) -> NetworkChoice:
    """The network plugin and backend (what the data directory says unless asked, checked before Ray
    starts): an unknown plugin or runtime, a different one than the cluster's, or containerd with
    the ``host`` plugin is refused."""
    if config.runtime != "none":
        try:
            load_runtime(config.runtime)
        except PluginLoadError as err:
            raise UpRefused(f"--runtime: {err}") from None
    had_plugin = existing.network if existing else None
    had_backend = existing.network_backend if existing else None
    plugin = config.network or had_plugin or default_network()
    backend = config.network_backend or had_backend or NETWORK_BACKENDS[0]
    try:
        cls = load_plugin(plugin)
    except PluginLoadError as err:
        raise UpRefused(f"--network: {err}") from None
    if backend not in NETWORK_BACKENDS:
        raise UpRefused(f"--network-backend must be one of {', '.join(NETWORK_BACKENDS)}, not {backend!r}")
    for flag, asked, had in (
        ("--network", config.network, had_plugin),
        ("--network-backend", config.network_backend, had_backend),
    ):
        if asked and had and asked != had:
            raise UpRefused(
                f"the cluster in {config.data_dir} was created with {flag} {had}; "
                f"`raykube down --purge` first to start over with {asked}."
            )
    if config.runtime == "containerd" and cls.NODE_NETWORK:
        raise UpRefused(
            f"--runtime containerd cannot use --network {plugin}: containerd always gives a pod a network "
            "namespace of its own, which a node-network plugin does not wire; use --network bridge"
        )
    return NetworkChoice(plugin, backend)


def _volume_plugin(config: UpConfig, existing: ClusterConfig | None) -> str:
    """The volume plugin (what the data directory says unless asked; checked before Ray starts): an
    unknown one, or a different one than the cluster's (its volumes live in the first), is refused."""
    had = existing.volume_plugin if existing else None
    plugin = config.volume_plugin or had or DEFAULT_VOLUME_PLUGIN
    try:
        load_volume_plugin(plugin)
    except CSIPluginLoadError as err:
        raise UpRefused(f"--volume-plugin: {err}") from None
    if config.volume_plugin and had and config.volume_plugin != had:
        raise UpRefused(
            f"the cluster in {config.data_dir} was created with --volume-plugin {had}, whose volumes it "
            f"keeps; `raykube down --purge` first to start over with {config.volume_plugin}."
        )
    return plugin


def up(config: UpConfig) -> Iterator[UpStep]:
    """``raykube up``: join (or start) Ray, then the store, API server, scheduler, controller manager,
    cluster DNS and node agents (those two unless ``--runtime none``), yielding each step as it
    completes (so the caller can show progress).

    Idempotent: what already runs is found, not started twice. Raises ``UpRefused`` before touching
    Ray, and ``cluster.ownership.NamespaceTaken`` after ``RayJoined`` when the namespace runs the
    cluster of another data directory; in both cases nothing was started or written.
    """
    data_dir = config.data_dir
    existing = ClusterConfig.load(data_dir)
    replicas = _replicas(config, existing)
    cluster_cidr = _cluster_cidr(config, existing)
    network = _network(config, existing)
    volume_plugin = _volume_plugin(config, existing)
    service_cidr = _service_cidr(config, existing, network.plugin)
    lb_pool = _lb_pool(config, existing)
    tls_sans = _tls_sans(config, existing)
    _controllers_spec(config.controllers)  # refuse an unknown controller name before starting anything
    try:
        security = security_options(
            data_dir / "pki",
            existing.security if existing else None,
            authorization_mode=config.authorization_mode,
            anonymous_auth=config.anonymous_auth,
            token_auth_file=config.token_auth_file,
            encryption_provider_config=config.encryption_provider_config,
            audit_policy_file=config.audit_policy_file,
            audit_log_path=config.audit_log_path,
        )
    except ValueError as err:
        raise UpRefused(str(err)) from None
    t0 = time.monotonic()
    yield RayJoined(connect_ray(config.address, data_dir), data_dir)
    namespace = config.namespace or (existing.namespace if existing else None) or default_namespace()
    claim(namespace, data_dir)
    ClusterConfig(
        replicas=replicas,
        namespace=namespace,
        cluster_cidr=cluster_cidr,
        service_cidr=service_cidr,
        lb_pool=lb_pool,
        network=network.plugin,
        network_backend=network.backend,
        tls_sans=tls_sans,
        volume_plugin=volume_plugin,
        security=security.to_dict(),
    ).save(data_dir)
    had = find_store(namespace)
    _, placement = deploy_store(replicas, data_dir, namespace)
    asyncio.run(wait_until_serving(namespace, timeout=config.timeout))
    yield StoreUp(len(had) == replicas, placement)
    port, kubeconfig = deploy_apiserver(
        data_dir, namespace, port=config.port, service_cidr=service_cidr, tls_sans=tls_sans, security=security
    )
    yield ApiServerUp(port, kubeconfig, time.monotonic() - t0)
    yield SchedulerUp(tuple(deploy_scheduler(data_dir, namespace)))
    agents = None
    if config.runtime != "none":
        agents = NodeAgentsConfig(
            data_dir=data_dir,
            apiserver_port=port,
            api_host=apiserver_hosts(namespace),
            runtime=config.runtime,
            manifests_dir=config.manifests_dir,
            network=network.plugin,
            network_options={
                "cluster_cidr": cluster_cidr,
                "service_cidr": service_cidr,
                "lb_pool": lb_pool,
                "backend": network.backend,
            },
            volume_plugin=volume_plugin,
        )
        if volume_plugin == DEFAULT_VOLUME_PLUGIN:  # its CSIDriver and the default StorageClass
            asyncio.run(ensure_storage_defaults(str(kubeconfig)))
    # The controller manager follows Ray's membership from this (head) node's id.
    follow = agents and replace(agents, head_node_id=ray.get_runtime_context().get_node_id())
    yield ControllersUp(
        tuple(
            deploy_controller_manager(
                data_dir,
                namespace,
                agents=follow,
                controllers=config.controllers,
                cluster_cidr=cluster_cidr,
                lb_pool=lb_pool,
                autoscale=config.autoscale,
                scale_down_unneeded=config.scale_down_unneeded,
            )
        )
    )
    if agents is not None:
        yield deploy_ingress(data_dir, namespace)
    if agents is not None:
        yield deploy_dns(data_dir, namespace, ServiceNetwork.parse(service_cidr).dns_ip)
        started = deploy_node_agents(agents, namespace)
        yield NodeAgentsUp(tuple(started), config.manifests_dir or data_dir / "manifests")
