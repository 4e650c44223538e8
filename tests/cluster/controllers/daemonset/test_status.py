"""A DaemonSet's status counters and when they need writing."""

from __future__ import annotations

from typing import Any

import pytest

from cluster.controllers.daemonset.plan import pods_by_node
from cluster.controllers.daemonset.status import DaemonSetCounts, compute_status, status_patch
from tests.cluster.controllers.daemonset.objects import NEW, NOW, OLD, make_ds, make_node, make_pod, taint

Pod = dict[str, Any]


def nodes(n: int) -> list[dict[str, Any]]:
    return [make_node(f"n{i}") for i in range(1, n + 1)]


@pytest.mark.parametrize(
    ("cluster", "pods", "expected"),
    [
        pytest.param(nodes(3), [], DaemonSetCounts(3, 0, 0, 0, 0, 0), id="nothing-yet"),
        pytest.param(
            nodes(3),
            [make_pod("a", "n1"), make_pod("b", "n2", hash_=OLD), make_pod("c", "n3", ready=False)],
            DaemonSetCounts(3, 3, 0, 2, 2, 2),
            id="mixed",
        ),
        pytest.param(
            nodes(2),
            [make_pod("a", "n1", ready_ago=2), make_pod("b", "n2", ready_ago=60)],
            DaemonSetCounts(2, 2, 0, 2, 1, 2),
            id="min-ready-seconds",
        ),
        pytest.param(
            [make_node("n1"), make_node("n2", taints=[taint("x", "NoSchedule")])],
            [make_pod("a", "n1"), make_pod("b", "n2")],
            DaemonSetCounts(1, 1, 1, 1, 1, 1),
            id="misscheduled",
        ),
        pytest.param(
            nodes(1),
            [make_pod("old", "n1", hash_=OLD, created_ago=100), make_pod("new", "n1", created_ago=5)],
            DaemonSetCounts(1, 1, 0, 1, 1, 0),
            id="oldest-pod-decides",
        ),
        pytest.param(
            nodes(1), [make_pod("gone", "n7")], DaemonSetCounts(1, 0, 0, 0, 0, 0), id="deleted-node-ignored"
        ),
    ],
)
def test_status(cluster: list[dict[str, Any]], pods: list[Pod], expected: DaemonSetCounts) -> None:
    ds = make_ds(min_ready=30)
    assert compute_status(ds, cluster, pods_by_node(pods), NEW, NOW) == expected


def test_status_patch() -> None:
    counts = DaemonSetCounts(3, 3, 0, 2, 1, 3)
    wanted = {
        "desiredNumberScheduled": 3,
        "currentNumberScheduled": 3,
        "numberMisscheduled": 0,
        "numberReady": 2,
        "numberAvailable": 1,
        "numberUnavailable": 2,
        "updatedNumberScheduled": 3,
    }
    ds = make_ds(generation=4, status={"observedGeneration": 3})
    assert status_patch(ds, counts, observe_generation=True) == {**wanted, "observedGeneration": 4}
    assert status_patch(ds, counts, observe_generation=False) == wanted
    settled = make_ds(generation=4, status={**wanted, "observedGeneration": 4})
    assert status_patch(settled, counts, observe_generation=True) is None
    stale = make_ds(generation=5, status={**wanted, "observedGeneration": 4})
    assert status_patch(stale, counts, observe_generation=True) == {**wanted, "observedGeneration": 5}
    assert status_patch(stale, counts, observe_generation=False) is None
