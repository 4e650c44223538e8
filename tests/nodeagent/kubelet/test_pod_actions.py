"""pod_actions: the plan for sandbox, init containers, restarts and probe/spec-driven kills."""

from __future__ import annotations

from typing import Any

import pytest

from nodeagent.kubelet.pod_actions import PodActions, compute_pod_actions
from nodeagent.kubelet.runtime_view import PodRuntimeView, RuntimeContainer, Sandbox
from tests.nodeagent.kubelet.helpers import exited, pod, running, view

P = pod(containers=("a", "b"))
PI = pod(containers=("app",), inits=("i1", "i2"))
PI_NEVER = pod(containers=("app",), inits=("i1", "i2"), policy="Never")
P_NEVER = pod(containers=("a", "b"), policy="Never")
P_ONF = pod(containers=("a", "b"), policy="OnFailure")


def plan(p: dict[str, Any], v: PodRuntimeView, **kw: Any) -> PodActions:
    return compute_pod_actions(p, v, **kw)


CASES = [
    pytest.param(
        P,
        PodRuntimeView(),
        PodActions(kill_pod=True, create_sandbox=True, containers_to_start=("a", "b")),
        id="fresh-pod-creates-sandbox-and-starts-all",
    ),
    pytest.param(
        PI,
        PodRuntimeView(),
        PodActions(kill_pod=True, create_sandbox=True, next_init_container="i1"),
        id="fresh-pod-with-inits-starts-first-init",
    ),
    pytest.param(
        P,
        view(running(P, "a"), running(P, "b")),
        PodActions(sandbox_id="sb"),
        id="all-running-nothing-to-do",
    ),
    pytest.param(
        P,
        view(running(P, "a")),
        PodActions(sandbox_id="sb", containers_to_start=("b",)),
        id="missing-container-starts",
    ),
    pytest.param(
        P,
        PodRuntimeView(Sandbox("sb", ready=False, attempt=2), (running(P, "a"),)),
        PodActions(
            kill_pod=True, create_sandbox=True, sandbox_id="sb", attempt=3, containers_to_start=("a", "b")
        ),
        id="dead-sandbox-recreated-next-attempt",
    ),
    pytest.param(
        P_NEVER,
        PodRuntimeView(Sandbox("sb", ready=False), (exited(P_NEVER, "a"),)),
        PodActions(kill_pod=True, sandbox_id="sb", attempt=1),
        id="never-dead-sandbox-not-recreated",
    ),
    pytest.param(
        P_ONF,
        PodRuntimeView(Sandbox("sb", ready=False), (exited(P_ONF, "a"), exited(P_ONF, "b", code=2))),
        PodActions(
            kill_pod=True, create_sandbox=True, sandbox_id="sb", attempt=1, containers_to_start=("b",)
        ),
        id="onfailure-new-sandbox-skips-succeeded",
    ),
    pytest.param(
        P_NEVER,
        view(exited(P_NEVER, "a", code=3), exited(P_NEVER, "b")),
        PodActions(kill_pod=True, sandbox_id="sb"),
        id="never-all-exited-kills-pod",
    ),
    pytest.param(
        P,
        view(exited(P, "a", code=0), running(P, "b")),
        PodActions(sandbox_id="sb", containers_to_start=("a",)),
        id="always-restarts-succeeded",
    ),
    pytest.param(
        P_ONF,
        view(exited(P_ONF, "a", code=0), exited(P_ONF, "b", code=1)),
        PodActions(sandbox_id="sb", containers_to_start=("b",)),
        id="onfailure-restarts-failed-only",
    ),
    pytest.param(
        PI,
        view(exited(PI, "i1")),
        PodActions(sandbox_id="sb", next_init_container="i2"),
        id="init-in-order",
    ),
    pytest.param(
        PI,
        view(running(PI, "i1")),
        PodActions(sandbox_id="sb"),
        id="init-running-waits",
    ),
    pytest.param(
        PI,
        view(exited(PI, "i1", code=1)),
        PodActions(sandbox_id="sb", next_init_container="i1"),
        id="failed-init-restarts",
    ),
    pytest.param(
        PI_NEVER,
        view(exited(PI_NEVER, "i1", code=1)),
        PodActions(kill_pod=True, sandbox_id="sb", pod_failed=True),
        id="failed-init-under-never-fails-pod",
    ),
    pytest.param(
        PI,
        view(exited(PI, "i1"), exited(PI, "i2")),
        PodActions(sandbox_id="sb", containers_to_start=("app",)),
        id="inits-done-start-containers",
    ),
    pytest.param(
        PI,
        view(running(PI, "app")),
        PodActions(sandbox_id="sb"),
        id="running-app-means-initialised",
    ),
]


@pytest.mark.parametrize(("p", "v", "want"), CASES)
def test_plan(p: dict[str, Any], v: PodRuntimeView, want: PodActions) -> None:
    assert plan(p, v) == want


@pytest.mark.parametrize(
    ("p", "kw", "message", "restart"),
    [
        pytest.param(
            P,
            {"liveness_failed": {"process://a-0"}},
            "Container a failed liveness probe, will be restarted",
            True,
            id="liveness",
        ),
        pytest.param(
            P,
            {"startup_failed": {"process://a-0"}},
            "Container a failed startup probe, will be restarted",
            True,
            id="startup",
        ),
        pytest.param(
            P_NEVER,
            {"liveness_failed": {"process://a-0"}},
            "Container a failed liveness probe",
            False,
            id="liveness-never-no-restart",
        ),
    ],
)
def test_probe_kills(p: dict[str, Any], kw: dict[str, Any], message: str, restart: bool) -> None:
    got = plan(p, view(running(p, "a"), running(p, "b")), **kw)
    assert [k.message for k in got.containers_to_kill] == [message]
    assert got.containers_to_kill[0].container_id == "process://a-0"
    assert got.containers_to_start == (("a",) if restart else ())
    assert not got.kill_pod


def test_spec_change_restarts_even_under_never() -> None:
    old = running(P_NEVER, "a")
    changed = RuntimeContainer(**{**{f: getattr(old, f) for f in old.__slots__}, "spec_hash": "stale"})
    got = plan(P_NEVER, view(changed, running(P_NEVER, "b")))
    assert [k.message for k in got.containers_to_kill] == [
        "Container a definition changed, will be restarted"
    ]
    assert got.containers_to_start == ("a",)


def test_plan_is_deterministic() -> None:
    v = view(exited(P, "b", code=1), exited(P, "a", code=1))
    assert plan(P, v) == plan(P, v) == PodActions(sandbox_id="sb", containers_to_start=("a", "b"))
