"""Pod-recreation backoff of a Job (kube's ``backoff_utils.go``), computed from the pods themselves.

After failures a Job waits before it creates replacement pods: 10 s after the first failure since the
last success, doubling with every further one, capped at 6 minutes. The count and the time of the last
failure are read from the finished pods the Job still owns (a Job never deletes its finished pods), so
the answer is the same after a controller restart; a success resets the count.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from cluster.machinery.times import parse_rfc3339

DEFAULT_BACKOFF = 10.0
MAX_BACKOFF = 360.0


def backoff_delay(failures: int, base: float = DEFAULT_BACKOFF, cap: float = MAX_BACKOFF) -> float:
    """Seconds to wait after ``failures`` consecutive failures: 0, base, 2*base, ... up to ``cap``."""
    if failures <= 0:
        return 0.0
    delay = base
    for _ in range(failures - 1):
        delay *= 2
        if delay >= cap:
            return cap
    return min(delay, cap)


def pod_finish_time(pod: Mapping[str, Any]) -> datetime | None:
    """When a finished pod finished: the last container's ``finishedAt`` (when every container has
    one), else the transition of ``Ready`` to False, else ``deletionTimestamp`` minus the grace
    period, else its creation time."""
    status = pod.get("status") or {}
    latest: datetime | None = None
    statuses = status.get("containerStatuses") or []
    for cs in statuses:
        finished = parse_rfc3339(((cs.get("state") or {}).get("terminated") or {}).get("finishedAt"))
        if finished is None:
            latest = None
            break
        latest = finished if latest is None or finished > latest else latest
    if latest is not None:
        return latest
    for cond in status.get("conditions") or ():
        if cond.get("type") == "Ready" and cond.get("status") == "False":
            at = parse_rfc3339(cond.get("lastTransitionTime"))
            if at is not None:
                return at
    meta = pod.get("metadata") or {}
    deleted = parse_rfc3339(meta.get("deletionTimestamp"))
    if deleted is not None:
        return deleted - timedelta(seconds=int(meta.get("deletionGracePeriodSeconds") or 0))
    return parse_rfc3339(meta.get("creationTimestamp"))


def failures_after_last_success(
    succeeded: Iterable[Mapping[str, Any]], failed: Iterable[Mapping[str, Any]]
) -> tuple[int, datetime | None]:
    """How many pods failed after the last success, and when the latest of them finished."""
    last_success: datetime | None = None
    for pod in succeeded:
        at = pod_finish_time(pod)
        if at is not None and (last_success is None or at > last_success):
            last_success = at
    count, last_failure = 0, None
    for pod in failed:
        at = pod_finish_time(pod)
        if at is None:
            continue
        if last_success is not None and at <= last_success:
            continue
        count += 1
        last_failure = at if last_failure is None or at > last_failure else last_failure
    return count, last_failure


def remaining_backoff(
    failures: int,
    last_failure: datetime | None,
    now: datetime,
    base: float = DEFAULT_BACKOFF,
    cap: float = MAX_BACKOFF,
) -> float:
    """Seconds left before a replacement pod may be created (0 when it may be now)."""
    if failures <= 0 or last_failure is None:
        return 0.0
    elapsed = (now - last_failure).total_seconds()
    return max(0.0, backoff_delay(failures, base, cap) - elapsed)
