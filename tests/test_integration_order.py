"""tests/integration/conftest.py runs the modules that stop Ray (``own_ray``) before the ones using the
session cluster, whatever their names; everything else keeps its order."""

from __future__ import annotations

from typing import Any

from tests.integration.conftest import pytest_collection_modifyitems


class _Item:
    def __init__(self, name: str, *marks: str) -> None:
        self.name, self.marks = name, set(marks)

    def get_closest_marker(self, mark: str) -> Any:
        return mark if mark in self.marks else None


def test_own_ray_modules_move_ahead_of_the_session_cluster_users() -> None:
    items: list[Any] = [
        _Item("unit_a"),
        _Item("deployment", "integration"),
        _Item("failover", "integration", "own_ray"),
        _Item("unit_b"),
        _Item("pods", "integration"),
        _Item("bench", "integration", "own_ray"),
    ]
    pytest_collection_modifyitems(None, items)  # type: ignore[arg-type]
    assert [i.name for i in items] == ["unit_a", "failover", "bench", "unit_b", "deployment", "pods"]
