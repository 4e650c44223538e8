"""`raykube bench scheduling --mode end_to_end` on a small shape: a private control plane (store, API
server, scheduler actor) in its own Ray namespace, hollow nodes and pods through the REST API."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

SCRIPT = """
import json, sys
from bench.scheduling_e2e import run_end_to_end
from bench.scheduling_workloads import WORKLOADS
workload = WORKLOADS["SchedulingBasic/500Nodes_1000Pods"].scaled("tiny-e2e", 20, 10, 60)
print(json.dumps(run_end_to_end(workload)))
"""


def test_end_to_end_mode_schedules_every_pod_through_the_api(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
        # keep HOME: joining a running Ray (the session's `raykube up`) needs ~/.ray/auth_token
        env=dict(os.environ, RAY_USAGE_STATS_ENABLED="0"),
        cwd=Path(__file__).resolve().parents[2],
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    entry = json.loads(proc.stdout.strip().splitlines()[-1])
    assert entry["mode"] == "end_to_end" and entry["workload"] == "tiny-e2e"
    assert entry["scheduled"] == 60 and entry["unscheduled"] == 0 and entry["init_not_settled"] == 0
    assert entry["throughput"]["average"] > 0
    assert 0 < entry["latency_ms"]["p50"] <= entry["latency_ms"]["p99"]
    assert entry["hops_per_pod"] == 6


@pytest.mark.own_ray
def test_three_node_layout_spreads_the_control_plane_and_schedules_every_pod(tmp_path: Path) -> None:
    """The ``three-nodes`` layout: three Ray nodes of a cluster_utils cluster, a replica, an API server
    and a scheduler on each; the same pods all bound, through the same number of boundaries."""
    from tests.integration.conftest import ray_stop

    ray_stop()
    script = SCRIPT.replace("run_end_to_end(workload)", 'run_end_to_end(workload, layout="three-nodes")')
    try:
        proc = subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
            env=dict(os.environ, RAY_USAGE_STATS_ENABLED="0"),
            cwd=Path(__file__).resolve().parents[2],
        )
    finally:
        ray_stop()
    assert proc.returncode == 0, proc.stderr[-3000:]
    entry = json.loads(proc.stdout.strip().splitlines()[-1])
    assert entry["layout"] == "three-nodes" and entry["store_replicas"] == 3
    assert entry["scheduled"] == 60 and entry["unscheduled"] == 0
    placement = entry["placement"]
    assert placement["ray_nodes"] == 3 and placement["apiserver_nodes"] == [0, 1, 2]
    assert placement["scheduler_instances"] == 3 and placement["working_scheduler_node"] is not None
    assert placement["store_leader_node"] in (0, 1, 2)
    assert entry["hops_per_pod"] == 8 and entry["cross_node_hops_max"] == 8
