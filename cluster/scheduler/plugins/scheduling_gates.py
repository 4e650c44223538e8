"""SchedulingGates: a pod with ``spec.schedulingGates`` does not enter the active queue (PreEnqueue).

Gates let another controller (a quota manager, a batch queue) hold a pod back until it removes them;
the API server allows removing gates but never adding one after creation, and marks a gated pod
``PodScheduled=False`` (reason ``SchedulingGated``) when it is created. Until the last gate is gone the
scheduler never tries the pod: no scheduling cycle, no FailedScheduling event, no status patch. The
rejection is UnschedulableAndUnresolvable, since no cluster event can lift it, only an update of the pod.
"""

from __future__ import annotations

from typing import Any

from cluster.scheduler.framework.status import SUCCESS, Status

NAME = "SchedulingGates"


def gate_names(pod: dict[str, Any]) -> list[str]:
    """The names of the pod's scheduling gates, in order."""
    gates = (pod.get("spec") or {}).get("schedulingGates") or []
    return [str(g.get("name", "")) for g in gates if isinstance(g, dict)]


class SchedulingGates:
    NAME = NAME

    def name(self) -> str:
        return NAME

    def pre_enqueue(self, pod: dict[str, Any]) -> Status:
        names = gate_names(pod)
        if not names:
            return SUCCESS
        # kube-scheduler formats the Go slice: "waiting for scheduling gates: [a b]".
        return Status.unschedulable(f"waiting for scheduling gates: [{' '.join(names)}]", resolvable=False)


def new(args: dict[str, Any] | None, handle: object) -> SchedulingGates:
    """Factory for the registry; SchedulingGates takes no arguments."""
    return SchedulingGates()
