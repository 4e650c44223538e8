"""Two simulated nodes (netplugins.simnet), each running ``python -m netplugins.bridge`` inside its
node network namespace: a pod on node A reaches a pod on node B by its pod IP and is seen with its
own address (host-gw on one segment; vxlan across two routed segments), and reaches an address
outside the cluster CIDR masqueraded behind its node's address. Purge on exit leaves the nodes clean."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from netplugins.cni.client import CNIClient
from netplugins.cni.types import NetRequest
from netplugins.simnet import SimNode, SimulatedNodes
from tests.capabilities import needs, no_netns
from tests.netplugins.bridge.support import netns_path, pod_netns, tcp_client, tcp_server

pytestmark = needs("netns", no_netns())

REPO = Path(__file__).resolve().parents[3]
CLUSTER_CIDR = "10.244.0.0/16"
BRIDGE = "rkbr0"  # inside the node namespaces: no collision with the host's names


def pod_cidr(i: int) -> str:
    return f"10.244.{i + 1}.0/24"


@contextlib.contextmanager
def node_plugins(sim: SimulatedNodes, tmp: Path, backend: str) -> Iterator[list[str]]:
    """One plugin process per node (in its netns); yields their sockets; SIGTERM purges them."""
    peers = [{"name": f"node-{n.index}", "podCIDR": pod_cidr(n.index), "ip": n.ip} for n in sim.nodes]
    (tmp / "peers.json").write_text(json.dumps(peers))
    procs: list[subprocess.Popen[str]] = []
    sockets = []
    try:
        for n in sim.nodes:
            sock = str(tmp / f"node-{n.index}.sock")
            argv = [
                sys.executable, "-m", "netplugins.bridge", "--socket", sock,
                "--root", str(tmp / f"state-{n.index}"),
                "--node", f"node-{n.index}", "--node-ip", n.ip, "--pod-cidr", pod_cidr(n.index),
                "--cluster-cidr", CLUSTER_CIDR, "--bridge", BRIDGE, "--backend", backend,
                "--peers", str(tmp / "peers.json"), "--resync", "0.5", "--purge-on-exit",
            ]  # fmt: skip
            log = open(tmp / f"node-{n.index}.log", "w")  # noqa: SIM115 - closed with the process
            proc = sim.popen(n, argv, stdout=subprocess.PIPE, stderr=log, text=True, cwd=REPO)
            procs.append(proc)
            assert proc.stdout is not None
            line = proc.stdout.readline().strip()
            assert line == f"ready {sock}", (
                f"plugin on node-{n.index}: {line!r}; {(tmp / log.name).read_text()}"
            )
            sockets.append(sock)
        yield sockets
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(timeout=30)
        assert all(p.returncode == 0 for p in procs), [p.returncode for p in procs]


def node_state(sim: SimulatedNodes, node: SimNode) -> dict[str, str]:
    """What our plugin may leave in a node namespace: links, our routes, our nft table."""
    run = lambda *a: sim.exec(node, list(a)).stdout.strip()  # noqa: E731
    return {
        "links": " ".join(sorted(link["ifname"] for link in json.loads(run("ip", "-j", "link")))),
        "routes": run("ip", "route", "show", "proto", "114"),
        "nft": run("nft", "list", "table", "ip", f"rk-{BRIDGE}"),
        "forward": run("iptables", "-w", "-S", "FORWARD"),
    }


def request(ns: str) -> NetRequest:
    return NetRequest(
        secrets.token_hex(16), netns_path(ns), args={"K8S_POD_NAMESPACE": "t", "K8S_POD_NAME": ns}
    )


@pytest.mark.parametrize(
    ("backend", "segments"),
    [
        pytest.param("host-gw", [0, 0], id="host-gw-one-segment"),
        pytest.param("vxlan", [0, 1], id="vxlan-two-segments"),
    ],
)
def test_pods_on_two_nodes_reach_each_other_and_the_outside(
    tmp_path: Path, backend: str, segments: list[int]
) -> None:
    with SimulatedNodes(segments=segments) as sim:
        node_a = sim.nodes[0]
        for n in sim.nodes:
            # A Docker-like node: forwarding dropped by policy, and br_netfilter passes bridged
            # frames (pod to pod on one bridge) through that FORWARD chain too.
            assert sim.exec(n, ["iptables", "-w", "-P", "FORWARD", "DROP"]).returncode == 0
            assert sim.exec(n, ["sysctl", "-n", "net.bridge.bridge-nf-call-iptables"]).stdout.strip() == "1"
        clean = [node_state(sim, n) for n in sim.nodes]
        with node_plugins(sim, tmp_path, backend) as (sock_a, sock_b), pod_netns(3) as (pod_a, pod_a2, pod_b):

            async def main() -> None:
                async with CNIClient(sock_a) as cni_a, CNIClient(sock_b) as cni_b:
                    reqs = [(cni_a, request(pod_a)), (cni_a, request(pod_a2)), (cni_b, request(pod_b))]
                    ip_a, ip_a2, ip_b = [(await cni.add(req)).pod_ips()[0] for cni, req in reqs]
                    assert ip_a.startswith("10.244.1.") and ip_b.startswith("10.244.2.")
                    try:
                        with tcp_server(pod_a2, "0.0.0.0", 7100):
                            seen = await asyncio.to_thread(tcp_client, pod_a, ip_a2, 7100)
                        assert seen == ip_a, "pod-to-pod on one bridge keeps the source pod IP"
                        with tcp_server(pod_b, "0.0.0.0", 7100):
                            seen = await asyncio.to_thread(tcp_client, pod_a, ip_b, 7100)
                        assert seen == ip_a, "pod-to-pod across nodes keeps the source pod IP"
                        outside = (
                            sim.head_ip
                        )  # the root namespace's underlay address, not in the cluster CIDR
                        with tcp_server(None, outside, 7101 + secrets.randbelow(1000)) as srv:
                            port = int(srv.args[-1])
                            seen = await asyncio.to_thread(tcp_client, pod_a, outside, port)
                        assert seen == node_a.ip, "traffic leaving the cluster CIDR is masqueraded"
                    finally:
                        for cni, req in reqs:
                            await cni.delete(req)

            asyncio.run(main())
            assert "10.244.2.0/24 via" in node_state(sim, node_a)["routes"]
        # the plugins purged on SIGTERM: the nodes look as before
        assert [node_state(sim, n) for n in sim.nodes] == clean
    for n in (0, 1):
        assert not os.path.exists(tmp_path / f"state-{n}" / "attachments")
