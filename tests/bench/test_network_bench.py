"""``raykube bench network --quick`` end to end (root: real namespaces, our bridge plugin, the
reference CNI plugins), and the suite's pure figures.

The end-to-end test checks the report's shape, that every figure is a positive number (no timing
thresholds: the machine is shared) and that the run left nothing of its own on the host (its
``leftovers`` field and a host network snapshot before and after, scoped to the run's names).
Run it under ``flock /tmp/raykube-heavy.lock``.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.network import cni_summary
from bench.network_paths import (
    Endpoint,
    NetPath,
    PathSamples,
    latency_summary,
    link_names,
    netns_names,
    path_summary,
    percentile,
)
from tests import hostnet
from tests.capabilities import require

RAYKUBE = Path(sys.executable).with_name("raykube")
PATHS = ("bare veth pair", "same node", "across nodes", "node to node")


def positive(value: Any) -> bool:
    return (
        isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0
    )


def assert_stats(stats: dict[str, Any], where: str) -> None:
    assert set(stats) == {"p50", "p99", "mean"}, where
    for key, value in stats.items():
        assert positive(value), f"{where}.{key} = {value!r}"


def test_quick_run_reports_positive_figures_and_leaves_nothing(tmp_path: Path) -> None:
    missing = hostnet.missing()
    if missing is None and not Path("/usr/lib/cni/bridge").exists():
        missing = "/usr/lib/cni/bridge is not installed"
    require("netns", missing)
    before = hostnet.snapshot()
    out = tmp_path / "network.json"
    proc = subprocess.run(
        [str(RAYKUBE), "bench", "network", "--quick", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    after = hostnet.snapshot()
    assert proc.returncode == 0, proc.stderr[-4000:]
    doc = json.loads(out.read_text())
    assert json.loads(proc.stdout) == doc  # the JSON printed is the JSON written

    assert doc["suite"] == "network" and doc["quick"] is True
    assert doc["leftovers"] == []
    assert doc["names"][0] == doc["run_id"] and doc["run_id"].startswith("rkb")
    # Names only: a subnet of ours may be taken by another engineer's run right after our teardown.
    assert hostnet.diff(before, after, only=[n for n in doc["names"] if "/" not in n]) == []

    cni = doc["cni"]
    assert cni["pods"] == 20
    assert set(cni["ours"]) == {"add_ms", "del_ms", "version_rpc_ms"}
    assert set(cni["reference"]) == {"add_ms", "del_ms"}
    for side in ("ours", "reference"):
        for op in cni[side]:
            assert_stats(cni[side][op], f"cni.{side}.{op}")
    assert set(cni["ratio"]) == {"add_p50", "add_mean", "del_p50", "del_mean"}
    for key, value in cni["ratio"].items():
        assert positive(value), f"cni.ratio.{key} = {value!r}"
    assert [p["type"] for p in cni["reference_conflist"]["plugins"]] == ["bridge", "portmap"]
    assert cni["reference_conflist"]["plugins"][0]["ipam"]["type"] == "host-local"

    traffic = doc["traffic"]
    assert [p["path"] for p in traffic["paths"]] == list(PATHS)
    for p in traffic["paths"]:
        assert positive(p["throughput_mb_s"]), p
        assert len(p["throughput_rounds_mb_s"]) == traffic["rounds"] == 1
        assert_stats(p["rtt_us"], f"traffic.{p['path']}.rtt_us")
        assert p["round_trips"] == 500
    assert set(traffic["ratio_to_bare"]) == {"same node", "across nodes"}
    for name, ratios in traffic["ratio_to_bare"].items():
        assert set(ratios) == {"throughput", "rtt_p50", "rtt_mean"}
        for key, value in ratios.items():
            assert positive(value), f"ratio_to_bare.{name}.{key} = {value!r}"
    assert positive(doc["wall_s"])


@pytest.mark.parametrize(
    ("values", "p", "expected"),
    [
        pytest.param([], 50, 0.0, id="empty"),
        pytest.param([5.0], 99, 5.0, id="one"),
        pytest.param([float(x) for x in range(1, 101)], 50, 50.0, id="p50-of-100"),
        pytest.param([float(x) for x in range(1, 101)], 99, 99.0, id="p99-of-100"),
        pytest.param([3.0, 1.0, 2.0], 50, 2.0, id="unsorted"),
    ],
)
def test_percentile_is_the_scheduler_perf_rule(values: list[float], p: float, expected: float) -> None:
    assert percentile(values, p) == expected


def test_cni_summary_ratios_are_ours_over_reference() -> None:
    samples = {
        "ours": {"add_ms": [12.0, 12.0, 24.0], "del_ms": [10.0, 10.0, 10.0]},
        "reference": {"add_ms": [10.0, 10.0, 10.0], "del_ms": [20.0, 20.0, 20.0]},
    }
    doc = cni_summary(samples, {"plugins": []}, 3)
    assert doc["ours"]["add_ms"] == {"p50": 12.0, "p99": 24.0, "mean": 16.0}
    assert doc["ratio"] == {"add_p50": 1.2, "add_mean": 1.6, "del_p50": 0.5, "del_mean": 0.5}
    assert doc["meets_goal"] is True  # p50 ratio 1.2 is within the goal
    samples["ours"]["add_ms"] = [13.0, 13.0, 13.0]
    assert cni_summary(samples, {"plugins": []}, 3)["meets_goal"] is False


def test_path_summary_takes_the_median_round_and_microseconds() -> None:
    path = NetPath("p", Endpoint("a", "10.0.0.1"), Endpoint("b", "10.0.0.2"))
    s = PathSamples(path, transfers=[(1e9, 1.0), (3e9, 1.0), (2e9, 2.0)], rtt_ns=[10_000, 20_000, 30_000])
    doc = path_summary(s)
    assert doc["throughput_mb_s"] == 1000.0
    assert doc["throughput_rounds_mb_s"] == [1000.0, 3000.0, 1000.0]
    assert doc["rtt_us"] == latency_summary([10.0, 20.0, 30.0], 1) == {"p50": 20.0, "p99": 30.0, "mean": 20.0}
    assert doc["round_trips"] == 3


def test_a_run_failing_midway_removes_what_it_made(monkeypatch: pytest.MonkeyPatch) -> None:
    """The traffic step fails once the plugins, 40 pod namespaces and the traffic pods exist: the
    teardown still removes the run's namespaces, links, plugin state and nodes."""
    missing = hostnet.missing()
    if missing is None and not Path("/usr/lib/cni/bridge").exists():
        missing = "/usr/lib/cni/bridge is not installed"
    require("netns", missing)
    import bench.network as network

    seen: dict[str, Any] = {}

    def fail(paths: Any, *args: Any) -> Any:
        seen["paths"] = [p.name for p in paths]
        prefix = paths[0].client.netns[:9]  # rkb<hex>
        node = paths[-1].client.netns[3:-2]  # rkn<hex>-0: the simulated nodes' suffix
        seen["names"] = [prefix, f"rkn{node}", f"rkul{node}", f"rkv{node}"]
        seen["present"] = sorted(n for n in netns_names() if n.startswith(prefix))
        raise RuntimeError("injected failure")

    monkeypatch.setattr(network, "measure_paths", fail)
    before = hostnet.snapshot()
    with pytest.raises(RuntimeError, match="injected failure"):
        network.run(network.Config(pods=2, rounds=1, seconds=0.1, round_trips=10), lambda _: None)
    after = hostnet.snapshot()
    assert seen["paths"] == list(PATHS)
    names = seen["names"]
    assert len(seen["present"]) == 2 * (network.WARMUP_PAIRS + 2) + 2 + 3  # pairs, bare pair, 3 pods
    assert [n for n in netns_names() | link_names() if n.startswith(tuple(names))] == []
    assert hostnet.diff(before, after, only=names) == []
    assert not [p for p in Path("/tmp").iterdir() if p.name.startswith(names[0])]
