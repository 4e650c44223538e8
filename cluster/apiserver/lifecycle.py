"""Deletion semantics that outlive one request: namespace termination and owner-based garbage collection.

Kubernetes runs these as the namespace controller and the garbage collector in
kube-controller-manager; until raykube's controller manager exists they run here, as background
tasks of the API server, reading the watch cache and writing through the registry (so they obey the
same validation, finalizer and grace-period rules as any client).

* A terminating namespace (``deletionTimestamp`` set, ``spec.finalizers`` holding ``kubernetes``):
  every namespaced object in it is deleted; once none is left the ``kubernetes`` finalizer is removed
  and the namespace goes.
* Owner references: a dependent whose owners are all gone is deleted (propagation ``Background``).
  An owner deleted with ``Foreground`` keeps a ``foregroundDeletion`` finalizer until its dependents
  are gone; with ``Orphan`` its dependents lose their reference to it, then the ``orphan`` finalizer
  is removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
from typing import Any

from cluster.apiserver.errors import StatusError
from cluster.apiserver.registry import Registry
from cluster.apiserver.resources import RESOURCES, ResourceInfo, by_kind
from cluster.apiserver.storage import list_prefix
from cluster.apiserver.watchcache import WatchCache
from cluster.machinery.meta import object_meta

log = logging.getLogger("raykube.apiserver")

PASS_SECONDS = 1.0
# Kinds that can own or be owned and whose caches the collector follows.
STORED = [r for r in RESOURCES if "list" in r.verbs and "create" in r.verbs]
NAMESPACED = [r for r in STORED if r.namespaced]


class Lifecycle:
    def __init__(self, registry: Registry, cache: WatchCache) -> None:
        self.registry = registry
        self.cache = cache

    def _objects(self, info: ResourceInfo) -> list[dict[str, Any]]:
        objs, _ = self.cache.for_prefix(list_prefix(info, None)).snapshot()
        return objs

    async def _delete(self, info: ResourceInfo, obj: dict[str, Any], policy: str = "Background") -> None:
        meta = object_meta(obj)
        with contextlib.suppress(StatusError):
            await self.registry.delete(
                info,
                meta.get("namespace"),
                meta["name"],
                {"propagationPolicy": policy, "preconditions": {"uid": meta.get("uid")}},
            )

    async def _update(self, info: ResourceInfo, obj: dict[str, Any]) -> None:
        meta = object_meta(obj)
        with contextlib.suppress(StatusError):
            await self.registry.update(info, meta.get("namespace"), meta["name"], obj)

    # ------------------------------------------------------------------ namespaces

    async def terminate_namespaces(self) -> None:
        ns_info = next(r for r in STORED if r.plural == "namespaces" and r.group == "")
        for ns in self._objects(ns_info):
            meta = object_meta(ns)
            if not meta.get("deletionTimestamp") or "kubernetes" not in (
                ns.get("spec", {}).get("finalizers") or []
            ):
                continue
            name = meta["name"]
            remaining = 0
            for info in NAMESPACED:
                for obj in self._objects(info):
                    if object_meta(obj).get("namespace") != name:
                        continue
                    remaining += 1
                    if not object_meta(obj).get("deletionTimestamp"):
                        await self._delete(info, obj)
            if remaining == 0:
                done = copy.deepcopy(ns)
                done["spec"]["finalizers"] = [f for f in done["spec"]["finalizers"] if f != "kubernetes"]
                await self._update(ns_info, done)
                log.info("namespace %s finalized", name)

    # ------------------------------------------------------------------ owner references

    async def collect_garbage(self) -> None:
        by_uid: dict[str, tuple[ResourceInfo, dict[str, Any]]] = {}
        everything: list[tuple[ResourceInfo, dict[str, Any]]] = []
        for info in STORED:
            for obj in self._objects(info):
                uid = object_meta(obj).get("uid")
                if uid:
                    by_uid[uid] = (info, obj)
                everything.append((info, obj))
        dependents: dict[str, list[tuple[ResourceInfo, dict[str, Any]]]] = {}
        for info, obj in everything:
            refs = object_meta(obj).get("ownerReferences") or []
            if not refs:
                continue
            for ref in refs:
                dependents.setdefault(ref.get("uid", ""), []).append((info, obj))
            owners_alive = [r for r in refs if r.get("uid") in by_uid]
            if (
                not owners_alive
                and not object_meta(obj).get("deletionTimestamp")
                and await self._owners_really_gone(obj, refs)
            ):
                await self._delete(info, obj)
        for uid, (info, owner) in by_uid.items():
            meta = object_meta(owner)
            if not meta.get("deletionTimestamp"):
                continue
            finalizers = list(meta.get("finalizers") or [])
            deps = dependents.get(uid, [])
            if "orphan" in finalizers:
                for dinfo, dep in deps:
                    orphaned = copy.deepcopy(dep)
                    orphaned["metadata"]["ownerReferences"] = [
                        r for r in orphaned["metadata"].get("ownerReferences", []) if r.get("uid") != uid
                    ]
                    await self._update(dinfo, orphaned)
                if not deps:
                    await self._drop_finalizer(info, owner, "orphan")
            elif "foregroundDeletion" in finalizers:
                for dinfo, dep in deps:
                    if not object_meta(dep).get("deletionTimestamp"):
                        await self._delete(dinfo, dep, "Foreground")
                if not deps:
                    await self._drop_finalizer(info, owner, "foregroundDeletion")

    async def _owners_really_gone(self, obj: dict[str, Any], refs: list[dict[str, Any]]) -> bool:
        """Check the store, not only the cache: the owner may have been created a moment ago."""
        ns = object_meta(obj).get("namespace")
        for ref in refs:
            info = by_kind(ref.get("apiVersion", ""), ref.get("kind", ""))
            if info is None:
                return False  # an owner kind we do not serve: never collect on a guess
            live = await self.registry.store.get(
                self.registry.key(info, ns if info.namespaced else None, ref.get("name", ""))
            )
            if live is not None and object_meta(live).get("uid") == ref.get("uid"):
                return False
        return True

    async def _drop_finalizer(self, info: ResourceInfo, owner: dict[str, Any], finalizer: str) -> None:
        updated = copy.deepcopy(owner)
        updated["metadata"]["finalizers"] = [
            f for f in updated["metadata"].get("finalizers", []) if f != finalizer
        ]
        await self._update(info, updated)

    async def run(self) -> None:
        for info in STORED:
            self.cache.for_prefix(list_prefix(info, None))
        while True:
            try:
                await self.terminate_namespaces()
                await self.collect_garbage()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("lifecycle pass failed")
            await asyncio.sleep(PASS_SECONDS)


def start_background(registry: Registry, cache: WatchCache) -> list[asyncio.Task[None]]:
    return [asyncio.get_running_loop().create_task(Lifecycle(registry, cache).run())]
