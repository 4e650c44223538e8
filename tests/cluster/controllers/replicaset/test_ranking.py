"""Scale-down order: the pod kube's ActivePodsWithRanks puts first is deleted first."""

from __future__ import annotations

from typing import Any

import pytest

from cluster.controllers.replicaset.ranking import (
    colocation_ranks,
    deletion_cost,
    max_restarts,
    pods_to_delete,
)
from tests.cluster.controllers.replicaset.objects import NOW, make_pod


def related_on(*nodes: str) -> list[dict[str, Any]]:
    return [make_pod(f"rel-{i}", node=n, ready_ago=100) for i, n in enumerate(nodes)]


@pytest.mark.parametrize(
    ("first", "second", "related"),
    [
        pytest.param(
            make_pod("a", node=None, phase="Pending"),
            make_pod("b", phase="Pending"),
            [],
            id="unscheduled-before-scheduled",
        ),
        pytest.param(
            make_pod("a", node=None, phase="Running", ready_ago=9000),
            make_pod("b", phase="Pending"),
            [],
            id="unscheduled-wins-over-phase-and-readiness",
        ),
        pytest.param(
            make_pod("a", phase="Pending"), make_pod("b", phase="Unknown"), [], id="pending-before-unknown"
        ),
        pytest.param(
            make_pod("a", phase="Unknown"), make_pod("b", phase="Running"), [], id="unknown-before-running"
        ),
        pytest.param(
            make_pod("a", not_ready=True, created_ago=9000),
            make_pod("b", ready_ago=5, created_ago=6),
            [],
            id="not-ready-before-ready-even-if-older",
        ),
        pytest.param(
            make_pod("a", ready_ago=9000, cost="-5"),
            make_pod("b", ready_ago=5),
            [],
            id="lower-deletion-cost-before-shorter-ready",
        ),
        pytest.param(
            make_pod("a", ready_ago=100, cost="not-a-number"),
            make_pod("b", ready_ago=100, cost="1"),
            [],
            id="malformed-cost-counts-as-zero",
        ),
        pytest.param(
            make_pod("a", node="n1", ready_ago=9000),
            make_pod("b", node="n2", ready_ago=5),
            ["n1", "n1", "n2"],
            id="more-colocated-related-pods-first",
        ),
        pytest.param(
            make_pod("a", ready_ago=10, restarts=0),
            make_pod("b", ready_ago=1000, restarts=7),
            [],
            id="ready-for-shorter-time-before-more-restarts",
        ),
        pytest.param(
            make_pod("a", uid="uid-0", ready_ago=101),
            make_pod("b", uid="uid-9", ready_ago=100),
            [],
            id="ready-times-in-one-log-bucket-order-by-uid",
        ),
        pytest.param(
            make_pod("a", not_ready=True, restarts=3, created_ago=9000),
            make_pod("b", not_ready=True, restarts=0, created_ago=5),
            [],
            id="more-restarts-before-newer",
        ),
        pytest.param(
            make_pod("a", not_ready=True, sidecar_restarts=2),
            make_pod("b", not_ready=True, sidecar_restarts=0),
            [],
            id="sidecar-restarts-break-a-tie",
        ),
        pytest.param(
            make_pod("a", not_ready=True, created_ago=60),
            make_pod("b", not_ready=True, created_ago=6000),
            [],
            id="newer-before-older",
        ),
        pytest.param(
            make_pod("a", uid="uid-0", not_ready=True, created_ago=601),
            make_pod("b", uid="uid-9", not_ready=True, created_ago=600),
            [],
            id="creation-times-in-one-log-bucket-order-by-uid",
        ),
        pytest.param(
            make_pod("a", not_ready=True, created_ago=None),
            make_pod("b", not_ready=True, created_ago=1),
            [],
            id="missing-creation-time-first",
        ),
    ],
)
def test_pair_order(first: dict[str, Any], second: dict[str, Any], related: list[str]) -> None:
    rel = related_on(*related)
    for pods in ([first, second], [second, first]):
        assert [p["metadata"]["name"] for p in pods_to_delete(pods, 1, NOW, rel)] == ["a"]


def test_scale_down_picks_unscheduled_then_not_ready_then_newest() -> None:
    pods = [
        make_pod("old-ready", ready_ago=8000, created_ago=9000),
        make_pod("new-ready", ready_ago=50, created_ago=60),
        make_pod("not-ready", not_ready=True, created_ago=9000),
        make_pod("unscheduled", node=None, phase="Pending", created_ago=9000),
        make_pod("mid-ready", ready_ago=1000, created_ago=1100),
    ]
    names = [p["metadata"]["name"] for p in pods_to_delete(pods, 4, NOW)]
    assert names == ["unscheduled", "not-ready", "new-ready", "mid-ready"]


@pytest.mark.parametrize(
    ("count", "expected"),
    [
        pytest.param(0, [], id="none"),
        pytest.param(-1, [], id="negative"),
        pytest.param(2, ["x", "y"], id="all-in-given-order"),
        pytest.param(5, ["x", "y"], id="more-than-there-are"),
    ],
)
def test_count_bounds(count: int, expected: list[str]) -> None:
    pods = [make_pod("x", ready_ago=10), make_pod("y", node=None)]
    assert [p["metadata"]["name"] for p in pods_to_delete(pods, count, NOW)] == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param(None, 0, id="absent"),
        pytest.param("100", 100, id="positive"),
        pytest.param("-3", -3, id="negative"),
        pytest.param("2147483648", 0, id="beyond-int32"),
        pytest.param("1.5", 0, id="not-an-integer"),
    ],
)
def test_deletion_cost(raw: str | None, expected: int) -> None:
    assert deletion_cost(make_pod("p", cost=raw)) == expected


def test_max_restarts_splits_regular_and_sidecar() -> None:
    pod = make_pod("p", restarts=4, sidecar_restarts=9)
    pod["spec"]["initContainers"].append({"name": "init", "image": "busybox"})
    pod["status"]["initContainerStatuses"].append({"name": "init", "restartCount": 50})
    assert max_restarts(pod) == (4, 9)


def test_colocation_counts_only_active_related_pods() -> None:
    related = [
        make_pod("r1", node="n1"),
        make_pod("r2", node="n1", phase="Succeeded"),
        make_pod("r3", node="n1", deleting=True),
        make_pod("r4", node="n2"),
    ]
    pods = [make_pod("a", node="n1"), make_pod("b", node="n2"), make_pod("c", node="n3")]
    assert colocation_ranks(pods, related) == [1, 1, 0]
