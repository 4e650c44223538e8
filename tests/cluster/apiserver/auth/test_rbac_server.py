"""The API server with its default authorizers (Node,RBAC) and the default policy reconciled at
start: the local admin (system:masters) is allowed through the cluster-admin binding, a user is
allowed exactly what its bindings grant, and the policy is complete again after a restart."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp.test_utils import TestServer

from cluster.apiserver.auth.authorizer import Decision
from cluster.apiserver.auth.request_info import attributes
from cluster.apiserver.auth.user import UserInfo
from cluster.apiserver.server import ApiServer
from cluster.client.rest import ApiClient
from tests.cluster.controllers.local_apiserver import WatchableStore

RBAC = "rbac.authorization.k8s.io/v1"


def run(scenario: Callable[[ApiServer, ApiClient], Awaitable[Any]], store: Any = None) -> Any:
    async def go() -> Any:
        api = ApiServer(store or WatchableStore())
        server = TestServer(api.app(insecure_local=True))
        await server.start_server()
        client = ApiClient(str(server.make_url("")))
        try:
            return await scenario(api, client)
        finally:
            await client.close()
            await server.close()

    return asyncio.run(go())


def decide(api: ApiServer, user: UserInfo, method: str, path: str) -> Decision:
    return api.authorizer.authorize(attributes(method, path, {}, user))[0]


def test_default_policy_and_bindings_decide() -> None:
    alice = UserInfo("alice", groups=("system:authenticated",))
    anonymous = UserInfo("system:anonymous", groups=("system:unauthenticated",))

    async def scenario(api: ApiServer, client: ApiClient) -> dict[str, Any]:
        roles = await client.list(RBAC, "clusterroles")
        names = {r["metadata"]["name"] for r in roles["items"]}
        before = decide(api, alice, "GET", "/api/v1/namespaces/dev/pods")
        await client.create("v1", "namespaces", {"metadata": {"name": "dev"}})
        await client.create(
            RBAC,
            "roles",
            {
                "metadata": {"name": "pod-reader"},
                "rules": [{"apiGroups": [""], "resources": ["pods", "pods/log"], "verbs": ["get", "list"]}],
            },
            "dev",
        )
        await client.create(
            RBAC,
            "rolebindings",
            {
                "metadata": {"name": "alice-reads"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pod-reader"},
                "subjects": [{"kind": "User", "name": "alice", "apiGroup": "rbac.authorization.k8s.io"}],
            },
            "dev",
        )
        await client.list("v1", "pods", "dev")  # the admin itself, through cluster-admin
        await client.list(RBAC, "roles", "dev")  # the watch cache (and RBAC's index) has them now
        await client.list(RBAC, "rolebindings", "dev")
        return {
            "names": names,
            "before": before,
            "list": decide(api, alice, "GET", "/api/v1/namespaces/dev/pods"),
            "log": decide(api, alice, "GET", "/api/v1/namespaces/dev/pods/p/log"),
            "exec": decide(api, alice, "POST", "/api/v1/namespaces/dev/pods/p/exec"),
            "other-ns": decide(api, alice, "GET", "/api/v1/namespaces/prod/pods"),
            "delete": decide(api, alice, "DELETE", "/api/v1/namespaces/dev/pods/p"),
            "version": decide(api, anonymous, "GET", "/version"),
            "anon-pods": decide(api, anonymous, "GET", "/api/v1/namespaces/dev/pods"),
            "anon-api": decide(api, anonymous, "GET", "/api"),
            "alice-api": decide(api, alice, "GET", "/apis/apps/v1"),
        }

    got = run(scenario)
    assert {
        "cluster-admin",
        "admin",
        "edit",
        "view",
        "system:node",
        "system:controller:job-controller",
    } <= got["names"]
    assert got["before"] is Decision.NO_OPINION
    assert (got["list"], got["log"]) == (Decision.ALLOW, Decision.ALLOW)
    assert got["exec"] is Decision.NO_OPINION
    assert got["other-ns"] is Decision.NO_OPINION
    assert got["delete"] is Decision.NO_OPINION
    assert got["version"] is Decision.ALLOW
    assert got["anon-pods"] is Decision.NO_OPINION
    assert got["anon-api"] is Decision.NO_OPINION  # discovery is for authenticated users only
    assert got["alice-api"] is Decision.ALLOW


def test_a_restart_puts_back_what_the_default_policy_lost() -> None:
    store = WatchableStore()

    async def damage(api: ApiServer, client: ApiClient) -> None:
        role = await client.get(RBAC, "clusterroles", "system:basic-user")
        role["rules"] = role["rules"][:1]
        await client.update(RBAC, "clusterroles", role)
        await client.delete(RBAC, "clusterrolebindings", "system:discovery")

    async def look(api: ApiServer, client: ApiClient) -> tuple[Any, Any]:
        role = await client.get(RBAC, "clusterroles", "system:basic-user")
        binding = await client.get(RBAC, "clusterrolebindings", "system:discovery")
        return role["rules"], binding["subjects"]

    run(damage, store)
    rules, subjects = run(look, store)
    assert {
        "apiGroups": ["authentication.k8s.io"],
        "resources": ["selfsubjectreviews"],
        "verbs": ["create"],
    } in rules
    assert [s["name"] for s in subjects] == ["system:authenticated"]
