"""One sync's plan: which pods a ReplicaSet owns, adopts and releases, and how it scales."""

from __future__ import annotations

from typing import Any

import pytest

from cluster.client.lister import Lister
from cluster.controllers.replicaset.plan import (
    BURST_REPLICAS,
    adoption_patch,
    claim_pods,
    desired_replicas,
    release_patch,
    scale,
)
from cluster.machinery.labels import SelectorError
from tests.cluster.controllers.replicaset.objects import NOW, RS_UID, controller_ref, make_pod, make_rs

OURS = controller_ref()
THEIRS = controller_ref(uid="other-uid", name="other")
PLAIN_OWNER = {"apiVersion": "v1", "kind": "ConfigMap", "name": "cm", "uid": "cm-uid"}


def names(pods: Any) -> list[str]:
    return sorted(p["metadata"]["name"] for p in pods)


@pytest.mark.parametrize(
    ("rs", "pod", "where"),
    [
        pytest.param(make_rs(), make_pod("p", owner=OURS), "owned", id="ours-and-matching"),
        pytest.param(make_rs(), make_pod("p"), "adopt", id="matching-orphan"),
        pytest.param(
            make_rs(),
            make_pod("p", other_owners=[PLAIN_OWNER]),
            "adopt",
            id="orphan-with-non-controller-owner",
        ),
        pytest.param(make_rs(), make_pod("p", labels={"app": "db"}), None, id="orphan-not-matching"),
        pytest.param(make_rs(), make_pod("p", owner=THEIRS), None, id="controlled-by-another"),
        pytest.param(
            make_rs(), make_pod("p", labels={"app": "db"}, owner=OURS), "release", id="ours-relabelled"
        ),
        pytest.param(make_rs(deleting=True), make_pod("p"), None, id="deleting-rs-adopts-nothing"),
        pytest.param(
            make_rs(deleting=True),
            make_pod("p", labels={"app": "db"}, owner=OURS),
            None,
            id="deleting-rs-releases-nothing",
        ),
        pytest.param(
            make_rs(deleting=True), make_pod("p", owner=OURS), "owned", id="deleting-rs-still-counts"
        ),
        pytest.param(make_rs(), make_pod("p", deleting=True), None, id="terminating-orphan"),
        pytest.param(
            make_rs(), make_pod("p", owner=OURS, deleting=True), None, id="terminating-owned-not-counted"
        ),
        pytest.param(
            make_rs(), make_pod("p", owner=OURS, phase="Succeeded"), None, id="succeeded-not-counted"
        ),
        pytest.param(make_rs(), make_pod("p", phase="Failed"), None, id="failed-orphan-not-adopted"),
        pytest.param(
            make_rs(
                selector={"matchExpressions": [{"key": "app", "operator": "In", "values": ["web", "api"]}]}
            ),
            make_pod("p", labels={"app": "api"}),
            "adopt",
            id="match-expressions",
        ),
        pytest.param(
            make_rs(selector={}), make_pod("p", labels={}), "adopt", id="empty-selector-selects-all"
        ),
    ],
)
def test_claim(rs: dict[str, Any], pod: dict[str, Any], where: str | None) -> None:
    claims = claim_pods(rs, [pod])
    got = {"owned": claims.owned, "adopt": claims.adopt, "release": claims.release}
    for bucket, pods in got.items():
        assert names(pods) == (["p"] if bucket == where else []), bucket


def test_claim_without_selector_selects_nothing() -> None:
    rs = make_rs()
    del rs["spec"]["selector"]
    claims = claim_pods(rs, [make_pod("a"), make_pod("b", owner=OURS)])
    assert (claims.owned, claims.adopt, names(claims.release)) == ((), (), ["b"])


def test_claim_rejects_malformed_selector() -> None:
    rs = make_rs(selector={"matchExpressions": [{"key": "app", "operator": "Near", "values": ["x"]}]})
    with pytest.raises(SelectorError):
        claim_pods(rs, [make_pod("a")])


def test_claim_over_a_lister_namespace() -> None:
    lister = Lister()
    for pod in (make_pod("a", owner=OURS), make_pod("b"), make_pod("c", labels={"app": "x"}, owner=OURS)):
        lister.upsert(pod)
    claims = claim_pods(make_rs(), lister.list("ns"))
    assert (names(claims.owned), names(claims.adopt), names(claims.release)) == (["a"], ["b"], ["c"])


@pytest.mark.parametrize(
    ("replicas", "have", "create", "deleted"),
    [
        pytest.param(3, 3, 0, 0, id="steady"),
        pytest.param(3, 0, 3, 0, id="from-zero"),
        pytest.param(5, 3, 2, 0, id="scale-up"),
        pytest.param(1, 3, 0, 2, id="scale-down"),
        pytest.param(0, 2, 0, 2, id="to-zero"),
        pytest.param(None, 0, 1, 0, id="replicas-default-to-one"),
        pytest.param(1200, 100, BURST_REPLICAS, 0, id="create-capped-by-burst"),
        pytest.param(0, 700, 0, BURST_REPLICAS, id="delete-capped-by-burst"),
    ],
)
def test_scale(replicas: int | None, have: int, create: int, deleted: int) -> None:
    owned = [make_pod(f"p{i}", owner=OURS, ready_ago=100 + i) for i in range(have)]
    plan = scale(make_rs(replicas=replicas), owned, NOW)
    assert (plan.create, len(plan.delete)) == (create, deleted)
    assert plan.idle == (create == 0 and deleted == 0)


def test_scale_down_deletes_not_ready_and_newest() -> None:
    owned = [
        make_pod("oldest", owner=OURS, ready_ago=5000, created_ago=5100),
        make_pod("newest", owner=OURS, ready_ago=20, created_ago=30),
        make_pod("starting", owner=OURS, not_ready=True, created_ago=10),
        make_pod("middle", owner=OURS, ready_ago=600, created_ago=700),
    ]
    plan = scale(make_rs(replicas=2), owned, NOW)
    assert [p["metadata"]["name"] for p in plan.delete] == ["starting", "newest"]


def test_scale_down_spreads_over_nodes_of_related_pods() -> None:
    owned = [make_pod("on-busy", node="n1", ready_ago=9000), make_pod("on-quiet", node="n2", ready_ago=10)]
    related = [*owned, make_pod("sibling", node="n1", ready_ago=9000, owner=controller_ref(uid="rs-2"))]
    plan = scale(make_rs(replicas=1), owned, NOW, related=related)
    assert [p["metadata"]["name"] for p in plan.delete] == ["on-busy"]


@pytest.mark.parametrize(
    ("spec_replicas", "expected"),
    [pytest.param(None, 1, id="default"), pytest.param(0, 0, id="zero"), pytest.param(7, 7, id="set")],
)
def test_desired_replicas(spec_replicas: int | None, expected: int) -> None:
    assert desired_replicas(make_rs(replicas=spec_replicas)) == expected


def test_adoption_patch_for_pod_without_owners_tests_uid_and_version() -> None:
    ops = adoption_patch(make_rs(), make_pod("p", uid="pod-uid", resource_version="42"))
    assert ops == [
        {"op": "test", "path": "/metadata/uid", "value": "pod-uid"},
        {"op": "test", "path": "/metadata/resourceVersion", "value": "42"},
        {"op": "add", "path": "/metadata/ownerReferences", "value": [OURS]},
    ]


def test_adoption_patch_appends_to_existing_owners() -> None:
    ops = adoption_patch(make_rs(), make_pod("p", uid="pod-uid", other_owners=[PLAIN_OWNER]))
    assert ops == [
        {"op": "test", "path": "/metadata/uid", "value": "pod-uid"},
        {"op": "test", "path": "/metadata/ownerReferences", "value": [PLAIN_OWNER]},
        {"op": "add", "path": "/metadata/ownerReferences/-", "value": OURS},
    ]


def test_release_patch_removes_our_reference_only() -> None:
    ops = release_patch(make_rs(), make_pod("p", uid="pod-uid", owner=OURS, other_owners=[PLAIN_OWNER]))
    assert ops == [
        {"op": "test", "path": "/metadata/uid", "value": "pod-uid"},
        {"op": "test", "path": "/metadata/ownerReferences/1/uid", "value": RS_UID},
        {"op": "remove", "path": "/metadata/ownerReferences/1"},
    ]
