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

The numbers come from the pure modules (:mod:`.rollout`, :mod:`.revision`, :mod:`.progress`); this
module only reads listers and writes through the API. The controller never touches pods: the
ReplicaSet controller creates and deletes them. Events are ``ScalingReplicaSet`` (Normal) and
``SelectingAll``/``ReplicaSetCreateError`` (Warning), from ``deployment-controller``.
"""

from __future__ import annotations

import contextlib
import copy
import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar

from cluster.client.errors import ApiError
from cluster.client.lister import split_key
from cluster.controllers.deployment import progress, revision, rollout
from cluster.controllers.deployment.revision import (
    POD_TEMPLATE_HASH_LABEL,
    REVISION_ANNOTATION,
    find_new_replica_set,
    max_revision,
    new_replica_set_annotations,
    pod_template_hash,
    replicas_annotations,
    replicas_annotations_need_update,
)
from cluster.controllers.deployment.rollout import ReplicaSetView, Scale, Strategy
from cluster.controllers.pods import controller_ref, owner_reference
from cluster.controllers.runtime import Controller, ControllerContext
from cluster.machinery.labels import SelectorError, label_selector_from_dict
from cluster.machinery.meta import object_meta
from cluster.machinery.times import parse_rfc3339

log = logging.getLogger("raykube.controllers.deployment")

APPS = "apps/v1"
KIND = "Deployment"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

Obj = dict[str, Any]


# -- reading objects ----------------------------------------------------------------------------------


def _int(value: Any, default: int = 0) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _opt_int(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def replica_set_view(rs: Mapping[str, Any]) -> ReplicaSetView:
    meta = object_meta(rs)
    spec = rs.get("spec") or {}
    status = rs.get("status") or {}
    annotations = meta.get("annotations") or {}
    return ReplicaSetView(
        name=str(meta.get("name", "")),
        uid=str(meta.get("uid", "")),
        created=parse_rfc3339(meta.get("creationTimestamp")) or _EPOCH,
        replicas=_int(spec.get("replicas"), 1),
        status_replicas=_int(status.get("replicas")),
        ready=_int(status.get("readyReplicas")),
        available=_int(status.get("availableReplicas")),
        revision=revision.parse_revision(annotations) or 0,
        desired_annotation=_opt_int(annotations.get(revision.DESIRED_REPLICAS_ANNOTATION)),
        max_annotation=_opt_int(annotations.get(revision.MAX_REPLICAS_ANNOTATION)),
        generation=_int(meta.get("generation")),
        observed_generation=_int(status.get("observedGeneration")),
        deleting=bool(meta.get("deletionTimestamp")),
        template=spec.get("template"),
    )


def strategy_of(deployment: Mapping[str, Any]) -> Strategy:
    spec = deployment.get("spec") or {}
    strategy = spec.get("strategy") or {}
    rolling = strategy.get("rollingUpdate") or {}
    return Strategy(
        replicas=_int(spec.get("replicas"), 1),
        type=str(strategy.get("type") or rollout.ROLLING_UPDATE),
        max_surge=rolling.get("maxSurge", rollout.DEFAULT_MAX_SURGE),
        max_unavailable=rolling.get("maxUnavailable", rollout.DEFAULT_MAX_UNAVAILABLE),
    )


def _deadline(d: Mapping[str, Any]) -> int | None:
    return _opt_int((d.get("spec") or {}).get("progressDeadlineSeconds"))


def _name(obj: Mapping[str, Any]) -> str:
    return str(object_meta(obj).get("name", ""))


def _uid(obj: Mapping[str, Any]) -> str:
    return str(object_meta(obj).get("uid", ""))


def _generation(obj: Mapping[str, Any]) -> int:
    return _int(object_meta(obj).get("generation"))


def _namespace_terminating(err: ApiError) -> bool:
    causes = (err.body.get("details") or {}).get("causes") or ()
    return err.status == 403 and any(
        c.get("type") == "NamespaceTerminating" for c in causes if isinstance(c, dict)
    )


class DeploymentController(Controller):
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
        return d if d is not None and _uid(d) == ref.get("uid") else None

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
        if rs is not None and _uid(rs) == ref.get("uid"):
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
            if _int(status.get("observedGeneration")) < _generation(d):
                d["status"] = {**status, "observedGeneration": _generation(d)}
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

    # -- claiming ReplicaSets ------------------------------------------------------------------------

    async def _claim_replica_sets(self, d: Obj, selector: Any) -> list[Obj]:
        """``ClaimReplicaSets``: the ReplicaSets this Deployment controls after adoption/release."""
        meta = object_meta(d)
        deleting = bool(meta.get("deletionTimestamp"))
        claimed: list[Obj] = []
        fresh_checked = False
        for cached in self.replicasets.list(namespace=meta.get("namespace")):
            rs_meta = object_meta(cached)
            ref = controller_ref(cached)
            matches = selector.matches_object(cached)
            if ref is not None:
                if ref.get("uid") != meta.get("uid"):
                    continue
                if matches:
                    claimed.append(cached)
                elif not deleting:
                    await self._release(d, cached)
                continue
            if deleting or not matches or rs_meta.get("deletionTimestamp"):
                continue
            if not fresh_checked:
                # Adopt only for a Deployment that still exists and is not being deleted (a cache
                # may lag behind a delete-and-recreate of the same name).
                live = await self.client.get(APPS, "deployments", _name(d), meta.get("namespace"))
                if _uid(live) != meta.get("uid") or object_meta(live).get("deletionTimestamp"):
                    raise RuntimeError(f"deployment {_name(d)} changed or is being deleted; not adopting")
                fresh_checked = True
            claimed.append(await self._adopt(d, cached))
        return claimed

    async def _adopt(self, d: Obj, rs: Mapping[str, Any]) -> Obj:
        body = copy.deepcopy(dict(rs))
        meta = body.setdefault("metadata", {})
        meta["ownerReferences"] = [*(meta.get("ownerReferences") or []), owner_reference(d, APPS, KIND)]
        return await self.client.update(APPS, "replicasets", body, meta.get("namespace"))

    async def _release(self, d: Obj, rs: Mapping[str, Any]) -> None:
        body = copy.deepcopy(dict(rs))
        meta = body.setdefault("metadata", {})
        meta["ownerReferences"] = [r for r in meta.get("ownerReferences") or [] if r.get("uid") != _uid(d)]
        try:
            await self.client.update(APPS, "replicasets", body, meta.get("namespace"))
        except ApiError as err:
            if err.status != 404:
                raise

    # -- new and old ReplicaSets -----------------------------------------------------------------------

    async def _all_replica_sets(
        self, d: Obj, rs_list: Sequence[Obj], *, create: bool
    ) -> tuple[Obj | None, list[Obj]]:
        """``getAllReplicaSetsAndSyncRevision``: the new ReplicaSet (None if absent and not created)
        with its revision synced, and every old one. Updates ``d`` in place with what was written."""
        views = [replica_set_view(rs) for rs in rs_list]
        template = (d.get("spec") or {}).get("template")
        found = find_new_replica_set(template, views)
        by_name = {_name(rs): rs for rs in rs_list}
        old_rss = [by_name[v.name] for v in views if found is None or v.uid != found.uid]
        old_views = [v for v in views if found is None or v.uid != found.uid]
        new_revision = max_revision(old_views) + 1
        strategy = strategy_of(d)
        if found is not None:
            new_rs = await self._sync_existing_new_rs(d, by_name[found.name], new_revision, strategy)
            return new_rs, old_rss
        if not create:
            return None, old_rss
        return await self._create_new_rs(d, old_rss, old_views, new_revision, strategy), old_rss

    async def _sync_existing_new_rs(self, d: Obj, rs: Obj, new_revision: int, strategy: Strategy) -> Obj:
        meta = object_meta(rs)
        annotations, changed = new_replica_set_annotations(
            object_meta(d).get("annotations"),
            meta.get("annotations"),
            new_revision,
            exists=True,
            desired=strategy.replicas,
            max_replicas=strategy.max_total(),
        )
        min_ready = _int((d.get("spec") or {}).get("minReadySeconds"))
        if changed or _int((rs.get("spec") or {}).get("minReadySeconds")) != min_ready:
            body = copy.deepcopy(rs)
            body["metadata"]["annotations"] = annotations
            body.setdefault("spec", {})["minReadySeconds"] = min_ready
            return await self.client.update(APPS, "replicasets", body, meta.get("namespace"))
        await self._set_deployment_revision(d, str(annotations.get(REVISION_ANNOTATION, "")))
        status = d.setdefault("status", {})
        if (
            progress.has_progress_deadline(_deadline(d))
            and progress.get_condition(status, progress.PROGRESSING) is None
        ):
            message = f'Found new replica set "{_name(rs)}"'
            progress.set_condition(
                status,
                progress.new_condition(
                    progress.PROGRESSING, "True", progress.FOUND_NEW_RS_REASON, message, self.clock.now()
                ),
            )
            await self._update_status(d)
        return rs

    async def _create_new_rs(
        self,
        d: Obj,
        old_rss: Sequence[Obj],
        old_views: Sequence[ReplicaSetView],
        new_revision: int,
        strategy: Strategy,
    ) -> Obj:
        meta = object_meta(d)
        namespace = meta.get("namespace")
        spec = d.get("spec") or {}
        status = d.setdefault("status", {})
        collision_count = _opt_int(status.get("collisionCount"))
        template = copy.deepcopy(spec.get("template") or {})
        pod_hash = pod_template_hash(template, collision_count)
        template.setdefault("metadata", {})
        template["metadata"]["labels"] = {
            **(template["metadata"].get("labels") or {}),
            POD_TEMPLATE_HASH_LABEL: pod_hash,
        }
        selector = copy.deepcopy(spec.get("selector") or {})
        selector["matchLabels"] = {**(selector.get("matchLabels") or {}), POD_TEMPLATE_HASH_LABEL: pod_hash}
        name = f"{_name(d)}-{pod_hash}"
        candidate = ReplicaSetView(name=name, replicas=0)
        replicas = rollout.new_rs_new_replicas(strategy, [*old_views, candidate], candidate)
        annotations, _ = new_replica_set_annotations(
            meta.get("annotations"),
            {},
            new_revision,
            exists=False,
            desired=strategy.replicas,
            max_replicas=strategy.max_total(),
        )
        body: Obj = {
            "apiVersion": APPS,
            "kind": "ReplicaSet",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": dict(template["metadata"]["labels"]),
                "annotations": annotations,
                "ownerReferences": [owner_reference(d, APPS, KIND)],
            },
            "spec": {
                "replicas": replicas,
                "minReadySeconds": _int(spec.get("minReadySeconds")),
                "selector": selector,
                "template": template,
            },
        }
        already_exists = False
        try:
            created = await self.client.create(APPS, "replicasets", body, namespace)
        except ApiError as err:
            if err.already_exists:
                existing = await self.client.get(APPS, "replicasets", name, namespace)
                ref = controller_ref(existing)
                if (
                    ref is not None
                    and ref.get("uid") == meta.get("uid")
                    and revision.equal_ignore_hash(
                        spec.get("template"), (existing.get("spec") or {}).get("template")
                    )
                ):
                    created, already_exists = existing, True
                else:
                    # A hash collision: another template already has this name. Bump the count so
                    # the next attempt hashes to another name.
                    status["collisionCount"] = (collision_count or 0) + 1
                    await self._update_status(d)
                    raise
            elif _namespace_terminating(err):
                raise
            else:
                message = f'Failed to create new replica set "{name}": {err}'
                if progress.has_progress_deadline(_deadline(d)):
                    progress.set_condition(
                        status,
                        progress.new_condition(
                            progress.PROGRESSING,
                            "False",
                            progress.FAILED_RS_CREATE_REASON,
                            message,
                            self.clock.now(),
                        ),
                    )
                    with contextlib.suppress(ApiError):
                        await self._update_status(d)
                self.recorder.event(d, "Warning", progress.FAILED_RS_CREATE_REASON, message)
                raise
        if not already_exists and replicas > 0:
            self.recorder.event(
                d,
                "Normal",
                "ScalingReplicaSet",
                f"Scaled up replica set {_name(created)} from 0 to {replicas}",
            )
        await self._set_deployment_revision(d, str(new_revision))
        if not already_exists and progress.has_progress_deadline(_deadline(d)):
            message = f'Created new replica set "{_name(created)}"'
            progress.set_condition(
                d.setdefault("status", {}),
                progress.new_condition(
                    progress.PROGRESSING, "True", progress.NEW_RS_REASON, message, self.clock.now()
                ),
            )
            await self._update_status(d)
        return created

    async def _set_deployment_revision(self, d: Obj, value: str) -> None:
        """``SetDeploymentRevision``: the Deployment's revision annotation follows its new ReplicaSet.

        Written as a metadata patch (a status write keeps metadata as it was)."""
        meta = object_meta(d)
        if not value or (meta.get("annotations") or {}).get(REVISION_ANNOTATION) == value:
            return
        patched = await self.client.patch(
            APPS,
            "deployments",
            _name(d),
            {"metadata": {"annotations": {REVISION_ANNOTATION: value}}},
            meta.get("namespace"),
        )
        status = d.get("status")
        d.clear()
        d.update(patched)
        if status is not None:
            d["status"] = status

    # -- scaling ---------------------------------------------------------------------------------------

    async def _scale_replica_set(self, d: Obj, rs: Obj, new_scale: int) -> tuple[bool, Obj]:
        """``scaleReplicaSet``: write the size and the replica annotations when either differs; an
        event when the size changed. Returns (scaled, the ReplicaSet as stored)."""
        strategy = strategy_of(d)
        meta = object_meta(rs)
        old_scale = _int((rs.get("spec") or {}).get("replicas"), 1)
        size_changed = old_scale != new_scale
        if not size_changed and not replicas_annotations_need_update(
            meta.get("annotations"), strategy.replicas, strategy.max_total()
        ):
            return False, rs
        body = copy.deepcopy(rs)
        body.setdefault("spec", {})["replicas"] = new_scale
        body["metadata"]["annotations"] = {
            **(meta.get("annotations") or {}),
            **replicas_annotations(strategy.replicas, strategy.max_total()),
        }
        updated = await self.client.update(APPS, "replicasets", body, meta.get("namespace"))
        if size_changed:
            direction = "up" if new_scale > old_scale else "down"
            self.recorder.event(
                d,
                "Normal",
                "ScalingReplicaSet",
                f"Scaled {direction} replica set {_name(rs)} from {old_scale} to {new_scale}",
            )
        return size_changed, updated

    async def _apply(self, d: Obj, steps: Sequence[Scale], rss: list[Obj]) -> bool:
        """Apply ``steps`` in order to the ReplicaSets in ``rss`` (replaced in place by what was
        stored); True if any size changed."""
        scaled = False
        for step in steps:
            for i, rs in enumerate(rss):
                if _name(rs) == step.name:
                    changed, rss[i] = await self._scale_replica_set(d, rs, step.new)
                    scaled = scaled or changed
                    break
        return scaled

    async def _sync(self, d: Obj, rs_list: Sequence[Obj]) -> float | None:
        """``sync``: a paused or resized Deployment; sizes change, the template does not roll."""
        new_rs, old_rss = await self._all_replica_sets(d, rs_list, create=False)
        rss = [*old_rss, *([new_rs] if new_rs is not None else [])]
        steps = rollout.scale(
            strategy_of(d),
            replica_set_view(new_rs) if new_rs is not None else None,
            [replica_set_view(rs) for rs in old_rss],
            _int((d.get("status") or {}).get("replicas")),
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
        if progress.deployment_complete(strategy.replicas, _generation(d), d.get("status") or {}):
            await self._cleanup(d, rss[:-1])
        return await self._sync_rollout_status(d, rss[:-1], rss[-1])

    def _old_pods_running(self, d: Obj, new_rs: Obj | None, old_rss: Sequence[Obj]) -> bool:
        """``oldPodsRunning``: an old ReplicaSet reports pods, or a pod of one is not finished."""
        if sum(_int((rs.get("status") or {}).get("replicas")) for rs in old_rss) > 0:
            return True
        old_uids = {_uid(rs) for rs in old_rss} - ({_uid(new_rs)} if new_rs is not None else set())
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
            d, [Scale(_name(new_rs), replica_set_view(new_rs).replicas, strategy_of(d).replicas)], holder
        )
        new_rs = holder[0]
        if progress.deployment_complete(strategy_of(d).replicas, _generation(d), d.get("status") or {}):
            await self._cleanup(d, rss)
        return await self._sync_rollout_status(d, rss, new_rs)

    # -- history ---------------------------------------------------------------------------------------

    async def _cleanup(self, d: Obj, old_rss: Sequence[Obj]) -> None:
        limit = _opt_int((d.get("spec") or {}).get("revisionHistoryLimit"))
        if limit is None:
            return
        for name in revision.history_to_delete([replica_set_view(rs) for rs in old_rss], limit):
            try:
                await self.client.delete(APPS, "replicasets", name, object_meta(d).get("namespace"))
            except ApiError as err:
                if err.status != 404:
                    raise

    # -- status ----------------------------------------------------------------------------------------

    async def _check_paused_conditions(self, d: Obj) -> Obj:
        cond = progress.paused_condition(
            bool((d.get("spec") or {}).get("paused")), _deadline(d), d.get("status"), self.clock.now()
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
            generation=_generation(d),
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
            name=_name(d),
            new_rs_name=_name(new_rs) if new_rs is not None else None,
            replicas=strategy.replicas,
            generation=_generation(d),
            deadline=_deadline(d),
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
                generation=_generation(d),
                deadline=_deadline(d),
                previous=previous,
                new=status,
                now=self.clock.now(),
            )
        d["status"] = status
        await self._update_status(d)
        return None

    async def _update_status(self, d: Obj) -> None:
        """Write ``d``'s status; ``d`` becomes the stored object."""
        stored = await self.client.update(
            APPS, "deployments", d, object_meta(d).get("namespace"), subresource="status"
        )
        d.clear()
        d.update(stored)
