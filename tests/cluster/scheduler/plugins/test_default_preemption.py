"""DefaultPreemption: victim selection and node choice on small clusters, with a fake filter runner."""

from __future__ import annotations

from typing import Any

import pytest

from cluster.scheduler.framework import (
    Code,
    CycleState,
    NodeInfo,
    Snapshot,
    SnapshotHandle,
    Status,
    pod_requests,
)
from cluster.scheduler.plugins import default_preemption as dp

INSUFFICIENT = Status.unschedulable("Insufficient cpu")
UNRESOLVABLE = Status.unschedulable("node(s) didn't match Pod's node affinity/selector", resolvable=False)


class CpuFilters:
    """A FilterRunner whose only filter is NodeResourcesFit's cpu check; counts PreFilter runs."""

    def __init__(self) -> None:
        self.pre_filter_runs = 0

    def run_pre_filter(self, state: CycleState, pod: dict[str, Any], nodes: list[NodeInfo]) -> Status:
        self.pre_filter_runs += 1
        state.write("nodes", len(nodes))
        return Status()

    def run_filter(self, state: CycleState, pod: dict[str, Any], node: NodeInfo) -> Status:
        assert state.read("nodes")
        if node.requested.milli_cpu + pod_requests(pod).milli_cpu > node.allocatable.milli_cpu:
            return INSUFFICIENT
        return Status()


class Handle(SnapshotHandle):
    def __init__(self, snapshot: Snapshot, pdbs: list[dict[str, Any]], runner: CpuFilters) -> None:
        super().__init__(snapshot, clock=lambda: 2_000_000_000.0)
        self._pdbs = pdbs
        self._runner = runner

    def pdbs(self) -> list[dict[str, Any]]:
        return self._pdbs

    def framework(self) -> CpuFilters:
        return self._runner


def node(name: str, cpu: str = "3") -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": {}}, "status": {"allocatable": {"cpu": cpu, "pods": "110"}}}


def pod(
    name: str,
    prio: int,
    cpu: str = "1",
    on: str | None = None,
    start: str | None = None,
    labels: dict[str, str] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "metadata": {"name": name, "namespace": "default", "uid": name, "labels": labels or {}},
        "spec": {
            "priority": prio,
            "containers": [{"name": "c", "resources": {"requests": {"cpu": cpu}}}],
            **spec,
        },
        "status": {},
    }
    if on:
        body["spec"]["nodeName"] = on
    if start:
        body["status"]["startTime"] = start
    return body


def pdb(allowed: int, app: str = "a", disrupted: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "metadata": {"name": f"pdb-{app}", "namespace": "default"},
        "spec": {"selector": {"matchLabels": {"app": app}}},
        "status": {"disruptionsAllowed": allowed, "disruptedPods": disrupted or {}},
    }


def preempt(
    incoming: dict[str, Any],
    nodes: list[dict[str, Any]],
    pods: list[dict[str, Any]],
    filtered: dict[str, Status] | None = None,
    pdbs: list[dict[str, Any]] | None = None,
) -> tuple[str | None, list[str], Status]:
    snapshot = Snapshot(nodes, pods)
    plugin = dp.new({}, Handle(snapshot, pdbs or [], CpuFilters()))
    statuses = filtered if filtered is not None else {n["metadata"]["name"]: INSUFFICIENT for n in nodes}
    result, status = plugin.post_filter(CycleState(), incoming, statuses)
    if result is None:
        return None, [], status
    return result.nominated_node_name, [v["metadata"]["name"] for v in result.victims], status


T0 = "2026-01-01T00:00:00Z"
T1 = "2026-01-01T01:00:00Z"


@pytest.mark.parametrize(
    ("incoming", "nodes", "pods", "pdbs", "want_node", "want_victims"),
    [
        pytest.param(
            pod("p", 10, cpu="2"),
            [node("n1")],
            [pod("a1", 1, on="n1"), pod("a2", 2, on="n1"), pod("a3", 3, on="n1")],
            [],
            "n1",
            ["a2", "a1"],
            id="reprieve-highest-priority-first",
        ),
        pytest.param(
            pod("p", 10, cpu="1"),
            [node("n1")],
            [pod("a1", 1, on="n1"), pod("hi", 20, on="n1"), pod("a3", 3, on="n1")],
            [],
            "n1",
            ["a1"],
            id="higher-priority-pods-stay",
        ),
        pytest.param(
            pod("p", 10, cpu="1"),
            [node("n1"), node("n2")],
            [
                pod("a1", 1, on="n1", labels={"app": "a"}),
                pod("a2", 1, on="n1", labels={"app": "a"}),
                pod("a3", 1, on="n1", labels={"app": "a"}),
                pod("b1", 5, on="n2"),
                pod("b2", 5, on="n2"),
                pod("b3", 5, on="n2"),
            ],
            [pdb(0)],
            "n2",
            ["b3"],
            id="fewest-pdb-violations",
        ),
        pytest.param(
            pod("p", 10, cpu="1"),
            [node("n1"), node("n2")],
            [
                pod("a1", 1, on="n1", labels={"app": "a"}),
                pod("a2", 1, on="n1", labels={"app": "a"}),
                pod("a3", 1, on="n1", labels={"app": "a"}),
                pod("b1", 5, on="n2"),
                pod("b2", 5, on="n2"),
                pod("b3", 5, on="n2"),
            ],
            [pdb(1)],
            "n1",
            ["a1"],
            id="pdb-with-budget-is-no-violation",
        ),
        pytest.param(
            pod("p", 10, cpu="2"),
            [node("n1"), node("n2")],
            [
                pod("a1", 4, cpu="2", on="n1"),
                pod("a2", 9, on="n1"),
                pod("b1", 3, on="n2"),
                pod("b2", 3, on="n2"),
            ],
            [],
            "n2",
            ["b2"],
            id="lowest-highest-victim-priority",
        ),
        pytest.param(
            pod("p", 10, cpu="2"),
            [node("n1"), node("n2")],
            [
                pod("a1", 5, on="n1"),
                pod("a2", 1, on="n1"),
                pod("a3", 9, on="n1"),
                pod("b1", 5, on="n2"),
                pod("b2", 3, on="n2"),
                pod("b3", 9, on="n2"),
            ],
            [],
            "n1",
            ["a1", "a2"],
            id="smallest-priority-sum",
        ),
        pytest.param(
            pod("p", 10, cpu="2"),
            [node("n1"), node("n2")],
            [
                pod("a1", 5, cpu="3", on="n1"),
                pod("b1", 5, on="n2"),
                pod("b2", 5, on="n2"),
                pod("b3", 5, on="n2"),
            ],
            [],
            "n1",
            ["a1"],
            id="fewest-victims",
        ),
        pytest.param(
            pod("p", 10, cpu="3"),
            [node("n1"), node("n2")],
            [pod("a1", 5, cpu="3", on="n1", start=T0), pod("b1", 5, cpu="3", on="n2", start=T1)],
            [],
            "n2",
            ["b1"],
            id="latest-start-time",
        ),
        pytest.param(
            pod("p", 10, cpu="3"),
            [node("n1"), node("n2")],
            [pod("a1", 5, cpu="3", on="n1", start=T0), pod("b1", 5, cpu="3", on="n2", start=T0)],
            [],
            "n1",
            ["a1"],
            id="tie-first-node",
        ),
        pytest.param(
            pod("p", 10, cpu="1"),
            [node("n1")],
            [
                pod("a1", 1, on="n1", start=T1, labels={"app": "a"}),
                pod("a2", 1, on="n1", start=T0),
                pod("a3", 2, on="n1"),
            ],
            [pdb(0)],
            "n1",
            ["a2"],
            id="pdb-violating-reprieved-first",
        ),
        pytest.param(
            pod("p", 10, cpu="1"),
            [node("n1")],
            [
                pod("a1", 1, on="n1", start=T1, labels={"app": "a"}),
                pod("a2", 1, on="n1", start=T0),
                pod("a3", 2, on="n1"),
            ],
            [pdb(0, disrupted={"a1": T0})],
            "n1",
            ["a1"],
            id="already-disrupted-pod-no-violation",
        ),
    ],
)
def test_preemption_picks(
    incoming: dict[str, Any],
    nodes: list[dict[str, Any]],
    pods: list[dict[str, Any]],
    pdbs: list[dict[str, Any]],
    want_node: str,
    want_victims: list[str],
) -> None:
    got_node, got_victims, status = preempt(incoming, nodes, pods, pdbs=pdbs)
    assert status.is_success()
    assert (got_node, got_victims) == (want_node, want_victims)


TERMINATING_LOW = {
    **pod("t", 1, on="n1"),
    "metadata": {"name": "t", "namespace": "default", "uid": "t", "deletionTimestamp": T0},
    "status": {"conditions": [{"type": "DisruptionTarget", "reason": "PreemptionByScheduler"}]},
}


@pytest.mark.parametrize(
    ("incoming", "pods", "filtered", "want_code", "want_message"),
    [
        pytest.param(
            pod("p", 10, preemptionPolicy="Never"),
            [pod("a", 1, cpu="3", on="n1")],
            None,
            Code.UNSCHEDULABLE,
            "preemption: not eligible due to preemptionPolicy=Never.",
            id="policy-never",
        ),
        pytest.param(
            {**pod("p", 10, cpu="3"), "status": {"nominatedNodeName": "n1"}},
            [TERMINATING_LOW],
            None,
            Code.UNSCHEDULABLE,
            "preemption: not eligible due to a terminating pod on the nominated node.",
            id="terminating-victim-on-nominated-node",
        ),
        pytest.param(
            pod("p", 10),
            [pod("a", 1, cpu="3", on="n1")],
            {"n1": UNRESOLVABLE, "n2": UNRESOLVABLE},
            Code.UNSCHEDULABLE,
            "preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling.",
            id="all-unresolvable",
        ),
        pytest.param(
            pod("p", 1),
            [pod("a", 5, cpu="3", on="n1"), pod("b", 5, cpu="3", on="n2")],
            None,
            Code.UNSCHEDULABLE,
            "preemption: 0/2 nodes are available: 2 No preemption victims found for incoming pod.",
            id="no-lower-priority-pods",
        ),
        pytest.param(
            pod("p", 10, cpu="2"),
            [pod("a", 1, on="n1"), pod("hi", 20, cpu="2", on="n1"), pod("b", 20, cpu="3", on="n2")],
            {"n1": INSUFFICIENT, "n2": INSUFFICIENT},
            Code.UNSCHEDULABLE,
            "preemption: 0/2 nodes are available: 1 Insufficient cpu, "
            "1 No preemption victims found for incoming pod.",
            id="still-does-not-fit",
        ),
    ],
)
def test_preemption_fails(
    incoming: dict[str, Any],
    pods: list[dict[str, Any]],
    filtered: dict[str, Status] | None,
    want_code: Code,
    want_message: str,
) -> None:
    got_node, _, status = preempt(incoming, [node("n1"), node("n2")], pods, filtered)
    assert not got_node
    assert (status.code, status.message()) == (want_code, want_message)


def test_unresolvable_node_is_not_simulated() -> None:
    got_node, victims, status = preempt(
        pod("p", 10, cpu="3"),
        [node("n1"), node("n2")],
        [pod("a", 1, cpu="3", on="n1"), pod("b", 1, cpu="3", on="n2")],
        {"n1": UNRESOLVABLE, "n2": INSUFFICIENT},
    )
    assert (got_node, victims, status.is_success()) == ("n2", ["b"], True)


def test_snapshot_not_mutated() -> None:
    pods = [pod("a", 1, cpu="3", on="n1")]
    snapshot = Snapshot([node("n1")], pods)
    plugin = dp.new({}, Handle(snapshot, [], CpuFilters()))
    result, status = plugin.post_filter(CycleState(), pod("p", 10, cpu="3"), {"n1": INSUFFICIENT})
    assert status.is_success() and result is not None and result.nominated_node_name == "n1"
    info = snapshot.get("n1")
    assert info is not None and [p["metadata"]["name"] for p in info.pods] == ["a"]
    assert info.requested.milli_cpu == 3000


@pytest.mark.parametrize(
    ("args", "num_nodes", "want"),
    [
        pytest.param({}, 50, 50, id="all-below-absolute"),
        pytest.param({}, 5000, 500, id="ten-percent"),
        pytest.param(
            {"minCandidateNodesAbsolute": 1, "minCandidateNodesPercentage": 0}, 50, 1, id="absolute-one"
        ),
    ],
)
def test_num_candidates(args: dict[str, Any], num_nodes: int, want: int) -> None:
    assert dp.new(args, SnapshotHandle()).num_candidates(num_nodes) == want


def test_dry_run_stops_after_enough_candidates() -> None:
    runner = CpuFilters()
    nodes = [node(f"n{i}") for i in range(4)]
    pods = [pod(f"a{i}", 1, cpu="3", on=f"n{i}") for i in range(4)]
    plugin = dp.DefaultPreemption(
        {"minCandidateNodesAbsolute": 1, "minCandidateNodesPercentage": 0},
        Handle(Snapshot(nodes, pods), [], runner),
        runner,
    )
    result, status = plugin.post_filter(CycleState(), pod("p", 10, cpu="3"), {})
    assert status.is_success() and result == dp.PostFilterResult("n0", [pods[0]])
    assert runner.pre_filter_runs == 2  # one node: the all-removed check and one reprieve attempt


def test_invalid_args() -> None:
    with pytest.raises(ValueError, match="cannot both be zero"):
        dp.new({"minCandidateNodesAbsolute": 0, "minCandidateNodesPercentage": 0}, SnapshotHandle())
