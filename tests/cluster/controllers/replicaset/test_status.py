"""ReplicaSet status from its owned pods: counts, observedGeneration, ReplicaFailure, the patch."""

from __future__ import annotations

from typing import Any

import pytest

from cluster.controllers.replicaset.status import (
    REPLICA_FAILURE,
    calculate_status,
    needs_update,
    next_available_in,
    status_patch,
)
from tests.cluster.controllers.replicaset.objects import NOW, make_pod, make_rs, stamp

FAILURE = {
    "type": REPLICA_FAILURE,
    "status": "True",
    "lastTransitionTime": stamp(300),
    "reason": "FailedCreate",
    "message": "old text",
}


def counts(status: dict[str, Any]) -> tuple[int, int, int, int]:
    return (
        status.get("replicas", -1),
        status.get("fullyLabeledReplicas", 0),
        status.get("readyReplicas", 0),
        status.get("availableReplicas", 0),
    )


@pytest.mark.parametrize(
    ("rs", "pods", "expected"),
    [
        pytest.param(make_rs(), [], (0, 0, 0, 0), id="no-pods"),
        pytest.param(
            make_rs(),
            [make_pod("a", ready_ago=10), make_pod("b", not_ready=True), make_pod("c")],
            (3, 3, 1, 1),
            id="one-ready-available-at-once",
        ),
        pytest.param(
            make_rs(template_labels={"app": "web", "tier": "front"}),
            [make_pod("a", labels={"app": "web", "tier": "front", "x": "y"}), make_pod("b")],
            (2, 1, 0, 0),
            id="fully-labeled-needs-every-template-label",
        ),
        pytest.param(
            make_rs(min_ready=30),
            [make_pod("a", ready_ago=31), make_pod("b", ready_ago=29), make_pod("c", ready_ago=5)],
            (3, 3, 3, 1),
            id="min-ready-seconds-passed",
        ),
    ],
)
def test_counts(rs: dict[str, Any], pods: list[dict[str, Any]], expected: tuple[int, int, int, int]) -> None:
    assert counts(calculate_status(rs, pods, NOW)) == expected


def test_zero_counts_are_omitted_and_generation_observed() -> None:
    status = calculate_status(make_rs(generation=4, status={"replicas": 3, "readyReplicas": 3}), [], NOW)
    assert status == {"replicas": 0, "observedGeneration": 4}


def test_other_status_fields_are_kept() -> None:
    rs = make_rs(status={"replicas": 1, "terminatingReplicas": 2})
    assert calculate_status(rs, [], NOW)["terminatingReplicas"] == 2


@pytest.mark.parametrize(
    ("replicas", "have", "error", "old", "expected"),
    [
        pytest.param(3, 1, "boom", [], [("FailedCreate", "boom", stamp(0))], id="create-failure-sets"),
        pytest.param(0, 2, "gone", [], [("FailedDelete", "gone", stamp(0))], id="delete-failure-sets"),
        pytest.param(
            3, 1, "new text", [FAILURE], [("FailedCreate", "old text", stamp(300))], id="kept-as-is"
        ),
        pytest.param(3, 3, None, [FAILURE], [], id="success-removes"),
        pytest.param(3, 3, None, [], [], id="nothing-to-report"),
    ],
)
def test_replica_failure_condition(
    replicas: int,
    have: int,
    error: str | None,
    old: list[dict[str, Any]],
    expected: list[tuple[str, str, str]],
) -> None:
    rs = make_rs(replicas=replicas, status={"replicas": 1, "conditions": old} if old else {"replicas": 1})
    pods = [make_pod(f"p{i}") for i in range(have)]
    status = calculate_status(rs, pods, NOW, manage_error=error)
    got = [(c["reason"], c["message"], c["lastTransitionTime"]) for c in status.get("conditions", [])]
    assert got == expected
    assert all(c["type"] == REPLICA_FAILURE and c["status"] == "True" for c in status.get("conditions", []))


@pytest.mark.parametrize(
    ("rs", "pods", "changed"),
    [
        pytest.param(
            make_rs(status={"replicas": 1, "fullyLabeledReplicas": 1, "observedGeneration": 1}),
            [make_pod("a")],
            False,
            id="steady",
        ),
        pytest.param(
            make_rs(generation=2, status={"replicas": 1, "fullyLabeledReplicas": 1, "observedGeneration": 1}),
            [make_pod("a")],
            True,
            id="new-generation",
        ),
        pytest.param(
            make_rs(status={"replicas": 1, "fullyLabeledReplicas": 1, "observedGeneration": 1}),
            [make_pod("a", ready_ago=3)],
            True,
            id="pod-became-ready",
        ),
        pytest.param(
            make_rs(status={"replicas": 0, "observedGeneration": 1, "conditions": [FAILURE]}),
            [],
            True,
            id="condition-removed",
        ),
    ],
)
def test_needs_update(rs: dict[str, Any], pods: list[dict[str, Any]], changed: bool) -> None:
    assert needs_update(rs, calculate_status(rs, pods, NOW)) is changed


def test_status_patch_sets_changes_and_nulls_dropped_fields() -> None:
    old = {"replicas": 3, "readyReplicas": 3, "observedGeneration": 1, "conditions": [FAILURE]}
    new = {"replicas": 2, "observedGeneration": 1}
    assert status_patch(old, new) == {"status": {"replicas": 2, "readyReplicas": None, "conditions": None}}


@pytest.mark.parametrize(
    ("min_ready", "pods", "expected"),
    [
        pytest.param(0, [make_pod("a", ready_ago=1)], None, id="no-min-ready"),
        pytest.param(30, [make_pod("a", ready_ago=40)], None, id="already-available"),
        pytest.param(30, [make_pod("a", not_ready=True)], None, id="not-ready-waits-for-an-event"),
        pytest.param(30, [make_pod("a", ready_ago=10), make_pod("b", ready_ago=25)], 6.0, id="soonest-pod"),
        pytest.param(30, [make_pod("a", ready_ago=29)], 2.0, id="one-second-left"),
    ],
)
def test_next_available_in(min_ready: int, pods: list[dict[str, Any]], expected: float | None) -> None:
    assert next_available_in(make_rs(min_ready=min_ready), pods, NOW) == expected
