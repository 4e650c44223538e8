"""JSON merge patch: the RFC 7386 appendix A table and the object-only wrapper Kubernetes uses."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from cluster.apiserver.patch import PatchError, json_merge_patch, merge_patch_value

RFC7386_APPENDIX_A = [
    pytest.param({"a": "b"}, {"a": "c"}, {"a": "c"}, id="replace-member"),
    pytest.param({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}, id="add-member"),
    pytest.param({"a": "b"}, {"a": None}, {}, id="null-removes"),
    pytest.param({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}, id="null-removes-one"),
    pytest.param({"a": ["b"]}, {"a": "c"}, {"a": "c"}, id="array-to-string"),
    pytest.param({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}, id="string-to-array"),
    pytest.param({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}, id="nested"),
    pytest.param({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}, id="arrays-replaced"),
    pytest.param(["a", "b"], ["c", "d"], ["c", "d"], id="array-target"),
    pytest.param({"a": "b"}, ["c"], ["c"], id="array-patch"),
    pytest.param({"a": "foo"}, None, None, id="null-patch"),
    pytest.param({"a": "foo"}, "bar", "bar", id="string-patch"),
    pytest.param({"e": None}, {"a": 1}, {"e": None, "a": 1}, id="target-null-kept"),
    pytest.param([1, 2], {"a": "b", "c": None}, {"a": "b"}, id="array-target-object-patch"),
    pytest.param({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}, id="deep-null-into-empty"),
]


@pytest.mark.parametrize(("target", "patch", "expected"), RFC7386_APPENDIX_A)
def test_rfc7386_appendix_a(target: Any, patch: Any, expected: Any) -> None:
    before = copy.deepcopy(target)
    assert merge_patch_value(target, patch) == expected
    assert target == before


KUBERNETES_CASES = [
    pytest.param(
        {"spec": {"replicas": 1, "template": {"x": 1}}},
        {"spec": {"replicas": 3}},
        {"spec": {"replicas": 3, "template": {"x": 1}}},
        id="kubectl-scale",
    ),
    pytest.param(
        {"spec": {"containers": [{"name": "a"}, {"name": "b"}]}},
        {"spec": {"containers": [{"name": "c"}]}},
        {"spec": {"containers": [{"name": "c"}]}},
        id="lists-replaced-whole",
    ),
    pytest.param(
        {"metadata": {"labels": {"a": "1", "b": "2"}}},
        {"metadata": {"labels": {"a": None}}},
        {"metadata": {"labels": {"b": "2"}}},
        id="label-removed",
    ),
]


@pytest.mark.parametrize(("doc", "patch", "expected"), KUBERNETES_CASES)
def test_json_merge_patch_on_objects(doc: dict[str, Any], patch: Any, expected: dict[str, Any]) -> None:
    assert json_merge_patch(doc, patch) == expected


@pytest.mark.parametrize("patch", [pytest.param([1], id="array"), pytest.param("x", id="string")])
def test_non_object_patch_is_bad_request(patch: Any) -> None:
    with pytest.raises(PatchError) as err:
        json_merge_patch({"a": 1}, patch)
    assert err.value.code == 400
