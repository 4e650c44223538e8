"""The node's Ray actors: the CRI runtime plugin (``runtime-<node>``) and the node agent (``agent-<node>``).

Both are thin wrappers, pinned to their Ray node by the caller (``cluster.node_agents.deploy_node_agents``):

- ``RuntimeActor`` serves the CRI on a unix socket: the ``process`` runtime inside the actor's own
  event loop (calling the node's network plugin on ``network_socket``), a supervised
  ``containerd``, or any class named by import path (``--runtime pkg.mod:Class``): constructed with
  the runtime's ``root_dir``, ``async start() -> CRI socket path``, ``async stop()``. ``ready()``
  returns the socket path and the runtime's version string (``process://...`` /
  ``containerd://...``) and whether it enforces resource limits (``limits``, from its
  ``ResourceLimits`` condition; ``runtime_limits`` collects it for ``raykube status``);
  ``shutdown()`` stops every pod.
- ``NodeAgentActor`` runs a ``NodeAgent`` (Node registration, Lease, pod workers, probes, static pods)
  against the API server, plus the ``AgentServer`` that the API server proxies ``kubectl logs`` and
  ``kubectl exec`` to, over TLS that requires the cluster CA's client certificate.

Everything the agent needs arrives as a ``NodeAgentConfig`` (kubeconfig text with embedded credentials,
its serving certificate, the CA), so it runs on any Ray node, not only where the PKI lives.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray

from cluster.client.rest import ApiClient
from cluster.machinery.files import private_dir, write_private
from netplugins.cni.plugin import PluginLoadError, load_object
from nodeagent import machine
from nodeagent.agent.agent import AgentConfig, NodeAgent
from nodeagent.agent.api import RestAgentApi
from nodeagent.cri.client import CRIClient
from nodeagent.kubelet.dns import DEFAULT_CLUSTER_DNS, DEFAULT_CLUSTER_DOMAIN, ClusterDns
from nodeagent.runtimes.process import serve, stop_server
from nodeagent.server.agent import AgentServer
from nodeagent.server.tls import agent_ssl_context

log = logging.getLogger("raykube.nodeagent")

RUNTIMES = ("process", "containerd")
# Runtimes supervised by the actor: built-in names to import paths (``--runtime`` takes either).
SUPERVISED = {"containerd": "nodeagent.runtimes.containerd:ContainerdRuntime"}


def load_runtime(spec: str) -> type[Any] | None:
    """The runtime class ``--runtime SPEC`` supervises (None for the in-actor ``process`` runtime);
    raises ``PluginLoadError`` when SPEC names nothing usable."""
    if spec == "process":
        return None
    cls = load_object(spec, {"process": "", **SUPERVISED}, "runtime")
    if not (
        isinstance(cls, type)
        and callable(getattr(cls, "start", None))
        and callable(getattr(cls, "stop", None))
    ):
        raise PluginLoadError(f"runtime {spec!r} is not a class with async start() and stop()")
    return cls


def runtime_actor_name(node_name: str) -> str:
    return f"runtime-{node_name}"


def limits_summary(status: Any) -> str:
    """One line for ``raykube status`` from a CRI ``StatusResponse``'s ``ResourceLimits`` condition
    (a runtime without it, like containerd, applies limits itself)."""
    for c in status.status.conditions:
        if c.type == "ResourceLimits":
            if c.status:
                return f"enforced ({c.reason}: {c.message})"
            return f"NOT enforced: {c.message or c.reason}"
    return "enforced by the runtime"


def runtime_limits(namespace: str) -> list[tuple[str, str, str]]:
    """(node, runtime version, limits summary) of every node runtime in ``namespace``."""
    rows = []
    for entry in ray.util.list_named_actors(all_namespaces=True):
        name = entry["name"]
        if entry["namespace"] != namespace or not name.startswith(runtime_actor_name("")):
            continue
        try:
            info = ray.get(ray.get_actor(name, namespace=namespace).ready.remote(), timeout=15)
        except Exception as e:  # a runtime that is down is reported, not fatal to `raykube status`
            info = {"version": "?", "limits": f"unknown ({type(e).__name__})"}
        rows.append(
            (name.removeprefix(runtime_actor_name("")), info.get("version", "?"), info.get("limits", "?"))
        )
    return sorted(rows)


def _servers(cluster_dns: str) -> tuple[str, ...]:
    """``cluster_dns`` as the kubelet's clusterDNS list (comma separated; empty: no cluster DNS)."""
    return tuple(s.strip() for s in cluster_dns.split(",") if s.strip())


def agent_actor_name(node_name: str) -> str:
    return f"agent-{node_name}"


@dataclass(frozen=True, slots=True)
class NodeAgentConfig:
    """What one node agent needs, as text so it crosses to any Ray node: its directory, kubeconfig
    (credentials embedded), the cluster CA and its serving pair (PEM), its addresses, the runtime's
    socket and version, the static pods' directory (head node only) and Ray's view of the node: its
    resources, and the labels, instance type and extended resources (``nvidia.com/gpu``) its Node
    carries (``cluster.node_facts``; pairs, so the value stays hashable)."""

    data_dir: str
    kubeconfig: str
    ca_pem: str
    cert_pem: str
    key_pem: str
    internal_ips: tuple[str, ...]
    runtime_socket: str
    runtime_version: str
    manifests_dir: str | None = None
    ray_cpus: float | None = None
    ray_memory: float | None = None
    cluster_dns: str = DEFAULT_CLUSTER_DNS  # the pods' nameserver (kube-dns's ClusterIP)
    cluster_domain: str = DEFAULT_CLUSTER_DOMAIN
    labels: tuple[tuple[str, str], ...] = ()
    instance_type: str = ""
    extended_resources: tuple[tuple[str, str], ...] = ()
    csi_socket: str = ""  # the node's volume plugin (``csi-<node>`` actor's socket); "": none
    csi_driver: str = ""  # its driver name (GetPluginInfo), e.g. hostpath.csi.raykube.io


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=0, max_concurrency=1000)  # type: ignore[call-overload]
class RuntimeActor:
    """Serves the CRI for one node; see the module docstring."""

    def __init__(self, kind: str, root_dir: str, socket_path: str, network_socket: str | None = None) -> None:
        logging.basicConfig(level=logging.INFO)
        self.runtime_cls = load_runtime(kind)
        self.kind = kind
        self.root_dir = root_dir
        self.socket_path = socket_path
        self.network_socket = network_socket
        self._runtime: Any = None
        self._version = ""
        self._limits = ""
        self._started = asyncio.get_event_loop().create_task(self._start())

    async def _start(self) -> None:
        private_dir(self.root_dir)
        if self.runtime_cls is None:
            Path(self.socket_path).unlink(missing_ok=True)
            self._runtime = await serve(self.socket_path, self.root_dir, network_socket=self.network_socket)
        else:
            # A supervised runtime gets the node's network plugin as ``network_socket=`` (containerd
            # reaches it through the raykube-cni shim); see docs/plugins.md.
            extra = {"network_socket": self.network_socket} if self.network_socket else {}
            self._runtime = self.runtime_cls(self.root_dir, **extra)
            self.socket_path = await self._runtime.start()
        async with CRIClient(self.socket_path) as cri:
            await cri.wait_ready(timeout=30)
            version = await cri.version()
            self._limits = limits_summary(await cri.status())
        scheme = self.kind if self.kind in RUNTIMES else version.runtime_name.removeprefix("raykube-")
        self._version = f"{scheme}://{version.runtime_version}"
        log.info("%s runtime serving the CRI on %s (%s)", self.kind, self.socket_path, self._version)

    async def ready(self) -> dict[str, str]:
        if self._started.done() and self._started.exception() is not None:
            self._started = asyncio.get_event_loop().create_task(self._start())
        await asyncio.shield(self._started)
        return {
            "socket": self.socket_path,
            "version": self._version,
            "kind": self.kind,
            "limits": self._limits,
        }

    async def shutdown(self) -> None:
        """Stop the runtime and every pod it runs (``raykube down``)."""
        if self._runtime is None:
            return
        if self.runtime_cls is None:
            await stop_server(self._runtime)
        else:
            await self._runtime.stop()
        self._runtime = None


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=0, max_concurrency=1000)  # type: ignore[call-overload]
class NodeAgentActor:
    """Runs one node's agent; see the module docstring."""

    def __init__(self, node_name: str, config: NodeAgentConfig) -> None:
        logging.basicConfig(level=logging.INFO)
        self.node_name = node_name
        self.config = config
        self.agent: Any = None
        self.server: Any = None
        self.client: Any = None  # the agent's ApiClient: ours to close (RestAgentApi does not)
        self.port = 0
        self._started = asyncio.get_event_loop().create_task(self._start())

    async def _start(self) -> None:
        cfg = self.config
        node_dir = Path(cfg.data_dir)
        pki = node_dir / "pki"
        # Credentials are written whole, atomically and 0600 from the start (never chmod-ed after);
        # ``pods`` (the agent's log root) is made here so it is private too.
        files = {"ca.crt": cfg.ca_pem, "agent.crt": cfg.cert_pem, "agent.key": cfg.key_pem}
        for name, text in files.items():
            write_private(pki / name, text)
        kubeconfig = write_private(node_dir / "kubeconfig", cfg.kubeconfig)
        private_dir(node_dir / "pods")
        client = ApiClient.from_kubeconfig(str(kubeconfig))
        info = machine.gather(
            self.node_name,
            list(cfg.internal_ips),
            str(node_dir),
            runtime_version=cfg.runtime_version,
            ray_cpus=cfg.ray_cpus,
            ray_memory=cfg.ray_memory,
            extra_labels=dict(cfg.labels),
            instance_type=cfg.instance_type,
            extended_resources=dict(cfg.extended_resources),
        )
        agent = NodeAgent(
            RestAgentApi(client),
            cfg.runtime_socket,
            self.node_name,
            str(node_dir),
            info,
            manifests_dir=cfg.manifests_dir,
            config=AgentConfig(cluster_dns=ClusterDns(_servers(cfg.cluster_dns), cfg.cluster_domain)),
            ca_pem=cfg.ca_pem,
            csi_socket=cfg.csi_socket,
        )
        context = agent_ssl_context(pki / "ca.crt", pki / "agent.crt", pki / "agent.key")
        server = AgentServer(agent, CRIClient(cfg.runtime_socket), host="0.0.0.0", ssl_context=context)
        self.port = await server.start()
        agent.set_kubelet_port(self.port)
        await agent.start()
        self.agent, self.server, self.client = agent, server, client
        log.info("node agent for %s serving on port %d", self.node_name, self.port)

    async def ready(self) -> dict[str, Any]:
        """The node name and the agent server's port, once the Node is registered; (re)starts an
        agent that failed to start or was stopped with ``shutdown`` (so `raykube up` revives it)."""
        failed = self._started.done() and self._started.exception() is not None
        stopped = self._started.done() and self.agent is None
        if failed or stopped:
            self._started = asyncio.get_event_loop().create_task(self._start())
        await asyncio.shield(self._started)
        return {"node": self.node_name, "port": self.port}

    async def shutdown(self, remove_pods: bool = False) -> None:
        """Stop the agent (pods keep running unless ``remove_pods``, as with the kubelet)."""
        if self.agent is not None:
            await self.agent.stop(remove_pods=remove_pods)
            self.agent = None
        if self.server is not None:
            await self.server.stop()
            self.server = None
        if self.client is not None:
            await self.client.close()
            self.client = None
