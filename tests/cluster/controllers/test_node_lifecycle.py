"""The node lifecycle controller's decision: stale nodes become Unknown and tainted, live ones not."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cluster.controllers.node_lifecycle import (
    UNKNOWN_MESSAGE,
    UNKNOWN_REASON,
    UNREACHABLE_TAINT_KEY,
    last_seen,
    node_decision,
    pod_not_ready_patch,
)

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
