"""restart: policy decisions, Go duration text, and CrashLoopBackOff's 10 s .. 5 min schedule."""

from __future__ import annotations

from datetime import timedelta

import pytest

from nodeagent.kubelet.restart import CrashLoopBackOff, go_duration, should_restart
from nodeagent.kubelet.runtime_view import RuntimeContainer
from tests.nodeagent.kubelet.helpers import at, exited, pod, running


@pytest.mark.parametrize(
    ("policy", "latest", "want"),
    [
        pytest.param("Always", None, True, id="never-started"),
        pytest.param("Never", None, True, id="never-started-never"),
        pytest.param("Always", "running", False, id="running"),
        pytest.param("Always", 0, True, id="always-after-success"),
        pytest.param("Always", 1, True, id="always-after-failure"),
        pytest.param("OnFailure", 0, False, id="onfailure-after-success"),
        pytest.param("OnFailure", 3, True, id="onfailure-after-failure"),
        pytest.param("Never", 3, False, id="never-after-failure"),
        pytest.param("Never", "created", True, id="created-is-retried"),
    ],
)
def test_should_restart(policy: str, latest: object, want: bool) -> None:
    p = pod(policy=policy)
    c: RuntimeContainer | None
    if latest is None:
        c = None
    elif latest == "running":
        c = running(p, "app")
    elif latest == "created":
        c = RuntimeContainer(name="app", id="x", state="created")
    else:
        assert isinstance(latest, int)
        c = exited(p, "app", code=latest)
    assert should_restart(p, c) is want


def test_deleting_pod_restarts_nothing() -> None:
    p = pod()
    p["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    assert should_restart(p, None) is False


@pytest.mark.parametrize(
    ("seconds", "want"),
    [
        pytest.param(10, "10s", id="10s"),
        pytest.param(80, "1m20s", id="1m20s"),
        pytest.param(300, "5m0s", id="5m0s"),
        pytest.param(3700, "1h1m40s", id="hours"),
    ],
)
def test_go_duration(seconds: int, want: str) -> None:
    assert go_duration(timedelta(seconds=seconds)) == want


def test_crash_loop_schedule_doubles_to_five_minutes() -> None:
    """Each crash happens right after the restart; the delays seen are 10, 20, 40 ... 300, 300."""
    p = pod()
    spec = p["spec"]["containers"][0]
    backoff = CrashLoopBackOff()
    now = 0.0
    delays: list[int] = []
    for restarts in range(8):
        c = exited(p, "app", code=1, restarts=restarts, finished=now)
        decision = backoff.check(p, spec, c, at(now))
        if restarts == 0:
            assert decision.start  # the first restart is immediate
            continue
        assert not decision.start
        assert decision.reason == "CrashLoopBackOff"
        delays.append(int(decision.delay.total_seconds()))
        assert decision.retry_at == at(now + decision.delay.total_seconds())
        assert backoff.check(p, spec, c, decision.retry_at).start  # after the delay: restart
        now = decision.retry_at.timestamp() - at(0).timestamp()
    assert delays == [10, 20, 40, 80, 160, 300, 300]


def test_crash_loop_message_matches_kubelet() -> None:
    p = pod()
    spec = p["spec"]["containers"][0]
    backoff = CrashLoopBackOff()
    backoff.check(p, spec, exited(p, "app", code=1, finished=0), at(0))
    backoff.check(p, spec, exited(p, "app", code=1, finished=1), at(12))  # past 10 s: restart, delay 20 s
    d = backoff.check(p, spec, exited(p, "app", code=1, restarts=2, finished=13), at(14))
    assert d.message == "back-off 20s restarting failed container=app pod=p_ns(uid-1)"


def test_backoff_resets_after_ten_stable_minutes() -> None:
    p = pod()
    spec = p["spec"]["containers"][0]
    backoff = CrashLoopBackOff()
    backoff.check(p, spec, exited(p, "app", code=1, finished=0), at(0))
    backoff.check(p, spec, exited(p, "app", code=1, finished=1), at(11))  # now 20 s
    # ran for more than 10 minutes, then crashed: no back-off, and the next delay starts at 10 s again
    late = 11 + 601
    assert backoff.check(p, spec, exited(p, "app", code=1, finished=late), at(late)).start
    d = backoff.check(p, spec, exited(p, "app", code=1, finished=late + 1), at(late + 2))
    assert not d.start
    assert d.delay == timedelta(seconds=10)


def test_running_container_never_backs_off() -> None:
    p = pod()
    assert CrashLoopBackOff().check(p, p["spec"]["containers"][0], None, at(0)).start
