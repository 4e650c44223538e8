"""ApiClient failover between API servers: two real API server instances (the real ``ApiServer``
application, each on its own port) over one in-memory store, as two control-plane nodes share the
replicated store. Stopping one leaves the client working through the other; an HTTP error never
moves it; a server that was never up is skipped. Also: two instances bound to one port with
SO_REUSEPORT (``run_server(reuse_port=True)``), as on a test cluster's shared host."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from cluster.apiserver.kubeconfig import kubeconfig_document
from cluster.apiserver.server import ApiServer, run_server
from cluster.client.errors import ApiError, TransportError
from cluster.client.kubeconfig import settings_from_config
from cluster.client.rest import ApiClient
from tests.cluster.controllers.local_apiserver import WatchableStore


def _cm(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": name}}


@asynccontextmanager
async def _two_servers() -> AsyncIterator[tuple[TestServer, TestServer]]:
    store = WatchableStore()
    servers = [TestServer(ApiServer(store).app(insecure_local=True)) for _ in range(2)]  # type: ignore[arg-type]
    for server in servers:
        await server.start_server()
    try:
        yield servers[0], servers[1]
    finally:
        for server in servers:
            await server.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _url(server: TestServer) -> str:
    return str(server.make_url("")).rstrip("/")


def test_requests_move_to_the_next_server_when_one_stops() -> None:
    async def scenario() -> None:
        async with _two_servers() as (first, second):
            client = ApiClient(servers=[_url(first), _url(second)])
            try:
                await client.create("v1", "configmaps", _cm("before"), "default")
                assert client.server == _url(first)
                await first.close()
                # A write whose connection is refused was never sent: it goes to the next server.
                await client.create("v1", "configmaps", _cm("after"), "default")
                assert client.server == _url(second)
                listed = await client.list("v1", "configmaps", "default")
                assert sorted(i["metadata"]["name"] for i in listed["items"]) == ["after", "before"]
            finally:
                await client.close()

    asyncio.run(scenario())


def test_an_http_error_does_not_fail_over() -> None:
    async def scenario() -> None:
        async with _two_servers() as (first, second):
            client = ApiClient(servers=[_url(first), _url(second)])
            try:
                with pytest.raises(ApiError) as err:
                    await client.get("v1", "configmaps", "missing", "default")
                assert err.value.status == 404
                await client.create("v1", "configmaps", _cm("dup"), "default")
                with pytest.raises(ApiError) as err:
                    await client.create("v1", "configmaps", _cm("dup"), "default")
                assert err.value.status == 409
                assert client.server == _url(first)
            finally:
                await client.close()

    asyncio.run(scenario())


def test_a_server_that_never_answered_is_skipped_and_all_down_is_a_transport_error() -> None:
    async def scenario() -> None:
        dead = f"http://127.0.0.1:{_free_port()}"
        async with _two_servers() as (first, _second):
            client = ApiClient(servers=[dead, _url(first)])
            try:
                await client.create("v1", "configmaps", _cm("x"), "default")
                assert client.server == _url(first)
                assert (await client.get("v1", "configmaps", "x", "default"))["data"] == {"k": "x"}
            finally:
                await client.close()
        client = ApiClient(servers=[dead, f"http://127.0.0.1:{_free_port()}"])
        try:
            with pytest.raises(TransportError):
                await client.get_path("/version")
        finally:
            await client.close()

    asyncio.run(scenario())


def test_a_watch_that_cannot_start_moves_to_the_next_server() -> None:
    async def scenario() -> None:
        async with _two_servers() as (first, second):
            client = ApiClient(servers=[_url(first), _url(second)])
            try:
                rv = (await client.list("v1", "configmaps", "default"))["metadata"]["resourceVersion"]
                await first.close()
                seen: list[str] = []

                async def watch_one() -> None:
                    async for event in client.watch("v1", "configmaps", "default", resource_version=rv):
                        if event["type"] == "ADDED":
                            seen.append(event["object"]["metadata"]["name"])
                            return

                watching = asyncio.create_task(watch_one())
                await asyncio.sleep(0.2)
                assert client.server == _url(second)
                await client.create("v1", "configmaps", _cm("seen"), "default")
                await asyncio.wait_for(watching, 10)
                assert seen == ["seen"]
            finally:
                await client.close()

    asyncio.run(scenario())


def test_kubeconfig_servers_extension_reaches_the_client() -> None:
    doc = kubeconfig_document(
        server="https://127.0.0.1:6443",
        servers=["https://127.0.0.1:6443", "https://10.0.0.2:6443", "https://10.0.0.3:6443/"],
        cluster_name="raykube",
        user="u",
        context="c",
        certificate_authority=b"ca",
        client_certificate=b"cert",
        client_key=b"key",
    )
    settings = settings_from_config(doc, "/")
    assert settings.server == "https://127.0.0.1:6443"
    assert settings.servers == ("https://127.0.0.1:6443", "https://10.0.0.2:6443", "https://10.0.0.3:6443")
    single = kubeconfig_document(
        server="https://127.0.0.1:6443",
        servers=["https://127.0.0.1:6443"],
        cluster_name="raykube",
        user="u",
        context="c",
        certificate_authority=b"ca",
        client_certificate=b"cert",
        client_key=b"key",
    )
    assert "extensions" not in single["clusters"][0]["cluster"]
    assert settings_from_config(single, "/").servers == ()


def test_two_instances_share_one_port_with_reuse_port() -> None:
    """The second instance binds the port the first picked; with the first stopped, new connections
    reach the second."""

    async def scenario() -> None:
        store = WatchableStore()
        first = await run_server(store, "127.0.0.1", 0, None, reuse_port=True)  # type: ignore[arg-type]
        port = first.addresses[0][1]
        second = await run_server(store, "127.0.0.1", port, None, reuse_port=True)  # type: ignore[arg-type]
        try:
            assert second.addresses[0][1] == port
            await first.cleanup()
            async with aiohttp.ClientSession() as session:
                for _ in range(5):  # fresh connections each time
                    async with session.get(
                        f"http://127.0.0.1:{port}/healthz", headers={"Connection": "close"}
                    ) as r:
                        assert r.status == 200
        finally:
            await second.cleanup()

    asyncio.run(scenario())
