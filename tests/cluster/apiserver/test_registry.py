"""Pure helpers of the generic registry."""

from __future__ import annotations

from typing import Any

import pytest

from cluster.apiserver.admission.object_meta import drop_empty_metadata


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        pytest.param({"name": "a", "labels": {}}, {"name": "a"}, id="empty-labels"),
        pytest.param({"name": "a", "annotations": {}}, {"name": "a"}, id="empty-annotations"),
        pytest.param({"name": "a", "finalizers": []}, {"name": "a"}, id="empty-finalizers"),
        pytest.param({"name": "a", "ownerReferences": []}, {"name": "a"}, id="empty-owner-references"),
        pytest.param({"name": "a", "managedFields": []}, {"name": "a"}, id="empty-managed-fields"),
        pytest.param({"name": "a", "generateName": ""}, {"name": "a"}, id="empty-generate-name"),
        pytest.param({"name": "a", "labels": None}, {"name": "a"}, id="null-labels"),
        pytest.param(
            {"name": "a", "labels": {"x": ""}, "annotations": {"y": "1"}},
            {"name": "a", "labels": {"x": ""}, "annotations": {"y": "1"}},
            id="non-empty-kept",
        ),
        pytest.param({"name": "a", "uid": "u"}, {"name": "a", "uid": "u"}, id="other-fields-untouched"),
    ],
)
def test_drop_empty_metadata(metadata: dict[str, Any], expected: dict[str, Any]) -> None:
    obj = {"kind": "ConfigMap", "metadata": metadata, "data": {}}
    assert drop_empty_metadata(obj) == {"kind": "ConfigMap", "metadata": expected, "data": {}}


def test_drop_empty_metadata_without_metadata() -> None:
    assert drop_empty_metadata({"kind": "Pod"}) == {"kind": "Pod"}
