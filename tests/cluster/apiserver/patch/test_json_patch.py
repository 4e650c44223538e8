"""JSON patch: the RFC 6902 appendix A table, pointer escaping, atomicity and Kubernetes' status codes."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from cluster.apiserver.patch import PatchError, json_patch, json_patch_value

RFC6902_APPENDIX_A = [
    pytest.param(
        {"foo": "bar"},
        [{"op": "add", "path": "/baz", "value": "qux"}],
        {"baz": "qux", "foo": "bar"},
        id="A.1",
    ),
    pytest.param(
        {"foo": ["bar", "baz"]},
        [{"op": "add", "path": "/foo/1", "value": "qux"}],
        {"foo": ["bar", "qux", "baz"]},
        id="A.2",
    ),
    pytest.param({"baz": "qux", "foo": "bar"}, [{"op": "remove", "path": "/baz"}], {"foo": "bar"}, id="A.3"),
    pytest.param(
        {"foo": ["bar", "qux", "baz"]},
        [{"op": "remove", "path": "/foo/1"}],
        {"foo": ["bar", "baz"]},
        id="A.4",
    ),
    pytest.param(
        {"baz": "qux", "foo": "bar"},
        [{"op": "replace", "path": "/baz", "value": "boo"}],
        {"baz": "boo", "foo": "bar"},
        id="A.5",
    ),
    pytest.param(
        {"foo": {"bar": "baz", "waldo": "fred"}, "qux": {"corge": "grault"}},
        [{"op": "move", "from": "/foo/waldo", "path": "/qux/thud"}],
        {"foo": {"bar": "baz"}, "qux": {"corge": "grault", "thud": "fred"}},
        id="A.6",
    ),
    pytest.param(
        {"foo": ["all", "grass", "cows", "eat"]},
        [{"op": "move", "from": "/foo/1", "path": "/foo/3"}],
        {"foo": ["all", "cows", "eat", "grass"]},
        id="A.7",
    ),
    pytest.param(
        {"baz": "qux", "foo": ["a", 2, "c"]},
        [{"op": "test", "path": "/baz", "value": "qux"}, {"op": "test", "path": "/foo/1", "value": 2}],
        {"baz": "qux", "foo": ["a", 2, "c"]},
        id="A.8",
    ),
    pytest.param(
        {"foo": "bar"},
        [{"op": "add", "path": "/child", "value": {"grandchild": {}}}],
        {"foo": "bar", "child": {"grandchild": {}}},
        id="A.10",
    ),
    pytest.param(
        {"foo": "bar"},
        [{"op": "add", "path": "/baz", "value": "qux", "xyz": 123}],
        {"foo": "bar", "baz": "qux"},
        id="A.11",
    ),
    pytest.param(
        {"/": 9, "~1": 10}, [{"op": "test", "path": "/~01", "value": 10}], {"/": 9, "~1": 10}, id="A.14"
    ),
    pytest.param(
        {"foo": ["bar"]},
        [{"op": "add", "path": "/foo/-", "value": ["abc", "def"]}],
        {"foo": ["bar", ["abc", "def"]]},
        id="A.16",
    ),
]


@pytest.mark.parametrize(("doc", "ops", "expected"), RFC6902_APPENDIX_A)
def test_rfc6902_appendix_a(doc: dict[str, Any], ops: list[Any], expected: dict[str, Any]) -> None:
    before = copy.deepcopy(doc)
    assert json_patch(doc, ops) == expected
    assert doc == before


MORE_CASES = [
    pytest.param(
        {"a": {"b": 1}},
        [{"op": "copy", "from": "/a", "path": "/c"}],
        {"a": {"b": 1}, "c": {"b": 1}},
        id="copy",
    ),
    pytest.param({"a": 1}, [{"op": "add", "path": "", "value": {"b": 2}}], {"b": 2}, id="add-root-replaces"),
    pytest.param({"a/b": 1}, [{"op": "remove", "path": "/a~1b"}], {}, id="escaped-slash"),
    pytest.param(
        {"a": [1, 2]}, [{"op": "add", "path": "/a/2", "value": 3}], {"a": [1, 2, 3]}, id="add-at-end-index"
    ),
    pytest.param(
        {"a": 1.0}, [{"op": "test", "path": "/a", "value": 1}], {"a": 1.0}, id="test-numbers-by-value"
    ),
    pytest.param(
        {"a": {"x": 1, "y": [1, {"z": None}]}},
        [{"op": "test", "path": "/a", "value": {"y": [1, {"z": None}], "x": 1}}],
        {"a": {"x": 1, "y": [1, {"z": None}]}},
        id="test-objects-unordered",
    ),
    pytest.param(
        {"a": {"x": 1}},
        [{"op": "add", "path": "/a/y", "value": 2}, {"op": "remove", "path": "/a/x"}],
        {"a": {"y": 2}},
        id="ops-in-order",
    ),
    pytest.param(
        {
            "metadata": {"annotations": {"deployment.kubernetes.io/revision": "2"}},
            "spec": {"template": {"v": 2}},
        },
        [
            {"op": "replace", "path": "/spec/template", "value": {"v": 1}},
            {
                "op": "replace",
                "path": "/metadata/annotations",
                "value": {"deployment.kubernetes.io/revision": "1"},
            },
        ],
        {
            "metadata": {"annotations": {"deployment.kubernetes.io/revision": "1"}},
            "spec": {"template": {"v": 1}},
        },
        id="kubectl-rollout-undo",
    ),
]


@pytest.mark.parametrize(("doc", "ops", "expected"), MORE_CASES)
def test_more_operations(doc: dict[str, Any], ops: list[Any], expected: dict[str, Any]) -> None:
    assert json_patch(doc, ops) == expected


FAILURES = [
    pytest.param(
        {"baz": "qux"}, [{"op": "test", "path": "/baz", "value": "bar"}], 422, "test failed", id="A.9"
    ),
    pytest.param(
        {"foo": "bar"}, [{"op": "add", "path": "/baz/bat", "value": "qux"}], 422, "missing", id="A.12"
    ),
    pytest.param(
        {"/": 9, "~1": 10}, [{"op": "test", "path": "/~01", "value": "10"}], 422, "test failed", id="A.15"
    ),
    pytest.param(
        {"a": True}, [{"op": "test", "path": "/a", "value": 1}], 422, "test failed", id="bool-is-not-1"
    ),
    pytest.param({"a": 1}, [{"op": "remove", "path": "/b"}], 422, "nonexistent", id="remove-missing"),
    pytest.param(
        {"a": 1}, [{"op": "replace", "path": "/b", "value": 1}], 422, "missing", id="replace-missing"
    ),
    pytest.param(
        {"a": [1]}, [{"op": "add", "path": "/a/2", "value": 1}], 422, "index", id="index-out-of-range"
    ),
    pytest.param({"a": [1, 2]}, [{"op": "remove", "path": "/a/01"}], 422, "index", id="leading-zero-index"),
    pytest.param({"a": 1}, [{"op": "move", "from": "/x", "path": "/y"}], 422, "from path", id="move-missing"),
    pytest.param(
        {"a": {"b": 1}}, [{"op": "move", "from": "/a", "path": "/a/b/c"}], 422, "child", id="move-into-child"
    ),
    pytest.param({"a": 1}, [{"op": "frob", "path": "/a"}], 400, "Unexpected kind", id="unknown-op"),
    pytest.param({"a": 1}, [{"op": "add", "path": "/a"}], 400, "value", id="add-without-value"),
    pytest.param({"a": 1}, [{"op": "remove"}], 400, "path", id="without-path"),
    pytest.param(
        {"a": 1}, [{"op": "add", "path": "a", "value": 1}], 400, "start with", id="pointer-without-slash"
    ),
    pytest.param({"a": 1}, {"op": "add"}, 400, "jsonpatch.Patch", id="not-a-list"),
    pytest.param(
        {"a": 1}, [{"op": "add", "path": "", "value": [1]}], 422, "not a JSON object", id="root-not-object"
    ),
]


@pytest.mark.parametrize(("doc", "ops", "code", "fragment"), FAILURES)
def test_failures(doc: dict[str, Any], ops: Any, code: int, fragment: str) -> None:
    before = copy.deepcopy(doc)
    with pytest.raises(PatchError) as err:
        json_patch(doc, ops)
    assert err.value.code == code
    assert fragment in str(err.value)
    assert doc == before


def test_failure_is_atomic() -> None:
    doc = {"a": [1, 2]}
    ops = [{"op": "add", "path": "/a/-", "value": 3}, {"op": "test", "path": "/a/0", "value": 9}]
    with pytest.raises(PatchError):
        json_patch(doc, ops)
    assert doc == {"a": [1, 2]}


def test_value_level_entry_point_accepts_non_objects() -> None:
    assert json_patch_value([1, 2], [{"op": "remove", "path": "/0"}]) == [2]
