"""The Framework: multiPoint expansion, filter short-circuit, weighted scores, reserve/permit/bind."""

from __future__ import annotations

from typing import Any

import pytest

from cluster.scheduler.config import load_config
from cluster.scheduler.framework import Code, CycleState, NodeInfo, SnapshotHandle, Status
from cluster.scheduler.framework.runtime import Framework, FrameworkError
from tests.cluster.scheduler import fakes
from tests.cluster.scheduler.fakes import FilterFake, PostFilterFake, ReserveFake, ScoreFake

REGISTRY = {
    "F1": fakes.factory(FilterFake, "F1"),
    "F2": fakes.factory(FilterFake, "F2"),
    "S1": fakes.factory(ScoreFake, "S1"),
    "S2": fakes.factory(ScoreFake, "S2"),
    "R1": fakes.factory(ReserveFake, "R1"),
    "R2": fakes.factory(ReserveFake, "R2"),
    "P1": fakes.factory(PostFilterFake, "P1"),
    "P2": fakes.factory(PostFilterFake, "P2"),
}


def make_profile(plugins: dict[str, Any], args: dict[str, dict[str, Any]] | None = None) -> Framework:
    # Start from no default plugins so only the fakes run.
    plugins = {**plugins, "multiPoint": {**plugins.get("multiPoint", {}), "disabled": [{"name": "*"}]}}
    raw = {"plugins": plugins, "pluginConfig": [{"name": n, "args": a} for n, a in (args or {}).items()]}
    return Framework(load_config({"profiles": [raw]}).profiles[0], REGISTRY, SnapshotHandle())


def names(plugins: list[Any]) -> list[str]:
    return [p.name() for p in plugins]


def enabled(*names: str, weights: dict[str, int] | None = None) -> dict[str, Any]:
    return {"enabled": [{"name": n, "weight": (weights or {}).get(n, 0)} for n in names]}


NODES = [NodeInfo(fakes.node(n)) for n in ("a", "b", "c")]
POD = fakes.pod("p")


@pytest.mark.parametrize(
    ("plugins", "point", "expected"),
    [
        pytest.param(
            {"multiPoint": enabled("F1", "S1", "R1")}, "filter_plugins", ["F1"], id="multipoint-filter"
        ),
        pytest.param(
            {"multiPoint": enabled("F1", "S1", "R1")}, "reserve_plugins", ["R1"], id="multipoint-reserve"
        ),
        pytest.param(
            {"multiPoint": enabled("F1", "F2"), "filter": enabled("F2")},
            "filter_plugins",
            ["F2", "F1"],
            id="specific-overrides-first",
        ),
        pytest.param(
            {"multiPoint": enabled("F1"), "filter": enabled("F2")},
            "filter_plugins",
            ["F1", "F2"],
            id="specific-only-last",
        ),
        pytest.param(
            {"multiPoint": enabled("F1", "F2"), "filter": {"disabled": [{"name": "F1"}]}},
            "filter_plugins",
            ["F2"],
            id="disabled-at-point",
        ),
        pytest.param(
            {"multiPoint": enabled("F1", "F2"), "preFilter": {"disabled": [{"name": "*"}]}},
            "pre_filter_plugins",
            [],
            id="disabled-star",
        ),
        pytest.param({"multiPoint": enabled("R1")}, "bind_plugins", ["R1"], id="bind"),
    ],
)
def test_expansion(plugins: dict[str, Any], point: str, expected: list[str]) -> None:
    assert names(getattr(make_profile(plugins), point)) == expected


def test_unknown_plugin_and_wrong_point() -> None:
    with pytest.raises(FrameworkError, match='plugin "Nope" does not exist'):
        make_profile({"filter": enabled("Nope")})
    with pytest.raises(FrameworkError, match='plugin "S1" does not extend filter plugin'):
        make_profile({"filter": enabled("S1")})


def test_plugin_args_reach_the_factory() -> None:
    fw = make_profile({"multiPoint": enabled("F1")}, {"F1": {"reason": "custom"}})
    assert fw.plugins["F1"].args == {"reason": "custom"}


@pytest.mark.parametrize(
    ("args", "expected_status", "expected_log"),
    [
        pytest.param({}, Code.SUCCESS, ["F1.filter", "F2.filter"], id="all-pass"),
        pytest.param({"F1": {"reject": ["a"]}}, Code.UNSCHEDULABLE, ["F1.filter"], id="stops-at-first"),
        pytest.param({"F2": {"reject": ["a"]}}, Code.UNSCHEDULABLE, ["F1.filter", "F2.filter"], id="second"),
        pytest.param(
            {"F1": {"reject": ["a"], "resolvable": False}},
            Code.UNSCHEDULABLE_AND_UNRESOLVABLE,
            ["F1.filter"],
            id="unresolvable",
        ),
        pytest.param({"F1": {"error": ["a"]}}, Code.ERROR, ["F1.filter"], id="error"),
        pytest.param(
            {"F1": {"pre_filter": Status.skip()}},
            Code.SUCCESS,
            ["F2.filter"],
            id="prefilter-skip-skips-filter",
        ),
    ],
)
def test_run_filter(args: dict[str, dict[str, Any]], expected_status: Code, expected_log: list[str]) -> None:
    log: list[str] = []
    fw = make_profile(
        {"multiPoint": enabled("F1", "F2")}, {n: {**args.get(n, {}), "log": log} for n in ("F1", "F2")}
    )
    state = CycleState()
    assert fw.run_pre_filter(state, POD, NODES).is_success()
    log.clear()
    status = fw.run_filter(state, POD, NODES[0])
    assert status.code == expected_status
    assert log == expected_log
    if not status.is_success():
        assert status.plugin == expected_log[-1].split(".")[0]


def test_run_pre_filter_rejection_names_plugin() -> None:
    fw = make_profile(
        {"multiPoint": enabled("F1", "F2")}, {"F2": {"pre_filter": Status.unschedulable("nope")}}
    )
    status = fw.run_pre_filter(CycleState(), POD, NODES)
    assert (status.code, status.reasons, status.plugin) == (Code.UNSCHEDULABLE, ("nope",), "F2")


@pytest.mark.parametrize(
    ("args", "weights", "expected"),
    [
        pytest.param(
            {"S1": {"scores": {"a": 10, "b": 20, "c": 30}}, "S2": {"scores": {"a": 5}}},
            {},
            {"a": 15, "b": 20, "c": 30},
            id="sum-weight-1",
        ),
        pytest.param(
            {"S1": {"scores": {"a": 10, "b": 20, "c": 30}}, "S2": {"scores": {"a": 5}}},
            {"S1": 2, "S2": 3},
            {"a": 35, "b": 40, "c": 60},
            id="weighted",
        ),
        pytest.param(
            {"S1": {"scores": {"a": 1, "b": 2, "c": 4}, "normalize": True}, "S2": {}},
            {"S1": 2},
            {"a": 50, "b": 100, "c": 200},
            id="normalized-then-weighted",
        ),
        pytest.param(
            {"S1": {"scores": {"a": 1}, "pre_score": Status.skip()}, "S2": {"scores": {"b": 9}}},
            {},
            {"a": 0, "b": 9, "c": 0},
            id="prescore-skip",
        ),
    ],
)
def test_run_score(
    args: dict[str, dict[str, Any]], weights: dict[str, int], expected: dict[str, int]
) -> None:
    fw = make_profile({"multiPoint": enabled("S1", "S2", weights=weights)}, args)
    state = CycleState()
    assert fw.run_pre_score(state, POD, NODES).is_success()
    scores, status = fw.run_score(state, POD, NODES)
    assert status.is_success() and scores == expected


def test_score_weight_from_score_point() -> None:
    fw = make_profile(
        {"multiPoint": enabled("S1"), "score": enabled("S1", weights={"S1": 4})},
        {"S1": {"scores": {"a": 10}}},
    )
    scores, _ = fw.run_score(CycleState(), POD, NODES[:1])
    assert scores == {"a": 40}


def test_invalid_score_is_an_error() -> None:
    fw = make_profile({"multiPoint": enabled("S1")}, {"S1": {"scores": {"a": 101}}})
    scores, status = fw.run_score(CycleState(), POD, NODES)
    assert status.code == Code.ERROR and "invalid score 101" in status.message() and scores == {}


@pytest.mark.parametrize(
    ("args", "expected_status", "expected_log"),
    [
        pytest.param({}, Code.SUCCESS, ["R1.reserve", "R2.reserve"], id="both"),
        pytest.param(
            {"R1": {"reserve": Status.unschedulable("full")}},
            Code.UNSCHEDULABLE,
            ["R1.reserve", "R2.unreserve", "R1.unreserve"],
            id="first-fails-unreserve-all-reversed",
        ),
        pytest.param(
            {"R2": {"reserve": Status.error("boom")}},
            Code.ERROR,
            ["R1.reserve", "R2.reserve", "R2.unreserve", "R1.unreserve"],
            id="second-fails",
        ),
    ],
)
def test_reserve_unreserve(
    args: dict[str, dict[str, Any]], expected_status: Code, expected_log: list[str]
) -> None:
    log: list[str] = []
    fw = make_profile(
        {"reserve": enabled("R1", "R2")}, {n: {**args.get(n, {}), "log": log} for n in ("R1", "R2")}
    )
    state = CycleState()
    status = fw.run_reserve(state, POD, "a")
    if not status.is_success():
        fw.run_unreserve(state, POD, "a")
    assert status.code == expected_status and log == expected_log


@pytest.mark.parametrize(
    ("args", "code", "timeout"),
    [
        pytest.param({}, Code.SUCCESS, 0.0, id="allow"),
        pytest.param(
            {"R1": {"permit": Status.wait(), "timeout": 30}, "R2": {"permit": Status.wait(), "timeout": 5}},
            Code.WAIT,
            5.0,
            id="wait-min",
        ),
        pytest.param({"R1": {"permit": Status.wait(), "timeout": 5000}}, Code.WAIT, 900.0, id="wait-capped"),
        pytest.param(
            {"R1": {"permit": Status.wait(), "timeout": 5}, "R2": {"permit": Status.unschedulable("no")}},
            Code.UNSCHEDULABLE,
            0.0,
            id="reject-wins",
        ),
    ],
)
def test_run_permit(args: dict[str, dict[str, Any]], code: Code, timeout: float) -> None:
    fw = make_profile({"permit": enabled("R1", "R2")}, args)
    status, wait = fw.run_permit(CycleState(), POD, "a")
    assert (status.code, wait) == (code, timeout)


@pytest.mark.parametrize(
    ("args", "code", "plugin"),
    [
        pytest.param({}, Code.SUCCESS, "R1", id="first-binds"),
        pytest.param({"R1": {"bind": Status.skip()}}, Code.SUCCESS, "R2", id="skip-to-next"),
        pytest.param(
            {"R1": {"bind": Status.skip()}, "R2": {"bind": Status.skip()}}, Code.SKIP, "", id="all-skip"
        ),
    ],
)
def test_run_bind(args: dict[str, dict[str, Any]], code: Code, plugin: str) -> None:
    fw = make_profile({"bind": enabled("R1", "R2")}, args)
    status = fw.run_bind(CycleState(), POD, "a")
    assert (status.code, status.plugin) == (code, plugin)


@pytest.mark.parametrize(
    ("args", "code", "reasons", "nominated"),
    [
        pytest.param({}, Code.UNSCHEDULABLE, (), None, id="both-reject"),
        pytest.param(
            {
                "P1": {"post_filter": Status.unschedulable("p1 no")},
                "P2": {"post_filter": Status.unschedulable("p2 no")},
            },
            Code.UNSCHEDULABLE,
            ("p1 no", "p2 no"),
            None,
            id="reasons-joined",
        ),
        pytest.param(
            {"P1": {"post_filter": Status(), "result": fakes.PostFilterResult("b", [])}},
            Code.SUCCESS,
            (),
            "b",
            id="first-success-wins",
        ),
        pytest.param({"P1": {"post_filter": Status.error("bad")}}, Code.ERROR, ("bad",), None, id="error"),
    ],
)
def test_run_post_filter(
    args: dict[str, dict[str, Any]], code: Code, reasons: tuple[str, ...], nominated: str | None
) -> None:
    fw = make_profile({"postFilter": enabled("P1", "P2")}, args)
    result, status = fw.run_post_filter(CycleState(), POD, {})
    assert (status.code, status.reasons) == (code, reasons)
    assert (result.nominated_node_name if result else None) == nominated


class _NeedsFramework(FilterFake):
    runner: Any = None

    def set_framework(self, runner: Any) -> None:
        self.runner = runner


def test_framework_is_handed_to_plugins_and_handle() -> None:
    handle = SnapshotHandle()
    registry = {"N": fakes.factory(_NeedsFramework, "N")}
    profile = load_config(
        {"profiles": [{"plugins": {"multiPoint": {"enabled": [{"name": "N"}], "disabled": [{"name": "*"}]}}}]}
    )
    fw = Framework(profile.profiles[0], registry, handle)
    assert fw.plugins["N"].runner is fw
    assert handle.framework() is fw
