"""Network benchmark: our gRPC bridge plugin, pod-to-pod traffic, the service proxy, cluster DNS and
the Ingress, each next to a peer measured in the same run (ratios, no thresholds).

``raykube bench network [--quick] [--json FILE]`` (root) builds two simulated nodes
(``netplugins.simnet``: node network namespaces on an underlay bridge) and serves the ``bridge``
plugin in each (``python -m netplugins.bridge``, host-gw, a static peer list, podCIDRs
``10.244.1.0/24`` and ``10.244.2.0/24``), then:

1. **ADD / DEL per pod** on node 0 (``bench.network_cni``): N pods through our plugin's socket with
   ``CNIClient``, interleaved pod by pod with N pods through the reference plugins executed directly
   with the same configuration list (``netplugins.bridge.config.conflist`` on a bridge of their
   own); p50, p99 and mean per side and the ratio ours / reference. Issue 12's goal: ADD within
   1.2x.
2. **Pod-to-pod TCP** (``bench.netperf``, the same program on every path): bulk-transfer MB/s and
   1-byte ping-pong round trips between two pods on node 0 (same node: one bridge) and between a pod
   on node 0 and one on node 1 (across nodes: bridge, host-gw route, underlay, route, bridge), next
   to two bare network namespaces joined by one veth pair (the peer), and, for scale, node 0 to
   node 1 over the underlay without pods. Issue 12's goal: pod-to-pod within 10% of bare.
3. **Services, DNS, Ingress** (issue 13; ``bench.network_svcrun`` run inside a node namespace of
   its own, ``rkb<hex>-sn``, joined by a veth pair to a pod namespace ``rkb<hex>-sp`` serving HTTP
   with nginx): the time to program ``services`` Services of 10 endpoints with the real
   ``NftablesBackend`` and the time one endpoint change takes to be programmed at that size (p50/p99
   of ``changes`` changes), next to kube-proxy's iptables layout through ``iptables-nft-restore``;
   DNS queries per second and latency of our ``DnsServer`` next to ``dnsmasq`` answering the same
   names; HTTP GET latency to the pod directly, through its ClusterIP (our DNAT) and through the
   Ingress (our nginx). Figures by ``bench.network_services``.
4. Everything made is removed at the end, also on failure: pods (DEL), the plugins (SIGTERM with
   ``--purge-on-exit``), the node namespaces (simnet), pod, bare and Service namespaces (with the
   processes still in them: nginx, dnsmasq, our DNS server) and links named ``rkb<hex>...``
   (``bench.network_paths.Scratch``), the state directory. The JSON's ``names``
   are the run's names (its ``rkb<hex>`` prefix, the simulated nodes' names and subnets);
   ``leftovers`` lists any of them still present afterwards (it should be empty).

See docs/bench-network.md. Entry point: ``main(argv)`` (``python -m bench.network``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.network_cni import reference_conflist
from bench.network_paths import (
    Endpoint,
    NetPath,
    Placement,
    Scratch,
    bare_pair,
    first_line,
    latency_summary,
    link_names,
    measure_paths,
    netns_names,
    path_summary,
    ratio,
)
from bench.network_paths import run as run_cmd
from bench.network_services import dns_summary, http_summary, programming_summary
from netplugins.cni.client import CNIClient
from netplugins.cni.types import NetRequest
from netplugins.simnet import SimulatedNodes

CLUSTER_CIDR = "10.244.0.0/16"
NODE_CIDRS = ("10.244.1.0/24", "10.244.2.0/24")
REFERENCE_CIDR = "10.244.201.0/24"  # the reference side's own bridge on node 0
GOAL_ADD_RATIO = 1.2
GOAL_POD_TO_POD = 0.10  # within 10% of bare namespaces
PLUGIN_START_TIMEOUT_S = 60.0
WARMUP_PAIRS = 2
REQUIRED = (
    "/usr/sbin/ip", "/usr/sbin/nft", "/usr/lib/cni/bridge", "/usr/lib/cni/host-local",
    "/usr/sbin/nginx", "/usr/sbin/dnsmasq",
)  # fmt: skip
IPTABLES_RESTORE = "/usr/sbin/iptables-nft-restore"  # the programming peer; optional
SVC_CIDR = "10.244.250.0/24"  # the Service part's node and pod namespaces (private to them)
SVC_NODE_IP = "10.244.250.1"
SVC_POD_IP = "10.244.250.2"
WEB_CLUSTER_IP = "10.99.0.80"  # bench-web/web: the ClusterIP in front of the pod
SERVICE_CIDR = "10.96.0.0/12"
SVC_DRIVER_TIMEOUT_S = 1500


@dataclass(frozen=True, slots=True)
class Config:
    pods: int
    rounds: int
    seconds: float
    round_trips: int
    services: int = 100
    changes: int = 20
    full_syncs: int = 1
    dns_seconds: float = 1.0
    dns_concurrency: int = 16
    http_requests: int = 200
    svc_rounds: int = 1


FULL = Config(
    pods=100, rounds=3, seconds=2.0, round_trips=2000,
    services=1000, changes=20, full_syncs=3, dns_seconds=3.0, http_requests=1000, svc_rounds=3,
)  # fmt: skip
QUICK = Config(pods=20, rounds=1, seconds=0.5, round_trips=500)


def missing_capability() -> str | None:
    """Why this machine cannot run the suite, or None."""
    if os.geteuid() != 0:
        return (
            f"raykube bench network needs root (network namespaces, veths, bridges); euid is {os.geteuid()}"
        )
    absent = [p for p in REQUIRED if not os.path.exists(p)]
    if absent:
        return (
            f"raykube bench network needs {', '.join(absent)} "
            "(iproute2, nftables, containernetworking-plugins, nginx-light, dnsmasq-base)"
        )
    return None


# ------------------------------------------------------------------------------------ the shell


@contextlib.contextmanager
def plugin_process(node: Any, index: int, state: Path, bridge: str, peers_file: Path) -> Iterator[str]:
    """Our bridge plugin serving inside ``node``'s namespace; yields its socket. On exit: SIGTERM
    (the plugin purges what it made on the node), SIGKILL after a grace period."""
    socket = state / f"node-{index}.sock"
    argv = [
        sys.executable, "-m", "netplugins.bridge", "--socket", str(socket),
        "--root", str(state / f"node-{index}"), "--node", f"node-{index}", "--node-ip", node.ip,
        "--pod-cidr", NODE_CIDRS[index], "--cluster-cidr", CLUSTER_CIDR, "--bridge", bridge,
        "--peers", str(peers_file), "--purge-on-exit",
    ]  # fmt: skip
    log = open(state / f"node-{index}.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(node.command(argv), stdout=subprocess.PIPE, stderr=log, text=True)
    try:
        line = first_line(proc, PLUGIN_START_TIMEOUT_S)
        if not line.startswith("ready"):
            proc.kill()
            proc.wait(PLUGIN_START_TIMEOUT_S)
            output = (state / f"node-{index}.log").read_text()[-2000:]
            raise RuntimeError(f"bridge plugin on node {index} did not start: {output}")
        yield str(socket)
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(PLUGIN_START_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout:
            proc.stdout.close()
        log.close()


def run_cni_latency(node: Any, socket: str, state: Path, scratch: Scratch, cfg: Config) -> dict[str, Any]:
    """ADD/DEL latencies on node 0 from ``bench.network_cni`` run inside it (see that module)."""
    ref_list = reference_conflist(scratch.name("r"), REFERENCE_CIDR, CLUSTER_CIDR, str(state / "reference"))
    (state / "reference.json").write_text(json.dumps(ref_list))
    pairs = [
        [scratch.add_netns(f"-o{i:03d}"), scratch.add_netns(f"-r{i:03d}")]
        for i in range(WARMUP_PAIRS + cfg.pods)
    ]
    (state / "pairs.json").write_text(json.dumps(pairs))
    argv = [
        sys.executable, "-m", "bench.network_cni", "--socket", socket,
        "--reference-conflist", str(state / "reference.json"), "--pods", str(state / "pairs.json"),
        "--warmup", str(WARMUP_PAIRS),
    ]  # fmt: skip
    proc = subprocess.run(node.command(argv), capture_output=True, text=True, timeout=600, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"CNI latency run failed: {proc.stderr.strip()[-2000:]}")
    samples: dict[str, dict[str, list[float]]] = json.loads(proc.stdout)
    return cni_summary(samples, ref_list, cfg.pods)


def cni_summary(
    samples: dict[str, dict[str, list[float]]], ref_list: dict[str, Any], pods: int
) -> dict[str, Any]:
    """Per side p50/p99/mean of ADD and DEL in ms, and ours / reference (pure)."""
    sides = {side: {k: latency_summary(v) for k, v in s.items()} for side, s in samples.items()}
    ours, ref = sides["ours"], sides["reference"]
    ratios = {
        f"{op}_{stat}": ratio(ours[f"{op}_ms"][stat], ref[f"{op}_ms"][stat])
        for op in ("add", "del")
        for stat in ("p50", "mean")
    }
    add_p50 = ratios["add_p50"]
    return {
        "pods": pods,
        "warmup_pods": WARMUP_PAIRS,
        "ours": ours,
        "reference": ref,
        "ratio": ratios,
        "goal_add_ratio": GOAL_ADD_RATIO,
        "meets_goal": add_p50 is not None and add_p50 <= GOAL_ADD_RATIO,
        "reference_conflist": ref_list,
    }


class PodSet:
    """Pods for the traffic paths, added through the plugins' sockets and deleted at the end."""

    def __init__(self, scratch: Scratch) -> None:
        self.scratch = scratch
        self.added: list[tuple[str, Any]] = []

    def add(self, socket: str, tail: str) -> Endpoint:
        netns = self.scratch.add_netns(tail)
        req = NetRequest(
            container_id=f"rkbench{tail.strip('-')}",
            netns=f"/run/netns/{netns}",
            args={"K8S_POD_NAMESPACE": "bench", "K8S_POD_NAME": f"traffic{tail}"},
        )

        async def add() -> list[str]:
            async with CNIClient(socket) as cni:
                return (await cni.add(req)).pod_ips()

        self.added.append((socket, req))
        ips = asyncio.run(add())
        return Endpoint(netns, ips[0])

    def delete_all(self) -> list[str]:
        errors: list[str] = []

        async def delete() -> None:
            for socket, req in self.added:
                try:
                    async with CNIClient(socket) as cni:
                        await cni.delete(req)
                except Exception as e:
                    errors.append(f"DEL {req.container_id}: {e}")

        asyncio.run(delete())
        self.added.clear()
        return errors


def traffic(
    nodes: Any, sockets: list[str], scratch: Scratch, cfg: Config, stack: contextlib.ExitStack
) -> dict[str, Any]:
    pods = PodSet(scratch)
    stack.callback(pods.delete_all)
    a = pods.add(sockets[0], "-pa")
    b = pods.add(sockets[0], "-pb")
    c = pods.add(sockets[1], "-pc")
    n0, n1 = nodes.nodes
    paths = [
        bare_pair(scratch),
        NetPath("same node", a, b, "pod to pod on one node: veth, bridge, veth"),
        NetPath(
            "across nodes", a, c,
            "pod to pod on two nodes: veth, bridge, host-gw route, underlay, route, bridge, veth",
        ),
        NetPath(
            "node to node", Endpoint(n0.netns, n0.ip), Endpoint(n1.netns, n1.ip),
            "the two node namespaces over the underlay (no pods): what 'across nodes' crosses anyway",
        ),
    ]  # fmt: skip
    cpus = Placement.default()
    samples = measure_paths(paths, cfg.rounds, cfg.seconds, cfg.round_trips, cpus)
    results = [path_summary(s) for s in samples]
    by_name = {r["path"]: r for r in results}
    bare = by_name["bare veth pair"]
    ratios = {
        name: {
            "throughput": ratio(by_name[name]["throughput_mb_s"], bare["throughput_mb_s"]),
            "rtt_p50": ratio(by_name[name]["rtt_us"]["p50"], bare["rtt_us"]["p50"]),
            "rtt_mean": ratio(by_name[name]["rtt_us"]["mean"], bare["rtt_us"]["mean"]),
        }
        for name in ("same node", "across nodes")
    }
    return {
        "paths": results,
        "ratio_to_bare": ratios,
        "goal_within": GOAL_POD_TO_POD,
        "meets_goal": {
            name: r["throughput"] is not None
            and r["throughput"] >= 1 - GOAL_POD_TO_POD
            and r["rtt_p50"] is not None
            and r["rtt_p50"] <= 1 + GOAL_POD_TO_POD
            for name, r in ratios.items()
        },
        "transfer_seconds": cfg.seconds,
        "rounds": cfg.rounds,
        "cpus": {"sender": cpus.sender, "receiver": cpus.sink, "ping_pong_both_ends": cpus.ping},
    }


def service_namespaces(scratch: Scratch) -> tuple[str, str]:
    """The Service part's node and pod namespaces, one veth pair between them; the node routes the
    service CIDR to the pod side (only DNAT makes those addresses reachable)."""
    node, pod = scratch.add_netns("-sn"), scratch.add_netns("-sp")
    vn, vp = scratch.own_link("sn"), scratch.own_link("sp")
    run_cmd(["ip", "link", "add", vn, "type", "veth", "peer", "name", vp])
    for ns, dev, ip in ((node, vn, SVC_NODE_IP), (pod, vp, SVC_POD_IP)):
        run_cmd(["ip", "link", "set", dev, "netns", ns])
        run_cmd(["ip", "netns", "exec", ns, "ip", "addr", "add", f"{ip}/24", "dev", dev])
        run_cmd(["ip", "netns", "exec", ns, "ip", "link", "set", dev, "up"])
    run_cmd(["ip", "netns", "exec", pod, "ip", "route", "add", "default", "via", SVC_NODE_IP])
    run_cmd(["ip", "netns", "exec", node, "ip", "route", "add", SERVICE_CIDR, "dev", vn])
    return node, pod


def service_plan(cfg: Config, scratch: Scratch, state: Path, pod: str) -> dict[str, Any]:
    return {
        "state": str(state),
        "table": f"{scratch.prefix}-proxy",
        "cluster_cidr": "10.244.0.0/16",
        "node_ip": SVC_NODE_IP,
        "pod_ip": SVC_POD_IP,
        "pod_netns": pod,
        "web_cluster_ip": WEB_CLUSTER_IP,
        "services": cfg.services,
        "changes": cfg.changes,
        "full_syncs": cfg.full_syncs,
        "iptables_peer": os.path.exists(IPTABLES_RESTORE),
        "dns_seconds": cfg.dns_seconds,
        "dns_concurrency": cfg.dns_concurrency,
        "http_requests": cfg.http_requests,
        "rounds": cfg.svc_rounds,
    }


def run_services(cfg: Config, scratch: Scratch, state: Path) -> dict[str, Any]:
    """Issue 13's part (``bench.network_svcrun`` in the Service node namespace); its figures."""
    node, pod = service_namespaces(scratch)
    svc_state = state / "services"
    svc_state.mkdir()
    plan = service_plan(cfg, scratch, svc_state, pod)
    (state / "services-plan.json").write_text(json.dumps(plan))
    argv = [
        "ip", "netns", "exec", node, sys.executable, "-m", "bench.network_svcrun",
        "--plan", str(state / "services-plan.json"),
    ]  # fmt: skip
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=SVC_DRIVER_TIMEOUT_S, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"Service/DNS/Ingress run failed: {proc.stderr.strip()[-3000:]}")
    return summarize_services(json.loads(proc.stdout))


def summarize_services(raw: dict[str, Any]) -> dict[str, Any]:
    return {
        "services": programming_summary(raw["programming"]),
        "dns": dns_summary(raw["dns"]),
        "http": http_summary(raw["http"]),
    }


def run(cfg: Config, say: Callable[[str], None]) -> dict[str, Any]:
    """The whole suite (see the module docstring); the report, with ``leftovers`` after teardown."""
    t0 = time.monotonic()
    scratch = Scratch()
    state = Path(tempfile.mkdtemp(prefix=f"{scratch.prefix}-", dir="/tmp"))
    doc: dict[str, Any] = {"suite": "network", "run_id": scratch.prefix}
    nodes = SimulatedNodes(2)
    try:
        with contextlib.ExitStack() as stack:
            stack.callback(shutil.rmtree, state, True)
            stack.callback(scratch.close)
            stack.callback(nodes.close)
            say("building two simulated nodes and serving the bridge plugin in each")
            nodes.start()
            doc["names"] = [scratch.prefix, *nodes.names()]
            peers = [
                {"name": f"node-{i}", "podCIDR": NODE_CIDRS[i], "ip": n.ip} for i, n in enumerate(nodes.nodes)
            ]
            (state / "peers.json").write_text(json.dumps(peers))
            bridge = scratch.name("o")
            sockets = [
                stack.enter_context(plugin_process(n, i, state, bridge, state / "peers.json"))
                for i, n in enumerate(nodes.nodes)
            ]
            say(f"ADD/DEL: {cfg.pods} pods through our plugin, {cfg.pods} through the reference plugins")
            doc["cni"] = run_cni_latency(nodes.nodes[0], sockets[0], state, scratch, cfg)
            say(
                f"pod-to-pod TCP: {cfg.rounds} round(s) of {cfg.seconds} s transfers "
                f"and {cfg.round_trips} round trips per path"
            )
            doc["traffic"] = traffic(nodes, sockets, scratch, cfg, stack)
            say(
                f"Services: programming {cfg.services} Services x 10 endpoints and {cfg.changes} "
                f"endpoint changes; DNS {cfg.svc_rounds} x {cfg.dns_seconds} s per server; "
                f"HTTP {cfg.svc_rounds} x {cfg.http_requests} GETs per path and mode"
            )
            doc.update(run_services(cfg, scratch, state))
    finally:
        nodes_left = [] if nodes.plan is None else [n for n in nodes.plan.names() if _present(n)]
        doc["leftovers"] = sorted(
            set(scratch.leftovers() + nodes_left + ([str(state)] if state.exists() else []))
        )
        doc["wall_s"] = round(time.monotonic() - t0, 1)
    return doc


def _present(name: str) -> bool:
    return name in netns_names() or name in link_names()


# ------------------------------------------------------------------------------------ report


def render(doc: dict[str, Any], console: Any) -> None:
    from rich.table import Table

    cni = doc["cni"]
    table = Table(title=f"CNI ADD/DEL per pod, ms ({cni['pods']} pods per side)")
    for col in ("", "ADD p50", "ADD p99", "ADD mean", "DEL p50", "DEL p99", "DEL mean"):
        table.add_column(col, justify="left" if not col else "right")
    for side in ("ours", "reference"):
        s = cni[side]
        table.add_row(
            side, *(f"{s[f'{op}_ms'][k]:.1f}" for op in ("add", "del") for k in ("p50", "p99", "mean"))
        )
    r = cni["ratio"]
    table.add_row(
        "ratio",
        f"{r['add_p50']:.2f}",
        "",
        f"{r['add_mean']:.2f}",
        f"{r['del_p50']:.2f}",
        "",
        f"{r['del_mean']:.2f}",
    )
    console.print(table)
    rpc = cni["ours"]["version_rpc_ms"]
    console.print(
        f"in ours: the bare gRPC round trip (Version) p50 {rpc['p50']:.2f} ms, p99 {rpc['p99']:.2f} ms"
    )
    console.print(
        f"goal: ADD p50 ratio <= {cni['goal_add_ratio']}: {'met' if cni['meets_goal'] else 'not met'}"
    )
    traffic = doc["traffic"]
    table = Table(title="TCP between two endpoints")
    for col in ("path", "MB/s", "RTT p50 µs", "RTT p99 µs", "RTT mean µs", "MB/s ratio", "RTT p50 ratio"):
        table.add_column(col, justify="left" if col == "path" else "right")
    for p in traffic["paths"]:
        ratios = traffic["ratio_to_bare"].get(p["path"], {})
        table.add_row(
            p["path"], f"{p['throughput_mb_s']:.0f}", f"{p['rtt_us']['p50']:.1f}",
            f"{p['rtt_us']['p99']:.1f}", f"{p['rtt_us']['mean']:.1f}",
            _fmt(ratios.get("throughput")), _fmt(ratios.get("rtt_p50")),
        )  # fmt: skip
    console.print(table)
    met = ", ".join(f"{k}: {'met' if v else 'not met'}" for k, v in traffic["meets_goal"].items())
    console.print(f"goal: pod-to-pod within {traffic['goal_within']:.0%} of the bare veth pair ({met})")
    if "services" in doc:
        render_services(doc, console)
    if doc["leftovers"]:
        console.print(f"[red]left behind:[/] {', '.join(doc['leftovers'])}")


def render_services(doc: dict[str, Any], console: Any) -> None:
    from rich.table import Table

    svc = doc["services"]
    ours, peer = svc["ours"], svc["peer"]
    table = Table(
        title=f"Service programming, {svc['services']} Services x {svc['endpoints_per_service']} endpoints"
    )
    for col in ("", "whole table ms", "rules/lines", "change p50 ms", "change p99 ms", "change lines"):
        table.add_column(col, justify="left" if not col else "right")
    table.add_row("ours (nftables)", *_programming_row(ours, str(ours["full_script_lines"])))
    if peer:
        table.add_row("iptables-nft peer", *_programming_row(peer, str(peer["rules"])))
        r = svc["ratio"]
        table.add_row("ratio", _fmt(r["full_median"]), "", _fmt(r["change_p50"]), _fmt(r["change_p99"]), "")
    console.print(table)
    console.print(
        f"of one change: nft p50 {ours['change_nft_ms']['p50']:.1f} ms, build_table p50 "
        f"{ours['build_table_ms']['p50']:.1f} ms; table verified: {ours['verified']}; "
        f"kube-proxy's SLO (p99 <= {svc['slo_p99_s']:.0f} s): {'met' if svc['meets_slo'] else 'not met'}"
    )
    dns = doc["dns"]
    table = Table(title=f"DNS, {dns['services']} Services, {dns['concurrency']} queries outstanding")
    for col in ("server", "qps", "p50 µs", "p99 µs", "lost", "errors", "client CPU"):
        table.add_column(col, justify="left" if col == "server" else "right")
    for side in ("ours", "baseline"):
        d = dns[side]
        table.add_row(
            side, f"{d['qps']:.0f}", f"{d['latency_us']['p50']:.0f}", f"{d['latency_us']['p99']:.0f}",
            str(d["lost"]), str(d["errors"]), f"{d['client_cpu_share']:.0%}",
        )  # fmt: skip
    table.add_row("ratio", _fmt(dns["ratio"]["qps"]), "", _fmt(dns["ratio"]["p99"]), "", "", "")
    console.print(table)
    console.print(f"baseline: {dns['baseline_what']}; same answers: {dns['same_answers']}")
    http = doc["http"]
    table = Table(title=f"HTTP GET latency µs ({http['requests_per_mode']} per path and mode)")
    for col in ("path", "keep-alive p50", "p99", "ratio p50", "new conn p50", "p99", "ratio p50"):
        table.add_column(col, justify="left" if col == "path" else "right")
    for path, lat in http["latency_us"].items():
        r = http["ratio_to_direct"].get(path, {})
        cells = [
            cell
            for mode in ("keepalive", "new_connection")
            for cell in (f"{lat[mode]['p50']:.0f}", f"{lat[mode]['p99']:.0f}", _fmt(r.get(f"{mode}_p50")))
        ]
        table.add_row(path, *cells)
    console.print(table)


def _programming_row(side: dict[str, Any], size: str) -> list[str]:
    return [
        ", ".join(f"{v:.0f}" for v in side["full_ms"]),
        size,
        f"{side['change_ms']['p50']:.1f}",
        f"{side['change_ms']['p99']:.1f}",
        str(side["change_script_lines"]),
    ]


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="raykube bench network", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--quick",
        action="store_true",
        help=f"{QUICK.pods} pods, {QUICK.rounds} round of {QUICK.seconds} s transfers, "
        f"{QUICK.services} Services (default {FULL.pods} pods, {FULL.rounds} rounds of "
        f"{FULL.seconds} s, {FULL.services} Services)",
    )
    p.add_argument("--json", default=None, help="also write the results to this file")
    return p


def main(argv: list[str] | None = None) -> int:
    from rich.console import Console

    args = build_parser().parse_args(argv)
    cfg = QUICK if args.quick else FULL
    err = Console(stderr=True)
    missing = missing_capability()
    if missing:
        err.print(f"[red]error:[/] {missing}", highlight=False, soft_wrap=True)
        return 2

    def say(msg: str) -> None:
        err.print(msg, highlight=False, soft_wrap=True)

    try:
        doc = run(cfg, say)
    except KeyboardInterrupt:
        err.print("interrupted; what the run made was removed")
        return 130
    except Exception as e:  # the run's teardown has run; say what failed
        err.print(f"[red]bench network failed:[/] {type(e).__name__}: {e}", highlight=False, soft_wrap=True)
        return 1
    doc.update(
        quick=args.quick,
        machine={
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "loadavg_at_end": [round(x, 2) for x in os.getloadavg()],
        },
    )
    if args.json:
        Path(args.json).write_text(json.dumps(doc, indent=2) + "\n")
    print(json.dumps(doc, indent=2))
    render(doc, err)
    return 0 if not doc["leftovers"] else 1


if __name__ == "__main__":
    sys.exit(main())
