"""The nftables backend on real network namespaces (no Ray, never the host's ruleset).

A node namespace holds a bridge ``10.244.0.1/24`` with three pod namespaces on it (two servers and a
client, each a ``python3`` TCP server answering ``<its name> <peer address>``) and an uplink veth to
an "outside" namespace (the node's address ``10.250.<n>.2``). The backend programs our table inside
the node namespace (``ip netns exec``); the checks connect from the pods, the node and the outside.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from netplugins.proxy.model import Endpoint, NodeInfo, ServicePort, ServicePortName, ServiceTable
from netplugins.proxy.nft_backend import NftablesBackend
from netplugins.proxy.nftables import NftOptions
from tests import hostnet
from tests.capabilities import no_netns, require

SERVER = textwrap.dedent(
    """
    import socket, sys
    name, port = sys.argv[1], int(sys.argv[2])
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port)); s.listen(64)
    while True:
        c, peer = s.accept()
        c.sendall(f"{name} {peer[0]}".encode()); c.close()
    """
)

CLIENT = textwrap.dedent(
    """
    import json, socket, sys
    host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    out = []
    for _ in range(n):
        try:
            with socket.create_connection((host, port), timeout=5) as c:
                out.append(c.recv(200).decode())
        except OSError as e:
            out.append(f"{type(e).__name__}: {e}" if type(e) is OSError else type(e).__name__)
    print(json.dumps(out))
    """
)

PORT = 8080


@dataclass
class Node:
    suffix: str
    uplink_net: int
    servers: list[subprocess.Popen[bytes]]

    @property
    def ns(self) -> str:
        return f"rkpn{self.suffix}"

    def pod(self, i: int) -> str:
        return f"rkpp{self.suffix}-{i}"

    @property
    def outside(self) -> str:
        return f"rkpo{self.suffix}"

    @property
    def node_ip(self) -> str:
        return f"10.250.{self.uplink_net}.2"

    def pod_ip(self, i: int) -> str:
        return f"10.244.0.{10 + i}"

    def request(self, where: str, host: str, port: int, n: int = 1) -> list[str]:
        done = subprocess.run(
            ["ip", "netns", "exec", where, sys.executable, "-c", CLIENT, host, str(port), str(n)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        result: list[str] = json.loads(done.stdout)
        return result

    def nft(self, *args: str) -> str:
        done = subprocess.run(["ip", "netns", "exec", self.ns, "nft", *args], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return done.stdout


def sh(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True)


@pytest.fixture
def node() -> Iterator[Node]:
    require("netns", no_netns())
    before = hostnet.snapshot()
    n = Node(secrets.token_hex(3), 200 + secrets.randbelow(50), [])
    try:
        sh("ip", "netns", "add", n.ns)
        sh("ip", "netns", "add", n.outside)
        ns = ("ip", "netns", "exec", n.ns)
        sh(*ns, "ip", "link", "set", "lo", "up")
        sh(*ns, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        sh(*ns, "ip", "link", "add", "br0", "type", "bridge")
        sh(*ns, "ip", "addr", "add", "10.244.0.1/24", "dev", "br0")
        sh(*ns, "ip", "link", "set", "br0", "up")
        sh(*ns, "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "up0", "netns", n.outside)
        sh(*ns, "ip", "addr", "add", f"{n.node_ip}/24", "dev", "eth0")
        sh(*ns, "ip", "link", "set", "eth0", "up")
        sh(*ns, "ip", "route", "add", "default", "via", f"10.250.{n.uplink_net}.1")  # as a real node
        out = ("ip", "netns", "exec", n.outside)
        sh(*out, "ip", "addr", "add", f"10.250.{n.uplink_net}.1/24", "dev", "up0")
        sh(*out, "ip", "link", "set", "up0", "up")
        sh(*out, "ip", "link", "set", "lo", "up")
        for i in range(3):
            pod = n.pod(i)
            sh("ip", "netns", "add", pod)
            sh(*ns, "ip", "link", "add", f"veth{i}", "type", "veth", "peer", "name", "eth0", "netns", pod)
            sh(*ns, "ip", "link", "set", f"veth{i}", "master", "br0", "up")
            # as the bridge plugin's hairpinMode: br_netfilter bridges a DNATed frame back out its port
            sh(*ns, "ip", "link", "set", f"veth{i}", "type", "bridge_slave", "hairpin", "on")
            p = ("ip", "netns", "exec", pod)
            sh(*p, "ip", "link", "set", "lo", "up")
            sh(*p, "ip", "addr", "add", f"{n.pod_ip(i)}/24", "dev", "eth0")
            sh(*p, "ip", "link", "set", "eth0", "up")
            sh(*p, "ip", "route", "add", "default", "via", "10.244.0.1")
            n.servers.append(
                subprocess.Popen(
                    ["ip", "netns", "exec", pod, sys.executable, "-c", SERVER, f"pod{i}", str(PORT)]
                )
            )
        for i in range(3):  # wait until each server accepts
            for _ in range(100):
                if n.request(n.pod(i), "127.0.0.1", PORT)[0].startswith(f"pod{i}"):
                    break
                time.sleep(0.1)
        yield n
    finally:
        for proc in n.servers:
            proc.kill()
            proc.wait()
        for name in (n.pod(0), n.pod(1), n.pod(2), n.outside, n.ns):
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
    assert hostnet.diff(before, hostnet.snapshot(), only=[n.suffix]) == []


WEB = ServicePortName("default", "web", "http", "TCP")
SOLO = ServicePortName("default", "solo", "", "TCP")
EMPTY = ServicePortName("default", "empty", "", "TCP")


def backend_for(n: Node) -> NftablesBackend:
    return NftablesBackend(
        NftOptions(f"rkproxy-{n.suffix}", cluster_cidr="10.244.0.0/16"),
        command_prefix=("ip", "netns", "exec", n.ns),
    )


def names(answers: list[str]) -> Counter[str]:
    return Counter(a.split()[0] for a in answers)


def test_services_in_a_node_namespace(node: Node) -> None:
    backend = backend_for(node)
    info = NodeInfo("n1", (node.node_ip,))
    e0, e1 = Endpoint(node.pod_ip(0), PORT, "n1"), Endpoint(node.pod_ip(1), PORT, "n1")
    table: ServiceTable = {
        WEB: (ServicePort(WEB, ("10.96.0.20",), 80, node_port=30080), (e0, e1)),
        SOLO: (ServicePort(SOLO, ("10.96.0.21",), 80), (e0,)),
        EMPTY: (ServicePort(EMPTY, ("10.96.0.22",), 80, node_port=30082), ()),
    }
    asyncio.run(backend.sync(table, info))
    client = node.pod(2)

    # ClusterIP reaches both endpoints, with the client's own address (no masquerade inside the CIDR)
    answers = node.request(client, "10.96.0.20", 80, 40)
    assert set(names(answers)) == {"pod0", "pod1"}, answers
    assert {a.split()[1] for a in answers} == {node.pod_ip(2)}

    # no endpoints: refused at once (REJECT), ClusterIP and NodePort alike
    assert node.request(client, "10.96.0.22", 80) == ["ConnectionRefusedError"]
    assert node.request(node.outside, node.node_ip, 30082) == ["ConnectionRefusedError"]

    # NodePort on the node's address from outside (masqueraded to the bridge address) and from the node
    outside = node.request(node.outside, node.node_ip, 30080, 30)
    assert set(names(outside)) == {"pod0", "pod1"}, outside
    assert {a.split()[1] for a in outside} == {"10.244.0.1"}
    assert set(names(node.request(node.ns, node.node_ip, 30080, 30))) == {"pod0", "pod1"}

    # hairpin: pod0 reaches itself through a Service (masqueraded, else the reply would not return)
    assert node.request(node.pod(0), "10.96.0.21", 80, 3) == ["pod0 10.244.0.1"] * 3

    # an unready endpoint gets nothing
    unready = Endpoint(node.pod_ip(1), PORT, "n1", ready=False, serving=False)
    table[WEB] = (table[WEB][0], (e0, unready))
    asyncio.run(backend.sync(table, info))
    assert names(node.request(client, "10.96.0.20", 80, 30)) == {"pod0": 30}

    # ClientIP affinity: every connection of one client lands on one endpoint
    affine = ServicePort(WEB, ("10.96.0.20",), 80, node_port=30080, session_affinity_timeout=30)
    table[WEB] = (affine, (e0, e1))
    asyncio.run(backend.sync(table, info))
    assert len(names(node.request(client, "10.96.0.20", 80, 30))) == 1
    assert len(names(node.request(node.pod(0), "10.96.0.20", 80, 30))) == 1
    assert backend.partial_syncs == 2 and backend.full_syncs == 1

    # removing a Service removes its chains and elements; others stay
    del table[WEB]
    asyncio.run(backend.sync(table, info))
    listing = node.nft("list", "table", "ip", backend.options.table)
    assert "default/web/" not in listing and "10.96.0.20" not in listing
    assert "default/solo/" in listing
    assert node.request(node.pod(0), "10.96.0.21", 80) == ["pod0 10.244.0.1"]

    # purge deletes the table
    asyncio.run(backend.close(purge=True))
    assert backend.options.table not in node.nft("list", "tables")
