"""The watch cache: one store watch per resource feeds every client watch and most lists.

For each resource the cache lists the store once, then follows one store watch from that revision.
It keeps the current objects (for lists) and a window of recent events (for watches resuming from a
resourceVersion). A list is served at the cache's revision after waiting until the cache has seen
the store's current revision, so a client always reads its own writes. A watch from a revision older
than the window gets 410 Expired, as from Kubernetes; the client relists.

Values of encrypted resources are decrypted as they arrive (``storage.ValueTransformers``, looked up
once per resource); one that cannot be (a key missing from the configuration) is logged and left out
of the cache, while a GET of it answers kube's 500 from the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import orjson

from cluster.apiserver.storage import ObjectStore, ValueTransformer, ValueTransformers
from cluster.store.api import StoreAPI
from cluster.store.mvcc import Compacted, EventType, RangeOp, prefix_end

log = logging.getLogger("raykube.apiserver")

WINDOW = 10_000  # events kept per resource for resuming watches


@dataclass(frozen=True, slots=True)
class WatchEvent:
    type: str  # ADDED, MODIFIED, DELETED
    key: str
    revision: int
    obj: dict[str, Any]
    prev: dict[str, Any] | None


class TooOld(Exception):
    def __init__(self, requested: int, oldest: int) -> None:
        super().__init__(f"too old resource version: {requested} ({oldest})")
        self.requested = requested
        self.oldest = oldest


def _decode(value: bytes, revision: int) -> dict[str, Any]:
    obj: dict[str, Any] = orjson.loads(value)
    obj.setdefault("metadata", {})["resourceVersion"] = str(revision)
    return obj


class ResourceCache:
    def __init__(self, client: StoreAPI, prefix: str, values: ValueTransformers | None = None) -> None:
        self.client = client
        self.store = ObjectStore(client, values)
        self.prefix = prefix
        self.values: ValueTransformer | None = values.for_key(prefix) if values is not None else None
        self.objects: dict[str, dict[str, Any]] = {}
        self.revision = 0
        self.events: deque[WatchEvent] = deque(maxlen=WINDOW)
        self.oldest = 0  # watches may resume from any revision >= oldest
        self._changed = asyncio.Condition()
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.subscribers: set[asyncio.Queue[WatchEvent | None]] = set()
        # In-process followers (the RBAC and Node authorizers' indexes): called with each event as
        # it is applied, and with None after a relist (then read ``objects`` afresh). Must not block.
        self.listeners: list[Callable[[WatchEvent | None], None]] = []

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    async def _relist(self) -> int:
        p = self.prefix.encode()
        res = await self.client.range(RangeOp(p, prefix_end(p)))
        if self.values is None:
            self.objects = {kv.key.decode(): _decode(kv.value, kv.mod_revision) for kv in res.kvs}
        else:
            decoded = (
                (kv.key.decode(), self._decrypted(kv.key, kv.value, kv.mod_revision)) for kv in res.kvs
            )
            self.objects = {k: o for k, o in decoded if o is not None}
        self.revision = res.revision
        self.events.clear()
        self.oldest = res.revision
        for q in list(self.subscribers):
            q.put_nowait(None)  # their resume point is gone: make them end with 410
        self.subscribers.clear()
        for listener in self.listeners:
            listener(None)
        return res.revision

    async def _run(self) -> None:
        p = self.prefix.encode()
        while True:
            try:
                rev = await self._relist()
                self._ready.set()
                async with self._changed:
                    self._changed.notify_all()
                async for resp in self.client.watch(p, prefix_end(p), rev + 1, poll_timeout=2.0):
                    self._apply(resp.events, resp.revision)
                    async with self._changed:
                        self._changed.notify_all()
            except asyncio.CancelledError:
                raise
            except Compacted:
                log.warning("watch cache %s: store compacted past us; relisting", self.prefix)
            except Exception:
                log.exception("watch cache %s failed; relisting", self.prefix)
                await asyncio.sleep(0.5)

    def _apply(self, events: Any, revision: int) -> None:
        for ev in events:
            key = ev.kv.key.decode()
            prev = self.objects.get(key)
            if ev.type == EventType.PUT:
                if self.values is None:
                    obj = _decode(ev.kv.value, ev.kv.mod_revision)
                elif (decrypted := self._decrypted(ev.kv.key, ev.kv.value, ev.kv.mod_revision)) is None:
                    continue
                else:
                    obj = decrypted
                self.objects[key] = obj
                we = WatchEvent("ADDED" if prev is None else "MODIFIED", key, ev.kv.mod_revision, obj, prev)
            else:
                if prev is None:
                    continue
                self.objects.pop(key, None)
                gone = dict(prev)
                gone["metadata"] = {**prev.get("metadata", {}), "resourceVersion": str(ev.kv.mod_revision)}
                we = WatchEvent("DELETED", key, ev.kv.mod_revision, gone, prev)
            if len(self.events) == self.events.maxlen:
                self.oldest = self.events[0].revision
            self.events.append(we)
            for q in self.subscribers:
                q.put_nowait(we)
            for listener in self.listeners:
                listener(we)
        self.revision = max(self.revision, revision)

    def _decrypted(self, key: bytes, value: bytes, revision: int) -> dict[str, Any] | None:
        assert self.values is not None
        try:
            return _decode(self.values.from_storage(value, key), revision)
        except Exception as err:
            log.error("watch cache: unable to transform key %r: %s", key.decode(errors="replace"), err)
            return None

    async def wait_ready(self) -> None:
        self.start()
        await self._ready.wait()

    async def wait_for(self, revision: int, timeout: float = 10.0) -> None:
        await self.wait_ready()
        if self.revision >= revision:
            return
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: self.revision >= revision), timeout)

    async def consistent_snapshot(self) -> tuple[list[dict[str, Any]], int]:
        """Objects at a revision at least as new as every write acknowledged before this call."""
        await self.wait_ready()
        current = await self.store.current_revision(self.prefix)
        if self.revision < current:
            # Writes to other resources moved the store's revision. Ask the leader whether any of
            # them touched this prefix; if none did, this cache is complete up to `current` already
            # (a progress notification) and need not wait for its watch's next poll.
            p = self.prefix.encode()
            events, revision = await self.client.progress(p, prefix_end(p), self.revision + 1)
            if not events:
                self.revision = max(self.revision, min(revision, current))
        with contextlib.suppress(TimeoutError):  # serve what we have if the watch lags badly
            await self.wait_for(current)
        return list(self.objects.values()), self.revision

    def snapshot(self) -> tuple[list[dict[str, Any]], int]:
        return list(self.objects.values()), self.revision

    async def watch(
        self, from_revision: int | None, include: Callable[[str], bool]
    ) -> AsyncIterator[WatchEvent]:
        """Events after ``from_revision`` (None: the current state as ADDED events, then changes)."""
        await self.wait_ready()
        q: asyncio.Queue[WatchEvent | None] = asyncio.Queue()
        if from_revision is None:
            initial = [
                WatchEvent("ADDED", k, int(o["metadata"]["resourceVersion"]), o, None)
                for k, o in sorted(self.objects.items())
                if include(k)
            ]
            start = self.revision
        else:
            if from_revision < self.oldest:
                raise TooOld(from_revision, self.oldest)
            initial = [e for e in self.events if e.revision > from_revision and include(e.key)]
            start = max(from_revision, self.events[-1].revision if self.events else self.revision)
        self.subscribers.add(q)
        try:
            for e in initial:
                yield e
            while True:
                ev = await q.get()
                if ev is None:
                    raise TooOld(start, self.oldest)
                if ev.revision > start and include(ev.key):
                    yield ev
        finally:
            self.subscribers.discard(q)


class WatchCache:
    """One ``ResourceCache`` per resource prefix, started on first use."""

    def __init__(self, client: StoreAPI, values: ValueTransformers | None = None) -> None:
        self.client = client
        self.values = values
        self.caches: dict[str, ResourceCache] = {}

    def for_prefix(self, prefix: str) -> ResourceCache:
        cache = self.caches.get(prefix)
        if cache is None:
            cache = self.caches[prefix] = ResourceCache(self.client, prefix, self.values)
            cache.start()
        return cache

    async def stop(self) -> None:
        for c in self.caches.values():
            await c.stop()
