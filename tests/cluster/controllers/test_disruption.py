"""PodDisruptionBudget status arithmetic: IntOrString scaling, the expected scale through the pods'
controllers, healthy counting with recently evicted pods, conditions, and failing safe."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cluster.controllers.disruption import (
    DisruptionController,
    ScaleError,
    compute_status,
    expected_pod_count,
    scaled_value,
)
from cluster.controllers.runtime import ControllerContext, SharedInformers
from cluster.machinery.times import rfc3339
from tests.cluster.controllers.fake_client import FakeClient
from tests.cluster.controllers.fakes import FakeClock, FakeRecorder

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "total", "round_up", "want"),
    [
        pytest.param(3, 10, True, 3, id="int"),
        pytest.param("50%", 5, True, 3, id="half-up"),
        pytest.param("50%", 5, False, 2, id="half-down"),
        pytest.param("33%", 3, True, 1, id="third-up"),
        pytest.param("0%", 7, True, 0, id="zero"),
        pytest.param("100%", 7, True, 7, id="all"),
        pytest.param("4", 7, True, 4, id="digits-string"),
    ],
)
def test_scaled_value(value: int | str, total: int, round_up: bool, want: int) -> None:
    assert scaled_value(value, total, round_up) == want


def test_scaled_value_rejects_garbage() -> None:
    with pytest.raises(ScaleError):
        scaled_value("half", 4, True)


def owner(kind: str, name: str, api_version: str = "apps/v1") -> dict[str, Any]:
    return {"apiVersion": api_version, "kind": kind, "name": name, "uid": f"uid-{name}", "controller": True}


def workload(kind: str, name: str, replicas: int, owned_by: dict[str, Any] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": "ns", "uid": f"uid-{name}"}
    if owned_by:
        meta["ownerReferences"] = [owned_by]
    return {"kind": kind, "metadata": meta, "spec": {"replicas": replicas}}


WORKLOADS = {
    ("ReplicaSet", "rs"): workload("ReplicaSet", "rs", 4),
    ("ReplicaSet", "web-1"): workload("ReplicaSet", "web-1", 1, owner("Deployment", "web")),
    ("ReplicaSet", "web-2"): workload("ReplicaSet", "web-2", 3, owner("Deployment", "web")),
    ("Deployment", "web"): workload("Deployment", "web", 4),
    ("StatefulSet", "db"): workload("StatefulSet", "db", 3),
    ("ReplicaSet", "moved"): {
        **workload("ReplicaSet", "moved", 2),
        "metadata": {"name": "moved", "uid": "new"},
    },
}


def get(kind: str, namespace: str, name: str) -> Mapping[str, Any] | None:
    return WORKLOADS.get((kind, name))


def pod(
    name: str,
    ctrl: dict[str, Any] | None = None,
    ready: bool = True,
    deleting: bool = False,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": "ns", "labels": {"app": "web"}}
    if ctrl:
        meta["ownerReferences"] = [ctrl]
    if deleting:
        meta["deletionTimestamp"] = rfc3339(NOW)
    return {
        "metadata": meta,
        "status": {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def pdb(generation: int = 1, status: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "budget", "namespace": "ns", "generation": generation},
        "spec": {"selector": {"matchLabels": {"app": "web"}}, **spec},
        "status": status or {},
    }


RS = owner("ReplicaSet", "rs")


@pytest.mark.parametrize(
    ("spec", "pods", "want"),
    [
        pytest.param(
            {"minAvailable": 2}, [pod("a"), pod("b"), pod("c")], (3, 2, []), id="min-int-counts-pods"
        ),
        pytest.param({"minAvailable": 2}, [pod("a"), pod("b")], (2, 2, []), id="min-int-bare-pods"),
        pytest.param({"minAvailable": "50%"}, [pod("a", RS)], (4, 2, []), id="min-percent-uses-scale"),
        pytest.param({"minAvailable": "60%"}, [pod("a", RS)], (4, 3, []), id="min-percent-rounds-up"),
        pytest.param({"maxUnavailable": 1}, [pod("a", RS), pod("b", RS)], (4, 3, []), id="max-int"),
        pytest.param({"maxUnavailable": "30%"}, [pod("a", RS)], (4, 2, []), id="max-percent-rounds-up"),
        pytest.param({"maxUnavailable": 9}, [pod("a", RS)], (4, 0, []), id="max-above-scale"),
        pytest.param(
            {"maxUnavailable": "25%"},
            [pod("a", owner("ReplicaSet", "web-1")), pod("b", owner("ReplicaSet", "web-2"))],
            (4, 3, []),
            id="deployment-counted-once-through-its-replicasets",
        ),
        pytest.param(
            {"maxUnavailable": 1}, [pod("db-0", owner("StatefulSet", "db"))], (3, 2, []), id="statefulset"
        ),
        pytest.param({"maxUnavailable": 1}, [pod("a", RS), pod("x")], (4, 3, ["x"]), id="unmanaged-reported"),
        pytest.param({}, [pod("a")], (0, 0, []), id="neither-set"),
    ],
)
def test_expected_pod_count(
    spec: dict[str, Any], pods: list[dict[str, Any]], want: tuple[int, int, list[str]]
) -> None:
    assert expected_pod_count(pdb(**spec), list(pods), get) == want


@pytest.mark.parametrize(
    ("ctrl", "message"),
    [
        pytest.param(owner("ReplicaSet", "gone"), 'found no controllers for pod "a"', id="missing"),
        pytest.param(owner("ReplicaSet", "moved"), 'found no controllers for pod "a"', id="uid-mismatch"),
        pytest.param(owner("Job", "j", "batch/v1"), 'found no controllers for pod "a"', id="unscalable-kind"),
    ],
)
def test_expected_scale_errors(ctrl: dict[str, Any], message: str) -> None:
    with pytest.raises(ScaleError, match=message):
        expected_pod_count(pdb(maxUnavailable=1), [pod("a", ctrl)], get)


def ago(seconds: float) -> str:
    return rfc3339(NOW - timedelta(seconds=seconds))


THREE = [pod("a"), pod("b"), pod("c")]


@pytest.mark.parametrize(
    ("budget", "pods", "want", "reason", "recheck"),
    [
        pytest.param(
            pdb(minAvailable=2),
            THREE,
            {"currentHealthy": 3, "desiredHealthy": 2, "expectedPods": 3, "disruptionsAllowed": 1},
            "SufficientPods",
            None,
            id="one-allowed",
        ),
        pytest.param(
            pdb(minAvailable=3),
            THREE,
            {"currentHealthy": 3, "desiredHealthy": 3, "expectedPods": 3, "disruptionsAllowed": 0},
            "InsufficientPods",
            None,
            id="none-allowed",
        ),
        pytest.param(
            pdb(minAvailable=1),
            [pod("a"), pod("b", ready=False), pod("c", deleting=True)],
            {"currentHealthy": 1, "desiredHealthy": 1, "expectedPods": 3, "disruptionsAllowed": 0},
            "InsufficientPods",
            None,
            id="not-ready-and-deleting-not-healthy",
        ),
        pytest.param(
            pdb(minAvailable=0),
            [],
            {"currentHealthy": 0, "desiredHealthy": 0, "expectedPods": 0, "disruptionsAllowed": 0},
            "InsufficientPods",
            None,
            id="no-pods-none-allowed",
        ),
        pytest.param(
            pdb(minAvailable=1, status={"disruptedPods": {"a": ago(30), "gone": ago(10)}}),
            THREE,
            {
                "currentHealthy": 2,
                "desiredHealthy": 1,
                "expectedPods": 3,
                "disruptionsAllowed": 1,
                "disruptedPods": {"a": ago(30)},
            },
            "SufficientPods",
            90.0,
            id="recent-eviction-not-healthy",
        ),
        pytest.param(
            pdb(minAvailable=1, status={"disruptedPods": {"a": ago(180)}}),
            THREE,
            {"currentHealthy": 3, "desiredHealthy": 1, "expectedPods": 3, "disruptionsAllowed": 2},
            "SufficientPods",
            None,
            id="overdue-eviction-dropped",
        ),
        pytest.param(
            pdb(maxUnavailable="50%"),
            [pod("a", RS), pod("b", RS), pod("c", RS)],
            {"currentHealthy": 3, "desiredHealthy": 2, "expectedPods": 4, "disruptionsAllowed": 1},
            "SufficientPods",
            None,
            id="percentage-against-scale",
        ),
    ],
)
def test_compute_status(
    budget: dict[str, Any],
    pods: list[dict[str, Any]],
    want: dict[str, Any],
    reason: str,
    recheck: float | None,
) -> None:
    sync = compute_status(budget, list(pods), get, NOW)
    assert sync.status is not None
    conditions = sync.status.pop("conditions")
    assert sync.status == {**want, "observedGeneration": 1}
    assert [(c["type"], c["status"], c["reason"], c["observedGeneration"]) for c in conditions] == [
        ("DisruptionAllowed", "True" if reason == "SufficientPods" else "False", reason, 1)
    ]
    assert sync.recheck_after == recheck


def test_overdue_pod_reported() -> None:
    sync = compute_status(
        pdb(minAvailable=1, status={"disruptedPods": {"a": ago(180)}}), list(THREE), get, NOW
    )
    assert sync.overdue_pods == ("a",)


def test_unchanged_status_is_not_rewritten() -> None:
    first = compute_status(pdb(minAvailable=2), list(THREE), get, NOW)
    assert first.status is not None
    again = compute_status(
        pdb(minAvailable=2, status=first.status), list(THREE), get, NOW + timedelta(seconds=5)
    )
    assert again.status is None
    newer = compute_status(pdb(generation=2, status=first.status, minAvailable=2), list(THREE), get, NOW)
    assert newer.status is not None and newer.status["observedGeneration"] == 2


def test_condition_transition_time_moves_only_with_status() -> None:
    first = compute_status(pdb(minAvailable=2), list(THREE), get, NOW)
    assert first.status is not None
    later = NOW + timedelta(seconds=60)
    same = compute_status(pdb(generation=2, minAvailable=1, status=first.status), list(THREE), get, later)
    assert same.status is not None
    assert same.status["conditions"][0]["lastTransitionTime"] == rfc3339(NOW)
    flipped = compute_status(pdb(minAvailable=3, status=first.status), list(THREE), get, later)
    assert flipped.status is not None
    assert flipped.status["conditions"][0]["lastTransitionTime"] == rfc3339(later)


def test_fail_safe_when_scale_unknown() -> None:
    budget = pdb(maxUnavailable=1, status={"disruptionsAllowed": 2, "observedGeneration": 1})
    sync = compute_status(budget, [pod("a", owner("ReplicaSet", "gone"))], get, NOW)
    assert sync.status is not None
    assert sync.status["disruptionsAllowed"] == 0
    (cond,) = sync.status["conditions"]
    assert (cond["status"], cond["reason"], cond["message"]) == (
        "False",
        "SyncFailed",
        'found no controllers for pod "a"',
    )
    assert ("Warning", "CalculateExpectedPodCountFailed") in [(t, r) for t, r, _ in sync.events]


@pytest.mark.parametrize(
    ("pods", "want"),
    [
        pytest.param([], [("Normal", "NoPods")], id="no-pods"),
        pytest.param([pod("x")], [], id="bare-pod-int-budget"),
    ],
)
def test_events(pods: list[dict[str, Any]], want: list[tuple[str, str]]) -> None:
    sync = compute_status(pdb(minAvailable=1), list(pods), get, NOW)
    assert [(t, r) for t, r, _ in sync.events] == want


def test_unmanaged_pods_event_with_percentage() -> None:
    sync = compute_status(pdb(maxUnavailable=1), [pod("x")], get, NOW)
    assert [(t, r) for t, r, _ in sync.events] == [("Warning", "UnmanagedPods")]


def test_controller_writes_status_subresource_and_events() -> None:
    client = FakeClient()
    informers = SharedInformers(client)  # type: ignore[arg-type]
    recorder = FakeRecorder()
    clock = FakeClock(NOW)
    ctx = ControllerContext(client, informers, clock, lambda _: recorder)  # type: ignore[arg-type]
    controller = DisruptionController(ctx)
    budget = client.put("policy/v1", "poddisruptionbudgets", pdb(minAvailable=2))
    informers.lister("policy/v1", "poddisruptionbudgets").upsert(budget)
    assert asyncio.run(controller.reconcile("ns/budget")) is None
    assert recorder.reasons() == ["NoPods"]
    for p in THREE:
        informers.lister("v1", "pods").upsert(p)
    controller._pod_changed(THREE[0])
    assert asyncio.run(controller.queue.get()) == "ns/budget"
    asyncio.run(controller.reconcile("ns/budget"))
    _verb, _gv, plural, namespace, name, sub, body = client.writes("update")[-1]
    assert (plural, namespace, name, sub) == ("poddisruptionbudgets", "ns", "budget", "status")
    assert body["status"]["disruptionsAllowed"] == 1
