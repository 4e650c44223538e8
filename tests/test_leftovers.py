"""The leftover check's rule: only what the run added, minus allowed patterns, counts."""

from __future__ import annotations

import pytest

from tests.leftovers import new_leftovers


@pytest.mark.parametrize(
    ("before", "after", "allowed", "expected"),
    [
        pytest.param({"raykube-heavy.lock"}, {"raykube-heavy.lock"}, [], [], id="pre-existing-ignored"),
        pytest.param(
            set(),
            {"raykube-kubeconfig-1.key", "raykube-kubeconfig-2.crt"},
            [],
            ["raykube-kubeconfig-1.key", "raykube-kubeconfig-2.crt"],
            id="new-files-reported",
        ),
        pytest.param(set(), {"raykube-cri-ab.sock"}, ["raykube-cri-*"], [], id="allowed-pattern"),
        pytest.param({"raykube-x"}, set(), [], [], id="removed-during-run"),
    ],
)
def test_new_leftovers(before: set[str], after: set[str], allowed: list[str], expected: list[str]) -> None:
    assert new_leftovers(frozenset(before), frozenset(after), allowed) == expected
