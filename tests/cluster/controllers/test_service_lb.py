"""The LoadBalancer address controller against the real API server in process (no Ray): Services of
type LoadBalancer get, keep, move and give back pool addresses; a restart rebuilds the pool."""

from __future__ import annotations

import asyncio
from typing import Any

from cluster.controllers.registry import CONTROLLERS, enabled
from cluster.controllers.service_lb import (
    ALLOCATION_FAILED,
    ServiceLBController,
    ingress_ips,
    is_ours,
    status_patch,
)
from tests.cluster.controllers.local_apiserver import RunningController, local_apiserver
from tests.cluster.controllers.test_nodeipam import eventually

POOL = "10.77.0.0/30"  # two addresses: .1 and .2


def service(name: str, stype: str = "LoadBalancer", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"type": stype, "ports": [{"port": 80, "protocol": "TCP"}], **spec},
    }


def test_is_ours_and_status_patch() -> None:
    assert is_ours(service("a"))
    assert not is_ours(service("a", "NodePort"))
    assert not is_ours(service("a", loadBalancerClass="example.com/other"))
    assert status_patch("1.2.3.4") == {
        "status": {"loadBalancer": {"ingress": [{"ip": "1.2.3.4", "ipMode": "VIP"}]}}
    }
    assert status_patch(None) == {"status": {"loadBalancer": {"ingress": None}}}


def test_registered_and_enabled_by_default() -> None:
    assert CONTROLLERS["service-lb-controller"] is ServiceLBController
    assert "service-lb-controller" in enabled(["*"])


class Running(RunningController):
    def __init__(self, client: Any, pool: str = POOL) -> None:
        super().__init__(client, ServiceLBController, {"lb_pool": pool})

    def failures(self) -> list[str]:
        return [key for _, r, _, key in self.recorder.events if r == ALLOCATION_FAILED]


async def ips(client: Any, name: str) -> list[str]:
    return ingress_ips(await client.get("v1", "services", name, "default"))


async def settle(running: Running) -> None:
    """Wait until the controller's queue is empty twice in a row (nothing more to do)."""
    for _ in range(2):
        await eventually(lambda: len(running.controller.queue) == 0, "an idle queue")
        await asyncio.sleep(0.2)


def test_allocate_release_and_restart() -> None:
    asyncio.run(_lifecycle())


async def _lifecycle() -> None:
    async with local_apiserver() as client:
        await client.create("v1", "services", service("plain", "ClusterIP"))
        await client.create("v1", "services", service("classy", loadBalancerClass="example.com/x"))
        async with Running(client) as running:
            await client.create("v1", "services", service("a"))
            assert await eventually(lambda: ips(client, "a"), "a's address") == ["10.77.0.1"]
            fetched = await client.get("v1", "services", "a", "default")
            assert fetched["status"]["loadBalancer"]["ingress"] == [{"ip": "10.77.0.1", "ipMode": "VIP"}]

            await client.create("v1", "services", service("b", loadBalancerIP="10.77.0.2"))
            assert await eventually(lambda: ips(client, "b"), "b's requested address") == ["10.77.0.2"]

            await client.create("v1", "services", service("c"))  # the pool is exhausted
            await eventually(lambda: running.failures(), "AllocationFailed")
            assert running.failures() == ["default/c"]
            assert await ips(client, "c") == []

            await client.delete("v1", "services", "a", "default")  # a's address goes to c
            assert await eventually(lambda: ips(client, "c"), "c's address") == ["10.77.0.1"]

            # b stops being a LoadBalancer: its status is cleared and its address is free again
            b = await client.get("v1", "services", "b", "default")
            b["spec"]["type"] = "ClusterIP"
            for field in ("loadBalancerIP", "externalTrafficPolicy", "allocateLoadBalancerNodePorts"):
                b["spec"].pop(field, None)
            for port in b["spec"]["ports"]:
                port.pop("nodePort", None)
            await client.update("v1", "services", b, "default")
            await eventually(lambda: _not(ips(client, "b")), "b's cleared status")
            await settle(running)
            assert running.controller.pool.held == {"default/c": "10.77.0.1"}
            assert await ips(client, "plain") == [] and await ips(client, "classy") == []

        # A controller started anew finds c's address in use: d gets the other one, c keeps its own.
        await client.create("v1", "services", service("d"))
        async with Running(client) as again:
            assert await eventually(lambda: ips(client, "d"), "d's address after restart") == ["10.77.0.2"]
            assert await ips(client, "c") == ["10.77.0.1"]
            await settle(again)
            assert again.failures() == []


async def _not(value: Any) -> bool:
    return not await value


def test_foreign_or_duplicate_addresses_are_replaced() -> None:
    asyncio.run(_foreign())


async def _foreign() -> None:
    async with local_apiserver() as client:
        for name, ip in (("old", "10.77.0.1"), ("young", "10.77.0.1"), ("alien", "192.0.2.9")):
            await client.create("v1", "services", service(name))
            await client.patch("v1", "services", name, status_patch(ip), "default", subresource="status")
            await asyncio.sleep(1.1)  # distinct creationTimestamps (second resolution)
        async with Running(client, "10.77.0.0/29") as running:
            await eventually(lambda: _in(ips(client, "young"), {"10.77.0.2", "10.77.0.3"}), "young moved")
            await eventually(lambda: _in(ips(client, "alien"), {"10.77.0.2", "10.77.0.3"}), "alien moved")
            assert await ips(client, "old") == ["10.77.0.1"]  # the oldest keeps the contested address
            await settle(running)
            assert sorted(running.controller.pool.held.values()) == ["10.77.0.1", "10.77.0.2", "10.77.0.3"]


async def _in(value: Any, allowed: set[str]) -> bool:
    got = await value
    return len(got) == 1 and got[0] in allowed
