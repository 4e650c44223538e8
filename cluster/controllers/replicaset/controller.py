"""The ReplicaSet controller's shell: informer handlers, expectations, and the API calls of a sync.

Handlers only enqueue (and record observations): a ReplicaSet event enqueues that ReplicaSet; a pod
event enqueues the ReplicaSet its controller reference names (if that resolves, by name and UID, to
a ReplicaSet in the cache) or, for an orphan, every ReplicaSet of its namespace whose selector matches
it, so one of them can adopt it. Creations and deletions are observed on the pod events before the
sync runs, so :class:`~cluster.controllers.expectations.Expectations` keep a lagging cache from
causing a second round of creates or deletes: a sync only creates or deletes pods once everything the
previous one asked for has been seen (or five minutes have passed).

A sync (:meth:`ReplicaSetController.reconcile`), as kube's ``syncReplicaSet``:

1. claim: adopt matching orphans (after re-reading the ReplicaSet from the API server to be sure it
   is not being deleted) and release pods that stopped matching, both by JSON PATCH guarded by the
   pod's UID;
2. manage (only when expectations are met and the ReplicaSet is not being deleted): create the
   missing pods from the template in slow-start batches (1, 2, 4, ...; the first failing batch ends
   the round) or delete the surplus in ranking order, at most 500 either way;
3. write the status through the ``status`` subresource when it changed, then raise if managing
   failed (the work queue retries with backoff) or return when to look again for ``minReadySeconds``.

Events as kube's: ``SuccessfulCreate`` "Created pod: NAME", ``FailedCreate`` (Warning) "Error creating:
TEXT", ``SuccessfulDelete`` "Deleted pod: NAME", ``FailedDelete`` (Warning) "Error deleting: TEXT".
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from cluster.client.errors import ApiError
from cluster.client.lister import object_key, split_key
from cluster.controllers import pods as podutil
from cluster.controllers.expectations import Expectations
from cluster.controllers.replicaset.plan import (
    API_VERSION,
    KIND,
    Pod,
    adoption_patch,
    claim_pods,
    desired_replicas,
    is_terminating,
    release_patch,
    scale,
    selector_of,
)
from cluster.controllers.replicaset.status import (
    calculate_status,
    needs_update,
    next_available_in,
    status_patch,
)
from cluster.controllers.runtime import Controller, ControllerContext
from cluster.machinery.labels import SelectorError
from cluster.machinery.meta import object_meta

log = logging.getLogger("raykube.controllers.replicaset")

CONTROLLER_UID_INDEX = "replicaset-controller-uid"


class SyncError(Exception):
    """Creating or deleting pods failed; the sync is retried with backoff."""


def _controller_uid(rs: dict[str, Any]) -> list[str]:
    ref = podutil.controller_ref(rs)
    return [str(ref["uid"])] if ref and ref.get("uid") else []


def _uid(obj: Mapping[str, Any]) -> str:
    return str(object_meta(obj).get("uid") or "")


def _namespace_terminating(err: ApiError) -> bool:
    causes = (err.body.get("details") or {}).get("causes") or []
    return any(c.get("type") == "NamespaceTerminating" for c in causes) or (
        err.status == 403 and "because it is being terminated" in err.message
    )


def _error_text(err: BaseException) -> str:
    return err.message if isinstance(err, ApiError) and err.message else str(err)


class ReplicaSetController(Controller):
    NAME = "replicaset"
    COMPONENT = "replicaset-controller"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.expectations = Expectations(ctx.clock)
        self.replicasets = self.watch(
            API_VERSION,
            "replicasets",
            on_add=self.enqueue,
            on_update=self._rs_updated,
            on_delete=self._rs_deleted,
        )
        self.replicasets.add_index(CONTROLLER_UID_INDEX, _controller_uid)
        self.pods = self.watch(
            "v1", "pods", on_add=self._pod_added, on_update=self._pod_updated, on_delete=self._pod_deleted
        )

    # -- handlers: enqueue and observe, nothing else ----------------------------------------------

    def _rs_updated(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        if _uid(old) != _uid(new):  # deleted and recreated under the same name between two events
            self._rs_deleted(old)
        self.enqueue(new)

    def _rs_deleted(self, rs: dict[str, Any]) -> None:
        key = object_key(rs)
        self.expectations.forget(key)
        self.enqueue(key)

    def _resolve(self, namespace: str | None, ref: Mapping[str, Any] | None) -> dict[str, Any] | None:
        """The cached ReplicaSet a controller reference names, if it is still the same object."""
        if ref is None or ref.get("kind") != KIND:
            return None
        rs = self.replicasets.get(namespace, str(ref.get("name") or ""))
        return rs if rs is not None and _uid(rs) == ref.get("uid") else None

    def _selecting(self, pod: Mapping[str, Any]) -> list[dict[str, Any]]:
        """ReplicaSets of the pod's namespace whose selector matches it (more than one is a user
        error; ownership sorts it out)."""
        found = []
        for rs in self.replicasets.list(object_meta(pod).get("namespace")):
            try:
                if selector_of(rs).matches_object(pod):
                    found.append(rs)
            except SelectorError:
                continue
        return found

    def _pod_added(self, pod: dict[str, Any]) -> None:
        if is_terminating(pod):  # seen for the first time already terminating: not a creation
            self._pod_deleted(pod)
            return
        ref = podutil.controller_ref(pod)
        if ref is not None:
            rs = self._resolve(object_meta(pod).get("namespace"), ref)
            if rs is not None:
                key = object_key(rs)
                self.expectations.creation_observed(key)
                self.enqueue(key)
            return
        for rs in self._selecting(pod):
            self.enqueue(rs)

    def _pod_updated(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        old_meta, new_meta = object_meta(old), object_meta(new)
        if old_meta.get("resourceVersion") == new_meta.get("resourceVersion"):
            return  # a resync: nothing changed
        labels_changed = old_meta.get("labels") != new_meta.get("labels")
        if is_terminating(new):
            # graceful deletion started: replace the pod now, not when the kubelet is done
            self._pod_deleted(new)
            if labels_changed:
                self._pod_deleted(old)
            return
        old_ref, new_ref = podutil.controller_ref(old), podutil.controller_ref(new)
        namespace = new_meta.get("namespace")
        if old_ref != new_ref and old_ref is not None:
            previous = self._resolve(namespace, old_ref)
            if previous is not None:
                self.enqueue(previous)
        if new_ref is not None:
            rs = self._resolve(namespace, new_ref)
            if rs is not None:
                self.enqueue(rs)
            return
        if labels_changed or old_ref != new_ref:
            for rs in self._selecting(new):
                self.enqueue(rs)

    def _pod_deleted(self, pod: dict[str, Any]) -> None:
        rs = self._resolve(object_meta(pod).get("namespace"), podutil.controller_ref(pod))
        if rs is None:
            return
        key = object_key(rs)
        self.expectations.deletion_observed(key, _uid(pod))
        self.enqueue(key)

    # -- the sync ---------------------------------------------------------------------------------

    async def reconcile(self, key: str) -> float | None:
        namespace, name = split_key(key)
        rs = self.replicasets.get(namespace, name)
        if rs is None:
            self.expectations.forget(key)
            return None
        needs_sync = self.expectations.satisfied(key)
        try:
            selector = selector_of(rs)
        except SelectorError as e:
            log.warning("replicaset %s: invalid selector: %s", key, e)
            return None
        claims = claim_pods(rs, self.pods.list(namespace), selector)
        owned: list[Pod] = list(claims.owned)
        if claims.adopt or claims.release:
            owned += await self._claim(rs, claims.adopt, claims.release)

        manage_error: BaseException | None = None
        if needs_sync and not is_terminating(rs):
            manage_error = await self._manage(key, rs, owned)

        now = self.clock.now()
        status = calculate_status(rs, owned, now, None if manage_error is None else _error_text(manage_error))
        if needs_update(rs, status):
            try:
                await self.client.patch(
                    API_VERSION,
                    "replicasets",
                    name,
                    status_patch(rs.get("status") or {}, status),
                    namespace,
                    subresource="status",
                )
            except ApiError as e:
                if not e.not_found:
                    raise
        if manage_error is not None:
            raise SyncError(f"replicaset {key}: {_error_text(manage_error)}") from manage_error
        return next_available_in(rs, owned, now)

    async def _claim(
        self, rs: dict[str, Any], adopt: Sequence[Pod], release: Sequence[Pod]
    ) -> list[dict[str, Any]]:
        """Release ``release`` and adopt ``adopt``; return the pods adopted. Raises the first error
        that is not "the pod is gone or changed" after trying every pod."""
        namespace = object_meta(rs).get("namespace")
        first_error: ApiError | None = None
        for pod in release:
            try:
                await self.client.patch(
                    "v1",
                    "pods",
                    object_meta(pod)["name"],
                    release_patch(rs, pod),
                    namespace,
                    patch_type="json",
                )
            except ApiError as e:
                if e.status not in (404, 422):  # gone, or changed since the cache saw it: nothing to release
                    first_error = first_error or e
        adopted: list[dict[str, Any]] = []
        if adopt:
            await self._check_can_adopt(rs)
            for pod in adopt:
                try:
                    adopted.append(
                        await self.client.patch(
                            "v1",
                            "pods",
                            object_meta(pod)["name"],
                            adoption_patch(rs, pod),
                            namespace,
                            patch_type="json",
                        )
                    )
                except ApiError as e:
                    if not e.not_found:  # a 422 means the pod changed: retry with a fresher cache
                        first_error = first_error or e
        if first_error is not None:
            raise first_error
        return adopted

    async def _check_can_adopt(self, rs: dict[str, Any]) -> None:
        """Re-read the ReplicaSet past the cache (kube's ``RecheckDeletionTimestamp``): one that is gone
        or being deleted must not adopt, and the sync stops until the cache catches up."""
        meta = object_meta(rs)
        fresh = await self.client.get(API_VERSION, "replicasets", meta["name"], meta.get("namespace"))
        if _uid(fresh) != _uid(rs):
            raise SyncError(f"replicaset {object_key(rs)} is gone: got uid {_uid(fresh)}, wanted {_uid(rs)}")
        if is_terminating(fresh):
            when = object_meta(fresh)["deletionTimestamp"]
            raise SyncError(f"replicaset {object_key(rs)} has just been deleted at {when}")

    async def _manage(self, key: str, rs: dict[str, Any], owned: Sequence[Pod]) -> BaseException | None:
        """Create or delete pods toward ``spec.replicas``; return the first error (None if none)."""
        related: list[dict[str, Any]] = []
        if len(owned) > desired_replicas(rs):
            related = self._related_pods(rs)
        plan = scale(rs, owned, self.clock.now(), related=related)
        if plan.create:
            return await self._create(key, rs, plan.create)
        if plan.delete:
            return await self._delete(key, rs, plan.delete)
        return None

    async def _create(self, key: str, rs: dict[str, Any], count: int) -> BaseException | None:
        self.expectations.expect_creations(key, count)
        namespace = object_meta(rs).get("namespace")
        template = (rs.get("spec") or {}).get("template") or {}

        async def create_one(_: int) -> None:
            body = podutil.pod_from_template(template, rs, API_VERSION, KIND)
            try:
                pod = await self.client.create("v1", "pods", body, namespace)
            except ApiError as e:
                if _namespace_terminating(e):
                    return  # every create will fail; the namespace's deletion removes the ReplicaSet
                self.recorder.event(rs, "Warning", "FailedCreate", f"Error creating: {_error_text(e)}")
                raise
            self.recorder.event(
                rs, "Normal", "SuccessfulCreate", f"Created pod: {object_meta(pod).get('name')}"
            )

        done, error = await podutil.slow_start_batch(count, podutil.SLOW_START_INITIAL_BATCH, create_one)
        for _ in range(count - done):  # never created, so never observed
            self.expectations.creation_observed(key)
        return error

    async def _delete(self, key: str, rs: dict[str, Any], victims: Sequence[Pod]) -> BaseException | None:
        self.expectations.expect_deletions(key, [_uid(p) for p in victims])
        namespace = object_meta(rs).get("namespace")

        async def delete_one(pod: Pod) -> BaseException | None:
            name = object_meta(pod)["name"]
            try:
                await self.client.delete("v1", "pods", name, namespace, preconditions={"uid": _uid(pod)})
            except ApiError as e:
                self.expectations.deletion_observed(key, _uid(pod))
                if e.not_found or e.conflict:  # already gone, or a different pod under that name
                    return None
                self.recorder.event(rs, "Warning", "FailedDelete", f"Error deleting: {_error_text(e)}")
                return e
            self.recorder.event(rs, "Normal", "SuccessfulDelete", f"Deleted pod: {name}")
            return None

        errors = [e for e in await asyncio.gather(*(delete_one(p) for p in victims)) if e is not None]
        return errors[0] if errors else None

    def _related_pods(self, rs: dict[str, Any]) -> list[dict[str, Any]]:
        """Pods selected by any ReplicaSet sharing ``rs``'s controller (for the colocation rank)."""
        owner = _controller_uid(rs)
        if not owner:
            return []
        namespace = object_meta(rs).get("namespace")
        seen: dict[str, dict[str, Any]] = {}
        for sibling in self.replicasets.by_index(CONTROLLER_UID_INDEX, owner[0]):
            try:
                selector = selector_of(sibling)
            except SelectorError:
                continue
            for pod in self.pods.list(object_meta(sibling).get("namespace") or namespace, selector):
                seen.setdefault(_uid(pod), pod)
        return list(seen.values())
