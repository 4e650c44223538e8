"""The StatefulSet controller's shell: informer handlers that enqueue, and ``reconcile`` that reads the
listers, asks the pure cores what to do and does it.

One ``reconcile(namespace/name)`` follows kube's ``syncStatefulSet``:

1. pods: orphans named ``<set>-<ordinal>`` matching the selector are adopted, owned pods that stop
   matching are released (kube's ClaimPods); orphan ControllerRevisions matching the selector are
   adopted;
2. revisions (``revisions.choose_revisions``): the update revision is found, renumbered (rollback) or
   created (a name collision bumps ``status.collisionCount``); the current one is
   ``status.currentRevision`` or, in a new history, the update revision;
3. the plan (``plan.plan``) runs group by group, sequentially for OrderedReady, as slow-start batches
   for Parallel; a failed write ends the pass (retried with backoff);
4. the status is written when it changed (even after a failed write), then history beyond
   ``revisionHistoryLimit`` is deleted.

Events are kube's (stateful_pod_control.go): ``SuccessfulCreate`` "create Pod db-0 in StatefulSet db
successful", ``SuccessfulDelete`` "delete Pod db-2 in StatefulSet db successful", ``SuccessfulCreate``
"create Claim data-db-0 Pod db-0 in StatefulSet db success", ``SuccessfulUpdate`` for identity fixes,
and ``Failed<Verb>`` warnings "... failed error: <error>".
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from cluster.client.errors import ApiError
from cluster.client.lister import split_key
from cluster.controllers import history
from cluster.controllers.pods import (
    SLOW_START_INITIAL_BATCH,
    controller_ref,
    is_pod_terminating,
    owner_reference,
    slow_start_batch,
)
from cluster.controllers.runtime import Controller, ControllerContext
from cluster.controllers.statefulset import identity, revisions
from cluster.controllers.statefulset.identity import API_VERSION, KIND, meta, spec
from cluster.controllers.statefulset.plan import (
    CREATE_CLAIMS,
    CREATE_POD,
    DELETE_POD,
    FIX_IDENTITY,
    UPDATE_CLAIM,
    Plan,
    Revisions,
    Step,
    complete_rolling_update,
    plan,
)
from cluster.machinery.labels import LabelSelector, SelectorError, label_selector_from_dict

log = logging.getLogger("raykube.controllers.statefulset")

STATUS_FIELDS = (
    "observedGeneration",
    "replicas",
    "readyReplicas",
    "currentReplicas",
    "updatedReplicas",
    "availableReplicas",
    "currentRevision",
    "updateRevision",
    "collisionCount",
)
MAX_COLLISIONS = 16


Event = tuple[str, str, str]  # type, reason, message


class _AlreadyExists(Exception):
    """A pod to create is already there: the cache is behind; its add event will bring us back."""


def status_changed(sts: Mapping[str, Any], status: Mapping[str, Any]) -> bool:
    have = sts.get("status") or {}
    return any(have.get(f) != status.get(f) for f in STATUS_FIELDS)


def _pod_event(verb: str, pod: Mapping[str, Any], sts: Mapping[str, Any], error: Exception | None) -> Event:
    name, set_name = meta(pod).get("name"), meta(sts).get("name")
    if error is None:
        return (
            "Normal",
            f"Successful{verb.title()}",
            f"{verb} Pod {name} in StatefulSet {set_name} successful",
        )
    return (
        "Warning",
        f"Failed{verb.title()}",
        f"{verb} Pod {name} in StatefulSet {set_name} failed error: {error}",
    )


def _claim_event(
    verb: str,
    claim: Mapping[str, Any],
    pod: Mapping[str, Any],
    sts: Mapping[str, Any],
    error: Exception | None,
) -> Event:
    claim_name, name, set_name = meta(claim).get("name"), meta(pod).get("name"), meta(sts).get("name")
    if error is None:
        return (
            "Normal",
            f"Successful{verb.title()}",
            f"{verb} Claim {claim_name} Pod {name} in StatefulSet {set_name} success",
        )
    return (
        "Warning",
        f"Failed{verb.title()}",
        f"{verb} Claim {claim_name} for Pod {name} in StatefulSet {set_name} failed error: {error}",
    )


class StatefulSetController(Controller):
    NAME = "statefulset"
    COMPONENT = "statefulset-controller"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.sets = self.watch(
            "apps/v1",
            "statefulsets",
            on_add=self.enqueue,
            on_update=lambda _old, new: self.enqueue(new),
            on_delete=self.enqueue,
        )
        self.pods = self.watch(
            "v1", "pods", on_add=self._pod_changed, on_update=self._pod_updated, on_delete=self._pod_changed
        )
        self.revisions = self.watch(
            "apps/v1",
            "controllerrevisions",
            on_add=self._revision_changed,
            on_update=lambda _old, new: self._revision_changed(new),
            on_delete=self._revision_changed,
        )
        self.claims = self.watch("v1", "persistentvolumeclaims")

    # -- handlers: enqueue only -------------------------------------------------------------------

    def _enqueue_matching_sets(self, obj: Mapping[str, Any]) -> None:
        """An orphan: every set in its namespace whose selector matches may adopt it."""
        namespace = meta(obj).get("namespace")
        labels = meta(obj).get("labels") or {}
        for sts in self.sets.list(namespace):
            try:
                if label_selector_from_dict(spec(sts).get("selector")).matches(labels):
                    self.enqueue(sts)
            except SelectorError:
                continue

    def _pod_changed(self, pod: dict[str, Any]) -> None:
        enqueued = self.enqueue_controller_of(pod, KIND)
        if not enqueued and controller_ref(pod) is None and not is_pod_terminating(pod):
            self._enqueue_matching_sets(pod)

    def _pod_updated(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        old_ref, new_ref = controller_ref(old), controller_ref(new)
        if old_ref is not None and (new_ref is None or old_ref.get("uid") != new_ref.get("uid")):
            self.enqueue_controller_of(old, KIND)
        self._pod_changed(new)

    def _revision_changed(self, revision: dict[str, Any]) -> None:
        if not self.enqueue_controller_of(revision, KIND) and controller_ref(revision) is None:
            self._enqueue_matching_sets(revision)

    # -- reconcile --------------------------------------------------------------------------------

    async def reconcile(self, key: str) -> float | None:
        namespace, name = split_key(key)
        sts = self.sets.get(namespace, name)
        if sts is None:
            return None
        try:
            selector = label_selector_from_dict(spec(sts).get("selector"))
        except SelectorError as exc:
            self.recorder.event(sts, "Warning", "InvalidSelector", f"Invalid selector: {exc}")
            return None
        if selector.empty():
            self.recorder.event(sts, "Warning", "SelectingAll", "This StatefulSet is selecting all pods. "
                                "A non-empty selector is required.")  # fmt: skip
            return None
        pods = await self._claim_pods(sts, selector)
        own_revisions = await self._claim_revisions(sts, selector)
        choice = revisions.choose_revisions(sts, own_revisions)
        update, collision_count = await self._update_revision(sts, choice)
        current = choice.current if choice.current is not None else update
        chosen = Revisions(
            current_name=str(meta(current).get("name")),
            current_template=revisions.template_of(current),
            update_name=str(meta(update).get("name")),
            update_template=revisions.template_of(update),
            collision_count=collision_count,
        )
        claims = {str(meta(c).get("name")): c for c in self.claims.list(namespace)}
        the_plan = plan(sts, pods, chosen, claims, self.clock.now())
        if the_plan.waiting:
            log.debug("statefulset %s: waiting: %s", key, the_plan.waiting)
        failure: BaseException | None = None
        try:
            await self._execute(sts, the_plan)
        except _AlreadyExists:
            pass
        except Exception as exc:
            failure = exc
        await self._write_status(sts, complete_rolling_update(sts, the_plan.status))
        for old in revisions.revisions_to_delete(
            sts, pods, own_revisions, chosen.current_name, chosen.update_name
        ):
            try:
                await self.client.delete("apps/v1", "controllerrevisions", meta(old)["name"], namespace)
            except ApiError as exc:
                if exc.status != 404:
                    raise
        if failure is not None:
            raise failure
        return the_plan.requeue_after

    # -- ownership --------------------------------------------------------------------------------

    async def _claim_pods(self, sts: Mapping[str, Any], selector: LabelSelector) -> list[dict[str, Any]]:
        """The set's pods after adopting matching orphans and releasing owned pods that stop matching."""
        uid = meta(sts).get("uid")
        deleting = bool(meta(sts).get("deletionTimestamp"))
        owned: list[dict[str, Any]] = []
        for pod in self.pods.list(meta(sts).get("namespace")):
            ref = controller_ref(pod)
            matches = selector.matches_object(pod) and identity.is_member_of(sts, pod)
            if ref is not None:
                if ref.get("uid") != uid:
                    continue
                if matches:
                    owned.append(pod)
                elif not deleting:
                    await self._set_owner(pod, "v1", "pods", sts, adopt=False)
                continue
            if matches and not deleting and not is_pod_terminating(pod):
                adopted = await self._set_owner(pod, "v1", "pods", sts, adopt=True)
                if adopted is not None:
                    owned.append(adopted)
        return owned

    async def _claim_revisions(self, sts: Mapping[str, Any], selector: LabelSelector) -> list[dict[str, Any]]:
        namespace = meta(sts).get("namespace")
        found = history.owned_revisions(
            self.revisions.list(namespace, selector), str(meta(sts).get("uid") or "")
        )
        out = []
        for revision in found:
            if controller_ref(revision) is None:
                if meta(sts).get("deletionTimestamp"):
                    continue
                adopted = await self._set_owner(revision, "apps/v1", "controllerrevisions", sts, adopt=True)
                if adopted is None:
                    continue
                revision = adopted
            out.append(revision)
        return out

    async def _set_owner(
        self, obj: Mapping[str, Any], gv: str, plural: str, sts: Mapping[str, Any], *, adopt: bool
    ) -> dict[str, Any] | None:
        """Adopt (add our controller reference) or release (remove it); None when the object is gone or
        changed under us (the next pass looks again)."""
        uid = meta(sts).get("uid")
        refs = [dict(r) for r in meta(obj).get("ownerReferences") or [] if r.get("uid") != uid]
        if adopt:
            refs.append(owner_reference(sts, API_VERSION, KIND))
        body = {"metadata": {"ownerReferences": refs, "resourceVersion": meta(obj).get("resourceVersion")}}
        try:
            return await self.client.patch(
                gv, plural, str(meta(obj).get("name")), body, meta(obj).get("namespace")
            )
        except ApiError as exc:
            if exc.status in (404, 409, 422):
                return None
            raise

    # -- revisions --------------------------------------------------------------------------------

    async def _update_revision(
        self, sts: Mapping[str, Any], choice: revisions.RevisionChoice
    ) -> tuple[Mapping[str, Any], int]:
        """The update revision, written if ``choice`` says so; and the collision count to record."""
        namespace = meta(sts).get("namespace")
        count = choice.collision_count
        if choice.update is not None:
            return choice.update, count
        if choice.renumber is not None:
            existing, number = choice.renumber
            renumbered = await self.client.patch(
                "apps/v1",
                "controllerrevisions",
                str(meta(existing).get("name")),
                {"revision": number},
                namespace,
            )
            return renumbered, count
        assert choice.create is not None
        body = choice.create
        for _ in range(MAX_COLLISIONS):
            try:
                return await self.client.create("apps/v1", "controllerrevisions", body, namespace), count
            except ApiError as exc:
                if exc.status != 409:
                    raise
            name = str(meta(body).get("name"))
            try:
                existing = await self.client.get("apps/v1", "controllerrevisions", name, namespace)
            except ApiError as exc:
                if exc.status == 404:
                    continue  # deleted meanwhile: try the same name again
                raise
            if history.equal_revision(existing, body):
                return existing, count
            count += 1
            body = revisions.new_revision(sts, int(body["revision"]), count)
        raise RuntimeError(
            f"statefulset {meta(sts).get('name')}: no free revision name after {count} collisions"
        )

    # -- the plan ---------------------------------------------------------------------------------

    async def _execute(self, sts: Mapping[str, Any], the_plan: Plan) -> None:
        for group in the_plan.groups:
            if the_plan.concurrent and len(group) > 1:

                async def run(i: int, group: tuple[Step, ...] = group) -> None:
                    await self._do(sts, group[i])

                _, error = await slow_start_batch(len(group), SLOW_START_INITIAL_BATCH, run)
                if error is not None:
                    raise error
            else:
                for step in group:
                    await self._do(sts, step)

    def _event(self, sts: Mapping[str, Any], event: Event) -> None:
        self.recorder.event(sts, *event)

    async def _create_claims(
        self, sts: Mapping[str, Any], pod: Mapping[str, Any], claims: Sequence[dict[str, Any]]
    ) -> None:
        namespace = meta(sts).get("namespace")
        for claim in claims:
            try:
                await self.client.create("v1", "persistentvolumeclaims", claim, namespace)
            except ApiError as exc:
                if exc.status == 409:
                    continue
                self._event(sts, _claim_event("create", claim, pod, sts, exc))
                raise
            self._event(sts, _claim_event("create", claim, pod, sts, None))

    async def _do(self, sts: Mapping[str, Any], step: Step) -> None:
        namespace = meta(sts).get("namespace")
        pod = step.pod
        name = step.pod_name
        if step.action == CREATE_POD:
            try:
                await self._create_claims(sts, pod, step.claims)
            except ApiError as exc:
                self._event(sts, _pod_event("create", pod, sts, exc))
                raise
            try:
                await self.client.create("v1", "pods", dict(pod), namespace)
            except ApiError as exc:
                if exc.status == 409:
                    raise _AlreadyExists(name) from exc
                self._event(sts, _pod_event("create", pod, sts, exc))
                raise
            self._event(sts, _pod_event("create", pod, sts, None))
        elif step.action == DELETE_POD:
            try:
                await self.client.delete("v1", "pods", name, namespace)
            except ApiError as exc:
                if exc.status == 404:
                    return
                self._event(sts, _pod_event("delete", pod, sts, exc))
                raise
            self._event(sts, _pod_event("delete", pod, sts, None))
        elif step.action == CREATE_CLAIMS:
            await self._create_claims(sts, pod, step.claims)
        elif step.action == UPDATE_CLAIM:
            claim = step.claim or {}
            body = {
                "metadata": {
                    "ownerReferences": list(step.owner_refs),
                    "resourceVersion": meta(claim).get("resourceVersion"),
                }
            }
            await self.client.patch(
                "v1", "persistentvolumeclaims", str(meta(claim).get("name")), body, namespace
            )
        elif step.action == FIX_IDENTITY:
            body = {"metadata": {"labels": dict(step.labels)}}
            try:
                await self.client.patch("v1", "pods", name, body, namespace)
            except ApiError as exc:
                self._event(sts, _pod_event("update", pod, sts, exc))
                raise
            self._event(sts, _pod_event("update", pod, sts, None))
        else:  # pragma: no cover - the plan only makes the actions above
            raise ValueError(f"unknown step {step.action}")

    async def _write_status(self, sts: Mapping[str, Any], status: Mapping[str, Any]) -> None:
        if not status_changed(sts, status):
            return
        try:
            await self.client.patch(
                "apps/v1",
                "statefulsets",
                str(meta(sts).get("name")),
                {"status": {f: status.get(f) for f in STATUS_FIELDS}},
                meta(sts).get("namespace"),
                subresource="status",
            )
        except ApiError as exc:
            if exc.status != 404:
                raise
