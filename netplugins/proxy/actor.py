"""The node's service proxy as a Ray actor (``proxy-<node>``): a thin shell around ``Proxier``.

``deploy_node_agents`` starts one per Ray node, pinned there, after the node's network actor, with
the node's kubeconfig. ``mode`` picks the backend: ``nftables`` (``NftablesBackend``, table
``options["table"]``, masquerade decisions from ``options["cluster_cidr"]``; falls back to
``iptables`` — ``IptablesBackend``, chains named from the same table name — when the node has no
``nft`` binary), ``iptables`` explicitly, or ``userspace``
(``netplugins.proxy.userspace.UserspaceBackend(options)``, imported only when asked for).
``ready()`` waits for the first sync; ``shutdown(purge)`` stops it (``purge``: the backend removes
everything it programmed, for ``raykube down --purge``). Restarts forever: a restarted proxy
rebuilds its table from the API.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from pathlib import Path
from typing import Any

import ray

from cluster.client.rest import ApiClient
from cluster.machinery.files import private_dir, write_private
from netplugins.proxy.announcing import extend_backend
from netplugins.proxy.ipt_backend import IptablesBackend
from netplugins.proxy.iptables import IptOptions
from netplugins.proxy.model import NodeInfo
from netplugins.proxy.nft_backend import NftablesBackend
from netplugins.proxy.nftables import NftOptions
from netplugins.proxy.proxier import Proxier
from netplugins.proxy.userspace import UserspaceBackend

log = logging.getLogger("raykube.proxy")

ACTOR_PREFIX = "proxy-"
MODES = ("nftables", "iptables", "userspace")


def proxy_actor_name(node_name: str) -> str:
    return f"{ACTOR_PREFIX}{node_name}"


def ipv4_cidrs(value: str | None) -> str | None:
    """``--cluster-cidr`` (comma-separated, maybe dual-stack) as an nft IPv4 match: one CIDR, an
    anonymous set of several, or None."""
    v4 = [c.strip() for c in (value or "").split(",") if c.strip() and ":" not in c]
    if len(v4) > 1:
        return "{ " + ", ".join(v4) + " }"
    return v4[0] if v4 else None


def make_backend(mode: str, options: dict[str, Any]) -> Any:
    """The backend for ``mode``; a clear error for an unknown mode or a missing userspace backend."""
    if mode == "nftables" and shutil.which("nft") is None:
        log.warning("service proxy: no nft binary on this node, falling back to the iptables backend")
        mode = "iptables"
    if mode == "iptables":
        # iptables cannot negate a list of sources: the first IPv4 cluster CIDR
        v4 = [c.strip() for c in (options.get("cluster_cidr") or "").split(",") if c.strip() and ":" not in c]
        return IptablesBackend(IptOptions(table=options["table"], cluster_cidr=v4[0] if v4 else None))
    if mode == "nftables":
        return NftablesBackend(
            NftOptions(table=options["table"], cluster_cidr=ipv4_cidrs(options.get("cluster_cidr")))
        )
    if mode == "userspace":
        return UserspaceBackend(options)
    raise ValueError(f"unknown service proxy mode {mode!r} (one of {', '.join(MODES)})")


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=0, max_concurrency=1000)  # type: ignore[call-overload]
class ProxyActor:
    """Runs one node's service proxy; see the module docstring."""

    def __init__(
        self,
        node_name: str,
        root_dir: str,
        kubeconfig_text: str,
        node_ips: list[str],
        options: dict[str, Any],
        mode: str = "nftables",
    ) -> None:
        logging.basicConfig(level=logging.INFO)
        self.node = NodeInfo(node_name, tuple(node_ips))
        self.root_dir = root_dir
        self.kubeconfig_text = kubeconfig_text
        self.proxy_options = dict(options)
        self.mode = mode
        self._proxier: Proxier | None = None
        self._client: Any = None
        self._started = asyncio.get_event_loop().create_task(self._start())

    async def _start(self) -> None:
        backend = make_backend(self.mode, self.proxy_options)
        root = private_dir(self.root_dir)
        kubeconfig = write_private(root / "kubeconfig", self.kubeconfig_text)
        self._client = ApiClient.from_kubeconfig(str(kubeconfig))
        # Events from the backend (FailedToBind) and, as root, LoadBalancer IPs announced by the owner
        backend = extend_backend(backend, self.node, self._client, root, self.proxy_options)
        self._proxier = Proxier(
            self._client,
            backend,
            self.node,
            min_sync_interval=float(self.proxy_options.get("min_sync_interval", 0.25)),
        )
        await self._proxier.start()
        log.info("service proxy (%s) for %s started", self.mode, self.node.name)

    async def ready(self, timeout: float = 60.0) -> dict[str, Any]:
        """``{"mode", "node"}`` once the first sync is done; restarts a proxy that failed to start or
        was shut down. Raises if the first sync did not happen within ``timeout``."""
        failed = self._started.done() and self._started.exception() is not None
        if failed or (self._started.done() and self._proxier is None):
            self._started = asyncio.get_event_loop().create_task(self._start())
        await asyncio.shield(self._started)
        assert self._proxier is not None
        if not await self._proxier.wait_synced(timeout):
            raise TimeoutError(f"service proxy on {self.node.name}: no sync ({self._proxier.last_error})")
        return {"mode": self.mode, "node": self.node.name}

    async def status(self) -> dict[str, Any]:
        """Mode, sync counters, the last error and the backend's own status."""
        if self._proxier is None:
            error = self._started.exception() if self._started.done() else None
            return {"mode": self.mode, "ready": False, "message": repr(error) if error else "starting"}
        info = self._proxier.status()
        return {"mode": self.mode, "ready": bool(info["synced"]), "message": info["last_error"], **info}

    async def shutdown(self, purge: bool = False) -> None:
        """Stop watching; ``purge``: the backend removes what it programmed (our nft table)."""
        proxier, self._proxier = self._proxier, None
        if proxier is not None:
            await proxier.stop()
            await proxier.backend.close(purge)
        if self._client is not None:
            await self._client.close()
            self._client = None
        if purge:
            Path(self.root_dir, "kubeconfig").unlink(missing_ok=True)
