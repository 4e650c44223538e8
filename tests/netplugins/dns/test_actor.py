"""netplugins.dns.actor.KubeDns against the fake API server: it writes the kube-dns Service and its
EndpointSlice (again, with the new port, when started anew), serves what the informers see, and
follows changes."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from dnslib import DNSRecord

from cluster.client.rest import ApiClient
from netplugins.dns.actor import MANAGED_BY, SLICE_NAME, KubeDns
from netplugins.dns.records import DnsOptions
from tests.cluster.client.fake_apiserver import FakeApiServer

Scenario = Callable[[FakeApiServer, ApiClient], Awaitable[None]]


def run(scenario: Scenario) -> None:
    async def main() -> None:
        fake = FakeApiServer()
        client = ApiClient(await fake.start())
        try:
            await asyncio.wait_for(scenario(fake, client), 20.0)  # a hang guard, not a threshold
        finally:
            await client.close()
            await fake.stop()

    asyncio.run(main())


def service(name: str, ip: str, ns: str = "default") -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": ns}, "spec": {"clusterIP": ip, "ports": [{"port": 443}]}}


async def resolve(dns: KubeDns, name: str) -> list[str]:
    query = DNSRecord.question(name, "A")
    raw = await asyncio.to_thread(query.send, "127.0.0.1", dns.port, timeout=5)
    return [str(rr.rdata) for rr in DNSRecord.parse(raw).rr]


async def until(probe: Callable[[], Awaitable[Any]], want: Any) -> None:
    while await probe() != want:
        await asyncio.sleep(0.05)


def test_service_slice_and_answers() -> None:
    async def scenario(fake: FakeApiServer, client: ApiClient) -> None:
        fake.put("services", service("kubernetes", "10.96.0.1"))
        dns = KubeDns(client, "127.0.0.1", 0, DnsOptions(), [], cluster_ip="10.96.0.10", node_name="n1")
        port = await dns.start()
        try:
            svc = fake.objects["services"][("kube-system", "kube-dns")]
            assert svc["spec"]["clusterIP"] == "10.96.0.10" and "selector" not in svc["spec"]
            assert [(p["name"], p["port"], p["protocol"], p["targetPort"]) for p in svc["spec"]["ports"]] == [
                ("dns", 53, "UDP", port),
                ("dns-tcp", 53, "TCP", port),
            ]
            eps = fake.objects["endpointslices"][("kube-system", SLICE_NAME)]
            assert eps["metadata"]["labels"] == {
                "kubernetes.io/service-name": "kube-dns",
                "endpointslice.kubernetes.io/managed-by": MANAGED_BY,
            }
            assert (
                eps["endpoints"][0]["addresses"] == ["127.0.0.1"] and eps["endpoints"][0]["nodeName"] == "n1"
            )
            assert {p["port"] for p in eps["ports"]} == {port}
            assert await resolve(dns, "kubernetes.default.svc.cluster.local") == ["10.96.0.1"]
            await until(lambda: resolve(dns, "kube-dns.kube-system.svc.cluster.local"), ["10.96.0.10"])

            fake.put("services", service("web", "10.96.3.3", "shop"))
            await until(lambda: resolve(dns, "web.shop.svc.cluster.local"), ["10.96.3.3"])
            fake.remove("services", "shop", "web")
            await until(lambda: resolve(dns, "web.shop.svc.cluster.local"), [])
        finally:
            await dns.close()

        again = KubeDns(client, "127.0.0.1", 0, DnsOptions(), [], cluster_ip="10.96.0.10")
        new_port = await again.start()
        try:
            eps = fake.objects["endpointslices"][("kube-system", SLICE_NAME)]
            assert {p["port"] for p in eps["ports"]} == {new_port}
            svc = fake.objects["services"][("kube-system", "kube-dns")]
            assert {p["targetPort"] for p in svc["spec"]["ports"]} == {new_port}
        finally:
            await again.close()

    run(scenario)
