"""The namespace controller: its status conditions (kube's types, reasons, messages) and the steps
of emptying a terminating namespace (pods first, counts, estimates, the finalize call)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from cluster.client.errors import ApiError
from cluster.controllers.discovery import APIResource, Discovery
from cluster.controllers.namespace import (
    CONTENT_FAILURE,
    CONTENT_REMAINING,
    DISCOVERY_FAILURE,
    FINALIZERS_REMAINING,
    GV_PARSING_FAILURE,
    MAX_RECHECK,
    ContentReport,
    NamespaceController,
    deletion_estimate,
    namespace_conditions,
    ordered,
    recheck_after,
)
from cluster.controllers.runtime import ControllerContext, SharedInformers
from cluster.machinery.times import rfc3339
from tests.cluster.controllers.fake_client import FakeClient
from tests.cluster.controllers.fakes import T0, FakeClock, FakeRecorder
from tests.cluster.controllers.local_apiserver import local_apiserver

VERBS = frozenset({"list", "delete", "watch", "get"})
PODS = APIResource("v1", "pods", "Pod", True, VERBS)
CONFIGMAPS = APIResource("v1", "configmaps", "ConfigMap", True, VERBS)
REPLICASETS = APIResource("apps/v1", "replicasets", "ReplicaSet", True, VERBS)
NODES = APIResource("v1", "nodes", "Node", False, VERBS)
BINDINGS = APIResource("v1", "bindings", "Binding", True, frozenset({"create"}))


def by_type(conditions: list[dict[str, Any]] | None) -> dict[str, tuple[str, str, str]]:
    assert conditions is not None
    return {c["type"]: (c["status"], c["reason"], c["message"]) for c in conditions}


@pytest.mark.parametrize(
    ("report", "expected"),
    [
        pytest.param(
            ContentReport(),
            {
                DISCOVERY_FAILURE: ("False", "ResourcesDiscovered", "All resources successfully discovered"),
                GV_PARSING_FAILURE: (
                    "False",
                    "ParsedGroupVersions",
                    "All legacy kube types successfully parsed",
                ),
                CONTENT_FAILURE: (
                    "False",
                    "ContentDeleted",
                    "All content successfully deleted, may be waiting on finalization",
                ),
                CONTENT_REMAINING: ("False", "ContentRemoved", "All content successfully removed"),
                FINALIZERS_REMAINING: (
                    "False",
                    "ContentHasNoFinalizers",
                    "All content-preserving finalizers finished",
                ),
            },
            id="all-clear",
        ),
        pytest.param(
            ContentReport(remaining={"pods.": 2, "replicasets.apps": 1, "configmaps.": 0}),
            {
                CONTENT_REMAINING: (
                    "True",
                    "SomeResourcesRemain",
                    "Some resources are remaining: pods. has 2 resource instances, "
                    "replicasets.apps has 1 resource instances",
                )
            },
            id="content-remaining-sorted",
        ),
        pytest.param(
            ContentReport(remaining={"pods.": 1}, finalizers={"example.com/hold": 1}),
            {
                FINALIZERS_REMAINING: (
                    "True",
                    "SomeFinalizersRemain",
                    "Some content in the namespace has finalizers remaining: "
                    "example.com/hold in 1 resource instances",
                )
            },
            id="finalizers-remaining",
        ),
        pytest.param(
            ContentReport(errors=["secrets.: forbidden", "configmaps.: boom"]),
            {
                CONTENT_FAILURE: (
                    "True",
                    "ContentDeletionFailed",
                    "Failed to delete all resource types, 2 remaining: "
                    "configmaps.: boom, secrets.: forbidden",
                )
            },
            id="content-failure",
        ),
        pytest.param(
            ContentReport(discovery_errors={"metrics.k8s.io/v1beta1": "503"}),
            {
                DISCOVERY_FAILURE: (
                    "True",
                    "DiscoveryFailed",
                    "Discovery failed for some groups, 1 failing: unable to retrieve the complete list of "
                    "server APIs: metrics.k8s.io/v1beta1: 503",
                )
            },
            id="discovery-failure",
        ),
    ],
)
def test_namespace_conditions(report: ContentReport, expected: dict[str, tuple[str, str, str]]) -> None:
    got = by_type(namespace_conditions([], report, T0))
    assert len(got) == 5
    for kind, value in expected.items():
        assert got[kind] == value


def test_condition_transition_time_moves_only_when_the_status_flips() -> None:
    first = namespace_conditions([], ContentReport(remaining={"pods.": 2}), T0)
    assert first is not None
    later = T0 + timedelta(seconds=30)
    fewer = namespace_conditions(first, ContentReport(remaining={"pods.": 1}), later)
    assert fewer is not None
    remaining = next(c for c in fewer if c["type"] == CONTENT_REMAINING)
    assert remaining["lastTransitionTime"] == rfc3339(T0)  # still True: only the message changed
    assert namespace_conditions(fewer, ContentReport(remaining={"pods.": 1}), later) is None  # nothing new
    cleared = namespace_conditions(fewer, ContentReport(), later)
    assert cleared is not None
    remaining = next(c for c in cleared if c["type"] == CONTENT_REMAINING)
    assert (remaining["status"], remaining["lastTransitionTime"]) == ("False", rfc3339(later))


def test_other_condition_types_are_kept() -> None:
    other = {"type": "example.com/Custom", "status": "True"}
    out = namespace_conditions([other], ContentReport(), T0)
    assert out is not None and out[0] == other and len(out) == 6


@pytest.mark.parametrize(
    ("obj", "seconds"),
    [
        pytest.param({"kind": "Pod", "metadata": {}, "spec": {}}, 30, id="pod-default-grace"),
        pytest.param(
            {"kind": "Pod", "metadata": {}, "spec": {"terminationGracePeriodSeconds": 5}},
            5,
            id="pod-own-grace",
        ),
        pytest.param(
            {"kind": "Pod", "metadata": {"deletionTimestamp": rfc3339(T0 + timedelta(seconds=12))}},
            12,
            id="terminating-pod-remaining-grace",
        ),
        pytest.param({"kind": "ConfigMap", "metadata": {}}, 0, id="plain-object"),
        pytest.param({"kind": "ConfigMap", "metadata": {"finalizers": ["x"]}}, 15, id="held-by-finalizer"),
    ],
)
def test_deletion_estimate(obj: dict[str, Any], seconds: float) -> None:
    assert deletion_estimate(obj, T0) == seconds


def test_recheck_follows_kube_and_is_capped() -> None:
    assert recheck_after(0) == 1 and recheck_after(4) == 3 and recheck_after(30) == MAX_RECHECK


def test_pods_are_their_own_first_step() -> None:
    assert ordered([CONFIGMAPS, PODS, REPLICASETS]) == [[PODS], [CONFIGMAPS, REPLICASETS]]
    assert ordered([CONFIGMAPS]) == [[CONFIGMAPS]]


# -- the controller over an in-memory API ---------------------------------------------------------------


class Harness:
    def __init__(self) -> None:
        self.clock = FakeClock(T0)
        self.client = FakeClient()
        informers = SharedInformers(self.client)  # type: ignore[arg-type]
        ctx = ControllerContext(self.client, informers, self.clock, lambda _: FakeRecorder())  # type: ignore[arg-type]
        self.controller = NamespaceController(ctx)
        self.controller.discovery = Discovery((PODS, CONFIGMAPS, REPLICASETS, NODES, BINDINGS))
        self.namespaces = informers.lister("v1", "namespaces")

    def namespace(self, name: str, deleting: bool = True) -> None:
        meta: dict[str, Any] = {"name": name}
        if deleting:
            meta["deletionTimestamp"] = rfc3339(T0)
        ns = {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": meta,
            "spec": {"finalizers": ["kubernetes"]},
        }
        self.client.put("v1", "namespaces", ns)
        self.namespaces.upsert(ns)

    def put(self, resource: APIResource, name: str, namespace: str = "doomed", **meta: Any) -> None:
        obj = {
            "apiVersion": resource.group_version,
            "kind": resource.kind,
            "metadata": {"name": name, "namespace": namespace, **meta},
        }
        if resource is PODS:
            obj["spec"] = {"containers": [], "terminationGracePeriodSeconds": 4}
        self.client.put(resource.group_version, resource.plural, obj)

    def reconcile(self, name: str = "doomed") -> float | None:
        return asyncio.run(self.controller.reconcile(name))

    def left(self, namespace: str = "doomed") -> set[str]:
        return {f"{p}/{n}" for (_, p, ns, n) in self.client.objects if ns == namespace}

    def finalized(self) -> list[tuple[Any, ...]]:
        return [c for c in self.client.writes("update") if c[5] == "finalize"]


def test_everything_in_the_namespace_goes_then_it_is_finalized() -> None:
    h = Harness()
    h.namespace("doomed")
    h.put(PODS, "p")
    h.put(CONFIGMAPS, "c")
    h.put(REPLICASETS, "rs")
    h.put(CONFIGMAPS, "elsewhere", namespace="kept")
    assert h.reconcile() is None
    assert h.left() == set() and h.left("kept") == {"configmaps/elsewhere"}
    (call,) = h.finalized()
    assert call[6]["spec"]["finalizers"] == []
    status = h.client.writes("patch")[-1][6]["status"]
    assert by_type(status["conditions"])[CONTENT_REMAINING][0] == "False"


def test_pods_held_back_keep_the_rest_until_they_are_gone() -> None:
    h = Harness()
    h.namespace("doomed")
    h.put(PODS, "slow", finalizers=["example.com/hold"])
    h.put(CONFIGMAPS, "c")
    delay = h.reconcile()
    assert delay == recheck_after(15)  # the finalizer's estimate
    assert h.left() == {"pods/slow", "configmaps/c"}  # the ConfigMap waits for the pods
    assert h.finalized() == []
    status = h.client.writes("patch")[-1][6]["status"]
    got = by_type(status["conditions"])
    assert got[CONTENT_REMAINING] == (
        "True",
        "SomeResourcesRemain",
        "Some resources are remaining: pods. has 1 resource instances",
    )
    assert got[FINALIZERS_REMAINING][0] == "True"
    pod = h.client.stored("v1", "pods", "slow", "doomed")
    assert pod is not None
    pod["metadata"]["finalizers"] = []
    del h.client.objects[("v1", "pods", "doomed", "slow")]  # its finalizer let go
    assert h.reconcile() is None
    assert h.left() == set() and len(h.finalized()) == 1


@pytest.mark.parametrize(
    "deleting", [pytest.param(False, id="active"), pytest.param(True, id="gone-from-api")]
)
def test_active_or_vanished_namespaces_are_left_alone(deleting: bool) -> None:
    h = Harness()
    h.namespace("doomed", deleting=deleting)
    h.put(CONFIGMAPS, "c")
    if deleting:
        del h.client.objects[("v1", "namespaces", None, "doomed")]
    assert h.reconcile() is None
    assert h.left() == {"configmaps/c"} and h.finalized() == []


# -- against the real API server (in process, over HTTP, no Ray) ----------------------------------------


def test_against_the_api_server_conditions_then_finalize_removes_the_namespace() -> None:
    """The paths the controller writes to (``namespaces/<n>/status``, ``namespaces/<n>/finalize``)
    and the deletions go through the real routes, registry and admission."""
    asyncio.run(_against_the_api_server())


async def _against_the_api_server() -> None:
    async with local_apiserver() as client:
        await client.create("v1", "namespaces", {"metadata": {"name": "doomed"}})
        held = {"metadata": {"name": "held", "finalizers": ["example.com/hold"]}, "data": {}}
        await client.create("v1", "configmaps", held, "doomed")
        await client.create("v1", "configmaps", {"metadata": {"name": "plain"}, "data": {}}, "doomed")
        await client.delete("v1", "namespaces", "doomed")
        informers = SharedInformers(client)
        ctx = ControllerContext(client, informers, FakeClock(T0), lambda _: FakeRecorder())
        controller = NamespaceController(ctx)
        await controller.prepare()  # real discovery
        informers.lister("v1", "namespaces").upsert(await client.get("v1", "namespaces", "doomed"))

        assert await controller.reconcile("doomed") == recheck_after(15)
        ns = await client.get("v1", "namespaces", "doomed")
        got = by_type(ns["status"]["conditions"])
        assert got[CONTENT_REMAINING] == (
            "True",
            "SomeResourcesRemain",
            "Some resources are remaining: configmaps. has 1 resource instances",
        )
        remaining = await client.list("v1", "configmaps", "doomed")
        assert [c["metadata"]["name"] for c in remaining["items"]] == ["held"]

        await client.patch("v1", "configmaps", "held", {"metadata": {"finalizers": None}}, "doomed")
        assert await controller.reconcile("doomed") is None
        with pytest.raises(ApiError) as gone:
            await client.get("v1", "namespaces", "doomed")
        assert gone.value.status == 404
