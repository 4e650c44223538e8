from __future__ import annotations

from typing import Any

import pytest

from cluster.scheduler.framework.cycle_state import CycleState
from cluster.scheduler.framework.status import Code
from cluster.scheduler.plugins import balanced_allocation
from cluster.scheduler.plugins.balanced_allocation import balanced_resource_score
from tests.cluster.scheduler.plugins.node_pod_builders import info, node, pod

Obj = dict[str, Any]
SMALL = {"cpu": "4", "memory": "8Gi", "ephemeral-storage": "10Gi", "pods": "110"}
THREE = {"resources": [{"name": "cpu"}, {"name": "memory"}, {"name": "ephemeral-storage"}]}


@pytest.mark.parametrize(
    ("args", "allocatable", "existing", "requests", "expected"),
    [
        pytest.param({}, SMALL, [], {"cpu": "2", "memory": "4Gi"}, 100, id="perfectly-balanced"),
        pytest.param({}, SMALL, [], {"cpu": "1", "memory": "4Gi"}, 87, id="quarter-vs-half"),
        pytest.param({}, SMALL, [], {"cpu": "2"}, 75, id="cpu-only-request"),
        pytest.param(
            {}, SMALL, [{"cpu": "1"}], {"cpu": "1", "memory": "4Gi"}, 100, id="existing-pods-counted"
        ),
        pytest.param(
            {}, SMALL, [{}], {"cpu": "2", "memory": "4Gi"}, 100, id="best-effort-existing-adds-nothing"
        ),
        pytest.param({}, SMALL, [], {"cpu": "8", "memory": "4Gi"}, 75, id="fraction-capped-at-one"),
        pytest.param(
            {}, {"cpu": "4", "pods": "110"}, [], {"cpu": "1", "memory": "4Gi"}, 100, id="missing-resource"
        ),
        pytest.param(
            THREE,
            SMALL,
            [],
            {"cpu": "2", "memory": "4Gi", "ephemeral-storage": "1Gi"},
            81,
            id="three-resources",
        ),
    ],
)
def test_score(
    args: Obj,
    allocatable: dict[str, str],
    existing: list[dict[str, str]],
    requests: dict[str, str],
    expected: int,
) -> None:
    plugin = balanced_allocation.new(args, object())
    node_info = info(
        node(allocatable=allocatable), *(pod(f"e{i}", requests=r) for i, r in enumerate(existing))
    )
    incoming = pod(requests=requests)
    state = CycleState()
    assert plugin.pre_score(state, incoming, [node_info]).is_success()
    score, status = plugin.score(state, incoming, node_info)
    assert (score, status.is_success()) == (expected, True)
    assert plugin.score(CycleState(), incoming, node_info)[0] == expected


@pytest.mark.parametrize(
    ("requests", "code"),
    [
        pytest.param({}, Code.SKIP, id="best-effort-skips"),
        pytest.param({"example.com/gpu": "1"}, Code.SKIP, id="only-unscored-resources-skips"),
        pytest.param({"memory": "1Mi"}, Code.SUCCESS, id="any-request-scores"),
    ],
)
def test_pre_score_skips_best_effort(requests: dict[str, str], code: Code) -> None:
    plugin = balanced_allocation.new({}, object())
    node_info = info(node(allocatable=SMALL))
    assert plugin.pre_score(CycleState(), pod(requests=requests), [node_info]).code == code


@pytest.mark.parametrize(
    ("requested", "allocatable", "expected"),
    [
        pytest.param([], [], 100, id="no-resources"),
        pytest.param([5], [10], 100, id="one-resource"),
        pytest.param([0, 10], [10, 10], 50, id="two-extremes"),
        pytest.param([1, 5, 0], [0, 10, 10], 75, id="zero-allocatable-left-out"),
    ],
)
def test_balanced_resource_score(requested: list[int], allocatable: list[int], expected: int) -> None:
    assert balanced_resource_score(requested, allocatable) == expected
