"""The ``kubernetes`` Endpoints from API server Leases: two instances over one store (the real
registry on the in-memory MVCC store), a fake monotonic clock standing in for time passing."""

from __future__ import annotations

import asyncio
from typing import Any

from cluster.apiserver.endpoint_reconciler import (
    IDENTITY_LABEL,
    LEASE_NAMESPACE,
    EndpointReconciler,
    lease_name,
)
from cluster.apiserver.registry import Registry
from cluster.apiserver.resources import lookup
from cluster.apiserver.server import ApiServer
from cluster.apiserver.storage import list_prefix
from tests.cluster.controllers.local_apiserver import WatchableStore


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def _setup() -> Registry:
    server = ApiServer(WatchableStore())  # type: ignore[arg-type]
    await server._on_startup(None)  # type: ignore[arg-type]  # the system namespaces and Service
    return server.registry


async def _endpoints(registry: Registry) -> list[Any]:
    info = lookup("", "v1", "endpoints")
    assert info is not None
    obj = await registry.get(info, "default", "kubernetes")
    return [
        (a["ip"], a.get("nodeName"), s["ports"][0]["port"]) for s in obj["subsets"] for a in s["addresses"]
    ]


async def _slice(registry: Registry) -> list[Any]:
    info = lookup("discovery.k8s.io", "v1", "endpointslices")
    assert info is not None
    obj = await registry.get(info, "default", "kubernetes")
    assert obj["metadata"]["labels"]["kubernetes.io/service-name"] == "kubernetes"
    ports = [p["port"] for p in obj["ports"]]
    return [(e["addresses"][0], e.get("nodeName"), ports) for e in obj["endpoints"]]


async def _leases(registry: Registry) -> list[str]:
    info = lookup("coordination.k8s.io", "v1", "leases")
    assert info is not None
    listed = await registry.store.list(list_prefix(info, LEASE_NAMESPACE))
    return sorted(i["metadata"]["name"] for i in listed.items)


def test_every_live_instance_is_listed_and_a_silent_one_drops_after_its_lease() -> None:
    async def scenario() -> None:
        registry = await _setup()
        clock = Clock()
        a = EndpointReconciler(registry, "node-a", "10.0.0.1", 6443, lease_seconds=15, monotonic=clock)
        b = EndpointReconciler(registry, "node-b", "10.0.0.2", 6443, lease_seconds=15, monotonic=clock)
        await a.reconcile()
        assert await b.reconcile() == ["10.0.0.1", "10.0.0.2"]
        await a.reconcile()
        assert await _endpoints(registry) == [("10.0.0.1", "node-a", 6443), ("10.0.0.2", "node-b", 6443)]
        assert await _slice(registry) == [("10.0.0.1", "node-a", [6443]), ("10.0.0.2", "node-b", [6443])]
        assert await _leases(registry) == sorted([lease_name("node-a"), lease_name("node-b")])
        # b stops renewing (its host died); a keeps going. Within the lease b still counts.
        clock.now += 10
        assert await a.reconcile() == ["10.0.0.1", "10.0.0.2"]
        clock.now += 10  # b's record unchanged for 20 s > 15 s, as a observed it
        assert await a.reconcile() == ["10.0.0.1"]
        assert await _endpoints(registry) == [("10.0.0.1", "node-a", 6443)]
        assert await _slice(registry) == [("10.0.0.1", "node-a", [6443])]
        assert await _leases(registry) == [lease_name("node-a")]
        # b comes back: renewing puts it back.
        await b.reconcile()
        assert await a.reconcile() == ["10.0.0.1", "10.0.0.2"]

    asyncio.run(scenario())


def test_renewals_keep_a_lease_live_whatever_its_timestamps_say() -> None:
    """Liveness is judged by the observer's clock from when the record last changed."""

    async def scenario() -> None:
        registry = await _setup()
        clock = Clock()
        a = EndpointReconciler(registry, "node-a", "10.0.0.1", 6443, monotonic=clock)
        b = EndpointReconciler(registry, "node-b", "10.0.0.2", 6443, monotonic=clock)
        for _ in range(5):
            await b.reconcile()
            clock.now += 10
            assert await a.reconcile() == ["10.0.0.1", "10.0.0.2"]

    asyncio.run(scenario())


def test_a_clean_stop_withdraws_at_once() -> None:
    async def scenario() -> None:
        registry = await _setup()
        a = EndpointReconciler(registry, "node-a", "10.0.0.1", 6443)
        b = EndpointReconciler(registry, "node-b", "10.0.0.1", 6443)  # same host, as on a test cluster
        await a.reconcile()
        await b.reconcile()
        assert await _endpoints(registry) == [("10.0.0.1", "node-a", 6443), ("10.0.0.1", "node-b", 6443)]
        await b.stop()
        assert await _endpoints(registry) == [("10.0.0.1", "node-a", 6443)]
        assert await _slice(registry) == [("10.0.0.1", "node-a", [6443])]
        await a.stop()
        assert await _endpoints(registry) == []
        assert await _slice(registry) == []
        assert await _leases(registry) == []

    asyncio.run(scenario())


def test_leases_carry_the_kubernetes_identity_label() -> None:
    async def scenario() -> None:
        registry = await _setup()
        a = EndpointReconciler(registry, "node-a", "10.0.0.1", 6443)
        await a.reconcile()
        info = lookup("coordination.k8s.io", "v1", "leases")
        assert info is not None
        lease = await registry.get(info, LEASE_NAMESPACE, lease_name("node-a"))
        assert lease["metadata"]["labels"][IDENTITY_LABEL] == "kube-apiserver"
        assert lease["spec"]["holderIdentity"].startswith("apiserver-")
        assert lease["spec"]["leaseDurationSeconds"] == 15
        assert lease_name("node-a").startswith("apiserver-")

    asyncio.run(scenario())
