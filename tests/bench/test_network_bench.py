"""``raykube bench network --quick`` end to end (root: real namespaces, our bridge plugin, the
reference CNI plugins, our nftables backend, DNS server and nginx Ingress, dnsmasq, iptables-nft),
and the suite's pure figures.

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
from bench.network_services import (
    HTTP_MODES,
    HTTP_PATHS,
    change_endpoint,
    dns_summary,
    http_summary,
    iptables_chains,
    iptables_full,
    iptables_partial,
    programming_summary,
    rule_count,
    synthetic_cluster,
)
from netplugins.proxy.model import build_table
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
    assert_service_sections(doc)


def assert_service_sections(doc: dict[str, Any]) -> None:
    svc = doc["services"]
    assert svc["services"] == 100 and svc["endpoints_per_service"] == 10 and svc["changes"] == 20
    ours = svc["ours"]
    assert ours["verified"] is True  # every Service in the map, the last change's endpoint chain there
    assert ours["partial_syncs"] == 20  # every change went as an incremental transaction
    assert len(ours["full_ms"]) == 1 and all(positive(v) for v in ours["full_ms"] + ours["full_nft_ms"])
    for key in ("change_ms", "change_nft_ms", "build_table_ms"):
        assert_stats(ours[key], f"services.ours.{key}")
    # an incremental change is a small fraction of the whole table's script
    assert 0 < ours["change_script_lines"] < ours["full_script_lines"] / 10
    assert svc["meets_slo"] in (True, False)
    peer = svc["peer"]
    assert peer is not None and peer["rules"] > 100 * 10 * 2
    assert_stats(peer["change_ms"], "services.peer.change_ms")
    for key, value in svc["ratio"].items():
        assert positive(value), f"services.ratio.{key} = {value!r}"

    dns = doc["dns"]
    assert dns["same_answers"] is True and "dnsmasq" in dns["baseline_what"]
    for side in ("ours", "baseline"):
        assert positive(dns[side]["qps"]) and dns[side]["answered"] > 0, dns[side]
        assert dns[side]["errors"] == 0, dns[side]
        assert_stats(dns[side]["latency_us"], f"dns.{side}.latency_us")
    assert positive(dns["ratio"]["qps"]) and positive(dns["ratio"]["p99"])

    http = doc["http"]
    assert set(http["latency_us"]) == set(HTTP_PATHS)
    for path, modes in http["latency_us"].items():
        assert set(modes) == set(HTTP_MODES)
        for mode, stats in modes.items():
            assert_stats(stats, f"http.{path}.{mode}")
    assert set(http["ratio_to_direct"]) == {"clusterip", "ingress"}
    for path, ratios in http["ratio_to_direct"].items():
        for key, value in ratios.items():
            assert positive(value), f"http.ratio_to_direct.{path}.{key} = {value!r}"


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


def test_an_endpoint_change_rewrites_one_endpoint() -> None:
    _services, slices = synthetic_cluster(50, 10)
    changed = change_endpoint(slices, 3)
    diffs = [
        (i, a, b)
        for i, (old, new) in enumerate(zip(slices, changed, strict=True))
        for a, b in zip(old["endpoints"], new["endpoints"], strict=True)
        if a != b
    ]
    assert len(diffs) == 1
    index, before, after = diffs[0]
    assert index == (3 * 37) % 50 and before["addresses"] != after["addresses"]
    assert after["addresses"] == ["10.246.0.4"]
    assert slices[index]["endpoints"][3] == before  # the input is not modified


def test_the_iptables_peer_partial_restore_writes_only_what_changed() -> None:
    services, slices = synthetic_cluster(20, 10)
    old = iptables_chains(build_table(services, slices), "10.244.0.0/16")
    assert rule_count(old) == 1 + 3 + 20 * (1 + 1 + 10) + 20 * 10 * 2
    full = iptables_full(old)
    assert full.startswith("*nat\n") and full.endswith("COMMIT\n")
    assert "-A OUTPUT -m comment" in full and full.count("--to-destination") == 200
    new = iptables_chains(build_table(services, change_endpoint(slices, 0)), "10.244.0.0/16")
    script = iptables_partial(old, new)
    declared = [line[1:].split()[0] for line in script.splitlines() if line.startswith(":")]
    svc = [c for c in declared if c.startswith("KUBE-SVC-")]
    seps = [c for c in declared if c.startswith("KUBE-SEP-")]
    assert "KUBE-SERVICES" in declared and len(svc) == 1 and len(seps) == 2  # the new one, the gone one
    deleted = [line.split()[1] for line in script.splitlines() if line.startswith("-X ")]
    assert len(deleted) == 1 and deleted[0] in seps and deleted[0] not in new
    assert script.count("--to-destination") == 1 and "10.246.0.1:8080" in script


def test_service_summaries_are_ours_over_the_peer() -> None:
    prog = programming_summary(
        {
            "services": 2,
            "endpoints_per_service": 10,
            "ours": {
                "full_ns": [4e6, 2e6, 3e6], "full_nft_ns": [1e6, 1e6, 1e6], "full_script_lines": 99,
                "change_ns": [1e6, 2e6], "change_nft_ns": [5e5, 5e5], "change_script_lines": [7, 9],
                "build_table_ns": [1e5, 1e5], "partial_syncs": 2, "verified": True,
            },
            "peer": {
                "what": "x", "rules": 60, "full_ns": [6e6, 6e6, 6e6], "change_ns": [4e6, 4e6],
                "change_script_lines": [20, 20],
            },
        }
    )  # fmt: skip
    assert prog["ours"]["change_ms"] == {"p50": 1.0, "p99": 2.0, "mean": 1.5}
    assert prog["ratio"] == {"full_median": 0.5, "change_p50": 0.25, "change_p99": 0.5}
    assert prog["meets_slo"] is True and prog["ours"]["change_script_lines"] == 8

    def rounds(answered: int, seconds: float, latency_us: int) -> list[dict[str, Any]]:
        return [{"answered": answered, "seconds": seconds, "latency_ns": [latency_us * 1000] * 3, "lost": 0,
                 "errors": 0, "client_cpu_s": 0.5}]  # fmt: skip

    raw = {"services": 2, "concurrency": 4, "seconds": 1.0, "baseline_what": "b", "same_answers": True}
    dns = dns_summary({**raw, "ours": rounds(1000, 1.0, 300), "baseline": rounds(4000, 1.0, 100)})
    assert dns["ours"]["qps"] == 1000.0 and dns["baseline"]["qps"] == 4000.0
    assert dns["ratio"] == {"qps": 0.25, "p99": 3.0}
    assert dns["ours"]["client_cpu_share"] == 0.5

    samples = {
        path: {mode: [k * 1000 * (2 if mode == "new_connection" else 1)] for mode in HTTP_MODES}
        for k, path in enumerate(HTTP_PATHS, start=1)
    }
    http = http_summary({"requests": 1, "rounds": 1, "what": {}, "samples": samples})
    assert http["latency_us"]["clusterip"]["new_connection"]["p50"] == 4.0
    assert http["ratio_to_direct"]["clusterip"]["keepalive_p50"] == 2.0
    assert http["ratio_to_direct"]["ingress"]["new_connection_p99"] == 3.0


def test_a_failing_service_run_removes_what_it_made(monkeypatch: pytest.MonkeyPatch) -> None:
    """The Service driver fails in its HTTP step (the plan names a pod address nobody has) while the
    nftables table, the pod nginx and the Ingress nginx exist: the driver stops its processes, the
    run removes the namespaces, links and state; no process of the run is left."""
    missing = hostnet.missing()
    if missing is None and not Path("/usr/lib/cni/bridge").exists():
        missing = "/usr/lib/cni/bridge is not installed"
    require("netns", missing)
    import bench.network as network

    plan_of = network.service_plan
    seen: dict[str, Any] = {}

    def wrong_pod(*args: Any) -> dict[str, Any]:
        plan = plan_of(*args)
        plan["pod_ip"] = "10.244.250.9"  # on the link, but nobody answers there
        seen["prefix"] = plan["table"].removesuffix("-proxy")
        return plan

    monkeypatch.setattr(network, "service_plan", wrong_pod)
    before = hostnet.snapshot()
    cfg = network.Config(
        pods=2,
        rounds=1,
        seconds=0.1,
        round_trips=10,
        services=10,
        changes=2,
        dns_seconds=0.2,
        http_requests=5,
    )
    with pytest.raises(RuntimeError, match="Service/DNS/Ingress run failed"):
        network.run(cfg, lambda _: None)
    after = hostnet.snapshot()
    prefix = seen["prefix"]
    assert [n for n in netns_names() | link_names() if n.startswith(prefix)] == []
    assert hostnet.diff(before, after, only=[prefix]) == []
    assert not [p for p in Path("/tmp").iterdir() if p.name.startswith(prefix)]
    assert processes_mentioning(prefix) == []


def processes_mentioning(text: str) -> list[str]:
    out = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if text in cmdline:
                out.append(f"{proc.name}: {cmdline}")
    return out
