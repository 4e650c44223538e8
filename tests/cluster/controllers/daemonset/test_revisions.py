"""A DaemonSet's ControllerRevisions: current or new, renumbering on rollback, duplicates, cleanup."""

from __future__ import annotations

from typing import Any

import pytest

from cluster.controllers.daemonset.revisions import (
    construct_history,
    matches,
    revision_data,
    revision_hash,
    revisions_to_delete,
)
from cluster.controllers.history import hash_revision
from tests.cluster.controllers.daemonset.objects import DS_UID, make_ds


def image(tag: str) -> dict[str, Any]:
    return make_ds(pod_spec={"containers": [{"name": "c", "image": f"busybox:{tag}"}]})


def revision(ds: dict[str, Any], number: int, name: str | None = None) -> dict[str, Any]:
    hash_ = hash_revision(revision_data(ds), None)
    return {
        "metadata": {
            "name": name or f"agent-{hash_}",
            "namespace": "ns",
            "labels": {"app": "agent", "controller-revision-hash": hash_},
        },
        "data": revision_data(ds),
        "revision": number,
    }


def test_revision_data_replaces_the_whole_template() -> None:
    ds = image("1")
    data = revision_data(ds)
    assert data == {"spec": {"template": {**ds["spec"]["template"], "$patch": "replace"}}}
    assert "$patch" not in ds["spec"]["template"]


def test_first_revision_is_created() -> None:
    ds = image("1")
    ds["metadata"]["annotations"] = {"kubernetes.io/change-cause": "first"}
    history = construct_history(ds, [])
    assert history.current is None and history.old == ()
    body = history.create
    assert body is not None
    hash_ = hash_revision(revision_data(ds), None)
    assert history.hash == hash_
    assert body["metadata"]["name"] == f"agent-{hash_}"
    assert body["metadata"]["labels"] == {"app": "agent", "controller-revision-hash": hash_}
    assert body["metadata"]["annotations"] == {"kubernetes.io/change-cause": "first"}
    assert body["metadata"]["ownerReferences"][0]["uid"] == DS_UID
    assert body["revision"] == 1
    assert matches(ds, body)


def test_collision_count_changes_the_name() -> None:
    ds = image("1")
    ds["status"] = {"collisionCount": 1}
    body = construct_history(ds, []).create
    assert body is not None
    assert body["metadata"]["name"] == f"agent-{hash_revision(revision_data(ds), 1)}"


@pytest.mark.parametrize(
    ("tags", "current_tag", "current_index", "renumber", "old_numbers"),
    [
        pytest.param([("1", 1)], "1", 0, None, [], id="unchanged"),
        pytest.param([("1", 1)], "2", None, None, [1], id="template-changed-new-revision"),
        pytest.param([("1", 1), ("2", 2)], "1", 0, 3, [2], id="rollback-renumbers"),
        pytest.param([("1", 1), ("2", 2)], "2", 1, None, [1], id="newest-is-current"),
    ],
)
def test_construct_history(
    tags: list[tuple[str, int]],
    current_tag: str,
    current_index: int | None,
    renumber: int | None,
    old_numbers: list[int],
) -> None:
    revisions = [revision(image(tag), number) for tag, number in tags]
    history = construct_history(image(current_tag), revisions)
    if current_index is None:
        assert history.current is None and history.create is not None
        assert history.create["revision"] == max(n for _, n in tags) + 1
    else:
        assert history.current is revisions[current_index]
        assert history.hash == revision_hash(revisions[current_index])
    assert history.renumber == renumber
    assert [r["revision"] for r in history.old] == old_numbers


def test_duplicates_keep_the_highest_revision() -> None:
    ds = image("1")
    low, high = revision(ds, 1, "agent-a"), revision(ds, 4, "agent-b")
    history = construct_history(ds, [high, low, revision(image("2"), 2)])
    assert history.current is high
    assert history.duplicates == (low,)
    assert history.renumber is None


def test_unlabelled_revision_hash_is_its_name() -> None:
    assert revision_hash({"metadata": {"name": "agent-xyz"}}) == "agent-xyz"


@pytest.mark.parametrize(
    ("count", "limit", "live", "expected"),
    [
        pytest.param(3, 10, set(), [], id="under-the-default-limit"),
        pytest.param(3, 1, set(), ["r1", "r2"], id="oldest-first"),
        pytest.param(3, 1, {"h1"}, ["r2", "r3"], id="live-revision-kept"),
        pytest.param(3, 0, {"h1", "h2", "h3"}, [], id="all-live"),
        pytest.param(12, None, set(), ["r1", "r2"], id="default-ten"),
    ],
)
def test_revisions_to_delete(count: int, limit: int | None, live: set[str], expected: list[str]) -> None:
    old = [
        {"metadata": {"name": f"r{i}", "labels": {"controller-revision-hash": f"h{i}"}}, "revision": i}
        for i in range(count, 0, -1)
    ]
    ds = make_ds(history_limit=limit)
    assert revisions_to_delete(ds, old, live) == expected
