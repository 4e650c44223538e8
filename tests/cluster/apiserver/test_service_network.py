"""The Service CIDR is configuration of the API server: ClusterIPs, the ``kubernetes`` Service and
the reserved DNS address follow it (``raykube up --service-cidr``; 10.96.0.0/12 by default)."""

from __future__ import annotations

import asyncio
import ipaddress

import pytest
from aiohttp.test_utils import TestServer

from cluster.apiserver.admission.service_allocation import DEFAULT_SERVICE_NETWORK, ServiceNetwork
from cluster.apiserver.server import ApiServer
from cluster.client.errors import ApiError
from cluster.client.rest import ApiClient
from tests.cluster.controllers.local_apiserver import WatchableStore


@pytest.mark.parametrize(
    ("cidr", "kubernetes", "dns"),
    [
        pytest.param("10.96.0.0/12", "10.96.0.1", "10.96.0.10", id="default"),
        pytest.param("127.96.0.0/16", "127.96.0.1", "127.96.0.10", id="loopback"),
        pytest.param("fd00:96::/112", "fd00:96::1", "fd00:96::a", id="ipv6"),
    ],
)
def test_well_known_addresses(cidr: str, kubernetes: str, dns: str) -> None:
    network = ServiceNetwork.parse(cidr)
    assert (network.kubernetes_ip, network.dns_ip) == (kubernetes, dns)


def test_default_is_the_old_constant() -> None:
    assert str(DEFAULT_SERVICE_NETWORK.cidr) == "10.96.0.0/12"
    assert DEFAULT_SERVICE_NETWORK.dns_ip == "10.96.0.10"


@pytest.mark.parametrize("value", ["10.96.0.1/12", "nonsense", "10.96.0.0/28"])
def test_parse_refuses(value: str) -> None:
    with pytest.raises(ValueError):
        ServiceNetwork.parse(value)


def test_cluster_ips_come_from_the_configured_cidr() -> None:
    asyncio.run(_allocate())


async def _allocate() -> None:
    network = ServiceNetwork.parse("127.96.0.0/24")
    server = TestServer(ApiServer(WatchableStore(), services=network).app(insecure_local=True))  # type: ignore[arg-type]
    await server.start_server()
    client = ApiClient(str(server.make_url("")))
    try:
        kubernetes = await client.get("v1", "services", "kubernetes", "default")
        assert kubernetes["spec"]["clusterIP"] == "127.96.0.1"
        for i in range(20):
            svc = {"metadata": {"name": f"s{i}"}, "spec": {"ports": [{"port": 80}]}}
            created = await client.create("v1", "services", svc, "default")
            ip = created["spec"]["clusterIP"]
            assert ipaddress.ip_address(ip) in network.cidr and ip not in ("127.96.0.1", "127.96.0.10")
        with pytest.raises(ApiError, match=r"The range of valid IPs is 127\.96\.0\.0/24"):
            await client.create(
                "v1", "services", {"metadata": {"name": "out"}, "spec": {"clusterIP": "10.96.0.50",
                                                                         "ports": [{"port": 80}]}}, "default"
            )  # fmt: skip
    finally:
        await client.close()
        await server.close()
