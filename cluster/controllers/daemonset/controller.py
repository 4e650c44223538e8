"""The DaemonSet controller's shell: informer handlers that enqueue, and ``reconcile`` that reads the
listers, asks the pure cores (``eligibility``, ``plan``, ``revisions``) what to do and does it.

One ``reconcile(namespace/name)`` follows kube's ``syncDaemonSet``:

1. a DaemonSet that is gone drops its expectations; one selecting everything gets a ``SelectingAll``
   warning and nothing else; one being deleted is left to the garbage collector;
2. history: the current ControllerRevision is found or created (its hash labels new pods), duplicates
   removed, a rolled-back revision renumbered;
3. pods: the DaemonSet's pods are claimed (orphans matching the selector adopted, owned pods that stopped
   matching released) and grouped by node;
4. while earlier creations/deletions are not yet seen in the cache (expectations), only the status is
   refreshed; otherwise ``manage_plan`` runs, then, if that had nothing to do, ``rolling_update_plan``
   (RollingUpdate only; OnDelete replaces pods only when the user deletes them);
5. old revisions beyond ``revisionHistoryLimit`` are deleted, and the status written.

Pods are created in slow-start batches (at most 250 per sync, as kube's burstReplicas) with a
``SuccessfulCreate`` event ("Created pod: NAME") each; deletions record ``SuccessfulDelete``. Nodes
that join, change labels or taints, or go are followed through the node informer; pods for a deleted
node are deleted (immediately when bound: raykube has no pod GC to do it).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from cluster.client.errors import ApiError
from cluster.client.lister import split_key
from cluster.controllers.daemonset.eligibility import new_daemon_pod, node_should_run
from cluster.controllers.daemonset.plan import (
    FailedPodBackoff,
    SyncPlan,
    manage_plan,
    pods_by_node,
    rolling_update_plan,
)
from cluster.controllers.daemonset.revisions import (
    History,
    construct_history,
    revision_hash,
    revisions_to_delete,
)
from cluster.controllers.daemonset.status import compute_status, status_patch
from cluster.controllers.expectations import Expectations
from cluster.controllers.history import POD_REVISION_LABEL
from cluster.controllers.pods import (
    SLOW_START_INITIAL_BATCH,
    controller_ref,
    is_pod_terminating,
    owner_reference,
    slow_start_batch,
)
from cluster.controllers.runtime import Controller, ControllerContext
from cluster.machinery.labels import LabelSelector, SelectorError, label_selector_from_dict

log = logging.getLogger("raykube.controllers.daemonset")

KIND = "DaemonSet"
API_VERSION = "apps/v1"
BURST_REPLICAS = 250
SELECTING_ALL = "SelectingAll"

Obj = Mapping[str, Any]


def _meta(obj: Obj) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def _is_empty_selector(selector: Obj | None) -> bool:
    return selector is not None and not selector.get("matchLabels") and not selector.get("matchExpressions")


def _selector(daemon_set: Obj) -> LabelSelector | None:
    try:
        return label_selector_from_dict((daemon_set.get("spec") or {}).get("selector"))
    except SelectorError:
        return None


def _true_conditions(node: Obj) -> set[str]:
    conditions = (node.get("status") or {}).get("conditions") or []
    return {str(c.get("type")) for c in conditions if c.get("status") == "True"}


def node_change_matters(old: Obj, new: Obj) -> bool:
    """kube's ``shouldIgnoreNodeUpdate``, inverted: heartbeats (condition times) do not matter; labels,
    spec (taints, unschedulable) and the set of true conditions do."""
    return (
        _meta(old).get("labels") != _meta(new).get("labels")
        or old.get("spec") != new.get("spec")
        or _true_conditions(old) != _true_conditions(new)
    )


class DaemonSetController(Controller):
    NAME = "daemonset"
    COMPONENT = "daemonset-controller"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.expectations = Expectations(ctx.clock)
        self.backoff = FailedPodBackoff()
        self.daemon_sets = self.watch(
            API_VERSION,
            "daemonsets",
            on_add=self.enqueue,
            on_update=lambda old, new: self.enqueue(new),
            on_delete=self.enqueue,
        )
        self.pods = self.watch(
            "v1", "pods", on_add=self._pod_added, on_update=self._pod_updated, on_delete=self._pod_deleted
        )
        self.nodes = self.watch(
            "v1", "nodes", on_add=self._node_added, on_update=self._node_updated, on_delete=self._node_deleted
        )
        self.revisions = self.watch(
            API_VERSION,
            "controllerrevisions",
            on_add=self._revision_changed,
            on_update=lambda old, new: self._revision_changed(new),
            on_delete=self._revision_changed,
        )

    # -- handlers: only enqueue ------------------------------------------------------------------------

    def _owner_key(self, obj: Obj) -> str | None:
        """``ns/name`` of the DaemonSet that controls ``obj`` (same uid), or None."""
        ref = controller_ref(obj)
        if ref is None or ref.get("kind") != KIND:
            return None
        namespace = _meta(obj).get("namespace")
        daemon_set = self.daemon_sets.get(namespace, str(ref.get("name")))
        if daemon_set is None or _meta(daemon_set).get("uid") != ref.get("uid"):
            return None
        return f"{namespace}/{ref.get('name')}"

    def _enqueue_selecting(self, obj: Obj) -> None:
        """An orphan: wake every DaemonSet of its namespace whose selector matches it (to adopt it)."""
        labels = _meta(obj).get("labels") or {}
        for daemon_set in self.daemon_sets.list(_meta(obj).get("namespace")):
            selector = _selector(daemon_set)
            if selector is not None and not selector.empty() and selector.matches(labels):
                self.enqueue(daemon_set)

    def _pod_added(self, pod: dict[str, Any]) -> None:
        if is_pod_terminating(pod):
            self._pod_deleted(pod)
            return
        key = self._owner_key(pod)
        if key is not None:
            self.expectations.creation_observed(key)
            self.enqueue(key)
        elif controller_ref(pod) is None:
            self._enqueue_selecting(pod)

    def _pod_updated(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        old_key, new_key = self._owner_key(old), self._owner_key(new)
        if old_key is not None and old_key != new_key:
            self.enqueue(old_key)
        if new_key is not None:
            self.enqueue(new_key)
        elif controller_ref(new) is None and _meta(old).get("labels") != _meta(new).get("labels"):
            self._enqueue_selecting(new)

    def _pod_deleted(self, pod: dict[str, Any]) -> None:
        key = self._owner_key(pod)
        if key is not None:
            self.expectations.deletion_observed(key, str(_meta(pod).get("uid") or ""))
            self.enqueue(key)

    def _enqueue_where(self, wanted: Any) -> None:
        for daemon_set in self.daemon_sets.list():
            if wanted(daemon_set):
                self.enqueue(daemon_set)

    def _node_added(self, node: dict[str, Any]) -> None:
        self._enqueue_where(lambda ds: node_should_run(node, ds).should_run)

    def _node_updated(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        if node_change_matters(old, new):
            self._enqueue_where(lambda ds: node_should_run(old, ds) != node_should_run(new, ds))

    def _node_deleted(self, node: dict[str, Any]) -> None:
        # kube leaves this to the pod GC, which raykube lacks: every set looks at its pods again.
        self._enqueue_where(lambda ds: True)

    def _revision_changed(self, revision: dict[str, Any]) -> None:
        key = self._owner_key(revision)
        if key is not None:
            self.enqueue(key)

    # -- reconcile -----------------------------------------------------------------------------------

    async def reconcile(self, key: str) -> float | None:
        namespace, name = split_key(key)
        daemon_set = self.daemon_sets.get(namespace, name)
        if daemon_set is None:
            self.expectations.forget(key)
            return None
        if _is_empty_selector((daemon_set.get("spec") or {}).get("selector")):
            self.recorder.event(
                daemon_set,
                "Warning",
                SELECTING_ALL,
                "This daemon set is selecting all pods. A non-empty selector is required.",
            )
            return None
        if _meta(daemon_set).get("deletionTimestamp"):
            return None
        selector = _selector(daemon_set)
        if selector is None:
            return None  # the API server refuses such selectors; nothing sensible to do
        nodes = self.nodes.list()
        history = await self._construct_history(daemon_set, selector)
        hash_ = history.hash
        pods = await self._claim_pods(daemon_set, selector)
        by_node = pods_by_node(pods)
        now = self.clock.now()
        requeue: float | None = None

        if self.expectations.satisfied(key):
            plan = manage_plan(daemon_set, nodes, by_node, hash_, now, self.backoff, self.clock.monotonic())
            requeue = plan.requeue_after
            error = await self._sync_nodes(key, daemon_set, plan, hash_, by_node)
            strategy = ((daemon_set.get("spec") or {}).get("updateStrategy") or {}).get("type")
            if error is None and self.expectations.satisfied(key) and strategy != "OnDelete":
                rolling = rolling_update_plan(daemon_set, nodes, by_node, hash_, now)
                error = await self._sync_nodes(key, daemon_set, rolling, hash_, by_node)
            await self._cleanup_history(daemon_set, history)
            counts = compute_status(daemon_set, nodes, by_node, hash_, now)
            await self._write_status(daemon_set, status_patch(daemon_set, counts, observe_generation=True))
            if error is not None:
                raise error
        else:
            counts = compute_status(daemon_set, nodes, by_node, hash_, now)
            await self._write_status(daemon_set, status_patch(daemon_set, counts, observe_generation=False))

        self.backoff.gc(self.clock.monotonic())
        min_ready = float((daemon_set.get("spec") or {}).get("minReadySeconds") or 0)
        if min_ready > 0 and counts.number_ready != counts.number_available:
            requeue = min_ready if requeue is None else min(requeue, min_ready)
        return requeue

    # -- history -------------------------------------------------------------------------------------

    async def _construct_history(self, daemon_set: Obj, selector: LabelSelector) -> History:
        meta = _meta(daemon_set)
        namespace, uid = meta.get("namespace"), meta.get("uid")
        owned: list[Obj] = []
        for revision in self.revisions.list(namespace):
            ref = controller_ref(revision)
            if ref is not None:
                if ref.get("uid") == uid:
                    owned.append(revision)
                continue
            if selector.matches(_meta(revision).get("labels") or {}):
                owned.append(await self._adopt("controllerrevisions", revision, daemon_set))
        history = construct_history(daemon_set, owned)
        if history.create is not None:
            created = await self._create_revision(daemon_set, history.create)
            return History(created, None, None, (), history.old)
        assert history.current is not None
        for duplicate in history.duplicates:
            await self._relabel_pods(daemon_set, revision_hash(duplicate), history.hash)
            await self._ignore_missing(
                self.client.delete(API_VERSION, "controllerrevisions", _meta(duplicate)["name"], namespace)
            )
        if history.renumber is not None:
            current = await self.client.patch(
                API_VERSION,
                "controllerrevisions",
                _meta(history.current)["name"],
                {"revision": history.renumber},
                namespace,
            )
            return History(current, None, None, (), history.old)
        return history

    async def _create_revision(self, daemon_set: Obj, body: dict[str, Any]) -> Obj:
        namespace = _meta(daemon_set).get("namespace")
        try:
            return await self.client.create(API_VERSION, "controllerrevisions", body, namespace)
        except ApiError as err:
            if err.status != 409:
                raise
        existing = await self.client.get(
            API_VERSION, "controllerrevisions", body["metadata"]["name"], namespace
        )
        if construct_history(daemon_set, [existing]).current is not None:
            return existing  # we made it earlier and the cache has not caught up
        # A different template hashed to the same name: bump collisionCount and try again later.
        status = daemon_set.get("status") or {}
        count = int(status.get("collisionCount") or 0) + 1
        await self.client.patch(
            API_VERSION,
            "daemonsets",
            _meta(daemon_set)["name"],
            {"status": {"collisionCount": count}},
            namespace,
            subresource="status",
        )
        raise RuntimeError(f"revision name {body['metadata']['name']} collides; collisionCount now {count}")

    async def _relabel_pods(self, daemon_set: Obj, from_hash: str, to_hash: str) -> None:
        namespace = _meta(daemon_set).get("namespace")
        uid = _meta(daemon_set).get("uid")
        for pod in self.pods.list(namespace):
            ref = controller_ref(pod)
            if (
                ref
                and ref.get("uid") == uid
                and (_meta(pod).get("labels") or {}).get(POD_REVISION_LABEL) == from_hash
            ):
                patch = {"metadata": {"labels": {POD_REVISION_LABEL: to_hash}}}
                await self._ignore_missing(
                    self.client.patch("v1", "pods", _meta(pod)["name"], patch, namespace)
                )

    async def _cleanup_history(self, daemon_set: Obj, history: History) -> None:
        namespace, uid = _meta(daemon_set).get("namespace"), _meta(daemon_set).get("uid")
        live = {
            str((_meta(p).get("labels") or {}).get(POD_REVISION_LABEL) or "")
            for p in self.pods.list(namespace)
            if (controller_ref(p) or {}).get("uid") == uid
        }
        for name in revisions_to_delete(daemon_set, history.old, live - {""}):
            await self._ignore_missing(
                self.client.delete(API_VERSION, "controllerrevisions", name, namespace)
            )

    # -- pods ----------------------------------------------------------------------------------------

    async def _adopt(self, plural: str, obj: Obj, daemon_set: Obj) -> Obj:
        """Make ``daemon_set`` the controller of an orphan (a merge patch of its ownerReferences)."""
        refs = list(_meta(obj).get("ownerReferences") or [])
        refs.append(owner_reference(daemon_set, API_VERSION, KIND))
        group_version = "v1" if plural == "pods" else API_VERSION
        patch = {"metadata": {"ownerReferences": refs, "uid": _meta(obj).get("uid")}}
        return await self.client.patch(
            group_version, plural, _meta(obj)["name"], patch, _meta(obj).get("namespace")
        )

    async def _release(self, pod: Obj, daemon_set: Obj) -> None:
        uid = _meta(daemon_set).get("uid")
        refs = [r for r in _meta(pod).get("ownerReferences") or [] if r.get("uid") != uid]
        patch = {"metadata": {"ownerReferences": refs or None, "uid": _meta(pod).get("uid")}}
        await self._ignore_missing(
            self.client.patch("v1", "pods", _meta(pod)["name"], patch, _meta(pod).get("namespace"))
        )

    async def _claim_pods(self, daemon_set: Obj, selector: LabelSelector) -> list[Obj]:
        """kube's ``ClaimPods``: the pods this set controls and still selects, plus adopted orphans."""
        meta = _meta(daemon_set)
        uid = meta.get("uid")
        claimed: list[Obj] = []
        orphans: list[dict[str, Any]] = []
        for pod in self.pods.list(meta.get("namespace")):
            ref = controller_ref(pod)
            matches = selector.matches(_meta(pod).get("labels") or {})
            if ref is not None and ref.get("uid") == uid:
                if matches:
                    claimed.append(pod)
                elif not is_pod_terminating(pod):
                    await self._release(pod, daemon_set)
            elif ref is None and matches and not is_pod_terminating(pod):
                orphans.append(pod)
        if orphans:
            fresh = await self.client.get(API_VERSION, "daemonsets", meta["name"], meta.get("namespace"))
            if _meta(fresh).get("uid") == uid and not _meta(fresh).get("deletionTimestamp"):
                for pod in orphans:
                    try:
                        claimed.append(await self._adopt("pods", pod, daemon_set))
                    except ApiError as err:
                        if err.status not in (404, 409, 422):
                            raise
        return claimed

    async def _sync_nodes(
        self,
        key: str,
        daemon_set: Obj,
        plan: SyncPlan,
        hash_: str,
        by_node: Mapping[str, Sequence[Obj]],
    ) -> BaseException | None:
        """Carry out a plan (kube's ``syncNodes``); return the first error (the caller re-raises it after
        writing the status, so the key is retried with backoff)."""
        for event in plan.events:
            self.recorder.event(daemon_set, event.event_type, event.reason, event.message)
        if plan.empty:
            return None
        create_on = list(plan.create_on[:BURST_REPLICAS])
        pods_by_name = {str(_meta(p).get("name")): p for group in by_node.values() for p in group}
        delete = [pods_by_name[n] for n in plan.delete[:BURST_REPLICAS] if n in pods_by_name]
        self.expectations.expect_creations(key, len(create_on))
        self.expectations.expect_deletions(key, [str(_meta(p).get("uid") or "") for p in delete])
        namespace = _meta(daemon_set).get("namespace")
        errors: list[BaseException] = []
        attempted = 0

        async def create(i: int) -> None:
            nonlocal attempted
            attempted += 1
            body = new_daemon_pod(daemon_set, create_on[i], hash_)
            try:
                created = await self.client.create("v1", "pods", body, namespace)
            except ApiError as err:
                self.expectations.creation_observed(key)
                if err.status == 403 and "being terminated" in err.message:
                    return  # the namespace is going away: every later create fails the same way
                self.recorder.event(daemon_set, "Warning", "FailedCreate", f"Error creating: {err.message}")
                raise
            except Exception:
                self.expectations.creation_observed(key)
                raise
            self.recorder.event(
                daemon_set, "Normal", "SuccessfulCreate", f"Created pod: {_meta(created).get('name')}"
            )

        _, error = await slow_start_batch(len(create_on), SLOW_START_INITIAL_BATCH, create)
        if error is not None:
            errors.append(error)
        for _ in range(len(create_on) - attempted):
            self.expectations.creation_observed(key)  # never attempted: never observed either

        async def delete_one(pod: Obj) -> None:
            pod_name, uid = str(_meta(pod).get("name")), str(_meta(pod).get("uid") or "")
            grace = 0 if pod_name in plan.orphaned else None
            try:
                await self.client.delete(
                    "v1", "pods", pod_name, namespace, grace_period_seconds=grace, preconditions={"uid": uid}
                )
            except ApiError as err:
                self.expectations.deletion_observed(key, uid)
                if err.status in (404, 409):
                    return
                self.recorder.event(daemon_set, "Warning", "FailedDelete", f"Error deleting: {err.message}")
                errors.append(err)
                return
            self.recorder.event(daemon_set, "Normal", "SuccessfulDelete", f"Deleted pod: {pod_name}")

        await asyncio.gather(*(delete_one(p) for p in delete))
        return errors[0] if errors else None

    # -- status ----------------------------------------------------------------------------------------

    async def _write_status(self, daemon_set: Obj, status: dict[str, Any] | None) -> None:
        if status is None:
            return
        meta = _meta(daemon_set)
        await self._ignore_missing(
            self.client.patch(
                API_VERSION,
                "daemonsets",
                meta["name"],
                {"status": status},
                meta.get("namespace"),
                subresource="status",
            )
        )

    @staticmethod
    async def _ignore_missing(call: Any) -> Any:
        try:
            return await call
        except ApiError as err:
            if err.status != 404:
                raise
            return None
