"""The scheduling queue with a fake clock: ordering, backoff, the unschedulable pool."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from cluster.scheduler.plugins import scheduling_gates
from cluster.scheduler.queue import SchedulingQueue, backoff_duration
from tests.cluster.scheduler.fakes import pod


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def drain(queue: SchedulingQueue) -> list[str]:
    names = []
    while (info := queue.pop()) is not None:
        names.append(info.pod["metadata"]["name"])
    return names


@pytest.mark.parametrize(
    ("added", "expected"),
    [
        pytest.param([("a", None), ("b", None), ("c", None)], ["a", "b", "c"], id="fifo-at-equal-priority"),
        pytest.param([("low", 1), ("high", 100), ("mid", 10)], ["high", "mid", "low"], id="priority-desc"),
        pytest.param(
            [("a", 5), ("b", 0), ("c", 5), ("d", None)], ["a", "c", "b", "d"], id="priority-then-age"
        ),
    ],
)
def test_active_order(added: list[tuple[str, int | None]], expected: list[str]) -> None:
    clock = FakeClock()
    queue = SchedulingQueue(clock)
    for name, priority in added:
        queue.add(pod(name, priority))
        clock.now += 1
    assert drain(queue) == expected


@pytest.mark.parametrize(
    ("attempts", "seconds"),
    [pytest.param(n, s, id=f"attempt-{n}") for n, s in [(1, 1), (2, 2), (3, 4), (4, 8), (5, 10), (9, 10)]],
)
def test_backoff_duration(attempts: int, seconds: float) -> None:
    assert backoff_duration(attempts) == seconds


def test_backoff_sequence_with_fake_clock() -> None:
    clock = FakeClock()
    queue = SchedulingQueue(clock)
    queue.add(pod("p"))
    waits = []
    info = queue.pop()
    for _ in range(5):
        assert info is not None
        queue.add_backoff(info)
        assert queue.place_of(pod("p")) == "backoff"
        started = clock.now
        info = queue.pop()
        while info is None:
            clock.now += 0.5
            info = queue.pop()
        waits.append(clock.now - started)
    assert waits == [1.0, 2.0, 4.0, 8.0, 10.0]
    assert info is not None and info.attempts == 6


def test_unschedulable_pool_moved_by_event() -> None:
    clock = FakeClock()
    queue = SchedulingQueue(clock)
    queue.add(pod("p"))
    info = queue.pop()
    assert info is not None
    queue.add_unschedulable(info, queue.scheduling_cycle)
    assert queue.pending_pods() == {"active": 0, "backoff": 0, "unschedulable": 1, "gated": 0, "inFlight": 0}
    clock.now += 60
    assert queue.pop() is None  # still waiting for an event
    queue.move_all_to_active_or_backoff("NodeAdd")
    assert queue.place_of(pod("p")) == "active"  # backoff (1 s) long over
    assert drain(queue) == ["p"]


def test_event_during_backoff_goes_to_backoff_queue() -> None:
    clock = FakeClock()
    queue = SchedulingQueue(clock)
    queue.add(pod("p"))
    info = queue.pop()
    assert info is not None
    queue.add_unschedulable(info, queue.scheduling_cycle)
    clock.now += 0.5
    queue.move_all_to_active_or_backoff("NodeUpdate")
    assert queue.place_of(pod("p")) == "backoff"
    assert queue.pop() is None
    clock.now += 0.5
    assert drain(queue) == ["p"]


def test_event_during_the_cycle_sends_pod_to_backoff() -> None:
    clock = FakeClock()
    queue = SchedulingQueue(clock)
    queue.add(pod("p"))
    info = queue.pop()
    assert info is not None
    cycle = queue.scheduling_cycle
    queue.move_all_to_active_or_backoff("PodDelete")  # arrives while "p" is being scheduled
    queue.add_unschedulable(info, cycle)
    assert queue.place_of(pod("p")) == "backoff"


def test_unschedulable_flushed_after_five_minutes() -> None:
    clock = FakeClock()
    queue = SchedulingQueue(clock)
    queue.add(pod("p"))
    info = queue.pop()
    assert info is not None
    queue.add_unschedulable(info, queue.scheduling_cycle)
    clock.now += 299
    assert queue.pop() is None and queue.place_of(pod("p")) == "unschedulable"
    clock.now += 1
    popped = queue.pop()
    assert popped is not None and popped.attempts == 2


@pytest.mark.parametrize(
    ("place", "expected"),
    [
        pytest.param("active", "active", id="active-stays"),
        pytest.param("unschedulable", "active", id="unschedulable-moves"),
        pytest.param("backoff", "backoff", id="backoff-stays"),
    ],
)
def test_update(place: str, expected: str) -> None:
    clock = FakeClock()
    queue = SchedulingQueue(clock)
    queue.add(pod("p"))
    if place != "active":
        info = queue.pop()
        assert info is not None
        clock.now += 20 if place == "unschedulable" else 0
        if place == "unschedulable":
            queue.add_unschedulable(info, queue.scheduling_cycle)
            clock.now += 20
        else:
            queue.add_backoff(info)
    queue.update(pod("p", priority=7))
    assert queue.place_of(pod("p")) == expected
    assert len(queue) == 1


def test_update_priority_reorders_active() -> None:
    queue = SchedulingQueue(FakeClock())
    queue.add(pod("a"))
    queue.add(pod("b"))
    queue.update(pod("b", priority=9))
    assert drain(queue) == ["b", "a"]


def test_delete_and_done() -> None:
    clock = FakeClock()
    queue = SchedulingQueue(clock)
    for name in ("a", "b", "c"):
        queue.add(pod(name))
    queue.delete(pod("b"))
    info = queue.pop()
    assert info is not None and info.pod["metadata"]["name"] == "a"
    assert queue.pending_pods() == {"active": 1, "backoff": 0, "unschedulable": 0, "gated": 0, "inFlight": 1}
    queue.done(info.key)
    assert queue.pending_pods()["inFlight"] == 0
    assert drain(queue) == ["c"]
    queue.add(pod("a"))
    queue.add(pod("a"))  # adding twice updates
    assert drain(queue) == ["a"]


def gated(name: str, *gates: str, priority: int | None = None) -> dict[str, Any]:
    out = pod(name, priority)
    if gates:
        out["spec"]["schedulingGates"] = [{"name": g} for g in gates]
    return out


def gates_queue(clock: FakeClock) -> SchedulingQueue:
    plugin = scheduling_gates.new(None, object())
    return SchedulingQueue(clock, pre_enqueue=lambda p: plugin.pre_enqueue(p).with_plugin(plugin.NAME))


@pytest.mark.parametrize(
    ("wake", "place"),
    [
        pytest.param(lambda q, c: None, "gated", id="nothing-happens"),
        pytest.param(lambda q, c: q.move_all_to_active_or_backoff("NodeAdd"), "gated", id="cluster-event"),
        pytest.param(lambda q, c: setattr(c, "now", c.now + 600), "gated", id="five-minute-flush"),
        pytest.param(lambda q, c: q.update(gated("g", "b")), "gated", id="one-gate-left"),
        pytest.param(lambda q, c: q.update(gated("g")), "active", id="last-gate-removed"),
    ],
)
def test_gated_pod_is_not_popped_until_its_gates_are_removed(
    wake: Callable[[SchedulingQueue, FakeClock], None], place: str
) -> None:
    clock = FakeClock()
    queue = gates_queue(clock)
    queue.add(gated("g", "a", "b", priority=100))
    queue.add(gated("free"))
    assert queue.place_of(gated("g")) == "gated"
    assert queue.pending_pods()["gated"] == 1
    assert drain(queue) == ["free"]
    queue.done("uid-free")
    wake(queue, clock)
    assert queue.place_of(gated("g")) == place
    assert drain(queue) == (["g"] if place == "active" else [])


def test_gated_pod_keeps_its_unschedulable_plugin() -> None:
    queue = gates_queue(FakeClock())
    queue.add(gated("g", "a"))
    assert queue.pop() is None
    assert queue._infos["uid-g"].unschedulable_plugins == {"SchedulingGates"}
