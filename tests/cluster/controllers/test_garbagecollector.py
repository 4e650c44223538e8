"""The garbage collector: the uid-keyed graph, the decision for a dependent from its owners' states,
and whole propagation flows (Background, Foreground with blockOwnerDeletion, Orphan) against an
in-memory API whose changes are fed back as informer events."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest

from cluster.controllers.discovery import APIResource, RESTMapper, discover
from cluster.controllers.garbagecollector import GarbageCollector
from cluster.controllers.garbagecollector.graph import (
    Delete,
    Graph,
    Keep,
    Node,
    OwnerRef,
    OwnerState,
    PatchOwners,
    dependent_action,
    owner_state,
    patched_owner_references,
)
from cluster.controllers.runtime import ControllerContext, SharedInformers
from tests.cluster.controllers.fake_client import FakeClient
from tests.cluster.controllers.fakes import FakeClock, FakeRecorder

CONFIGMAPS = APIResource("v1", "configmaps", "ConfigMap", True, frozenset({"list", "watch", "delete", "get"}))
NODES = APIResource("v1", "nodes", "Node", False, frozenset({"list", "watch", "delete", "get"}))
REPLICASETS = APIResource(
    "apps/v1", "replicasets", "ReplicaSet", True, frozenset({"list", "watch", "delete", "get"})
)


def ref(owner: str, block: bool = False, kind: str = "ConfigMap", api: str = "v1") -> dict[str, Any]:
    return {
        "apiVersion": api,
        "kind": kind,
        "name": owner,
        "uid": f"uid-{owner}",
        "blockOwnerDeletion": block,
    }


def cm(
    name: str, *owners: dict[str, Any], finalizers: list[str] | None = None, deleting: bool = False
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": "ns", "uid": f"uid-{name}"}
    if owners:
        meta["ownerReferences"] = list(owners)
    if finalizers:
        meta["finalizers"] = finalizers
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta}


# -- the graph ---------------------------------------------------------------------------------------


def test_graph_links_dependents_by_owner_uid_and_forgets_them() -> None:
    graph = Graph()
    assert graph.observe(Node.of(CONFIGMAPS, cm("owner"))) == set()  # no owners, not deleting
    assert graph.observe(Node.of(CONFIGMAPS, cm("a", ref("owner", block=True)))) == {"uid-a"}
    graph.observe(Node.of(CONFIGMAPS, cm("b", ref("owner"))))
    assert [d.name for d in graph.dependents("uid-owner")] == ["a", "b"]
    assert [d.name for d in graph.blocking_dependents("uid-owner")] == ["a"]
    graph.observe(Node.of(CONFIGMAPS, cm("b")))  # b dropped its reference
    assert [d.name for d in graph.dependents("uid-owner")] == ["a"]
    assert graph.forget("uid-owner") == {"uid-a"}  # the dependent must be looked at
    assert graph.get("uid-owner") is None and graph.get("uid-a") is not None


def test_a_dependent_change_wakes_its_owner_only_while_it_deletes_dependents() -> None:
    graph = Graph()
    graph.observe(Node.of(CONFIGMAPS, cm("owner")))
    assert graph.observe(Node.of(CONFIGMAPS, cm("a", ref("owner", block=True)))) == {"uid-a"}
    deleting = cm("owner", finalizers=["foregroundDeletion"], deleting=True)
    assert graph.observe(Node.of(CONFIGMAPS, deleting)) == {"uid-owner"}
    assert graph.forget("uid-a") == {"uid-owner"}


# -- decisions ------------------------------------------------------------------------------------------

A = OwnerRef("a", "v1", "ConfigMap", "a")
B = OwnerRef("b", "v1", "ConfigMap", "b")
S, X, W = OwnerState.SOLID, OwnerState.ABSENT, OwnerState.WAITING


@pytest.mark.parametrize(
    ("owners", "states", "has_dependents", "finalizers", "expected"),
    [
        pytest.param((A,), {"a": S}, False, (), Keep(), id="solid-owner-keeps"),
        pytest.param((A,), {"a": X}, False, (), Delete("Background"), id="absent-owner-background"),
        pytest.param((A, B), {"a": X, "b": X}, False, (), Delete("Background"), id="all-absent"),
        pytest.param(
            (A, B),
            {"a": S, "b": X},
            False,
            (),
            PatchOwners(frozenset({"b"}), frozenset()),
            id="one-solid-drops-dangling",
        ),
        pytest.param(
            (A, B),
            {"a": S, "b": W},
            False,
            (),
            PatchOwners(frozenset(), frozenset({"b"})),
            id="solid-unblocks-waiting",
        ),
        pytest.param((A,), {"a": W}, False, (), Delete("Background"), id="waiting-owner-leaf-dependent"),
        pytest.param(
            (A,), {"a": W}, True, (), Delete("Foreground"), id="waiting-owner-dependent-with-dependents"
        ),
        pytest.param((A,), {"a": X}, False, ("orphan",), Delete("Orphan"), id="own-orphan-finalizer"),
        pytest.param(
            (A,),
            {"a": X},
            False,
            ("foregroundDeletion",),
            Delete("Foreground"),
            id="own-foreground-finalizer",
        ),
        pytest.param((), {}, False, (), Keep(), id="no-owners"),
    ],
)
def test_dependent_action(
    owners: tuple[OwnerRef, ...],
    states: dict[str, OwnerState],
    has_dependents: bool,
    finalizers: tuple[str, ...],
    expected: object,
) -> None:
    assert dependent_action(owners, states, has_dependents=has_dependents, finalizers=finalizers) == expected


@pytest.mark.parametrize(
    ("live", "expected"),
    [
        pytest.param(None, X, id="not-found"),
        pytest.param(cm("a"), X, id="same-name-other-uid"),  # uid-a vs the reference's "a"
        pytest.param({"metadata": {"uid": "a"}}, S, id="exists"),
        pytest.param(
            {"metadata": {"uid": "a", "deletionTimestamp": "t"}}, S, id="background-deleting-is-solid"
        ),
        pytest.param(
            {"metadata": {"uid": "a", "deletionTimestamp": "t", "finalizers": ["foregroundDeletion"]}},
            W,
            id="foreground-deleting-waits",
        ),
    ],
)
def test_owner_state(live: dict[str, Any] | None, expected: OwnerState) -> None:
    assert owner_state(A, live) is expected


def test_patched_owner_references() -> None:
    refs = [ref("a", block=True), ref("b", block=True), ref("c")]
    out = patched_owner_references(refs, frozenset({"uid-c"}), frozenset({"uid-b"}))
    assert [(r["name"], r["blockOwnerDeletion"]) for r in out] == [("a", True), ("b", False)]


# -- flows against an in-memory API -------------------------------------------------------------------


class Cluster:
    """A FakeClient whose changes reach the collector as informer events would."""

    def __init__(self) -> None:
        self.client = FakeClient()
        ctx = ControllerContext(
            self.client,  # type: ignore[arg-type]
            SharedInformers(self.client),  # type: ignore[arg-type]
            FakeClock(),
            lambda _: FakeRecorder(),
        )
        self.gc = GarbageCollector(ctx)
        self.gc.mapper = RESTMapper([CONFIGMAPS, NODES, REPLICASETS])
        self.seen: dict[str, dict[str, Any]] = {}

    def put(self, obj: dict[str, Any], resource: APIResource = CONFIGMAPS) -> None:
        self.client.put(resource.group_version, resource.plural, obj)

    def names(self) -> set[str]:
        return {name for (_, _, _, name) in self.client.objects}

    def _feed(self) -> None:
        current = {}
        for (gv, plural, _, _), obj in self.client.objects.items():
            resource = next(
                r for r in (CONFIGMAPS, NODES, REPLICASETS) if (r.group_version, r.plural) == (gv, plural)
            )
            current[obj["metadata"]["uid"]] = (resource, obj)
        for uid in list(self.seen):
            if uid not in current:
                del self.seen[uid]
                self.gc._enqueue_all(self.gc.graph.forget(uid))
        for uid, (resource, obj) in current.items():
            if self.seen.get(uid) != obj:
                self.seen[uid] = copy.deepcopy(obj)
                self.gc._enqueue_all(self.gc.graph.observe(Node.of(resource, obj)))

    def settle(self, rounds: int = 20) -> None:
        async def run() -> None:
            for _ in range(rounds):
                self._feed()
                if not len(self.gc.queue):
                    return
                while len(self.gc.queue):
                    key = await self.gc.queue.get()
                    try:
                        await self.gc.reconcile(key)
                    finally:
                        self.gc.queue.done(key)
            raise AssertionError("the collector did not settle")

        asyncio.run(run())

    def delete(self, name: str, policy: str) -> None:
        asyncio.run(self.client.delete("v1", "configmaps", name, "ns", propagation_policy=policy))


def test_background_collects_dependents_of_a_deleted_owner_and_keeps_others() -> None:
    c = Cluster()
    c.put(cm("owner"))
    c.put(cm("dep", ref("owner")))
    c.put(cm("grandchild", ref("dep")))
    c.put(cm("other"))
    c.settle()
    assert c.names() == {"owner", "dep", "grandchild", "other"}
    assert c.client.writes("get") == []  # nothing to verify while every owner is in the cache
    assert c.client.writes("delete") == []
    c.delete("owner", "Background")
    c.settle()
    assert c.names() == {"other"}


def test_an_owner_missing_from_the_cache_is_read_live_before_anything_is_deleted() -> None:
    c = Cluster()
    c.put(cm("dep", ref("fresh")))
    c.put(cm("fresh"))  # created, but its event has not reached the graph yet: feed only the dependent
    dep = c.client.stored("v1", "configmaps", "dep", "ns")
    assert dep is not None
    c.gc.graph.observe(Node.of(CONFIGMAPS, dep))
    asyncio.run(c.gc.reconcile("uid-dep"))
    assert ("get", "v1", "configmaps", "ns", "fresh") in c.client.calls
    assert c.names() == {"dep", "fresh"}


def test_an_owner_recreated_with_another_uid_counts_as_gone() -> None:
    c = Cluster()
    c.put(cm("dep", ref("owner")))
    c.put({**cm("owner"), "metadata": {**cm("owner")["metadata"], "uid": "uid-new"}})
    c.settle()
    assert c.names() == {"owner"}


def test_foreground_deletes_dependents_then_drops_the_finalizer() -> None:
    c = Cluster()
    c.put(cm("owner"))
    c.put(cm("blocker", ref("owner", block=True)))
    c.put(cm("loose", ref("owner")))
    c.settle()
    c.delete("owner", "Foreground")
    owner = c.client.stored("v1", "configmaps", "owner", "ns")
    assert owner is not None and owner["metadata"]["finalizers"] == ["foregroundDeletion"]
    c.settle()
    assert c.names() == set()
    deletes = {call[4]: call[5] for call in c.client.writes("delete")}
    assert deletes["blocker"] == "Background" and deletes["loose"] == "Background"


def test_foreground_waits_for_a_blocking_dependent_with_its_own_finalizer() -> None:
    c = Cluster()
    c.put(cm("owner"))
    c.put(cm("stuck", ref("owner", block=True), finalizers=["example.com/hold"]))
    c.settle()
    c.delete("owner", "Foreground")
    c.settle()
    assert c.names() == {"owner", "stuck"}  # stuck is terminating but still blocks its owner
    stuck = c.client.stored("v1", "configmaps", "stuck", "ns")
    assert stuck is not None and stuck["metadata"].get("deletionTimestamp")
    stuck["metadata"]["finalizers"] = []
    asyncio.run(
        c.client.patch(
            "v1",
            "configmaps",
            "stuck",
            [{"op": "remove", "path": "/metadata/finalizers"}],
            "ns",
            patch_type="json",
        )
    )
    c.settle()
    assert c.names() == set()


def test_orphan_strips_the_reference_and_keeps_the_dependents() -> None:
    c = Cluster()
    c.put(cm("owner"))
    c.put(cm("dep", ref("owner", block=True), ref("other")))
    c.put(cm("other"))
    c.settle()
    c.delete("owner", "Orphan")
    c.settle()
    assert c.names() == {"dep", "other"}
    dep = c.client.stored("v1", "configmaps", "dep", "ns")
    assert dep is not None and [r["name"] for r in dep["metadata"]["ownerReferences"]] == ["other"]


def test_a_cluster_scoped_dependent_of_a_namespaced_owner_is_collected() -> None:
    c = Cluster()
    node = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": "n1", "uid": "uid-n1", "ownerReferences": [ref("cm")]},
    }
    c.put(node, NODES)
    c.settle()
    assert c.names() == set()


def test_an_unknown_owner_kind_is_never_collected() -> None:
    c = Cluster()
    c.put(cm("dep", ref("x", kind="Widget", api="example.com/v1")))
    c._feed()
    with pytest.raises(Exception, match="not served"):
        asyncio.run(c.gc.reconcile("uid-dep"))
    assert c.names() == {"dep"}


def test_discovery_picks_each_groups_preferred_version_and_skips_subresources() -> None:
    client = FakeClient()
    client.paths["/api/v1"] = {
        "groupVersion": "v1",
        "resources": [
            {"name": "pods", "kind": "Pod", "namespaced": True, "verbs": ["list", "watch", "delete"]},
            {"name": "pods/status", "kind": "Pod", "namespaced": True, "verbs": ["get"]},
        ],
    }
    client.paths["/apis"] = {
        "groups": [
            {"name": "apps", "preferredVersion": {"groupVersion": "apps/v1"}},
            {"name": "broken", "versions": [{"groupVersion": "broken/v1"}]},
        ]
    }
    client.paths["/apis/apps/v1"] = {
        "groupVersion": "apps/v1",
        "resources": [{"name": "replicasets", "kind": "ReplicaSet", "namespaced": True, "verbs": ["list"]}],
    }
    found = asyncio.run(discover(client))
    assert [str(r) for r in found.resources] == ["pods.", "replicasets.apps"]
    assert list(found.failed) == ["broken/v1"]
    mapper = RESTMapper(found.resources)
    assert mapper.resource_for("apps/v1beta2", "ReplicaSet") == found.resources[1]
    assert mapper.resource_for("v1", "Secret") is None
