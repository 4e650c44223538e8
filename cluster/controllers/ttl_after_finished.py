"""The TTL-after-finished controller (kube-controller-manager's ``ttl-after-finished``): a finished Job
with ``spec.ttlSecondsAfterFinished`` is deleted once that many seconds passed since it finished.

A Job finished when its ``Complete`` or ``Failed`` condition became true (that condition's
``lastTransitionTime``). Before deleting, the controller reads the Job again from the server, so a TTL
changed or a Job re-created under the same name since the cache was filled is honoured; the delete
carries a uid precondition for the same reason. Its pods go with it through the garbage collector
(propagation ``Background``; kube's controller asks for ``Foreground``, which holds the Job until its
pods are gone).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, ClassVar

from cluster.client.errors import ApiError
from cluster.client.lister import split_key
from cluster.controllers.runtime import Controller, ControllerContext
from cluster.machinery.times import parse_rfc3339

log = logging.getLogger("raykube.controllers.ttl_after_finished")

GV = "batch/v1"


def finish_time(job: Mapping[str, Any]) -> datetime | None:
    """When the Job's ``Complete`` or ``Failed`` condition became true; None while it runs."""
    for cond in (job.get("status") or {}).get("conditions") or ():
        if cond.get("type") in ("Complete", "Failed") and cond.get("status") == "True":
            return parse_rfc3339(cond.get("lastTransitionTime"))
    return None


def expire_at(job: Mapping[str, Any]) -> datetime | None:
    """When the Job may be deleted; None when it has no TTL, is not finished or is being deleted."""
    ttl = (job.get("spec") or {}).get("ttlSecondsAfterFinished")
    if ttl is None or (job.get("metadata") or {}).get("deletionTimestamp"):
        return None
    finished = finish_time(job)
    return None if finished is None else finished + timedelta(seconds=int(ttl))


def time_left(job: Mapping[str, Any], now: datetime) -> float | None:
    """Seconds until the Job expires (0 or less: delete now); None: nothing to do for it."""
    at = expire_at(job)
    return None if at is None else (at - now).total_seconds()


class TTLAfterFinishedController(Controller):
    NAME: ClassVar[str] = "ttl-after-finished"
    COMPONENT: ClassVar[str] = "ttl-after-finished-controller"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.jobs = self.watch(
            GV, "jobs", on_add=self._job_changed, on_update=lambda _, new: self._job_changed(new)
        )

    def _job_changed(self, job: dict[str, Any]) -> None:
        if expire_at(job) is not None:
            self.enqueue(job)

    async def reconcile(self, key: str) -> float | None:
        namespace, name = split_key(key)
        job = self.jobs.get(namespace, name)
        if job is None:
            return None
        left = time_left(job, self.clock.now())
        if left is None:
            return None
        if left > 0:
            return left
        try:
            fresh = await self.client.get(GV, "jobs", name, namespace)
        except ApiError as err:
            if err.not_found:
                return None
            raise
        left = time_left(fresh, self.clock.now())
        if left is None:
            return None
        if left > 0:
            return left
        uid = fresh["metadata"].get("uid")
        try:
            await self.client.delete(
                GV, "jobs", name, namespace, propagation_policy="Background", preconditions={"uid": uid}
            )
        except ApiError as err:
            if not (err.not_found or err.conflict):
                raise
        log.info("deleted job %s/%s %s after its ttlSecondsAfterFinished", namespace, name, uid)
        return None
