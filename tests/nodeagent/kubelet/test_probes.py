"""probes: defaults, gating, thresholds and holds, scripted as tick-by-tick tables."""

from __future__ import annotations

from typing import Any

import pytest

from nodeagent.kubelet.probes import (
    ProbeKind,
    ProbeSpec,
    ProbeState,
    Result,
    container_not_running,
    initial_state,
    is_ready,
    is_started,
    next_probe_at,
    record,
    should_probe,
    sync,
)
from nodeagent.kubelet.runtime_view import RuntimeContainer
from tests.nodeagent.kubelet.helpers import at

C = RuntimeContainer(name="a", id="process://a-0", state="running", started_at=at(0))


def spec(kind: ProbeKind, **probe: Any) -> ProbeSpec:
    got = ProbeSpec.from_container({"name": "a", f"{kind}Probe": {"exec": {"command": ["x"]}, **probe}}, kind)
    assert got is not None
    return got


def test_defaults() -> None:
    s = spec("liveness")
    assert (s.period.seconds, s.timeout.seconds, s.failure_threshold, s.success_threshold) == (10, 1, 3, 1)


@pytest.mark.parametrize("kind", ["liveness", "startup"])
def test_success_threshold_must_be_one(kind: ProbeKind) -> None:
    with pytest.raises(ValueError, match="must be 1"):
        spec(kind, successThreshold=2)


@pytest.mark.parametrize(
    ("kind", "want"),
    [
        pytest.param("readiness", "failure", id="readiness-false-until-success"),
        pytest.param("liveness", "success", id="liveness-assumed-alive"),
        pytest.param("startup", "unknown", id="startup-unknown"),
    ],
)
def test_initial_results(kind: ProbeKind, want: Result) -> None:
    assert initial_state(kind).result == want


def run_script(s: ProbeSpec, outcomes: list[Result]) -> list[Result]:
    """Probe every period; return the published result after each outcome."""
    state = sync(None, s.kind, C.id)
    out: list[Result] = []
    t = s.initial_delay.total_seconds()
    for o in outcomes:
        assert should_probe(s, state, C, started=s.kind != "startup", now=at(t))
        state = record(s, state, o, at(t))
        out.append(state.result)
        t += s.period.total_seconds()
    return out


@pytest.mark.parametrize(
    ("s", "outcomes", "want"),
    [
        pytest.param(
            spec("liveness"),
            ["failure", "failure", "failure"],
            ["success", "success", "failure"],
            id="liveness-3-failures",
        ),
        pytest.param(
            spec("liveness"),
            ["failure", "success", "failure", "failure"],
            ["success", "success", "success", "success"],
            id="liveness-run-broken",
        ),
        pytest.param(spec("readiness"), ["success"], ["success"], id="readiness-first-success"),
        pytest.param(
            spec("readiness", successThreshold=2),
            ["success", "success"],
            ["failure", "success"],
            id="readiness-success-threshold",
        ),
        pytest.param(
            spec("readiness", failureThreshold=1),
            ["success", "failure", "success"],
            ["success", "failure", "success"],
            id="readiness-flaps",
        ),
        pytest.param(
            spec("startup", failureThreshold=2),
            ["failure", "success"],
            ["unknown", "success"],
            id="startup-succeeds",
        ),
    ],
)
def test_threshold_scripts(s: ProbeSpec, outcomes: list[Result], want: list[Result]) -> None:
    assert run_script(s, outcomes) == want


def test_liveness_failure_holds_until_new_container() -> None:
    s = spec("liveness", failureThreshold=1)
    state = record(s, sync(None, "liveness", C.id), "failure", at(0))
    assert state.on_hold and state.result == "failure"
    assert not should_probe(s, state, C, True, at(100))
    fresh = sync(state, "liveness", "process://a-1")
    assert fresh == initial_state("liveness", "process://a-1")


@pytest.mark.parametrize(
    ("s", "state", "started", "now", "want"),
    [
        pytest.param(
            spec("liveness", initialDelaySeconds=5), None, True, 4, False, id="before-initial-delay"
        ),
        pytest.param(spec("liveness", initialDelaySeconds=5), None, True, 5, True, id="at-initial-delay"),
        pytest.param(spec("liveness"), None, False, 0, False, id="liveness-waits-for-startup"),
        pytest.param(spec("readiness"), None, False, 0, False, id="readiness-waits-for-startup"),
        pytest.param(spec("startup"), None, True, 0, False, id="startup-stops-once-started"),
        pytest.param(
            spec("liveness"),
            ProbeState("liveness", C.id, last_probe_at=at(0)),
            True,
            9,
            False,
            id="within-period",
        ),
        pytest.param(
            spec("liveness"),
            ProbeState("liveness", C.id, last_probe_at=at(0)),
            True,
            10,
            True,
            id="period-elapsed",
        ),
    ],
)
def test_should_probe(s: ProbeSpec, state: ProbeState | None, started: bool, now: float, want: bool) -> None:
    assert should_probe(s, state or sync(None, s.kind, C.id), C, started, at(now)) is want


def test_not_running_container_is_not_probed_and_not_ready() -> None:
    s = spec("readiness")
    stopped = RuntimeContainer(name="a", id=C.id, state="exited", started_at=at(0))
    state = record(s, sync(None, "readiness", C.id), "success", at(0))
    assert not should_probe(s, state, stopped, True, at(50))
    assert container_not_running(state).result == "failure"


def test_next_probe_at() -> None:
    s = spec("liveness", initialDelaySeconds=5, periodSeconds=7)
    state = sync(None, "liveness", C.id)
    assert next_probe_at(s, state, C) == at(5)
    assert next_probe_at(s, record(s, state, "success", at(5)), C) == at(12)


def test_started_and_ready_helpers() -> None:
    plain: dict[str, Any] = {"name": "a"}
    probed = {"name": "a", "startupProbe": {}, "readinessProbe": {}}
    probed["startupProbe"] = {"exec": {}}
    probed["readinessProbe"] = {"exec": {}}
    assert is_started(plain, None, True) and is_ready(plain, None, True)
    assert not is_started(probed, initial_state("startup"), True)
    assert is_started(probed, ProbeState("startup", result="success"), True)
    assert not is_ready(probed, initial_state("readiness"), True)
    assert not is_started(plain, None, False)
