"""A DaemonSet's ``status`` (kube's ``updateDaemonSetStatus`` and ``storeDaemonSetStatus``).

For each node that should run a daemon pod: desired; scheduled when a pod is for it; ready, available
(``minReadySeconds``) and updated (the current revision's hash) as its oldest pod is; a pod on a node
that should not run one is misscheduled; unavailable = desired - available. ``status_patch`` says what
to write, or None when the stored status already says it. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cluster.controllers.daemonset.plan import eligibility_by_node, is_updated, min_ready_seconds, pod_order
from cluster.controllers.pods import is_pod_available, is_pod_ready

Obj = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class DaemonSetCounts:
    desired_number_scheduled: int = 0
    current_number_scheduled: int = 0
    number_misscheduled: int = 0
    number_ready: int = 0
    number_available: int = 0
    updated_number_scheduled: int = 0

    @property
    def number_unavailable(self) -> int:
        return self.desired_number_scheduled - self.number_available

    def as_status(self) -> dict[str, int]:
        return {
            "desiredNumberScheduled": self.desired_number_scheduled,
            "currentNumberScheduled": self.current_number_scheduled,
            "numberMisscheduled": self.number_misscheduled,
            "numberReady": self.number_ready,
            "numberAvailable": self.number_available,
            "numberUnavailable": self.number_unavailable,
            "updatedNumberScheduled": self.updated_number_scheduled,
        }


def compute_status(
    daemon_set: Obj,
    nodes: Sequence[Obj],
    by_node: Mapping[str, Sequence[Obj]],
    hash_: str,
    now: datetime,
) -> DaemonSetCounts:
    """The status counters: per node that should run a pod, its oldest pod (``pod_order``) decides
    ready/available/updated; a pod on a node that should not run one is misscheduled."""
    eligible = eligibility_by_node(daemon_set, nodes)
    min_ready = min_ready_seconds(daemon_set)
    desired = current = misscheduled = ready = available = updated = 0
    for node, decision in eligible.items():
        pods = sorted(by_node.get(node) or (), key=pod_order)
        if not decision.should_run:
            misscheduled += 1 if pods else 0
            continue
        desired += 1
        if not pods:
            continue
        current += 1
        pod = pods[0]
        if is_pod_ready(pod):
            ready += 1
            available += 1 if is_pod_available(pod, min_ready, now) else 0
        updated += 1 if is_updated(pod, hash_) else 0
    return DaemonSetCounts(desired, current, misscheduled, ready, available, updated)


def status_patch(
    daemon_set: Obj, counts: DaemonSetCounts, *, observe_generation: bool
) -> dict[str, Any] | None:
    """The ``status`` to write, or None when it already says all that (kube's ``storeDaemonSetStatus``)."""
    status = daemon_set.get("status") or {}
    wanted: dict[str, Any] = counts.as_status()
    generation = int((daemon_set.get("metadata") or {}).get("generation") or 0)
    observed = int(status.get("observedGeneration") or 0)
    same = all(int(status.get(k) or 0) == v for k, v in wanted.items())
    if same and (observed >= generation or not observe_generation):
        return None
    if observe_generation:
        wanted["observedGeneration"] = generation
    return wanted
