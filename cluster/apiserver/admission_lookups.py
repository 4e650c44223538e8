"""The registry's answers to the admission plugins' lookups (ServiceAccount, LimitRanger,
ResourceQuota, Priority, PodSecurity, NodeRestriction).

Each plugin declares the small Protocol it needs next to itself (``admission.service_account.
ServiceAccountLookup``, ...); ``Registry`` inherits this mixin, so it implements all of them while the
plugins never import the registry. Reads follow Kubernetes' informer-backed plugins: the watch cache
once it has synced (a ServiceAccount it does not hold yet is read live: one created a moment ago may
not have reached it), the store before. Lists answer from the cache, so a namespace without
LimitRanges or quotas costs no store read per create. ResourceQuota reads a namespace's quotas live
when the cache shows any: its charge is a compare-and-swap on the quota's resourceVersion, which must
be the store's current one.
"""

from __future__ import annotations

from typing import Any

from cluster.apiserver.admission.resource_quota import QuotaConflict
from cluster.apiserver.resources import ResourceInfo, lookup
from cluster.apiserver.storage import Conflict, ObjectStore, list_prefix, object_key
from cluster.apiserver.watchcache import WatchCache


def _info(group: str, version: str, plural: str) -> ResourceInfo:
    info = lookup(group, version, plural)
    assert info is not None, plural
    return info


class AdmissionLookups:
    store: ObjectStore
    cache: WatchCache | None

    async def _cached_get(
        self, info: ResourceInfo, namespace: str | None, name: str
    ) -> dict[str, Any] | None:
        key = object_key(info, namespace, name)
        if self.cache is not None:
            cache = self.cache.for_prefix(list_prefix(info, None))
            if cache.revision:
                found = cache.objects.get(key)
                if found is not None:
                    return found
        return await self.store.get(key)

    async def _cached_list(self, info: ResourceInfo, namespace: str | None) -> list[dict[str, Any]]:
        prefix = list_prefix(info, namespace)
        if self.cache is not None:
            cache = self.cache.for_prefix(list_prefix(info, None))
            if cache.revision:
                return [obj for key, obj in cache.objects.items() if key.startswith(prefix)]
        return (await self.store.list(prefix)).items

    async def get_service_account(self, namespace: str, name: str) -> dict[str, Any] | None:
        return await self._cached_get(_info("", "v1", "serviceaccounts"), namespace, name)

    async def limit_ranges(self, namespace: str) -> list[dict[str, Any]]:
        return await self._cached_list(_info("", "v1", "limitranges"), namespace)

    async def priority_classes(self) -> list[dict[str, Any]]:
        return await self._cached_list(_info("scheduling.k8s.io", "v1", "priorityclasses"), None)

    async def resource_quotas(self, namespace: str) -> list[dict[str, Any]]:
        info = _info("", "v1", "resourcequotas")
        if not await self._cached_list(info, namespace):
            return []
        return (await self.store.list(list_prefix(info, namespace))).items

    async def update_quota_status(self, quota: dict[str, Any]) -> dict[str, Any]:
        """Store ``quota`` if its resourceVersion is still the stored one; ``QuotaConflict`` if not."""
        info = _info("", "v1", "resourcequotas")
        meta = quota["metadata"]
        try:
            return await self.store.update(
                object_key(info, meta["namespace"], meta["name"]), quota, int(meta["resourceVersion"])
            )
        except Conflict:
            raise QuotaConflict(meta["name"]) from None

    async def namespaced_objects(
        self, group: str, version: str, plural: str, namespace: str
    ) -> list[dict[str, Any]]:
        """Every object of a kind in ``namespace`` (quota usage when a quota has no status yet)."""
        return (await self.store.list(list_prefix(_info(group, version, plural), namespace))).items
