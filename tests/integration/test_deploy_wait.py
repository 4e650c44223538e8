"""deploy/wait_for_nodes.py against a real Ray cluster (``ray.cluster_utils``): the head's start commands
in deploy/*.yaml run it before `raykube up`, so the store replicas are placed only once the three
control-plane nodes have joined. Here: it gives up (exit 1, saying what to do) while one of two
control-plane nodes is missing, and returns 0 once the second joins. Workers without the resource
do not count."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import ray_stop

pytestmark = [pytest.mark.integration, pytest.mark.own_ray]

SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "wait_for_nodes.py"
RESOURCE = "raykube_control_plane"


def wait(address: str, count: int, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--address", address, "--resource", RESOURCE, "--count", str(count),
         "--timeout", str(timeout)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


@pytest.mark.timeout(300)
def test_waits_for_the_control_plane_nodes() -> None:
    from ray.cluster_utils import Cluster

    ray_stop()
    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, "include_dashboard": False, "resources": {RESOURCE: 1}},
    )
    try:
        cluster.add_node(num_cpus=1)  # a worker for pods: not counted
        cluster.wait_for_nodes()
        missing = wait(cluster.address, 2, timeout=2)
        assert missing.returncode == 1, missing.stdout + missing.stderr
        assert "1/2 alive Ray nodes" in missing.stdout
        assert "only 1 of 2" in missing.stderr and "ray monitor" in missing.stderr

        cluster.add_node(num_cpus=1, resources={RESOURCE: 1})
        cluster.wait_for_nodes()
        joined = wait(cluster.address, 2, timeout=60)
        assert joined.returncode == 0, joined.stdout + joined.stderr
        assert "2/2 alive Ray nodes with raykube_control_plane" in joined.stdout
    finally:
        cluster.shutdown()
        ray_stop()
