"""What ``raykube up`` was asked for (``UpConfig``), what the data directory remembers
(``ClusterConfig``, ``cluster.json``), and how the two become this run's choices: each ``chosen_*``
takes the flag when given, else what ``cluster.json`` says, else the default, and raises ``UpRefused``
(before anything starts) when the flag contradicts what the cluster already has or is invalid.
"""

from __future__ import annotations

import contextlib
import importlib.util
import ipaddress
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cluster.apiserver.admission.service_allocation import SERVICE_CIDR, ServiceNetwork
from cluster.machinery.cidrset import DEFAULT_CLUSTER_CIDR, CidrError, parse_cluster_cidrs
from cluster.machinery.files import private_dir, write_private
from cluster.machinery.ippool import DEFAULT_LB_POOL, PoolError, parse_pool
from cluster.naming import DEFAULT_NAMESPACE
from cluster.store.network import DEFAULT_CLIENT_PORT
from netplugins.cni.plugin import PluginLoadError, load_plugin
from nodeagent.actor import load_runtime
from nodeagent.csi.plugin import PluginLoadError as CSIPluginLoadError
from nodeagent.csi.plugin import load_volume_plugin

CNI_BIN = "/usr/lib/cni"  # Debian's containernetworking-plugins
NETWORK_BACKENDS = ("host-gw", "vxlan")  # across nodes; the first is the default
HOST_SERVICE_CIDR = "127.96.0.0/16"  # the default Service CIDR with --network host (loopback)
DEFAULT_VOLUME_PLUGIN = "hostpath"  # the built-in CSI driver hostpath.csi.raykube.io


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
    store_port: int | None = None  # --store-port as resolved (chosen_store_port); None: before it

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
            store_port=raw.get("store_port"),
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
                    "store_port": self.store_port,
                },
                indent=2,
            ),
        )


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
    store_port: int | None = None  # --store-port; None: cluster.json's, else 0 with --port 0, else 2379


class UpRefused(ValueError):
    """``up`` started and wrote nothing: the request contradicts the data directory or is invalid."""


def chosen_replicas(config: UpConfig, existing: ClusterConfig | None) -> int:
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


def chosen_store_port(config: UpConfig, existing: ClusterConfig | None) -> int:
    """Where the store replicas' client and peer ports start (``cluster.store.network``): as asked,
    else what ``cluster.json`` recorded, else free ports when the API server's port is free-chosen
    too (``--port 0``: tests and several clusters on one host), else etcd's 2379. Replicas whose
    ports are recorded keep them whatever this says."""
    port = config.store_port
    if port is None:
        port = existing.store_port if existing and existing.store_port is not None else None
    if port is None:
        port = 0 if config.port == 0 else DEFAULT_CLIENT_PORT
    if not 0 <= port <= 65534:
        raise UpRefused(f"--store-port must be 0 (free ports) or a port below 65535, not {port}")
    return port


def chosen_cluster_cidr(config: UpConfig, existing: ClusterConfig | None) -> str:
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


def chosen_service_cidr(config: UpConfig, existing: ClusterConfig | None, plugin: str) -> str:
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


def chosen_lb_pool(config: UpConfig, existing: ClusterConfig | None) -> str:
    """The LoadBalancer pool, normalized; it may change between runs (the controller moves Services
    whose address left the pool)."""
    if not config.lb_pool:
        return existing.lb_pool if existing else DEFAULT_LB_POOL
    try:
        parse_pool(config.lb_pool)
    except PoolError as err:
        raise UpRefused(f"--lb-pool: {err}") from None
    return ",".join(part.strip() for part in config.lb_pool.split(",") if part.strip())


def chosen_tls_sans(config: UpConfig, existing: ClusterConfig | None) -> tuple[str, ...]:
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


def chosen_network(config: UpConfig, existing: ClusterConfig | None) -> NetworkChoice:
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


def chosen_volume_plugin(config: UpConfig, existing: ClusterConfig | None) -> str:
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
