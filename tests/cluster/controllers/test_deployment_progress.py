"""Deployment status and conditions: counters, Available, the Progressing transitions of a rollout,
the progress deadline on a fake clock, and pause/resume."""

from __future__ import annotations

from typing import Any

import pytest

from cluster.controllers.deployment import progress
from cluster.controllers.deployment.rollout import ReplicaSetView
from cluster.machinery.times import rfc3339
from tests.cluster.controllers.fakes import FakeClock


def view(name: str, replicas: int, available: int, ready: int | None = None) -> ReplicaSetView:
    return ReplicaSetView(
        name,
        replicas=replicas,
        status_replicas=replicas,
        available=available,
        ready=available if ready is None else ready,
    )


def reasons(status: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in status.get("conditions", [])}


@pytest.mark.parametrize(
    ("old", "new", "max_unavailable", "counters", "available"),
    [
        pytest.param(
            view("a", 3, 3),
            view("b", 1, 0),
            0,
            {
                "replicas": 4,
                "updatedReplicas": 1,
                "readyReplicas": 3,
                "availableReplicas": 3,
                "unavailableReplicas": 1,
            },
            ("True", progress.MIN_AVAILABLE_REASON),
            id="mid-rollout",
        ),
        pytest.param(
            None,
            view("b", 3, 1),
            1,
            {
                "replicas": 3,
                "updatedReplicas": 3,
                "readyReplicas": 1,
                "availableReplicas": 1,
                "unavailableReplicas": 2,
            },
            ("False", progress.MIN_UNAVAILABLE_REASON),
            id="below-minimum",
        ),
        pytest.param(
            view("a", 0, 2),
            view("b", 3, 3),
            0,
            {"replicas": 3, "updatedReplicas": 3, "readyReplicas": 5, "availableReplicas": 5},
            ("True", progress.MIN_AVAILABLE_REASON),
            id="more-available-than-wanted-no-negative-unavailable",
        ),
    ],
)
def test_calculate_status(
    old: ReplicaSetView | None,
    new: ReplicaSetView,
    max_unavailable: int,
    counters: dict[str, int],
    available: tuple[str, str],
) -> None:
    clock = FakeClock()
    status = progress.calculate_status(
        generation=4,
        replicas=3,
        max_unavailable=max_unavailable,
        all_rss=[old, new],
        new_rs=new,
        previous={},
        now=clock.now(),
    )
    assert {k: v for k, v in status.items() if k not in ("conditions", "observedGeneration")} == counters
    assert status["observedGeneration"] == 4
    assert reasons(status)[progress.AVAILABLE] == available


def test_set_condition_keeps_transition_time_for_same_status() -> None:
    clock = FakeClock()
    status: dict[str, Any] = {}
    progress.set_condition(status, progress.new_condition("Progressing", "True", "A", "m", clock.now()))
    first = rfc3339(clock.now())
    clock.advance(30)
    progress.set_condition(status, progress.new_condition("Progressing", "True", "A", "m2", clock.now()))
    assert status["conditions"][0]["message"] == "m"  # same status and reason: untouched
    progress.set_condition(status, progress.new_condition("Progressing", "True", "B", "m3", clock.now()))
    cond = status["conditions"][0]
    assert (cond["reason"], cond["lastTransitionTime"], cond["lastUpdateTime"]) == (
        "B",
        first,
        rfc3339(clock.now()),
    )
    clock.advance(30)
    progress.set_condition(status, progress.new_condition("Progressing", "False", "C", "m4", clock.now()))
    assert status["conditions"][0]["lastTransitionTime"] == rfc3339(clock.now())
    assert len(status["conditions"]) == 1


class Rollout:
    """A Deployment of 3 with a 60 s deadline, its status driven through ``rollout_status``."""

    def __init__(self, deadline: int | None = 60) -> None:
        self.clock = FakeClock()
        self.deadline = deadline
        self.status: dict[str, Any] = {}

    def created(self) -> None:
        cond = progress.new_condition(
            progress.PROGRESSING, "True", progress.NEW_RS_REASON, "created", self.clock.now()
        )
        progress.set_condition(self.status, cond)

    def observe(self, old: ReplicaSetView | None, new: ReplicaSetView) -> tuple[str, str] | None:
        computed = progress.calculate_status(
            generation=1,
            replicas=3,
            max_unavailable=0,
            all_rss=[old, new],
            new_rs=new,
            previous=self.status,
            now=self.clock.now(),
        )
        self.status = progress.rollout_status(
            name="web",
            new_rs_name=new.name,
            replicas=3,
            generation=1,
            deadline=self.deadline,
            computed=computed,
            previous=self.status,
            now=self.clock.now(),
        )
        return reasons(self.status).get(progress.PROGRESSING)


def test_progressing_through_a_rollout() -> None:
    r = Rollout()
    r.observe(view("a", 3, 3), view("b", 0, 0))
    r.created()
    assert r.observe(view("a", 3, 3), view("b", 1, 0)) == ("True", progress.RS_UPDATED_REASON)
    r.clock.advance(50)
    assert r.observe(view("a", 3, 3), view("b", 1, 1)) == ("True", progress.RS_UPDATED_REASON)
    # Progress was seen at t=50, so the 60 s deadline now runs to t=110.
    r.clock.advance(50)
    assert r.observe(view("a", 3, 3), view("b", 1, 1)) == ("True", progress.RS_UPDATED_REASON)
    assert r.observe(view("a", 0, 0), view("b", 3, 3)) == ("True", progress.NEW_RS_AVAILABLE_REASON)
    cond = progress.get_condition(r.status, progress.PROGRESSING)
    assert cond is not None and cond["message"] == 'ReplicaSet "b" has successfully progressed.'


def test_progress_deadline_exceeded_and_sticky() -> None:
    r = Rollout(deadline=60)
    r.observe(None, view("b", 3, 0))
    r.created()
    r.clock.advance(60)
    assert r.observe(None, view("b", 3, 0)) == ("True", progress.NEW_RS_REASON)  # exactly at the deadline
    assert (
        progress.recheck_after(
            replicas=3, generation=1, deadline=60, previous=r.status, new=r.status, now=r.clock.now()
        )
        == 1.0
    )
    r.clock.advance(1)
    assert r.observe(None, view("b", 3, 0)) == ("False", progress.TIMED_OUT_REASON)
    r.clock.advance(600)
    assert r.observe(None, view("b", 3, 0)) == ("False", progress.TIMED_OUT_REASON)
    assert (
        progress.recheck_after(
            replicas=3, generation=1, deadline=60, previous=r.status, new=r.status, now=r.clock.now()
        )
        is None
    )
    # Progress after the deadline turns it back to progressing.
    assert r.observe(None, view("b", 3, 1)) == ("True", progress.RS_UPDATED_REASON)


def test_completed_rollout_never_times_out() -> None:
    r = Rollout(deadline=10)
    r.created()
    assert r.observe(None, view("b", 3, 3)) == ("True", progress.NEW_RS_AVAILABLE_REASON)
    r.clock.advance(3600)
    assert r.observe(None, view("b", 3, 2)) == ("True", progress.NEW_RS_AVAILABLE_REASON)
    assert reasons(r.status)[progress.AVAILABLE] == ("False", progress.MIN_UNAVAILABLE_REASON)


def test_no_deadline_no_progressing_condition() -> None:
    r = Rollout(deadline=progress.NO_DEADLINE)
    r.created()
    r.observe(None, view("b", 3, 1))
    assert progress.PROGRESSING not in reasons(r.status)


def test_recheck_after_counts_down_to_the_deadline() -> None:
    r = Rollout(deadline=600)
    r.created()
    r.clock.advance(120)
    assert (
        progress.recheck_after(
            replicas=3, generation=1, deadline=600, previous=r.status, new={}, now=r.clock.now()
        )
        == 480
    )


@pytest.mark.parametrize(
    ("paused", "current", "expected"),
    [
        pytest.param(True, None, ("Unknown", progress.PAUSED_REASON), id="pause"),
        pytest.param(True, progress.PAUSED_REASON, None, id="already-paused"),
        pytest.param(False, progress.PAUSED_REASON, ("Unknown", progress.RESUMED_REASON), id="resume"),
        pytest.param(False, progress.RS_UPDATED_REASON, None, id="not-paused-nothing"),
        pytest.param(True, progress.TIMED_OUT_REASON, None, id="timed-out-kept"),
    ],
)
def test_paused_condition(paused: bool, current: str | None, expected: tuple[str, str] | None) -> None:
    clock = FakeClock()
    status: dict[str, Any] = {}
    if current is not None:
        progress.set_condition(
            status, progress.new_condition(progress.PROGRESSING, "True", current, "", clock.now())
        )
    cond = progress.paused_condition(paused, 600, status, clock.now())
    assert (None if cond is None else (cond["status"], cond["reason"])) == expected


def test_replica_failure_prefers_the_new_replica_set() -> None:
    def rs(reason: str) -> dict[str, Any]:
        return {
            "status": {
                "conditions": [{"type": "ReplicaFailure", "status": "True", "reason": reason, "message": "m"}]
            }
        }

    assert progress.replica_failure(rs("New"), [rs("Old")])["reason"] == "New"  # type: ignore[index]
    assert progress.replica_failure({}, [rs("Old")])["reason"] == "Old"  # type: ignore[index]
    assert progress.replica_failure(None, [{}]) is None
