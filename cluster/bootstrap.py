"""Bring the control plane up on a Ray cluster (``up``: the steps of ``raykube up``), find it again,
and take it down.

``raykube up`` is idempotent: it starts (or joins) Ray, creates whatever named actors are missing
(with ``get_if_exists``), and waits until the store serves a linearizable read. Everything raykube
runs lives in one Ray namespace (``raykube`` unless told otherwise), so a second ``up`` finds the
first one's actors. A namespace belongs to one data directory (``cluster.ownership``): ``up``
refuses to mix the actors of one with the files of another. Everything written under the data
directory is private to its user (``cluster.machinery.files``: directories 0700, files 0600).

The store replicas' placement is ``cluster.store_deploy``'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
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
from ray.util.placement_group import remove_placement_group
from ray.util.scheduling_strategies import (
    NodeAffinitySchedulingStrategy,
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
from cluster.machinery.cidrset import DEFAULT_CLUSTER_CIDR
from cluster.machinery.files import private_dir, write_private
from cluster.machinery.ippool import DEFAULT_LB_POOL
from cluster.naming import DEFAULT_NAMESPACE, default_namespace
from cluster.node_agents import AgentInfo, NodeAgentsConfig, deploy_node_agents, ray_node_names
from cluster.ownership import claim
from cluster.ray_auth import token_auth_env
from cluster.scheduler.actor import ACTOR_NAME as SCHEDULER_ACTOR
from cluster.scheduler.actor import SchedulerActor
from cluster.security import security_options
from cluster.storage_defaults import ensure_with_kubeconfig as ensure_storage_defaults
from cluster.store.clients import client_kind
from cluster.store_deploy import PG_NAME, alive_nodes, deploy_store, store_pki, wait_until_serving
from cluster.up_config import (
    DEFAULT_VOLUME_PLUGIN,
    ClusterConfig,
    UpConfig,
    UpRefused,
    chosen_cluster_cidr,
    chosen_lb_pool,
    chosen_network,
    chosen_replicas,
    chosen_service_cidr,
    chosen_store_port,
    chosen_tls_sans,
    chosen_volume_plugin,
)

RAY_MARKER = "ray-started-by-raykube"


def default_data_dir() -> Path:
    return Path(os.environ.get("RAYKUBE_DATA_DIR", Path.home() / ".raykube"))


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
    alive = {n["NodeID"]: n for n in alive_nodes()}
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
            security=(security or SecurityOptions()).to_dict(), store_client=client_kind(),
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
    replicas = chosen_replicas(config, existing)
    cluster_cidr = chosen_cluster_cidr(config, existing)
    network = chosen_network(config, existing)
    volume_plugin = chosen_volume_plugin(config, existing)
    service_cidr = chosen_service_cidr(config, existing, network.plugin)
    lb_pool = chosen_lb_pool(config, existing)
    tls_sans = chosen_tls_sans(config, existing)
    store_port = chosen_store_port(config, existing)
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
        store_port=store_port,
    ).save(data_dir)
    had = find_store(namespace)
    _, placement = deploy_store(replicas, data_dir, namespace, store_port=store_port, tls=store_pki(data_dir))
    asyncio.run(wait_until_serving(namespace, timeout=config.timeout, data_dir=data_dir))
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
