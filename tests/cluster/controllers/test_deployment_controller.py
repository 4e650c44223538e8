"""The Deployment controller's shell against a fake API: ReplicaSets created and scaled through a
whole rollout (a simulated ReplicaSet controller makes pods available), revisions, rollbacks,
scaling, Recreate, pause, adoption, history clean-up, events and what the handlers enqueue."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest

from cluster.client.errors import ApiError
from cluster.controllers.deployment import DeploymentController
from cluster.controllers.deployment.revision import (
    DESIRED_REPLICAS_ANNOTATION,
    MAX_REPLICAS_ANNOTATION,
    POD_TEMPLATE_HASH_LABEL,
    REVISION_ANNOTATION,
    REVISION_HISTORY_ANNOTATION,
)
from cluster.controllers.runtime import ControllerContext, SharedInformers
from cluster.machinery.times import rfc3339
from tests.cluster.controllers.fake_client import FakeClient
from tests.cluster.controllers.fakes import FakeClock, FakeRecorder

APPS = "apps/v1"
NS = "ns"


def template(command: str = "sleep 3600", **annotations: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"labels": {"app": "web"}}
    if annotations:
        meta["annotations"] = annotations
    return {
        "metadata": meta,
        "spec": {"containers": [{"name": "c", "image": "busybox", "command": ["sh", "-c", command]}]},
    }


def deployment(replicas: int = 3, *, strategy: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": APPS,
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": NS, "generation": 1},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": template(),
            "strategy": strategy
            or {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "revisionHistoryLimit": 10,
            "progressDeadlineSeconds": 600,
            **spec,
        },
    }


class StampingClient(FakeClient):
    """The fake API plus what the real one stamps on create: a creation time and generation 1."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__()
        self.clock = clock

    async def create(
        self, gv: str, plural: str, body: dict[str, Any], namespace: str | None = None, **kw: Any
    ) -> Any:
        body = copy.deepcopy(body)
        if self.stored(gv, plural, body["metadata"]["name"], namespace) is not None:
            raise ApiError(409, "AlreadyExists", f'{plural} "{body["metadata"]["name"]}" already exists')
        body["metadata"].setdefault("creationTimestamp", rfc3339(self.clock.now()))
        body["metadata"].setdefault("generation", 1)
        return await super().create(gv, plural, body, namespace, **kw)


class Harness:
    def __init__(self, d: dict[str, Any]) -> None:
        self.clock = FakeClock()
        self.recorder = FakeRecorder()
        self.api = StampingClient(self.clock)
        self.api.put(APPS, "deployments", copy.deepcopy(d))
        ctx = ControllerContext(self.api, SharedInformers(None), self.clock, lambda _: self.recorder)  # type: ignore[arg-type]
        self.controller = DeploymentController(ctx)
        self.sync_caches()

    # the informers' view of the fake API
    def sync_caches(self) -> None:
        for plural, lister in (
            ("deployments", self.controller.deployments),
            ("replicasets", self.controller.replicasets),
            ("pods", self.controller.pods),
        ):
            lister.replace([copy.deepcopy(o) for (g, p, _, _), o in self.api.objects.items() if p == plural])

    def reconcile(self) -> float | None:
        self.sync_caches()
        return asyncio.run(self.controller.reconcile(f"{NS}/web"))

    def d(self) -> dict[str, Any]:
        obj = self.api.stored(APPS, "deployments", "web", NS)
        assert obj is not None
        return obj

    def rss(self) -> dict[str, dict[str, Any]]:
        return {k[3]: o for k, o in self.api.objects.items() if k[1] == "replicasets"}

    def sizes(self) -> dict[str, int]:
        return {name: rs["spec"]["replicas"] for name, rs in sorted(self.rss().items())}

    def edit(self, **spec: Any) -> None:
        d = self.d()
        d["spec"].update(spec)
        d["metadata"]["generation"] += 1

    def replicaset_controller(self, available: bool = True) -> None:
        """What the ReplicaSet controller and the kubelets would report: every ReplicaSet runs
        its ``spec.replicas`` pods (available, or only running)."""
        for rs in self.rss().values():
            n = rs["spec"]["replicas"]
            rs["status"] = {
                "replicas": n,
                "readyReplicas": n if available else 0,
                "availableReplicas": n if available else 0,
                "observedGeneration": rs["metadata"].get("generation", 1),
            }

    def settle(self, passes: int = 30) -> list[dict[str, int]]:
        """Alternate controller passes and ReplicaSet reports until nothing changes."""
        trace: list[dict[str, int]] = []
        for _ in range(passes):
            before = copy.deepcopy(self.api.objects)
            self.reconcile()
            self.replicaset_controller()
            trace.append(self.sizes())
            if self.api.objects == before:
                return trace
        raise AssertionError(f"did not settle: {trace[-3:]}")

    def progressing(self) -> tuple[str, str]:
        cond = {c["type"]: c for c in self.d()["status"].get("conditions", [])}["Progressing"]
        return cond["status"], cond["reason"]

    def scaling_events(self) -> list[str]:
        return [m for _, reason, m, _ in self.recorder.events if reason == "ScalingReplicaSet"]


def test_new_deployment_creates_its_replica_set() -> None:
    h = Harness(deployment())
    h.reconcile()
    [(name, rs)] = h.rss().items()
    pod_hash = rs["metadata"]["labels"][POD_TEMPLATE_HASH_LABEL]
    assert name == f"web-{pod_hash}"
    assert rs["spec"]["selector"]["matchLabels"] == {"app": "web", POD_TEMPLATE_HASH_LABEL: pod_hash}
    assert rs["spec"]["template"]["metadata"]["labels"] == {"app": "web", POD_TEMPLATE_HASH_LABEL: pod_hash}
    assert rs["spec"]["replicas"] == 3
    annotations = rs["metadata"]["annotations"]
    assert (
        annotations[REVISION_ANNOTATION],
        annotations[DESIRED_REPLICAS_ANNOTATION],
        annotations[MAX_REPLICAS_ANNOTATION],
    ) == (
        "1",
        "3",
        "4",
    )
    [ref] = rs["metadata"]["ownerReferences"]
    assert (ref["kind"], ref["name"], ref["controller"]) == ("Deployment", "web", True)
    assert h.d()["metadata"]["annotations"][REVISION_ANNOTATION] == "1"
    assert h.progressing() == ("True", "NewReplicaSetCreated")
    assert h.scaling_events() == [f"Scaled up replica set {name} from 0 to 3"]


def test_becomes_available_and_complete() -> None:
    h = Harness(deployment())
    h.settle()
    status = h.d()["status"]
    assert {
        k: status.get(k) for k in ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas")
    } == dict.fromkeys(("replicas", "updatedReplicas", "readyReplicas", "availableReplicas"), 3)
    assert status["observedGeneration"] == 1
    assert h.progressing() == ("True", "NewReplicaSetAvailable")
    conds = {c["type"]: c["reason"] for c in status["conditions"]}
    assert conds["Available"] == "MinimumReplicasAvailable"


def test_template_change_rolls_one_by_one_and_keeps_three_available() -> None:
    h = Harness(deployment())
    h.settle()
    first = next(iter(h.rss()))
    h.edit(template=template("sleep 7200"))
    trace = h.settle()
    second = next(n for n in h.rss() if n != first)
    # maxSurge 1, maxUnavailable 0: never more than 4 pods and never fewer than 3 (all available here).
    assert all(3 <= sum(sizes.values()) <= 4 for sizes in trace)
    assert h.sizes() == {first: 0, second: 3} or h.sizes() == {second: 3, first: 0}
    assert h.rss()[second]["metadata"]["annotations"][REVISION_ANNOTATION] == "2"
    assert h.d()["metadata"]["annotations"][REVISION_ANNOTATION] == "2"
    assert h.progressing() == ("True", "NewReplicaSetAvailable")
    assert h.scaling_events()[1:] == [
        f"Scaled up replica set {second} from 0 to 1",
        f"Scaled down replica set {first} from 3 to 2",
        f"Scaled up replica set {second} from 1 to 2",
        f"Scaled down replica set {first} from 2 to 1",
        f"Scaled up replica set {second} from 2 to 3",
        f"Scaled down replica set {first} from 1 to 0",
    ]


def test_rollback_reuses_the_old_replica_set_and_records_history() -> None:
    h = Harness(deployment())
    h.settle()
    first = next(iter(h.rss()))
    h.edit(template=template("sleep 7200"))
    h.settle()
    # kubectl rollout undo: the old ReplicaSet's template (hash label removed) goes back in.
    h.edit(template=template())
    h.settle()
    assert len(h.rss()) == 2 and h.sizes()[first] == 3
    annotations = h.rss()[first]["metadata"]["annotations"]
    assert (annotations[REVISION_ANNOTATION], annotations[REVISION_HISTORY_ANNOTATION]) == ("3", "1")
    assert h.d()["metadata"]["annotations"][REVISION_ANNOTATION] == "3"


def test_scaling_in_place_and_mid_rollout() -> None:
    h = Harness(
        deployment(strategy={"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}})
    )
    h.settle()
    [name] = h.rss()
    h.edit(replicas=5)
    h.settle()
    assert h.sizes() == {name: 5}
    assert h.rss()[name]["metadata"]["annotations"][DESIRED_REPLICAS_ANNOTATION] == "5"
    assert "Scaled up replica set " + name + " from 3 to 5" in h.scaling_events()
    h.edit(replicas=2)
    h.settle()
    assert h.sizes() == {name: 2}


def test_proportional_scaling_during_a_rollout() -> None:
    h = Harness(
        deployment(
            10, strategy={"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 5}}
        )
    )
    h.settle()
    h.edit(template=template("sleep 1"))
    h.reconcile()  # new ReplicaSet created with 0, old one down by 5
    h.replicaset_controller(available=False)
    h.reconcile()
    sizes_before = h.sizes()
    h.edit(replicas=20)
    h.reconcile()
    after = h.sizes()
    assert sum(after.values()) == 20 and sum(sizes_before.values()) == 10
    assert all(after[n] == 2 * sizes_before[n] for n in after)
    # Every active ReplicaSet now records the new size, so the next pass is no scaling event.
    assert {rs["metadata"]["annotations"][DESIRED_REPLICAS_ANNOTATION] for rs in h.rss().values()} == {"20"}
    h.replicaset_controller()
    h.settle()
    assert sorted(h.sizes().values()) == [0, 20]


def test_recreate_waits_for_old_pods() -> None:
    h = Harness(deployment(2, strategy={"type": "Recreate"}))
    h.settle()
    [first] = h.rss()
    h.edit(template=template("sleep 1"))
    h.reconcile()
    assert h.sizes() == {first: 0}  # old scaled down first, no new ReplicaSet yet
    # Its pods still run (the ReplicaSet controller has not reported yet): still no new ReplicaSet.
    h.reconcile()
    assert list(h.rss()) == [first]
    h.api.put("v1", "pods", {"metadata": {"name": "p", "namespace": NS, "ownerReferences": [
        {"kind": "ReplicaSet", "name": first, "uid": h.rss()[first]["metadata"]["uid"], "controller": True}
    ]}, "status": {"phase": "Running"}})  # fmt: skip
    h.replicaset_controller()  # the old ReplicaSet now reports 0 ... but one pod is still running
    h.reconcile()
    assert list(h.rss()) == [first]
    del h.api.objects[("v1", "pods", NS, "p")]
    h.reconcile()
    [second] = [n for n in h.rss() if n != first]
    assert h.sizes()[second] == 2


def test_recreate_ignores_finished_old_pods() -> None:
    h = Harness(deployment(1, strategy={"type": "Recreate"}))
    h.settle()
    [first] = h.rss()
    h.api.put("v1", "pods", {"metadata": {"name": "done", "namespace": NS, "ownerReferences": [
        {"kind": "ReplicaSet", "name": first, "uid": h.rss()[first]["metadata"]["uid"], "controller": True}
    ]}, "status": {"phase": "Succeeded"}})  # fmt: skip
    h.edit(template=template("sleep 1"))
    h.reconcile()
    h.replicaset_controller()
    h.reconcile()
    assert len(h.rss()) == 2


def test_hash_collision_bumps_collision_count_and_retries() -> None:
    h = Harness(deployment())
    h.reconcile()
    [(name, rs)] = h.rss().items()
    # Replace it by an unrelated ReplicaSet of the same name (not ours, not matching the selector).
    del h.api.objects[(APPS, "replicasets", NS, name)]
    squatter = copy.deepcopy(rs)
    squatter["metadata"].update(labels={"app": "other"}, ownerReferences=[])
    squatter["spec"]["template"] = template("something else")
    h.api.put(APPS, "replicasets", squatter)
    with pytest.raises(ApiError, match="already exists"):
        h.reconcile()
    assert h.d()["status"]["collisionCount"] == 1
    h.reconcile()
    names = set(h.rss())
    assert len(names) == 2 and name in names
    [new] = names - {name}
    assert h.rss()[new]["spec"]["replicas"] == 3


def test_pause_keeps_template_and_records_condition_then_resume_rolls() -> None:
    h = Harness(deployment())
    h.settle()
    h.edit(paused=True)
    h.reconcile()
    assert h.progressing() == ("Unknown", "DeploymentPaused")
    h.edit(template=template("sleep 5"))
    h.settle()
    assert len(h.rss()) == 1  # paused: no rollout
    h.edit(paused=False)
    h.reconcile()
    assert len(h.rss()) == 2
    h.settle()
    assert h.progressing() == ("True", "NewReplicaSetAvailable")


def test_history_limit_deletes_oldest_zero_replica_sets() -> None:
    h = Harness(deployment(1, revisionHistoryLimit=1))
    h.settle()
    for i in range(4):
        h.edit(template=template(f"sleep {i}"))
        h.settle()
    revisions = sorted(int(rs["metadata"]["annotations"][REVISION_ANNOTATION]) for rs in h.rss().values())
    assert revisions == [4, 5]


def test_adopts_orphans_and_releases_non_matching() -> None:
    h = Harness(deployment())
    orphan = {
        "apiVersion": APPS,
        "kind": "ReplicaSet",
        "metadata": {
            "name": "orphan",
            "namespace": NS,
            "labels": {"app": "web"},
            "creationTimestamp": rfc3339(h.clock.now()),
        },
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "web"}}, "template": template("other")},
    }
    h.api.put(APPS, "replicasets", orphan)
    stray = copy.deepcopy(orphan)
    stray["metadata"].update(name="stray", labels={"app": "other"}, ownerReferences=[
        {"kind": "Deployment", "name": "web", "uid": "uid-web", "controller": True}
    ])  # fmt: skip
    h.api.put(APPS, "replicasets", stray)
    h.reconcile()
    refs = {n: rs["metadata"].get("ownerReferences") for n, rs in h.rss().items()}
    assert refs["orphan"] and refs["orphan"][0]["uid"] == "uid-web"
    assert refs["stray"] == []


def test_selecting_all_is_a_warning() -> None:
    h = Harness(deployment(selector={}))
    assert h.reconcile() is None
    assert h.rss() == {}
    assert ("Warning", "SelectingAll") in {(t, r) for t, r, _, _ in h.recorder.events}


def test_stuck_rollout_is_rechecked_at_its_deadline_and_times_out() -> None:
    h = Harness(deployment(progressDeadlineSeconds=30))
    h.reconcile()
    h.replicaset_controller(available=False)
    h.reconcile()
    h.clock.advance(10)
    after = h.reconcile()
    assert after is not None and 0 < after <= 30
    h.clock.advance(after + 1)
    h.reconcile()
    assert h.progressing() == ("False", "ProgressDeadlineExceeded")


def test_handlers_enqueue_the_owning_deployment() -> None:
    h = Harness(deployment())
    h.reconcile()
    h.sync_caches()
    rs = next(iter(h.rss().values()))
    h.controller._rs_deleted(rs)
    orphan = {"metadata": {"name": "o", "namespace": NS, "labels": {"app": "web"}}}
    h.controller._rs_added(orphan)
    unrelated = {"metadata": {"name": "u", "namespace": NS, "labels": {"app": "db"}}}
    h.controller._rs_added(unrelated)

    async def drain() -> list[str]:
        keys = []
        while len(h.controller.queue):
            key = await h.controller.queue.get()
            h.controller.queue.done(key)
            keys.append(key)
        return keys

    assert asyncio.run(drain()) == [f"{NS}/web"]


def test_min_ready_seconds_follows_the_deployment() -> None:
    h = Harness(deployment(minReadySeconds=7))
    h.reconcile()
    [name] = h.rss()
    assert h.rss()[name]["spec"]["minReadySeconds"] == 7
    h.edit(minReadySeconds=2)
    h.reconcile()
    assert h.rss()[name]["spec"]["minReadySeconds"] == 2
    assert list(h.rss()) == [name]  # not a template change: same ReplicaSet
