"""The controller runtime's pieces: --controllers rules, expectations, slow-start batches, pod helpers,
and a controller's queue (errors requeue, returned delays park the key)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from cluster.controllers import pods
from cluster.controllers.expectations import Expectations
from cluster.controllers.registry import UnknownController, enabled, is_enabled
from cluster.controllers.runtime import Controller, ControllerContext, SharedInformers
from tests.cluster.controllers.fakes import T0, FakeClock, FakeRecorder

KNOWN: dict[str, Any] = {"replicaset": object, "deployment": object, "bootstrapsigner": object}
OFF = frozenset({"bootstrapsigner"})


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        pytest.param(["*"], ["deployment", "replicaset"], id="star-skips-disabled-by-default"),
        pytest.param(["*", "bootstrapsigner"], ["bootstrapsigner", "deployment", "replicaset"], id="opt-in"),
        pytest.param(["*", "-deployment"], ["replicaset"], id="star-minus-one"),
        pytest.param(["-deployment", "*"], ["replicaset"], id="order-does-not-matter-for-minus"),
        pytest.param(["deployment"], ["deployment"], id="only-one"),
        pytest.param(["deployment", "-deployment"], ["deployment"], id="first-mention-wins"),
        pytest.param([], [], id="nothing"),
    ],
)
def test_controllers_flag(spec: list[str], expected: list[str]) -> None:
    assert enabled(spec, KNOWN, OFF) == expected


def test_unknown_controller_is_an_error() -> None:
    with pytest.raises(UnknownController, match='"replicaset2" is not in the list of known controllers'):
        enabled(["*", "-replicaset2"], KNOWN, OFF)
    assert not is_enabled("x", ["-x", "*"])


def test_expectations_creations_and_deletions() -> None:
    clock = FakeClock()
    exp = Expectations(clock)
    assert exp.satisfied("ns/rs")  # never set
    exp.expect_creations("ns/rs", 2)
    exp.expect_deletions("ns/rs", ["u1"])
    assert not exp.satisfied("ns/rs") and exp.pending("ns/rs") == (2, 1)
    exp.creation_observed("ns/rs")
    exp.creation_observed("ns/rs")
    exp.creation_observed("ns/rs")  # an extra observation never goes below zero
    assert exp.pending("ns/rs") == (0, 1) and not exp.satisfied("ns/rs")
    exp.deletion_observed("ns/rs", "u1")
    exp.deletion_observed("ns/rs", "u1")  # seen twice (watch and relist): counted once
    assert exp.satisfied("ns/rs")


def test_expectations_expire_after_five_minutes() -> None:
    clock = FakeClock()
    exp = Expectations(clock)
    exp.expect_creations("ns/rs", 3)
    clock.advance(299)
    assert not exp.satisfied("ns/rs")
    clock.advance(2)
    assert exp.satisfied("ns/rs")
    exp.expect_creations("ns/rs", 1)  # an expired record starts afresh
    assert exp.pending("ns/rs") == (1, 0)
    exp.forget("ns/rs")
    assert exp.satisfied("ns/rs")


@pytest.mark.parametrize(
    ("count", "fail_at", "calls", "succeeded"),
    [
        pytest.param(10, None, 10, 10, id="all-succeed"),
        pytest.param(10, 0, 1, 0, id="first-fails-one-request-only"),
        pytest.param(10, 3, 7, 6, id="fails-in-third-batch"),  # batches 1,2,4: call 3 is in batch 3
        pytest.param(0, None, 0, 0, id="nothing"),
    ],
)
def test_slow_start_batch(count: int, fail_at: int | None, calls: int, succeeded: int) -> None:
    made: list[int] = []

    async def create(i: int) -> None:
        made.append(i)
        if i == fail_at:
            raise RuntimeError("quota")

    done, err = asyncio.run(pods.slow_start_batch(count, 1, create))
    assert len(made) == calls and done == succeeded
    assert (err is None) == (fail_at is None)


def _pod(ready: str | None, since: str = "2026-01-01T00:00:00Z", **meta: Any) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": "Running"}
    if ready is not None:
        status["conditions"] = [{"type": "Ready", "status": ready, "lastTransitionTime": since}]
    return {"metadata": {"name": "p", **meta}, "status": status}


@pytest.mark.parametrize(
    ("pod", "min_ready", "available"),
    [
        pytest.param(_pod("True"), 0, True, id="ready"),
        pytest.param(_pod("False"), 0, False, id="not-ready"),
        pytest.param(_pod(None), 0, False, id="no-condition"),
        pytest.param(_pod("True"), 10, False, id="ready-too-briefly"),
        pytest.param(_pod("True", "2025-12-31T23:59:00Z"), 10, True, id="ready-long-enough"),
        pytest.param(_pod("True", "2025-12-31T23:59:50Z"), 10, False, id="exactly-min-ready-is-not-yet"),
    ],
)
def test_pod_availability(pod: dict[str, Any], min_ready: int, available: bool) -> None:
    assert pods.is_pod_available(pod, min_ready, T0) is available


def test_pod_from_template_is_owned_and_copied() -> None:
    owner = {"metadata": {"name": "web", "namespace": "shop", "uid": "u-1"}}
    template = {"metadata": {"labels": {"app": "web"}, "annotations": {"a": "1"}}, "spec": {"containers": []}}
    pod = pods.pod_from_template(template, owner, "apps/v1", "ReplicaSet")
    assert pod["metadata"]["generateName"] == "web-" and pod["metadata"]["namespace"] == "shop"
    assert pod["metadata"]["labels"] == {"app": "web"} and pod["metadata"]["annotations"] == {"a": "1"}
    assert pods.controller_ref(pod) == pods.owner_reference(owner, "apps/v1", "ReplicaSet")
    assert pods.is_controlled_by(pod, owner)
    pod["spec"]["containers"].append({"name": "x"})
    assert template["spec"]["containers"] == []  # the template is not shared with the pod
    named = pods.pod_from_template(template, owner, "apps/v1", "StatefulSet", name="web-0")
    assert named["metadata"]["name"] == "web-0" and "generateName" not in named["metadata"]


def test_active_and_terminating() -> None:
    assert pods.is_pod_active(_pod("True"))
    assert not pods.is_pod_active({"status": {"phase": "Succeeded"}})
    assert not pods.is_pod_active(_pod("True", deletionTimestamp="2026-01-01T00:00:00Z"))


class _Counting(Controller):
    NAME = "counting"
    COMPONENT = "counting-controller"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.seen: list[str] = []

    async def reconcile(self, key: str) -> float | None:
        self.seen.append(key)
        if key == "ns/boom" and self.seen.count(key) == 1:
            raise RuntimeError("transient")
        return 30.0 if key == "ns/later" else None


def test_controller_requeues_errors_and_parks_returned_delays() -> None:
    async def scenario() -> tuple[list[str], int]:
        clock = FakeClock()
        ctx = ControllerContext(None, SharedInformers(None), clock, lambda _: FakeRecorder())  # type: ignore[arg-type]
        controller = _Counting(ctx)
        controller.enqueue("ns/boom")
        controller.enqueue({"metadata": {"namespace": "ns", "name": "later"}})
        controller.enqueue_controller_of(
            {
                "metadata": {
                    "namespace": "ns",
                    "ownerReferences": [{"kind": "X", "name": "o", "controller": True}],
                }
            },
            "X",
        )
        controller.start()
        for _ in range(50):  # the error's 5 ms backoff runs on the real loop; the fake clock parks it
            await asyncio.sleep(0.01)
            clock.advance(0.01)
            if controller.seen.count("ns/boom") == 2:
                break
        parked = controller.queue.parked()
        await controller.stop()
        return controller.seen, parked

    seen, parked = asyncio.run(scenario())
    assert seen.count("ns/boom") == 2  # failed once, retried after its backoff
    assert seen.count("ns/later") == 1 and seen.count("ns/o") == 1
    assert parked == 1  # ns/later waits for its 30 s
