"""A DaemonSet on a multi-node Ray cluster (``ray.cluster_utils``): one pod on each node, and one on a
node that joins later (the controller manager gives new Ray nodes a node agent within seconds; the
DaemonSet controller sees the Node register and creates its pod).

This module runs its own Ray (like test_cli's spread test): it stops the machine's Ray first and
after, starts `raykube up --address <cluster>` with its own data dir and Ray namespace, and tears it
down. It must therefore run before any module that uses the session cluster (``raykube_cluster``),
which does not survive a ``ray stop``; pytest runs modules in name order, and every module using the
session cluster sorts after this one (test_deletion, test_kubectl_*, ...).
"""

from __future__ import annotations

import functools
import json
import os
import secrets
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.integration import support
from tests.integration.conftest import RAYKUBE, ray_stop

pytestmark = [pytest.mark.integration, pytest.mark.own_ray]


wait_until = functools.partial(support.wait_until, every=1.0)


class Control:
    """`raykube` and kubectl against this test's own control plane."""

    def __init__(self, data_dir: Path, address: str) -> None:
        self.data_dir = data_dir
        self.address = address
        self.env = dict(
            os.environ,
            RAYKUBE_NAMESPACE=f"ds-nodes-{secrets.token_hex(4)}",
            RAY_USAGE_STATS_ENABLED="0",
            COLUMNS="200",
        )
        self.env.pop("RAYKUBE_DATA_DIR", None)

    def raykube(
        self, *args: str, timeout: float = 300, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [*RAYKUBE, *args, "--address", self.address, "--data-dir", str(self.data_dir)],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=timeout,
            check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"raykube {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
            )
        return proc

    def kubectl(self, *args: str, input: str | None = None) -> str:
        return support.kubectl_at(self.data_dir / "kubeconfig", *args, input=input)

    def json(self, *args: str) -> Any:
        return json.loads(self.kubectl(*args, "-o", "json"))


DAEMONSET = json.dumps(
    {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "everywhere", "namespace": "default"},
        "spec": {
            "selector": {"matchLabels": {"app": "everywhere"}},
            "template": {
                "metadata": {"labels": {"app": "everywhere"}},
                "spec": {
                    "terminationGracePeriodSeconds": 2,
                    "containers": [
                        {"name": "main", "image": "busybox", "command": ["sh", "-c", "sleep 3600"]}
                    ],
                },
            },
        },
    }
)


def ready_nodes(control: Control) -> list[str]:
    nodes = control.json("get", "nodes")["items"]
    return sorted(
        n["metadata"]["name"]
        for n in nodes
        if any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"].get("conditions") or [])
    )


def pods_by_node(control: Control) -> dict[str, str]:
    """node -> pod name, for Running and Ready daemon pods; {} while a node has none or several."""
    pods = control.json("get", "pods", "-n", "default", "-l", "app=everywhere")["items"]
    out: dict[str, str] = {}
    for pod in pods:
        ready = any(
            c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions") or []
        )
        node = pod["spec"].get("nodeName")
        if pod["status"].get("phase") != "Running" or not ready or not node or node in out:
            return {}
        out[node] = pod["metadata"]["name"]
    return out


def one_pod_per_node(control: Control, count: int) -> dict[str, str] | None:
    nodes = ready_nodes(control)
    placed = pods_by_node(control)
    return placed if len(nodes) == count and sorted(placed) == nodes else None


@pytest.mark.timeout(900)
def test_one_pod_on_each_ray_node_and_on_a_node_that_joins(tmp_path: Path) -> None:
    from ray.cluster_utils import Cluster

    ray_stop()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    control = Control(tmp_path / "raykube-data", cluster.address)
    try:
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        control.raykube("up", "--port", "0")
        wait_until(lambda: len(ready_nodes(control)) == 2, "two Ready nodes", 180)
        control.kubectl("apply", "-f", "-", input=DAEMONSET)
        first = wait_until(lambda: one_pod_per_node(control, 2), "a Running pod on each of 2 nodes", 180)

        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        placed = wait_until(
            lambda: one_pod_per_node(control, 3), "a Running pod on the node that joined as well", 240
        )
        assert {node: placed[node] for node in first} == first  # the first pods stay where they are

        def counted() -> dict[str, Any] | None:
            status = control.json("get", "daemonset", "everywhere", "-n", "default").get("status") or {}
            keys = (
                "desiredNumberScheduled",
                "currentNumberScheduled",
                "numberReady",
                "updatedNumberScheduled",
            )
            return status if all(status.get(k) == 3 for k in keys) else None

        wait_until(counted, "the DaemonSet status to count 3 nodes", 60)
    finally:
        control.raykube("down", "--purge", timeout=180, check=False)
        cluster.shutdown()
        ray_stop()
