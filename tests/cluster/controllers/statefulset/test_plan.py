"""The StatefulSet update plan: ordering, scale-down, rolling updates, claims and status."""

from __future__ import annotations

from typing import Any

import pytest

from cluster.controllers.statefulset import plan as sp
from cluster.controllers.statefulset.plan import Plan
from tests.cluster.controllers.fakes import FakeClock
from tests.cluster.controllers.statefulset.objects import (
    NOW,
    make_claim,
    make_pod,
    make_sts,
    ref,
    revs,
)


def summary(p: Plan) -> list[list[str]]:
    """Each group as ``["create db-0", ...]``."""
    return [[f"{s.action.split('_')[0]} {s.pod_name}" for s in group] for group in p.groups]


def flat(p: Plan) -> list[str]:
    return [item for group in summary(p) for item in group]


def pods_in(
    sts: dict[str, Any], states: dict[int, str], revision: str = "rev-busybox"
) -> list[dict[str, Any]]:
    return [make_pod(sts, o, state, revision=revision) for o, state in states.items()]


@pytest.mark.parametrize(
    ("states", "want", "waiting"),
    [
        pytest.param({}, ["create db-0"], "db-0 being created", id="empty-creates-db-0-only"),
        pytest.param({0: "pending"}, [], "db-0 not Running and Ready", id="waits-for-db-0-pending"),
        pytest.param({0: "running"}, [], "db-0 not Running and Ready", id="waits-for-db-0-not-ready"),
        pytest.param({0: "ready"}, ["create db-1"], "db-1 being created", id="db-0-ready-creates-db-1"),
        pytest.param({0: "ready", 1: "ready"}, ["create db-2"], "db-2 being created", id="then-db-2"),
        pytest.param({0: "ready", 1: "ready", 2: "ready"}, [], None, id="steady"),
        pytest.param(
            {0: "ready", 2: "ready"}, ["create db-1"], "db-1 being created", id="deleted-db-1-returns"
        ),
        pytest.param(
            {0: "failed", 1: "ready"}, ["delete db-0"], "db-0 failed: recreating", id="failed-deleted"
        ),
        pytest.param({0: "succeeded"}, ["delete db-0"], "db-0 succeeded: recreating", id="succeeded-deleted"),
        pytest.param({0: "ready", 1: "terminating"}, [], "db-1 terminating", id="waits-for-terminating"),
    ],
)
def test_ordered_ready_scale_up(states: dict[int, str], want: list[str], waiting: str | None) -> None:
    sts = make_sts(3)
    p = sp.plan(sts, pods_in(sts, states), revs(sts), {}, NOW)
    assert flat(p) == want
    assert p.waiting == waiting
    assert not p.concurrent


@pytest.mark.parametrize(
    ("states", "want"),
    [
        pytest.param({}, [["create db-0", "create db-1", "create db-2"]], id="all-at-once"),
        pytest.param({0: "pending", 1: "failed"}, [["delete db-1", "create db-2"]], id="no-waiting"),
        pytest.param({0: "ready", 1: "ready", 2: "ready"}, [], id="steady"),
    ],
)
def test_parallel_scale_up(states: dict[int, str], want: list[list[str]]) -> None:
    sts = make_sts(3, parallel=True)
    p = sp.plan(sts, pods_in(sts, states), revs(sts), {}, NOW)
    assert summary(p) == want
    assert p.concurrent


@pytest.mark.parametrize(
    ("replicas", "parallel", "states", "want", "waiting"),
    [
        pytest.param(
            1, False, {0: "ready", 1: "ready", 2: "ready"}, [["delete db-2"]], None, id="highest-first"
        ),
        pytest.param(1, False, {0: "ready", 1: "ready"}, [["delete db-1"]], None, id="then-next"),
        pytest.param(
            1,
            False,
            {0: "ready", 1: "ready", 2: "terminating-ready"},
            [],
            "db-2 terminating before scale down",
            id="one-at-a-time",
        ),
        pytest.param(
            1,
            False,
            {0: "ready", 1: "running", 2: "ready"},
            [["delete db-2"]],
            None,
            id="unhealthy-lower-does-not-block-higher",
        ),
        pytest.param(
            0,
            False,
            {0: "ready", 1: "ready", 2: "running"},
            [["delete db-2"]],
            None,
            id="first-unhealthy-may-go",
        ),
        pytest.param(
            1,
            False,
            {0: "running", 1: "ready", 2: "ready"},
            [],
            "db-0 not Running and Ready",
            id="blocked-by-unready-replica",
        ),
        pytest.param(
            1,
            True,
            {0: "ready", 1: "ready", 2: "running"},
            [["delete db-2", "delete db-1"]],
            None,
            id="parallel-all-at-once",
        ),
    ],
)
def test_scale_down(
    replicas: int, parallel: bool, states: dict[int, str], want: list[list[str]], waiting: str | None
) -> None:
    sts = make_sts(replicas, parallel=parallel)
    p = sp.plan(sts, pods_in(sts, states), revs(sts), {}, NOW)
    assert summary(p) == want
    assert p.waiting == waiting


def rolling(
    states: dict[int, tuple[str, str]], strategy: dict[str, Any] | None = None, parallel: bool = False
) -> Plan:
    old, new = (
        make_sts(3, image="busybox"),
        make_sts(3, image="busybox2", strategy=strategy, parallel=parallel),
    )
    pods = [make_pod(new, o, state, revision=f"rev-{image}") for o, (state, image) in states.items()]
    return sp.plan(new, pods, revs(old, new), {}, NOW)


OLD3 = {0: ("ready", "busybox"), 1: ("ready", "busybox"), 2: ("ready", "busybox")}


@pytest.mark.parametrize(
    ("states", "strategy", "want", "waiting"),
    [
        pytest.param(OLD3, None, ["delete db-2"], None, id="highest-ordinal-first"),
        pytest.param({**OLD3, 2: ("ready", "busybox2")}, None, ["delete db-1"], None, id="then-db-1"),
        pytest.param(
            {**OLD3, 2: ("running", "busybox2")},
            None,
            [],
            "db-2 not Running and Ready",
            id="waits-for-updated-ready",
        ),
        pytest.param(
            {0: ("ready", "busybox"), 1: ("ready", "busybox")},
            None,
            ["create db-2"],
            "db-2 being created",
            id="recreated-at-update-revision",
        ),
        pytest.param(
            {**OLD3, 2: ("ready", "busybox2")},
            {"type": "RollingUpdate", "rollingUpdate": {"partition": 2}},
            [],
            None,
            id="partition-holds-lower-ordinals",
        ),
        pytest.param(OLD3, {"type": "OnDelete"}, [], None, id="on-delete-never-deletes"),
        pytest.param(
            OLD3,
            {"type": "RollingUpdate", "rollingUpdate": {"partition": 0, "maxUnavailable": 2}},
            ["delete db-2", "delete db-1"],
            None,
            id="max-unavailable-2",
        ),
    ],
)
def test_rolling_update(
    states: dict[int, tuple[str, str]], strategy: dict[str, Any] | None, want: list[str], waiting: str | None
) -> None:
    p = rolling(states, strategy)
    assert flat(p) == want
    assert p.waiting == waiting


@pytest.mark.parametrize(
    ("states", "strategy", "want", "waiting"),
    [
        pytest.param(
            {**OLD3, 2: ("running", "busybox2")}, None, [], "db-2 updating", id="waits-for-updated-ready"
        ),
        pytest.param(
            {**OLD3, 2: ("running", "busybox2")},
            {"type": "RollingUpdate", "rollingUpdate": {"partition": 0, "maxUnavailable": "50%"}},
            ["delete db-1"],
            None,
            id="max-unavailable-percent-rounds-up-minus-unavailable",
        ),
        pytest.param(
            {**OLD3, 2: ("running", "busybox2")},
            {"type": "RollingUpdate", "rollingUpdate": {"partition": 0, "maxUnavailable": 1}},
            [],
            "1 unavailable, maxUnavailable 1",
            id="max-unavailable-used-up",
        ),
    ],
)
def test_parallel_rolling_update(
    states: dict[int, tuple[str, str]], strategy: dict[str, Any] | None, want: list[str], waiting: str | None
) -> None:
    p = rolling(states, strategy, parallel=True)
    assert flat(p) == want
    assert p.waiting == waiting


def test_rolling_update_deletion_counts_down_current_replicas() -> None:
    p = rolling(OLD3)
    assert p.status["currentReplicas"] == 2
    assert p.status["updatedReplicas"] == 0


@pytest.mark.parametrize(
    ("partition", "ordinal", "want_revision"),
    [
        pytest.param(2, 0, "rev-busybox", id="below-partition-current"),
        pytest.param(2, 2, "rev-busybox2", id="at-partition-update"),
        pytest.param(0, 0, "rev-busybox2", id="no-partition-update"),
    ],
)
def test_new_pod_revision(partition: int, ordinal: int, want_revision: str) -> None:
    old = make_sts(3)
    new = make_sts(
        3, image="busybox2", strategy={"type": "RollingUpdate", "rollingUpdate": {"partition": partition}}
    )
    pods = [make_pod(new, o, "ready", revision="rev-busybox") for o in range(3) if o != ordinal]
    p = sp.plan(new, pods, revs(old, new), {}, NOW)
    created = [s for s in p.steps if s.action == sp.CREATE_POD]
    assert [s.pod_name for s in created] == [f"db-{ordinal}"]
    labels = created[0].pod["metadata"]["labels"]
    assert labels["controller-revision-hash"] == want_revision
    image = created[0].pod["spec"]["containers"][0]["image"]
    assert image == want_revision.removeprefix("rev-")


def test_new_pod_identity_and_claims() -> None:
    sts = make_sts(3, claims=("data", "logs"))
    p = sp.plan(sts, [], revs(sts), {"logs-db-0": make_claim("logs-db-0")}, NOW)
    (step,) = p.steps
    pod = step.pod
    assert pod["metadata"]["name"] == "db-0"
    assert pod["metadata"]["labels"]["statefulset.kubernetes.io/pod-name"] == "db-0"
    assert pod["metadata"]["labels"]["apps.kubernetes.io/pod-index"] == "0"
    assert pod["spec"]["hostname"] == "db-0" and pod["spec"]["subdomain"] == "db-svc"
    assert pod["spec"]["volumes"] == [
        {"name": "data", "persistentVolumeClaim": {"claimName": "data-db-0"}},
        {"name": "logs", "persistentVolumeClaim": {"claimName": "logs-db-0"}},
    ]
    assert pod["metadata"]["ownerReferences"][0]["kind"] == "StatefulSet"
    # only the missing claim is created, before the pod, with the selector's labels
    assert [c["metadata"]["name"] for c in step.claims] == ["data-db-0"]
    assert step.claims[0]["metadata"]["labels"] == {"app": "db"}
    assert "ownerReferences" not in step.claims[0]["metadata"]


def test_pending_pod_gets_missing_claims() -> None:
    sts = make_sts(1, claims=("data",))
    p = sp.plan(sts, [make_pod(sts, 0, "pending")], revs(sts), {}, NOW)
    assert [(s.action, [c["metadata"]["name"] for c in s.claims]) for s in p.steps] == [
        (sp.CREATE_CLAIMS, ["data-db-0"])
    ]


def test_scale_down_never_deletes_claims() -> None:
    sts = make_sts(1, claims=("data",))
    pods = [make_pod(sts, o) for o in range(3)]
    claims = {f"data-db-{o}": make_claim(f"data-db-{o}") for o in range(3)}
    p = sp.plan(sts, pods, revs(sts), claims, NOW)
    assert flat(p) == ["delete db-2"]


@pytest.mark.parametrize(
    ("policy", "replicas", "ordinal", "owners", "want"),
    [
        pytest.param(("Retain", "Retain"), 3, 0, None, None, id="retain-retain-untouched"),
        pytest.param(
            ("Retain", "Delete"), 3, 0, None, [("StatefulSet", "sts-uid")], id="when-deleted-owns-by-set"
        ),
        pytest.param(("Delete", "Retain"), 3, 0, None, None, id="when-scaled-in-range-no-ref"),
        pytest.param(
            ("Delete", "Retain"), 1, 2, None, [("Pod", "pod-uid-2")], id="when-scaled-condemned-pod-ref"
        ),
        pytest.param(
            ("Delete", "Delete"), 3, 1, None, [("StatefulSet", "sts-uid")], id="both-in-range-set-ref"
        ),
        pytest.param(
            ("Delete", "Delete"),
            1,
            2,
            [("StatefulSet", "sts-uid")],
            [("Pod", "pod-uid-2")],
            id="both-condemned-set-ref-swapped-for-pod",
        ),
        pytest.param(
            ("Retain", "Retain"),
            3,
            0,
            [("StatefulSet", "sts-uid")],
            [],
            id="policy-back-to-retain-removes-ref",
        ),
    ],
)
def test_retention_owner_refs(
    policy: tuple[str, str],
    replicas: int,
    ordinal: int,
    owners: list[tuple[str, str]] | None,
    want: list[tuple[str, str]] | None,
) -> None:
    sts = make_sts(replicas, claims=("data",), retention=policy, parallel=True)
    pods = [make_pod(sts, o) for o in range(max(replicas, ordinal + 1))]
    name_of = {"StatefulSet": "db", "Pod": f"db-{ordinal}"}
    claims = {
        f"data-db-{o}": make_claim(
            f"data-db-{o}",
            [ref(k, name_of[k], u) for k, u in owners] if owners and o == ordinal else None,
        )
        for o in range(len(pods))
    }
    p = sp.plan(sts, pods, revs(sts), claims, NOW)
    updates = {s.claim["metadata"]["name"]: s for s in p.steps if s.action == sp.UPDATE_CLAIM and s.claim}
    step = updates.get(f"data-db-{ordinal}")
    if want is None:
        assert step is None
    else:
        assert step is not None
        assert [(r["kind"], r["uid"]) for r in step.owner_refs] == want
        assert all(r["controller"] for r in step.owner_refs)


def test_stale_claim_blocks_creation() -> None:
    sts = make_sts(1, claims=("data",), retention=("Delete", "Retain"))
    claims = {"data-db-0": make_claim("data-db-0", [ref("Pod", "db-0", "old-pod-uid")])}
    p = sp.plan(sts, [], revs(sts), claims, NOW)
    assert p.steps == [] and p.waiting == "db-0 has a stale claim"


def test_claim_created_with_set_ref_when_deleted_is_delete() -> None:
    sts = make_sts(1, claims=("data",), retention=("Retain", "Delete"))
    (step,) = sp.plan(sts, [], revs(sts), {}, NOW).steps
    assert [(r["kind"], r["name"], r["uid"]) for r in step.claims[0]["metadata"]["ownerReferences"]] == [
        ("StatefulSet", "db", "sts-uid")
    ]


def test_identity_fixed_on_existing_pod() -> None:
    sts = make_sts(1)
    pod = make_pod(sts, 0)
    del pod["metadata"]["labels"]["statefulset.kubernetes.io/pod-name"]
    (step,) = sp.plan(sts, [pod], revs(sts), {}, NOW).steps
    assert step.action == sp.FIX_IDENTITY
    assert step.labels == {"statefulset.kubernetes.io/pod-name": "db-0", "apps.kubernetes.io/pod-index": "0"}


def test_start_ordinal() -> None:
    sts = make_sts(2, start=5)
    assert flat(sp.plan(sts, [], revs(sts), {}, NOW)) == ["create db-5"]
    pods = [make_pod(sts, 5), make_pod(sts, 6), make_pod(sts, 0)]
    assert flat(sp.plan(sts, pods, revs(sts), {}, NOW)) == ["delete db-0"]


def test_min_ready_seconds_gates_next_pod_with_clock() -> None:
    clock = FakeClock()
    sts = make_sts(2, min_ready=10)
    pods = [make_pod(sts, 0, "ready", ready_at="2026-01-01T00:00:00Z")]
    clock.advance(4)
    p = sp.plan(sts, pods, revs(sts), {}, clock.now())
    assert (flat(p), p.waiting, p.requeue_after) == ([], "db-0 not available", 7.0)
    assert p.status["readyReplicas"] == 1 and p.status["availableReplicas"] == 0
    clock.advance(6)  # available only strictly after readyTime + minReadySeconds
    assert flat(sp.plan(sts, pods, revs(sts), {}, clock.now())) == []
    clock.advance(1)
    p = sp.plan(sts, pods, revs(sts), {}, clock.now())
    assert flat(p) == ["create db-1"]
    assert p.status["availableReplicas"] == 1


def test_deleting_set_only_reports_status() -> None:
    sts = make_sts(3)
    sts["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    p = sp.plan(sts, [make_pod(sts, 0)], revs(sts), {}, NOW)
    assert p.steps == [] and p.status["replicas"] == 1


@pytest.mark.parametrize(
    ("states", "want"),
    [
        pytest.param({}, (0, 0, 0, 0, 0), id="none"),
        pytest.param({0: ("ready", "busybox")}, (1, 1, 1, 1, 0), id="one-current-ready"),
        pytest.param(
            {0: ("ready", "busybox"), 1: ("running", "busybox2"), 2: ("pending", "busybox2")},
            (3, 1, 1, 1, 2),
            id="mixed",
        ),
        pytest.param({0: ("terminating-ready", "busybox")}, (1, 1, 1, 0, 0), id="terminating-not-current"),
    ],
)
def test_compute_status(states: dict[int, tuple[str, str]], want: tuple[int, ...]) -> None:
    old, new = make_sts(3), make_sts(3, image="busybox2")
    pods = [make_pod(new, o, s, revision=f"rev-{i}") for o, (s, i) in states.items()]
    status = sp.compute_status(new, pods, revs(old, new), NOW)
    keys = ("replicas", "readyReplicas", "availableReplicas", "currentReplicas", "updatedReplicas")
    assert tuple(status[k] for k in keys) == want
    assert (status["currentRevision"], status["updateRevision"]) == ("rev-busybox", "rev-busybox2")
    assert status["observedGeneration"] == 1


@pytest.mark.parametrize(
    ("counts", "strategy", "completes"),
    [
        pytest.param((3, 3, 3), "RollingUpdate", True, id="all-updated-ready"),
        pytest.param((3, 2, 3), "RollingUpdate", False, id="one-not-ready"),
        pytest.param((3, 3, 2), "RollingUpdate", False, id="one-not-updated"),
        pytest.param((3, 3, 3), "OnDelete", False, id="on-delete-never"),
    ],
)
def test_complete_rolling_update(counts: tuple[int, int, int], strategy: str, completes: bool) -> None:
    sts = make_sts(3, strategy={"type": strategy})
    replicas, ready, updated = counts
    status = {
        "replicas": replicas, "readyReplicas": ready, "updatedReplicas": updated, "currentReplicas": 0,
        "currentRevision": "a", "updateRevision": "b",
    }  # fmt: skip
    out = sp.complete_rolling_update(sts, status)
    assert (out["currentRevision"] == "b") is completes
    assert (out["currentReplicas"] == updated) is completes
