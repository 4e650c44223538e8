"""The Deployment controller's ReplicaSet bookkeeping: claiming (adopt/release), finding or creating
the new ReplicaSet and syncing its revision, scaling, and deleting old history.

:class:`ReplicaSetBookkeeping` is the half of :class:`~.controller.DeploymentController` that writes
ReplicaSets (plus the Deployment's revision annotation and status, which creating a ReplicaSet
updates); the controller adds the watches, the reconcile and the rollout/status steps. The numbers
come from the pure modules (:mod:`.rollout`, :mod:`.revision`, :mod:`.progress`).
"""

from __future__ import annotations

import abc
import contextlib
import copy
from collections.abc import Mapping, Sequence
from typing import Any

from cluster.client.errors import ApiError
from cluster.client.lister import Lister
from cluster.controllers.deployment import progress, revision, rollout
from cluster.controllers.deployment.objects import (
    as_int,
    name_of,
    namespace_terminating,
    opt_int,
    progress_deadline,
    replica_set_view,
    strategy_of,
    uid_of,
)
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
from cluster.controllers.runtime import Controller
from cluster.machinery.meta import object_meta

APPS = "apps/v1"
KIND = "Deployment"

Obj = dict[str, Any]


class ReplicaSetBookkeeping(Controller, abc.ABC):
    """ReplicaSet writes for the Deployment controller; ``replicasets`` is the subclass's lister."""

    replicasets: Lister

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
                live = await self.client.get(APPS, "deployments", name_of(d), meta.get("namespace"))
                if uid_of(live) != meta.get("uid") or object_meta(live).get("deletionTimestamp"):
                    raise RuntimeError(f"deployment {name_of(d)} changed or is being deleted; not adopting")
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
        meta["ownerReferences"] = [r for r in meta.get("ownerReferences") or [] if r.get("uid") != uid_of(d)]
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
        by_name = {name_of(rs): rs for rs in rs_list}
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
        min_ready = as_int((d.get("spec") or {}).get("minReadySeconds"))
        if changed or as_int((rs.get("spec") or {}).get("minReadySeconds")) != min_ready:
            body = copy.deepcopy(rs)
            body["metadata"]["annotations"] = annotations
            body.setdefault("spec", {})["minReadySeconds"] = min_ready
            return await self.client.update(APPS, "replicasets", body, meta.get("namespace"))
        await self._set_deployment_revision(d, str(annotations.get(REVISION_ANNOTATION, "")))
        status = d.setdefault("status", {})
        if (
            progress.has_progress_deadline(progress_deadline(d))
            and progress.get_condition(status, progress.PROGRESSING) is None
        ):
            message = f'Found new replica set "{name_of(rs)}"'
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
        collision_count = opt_int(status.get("collisionCount"))
        template = copy.deepcopy(spec.get("template") or {})
        pod_hash = pod_template_hash(template, collision_count)
        template.setdefault("metadata", {})
        template["metadata"]["labels"] = {
            **(template["metadata"].get("labels") or {}),
            POD_TEMPLATE_HASH_LABEL: pod_hash,
        }
        selector = copy.deepcopy(spec.get("selector") or {})
        selector["matchLabels"] = {**(selector.get("matchLabels") or {}), POD_TEMPLATE_HASH_LABEL: pod_hash}
        name = f"{name_of(d)}-{pod_hash}"
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
                "minReadySeconds": as_int(spec.get("minReadySeconds")),
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
            elif namespace_terminating(err):
                raise
            else:
                message = f'Failed to create new replica set "{name}": {err}'
                if progress.has_progress_deadline(progress_deadline(d)):
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
                f"Scaled up replica set {name_of(created)} from 0 to {replicas}",
            )
        await self._set_deployment_revision(d, str(new_revision))
        if not already_exists and progress.has_progress_deadline(progress_deadline(d)):
            message = f'Created new replica set "{name_of(created)}"'
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
            name_of(d),
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
        old_scale = as_int((rs.get("spec") or {}).get("replicas"), 1)
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
                f"Scaled {direction} replica set {name_of(rs)} from {old_scale} to {new_scale}",
            )
        return size_changed, updated

    async def _apply(self, d: Obj, steps: Sequence[Scale], rss: list[Obj]) -> bool:
        """Apply ``steps`` in order to the ReplicaSets in ``rss`` (replaced in place by what was
        stored); True if any size changed."""
        scaled = False
        for step in steps:
            for i, rs in enumerate(rss):
                if name_of(rs) == step.name:
                    changed, rss[i] = await self._scale_replica_set(d, rs, step.new)
                    scaled = scaled or changed
                    break
        return scaled

    # -- history ---------------------------------------------------------------------------------------

    async def _cleanup(self, d: Obj, old_rss: Sequence[Obj]) -> None:
        limit = opt_int((d.get("spec") or {}).get("revisionHistoryLimit"))
        if limit is None:
            return
        for name in revision.history_to_delete([replica_set_view(rs) for rs in old_rss], limit):
            try:
                await self.client.delete(APPS, "replicasets", name, object_meta(d).get("namespace"))
            except ApiError as err:
                if err.status != 404:
                    raise

    # -- writing the Deployment ----------------------------------------------------------------------------

    async def _update_status(self, d: Obj) -> None:
        """Write ``d``'s status; ``d`` becomes the stored object."""
        stored = await self.client.update(
            APPS, "deployments", d, object_meta(d).get("namespace"), subresource="status"
        )
        d.clear()
        d.update(stored)
