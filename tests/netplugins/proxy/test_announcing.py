"""AnnouncingBackend against the real API server in process: the owner announces the table's
LoadBalancer IPs before the inner backend syncs, and a Node losing readiness moves the announcement
at once (fake announcer and inner backend record the calls)."""

from __future__ import annotations

import asyncio
from typing import Any

from netplugins.proxy.announcing import AnnouncingBackend, ready_names
from netplugins.proxy.model import NodeInfo, ServicePort, ServicePortName, ServiceTable
from tests.cluster.controllers.local_apiserver import local_apiserver
from tests.cluster.controllers.test_nodeipam import eventually


def node(name: str, ready: bool) -> dict[str, Any]:
    status = {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}, "status": status}


class FakeAnnouncer:
    def __init__(self, log: list[Any]) -> None:
        self.log = log

    def sync(self, ips: set[str], am_owner: bool) -> tuple[list[str], list[str]]:
        self.log.append(("announce", sorted(ips), am_owner))
        return [], []

    def close(self, purge: bool) -> None:
        self.log.append(("announcer-close", purge))


class FakeInner:
    def __init__(self, log: list[Any]) -> None:
        self.log = log

    async def sync(self, table: ServiceTable, node: NodeInfo) -> None:
        self.log.append(("inner", len(table)))

    async def close(self, purge: bool) -> None:
        self.log.append(("inner-close", purge))


def test_ready_names() -> None:
    assert ready_names([node("b", True), node("a", False), node("c", True), {"metadata": {"name": "x"}}]) == [
        "b",
        "c",
    ]


def test_owner_announces_and_hands_over() -> None:
    asyncio.run(_handover())


async def _handover() -> None:
    spn = ServicePortName("default", "web", "", "TCP")
    table: ServiceTable = {spn: (ServicePort(spn, ("10.96.0.5",), 80, load_balancer_ips=("172.29.0.1",)), ())}
    async with local_apiserver() as client:
        await client.create("v1", "nodes", node("b", True))
        await client.create("v1", "nodes", node("c", True))
        log: list[Any] = []
        backend = AnnouncingBackend(FakeInner(log), FakeAnnouncer(log), client)  # type: ignore[arg-type]
        try:
            await backend.sync(table, NodeInfo("b", ("10.0.0.2",)))
            assert log == [("announce", ["172.29.0.1"], True), ("inner", 1)]  # announced first
            log.clear()
            fresh = await client.get("v1", "nodes", "b")
            fresh["status"] = node("b", False)["status"]
            await client.update("v1", "nodes", fresh, subresource="status")
            await eventually(lambda: ("announce", ["172.29.0.1"], False) in log, "the withdrawal")
            assert ("inner", 1) not in log  # readiness alone does not resync the data path
        finally:
            await backend.close(purge=True)
        assert log[-2:] == [("announcer-close", True), ("inner-close", True)]
