from __future__ import annotations

from typing import Any

import pytest

from cluster.scheduler.framework.cycle_state import CycleState
from cluster.scheduler.framework.status import Code
from cluster.scheduler.plugins import taint_toleration
from cluster.scheduler.plugins.taint_toleration import default_normalize_score, tolerates_taint
from tests.cluster.scheduler.plugins.node_pod_builders import info, node, pod

Obj = dict[str, Any]
GPU = {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}


@pytest.mark.parametrize(
    ("toleration", "taint", "expected"),
    [
        pytest.param({"key": "dedicated", "operator": "Equal", "value": "gpu"}, GPU, True, id="equal"),
        pytest.param({"key": "dedicated", "value": "gpu"}, GPU, True, id="operator-defaults-to-equal"),
        pytest.param({"key": "dedicated", "operator": "Equal", "value": "cpu"}, GPU, False, id="other-value"),
        pytest.param({"key": "dedicated", "operator": "Exists"}, GPU, True, id="exists"),
        pytest.param({"operator": "Exists"}, GPU, True, id="empty-key-exists-matches-all"),
        pytest.param({"key": "other", "operator": "Exists"}, GPU, False, id="other-key"),
        pytest.param(
            {"key": "dedicated", "operator": "Exists", "effect": "NoExecute"}, GPU, False, id="other-effect"
        ),
        pytest.param(
            {"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}, GPU, True, id="same-effect"
        ),
        pytest.param({"key": "dedicated", "operator": "Gte", "value": "gpu"}, GPU, False, id="bad-operator"),
        pytest.param(
            {"key": "k", "operator": "Equal"}, {"key": "k", "effect": "NoSchedule"}, True, id="no-values"
        ),
    ],
)
def test_tolerates_taint(toleration: Obj, taint: Obj, expected: bool) -> None:
    assert tolerates_taint(toleration, taint) is expected


@pytest.mark.parametrize(
    ("taints", "tolerations", "code", "reasons"),
    [
        pytest.param([], None, Code.SUCCESS, (), id="no-taints"),
        pytest.param(
            [GPU],
            None,
            Code.UNSCHEDULABLE_AND_UNRESOLVABLE,
            ("node(s) had untolerated taint {dedicated: gpu}",),
            id="untolerated-no-schedule",
        ),
        pytest.param(
            [{"key": "evict", "effect": "NoExecute"}],
            None,
            Code.UNSCHEDULABLE_AND_UNRESOLVABLE,
            ("node(s) had untolerated taint {evict: }",),
            id="untolerated-no-execute-without-value",
        ),
        pytest.param(
            [{"key": "soft", "value": "x", "effect": "PreferNoSchedule"}],
            None,
            Code.SUCCESS,
            (),
            id="soft-only",
        ),
        pytest.param([GPU], [{"key": "dedicated", "operator": "Exists"}], Code.SUCCESS, (), id="tolerated"),
        pytest.param(
            [GPU, {"key": "zone", "value": "a", "effect": "NoSchedule"}],
            [{"key": "dedicated", "operator": "Exists"}],
            Code.UNSCHEDULABLE_AND_UNRESOLVABLE,
            ("node(s) had untolerated taint {zone: a}",),
            id="first-untolerated-reported",
        ),
    ],
)
def test_filter(
    taints: list[Obj], tolerations: list[Obj] | None, code: Code, reasons: tuple[str, ...]
) -> None:
    status = taint_toleration.new({}, object()).filter(
        CycleState(), pod(tolerations=tolerations), info(node(taints=taints))
    )
    assert (status.code, status.reasons) == (code, reasons)


def _soft(key: str) -> Obj:
    return {"key": key, "value": "v", "effect": "PreferNoSchedule"}


@pytest.mark.parametrize(
    ("node_taints", "tolerations", "expected"),
    [
        pytest.param(
            {"a": [], "b": [_soft("x")], "c": [_soft("x"), _soft("y")]},
            None,
            {"a": 100, "b": 50, "c": 0},
            id="fewer-soft-taints-score-higher",
        ),
        pytest.param(
            {"a": [_soft("x"), _soft("y")], "b": [_soft("x")]},
            [{"key": "x", "operator": "Exists", "effect": "PreferNoSchedule"}],
            {"a": 0, "b": 100},
            id="tolerated-soft-taint-does-not-count",
        ),
        pytest.param(
            {"a": [_soft("x")], "b": []},
            [{"key": "x", "operator": "Exists", "effect": "NoSchedule"}],
            {"a": 0, "b": 100},
            id="no-schedule-toleration-ignored-for-soft-taints",
        ),
        pytest.param(
            {"a": [GPU], "b": []},
            None,
            {"a": 100, "b": 100},
            id="hard-taints-do-not-count-all-zero-gives-100",
        ),
        pytest.param(
            {"a": [_soft("x"), _soft("y"), _soft("z")], "b": [_soft("x")]},
            None,
            {"a": 0, "b": 67},
            id="integer-scaling",
        ),
    ],
)
def test_score_and_normalize(
    node_taints: dict[str, list[Obj]], tolerations: list[Obj] | None, expected: dict[str, int]
) -> None:
    plugin = taint_toleration.new({}, object())
    infos = [info(node(name, taints=taints)) for name, taints in node_taints.items()]
    the_pod = pod(tolerations=tolerations)
    state = CycleState()
    assert plugin.pre_score(state, the_pod, infos).is_success()
    scores = {i.name: plugin.score(state, the_pod, i)[0] for i in infos}
    assert plugin.normalize_score(state, the_pod, scores).is_success()
    assert scores == expected


@pytest.mark.parametrize(
    ("raw", "reverse", "expected"),
    [
        pytest.param({"a": 0, "b": 0}, False, {"a": 0, "b": 0}, id="all-zero"),
        pytest.param({"a": 0, "b": 0}, True, {"a": 100, "b": 100}, id="all-zero-reversed"),
        pytest.param({"a": 3, "b": 8, "c": 0}, False, {"a": 37, "b": 100, "c": 0}, id="scaled-truncated"),
        pytest.param({"a": 3, "b": 8, "c": 0}, True, {"a": 63, "b": 0, "c": 100}, id="reversed"),
    ],
)
def test_default_normalize_score(raw: dict[str, int], reverse: bool, expected: dict[str, int]) -> None:
    default_normalize_score(raw, reverse=reverse)
    assert raw == expected
