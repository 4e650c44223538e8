"""A proxy backend wrapper that also announces LoadBalancer IPs (see :mod:`netplugins.proxy.announce`).

``AnnouncingBackend(inner, announcer, client)`` is itself a ``ProxyBackend``: each ``sync`` first
makes the announcer carry the table's LoadBalancer IPs when this node is the owner (lowest Ready
node name, from its own Node informer) or none otherwise, then syncs ``inner`` (the userspace
backend can then listen on an address just added). A change of some Node's readiness re-announces
with the last table's IPs at once, without waiting for the proxier. Announcing and syncing never run
concurrently. An announcement that fails (``ip`` refused) is logged and raised after ``inner`` was
synced, so the proxier retries; ``close(purge)`` closes both (our addresses are withdrawn).

Invariant: no decision is taken before the Node informer's first list (an empty list would make
every node think nobody is Ready and withdraw its announcements).

:func:`extend_backend` is what the proxy actor calls on its backend: it gives a backend that records
Events (the userspace one: ``FailedToBind``) a recorder writing to the API server, and wraps it in
an ``AnnouncingBackend`` (announcing only as root, when ``options["announce"]`` is not false and
the node has an address; the announcer's state file lives in the proxy's directory).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cluster.client.event_recorder import ClientEventWriter, EventRecorder
from cluster.client.informer import Informer
from netplugins.proxy.announce import Announcer, owner
from netplugins.proxy.backend import ProxyBackend
from netplugins.proxy.model import NodeInfo, ServiceTable

log = logging.getLogger("raykube.proxy.announce")

NODES_SYNC_TIMEOUT = 30.0


def is_ready(node: Mapping[str, Any]) -> bool:
    conditions = (node.get("status") or {}).get("conditions") or ()
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def ready_names(nodes: Iterable[Mapping[str, Any]]) -> list[str]:
    return sorted((n.get("metadata") or {}).get("name", "") for n in nodes if is_ready(n))


def lb_ips(table: ServiceTable) -> set[str]:
    return {ip for port, _ in table.values() for ip in port.load_balancer_ips}


class AnnouncingBackend:
    def __init__(
        self,
        inner: ProxyBackend,
        announcer: Announcer | None,
        client: Any,
        *,
        background: Iterable[asyncio.Task[Any]] = (),
    ) -> None:
        """``announcer`` None: pass every call through (and only own ``background``, tasks that
        ``close`` cancels, e.g. an event recorder's)."""
        self.inner = inner
        self.announcer = announcer
        self.nodes = Informer(client, "v1", "nodes")
        self.nodes.add_handler(
            on_add=lambda _n: self._readiness_changed(),
            on_update=self._node_updated,
            on_delete=lambda _n: self._readiness_changed(),
        )
        self._informer: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._last: tuple[set[str], NodeInfo] | None = None
        self._tasks: set[asyncio.Task[Any]] = set(background)

    def status(self) -> dict[str, Any]:
        inner = self.inner.status() if hasattr(self.inner, "status") else {}
        return {**inner, "announcing": sorted(self._last[0]) if self._last and self._owner() else []}

    def _owner(self) -> bool:
        return self._last is not None and owner(ready_names(self.nodes.store.list())) == self._last[1].name

    async def _started(self) -> None:
        if self._informer is None:
            self._informer = asyncio.get_running_loop().create_task(self.nodes.run(), name="announce-nodes")
        if not await self.nodes.wait_synced(NODES_SYNC_TIMEOUT):
            raise TimeoutError("the Node informer did not list in time")

    async def _announce(self) -> None:
        if self._last is None or self.announcer is None:
            return
        ips, node = self._last
        am_owner = owner(ready_names(self.nodes.store.list())) == node.name
        await asyncio.to_thread(self.announcer.sync, ips, am_owner)

    def _node_updated(self, old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
        if is_ready(old) != is_ready(new):
            self._readiness_changed()

    def _readiness_changed(self) -> None:
        if self._last is None:
            return

        async def again() -> None:
            async with self._lock:
                try:
                    await self._announce()
                except Exception as err:  # the next proxier sync retries
                    log.warning("announcing LoadBalancer IPs failed: %s", err)

        task = asyncio.get_running_loop().create_task(again())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def sync(self, table: ServiceTable, node: NodeInfo) -> None:
        if self.announcer is None:
            await self.inner.sync(table, node)
            return
        async with self._lock:
            await self._started()
            self._last = (lb_ips(table), node)
            failure: Exception | None = None
            try:
                await self._announce()
            except Exception as err:
                log.warning("announcing LoadBalancer IPs failed: %s", err)
                failure = err
            await self.inner.sync(table, node)
            if failure is not None:
                raise failure

    async def close(self, purge: bool) -> None:
        for task in [*self._tasks, *([self._informer] if self._informer else [])]:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        async with self._lock:
            try:
                if self.announcer is not None:
                    await asyncio.to_thread(self.announcer.close, purge)
            finally:
                await self.inner.close(purge)


def extend_backend(
    backend: Any, node: NodeInfo, client: Any, root_dir: Path, options: Mapping[str, Any]
) -> AnnouncingBackend:
    """``backend`` with Events recorded (when it has an ``events`` sink) and LoadBalancer IPs
    announced (see the module docstring). Call from the event loop that will run it."""
    background: list[asyncio.Task[Any]] = []
    if hasattr(backend, "events"):
        recorder = EventRecorder(
            ClientEventWriter(client), node.name, lambda: datetime.now(UTC), component="kube-proxy"
        )
        background.append(asyncio.get_running_loop().create_task(recorder.run(), name="proxy-events"))
        backend.events = recorder
    announcer = None
    if os.geteuid() == 0 and options.get("announce", True) and node.ips:
        announcer = Announcer(node.name, node.ips[0], state_path=Path(root_dir) / "announced.json")
    return AnnouncingBackend(backend, announcer, client, background=background)
