"""The proxier: watches Services and EndpointSlices and keeps a backend in step (kube-proxy's loop).

Role: two informers fill listers; any event only marks the state dirty; one loop turns a dirty
state into ``build_table`` + ``backend.sync``, at most once per ``min_sync_interval`` (a burst of
changes becomes one sync), and retries a failed sync after ``retry_interval`` with the state as it
is then. A periodic ``resync_interval`` sync repairs anything changed behind our back (the backend
rebuilds after its own errors).

Invariants: ``backend.sync`` never runs concurrently; the first sync waits for both informers'
first list, so a starting proxy never programs a half-listed table (which would briefly REJECT
Services whose slices were not listed yet).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from cluster.client.informer import Informer
from cluster.machinery.tasks import cancel_and_wait
from netplugins.proxy.backend import ProxyBackend
from netplugins.proxy.model import NodeInfo, build_table

log = logging.getLogger("raykube.proxy")


class Proxier:
    def __init__(
        self,
        client: Any,
        backend: ProxyBackend,
        node: NodeInfo,
        *,
        min_sync_interval: float = 0.25,
        retry_interval: float = 2.0,
        resync_interval: float = 60.0,
    ) -> None:
        self.client = client
        self.backend = backend
        self.node = node
        self.min_sync_interval = min_sync_interval
        self.retry_interval = retry_interval
        self.resync_interval = resync_interval
        self.services = Informer(client, "v1", "services")
        self.slices = Informer(client, "discovery.k8s.io/v1", "endpointslices")
        self._dirty = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._synced = asyncio.Event()
        self.syncs = 0
        self.last_sync: float | None = None
        self.last_error = ""
        self.service_ports = 0

    async def start(self) -> None:
        """Start watching and syncing (returns at once; ``wait_synced`` waits for the first sync)."""
        for informer in (self.services, self.slices):
            informer.add_handler(
                on_add=lambda _o: self._dirty.set(),
                on_update=lambda _o, _n: self._dirty.set(),
                on_delete=lambda _o: self._dirty.set(),
            )
            self._tasks.append(asyncio.create_task(informer.run()))
        self._tasks.append(asyncio.create_task(self._loop(), name=f"proxier-{self.node.name}"))

    async def wait_synced(self, timeout: float | None = None) -> bool:
        try:
            await asyncio.wait_for(self._synced.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def stop(self) -> None:
        tasks, self._tasks = self._tasks, []
        await cancel_and_wait(tasks)

    def status(self) -> dict[str, Any]:
        return {
            "synced": self._synced.is_set(),
            "syncs": self.syncs,
            "last_sync_age": None if self.last_sync is None else round(time.monotonic() - self.last_sync, 3),
            "last_error": self.last_error,
            "service_ports": self.service_ports,
            **(self.backend.status() if hasattr(self.backend, "status") else {}),
        }

    async def _loop(self) -> None:
        await self.services.wait_synced()
        await self.slices.wait_synced()
        while True:
            self._dirty.clear()
            ok = await self._sync_once()
            if not ok:
                await asyncio.sleep(self.retry_interval)
                continue
            await asyncio.sleep(self.min_sync_interval)  # coalesce a burst into the next sync
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._dirty.wait(), self.resync_interval)

    async def _sync_once(self) -> bool:
        table = build_table(self.services.store.list(), self.slices.store.list())
        try:
            await self.backend.sync(table, self.node)
        except Exception as e:  # log and retry: a proxy loop never dies
            self.last_error = f"{type(e).__name__}: {e}"
            log.warning("service proxy sync failed on %s: %s", self.node.name, self.last_error)
            return False
        self.syncs += 1
        self.service_ports = len(table)
        self.last_sync = time.monotonic()
        self.last_error = ""
        self._synced.set()
        return True
