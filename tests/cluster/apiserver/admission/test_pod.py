"""Create-time pod admission: a gated pod starts PodScheduled=False/SchedulingGated, as Kubernetes'
pod strategy sets it (the scheduler never touches a gated pod, so nothing else would)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from cluster.apiserver.admission.pod import SCHEDULING_GATED_MESSAGE, scheduling_gated_condition
from cluster.apiserver.registry import Registry
from cluster.apiserver.resources import lookup
from cluster.apiserver.storage import ObjectStore
from tests.cluster.apiserver.faulty_store import FaultyStore

GATED = {
    "type": "PodScheduled",
    "status": "False",
    "lastProbeTime": None,
    "lastTransitionTime": "2026-01-02T03:04:05Z",
    "reason": "SchedulingGated",
    "message": SCHEDULING_GATED_MESSAGE,
}
EXISTING = {"type": "PodScheduled", "status": "True"}


def pod(gates: list[str] | None, conditions: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "c", "image": "x"}]}
    if gates is not None:
        spec["schedulingGates"] = [{"name": g} for g in gates]
    out: dict[str, Any] = {
        "metadata": {"name": "p", "namespace": "default", "creationTimestamp": "2026-01-02T03:04:05Z"},
        "spec": spec,
        "status": {"phase": "Pending"},
    }
    if conditions is not None:
        out["status"]["conditions"] = conditions
    return out


@pytest.mark.parametrize(
    ("obj", "conditions"),
    [
        pytest.param(pod(None), None, id="no-gates"),
        pytest.param(pod([]), None, id="empty-gates"),
        pytest.param(pod(["example.com/quota"]), [GATED], id="gated"),
        pytest.param(pod(["a"], [EXISTING]), [EXISTING], id="pod-scheduled-already-set"),
    ],
)
def test_scheduling_gated_condition(obj: dict[str, Any], conditions: list[dict[str, Any]] | None) -> None:
    assert scheduling_gated_condition(obj)["status"].get("conditions") == conditions


def test_registry_create_marks_a_gated_pod() -> None:
    store = FaultyStore()
    store.put_object("/registry/namespaces/default", {"metadata": {"name": "default"}, "status": {}})
    registry = Registry(
        ObjectStore(store),  # type: ignore[arg-type]
        clock=lambda: datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
    )
    info = lookup("", "v1", "pods")
    assert info is not None
    body = {"apiVersion": "v1", "kind": "Pod", **pod(["example.com/quota"])}
    del body["status"], body["metadata"]["creationTimestamp"]
    created = asyncio.run(registry.create(info, "default", body))
    assert created["status"]["conditions"] == [GATED]
