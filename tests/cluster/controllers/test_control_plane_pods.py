"""Control-plane component pods: their shape, and a status that follows the actor's health."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cluster.client.errors import ApiError
from cluster.controllers.control_plane_pods import (
    ACTOR_ANNOTATION,
    NAMESPACE,
    SYNC_KEY,
    Component,
    ControlPlanePods,
    component_pod,
    components_of,
    pod_status,
)
from cluster.controllers.runtime import ControllerContext, ControllerOptions, SharedInformers
from tests.cluster.controllers.fakes import FakeClock, FakeRecorder

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def comp(healthy: bool) -> Component:
    return Component("kube-apiserver", "apiserver", "vm", healthy, T0, "kube-apiserver-vm")


def test_pod_shape_is_what_kubectl_and_the_agent_expect() -> None:
    pod = component_pod(comp(True))
    assert pod["metadata"]["name"] == "kube-apiserver-vm" and pod["metadata"]["namespace"] == NAMESPACE
    assert pod["metadata"]["annotations"][ACTOR_ANNOTATION] == "apiserver"  # agents skip these
    assert pod["metadata"]["labels"] == {"component": "kube-apiserver", "tier": "control-plane"}
    assert pod["spec"]["nodeName"] == "vm" and pod["spec"]["containers"][0]["name"] == "kube-apiserver"


@pytest.mark.parametrize(
    ("healthy", "phase", "ready"), [(True, "Running", "True"), (False, "Pending", "False")]
)
def test_status_follows_health(healthy: bool, phase: str, ready: str) -> None:
    status = pod_status(comp(healthy), None, T0 + timedelta(minutes=1))
    conditions = {c["type"]: c["status"] for c in status["conditions"]}
    assert status["phase"] == phase and conditions["Ready"] == ready == conditions["ContainersReady"]
    container = status["containerStatuses"][0]
    assert container["ready"] is healthy and ("running" in container["state"]) is healthy


def test_transition_times_are_kept_until_the_status_changes() -> None:
    first = pod_status(comp(True), None, T0 + timedelta(minutes=1))
    again = pod_status(comp(True), first, T0 + timedelta(minutes=5))
    assert again["conditions"] == first["conditions"]
    down = pod_status(comp(False), again, T0 + timedelta(minutes=6))
    ready = next(c for c in down["conditions"] if c["type"] == "Ready")
    assert ready["lastTransitionTime"] == "2026-11-27T12:06:00Z"


@pytest.mark.parametrize(
    ("replicas", "etcd_pods"),
    [
        pytest.param([{"id": 1, "node_id": "n1", "health": "ok"}], {"etcd-vm": True}, id="one-replica"),
        pytest.param(
            [{"id": 1, "node_id": "n1", "health": "ok"}, {"id": 2, "node_id": "n1", "health": "down"}],
            {"etcd-1-vm": True, "etcd-2-vm": False},
            id="replicas-sharing-a-node-get-their-id",
        ),
        pytest.param(
            [{"id": 1, "node_id": "n1", "health": "ok"}, {"id": 2, "node_id": "n2", "health": "ok"}],
            {"etcd-vm": True, "etcd-vm2": True},
            id="one-replica-per-node",
        ),
        pytest.param([{"id": 3, "health": "ok"}], {"etcd-vm": True}, id="unknown-node-is-here"),
    ],
)
def test_components_from_what_ray_reports(
    replicas: list[dict[str, object]], etcd_pods: dict[str, bool]
) -> None:
    names = {"n1": "vm", "n2": "vm2"}
    ips = {"vm": "10.0.0.1", "vm2": "10.0.0.2"}
    answering = {"apiserver": True, "scheduler": False, "controller-manager": True}
    found = components_of("vm", answering, replicas, names, ips, T0)
    singletons = {c.pod_name: c.healthy for c in found if c.component != "etcd"}
    assert singletons == {
        "kube-apiserver-vm": True,
        "kube-scheduler-vm": False,
        "kube-controller-manager-vm": True,
    }
    assert {c.pod_name: c.healthy for c in found if c.component == "etcd"} == etcd_pods
    assert all(c.host_ip == ips[c.node_name] and c.started == T0 for c in found)


def test_every_instance_of_a_replicated_component_gets_a_pod_on_its_node() -> None:
    names = {"n1": "vm", "n2": "vm2", "n3": "vm3"}
    ips = {"vm": "10.0.0.1", "vm2": "10.0.0.2", "vm3": "10.0.0.3"}
    answering = {
        "apiserver": True,
        "scheduler": True,
        "scheduler-vm2": True,
        "scheduler-vm3": False,  # its node is gone: the pod stays, not ready
        "controller-manager": True,
        "controller-manager-vm3": True,
        "scheduler-elsewhere": True,  # not a node of this cluster: no pod
    }
    found = components_of("vm", answering, [], names, ips, T0)
    pods = {c.pod_name: (c.actor, c.node_name, c.healthy, c.host_ip) for c in found}
    assert pods == {
        "kube-apiserver-vm": ("apiserver", "vm", True, "10.0.0.1"),
        "kube-scheduler-vm": ("scheduler", "vm", True, "10.0.0.1"),
        "kube-scheduler-vm2": ("scheduler-vm2", "vm2", True, "10.0.0.2"),
        "kube-scheduler-vm3": ("scheduler-vm3", "vm3", False, "10.0.0.3"),
        "kube-controller-manager-vm": ("controller-manager", "vm", True, "10.0.0.1"),
        "kube-controller-manager-vm3": ("controller-manager-vm3", "vm3", True, "10.0.0.3"),
    }


class FixedSource:
    """A ``ComponentSource`` that reports a fixed list (what Ray would say) and records ``close``."""

    def __init__(self, components: list[Component]) -> None:
        self.found = components
        self.closed = False

    async def components(self) -> list[Component]:
        return self.found

    async def close(self) -> None:
        self.closed = True


class FakePods:
    """The four pod calls ``ControlPlanePods`` makes, over a dict, recording each write."""

    def __init__(self, pods: dict[str, dict[str, Any]] | None = None) -> None:
        self.pods = pods or {}
        self.writes: list[tuple[str, str]] = []

    async def get(self, version: str, resource: str, name: str, namespace: str) -> dict[str, Any]:
        if name not in self.pods:
            raise ApiError(404, "NotFound", f"pods {name!r} not found")
        return self.pods[name]

    async def create(
        self, version: str, resource: str, body: dict[str, Any], namespace: str
    ) -> dict[str, Any]:
        self.writes.append(("create", body["metadata"]["name"]))
        self.pods[body["metadata"]["name"]] = body
        return body

    async def patch(
        self, version: str, resource: str, name: str, body: dict[str, Any], namespace: str, **kw: Any
    ) -> None:
        self.writes.append(("patch-status", name))
        self.pods[name] = {**self.pods[name], "status": body["status"]}

    async def delete(self, version: str, resource: str, name: str, namespace: str, **kw: Any) -> None:
        self.writes.append(("delete", name))
        self.pods.pop(name)


def controller(client: FakePods, source: FixedSource | None, interval: float = 10.0) -> ControlPlanePods:
    extra: dict[str, Any] = {"control_plane_interval": interval}
    if source is not None:
        extra["control_plane_source"] = source
    ctx = ControllerContext(
        client,  # type: ignore[arg-type]
        SharedInformers(client),  # type: ignore[arg-type]
        FakeClock(T0),
        lambda _: FakeRecorder(),
        ControllerOptions(extra=extra),
    )
    return ControlPlanePods(ctx)


def test_a_pass_creates_missing_pods_then_leaves_unchanged_ones_alone() -> None:
    asyncio.run(_creates_then_leaves_alone())


async def _creates_then_leaves_alone() -> None:
    client, source = FakePods(), FixedSource([comp(True)])
    pods = controller(client, source, interval=7.0)
    assert len(pods.queue) == 1  # the one key is queued from the start
    assert await pods.reconcile(SYNC_KEY) == 7.0  # and comes back every interval
    assert client.writes == [("create", "kube-apiserver-vm"), ("patch-status", "kube-apiserver-vm")]
    await pods.reconcile(SYNC_KEY)
    assert len(client.writes) == 2  # nothing changed: no write
    source.found = [comp(False)]
    await pods.reconcile(SYNC_KEY)
    assert client.writes[-1] == ("patch-status", "kube-apiserver-vm")
    assert client.pods["kube-apiserver-vm"]["status"]["phase"] == "Pending"
    await pods.stop()
    assert source.closed


def test_a_deleted_pod_is_removed_and_comes_back_on_the_next_pass() -> None:
    asyncio.run(_deleted_comes_back())


async def _deleted_comes_back() -> None:
    terminating = {
        **component_pod(comp(True)),
        "metadata": {"name": "kube-apiserver-vm", "deletionTimestamp": "x"},
    }
    client = FakePods({"kube-apiserver-vm": terminating})
    pods = controller(client, FixedSource([comp(True)]))
    await pods.reconcile(SYNC_KEY)
    assert client.writes == [("delete", "kube-apiserver-vm")]
    await pods.reconcile(SYNC_KEY)
    assert client.writes[1] == ("create", "kube-apiserver-vm")


def test_deleting_a_component_pod_brings_the_pass_forward() -> None:
    pods = controller(FakePods(), FixedSource([comp(True)]))
    asyncio.run(_drain(pods))
    pods._pod_changed({"metadata": {"name": "x", "namespace": "default"}})
    assert len(pods.queue) == 0  # not a control-plane pod
    pods._pod_changed(component_pod(comp(True)))
    assert len(pods.queue) == 1
    asyncio.run(_drain(pods))
    ready = {**component_pod(comp(True)), "status": pod_status(comp(True), None, T0)}
    pods._pod_updated(ready, ready)  # a resync: nothing changed
    assert len(pods.queue) == 0
    not_ready = {**ready, "status": pod_status(comp(False), None, T0)}
    pods._pod_updated(ready, not_ready)  # the node lifecycle controller marked it not ready
    assert len(pods.queue) == 1


async def _drain(pods: ControlPlanePods) -> None:
    while len(pods.queue):
        pods.queue.done(await pods.queue.get())


def test_without_a_source_nothing_is_reported() -> None:
    client = FakePods()
    pods = controller(client, None)
    assert len(pods.queue) == 0
    assert asyncio.run(pods.reconcile(SYNC_KEY)) is None and client.writes == []
