"""object_meta: the object's own metadata dict, or an empty one when there is none."""

from __future__ import annotations

from typing import Any

import pytest

from cluster.machinery.meta import object_meta


@pytest.mark.parametrize(
    "obj",
    [
        pytest.param({}, id="missing"),
        pytest.param({"metadata": None}, id="null"),
        pytest.param({"metadata": ["x"]}, id="not-an-object"),
    ],
)
def test_no_metadata_reads_as_empty(obj: dict[str, Any]) -> None:
    assert object_meta(obj) == {}


def test_is_the_objects_own_dict() -> None:
    obj: dict[str, Any] = {"metadata": {"name": "a"}}
    object_meta(obj)["labels"] = {"x": "y"}
    assert obj["metadata"] == {"name": "a", "labels": {"x": "y"}}
