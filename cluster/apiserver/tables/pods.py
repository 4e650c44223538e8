"""The pod Table row: READY, STATUS and RESTARTS computed exactly as kubectl's ``printPod`` does.

Role: turn a stored Pod into ``[name, "1/1", "Running", "2 (5m ago)", age, ip, node, nominated, gates]``.
STATUS is the famous aggregate: the phase, overridden by the pod's reason, then by the first init
container that has not finished (``Init:0/2``, ``Init:CrashLoopBackOff``), then by the last
regular container with a waiting/terminated reason (``ContainerCreating``, ``CrashLoopBackOff``,
``Completed``, ``Error``), and finally ``Terminating`` when a deletion is pending.

Invariant: pure; ``now`` only feeds the ages in AGE and RESTARTS.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from cluster.apiserver.tables.format import (
    Column,
    Obj,
    TablePrinter,
    age,
    age_column,
    as_int,
    as_list,
    field_doc,
    get,
    name_column,
    name_of,
    since,
)
from cluster.machinery.meta import object_meta
from cluster.machinery.times import parse_rfc3339

_TERMINAL_PHASES = ("Succeeded", "Failed")
NODE_UNREACHABLE_REASON = "NodeLost"


def _is_restartable_init(container: Any) -> bool:
    """A sidecar: an init container with ``restartPolicy: Always``."""
    return bool(get(container, "restartPolicy") == "Always")


def _later(current: datetime | None, candidate: Any) -> datetime | None:
    when = parse_rfc3339(candidate)
    if when is None:
        return current
    return when if current is None or when > current else current


def _terminated_reason(terminated: Obj, prefix: str) -> str:
    if terminated.get("reason"):
        return prefix + str(terminated["reason"])
    if as_int(terminated.get("signal")):
        return f"{prefix}Signal:{as_int(terminated.get('signal'))}"
    return f"{prefix}ExitCode:{as_int(terminated.get('exitCode'))}"


def _condition_true(pod: Obj, condition_type: str) -> bool:
    return any(
        get(c, "type") == condition_type and get(c, "status") == "True"
        for c in as_list(get(pod, "status", "conditions"))
    )


def pod_row(pod: Obj, now: datetime) -> list[Any]:
    """The cells of one pod (wide), matching kubectl ``get pods -o wide``."""
    spec = get(pod, "spec", default={})
    status = get(pod, "status", default={})
    init_specs = {str(get(c, "name", default="")): c for c in as_list(get(spec, "initContainers"))}
    sidecars = sum(1 for c in init_specs.values() if _is_restartable_init(c))
    total = len(as_list(get(spec, "containers"))) + sidecars
    ready = 0
    restarts = 0
    sidecar_restarts = 0
    last_restart: datetime | None = None
    last_sidecar_restart: datetime | None = None

    phase = str(get(status, "phase", default=""))
    reason = str(get(status, "reason") or phase)
    for condition in as_list(get(status, "conditions")):
        if get(condition, "type") == "PodScheduled" and get(condition, "reason") == "SchedulingGated":
            reason = "SchedulingGated"

    initializing = False
    init_statuses = as_list(get(status, "initContainerStatuses"))
    for index, cs in enumerate(init_statuses):
        count = as_int(get(cs, "restartCount", default=0))
        restarts += count
        finished = get(cs, "lastState", "terminated", "finishedAt")
        last_restart = _later(last_restart, finished)
        sidecar = _is_restartable_init(init_specs.get(str(get(cs, "name", default=""))))
        if sidecar:
            sidecar_restarts += count
            last_sidecar_restart = _later(last_sidecar_restart, finished)
        terminated = get(cs, "state", "terminated")
        waiting_reason = get(cs, "state", "waiting", "reason")
        if isinstance(terminated, dict) and as_int(terminated.get("exitCode")) == 0:
            continue
        if sidecar and get(cs, "started") is True:
            if get(cs, "ready") is True:
                ready += 1
            continue
        if isinstance(terminated, dict):
            reason = _terminated_reason(terminated, "Init:")
        elif waiting_reason and waiting_reason != "PodInitializing":
            reason = f"Init:{waiting_reason}"
        else:
            reason = f"Init:{index}/{len(init_specs)}"
        initializing = True
        break

    if not initializing or _condition_true(pod, "Initialized"):
        restarts = sidecar_restarts
        last_restart = last_sidecar_restart
        has_running = False
        for cs in reversed(as_list(get(status, "containerStatuses"))):
            restarts += as_int(get(cs, "restartCount", default=0))
            last_restart = _later(last_restart, get(cs, "lastState", "terminated", "finishedAt"))
            waiting_reason = get(cs, "state", "waiting", "reason")
            terminated = get(cs, "state", "terminated")
            if waiting_reason:
                reason = str(waiting_reason)
            elif isinstance(terminated, dict):
                reason = _terminated_reason(terminated, "")
            elif get(cs, "ready") is True and get(cs, "state", "running") is not None:
                has_running = True
                ready += 1
        if reason == "Completed" and has_running:
            reason = "Running" if _condition_true(pod, "Ready") else "NotReady"

    if object_meta(pod).get("deletionTimestamp") and get(status, "reason") == NODE_UNREACHABLE_REASON:
        reason = "Unknown"
    elif object_meta(pod).get("deletionTimestamp") and phase not in _TERMINAL_PHASES:
        reason = "Terminating"

    restarts_cell = str(restarts)
    if restarts and last_restart is not None:
        restarts_cell = f"{restarts} ({since(last_restart.isoformat(), now)} ago)"

    pod_ips = as_list(get(status, "podIPs"))
    ip = str(get(pod_ips[0], "ip", default="")) if pod_ips else ""
    gates = as_list(get(spec, "readinessGates"))
    gates_cell = "<none>"
    if gates:
        conditions = {get(c, "type"): get(c, "status") for c in as_list(get(status, "conditions"))}
        true_count = sum(1 for g in gates if conditions.get(get(g, "conditionType")) == "True")
        gates_cell = f"{true_count}/{len(gates)}"
    return [
        name_of(pod),
        f"{ready}/{total}",
        reason,
        restarts_cell,
        age(pod, now),
        ip or "<none>",
        get(spec, "nodeName") or "<none>",
        get(status, "nominatedNodeName") or "<none>",
        gates_cell,
    ]


def pod_conditions(pod: Obj) -> list[dict[str, Any]]:
    """Row conditions: Succeeded and Failed pods are marked ``Completed`` (clients may hide them)."""
    phase = get(pod, "status", "phase")
    if phase == "Succeeded":
        return [
            {
                "type": "Completed",
                "status": "True",
                "reason": "Succeeded",
                "message": "The pod has completed successfully.",
            }
        ]
    if phase == "Failed":
        return [{"type": "Completed", "status": "True", "reason": "Failed", "message": "The pod failed."}]
    return []


def pod_printer() -> TablePrinter:
    columns = (
        name_column(),
        Column("Ready", "string", "The aggregate readiness state of this pod for accepting traffic."),
        Column("Status", "string", "The aggregate status of the containers in this pod."),
        Column(
            "Restarts",
            "string",
            "The number of times the containers in this pod have been restarted and when the last "
            "container in this pod has restarted.",
        ),
        age_column(),
        Column("IP", "string", field_doc("V1PodStatus", "podIP"), priority=1),
        Column("Node", "string", field_doc("V1PodSpec", "nodeName"), priority=1),
        Column("Nominated Node", "string", field_doc("V1PodStatus", "nominatedNodeName"), priority=1),
        Column("Readiness Gates", "string", field_doc("V1PodSpec", "readinessGates"), priority=1),
    )
    return TablePrinter(columns, pod_row, pod_conditions)
