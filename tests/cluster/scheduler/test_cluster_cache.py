"""The scheduler's live cache: every pod counted once, on the right node, through every event order."""

from __future__ import annotations

from typing import Any

from cluster.scheduler.framework.columns import NodeColumns
from cluster.scheduler.scheduler import ClusterCache


def node(name: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "status": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"}},
    }


def pod(name: str, node_name: str = "", cpu: str = "1") -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "c", "resources": {"requests": {"cpu": cpu}}}]}
    if node_name:
        spec["nodeName"] = node_name
    return {"metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}"}, "spec": spec}


def counted(cache: ClusterCache) -> dict[str, list[str]]:
    """Node -> names of the pods the snapshot counts there; also checks the columns agree."""
    snapshot = cache.snapshot()
    fresh = NodeColumns(snapshot.node_infos)
    assert (snapshot.columns().req_cpu == fresh.req_cpu).all()
    assert (snapshot.columns().pod_count == fresh.pod_count).all()
    return {info.name: sorted(p["metadata"]["name"] for p in info.pods) for info in snapshot.node_infos}


def test_assumed_then_confirmed_counts_once() -> None:
    cache = ClusterCache()
    cache.set_node(node("n1"))
    cache.snapshot().assume(pod("a"), "n1")  # what schedule_one does
    cache.assume(pod("a"), "n1")
    assert counted(cache) == {"n1": ["a"]}
    assert cache.set_pod(pod("a", "n1")) is False  # the informer's confirmation replaces the copy
    assert counted(cache) == {"n1": ["a"]} and not cache.assumed
    cache.set_pod(pod("a", "n1", cpu="2"))  # a later update of the same pod
    assert counted(cache) == {"n1": ["a"]}
    assert cache.snapshot().get("n1").requested.milli_cpu == 2000  # type: ignore[union-attr]


def test_failed_binding_forgets_the_assumption() -> None:
    cache = ClusterCache()
    cache.set_node(node("n1"))
    cache.snapshot().assume(pod("a"), "n1")
    cache.assume(pod("a"), "n1")
    cache.forget(pod("a"), "n1")
    assert counted(cache) == {"n1": []} and not cache.assumed


def test_pod_before_its_node_and_node_removal() -> None:
    cache = ClusterCache()
    assert cache.set_pod(pod("early", "n2")) is True
    cache.set_node(node("n1"))
    assert counted(cache) == {"n1": []}
    cache.set_node(node("n2"))
    assert counted(cache) == {"n1": [], "n2": ["early"]}
    cache.remove_node("n2")
    assert counted(cache) == {"n1": []}
    cache.set_node(node("n2"))  # back again: its pods are counted again
    assert counted(cache) == {"n1": [], "n2": ["early"]}
    assert cache.remove_pod("uid-early") is True and cache.remove_pod("uid-early") is False
    assert counted(cache) == {"n1": [], "n2": []}


def test_nodes_stay_sorted_by_name() -> None:
    cache = ClusterCache()
    for name in ("n3", "n1", "n2"):
        cache.set_node(node(name))
    assert [info.name for info in cache.snapshot().node_infos] == ["n1", "n2", "n3"]
