"""Revision choice (new, unchanged, rollback), history truncation, revision data round trip."""

from __future__ import annotations

import pytest

from cluster.controllers import history
from cluster.controllers.statefulset import revisions
from tests.cluster.controllers.statefulset.objects import make_pod, make_sts, stored_revision


def test_new_revision_shape() -> None:
    sts = make_sts(3)
    sts["metadata"]["annotations"] = {"note": "x"}
    rev = revisions.new_revision(sts, 1, 0)
    h = history.hash_revision(revisions.revision_data(sts), 0)
    assert rev["metadata"]["name"] == f"db-{h}"
    assert rev["metadata"]["labels"] == {"app": "db", "controller.kubernetes.io/hash": h}
    assert rev["metadata"]["annotations"] == {"note": "x"}
    assert rev["data"]["spec"]["template"]["$patch"] == "replace"
    assert revisions.template_of(rev) == sts["spec"]["template"]


def test_choose_first_revision_creates() -> None:
    sts = make_sts(3)
    choice = revisions.choose_revisions(sts, [])
    assert choice.update is None and choice.renumber is None and choice.current is None
    assert choice.create is not None and choice.create["revision"] == 1


def test_choose_unchanged_template_reuses_newest() -> None:
    sts = make_sts(3)
    old = stored_revision(make_sts(3, image="old"), 1)
    newest = stored_revision(sts, 2)
    sts["status"] = {"currentRevision": old["metadata"]["name"]}
    choice = revisions.choose_revisions(sts, [newest, old])
    assert choice.update is newest and choice.create is None and choice.renumber is None
    assert choice.current is old


def test_choose_changed_template_creates_next_number() -> None:
    sts = make_sts(3, image="v3")
    existing = [stored_revision(make_sts(3, image="v1"), 1), stored_revision(make_sts(3, image="v2"), 2)]
    choice = revisions.choose_revisions(sts, existing)
    assert choice.create is not None and choice.create["revision"] == 3
    assert revisions.template_of(choice.create) == sts["spec"]["template"]


def test_choose_rollback_renumbers_older_revision() -> None:
    v1 = stored_revision(make_sts(3, image="v1"), 1)
    v2 = stored_revision(make_sts(3, image="v2"), 2)
    choice = revisions.choose_revisions(make_sts(3, image="v1"), [v1, v2])
    assert choice.create is None and choice.update is None
    assert choice.renumber == (v1, 3)


def test_collision_count_changes_the_name() -> None:
    sts = make_sts(3)
    sts["status"] = {"collisionCount": 2}
    choice = revisions.choose_revisions(sts, [])
    assert choice.collision_count == 2
    assert choice.create is not None
    assert choice.create["metadata"]["name"] == revisions.new_revision(sts, 1, 2)["metadata"]["name"]
    assert choice.create["metadata"]["name"] != revisions.new_revision(sts, 1, 0)["metadata"]["name"]


@pytest.mark.parametrize(
    ("limit", "live_by_pod", "want_deleted"),
    [
        pytest.param(10, [], [], id="under-limit"),
        pytest.param(1, [], ["v1", "v2"], id="oldest-first"),
        pytest.param(0, ["v1"], ["v2", "v3"], id="pod-keeps-revision"),
        pytest.param(0, ["v1", "v2", "v3"], [], id="all-live"),
    ],
)
def test_revisions_to_delete(limit: int, live_by_pod: list[str], want_deleted: list[str]) -> None:
    sts = make_sts(3)
    sts["spec"]["revisionHistoryLimit"] = limit
    stored = {f"v{i}": stored_revision(make_sts(3, image=f"v{i}"), i) for i in range(1, 6)}
    names = {k: v["metadata"]["name"] for k, v in stored.items()}
    pods = [make_pod(sts, i, revision=names[k]) for i, k in enumerate(live_by_pod)]
    # v4 is current, v5 the update target: never deleted
    out = revisions.revisions_to_delete(sts, pods, list(stored.values()), names["v4"], names["v5"])
    assert [r["metadata"]["name"] for r in out] == [names[k] for k in want_deleted]
