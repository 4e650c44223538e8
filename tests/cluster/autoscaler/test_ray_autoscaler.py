"""The autoscaler loop's passes against an in-memory API and a fake Ray: what it asks Ray for, and the
order of a node's release (mark, taint and cordon, evict, stop its actors, unmark once Ray let it go)."""

from __future__ import annotations

import asyncio
from typing import Any

from cluster.autoscaler.planning import SCALE_DOWN_DISABLED, TO_BE_DELETED_TAINT, Bundle
from cluster.autoscaler.ray_autoscaler import AutoscalingOptions, RayAutoscaler
from cluster.client import events as ev
from cluster.client.errors import ApiError
from tests.cluster.autoscaler.test_planning import node, pod
from tests.cluster.controllers.fake_client import FakeClient


class EvictingClient(FakeClient):
    """``FakeClient`` plus the eviction subresource: deletes the pod, or 429 for pods in ``guarded``."""

    def __init__(self) -> None:
        super().__init__()
        self.guarded: set[str] = set()
        self.evicted: list[str] = []

    async def create(
        self, gv: str, plural: str, body: dict[str, Any], namespace: str | None = None, **kw: Any
    ) -> dict[str, Any]:
        if kw.get("subresource") != "eviction":
            return await super().create(gv, plural, body, namespace, **kw)
        name = body["metadata"]["name"]
        if name in self.guarded:
            raise ApiError(
                429, "TooManyRequests", "Cannot evict pod as it would violate the pod's disruption budget."
            )
        self.evicted.append(name)
        await self.delete("v1", "pods", name, namespace)
        return {}


class FakeRay:
    def __init__(self, alive: dict[str, str], head: str = "head") -> None:
        self.alive = dict(alive)
        self.head = head
        self.requests: list[list[Bundle]] = []
        self.stopped: list[str] = []
        self.marks: set[str] = set()

    def has_autoscaler(self) -> bool:
        return True

    def view(self) -> tuple[dict[str, str], set[str]]:
        return dict(self.alive), {self.head}

    def control_plane(self) -> list[str]:
        return [self.alive[self.head]]

    def request(self, bundles: list[Bundle]) -> None:
        self.requests.append(bundles)

    def stop(self, node: str) -> list[str]:
        self.stopped.append(node)
        return [f"agent-{node}"]

    def mark(self, node: str) -> None:
        self.marks.add(node)

    def marked(self) -> set[str]:
        return set(self.marks)

    def unmark(self, node: str) -> None:
        self.marks.discard(node)


class Events:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str]] = []

    def event(self, ref: ev.ObjectRef, event_type: str, reason: str, message: str) -> None:
        self.seen.append((ref.kind, ref.name, reason))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def setup(
    nodes: list[dict[str, Any]], pods: list[dict[str, Any]], alive: dict[str, str]
) -> tuple[RayAutoscaler, EvictingClient, FakeRay, Events, Clock]:
    client = EvictingClient()
    for n in nodes:
        client.put("v1", "nodes", n)
    for p in pods:
        client.put("v1", "pods", p)
    ray, events, clock = FakeRay(alive), Events(), Clock()
    loop = RayAutoscaler(
        client,  # type: ignore[arg-type]
        "ns",
        AutoscalingOptions(enabled=True, unneeded=60.0),
        clock=clock,
        ray_side=ray,
        events=events,
    )
    return loop, client, ray, events, clock


def test_a_waiting_pod_asks_once_and_the_request_clears_when_it_runs() -> None:
    waiting = pod("w", cpu="2", pending=True)
    loop, client, ray, events, _ = setup([node("head")], [pod("a", node="head"), waiting], {"head": "id-h"})
    asyncio.run(loop.step())
    asyncio.run(loop.step())  # unchanged: not asked again, no second event
    assert ray.requests == [[Bundle({"CPU": 1.0}, {"ray.io/node-id": "id-h"}), Bundle({"CPU": 2.0}, {})]]
    assert events.seen == [("Pod", "w", "TriggeredScaleUp")]
    client.put("v1", "pods", pod("w", cpu="2", node="head"))
    asyncio.run(loop.step())
    assert ray.requests[-1] == []


def test_an_idle_node_is_marked_cordoned_drained_stopped_then_unmarked() -> None:
    app = pod("app", node="w1", owner="ReplicaSet")
    guarded = pod("guarded", node="w2", owner="ReplicaSet")
    ds = pod("ds", node="w1", owner="DaemonSet")
    nodes = [node("head"), node("w1")]
    loop, client, ray, events, clock = setup(nodes, [ds], {"head": "id-h", "w1": "id-1"})
    client.put("v1", "pods", app)  # w1 busy at first
    asyncio.run(loop.step())
    asyncio.run(client.delete("v1", "pods", "app", "default"))
    asyncio.run(loop.step())  # unneeded from now on
    clock.now += 59
    asyncio.run(loop.step())
    assert ray.marks == set() and not client.writes("patch")
    clock.now += 1
    asyncio.run(loop.step())
    w1 = client.stored("v1", "nodes", "w1")
    assert w1 is not None and w1["spec"]["unschedulable"] is True
    assert [t["key"] for t in w1["spec"]["taints"]] == [TO_BE_DELETED_TAINT]
    assert ray.marks == {"w1"} and ray.stopped == ["w1"]  # nothing to drain but the DaemonSet pod
    # A node released by a former leader, with a pod bound just before its taint, behind a budget:
    client.put("v1", "nodes", node("w2", taints=[{"key": TO_BE_DELETED_TAINT, "effect": "NoSchedule"}]))
    ray.alive["w2"] = "id-2"
    client.put("v1", "pods", guarded)
    client.guarded.add("guarded")
    asyncio.run(loop.step())
    assert ray.stopped == ["w1"]  # a PodDisruptionBudget holds the drain
    client.guarded.clear()
    asyncio.run(loop.step())
    assert client.evicted == ["guarded"] and ray.stopped == ["w1"]  # stopped once the pod is gone
    asyncio.run(loop.step())
    assert ray.stopped == ["w1", "w2"]
    assert ray.marks == {"w1", "w2"}
    assert ("Node", "w1", "ScaleDown") in events.seen and ("Pod", "guarded", "ScaleDown") in events.seen
    asyncio.run(loop.step())
    assert ray.stopped == ["w1", "w2"]  # once each
    del ray.alive["w1"]  # Ray released it
    asyncio.run(loop.step())
    assert ray.marks == {"w2"}
    assert not any(c[0] == "patch" and c[4] == "head" for c in client.calls)


def test_a_node_ray_keeps_is_restored_and_not_released_again() -> None:
    loop, client, ray, events, clock = setup([node("head"), node("w1")], [], {"head": "id-h", "w1": "id-1"})
    asyncio.run(loop.step())
    clock.now += 60
    asyncio.run(loop.step())  # released: marked, tainted, its actors stopped
    assert ray.stopped == ["w1"] and ray.marks == {"w1"}
    clock.now += 599
    asyncio.run(loop.step())
    assert ray.marks == {"w1"}  # Ray still has time (min_workers would keep it forever)
    clock.now += 1
    asyncio.run(loop.step())
    w1 = client.stored("v1", "nodes", "w1")
    assert w1 is not None and "unschedulable" not in w1["spec"] and "taints" not in w1["spec"]
    assert ray.marks == set()  # the membership follower gives it agents again
    assert ("Node", "w1", "ScaleDownFailed") in events.seen
    clock.now += 10_000
    asyncio.run(loop.step())
    asyncio.run(loop.step())
    assert ray.stopped == ["w1"] and ray.marks == set()


def test_a_mark_without_a_taint_is_cleared() -> None:
    loop, _, ray, _, _ = setup(
        [node("head"), node("w1", annotations={SCALE_DOWN_DISABLED: "true"})],
        [],
        {"head": "id-h", "w1": "id-1"},
    )
    ray.marks = {"w1", "gone"}  # a leader stopped between mark and taint; a node Ray let go
    asyncio.run(loop.step())
    assert ray.marks == set() and ray.stopped == []
