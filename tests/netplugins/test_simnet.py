"""netplugins/simnet.py: the underlay plan (pure), and real node namespaces that reach each other over
TCP on one segment and across two routed segments, seeing the sender's underlay address, and leave
nothing behind (checked against a host network snapshot)."""

from __future__ import annotations

import random
import subprocess
import sys
from collections.abc import Iterator
from ipaddress import IPv4Network

import pytest

from netplugins import simnet, simnet_ray
from netplugins.simnet import SimNode, SimulatedNodes
from tests import hostnet
from tests.capabilities import require

# ----------------------------------------------------------------------------------------- the plan


@pytest.mark.parametrize(
    ("placement", "segments", "addresses"),
    [
        pytest.param([0], 1, [(0, 2)], id="one-node"),
        pytest.param([0, 0, 0], 1, [(0, 2), (0, 3), (0, 4)], id="one-segment"),
        pytest.param([0, 1, 0, 1], 2, [(0, 2), (1, 2), (0, 3), (1, 3)], id="two-segments"),
    ],
)
def test_plan_places_nodes_on_segments(
    placement: list[int], segments: int, addresses: list[tuple[int, int]]
) -> None:
    plan = simnet.plan_underlay("a1b2c3", placement, [], random.Random(1))
    assert len(plan.segments) == segments and plan.routed == (segments > 1)
    for node, (seg, host) in zip(plan.nodes, addresses, strict=True):
        network = plan.segments[seg].network
        assert node.segment == seg
        assert node.address.ip == network[host] and node.address.network == network
        assert node.gateway == network[1] == plan.segments[seg].gateway.ip
    names = [s.bridge for s in plan.segments] + [n.host_veth for n in plan.nodes]
    assert all(len(n) <= 15 for n in names), names  # IFNAMSIZ
    assert plan.segments[0].bridge == "rkula1b2c3"
    assert [n.netns for n in plan.nodes] == [f"rkna1b2c3-{i}" for i in range(len(placement))]


def test_plan_avoids_taken_networks() -> None:
    pool = list(simnet.UNDERLAY_POOL.subnets(new_prefix=24))
    free = {pool[3], pool[200]}
    taken = [n for n in pool if n not in free] + [IPv4Network("192.0.2.0/24")]
    for seed in range(5):
        plan = simnet.plan_underlay("x", [0, 1], taken, random.Random(seed))
        assert {s.network for s in plan.segments} == free
    with pytest.raises(RuntimeError, match="no 3 free"):
        simnet.free_subnets(taken, 3, random.Random(0))
    wide = [IPv4Network("10.0.0.0/8")]  # an existing route covering the whole pool
    with pytest.raises(RuntimeError):
        simnet.plan_underlay("x", [0], wide, random.Random(0))


@pytest.mark.parametrize("placement", [[], [2], [0, -1]], ids=["empty", "segment-2", "negative"])
def test_plan_rejects_bad_placement(placement: list[int]) -> None:
    with pytest.raises(ValueError):
        simnet.plan_underlay("x", placement, [], random.Random(0))


def test_taken_networks_reads_routes_and_addresses() -> None:
    routes = [{"dst": "default", "gateway": "192.0.2.1"}, {"dst": "10.250.7.0/24"}, {"dst": "10.250.9.5"}]
    addrs = [
        {
            "addr_info": [
                {"family": "inet", "local": "10.250.8.1", "prefixlen": 24},
                {"family": "inet6", "local": "::1", "prefixlen": 128},
            ]
        }
    ]
    assert simnet.taken_networks(routes, addrs) == [
        IPv4Network("10.250.7.0/24"),
        IPv4Network("10.250.9.5/32"),
        IPv4Network("10.250.8.0/24"),
    ]


def test_teardown_removes_only_what_exists_veths_first() -> None:
    plan = simnet.plan_underlay("abc", [0, 1], [], random.Random(0))
    a, b = plan.nodes
    everything = simnet.teardown_commands(
        plan, [a.netns, b.netns], [a.host_veth, b.host_veth, "rkulabc", "rkulabcs1"]
    )
    assert everything == [
        ["ip", "link", "del", a.host_veth],
        ["ip", "link", "del", b.host_veth],
        ["ip", "netns", "del", a.netns],
        ["ip", "netns", "del", b.netns],
        ["ip", "link", "del", "rkulabc"],
        ["ip", "link", "del", "rkulabcs1"],
    ]
    assert simnet.teardown_commands(plan, ["rkn-other"], ["eth0"]) == []
    assert simnet.teardown_commands(plan, [b.netns], ["rkulabcs1"]) == [
        ["ip", "netns", "del", b.netns],
        ["ip", "link", "del", "rkulabcs1"],
    ]


# ------------------------------------------------------------------------------------- real nodes

ECHO_SERVER = """
import socket, sys
listener = socket.socket()
listener.bind(("0.0.0.0", 0))
listener.listen()
print(listener.getsockname()[1], flush=True)
conn, (peer, _) = listener.accept()
conn.sendall(peer.encode() + b" " + conn.recv(100))
conn.close()
"""
ECHO_CLIENT = """
import socket, sys
with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10) as s:
    s.sendall(b"hello")
    print(s.recv(200).decode())
"""


def echo(sim: SimulatedNodes, client: SimNode, server: SimNode) -> str:
    """What a TCP echo server in ``server`` answers ``client``: "<peer address seen> hello"."""
    srv = sim.popen(server, [sys.executable, "-c", ECHO_SERVER], stdout=subprocess.PIPE, text=True)
    try:
        assert srv.stdout is not None
        port = srv.stdout.readline().strip()
        out = sim.exec(client, [sys.executable, "-c", ECHO_CLIENT, server.ip, port], timeout=30)
        assert out.returncode == 0, out.stderr
        return out.stdout.strip()
    finally:
        srv.kill()
        srv.wait(10)


@pytest.fixture
def host_before() -> Iterator[hostnet.Snapshot]:
    require("root", hostnet.missing())
    yield hostnet.snapshot()


def test_nodes_on_one_segment_talk_tcp_and_leave_nothing(host_before: hostnet.Snapshot) -> None:
    sim = SimulatedNodes(2)
    with sim:
        a, b = sim.nodes
        assert echo(sim, a, b) == f"{a.ip} hello"
        assert echo(sim, b, a) == f"{b.ip} hello"
        inside = sim.exec(a, ["sysctl", "-n", "net.ipv4.ip_forward"])
        assert inside.stdout.strip() == "1"
        routes = sim.exec(a, ["ip", "route", "show", "default"]).stdout
        assert f"via {a.gateway} dev eth0" in routes
        made = hostnet.diff(host_before, hostnet.snapshot(), only=sim.names())
        assert f"+ netns {a.netns}" in made and f"+ link {sim.segments[0].bridge} (bridge, up)" in made
    assert hostnet.diff(host_before, hostnet.snapshot(), only=sim.names()) == []
    sim.close()  # idempotent
    assert hostnet.diff(host_before, hostnet.snapshot(), only=sim.names()) == []


def test_nodes_on_two_segments_are_routed_by_the_root_namespace(
    host_before: hostnet.Snapshot, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What we write to the root ip_forward is recorded: comparing its value before and after would
    # race with other runs on this machine that flip it too (the bridge plugin's tests).
    writes: list[tuple[str, str]] = []
    real_write = simnet.write_sysctl

    def recording_write(name: str, value: str) -> None:
        writes.append((name, value))
        real_write(name, value)

    monkeypatch.setattr(simnet, "write_sysctl", recording_write)
    saved = simnet.read_sysctl(simnet.IP_FORWARD)
    sim = SimulatedNodes(segments=[0, 1])
    with sim:
        a, b = sim.nodes
        assert a.address.network != b.address.network
        assert echo(sim, a, b) == f"{a.ip} hello"  # routed: the source address survives the hop
        assert echo(sim, b, a) == f"{b.ip} hello"
        assert writes == [(simnet.IP_FORWARD, "1")]
    assert writes == [(simnet.IP_FORWARD, "1"), (simnet.IP_FORWARD, saved)]
    assert hostnet.diff(host_before, hostnet.snapshot(), only=sim.names()) == []


def test_teardown_kills_processes_left_in_a_node(host_before: hostnet.Snapshot) -> None:
    sim = SimulatedNodes(1)
    with sim:
        (node,) = sim.nodes
        sleeper = sim.popen(node, [sys.executable, "-c", "import time; time.sleep(600)"])
        pids = simnet.netns_pids(node.netns)
        assert pids, "the sleeper must be seen in its namespace"
    assert sleeper.wait(10) != 0
    assert hostnet.diff(host_before, hostnet.snapshot(), only=sim.names()) == []


@pytest.mark.parametrize(
    ("cmdline", "found"),
    [
        pytest.param("gcs_server --node-ip-address=10.250.3.1 --port=6399", True, id="flag"),
        pytest.param("ray.util.client.server --address=10.250.3.1:6399", True, id="host-port"),
        pytest.param("raylet --node_ip_address=10.250.3.12", False, id="longer-address"),
        pytest.param("raylet --node_ip_address=110.250.3.1", False, id="prefixed-address"),
        pytest.param("python -m pytest", False, id="absent"),
    ],
)
def test_mentions_address_matches_whole_addresses(cmdline: str, found: bool) -> None:
    assert simnet_ray.mentions_address(cmdline, "10.250.3.1") is found


def test_process_tree_collects_descendants_only() -> None:
    parents = {1: 0, 10: 1, 11: 10, 12: 11, 20: 1, 21: 20}
    assert simnet_ray.process_tree(parents, [10]) == {10, 11, 12}
    assert simnet_ray.process_tree(parents, [10, 21]) == {10, 11, 12, 21}
    assert simnet_ray.process_tree(parents, []) == set()
