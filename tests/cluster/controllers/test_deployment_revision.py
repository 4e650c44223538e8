"""Pod-template hashes, revision annotations (rollbacks keep their history) and history clean-up."""

from __future__ import annotations

import copy
from datetime import timedelta
from typing import Any

import pytest

from cluster.controllers.deployment.revision import (
    DESIRED_REPLICAS_ANNOTATION,
    LAST_APPLIED_ANNOTATION,
    MAX_REPLICAS_ANNOTATION,
    POD_TEMPLATE_HASH_LABEL,
    REVISION_ANNOTATION,
    REVISION_HISTORY_ANNOTATION,
    equal_ignore_hash,
    find_new_replica_set,
    history_to_delete,
    max_revision,
    new_replica_set_annotations,
    parse_revision,
    pod_template_hash,
    replicas_annotations_need_update,
)
from cluster.controllers.deployment.rollout import ReplicaSetView
from tests.cluster.controllers.fakes import T0

SAFE = set("bcdfghjklmnpqrstvwxz2456789")


def template(image: str = "busybox", **labels: str) -> dict[str, Any]:
    return {
        "metadata": {"labels": {"app": "web", **labels}},
        "spec": {"containers": [{"name": "c", "image": image, "command": ["sh", "-c", "sleep 3600"]}]},
    }


def test_hash_is_stable_and_safe_encoded() -> None:
    value = pod_template_hash(template(), None)
    assert value == pod_template_hash(copy.deepcopy(template()), None)
    assert set(value) <= SAFE and 1 <= len(value) <= 10


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        pytest.param(template(), template(), True, id="equal"),
        pytest.param(template(), template("nginx"), False, id="image-differs"),
        pytest.param(template(), template(tier="x"), False, id="label-differs"),
        pytest.param(template(), template(**{POD_TEMPLATE_HASH_LABEL: "abc"}), True, id="hash-label-ignored"),
        pytest.param(
            template(),
            {**template(), "metadata": {"labels": {"app": "web"}, "annotations": {}}},
            True,
            id="empty-map-is-unset",
        ),
    ],
)
def test_hash_and_equality_agree(a: dict[str, Any], b: dict[str, Any], same: bool) -> None:
    assert equal_ignore_hash(a, b) is same
    assert (pod_template_hash(a, None) == pod_template_hash(b, None)) is same


def test_collision_count_changes_the_hash() -> None:
    hashes = {pod_template_hash(template(), c) for c in (None, 0, 1, 2)}
    assert len(hashes) == 4


def test_find_new_replica_set_is_the_oldest_equal_template() -> None:
    rss = [
        ReplicaSetView("young", created=T0, template=template()),
        ReplicaSetView("other", created=T0 - timedelta(seconds=20), template=template("nginx")),
        ReplicaSetView(
            "old", created=T0 - timedelta(seconds=10), template=template(**{POD_TEMPLATE_HASH_LABEL: "x"})
        ),
    ]
    found = find_new_replica_set(template(), rss)
    assert found is not None and found.name == "old"
    assert find_new_replica_set(template("redis"), rss) is None


@pytest.mark.parametrize(
    ("deployment", "existing", "revision", "exists", "expected", "changed"),
    [
        pytest.param(
            {"team": "a", LAST_APPLIED_ANNOTATION: "{}", REVISION_ANNOTATION: "7"},
            {},
            1,
            False,
            {
                "team": "a",
                REVISION_ANNOTATION: "1",
                DESIRED_REPLICAS_ANNOTATION: "3",
                MAX_REPLICAS_ANNOTATION: "4",
            },
            True,
            id="new-rs-copies-annotations-but-not-skipped-ones",
        ),
        pytest.param(
            {},
            {REVISION_ANNOTATION: "3"},
            3,
            True,
            {REVISION_ANNOTATION: "3"},
            False,
            id="same-revision-unchanged",
        ),
        pytest.param(
            {},
            {REVISION_ANNOTATION: "5"},
            3,
            True,
            {REVISION_ANNOTATION: "5"},
            False,
            id="revision-never-goes-down",
        ),
        pytest.param(
            {},
            {REVISION_ANNOTATION: "1"},
            3,
            True,
            {REVISION_ANNOTATION: "3", REVISION_HISTORY_ANNOTATION: "1"},
            True,
            id="rollback-records-history",
        ),
        pytest.param(
            {},
            {REVISION_ANNOTATION: "3", REVISION_HISTORY_ANNOTATION: "1"},
            5,
            True,
            {REVISION_ANNOTATION: "5", REVISION_HISTORY_ANNOTATION: "1,3"},
            True,
            id="second-rollback-appends",
        ),
        pytest.param(
            {},
            {REVISION_ANNOTATION: "not-a-number"},
            3,
            True,
            {REVISION_ANNOTATION: "not-a-number"},
            False,
            id="garbage-revision-left-alone",
        ),
    ],
)
def test_new_replica_set_annotations(
    deployment: dict[str, str],
    existing: dict[str, str],
    revision: int,
    exists: bool,
    expected: dict[str, str],
    changed: bool,
) -> None:
    result, did_change = new_replica_set_annotations(
        deployment, existing, revision, exists=exists, desired=3, max_replicas=4
    )
    assert result == expected
    assert did_change is changed


def test_revision_history_is_bounded_in_characters() -> None:
    existing = {REVISION_ANNOTATION: "40", REVISION_HISTORY_ANNOTATION: "10,20,30"}
    result, _ = new_replica_set_annotations(
        {}, existing, 50, exists=True, desired=1, max_replicas=1, history_limit_chars=8
    )
    assert result[REVISION_HISTORY_ANNOTATION] == "20,30,40"  # the oldest entry dropped to fit


@pytest.mark.parametrize(
    ("annotations", "expected"),
    [
        pytest.param({REVISION_ANNOTATION: "4"}, 4, id="number"),
        pytest.param({}, None, id="missing"),
        pytest.param({REVISION_ANNOTATION: "x"}, None, id="garbage"),
        pytest.param(None, None, id="no-annotations"),
    ],
)
def test_parse_revision(annotations: dict[str, str] | None, expected: int | None) -> None:
    assert parse_revision(annotations) == expected


def test_replica_annotations_need_update() -> None:
    assert replicas_annotations_need_update({}, 3, 4)
    assert replicas_annotations_need_update(
        {DESIRED_REPLICAS_ANNOTATION: "3", MAX_REPLICAS_ANNOTATION: "5"}, 3, 4
    )
    assert not replicas_annotations_need_update(
        {DESIRED_REPLICAS_ANNOTATION: "3", MAX_REPLICAS_ANNOTATION: "4"}, 3, 4
    )


def old(name: str, revision: int, replicas: int = 0, **kw: Any) -> ReplicaSetView:
    return ReplicaSetView(name, revision=revision, replicas=replicas, status_replicas=replicas, **kw)


@pytest.mark.parametrize(
    ("rss", "limit", "expected"),
    [
        pytest.param([old("a", 1), old("b", 2)], 2, [], id="within-limit"),
        pytest.param([old("c", 3), old("a", 1), old("b", 2)], 1, ["a", "b"], id="oldest-revisions-go"),
        pytest.param([old("a", 1), old("b", 2)], 0, ["a", "b"], id="limit-zero-keeps-none"),
        pytest.param([old("a", 1, replicas=1), old("b", 2)], 1, [], id="running-one-counts-but-stays"),
        pytest.param(
            [old("a", 1, generation=2, observed_generation=1), old("b", 2)], 1, [], id="unobserved-stays"
        ),
        pytest.param(
            [old("a", 1, deleting=True), old("b", 2), old("c", 3)], 1, ["b"], id="deleting-not-counted"
        ),
    ],
)
def test_history_to_delete(rss: list[ReplicaSetView], limit: int, expected: list[str]) -> None:
    assert history_to_delete(rss, limit) == expected


def test_max_revision() -> None:
    assert max_revision([]) == 0
    assert max_revision([old("a", 3), old("b", 9), old("c", 2)]) == 9
