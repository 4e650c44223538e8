"""The process runtime's side of CNI: how a sandbox asks the node's network plugin for its network.

The plugin (a ``netplugins.cni.plugin.NetworkPlugin`` behind the node's ``NetworkActor``) serves the
CNI gRPC service on a unix socket; ``PodNetwork`` is the runtime's client of it. ``pod_request`` is
the pure translation of a CRI ``PodSandboxConfig`` into the CNI request containerd would make:
container id = sandbox id, ``ifname`` eth0, the netns path, CNI_ARGS ``IgnoreUnknown=1``,
``K8S_POD_NAMESPACE``, ``K8S_POD_NAME``, ``K8S_POD_INFRA_CONTAINER_ID``, ``K8S_POD_UID``, and the
sandbox's port mappings as ``runtimeConfig.portMappings`` (``{hostPort, containerPort, protocol
lower-case, hostIP}``, those with a host port only).

Invariants: one CNIClient per runtime, opened lazily inside the runtime's event loop; the plugin's
``Version`` (notably ``node_network``) is asked once and cached; nothing here retries (the node
agent retries RunPodSandbox / StopPodSandbox).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from netplugins.cni.client import CNIClient, VersionInfo
from netplugins.cni.types import Attachment, CNIError, NetRequest, Result
from nodeagent.cri import api_pb2

IFNAME = "eth0"
_PROTOCOLS = {api_pb2.TCP: "tcp", api_pb2.UDP: "udp", api_pb2.SCTP: "sctp"}


def netns_path(holder_pid: int) -> str:
    """The holder's network namespace, as CNI_NETNS. It lives as long as the holder does, so the
    runtime DELs before killing the holder; a DEL after the holder died gets an empty path (the
    spec lets DEL succeed without the namespace, and the namespace's links died with it)."""
    return f"/proc/{holder_pid}/ns/net" if holder_pid else ""


def port_mappings(config: api_pb2.PodSandboxConfig) -> list[dict[str, Any]]:
    return [
        {
            "hostPort": m.host_port,
            "containerPort": m.container_port,
            "protocol": _PROTOCOLS.get(m.protocol, "tcp"),
            "hostIP": m.host_ip,
        }
        for m in config.port_mappings
        if m.host_port
    ]


def pod_request(sandbox_id: str, netns: str, config: api_pb2.PodSandboxConfig) -> NetRequest:
    """The CNI request for a sandbox's ``eth0`` (ADD, and the same for DEL/CHECK)."""
    meta = config.metadata
    mappings = port_mappings(config)
    return NetRequest(
        container_id=sandbox_id,
        netns=netns,
        ifname=IFNAME,
        args={
            "IgnoreUnknown": "1",
            "K8S_POD_NAMESPACE": meta.namespace,
            "K8S_POD_NAME": meta.name,
            "K8S_POD_INFRA_CONTAINER_ID": sandbox_id,
            "K8S_POD_UID": meta.uid,
        },
        runtime_config={"portMappings": mappings} if mappings else {},
    )


@dataclass(frozen=True, slots=True)
class Attached:
    """A sandbox's network, as ADD made it: the request (DEL repeats it) and the plugin's result."""

    request: NetRequest
    result: Result

    def teardown_request(self, holder_pid: int) -> NetRequest:
        r = self.request
        return NetRequest(
            r.container_id, netns_path(holder_pid), r.ifname, r.args, r.runtime_config, self.result
        )


class PodNetwork:
    """The runtime's client of the node's network plugin on ``socket_path``."""

    def __init__(self, socket_path: str, timeout: float = 60.0) -> None:
        self.socket_path = socket_path
        self.timeout = timeout
        self._client: CNIClient | None = None
        self._info: VersionInfo | None = None

    def _cni(self) -> CNIClient:
        if self._client is None:
            self._client = CNIClient(self.socket_path, timeout=self.timeout)
        return self._client

    async def info(self, wait: float = 0.0) -> VersionInfo:
        """The plugin's Version answer (cached once it answered); ``wait`` seconds for it to come up."""
        if self._info is None:
            cni = self._cni()
            self._info = await (cni.wait_ready(wait) if wait else cni.version())
        return self._info

    async def node_network(self) -> bool:
        return (await self.info()).node_network

    async def add(self, req: NetRequest) -> Result:
        return await self._cni().add(req)

    async def delete(self, req: NetRequest) -> None:
        await self._cni().delete(req)

    async def gc(self, valid: list[Attachment]) -> None:
        await self._cni().gc(valid)

    async def condition(self) -> tuple[bool, str, str]:
        """(ready, reason, message) for the runtime's NetworkReady condition."""
        try:
            info = await self.info()
            await self._cni().status(timeout=10)
        except CNIError as e:
            return False, "NetworkPluginNotReady", f"network plugin not ready: {e.msg}"
        where = "the node's network namespace" if info.node_network else "a network namespace of their own"
        return True, info.plugin, f"network plugin {info.plugin}: pods get {where}"

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.close()
