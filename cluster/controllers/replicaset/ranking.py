"""Which pods a ReplicaSet removes first when it has too many: kube's ``ActivePodsWithRanks`` order.

The comparison walks these rules in turn and stops at the first that tells two pods apart; the pod
that sorts first is the one deleted first:

1. not yet scheduled (no ``spec.nodeName``) before scheduled;
2. phase Pending before Unknown before Running;
3. not ready before ready;
4. lower ``controller.kubernetes.io/pod-deletion-cost`` before higher (a missing or malformed
   annotation counts as 0);
5. more active related pods on the same node before fewer (the "colocation" rank: related pods are
   those of every ReplicaSet sharing this one's controller, so a Deployment's scale-down spreads out);
6. when both are ready: ready for a shorter time before longer;
7. more container restarts before fewer (regular containers first, then restartable init containers);
8. created more recently before older.

Rules 6 and 8 compare times on a logarithmic scale relative to ``now`` (kube's LogarithmicScaleDown,
on by default): two pods whose ages fall in the same power-of-two bucket of nanoseconds are equal in
age and are ordered by UID instead, so scale-down does not always pick the very newest pod. A missing
timestamp sorts first. Pure functions over wire-form pod dicts; nothing is mutated.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from cluster.controllers import pods as podutil
from cluster.machinery.meta import object_meta
from cluster.machinery.times import parse_rfc3339

DELETION_COST_ANNOTATION = "controller.kubernetes.io/pod-deletion-cost"
_PHASE_ORDINAL = {"Pending": 0, "Unknown": 1, "Running": 2}
_INT32 = (-(2**31), 2**31 - 1)


def deletion_cost(pod: Mapping[str, Any]) -> int:
    """The pod's deletion cost annotation as an int32; 0 when absent or not a valid int32."""
    raw = (object_meta(pod).get("annotations") or {}).get(DELETION_COST_ANNOTATION)
    if not isinstance(raw, str):
        return 0
    try:
        value = int(raw.strip(), 10)
    except ValueError:
        return 0
    return value if _INT32[0] <= value <= _INT32[1] else 0


def max_restarts(pod: Mapping[str, Any]) -> tuple[int, int]:
    """(highest restart count of a regular container, highest of a restartable init container)."""
    status = pod.get("status") or {}
    regular = max((int(c.get("restartCount") or 0) for c in status.get("containerStatuses") or []), default=0)
    sidecars = {
        c.get("name")
        for c in (pod.get("spec") or {}).get("initContainers") or []
        if c.get("restartPolicy") == "Always"
    }
    sidecar = max(
        (
            int(c.get("restartCount") or 0)
            for c in status.get("initContainerStatuses") or []
            if c.get("name") in sidecars
        ),
        default=0,
    )
    return regular, sidecar


def colocation_ranks(pods: Iterable[Mapping[str, Any]], related: Iterable[Mapping[str, Any]]) -> list[int]:
    """For each pod, how many active ``related`` pods run on its node (kube counts them by nodeName,
    so unscheduled pods share the "" bucket)."""
    on_node = Counter(_node(p) for p in related if podutil.is_pod_active(p))
    return [on_node[_node(p)] for p in pods]


def pods_to_delete(
    pods: Sequence[Mapping[str, Any]],
    count: int,
    now: datetime,
    related: Iterable[Mapping[str, Any]] = (),
) -> list[Mapping[str, Any]]:
    """The ``count`` pods of ``pods`` to delete first. When every pod goes, no ranking is needed and
    they come back in the order given."""
    if count <= 0:
        return []
    if count >= len(pods):
        return list(pods)
    ranked = list(zip(pods, colocation_ranks(pods, related), strict=True))

    def compare(x: tuple[Mapping[str, Any], int], y: tuple[Mapping[str, Any], int]) -> int:
        if _delete_before(x[0], x[1], y[0], y[1], now):
            return -1
        return 1 if _delete_before(y[0], y[1], x[0], x[1], now) else 0

    ranked.sort(key=functools.cmp_to_key(compare))
    return [pod for pod, _ in ranked[:count]]


def _delete_before(
    a: Mapping[str, Any], rank_a: int, b: Mapping[str, Any], rank_b: int, now: datetime
) -> bool:
    node_a, node_b = _node(a), _node(b)
    if node_a != node_b and (not node_a or not node_b):
        return not node_a
    phase_a, phase_b = _phase_ordinal(a), _phase_ordinal(b)
    if phase_a != phase_b:
        return phase_a < phase_b
    ready_a, ready_b = podutil.is_pod_ready(a), podutil.is_pod_ready(b)
    if ready_a != ready_b:
        return not ready_a
    cost_a, cost_b = deletion_cost(a), deletion_cost(b)
    if cost_a != cost_b:
        return cost_a < cost_b
    if rank_a != rank_b:
        return rank_a > rank_b
    if ready_a and ready_b:
        since_a, since_b = podutil.pod_ready_since(a), podutil.pod_ready_since(b)
        if since_a != since_b:
            return _younger(since_a, since_b, a, b, now)
    restarts_a, restarts_b = max_restarts(a), max_restarts(b)
    if restarts_a != restarts_b:
        return restarts_a > restarts_b
    created_a, created_b = _created(a), _created(b)
    if created_a != created_b:
        return _younger(created_a, created_b, a, b, now)
    return False


def _younger(
    t_a: datetime | None, t_b: datetime | None, a: Mapping[str, Any], b: Mapping[str, Any], now: datetime
) -> bool:
    """Whether time ``t_a`` counts as more recent than ``t_b`` (the two differ); None is "zero"."""
    if t_a is None or t_b is None:
        return t_a is None
    diff = _log_bucket(now - t_a) - _log_bucket(now - t_b)
    if diff == 0:
        return str(object_meta(a).get("uid") or "") < str(object_meta(b).get("uid") or "")
    return diff < 0


def _log_bucket(age: timedelta) -> int:
    """floor(log2(age in nanoseconds)), -1 for an age that is not positive."""
    nanos = (age.days * 86_400 + age.seconds) * 1_000_000_000 + age.microseconds * 1_000
    return nanos.bit_length() - 1 if nanos > 0 else -1


def _node(pod: Mapping[str, Any]) -> str:
    return str((pod.get("spec") or {}).get("nodeName") or "")


def _phase_ordinal(pod: Mapping[str, Any]) -> int:
    return _PHASE_ORDINAL.get(str((pod.get("status") or {}).get("phase") or ""), 0)


def _created(pod: Mapping[str, Any]) -> datetime | None:
    return parse_rfc3339(object_meta(pod).get("creationTimestamp"))
