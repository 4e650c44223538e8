"""Taint-based eviction: which tolerations cover a taint, when a pod must leave a NoExecute-tainted
node (counted from the taint's timeAdded), and the controller deleting pods when that time comes."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

import pytest

from cluster.controllers.runtime import ControllerContext, SharedInformers
from cluster.controllers.tainteviction import (
    TaintEvictionController,
    disruption_target_patch,
    eviction_time,
    taint_added,
    tolerates,
)
from cluster.machinery.times import rfc3339
from tests.cluster.controllers.fake_client import FakeClient
from tests.cluster.controllers.fakes import T0, FakeClock, FakeRecorder

UNREACHABLE = "node.kubernetes.io/unreachable"
NOT_READY = "node.kubernetes.io/not-ready"


def taint(
    key: str = UNREACHABLE, effect: str = "NoExecute", value: str = "", at: float = 0
) -> dict[str, Any]:
    out: dict[str, Any] = {"key": key, "effect": effect, "timeAdded": rfc3339(T0 + timedelta(seconds=at))}
    if value:
        out["value"] = value
    return out


def tol(
    key: str | None = UNREACHABLE,
    operator: str | None = "Exists",
    effect: str | None = "NoExecute",
    seconds: int | None = None,
    value: str | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, v in (("key", key), ("operator", operator), ("effect", effect), ("value", value)):
        if v is not None:
            out[name] = v
    if seconds is not None:
        out["tolerationSeconds"] = seconds
    return out


@pytest.mark.parametrize(
    ("toleration", "the_taint", "expected"),
    [
        pytest.param(tol(), taint(), True, id="exists-same-key"),
        pytest.param(tol(key=NOT_READY), taint(), False, id="other-key"),
        pytest.param(tol(key=None), taint(), True, id="empty-key-exists-tolerates-all"),
        pytest.param(tol(key=None, operator="Equal"), taint(), False, id="empty-key-equal-invalid"),
        pytest.param(tol(effect=None), taint(), True, id="empty-effect-all-effects"),
        pytest.param(tol(effect="NoSchedule"), taint(), False, id="other-effect"),
        pytest.param(tol(operator="Equal", value="x"), taint(value="x"), True, id="equal-same-value"),
        pytest.param(tol(operator="Equal", value="x"), taint(value="y"), False, id="equal-other-value"),
        pytest.param(tol(operator=None), taint(), True, id="default-equal-empty-values"),
    ],
)
def test_tolerates(toleration: dict[str, Any], the_taint: dict[str, Any], expected: bool) -> None:
    assert tolerates(toleration, the_taint) is expected


def never_seen(_: Any) -> datetime:
    raise AssertionError("every taint here has timeAdded")


@pytest.mark.parametrize(
    ("tolerations", "taints", "after"),
    [
        pytest.param([], [], None, id="no-taints-stays"),
        pytest.param([], [taint()], 0, id="untolerated-goes-at-once"),
        pytest.param([tol(seconds=5)], [taint()], 5, id="tolerated-for-5s"),
        pytest.param([tol(seconds=5)], [taint(at=10)], 15, id="counted-from-time-added"),
        pytest.param([tol()], [taint()], None, id="tolerated-forever"),
        pytest.param([tol(seconds=0)], [taint()], 0, id="zero-seconds-at-once"),
        pytest.param([tol(seconds=-3)], [taint()], 0, id="negative-seconds-at-once"),
        pytest.param([tol(seconds=300)], [taint(), taint(NOT_READY)], 0, id="second-taint-untolerated"),
        pytest.param(
            [tol(seconds=300), tol(NOT_READY, seconds=20)],
            [taint(), taint(NOT_READY)],
            20,
            id="earliest-wins",
        ),
        pytest.param(
            [tol(seconds=30), tol(NOT_READY)], [taint(), taint(NOT_READY)], 30, id="forever-and-30s"
        ),
        pytest.param(
            [tol(seconds=10), tol(seconds=100)], [taint()], 10, id="first-matching-toleration-counts"
        ),
    ],
)
def test_eviction_time(
    tolerations: list[dict[str, Any]], taints: list[dict[str, Any]], after: float | None
) -> None:
    when = eviction_time(tolerations, taints, taint_added(never_seen))
    assert when == (None if after is None else T0 + timedelta(seconds=after))


def test_a_taint_without_time_added_counts_from_first_sight() -> None:
    seen = T0 + timedelta(seconds=42)
    bare = {"key": UNREACHABLE, "effect": "NoExecute"}
    assert eviction_time([tol(seconds=5)], [bare], taint_added(lambda _: seen)) == seen + timedelta(seconds=5)


def test_disruption_target_added_once() -> None:
    patch = disruption_target_patch({"status": {"conditions": [{"type": "Ready", "status": "True"}]}}, T0)
    assert patch is not None
    types = [c["type"] for c in patch["status"]["conditions"]]
    assert types == ["Ready", "DisruptionTarget"]
    assert disruption_target_patch(patch, T0) is None


# -- the controller over listers and a fake client, driven by a fake clock --------------------------


def node(taints: list[dict[str, Any]]) -> dict[str, Any]:
    return {"metadata": {"name": "n1"}, "spec": {"taints": taints}}


def pod(name: str, tolerations: list[dict[str, Any]], node_name: str = "n1") -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}"},
        "spec": {"nodeName": node_name, "tolerations": tolerations},
        "status": {"phase": "Running"},
    }


class Harness:
    def __init__(self) -> None:
        self.clock = FakeClock(T0)
        self.client = FakeClient()
        self.recorder = FakeRecorder()
        informers = SharedInformers(self.client)  # type: ignore[arg-type]
        ctx = ControllerContext(self.client, informers, self.clock, lambda _: self.recorder)  # type: ignore[arg-type]
        self.controller = TaintEvictionController(ctx)
        self.informers = informers

    def add_pod(self, obj: dict[str, Any]) -> None:
        self.client.put("v1", "pods", obj)
        self.informers.lister("v1", "pods").upsert(obj)

    def set_node(self, obj: dict[str, Any]) -> None:
        self.informers.lister("v1", "nodes").upsert(obj)

    def reconcile(self, key: str) -> float | None:
        return asyncio.run(self.controller.reconcile(key))

    def deleted(self) -> list[str]:
        return [call[4] for call in self.client.writes("delete")]


@pytest.mark.parametrize(
    ("tolerations", "checks"),
    [
        pytest.param([], [(0, None, True)], id="untolerated-deleted-at-once"),
        pytest.param([tol(seconds=5)], [(1, 4.0, False), (4, None, True)], id="after-5s-from-time-added"),
        pytest.param([tol(seconds=5)], [(7, None, True)], id="already-overdue-when-first-seen"),
        pytest.param([tol()], [(0, None, False), (3600, None, False)], id="forever"),
    ],
)
def test_eviction_timing(
    tolerations: list[dict[str, Any]], checks: list[tuple[float, float | None, bool]]
) -> None:
    """Each check: advance the clock, reconcile, expect (requeue delay, deleted yet)."""
    h = Harness()
    h.set_node(node([taint()]))  # timeAdded = T0
    h.add_pod(pod("p", tolerations))
    for advance, delay, deleted in checks:
        h.clock.advance(advance)
        assert h.reconcile("ns/p") == delay
        assert (h.deleted() == ["p"]) is deleted
    if h.deleted():
        assert (
            "Normal",
            "TaintManagerEviction",
            "Marking for deletion Pod ns/p",
            "ns/p",
        ) in h.recorder.events
        status_patch = next(c for c in h.client.writes("patch") if c[5] == "status")
        assert status_patch[6]["status"]["conditions"][-1]["reason"] == "DeletionByTaintManager"
    else:
        assert not h.recorder.events


def test_pods_elsewhere_or_terminating_are_left_alone() -> None:
    h = Harness()
    h.set_node(node([taint()]))
    h.add_pod(pod("other", [], node_name="n2"))
    terminating = pod("going", [])
    terminating["metadata"]["deletionTimestamp"] = rfc3339(T0)
    h.add_pod(terminating)
    assert h.reconcile("ns/other") is None and h.reconcile("ns/going") is None
    assert h.deleted() == []


def test_a_removed_taint_cancels_the_pending_eviction() -> None:
    h = Harness()
    h.set_node(node([taint()]))
    h.add_pod(pod("p", [tol(seconds=60)]))
    assert h.reconcile("ns/p") == 60.0
    h.set_node(node([]))
    h.clock.advance(61)
    assert h.reconcile("ns/p") is None
    assert h.deleted() == []
    assert h.recorder.events == [
        ("Normal", "TaintManagerEviction", "Cancelling deletion of Pod ns/p", "ns/p")
    ]


def test_a_node_taint_change_enqueues_the_pods_on_it() -> None:
    h = Harness()
    h.add_pod(pod("a", []))
    h.add_pod(pod("b", [], node_name="n2"))
    h.controller._node_updated(node([]), node([taint()]))
    assert len(h.controller.queue) == 1
    h.controller._node_updated(node([taint()]), node([taint()]))  # a heartbeat: no change
    assert len(h.controller.queue) == 1
