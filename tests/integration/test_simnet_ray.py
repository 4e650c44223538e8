"""A Ray node inside a simulated node's network namespace (netplugins/simnet.py, simnet_ray.py): a
head in the root namespace on the underlay bridge's address, one worker node joined from a node
netns, and an actor pinned to that node (NodeAffinitySchedulingStrategy) that reports the
namespace's own addresses and network namespace; ``stop_ray_node`` then stops that node alone, and
``stop_ray_head`` the head.

This module runs its own Ray (``own_ray``): it stops the machine's Ray before and after, so run it
under ``flock /tmp/raykube-heavy.lock``. The driver runs in a subprocess (with ``ray_env()``: Ray
2.60's head turns token auth on), so this pytest process never imports Ray's client state.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest

from netplugins import simnet, simnet_ray
from netplugins.simnet import SimulatedNodes
from tests import hostnet
from tests.capabilities import require
from tests.integration.conftest import ray_stop

pytestmark = [pytest.mark.integration, pytest.mark.own_ray]

DRIVER = """
import json, os, subprocess, sys, time
import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

head, node_ip = sys.argv[1], sys.argv[2]
ray.init(address=head, logging_level="ERROR")
deadline = time.monotonic() + 120
while True:
    alive = {n["NodeManagerAddress"]: n["NodeID"] for n in ray.nodes() if n["Alive"]}
    if node_ip in alive or time.monotonic() > deadline:
        break
    time.sleep(1)

@ray.remote(num_cpus=1)
class Probe:
    def where(self):
        addrs = json.loads(subprocess.run(["ip", "-j", "addr"], capture_output=True, text=True).stdout)
        return {"addrs": addrs, "netns_inode": os.stat("/proc/self/ns/net").st_ino}

strategy = NodeAffinitySchedulingStrategy(node_id=alive[node_ip], soft=False)
probe = Probe.options(scheduling_strategy=strategy).remote()
print(json.dumps({"nodes": sorted(alive), **ray.get(probe.where.remote(), timeout=120)}))
"""


def free_port(address: str) -> int:
    with socket.socket() as s:
        s.bind((address, 0))
        return int(s.getsockname()[1])


@pytest.fixture
def sim() -> Iterator[SimulatedNodes]:
    require("root", hostnet.missing())
    before = hostnet.snapshot()
    ray_stop()
    nodes = SimulatedNodes(1)
    try:
        with nodes:
            yield nodes
            ray_stop()  # the head in the root namespace (node processes die with their namespace)
    finally:
        ray_stop()
    assert hostnet.diff(before, hostnet.snapshot(), only=nodes.names()) == []


def test_actor_pinned_to_a_netns_node_sees_that_namespace(sim: SimulatedNodes) -> None:
    (node,) = sim.nodes
    head = simnet_ray.start_ray_head(sim.head_ip, free_port(sim.head_ip), num_cpus=1)
    simnet_ray.join_ray_node(node, head, num_cpus=1)

    proc = subprocess.run(
        [sys.executable, "-c", DRIVER, head, node.ip],
        capture_output=True,
        text=True,
        env=simnet_ray.ray_env(),
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, f"driver exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    report = json.loads(proc.stdout.strip().splitlines()[-1])

    assert report["nodes"] == sorted([sim.head_ip, node.ip])
    assert simnet_ray.addresses_of(report["addrs"]) == {"127.0.0.1", node.ip}
    assert report["netns_inode"] == os.stat(f"/run/netns/{node.netns}").st_ino

    stopped = simnet_ray.stop_ray_node(node)
    assert stopped, "the node's raylet must have been running in its namespace"
    assert simnet.netns_pids(node.netns) == []
    head_alive = subprocess.run(
        [str(simnet_ray.RAY), "status", "--address", head],
        capture_output=True,
        text=True,
        env=simnet_ray.ray_env(),
        timeout=60,
        check=False,
    )
    assert head_alive.returncode == 0, f"stopping one node must leave the head running\n{head_alive.stderr}"

    assert simnet_ray.stop_ray_head(sim.head_ip), "the head's processes must have been found"
    assert simnet_ray.ray_head_pids(sim.head_ip) == set()
