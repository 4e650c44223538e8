"""Lister: keys, namespace and custom indexes kept in step through upsert/remove/replace."""

from __future__ import annotations

from typing import Any

import pytest

from cluster.client.lister import DeletedFinalStateUnknown, Lister, object_key, split_key


def obj(name: str, namespace: str | None = "default", node: str = "", **labels: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": labels}
    if namespace:
        meta["namespace"] = namespace
    return {"metadata": meta, "spec": {"nodeName": node}}


def by_node(o: dict[str, Any]) -> list[str]:
    return [o["spec"]["nodeName"]] if o["spec"]["nodeName"] else []


@pytest.mark.parametrize(
    ("o", "key", "split"),
    [
        pytest.param(obj("a"), "default/a", ("default", "a"), id="namespaced"),
        pytest.param(obj("n1", None), "n1", (None, "n1"), id="cluster-scoped"),
    ],
)
def test_keys(o: dict[str, Any], key: str, split: tuple[str | None, str]) -> None:
    assert object_key(o) == key and split_key(key) == split


def test_get_list_and_namespace_index() -> None:
    store = Lister()
    for o in (obj("b", app="web"), obj("a", app="db"), obj("c", "kube-system", app="web"), obj("n1", None)):
        store.upsert(o)
    assert store.get("default", "a")["metadata"]["labels"] == {"app": "db"}
    assert store.get(None, "n1") is not None and store.get("default", "zzz") is None
    assert [object_key(o) for o in store.list()] == ["default/a", "default/b", "kube-system/c", "n1"]
    assert [object_key(o) for o in store.list("default")] == ["default/a", "default/b"]
    assert [object_key(o) for o in store.list(label_selector="app=web")] == ["default/b", "kube-system/c"]
    assert [object_key(o) for o in store.list("default", {"matchLabels": {"app": "web"}})] == ["default/b"]
    assert [object_key(o) for o in store.by_index("namespace", "kube-system")] == ["kube-system/c"]
    assert len(store) == 4 and "default/a" in store


@pytest.mark.parametrize(
    ("ops", "expected"),
    [
        pytest.param([("upsert", obj("a", node="n1"))], {"n1": ["default/a"]}, id="add"),
        pytest.param(
            [("upsert", obj("a", node="n1")), ("upsert", obj("a", node="n2"))],
            {"n2": ["default/a"]},
            id="move-drops-old-value",
        ),
        pytest.param([("upsert", obj("a", node="n1")), ("remove", "default/a")], {}, id="remove"),
        pytest.param(
            [("upsert", obj("a", node="n1")), ("upsert", obj("b", node="n1")), ("remove", "default/a")],
            {"n1": ["default/b"]},
            id="remove-one-of-two",
        ),
        pytest.param(
            [("upsert", obj("a", node="n1")), ("replace", [obj("b", node="n3"), obj("c")])],
            {"n3": ["default/b"]},
            id="replace-rebuilds",
        ),
        pytest.param([("upsert", obj("a")), ("remove", "default/missing")], {}, id="unindexed-and-missing"),
    ],
)
def test_custom_index_stays_consistent(ops: list[tuple[str, Any]], expected: dict[str, list[str]]) -> None:
    store = Lister()
    store.add_index("node", by_node)
    for op, arg in ops:
        getattr(store, op)(arg)
    for node in ("n1", "n2", "n3"):
        assert store.index_keys("node", node) == expected.get(node, [])


def test_index_added_late_covers_existing_objects_and_unknown_index_raises() -> None:
    store = Lister()
    store.upsert(obj("a", node="n1"))
    store.add_index("node", by_node)
    assert [object_key(o) for o in store.by_index("node", "n1")] == ["default/a"]
    with pytest.raises(KeyError):
        store.by_index("nope", "x")


def test_upsert_and_remove_return_previous() -> None:
    store = Lister()
    first = obj("a")
    assert store.upsert(first) is None
    assert store.upsert(obj("a", app="x")) is first
    assert store.remove("default/a")["metadata"]["labels"] == {"app": "x"}
    assert store.remove("default/a") is None


def test_tombstone_is_the_last_known_object() -> None:
    last = obj("a", app="web")
    tomb = DeletedFinalStateUnknown("default/a", last)
    assert tomb == last and tomb.key == "default/a" and isinstance(tomb, dict)
