"""The probe state machine, one ``ProbeState`` per container and probe kind (the kubelet's prober worker).

Drive it like this, for every container with a probe, on every tick (or when ``next_probe_at`` comes):
1. ``state = sync(state, kind, container_id)`` — a new container instance resets the state.
2. ``if should_probe(spec, state, container, started, now)``: run the probe (``probe_exec``) and
   ``state = record(spec, state, outcome, now)``.
3. Read ``state.result``: liveness/startup ``failure`` → kill and restart (``pod_actions``), readiness
   → the Ready condition, startup ``success`` → the container is started.

Kubernetes' rules kept here: defaults periodSeconds 10, timeoutSeconds 1, failureThreshold 3,
successThreshold 1 (and it must be 1 for liveness and startup); liveness and readiness wait until the
startup probe succeeded; the startup probe stops once it has; nothing is probed before
initialDelaySeconds after the container started; readiness is ``failure`` and startup ``unknown`` until
their first verdict, liveness ``success``; a result flips only after ``threshold`` consecutive equal
outcomes; after a liveness/startup failure the worker holds until the container is replaced.
Pure: values in, values out, ``now`` passed in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from nodeagent.kubelet.runtime_view import RuntimeContainer

ProbeKind = Literal["liveness", "readiness", "startup"]
Result = Literal["success", "failure", "unknown"]
PROBE_KINDS: tuple[ProbeKind, ...] = ("startup", "liveness", "readiness")
_FIELD = {"liveness": "livenessProbe", "readiness": "readinessProbe", "startup": "startupProbe"}
_INITIAL: dict[str, Result] = {"liveness": "success", "readiness": "failure", "startup": "unknown"}


@dataclass(frozen=True, slots=True)
class ProbeSpec:
    """A probe's timing, defaulted as the API server does; ``handler`` is the raw probe dict."""

    kind: ProbeKind
    handler: Mapping[str, Any]
    initial_delay: timedelta = timedelta(0)
    period: timedelta = timedelta(seconds=10)
    timeout: timedelta = timedelta(seconds=1)
    failure_threshold: int = 3
    success_threshold: int = 1

    @staticmethod
    def from_container(container: Mapping[str, Any], kind: ProbeKind) -> ProbeSpec | None:
        """The container's probe of ``kind``, or None; raises ValueError for an invalid threshold."""
        probe = container.get(_FIELD[kind])
        if not probe:
            return None
        success = int(probe.get("successThreshold") or 1)
        if kind != "readiness" and success != 1:
            raise ValueError(f"{_FIELD[kind]}.successThreshold: must be 1")
        return ProbeSpec(
            kind=kind,
            handler=probe,
            initial_delay=timedelta(seconds=int(probe.get("initialDelaySeconds") or 0)),
            period=timedelta(seconds=int(probe.get("periodSeconds") or 10)),
            timeout=timedelta(seconds=int(probe.get("timeoutSeconds") or 1)),
            failure_threshold=int(probe.get("failureThreshold") or 3),
            success_threshold=success,
        )


@dataclass(frozen=True, slots=True)
class ProbeState:
    """The published ``result`` plus the run of equal outcomes that may flip it."""

    kind: ProbeKind
    container_id: str = ""
    result: Result = "unknown"
    last_outcome: Result | None = None
    run: int = 0
    last_probe_at: datetime | None = None
    on_hold: bool = False


def initial_state(kind: ProbeKind, container_id: str = "") -> ProbeState:
    """The state before any verdict: readiness failure, liveness success, startup unknown."""
    return ProbeState(kind=kind, container_id=container_id, result=_INITIAL[kind])


def sync(state: ProbeState | None, kind: ProbeKind, container_id: str) -> ProbeState:
    """Keep ``state`` for the same container instance; start afresh for a new one."""
    if state is None or state.container_id != container_id:
        return initial_state(kind, container_id)
    return state


def should_probe(
    spec: ProbeSpec, state: ProbeState, container: RuntimeContainer, started: bool, now: datetime
) -> bool:
    """Whether to run the probe now. ``started`` is the startup probe's verdict (True without one)."""
    if state.on_hold or container.state != "running" or container.id != state.container_id:
        return False
    if spec.kind == "startup" and started:
        return False
    if spec.kind != "startup" and not started:
        return False
    if container.started_at is not None and now - container.started_at < spec.initial_delay:
        return False
    return state.last_probe_at is None or now - state.last_probe_at >= spec.period


def next_probe_at(spec: ProbeSpec, state: ProbeState, container: RuntimeContainer) -> datetime | None:
    """When the probe is next due, for the caller's timer (None when it never is for this instance)."""
    if state.on_hold or container.started_at is None:
        return None
    earliest = container.started_at + spec.initial_delay
    if state.last_probe_at is None:
        return earliest
    return max(earliest, state.last_probe_at + spec.period)


def record(spec: ProbeSpec, state: ProbeState, outcome: Result, now: datetime) -> ProbeState:
    """Fold one probe outcome; the published result changes after ``threshold`` equal outcomes."""
    run = state.run + 1 if outcome == state.last_outcome else 1
    state = replace(state, last_outcome=outcome, run=run, last_probe_at=now)
    if outcome == "failure" and run < spec.failure_threshold:
        return state
    if outcome == "success" and run < spec.success_threshold:
        return state
    if outcome == "unknown":
        return state
    state = replace(state, result=outcome)
    if spec.kind != "readiness" and outcome == "failure":
        state = replace(state, on_hold=True, run=0)  # the container gets restarted; stop probing it
    return state


def container_not_running(state: ProbeState) -> ProbeState:
    """A readiness probe's container stopped: not ready any more."""
    return replace(state, result="failure") if state.kind == "readiness" else state


def is_started(container: Mapping[str, Any], startup: ProbeState | None, running: bool) -> bool:
    """Started: running, and the startup probe (if any) succeeded."""
    if not running:
        return False
    if not container.get("startupProbe"):
        return True
    return startup is not None and startup.result == "success"


def is_ready(container: Mapping[str, Any], readiness: ProbeState | None, started: bool) -> bool:
    """Ready: started, and the readiness probe (if any) last succeeded."""
    if not started:
        return False
    if not container.get("readinessProbe"):
        return True
    return readiness is not None and readiness.result == "success"
