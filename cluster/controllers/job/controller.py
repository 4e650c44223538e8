"""The Job controller (kube-controller-manager's ``job``): runs a Job's pods to completion.

The shell around :func:`~cluster.controllers.job.sync.sync_job`: it watches Jobs and pods (handlers
only enqueue the owning Job), reads the Job and its pods from the listers, and carries out the plan in
the order the finalizer protocol needs (interim status, finalizer removals, deletions, creations,
final status), stopping at the first failed write so the next pass resumes from what the server has.

Two in-memory records cover the informer's lag: pod :class:`Expectations` (no second batch of
creations before the first is seen) and the uids whose tracking finalizer this controller removed but
the cache still shows (so they are not counted twice). Pods whose Job is gone or being deleted lose
the finalizer, so they are never stuck.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, ClassVar

from cluster.client.errors import ApiError
from cluster.client.lister import split_key
from cluster.controllers.expectations import Expectations
from cluster.controllers.job.indexed import with_completion_index
from cluster.controllers.job.sync import (
    TRACKING_FINALIZER,
    JobPlan,
    has_tracking_finalizer,
    same_status,
    sync_job,
)
from cluster.controllers.pods import controller_ref, pod_from_template, slow_start_batch
from cluster.controllers.runtime import Controller, ControllerContext

log = logging.getLogger("raykube.controllers.job")

JOB_GV, JOB_PLURAL, JOB_KIND = "batch/v1", "jobs", "Job"
POD_INDEX = "job-controller-uid"
MANAGED_BY_JOB_CONTROLLER = "kubernetes.io/job-controller"


def _owner_uid(pod: dict[str, Any]) -> list[str]:
    ref = controller_ref(pod)
    return [str(ref.get("uid"))] if ref and ref.get("kind") == JOB_KIND else []


def new_job_pod(job: Mapping[str, Any], index: int | None) -> dict[str, Any]:
    """A pod for ``job`` from its template: controlled by it, holding the tracking finalizer, and for
    an Indexed Job carrying ``index`` (named ``<job>-<index>-xxxxx`` as kube names them)."""
    name = str((job.get("metadata") or {}).get("name", ""))
    template = (job.get("spec") or {}).get("template") or {}
    generate = f"{name}-" if index is None else f"{name}-{index}-"
    pod = pod_from_template(template, job, JOB_GV, JOB_KIND, generate_name=generate)
    finalizers = list(pod["metadata"].get("finalizers") or [])
    pod["metadata"]["finalizers"] = [*finalizers, TRACKING_FINALIZER]
    return pod if index is None else with_completion_index(pod, name, index)


def _without_finalizer_patch(pod: Mapping[str, Any]) -> dict[str, Any]:
    meta = pod.get("metadata") or {}
    rest = [f for f in meta.get("finalizers") or () if f != TRACKING_FINALIZER]
    return {"metadata": {"finalizers": rest, "resourceVersion": meta.get("resourceVersion")}}


class JobController(Controller):
    NAME: ClassVar[str] = "job"
    COMPONENT: ClassVar[str] = "job-controller"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.expectations = Expectations(ctx.clock)
        self.finalizers_removed: dict[str, set[str]] = {}
        self.jobs = self.watch(
            JOB_GV,
            JOB_PLURAL,
            on_add=self.enqueue,
            on_update=lambda old, new: self.enqueue(new),
            on_delete=self._job_deleted,
        )
        self.pods = self.watch(
            "v1", "pods", on_add=self._pod_added, on_update=self._pod_updated, on_delete=self._pod_deleted
        )
        self.pods.add_index(POD_INDEX, _owner_uid)

    # -- handlers (enqueue only) --------------------------------------------------------------------

    def _job_key(self, pod: Mapping[str, Any]) -> str | None:
        ref = controller_ref(pod)
        if ref is None or ref.get("kind") != JOB_KIND:
            return None
        return f"{(pod.get('metadata') or {}).get('namespace')}/{ref.get('name')}"

    def _pod_added(self, pod: dict[str, Any]) -> None:
        key = self._job_key(pod)
        if key is not None:
            self.expectations.creation_observed(key)
            self.queue.add(key)

    def _pod_updated(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        key = self._job_key(new)
        if key is None:
            return
        if not has_tracking_finalizer(new):
            self.finalizers_removed.get(key, set()).discard(str(new["metadata"].get("uid")))
        self.queue.add(key)

    def _pod_deleted(self, pod: dict[str, Any]) -> None:
        key = self._job_key(pod)
        if key is None:
            return
        uid = str((pod.get("metadata") or {}).get("uid"))
        self.expectations.deletion_observed(key, uid)
        self.finalizers_removed.get(key, set()).discard(uid)
        self.queue.add(key)

    def _job_deleted(self, job: dict[str, Any]) -> None:
        self.enqueue(job)

    # -- reconcile ------------------------------------------------------------------------------------

    async def reconcile(self, key: str) -> float | None:
        namespace, name = split_key(key)
        job = self.jobs.get(namespace, name)
        if job is None or job["metadata"].get("deletionTimestamp"):
            await self._release_pods(key, namespace, name, job)
            return None
        managed_by = (job.get("spec") or {}).get("managedBy")
        if managed_by not in (None, MANAGED_BY_JOB_CONTROLLER):
            return None  # another controller runs this Job (kube's spec.managedBy)
        uid = str(job["metadata"].get("uid"))
        pods = [p for p in self.pods.by_index(POD_INDEX, uid) if p["metadata"].get("namespace") == namespace]
        removed = self.finalizers_removed.setdefault(key, set())
        removed &= {str(p["metadata"].get("uid")) for p in pods if has_tracking_finalizer(p)}
        plan = sync_job(
            job,
            pods,
            self.clock.now(),
            finalizers_removed=removed,
            manage=self.expectations.satisfied(key),
        )
        await self._execute(key, job, plan)
        return plan.requeue_after

    async def _release_pods(
        self, key: str, namespace: str | None, name: str, job: Mapping[str, Any] | None
    ) -> None:
        """The Job is gone (or going): its pods lose the tracking finalizer so they can be deleted."""
        self.expectations.forget(key)
        if job is None:
            self.finalizers_removed.pop(key, None)
        for pod in self.pods.list(namespace):
            ref = controller_ref(pod)
            if not ref or ref.get("kind") != JOB_KIND or ref.get("name") != name:
                continue
            if job is not None and ref.get("uid") != job["metadata"].get("uid"):
                continue
            if has_tracking_finalizer(pod):
                await self._remove_finalizer(key, pod)

    async def _remove_finalizer(self, key: str, pod: Mapping[str, Any]) -> None:
        meta = pod.get("metadata") or {}
        try:
            await self.client.patch(
                "v1", "pods", meta["name"], _without_finalizer_patch(pod), meta["namespace"]
            )
        except ApiError as err:
            if not err.not_found:
                raise
        self.finalizers_removed.setdefault(key, set()).add(str(meta.get("uid")))

    async def _write_status(self, job: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
        body = {**job, "status": status}
        meta = job["metadata"]
        return await self.client.update(JOB_GV, JOB_PLURAL, body, meta["namespace"], subresource="status")

    async def _execute(self, key: str, job: dict[str, Any], plan: JobPlan) -> None:
        namespace = job["metadata"]["namespace"]
        if plan.interim_status is not None:
            job = await self._write_status(job, plan.interim_status)
        for pod in plan.remove_finalizers:
            await self._remove_finalizer(key, pod)
        to_delete = [*plan.delete, *plan.delete_uncounted]
        if to_delete:
            self.expectations.expect_deletions(key, [str(p["metadata"].get("uid")) for p in to_delete])
        uncounted = {id(p) for p in plan.delete_uncounted}
        for pod in to_delete:
            meta = pod["metadata"]
            try:
                if id(pod) in uncounted and has_tracking_finalizer(pod):
                    await self._remove_finalizer(key, pod)
                await self.client.delete("v1", "pods", meta["name"], namespace)
            except ApiError as err:
                self.expectations.deletion_observed(key, str(meta.get("uid")))
                if not err.not_found:
                    raise
                continue
            self.recorder.event(job, "Normal", "SuccessfulDelete", f"Deleted pod: {meta['name']}")
        status = plan.status
        error: BaseException | None = None
        if plan.create:
            self.expectations.expect_creations(key, len(plan.create))
            attempted = 0

            async def create(i: int) -> None:
                nonlocal attempted
                attempted += 1
                try:
                    pod = await self.client.create("v1", "pods", new_job_pod(job, plan.create[i]), namespace)
                except BaseException:
                    self.expectations.creation_observed(key)
                    raise
                self.recorder.event(
                    job, "Normal", "SuccessfulCreate", f"Created pod: {pod['metadata']['name']}"
                )

            done, error = await slow_start_batch(len(plan.create), 1, create)
            if error is not None:
                # The batches after the failing one were never tried: nothing to wait for from them.
                for _ in range(len(plan.create) - attempted):
                    self.expectations.creation_observed(key)
                status = {**status, "active": int(status.get("active", 0)) - (len(plan.create) - done)}
                self.recorder.event(job, "Warning", "FailedCreate", f"Error creating: {error}")
        if not same_status(status, job.get("status") or {}):
            await self._write_status(job, status)
        for event_type, reason, message in plan.events:
            self.recorder.event(job, event_type, reason, message)
        if error is not None:
            raise error
