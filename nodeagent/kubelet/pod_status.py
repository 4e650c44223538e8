"""The API pod status from the runtime's view: the kubelet's generateAPIPodStatus, in our words.

``pod_status(pod, view, inputs, now)`` returns the ``status`` dict to write to the API server. Pure.

Invariants, as Kubernetes keeps them:
- The phase follows the kubelet's getPhase (restartPolicy decides whether all-exited is Running,
  Succeeded or Failed; a failed init container under Never is Failed), and a terminal phase (from the
  previous status) never changes back.
- Conditions the kubelet owns are regenerated in its order (PodReadyToStartContainers, Initialized,
  Ready, ContainersReady, PodScheduled); others in the previous status are kept. A condition keeps its
  ``lastTransitionTime`` while its status is unchanged.
- A container that will be restarted and has a recorded start problem (``waiting``: CrashLoopBackOff,
  CreateContainerConfigError, ...) shows ``state.waiting`` with that reason, its exited instance moving
  to ``lastState``. ``restartCount`` is the runtime's attempt number of the newest instance.
- ``ready``/``started`` come from the probes (``ProbeView``); without a readiness probe a started,
  running container is ready; without a startup probe a running container is started.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cluster.machinery.times import rfc3339
from nodeagent.kubelet.restart import restart_policy, should_restart
from nodeagent.kubelet.runtime_view import PodRuntimeView, RuntimeContainer

KUBELET_CONDITIONS = ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled")


@dataclass(frozen=True, slots=True)
class Waiting:
    """Why a container is not running: the reason and message of its last start attempt."""

    reason: str
    message: str = ""


@dataclass(frozen=True, slots=True)
class ProbeView:
    """Probe verdicts by container id: ``ready`` from readiness, ``started`` from startup probes."""

    ready: Mapping[str, bool] = field(default_factory=dict)
    started: Mapping[str, bool] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StatusInputs:
    """Everything besides the pod and the runtime view that the status depends on."""

    host_ips: tuple[str, ...] = ()
    probes: ProbeView = ProbeView()
    waiting: Mapping[str, Waiting] = field(default_factory=dict)  # by container name
    terminal: bool = False  # the worker finished the pod (deleted or all done): no more restarts


def _terminated(c: RuntimeContainer) -> dict[str, Any]:
    reason = c.reason or ("Completed" if c.exit_code == 0 else "Error")
    out: dict[str, Any] = {"exitCode": c.exit_code, "reason": reason, "containerID": c.id}
    if c.message:
        out["message"] = c.message
    out["startedAt"] = rfc3339(c.started_at) if c.started_at else None
    out["finishedAt"] = rfc3339(c.finished_at) if c.finished_at else None
    return out


def container_status(
    pod: Mapping[str, Any],
    spec: Mapping[str, Any],
    view: PodRuntimeView,
    inputs: StatusInputs,
    *,
    is_init: bool,
) -> dict[str, Any]:
    """One entry of ``containerStatuses``/``initContainerStatuses``."""
    name = spec["name"]
    latest = view.latest(name)
    has_inits = bool((pod.get("spec") or {}).get("initContainers"))
    if latest is None:
        default = "PodInitializing" if has_inits and not is_init else "ContainerCreating"
        waiting = inputs.waiting.get(name, Waiting(default))
        return {
            "name": name,
            "state": {"waiting": _waiting_dict(waiting)},
            "lastState": {},
            "ready": False,
            "restartCount": 0,
            "image": spec.get("image", ""),
            "imageID": "",
            "started": False,
        }
    state: dict[str, Any]
    last: dict[str, Any] = {}
    previous = view.previous(name)
    if previous is not None:
        last = {"terminated": _terminated(previous)}
    if latest.state == "running":
        state = {"running": {"startedAt": rfc3339(latest.started_at) if latest.started_at else None}}
    elif latest.state == "exited":
        state = {"terminated": _terminated(latest)}
    elif latest.state == "created":
        state = {"waiting": {}}
    else:
        state = {"waiting": {"reason": "ContainerStatusUnknown"}}
    if is_init:  # an init container is retried only after a failure, and never under Never
        failed = latest.state != "exited" or latest.exit_code != 0
        restarting = latest.state != "running" and failed and restart_policy(pod) != "Never"
    else:
        restarting = latest.state != "running" and should_restart(pod, latest)
    if restarting and name in inputs.waiting and not inputs.terminal:
        if "terminated" in state:
            last = state
        state = {"waiting": _waiting_dict(inputs.waiting[name])}
    running = latest.state == "running"
    if is_init:
        started = running
        ready = latest.state == "exited" and latest.exit_code == 0 and "terminated" in state
    else:
        started = running and (
            inputs.probes.started.get(latest.id, False) if spec.get("startupProbe") else True
        )
        ready = started and (
            inputs.probes.ready.get(latest.id, False) if spec.get("readinessProbe") else True
        )
    return {
        "name": name,
        "state": state,
        "lastState": last,
        "ready": ready,
        "restartCount": latest.restart_count,
        "image": latest.image or spec.get("image", ""),
        "imageID": latest.image_ref,
        "containerID": latest.id,
        "started": started,
    }


def _waiting_dict(w: Waiting) -> dict[str, str]:
    out = {"reason": w.reason}
    if w.message:
        out["message"] = w.message
    return out


def pod_phase(pod: Mapping[str, Any], statuses: Sequence[Mapping[str, Any]], terminal: bool) -> str:
    """The kubelet's getPhase over the API container statuses (init and regular)."""
    spec = pod.get("spec") or {}
    by_name = {s["name"]: s for s in statuses}
    pending_init = failed_init = 0
    for c in spec.get("initContainers") or ():
        s = by_name.get(c["name"])
        state = (s or {}).get("state") or {}
        if s is None or "running" in state:
            pending_init += 1
        elif "terminated" in state:
            failed_init += state["terminated"].get("exitCode", 0) != 0
        elif "waiting" in state:
            last = (s.get("lastState") or {}).get("terminated")
            if last is not None and last.get("exitCode", 0) != 0:
                failed_init += 1
            else:
                pending_init += 1
        else:
            pending_init += 1
    unknown = running = waiting = stopped = succeeded = 0
    for c in spec.get("containers") or ():
        s = by_name.get(c["name"])
        if s is None:
            unknown += 1
            continue
        state = s.get("state") or {}
        if "running" in state:
            running += 1
        elif "terminated" in state:
            stopped += 1
            succeeded += state["terminated"].get("exitCode", 0) == 0
        elif "waiting" in state:
            if (s.get("lastState") or {}).get("terminated") is not None:
                stopped += 1
            else:
                waiting += 1
        else:
            unknown += 1
    policy = spec.get("restartPolicy") or "Always"
    if failed_init > 0 and policy == "Never":
        return "Failed"
    if pending_init > 0 or waiting > 0:
        return "Pending"
    if running > 0 and unknown == 0:
        return "Running"
    if running == 0 and stopped > 0 and unknown == 0:
        if terminal:
            return "Succeeded" if stopped == succeeded else "Failed"
        if policy == "Always":
            return "Running"
        if stopped == succeeded:
            return "Succeeded"
        return "Failed" if policy == "Never" else "Running"
    return "Pending"


def _names(names: list[str]) -> str:
    return "[" + " ".join(names) + "]"  # Go's %s of a []string


def _unknown_and_unready(
    containers: Sequence[Mapping[str, Any]], statuses: Sequence[Mapping[str, Any]]
) -> tuple[list[str], list[str]]:
    """The spec's container names without a status, and those whose status is not ready, in order."""
    by_name = {s["name"]: s for s in statuses}
    unknown = [c["name"] for c in containers if c["name"] not in by_name]
    unready = [c["name"] for c in containers if c["name"] in by_name and not by_name[c["name"]]["ready"]]
    return unknown, unready


def initialized_condition(
    pod: Mapping[str, Any], statuses: Sequence[Mapping[str, Any]], phase: str
) -> dict[str, Any]:
    spec = pod.get("spec") or {}
    unknown, incomplete = _unknown_and_unready(spec.get("initContainers") or (), statuses)
    if phase == "Succeeded" and not unknown:
        return {"type": "Initialized", "status": "True", "reason": "PodCompleted"}
    regular = {c["name"] for c in spec.get("containers") or ()}
    if any(s["name"] in regular and (s.get("state") or {}).get("waiting") is None for s in statuses):
        return {"type": "Initialized", "status": "True"}  # a regular container has started before
    messages = []
    if unknown:
        messages.append(f"containers with unknown status: {_names(unknown)}")
    if incomplete:
        messages.append(f"containers with incomplete status: {_names(incomplete)}")
    if messages:
        return {
            "type": "Initialized",
            "status": "False",
            "reason": "ContainersNotInitialized",
            "message": ", ".join(messages),
        }
    return {"type": "Initialized", "status": "True"}


def containers_ready_condition(
    pod: Mapping[str, Any], statuses: Sequence[Mapping[str, Any]], phase: str
) -> dict[str, Any]:
    spec = pod.get("spec") or {}
    unknown, unready = _unknown_and_unready(spec.get("containers") or (), statuses)
    if phase == "Succeeded" and not unknown:
        return {"type": "ContainersReady", "status": "False", "reason": "PodCompleted"}
    if phase == "Failed":
        return {"type": "ContainersReady", "status": "False", "reason": "PodFailed"}
    messages = []
    if unknown:
        messages.append(f"containers with unknown status: {_names(unknown)}")
    if unready:
        messages.append(f"containers with unready status: {_names(unready)}")
    if messages:
        return {
            "type": "ContainersReady",
            "status": "False",
            "reason": "ContainersNotReady",
            "message": ", ".join(messages),
        }
    return {"type": "ContainersReady", "status": "True"}


def ready_condition(
    pod: Mapping[str, Any], conditions: Sequence[Mapping[str, Any]], containers_ready: Mapping[str, Any]
) -> dict[str, Any]:
    """Ready mirrors ContainersReady, then requires every readiness gate's condition to be True."""
    if containers_ready["status"] != "True":
        out = dict(containers_ready)
        out["type"] = "Ready"
        return out
    by_type = {c["type"]: c for c in conditions}
    messages = []
    for gate in (pod.get("spec") or {}).get("readinessGates") or ():
        ctype = gate.get("conditionType", "")
        cond = by_type.get(ctype)
        if cond is None:
            messages.append(f'corresponding condition of pod readiness gate "{ctype}" does not exist.')
        elif cond.get("status") != "True":
            messages.append(
                f'the status of pod readiness gate "{ctype}" is not "True", but {cond.get("status")}'
            )
    if messages:
        return {
            "type": "Ready",
            "status": "False",
            "reason": "ReadinessGatesNotReady",
            "message": ", ".join(messages),
        }
    return {"type": "Ready", "status": "True"}


def qos_class(pod: Mapping[str, Any]) -> str:
    """BestEffort (no cpu/memory requests/limits), Guaranteed (limits == requests everywhere), Burstable."""
    spec = pod.get("spec") or {}
    containers = [*(spec.get("initContainers") or ()), *(spec.get("containers") or ())]
    any_set = False
    guaranteed = True
    for c in containers:
        res = c.get("resources") or {}
        limits = {k: v for k, v in (res.get("limits") or {}).items() if k in ("cpu", "memory")}
        requests = {k: v for k, v in (res.get("requests") or {}).items() if k in ("cpu", "memory")}
        requests = {**limits, **requests}  # the API server defaults requests to limits
        if limits or requests:
            any_set = True
        if set(limits) != {"cpu", "memory"} or any(str(requests[k]) != str(limits[k]) for k in limits):
            guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def _keep_transition(new: dict[str, Any], old: Mapping[str, Any] | None, now: datetime) -> dict[str, Any]:
    new.setdefault("lastProbeTime", None)
    if old is not None and old.get("status") == new["status"] and old.get("lastTransitionTime"):
        new["lastTransitionTime"] = old["lastTransitionTime"]
    else:
        new["lastTransitionTime"] = rfc3339(now)
    return new


def pod_status(
    pod: Mapping[str, Any], view: PodRuntimeView, inputs: StatusInputs, now: datetime
) -> dict[str, Any]:
    """The full API status for ``pod``; ``pod['status']`` is the previous status (may be empty)."""
    spec = pod.get("spec") or {}
    old = pod.get("status") or {}
    init_statuses = [
        container_status(pod, c, view, inputs, is_init=True) for c in spec.get("initContainers") or ()
    ]
    statuses = [container_status(pod, c, view, inputs, is_init=False) for c in spec.get("containers") or ()]
    phase = pod_phase(pod, [*init_statuses, *statuses], inputs.terminal)
    if old.get("phase") in ("Succeeded", "Failed"):
        phase = old["phase"]
    old_conditions = {c["type"]: c for c in old.get("conditions") or ()}
    conditions = [dict(c) for c in old.get("conditions") or () if c["type"] not in KUBELET_CONDITIONS]
    all_statuses = [*init_statuses, *statuses]
    sandbox_ready = view.sandbox is not None and view.sandbox.ready
    generated = [
        {"type": "PodReadyToStartContainers", "status": "True" if sandbox_ready else "False"},
        initialized_condition(pod, all_statuses, phase),
    ]
    containers_ready = containers_ready_condition(pod, all_statuses, phase)
    generated.append(ready_condition(pod, conditions, containers_ready))
    generated.append(containers_ready)
    generated.append({"type": "PodScheduled", "status": "True"})
    for cond in generated:
        conditions.append(_keep_transition(cond, old_conditions.get(cond["type"]), now))
    pod_ips = view.sandbox.ips if view.sandbox else ()
    if not pod_ips and spec.get("hostNetwork"):
        pod_ips = inputs.host_ips[:1]
    status: dict[str, Any] = {
        "phase": phase,
        "conditions": conditions,
        "qosClass": qos_class(pod),
        "startTime": old.get("startTime") or rfc3339(now),
    }
    for key in ("reason", "message"):
        if old.get(key) and old.get("phase") == phase:
            status[key] = old[key]
    if inputs.host_ips:
        status["hostIP"] = inputs.host_ips[0]
        status["hostIPs"] = [{"ip": ip} for ip in inputs.host_ips]
    if pod_ips:
        status["podIP"] = pod_ips[0]
        status["podIPs"] = [{"ip": ip} for ip in pod_ips]
    if init_statuses:
        status["initContainerStatuses"] = init_statuses
    status["containerStatuses"] = statuses
    return status
