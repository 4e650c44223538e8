"""The iptables backend on real network namespaces (no Ray, never the host's tables).

Reuses the nftables netns test's node (a node namespace with a bridge, three pod namespaces running
TCP servers, an "outside" namespace); the backend runs ``iptables-restore`` inside the node namespace.
"""

from __future__ import annotations

import asyncio
import subprocess

from netplugins.proxy.ipt_backend import IptablesBackend
from netplugins.proxy.iptables import IptOptions, chain_prefix
from netplugins.proxy.model import Endpoint, NodeInfo, ServicePort, ServiceTable
from tests.netplugins.proxy.test_nft_netns import EMPTY, PORT, SOLO, WEB, Node, names, node

__all__ = ["node"]  # the fixture, imported for pytest


def save(n: Node) -> str:
    out = []
    for t in ("nat", "filter"):
        done = subprocess.run(
            ["ip", "netns", "exec", n.ns, "iptables-save", "-t", t], capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        out.append(done.stdout)
    return "".join(out)


def test_services_with_iptables_in_a_node_namespace(node: Node) -> None:
    backend = IptablesBackend(
        IptOptions(f"rkproxy-{node.suffix}", cluster_cidr="10.244.0.0/16"),
        command_prefix=("ip", "netns", "exec", node.ns),
    )
    prefix = chain_prefix(backend.options.table)
    info = NodeInfo("n1", (node.node_ip,))
    e0, e1 = Endpoint(node.pod_ip(0), PORT, "n1"), Endpoint(node.pod_ip(1), PORT, "n1")
    table: ServiceTable = {
        WEB: (ServicePort(WEB, ("10.96.0.20",), 80, node_port=30080), (e0, e1)),
        SOLO: (ServicePort(SOLO, ("10.96.0.21",), 80), (e0,)),
        EMPTY: (ServicePort(EMPTY, ("10.96.0.22",), 80, node_port=30082), ()),
    }
    asyncio.run(backend.sync(table, info))
    asyncio.run(backend.sync(table, info))  # the jumps from built-in chains are added once
    listing = save(node)
    for hook in ("-A PREROUTING", "-A OUTPUT", "-A POSTROUTING", "-A INPUT", "-A FORWARD"):
        assert sum(line.startswith(hook) and prefix in line for line in listing.splitlines()) == (
            2 if hook == "-A OUTPUT" else 1  # nat OUTPUT and filter OUTPUT
        ), (hook, listing)
    client = node.pod(2)

    # ClusterIP reaches both endpoints, keeping the client's address inside the cluster CIDR
    answers = node.request(client, "10.96.0.20", 80, 40)
    assert set(names(answers)) == {"pod0", "pod1"}, answers
    assert {a.split()[1] for a in answers} == {node.pod_ip(2)}

    # NodePort from outside (masqueraded) and from the node itself
    outside = node.request(node.outside, node.node_ip, 30080, 30)
    assert set(names(outside)) == {"pod0", "pod1"}, outside
    assert {a.split()[1] for a in outside} == {"10.244.0.1"}
    assert set(names(node.request(node.ns, node.node_ip, 30080, 30))) == {"pod0", "pod1"}

    # no endpoints: refused, ClusterIP and NodePort
    assert node.request(client, "10.96.0.22", 80) == ["ConnectionRefusedError"]
    assert node.request(node.outside, node.node_ip, 30082) == ["ConnectionRefusedError"]

    # hairpin through a Service
    assert node.request(node.pod(0), "10.96.0.21", 80, 3) == ["pod0 10.244.0.1"] * 3

    # ClientIP affinity: one client, one endpoint
    table[WEB] = (ServicePort(WEB, ("10.96.0.20",), 80, session_affinity_timeout=30), (e0, e1))
    asyncio.run(backend.sync(table, info))
    assert len(names(node.request(client, "10.96.0.20", 80, 30))) == 1

    # a removed Service's chains go; the others stay and work
    del table[WEB]
    asyncio.run(backend.sync(table, info))
    listing = save(node)
    assert "10.96.0.20" not in listing and "default/web:http" not in listing
    assert node.request(node.pod(0), "10.96.0.21", 80) == ["pod0 10.244.0.1"]

    # purge leaves no chain or jump of ours
    asyncio.run(backend.close(purge=True))
    assert "RKPROXY" not in save(node)
