"""Taints and tolerations: which toleration matches which taint (core/v1 ``ToleratesTaint``), the
first matching toleration, and the first untolerated taint among those with chosen effects."""

from __future__ import annotations

from typing import Any

import pytest

from cluster.machinery.taints import (
    find_untolerated_taint,
    matching_toleration,
    tolerates_taint,
    tolerations_tolerate_taint,
)

Obj = dict[str, Any]
GPU: Obj = {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}
UNREACHABLE: Obj = {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"}
SOFT: Obj = {"key": "spot", "value": "yes", "effect": "PreferNoSchedule"}


@pytest.mark.parametrize(
    ("toleration", "taint", "expected"),
    [
        pytest.param(
            {"key": "dedicated", "operator": "Equal", "value": "gpu"}, GPU, True, id="equal-same-value"
        ),
        pytest.param({"key": "dedicated", "value": "gpu"}, GPU, True, id="operator-defaults-to-equal"),
        pytest.param(
            {"key": "dedicated", "operator": "Equal", "value": "cpu"}, GPU, False, id="equal-other-value"
        ),
        pytest.param({"key": "dedicated", "operator": "Equal"}, GPU, False, id="equal-missing-value"),
        pytest.param({"key": "dedicated", "operator": "Exists"}, GPU, True, id="exists-any-value"),
        pytest.param({"key": "other", "operator": "Exists"}, GPU, False, id="other-key"),
        pytest.param({"operator": "Exists"}, GPU, True, id="empty-key-exists-matches-all"),
        pytest.param({"operator": "Exists"}, UNREACHABLE, True, id="empty-key-exists-other-effect"),
        pytest.param({"operator": "Equal"}, UNREACHABLE, False, id="empty-key-equal-matches-nothing"),
        pytest.param({}, UNREACHABLE, False, id="empty-toleration-matches-nothing"),
        pytest.param(
            {"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}, GPU, True, id="same-effect"
        ),
        pytest.param(
            {"key": "dedicated", "operator": "Exists", "effect": "NoExecute"}, GPU, False, id="other-effect"
        ),
        pytest.param(
            {"key": "dedicated", "operator": "Exists", "effect": ""}, GPU, True, id="empty-effect-all"
        ),
        pytest.param(
            {"key": "dedicated", "operator": "Gt", "value": "gpu"}, GPU, False, id="unknown-operator"
        ),
        pytest.param(
            {"key": "node.kubernetes.io/unreachable", "operator": "Equal"}, UNREACHABLE, True, id="no-values"
        ),
    ],
)
def test_tolerates_taint(toleration: Obj, taint: Obj, expected: bool) -> None:
    assert tolerates_taint(toleration, taint) is expected
    assert (
        tolerations_tolerate_taint([{"key": "unrelated", "operator": "Exists"}, toleration], taint)
        is expected
    )


def test_no_tolerations_tolerate_nothing() -> None:
    assert tolerations_tolerate_taint([], GPU) is False


@pytest.mark.parametrize(
    ("tolerations", "expected"),
    [
        pytest.param([], None, id="none"),
        pytest.param([{"key": "other", "operator": "Exists"}], None, id="no-match"),
        pytest.param(
            [
                {"key": "other", "operator": "Exists"},
                {"operator": "Exists", "tolerationSeconds": 5},
                {"key": "dedicated", "operator": "Exists"},
            ],
            1,
            id="first-match-wins",
        ),
    ],
)
def test_matching_toleration(tolerations: list[Obj], expected: int | None) -> None:
    got = matching_toleration(tolerations, GPU)
    if expected is None:
        assert got is None
    else:
        assert got is tolerations[expected]


HARD = ("NoSchedule", "NoExecute")


@pytest.mark.parametrize(
    ("taints", "tolerations", "effects", "expected"),
    [
        pytest.param([], [], HARD, None, id="no-taints"),
        pytest.param([GPU, UNREACHABLE], [], HARD, 0, id="first-in-order"),
        pytest.param(
            [GPU, UNREACHABLE], [{"key": "dedicated", "operator": "Exists"}], HARD, 1, id="skips-tolerated"
        ),
        pytest.param([GPU, UNREACHABLE], [{"operator": "Exists"}], HARD, None, id="all-tolerated"),
        pytest.param([SOFT], [], HARD, None, id="effect-not-in-set-ignored"),
        pytest.param([GPU, SOFT], [], ("PreferNoSchedule",), 1, id="only-chosen-effects"),
        pytest.param([GPU, UNREACHABLE], [], ("NoExecute",), 1, id="no-execute-only"),
        pytest.param(
            [GPU, UNREACHABLE],
            [{"effect": "NoExecute", "operator": "Exists"}],
            ("NoExecute",),
            None,
            id="effect-wide",
        ),
    ],
)
def test_find_untolerated_taint(
    taints: list[Obj], tolerations: list[Obj], effects: tuple[str, ...], expected: int | None
) -> None:
    got = find_untolerated_taint(taints, tolerations, effects)
    if expected is None:
        assert got is None
    else:
        assert got is taints[expected]
