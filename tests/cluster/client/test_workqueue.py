"""WorkQueue: scripted scenarios on a fake clock (dedup, one worker per key, requeue while processing,
delayed adds, backoff growth, forget, shutdown), plus run_workers on the real loop."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from cluster.client.workqueue import ShutDown, WorkQueue, run_workers


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def _blocked(q: WorkQueue) -> bool:
    """True if get() does not return promptly (nothing is ready for a worker)."""
    task = asyncio.create_task(q.get())
    done, _ = await asyncio.wait([task], timeout=0.02)
    if done:
        return False
    task.cancel()
    return True


async def _run_script(steps: list[tuple[Any, ...]], **kwargs: Any) -> None:
    clock = FakeClock()
    q = WorkQueue(clock=clock, **kwargs)
    for i, (op, *args) in enumerate(steps):
        where = f"step {i}: {op} {args}"
        if op == "add":
            q.add(args[0])
        elif op == "add_after":
            q.add_after(args[0], args[1])
        elif op == "rate":
            q.add_rate_limited(args[0])
        elif op == "forget":
            q.forget(args[0])
        elif op == "done":
            q.done(args[0])
        elif op == "advance":
            clock.now += args[0]
        elif op == "shutdown":
            q.shut_down()
        elif op == "get":
            got = await asyncio.wait_for(q.get(), 1.0)
            assert got == args[0], where
        elif op == "len":
            assert len(q) == args[0], where
        elif op == "requeues":
            assert q.num_requeues(args[0]) == args[1], where
        elif op == "blocked":
            assert await _blocked(q), where
        elif op == "get_shutdown":
            with pytest.raises(ShutDown):
                await asyncio.wait_for(q.get(), 1.0)
        else:  # pragma: no cover - a typo in a table
            raise AssertionError(f"unknown op {op}")


SCRIPTS = [
    pytest.param(
        [
            ("add", "a"),
            ("add", "a"),
            ("add", "b"),
            ("add", "a"),
            ("len", 2),
            ("get", "a"),
            ("get", "b"),
            ("blocked",),
        ],
        id="dedup-of-queued-keys-keeps-fifo",
    ),
    pytest.param(
        [
            ("add", "a"),
            ("get", "a"),
            ("add", "a"),
            ("len", 0),
            ("blocked",),
            ("done", "a"),
            ("len", 1),
            ("get", "a"),
        ],
        id="one-worker-per-key-requeued-after-done",
    ),
    pytest.param(
        [
            ("add", "a"),
            ("get", "a"),
            ("add", "a"),
            ("add", "a"),
            ("add", "b"),
            ("get", "b"),
            ("done", "a"),
            ("len", 1),
            ("get", "a"),
            ("done", "a"),
            ("len", 0),
        ],
        id="many-adds-while-processing-requeue-once",
    ),
    pytest.param(
        [("add", "a"), ("get", "a"), ("done", "a"), ("len", 0), ("blocked",)],
        id="done-without-readd-does-not-requeue",
    ),
    pytest.param(
        [
            ("add_after", "a", 5),
            ("len", 0),
            ("advance", 4.9),
            ("len", 0),
            ("advance", 0.1),
            ("len", 1),
            ("get", "a"),
        ],
        id="add-after-waits-for-the-clock",
    ),
    pytest.param(
        [
            ("add_after", "a", 10),
            ("add_after", "a", 2),
            ("advance", 2),
            ("len", 1),
            ("get", "a"),
            ("done", "a"),
            ("advance", 8),
            ("len", 0),
        ],
        id="earlier-deadline-wins-and-stale-entry-is-ignored",
    ),
    pytest.param(
        [("add_after", "a", 2), ("add_after", "a", 10), ("advance", 2), ("len", 1)],
        id="later-deadline-does-not-postpone",
    ),
    pytest.param(
        [("add_after", "a", 0), ("add_after", "b", -1), ("len", 2)],
        id="non-positive-delay-is-immediate",
    ),
    pytest.param(
        [("add", "a"), ("add_after", "a", 1), ("get", "a"), ("done", "a"), ("advance", 1), ("len", 1)],
        id="parked-key-fires-even-if-queued-meanwhile",
    ),
    pytest.param(
        [
            ("rate", "a"),
            ("requeues", "a", 1),
            ("advance", 0.004),
            ("len", 0),
            ("advance", 0.001),
            ("len", 1),
            ("get", "a"),
            ("done", "a"),
            ("rate", "a"),
            ("requeues", "a", 2),
            ("advance", 0.009),
            ("len", 0),
            ("advance", 0.001),
            ("len", 1),
            ("get", "a"),
            ("done", "a"),
            ("rate", "a"),
            ("advance", 0.019),
            ("len", 0),
            ("advance", 0.001),
            ("len", 1),
        ],
        id="backoff-doubles-from-5ms",
    ),
    pytest.param(
        [
            ("rate", "a"),
            ("rate", "a"),
            ("rate", "b"),
            ("requeues", "a", 2),
            ("requeues", "b", 1),
            ("forget", "a"),
            ("requeues", "a", 0),
            ("requeues", "b", 1),
        ],
        id="failures-counted-per-key-and-forgotten",
    ),
    pytest.param(
        [
            ("rate", "a"),
            ("advance", 1),
            ("get", "a"),
            ("done", "a"),
            ("rate", "a"),
            ("forget", "a"),
            ("advance", 1),
            ("get", "a"),
            ("done", "a"),
            ("rate", "a"),
            ("advance", 0.004),
            ("len", 0),
            ("advance", 0.001),
            ("len", 1),
        ],
        id="forget-restarts-backoff-at-base",
    ),
    pytest.param(
        [
            ("add", "a"),
            ("add", "b"),
            ("add_after", "c", 1),
            ("shutdown",),
            ("add", "d"),
            ("get", "a"),
            ("get", "b"),
            ("advance", 5),
            ("get_shutdown",),
        ],
        id="shutdown-drains-queued-drops-parked-and-new",
    ),
    pytest.param(
        [("add", "a"), ("get", "a"), ("shutdown",), ("add", "a"), ("done", "a"), ("get_shutdown",)],
        id="shutdown-ignores-readd-of-processing-key",
    ),
]


@pytest.mark.parametrize("steps", SCRIPTS)
def test_workqueue_script(steps: list[tuple[Any, ...]]) -> None:
    asyncio.run(_run_script(steps))


@pytest.mark.parametrize(
    ("base", "maximum", "expected"),
    [
        pytest.param(0.005, 1000.0, [0.005, 0.01, 0.02, 0.04, 0.08], id="client-go-defaults"),
        pytest.param(1.0, 4.0, [1.0, 2.0, 4.0, 4.0, 4.0], id="capped-at-max"),
        pytest.param(0.5, 0.5, [0.5, 0.5, 0.5], id="base-equals-max"),
    ],
)
def test_backoff_sequence(base: float, maximum: float, expected: list[float]) -> None:
    q = WorkQueue(base_delay=base, max_delay=maximum, clock=FakeClock())
    assert [q.when("k") for _ in expected] == pytest.approx(expected)
    assert q.num_requeues("k") == len(expected)


def test_backoff_does_not_overflow_after_many_failures() -> None:
    q = WorkQueue(clock=FakeClock())
    for _ in range(2000):
        delay = q.when("k")
    assert delay == 1000.0


def test_waiting_get_wakes_on_add_and_on_real_deadline() -> None:
    async def scenario() -> None:
        q = WorkQueue()
        waiter = asyncio.create_task(q.get())
        await asyncio.sleep(0.01)
        assert not waiter.done()
        q.add("x")
        assert await asyncio.wait_for(waiter, 1.0) == "x"
        q.done("x")
        start = time.monotonic()
        q.add_after("y", 0.05)
        assert await asyncio.wait_for(q.get(), 1.0) == "y"
        assert time.monotonic() - start >= 0.045

    asyncio.run(scenario())


def test_cancelled_getter_does_not_lose_a_key() -> None:
    async def scenario() -> None:
        q = WorkQueue()
        first = asyncio.create_task(q.get())
        second = asyncio.create_task(q.get())
        await asyncio.sleep(0.01)
        first.cancel()
        q.add("x")
        assert await asyncio.wait_for(second, 1.0) == "x"

    asyncio.run(scenario())


def test_run_workers_retries_with_backoff_and_never_overlaps_a_key() -> None:
    async def scenario() -> None:
        q = WorkQueue(base_delay=0.001, max_delay=0.01)
        active: set[str] = set()
        calls: dict[str, int] = {}
        overlaps: list[str] = []

        async def reconcile(key: str) -> None:
            if key in active:
                overlaps.append(key)
            active.add(key)
            calls[key] = calls.get(key, 0) + 1
            if calls[key] == 1 and key != "flaky":
                q.add(key)  # a change arrives mid-reconcile
            await asyncio.sleep(0.002)
            active.discard(key)
            if key == "flaky" and calls[key] < 4:
                raise RuntimeError("transient")

        for key in ("a", "b", "flaky"):
            q.add(key)
        runner = asyncio.create_task(run_workers(q, reconcile, workers=3))
        for _ in range(200):
            await asyncio.sleep(0.005)
            if calls.get("flaky", 0) >= 4 and len(q) == 0 and not q.processing():
                break
        q.shut_down()
        await asyncio.wait_for(runner, 2.0)
        assert overlaps == []
        assert calls["a"] == 2 and calls["b"] == 2  # the mid-reconcile add ran once more, after done
        assert calls["flaky"] == 4
        assert q.num_requeues("flaky") == 0  # forgotten after the success

    asyncio.run(scenario())


def test_run_workers_cancellation_marks_key_done() -> None:
    async def scenario() -> None:
        q = WorkQueue()
        started = asyncio.Event()

        async def reconcile(key: str) -> None:
            started.set()
            await asyncio.sleep(10)

        q.add("a")
        runner = asyncio.create_task(run_workers(q, reconcile, workers=2))
        await asyncio.wait_for(started.wait(), 1.0)
        assert q.processing() == {"a"}
        runner.cancel()
        with pytest.raises(asyncio.CancelledError):
            await runner
        assert q.processing() == frozenset()

    asyncio.run(scenario())
