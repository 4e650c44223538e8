"""One scheduling cycle: feasible-node count, round-robin start, scoring, FailedScheduling text."""

from __future__ import annotations

import random
from typing import Any

import pytest

from cluster.scheduler.config import load_config
from cluster.scheduler.framework import Code, PostFilterResult, Snapshot, SnapshotHandle, Status
from cluster.scheduler.framework.runtime import Framework
from cluster.scheduler.schedule_one import (
    fit_error_message,
    num_feasible_nodes_to_find,
    run_binding_cycle,
    schedule_one,
)
from tests.cluster.scheduler import fakes
from tests.cluster.scheduler.fakes import FilterFake, PostFilterFake, ReserveFake, ScoreFake

REGISTRY = {
    "F1": fakes.factory(FilterFake, "F1"),
    "F2": fakes.factory(FilterFake, "F2"),
    "S1": fakes.factory(ScoreFake, "S1"),
    "R1": fakes.factory(ReserveFake, "R1"),
    "P1": fakes.factory(PostFilterFake, "P1"),
}


def framework(
    names: list[str], args: dict[str, dict[str, Any]] | None = None, percentage: int | None = None
) -> Framework:
    profile: dict[str, Any] = {
        "plugins": {"multiPoint": {"enabled": [{"name": n} for n in names], "disabled": [{"name": "*"}]}},
        "pluginConfig": [{"name": n, "args": a} for n, a in (args or {}).items()],
    }
    if percentage is not None:
        profile["percentageOfNodesToScore"] = percentage
    return Framework(load_config({"profiles": [profile]}).profiles[0], REGISTRY, SnapshotHandle())


def snapshot(count: int) -> Snapshot:
    return Snapshot([fakes.node(f"n{i}") for i in range(count)], [])


@pytest.mark.parametrize(
    ("percentage", "nodes", "expected"),
    [
        pytest.param(0, 50, 50, id="small-cluster-all"),
        pytest.param(0, 99, 99, id="just-under-100"),
        pytest.param(0, 100, 100, id="100-adaptive-floor"),
        pytest.param(0, 1000, 420, id="adaptive-1000"),  # 50 - 8 = 42%
        pytest.param(0, 5000, 500, id="adaptive-5000"),  # 50 - 40 = 10%
        pytest.param(0, 6000, 300, id="adaptive-min-5pct"),  # 50 - 48 = 2% -> 5%
        pytest.param(10, 500, 100, id="floor-100"),
        pytest.param(30, 1000, 300, id="explicit"),
        pytest.param(100, 1000, 1000, id="all"),
    ],
)
def test_num_feasible_nodes_to_find(percentage: int, nodes: int, expected: int) -> None:
    assert num_feasible_nodes_to_find(percentage, nodes) == expected


@pytest.mark.parametrize(
    ("filtered", "pre", "post", "expected"),
    [
        pytest.param(
            {
                **{f"c{i}": Status.unschedulable("Insufficient cpu") for i in range(3)},
                **{f"t{i}": Status.unschedulable("node(s) had untolerated taint {x: y}") for i in range(2)},
            },
            "",
            "",
            "0/5 nodes are available: 2 node(s) had untolerated taint {x: y}, 3 Insufficient cpu.",
            id="histogram-sorted-as-strings",
        ),
        pytest.param(
            {
                "a": Status.unschedulable("Insufficient cpu", "Insufficient memory"),
                "b": Status.unschedulable("Insufficient cpu"),
            },
            "",
            "preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling.",
            "0/2 nodes are available: 1 Insufficient memory, 2 Insufficient cpu. "
            "preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling.",
            id="multiple-reasons-and-postfilter",
        ),
        pytest.param(
            {"a": Status.unschedulable("x"), "b": Status.unschedulable("x")},
            "pod has unbound immediate PersistentVolumeClaims",
            "",
            "0/2 nodes are available: pod has unbound immediate PersistentVolumeClaims.",
            id="prefilter-replaces-histogram",
        ),
    ],
)
def test_fit_error_message(filtered: dict[str, Status], pre: str, post: str, expected: str) -> None:
    assert fit_error_message(len(filtered), filtered, pre, post) == expected


@pytest.mark.parametrize(
    ("nodes", "start", "percentage", "reject", "evaluated", "feasible", "chosen"),
    [
        pytest.param(5, 0, 0, [], 5, 5, "n0", id="all-feasible-first-wins-tie"),
        pytest.param(5, 3, 0, [], 5, 5, "n3", id="round-robin-start"),
        pytest.param(5, 3, 0, ["n3", "n4"], 5, 3, "n0", id="wraps-around"),
        pytest.param(300, 0, 10, [], 100, 100, "n0", id="stops-after-enough"),
        pytest.param(300, 250, 10, ["n250"], 101, 100, "n251", id="counts-rejected-as-evaluated"),
    ],
)
def test_search_window(
    nodes: int, start: int, percentage: int, reject: list[str], evaluated: int, feasible: int, chosen: str
) -> None:
    fw = framework(["F1", "S1"], {"F1": {"reject": reject}})
    result = schedule_one(
        fw, fakes.pod("p"), snapshot(nodes), percentage_of_nodes_to_score=percentage, start_index=start
    )
    assert (result.evaluated, result.feasible, result.node_name) == (evaluated, feasible, chosen)
    assert result.status.is_success()


def test_profile_percentage_overrides_argument() -> None:
    fw = framework(["F1"], percentage=100)
    result = schedule_one(fw, fakes.pod("p"), snapshot(300), percentage_of_nodes_to_score=10, start_index=0)
    assert result.evaluated == 300


def test_highest_score_wins_and_pod_is_assumed() -> None:
    fw = framework(["F1", "S1"], {"S1": {"scores": {"n0": 10, "n1": 50, "n2": 30}}})
    snap = snapshot(3)
    result = schedule_one(fw, fakes.pod("p", cpu="1"), snap, percentage_of_nodes_to_score=0, start_index=0)
    assert result.node_name == "n1"
    info = snap.get("n1")
    assert info is not None and info.requested.milli_cpu == 1000


def test_ties_broken_by_injected_rng() -> None:
    chosen = set()
    for seed in range(20):
        fw = framework(["F1", "S1"])
        result = schedule_one(
            fw,
            fakes.pod("p"),
            snapshot(4),
            percentage_of_nodes_to_score=0,
            start_index=0,
            rng=random.Random(seed),
        )
        chosen.add(result.node_name)
    assert len(chosen) > 1


def test_unschedulable_message_and_postfilter_nomination() -> None:
    victim = fakes.pod("victim")
    args = {
        "F1": {"reject": ["n0", "n1", "n2"], "reason": "Insufficient cpu"},
        "F2": {"reject": ["n3", "n4"], "reason": "node(s) had untolerated taint {x: y}"},
        "P1": {"post_filter": Status(), "result": PostFilterResult("n1", [victim])},
    }
    fw = framework(["F1", "F2", "P1"], args)
    result = schedule_one(fw, fakes.pod("p"), snapshot(5), percentage_of_nodes_to_score=0, start_index=0)
    assert result.node_name is None
    assert result.status.code == Code.UNSCHEDULABLE
    assert (
        result.message
        == "0/5 nodes are available: 2 node(s) had untolerated taint {x: y}, 3 Insufficient cpu."
    )
    assert (result.nominated, result.victims, result.evaluated) == ("n1", [victim], 5)
    assert set(result.filtered) == {f"n{i}" for i in range(5)}


def test_postfilter_message_is_appended() -> None:
    msg = "preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling."
    fw = framework(
        ["F1", "P1"],
        {"F1": {"reject": ["n0", "n1"], "reason": "r"}, "P1": {"post_filter": Status.unschedulable(msg)}},
    )
    result = schedule_one(fw, fakes.pod("p"), snapshot(2), percentage_of_nodes_to_score=0, start_index=0)
    assert result.message == f"0/2 nodes are available: 2 r. {msg}"
    assert result.nominated is None


def test_prefilter_rejection() -> None:
    fw = framework(["F1"], {"F1": {"pre_filter": Status.unschedulable("nope", resolvable=False)}})
    result = schedule_one(fw, fakes.pod("p"), snapshot(3), percentage_of_nodes_to_score=0, start_index=0)
    assert result.message == "0/3 nodes are available: nope."
    assert len(result.filtered) == 3


def test_no_nodes() -> None:
    result = schedule_one(
        framework(["F1"]), fakes.pod("p"), snapshot(0), percentage_of_nodes_to_score=0, start_index=0
    )
    assert result.status.code == Code.UNSCHEDULABLE_AND_UNRESOLVABLE
    assert result.message == "no nodes available to schedule pods"


def test_filter_error_stops_the_cycle() -> None:
    fw = framework(["F1"], {"F1": {"error": ["n1"]}})
    result = schedule_one(fw, fakes.pod("p"), snapshot(3), percentage_of_nodes_to_score=0, start_index=1)
    assert result.status.code == Code.ERROR and result.node_name is None and result.evaluated == 1


@pytest.mark.parametrize(
    ("args", "code", "placed", "log_tail"),
    [
        pytest.param({}, Code.SUCCESS, True, ["R1.reserve", "R1.permit"], id="reserve-permit"),
        pytest.param(
            {"reserve": Status.unschedulable("full")},
            Code.UNSCHEDULABLE,
            False,
            ["R1.reserve", "R1.unreserve"],
            id="reserve-fails",
        ),
        pytest.param(
            {"permit": Status.unschedulable("denied")},
            Code.UNSCHEDULABLE,
            False,
            ["R1.reserve", "R1.permit", "R1.unreserve"],
            id="permit-rejects",
        ),
        pytest.param(
            {"permit": Status.wait(), "timeout": 7},
            Code.WAIT,
            True,
            ["R1.reserve", "R1.permit"],
            id="permit-waits",
        ),
    ],
)
def test_reserve_and_permit(args: dict[str, Any], code: Code, placed: bool, log_tail: list[str]) -> None:
    log: list[str] = []
    fw = framework(["F1", "R1"], {"R1": {**args, "log": log}})
    snap = snapshot(1)
    result = schedule_one(fw, fakes.pod("p", cpu="1"), snap, percentage_of_nodes_to_score=0, start_index=0)
    assert result.status.code == code and log == log_tail
    assert (result.node_name == "n0") is placed
    info = snap.get("n0")
    assert info is not None and len(info.pods) == (1 if placed else 0)
    if code == Code.WAIT:
        assert result.permit_timeout == 7


@pytest.mark.parametrize(
    ("bind", "ok", "log_tail", "pods_left"),
    [
        pytest.param(Status(), True, ["R1.pre_bind", "R1.bind", "R1.post_bind"], 1, id="bound"),
        pytest.param(
            Status.error("api down"), False, ["R1.pre_bind", "R1.bind", "R1.unreserve"], 0, id="bind-fails"
        ),
        pytest.param(Status.skip(), False, ["R1.pre_bind", "R1.bind", "R1.unreserve"], 0, id="nobody-binds"),
    ],
)
def test_binding_cycle(bind: Status, ok: bool, log_tail: list[str], pods_left: int) -> None:
    log: list[str] = []
    fw = framework(["R1"], {"R1": {"bind": bind, "log": log}})
    snap = snapshot(1)
    pod = fakes.pod("p")
    result = schedule_one(fw, pod, snap, percentage_of_nodes_to_score=0, start_index=0)
    log.clear()
    status = run_binding_cycle(fw, result, pod, snap)
    assert status.is_success() is ok and log == log_tail
    info = snap.get("n0")
    assert info is not None and len(info.pods) == pods_left


def test_consecutive_cycles_see_assumed_pods() -> None:
    fw = framework(["F1"])
    snap = Snapshot([fakes.node("n0", cpu="1")], [])
    for i in range(3):
        schedule_one(fw, fakes.pod(f"p{i}", cpu="300m"), snap, percentage_of_nodes_to_score=0, start_index=0)
    info = snap.get("n0")
    assert info is not None and info.requested.milli_cpu == 900
