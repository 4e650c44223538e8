"""Node agents on Ray nodes: on each one a network plugin actor, a service proxy actor
(``proxy-<node>``: nftables, or userspace with a node-network plugin), a CRI runtime actor and a node
agent actor, pinned there and started in that order (the runtime calls the plugin; the agent the
runtime); they stop in the reverse order.

Ray glue used by the bootstrap (``raykube up`` / ``down``) and by the controller manager, which
follows Ray's membership with ``only_missing`` (so it lives apart from ``cluster.bootstrap``, which
deploys the controller manager itself). What a deployment needs travels as ``NodeAgentsConfig``,
a frozen value Ray pickles into the controller manager; each agent gets its ``NodeAgentConfig``.
"""

from __future__ import annotations

import contextlib
import hashlib
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ray
import yaml  # type: ignore[import-untyped]
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from cluster.apiserver.admission.service_allocation import ServiceNetwork
from cluster.apiserver.kubeconfig import kubeconfig_document
from cluster.apiserver.tls import Pki, issue_client_cert
from cluster.autoscaler.marks import is_marked_releasing
from cluster.machinery.files import private_dir
from cluster.naming import DEFAULT_NAMESPACE, node_names
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
from nodeagent.server.tls import ensure_agent_cert


@dataclass(frozen=True, slots=True)
class NodeAgentsConfig:
    """How to give Ray nodes their agents: the agents reach the API server at ``api_host`` (one
    address, or every API server's in a tuple: their client fails over; default: the deploying
    node's IP) on ``apiserver_port``; static pods come from ``manifests_dir`` (default
    ``data_dir/manifests``) and run on the head node only (``head_node_id``, default: the deploying
    node). ``network`` is the network plugin (``--network``: a built-in name or ``pkg.mod:Class``)
    and ``network_options`` its ``PluginContext.options`` (``cluster_cidr``, ``service_cidr``,
    ``lb_pool``, ``backend``; each node's ``bridge`` name is added per node, ``bridge_name``)."""

    data_dir: Path
    apiserver_port: int
    runtime: str = "process"
    network: str = "host"
    network_options: dict[str, Any] = field(default_factory=dict)
    manifests_dir: Path | None = None
    api_host: str | tuple[str, ...] | None = None
    head_node_id: str | None = None
    timeout: float = 120.0


@dataclass(frozen=True, slots=True)
class AgentInfo:
    """One node agent once its Node is registered: the node, its agent server's port, its runtime."""

    node: str
    port: int
    runtime: str


def _alive_nodes() -> list[dict[str, Any]]:
    return [n for n in ray.nodes() if n.get("Alive")]


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


def bridge_name(namespace: str, node: str = "") -> str:
    """The pods' bridge of ``node`` in the cluster of Ray ``namespace``: ``rk`` + 8 hex of a hash of
    both, so neither two clusters nor two Ray nodes sharing one host (``ray.cluster_utils``, several
    raylets in one network namespace) share a bridge, its podCIDR gateway or its nft table; it fits
    IFNAMSIZ."""
    return "rk" + hashlib.sha256(f"{namespace}/{node}".encode()).hexdigest()[:8]


def cluster_dns_ip(network_options: dict[str, Any]) -> str:
    """The pods' nameserver: kube-dns's ClusterIP, the tenth address of the Service CIDR."""
    return ServiceNetwork.parse(str(network_options.get("service_cidr") or "10.96.0.0/12")).dns_ip


def deploy_node_agents(
    config: NodeAgentsConfig, namespace: str = DEFAULT_NAMESPACE, *, only_missing: bool = False
) -> list[AgentInfo]:
    """On every alive Ray node: a network plugin actor, a CRI runtime actor (given the plugin's
    socket) and a node agent actor, pinned there.

    The agents reach the API server with a client certificate for ``system:node:<name>`` (group
    ``system:nodes``), serve logs/exec with a certificate from the cluster CA, and run static pods
    (see ``NodeAgentsConfig``). With ``only_missing`` nodes that already have an agent are skipped
    (the controller manager calls it so to follow Ray's membership). Returns once those Nodes are
    registered. With ``only_missing`` a node the autoscaler is releasing is skipped too.
    """
    data_dir = config.data_dir
    pki = Pki.in_dir(data_dir / "pki")
    api_hosts = [config.api_host] if isinstance(config.api_host, str) else list(config.api_host or ())
    api_host = api_hosts[0] if api_hosts else ray.util.get_node_ip_address()
    api_servers = [_https(host, config.apiserver_port) for host in api_hosts or [api_host]]
    manifests = config.manifests_dir or data_dir / "manifests"
    private_dir(manifests)  # a folder the user made keeps its mode
    nodes = _alive_nodes()
    names = node_names(nodes)
    existing = {
        e["name"] for e in ray.util.list_named_actors(all_namespaces=True) if e["namespace"] == namespace
    }
    head = config.head_node_id or ray.get_runtime_context().get_node_id()
    started = []
    for node in nodes:
        node_id, name = node["NodeID"], names[node["NodeID"]]
        if only_missing and (agent_actor_name(name) in existing or is_marked_releasing(namespace, name)):
            continue
        ip = str(node.get("NodeManagerAddress") or api_host)
        pin = NodeAffinitySchedulingStrategy(node_id, soft=False)
        node_dir = data_dir / "nodes" / name
        cert_pem, key_pem = issue_client_cert(pki, f"system:node:{name}", ["system:nodes"])
        kubeconfig = kubeconfig_document(
            server=api_servers[0],
            servers=api_servers,
            cluster_name="raykube",
            user=f"system:node:{name}",
            context="raykube",
            certificate_authority=pki.ca_cert.read_bytes(),
            client_certificate=cert_pem,
            client_key=key_pem,
        )
        kubeconfig_text = yaml.safe_dump(kubeconfig, sort_keys=False)
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
            kubeconfig_text,
            [ip],
            {**config.network_options, "table": proxy_table_name(namespace, name)},
            "userspace" if network["node_network"] else "nftables",
        )
        ray.get(proxy_actor.ready.remote(), timeout=config.timeout)
        runtime_actor = RuntimeActor.options(  # type: ignore[attr-defined]
            name=runtime_actor_name(name),
            namespace=namespace,
            get_if_exists=True,
            lifetime="detached",
            scheduling_strategy=pin,
        ).remote(config.runtime, str(node_dir / "runtime"), _cri_socket(namespace, name), network["socket"])
        served = ray.get(runtime_actor.ready.remote(), timeout=config.timeout)
        agent_cert, agent_key = ensure_agent_cert(pki, node_dir / "serving", name, [ip])
        resources = node.get("Resources") or {}
        agent_config = NodeAgentConfig(
            data_dir=str(node_dir),
            kubeconfig=kubeconfig_text,
            ca_pem=pki.ca_cert.read_text(),
            cert_pem=agent_cert.read_text(),
            key_pem=agent_key.read_text(),
            internal_ips=(ip,),
            runtime_socket=served["socket"],
            runtime_version=served["version"],
            manifests_dir=str(manifests) if node_id == head else None,
            ray_cpus=resources.get("CPU"),
            ray_memory=resources.get("memory"),
            cluster_dns=cluster_dns_ip(config.network_options),
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
    every service proxy and network plugin (``purge``: they also remove their node-wide state, for
    ``raykube down --purge``); returns the actors stopped."""
    stopped = []
    entries = ray.util.list_named_actors(all_namespaces=True)
    steps: tuple[tuple[str, tuple[Any, ...]], ...] = (
        (agent_actor_name(""), (remove_pods,)),
        (runtime_actor_name(""), ()),
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
