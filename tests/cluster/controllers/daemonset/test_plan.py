"""The DaemonSet sync as plans: manage (one pod per eligible node, failed pods with backoff, pods for
nodes that are gone) and the rolling update with maxUnavailable/maxSurge."""

from __future__ import annotations

from typing import Any

import pytest

from cluster.controllers.daemonset.plan import (
    FailedPodBackoff,
    PlannedEvent,
    manage_plan,
    pods_by_node,
    rolling_update_plan,
    scaled_value,
)
from tests.cluster.controllers.daemonset.objects import (
    NEW,
    NOW,
    OLD,
    make_ds,
    make_node,
    make_pod,
    rolling,
    taint,
)

Pod = dict[str, Any]
NODES3 = [make_node("n1"), make_node("n2"), make_node("n3")]


@pytest.mark.parametrize(
    ("value", "total", "round_up", "expected"),
    [
        pytest.param(1, 10, True, 1, id="int"),
        pytest.param(0, 10, True, 0, id="zero"),
        pytest.param("50%", 3, True, 2, id="percent-rounds-up"),
        pytest.param("50%", 3, False, 1, id="percent-rounds-down"),
        pytest.param("10%", 0, True, 0, id="percent-of-nothing"),
        pytest.param("100%", 7, True, 7, id="all"),
        pytest.param(None, 7, True, 0, id="unset"),
    ],
)
def test_scaled_value(value: int | str | None, total: int, round_up: bool, expected: int) -> None:
    assert scaled_value(value, total, round_up=round_up) == expected


@pytest.mark.parametrize("value", ["5", "x%", "abc"])
def test_scaled_value_refuses_non_percent_strings(value: str) -> None:
    with pytest.raises(ValueError, match="invalid value for IntOrString"):
        scaled_value(value, 10, round_up=True)


def manage(
    pods: list[Pod], nodes: list[dict[str, Any]] = NODES3, ds: dict[str, Any] | None = None, **kw: Any
) -> Any:
    backoff = kw.pop("backoff", FailedPodBackoff())
    return manage_plan(
        ds or make_ds(), nodes, pods_by_node(pods), NEW, NOW, backoff, kw.pop("monotonic", 100.0)
    )


@pytest.mark.parametrize(
    ("nodes", "pods", "ds", "create", "delete"),
    [
        pytest.param(NODES3, [], None, ["n1", "n2", "n3"], [], id="empty-cluster-gets-one-each"),
        pytest.param(
            NODES3,
            [make_pod("a", "n1"), make_pod("b", "n2", bound=False)],
            None,
            ["n3"],
            [],
            id="pinned-counts",
        ),
        pytest.param(
            NODES3,
            [make_pod("a", "n1"), make_pod("b", "n2"), make_pod("c", "n3")],
            None,
            [],
            [],
            id="settled",
        ),
        pytest.param(
            NODES3,
            [make_pod("old", "n1", created_ago=100), make_pod("young", "n1", created_ago=10)],
            None,
            ["n2", "n3"],
            ["young"],
            id="two-on-a-node-keeps-oldest",
        ),
        pytest.param(
            NODES3,
            [
                make_pod("pending", "n1", bound=False, created_ago=100),
                make_pod("bound", "n1", created_ago=10),
            ],
            None,
            ["n2", "n3"],
            ["pending"],
            id="two-on-a-node-keeps-bound",
        ),
        pytest.param(
            [make_node("n1", {"role": "db"}), make_node("n2")],
            [make_pod("a", "n1"), make_pod("b", "n2")],
            make_ds(pod_spec={"containers": [], "nodeSelector": {"role": "db"}}),
            [],
            ["b"],
            id="label-no-longer-matches",
        ),
        pytest.param(
            [make_node("n1", taints=[taint("maint", "NoSchedule")]), make_node("n2")],
            [make_pod("a", "n1")],
            None,
            ["n2"],
            [],
            id="noschedule-taint-keeps-pod-but-no-new",
        ),
        pytest.param(
            [make_node("n1", taints=[taint("maint", "NoSchedule")])],
            [],
            None,
            [],
            [],
            id="noschedule-no-new-pod",
        ),
        pytest.param(
            [make_node("n1", taints=[taint("maint", "NoExecute")])],
            [make_pod("a", "n1")],
            None,
            [],
            ["a"],
            id="noexecute-taint-removes-pod",
        ),
        pytest.param(
            [make_node("n1")],
            [make_pod("a", "n1"), make_pod("gone-bound", "n9"), make_pod("gone-pending", "n8", bound=False)],
            None,
            [],
            ["gone-pending", "gone-bound"],
            id="pods-for-deleted-nodes",
        ),
        pytest.param(
            [make_node("n1")], [make_pod("a", "n1", deleting=True)], None, [], [], id="terminating-pod-waits"
        ),
        pytest.param(
            [make_node("n1")],
            [make_pod("a", "n1", phase="Succeeded", ready=False)],
            None,
            [],
            ["a"],
            id="succeeded-pod-deleted",
        ),
        pytest.param(
            [make_node("n1")],
            [make_pod("a", "n1", phase="Failed", ready=False, deleting=True)],
            None,
            ["n1"],
            [],
            id="deleted-failed-pod-no-longer-counts",
        ),
    ],
)
def test_manage(
    nodes: list[dict[str, Any]],
    pods: list[Pod],
    ds: dict[str, Any] | None,
    create: list[str],
    delete: list[str],
) -> None:
    plan = manage(pods, nodes, ds)
    assert list(plan.create_on) == create
    assert list(plan.delete) == delete


def test_pods_for_deleted_nodes_are_orphaned() -> None:
    plan = manage([make_pod("gone", "n9"), make_pod("a", "n1", phase="Succeeded")], [make_node("n1")])
    assert plan.orphaned == frozenset({"gone"})
    assert plan.events == (
        PlannedEvent(
            "Normal",
            "SucceededDaemonPod",
            "Found succeeded daemon pod ns/a on node n1, will try to delete it",
        ),
    )


def test_failed_pod_is_deleted_with_backoff() -> None:
    backoff = FailedPodBackoff()
    nodes = [make_node("n1")]
    failed = [make_pod("a", "n1", phase="Failed", ready=False)]
    first = manage(failed, nodes, backoff=backoff, monotonic=100.0)
    assert first.delete == ("a",)
    assert first.events == (
        PlannedEvent(
            "Warning", "FailedDaemonPod", "Found failed daemon pod ns/a on node n1, will try to kill it"
        ),
    )
    # The replacement fails at once: 0.5 s later it is inside the 1 s backoff and waits.
    again = [make_pod("b", "n1", phase="Failed", ready=False)]
    held = manage(again, nodes, backoff=backoff, monotonic=100.5)
    assert held.delete == () and held.create_on == () and held.events == ()
    assert held.requeue_after == pytest.approx(0.5)
    assert manage(again, nodes, backoff=backoff, monotonic=101.0).delete == ("b",)
    # The delay doubles: 2 s now.
    assert manage(again, nodes, backoff=backoff, monotonic=102.5).delete == ()
    assert manage(again, nodes, backoff=backoff, monotonic=103.0).delete == ("b",)


@pytest.mark.parametrize(
    ("steps", "delays"),
    [
        pytest.param([0, 1, 3, 7, 15], [1, 2, 4, 8, 16], id="doubles"),
        pytest.param([0, 1, 3, 1000, 3000], [1, 2, 4, 8, 1], id="idle-twice-the-maximum-starts-over"),
    ],
)
def test_backoff_delays(steps: list[float], delays: list[float]) -> None:
    backoff = FailedPodBackoff(initial=1, maximum=900)
    got = []
    for at in steps:
        backoff.next("k", at)
        got.append(backoff.delay("k"))
    assert got == delays
    capped = FailedPodBackoff(initial=1, maximum=4)
    for at in range(10):
        capped.next("k", float(at))
    assert capped.delay("k") == 4


SURGE = make_ds(strategy=rolling(max_unavailable=0, max_surge=1))


@pytest.mark.parametrize(
    ("pods", "create", "delete"),
    [
        pytest.param([make_pod("o", "n1", hash_=OLD)], [], [], id="old-alone-stays"),
        pytest.param(
            [make_pod("o", "n1", hash_=OLD), make_pod("n", "n1", ready=False, created_ago=5)],
            [],
            [],
            id="old-stays-until-new-available",
        ),
        pytest.param(
            [make_pod("o", "n1", hash_=OLD), make_pod("n", "n1", created_ago=5)],
            [],
            ["o"],
            id="new-available-old-goes",
        ),
        pytest.param(
            [make_pod("o", "n1", hash_=OLD, ready=False), make_pod("n", "n1", ready=False, created_ago=5)],
            [],
            ["o"],
            id="old-not-ready-goes",
        ),
        pytest.param(
            [
                make_pod("o", "n1", hash_=OLD, created_ago=50),
                make_pod("o2", "n1", hash_=OLD, created_ago=40),
                make_pod("n", "n1", ready=False, created_ago=5),
                make_pod("n2", "n1", ready=False, created_ago=1),
            ],
            [],
            ["o2", "n2"],
            id="extras-beyond-one-old-one-new",
        ),
        pytest.param(
            [make_pod("o", "n1", hash_=OLD, deleting=True)], ["n1"], [], id="all-terminating-surges-new"
        ),
    ],
)
def test_manage_with_surge(pods: list[Pod], create: list[str], delete: list[str]) -> None:
    plan = manage(pods, [make_node("n1")], SURGE)
    assert (list(plan.create_on), list(plan.delete)) == (create, delete)


def old_pods(n: int, **kw: Any) -> list[Pod]:
    return [make_pod(f"p{i}", f"n{i}", hash_=OLD, **kw) for i in range(1, n + 1)]


def nodes(n: int) -> list[dict[str, Any]]:
    return [make_node(f"n{i}") for i in range(1, n + 1)]


@pytest.mark.parametrize(
    ("strategy", "cluster", "pods", "create", "delete"),
    [
        pytest.param(rolling(1, 0), nodes(3), old_pods(3), [], ["p1"], id="max-unavailable-1"),
        pytest.param(rolling(2, 0), nodes(3), old_pods(3), [], ["p1", "p2"], id="max-unavailable-2"),
        pytest.param(rolling("50%", 0), nodes(3), old_pods(3), [], ["p1", "p2"], id="percent-rounds-up"),
        pytest.param(rolling("100%", 0), nodes(3), old_pods(3), [], ["p1", "p2", "p3"], id="all-at-once"),
        pytest.param(rolling(0, 0), nodes(3), old_pods(3), [], ["p1"], id="both-zero-means-one-unavailable"),
        pytest.param(
            rolling(1, 0),
            nodes(3),
            [make_pod("p1", "n1", ready=False), *old_pods(3)[1:]],
            [],
            [],
            id="new-pod-not-ready-uses-the-budget",
        ),
        pytest.param(
            rolling(1, 0),
            nodes(3),
            [make_pod("p1", "n1"), *old_pods(3)[1:]],
            [],
            ["p2"],
            id="new-pod-available-next-one",
        ),
        pytest.param(
            rolling(1, 0),
            nodes(3),
            [*old_pods(2), make_pod("p3", "n3", hash_=OLD, ready=False)],
            [],
            ["p3"],
            id="unavailable-old-replaced-first-and-counts",
        ),
        pytest.param(
            rolling(1, 0),
            nodes(3),
            old_pods(2),
            [],
            [],
            id="node-without-pod-counts-as-unavailable",
        ),
        pytest.param(
            rolling(1, 0),
            nodes(2),
            [make_pod("p1", "n1", hash_=OLD, ready_ago=5), make_pod("p2", "n2", hash_=OLD)],
            [],
            ["p1"],
            id="min-ready-not-yet-available-old-is-replaced",
        ),
        pytest.param(rolling(1, 1), nodes(3), old_pods(3), ["n1"], [], id="surge-1"),
        pytest.param(rolling(0, "100%"), nodes(3), old_pods(3), ["n1", "n2", "n3"], [], id="surge-all"),
        pytest.param(
            rolling(0, 1),
            nodes(3),
            [*old_pods(3), make_pod("x1", "n1", ready=False, created_ago=5)],
            [],
            [],
            id="surge-waits-for-new-pod",
        ),
        pytest.param(
            rolling(0, 1),
            nodes(3),
            [*old_pods(3), make_pod("x1", "n1", created_ago=5)],
            ["n2"],
            ["p1"],
            id="surge-new-available-old-goes-next-node",
        ),
        pytest.param(
            rolling(0, 1),
            nodes(3),
            [*old_pods(2), make_pod("p3", "n3", hash_=OLD, ready=False)],
            ["n3", "n1"],
            [],
            id="surge-unavailable-old-replaced-beyond-budget",
        ),
        pytest.param(
            rolling(1, 0), nodes(2), [make_pod("p1", "n1"), make_pod("p2", "n2")], [], [], id="all-updated"
        ),
    ],
)
def test_rolling_update(
    strategy: dict[str, Any],
    cluster: list[dict[str, Any]],
    pods: list[Pod],
    create: list[str],
    delete: list[str],
) -> None:
    ds = make_ds(strategy=strategy, min_ready=10)
    plan = rolling_update_plan(ds, cluster, pods_by_node(pods), NEW, NOW)
    assert (list(plan.create_on), list(plan.delete)) == (create, delete)


def test_surge_keeps_pods_on_unwanted_nodes_until_enough_are_available() -> None:
    ds = make_ds(strategy=rolling(0, 1), pod_spec={"containers": [], "nodeSelector": {"run": "yes"}})
    cluster = [make_node("n1", {"run": "yes"}), make_node("n2")]
    # n2 is no longer wanted; n1 has no pod yet: nothing available beyond n2's, so n2's pod stays.
    pods = [make_pod("p2", "n2", hash_=OLD)]
    assert rolling_update_plan(ds, cluster, pods_by_node(pods), NEW, NOW).delete == ()
    # once n1's new pod is available, there are more available pods than wanted: n2's goes.
    pods.append(make_pod("p1", "n1"))
    assert rolling_update_plan(ds, cluster, pods_by_node(pods), NEW, NOW).delete == ("p2",)
