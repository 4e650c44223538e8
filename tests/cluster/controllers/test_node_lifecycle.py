"""The node lifecycle controller: stale nodes become Unknown, taints follow the Ready condition
(not-ready / unreachable, NoSchedule and NoExecute), and each node is looked at periodically."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cluster.controllers.node_lifecycle import (
    NOT_READY_TAINT_KEY,
    UNKNOWN_MESSAGE,
    UNKNOWN_REASON,
    UNREACHABLE_TAINT_KEY,
    NodeLifecycleController,
    last_seen,
    node_decision,
    pod_not_ready_patch,
    wanted_taints,
)
from cluster.controllers.runtime import ControllerContext, ControllerOptions, SharedInformers
from tests.cluster.controllers.fake_client import FakeClient
from tests.cluster.controllers.fakes import FakeClock, FakeRecorder

NOW = datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC)


def stamp(seconds_ago: float) -> str:
    return (NOW - timedelta(seconds=seconds_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def node(
    heartbeat_ago: float | None, taints: list[dict[str, Any]] | None = None, ready: str = "True"
) -> dict[str, Any]:
    conditions = []
    if heartbeat_ago is not None:
        for kind in ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure"):
            conditions.append(
                {
                    "type": kind,
                    "status": ready if kind == "Ready" or ready == "Unknown" else "False",
                    "lastHeartbeatTime": stamp(heartbeat_ago),
                    "lastTransitionTime": stamp(3600),
                }
            )
    return {
        "metadata": {"name": "n1", "creationTimestamp": stamp(7200)},
        "spec": {"taints": taints or []},
        "status": {"conditions": conditions},
    }


def lease(renewed_ago: float) -> dict[str, Any]:
    return {"spec": {"renewTime": (NOW - timedelta(seconds=renewed_ago)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")}}


UNREACHABLE = [
    {"key": UNREACHABLE_TAINT_KEY, "effect": "NoSchedule", "timeAdded": stamp(60)},
    {"key": UNREACHABLE_TAINT_KEY, "effect": "NoExecute", "timeAdded": stamp(60)},
]


@pytest.mark.parametrize(
    ("the_node", "the_lease", "unknown", "taints"),
    [
        pytest.param(node(5), lease(5), False, None, id="fresh-heartbeat-and-lease"),
        pytest.param(node(300), lease(3), False, None, id="lease-keeps-it-alive"),
        pytest.param(node(3), None, False, None, id="heartbeat-without-lease"),
        pytest.param(node(60), lease(45), True, "add", id="both-stale"),
        pytest.param(node(None), None, True, "add", id="never-reported"),
        pytest.param(node(5, UNREACHABLE), lease(2), False, "remove", id="back-again-untaints"),
        pytest.param(node(60, UNREACHABLE, ready="Unknown"), lease(60), False, None, id="already-unknown"),
    ],
)
def test_node_decision(
    the_node: dict[str, Any], the_lease: dict[str, Any] | None, unknown: bool, taints: str | None
) -> None:
    decision = node_decision(the_node, the_lease, NOW, grace=40)
    if unknown:
        assert decision.conditions is not None and decision.mark_pods_not_ready
        by_type = {c["type"]: c for c in decision.conditions}
        assert set(by_type) == {"Ready", "MemoryPressure", "DiskPressure", "PIDPressure"}
        for condition in by_type.values():
            assert condition["status"] == "Unknown"
            assert (condition["reason"], condition["message"]) == (UNKNOWN_REASON, UNKNOWN_MESSAGE)
            assert condition["lastTransitionTime"] == stamp(0)
    else:
        assert decision.conditions is None and not decision.mark_pods_not_ready
    if taints == "add":
        assert decision.taints is not None
        assert {(t["key"], t["effect"]) for t in decision.taints} == {
            (UNREACHABLE_TAINT_KEY, "NoSchedule"),
            (UNREACHABLE_TAINT_KEY, "NoExecute"),
        }
    elif taints == "remove":
        assert decision.taints == []
    else:
        assert decision.taints is None


def test_last_seen_takes_the_newest_signal() -> None:
    assert last_seen(node(100), lease(10)) == NOW - timedelta(seconds=10)
    assert last_seen(node(10), lease(100)) == NOW - timedelta(seconds=10)
    assert last_seen(node(None), None) == NOW - timedelta(seconds=7200)  # creation time


def test_pods_on_a_lost_node_become_not_ready_once() -> None:
    pod = {
        "status": {
            "conditions": [{"type": "Ready", "status": "True"}, {"type": "PodScheduled", "status": "True"}]
        }
    }
    patch = pod_not_ready_patch(pod, NOW)
    assert patch is not None
    ready = next(c for c in patch["status"]["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False" and len(patch["status"]["conditions"]) == 2
    assert pod_not_ready_patch({"status": patch["status"]}, NOW) is None


NOT_READY = [
    {"key": NOT_READY_TAINT_KEY, "effect": "NoSchedule"},
    {"key": NOT_READY_TAINT_KEY, "effect": "NoExecute", "timeAdded": stamp(30)},
]
USER_TAINT = {"key": "example.com/dedicated", "effect": "NoSchedule", "value": "gpu"}


def keys(taints: list[dict[str, Any]] | None) -> set[tuple[str, str]] | None:
    return None if taints is None else {(t["key"], t["effect"]) for t in taints}


@pytest.mark.parametrize(
    ("the_node", "the_lease", "expected"),
    [
        pytest.param(
            node(5, ready="False"),
            lease(5),
            {(NOT_READY_TAINT_KEY, "NoSchedule"), (NOT_READY_TAINT_KEY, "NoExecute")},
            id="reports-not-ready",
        ),
        pytest.param(node(5, NOT_READY, ready="False"), lease(5), None, id="not-ready-already-tainted"),
        pytest.param(node(5, NOT_READY), lease(5), set(), id="ready-again-untaints"),
        pytest.param(
            node(60, NOT_READY, ready="False"),
            lease(60),
            {(UNREACHABLE_TAINT_KEY, "NoSchedule"), (UNREACHABLE_TAINT_KEY, "NoExecute")},
            id="not-ready-then-silent-swaps-to-unreachable",
        ),
        pytest.param(
            node(5, [USER_TAINT], ready="False"),
            lease(5),
            {
                ("example.com/dedicated", "NoSchedule"),
                (NOT_READY_TAINT_KEY, "NoSchedule"),
                (NOT_READY_TAINT_KEY, "NoExecute"),
            },
            id="other-taints-kept",
        ),
        pytest.param(node(5, [USER_TAINT]), lease(5), None, id="ready-with-user-taint-untouched"),
    ],
)
def test_taints_follow_the_ready_condition(
    the_node: dict[str, Any], the_lease: dict[str, Any], expected: set[tuple[str, str]] | None
) -> None:
    assert keys(node_decision(the_node, the_lease, NOW, grace=40).taints) == expected


def test_only_no_execute_taints_carry_time_added_and_existing_ones_keep_it() -> None:
    added = node_decision(node(5, ready="False"), lease(5), NOW, grace=40).taints
    assert added is not None
    by_effect = {t["effect"]: t for t in added}
    assert "timeAdded" not in by_effect["NoSchedule"]
    assert by_effect["NoExecute"]["timeAdded"] == stamp(0)
    kept = wanted_taints(list(NOT_READY), "False", NOW)
    assert kept == NOT_READY  # timeAdded 30 s ago is not moved to now


# -- the controller: a periodic requeue per node key ------------------------------------------------


class Harness:
    def __init__(self, grace: float = 40) -> None:
        self.clock = FakeClock(NOW)
        self.client = FakeClient()
        self.recorder = FakeRecorder()
        self.informers = SharedInformers(self.client)  # type: ignore[arg-type]
        ctx = ControllerContext(
            self.client,  # type: ignore[arg-type]
            self.informers,
            self.clock,
            lambda _: self.recorder,
            ControllerOptions(node_monitor_grace=grace),
        )
        self.controller = NodeLifecycleController(ctx)

    def put(self, gv: str, plural: str, obj: dict[str, Any]) -> None:
        self.client.put(gv, plural, obj)
        self.informers.lister(gv, plural).upsert(obj)


def test_a_silent_node_is_patched_unknown_tainted_and_its_pods_not_ready() -> None:
    h = Harness()
    h.put("v1", "nodes", node(120))
    pod = {
        "metadata": {"name": "p", "namespace": "ns"},
        "spec": {"nodeName": "n1"},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]},
    }
    h.put("v1", "pods", pod)
    h.put("v1", "pods", {"metadata": {"name": "q", "namespace": "ns"}, "spec": {"nodeName": "n2"}})
    assert asyncio.run(h.controller.reconcile("n1")) == 5.0  # looked at again after the monitor period
    stored = h.client.stored("v1", "nodes", "n1")
    assert stored is not None
    assert {(t["key"], t["effect"]) for t in stored["spec"]["taints"]} == {
        (UNREACHABLE_TAINT_KEY, "NoSchedule"),
        (UNREACHABLE_TAINT_KEY, "NoExecute"),
    }
    ready = next(c for c in stored["status"]["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "Unknown"
    patched_pods = [c[4] for c in h.client.writes("patch") if c[2] == "pods"]
    assert patched_pods == ["p"]
    assert ("Normal", "NodeNotReady", "Node n1 status is now: NodeNotReady", "n1") in h.recorder.events


def test_a_deleted_node_is_not_requeued() -> None:
    assert asyncio.run(Harness().controller.reconcile("gone")) is None


def test_a_reported_ready_change_enqueues_the_node_at_once() -> None:
    h = Harness()
    h.controller._node_updated(node(5), node(5))  # a heartbeat
    assert len(h.controller.queue) == 0
    h.controller._node_updated(node(5), node(5, ready="False"))
    assert len(h.controller.queue) == 1
