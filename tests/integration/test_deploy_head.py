"""The head's start commands of deploy/aws.yaml, run as written against a real Ray cluster
(``ray.cluster_utils``, one host standing in for four VMs), then the guide's kubeconfig step.

deploy/wait_for_nodes.py gives up (exit 1, saying what to do) while control-plane nodes are missing,
and returns 0 once all three have joined (a worker without the resource does not count); the config's
`raykube up --address auto --replicas 3 --tls-san PUBLIC_IP` then puts the store on three nodes
(127.0.0.2 stands in for the public address: reachable here, and not one of the node's own); `raykube
kubeconfig --server https://127.0.0.2:6443` gives the kubeconfig a laptop uses, and the real kubectl
lists every node through it, verifying the certificate against that address.
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.test_cluster_configs import (
    CONTROL_PLANE_RESOURCE,
    PUBLIC_IP,
    load,
    raykube_up,
    wait_command,
)
from tests.integration import support
from tests.integration.conftest import ray_stop, run_cli

pytestmark = [pytest.mark.integration, pytest.mark.own_ray]

SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "wait_for_nodes.py"
STAND_IN = "127.0.0.2"  # for the head's public address

wait_until = functools.partial(support.wait_until, timeout=180.0, every=1.0)


def wait(words: list[str], address: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """The config's wait command with this cluster's address and a shorter timeout."""
    args = [*words[2:], "--address", address, "--timeout", str(timeout)]
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=120, check=False
    )


@pytest.mark.timeout(900)
def test_head_start_commands_then_kubectl_from_the_laptop(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ray.cluster_utils import Cluster

    config = load("aws")
    wait_words = wait_command(config)
    assert wait_words[0] == "python" and wait_words[1].endswith("/wait_for_nodes.py")
    up_words = raykube_up(config)
    up_args = [w.replace(PUBLIC_IP, STAND_IN) for w in up_words[2:]]
    up_args[up_args.index("--address") + 1] = "ADDRESS"

    monkeypatch.setenv("RAYKUBE_NAMESPACE", "deploy-head")
    ray_stop()
    control_plane = {CONTROL_PLANE_RESOURCE: 1}
    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, "include_dashboard": False, "resources": control_plane},
    )
    try:
        worker = cluster.add_node(num_cpus=2)  # a worker for pods: it joins first, yet gets no replica
        cluster.add_node(num_cpus=1, resources=control_plane)
        cluster.wait_for_nodes()
        missing = wait(wait_words, cluster.address, timeout=2)
        assert missing.returncode == 1, missing.stdout + missing.stderr
        assert "2/3 alive Ray nodes" in missing.stdout
        assert "only 2 of 3" in missing.stderr and "ray monitor" in missing.stderr

        cluster.add_node(num_cpus=1, resources=control_plane)
        cluster.wait_for_nodes()
        joined = wait(wait_words, cluster.address, timeout=60)
        assert joined.returncode == 0, joined.stdout + joined.stderr
        assert f"3/3 alive Ray nodes with {CONTROL_PLANE_RESOURCE}" in joined.stdout

        up_args[up_args.index("ADDRESS")] = cluster.address
        up = run_cli("up", *up_args, data_dir=data_dir, timeout=400)
        assert "3 replicas on 3 distinct Ray nodes" in up.stdout, up.stdout
        status = run_cli("status", "--address", cluster.address, data_dir=data_dir).stdout
        replica_rows = [line for line in status.splitlines() if line.startswith("│ store-")]
        assert len(replica_rows) == 3 and not any(worker.node_id[:8] in line for line in replica_rows), status

        laptop = tmp_path / "laptop.kubeconfig"
        made = run_cli(
            "kubeconfig", "--server", f"https://{STAND_IN}:6443", "--out", str(laptop), data_dir=data_dir
        )
        assert made.stderr == "", made.stderr  # the certificate names the --tls-san address

        def ready_nodes() -> int:
            items = json.loads(support.kubectl_at(laptop, "get", "nodes", "-o", "json"))["items"]
            return sum(
                any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"].get("conditions", []))
                for n in items
            )

        wait_until(lambda: ready_nodes() == 4, "four Ready nodes through the laptop's kubeconfig")
    finally:
        run_cli("down", "--purge", data_dir=data_dir, check=False)
        cluster.shutdown()
        ray_stop()
