"""The pure parts of ``bench.startup``: the Running predicate, latency and rate math, the JSON shape."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bench import startup


def _pod(phase: str, ready: str | None) -> dict[str, Any]:
    conditions = [{"type": "PodScheduled", "status": "True"}]
    if ready is not None:
        conditions.append({"type": "Ready", "status": ready})
    return {"status": {"phase": phase, "conditions": conditions}}


@pytest.mark.parametrize(
    ("pod", "expected"),
    [
        pytest.param(_pod("Running", "True"), True, id="running-and-ready"),
        pytest.param(_pod("Running", "False"), False, id="running-not-ready"),
        pytest.param(_pod("Running", None), False, id="running-no-ready-condition"),
        pytest.param(_pod("Pending", "True"), False, id="pending"),
        pytest.param({"metadata": {"name": "x"}}, False, id="no-status"),
    ],
)
def test_pod_running_needs_phase_and_ready(pod: dict[str, Any], expected: bool) -> None:
    assert startup.pod_running(pod) is expected


@pytest.mark.parametrize(
    ("count", "first", "last", "expected"),
    [
        pytest.param(10, 0.0, 2.0, 5.0, id="ten-in-two-seconds"),
        pytest.param(1, 5.0, 5.5, 2.0, id="offset-origin"),
        pytest.param(0, 0.0, 2.0, 0.0, id="nothing-done"),
        pytest.param(3, 1.0, 1.0, 0.0, id="no-span"),
    ],
)
def test_pods_per_second(count: int, first: float, last: float, expected: float) -> None:
    assert startup.pods_per_second(count, first, last) == pytest.approx(expected)


def test_startup_entry_latency_rate_and_missing_pods() -> None:
    created = {f"p{i}": 10.0 + i * 0.01 for i in range(100)}
    running = {f"p{i}": created[f"p{i}"] + (i + 1) / 100 for i in range(99)}  # p99 never ran
    entry = startup.startup_entry("process", 100, created, running, first_sent=10.0, setup_s=3.0)
    assert entry["running"] == 99 and entry["not_running"] == 1
    # 99 latencies, 10 ms .. 990 ms; scheduler_perf's rule sorted[ceil(n * p / 100) - 1]
    assert entry["latency_ms"]["p50"] == pytest.approx(500.0)
    assert entry["latency_ms"]["p99"] == pytest.approx(990.0)
    last = max(running.values())
    assert entry["pods_per_second"] == pytest.approx(99 / (last - 10.0))
    assert entry["duration_s"] == pytest.approx(last - 10.0)
    assert entry["setup_s"] == 3.0
    assert entry["meets_goal"] is False  # a pod never reached Running


@pytest.mark.parametrize(
    ("runtime", "latency_s", "meets"),
    [
        pytest.param("process", 0.5, True, id="process-under-1s"),
        pytest.param("process", 1.5, False, id="process-over-1s"),
        pytest.param("containerd", 1.5, True, id="containerd-under-2s"),
        pytest.param("containerd", 2.5, False, id="containerd-over-2s"),
    ],
)
def test_startup_entry_goal_per_runtime(runtime: str, latency_s: float, meets: bool) -> None:
    entry = startup.startup_entry(runtime, 1, {"a": 0.0}, {"a": latency_s}, first_sent=0.0)
    assert entry["meets_goal"] is meets


def test_raw_peer_and_ratio() -> None:
    result = startup.startup_entry("process", 2, {"a": 0.0, "b": 0.0}, {"a": 0.4, "b": 0.8}, 0.0)
    raw = startup.raw_peer("process", 2, [0.1, 0.2], first_sent=0.0, last_done=0.25)
    assert raw["latency_ms"] == {"p50": pytest.approx(100.0), "p99": pytest.approx(200.0)}
    assert raw["pods_per_second"] == pytest.approx(8.0)
    doc = startup.document([result], [raw], {"cpu_count": 2})
    assert doc["peers"][0]["ratio_p99"] == pytest.approx(800.0 / 200.0)


def test_no_ratio_for_a_failed_result_or_peer() -> None:
    results = [startup.error_entry("containerd", 5, "needs root")]
    peers: list[dict[str, Any]] = [
        {"system": "raw CRI (containerd)", "runtime": "containerd", "latency_ms": {"p99": 100.0}},
        {"system": "raw CRI (process)", "runtime": "process", "error": "boom"},
    ]
    startup.add_ratios(results, peers)
    assert all("ratio_p99" not in p for p in peers)


def _fake_runner(runtime: str, pods: int, progress: Any) -> dict[str, Any]:
    created = {f"p{i}": 0.0 for i in range(pods)}
    running = {name: 0.2 for name in created}
    return startup.startup_entry(runtime, pods, created, running, first_sent=0.0)


def _fake_raw(runtime: str, pods: int) -> dict[str, Any]:
    return startup.raw_peer(runtime, pods, [0.1] * pods, 0.0, 0.1)


def test_suite_document_shape_is_json_and_matches_the_other_suites() -> None:
    doc = startup.run_suite(
        ["process", "containerd"], 3, runner=_fake_runner, raw_runner=_fake_raw, unavailable=lambda rt: None
    )
    json.dumps(doc)  # serialisable as is
    assert doc["suite"] == "startup"
    assert [r["runtime"] for r in doc["results"]] == ["process", "containerd"]
    for r in doc["results"]:
        assert r["pods"] == 3 and set(r["latency_ms"]) == {"p50", "p99"} and r["pods_per_second"] > 0
    systems = [p["system"] for p in doc["peers"]]
    assert systems == ["raw CRI (process)", "raw CRI (containerd)", startup.SLO_SYSTEM]
    slo = doc["peers"][-1]
    assert slo["latency_ms"] == {"p99": 5000.0} and slo["source"].startswith("published")
    assert doc["peers"][0]["ratio_p99"] == pytest.approx(2.0)
    assert doc["machine"]["cpu_count"]


def test_unavailable_runtime_gives_a_clear_error_entry_and_runs_nothing() -> None:
    ran: list[str] = []

    def runner(runtime: str, pods: int, progress: Any) -> dict[str, Any]:
        ran.append(runtime)
        return _fake_runner(runtime, pods, progress)

    doc = startup.run_suite(
        ["process", "containerd"],
        2,
        runner=runner,
        raw_runner=_fake_raw,
        unavailable=lambda rt: "containerd runtime unavailable: needs root" if rt == "containerd" else None,
    )
    assert ran == ["process"]
    failed = doc["results"][1]
    assert failed == {
        "runtime": "containerd",
        "pods": 2,
        "error": "containerd runtime unavailable: needs root",
    }
    assert doc["peers"][1]["error"].startswith("containerd runtime unavailable")


def test_a_failing_runtime_keeps_the_others() -> None:
    def runner(runtime: str, pods: int, progress: Any) -> dict[str, Any]:
        if runtime == "process":
            raise RuntimeError("first line\n  traceback noise\nthe real reason")
        return _fake_runner(runtime, pods, progress)

    doc = startup.run_suite(
        ["process", "containerd"], 1, runner=runner, raw_runner=_fake_raw, unavailable=lambda rt: None
    )
    assert doc["results"][0]["error"] == "RuntimeError: the real reason"
    assert doc["results"][1]["running"] == 1


@pytest.mark.parametrize(
    ("argv", "runtimes", "pods"),
    [
        pytest.param([], ["process", "containerd"], 100, id="defaults"),
        pytest.param(["--quick"], ["process", "containerd"], 20, id="quick"),
        pytest.param(["--quick", "--pods", "5"], ["process", "containerd"], 5, id="pods-wins-over-quick"),
        pytest.param(
            ["--runtime", "containerd", "--runtime", "process", "--runtime", "containerd"],
            ["containerd", "process"],
            100,
            id="repeatable-runtime-kept-in-order-once",
        ),
    ],
)
def test_selection(argv: list[str], runtimes: list[str], pods: int) -> None:
    assert startup.selection(startup.build_parser().parse_args(argv)) == (runtimes, pods)


def test_selection_rejects_zero_pods() -> None:
    with pytest.raises(SystemExit):
        startup.selection(startup.build_parser().parse_args(["--pods", "0"]))


def test_pod_manifest_is_busybox_sleep() -> None:
    pod = startup.pod_manifest(7)
    assert pod["metadata"]["name"] == "startup-00007"
    (container,) = pod["spec"]["containers"]
    assert container["image"] == "busybox" and container["command"] == ["sleep", "3600"]
    assert "nodeName" not in pod["spec"]  # the scheduler binds it


def test_the_clock_starts_when_the_create_is_sent() -> None:
    """Both peers start their clock when the request is sent (raw CRI: RunPodSandbox sent)."""
    import asyncio

    now = [10.0]

    class SlowApi:
        async def create(self, version: str, resource: str, body: Any, namespace: str) -> None:
            now[0] += 2.5  # the create takes 2.5 s on the fake clock

    sent_at: dict[str, float] = {}
    asyncio.run(startup.send_create(SlowApi(), startup.pod_manifest(0), sent_at, lambda: now[0]))
    assert sent_at == {startup.pod_manifest(0)["metadata"]["name"]: 10.0} and now[0] == 12.5
    assert startup.LATENCY_MEANING.startswith("create request sent ->")
    assert startup.RAW_MEANING.startswith("RunPodSandbox sent ->")
