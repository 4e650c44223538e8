"""The ReplicaSet controller's shell against a fake API: expectations, slow start, claims, events,
status writes, and what its informer handlers enqueue."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest

from cluster.client.errors import ApiError
from cluster.controllers.replicaset import ReplicaSetController
from cluster.controllers.replicaset.controller import SyncError
from cluster.controllers.runtime import ControllerContext, SharedInformers
from tests.cluster.controllers.fakes import FakeClock, FakeRecorder
from tests.cluster.controllers.replicaset.fake_api import FakeApi
from tests.cluster.controllers.replicaset.objects import NOW, controller_ref, make_pod, make_rs

KEY = "ns/web"
OURS = controller_ref()


class Harness:
    def __init__(self, rs: dict[str, Any] | None = None, *others: dict[str, Any]) -> None:
        self.clock = FakeClock(NOW)
        self.recorder = FakeRecorder()
        self.rs = rs if rs is not None else make_rs()
        self.api = FakeApi({r["metadata"]["name"]: copy.deepcopy(r) for r in (self.rs, *others)})
        ctx = ControllerContext(self.api, SharedInformers(None), self.clock, lambda _: self.recorder)  # type: ignore[arg-type]
        self.controller = ReplicaSetController(ctx)
        for r in (self.rs, *others):
            self.controller.replicasets.upsert(copy.deepcopy(r))

    def pods(self, *pods: dict[str, Any]) -> Harness:
        for pod in pods:
            self.api.add_pod(pod)
            self.controller.pods.upsert(copy.deepcopy(pod))
        return self

    def reconcile(self, key: str = KEY) -> float | None:
        return asyncio.run(self.controller.reconcile(key))

    def catch_up(self) -> None:
        """Deliver the server's pod changes through the handlers, as the informer would."""
        lister = self.controller.pods
        server = self.api.pods
        for key in list(lister.keys()):
            name = key.split("/", 1)[1]
            if name not in server:
                self.controller._pod_deleted(lister.remove(key) or {})
        for pod in server.values():
            old = lister.upsert(copy.deepcopy(pod))
            if old is None:
                self.controller._pod_added(pod)
            else:
                self.controller._pod_updated(old, pod)

    def queued(self) -> list[str]:
        async def drain() -> list[str]:
            keys = []
            while len(self.controller.queue):
                key = await self.controller.queue.get()
                self.controller.queue.done(key)
                keys.append(key)
            return keys

        return sorted(asyncio.run(drain()))

    def status_patches(self) -> list[dict[str, Any]]:
        return [self.api.replicasets["web"]["status"]] if self.api.patched("replicasets", "status") else []


def test_creates_missing_pods_from_template_in_slow_start_batches() -> None:
    h = Harness(make_rs(replicas=3, template_labels={"app": "web", "tier": "front"}))
    assert h.reconcile() is None
    created = h.api.made("create")
    assert len(created) == 3 and all(n.startswith("web-") for n in created)
    pod = h.api.pods[created[0]]
    assert pod["metadata"]["labels"] == {"app": "web", "tier": "front"}
    assert pod["metadata"]["ownerReferences"] == [OURS]
    assert h.recorder.events == [("Normal", "SuccessfulCreate", f"Created pod: {n}", KEY) for n in created]
    assert h.controller.expectations.pending(KEY) == (3, 0)
    assert h.api.replicasets["web"]["status"] == {"replicas": 0, "observedGeneration": 1}


def test_a_lagging_cache_never_creates_twice() -> None:
    h = Harness(make_rs(replicas=2))
    h.reconcile()
    h.reconcile()  # the informer has not delivered the two pods yet
    assert len(h.api.made("create")) == 2
    h.catch_up()
    assert h.controller.expectations.satisfied(KEY)
    assert h.queued() == [KEY]
    h.reconcile()
    assert len(h.api.made("create")) == 2
    assert h.api.replicasets["web"]["status"]["replicas"] == 2


def test_expectations_expire_after_five_minutes_of_silence() -> None:
    h = Harness(make_rs(replicas=1))
    h.reconcile()
    h.clock.advance(299)
    h.reconcile()
    assert len(h.api.made("create")) == 1
    h.clock.advance(2)  # the create event was lost: after 5 minutes the controller tries again
    h.reconcile()
    assert len(h.api.made("create")) == 2


def test_failed_create_stops_the_slow_start_and_sets_replica_failure() -> None:
    h = Harness(make_rs(replicas=5))
    h.api.create_error = ApiError(403, "Forbidden", 'pods "web-" is forbidden: exceeded quota: q')
    h.api.fail_creates_after = 1
    with pytest.raises(SyncError, match="exceeded quota"):
        h.reconcile()
    # batch 1 (one create) succeeded, batch 2 (two creates) failed, the rest never tried
    assert len(h.api.made("create")) == 1 and len(h.api.made("create-failed")) == 2
    assert h.controller.expectations.pending(KEY) == (1, 0)
    warnings = [e for e in h.recorder.events if e[0] == "Warning"]
    assert (
        warnings
        == [("Warning", "FailedCreate", 'Error creating: pods "web-" is forbidden: exceeded quota: q', KEY)]
        * 2
    )
    (condition,) = h.api.replicasets["web"]["status"]["conditions"]
    assert (condition["type"], condition["reason"], condition["status"]) == (
        "ReplicaFailure",
        "FailedCreate",
        "True",
    )
    assert condition["message"] == 'pods "web-" is forbidden: exceeded quota: q'

    h.api.create_error = None
    h.catch_up()
    h.controller.replicasets.upsert(copy.deepcopy(h.api.replicasets["web"]))
    h.reconcile()
    assert len(h.api.made("create")) == 5
    assert "conditions" not in h.api.replicasets["web"]["status"]  # success removes the condition


def test_terminating_namespace_is_not_a_failure() -> None:
    h = Harness(make_rs(replicas=2))
    h.api.create_error = ApiError(
        403,
        "Forbidden",
        "pods is forbidden: unable to create new content in namespace ns because it is being terminated",
    )
    h.api.fail_creates_after = 0
    h.reconcile()
    assert h.recorder.events == [] and "conditions" not in h.api.replicasets["web"]["status"]


def test_scale_down_deletes_ranked_pods_once() -> None:
    h = Harness(make_rs(replicas=1)).pods(
        make_pod("old", owner=OURS, ready_ago=5000, created_ago=5100),
        make_pod("new", owner=OURS, ready_ago=30, created_ago=40),
        make_pod("starting", owner=OURS, not_ready=True, created_ago=10),
    )
    h.reconcile()
    assert sorted(h.api.made("delete")) == ["new", "starting"]
    assert sorted(h.api.pods) == ["old"]
    assert sorted(e[2] for e in h.recorder.events) == ["Deleted pod: new", "Deleted pod: starting"]
    assert h.controller.expectations.pending(KEY) == (0, 2)
    h.reconcile()  # the cache still shows all three pods: no second round of deletes
    assert len(h.api.made("delete")) == 2
    h.catch_up()
    assert h.controller.expectations.satisfied(KEY)


def test_deleting_a_pod_already_gone_is_not_an_error() -> None:
    h = Harness(make_rs(replicas=0)).pods(make_pod("a", owner=OURS))
    del h.api.pods["a"]
    h.reconcile()
    assert h.recorder.events == [] and h.controller.expectations.satisfied(KEY)


def test_failed_delete_is_reported() -> None:
    h = Harness(make_rs(replicas=0)).pods(make_pod("a", owner=OURS))
    h.api.delete_error = ApiError(500, "InternalError", "etcd is sad")
    with pytest.raises(SyncError):
        h.reconcile()
    assert h.recorder.events == [("Warning", "FailedDelete", "Error deleting: etcd is sad", KEY)]
    assert h.api.replicasets["web"]["status"]["conditions"][0]["reason"] == "FailedDelete"
    assert h.controller.expectations.satisfied(KEY)


def test_adopts_orphans_and_releases_relabelled_pods() -> None:
    h = Harness(make_rs(replicas=2)).pods(
        make_pod("orphan"),
        make_pod("mine", owner=OURS),
        make_pod("relabelled", owner=OURS, labels={"app": "debug"}),
        make_pod("stranger", labels={"app": "other"}),
    )
    h.reconcile()
    assert h.api.pods["orphan"]["metadata"]["ownerReferences"] == [OURS]
    assert h.api.pods["relabelled"]["metadata"]["ownerReferences"] == []
    assert "ownerReferences" not in h.api.pods["stranger"]["metadata"]
    assert h.api.made("create") == [] and h.api.made("delete") == []  # adopted pod counts
    assert h.api.replicasets["web"]["status"]["replicas"] == 2


def test_adoption_skips_a_pod_recreated_under_the_same_name() -> None:
    h = Harness(make_rs(replicas=1)).pods(make_pod("orphan"))
    h.api.pods["orphan"]["metadata"]["uid"] = "a-new-pod"
    with pytest.raises(ApiError) as err:
        h.reconcile()
    assert err.value.status == 422 and "ownerReferences" not in h.api.pods["orphan"]["metadata"]


def test_a_replicaset_being_deleted_adopts_and_creates_nothing() -> None:
    h = Harness(make_rs(replicas=3, deleting=True)).pods(make_pod("orphan"))
    h.reconcile()
    assert "ownerReferences" not in h.api.pods["orphan"]["metadata"]
    assert h.api.made("create") == [] and h.api.made("get") == []


def test_adoption_rechecks_the_replicaset_past_the_cache() -> None:
    h = Harness(make_rs(replicas=1)).pods(make_pod("orphan"))
    h.api.replicasets["web"]["metadata"]["deletionTimestamp"] = "2026-12-05T12:00:00Z"  # the cache lags
    with pytest.raises(SyncError, match="has just been deleted"):
        h.reconcile()
    assert h.api.made("get") == ["replicasets"]
    assert "ownerReferences" not in h.api.pods["orphan"]["metadata"] and h.api.made("create") == []


@pytest.mark.parametrize(
    ("status", "writes"),
    [
        pytest.param(
            {
                "replicas": 1,
                "fullyLabeledReplicas": 1,
                "readyReplicas": 1,
                "availableReplicas": 1,
                "observedGeneration": 1,
            },
            0,
            id="unchanged-not-written",
        ),
        pytest.param(
            {"replicas": 1, "fullyLabeledReplicas": 1, "observedGeneration": 1}, 1, id="ready-changed"
        ),
    ],
)
def test_status_written_only_when_changed(status: dict[str, Any], writes: int) -> None:
    h = Harness(make_rs(replicas=1, status=status)).pods(make_pod("a", owner=OURS, ready_ago=60))
    h.reconcile()
    assert len(h.api.patched("replicasets", "status")) == writes
    assert h.api.replicasets["web"]["status"]["readyReplicas"] == 1


def test_min_ready_seconds_asks_to_look_again() -> None:
    h = Harness(make_rs(replicas=1, min_ready=10)).pods(make_pod("a", owner=OURS, ready_ago=4))
    assert h.reconcile() == 7.0
    assert h.api.replicasets["web"]["status"]["readyReplicas"] == 1
    assert "availableReplicas" not in h.api.replicasets["web"]["status"]


def test_scale_down_of_a_deployment_replicaset_weighs_sibling_pods() -> None:
    rs = make_rs(replicas=1, owner_uid="deploy-1")
    sibling = make_rs(
        "web-old", uid="rs-old", owner_uid="deploy-1", selector={"matchLabels": {"app": "web-old"}}
    )
    h = Harness(rs, sibling).pods(
        make_pod("crowded", owner=OURS, node="n1", ready_ago=9000),
        make_pod("alone", owner=OURS, node="n2", ready_ago=10),
        make_pod(
            "old-1", owner=controller_ref(uid="rs-old", name="web-old"), labels={"app": "web-old"}, node="n1"
        ),
    )
    h.reconcile()
    assert h.api.made("delete") == ["crowded"]


def test_missing_replicaset_forgets_expectations() -> None:
    h = Harness(make_rs(replicas=1))
    h.reconcile()
    assert not h.controller.expectations.satisfied(KEY)
    assert h.reconcile("ns/gone") is None
    h.controller.replicasets.remove(KEY)
    h.reconcile()
    assert h.controller.expectations.pending(KEY) == (0, 0)


# -- handlers ---------------------------------------------------------------------------------------

OTHER_RS = make_rs("api", uid="rs-api", selector={"matchLabels": {"tier": "back"}})


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        pytest.param(("add", make_pod("p", owner=OURS)), [KEY], id="owned-add"),
        pytest.param(("add", make_pod("p")), [KEY], id="orphan-add-wakes-matching-rs"),
        pytest.param(
            ("add", make_pod("p", labels={"app": "web", "tier": "back"})),
            ["ns/api", KEY],
            id="orphan-two-match",
        ),
        pytest.param(("add", make_pod("p", labels={"app": "none"})), [], id="orphan-no-match"),
        pytest.param(("add", make_pod("p", owner=controller_ref(uid="stale"))), [], id="ref-to-an-older-rs"),
        pytest.param(
            ("add", make_pod("p", owner=controller_ref(kind="StatefulSet"))), [], id="ref-to-other-kind"
        ),
        pytest.param(
            ("update", make_pod("p", owner=OURS), make_pod("p", owner=OURS)), [], id="resync-same-rv"
        ),
        pytest.param(
            (
                "update",
                make_pod("p", owner=OURS),
                make_pod("p", owner=OURS, ready_ago=1, resource_version="8"),
            ),
            [KEY],
            id="owned-status-change",
        ),
        pytest.param(
            (
                "update",
                make_pod("p", labels={"tier": "x"}),
                make_pod("p", labels={"tier": "back"}, resource_version="8"),
            ),
            ["ns/api"],
            id="orphan-relabelled-into-a-selector",
        ),
        pytest.param(
            ("update", make_pod("p"), make_pod("p", ready_ago=1, resource_version="8")),
            [],
            id="orphan-status-change-ignored",
        ),
        pytest.param(
            ("update", make_pod("p", owner=OURS), make_pod("p", resource_version="8")),
            [KEY],
            id="released-wakes-the-old-owner",
        ),
        pytest.param(("delete", make_pod("p", owner=OURS)), [KEY], id="owned-delete"),
        pytest.param(("delete", make_pod("p")), [], id="orphan-delete"),
    ],
)
def test_pod_events_enqueue(event: tuple[Any, ...], expected: list[str]) -> None:
    h = Harness(make_rs(), OTHER_RS)
    kind, *pods = event
    handler = {
        "add": h.controller._pod_added,
        "update": h.controller._pod_updated,
        "delete": h.controller._pod_deleted,
    }
    handler[kind](*pods)
    assert h.queued() == expected


def test_pod_events_lower_expectations() -> None:
    h = Harness(make_rs(replicas=2))
    h.controller.expectations.expect_creations(KEY, 1)
    h.controller.expectations.expect_deletions(KEY, ["uid-b", "uid-c"])
    h.controller._pod_added(make_pod("a", owner=OURS))
    h.controller._pod_added(make_pod("b", owner=OURS, deleting=True))  # first seen terminating: a deletion
    h.controller._pod_updated(
        make_pod("c", owner=OURS), make_pod("c", owner=OURS, deleting=True, resource_version="9")
    )
    assert h.controller.expectations.satisfied(KEY)


def test_replicaset_events() -> None:
    h = Harness(make_rs())
    h.controller.expectations.expect_creations(KEY, 2)
    recreated = make_rs(uid="rs-uid-2")
    h.controller._rs_updated(make_rs(), recreated)
    assert h.controller.expectations.satisfied(KEY) and h.queued() == [KEY]
    h.controller.expectations.expect_creations(KEY, 2)
    h.controller._rs_deleted(recreated)
    assert h.controller.expectations.satisfied(KEY) and h.queued() == [KEY]
