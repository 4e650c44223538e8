"""The Deployment controller (kube-controller-manager's ``deployment``): ReplicaSets from Deployments.

One reconcile of ``namespace/name`` (``syncDeployment``):

1. claim the ReplicaSets of the namespace: adopt orphans the selector matches, release owned ones it
   no longer matches (a full PUT with the read ``resourceVersion``, so a race is a 409 and a retry);
2. a Deployment being deleted only gets its status refreshed; pause and resume are recorded in the
   Progressing condition; a paused or resized Deployment is scaled in place (proportionally in the
   middle of a rolling update) and keeps its template history;
3. otherwise one step of its strategy: Recreate scales every old ReplicaSet to 0, waits for their
   pods to be gone, then creates/scales the new one; RollingUpdate grows the new ReplicaSet within
   maxSurge, then shrinks old ones within maxUnavailable;
4. the status (counters, Available, Progressing) is written only when it changed, and a rollout
   that is still going is looked at again at its progress deadline.

The numbers come from the pure modules (:mod:`.rollout`, :mod:`.revision`, :mod:`.progress`);
:mod:`.objects` reads the wire-form fields into their views, and the ReplicaSet writes (claiming,
the new ReplicaSet, scaling, history) live in :mod:`.replicasets`, the base class of this one. This
module holds the watches, the reconcile, the rollout steps and the status. The controller never
touches pods: the ReplicaSet controller creates and deletes them. Events are ``ScalingReplicaSet``
(Normal) and ``SelectingAll``/``ReplicaSetCreateError`` (Warning), from ``deployment-controller``.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from cluster.client.lister import split_key
from cluster.controllers.deployment import progress, rollout
from cluster.controllers.deployment.objects import (
    as_int,
    generation_of,
    name_of,
    progress_deadline,
    replica_set_view,
    strategy_of,
    uid_of,
)
from cluster.controllers.deployment.replicasets import APPS, KIND, Obj, ReplicaSetBookkeeping
from cluster.controllers.deployment.rollout import ReplicaSetView, Scale
from cluster.controllers.pods import controller_ref
from cluster.controllers.runtime import ControllerContext
from cluster.machinery.labels import SelectorError, label_selector_from_dict
from cluster.machinery.meta import object_meta

log = logging.getLogger("raykube.controllers.deployment")


class DeploymentController(ReplicaSetBookkeeping):
    NAME: ClassVar[str] = "deployment"
    COMPONENT: ClassVar[str] = "deployment-controller"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.deployments = self.watch(
            APPS, "deployments",
            on_add=self.enqueue,
            on_update=lambda old, new: self.enqueue(new),
            on_delete=self.enqueue,
        )  # fmt: skip
        self.replicasets = self.watch(
            APPS, "replicasets", on_add=self._rs_added, on_update=self._rs_updated, on_delete=self._rs_deleted
        )
        self.pods = self.watch("v1", "pods", on_delete=self._pod_deleted)

    # -- handlers (enqueue only) ---------------------------------------------------------------------

    def _deployment_of(self, obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
        ref = controller_ref(obj)
        if ref is None or ref.get("kind") != KIND:
            return None
        d = self.deployments.get(object_meta(obj).get("namespace"), str(ref.get("name")))
        return d if d is not None and uid_of(d) == ref.get("uid") else None

    def _enqueue_matching(self, rs: Mapping[str, Any]) -> None:
        """An orphan ReplicaSet: every Deployment of its namespace whose selector matches it."""
        namespace = object_meta(rs).get("namespace")
        for d in self.deployments.list(namespace=namespace):
            try:
                selector = label_selector_from_dict((d.get("spec") or {}).get("selector"))
            except SelectorError:
                continue
            if not selector.empty() and selector.matches_object(rs):
                self.enqueue(d)

    def _rs_added(self, rs: Obj) -> None:
        if object_meta(rs).get("deletionTimestamp"):
            self._rs_deleted(rs)
            return
        if controller_ref(rs) is not None:
            d = self._deployment_of(rs)
            if d is not None:
                self.enqueue(d)
            return
        self._enqueue_matching(rs)

    def _rs_updated(self, old: Obj, new: Obj) -> None:
        if object_meta(old).get("resourceVersion") == object_meta(new).get("resourceVersion"):
            return
        old_ref, new_ref = controller_ref(old), controller_ref(new)
        ref_changed = (old_ref or {}).get("uid") != (new_ref or {}).get("uid")
        if ref_changed and old_ref is not None:
            previous = self._deployment_of(old)
            if previous is not None:
                self.enqueue(previous)
        if new_ref is not None:
            d = self._deployment_of(new)
            if d is not None:
                self.enqueue(d)
            return
        if ref_changed or object_meta(old).get("labels") != object_meta(new).get("labels"):
            self._enqueue_matching(new)

    def _rs_deleted(self, rs: Obj) -> None:
        self.enqueue_controller_of(rs, KIND)

    def _pod_deleted(self, pod: Obj) -> None:
        # Recreate waits for every old pod to be gone: look again when one goes.
        ref = controller_ref(pod)
        if ref is None or ref.get("kind") != "ReplicaSet":
            return
        rs = self.replicasets.get(object_meta(pod).get("namespace"), str(ref.get("name")))
        if rs is not None and uid_of(rs) == ref.get("uid"):
            d = self._deployment_of(rs)
            if d is not None and strategy_of(d).type == rollout.RECREATE:
                self.enqueue(d)

    # -- reconcile -----------------------------------------------------------------------------------

    async def reconcile(self, key: str) -> float | None:
        namespace, name = split_key(key)
        cached = self.deployments.get(namespace, name)
        if cached is None:
            return None
        d: Obj = copy.deepcopy(cached)
        selector_spec = (d.get("spec") or {}).get("selector")
        selector = label_selector_from_dict(selector_spec)
        if selector.empty():
            self.recorder.event(
                d,
                "Warning",
                "SelectingAll",
                "This deployment is selecting all pods. A non-empty selector is required.",
            )
            status = d.get("status") or {}
            if as_int(status.get("observedGeneration")) < generation_of(d):
                d["status"] = {**status, "observedGeneration": generation_of(d)}
                await self._update_status(d)
            return None
        rs_list = await self._claim_replica_sets(d, selector)
        if object_meta(d).get("deletionTimestamp"):
            new_rs, old_rss = await self._all_replica_sets(d, rs_list, create=False)
            await self._sync_status(d, old_rss, new_rs)
            return None
        d = await self._check_paused_conditions(d)
        spec = d.get("spec") or {}
        if spec.get("paused"):
            return await self._sync(d, rs_list)
        # A resize (not a template change) shows in the desired-replicas annotation of the active
        # ReplicaSets; reading it needs no write, so it is checked on the listed objects.
        if rollout.is_scaling_event(strategy_of(d).replicas, [replica_set_view(rs) for rs in rs_list]):
            return await self._sync(d, rs_list)
        if strategy_of(d).type == rollout.RECREATE:
            return await self._rollout_recreate(d, rs_list)
        return await self._rollout_rolling(d, rs_list)

    async def _sync(self, d: Obj, rs_list: Sequence[Obj]) -> float | None:
        """``sync``: a paused or resized Deployment; sizes change, the template does not roll."""
        new_rs, old_rss = await self._all_replica_sets(d, rs_list, create=False)
        rss = [*old_rss, *([new_rs] if new_rs is not None else [])]
        steps = rollout.scale(
            strategy_of(d),
            replica_set_view(new_rs) if new_rs is not None else None,
            [replica_set_view(rs) for rs in old_rss],
            as_int((d.get("status") or {}).get("replicas")),
        )
        await self._apply(d, steps, rss)
        new_rs = rss[-1] if new_rs is not None else None
        old_rss = rss[: len(old_rss)]
        if (d.get("spec") or {}).get("paused"):
            await self._cleanup(d, old_rss)
        await self._sync_status(d, old_rss, new_rs)
        return None

    async def _rollout_rolling(self, d: Obj, rs_list: Sequence[Obj]) -> float | None:
        new_rs, old_rss = await self._all_replica_sets(d, rs_list, create=True)
        assert new_rs is not None
        rss = [*old_rss, new_rs]
        strategy = strategy_of(d)
        views = [replica_set_view(rs) for rs in rss]
        step = rollout.reconcile_new_replica_set(strategy, views, views[-1])
        if step is not None and await self._apply(d, [step], rss):
            return await self._sync_rollout_status(d, rss[:-1], rss[-1])
        views = [replica_set_view(rs) for rs in rss]
        steps = rollout.reconcile_old_replica_sets(strategy, views, rollout.active(views[:-1]), views[-1])
        if await self._apply(d, steps, rss):
            return await self._sync_rollout_status(d, rss[:-1], rss[-1])
        if progress.deployment_complete(strategy.replicas, generation_of(d), d.get("status") or {}):
            await self._cleanup(d, rss[:-1])
        return await self._sync_rollout_status(d, rss[:-1], rss[-1])

    def _old_pods_running(self, d: Obj, new_rs: Obj | None, old_rss: Sequence[Obj]) -> bool:
        """``oldPodsRunning``: an old ReplicaSet reports pods, or a pod of one is not finished."""
        if sum(as_int((rs.get("status") or {}).get("replicas")) for rs in old_rss) > 0:
            return True
        old_uids = {uid_of(rs) for rs in old_rss} - ({uid_of(new_rs)} if new_rs is not None else set())
        for pod in self.pods.list(namespace=object_meta(d).get("namespace")):
            ref = controller_ref(pod)
            if ref is None or ref.get("uid") not in old_uids:
                continue
            if (pod.get("status") or {}).get("phase") not in ("Failed", "Succeeded"):
                return True
        return False

    async def _rollout_recreate(self, d: Obj, rs_list: Sequence[Obj]) -> float | None:
        new_rs, old_rss = await self._all_replica_sets(d, rs_list, create=False)
        rss = [*old_rss]
        if await self._apply(d, rollout.recreate_scale_down([replica_set_view(rs) for rs in rss]), rss):
            return await self._sync_rollout_status(d, rss, new_rs)
        if self._old_pods_running(d, new_rs, rss):
            return await self._sync_rollout_status(d, rss, new_rs)
        if new_rs is None:
            new_rs, rss = await self._all_replica_sets(d, rs_list, create=True)
            assert new_rs is not None
        holder = [new_rs]
        await self._apply(
            d, [Scale(name_of(new_rs), replica_set_view(new_rs).replicas, strategy_of(d).replicas)], holder
        )
        new_rs = holder[0]
        if progress.deployment_complete(strategy_of(d).replicas, generation_of(d), d.get("status") or {}):
            await self._cleanup(d, rss)
        return await self._sync_rollout_status(d, rss, new_rs)

    # -- status ----------------------------------------------------------------------------------------

    async def _check_paused_conditions(self, d: Obj) -> Obj:
        cond = progress.paused_condition(
            bool((d.get("spec") or {}).get("paused")), progress_deadline(d), d.get("status"), self.clock.now()
        )
        if cond is None:
            return d
        progress.set_condition(d.setdefault("status", {}), cond)
        await self._update_status(d)
        return d

    def _computed_status(self, d: Obj, old_rss: Sequence[Obj], new_rs: Obj | None) -> dict[str, Any]:
        strategy = strategy_of(d)
        views: list[ReplicaSetView | None] = [replica_set_view(rs) for rs in old_rss]
        new_view = replica_set_view(new_rs) if new_rs is not None else None
        return progress.calculate_status(
            generation=generation_of(d),
            replicas=strategy.replicas,
            max_unavailable=strategy.unavailable(),
            all_rss=[*views, new_view],
            new_rs=new_view,
            previous=d.get("status"),
            now=self.clock.now(),
        )

    async def _sync_status(self, d: Obj, old_rss: Sequence[Obj], new_rs: Obj | None) -> None:
        """``syncDeploymentStatus``: counters and Available, no progress estimate."""
        status = self._computed_status(d, old_rss, new_rs)
        if progress.normalized(status) != progress.normalized(d.get("status")):
            d["status"] = status
            await self._update_status(d)

    async def _sync_rollout_status(self, d: Obj, old_rss: Sequence[Obj], new_rs: Obj | None) -> float | None:
        """``syncRolloutStatus``: the status with Progressing; seconds to the progress deadline."""
        strategy = strategy_of(d)
        previous = d.get("status") or {}
        status = progress.rollout_status(
            name=name_of(d),
            new_rs_name=name_of(new_rs) if new_rs is not None else None,
            replicas=strategy.replicas,
            generation=generation_of(d),
            deadline=progress_deadline(d),
            computed=self._computed_status(d, old_rss, new_rs),
            previous=previous,
            now=self.clock.now(),
        )
        failure = progress.replica_failure(new_rs, [*old_rss, *([new_rs] if new_rs is not None else [])])
        if failure is not None:
            progress.set_condition(status, failure)
        else:
            progress.remove_condition(status, progress.REPLICA_FAILURE)
        if progress.normalized(status) == progress.normalized(previous):
            return progress.recheck_after(
                replicas=strategy.replicas,
                generation=generation_of(d),
                deadline=progress_deadline(d),
                previous=previous,
                new=status,
                now=self.clock.now(),
            )
        d["status"] = status
        await self._update_status(d)
        return None
