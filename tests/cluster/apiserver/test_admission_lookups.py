"""The registry's admission wiring end to end on a store: a pod gets its ServiceAccount's token
volume, a create is charged to the namespace's quota in the store (and refused over it), and a node
may not delete another node's pod (NodeRestriction runs on DELETE)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from cluster.apiserver.auth.user import NODES, UserInfo
from cluster.apiserver.context import set_user
from cluster.apiserver.errors import StatusError
from cluster.apiserver.registry import Registry
from cluster.apiserver.resources import lookup
from cluster.apiserver.storage import ObjectStore
from tests.cluster.apiserver.faulty_store import FaultyStore

PODS = lookup("", "v1", "pods")
assert PODS is not None


def registry(**objects: dict[str, Any]) -> tuple[Registry, FaultyStore]:
    store = FaultyStore()
    store.put_object("/registry/namespaces/team", {"metadata": {"name": "team"}, "status": {}})
    for key, obj in objects.items():
        store.put_object(key, obj)
    reg = Registry(
        ObjectStore(store),  # type: ignore[arg-type]
        clock=lambda: datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        service_accounts=True,
    )
    return reg, store


def pod(name: str, node: str = "") -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "c", "image": "busybox"}]}
    if node:
        spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


SA = {"/registry/serviceaccounts/team/default": {"metadata": {"name": "default", "namespace": "team"}}}


def test_a_pod_gets_its_token_volume() -> None:
    reg, _ = registry(**SA)
    created = asyncio.run(reg.create(PODS, "team", pod("web")))
    assert [v["name"][:16] for v in created["spec"]["volumes"]] == ["kube-api-access-"]


def test_creates_are_charged_to_the_quota_in_the_store() -> None:
    quota = {
        "metadata": {"name": "q", "namespace": "team"},
        "spec": {"hard": {"pods": "1"}},
        "status": {"hard": {"pods": "1"}, "used": {"pods": "0"}},
    }
    reg, store = registry(**SA, **{"/registry/resourcequotas/team/q": quota})
    asyncio.run(reg.create(PODS, "team", pod("one")))
    stored = store.object("/registry/resourcequotas/team/q")
    assert stored is not None and stored["status"]["used"] == {"pods": "1"}
    with pytest.raises(StatusError) as err:
        asyncio.run(reg.create(PODS, "team", pod("two")))
    assert err.value.message == (
        'pods "two" is forbidden: exceeded quota: q, requested: pods=1, used: pods=1, limited: pods=1'
    )


def test_a_node_cannot_delete_another_nodes_pod() -> None:
    reg, _ = registry(**SA)
    asyncio.run(reg.create(PODS, "team", pod("theirs", node="n2")))

    async def delete_as_node() -> None:
        set_user(UserInfo("system:node:n1", groups=(NODES,)))
        await reg.delete(PODS, "team", "theirs", {})

    with pytest.raises(StatusError) as err:
        asyncio.run(delete_as_node())
    assert (
        err.value.message
        == 'pods "theirs" is forbidden: node "n1" can only delete pods with spec.nodeName set to itself'
    )
