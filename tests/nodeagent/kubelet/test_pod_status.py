"""pod_status: phase rules, conditions and their transition times, container states, IPs, QoS."""

from __future__ import annotations

from typing import Any

import pytest

from nodeagent.kubelet.pod_status import ProbeView, StatusInputs, Waiting, pod_status, qos_class
from nodeagent.kubelet.runtime_view import PodRuntimeView, RuntimeContainer
from tests.nodeagent.kubelet.helpers import T0, at, exited, pod, running, view

NOW = at(100)
INPUTS = StatusInputs(host_ips=("192.168.1.5",))


def status(p: dict[str, Any], v: PodRuntimeView, inputs: StatusInputs = INPUTS) -> dict[str, Any]:
    return pod_status(p, v, inputs, NOW)


def cond(s: dict[str, Any], ctype: str) -> dict[str, Any]:
    return next(c for c in s["conditions"] if c["type"] == ctype)


P = pod(containers=("a", "b"))
PN = pod(containers=("a",), policy="Never")
PO = pod(containers=("a",), policy="OnFailure")
PI = pod(containers=("app",), inits=("i1",))
PIN = pod(containers=("app",), inits=("i1",), policy="Never")


@pytest.mark.parametrize(
    ("p", "v", "inputs", "phase"),
    [
        pytest.param(P, PodRuntimeView(), INPUTS, "Pending", id="nothing-yet"),
        pytest.param(P, view(running(P, "a")), INPUTS, "Pending", id="one-not-started"),
        pytest.param(P, view(running(P, "a"), running(P, "b")), INPUTS, "Running", id="all-running"),
        pytest.param(P, view(running(P, "a"), exited(P, "b", 1)), INPUTS, "Running", id="one-exited-always"),
        pytest.param(P, view(exited(P, "a", 1), exited(P, "b")), INPUTS, "Running", id="all-exited-always"),
        pytest.param(PN, view(exited(PN, "a", 3)), INPUTS, "Failed", id="never-exit-3"),
        pytest.param(PN, view(exited(PN, "a", 0)), INPUTS, "Succeeded", id="never-exit-0"),
        pytest.param(PO, view(exited(PO, "a", 0)), INPUTS, "Succeeded", id="onfailure-exit-0"),
        pytest.param(PO, view(exited(PO, "a", 1)), INPUTS, "Running", id="onfailure-exit-1-restarting"),
        pytest.param(PI, view(running(PI, "i1")), INPUTS, "Pending", id="init-running"),
        pytest.param(PIN, view(exited(PIN, "i1", 1)), INPUTS, "Failed", id="init-failed-never"),
        pytest.param(PI, view(exited(PI, "i1", 1)), INPUTS, "Pending", id="init-failed-always"),
        pytest.param(
            P,
            view(exited(P, "a", 0), exited(P, "b", 0)),
            StatusInputs(terminal=True),
            "Succeeded",
            id="terminal-all-succeeded",
        ),
        pytest.param(
            P,
            view(exited(P, "a", 0), exited(P, "b", 137)),
            StatusInputs(terminal=True),
            "Failed",
            id="terminal-one-failed",
        ),
    ],
)
def test_phase(p: dict[str, Any], v: PodRuntimeView, inputs: StatusInputs, phase: str) -> None:
    assert status(p, v, inputs)["phase"] == phase


def test_terminal_phase_is_sticky() -> None:
    p = {**PN, "status": {"phase": "Failed"}}
    assert status(p, view(running(PN, "a")))["phase"] == "Failed"


def test_never_exit_3_reports_exit_code_and_reasons() -> None:
    s = status(PN, view(exited(PN, "a", 3)))
    term = s["containerStatuses"][0]["state"]["terminated"]
    assert (term["exitCode"], term["reason"], term["containerID"]) == (3, "Error", "process://a-0")
    assert cond(s, "Ready") == {
        "type": "Ready",
        "status": "False",
        "reason": "PodFailed",
        "lastProbeTime": None,
        "lastTransitionTime": "2026-01-01T12:01:40Z",
    }


def test_unready_message_names_containers_in_order() -> None:
    p = pod(containers=("a", "b", "c"))
    p["spec"]["containers"][0]["readinessProbe"] = {"exec": {"command": ["true"]}}
    s = status(p, view(running(p, "a"), running(p, "b")))
    ready = cond(s, "Ready")
    assert ready["reason"] == "ContainersNotReady"
    # every spec container has a status (c waits in ContainerCreating), so none is "unknown"
    assert ready["message"] == "containers with unready status: [a c]"


def test_readiness_probe_gates_ready() -> None:
    p = pod(containers=("a",))
    p["spec"]["containers"][0]["readinessProbe"] = {"exec": {"command": ["true"]}}
    v = view(running(p, "a"))
    assert cond(status(p, v), "Ready")["status"] == "False"
    ok = StatusInputs(probes=ProbeView(ready={"process://a-0": True}))
    assert cond(status(p, v, ok), "Ready")["status"] == "True"


def test_startup_probe_gates_started_and_ready() -> None:
    p = pod(containers=("a",))
    p["spec"]["containers"][0]["startupProbe"] = {"exec": {"command": ["true"]}}
    v = view(running(p, "a"))
    cs = status(p, v)["containerStatuses"][0]
    assert (cs["started"], cs["ready"]) == (False, False)
    cs = status(p, v, StatusInputs(probes=ProbeView(started={"process://a-0": True})))["containerStatuses"][0]
    assert (cs["started"], cs["ready"]) == (True, True)


def test_transition_time_kept_while_status_unchanged() -> None:
    v = view(running(P, "a"), running(P, "b"))
    first = pod_status(P, v, INPUTS, T0)
    again = pod_status({**P, "status": first}, v, INPUTS, NOW)
    assert cond(again, "Ready")["lastTransitionTime"] == "2026-01-01T12:00:00Z"
    assert again["startTime"] == "2026-01-01T12:00:00Z"
    flipped = pod_status({**P, "status": first}, view(running(P, "a")), INPUTS, NOW)
    assert cond(flipped, "Ready")["lastTransitionTime"] == "2026-01-01T12:01:40Z"


def test_crash_loop_waiting_moves_exit_to_last_state() -> None:
    w = Waiting("CrashLoopBackOff", "back-off 10s restarting failed container=a pod=p_ns(uid-1)")
    s = status(P, view(exited(P, "a", 1, restarts=2), running(P, "b")), StatusInputs(waiting={"a": w}))
    cs = s["containerStatuses"][0]
    assert cs["state"] == {"waiting": {"reason": w.reason, "message": w.message}}
    assert cs["lastState"]["terminated"]["exitCode"] == 1
    assert cs["restartCount"] == 2
    assert s["phase"] == "Running"


def test_last_state_from_previous_instance() -> None:
    old = exited(P, "a", 137, restarts=0)
    new = running(P, "a", restarts=1)
    cs = status(P, view(new, old, running(P, "b")))["containerStatuses"][0]
    assert cs["lastState"]["terminated"]["exitCode"] == 137
    assert cs["state"]["running"]["startedAt"] == "2026-01-01T12:00:00Z"
    assert cs["restartCount"] == 1


def test_config_error_on_never_started_container() -> None:
    w = Waiting("CreateContainerConfigError", 'configmap "x" not found')
    cs = status(P, view(), StatusInputs(waiting={"a": w}))["containerStatuses"][0]
    assert cs["state"]["waiting"] == {
        "reason": "CreateContainerConfigError",
        "message": 'configmap "x" not found',
    }


def test_pending_waiting_reasons_and_initialized() -> None:
    s = status(PI, view(running(PI, "i1")))
    assert s["initContainerStatuses"][0]["state"]["running"]
    assert s["containerStatuses"][0]["state"] == {"waiting": {"reason": "PodInitializing"}}
    assert cond(s, "Initialized")["message"] == "containers with incomplete status: [i1]"
    done = status(PI, view(exited(PI, "i1"), running(PI, "app")))
    assert cond(done, "Initialized")["status"] == "True"
    assert done["initContainerStatuses"][0]["ready"] is True


def test_ips_and_condition_order() -> None:
    s = status(P, view(running(P, "a"), running(P, "b"), ips=("10.1.0.2", "fd00::2")))
    assert (s["hostIP"], s["podIP"]) == ("192.168.1.5", "10.1.0.2")
    assert s["podIPs"] == [{"ip": "10.1.0.2"}, {"ip": "fd00::2"}]
    assert [c["type"] for c in s["conditions"]] == [
        "PodReadyToStartContainers",
        "Initialized",
        "Ready",
        "ContainersReady",
        "PodScheduled",
    ]


def test_foreign_conditions_kept() -> None:
    p = {**P, "status": {"conditions": [{"type": "DisruptionTarget", "status": "True"}]}}
    s = status(p, view(running(P, "a"), running(P, "b")))
    assert s["conditions"][0] == {"type": "DisruptionTarget", "status": "True"}


def test_unknown_state_container() -> None:
    v = view(RuntimeContainer(name="a", id="x://1", state="unknown"), running(P, "b"))
    assert status(P, v)["containerStatuses"][0]["state"]["waiting"]["reason"] == "ContainerStatusUnknown"


def res(limits: dict[str, str] | None = None, requests: dict[str, str] | None = None) -> dict[str, Any]:
    p = pod()
    p["spec"]["containers"][0]["resources"] = {"limits": limits or {}, "requests": requests or {}}
    return p


@pytest.mark.parametrize(
    ("p", "want"),
    [
        pytest.param(pod(), "BestEffort", id="besteffort"),
        pytest.param(res({"cpu": "1", "memory": "1Gi"}), "Guaranteed", id="limits-only"),
        pytest.param(
            res({"cpu": "1", "memory": "1Gi"}, {"cpu": "1", "memory": "1Gi"}), "Guaranteed", id="equal"
        ),
        pytest.param(res({"cpu": "1", "memory": "1Gi"}, {"cpu": "500m"}), "Burstable", id="lower-request"),
        pytest.param(res(requests={"memory": "1Gi"}), "Burstable", id="requests-only"),
    ],
)
def test_qos(p: dict[str, Any], want: str) -> None:
    assert qos_class(p) == want


@pytest.mark.parametrize(
    ("p", "code", "want"),
    [
        pytest.param(PI, 1, "waiting", id="failed-init-backs-off"),
        pytest.param(PI, 0, "terminated", id="succeeded-init-stays-terminated"),
        pytest.param(PIN, 1, "terminated", id="failed-init-under-never-stays-terminated"),
    ],
)
def test_init_container_waiting(p: dict[str, Any], code: int, want: str) -> None:
    inputs = StatusInputs(waiting={"i1": Waiting("CrashLoopBackOff", "back-off")})
    cs = status(p, view(exited(p, "i1", code)), inputs)["initContainerStatuses"][0]
    assert list(cs["state"]) == [want]
