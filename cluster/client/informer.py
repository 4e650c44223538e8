"""Informer: keeps a :class:`Lister` in step with the API server and tells handlers what changed.

The loop is client-go's reflector + shared informer, collapsed into one task:

1. **list** - a consistent, paginated list replaces the cache. Handlers see the difference as
   client-go delivers it: ``on_add`` for keys new to the cache, ``on_update(old, new)`` for every key
   already cached (even when unchanged), ``on_delete`` with a :class:`DeletedFinalStateUnknown`
   tombstone for cached keys the list no longer has (their delete event was missed);
2. **watch** from the list's resourceVersion: ``ADDED``/``MODIFIED`` update the cache and fire
   ``on_add`` or ``on_update`` depending on whether the key was cached; ``DELETED`` removes it and fires
   ``on_delete`` with the final object; ``BOOKMARK`` only advances the resourceVersion. When the server
   ends the stream, the watch resumes from the last seen resourceVersion without relisting;
3. a watch ``ERROR`` 410 (``Expired``) goes back to 1; other failures retry with capped exponential
   backoff (the watch from the last resourceVersion, the list from scratch if it failed).

With ``resync_seconds`` every cached object is re-delivered as ``on_update(obj, obj)`` periodically,
so level-triggered controllers revisit everything. Handlers run inline on the informer's task and
must only enqueue (e.g. into a :class:`WorkQueue`); a raising handler is logged and skipped. The
cache is updated before handlers run, so a handler's enqueued reconcile sees at least that state.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cluster.client.lister import DeletedFinalStateUnknown, Lister, object_key
from cluster.client.rest import ApiClient, ApiError

log = logging.getLogger(__name__)

AddHandler = Callable[[dict[str, Any]], None]
UpdateHandler = Callable[[dict[str, Any], dict[str, Any]], None]
DeleteHandler = Callable[[dict[str, Any]], None]


@dataclass(frozen=True, slots=True)
class _Handlers:
    on_add: AddHandler | None
    on_update: UpdateHandler | None
    on_delete: DeleteHandler | None


def _resource_version(obj: dict[str, Any]) -> str | None:
    return (obj.get("metadata") or {}).get("resourceVersion")


class Informer:
    def __init__(
        self,
        client: ApiClient,
        group_version: str,
        plural: str,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        resync_seconds: float | None = None,
        watch_timeout_seconds: int = 300,
        backoff_base: float = 0.8,
        backoff_max: float = 30.0,
    ) -> None:
        self._client = client
        self._group_version = group_version
        self._plural = plural
        self._namespace = namespace
        self._label_selector = label_selector
        self._field_selector = field_selector
        self._resync_seconds = resync_seconds
        self._watch_timeout = watch_timeout_seconds
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self._store = Lister()
        self._handlers: list[_Handlers] = []
        self._synced = asyncio.Event()
        self._last_resource_version: str | None = None
        self.lists = 0  # how many full lists this informer did; relists after 410 show up here

    @property
    def store(self) -> Lister:
        return self._store

    @property
    def has_synced(self) -> bool:
        return self._synced.is_set()

    @property
    def last_resource_version(self) -> str | None:
        return self._last_resource_version

    def add_handler(
        self,
        on_add: AddHandler | None = None,
        on_update: UpdateHandler | None = None,
        on_delete: DeleteHandler | None = None,
    ) -> None:
        """Register handlers; objects already cached are replayed to ``on_add`` at once (as
        client-go does for a handler added to a running informer)."""
        handlers = _Handlers(on_add, on_update, on_delete)
        self._handlers.append(handlers)
        if on_add is not None:
            for obj in self._store.list():
                self._call(on_add, obj)

    async def wait_synced(self, timeout: float | None = None) -> bool:
        """True once the first list has filled the cache and been delivered; False on timeout."""
        try:
            await asyncio.wait_for(self._synced.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def run(self) -> None:
        """List and watch forever; cancel the task to stop."""
        resync = None
        if self._resync_seconds:
            resync = asyncio.create_task(self._resync_loop(self._resync_seconds))
        try:
            await self._list_and_watch_forever()
        finally:
            if resync is not None:
                resync.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await resync

    # -- the reflector loop -------------------------------------------------------------------------

    async def _list_and_watch_forever(self) -> None:
        failures = 0
        while True:
            try:
                resource_version = await self._list()
            except ApiError as err:
                failures += 1
                delay = self._backoff(failures)
                log.warning("list %s failed (%s); retrying in %.2fs", self._plural, err, delay)
                await asyncio.sleep(delay)
                continue
            failures = 0
            await self._watch_until_expired(resource_version)

    async def _watch_until_expired(self, resource_version: str) -> None:
        """Watch (resuming after stream ends and transient errors) until the server says 410."""
        failures = 0
        while True:
            try:
                async for event in self._client.watch(
                    self._group_version,
                    self._plural,
                    self._namespace,
                    resource_version=resource_version,
                    label_selector=self._label_selector,
                    field_selector=self._field_selector,
                    timeout_seconds=self._watch_timeout,
                ):
                    failures = 0
                    resource_version = self._apply(event) or resource_version
            except ApiError as err:
                if err.expired:
                    log.info("watch %s expired at %s; relisting", self._plural, resource_version)
                    return
                failures += 1
                delay = self._backoff(failures)
                log.warning("watch %s failed (%s); retrying in %.2fs", self._plural, err, delay)
                await asyncio.sleep(delay)

    def _backoff(self, failures: int) -> float:
        return min(self._backoff_base * 2.0 ** min(failures - 1, 30), self._backoff_max)

    async def _list(self) -> str:
        result = await self._client.list_all(
            self._group_version,
            self._plural,
            self._namespace,
            label_selector=self._label_selector,
            field_selector=self._field_selector,
        )
        self.lists += 1
        resource_version = (result.get("metadata") or {}).get("resourceVersion") or ""
        self._replace(result.get("items") or [], resource_version)
        self._synced.set()
        return resource_version

    # -- applying changes (synchronous: no await between a cache change and its handlers) ------------

    def _replace(self, items: list[dict[str, Any]], resource_version: str) -> None:
        old_items = self._store.snapshot()
        self._store.replace(items)
        self._last_resource_version = resource_version
        seen = set()
        for obj in items:
            key = object_key(obj)
            seen.add(key)
            old = old_items.get(key)
            if old is None:
                self._notify_add(obj)
            else:
                self._notify_update(old, obj)
        for key, old in old_items.items():
            if key not in seen:
                self._notify_delete(DeletedFinalStateUnknown(key, old))

    def _apply(self, event: dict[str, Any]) -> str | None:
        """Apply one watch event; return the resourceVersion it carries."""
        kind, obj = event.get("type"), event.get("object") or {}
        resource_version = _resource_version(obj)
        if kind in ("ADDED", "MODIFIED"):
            old = self._store.upsert(obj)
            if old is None:
                self._notify_add(obj)
            else:
                self._notify_update(old, obj)
        elif kind == "DELETED":
            self._store.remove(object_key(obj))
            self._notify_delete(obj)
        elif kind != "BOOKMARK":
            log.warning("watch %s: ignoring event of type %r", self._plural, kind)
            return None
        if resource_version:
            self._last_resource_version = resource_version
        return resource_version

    async def _resync_loop(self, period: float) -> None:
        while True:
            await asyncio.sleep(period)
            if not self.has_synced:
                continue
            for obj in self._store.list():
                self._notify_update(obj, obj)

    def _notify_add(self, obj: dict[str, Any]) -> None:
        for h in self._handlers:
            if h.on_add is not None:
                self._call(h.on_add, obj)

    def _notify_update(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        for h in self._handlers:
            if h.on_update is not None:
                self._call(h.on_update, old, new)

    def _notify_delete(self, obj: dict[str, Any]) -> None:
        for h in self._handlers:
            if h.on_delete is not None:
                self._call(h.on_delete, obj)

    def _call(self, fn: Callable[..., None], *args: dict[str, Any]) -> None:
        try:
            fn(*args)
        except Exception:
            log.exception("informer %s: handler %r raised", self._plural, fn)
