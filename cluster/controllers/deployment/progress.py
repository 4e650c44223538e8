"""Deployment status and conditions (pure): what ``kubectl rollout status`` and ``describe`` read.

Mirrors ``deployment/util`` (conditions, ``DeploymentComplete``, ``DeploymentProgressing``,
``DeploymentTimedOut``) and ``progress.go``/``sync.go`` (``calculateStatus``, ``syncRolloutStatus``,
``checkPausedConditions``, ``requeueStuckDeployment``). Statuses and conditions are wire-form dicts
(``lastUpdateTime``/``lastTransitionTime`` as RFC 3339); the time comes in as ``now``.

Invariants:

* setting a condition with the same status and reason changes nothing; a new reason with the same
  status keeps ``lastTransitionTime``; the ``Progressing`` condition alone is rewritten (its
  ``lastUpdateTime`` bumped) each time progress is seen, which is what the deadline is measured from;
* ``ProgressDeadlineExceeded`` is sticky until a new rollout (a created or found ReplicaSet, or a
  resume) replaces it; a completed rollout (``NewReplicaSetAvailable``) is never judged timed out;
* ``Available`` is True exactly when ``availableReplicas >= replicas - maxUnavailable``;
* status counters are omitted when zero, as Kubernetes' ``omitempty`` JSON does, so a status
  recomputed from the same inputs compares equal to the stored one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from cluster.controllers.deployment.rollout import (
    ReplicaSetView,
    available_replicas,
    ready_replicas,
    spec_replicas,
    status_replicas,
)
from cluster.machinery.times import parse_rfc3339, rfc3339

PROGRESSING = "Progressing"
AVAILABLE = "Available"
REPLICA_FAILURE = "ReplicaFailure"

NEW_RS_REASON = "NewReplicaSetCreated"
FOUND_NEW_RS_REASON = "FoundNewReplicaSet"
RS_UPDATED_REASON = "ReplicaSetUpdated"
NEW_RS_AVAILABLE_REASON = "NewReplicaSetAvailable"
TIMED_OUT_REASON = "ProgressDeadlineExceeded"
PAUSED_REASON = "DeploymentPaused"
RESUMED_REASON = "DeploymentResumed"
FAILED_RS_CREATE_REASON = "ReplicaSetCreateError"
MIN_AVAILABLE_REASON = "MinimumReplicasAvailable"
MIN_UNAVAILABLE_REASON = "MinimumReplicasUnavailable"

# progressDeadlineSeconds of MaxInt32 means "no deadline".
NO_DEADLINE = 2**31 - 1

_COUNTERS = ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas", "unavailableReplicas")


def new_condition(kind: str, status: str, reason: str, message: str, now: datetime) -> dict[str, Any]:
    stamp = rfc3339(now)
    return {
        "type": kind,
        "status": status,
        "lastUpdateTime": stamp,
        "lastTransitionTime": stamp,
        "reason": reason,
        "message": message,
    }


def get_condition(status: Mapping[str, Any] | None, kind: str) -> dict[str, Any] | None:
    for cond in (status or {}).get("conditions") or ():
        if isinstance(cond, dict) and cond.get("type") == kind:
            return cond
    return None


def set_condition(status: dict[str, Any], condition: Mapping[str, Any]) -> None:
    """``SetDeploymentCondition``: replace the condition of that type in ``status`` (in place)."""
    current = get_condition(status, str(condition["type"]))
    if (
        current is not None
        and current.get("status") == condition["status"]
        and current.get("reason") == condition["reason"]
    ):
        return
    new = dict(condition)
    if current is not None and current.get("status") == condition["status"]:
        new["lastTransitionTime"] = current.get("lastTransitionTime")
    remove_condition(status, str(condition["type"]))
    status["conditions"] = [*status.get("conditions", []), new]


def remove_condition(status: dict[str, Any], kind: str) -> None:
    kept = [c for c in status.get("conditions") or () if not (isinstance(c, dict) and c.get("type") == kind)]
    if kept:
        status["conditions"] = kept
    else:
        status.pop("conditions", None)


def has_progress_deadline(deadline: int | None) -> bool:
    return deadline is not None and deadline != NO_DEADLINE


def _int(status: Mapping[str, Any] | None, key: str) -> int:
    value = (status or {}).get(key)
    return int(value) if isinstance(value, int) else 0


def normalized(status: Mapping[str, Any] | None) -> dict[str, Any]:
    """``status`` with zero counters and empty members dropped, for comparison."""
    return {k: v for k, v in (status or {}).items() if v not in (None, 0, [], {})}


def calculate_status(
    *,
    generation: int,
    replicas: int,
    max_unavailable: int,
    all_rss: Sequence[ReplicaSetView | None],
    new_rs: ReplicaSetView | None,
    previous: Mapping[str, Any] | None,
    now: datetime,
) -> dict[str, Any]:
    """``calculateStatus``: counters from the ReplicaSets, the previous conditions, and Available."""
    available = available_replicas(all_rss)
    counters = {
        "replicas": status_replicas(all_rss),
        "updatedReplicas": new_rs.status_replicas if new_rs is not None else 0,
        "readyReplicas": ready_replicas(all_rss),
        "availableReplicas": available,
        "unavailableReplicas": max(spec_replicas(all_rss) - available, 0),
    }
    status: dict[str, Any] = {"observedGeneration": generation}
    status.update({k: v for k, v in counters.items() if v})
    if (previous or {}).get("collisionCount") is not None:
        status["collisionCount"] = previous["collisionCount"]  # type: ignore[index]
    conditions = [dict(c) for c in (previous or {}).get("conditions") or () if isinstance(c, dict)]
    if conditions:
        status["conditions"] = conditions
    if available >= replicas - max_unavailable:
        cond = new_condition(
            AVAILABLE, "True", MIN_AVAILABLE_REASON, "Deployment has minimum availability.", now
        )
    else:
        cond = new_condition(
            AVAILABLE, "False", MIN_UNAVAILABLE_REASON, "Deployment does not have minimum availability.", now
        )
    set_condition(status, cond)
    return status


def deployment_complete(replicas: int, generation: int, status: Mapping[str, Any]) -> bool:
    """Every replica updated and available, and the latest spec observed."""
    return (
        _int(status, "updatedReplicas") == replicas
        and _int(status, "replicas") == replicas
        and _int(status, "availableReplicas") == replicas
        and _int(status, "observedGeneration") >= generation
    )


def deployment_progressing(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> bool:
    """More updated, ready or available pods than before, or fewer old ones."""
    old_old = _int(old, "replicas") - _int(old, "updatedReplicas")
    new_old = _int(new, "replicas") - _int(new, "updatedReplicas")
    return (
        _int(new, "updatedReplicas") > _int(old, "updatedReplicas")
        or new_old < old_old
        or _int(new, "readyReplicas") > _int(old, "readyReplicas")
        or _int(new, "availableReplicas") > _int(old, "availableReplicas")
    )


def deployment_timed_out(deadline: int | None, status: Mapping[str, Any], now: datetime) -> bool:
    """No progress recorded for more than ``deadline`` seconds (a finished rollout never times out)."""
    if deadline is None or not has_progress_deadline(deadline):
        return False
    cond = get_condition(status, PROGRESSING)
    if cond is None or cond.get("reason") == NEW_RS_AVAILABLE_REASON:
        return False
    if cond.get("reason") == TIMED_OUT_REASON:
        return True
    since = parse_rfc3339(cond.get("lastUpdateTime"))
    return since is not None and since + timedelta(seconds=deadline) < now


def rollout_status(
    *,
    name: str,
    new_rs_name: str | None,
    replicas: int,
    generation: int,
    deadline: int | None,
    computed: dict[str, Any],
    previous: Mapping[str, Any] | None,
    now: datetime,
) -> dict[str, Any]:
    """``syncRolloutStatus``: ``computed`` (from :func:`calculate_status`) with Progressing updated."""
    status = computed
    if not has_progress_deadline(deadline):
        remove_condition(status, PROGRESSING)
    current = get_condition(previous, PROGRESSING)
    finished = (
        _int(status, "replicas") == _int(status, "updatedReplicas")
        and current is not None
        and current.get("reason") == NEW_RS_AVAILABLE_REASON
    )
    if has_progress_deadline(deadline) and not finished:
        subject = f'ReplicaSet "{new_rs_name}"' if new_rs_name else f'Deployment "{name}"'
        if deployment_complete(replicas, generation, status):
            msg = f"{subject} has successfully progressed."
            set_condition(status, new_condition(PROGRESSING, "True", NEW_RS_AVAILABLE_REASON, msg, now))
        elif deployment_progressing(previous, status):
            cond = new_condition(PROGRESSING, "True", RS_UPDATED_REASON, f"{subject} is progressing.", now)
            if current is not None:
                if current.get("status") == "True":
                    cond["lastTransitionTime"] = current.get("lastTransitionTime")
                remove_condition(status, PROGRESSING)
            set_condition(status, cond)
        elif deployment_timed_out(deadline, status, now):
            msg = f"{subject} has timed out progressing."
            set_condition(status, new_condition(PROGRESSING, "False", TIMED_OUT_REASON, msg, now))
    return status


def replica_failure(
    new_rs: Mapping[str, Any] | None, all_rss: Sequence[Mapping[str, Any]]
) -> dict[str, Any] | None:
    """The ReplicaFailure condition of the new ReplicaSet, else of any ReplicaSet, as a Deployment
    condition (``getReplicaFailures``)."""
    for source in ([new_rs] if new_rs is not None else [], list(all_rss)):
        for rs in source:
            for cond in (rs.get("status") or {}).get("conditions") or ():
                if isinstance(cond, dict) and cond.get("type") == REPLICA_FAILURE:
                    stamp = cond.get("lastTransitionTime")
                    return {
                        "type": REPLICA_FAILURE,
                        "status": cond.get("status"),
                        "lastUpdateTime": stamp,
                        "lastTransitionTime": stamp,
                        "reason": cond.get("reason"),
                        "message": cond.get("message"),
                    }
    return None


def paused_condition(
    paused: bool, deadline: int | None, status: Mapping[str, Any] | None, now: datetime
) -> dict[str, Any] | None:
    """``checkPausedConditions``: the Progressing condition to record on pause or resume, or None.

    A timed-out Deployment keeps its ProgressDeadlineExceeded condition.
    """
    if not has_progress_deadline(deadline):
        return None
    cond = get_condition(status, PROGRESSING)
    if cond is not None and cond.get("reason") == TIMED_OUT_REASON:
        return None
    paused_recorded = cond is not None and cond.get("reason") == PAUSED_REASON
    if paused and not paused_recorded:
        return new_condition(PROGRESSING, "Unknown", PAUSED_REASON, "Deployment is paused", now)
    if not paused and paused_recorded:
        return new_condition(PROGRESSING, "Unknown", RESUMED_REASON, "Deployment is resumed", now)
    return None


def recheck_after(
    *,
    replicas: int,
    generation: int,
    deadline: int | None,
    previous: Mapping[str, Any] | None,
    new: Mapping[str, Any],
    now: datetime,
) -> float | None:
    """``requeueStuckDeployment``: seconds until the deadline of a rollout that is still going (so a
    stuck one is marked timed out on time); None when there is nothing to watch for."""
    cond = get_condition(previous, PROGRESSING)
    if deadline is None or not has_progress_deadline(deadline) or cond is None:
        return None
    if deployment_complete(replicas, generation, new) or cond.get("reason") == TIMED_OUT_REASON:
        return None
    since = parse_rfc3339(cond.get("lastUpdateTime"))
    if since is None:
        return None
    after = (since + timedelta(seconds=deadline) - now).total_seconds()
    return after if after >= 1 else 1.0
