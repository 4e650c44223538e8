"""The node's network plugin as a Ray actor (``network-<node>``): a thin shell around ``serve``.

``deploy_node_agents`` starts one per Ray node, pinned there, before the node's runtime actor, and
hands its socket to the runtime (the ``process`` runtime calls it on RunPodSandbox/StopPodSandbox).
The actor loads the plugin class (``--network NAME|pkg.mod:Class``, ``load_plugin``), writes the
node's kubeconfig (``system:node:<name>``, as the node agent's) privately into its directory, and
serves the plugin on a unix socket. ``ready()`` says where and what; ``shutdown(purge)`` stops it
(``purge``: the plugin also removes its node-wide state, for ``raykube down --purge``).

Like the runtime actor it restarts forever (``max_restarts=-1``): a restarted plugin serves again
on the same socket with its state from ``root_dir``.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import ray

from cluster.machinery.files import private_dir, write_private
from netplugins.cni.plugin import PluginContext, load_plugin
from netplugins.cni.server import NetworkServer, serve
from netplugins.cni.types import CNI_VERSION

log = logging.getLogger("raykube.cni")

ACTOR_PREFIX = "network-"


def network_actor_name(node_name: str) -> str:
    return f"{ACTOR_PREFIX}{node_name}"


def network_plugins(namespace: str) -> list[tuple[str, str, str]]:
    """(node, plugin name, readiness) of every node's network plugin in ``namespace``, for
    ``raykube status``; readiness is ``ready`` or ``NOT ready: <why>``."""
    rows = []
    for entry in ray.util.list_named_actors(all_namespaces=True):
        name = entry["name"]
        if entry["namespace"] != namespace or not name.startswith(ACTOR_PREFIX):
            continue
        try:
            info = ray.get(ray.get_actor(name, namespace=namespace).status.remote(), timeout=15)
            readiness = "ready" if info["ready"] else f"NOT ready: {info['message']}"
            plugin = str(info["plugin"]) + (" (node network)" if info["node_network"] else "")
        except Exception as e:  # a plugin that is down is reported, not fatal to `raykube status`
            plugin, readiness = "?", f"unknown ({type(e).__name__})"
        rows.append((name.removeprefix(ACTOR_PREFIX), plugin, readiness))
    return sorted(rows)


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=0, max_concurrency=1000)  # type: ignore[call-overload]
class NetworkActor:
    """Serves one node's network plugin; see the module docstring."""

    def __init__(
        self,
        spec: str,
        node_name: str,
        root_dir: str,
        socket_path: str,
        node_ips: list[str],
        options: dict[str, Any],
        kubeconfig_text: str | None,
    ) -> None:
        logging.basicConfig(level=logging.INFO)
        self.spec = spec
        self.node_name = node_name
        self.root_dir = root_dir
        self.socket_path = socket_path
        self.node_ips = tuple(node_ips)
        self.options = dict(options)
        self.kubeconfig_text = kubeconfig_text
        self._server: NetworkServer | None = None
        self._started = asyncio.get_event_loop().create_task(self._start())

    async def _start(self) -> None:
        cls = load_plugin(self.spec)
        root = private_dir(self.root_dir)
        kubeconfig = None
        if self.kubeconfig_text is not None:
            kubeconfig = str(write_private(root / "kubeconfig", self.kubeconfig_text))
        ctx = PluginContext(
            node_name=self.node_name,
            root_dir=str(root / "state"),
            node_ips=self.node_ips,
            options=self.options,
            kubeconfig=kubeconfig,
        )
        private_dir(ctx.root_dir)
        self._server = await serve(cls(ctx), self.socket_path)
        log.info(
            "network plugin %s for %s serving on %s", cls.NAME or self.spec, self.node_name, self.socket_path
        )

    async def ready(self) -> dict[str, Any]:
        """``{"socket", "plugin", "node_network", "version"}`` once serving; (re)starts a plugin that
        failed to start or was shut down (so `raykube up` revives it)."""
        failed = self._started.done() and self._started.exception() is not None
        stopped = self._started.done() and self._server is None
        if failed or stopped:
            self._started = asyncio.get_event_loop().create_task(self._start())
        await asyncio.shield(self._started)
        assert self._server is not None
        plugin = self._server.plugin
        return {
            "socket": self.socket_path,
            "plugin": plugin.NAME or type(plugin).__name__,
            "node_network": plugin.NODE_NETWORK,
            "version": CNI_VERSION,
        }

    async def status(self) -> dict[str, Any]:
        """``ready()`` plus the plugin's STATUS: ``ready`` (bool) and ``message`` (why not)."""
        info = await self.ready()
        assert self._server is not None
        try:
            await self._server.plugin.status()
            return {**info, "ready": True, "message": ""}
        except Exception as e:  # a CNIError, or a plugin bug: either way not ready
            return {**info, "ready": False, "message": getattr(e, "msg", str(e))}

    async def shutdown(self, purge: bool = False) -> None:
        """Stop serving and stop the plugin (``purge``: it also removes its node-wide state)."""
        server, self._server = self._server, None
        if server is not None:
            await server.stop(purge=purge)
        if purge:
            Path(self.root_dir, "kubeconfig").unlink(missing_ok=True)
