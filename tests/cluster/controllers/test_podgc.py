"""podgc's plan (pure) and its controller over a fake client: what is removed, when, and how."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from cluster.client.errors import ApiError
from cluster.controllers import podgc
from cluster.controllers.runtime import ControllerContext, ControllerOptions, SharedInformers
from tests.cluster.controllers.fakes import FakeClock, FakeRecorder


def pod(
    name: str, *, node: str = "", phase: str = "Running", deleting: bool = False, created: str = ""
) -> Any:
    meta: dict[str, Any] = {"name": name, "namespace": "ns", "uid": f"u-{name}"}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    if created:
        meta["creationTimestamp"] = created
    return {"metadata": meta, "spec": {"nodeName": node} if node else {}, "status": {"phase": phase}}


def node(name: str, *, ready: bool = True, out_of_service: bool = False) -> Any:
    taints = [{"key": podgc.OUT_OF_SERVICE_TAINT, "effect": "NoExecute"}] if out_of_service else []
    return {
        "metadata": {"name": name},
        "spec": {"taints": taints},
        "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }


NODES = {
    "a": node("a"),
    "down": node("down", ready=False, out_of_service=True),
    "nr": node("nr", ready=False),
}


@pytest.mark.parametrize(
    ("pods", "gone", "threshold", "expected"),
    [
        pytest.param([pod("p", node="a")], set(), 10, [], id="healthy-pod-stays"),
        pytest.param(
            [pod("old", phase="Succeeded", created="2026-01-01T00:00:00Z"),
             pod("new", phase="Failed", created="2026-01-02T00:00:00Z"),
             pod("run", node="a", created="2025-01-01T00:00:00Z")],
            set(), 1, [("ns/old", "terminated", False)], id="terminated-over-threshold-oldest-first",
        ),
        pytest.param([pod("p", node="x")], {"x"}, 10, [("ns/p", "orphaned", True)], id="orphan-on-gone-node"),
        pytest.param([pod("p", node="x")], set(), 10, [], id="missing-node-not-confirmed-yet"),
        pytest.param(
            [pod("p", node="down", deleting=True), pod("q", node="down"), pod("r", node="nr", deleting=True)],
            set(), 10, [("ns/p", "out-of-service", True)], id="terminating-on-out-of-service-node-only",
        ),
        pytest.param([pod("p", deleting=True), pod("q")], set(), 10, [("ns/p", "unscheduled", True)],
                     id="unscheduled-terminating"),
        pytest.param([pod("p", node="x", deleting=True)], {"x"}, 10, [("ns/p", "orphaned", True)],
                     id="named-once"),
    ],
)  # fmt: skip
def test_plan(pods: list[Any], gone: set[str], threshold: int, expected: list[tuple[str, str, bool]]) -> None:
    got = podgc.plan(pods, NODES, gone, terminated_threshold=threshold)
    assert [(r.key, r.reason, r.force) for r in got] == expected


def test_orphan_gets_disruption_target_and_fails() -> None:
    patch = podgc.disruption_patch(pod("p", node="x"), FakeClock().now())
    assert patch["status"]["phase"] == "Failed"
    assert patch["status"]["conditions"][-1]["reason"] == "DeletionByPodGC"
    assert "phase" not in podgc.disruption_patch(pod("p", phase="Succeeded"), FakeClock().now())["status"]


class _Client:
    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []

    async def get(self, gv: str, plural: str, name: str, namespace: str | None = None) -> Any:
        self.calls.append(("get", name))
        raise (
            ApiError(404, "NotFound", 'nodes "x" not found')
            if name == "x"
            else ApiError(500, "InternalError", "boom")
        )

    async def patch(
        self, gv: str, plural: str, name: str, patch: Any, namespace: Any = None, **kw: Any
    ) -> Any:
        self.calls.append(("patch", name, kw.get("subresource", "")))
        return {}

    async def delete(self, gv: str, plural: str, name: str, namespace: Any = None, **kw: Any) -> Any:
        self.calls.append(("delete", name, str(kw.get("grace_period_seconds")), kw["preconditions"]["uid"]))
        return {}


def test_orphans_wait_for_the_quarantine_then_a_404() -> None:
    async def scenario() -> list[list[tuple[str, ...]]]:
        clock, client = FakeClock(), _Client()
        ctx = ControllerContext(
            client, SharedInformers(client), clock, lambda _: FakeRecorder(), ControllerOptions()
        )  # type: ignore[arg-type]
        gc = podgc.PodGCController(ctx)
        gc.pods.upsert(pod("p", node="x"))
        gc.pods.upsert(pod("q", node="flaky"))  # its node is missing too, but the GET fails: kept
        seen = []
        assert await gc.reconcile(podgc.SYNC_KEY) == podgc.GC_PERIOD
        seen.append(list(client.calls))
        clock.advance(podgc.QUARANTINE + 1)
        await gc.reconcile(podgc.SYNC_KEY)
        seen.append(list(client.calls))
        return seen

    first, second = asyncio.run(scenario())
    assert first == []  # within the quarantine: not even a GET
    assert ("get", "x") in second and ("get", "flaky") in second
    assert ("patch", "p", "status") in second and ("delete", "p", "0", "u-p") in second
    assert not any(c[0] == "delete" and c[1] == "q" for c in second)
