"""The real API server over the store's etcd v3 API: ``ApiServer`` in process on an
``EtcdStoreClient`` talking real gRPC to three in-process replicas (no Ray), driven through the
real ``ApiClient``. Creates, conflicts, lists, a watch and deletes keep working while the leader's
client port goes away (the client moves to a follower, which forwards)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import grpc
import pytest
from aiohttp.test_utils import TestServer

from cluster.apiserver.server import ApiServer
from cluster.client.errors import ApiError
from cluster.client.rest import ApiClient
from cluster.store.etcd_api.server import bound_port, build_server
from cluster.store.etcd_client import EtcdStoreClient
from tests.cluster.store.etcd_api.cluster import start_cluster


def configmap(name: str, value: str) -> dict[str, Any]:
    return {"metadata": {"name": name}, "data": {"v": value}}


def test_kubernetes_objects_through_the_etcd_api(tmp_path: Path) -> None:
    async def main() -> None:
        cluster = await start_cluster(tmp_path, 3)
        servers: dict[int, grpc.aio.Server] = {}
        for rid, backend in cluster.backends.items():
            servers[rid] = build_server(backend, host="127.0.0.1", port=0, tls=None)
            await servers[rid].start()
        store = await EtcdStoreClient.connect(
            [f"http://127.0.0.1:{bound_port(s)}" for _, s in sorted(servers.items())], request_timeout=2.0
        )
        api = ApiServer(store)
        http = TestServer(api.app(insecure_local=True))
        await http.start_server()
        client = ApiClient(str(http.make_url("")))
        try:
            await client.create("v1", "namespaces", {"metadata": {"name": "app"}})
            first = await client.create("v1", "configmaps", configmap("one", "1"), "app")
            with pytest.raises(ApiError) as taken:
                await client.create("v1", "configmaps", configmap("one", "again"), "app")
            assert taken.value.status == 409
            listed = await client.list("v1", "configmaps", "app")
            rv = listed["metadata"]["resourceVersion"]
            assert [i["metadata"]["name"] for i in listed["items"]] == ["one"]

            seen: list[tuple[str, str]] = []

            async def watch() -> None:
                async for ev in client.watch(
                    "v1", "configmaps", "app", resource_version=rv, timeout_seconds=30
                ):
                    if ev["type"] != "BOOKMARK":
                        seen.append((ev["type"], ev["object"]["metadata"]["name"]))
                    if len(seen) == 4:
                        return

            watcher = asyncio.create_task(watch())
            await client.create("v1", "configmaps", configmap("two", "2"), "app")
            await servers.pop((await cluster.leader()).member_id).stop(None)  # the leader's port goes
            stale = dict(first)
            stale["data"] = {"v": "changed"}
            updated = await client.update("v1", "configmaps", stale, "app")
            assert int(updated["metadata"]["resourceVersion"]) > int(first["metadata"]["resourceVersion"])
            with pytest.raises(ApiError) as conflict:
                await client.update("v1", "configmaps", stale, "app")  # the old resourceVersion
            assert conflict.value.status == 409
            await client.create("v1", "configmaps", configmap("three", "3"), "app")
            await client.delete("v1", "configmaps", "two", "app")
            await asyncio.wait_for(watcher, 20)
            assert seen == [("ADDED", "two"), ("MODIFIED", "one"), ("ADDED", "three"), ("DELETED", "two")]
            got = await client.get("v1", "configmaps", "one", "app")
            assert got["data"] == {"v": "changed"}
            names = [i["metadata"]["name"] for i in (await client.list("v1", "configmaps", "app"))["items"]]
            assert names == ["one", "three"]
        finally:
            await client.close()
            await http.close()
            await store.close()
            for s in servers.values():
                await s.stop(None)
            await cluster.close()

    asyncio.run(main())
