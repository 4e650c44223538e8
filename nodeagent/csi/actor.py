"""The node's volume plugin as a Ray actor (``csi-<node>``): a thin shell around a CSI socket.

``deploy_node_agents`` starts one per Ray node, pinned there, after the service proxy and before the
runtime, and hands its socket and driver name to the node agent (which stages and publishes pods'
volumes through it). The volume plugin is ``--volume-plugin KIND``: ``hostpath`` (the built-in
driver), ``pkg.module:Class`` (a ``CSIPlugin``, served here on a unix socket) or
``socket:/path/to/csi.sock`` (a real CSI driver already running on the node: the actor only
proxies to it).

``call(method, request_bytes)`` is how the rest of the cluster reaches a node's plugin: the
controllers' provisioner sends CreateVolume to the plugin of the node a volume will live on, from
whichever node the controller manager runs on. Requests and responses cross Ray serialized; a
failed call raises the plugin's ``CSIError`` (gRPC code and message), which pickles unchanged.

Like the other node actors it restarts forever (``max_restarts=-1``): a restarted actor serves the
plugin again on the same socket, with its state from ``root_dir``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import grpc
import ray

from cluster.machinery.files import private_dir
from nodeagent.csi.client import CSIClient
from nodeagent.csi.errors import CSIError
from nodeagent.csi.plugin import SOCKET_PREFIX, CSIContext, CSIPlugin, load_volume_plugin
from nodeagent.csi.remote import RemoteCSI
from nodeagent.csi.server import serve, stop_serving

__all__ = [
    "ACTOR_PREFIX",
    "VolumeActor",
    "csi_caller",
    "load_volume_plugin",
    "volume_actor_name",
    "volume_plugins",
]

log = logging.getLogger("raykube.csi")

ACTOR_PREFIX = "csi-"


def volume_actor_name(node_name: str) -> str:
    return f"{ACTOR_PREFIX}{node_name}"


def volume_plugins(namespace: str) -> list[tuple[str, str, str]]:
    """(node, driver, readiness) of every node's volume plugin in ``namespace``, for ``raykube
    status``; readiness is ``ready (<socket>)`` or ``NOT ready: <why>``."""
    rows = []
    for entry in ray.util.list_named_actors(all_namespaces=True):
        name = entry["name"]
        if entry["namespace"] != namespace or not name.startswith(ACTOR_PREFIX):
            continue
        try:
            info = ray.get(ray.get_actor(name, namespace=namespace).ready.remote(), timeout=15)
            driver, readiness = str(info["driver"]), f"ready ({info['socket']})"
        except Exception as e:  # a plugin that is down is reported, not fatal to `raykube status`
            driver, readiness = "?", f"NOT ready: {type(e).__name__}: {e}"[:200]
        rows.append((name.removeprefix(ACTOR_PREFIX), driver, readiness))
    return sorted(rows)


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=0, max_concurrency=1000)  # type: ignore[call-overload]
class VolumeActor:
    """Hosts (or proxies to) one node's CSI plugin; see the module docstring."""

    def __init__(
        self,
        kind: str,
        node_name: str,
        root_dir: str,
        socket_path: str,
        options: dict[str, Any] | None = None,
        node_labels: dict[str, str] | None = None,
    ) -> None:
        logging.basicConfig(level=logging.INFO)
        self.kind = kind
        self.node_name = node_name
        self.root_dir = root_dir
        self.socket_path = socket_path
        self.options = dict(options or {})
        self.node_labels = dict(node_labels or {})
        self._plugin: CSIPlugin | None = None
        self._server: Any = None
        self._client: CSIClient | None = None
        self._info: dict[str, Any] = {}
        self._started = asyncio.get_event_loop().create_task(self._start())

    async def _start(self) -> None:
        cls = load_volume_plugin(self.kind)
        if cls is None:
            self.socket_path = self.kind.removeprefix(SOCKET_PREFIX)
        else:
            root = private_dir(self.root_dir)
            ctx = CSIContext(
                node_name=self.node_name,
                root_dir=str(root),
                options=self.options,
                node_labels=self.node_labels,
            )
            plugin = cls(ctx)
            self._server = await serve(plugin, self.socket_path)
            self._plugin = plugin
        client = CSIClient(self.socket_path)
        try:
            info = await client.wait_ready(timeout=60)
            try:
                node = await client.node_get_info()
                node_id, topology = node.node_id, dict(node.accessible_topology.segments)
            except CSIError as e:  # a controller-only driver has no Node service
                if e.code != grpc.StatusCode.UNIMPLEMENTED:
                    raise
                node_id, topology = "", {}
        except BaseException:
            await client.close()
            await self.stop()  # a plugin that never answered is not left serving beside its retry
            raise
        self._client = client
        self._info = {
            "socket": self.socket_path,
            "driver": info.name,
            "node_id": node_id,
            "topology": topology,
        }
        log.info("volume plugin %s (%s) for %s on %s", info.name, self.kind, self.node_name, self.socket_path)

    async def _serving(self) -> CSIClient:
        """Wait for the plugin; restart it when it failed to start or was stopped."""
        failed = self._started.done() and self._started.exception() is not None
        stopped = self._started.done() and self._client is None
        if failed or stopped:
            self._started = asyncio.get_event_loop().create_task(self._start())
        await asyncio.shield(self._started)
        assert self._client is not None
        return self._client

    async def ready(self) -> dict[str, Any]:
        """``{"socket", "driver", "node_id", "topology"}`` once the plugin answers (GetPluginInfo and
        NodeGetInfo); (re)starts a plugin that failed to start or was stopped."""
        await self._serving()
        return dict(self._info)

    async def call(self, method: str, request: bytes) -> bytes:
        """RPC ``method`` (``"CreateVolume"``) with a serialized request; the serialized response.
        Raises ``CSIError`` with the plugin's code and message."""
        client = await self._serving()
        return await client.call_bytes(method, request)

    async def stop(self, purge: bool = False) -> None:
        """Stop serving (``purge``: the plugin also removes its volumes and state; a socket-only
        driver is left running, it is not ours)."""
        client, self._client = self._client, None
        if client is not None:
            await client.close()
        server, plugin, self._server, self._plugin = self._server, self._plugin, None, None
        if server is not None and plugin is not None:
            await stop_serving(server, plugin, self.socket_path, purge=purge)

    async def shutdown(self, purge: bool = False) -> None:
        """``stop``, under the name ``cluster.node_agents`` stops every node actor by."""
        await self.stop(purge)


def raise_csi_error(e: BaseException) -> None:
    """Re-raise what a failed ``call`` came back as (Ray wraps the plugin's error) as the plain
    ``CSIError``; anything else is left to the caller."""
    cause = getattr(e, "cause", None) or e
    if isinstance(cause, CSIError):
        raise CSIError(cause.code, cause.message) from None


def csi_caller(namespace: str) -> RemoteCSI:
    """``ControllerOptions.csi`` for the cluster in Ray ``namespace``: each call goes to the
    ``csi-<node>`` actor of the node named (found once, looked up again after a failure)."""
    handles: dict[str, Any] = {}

    async def send(node: str, method: str, data: bytes) -> bytes:
        handle = handles.get(node)
        if handle is None:
            name = volume_actor_name(node)
            try:
                handle = ray.get_actor(name, namespace=namespace)
            except ValueError:
                raise CSIError(
                    grpc.StatusCode.UNAVAILABLE,
                    f"node {node!r} has no volume plugin (no actor {name} in Ray namespace {namespace!r}): "
                    "its node agents are not deployed yet, or it left the cluster",
                ) from None
            handles[node] = handle
        try:
            response: bytes = await handle.call.remote(method, data)
        except Exception as e:
            if not isinstance(getattr(e, "cause", None), CSIError):
                handles.pop(node, None)  # the actor may be gone: look it up again next time
            raise
        return response

    return RemoteCSI(send)
