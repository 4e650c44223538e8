"""EndpointSlice building: port resolution, endpoint conditions, grouping by ports, and the slice plan
(minimal writes, 100 per slice, placeholder)."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest

from cluster.controllers.endpointslice import (
    MANAGED_BY,
    MANAGED_BY_LABEL,
    SERVICE_NAME_LABEL,
    EndpointSliceController,
    WriteTracker,
    desired_endpoints,
    find_port,
    plan_slices,
    pod_endpoint,
    selector_matches,
)
from cluster.controllers.runtime import ControllerContext, SharedInformers
from tests.cluster.controllers.fake_client import FakeClient
from tests.cluster.controllers.fakes import FakeClock, FakeRecorder


def pod(
    name: str,
    ip: str | None = "10.0.0.1",
    ready: bool = True,
    deleting: bool = False,
    phase: str = "Running",
    node: str = "n1",
    ports: list[dict[str, Any]] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": "ns", "uid": f"uid-{name}", "labels": {"app": "web"}}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    status: dict[str, Any] = {
        "phase": phase,
        "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
    }
    if ip:
        status["podIP"] = ip
    return {
        "metadata": meta,
        "spec": {"nodeName": node, "containers": [{"name": "c", "ports": ports or []}], **spec},
        "status": status,
    }


def service(
    ports: list[dict[str, Any]] | None = None,
    publish: bool = False,
    labels: dict[str, str] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    return {
        "metadata": {"name": "web", "namespace": "ns", "uid": "svc-uid", "labels": labels or {}},
        "spec": {
            "selector": {"app": "web"},
            "ports": ports if ports is not None else [{"name": "http", "port": 80, "targetPort": 8080}],
            "publishNotReadyAddresses": publish,
            **spec,
        },
    }


NAMED = [{"name": "http", "containerPort": 8080}]
NAMED_OTHER = [{"name": "http", "containerPort": 9090}]


@pytest.mark.parametrize(
    ("service_port", "container_ports", "want"),
    [
        pytest.param({"port": 80, "targetPort": 8080}, [], 8080, id="number"),
        pytest.param({"port": 80}, [], 80, id="defaults-to-port"),
        pytest.param({"port": 80, "targetPort": "http"}, NAMED, 8080, id="named"),
        pytest.param({"port": 80, "targetPort": "http"}, [], None, id="named-unknown"),
        pytest.param(
            {"port": 80, "targetPort": "http", "protocol": "UDP"}, NAMED, None, id="named-wrong-protocol"
        ),
        pytest.param(
            {"port": 53, "targetPort": "dns", "protocol": "UDP"},
            [{"name": "dns", "containerPort": 5353, "protocol": "UDP"}],
            5353,
            id="named-udp",
        ),
    ],
)
def test_find_port(
    service_port: dict[str, Any], container_ports: list[dict[str, Any]], want: int | None
) -> None:
    assert find_port(pod("a", ports=container_ports), service_port) == want


@pytest.mark.parametrize(
    ("ready", "deleting", "publish", "want"),
    [
        pytest.param(True, False, False, {"ready": True, "serving": True, "terminating": False}, id="ready"),
        pytest.param(
            False, False, False, {"ready": False, "serving": False, "terminating": False}, id="not-ready"
        ),
        pytest.param(
            True, True, False, {"ready": False, "serving": True, "terminating": True}, id="terminating"
        ),
        pytest.param(
            False,
            True,
            False,
            {"ready": False, "serving": False, "terminating": True},
            id="terminating-not-ready",
        ),
        pytest.param(
            False, False, True, {"ready": True, "serving": False, "terminating": False}, id="publish"
        ),
        pytest.param(
            True, True, True, {"ready": True, "serving": True, "terminating": True}, id="publish-term"
        ),
    ],
)
def test_endpoint_conditions(ready: bool, deleting: bool, publish: bool, want: dict[str, bool]) -> None:
    endpoint = pod_endpoint(pod("a", ready=ready, deleting=deleting), service(publish=publish), None)
    assert endpoint["conditions"] == want


def test_endpoint_fields() -> None:
    node = {"metadata": {"name": "n1", "labels": {"topology.kubernetes.io/zone": "z1"}}}
    svc = service(clusterIP="None")
    p = pod("a", hostname="a", subdomain="web")
    assert pod_endpoint(p, svc, node) == {
        "addresses": ["10.0.0.1"],
        "conditions": {"ready": True, "serving": True, "terminating": False},
        "targetRef": {"kind": "Pod", "namespace": "ns", "name": "a", "uid": "uid-a"},
        "hostname": "a",
        "nodeName": "n1",
        "zone": "z1",
    }
    assert "zone" not in pod_endpoint(p, svc, {"metadata": {"name": "n1"}})
    assert "hostname" not in pod_endpoint(pod("a", hostname="a", subdomain="other"), svc, None)


@pytest.mark.parametrize(
    ("pods", "want"),
    [
        pytest.param(
            [pod("a"), pod("b", ip="10.0.0.2")], {((("http", 8080, "TCP", ""),), ("ns/a", "ns/b"))}, id="two"
        ),
        pytest.param([pod("a", ip=None)], set(), id="no-ip-skipped"),
        pytest.param([pod("a", phase="Succeeded"), pod("b", phase="Failed")], set(), id="terminal-skipped"),
        pytest.param(
            [pod("a", deleting=True)], {((("http", 8080, "TCP", ""),), ("ns/a",))}, id="terminating-kept"
        ),
    ],
)
def test_desired_endpoints(pods: list[dict[str, Any]], want: set[Any]) -> None:
    groups = desired_endpoints(service(), pods, {})
    assert {(key, tuple(sorted(g.endpoints))) for key, g in groups.items()} == want


def test_named_target_ports_resolve_per_pod() -> None:
    svc = service([{"name": "http", "port": 80, "targetPort": "http"}])
    pods = [
        pod("a", ports=NAMED),
        pod("b", ip="10.0.0.2", ports=NAMED_OTHER),
        pod("c", ip="10.0.0.3", ports=NAMED),
    ]
    groups = desired_endpoints(svc, pods, {})
    assert {key[0][1]: sorted(g.endpoints) for key, g in groups.items()} == {
        8080: ["ns/a", "ns/c"],
        9090: ["ns/b"],
    }
    plan = plan_slices(svc, groups, [])
    assert sorted((s["ports"][0]["port"], len(s["endpoints"])) for s in plan.create) == [(8080, 2), (9090, 1)]


# -- the slice plan -----------------------------------------------------------------------------


def pods_n(n: int, ready: bool = True) -> list[dict[str, Any]]:
    return [pod(f"p{i:03d}", ip=f"10.0.{i // 250}.{i % 250 + 1}", ready=ready) for i in range(n)]


def existing_from(svc: dict[str, Any], pods: list[dict[str, Any]], names: list[str]) -> list[dict[str, Any]]:
    """Slices as the server would hold them after applying a plan for ``pods`` made from nothing."""
    plan = plan_slices(svc, desired_endpoints(svc, pods, {}), [])
    out = []
    for name, body in zip(names, plan.create, strict=True):
        s = copy.deepcopy(body)
        s["metadata"]["name"] = name
        s["metadata"]["resourceVersion"] = "1"
        out.append(s)
    return out


def summary(plan: Any) -> tuple[list[int], list[tuple[str, int]], list[str]]:
    return (
        sorted(len(s["endpoints"]) for s in plan.create),
        sorted((s["metadata"]["name"], len(s["endpoints"])) for s in plan.update),
        plan.delete,
    )


SVC = service()


def test_new_slice_shape() -> None:
    plan = plan_slices(SVC, desired_endpoints(SVC, pods_n(2), {}), [])
    (created,) = plan.create
    assert created["metadata"]["generateName"] == "web-"
    assert created["metadata"]["labels"] == {SERVICE_NAME_LABEL: "web", MANAGED_BY_LABEL: MANAGED_BY}
    assert created["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "name": "web",
            "uid": "svc-uid",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert created["addressType"] == "IPv4"
    assert created["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]


@pytest.mark.parametrize(
    ("existing_pods", "now_pods", "want"),
    [
        pytest.param([], pods_n(3), ([3], [], ["s0"]), id="create-replaces-placeholder"),
        pytest.param([], pods_n(250), ([50, 100, 100], [], ["s0"]), id="split-by-100"),
        pytest.param(pods_n(3), pods_n(3), ([], [], []), id="unchanged-not-rewritten"),
        pytest.param(pods_n(3), pods_n(2), ([], [("s0", 2)], []), id="pod-gone"),
        pytest.param(pods_n(3), pods_n(4), ([], [("s0", 4)], []), id="new-pod-fills-slice"),
        pytest.param(pods_n(3), [], ([0], [], ["s0"]), id="all-gone-placeholder"),
        pytest.param(pods_n(150), pods_n(149), ([], [("s1", 49)], []), id="only-touched-slice-written"),
        pytest.param(pods_n(100), pods_n(103), ([3], [], []), id="full-slice-new-one"),
        pytest.param(pods_n(150), pods_n(153), ([], [("s1", 53)], []), id="leftover-into-roomy-slice"),
    ],
)
def test_plan(
    existing_pods: list[dict[str, Any]],
    now_pods: list[dict[str, Any]],
    want: tuple[list[int], list[tuple[str, int]], list[str]],
) -> None:
    names = [f"s{i}" for i in range((len(existing_pods) + 99) // 100 or 1)]
    existing = existing_from(SVC, existing_pods, names)
    plan = plan_slices(SVC, desired_endpoints(SVC, now_pods, {}), existing)
    assert summary(plan) == want


def test_readiness_change_updates_in_place() -> None:
    existing = existing_from(SVC, pods_n(150), ["s0", "s1"])
    now = pods_n(150)
    now[120]["status"]["conditions"][0]["status"] = "False"
    plan = plan_slices(SVC, desired_endpoints(SVC, now, {}), existing)
    assert summary(plan) == ([], [("s1", 50)], [])
    (updated,) = plan.update
    flipped = [e for e in updated["endpoints"] if e["targetRef"]["name"] == "p120"]
    assert flipped[0]["conditions"]["ready"] is False
    assert updated["metadata"]["resourceVersion"] == "1"  # the update is conditional on what we read


def test_placeholder() -> None:
    placeholder = existing_from(SVC, [], ["ph"])
    assert placeholder[0]["ports"] == [] and placeholder[0]["endpoints"] == []
    assert summary(plan_slices(SVC, {}, placeholder)) == ([], [], [])
    assert summary(plan_slices(SVC, desired_endpoints(SVC, pods_n(2), {}), placeholder)) == ([2], [], ["ph"])


def test_port_change_replaces_slices() -> None:
    existing = existing_from(SVC, pods_n(2), ["s0"])
    svc = service([{"name": "http", "port": 80, "targetPort": 8081}])
    plan = plan_slices(svc, desired_endpoints(svc, pods_n(2), {}), existing)
    assert summary(plan) == ([2], [], ["s0"])
    assert plan.create[0]["ports"][0]["port"] == 8081


def test_service_label_change_rewrites_labels() -> None:
    existing = existing_from(SVC, pods_n(2), ["s0"])
    svc = service(labels={"team": "a", SERVICE_NAME_LABEL: "spoof"})
    plan = plan_slices(svc, desired_endpoints(svc, pods_n(2), {}), existing)
    assert [s["metadata"]["labels"] for s in plan.update] == [
        {"team": "a", SERVICE_NAME_LABEL: "web", MANAGED_BY_LABEL: MANAGED_BY}
    ]


def test_duplicate_endpoint_kept_once() -> None:
    a = existing_from(SVC, pods_n(2), ["s0"])[0]
    b = copy.deepcopy(a)
    b["metadata"]["name"] = "s1"
    plan = plan_slices(SVC, desired_endpoints(SVC, pods_n(2), {}), [a, b])
    assert summary(plan) == ([], [], ["s1"])


@pytest.mark.parametrize(
    ("selector", "labels", "want"),
    [
        pytest.param({"app": "web"}, {"app": "web", "x": "y"}, True, id="subset"),
        pytest.param({"app": "web"}, {"app": "db"}, False, id="other-value"),
        pytest.param({"app": "web"}, None, False, id="no-labels"),
    ],
)
def test_selector_matches(selector: dict[str, str], labels: dict[str, str] | None, want: bool) -> None:
    assert selector_matches(selector, labels) is want


def test_write_tracker_waits_for_the_cache() -> None:
    tracker = WriteTracker(timeout=30)
    tracker.record("ns/web", 0.0, {"s0": "5", "old": None})
    seen_old = {"s0": {"metadata": {"resourceVersion": "4"}}, "old": {"metadata": {}}}
    assert tracker.stale("ns/web", 1.0, seen_old)
    assert tracker.stale("ns/web", 1.0, {"s0": {"metadata": {"resourceVersion": "5"}}, "old": {}})
    assert not tracker.stale("ns/web", 1.0, {"s0": {"metadata": {"resourceVersion": "6"}}})
    assert not tracker.stale("ns/web", 1.0, seen_old)  # satisfied once: forgotten
    tracker.record("ns/web", 0.0, {"s0": "9"})
    assert not tracker.stale("ns/web", 31.0, seen_old)  # expired


# -- the controller over listers and a fake client ----------------------------------------------


class NamingClient(FakeClient):
    """FakeClient that names objects from ``generateName`` as the API server does."""

    async def create(
        self, gv: str, plural: str, body: dict[str, Any], namespace: str | None = None, **kw: Any
    ) -> dict[str, Any]:
        meta = body.setdefault("metadata", {})
        if not meta.get("name"):
            meta["name"] = f"{meta['generateName']}{len(self.calls):05d}"
        return await super().create(gv, plural, body, namespace, **kw)


class Harness:
    def __init__(self) -> None:
        self.client = NamingClient()
        self.clock = FakeClock()
        self.recorder = FakeRecorder()
        self.informers = SharedInformers(self.client)  # type: ignore[arg-type]
        ctx = ControllerContext(self.client, self.informers, self.clock, lambda _: self.recorder)  # type: ignore[arg-type]
        self.controller = EndpointSliceController(ctx)

    def add(self, gv: str, plural: str, obj: dict[str, Any]) -> None:
        self.informers.lister(gv, plural).upsert(obj)

    def sync_cache(self) -> None:
        """What the informer would deliver: the client's slices into the lister."""
        lister = self.informers.lister("discovery.k8s.io/v1", "endpointslices")
        lister.replace(
            [copy.deepcopy(o) for (gv, p, _, _), o in self.client.objects.items() if p == "endpointslices"]
        )

    def reconcile(self, key: str = "ns/web") -> float | None:
        return asyncio.run(self.controller.reconcile(key))


def test_controller_creates_then_leaves_alone() -> None:
    h = Harness()
    h.add("v1", "services", service())
    for p in pods_n(2):
        h.add("v1", "pods", p)
    assert h.reconcile() is None
    assert [c[:3] for c in h.client.calls] == [("create", "discovery.k8s.io/v1", "endpointslices")]
    assert h.reconcile() == 0.1  # the cache does not show our slice yet: no second create
    assert len(h.client.calls) == 1
    h.sync_cache()
    assert h.reconcile() is None
    assert len(h.client.calls) == 1
    h.controller.pods.get("ns", "p001")["status"]["conditions"][0]["status"] = "False"  # type: ignore[index]
    h.reconcile()
    assert [c[0] for c in h.client.calls] == ["create", "update"]
    (slice_,) = [o for (_, p, _, _), o in h.client.objects.items() if p == "endpointslices"]
    assert [e["conditions"]["ready"] for e in slice_["endpoints"]] == [True, False]


def test_controller_skips_selectorless_services() -> None:
    h = Harness()
    svc = service()
    del svc["spec"]["selector"]
    h.add("v1", "services", svc)
    h.add("v1", "pods", pod("a"))
    assert h.reconcile() is None
    assert h.client.calls == []


def test_pod_events_enqueue_matching_services() -> None:
    h = Harness()
    h.add("v1", "services", service())
    other = service()
    other["metadata"]["name"] = "db"
    other["spec"]["selector"] = {"app": "db"}
    h.add("v1", "services", other)
    h.controller._pod_changed(pod("a"))
    assert len(h.controller.queue) == 1
    assert asyncio.run(h.controller.queue.get()) == "ns/web"
