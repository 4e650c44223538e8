"""The CronJob controller (kube-controller-manager's ``cronjob``): starts Jobs on a schedule.

The shell around :func:`~cluster.controllers.cronjob.sync.sync_cronjob`: it watches CronJobs and Jobs
(a Job event enqueues its controlling CronJob), confirms with a GET any active Job the cache does not
show before the core may call it missing, deletes and creates Jobs as planned, adds the created Job's
reference to ``status.active`` and writes the status; the returned delay brings the key back at the next
scheduled time.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from cluster.client.errors import ApiError
from cluster.client.lister import split_key
from cluster.controllers.cronjob.sync import CronPlan, job_reference, sync_cronjob
from cluster.controllers.pods import controller_ref
from cluster.controllers.runtime import Controller, ControllerContext

log = logging.getLogger("raykube.controllers.cronjob")

GV = "batch/v1"
JOB_INDEX = "cronjob-controller-uid"


def _cronjob_uid(job: dict[str, Any]) -> list[str]:
    ref = controller_ref(job)
    return [str(ref.get("uid"))] if ref and ref.get("kind") == "CronJob" else []


class CronJobController(Controller):
    NAME: ClassVar[str] = "cronjob"
    COMPONENT: ClassVar[str] = "cronjob-controller"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.cronjobs = self.watch(
            GV,
            "cronjobs",
            on_add=self.enqueue,
            on_update=lambda old, new: self.enqueue(new),
            on_delete=self.enqueue,
        )
        self.jobs = self.watch(
            GV,
            "jobs",
            on_add=self._job_changed,
            on_update=lambda old, new: self._job_changed(new),
            on_delete=self._job_changed,
        )
        self.jobs.add_index(JOB_INDEX, _cronjob_uid)

    def _job_changed(self, job: dict[str, Any]) -> None:
        self.enqueue_controller_of(job, "CronJob")

    async def reconcile(self, key: str) -> float | None:
        namespace, name = split_key(key)
        cronjob = self.cronjobs.get(namespace, name)
        if cronjob is None:
            return None
        uid = str(cronjob["metadata"].get("uid"))
        jobs = [j for j in self.jobs.by_index(JOB_INDEX, uid) if j["metadata"].get("namespace") == namespace]
        seen = {j["metadata"].get("uid") for j in jobs}
        for ref in (cronjob.get("status") or {}).get("active") or ():
            if ref.get("uid") in seen:
                continue
            try:
                found = await self.client.get(GV, "jobs", str(ref.get("name")), namespace)
            except ApiError as err:
                if err.not_found:
                    continue
                raise
            if found["metadata"].get("uid") == ref.get("uid"):
                jobs.append(found)
        plan = sync_cronjob(cronjob, jobs, self.clock.now())
        await self._execute(cronjob, plan)
        return plan.requeue_after

    async def _execute(self, cronjob: dict[str, Any], plan: CronPlan) -> None:
        namespace = cronjob["metadata"]["namespace"]
        for event_type, reason, message in plan.events:
            self.recorder.event(cronjob, event_type, reason, message)
        for job, (event_type, reason, message) in plan.delete:
            try:
                await self.client.delete(
                    GV, "jobs", job["metadata"]["name"], namespace, propagation_policy="Background"
                )
            except ApiError as err:
                if not err.not_found:
                    self.recorder.event(cronjob, "Warning", "FailedDelete", f"Deleted job: {err}")
                    raise
            self.recorder.event(cronjob, event_type, reason, message)
        status = plan.status
        if plan.create is not None:
            body = plan.create
            try:
                created = await self.client.create(GV, "jobs", body, namespace)
                self.recorder.event(
                    cronjob, "Normal", "SuccessfulCreate", f"Created job {created['metadata']['name']}"
                )
            except ApiError as err:
                if not err.already_exists:
                    self.recorder.event(cronjob, "Warning", "FailedCreate", f"Error creating job: {err}")
                    raise
                created = await self.client.get(GV, "jobs", body["metadata"]["name"], namespace)
                ref = controller_ref(created)
                if not ref or ref.get("uid") != cronjob["metadata"].get("uid"):
                    return  # someone else's Job by that name: leave the status to them, as kube does
            active = [r for r in status.get("active") or () if r.get("uid") != created["metadata"].get("uid")]
            status = {**status, "active": [*active, job_reference(created)]}
        if status != (cronjob.get("status") or {}):
            await self.client.update(
                GV, "cronjobs", {**cronjob, "status": status}, namespace, subresource="status"
            )
