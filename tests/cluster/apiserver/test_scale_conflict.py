"""PATCH .../scale that meets a conflict (a controller wrote the object's status in between) is
applied again to the object read anew, as kube-apiserver's update retry does: the request body is
read once, so the retry cannot find it empty (it did, and answered 500 "outcome unknown")."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp.test_utils import TestServer

from cluster.apiserver.errors import StatusError
from cluster.apiserver.server import ApiServer
from cluster.client.rest import ApiClient
from tests.cluster.controllers.local_apiserver import WatchableStore

DEPLOYMENT = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "web"},
    "spec": {
        "replicas": 1,
        "selector": {"matchLabels": {"app": "web"}},
        "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]},
        },
    },
}


def test_scale_patch_retries_after_a_conflict() -> None:
    async def scenario() -> tuple[dict[str, Any], int]:
        api = ApiServer(WatchableStore())  # type: ignore[arg-type]
        server = TestServer(api.app(insecure_local=True))
        await server.start_server()
        client = ApiClient(str(server.make_url("")))
        real_update = api.registry.update
        conflicts = 0

        async def update_conflicting_once(*args: Any, **kwargs: Any) -> Any:
            nonlocal conflicts
            if conflicts == 0:
                conflicts += 1
                raise StatusError(409, "Conflict", "the object has been modified")
            return await real_update(*args, **kwargs)

        try:
            await client.create("v1", "namespaces", {"metadata": {"name": "shop"}})
            await client.create("apps/v1", "deployments", DEPLOYMENT, "shop")
            api.registry.update = update_conflicting_once  # type: ignore[method-assign]
            scale = await client.patch(
                "apps/v1", "deployments", "web", {"spec": {"replicas": 3}}, "shop", subresource="scale"
            )
            api.registry.update = real_update  # type: ignore[method-assign]
            stored = await client.get("apps/v1", "deployments", "web", "shop")
            return {"scale": scale, "stored": stored}, conflicts
        finally:
            await client.close()
            await server.close()

    result, conflicts = asyncio.run(scenario())
    assert conflicts == 1
    assert result["scale"]["spec"]["replicas"] == 3
    assert result["stored"]["spec"]["replicas"] == 3
