"""membership: the tracker's plans over successive ``ray.nodes()`` snapshots (join at once, resync,
death once, deletion after the delay, Ray forgetting a node) and the patches shutting a dead node's
Node down."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from cluster.membership import (
    SHUTDOWN_TAINT_KEY,
    MembershipPlan,
    MembershipTracker,
    clear_shutdown_patch,
    shutdown_node_patches,
)

T0 = datetime(2026, 12, 5, 6, 0, tzinfo=UTC)


def ray(alive: str = "", dead: str = "") -> list[dict[str, Any]]:
    return [{"NodeID": i, "Alive": True} for i in alive.split()] + [
        {"NodeID": i, "Alive": False} for i in dead.split()
    ]


def plan(deploy: str = "", died: str = "", delete: str = "") -> MembershipPlan:
    return MembershipPlan(frozenset(deploy.split()), frozenset(died.split()), frozenset(delete.split()))


def test_join_resync_death_and_deletion() -> None:
    tracker = MembershipTracker(delete_delay=30.0, resync=15.0)
    assert tracker.observe(ray("a b"), 0.0) == plan(deploy="a b")
    assert tracker.observe(ray("a b"), 1.0) == plan()
    assert tracker.observe(ray("a b c"), 2.0) == plan(deploy="c")  # a joiner at once, alone
    assert tracker.observe(ray("a c", dead="b"), 3.0) == plan(died="b")
    assert tracker.observe(ray("a c", dead="b"), 4.0) == plan()  # dies once
    assert tracker.observe(ray("a c", dead="b"), 15.0) == plan(deploy="a c")  # resync: all alive again
    assert tracker.observe(ray("a c", dead="b"), 29.9) == plan()
    assert tracker.observe(ray("a c", dead="b"), 30.0) == plan(deploy="a c")  # the next resync
    assert tracker.observe(ray("a c", dead="b"), 32.9) == plan()
    assert tracker.observe(ray("a c", dead="b"), 33.0) == plan(delete="b")
    assert tracker.observe(ray("a c", dead="b"), 34.0) == plan(delete="b")  # until done
    tracker.done_deleting("b")
    assert tracker.observe(ray("a c", dead="b"), 35.0) == plan()
    assert tracker.observe(ray("a c"), 36.0) == plan()  # and Ray forgetting it changes nothing


def test_failures_are_planned_again() -> None:
    tracker = MembershipTracker(delete_delay=30.0)
    tracker.observe(ray("a", dead="b"), 0.0)
    tracker.failed(deploy=["a"], died=["b"])
    assert tracker.observe(ray("a", dead="b"), 1.0) == plan(deploy="a", died="b")


def test_a_node_ray_forgot_counts_as_dead() -> None:
    tracker = MembershipTracker(delete_delay=10.0)
    assert tracker.observe(ray("a"), 0.0, known=["a", "gone"]) == plan(deploy="a", died="gone")
    assert tracker.observe(ray("a"), 10.0) == plan(delete="gone")


def test_a_dead_node_seen_at_start_waits_the_whole_delay() -> None:
    tracker = MembershipTracker(delete_delay=300.0, resync=1000.0)
    assert tracker.observe(ray("a", dead="old"), 1000.0) == plan(deploy="a", died="old")
    assert tracker.observe(ray("a", dead="old"), 1299.0) == plan()
    assert tracker.observe(ray("a", dead="old"), 1300.0) == plan(delete="old")


def ready_node(taints: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    heartbeat = "2026-12-05T05:59:59Z"
    conditions = [
        {"type": t, "status": "False", "reason": "KubeletHasSufficientMemory", "lastHeartbeatTime": heartbeat}
        for t in ("MemoryPressure", "DiskPressure", "PIDPressure")
    ]
    conditions.append(
        {
            "type": "Ready",
            "status": "True",
            "reason": "KubeletReady",
            "lastHeartbeatTime": heartbeat,
            "lastTransitionTime": "2026-12-05T05:00:00Z",
        }
    )
    return {
        "metadata": {"name": "n1"},
        "spec": {"taints": taints or []},
        "status": {"conditions": conditions},
    }


def test_a_dead_nodes_node_turns_unknown_tainted_shutdown_and_unreachable() -> None:
    spec, status = shutdown_node_patches(ready_node(), T0, "received SIGTERM")
    assert spec is not None and status is not None
    taints = {(t["key"], t["effect"]) for t in spec["spec"]["taints"]}
    assert taints == {
        (SHUTDOWN_TAINT_KEY, "NoSchedule"),
        ("node.kubernetes.io/unreachable", "NoSchedule"),
        ("node.kubernetes.io/unreachable", "NoExecute"),
    }
    noexecute = next(t for t in spec["spec"]["taints"] if t["effect"] == "NoExecute")
    assert noexecute["timeAdded"] == "2026-12-05T06:00:00Z"
    conditions = {c["type"]: c for c in status["status"]["conditions"]}
    assert {c["status"] for c in conditions.values()} == {"Unknown"}
    assert conditions["Ready"]["reason"] == "NodeStatusUnknown"
    assert conditions["Ready"]["message"] == "Ray marked the node dead (received SIGTERM)."
    assert conditions["Ready"]["lastHeartbeatTime"] == "2026-12-05T05:59:59Z"  # kept, as kube does
    assert conditions["Ready"]["lastTransitionTime"] == "2026-12-05T06:00:00Z"


def test_a_node_already_shut_down_needs_nothing() -> None:
    spec, status = shutdown_node_patches(ready_node(), T0, "x")
    assert spec is not None and status is not None
    node = ready_node(spec["spec"]["taints"])
    node["status"] = status["status"]
    assert shutdown_node_patches(node, T0, "x") == (None, None)


def test_other_taints_are_kept() -> None:
    mine = {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}
    spec, _ = shutdown_node_patches(ready_node([mine]), T0, "")
    assert spec is not None and mine in spec["spec"]["taints"]


def test_the_shutdown_taint_goes_when_the_node_is_ready_again() -> None:
    mine = {"key": "dedicated", "effect": "NoSchedule"}
    shutdown = {"key": SHUTDOWN_TAINT_KEY, "effect": "NoSchedule"}
    assert clear_shutdown_patch(ready_node([mine, shutdown])) == {"spec": {"taints": [mine]}}
    assert clear_shutdown_patch(ready_node([mine])) is None
    spec, status = shutdown_node_patches(ready_node(), T0, "x")
    assert spec is not None and status is not None
    still_dead = ready_node(spec["spec"]["taints"])
    still_dead["status"] = status["status"]
    assert clear_shutdown_patch(still_dead) is None
