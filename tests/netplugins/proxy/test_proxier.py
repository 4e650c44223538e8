"""netplugins.proxy.proxier against the fake API server: the first sync waits for both lists, a burst
of changes is coalesced, a failed sync is retried with the state as it is then."""

from __future__ import annotations

import asyncio
from typing import Any

from cluster.client.rest import ApiClient
from netplugins.proxy.model import NodeInfo, ServiceTable
from netplugins.proxy.proxier import Proxier
from tests.cluster.client.fake_apiserver import FakeApiServer


class RecordingBackend:
    """Implements the backend seam; ``fail`` makes the next syncs raise."""

    def __init__(self, fail: int = 0) -> None:
        self.tables: list[ServiceTable] = []
        self.fail = fail
        self.closed: bool | None = None

    async def sync(self, table: ServiceTable, node: NodeInfo) -> None:
        if self.fail:
            self.fail -= 1
            raise RuntimeError("nft said no")
        self.tables.append(table)

    async def close(self, purge: bool) -> None:
        self.closed = purge


def svc(name: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"clusterIP": "10.96.0.5", "ports": [{"name": "http", "port": 80}]},
    }


def eps(name: str) -> dict[str, Any]:
    return {
        "metadata": {
            "name": f"{name}-x",
            "namespace": "default",
            "labels": {"kubernetes.io/service-name": name},
        },
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": [{"addresses": ["10.244.0.2"], "conditions": {"ready": True}}],
    }


async def until(pred: Any) -> None:
    while not pred():
        await asyncio.sleep(0.01)


def run(backend: RecordingBackend, scenario: Any) -> None:
    async def main() -> None:
        fake = FakeApiServer()
        client = ApiClient(await fake.start())
        fake.put("services", svc("a"))
        fake.put("endpointslices", eps("a"))
        proxier = Proxier(
            client, backend, NodeInfo("n1", ("10.0.0.1",)), min_sync_interval=0.5, retry_interval=0.1
        )
        try:
            await proxier.start()
            await asyncio.wait_for(scenario(fake, proxier), 10)
        finally:
            await proxier.stop()
            await client.close()
            await fake.stop()

    asyncio.run(main())


def test_first_sync_has_both_lists_and_a_burst_is_coalesced() -> None:
    backend = RecordingBackend()

    async def scenario(fake: FakeApiServer, proxier: Proxier) -> None:
        assert await proxier.wait_synced(5)
        ((_port, endpoints),) = backend.tables[0].values()
        assert [(e.ip, e.port) for e in endpoints] == [("10.244.0.2", 8080)]
        for i in range(20):
            fake.put("services", svc(f"b{i}"))
        await until(lambda: len(backend.tables[-1]) == 21)
        assert len(backend.tables) <= 3  # 20 changes inside one min_sync_interval: one or two syncs
        fake.remove("services", "default", "a")
        await until(lambda: len(backend.tables[-1]) == 20)

    run(backend, scenario)


def test_failed_sync_is_retried_and_reported() -> None:
    backend = RecordingBackend(fail=2)

    async def scenario(fake: FakeApiServer, proxier: Proxier) -> None:
        assert await proxier.wait_synced(5)
        assert len(backend.tables) == 1 and proxier.status()["last_error"] == ""
        backend.fail = 1
        fake.put("services", svc("b"))
        await until(lambda: proxier.last_error != "")
        assert "nft said no" in proxier.status()["last_error"]
        await until(lambda: len(backend.tables) == 2)
        assert len(backend.tables[-1]) == 2 and proxier.last_error == ""

    run(backend, scenario)
