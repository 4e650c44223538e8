"""The scheduling benchmark: scheduler_perf's window math, the workload templates, a tiny algorithm-mode
run through ``main`` checked as JSON, and the Ray-native peer on a tiny cluster (integration)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bench.scheduling import (
    PATHS,
    PUBLISHED_SOURCE,
    PUBLISHED_SYSTEM,
    published_peers,
    run_suite,
    select_workloads,
)
from bench.scheduling_algorithm import run_algorithm
from bench.scheduling_metrics import (
    latency_summary_ms,
    percentile_ceil,
    throughput_samples,
    throughput_summary,
)
from bench.scheduling_workloads import QUICK_WORKLOADS, WORKLOADS, Workload
from cluster.scheduler.framework import pod_requests

TINY = WORKLOADS["SchedulingBasic/500Nodes_1000Pods"].scaled("SchedulingBasic/20Nodes_40Pods", 20, 10, 40)


@pytest.mark.parametrize(
    ("bind_times", "start", "want"),
    [
        pytest.param([], 0.0, [], id="nothing-scheduled"),
        pytest.param([0.5, 1.5, 2.5], 0.0, [1.0], id="first-sample-dropped"),
        pytest.param([0.1] * 10 + [1.1] * 20 + [2.2] * 30, 0.0, [20.0], id="last-partial-window-dropped"),
        pytest.param(
            [0.1] * 10 + [1.1] * 20 + [2.2] * 30 + [3.0], 0.0, [20.0, 31.0], id="tick-at-bind-time-counts"
        ),
        pytest.param([1.5, 1.6, 4.5, 4.6, 5.0], 0.0, [1.0] * 3, id="empty-windows-spread-over-skipped"),
        pytest.param([2.5, 3.5, 4.5], 0.0, [1.0], id="leading-empty-windows-ignored"),
        pytest.param([10.5, 11.5, 12.5], 10.0, [1.0], id="start-offset"),
    ],
)
def test_throughput_samples(bind_times: list[float], start: float, want: list[float]) -> None:
    assert throughput_samples(bind_times, start) == pytest.approx(want)


def test_throughput_samples_rejects_non_positive_interval() -> None:
    with pytest.raises(ValueError, match="interval"):
        throughput_samples([1.0], 0.0, interval=0)


@pytest.mark.parametrize(
    ("values", "p", "want"),
    [
        pytest.param([], 50, 0.0, id="empty"),
        pytest.param([7.0], 99, 7.0, id="one"),
        pytest.param([1.0, 2.0, 3.0, 4.0], 50, 2.0, id="p50-even-takes-lower"),
        pytest.param([float(i) for i in range(1, 11)], 90, 9.0, id="p90-of-ten"),
        pytest.param([float(i) for i in range(1, 11)], 99, 10.0, id="p99-of-ten-is-max"),
        pytest.param([float(i) for i in range(1, 101)], 99, 99.0, id="p99-of-hundred"),
    ],
)
def test_percentile_ceil(values: list[float], p: float, want: float) -> None:
    assert percentile_ceil(values, p) == want


@pytest.mark.parametrize(
    ("samples", "want"),
    [
        pytest.param([], {"average": 0.0, "p50": 0.0, "p90": 0.0, "p99": 0.0}, id="empty"),
        pytest.param(
            [300.0, 100.0, 200.0], {"average": 200.0, "p50": 200.0, "p90": 300.0, "p99": 300.0}, id="unsorted"
        ),
    ],
)
def test_throughput_summary(samples: list[float], want: dict[str, float]) -> None:
    assert throughput_summary(samples) == want


def test_latency_summary_is_in_milliseconds() -> None:
    assert latency_summary_ms([0.001, 0.002, 0.010]) == {"p50": 2.0, "p99": 10.0}


@pytest.mark.parametrize(
    ("name", "nodes", "init", "measure"),
    [
        pytest.param("SchedulingBasic/500Nodes_1000Pods", 500, 500, 1000, id="basic-500"),
        pytest.param("SchedulingBasic/5000Nodes_10000Pods", 5000, 1000, 10000, id="basic-5000"),
        pytest.param("PodAntiAffinity/5000Nodes", 5000, 1000, 2000, id="anti-affinity"),
        pytest.param("TopologySpreading/5000Nodes", 5000, 5000, 5000, id="spreading"),
    ],
)
def test_workload_shapes(name: str, nodes: int, init: int, measure: int) -> None:
    w = WORKLOADS[name]
    assert (w.nodes, w.init_pods, w.measure_pods) == (nodes, init, measure)


def test_templates_match_scheduler_perf() -> None:
    node = WORKLOADS["TopologySpreading/5000Nodes"].scaled("t", 4, 0, 1).build_nodes()
    assert node[0]["status"]["capacity"] == {"pods": "110", "cpu": "4", "memory": "32Gi"}
    assert [n["metadata"]["labels"]["topology.kubernetes.io/zone"] for n in node] == [
        "moon-1",
        "moon-2",
        "moon-3",
        "moon-1",
    ]
    pod = WORKLOADS["SchedulingBasic/500Nodes_1000Pods"].build_measure_pods()[0]
    assert (pod_requests(pod).milli_cpu, pod_requests(pod).memory) == (100, 500 * 2**20)
    uids = [
        p["metadata"]["uid"] for w in [WORKLOADS["PreemptionBasic/500Nodes"]] for p in w.build_init_pods()
    ]
    assert len(set(uids)) == len(uids)


def test_quick_set_is_small_shapes_plus_reduced_5000() -> None:
    assert [w.nodes for w in QUICK_WORKLOADS] == [500, 100, 500, 5000]
    assert QUICK_WORKLOADS[-1].measure_pods < WORKLOADS["SchedulingBasic/5000Nodes_10000Pods"].measure_pods


def test_select_workloads_dedups_and_keeps_order() -> None:
    names = ["PodAntiAffinity/5000Nodes", "SchedulingBasic/500Nodes_1000Pods", "PodAntiAffinity/5000Nodes"]
    assert [w.name for w in select_workloads(names, quick=False)] == names[:2]


class StepClock:
    """A fake clock advancing 10 ms per reading: 100 readings per second."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 0.01
        return self.now


@pytest.mark.parametrize(
    ("workload", "scheduled", "extra"),
    [
        pytest.param(
            TINY.scaled("SchedulingBasic/20Nodes_160Pods", 20, 10, 160), 160, {"windows": 2}, id="basic"
        ),
        pytest.param(
            WORKLOADS["PreemptionBasic/500Nodes"].scaled("Preemption/4Nodes", 4, 16, 4),
            4,
            {"preemptions": 4},
            id="preemption-frees-nodes",
        ),
        pytest.param(
            WORKLOADS["Unschedulable/500Nodes"].scaled("Unschedulable/10Nodes", 10, 5, 20),
            20,
            {"init_unschedulable": 5},
            id="unschedulable-init-pods-never-fit",
        ),
        pytest.param(
            WORKLOADS["PodAntiAffinity/5000Nodes"].scaled("AntiAffinity/10Nodes", 10, 4, 8),
            6,
            {"unschedulable": 2},
            id="anti-affinity-one-per-host",
        ),
        pytest.param(
            WORKLOADS["SchedulingDaemonset/15000Nodes"].scaled("Daemonset/10Nodes", 10, 0, 20),
            20,
            {"unschedulable": 0},
            id="daemonset-pinned",
        ),
    ],
)
def test_run_algorithm_with_fake_clock(workload: Workload, scheduled: int, extra: dict[str, Any]) -> None:
    entry = run_algorithm(workload, clock=StepClock())
    assert entry["scheduled"] == scheduled
    assert {k: entry[k] for k in extra} == extra
    assert entry["hops_per_pod"] == 0
    # Each pod takes two clock readings: 10 ms cycles, 20 ms per pod, so 50 pods/s in every full window.
    if not entry["preemptions"]:  # DefaultPreemption reads the clock too
        assert entry["latency_ms"]["p50"] == pytest.approx(10.0)
    if entry["windows"]:
        assert entry["throughput"]["p50"] == pytest.approx(50.0, rel=0.05)


def test_main_tiny_algorithm_run_writes_the_issue_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import bench.scheduling as suite

    monkeypatch.setitem(suite.WORKLOADS, TINY.name, TINY)
    out = tmp_path / "sched.json"
    argv = [
        "--workload",
        TINY.name,
        "--mode",
        "algorithm",
        "--no-ray",
        "--json",
        str(out),
    ]
    assert suite.main(argv) == 0
    doc = json.loads(out.read_text())
    assert doc["suite"] == "scheduling"
    (algo,) = doc["results"]  # end_to_end needs Ray: tests/integration/test_scheduling_e2e.py
    assert algo["workload"] == TINY.name and algo["mode"] == "algorithm" and algo["hops_per_pod"] == 0
    assert set(algo["throughput"]) == {"average", "p50", "p90", "p99"}
    assert set(algo["latency_ms"]) == {"p50", "p99"}
    assert algo["throughput"]["average"] > 0 and algo["scheduled"] == 40
    assert doc["peers"] == []


def test_published_peers_are_marked_as_other_hardware() -> None:
    peers = published_peers([WORKLOADS["SchedulingBasic/5000Nodes_10000Pods"], TINY])
    assert len(peers) == 1
    assert peers[0]["system"] == PUBLISHED_SYSTEM and peers[0]["source"] == PUBLISHED_SOURCE
    assert peers[0]["throughput"] == {"average": 680.0}


def test_run_suite_keeps_going_after_a_failing_workload() -> None:
    def boom(workload: Workload) -> dict[str, Any]:
        raise RuntimeError("broken")

    doc = run_suite([TINY], ["algorithm"], ray_peer=False, runner=boom)
    assert doc["results"] == [
        {
            "workload": TINY.name,
            "mode": "algorithm",
            "error": "RuntimeError: broken",
            "path": PATHS["algorithm"],
        }
    ]


def test_plot_writes_a_png(tmp_path: Path) -> None:
    from bench.scheduling import plot

    doc = {"results": [{"workload": "w", "mode": "algorithm", "throughput_series": [1.0, 2.0, 3.0]}]}
    path = tmp_path / "t.png"
    plot(doc, str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_ray_peer_counts_task_placements() -> None:
    import ray

    from bench.scheduling_ray import RAY_COUNTS, run_ray_peer

    if ray.is_initialized():
        pytest.skip("this process is already connected to a Ray it did not start")
    tiny = WORKLOADS["SchedulingBasic/500Nodes_1000Pods"].scaled("SchedulingBasic/8Nodes_150Pods", 8, 0, 150)
    (entry,) = run_ray_peer([tiny])
    assert entry["system"] == "ray-native" and entry["workload"] == tiny.name
    assert entry["tasks"] == 150 and entry["throughput"]["average"] > 0
    assert entry["counts"] == RAY_COUNTS
    assert not ray.is_initialized()


def _fake_entry(mode: str) -> Callable[..., dict[str, Any]]:
    def run(workload: Workload, layout: str = "") -> dict[str, Any]:
        return {"workload": workload.name, "mode": mode, "throughput": {"average": 340.0}}

    return run


FLOORED = WORKLOADS["SchedulingBasic/5000Nodes_10000Pods"]  # published floor: 680 pods/s


@pytest.mark.parametrize(
    ("modes", "published", "ratio"),
    [
        pytest.param(["algorithm"], False, None, id="algorithm-never-next-to-floors"),
        pytest.param(["end_to_end"], True, 0.5, id="end-to-end-compared"),
        pytest.param(["algorithm", "end_to_end"], True, 0.5, id="both-floor-only-on-end-to-end"),
    ],
)
def test_published_floors_only_next_to_end_to_end(
    modes: list[str], published: bool, ratio: float | None
) -> None:
    algo, e2e = _fake_entry("algorithm"), _fake_entry("end_to_end")
    doc = run_suite([FLOORED], modes, ray_peer=False, runner=algo, e2e_runner=e2e)
    assert [r["path"] for r in doc["results"]] == [PATHS[m] for m in modes]
    assert [p["system"] for p in doc["peers"]] == ([PUBLISHED_SYSTEM] if published else [])
    for p in doc["peers"]:
        assert p["compare_with"] == "end_to_end" and "etcd" in p["path"]
    by_mode = {r["mode"]: r for r in doc["results"]}
    assert "vs_published_floor" not in by_mode.get("algorithm", {})
    assert by_mode.get("end_to_end", {}).get("vs_published_floor") == ratio


def test_end_to_end_is_the_default_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    import bench.scheduling as suite

    seen: list[list[str]] = []

    def fake_suite(workloads: list[Workload], modes: list[str], **kw: Any) -> dict[str, Any]:
        seen.append(modes)
        return {"suite": "scheduling", "results": [], "peers": [], "machine": {}}

    monkeypatch.setattr(suite, "run_suite", fake_suite)
    assert suite.main(["--workload", FLOORED.name, "--no-ray"]) == 0
    assert seen == [["end_to_end"]]


def test_end_to_end_runs_once_per_layout_and_keeps_the_layout_of_a_failure() -> None:
    seen: list[str] = []

    def e2e(workload: Workload, layout: str = "") -> dict[str, Any]:
        seen.append(layout)
        if layout == "three-nodes":
            raise RuntimeError("no room for three Ray nodes")
        return {
            "workload": workload.name,
            "mode": "end_to_end",
            "layout": layout,
            "throughput": {"average": 1.0},
        }

    doc = run_suite(
        [TINY],
        ["algorithm", "end_to_end"],
        ray_peer=False,
        runner=_fake_entry("algorithm"),
        e2e_runner=e2e,
        layouts=("one-node", "three-nodes"),
    )
    assert seen == ["one-node", "three-nodes"]
    assert [(r["mode"], r.get("layout"), "error" in r) for r in doc["results"]] == [
        ("algorithm", None, False),
        ("end_to_end", "one-node", False),
        ("end_to_end", "three-nodes", True),
    ]
