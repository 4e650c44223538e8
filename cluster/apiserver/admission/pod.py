"""Admission plugins for Pods.

* PodAdmissionDefaults: what kube-apiserver's ServiceAccount and Priority plugins add to a new pod
  (``defaults.admission_defaults_pod``; DefaultTolerationSeconds is its own plugin).
* PodInitialStatus: a new pod starts ``Pending`` with its QoS class (the pod strategy's
  PrepareForCreate).
* PodSchedulingGated: a gated pod starts ``PodScheduled=False/SchedulingGated``; it needs the
  creationTimestamp, so it runs after ObjectMetaSystemFields.
"""

from __future__ import annotations

from typing import Any, ClassVar

from cluster.apiserver.admission.interfaces import Admitted, Attributes, MutatingPlugin, Operation
from cluster.apiserver.defaults import admission_defaults_pod

SCHEDULING_GATED_MESSAGE = "Scheduling is blocked due to non-empty scheduling gates"
_CREATE: frozenset[Operation] = frozenset({Operation.CREATE})


def _is_pod(attrs: Attributes) -> bool:
    return attrs.kind == ("", "Pod")


def qos_class(pod: dict[str, Any]) -> str:
    containers = list(pod.get("spec", {}).get("containers") or []) + list(
        pod.get("spec", {}).get("initContainers") or []
    )
    requests_any = limits_all = False
    guaranteed = True
    for c in containers:
        res = c.get("resources") or {}
        req, lim = res.get("requests") or {}, res.get("limits") or {}
        if req or lim:
            requests_any = True
        for r in ("cpu", "memory"):
            if r not in lim or (r in req and str(req[r]) != str(lim[r])):
                guaranteed = False
        limits_all = limits_all or bool(lim)
    if not requests_any:
        return "BestEffort"
    return "Guaranteed" if guaranteed and limits_all else "Burstable"


def scheduling_gated_condition(pod: dict[str, Any]) -> dict[str, Any]:
    """A new pod with scheduling gates starts ``PodScheduled=False`` (reason ``SchedulingGated``), as
    Kubernetes' pod strategy sets it on create: the scheduler leaves gated pods alone, so without it
    nothing would say why the pod waits (kubectl shows the reason as the pod's STATUS)."""
    if not (pod.get("spec") or {}).get("schedulingGates"):
        return pod
    status = pod.setdefault("status", {})
    conditions = status.setdefault("conditions", [])
    if any(c.get("type") == "PodScheduled" for c in conditions):
        return pod
    conditions.append(
        {
            "type": "PodScheduled",
            "status": "False",
            "lastProbeTime": None,
            "lastTransitionTime": pod["metadata"].get("creationTimestamp"),
            "reason": "SchedulingGated",
            "message": SCHEDULING_GATED_MESSAGE,
        }
    )
    return pod


class PodAdmissionDefaults(MutatingPlugin):
    NAME: ClassVar[str] = "PodAdmissionDefaults"
    OPERATIONS: ClassVar[frozenset[Operation]] = _CREATE

    async def admit(self, attrs: Attributes) -> Admitted:
        return Admitted(admission_defaults_pod(attrs.object) if _is_pod(attrs) else attrs.object)


class PodInitialStatus(MutatingPlugin):
    NAME: ClassVar[str] = "PodInitialStatus"
    OPERATIONS: ClassVar[frozenset[Operation]] = _CREATE

    async def admit(self, attrs: Attributes) -> Admitted:
        obj = attrs.object
        if _is_pod(attrs):
            status = obj.setdefault("status", {})
            status.setdefault("phase", "Pending")
            status.setdefault("qosClass", qos_class(obj))
        return Admitted(obj)


class PodSchedulingGated(MutatingPlugin):
    NAME: ClassVar[str] = "PodSchedulingGated"
    OPERATIONS: ClassVar[frozenset[Operation]] = _CREATE

    async def admit(self, attrs: Attributes) -> Admitted:
        return Admitted(scheduling_gated_condition(attrs.object) if _is_pod(attrs) else attrs.object)
