"""The garbage collector and the namespace controller end to end, without Ray: the real API server
in process (``local_apiserver``), the real client, shared informers and controller manager.

Each flow waits for its outcome with a deadline (the controllers run on their own tasks)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from cluster.client.errors import ApiError
from cluster.client.rest import ApiClient
from cluster.controllers.manager import ControllerManager
from tests.cluster.controllers.local_apiserver import local_apiserver

DEADLINE = 20.0


async def eventually(what: str, check: Callable[[], Awaitable[bool]]) -> None:
    deadline = time.monotonic() + DEADLINE
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


@asynccontextmanager
async def cluster() -> AsyncIterator[ApiClient]:
    async with local_apiserver() as client:
        await client.create("v1", "namespaces", {"metadata": {"name": "app"}})
        manager = ControllerManager(client, ["garbagecollector", "namespace"])
        await manager.start(sync_timeout=10)
        assert set(manager.controllers) == {"garbagecollector", "namespace"}, manager.failed
        try:
            yield client
        finally:
            await manager.stop()


async def exists(
    client: ApiClient, name: str, namespace: str | None = "app", plural: str = "configmaps"
) -> bool:
    try:
        await client.get("v1", plural, name, namespace)
    except ApiError as err:
        if err.status == 404:
            return False
        raise
    return True


async def owned(client: ApiClient, owner: str, dependent: str, block: bool = True) -> dict[str, Any]:
    made = await client.create("v1", "configmaps", {"metadata": {"name": owner}, "data": {}}, "app")
    ref = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": owner,
        "uid": made["metadata"]["uid"],
        "blockOwnerDeletion": block,
    }
    body = {"metadata": {"name": dependent, "ownerReferences": [ref]}, "data": {}}
    return await client.create("v1", "configmaps", body, "app")


def test_background_foreground_and_orphan() -> None:
    async def flows() -> None:
        async with cluster() as client:
            await owned(client, "bg-owner", "bg-dep")
            await client.delete("v1", "configmaps", "bg-owner", "app", propagation_policy="Background")
            await eventually("bg-dep collected", lambda: _not(exists(client, "bg-dep")))

            await owned(client, "fg-owner", "fg-dep")
            held = await client.get("v1", "configmaps", "fg-dep", "app")
            held["metadata"]["finalizers"] = ["example.com/hold"]
            await client.update("v1", "configmaps", held, "app")
            await client.delete("v1", "configmaps", "fg-owner", "app", propagation_policy="Foreground")

            async def dependent_terminating() -> bool:
                dep = await client.get("v1", "configmaps", "fg-dep", "app")
                return bool(dep["metadata"].get("deletionTimestamp"))

            await eventually("fg-dep marked for deletion", dependent_terminating)
            owner = await client.get("v1", "configmaps", "fg-owner", "app")
            assert owner["metadata"]["finalizers"] == ["foregroundDeletion"]  # blocked by fg-dep
            await client.patch("v1", "configmaps", "fg-dep", {"metadata": {"finalizers": None}}, "app")
            await eventually("fg-owner gone after its dependent", lambda: _not(exists(client, "fg-owner")))

            await owned(client, "or-owner", "or-dep")
            await client.delete("v1", "configmaps", "or-owner", "app", propagation_policy="Orphan")
            await eventually("or-owner gone", lambda: _not(exists(client, "or-owner")))
            dep = await client.get("v1", "configmaps", "or-dep", "app")
            assert not dep["metadata"].get("ownerReferences")

    asyncio.run(flows())


def test_a_deleted_namespace_is_emptied_and_goes() -> None:
    async def flow() -> None:
        async with cluster() as client:
            await owned(client, "a", "b")
            await client.create("v1", "secrets", {"metadata": {"name": "s"}, "data": {}}, "app")
            await client.delete("v1", "namespaces", "app")
            await eventually("namespace app gone", lambda: _not(exists(client, "app", None, "namespaces")))
            for name in ("a", "b"):
                assert not await exists(client, name)
            assert not await exists(client, "s", plural="secrets")

    asyncio.run(flow())


async def _not(check: Awaitable[bool]) -> bool:
    return not await check
