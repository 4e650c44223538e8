"""The scheduler shell with a fake API client: informer events in; bindings, events, status out."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime
from typing import Any

import pytest

from cluster.client.errors import ApiError
from cluster.scheduler.config import load_config
from cluster.scheduler.scheduler import Scheduler, pod_spec_changed, status_patch_for_failure

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


class FakeClient:
    """Records what the scheduler asks of the API server; ``bind_errors`` maps pod name -> error."""

    def __init__(self, bind_errors: dict[str, ApiError] | None = None) -> None:
        self.bind_errors = bind_errors or {}
        self.bindings: list[tuple[str, str, str]] = []
        self.created: list[dict[str, Any]] = []
        self.patches: list[tuple[str, dict[str, Any], str | None]] = []
        self.deleted: list[str] = []

    async def bind_many(self, bindings: list[tuple[str, str, str]]) -> list[ApiError | None]:
        self.bindings.extend(bindings)
        return [self.bind_errors.get(pod) for _, pod, _ in bindings]

    async def create(self, gv: str, plural: str, body: dict[str, Any], namespace: str | None = None) -> Any:
        self.created.append(body)
        return body

    async def patch(
        self, gv: str, plural: str, name: str, patch: Any, namespace: str | None = None, **kw: Any
    ) -> Any:
        self.patches.append((name, patch, kw.get("subresource")))
        return {}

    async def delete(self, gv: str, plural: str, name: str, namespace: str | None = None) -> Any:
        self.deleted.append(name)
        return {}

    def events(self, reason: str) -> list[dict[str, Any]]:
        return [e for e in self.created if e.get("kind") == "Event" and e["reason"] == reason]


def node(name: str, cpu: str = "2", labels: dict[str, str] | None = None) -> dict[str, Any]:
    labels = {"kubernetes.io/hostname": name, **(labels or {})}
    resources = {"cpu": cpu, "memory": "8Gi", "pods": "110"}
    return {
        "metadata": {"name": name, "labels": labels, "resourceVersion": "1"},
        "spec": {},
        "status": {"capacity": resources, "allocatable": resources},
    }


def pod(name: str, cpu: str = "500m", node_name: str = "", **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "containers": [{"name": "c", "image": "x", "resources": {"requests": {"cpu": cpu}}}],
        **spec,
    }
    if node_name:
        body["nodeName"] = node_name
    return {
        "metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}", "resourceVersion": "1"},
        "spec": body,
        "status": {"phase": "Pending"},
    }


ANTI = {
    "metadata": {"labels": {"app": "web"}},
    "affinity": {
        "podAntiAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "kubernetes.io/hostname"}
            ]
        }
    },
}


def anti_pod(name: str) -> dict[str, Any]:
    out = pod(name, affinity=ANTI["affinity"])
    out["metadata"]["labels"] = {"app": "web"}
    return out


def make(client: FakeClient, now: list[float] | None = None) -> Scheduler:
    clock = now if now is not None else [0.0]
    return Scheduler(
        client,  # type: ignore[arg-type]
        load_config(None),
        clock=lambda: clock[0],
        wall_clock=lambda: NOW,
        rng=random.Random(0),
    )


async def drain(scheduler: Scheduler) -> None:
    batch = scheduler._pop_batch()
    if batch:
        await scheduler.schedule_batch(batch)
    await scheduler.drain()


@pytest.mark.parametrize(
    ("nodes", "pods", "bound"),
    [
        pytest.param([node("n1")], [pod("p")], {"p": "n1"}, id="one-pod-one-node"),
        # Without anti-affinity both would go to the roomier n2 (LeastAllocated).
        pytest.param(
            [node("n1"), node("n2", cpu="8")],
            [anti_pod("a"), anti_pod("b")],
            {"a": "n2", "b": "n1"},
            id="anti-affinity-in-one-batch",
        ),
        pytest.param(
            [node("n1", labels={"disk": "ssd"}), node("n2")],
            [pod("p", nodeSelector={"disk": "ssd"})],
            {"p": "n1"},
            id="node-selector",
        ),
        pytest.param(
            [node("n1", cpu="1")],
            [pod("p", cpu="600m"), pod("q", cpu="600m")],
            {"p": "n1"},
            id="second-does-not-fit",
        ),
        pytest.param(
            [node("n1")], [pod("p", schedulerName="other-scheduler")], {}, id="other-scheduler-ignored"
        ),
    ],
)
def test_batch_binds_where_pods_fit(
    nodes: list[dict[str, Any]], pods: list[dict[str, Any]], bound: dict[str, str]
) -> None:
    client = FakeClient()
    scheduler = make(client)
    for n in nodes:
        scheduler._on_node_add(n)
    for p in pods:
        scheduler._on_pod_add(p)
    asyncio.run(drain(scheduler))
    assert {name: node_name for _, name, node_name in client.bindings} == bound
    assert {e["message"] for e in client.events("Scheduled")} == {
        f"Successfully assigned ns/{name} to {node_name}" for name, node_name in bound.items()
    }
    assert set(scheduler.cache.assumed) == {f"uid-{name}" for name in bound}


def test_unschedulable_pod_gets_event_condition_and_moves_back_on_node_add() -> None:
    client = FakeClient()
    scheduler = make(client)
    scheduler._on_node_add(node("small", cpu="1"))
    big = pod("big", cpu="4")
    scheduler._on_pod_add(big)
    asyncio.run(drain(scheduler))

    assert client.bindings == []
    [event] = client.events("FailedScheduling")
    assert event["type"] == "Warning"
    assert event["message"].startswith("0/1 nodes are available: 1 Insufficient cpu.")
    assert event["involvedObject"]["uid"] == "uid-big"
    assert event["source"] == {"component": "default-scheduler"}
    assert event["reportingComponent"] == "default-scheduler"
    [(name, patch, subresource)] = client.patches
    assert (name, subresource) == ("big", "status")
    [condition] = patch["status"]["conditions"]
    assert (condition["type"], condition["status"], condition["reason"]) == (
        "PodScheduled",
        "False",
        "Unschedulable",
    )
    assert condition["message"] == event["message"]
    assert scheduler.queue.place_of(big) == "unschedulable"

    updated = {**big, "status": {**big["status"], "conditions": [condition]}}
    scheduler._on_pod_update(big, updated)  # our own status write must not wake the pod
    assert scheduler.queue.place_of(big) == "unschedulable"

    scheduler._on_node_add(node("large", cpu="8"))
    assert scheduler.queue.place_of(big) in ("active", "backoff")


def test_bound_pod_confirmed_by_informer_leaves_assumed() -> None:
    client = FakeClient()
    scheduler = make(client)
    scheduler._on_node_add(node("n1"))
    p = pod("p")
    scheduler._on_pod_add(p)
    asyncio.run(drain(scheduler))
    assert "uid-p" in scheduler.cache.assumed
    scheduler._on_pod_update(p, pod("p", node_name="n1"))
    assert "uid-p" not in scheduler.cache.assumed and "uid-p" in scheduler.cache.pods
    assert len(scheduler.cache.snapshot().get("n1").pods) == 1  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("status", "place"),
    [
        pytest.param(404, None, id="pod-gone"),
        pytest.param(409, None, id="conflict-already-bound"),
        pytest.param(500, "backoff", id="server-error-backs-off"),
        # The store did not answer: the binding may or may not have applied. Forget the assumption and
        # retry after backoff; if it did apply, the informer's update takes the pod out of the queue.
        pytest.param(504, "backoff", id="outcome-unknown-backs-off"),
    ],
)
def test_failed_binding_forgets_the_pod(status: int, place: str | None) -> None:
    client = FakeClient({"p": ApiError(status, "Failed", "nope")})
    scheduler = make(client)
    scheduler._on_node_add(node("n1"))
    p = pod("p")
    scheduler._on_pod_add(p)
    asyncio.run(drain(scheduler))
    assert scheduler.cache.assumed == {}
    assert scheduler.queue.place_of(p) == place
    assert client.events("Scheduled") == []


@pytest.mark.parametrize(
    ("informer_sees", "place"),
    [
        pytest.param(pod("p"), "backoff", id="still-unbound-retried"),
        pytest.param(pod("p", node_name="n2"), None, id="bound-elsewhere-dropped"),
        pytest.param(None, None, id="deleted-dropped"),
    ],
)
def test_conflict_drops_the_pod_only_when_the_informer_shows_it_settled(
    informer_sees: dict[str, Any] | None, place: str | None
) -> None:
    client = FakeClient({"p": ApiError(409, "Conflict", "the object kept changing")})
    scheduler = make(client)
    scheduler._on_node_add(node("n1"))
    scheduler.pods.store.replace([informer_sees] if informer_sees else [])
    p = pod("p")
    scheduler._on_pod_add(p)
    asyncio.run(drain(scheduler))
    assert scheduler.cache.assumed == {}
    assert scheduler.queue.place_of(p) == place


def test_binding_that_applied_despite_a_timeout_leaves_the_queue() -> None:
    client = FakeClient({"p": ApiError(504, "Timeout", "Timeout: request did not complete")})
    scheduler = make(client)
    scheduler._on_node_add(node("n1"))
    p = pod("p")
    scheduler._on_pod_add(p)
    asyncio.run(drain(scheduler))
    assert scheduler.queue.place_of(p) == "backoff"
    scheduler._on_pod_update(p, pod("p", node_name="n1"))  # the informer shows the write did apply
    assert scheduler.queue.place_of(p) is None
    assert "uid-p" in scheduler.cache.pods


def test_gated_pod_waits_silently_until_the_gate_is_removed() -> None:
    client = FakeClient()
    scheduler = make(client)
    scheduler._on_node_add(node("n1"))
    gated = pod("g", schedulingGates=[{"name": "example.com/quota"}])
    scheduler._on_pod_add(gated)
    asyncio.run(drain(scheduler))
    assert client.bindings == [] and client.created == [] and client.patches == []
    assert scheduler.queue.place_of(gated) == "gated"
    scheduler._move("NodeAdd")  # cluster events do not lift a gate
    asyncio.run(drain(scheduler))
    assert client.bindings == []
    scheduler._on_pod_update(gated, pod("g"))  # kubectl patch removed the gate
    asyncio.run(drain(scheduler))
    assert client.bindings == [("ns", "g", "n1")]
    assert len(client.events("Scheduled")) == 1


@pytest.mark.parametrize(
    ("old", "new", "changed"),
    [
        pytest.param(pod("p"), pod("p"), False, id="same"),
        pytest.param(
            pod("p"),
            {**pod("p"), "metadata": {**pod("p")["metadata"], "resourceVersion": "9"}},
            False,
            id="rv-only",
        ),
        pytest.param(
            pod("p"), {**pod("p"), "status": {"phase": "Pending", "conditions": []}}, False, id="status-only"
        ),
        pytest.param(pod("p"), pod("p", cpu="1"), True, id="requests"),
        pytest.param(
            pod("p"),
            {**pod("p"), "metadata": {**pod("p")["metadata"], "labels": {"a": "b"}}},
            True,
            id="labels",
        ),
    ],
)
def test_pod_spec_changed(old: dict[str, Any], new: dict[str, Any], changed: bool) -> None:
    assert pod_spec_changed(old, new) is changed


CONDITION = {
    "type": "PodScheduled",
    "status": "False",
    "reason": "Unschedulable",
    "message": "m",
    "lastProbeTime": None,
    "lastTransitionTime": "2025-01-01T00:00:00Z",
}


@pytest.mark.parametrize(
    ("status", "nominated", "expected"),
    [
        pytest.param(
            {},
            None,
            {"status": {"conditions": [{**CONDITION, "lastTransitionTime": "2026-01-02T03:04:05Z"}]}},
            id="first-failure",
        ),
        pytest.param({"conditions": [CONDITION]}, None, None, id="unchanged-is-no-op"),
        pytest.param(
            {"conditions": [{**CONDITION, "message": "old"}, {"type": "Other", "status": "True"}]},
            None,
            {"status": {"conditions": [{"type": "Other", "status": "True"}, CONDITION]}},
            id="new-message-keeps-transition-time",
        ),
        pytest.param(
            {"conditions": [CONDITION]}, "n1", {"status": {"nominatedNodeName": "n1"}}, id="nominated-node"
        ),
    ],
)
def test_status_patch_for_failure(
    status: dict[str, Any], nominated: str | None, expected: dict[str, Any] | None
) -> None:
    assert status_patch_for_failure({"status": status}, "m", nominated, NOW) == expected
