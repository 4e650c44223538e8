"""ControllerRevision helpers: hashing, naming, ordering and equality."""

from __future__ import annotations

from typing import Any

import pytest

from cluster.controllers import history

OWNER = {"metadata": {"name": "db", "namespace": "ns", "uid": "uid-1", "annotations": {"a": "b"}}}
DATA = {"spec": {"template": {"metadata": {"labels": {"app": "db"}}, "$patch": "replace"}}}


def rev(name: str, number: int, created: str = "", data: Any = None, owner_uid: str | None = None) -> dict:
    meta: dict[str, Any] = {"name": name}
    if created:
        meta["creationTimestamp"] = created
    if owner_uid is not None:
        meta["ownerReferences"] = [{"uid": owner_uid, "controller": True}]
    return {"metadata": meta, "revision": number, "data": data if data is not None else {"n": name}}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("", "", id="empty"),
        pytest.param("0123456789", "456789bcdf", id="digits"),
        pytest.param("aeiou", "v27fm", id="letters-wrap"),
    ],
)
def test_safe_encode(text: str, expected: str) -> None:
    assert history.safe_encode(text) == expected


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        pytest.param(b"", 0x811C9DC5, id="offset-basis"),
        pytest.param(b"a", 0x050C5D7E, id="a"),
        pytest.param(b"foobar", 0x31F0B262, id="foobar"),
    ],
)
def test_fnv1_32_known_vectors(data: bytes, expected: int) -> None:
    assert history._fnv1_32(data) == expected


def test_hash_is_stable_and_key_order_free() -> None:
    a = {"x": 1, "y": {"b": 2, "a": [1, 2]}}
    b = {"y": {"a": [1, 2], "b": 2}, "x": 1}
    assert history.hash_revision(a, None) == history.hash_revision(b, None)
    # The same value rendered by hand: fnv1 over canonical JSON, decimal, safe-encoded.
    expected = history.safe_encode(str(history._fnv1_32(b'{"x":1,"y":{"a":[1,2],"b":2}}')))
    assert history.hash_revision(a, None) == expected
    assert set(history.hash_revision(a, 3)) <= set("bcdfghjklmnpqrstvwxz2456789")


@pytest.mark.parametrize(
    ("left", "right", "same"),
    [
        pytest.param(({"a": 1}, None), ({"a": 1}, None), True, id="same-data"),
        pytest.param(({"a": 1}, None), ({"a": 2}, None), False, id="other-data"),
        pytest.param(({"a": 1}, None), ({"a": 1}, 0), False, id="collision-zero-differs-from-none"),
        pytest.param(({"a": 1}, 1), ({"a": 1}, 2), False, id="collision-count"),
        pytest.param(({"a": [1, 2]}, 0), ({"a": [2, 1]}, 0), False, id="list-order-matters"),
    ],
)
def test_hash_inputs(left: tuple, right: tuple, same: bool) -> None:
    assert (history.hash_revision(*left) == history.hash_revision(*right)) is same


def test_new_controller_revision() -> None:
    cr = history.new_controller_revision(
        OWNER,
        "apps/v1",
        "StatefulSet",
        {"app": "db"},
        DATA,
        4,
        2,
        hash_label=history.CONTROLLER_REVISION_HASH_LABEL,
        annotations={"a": "b"},
    )
    h = history.hash_revision(DATA, 2)
    assert cr["kind"] == "ControllerRevision" and cr["apiVersion"] == "apps/v1"
    assert cr["metadata"]["name"] == f"db-{h}"
    assert cr["metadata"]["namespace"] == "ns"
    assert cr["metadata"]["labels"] == {"app": "db", "controller.kubernetes.io/hash": h}
    assert cr["metadata"]["annotations"] == {"a": "b"}
    assert cr["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "name": "db",
            "uid": "uid-1",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert cr["data"] == DATA and cr["revision"] == 4


def test_new_controller_revision_defaults_and_no_aliasing() -> None:
    labels = {"app": "db"}
    cr = history.new_controller_revision(OWNER, "apps/v1", "DaemonSet", labels, DATA, 1, None)
    assert cr["metadata"]["labels"]["controller-revision-hash"] == history.hash_revision(DATA, None)
    assert "annotations" not in cr["metadata"]
    assert labels == {"app": "db"}  # the template's labels are copied, not changed
    cr["data"]["spec"]["template"]["x"] = 1
    assert "x" not in DATA["spec"]["template"]


def test_revision_name_truncates_long_prefix() -> None:
    name = history.revision_name("p" * 300, "abc")
    assert name == "p" * 223 + "-abc"
    assert history.revision_name("db", "abc") == "db-abc"


@pytest.mark.parametrize(
    ("revisions", "expected"),
    [
        pytest.param([], [], id="empty"),
        pytest.param([rev("b", 2), rev("a", 1), rev("c", 3)], ["a", "b", "c"], id="by-number"),
        pytest.param(
            [rev("x", 1, "2026-01-02T00:00:00Z"), rev("y", 1, "2026-01-01T00:00:00Z")],
            ["y", "x"],
            id="tie-creation-time",
        ),
        pytest.param(
            [rev("z", 1, "2026-01-01T00:00:00Z"), rev("m", 1, "2026-01-01T00:00:00Z")],
            ["m", "z"],
            id="tie-name",
        ),
    ],
)
def test_sort_revisions(revisions: list, expected: list[str]) -> None:
    assert [r["metadata"]["name"] for r in history.sort_revisions(revisions)] == expected


@pytest.mark.parametrize(
    ("numbers", "expected"),
    [
        pytest.param([], 1, id="none"),
        pytest.param([1], 2, id="one"),
        pytest.param([3, 1, 7, 2], 8, id="max-not-last"),
    ],
)
def test_next_revision(numbers: list[int], expected: int) -> None:
    assert history.next_revision([rev(f"r{n}", n) for n in numbers]) == expected


@pytest.mark.parametrize(
    ("a", "b", "equal"),
    [
        pytest.param(None, None, True, id="both-none"),
        pytest.param(rev("a", 1, data={"k": 1}), None, False, id="one-none"),
        pytest.param(rev("a", 1, data={"k": 1}), rev("b", 9, data={"k": 1}), True, id="same-data"),
        pytest.param(
            rev("a", 1, data={"k": 1, "j": 2}), rev("b", 1, data={"j": 2, "k": 1}), True, id="key-order"
        ),
        pytest.param(rev("a", 1, data={"k": 1}), rev("a", 1, data={"k": 2}), False, id="other-data"),
    ],
)
def test_equal_revision(a: Any, b: Any, equal: bool) -> None:
    assert history.equal_revision(a, b) is equal


def test_find_equal_revisions_keeps_order() -> None:
    revisions = [rev("a", 3, data={"k": 1}), rev("b", 1, data={"k": 2}), rev("c", 2, data={"k": 1})]
    found = history.find_equal_revisions(revisions, {"data": {"k": 1}})
    assert [r["metadata"]["name"] for r in found] == ["a", "c"]
    assert history.find_equal_revisions(revisions, {"data": {"k": 3}}) == []


def test_owned_revisions() -> None:
    revisions = [rev("mine", 1, owner_uid="u1"), rev("orphan", 2), rev("other", 3, owner_uid="u2")]
    assert [r["metadata"]["name"] for r in history.owned_revisions(revisions, "u1")] == ["mine", "orphan"]
