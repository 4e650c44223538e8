"""The Job reconcile core (kube's ``syncJob``/``manageJob``/``trackJobStatusAndRemoveFinalizers``): from
a Job, the pods it controls and the time, a :class:`JobPlan` saying what to write. No I/O.

Finished pods are counted through the ``batch.kubernetes.io/job-tracking`` finalizer, as kube does, so
a pod deleted by someone else is never lost from the counts:

1. a finished pod that still holds the finalizer and is not yet recorded goes into
   ``status.uncountedTerminatedPods`` (``plan.interim_status``, written first);
2. its finalizer is removed (``plan.remove_finalizers``);
3. ``plan.status`` moves the uncounted uids into ``succeeded``/``failed`` (and ``completedIndexes``).

The caller writes them in that order and stops at the first failure (the uids stay uncounted and the
next pass finishes the move, never counting twice). A pod without the finalizer is already counted;
``finalizers_removed`` names pods whose removal the caller made but its cache has not shown yet.

Decisions, in kube's order: a podFailurePolicy ``FailJob`` match, more failures than ``backoffLimit``,
``activeDeadlineSeconds`` passed -> ``FailureTarget`` (with ``restartPolicy: OnFailure`` the container
restarts of active pods count as failures); enough successes -> ``SuccessCriteriaMet``. With
a target the remaining active pods are deleted, and the terminal ``Failed``/``Complete`` condition
(with ``completionTime``) follows once no pod is active or terminating. Otherwise a suspended Job
deletes its active pods (uncounted) and a running one creates or deletes pods towards
``min(parallelism, remaining completions)``, waiting out the failure backoff before replacements.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cluster.controllers.job.backoff import failures_after_last_success, remaining_backoff
from cluster.controllers.job.indexed import (
    completion_index,
    format_intervals,
    parse_intervals,
    pending_indexes,
)
from cluster.controllers.job.pod_failure_policy import FAIL_JOB, match_pod_failure_policy
from cluster.controllers.pods import is_pod_ready
from cluster.machinery.times import parse_rfc3339, rfc3339

TRACKING_FINALIZER = "batch.kubernetes.io/job-tracking"
MAX_POD_CREATE_DELETE_PER_SYNC = 500

COMPLETE, FAILED, SUSPENDED = "Complete", "Failed", "Suspended"
FAILURE_TARGET, SUCCESS_CRITERIA_MET = "FailureTarget", "SuccessCriteriaMet"
REASON_BACKOFF_LIMIT = "BackoffLimitExceeded"
REASON_DEADLINE = "DeadlineExceeded"
REASON_POD_FAILURE_POLICY = "PodFailurePolicy"
REASON_COMPLETIONS_REACHED = "CompletionsReached"
MESSAGE_BACKOFF_LIMIT = "Job has reached the specified backoff limit"
MESSAGE_DEADLINE = "Job was active longer than specified deadline"
MESSAGE_COMPLETIONS_REACHED = "Reached expected number of succeeded pods"

Event = tuple[str, str, str]  # (type, reason, message)


@dataclass(frozen=True, slots=True)
class JobPlan:
    """What one pass wants written, in order: ``interim_status`` (None: nothing new to record),
    ``remove_finalizers``, ``delete`` (active pods, counted as failed when they end),
    ``delete_uncounted`` (strip the finalizer, then delete: excess pods, a suspended Job's pods),
    ``create`` (one completion index per pod, None for NonIndexed), then ``status``; ``events`` once
    the status is written; look again after ``requeue_after`` seconds."""

    status: dict[str, Any]
    interim_status: dict[str, Any] | None = None
    remove_finalizers: tuple[dict[str, Any], ...] = ()
    delete: tuple[dict[str, Any], ...] = ()
    delete_uncounted: tuple[dict[str, Any], ...] = ()
    create: tuple[int | None, ...] = ()
    events: tuple[Event, ...] = ()
    requeue_after: float | None = None


@dataclass(slots=True)
class _Pods:
    """The Job's pods sorted into the sets the decisions need."""

    active: list[dict[str, Any]] = field(default_factory=list)
    terminating: list[dict[str, Any]] = field(default_factory=list)
    succeeded: list[dict[str, Any]] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)


# ------------------------------------------------------------------------------------------ helpers


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def _uid(pod: Mapping[str, Any]) -> str:
    return str(_meta(pod).get("uid", ""))


def _phase(pod: Mapping[str, Any]) -> str:
    return str((pod.get("status") or {}).get("phase", ""))


def has_tracking_finalizer(pod: Mapping[str, Any]) -> bool:
    return TRACKING_FINALIZER in (_meta(pod).get("finalizers") or ())


def find_condition(status: Mapping[str, Any], ctype: str) -> Mapping[str, Any] | None:
    for cond in status.get("conditions") or ():
        if cond.get("type") == ctype and cond.get("status") == "True":
            return cond  # type: ignore[no-any-return]
    return None


def is_job_finished(job: Mapping[str, Any]) -> bool:
    status = job.get("status") or {}
    return find_condition(status, COMPLETE) is not None or find_condition(status, FAILED) is not None


def set_condition(
    conditions: list[dict[str, Any]],
    ctype: str,
    status: str,
    reason: str,
    message: str,
    now: datetime,
) -> bool:
    """Set condition ``ctype`` in place; its transition time moves only when its status changes.
    Returns whether anything changed."""
    stamp = rfc3339(now)
    for cond in conditions:
        if cond.get("type") != ctype:
            continue
        if cond.get("status") == status and cond.get("reason") == reason and cond.get("message") == message:
            return False
        if cond.get("status") != status:
            cond["lastTransitionTime"] = stamp
        cond.update(status=status, reason=reason, message=message, lastProbeTime=stamp)
        return True
    conditions.append(
        {
            "type": ctype,
            "status": status,
            "lastProbeTime": stamp,
            "lastTransitionTime": stamp,
            "reason": reason,
            "message": message,
        }
    )
    return True


def _significant(value: Any) -> Any:
    if isinstance(value, Mapping):
        pairs = ((k, _significant(v)) for k, v in value.items())
        return {k: v for k, v in pairs if v not in (None, 0, "", [], {})}
    return value


def same_status(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Equal once zero, empty and missing fields are taken as the same (the server omits them)."""
    return bool(_significant(a) == _significant(b))


def _removal_order(pod: Mapping[str, Any]) -> tuple[int, int, int, float]:
    """Sort key putting the pods best deleted first (kube's ``ActivePods``): unscheduled, then pending,
    then not ready, then the newest."""
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    phase_rank = {"Pending": 0, "Unknown": 1, "Running": 2}.get(str(status.get("phase")), 0)
    created = parse_rfc3339(_meta(pod).get("creationTimestamp"))
    return (
        1 if spec.get("nodeName") else 0,
        phase_rank,
        1 if is_pod_ready(pod) else 0,
        -(created.timestamp() if created else 0.0),
    )


def _is_failed(pod: Mapping[str, Any], replace_failed_only: bool, now: datetime) -> bool:
    """Failed, or being deleted before it succeeded: at once, unless only failed pods are replaced;
    then once its grace period ran out (``deletionTimestamp`` passed), since raykube's node agent
    removes a deleted pod without writing a terminal phase first."""
    phase = _phase(pod)
    if phase == "Failed":
        return True
    deleted = parse_rfc3339(_meta(pod).get("deletionTimestamp"))
    if deleted is None or phase == "Succeeded":
        return False
    return not replace_failed_only or deleted <= now


def _classify(pods: Iterable[dict[str, Any]], replace_failed_only: bool, now: datetime) -> _Pods:
    out = _Pods()
    for pod in pods:
        phase, deleting = _phase(pod), bool(_meta(pod).get("deletionTimestamp"))
        if deleting and phase not in ("Succeeded", "Failed"):
            out.terminating.append(pod)
        if phase == "Succeeded":
            out.succeeded.append(pod)
        elif _is_failed(pod, replace_failed_only, now):
            out.failed.append(pod)
        elif not deleting:
            out.active.append(pod)
    return out


# --------------------------------------------------------------------------------------------- core


def sync_job(
    job: Mapping[str, Any],
    pods: Sequence[dict[str, Any]],
    now: datetime,
    *,
    finalizers_removed: Iterable[str] = (),
    manage: bool = True,
) -> JobPlan:
    """Plan one pass over ``job`` and the ``pods`` it controls; see the module docstring.

    ``manage`` False (expectations not yet met) skips creating and deleting pods but still counts
    finished ones and decides the conditions.
    """
    spec = job.get("spec") or {}
    old = job.get("status") or {}
    stripped = set(finalizers_removed)

    def tracked(pod: Mapping[str, Any]) -> bool:
        return has_tracking_finalizer(pod) and _uid(pod) not in stripped

    if is_job_finished(job):
        # Nothing left to decide; pods still holding the finalizer are let go without counting.
        return JobPlan(
            status=copy.deepcopy(dict(old)), remove_finalizers=tuple(p for p in pods if tracked(p))
        )

    indexed = spec.get("completionMode") == "Indexed"
    completions: int | None = spec.get("completions")
    backoff_limit = int(spec.get("backoffLimit", 6))
    policy = spec.get("podFailurePolicy")
    replace_failed_only = spec.get("podReplacementPolicy") == "Failed" or policy is not None
    groups = _classify(pods, replace_failed_only, now)
    by_uid = {_uid(p): p for p in pods}

    # -- 1. record newly finished pods as uncounted ---------------------------------------------
    uncounted = old.get("uncountedTerminatedPods") or {}
    unc_succeeded: list[str] = list(uncounted.get("succeeded") or ())
    unc_failed: list[str] = list(uncounted.get("failed") or ())
    completed: set[int] = parse_intervals(old.get("completedIndexes"), completions or 0) if indexed else set()
    pending_completed = {
        ix
        for uid in unc_succeeded
        if uid in by_uid and (ix := completion_index(by_uid[uid], completions or 0)) is not None
    }
    let_go: list[dict[str, Any]] = []  # finished pods released without being counted
    fail_job_message: str | None = None
    ignored: set[str] = set()
    for pod in groups.failed:
        match = match_pod_failure_policy(policy, pod)
        if match is not None and not match.counts:
            ignored.add(_uid(pod))
        if not tracked(pod) or _uid(pod) in unc_failed:
            continue
        if match is not None and not match.counts:
            let_go.append(pod)
            continue
        if match is not None and match.action == FAIL_JOB and fail_job_message is None:
            fail_job_message = match.message
        unc_failed.append(_uid(pod))
    for pod in groups.succeeded:
        if not tracked(pod) or _uid(pod) in unc_succeeded:
            continue
        if indexed:
            ix = completion_index(pod, completions or 0)
            if ix is None or ix in completed or ix in pending_completed:
                let_go.append(pod)
                continue
            pending_completed.add(ix)
        unc_succeeded.append(_uid(pod))
    interim: dict[str, Any] | None = None
    if (
        list(uncounted.get("succeeded") or ()) != unc_succeeded
        or list(uncounted.get("failed") or ()) != unc_failed
    ):
        interim = copy.deepcopy(dict(old))
        interim["uncountedTerminatedPods"] = {
            k: v for k, v in (("succeeded", unc_succeeded), ("failed", unc_failed)) if v
        }
    counting = set(unc_succeeded) | set(unc_failed)
    remove = [p for p in pods if tracked(p) and _uid(p) in counting] + let_go

    # -- 2. the counts once the uncounted pods are flushed ---------------------------------------
    status: dict[str, Any] = copy.deepcopy(dict(old))
    status["uncountedTerminatedPods"] = {}
    succeeded = int(old.get("succeeded") or 0) + len(unc_succeeded)
    failed = int(old.get("failed") or 0) + len(unc_failed)
    if indexed:
        completed |= pending_completed
        status["completedIndexes"] = format_intervals(completed)
        succeeded = len(completed)
    status["succeeded"], status["failed"] = succeeded, failed
    conditions: list[dict[str, Any]] = [dict(c) for c in old.get("conditions") or ()]
    events: list[Event] = []
    requeue: float | None = None
    active = groups.active
    terminating = groups.terminating

    # -- 3. decide: failure, success, or keep running ---------------------------------------------
    start = parse_rfc3339(old.get("startTime"))
    deadline = spec.get("activeDeadlineSeconds")
    target = find_condition(old, FAILURE_TARGET) or find_condition(old, SUCCESS_CRITERIA_MET)
    if target is None:
        failure: tuple[str, str] | None = None
        if fail_job_message is not None:
            failure = (REASON_POD_FAILURE_POLICY, fail_job_message)
        elif failed > backoff_limit or _past_backoff_limit_on_failure(spec, active, backoff_limit):
            failure = (REASON_BACKOFF_LIMIT, MESSAGE_BACKOFF_LIMIT)
        elif deadline is not None and start is not None and not spec.get("suspend"):
            left = start.timestamp() + float(deadline) - now.timestamp()
            if left <= 0:
                failure = (REASON_DEADLINE, MESSAGE_DEADLINE)
            else:
                requeue = left
        if failure is not None:
            set_condition(conditions, FAILURE_TARGET, "True", failure[0], failure[1], now)
            target = conditions[-1]
        elif _succeeded_enough(indexed, completions, succeeded, completed, len(active)):
            set_condition(
                conditions,
                SUCCESS_CRITERIA_MET,
                "True",
                REASON_COMPLETIONS_REACHED,
                MESSAGE_COMPLETIONS_REACHED,
                now,
            )
            target = conditions[-1]

    delete: list[dict[str, Any]] = []
    delete_uncounted: list[dict[str, Any]] = []
    create: list[int | None] = []
    if target is not None:
        requeue = None
        delete = list(active) if manage else []
        if not active and not terminating:
            final = FAILED if target.get("type") == FAILURE_TARGET else COMPLETE
            reason, message = str(target.get("reason", "")), str(target.get("message", ""))
            set_condition(conditions, final, "True", reason, message, now)
            if final == COMPLETE:
                status["completionTime"] = rfc3339(now)
                events.append(("Normal", "Completed", "Job completed"))
            else:
                events.append(("Warning", reason, message))
    elif spec.get("suspend"):
        requeue = None
        if manage:
            delete_uncounted = list(active)
        if set_condition(conditions, SUSPENDED, "True", "JobSuspended", "Job suspended", now):
            events.append(("Normal", "Suspended", "Job suspended"))
    else:
        if find_condition(old, SUSPENDED) is not None:
            set_condition(conditions, SUSPENDED, "False", "JobResumed", "Job resumed", now)
            events.append(("Normal", "Resumed", "Job resumed"))
            start = None
        if start is None:
            start = now
            status["startTime"] = rfc3339(now)
            if deadline is not None:
                requeue = float(deadline)
        if manage:
            failures, last_failure = failures_after_last_success(
                groups.succeeded, [p for p in groups.failed if _uid(p) not in ignored]
            )
            wait = remaining_backoff(failures, last_failure, now)
            delete_uncounted, create, wait_needed = _manage(
                spec, active, terminating if replace_failed_only else [], completed, succeeded, wait
            )
            if wait_needed:
                requeue = wait if requeue is None else min(requeue, wait)

    if replace_failed_only:
        # A terminating pod counts as failed once its grace period ends: look again then.
        for pod in terminating:
            due = parse_rfc3339(_meta(pod).get("deletionTimestamp"))
            if due is not None and due > now:
                wait_s = (due - now).total_seconds()
                requeue = wait_s if requeue is None else min(requeue, wait_s)
    deleted = {_uid(p) for p in delete} | {_uid(p) for p in delete_uncounted}
    still_active = [p for p in active if _uid(p) not in deleted]
    status["active"] = len(still_active) + len(create)
    status["ready"] = sum(1 for p in still_active if is_pod_ready(p))
    status["terminating"] = len(terminating) + len(deleted)
    if conditions:
        status["conditions"] = conditions
    return JobPlan(
        status=status,
        interim_status=interim,
        remove_finalizers=tuple(remove),
        delete=tuple(delete),
        delete_uncounted=tuple(delete_uncounted),
        create=tuple(create),
        events=tuple(events),
        requeue_after=requeue,
    )


def _past_backoff_limit_on_failure(
    spec: Mapping[str, Any], active: Sequence[Mapping[str, Any]], backoff_limit: int
) -> bool:
    """With ``restartPolicy: OnFailure`` failures are container restarts inside running pods, so
    they count against ``backoffLimit`` too (kube's ``pastBackoffLimitOnFailure``)."""
    template_spec = (spec.get("template") or {}).get("spec") or {}
    if template_spec.get("restartPolicy") != "OnFailure":
        return False
    restarts = 0
    for pod in active:
        if _phase(pod) not in ("Pending", "Running"):
            continue
        status = pod.get("status") or {}
        for cs in [*(status.get("initContainerStatuses") or ()), *(status.get("containerStatuses") or ())]:
            restarts += int(cs.get("restartCount") or 0)
    return restarts > 0 if backoff_limit == 0 else restarts >= backoff_limit


def _succeeded_enough(
    indexed: bool, completions: int | None, succeeded: int, completed: set[int], active: int
) -> bool:
    if completions is None:
        # Work-queue Jobs: done once a pod succeeded and none is left running.
        return succeeded > 0 and active == 0
    if indexed:
        return len(completed) >= completions
    return succeeded >= completions


def _manage(
    spec: Mapping[str, Any],
    active: list[dict[str, Any]],
    terminating: list[dict[str, Any]],
    completed: set[int],
    succeeded: int,
    backoff_wait: float,
) -> tuple[list[dict[str, Any]], list[int | None], bool]:
    """Pods to delete (uncounted) and to create to reach the wanted number of active pods; the last
    value says the creations wait for the failure backoff."""
    parallelism = int(spec.get("parallelism", 1) or 0)
    completions: int | None = spec.get("completions")
    if completions is None:
        want = len(active) if succeeded > 0 else parallelism
    else:
        want = max(0, min(parallelism, completions - succeeded))
    delete: list[dict[str, Any]] = []
    keep = list(active)
    if spec.get("completionMode") == "Indexed" and completions is not None:
        seen: set[int] = set()
        keep = []
        for pod in sorted(active, key=_removal_order, reverse=True):
            ix = completion_index(pod, completions)
            if ix is None or ix in seen or ix in completed:
                delete.append(pod)
            else:
                seen.add(ix)
                keep.append(pod)
    if len(keep) > want:
        excess = sorted(keep, key=_removal_order)[: len(keep) - want]
        delete.extend(excess[:MAX_POD_CREATE_DELETE_PER_SYNC])
        return delete, [], False
    missing = min(want - len(keep) - len(terminating), MAX_POD_CREATE_DELETE_PER_SYNC)
    if missing <= 0:
        return delete, [], False
    if backoff_wait > 0:
        return delete, [], True
    if spec.get("completionMode") == "Indexed" and completions is not None:
        taken = set(completed)
        for pod in [*keep, *terminating]:
            ix = completion_index(pod, completions)
            if ix is not None:
                taken.add(ix)
        return delete, list(pending_indexes(completions, taken, missing)), False
    return delete, [None] * missing, False
