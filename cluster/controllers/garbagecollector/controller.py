"""The garbage collector controller (kube-controller-manager's ``garbagecollector``, event source
``garbage-collector-controller``): deletes objects whose owners are gone, and carries out the
``Foreground`` and ``Orphan`` propagation policies the API server records as finalizers.

``prepare`` discovers every resource that can be listed, watched and deleted (events excepted, as
kube ignores them) and watches each through the shared informers; their events feed the uid-keyed
``Graph`` (``graph.py``) and enqueue the uids it says to look at. ``reconcile(uid)``:

* an owner being deleted with the ``orphan`` finalizer: each dependent loses its reference to it
  (a merge patch of ``ownerReferences`` with the dependent's resourceVersion), then the finalizer goes;
* an owner being deleted with ``foregroundDeletion``: its dependents not yet being deleted are
  enqueued (each is deleted because its owner waits for it); once no dependent blocks it
  (``blockOwnerDeletion``), the finalizer goes and the API server removes the owner;
* a dependent: when the graph says every owner exists and none waits, nothing (no request). Else the
  dependent and each owner are read live (the cache may lag: an owner created a moment ago is not in
  it yet), and ``dependent_action`` decides. Deletes carry the dependent's uid as a precondition.

An owner kind the discovery does not know is never taken as gone: the key is retried with backoff.
Not done (as kube): re-discovery of resources added later (CRDs), cycle detection among
foreground deletions.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any, ClassVar

from cluster.client.errors import ApiError
from cluster.controllers.discovery import APIResource, RESTMapper, discover
from cluster.controllers.garbagecollector.graph import (
    FOREGROUND,
    ORPHAN,
    Delete,
    Graph,
    Keep,
    Node,
    OwnerRef,
    OwnerState,
    PatchOwners,
    dependent_action,
    owner_refs,
    owner_state,
    patched_owner_references,
    without_owner,
)
from cluster.controllers.runtime import Controller, ControllerContext

log = logging.getLogger("raykube.controllers.garbagecollector")

IGNORED = frozenset({("v1", "events"), ("events.k8s.io/v1", "events")})
DISCOVERY_ATTEMPTS = 30


class UnknownOwnerKind(Exception):
    """An ownerReference names a kind discovery does not know: never collect on a guess."""


def collectable(resource: APIResource) -> bool:
    return (
        resource.supports("list", "watch", "delete")
        and (resource.group_version, resource.plural) not in IGNORED
    )


class GarbageCollector(Controller):
    NAME: ClassVar[str] = "garbagecollector"
    COMPONENT: ClassVar[str] = "garbage-collector-controller"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.graph = Graph()
        self.mapper = RESTMapper(())
        self.resources: list[APIResource] = []

    async def prepare(self) -> None:
        for attempt in range(DISCOVERY_ATTEMPTS):
            try:
                found = await discover(self.client)
                break
            except ApiError as err:
                if attempt == DISCOVERY_ATTEMPTS - 1:
                    raise
                log.warning("discovery failed (%s); retrying", err)
                await asyncio.sleep(1.0)
        self.mapper = RESTMapper(found.resources)
        self.resources = [r for r in found.resources if collectable(r)]
        for resource in self.resources:
            self._watch(resource)
        log.info("garbage collector watches %d resources", len(self.resources))

    def _watch(self, resource: APIResource) -> None:
        def added(obj: dict[str, Any]) -> None:
            self._enqueue_all(self.graph.observe(Node.of(resource, obj)))

        def updated(old: dict[str, Any], new: dict[str, Any]) -> None:
            added(new)

        def deleted(obj: dict[str, Any]) -> None:
            uid = (obj.get("metadata") or {}).get("uid")
            if uid:
                self._enqueue_all(self.graph.forget(str(uid)))

        self.watch(
            resource.group_version, resource.plural, on_add=added, on_update=updated, on_delete=deleted
        )

    def _enqueue_all(self, uids: set[str]) -> None:
        for uid in uids:
            self.enqueue(uid)

    # -- reconcile --------------------------------------------------------------------------------

    async def reconcile(self, key: str) -> float | None:
        node = self.graph.get(key)
        if node is None:
            return None
        if node.deleting:
            if node.orphaning:
                await self._orphan_dependents(node)
            elif node.deleting_dependents:
                await self._delete_dependents(node)
            return None
        if not node.owners or self._owners_fine_in_cache(node):
            return None
        await self._attempt_to_delete(node)
        return None

    def _owners_fine_in_cache(self, node: Node) -> bool:
        for ref in node.owners:
            owner = self.graph.get(ref.uid)
            if owner is None or owner.deleting_dependents:
                return False
        return True

    async def _orphan_dependents(self, owner: Node) -> None:
        for dependent in self.graph.dependents(owner.uid):
            live = await self._get(dependent.resource, dependent.namespace, dependent.name)
            if live is None or live["metadata"].get("uid") != dependent.uid:
                continue
            refs = live["metadata"].get("ownerReferences") or []
            remaining = without_owner(refs, owner.uid)
            if len(remaining) == len(refs):
                continue
            await self._patch_owner_references(dependent, live, remaining)
        await self._remove_finalizer(owner, ORPHAN)

    async def _delete_dependents(self, owner: Node) -> None:
        if not self.graph.blocking_dependents(owner.uid):
            await self._remove_finalizer(owner, FOREGROUND)
            return
        for dependent in self.graph.dependents(owner.uid):
            if not dependent.deleting or dependent.deleting_dependents:
                self.enqueue(dependent.uid)

    async def _attempt_to_delete(self, node: Node) -> None:
        live = await self._get(node.resource, node.namespace, node.name)
        if live is None or live["metadata"].get("uid") != node.uid:
            return  # gone, or another object of that name: its own events bring it here
        refs = owner_refs(live)
        states = {ref.uid: await self._owner_state(ref, node) for ref in refs}
        action = dependent_action(
            refs,
            states,
            has_dependents=bool(self.graph.dependents(node.uid)),
            finalizers=tuple(live["metadata"].get("finalizers") or ()),
        )
        if isinstance(action, Keep):
            return
        if isinstance(action, PatchOwners):
            new_refs = patched_owner_references(
                live["metadata"].get("ownerReferences") or [], action.remove, action.unblock
            )
            await self._patch_owner_references(node, live, new_refs)
            return
        assert isinstance(action, Delete)
        log.info(
            "deleting %s %s (owners gone or waiting), propagation %s",
            node.resource,
            node.key(),
            action.policy,
        )
        try:
            await self.client.delete(
                node.resource.group_version,
                node.resource.plural,
                node.name,
                node.namespace,
                propagation_policy=action.policy,
                preconditions={"uid": node.uid},
            )
        except ApiError as err:
            if err.status not in (404, 409):
                raise

    async def _owner_state(self, ref: OwnerRef, dependent: Node) -> OwnerState:
        resource = self.mapper.resource_for(ref.api_version, ref.kind)
        if resource is None:
            raise UnknownOwnerKind(
                f"{dependent.key()}: owner kind {ref.api_version}/{ref.kind} is not served"
            )
        namespace = dependent.namespace if resource.namespaced else None
        if resource.namespaced and dependent.namespace is None:
            # A cluster-scoped object cannot be owned by a namespaced one: the reference resolves to
            # nothing (kube reports it and treats the owner as absent).
            self.recorder.event(
                {"apiVersion": dependent.resource.group_version, "kind": dependent.resource.kind,
                 "metadata": {"name": dependent.name, "uid": dependent.uid}},
                "Warning",
                "OwnerRefInvalidNamespace",
                f"ownerRef [{ref.api_version}/{ref.kind}, namespace: , name: {ref.name}, uid: {ref.uid}] "
                "does not exist in namespace \"\"",
            )  # fmt: skip
            return OwnerState.ABSENT
        return owner_state(ref, await self._get(resource, namespace, ref.name))

    # -- writes -----------------------------------------------------------------------------------

    async def _get(self, resource: APIResource, namespace: str | None, name: str) -> dict[str, Any] | None:
        try:
            return await self.client.get(resource.group_version, resource.plural, name, namespace)
        except ApiError as err:
            if err.status == 404:
                return None
            raise

    async def _patch_owner_references(
        self, node: Node, live: Mapping[str, Any], refs: list[dict[str, Any]]
    ) -> None:
        """Replace the owner references of what ``live`` showed, guarded by its resourceVersion."""
        await self._guarded_patch(node, live, "ownerReferences", refs)

    async def _remove_finalizer(self, node: Node, finalizer: str) -> None:
        live = await self._get(node.resource, node.namespace, node.name)
        if live is None or live["metadata"].get("uid") != node.uid:
            return
        finalizers = list(live["metadata"].get("finalizers") or [])
        if finalizer not in finalizers:
            return
        await self._guarded_patch(node, live, "finalizers", [f for f in finalizers if f != finalizer])
        log.info("removed finalizer %s from %s %s", finalizer, node.resource, node.key())

    async def _guarded_patch(self, node: Node, live: Mapping[str, Any], field: str, value: list[Any]) -> None:
        """A JSON patch setting (or, when empty, removing) ``metadata.<field>`` that first tests the
        resourceVersion read: a concurrent write makes it fail (422/409), and the key is retried
        from a fresh read instead of overwriting that write."""
        meta = live.get("metadata") or {}
        ops: list[dict[str, Any]] = [
            {"op": "test", "path": "/metadata/resourceVersion", "value": meta.get("resourceVersion")}
        ]
        if value:
            ops.append({"op": "add", "path": f"/metadata/{field}", "value": value})
        elif field in meta:
            ops.append({"op": "remove", "path": f"/metadata/{field}"})
        try:
            await self.client.patch(
                node.resource.group_version,
                node.resource.plural,
                node.name,
                ops,
                node.namespace,
                patch_type="json",
            )
        except ApiError as err:
            if err.status != 404:
                raise
