"""The DaemonSet controller's shell against an in-memory API: pods created pinned to their nodes with
events, a revision recorded, status written; nodes leaving, a rolling update, adoption, OnDelete."""

from __future__ import annotations

import asyncio
import copy
import itertools
from collections.abc import Iterator
from typing import Any

import pytest

from cluster.client.errors import ApiError
from cluster.client.lister import split_key
from cluster.controllers.daemonset import DaemonSetController
from cluster.controllers.daemonset.eligibility import target_node_name
from cluster.controllers.runtime import ControllerContext, SharedInformers
from cluster.machinery.times import rfc3339
from tests.cluster.controllers.daemonset.objects import make_ds, make_node
from tests.cluster.controllers.fakes import FakeClock, FakeRecorder

Obj = dict[str, Any]
RESOURCES = {"pods": "v1", "nodes": "v1", "daemonsets": "apps/v1", "controllerrevisions": "apps/v1"}


def merge(target: Obj, patch: Obj) -> Obj:
    out = copy.deepcopy(target)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


class FakeApi:
    """The few ApiClient calls the controller makes, over dicts; every write reaches the informers
    as the watch event the real server would send (``Informer._apply``)."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.objects: dict[tuple[str, str | None, str], Obj] = {}
        self.informers: SharedInformers | None = None
        self.deleted: list[tuple[str, str, int | None]] = []
        self._ids = itertools.count(1)

    def _emit(self, kind: str, plural: str, obj: Obj) -> None:
        assert self.informers is not None
        self.informers.informer(RESOURCES[plural], plural)._apply(
            {"type": kind, "object": copy.deepcopy(obj)}
        )

    def put(self, plural: str, obj: Obj) -> Obj:
        """Seed or overwrite an object (as another client would)."""
        obj = copy.deepcopy(obj)
        meta = obj["metadata"]
        meta.setdefault("uid", f"uid-{meta['name']}")
        meta.setdefault("creationTimestamp", rfc3339(self.clock.now()))
        kind = "MODIFIED" if (plural, meta.get("namespace"), meta["name"]) in self.objects else "ADDED"
        self.objects[(plural, meta.get("namespace"), meta["name"])] = obj
        self._emit(kind, plural, obj)
        return obj

    def remove(self, plural: str, namespace: str | None, name: str) -> None:
        obj = self.objects.pop((plural, namespace, name))
        self._emit("DELETED", plural, obj)

    def of(self, plural: str) -> list[Obj]:
        return [o for (p, _, _), o in sorted(self.objects.items(), key=lambda kv: str(kv[0])) if p == plural]

    async def create(self, group_version: str, plural: str, body: Obj, namespace: str | None = None) -> Obj:
        obj = copy.deepcopy(body)
        meta = obj["metadata"]
        if not meta.get("name"):
            meta["name"] = f"{meta['generateName']}{next(self._ids):05d}"
        if (plural, namespace, meta["name"]) in self.objects:
            raise ApiError(409, "AlreadyExists", f"{plural} {meta['name']} already exists")
        meta["uid"] = f"uid-{meta['name']}"
        self.clock.advance(1)  # distinct creation times, so "oldest" means something
        return self.put(plural, obj)

    async def get(self, group_version: str, plural: str, name: str, namespace: str | None = None) -> Obj:
        try:
            return copy.deepcopy(self.objects[(plural, namespace, name)])
        except KeyError:
            raise ApiError(404, "NotFound", f"{plural} {name} not found") from None

    async def patch(
        self,
        group_version: str,
        plural: str,
        name: str,
        patch: Obj,
        namespace: str | None = None,
        *,
        subresource: str | None = None,
    ) -> Obj:
        current = await self.get(group_version, plural, name, namespace)
        if subresource == "status":
            patch = {"status": patch["status"]}
        return self.put(plural, merge(current, patch))

    async def delete(
        self,
        group_version: str,
        plural: str,
        name: str,
        namespace: str | None = None,
        *,
        grace_period_seconds: int | None = None,
        preconditions: Obj | None = None,
    ) -> Obj:
        current = await self.get(group_version, plural, name, namespace)
        if preconditions and preconditions.get("uid") != current["metadata"]["uid"]:
            raise ApiError(409, "Conflict", "precondition failed")
        self.deleted.append((plural, name, grace_period_seconds))
        self.remove(plural, namespace, name)
        return current


class Harness:
    def __init__(self) -> None:
        self.clock = FakeClock()
        self.api = FakeApi(self.clock)
        self.recorder = FakeRecorder()
        informers = SharedInformers(self.api)  # type: ignore[arg-type]
        self.api.informers = informers
        ctx = ControllerContext(self.api, informers, self.clock, lambda _: self.recorder)  # type: ignore[arg-type]
        self.controller = DaemonSetController(ctx)

    def sync(self, key: str = "ns/agent", times: int = 1) -> float | None:
        again = None
        for _ in range(times):
            again = asyncio.run(self.controller.reconcile(key))
        return again

    def pods(self) -> list[Obj]:
        return self.api.of("pods")

    def pods_on(self) -> dict[str, str]:
        """node -> pod name."""
        return {str(target_node_name(p)): p["metadata"]["name"] for p in self.pods()}

    def bind_and_run(self) -> None:
        """What the scheduler and the kubelet do: bind each pod to its pinned node, make it Ready."""
        for pod in self.pods():
            pod = copy.deepcopy(pod)
            pod["spec"]["nodeName"] = target_node_name(pod)
            pod["status"] = {
                "phase": "Running",
                "conditions": [
                    {"type": "Ready", "status": "True", "lastTransitionTime": rfc3339(self.clock.now())}
                ],
            }
            self.api.put("pods", pod)

    def status(self, name: str = "agent") -> Obj:
        return dict(self.api.objects[("daemonsets", "ns", name)].get("status") or {})


@pytest.fixture
def h() -> Iterator[Harness]:
    yield Harness()


def test_one_pod_per_node_pinned_with_events_revision_and_status(h: Harness) -> None:
    for name in ("n1", "n2"):
        h.api.put("nodes", make_node(name))
    h.api.put("daemonsets", make_ds())
    h.sync()
    assert sorted(h.pods_on()) == ["n1", "n2"]
    revisions = h.api.of("controllerrevisions")
    assert len(revisions) == 1 and revisions[0]["revision"] == 1
    hash_ = revisions[0]["metadata"]["labels"]["controller-revision-hash"]
    for pod in h.pods():
        assert pod["metadata"]["labels"]["controller-revision-hash"] == hash_
        assert pod["metadata"]["generateName"] == "agent-"
        assert "nodeName" not in pod["spec"]
        tolerations = {(t["key"], t["effect"]) for t in pod["spec"]["tolerations"]}
        assert ("node.kubernetes.io/unreachable", "NoExecute") in tolerations
    created = sorted(p["metadata"]["name"] for p in h.pods())
    assert sorted(m for _, r, m, _ in h.recorder.events if r == "SuccessfulCreate") == [
        f"Created pod: {n}" for n in created
    ]
    assert h.status()["desiredNumberScheduled"] == 2 and h.status()["observedGeneration"] == 1
    h.bind_and_run()
    h.sync()
    assert h.status() == {
        "desiredNumberScheduled": 2,
        "currentNumberScheduled": 2,
        "numberMisscheduled": 0,
        "numberReady": 2,
        "numberAvailable": 2,
        "numberUnavailable": 0,
        "updatedNumberScheduled": 2,
        "observedGeneration": 1,
    }
    h.sync()  # settled: nothing more happens
    assert len(h.pods()) == 2 and len(h.api.of("controllerrevisions")) == 1


def test_nodes_joining_changing_and_leaving(h: Harness) -> None:
    h.api.put("nodes", make_node("n1"))
    h.api.put("daemonsets", make_ds(pod_spec={"containers": [], "nodeSelector": {"agent": "yes"}}))
    h.sync()
    assert h.pods() == []
    h.api.put("nodes", make_node("n1", {"agent": "yes"}))  # labelled: now eligible
    h.api.put("nodes", make_node("n2", {"agent": "yes"}))  # joins
    h.sync()
    assert sorted(h.pods_on()) == ["n1", "n2"]
    h.bind_and_run()
    h.sync()
    on_n1 = h.pods_on()["n1"]
    h.api.put("nodes", make_node("n1"))  # label removed: the pod goes
    h.sync()
    assert ("pods", on_n1, None) in h.api.deleted
    on_n2 = h.pods_on()["n2"]
    h.api.remove("nodes", None, "n2")  # the Node is deleted: its bound pod is removed at once
    h.sync()
    assert ("pods", on_n2, 0) in h.api.deleted
    assert h.pods() == []
    assert [m for _, r, m, _ in h.recorder.events if r == "SuccessfulDelete"] == [
        f"Deleted pod: {on_n1}",
        f"Deleted pod: {on_n2}",
    ]


def test_rolling_update_replaces_one_pod_at_a_time(h: Harness) -> None:
    for name in ("n1", "n2", "n3"):
        h.api.put("nodes", make_node(name))
    ds = make_ds()
    h.api.put("daemonsets", ds)
    h.sync()
    h.bind_and_run()
    h.sync()
    first = set(h.pods_on().values())
    ds = copy.deepcopy(h.api.objects[("daemonsets", "ns", "agent")])
    ds["spec"]["template"]["spec"]["containers"] = [{"name": "c", "image": "busybox:2"}]
    ds["metadata"]["generation"] = 2
    h.api.put("daemonsets", ds)
    h.sync()
    assert len(h.pods()) == 2  # maxUnavailable 1: one old pod deleted
    revisions = sorted(h.api.of("controllerrevisions"), key=lambda r: r["revision"])
    assert [r["revision"] for r in revisions] == [1, 2]
    new_hash = revisions[1]["metadata"]["labels"]["controller-revision-hash"]
    for _ in range(6):  # replacement created, bound, ready; next old pod goes ...
        h.sync()
        h.bind_and_run()
    assert len(h.pods()) == 3 and not first & set(h.pods_on().values())
    assert all(p["metadata"]["labels"]["controller-revision-hash"] == new_hash for p in h.pods())
    h.sync()
    assert h.status()["updatedNumberScheduled"] == 3 and h.status()["observedGeneration"] == 2


def test_on_delete_waits_for_the_user(h: Harness) -> None:
    h.api.put("nodes", make_node("n1"))
    h.api.put("daemonsets", make_ds(strategy={"type": "OnDelete"}))
    h.sync()
    h.bind_and_run()
    ds = copy.deepcopy(h.api.objects[("daemonsets", "ns", "agent")])
    ds["spec"]["template"]["spec"]["containers"] = [{"name": "c", "image": "busybox:2"}]
    h.api.put("daemonsets", ds)
    h.sync(times=2)
    (pod,) = h.pods()
    assert h.status()["updatedNumberScheduled"] == 0
    h.api.remove("pods", "ns", pod["metadata"]["name"])
    h.sync()
    (replacement,) = h.pods()
    assert (
        replacement["metadata"]["labels"]["controller-revision-hash"]
        != pod["metadata"]["labels"]["controller-revision-hash"]
    )


def test_orphan_adopted_and_non_matching_pod_released(h: Harness) -> None:
    h.api.put("nodes", make_node("n1"))
    # OnDelete: an adopted pod without the current revision's hash would otherwise be rolled
    ds = h.api.put("daemonsets", make_ds(strategy={"type": "OnDelete"}))
    orphan = {
        "metadata": {"name": "stray", "namespace": "ns", "labels": {"app": "agent"}},
        "spec": {"nodeName": "n1", "containers": []},
        "status": {"phase": "Running"},
    }
    h.api.put("pods", orphan)
    h.sync()
    (pod,) = h.pods()  # adopted, so no second pod for n1
    assert pod["metadata"]["name"] == "stray"
    assert pod["metadata"]["ownerReferences"][0]["uid"] == ds["metadata"]["uid"]
    relabelled = copy.deepcopy(pod)
    relabelled["metadata"]["labels"] = {"app": "other"}
    h.api.put("pods", relabelled)
    h.sync()
    assert "ownerReferences" not in h.api.objects[("pods", "ns", "stray")]["metadata"]
    assert len(h.pods()) == 2  # released, and n1 gets a pod of its own


def test_failed_pod_recreated_with_event(h: Harness) -> None:
    h.api.put("nodes", make_node("n1"))
    h.api.put("daemonsets", make_ds())
    h.sync()
    (pod,) = h.pods()
    failed = copy.deepcopy(pod)
    failed["spec"]["nodeName"] = "n1"
    failed["status"] = {"phase": "Failed"}
    h.api.put("pods", failed)
    h.sync(times=2)
    (replacement,) = h.pods()
    assert replacement["metadata"]["name"] != pod["metadata"]["name"]
    assert (
        "Warning",
        "FailedDaemonPod",
        f"Found failed daemon pod ns/{pod['metadata']['name']} on node n1, will try to kill it",
        "ns/agent",
    ) in h.recorder.events


def test_selecting_everything_is_refused(h: Harness) -> None:
    h.api.put("nodes", make_node("n1"))
    ds = make_ds()
    ds["spec"]["selector"] = {}
    h.api.put("daemonsets", ds)
    assert h.sync() is None
    assert h.pods() == []
    assert h.recorder.reasons() == ["SelectingAll"]


def test_deleted_daemon_set_is_forgotten(h: Harness) -> None:
    assert h.sync("ns/missing") is None
    assert split_key("ns/missing") == ("ns", "missing")
