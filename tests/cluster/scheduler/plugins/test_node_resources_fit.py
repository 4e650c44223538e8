from __future__ import annotations

from typing import Any

import pytest

from cluster.scheduler.framework.cycle_state import CycleState
from cluster.scheduler.framework.status import Code
from cluster.scheduler.plugins import node_resources_fit
from cluster.scheduler.plugins.node_resources_fit import broken_linear, go_div
from tests.cluster.scheduler.plugins.node_pod_builders import info, node, pod

Obj = dict[str, Any]
SMALL = {"cpu": "4", "memory": "8Gi", "pods": "110"}
GPU_NODE = {**SMALL, "example.com/gpu": "4"}


@pytest.mark.parametrize(
    ("args", "allocatable", "existing", "requests", "code", "reasons"),
    [
        pytest.param({}, SMALL, [], {"cpu": "1"}, Code.SUCCESS, (), id="fits"),
        pytest.param({}, SMALL, [{"cpu": "3"}], {"cpu": "1"}, Code.SUCCESS, (), id="fits-exactly"),
        pytest.param(
            {}, SMALL, [{"cpu": "3"}], {"cpu": "1001m"}, Code.UNSCHEDULABLE, ("Insufficient cpu",), id="cpu"
        ),
        pytest.param(
            {},
            SMALL,
            [{"cpu": "3", "memory": "7Gi"}],
            {"cpu": "2", "memory": "2Gi"},
            Code.UNSCHEDULABLE,
            ("Insufficient cpu", "Insufficient memory"),
            id="cpu-and-memory-in-order",
        ),
        pytest.param(
            {},
            SMALL,
            [],
            {"cpu": "5"},
            Code.UNSCHEDULABLE_AND_UNRESOLVABLE,
            ("Insufficient cpu",),
            id="more-than-allocatable-is-unresolvable",
        ),
        pytest.param(
            {},
            {**SMALL, "pods": "1"},
            [{}],
            {},
            Code.UNSCHEDULABLE,
            ("Too many pods",),
            id="too-many-pods-even-best-effort",
        ),
        pytest.param(
            {}, SMALL, [{"cpu": "4", "memory": "8Gi"}], {}, Code.SUCCESS, (), id="best-effort-on-full-node"
        ),
        pytest.param(
            {},
            {**SMALL, "ephemeral-storage": "1Gi"},
            [],
            {"ephemeral-storage": "2Gi"},
            Code.UNSCHEDULABLE_AND_UNRESOLVABLE,
            ("Insufficient ephemeral-storage",),
            id="ephemeral-storage",
        ),
        pytest.param(
            {},
            SMALL,
            [],
            {"example.com/gpu": "1"},
            Code.UNSCHEDULABLE_AND_UNRESOLVABLE,
            ("Insufficient example.com/gpu",),
            id="extended-resource-missing",
        ),
        pytest.param(
            {},
            GPU_NODE,
            [{"example.com/gpu": "3"}],
            {"example.com/gpu": "2"},
            Code.UNSCHEDULABLE,
            ("Insufficient example.com/gpu",),
            id="extended-resource-used-up",
        ),
        pytest.param(
            {"ignoredResources": ["example.com/gpu"]},
            SMALL,
            [],
            {"example.com/gpu": "1"},
            Code.SUCCESS,
            (),
            id="ignored-resource",
        ),
        pytest.param(
            {"ignoredResourceGroups": ["example.com"]},
            SMALL,
            [],
            {"example.com/gpu": "1"},
            Code.SUCCESS,
            (),
            id="ignored-resource-group",
        ),
        pytest.param(
            {"ignoredResourceGroups": ["hugepages-2Mi"]},
            SMALL,
            [],
            {"hugepages-2Mi": "2Mi"},
            Code.UNSCHEDULABLE_AND_UNRESOLVABLE,
            ("Insufficient hugepages-2Mi",),
            id="native-scalar-resources-cannot-be-ignored",
        ),
    ],
)
def test_filter(
    args: Obj,
    allocatable: dict[str, str],
    existing: list[dict[str, str]],
    requests: dict[str, str],
    code: Code,
    reasons: tuple[str, ...],
) -> None:
    plugin = node_resources_fit.new(args, object())
    node_info = info(
        node(allocatable=allocatable), *(pod(f"e{i}", requests=r) for i, r in enumerate(existing))
    )
    incoming = pod(requests=requests)
    state = CycleState()
    assert plugin.pre_filter(state, incoming, [node_info]).is_success()
    status = plugin.filter(state, incoming, node_info)
    assert (status.code, status.reasons) == (code, reasons)
    # Without PreFilter (its state absent) the result is the same.
    assert plugin.filter(CycleState(), incoming, node_info) == status


BIN_PACKING = {"shape": [{"utilization": 0, "score": 0}, {"utilization": 100, "score": 10}]}
SPREADING = {"shape": [{"utilization": 0, "score": 10}, {"utilization": 100, "score": 0}]}


def _strategy(kind: str, resources: list[Obj] | None = None, ratio: Obj | None = None) -> Obj:
    strategy: Obj = {"type": kind}
    if resources is not None:
        strategy["resources"] = resources
    if ratio is not None:
        strategy["requestedToCapacityRatio"] = ratio
    return {"scoringStrategy": strategy}


CPU_ONLY = [{"name": "cpu", "weight": 1}]


@pytest.mark.parametrize(
    ("args", "allocatable", "existing", "requests", "expected"),
    [
        pytest.param({}, SMALL, [], {"cpu": "1", "memory": "2Gi"}, 75, id="least-empty-node"),
        pytest.param(
            {},
            SMALL,
            [{"cpu": "1", "memory": "2Gi"}],
            {"cpu": "1", "memory": "2Gi"},
            50,
            id="least-busy-node",
        ),
        pytest.param({}, SMALL, [], {}, 97, id="least-best-effort-counts-non-zero-defaults"),
        pytest.param(
            {},
            SMALL,
            [{}],
            {"cpu": "1", "memory": "2Gi"},
            72,
            id="least-existing-best-effort-counts-defaults",
        ),
        pytest.param(
            _strategy("LeastAllocated", [{"name": "cpu", "weight": 2}, {"name": "memory", "weight": 1}]),
            SMALL,
            [],
            {"cpu": "1", "memory": "4Gi"},
            66,
            id="least-weighted",
        ),
        pytest.param(
            {}, SMALL, [], {"cpu": "5", "memory": "2Gi"}, 37, id="least-over-capacity-resource-is-0"
        ),
        pytest.param(
            {},
            {"cpu": "4", "pods": "110"},
            [],
            {"cpu": "1", "memory": "2Gi"},
            75,
            id="least-missing-resource-left-out",
        ),
        pytest.param(
            _strategy("LeastAllocated", [*CPU_ONLY, {"name": "example.com/gpu", "weight": 1}]),
            GPU_NODE,
            [],
            {"cpu": "2"},
            50,
            id="least-unrequested-extended-resource-left-out",
        ),
        pytest.param(
            _strategy("LeastAllocated", [*CPU_ONLY, {"name": "example.com/gpu", "weight": 1}]),
            GPU_NODE,
            [],
            {"cpu": "2", "example.com/gpu": "1"},
            62,
            id="least-requested-extended-resource-counts",
        ),
        pytest.param(
            _strategy("MostAllocated"), SMALL, [], {"cpu": "1", "memory": "2Gi"}, 25, id="most-empty"
        ),
        pytest.param(
            _strategy("MostAllocated"),
            SMALL,
            [{"cpu": "2", "memory": "4Gi"}],
            {"cpu": "1", "memory": "2Gi"},
            75,
            id="most-busy",
        ),
        pytest.param(
            _strategy("MostAllocated"),
            SMALL,
            [],
            {"cpu": "8", "memory": "2Gi"},
            62,
            id="most-over-capacity-capped",
        ),
        pytest.param(
            _strategy("RequestedToCapacityRatio", ratio=BIN_PACKING),
            SMALL,
            [],
            {"cpu": "1", "memory": "2Gi"},
            25,
            id="ratio-bin-packing",
        ),
        pytest.param(
            _strategy("RequestedToCapacityRatio", ratio=SPREADING),
            SMALL,
            [],
            {"cpu": "1", "memory": "2Gi"},
            75,
            id="ratio-spreading",
        ),
        pytest.param(
            _strategy(
                "RequestedToCapacityRatio",
                [{"name": "cpu", "weight": 1}, {"name": "memory", "weight": 2}],
                BIN_PACKING,
            ),
            SMALL,
            [],
            {"cpu": "1", "memory": "4Gi"},
            42,
            id="ratio-weighted-mean-rounded",
        ),
        pytest.param(
            _strategy(
                "RequestedToCapacityRatio",
                ratio={
                    "shape": [
                        {"utilization": 0, "score": 0},
                        {"utilization": 50, "score": 0},
                        {"utilization": 100, "score": 10},
                    ]
                },
            ),
            SMALL,
            [],
            {"cpu": "1", "memory": "6Gi"},
            50,
            id="ratio-zero-scores-left-out-of-mean",
        ),
        pytest.param(
            _strategy(
                "RequestedToCapacityRatio",
                CPU_ONLY,
                {"shape": [{"utilization": 0, "score": 10}, {"utilization": 30, "score": 0}]},
            ),
            SMALL,
            [],
            {"cpu": "1"},
            17,
            id="ratio-interpolation-truncates-toward-zero",
        ),
        pytest.param(
            _strategy("RequestedToCapacityRatio", CPU_ONLY, BIN_PACKING),
            SMALL,
            [],
            {"cpu": "5"},
            100,
            id="ratio-over-capacity-is-full-utilization",
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
    plugin = node_resources_fit.new(args, object())
    node_info = info(
        node(allocatable=allocatable), *(pod(f"e{i}", requests=r) for i, r in enumerate(existing))
    )
    incoming = pod(requests=requests)
    state = CycleState()
    assert plugin.pre_score(state, incoming, [node_info]).is_success()
    score, status = plugin.score(state, incoming, node_info)
    assert status.is_success()
    assert score == expected
    assert plugin.score(CycleState(), incoming, node_info) == (score, status)


@pytest.mark.parametrize(
    ("p", "expected"),
    [
        pytest.param(-5, 100, id="below-first-point"),
        pytest.param(0, 100, id="first-point"),
        pytest.param(25, 17, id="between-truncated"),
        pytest.param(30, 0, id="last-point"),
        pytest.param(90, 0, id="beyond-last-point"),
    ],
)
def test_broken_linear(p: int, expected: int) -> None:
    assert broken_linear([(0, 100), (30, 0)])(p) == expected


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        pytest.param(7, 2, 3, id="positive"),
        pytest.param(-7, 2, -3, id="negative-truncates-toward-zero"),
        pytest.param(7, -2, -3, id="negative-divisor"),
        pytest.param(-8, 2, -4, id="exact"),
    ],
)
def test_go_div(a: int, b: int, expected: int) -> None:
    assert go_div(a, b) == expected


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(_strategy("Random"), "unsupported value", id="unknown-strategy"),
        pytest.param(
            _strategy("LeastAllocated", [{"name": "cpu", "weight": 0}]), "weight 0", id="weight-zero"
        ),
        pytest.param(
            _strategy("MostAllocated", [{"name": "cpu", "weight": 101}]), "weight 101", id="weight-big"
        ),
        pytest.param(_strategy("RequestedToCapacityRatio"), "at least one point", id="ratio-without-shape"),
        pytest.param(
            _strategy(
                "RequestedToCapacityRatio",
                ratio={"shape": [{"utilization": 50, "score": 1}, {"utilization": 10, "score": 2}]},
            ),
            "increasing",
            id="ratio-unsorted-shape",
        ),
        pytest.param(
            _strategy("RequestedToCapacityRatio", ratio={"shape": [{"utilization": 0, "score": 11}]}),
            "score 0..10",
            id="ratio-score-out-of-range",
        ),
    ],
)
def test_invalid_args(args: Obj, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        node_resources_fit.new(args, object())
