"""What a pod worker should do next for one pod: the kubelet's computePodActions, in our words.

``compute_pod_actions(pod, view, liveness_failed, startup_failed)`` compares the pod spec with the
runtime's view and the probe verdicts and returns a ``PodActions`` plan. Deterministic and pure: the
same inputs give the same plan; containers appear in spec order.

How the caller executes a plan (the kubelet's SyncPod order):
1. ``kill_pod``: stop every container (graceful) and the sandbox; if ``create_sandbox`` is also set,
   continue with a fresh sandbox, otherwise stop here.
2. ``containers_to_kill``: stop those containers (each with its ``message``).
3. ``create_sandbox``: run a new sandbox (``attempt`` is its CRI attempt number).
4. ``next_init_container``: start that one init container (after ``restart.CrashLoopBackOff.check``).
5. ``containers_to_start``: start each (after the same back-off check), in order.
Plans are idempotent to recompute: call again after every runtime event or tick.

Out of scope here: sidecar (restartable) init containers, ephemeral containers, in-place resize, and
the sandbox's network-namespace and missing-IP checks (our runtimes report those as a not-ready sandbox).
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from dataclasses import dataclass
from typing import Any

from nodeagent.kubelet.restart import (
    is_init_container_failed,
    restart_policy,
    should_restart,
    should_restart_on_failure,
)
from nodeagent.kubelet.runtime_view import PodRuntimeView, RuntimeContainer, container_hash

REASON_LIVENESS = "LivenessProbe"
REASON_STARTUP = "StartupProbe"
REASON_SPEC_CHANGED = "SpecChanged"


@dataclass(frozen=True, slots=True)
class ContainerToKill:
    """A running container to stop; ``message`` is the kubelet's Killing event text."""

    container_id: str
    name: str
    reason: str
    message: str


@dataclass(frozen=True, slots=True)
class PodActions:
    """The plan for one sync of one pod (see the module docstring for the execution order)."""

    kill_pod: bool = False
    create_sandbox: bool = False
    sandbox_id: str = ""
    attempt: int = 0
    next_init_container: str | None = None
    containers_to_start: tuple[str, ...] = ()
    containers_to_kill: tuple[ContainerToKill, ...] = ()
    pod_failed: bool = False  # an init container failed under restartPolicy Never


def sandbox_changed(view: PodRuntimeView) -> tuple[bool, int, str]:
    """(create a new sandbox?, its attempt number, the current sandbox id)."""
    box = view.sandbox
    if box is None:
        return True, 0, ""
    if not box.ready:
        return True, box.attempt + 1, box.id
    return False, box.attempt, box.id


def _spec(pod: Mapping[str, Any], key: str) -> list[dict[str, Any]]:
    return list((pod.get("spec") or {}).get(key) or ())


def find_next_init_container(
    pod: Mapping[str, Any], view: PodRuntimeView
) -> tuple[RuntimeContainer | None, str | None, bool]:
    """(status of the last failed init container, the init container to run next, all done?)."""
    inits = _spec(pod, "initContainers")
    if not inits:
        return None, None, True
    for c in _spec(pod, "containers"):
        latest = view.latest(c["name"])
        if latest is not None and latest.state == "running":
            return None, None, True  # a regular container runs: initialisation finished earlier
    for init in reversed(inits):
        latest = view.latest(init["name"])
        if latest is not None and is_init_container_failed(latest):
            return latest, init["name"], False
    for i in range(len(inits) - 1, -1, -1):
        latest = view.latest(inits[i]["name"])
        if latest is None:
            continue
        if latest.state == "running":
            return None, None, False
        if latest.state == "exited":
            if i == len(inits) - 1:
                return None, None, True
            return None, inits[i + 1]["name"], False
    return None, inits[0]["name"], False


def _succeeded(view: PodRuntimeView, name: str) -> bool:
    latest = view.latest(name)
    return latest is not None and latest.state == "exited" and latest.exit_code == 0


def compute_pod_actions(
    pod: Mapping[str, Any],
    view: PodRuntimeView,
    liveness_failed: Set[str] = frozenset(),
    startup_failed: Set[str] = frozenset(),
) -> PodActions:
    """The plan for ``pod``; ``*_failed`` hold container ids whose probe verdict is Failure."""
    create, attempt, sandbox_id = sandbox_changed(view)
    containers = _spec(pod, "containers")
    if create:
        if not should_restart_on_failure(pod) and attempt != 0 and view.containers:
            # Never: a pod whose sandbox died after its containers ran is not brought back.
            return PodActions(kill_pod=True, sandbox_id=sandbox_id, attempt=attempt)
        fresh = tuple(
            c["name"]
            for c in containers
            if not (restart_policy(pod) == "OnFailure" and _succeeded(view, c["name"]))
        )
        if not fresh:
            return PodActions(kill_pod=True, sandbox_id=sandbox_id, attempt=attempt)
        inits = _spec(pod, "initContainers")
        return PodActions(
            kill_pod=True,
            create_sandbox=True,
            sandbox_id=sandbox_id,
            attempt=attempt,
            next_init_container=inits[0]["name"] if inits else None,
            containers_to_start=() if inits else fresh,
        )

    failed_init, next_init, done = find_next_init_container(pod, view)
    if not done:
        if next_init is None:
            return PodActions(sandbox_id=sandbox_id, attempt=attempt)  # an init container is running
        if failed_init is not None and not should_restart_on_failure(pod):
            return PodActions(kill_pod=True, sandbox_id=sandbox_id, attempt=attempt, pod_failed=True)
        return PodActions(sandbox_id=sandbox_id, attempt=attempt, next_init_container=next_init)

    to_start: list[str] = []
    to_kill: list[ContainerToKill] = []
    keep = 0
    for c in containers:
        name = c["name"]
        latest = view.latest(name)
        if latest is None or latest.state != "running":
            if should_restart(pod, latest):
                to_start.append(name)
            continue
        restart = should_restart_on_failure(pod)
        if latest.spec_hash and latest.spec_hash != container_hash(c):
            message, reason, restart = f"Container {name} definition changed", REASON_SPEC_CHANGED, True
        elif latest.id in liveness_failed:
            message, reason = f"Container {name} failed liveness probe", REASON_LIVENESS
        elif latest.id in startup_failed:
            message, reason = f"Container {name} failed startup probe", REASON_STARTUP
        else:
            keep += 1
            continue
        if restart:
            message += ", will be restarted"
            to_start.append(name)
        to_kill.append(ContainerToKill(latest.id, name, reason, message))
    kill_pod = keep == 0 and not to_start
    return PodActions(
        kill_pod=kill_pod,
        sandbox_id=sandbox_id,
        attempt=attempt,
        containers_to_start=tuple(to_start),
        containers_to_kill=tuple(to_kill),
    )
