"""Node agents on Ray nodes: on each one a network plugin actor, a service proxy actor
(``proxy-<node>``: nftables, or userspace with a node-network plugin), a volume plugin actor
(``csi-<node>``), a CRI runtime actor and a node agent actor, pinned there and started in that order
(the runtime calls the network plugin; the agent the runtime and the volume plugin); they stop in
the reverse order.

Ray glue used by the bootstrap (``raykube up`` / ``down``) and by the controller manager, which
follows Ray's membership with ``only_missing`` (so it lives apart from ``cluster.bootstrap``, which
deploys the controller manager itself). What a deployment needs travels as ``NodeAgentsConfig``,
a frozen value Ray pickles into the controller manager; each agent gets its ``NodeAgentConfig``,
with its Node's labels and capacity from Ray's view of the node (``cluster.node_facts``).

Node names come from every node Ray remembers, dead ones included (``ray_node_names``): with several
Ray nodes on one host (test clusters) the survivors keep their names when one of them dies, instead
of one falling back to the bare host name and getting a second set of actors.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from cluster import identities
from cluster.apiserver.admission.service_allocation import ServiceNetwork
from cluster.apiserver.tls import Pki
from cluster.autoscaler.marks import is_marked_releasing
from cluster.machinery.files import private_dir
from cluster.naming import DEFAULT_NAMESPACE, node_names
from cluster.node_facts import ray_node_facts
from netplugins.actor import NetworkActor, network_actor_name
from netplugins.proxy.actor import ProxyActor, proxy_actor_name
from netplugins.proxy.nftables import table_name as proxy_table_name
from nodeagent.actor import (
    NodeAgentActor,
    NodeAgentConfig,
    RuntimeActor,
    agent_actor_name,
    runtime_actor_name,
)
from nodeagent.csi.actor import VolumeActor, volume_actor_name
from nodeagent.server.tls import ensure_agent_cert

log = logging.getLogger("raykube.node_agents")

DELETE_DELAY_ENV = "RAYKUBE_NODE_DELETE_DELAY"


@dataclass(frozen=True, slots=True)
class NodeAgentsConfig:
    """How to give Ray nodes their agents: the agents reach the API server at ``api_host`` (one
    address, or every API server's in a tuple: their client fails over; default: the deploying
    node's IP) on ``apiserver_port``; static pods come from ``manifests_dir`` (default
    ``data_dir/manifests``) and run on the head node only (``head_node_id``, default: the deploying
    node). ``network`` is the network plugin (``--network``: a built-in name or ``pkg.mod:Class``)
    and ``network_options`` its ``PluginContext.options`` (``cluster_cidr``, ``service_cidr``,
    ``lb_pool``, ``backend``; each node's ``bridge`` name is added per node, ``bridge_name``).
    ``node_delete_delay``: how long the Node of a Ray node that died stays before the controller
    manager deletes it (``--node-delete-delay``, ``$RAYKUBE_NODE_DELETE_DELAY``, 300 s)."""

    data_dir: Path
    apiserver_port: int
    runtime: str = "process"
    network: str = "host"
    network_options: dict[str, Any] = field(default_factory=dict)
    manifests_dir: Path | None = None
    api_host: str | tuple[str, ...] | None = None
    head_node_id: str | None = None
    timeout: float = 120.0
    node_delete_delay: float = field(default_factory=lambda: float(os.environ.get(DELETE_DELAY_ENV, "300")))
    # The volume plugin (``--volume-plugin``): hostpath, pkg.mod:Class or socket:/path (a real CSI
    # driver's socket on every node); its ``CSIContext.options``.
    volume_plugin: str = "hostpath"
    volume_options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AgentInfo:
    """One node agent once its Node is registered: the node, its agent server's port, its runtime."""

    node: str
    port: int
    runtime: str


def ray_node_names(nodes: list[dict[str, Any]] | None = None) -> dict[str, str]:
    """Ray node id -> Node name for every node Ray remembers (``ray.nodes()``, dead ones included);
    see the module docstring."""
    return node_names(ray.nodes() if nodes is None else nodes)  # type: ignore[no-untyped-call]


def node_actor_names(node_name: str) -> tuple[str, ...]:
    """The named actors a node gets, in start order: network plugin, proxy, volume plugin, runtime,
    agent."""
    return (
        network_actor_name(node_name),
        proxy_actor_name(node_name),
        volume_actor_name(node_name),
        runtime_actor_name(node_name),
        agent_actor_name(node_name),
    )


def remove_node_actors(
    node_name: str, namespace: str = DEFAULT_NAMESPACE, *, stop_first: bool = False
) -> list[str]:
    """Kill (for good) the actors of a node, agent first: pinned to a node that no longer exists
    they can never run again, and their names would make a later node of the same name look served.
    ``stop_first`` (a node being released while it still runs): each is asked to shut down before it
    is killed: the agent removes its pods, the runtime stops what is left, the proxy and the network
    plugin remove their node-wide state (a live actor, even one using no CPU, keeps Ray from finding
    the node idle). Returns the names killed; missing ones are skipped. Blocking; idempotent."""
    shutdown_args: dict[str, tuple[Any, ...]] = {
        agent_actor_name(node_name): (True,),
        runtime_actor_name(node_name): (),
        volume_actor_name(node_name): (False,),  # volumes outlive it: only `down --purge` removes them
        proxy_actor_name(node_name): (True,),
        network_actor_name(node_name): (True,),
    }
    killed = []
    for name in reversed(node_actor_names(node_name)):
        try:
            actor = ray.get_actor(name, namespace=namespace)
        except ValueError:
            continue
        if stop_first:
            with contextlib.suppress(Exception):
                ray.get(actor.shutdown.remote(*shutdown_args[name]), timeout=60)
        with contextlib.suppress(Exception):
            ray.kill(actor, no_restart=True)
            killed.append(name)
    return killed


def _https(host: str, port: int) -> str:
    return f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"


def _socket(kind: str, namespace: str, node_name: str) -> str:
    # Unix socket paths are limited to 108 bytes: keep them short and out of deep data dirs.
    digest = uuid.uuid5(uuid.NAMESPACE_DNS, f"{namespace}/{node_name}").hex[:12]
    return str(Path(tempfile.gettempdir()) / f"raykube-{kind}-{digest}.sock")


def _cri_socket(namespace: str, node_name: str) -> str:
    return _socket("cri", namespace, node_name)


def _cni_socket(namespace: str, node_name: str) -> str:
    return _socket("cni", namespace, node_name)


def _csi_socket(namespace: str, node_name: str) -> str:
    return _socket("csi", namespace, node_name)


def bridge_name(namespace: str, node: str = "") -> str:
    """The pods' bridge of ``node`` in the cluster of Ray ``namespace``: ``rk`` + 8 hex of a hash of
    both, so neither two clusters nor two Ray nodes sharing one host (``ray.cluster_utils``, several
    raylets in one network namespace) share a bridge, its podCIDR gateway or its nft table; it fits
    IFNAMSIZ."""
    return "rk" + hashlib.sha256(f"{namespace}/{node}".encode()).hexdigest()[:8]


def cluster_dns_ip(network_options: dict[str, Any]) -> str:
    """The pods' nameserver: kube-dns's ClusterIP, the tenth address of the Service CIDR."""
    return ServiceNetwork.parse(str(network_options.get("service_cidr") or "10.96.0.0/12")).dns_ip


def remove_node_sockets(node_name: str, namespace: str = DEFAULT_NAMESPACE) -> list[str]:
    """Unlink the CNI, CSI and CRI sockets of a node that died, when they are on this host (several Ray
    nodes sharing a host, as in test clusters): a killed node leaves them behind, and their paths are
    unique to the node's name in this namespace. Returns the paths removed."""
    removed = []
    for path in (
        _cni_socket(namespace, node_name),
        _csi_socket(namespace, node_name),
        _cri_socket(namespace, node_name),
    ):
        with contextlib.suppress(FileNotFoundError):
            Path(path).unlink()
            removed.append(path)
    return removed


def _serving_pair(pki: Pki, node_dir: Path, name: str, ip: str) -> tuple[str, str]:
    """The agent's serving certificate and key (PEM), issued or reused under an exclusive lock on
    the node's directory: ``raykube up`` and the controller manager's membership follower may deploy
    the same node at once, and two processes issuing a pair at the same time could leave one's
    certificate next to the other's key."""
    private_dir(node_dir)
    fd = os.open(node_dir / ".serving.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        cert, key = ensure_agent_cert(pki, node_dir / "serving", name, [ip])
        return cert.read_text(), key.read_text()
    finally:
        os.close(fd)  # releases the lock


def deploy_node_agents(
    config: NodeAgentsConfig,
    namespace: str = DEFAULT_NAMESPACE,
    *,
    only_missing: bool = False,
    node_ids: frozenset[str] | None = None,
) -> list[AgentInfo]:
    """On every alive Ray node: a network plugin actor, a service proxy, a volume plugin actor
    (``--volume-plugin``), a CRI runtime actor (given the network plugin's socket) and a node agent
    actor (given the volume plugin's socket and driver), pinned there.

    The agents and network plugins reach the API server with a client certificate for
    ``system:node:<name>`` (group ``system:nodes``), the proxies as ``system:kube-proxy``; agents
    serve logs/exec with a certificate from the cluster CA, and run static pods (see
    ``NodeAgentsConfig``). With ``only_missing`` nodes that already have an agent are skipped
    (the controller manager calls it so to follow Ray's membership); with ``node_ids`` only those
    Ray nodes are looked at (one new node is not held up by another). Returns once those Nodes are
    registered. With ``only_missing`` a node the autoscaler is releasing is skipped too.
    """
    data_dir = config.data_dir
    pki = Pki.in_dir(data_dir / "pki")
    api_hosts = [config.api_host] if isinstance(config.api_host, str) else list(config.api_host or ())
    api_host = api_hosts[0] if api_hosts else ray.util.get_node_ip_address()
    api_servers = [_https(host, config.apiserver_port) for host in api_hosts or [api_host]]
    manifests = config.manifests_dir or data_dir / "manifests"
    private_dir(manifests)  # a folder the user made keeps its mode
    everything = ray.nodes()  # type: ignore[no-untyped-call]
    names = ray_node_names(everything)
    nodes = [n for n in everything if n.get("Alive") and (node_ids is None or n["NodeID"] in node_ids)]
    existing = {
        e["name"] for e in ray.util.list_named_actors(all_namespaces=True) if e["namespace"] == namespace
    }
    head = config.head_node_id or ray.get_runtime_context().get_node_id()
    proxy_kubeconfig = identities.kubeconfig_text(pki, identities.KUBE_PROXY, api_servers)  # one user for all
    started = []
    for node in nodes:
        node_id, name = node["NodeID"], names[node["NodeID"]]
        if only_missing and (agent_actor_name(name) in existing or is_marked_releasing(namespace, name)):
            continue
        ip = str(node.get("NodeManagerAddress") or api_host)
        pin = NodeAffinitySchedulingStrategy(node_id, soft=False)
        node_dir = data_dir / "nodes" / name
        kubeconfig_text = identities.kubeconfig_text(pki, identities.Identity.node(name), api_servers)
        network_actor = NetworkActor.options(  # type: ignore[attr-defined]
            name=network_actor_name(name),
            namespace=namespace,
            get_if_exists=True,
            lifetime="detached",
            scheduling_strategy=pin,
        ).remote(
            config.network,
            name,
            str(node_dir / "network"),
            _cni_socket(namespace, name),
            [ip],
            {**config.network_options, "bridge": bridge_name(namespace, name)},
            kubeconfig_text,
        )
        network = ray.get(network_actor.ready.remote(), timeout=config.timeout)
        proxy_actor = ProxyActor.options(  # type: ignore[attr-defined]
            name=proxy_actor_name(name),
            namespace=namespace,
            get_if_exists=True,
            lifetime="detached",
            scheduling_strategy=pin,
        ).remote(
            name,
            str(node_dir / "proxy"),
            proxy_kubeconfig,
            [ip],
            {**config.network_options, "table": proxy_table_name(namespace, name)},
            "userspace" if network["node_network"] else "nftables",
        )
        ray.get(proxy_actor.ready.remote(), timeout=config.timeout)
        facts = ray_node_facts(node)
        volume_actor = VolumeActor.options(  # type: ignore[attr-defined]
            name=volume_actor_name(name),
            namespace=namespace,
            get_if_exists=True,
            lifetime="detached",
            scheduling_strategy=pin,
        ).remote(
            config.volume_plugin,
            name,
            str(node_dir / "csi"),
            _csi_socket(namespace, name),
            dict(config.volume_options),
            dict(facts.labels),
        )
        volumes = ray.get(volume_actor.ready.remote(), timeout=config.timeout)
        runtime_actor = RuntimeActor.options(  # type: ignore[attr-defined]
            name=runtime_actor_name(name),
            namespace=namespace,
            get_if_exists=True,
            lifetime="detached",
            scheduling_strategy=pin,
        ).remote(config.runtime, str(node_dir / "runtime"), _cri_socket(namespace, name), network["socket"])
        served = ray.get(runtime_actor.ready.remote(), timeout=config.timeout)
        cert_pem, key_pem = _serving_pair(pki, node_dir, name, ip)
        if facts.skipped_labels:
            log.info("node %s: Ray labels not valid as Node labels, skipped: %s", name, facts.skipped_labels)
        agent_config = NodeAgentConfig(
            data_dir=str(node_dir),
            kubeconfig=kubeconfig_text,
            ca_pem=pki.ca_cert.read_text(),
            cert_pem=cert_pem,
            key_pem=key_pem,
            internal_ips=(ip,),
            runtime_socket=served["socket"],
            runtime_version=served["version"],
            manifests_dir=str(manifests) if node_id == head else None,
            ray_cpus=facts.cpus,
            ray_memory=facts.memory,
            cluster_dns=cluster_dns_ip(config.network_options),
            labels=tuple(sorted(facts.labels.items())),
            instance_type=facts.instance_type,
            extended_resources=tuple(sorted(facts.extended_resources().items())),
            csi_socket=volumes["socket"],
            csi_driver=volumes["driver"],
        )
        agent = NodeAgentActor.options(  # type: ignore[attr-defined]
            name=agent_actor_name(name),
            namespace=namespace,
            get_if_exists=True,
            lifetime="detached",
            scheduling_strategy=pin,
        ).remote(name, agent_config)
        started.append(agent)
    out = []
    for agent in started:
        info = ray.get(agent.ready.remote(), timeout=config.timeout)
        out.append(AgentInfo(node=info["node"], port=info["port"], runtime=config.runtime))
    return out


def stop_node_agents(
    namespace: str = DEFAULT_NAMESPACE, *, remove_pods: bool = True, purge: bool = False
) -> list[str]:
    """Stop every node agent, then every runtime (which stops the pods and DELs their networks), then
    every volume plugin, service proxy and network plugin (``purge``: they also remove their node-wide
    state, the volume plugins their volumes, for ``raykube down --purge``); returns the actors
    stopped."""
    stopped = []
    entries = ray.util.list_named_actors(all_namespaces=True)
    steps: tuple[tuple[str, tuple[Any, ...]], ...] = (
        (agent_actor_name(""), (remove_pods,)),
        (runtime_actor_name(""), ()),
        (volume_actor_name(""), (purge,)),
        (proxy_actor_name(""), (purge,)),
        (network_actor_name(""), (purge,)),
    )
    for prefix, args in steps:
        for entry in entries:
            if entry["namespace"] != namespace or not entry["name"].startswith(prefix):
                continue
            with contextlib.suppress(Exception):
                actor = ray.get_actor(entry["name"], namespace=namespace)
                ray.get(actor.shutdown.remote(*args), timeout=60)
                stopped.append(entry["name"])
    return stopped
