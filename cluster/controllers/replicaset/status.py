"""A ReplicaSet's status, computed from the pods it owns (kube's ``calculateStatus``).

* ``replicas``: owned active pods; ``fullyLabeledReplicas``: those whose labels include every label of
  the pod template (a pod may match the selector yet miss a template label); ``readyReplicas``: those
  Ready; ``availableReplicas``: those Ready for at least ``spec.minReadySeconds``;
* ``observedGeneration``: the ``metadata.generation`` this status was computed for;
* the ``ReplicaFailure`` condition: set (reason ``FailedCreate`` when short of pods, ``FailedDelete``
  when over) the first time a sync fails to create or delete pods, kept as it is while failures
  continue, and removed by the first sync that succeeds.

The status follows the API's JSON shape: zero counts other than ``replicas`` and an empty condition
list are omitted, other status fields are kept. :func:`status_patch` turns old and new status into a
merge patch that also clears omitted fields. Everything here is pure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from cluster.controllers import pods as podutil
from cluster.controllers.replicaset.plan import desired_replicas
from cluster.machinery.meta import object_meta
from cluster.machinery.times import rfc3339

REPLICA_FAILURE = "ReplicaFailure"
FAILED_CREATE = "FailedCreate"
FAILED_DELETE = "FailedDelete"
_COUNTS = ("replicas", "fullyLabeledReplicas", "readyReplicas", "availableReplicas")


def min_ready_seconds(rs: Mapping[str, Any]) -> int:
    return int((rs.get("spec") or {}).get("minReadySeconds") or 0)


def calculate_status(
    rs: Mapping[str, Any],
    owned: Sequence[Mapping[str, Any]],
    now: datetime,
    manage_error: str | None = None,
) -> dict[str, Any]:
    """The status ``rs`` should have, given its owned active pods and how managing them went
    (``manage_error`` is the first create/delete error's text, None when managing succeeded or was
    skipped)."""
    spec = rs.get("spec") or {}
    template_labels: Mapping[str, str] = object_meta(spec.get("template") or {}).get("labels") or {}
    min_ready = min_ready_seconds(rs)
    fully_labeled = ready = available = 0
    for pod in owned:
        labels = object_meta(pod).get("labels") or {}
        if all(labels.get(k) == v for k, v in template_labels.items()):
            fully_labeled += 1
        if podutil.is_pod_ready(pod):
            ready += 1
            if podutil.is_pod_available(pod, min_ready, now):
                available += 1

    status: dict[str, Any] = {
        k: v for k, v in (rs.get("status") or {}).items() if k not in (*_COUNTS, "observedGeneration")
    }
    status["replicas"] = len(owned)
    for key, value in (
        ("fullyLabeledReplicas", fully_labeled),
        ("readyReplicas", ready),
        ("availableReplicas", available),
        ("observedGeneration", int(object_meta(rs).get("generation") or 0)),
    ):
        if value:
            status[key] = value

    conditions = [dict(c) for c in status.pop("conditions", None) or []]
    has_failure = any(c.get("type") == REPLICA_FAILURE for c in conditions)
    if manage_error is not None and not has_failure:
        short = len(owned) < desired_replicas(rs)
        over = len(owned) > desired_replicas(rs)
        conditions.append(
            {
                "type": REPLICA_FAILURE,
                "status": "True",
                "lastTransitionTime": rfc3339(now),
                "reason": FAILED_CREATE if short else (FAILED_DELETE if over else ""),
                "message": manage_error,
            }
        )
    elif manage_error is None and has_failure:
        conditions = [c for c in conditions if c.get("type") != REPLICA_FAILURE]
    if conditions:
        status["conditions"] = conditions
    return status


def needs_update(rs: Mapping[str, Any], status: Mapping[str, Any]) -> bool:
    """Whether ``status`` differs from what ``rs`` carries (counts, conditions, or a generation the
    stored status has not yet observed)."""
    old = rs.get("status") or {}
    if any(int(old.get(k) or 0) != int(status.get(k) or 0) for k in _COUNTS):
        return True
    if int(old.get("observedGeneration") or 0) != int(object_meta(rs).get("generation") or 0):
        return True
    return (old.get("conditions") or []) != (status.get("conditions") or [])


def status_patch(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON merge patch (``{"status": ...}``) turning status ``old`` into ``new``: changed fields
    are set, fields ``new`` omits are nulled."""
    body: dict[str, Any] = {k: v for k, v in new.items() if old.get(k) != v}
    body.update({k: None for k in old if k not in new})
    return {"status": body}


def next_available_in(
    rs: Mapping[str, Any], owned: Sequence[Mapping[str, Any]], now: datetime
) -> float | None:
    """Seconds until the next Ready-but-not-yet-available pod becomes available, so the sync can look
    again then (None when no pod is waiting for ``minReadySeconds``)."""
    min_ready = min_ready_seconds(rs)
    if min_ready <= 0:
        return None
    waits = []
    for pod in owned:
        if podutil.is_pod_available(pod, min_ready, now):
            continue
        remaining = podutil.available_in(pod, min_ready, now)
        if remaining is not None:
            # a second past the boundary, as kube: Ready times have whole seconds
            waits.append(remaining + 1.0)
    return min(waits) if waits else None
