"""The objects authentication looks up on every request (ServiceAccounts, pods, Secrets), read the
way kube's authenticators read their informers: from the API server's watch cache, in memory.

A miss in the cache is read from the store before it counts as "not found" (an object created a
moment ago may not have reached the cache), so a token is never refused for cache lag; an object
deleted a moment ago may still be seen for the few milliseconds the watch takes to deliver the
deletion, as in Kubernetes.
"""

from __future__ import annotations

from typing import Any, Protocol

from cluster.apiserver.resources import ResourceInfo, lookup
from cluster.apiserver.storage import ObjectStore, list_prefix, object_key
from cluster.apiserver.watchcache import WatchCache


class ObjectGetter(Protocol):
    """``get("pods", namespace, name)`` → the object or None (core/v1 resources only)."""

    async def get(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None: ...


def _core(plural: str) -> ResourceInfo:
    info = lookup("", "v1", plural)
    assert info is not None, plural
    return info


class CachedObjects:
    """Reads through the watch cache (started for a resource on its first lookup), the store on a miss."""

    def __init__(self, cache: WatchCache | None, store: ObjectStore) -> None:
        self.cache = cache
        self.store = store
        self._infos = {p: _core(p) for p in ("pods", "secrets", "serviceaccounts")}

    async def get(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        info = self._infos.get(plural) or _core(plural)
        key = object_key(info, namespace, name)
        if self.cache is not None:
            cache = self.cache.for_prefix(list_prefix(info, None))
            if cache.revision:
                cached = cache.objects.get(key)
                if cached is not None:
                    return cached
        return await self.store.get(key)
