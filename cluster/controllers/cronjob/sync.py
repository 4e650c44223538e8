"""The CronJob reconcile core (kube's ``syncCronJob`` and ``cleanupFinishedJobs``): from a CronJob, the
Jobs it controls and the time, a :class:`CronPlan`. No I/O.

Order of a pass, as kube's: finished Jobs leave ``status.active`` (``SawCompletedJob``) and the latest
success sets ``lastSuccessfulTime``; active references to Jobs that no longer exist are dropped
(``MissingJob``; the caller passes every Job it could still find, so a slow cache is not mistaken for a
deletion); a CronJob being deleted, one with an unknown time zone, a suspended or an unparseable one
starts nothing. Otherwise the most recent unmet schedule time decides:

* none -> wait for the next one (``MissSchedule`` when the only unmet ones are older than
  ``startingDeadlineSeconds``);
* more than 100 missed -> ``TooManyMissedTimes`` and no start;
* already started -> nothing; ``Forbid`` with an active Job -> ``JobAlreadyActive``;
* ``Replace`` -> the active Jobs are deleted first.

The new Job is named ``<cronjob>-<minutes since the epoch>`` (a second create of the same time fails
with AlreadyExists instead of running twice). Finished Jobs beyond the history limits are deleted,
oldest start first. The caller creates the Job, adds its reference to ``status.active`` and looks
again at ``requeue_after``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime
from typing import Any

from cluster.controllers.cronjob.schedule import (
    ScheduleError,
    TimeZoneError,
    earliest_time,
    has_tz_prefix,
    load_zone,
    most_recent_schedule,
    parse_schedule,
)
from cluster.controllers.pods import owner_reference
from cluster.machinery.times import parse_rfc3339, rfc3339

SCHEDULED_TIMESTAMP_ANNOTATION = "batch.kubernetes.io/cronjob-scheduled-timestamp"
NEXT_SCHEDULE_DELTA = 0.1  # look again just after the scheduled time, as kube does
CRONJOB_GV, CRONJOB_KIND = "batch/v1", "CronJob"

Event = tuple[str, str, str]


@dataclass(frozen=True, slots=True)
class CronPlan:
    """``delete`` (Jobs, with the event to record after each), then ``create`` (a Job body; its
    reference joins ``status.active``), then ``status``; ``events`` at once; ``requeue_after`` s."""

    status: dict[str, Any]
    create: dict[str, Any] | None = None
    delete: tuple[tuple[dict[str, Any], Event], ...] = ()
    events: tuple[Event, ...] = ()
    requeue_after: float | None = None


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def finished_condition(job: Mapping[str, Any]) -> str | None:
    """``Complete`` or ``Failed`` when the Job has that condition true, else None."""
    for cond in (job.get("status") or {}).get("conditions") or ():
        if cond.get("type") in ("Complete", "Failed") and cond.get("status") == "True":
            return str(cond["type"])
    return None


def job_reference(job: Mapping[str, Any]) -> dict[str, Any]:
    meta = _meta(job)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "name": meta.get("name"),
        "namespace": meta.get("namespace"),
        "uid": meta.get("uid"),
        "resourceVersion": meta.get("resourceVersion"),
    }


def job_name(cronjob_name: str, scheduled: datetime) -> str:
    return f"{cronjob_name}-{int(scheduled.timestamp()) // 60}"


def job_from_template(cronjob: Mapping[str, Any], scheduled: datetime) -> dict[str, Any]:
    """The Job the CronJob starts for ``scheduled`` (kube's ``getJobFromTemplate2``)."""
    meta, spec = _meta(cronjob), cronjob.get("spec") or {}
    template = spec.get("jobTemplate") or {}
    tmeta = template.get("metadata") or {}
    try:
        zone = load_zone(spec.get("timeZone"))
    except TimeZoneError:
        zone = scheduled.tzinfo or load_zone(None)
    annotations = dict(tmeta.get("annotations") or {})
    annotations[SCHEDULED_TIMESTAMP_ANNOTATION] = scheduled.astimezone(zone).isoformat()
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name(str(meta.get("name", "")), scheduled),
            "namespace": meta.get("namespace"),
            "labels": dict(tmeta.get("labels") or {}),
            "annotations": annotations,
            "ownerReferences": [owner_reference(cronjob, CRONJOB_GV, CRONJOB_KIND)],
        },
        "spec": copy.deepcopy(dict(template.get("spec") or {})),
    }


def _history_order(job: Mapping[str, Any]) -> tuple[int, float, str]:
    """Oldest start first; Jobs that never started last; the name breaks ties (kube's byJobStartTime)."""
    started = parse_rfc3339((job.get("status") or {}).get("startTime"))
    if started is None:
        return (1, 0.0, str(_meta(job).get("name", "")))
    return (0, started.timestamp(), str(_meta(job).get("name", "")))


def jobs_to_trim(spec: Mapping[str, Any], jobs: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Finished Jobs beyond ``successfulJobsHistoryLimit`` / ``failedJobsHistoryLimit``, oldest first."""
    out: list[Mapping[str, Any]] = []
    for kind, limit_field in (
        ("Complete", "successfulJobsHistoryLimit"),
        ("Failed", "failedJobsHistoryLimit"),
    ):
        limit = spec.get(limit_field)
        if limit is None:
            continue
        done = sorted((j for j in jobs if finished_condition(j) == kind), key=_history_order)
        out.extend(done[: max(0, len(done) - int(limit))])
    return out


def _delete_event(job: Mapping[str, Any]) -> Event:
    return ("Normal", "SuccessfulDelete", f"Deleted job {_meta(job).get('name')}")


def sync_cronjob(cronjob: Mapping[str, Any], jobs: Sequence[Mapping[str, Any]], now: datetime) -> CronPlan:
    """Plan one pass; ``jobs`` are the Jobs this CronJob controls (see the module docstring)."""
    meta, spec = _meta(cronjob), cronjob.get("spec") or {}
    status: dict[str, Any] = copy.deepcopy(dict(cronjob.get("status") or {}))
    active: list[dict[str, Any]] = [dict(r) for r in status.get("active") or ()]
    events: list[Event] = []
    by_uid = {_meta(j).get("uid"): j for j in jobs}

    def in_active(uid: Any) -> bool:
        return any(r.get("uid") == uid for r in active)

    for job in jobs:
        uid, condition = _meta(job).get("uid"), finished_condition(job)
        if condition is not None and in_active(uid):
            active = [r for r in active if r.get("uid") != uid]
            events.append(
                (
                    "Normal",
                    "SawCompletedJob",
                    f"Saw completed job: {_meta(job).get('name')}, condition: {condition}",
                )
            )
        if condition == "Complete":
            completed = (job.get("status") or {}).get("completionTime")
            last = parse_rfc3339(status.get("lastSuccessfulTime"))
            when = parse_rfc3339(completed)
            if when is not None and (last is None or when > last):
                status["lastSuccessfulTime"] = completed
    for ref in list(active):
        if ref.get("uid") not in by_uid:
            events.append(("Normal", "MissingJob", f"Active job went missing: {ref.get('name')}"))
            active = [r for r in active if r.get("uid") != ref.get("uid")]

    deletes: list[tuple[dict[str, Any], Event]] = []
    trimmed = {_meta(j).get("uid") for j in jobs_to_trim(spec, jobs)}
    for job in jobs:
        if _meta(job).get("uid") in trimmed:
            deletes.append((dict(job), _delete_event(job)))

    def plan(create: dict[str, Any] | None = None, requeue: float | None = None) -> CronPlan:
        if active:
            status["active"] = active
        else:
            status.pop("active", None)
        return CronPlan(status, create, tuple(deletes), tuple(events), requeue)

    if meta.get("deletionTimestamp"):
        return plan()
    schedule_text = str(spec.get("schedule", ""))
    try:
        schedule = parse_schedule(schedule_text, spec.get("timeZone"))
    except TimeZoneError as err:
        events.append(("Warning", "UnknownTimeZone", f"invalid timeZone: {spec.get('timeZone')!r}: {err}"))
        return plan()
    except ScheduleError as err:
        events.append(("Warning", "UnparseableSchedule", f"unparseable schedule: {schedule_text!r} : {err}"))
        return plan()
    if has_tz_prefix(schedule_text):
        events.append(
            (
                "Warning",
                "UnsupportedSchedule",
                f"CRON_TZ or TZ used in schedule {schedule_text!r} is not officially supported, see "
                "https://kubernetes.io/docs/concepts/workloads/controllers/cron-jobs/ for more details",
            )
        )
    if spec.get("suspend"):
        return plan()

    until_next = (schedule.next_after(now) - now).total_seconds() + NEXT_SCHEDULE_DELTA
    created = parse_rfc3339(meta.get("creationTimestamp")) or now
    deadline = spec.get("startingDeadlineSeconds")
    last = parse_rfc3339(status.get("lastScheduleTime"))
    missed = most_recent_schedule(schedule, earliest_time(last, created, now, deadline), now)
    if missed.too_many:
        events.append(
            (
                "Warning",
                "TooManyMissedTimes",
                "too many missed start times. "
                "Set or decrease .spec.startingDeadlineSeconds or check clock skew",
            )
        )
        return plan(requeue=until_next)
    scheduled = missed.most_recent
    if scheduled is None:
        if deadline is not None:
            # Nothing unmet inside the deadline window; a time passed before it was missed for good.
            late = most_recent_schedule(schedule, earliest_time(last, created, now, None), now).most_recent
            if late is not None:
                message = f"Missed scheduled time to start a job: {format_datetime(late)}"
                events.append(("Warning", "MissSchedule", message))
        return plan(requeue=until_next)
    name = job_name(str(meta.get("name", "")), scheduled)
    if any(r.get("name") == name for r in active) or last == scheduled:
        return plan(requeue=until_next)
    policy = spec.get("concurrencyPolicy", "Allow")
    if policy == "Forbid" and active:
        events.append(
            (
                "Normal",
                "JobAlreadyActive",
                "Not starting job because prior execution is running and concurrency policy is Forbid",
            )
        )
        return plan(requeue=until_next)
    if policy == "Replace":
        for ref in active:
            running = by_uid.get(ref.get("uid"))
            if running is not None and _meta(running).get("uid") not in trimmed:
                deletes.append((dict(running), _delete_event(running)))
        active = []
    status["lastScheduleTime"] = rfc3339(scheduled)
    return plan(create=job_from_template(cronjob, scheduled), requeue=until_next)
