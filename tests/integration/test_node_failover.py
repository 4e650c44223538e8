"""A node stops: its pods come back on another node. Two Ray nodes (``ray.cluster_utils``), one
`raykube up` across them, a ReplicaSet of one pod tolerating ``unreachable`` for 5 s. The agent of
the pod's node is stopped; the node lifecycle controller marks the node Unknown and taints it
(grace 15 s here), the taint eviction controller deletes the pod 5 s later, the ReplicaSet controller
makes a replacement and the scheduler (the NoSchedule taint keeps it off the dead node) puts it on
the other node, whose agent runs it.

Stops the machine's Ray first, as the other multi-node test does (tests/integration/test_cli.py).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest

from tests.integration import support
from tests.integration.conftest import ray_stop, run_cli

pytestmark = [pytest.mark.integration, pytest.mark.own_ray]

UNREACHABLE = "node.kubernetes.io/unreachable"


wait_until = functools.partial(support.wait_until, timeout=180.0, every=1.0)


@pytest.mark.timeout(900)
def test_a_stopped_nodes_pod_comes_back_on_another_node(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ray.cluster_utils import Cluster

    monkeypatch.setenv("RAYKUBE_NODE_MONITOR_GRACE", "15")
    monkeypatch.setenv("RAYKUBE_NAMESPACE", "failover")
    ray_stop()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "include_dashboard": False})
    try:
        cluster.add_node(num_cpus=2)
        cluster.wait_for_nodes()
        run_cli("up", "--address", cluster.address, data_dir=data_dir, timeout=400)
        kubeconfig = str(data_dir / "kubeconfig")

        def kubectl(*args: str, stdin: str | None = None) -> str:
            return support.kubectl_at(kubeconfig, *args, input=stdin)

        def ready_nodes() -> list[str]:
            nodes = json.loads(kubectl("get", "nodes", "-o", "json"))["items"]
            return [
                n["metadata"]["name"]
                for n in nodes
                if any(
                    c["type"] == "Ready" and c["status"] == "True" for c in n["status"].get("conditions", [])
                )
            ]

        wait_until(lambda: len(ready_nodes()) == 2, "two Ready nodes")
        manifest = f"""
apiVersion: apps/v1
kind: ReplicaSet
metadata: {{name: survivor}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: survivor}}}}
  template:
    metadata: {{labels: {{app: survivor}}}}
    spec:
      terminationGracePeriodSeconds: 1
      tolerations: [{{key: {UNREACHABLE}, operator: Exists, effect: NoExecute, tolerationSeconds: 5}}]
      containers: [{{name: c, image: busybox, command: ["sleep", "3600"]}}]
"""
        kubectl("apply", "-f", "-", stdin=manifest)

        def running_pods() -> list[tuple[str, str]]:
            pods = json.loads(kubectl("get", "pods", "-l", "app=survivor", "-o", "json"))["items"]
            return [
                (p["metadata"]["name"], p["spec"].get("nodeName", ""))
                for p in pods
                if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")
            ]

        [(first_pod, first_node)] = wait_until(running_pods, "the pod Running")
        support.stop_agent(first_node, "failover", address=cluster.address)

        def replaced() -> list[tuple[str, str]]:
            return [(name, node) for name, node in running_pods() if name != first_pod]

        [(_, second_node)] = wait_until(replaced, "a replacement Running elsewhere", timeout=300)
        assert second_node != first_node
        events = json.loads(kubectl("get", "events", "-o", "json"))["items"]
        reasons = {e["reason"] for e in events if e["involvedObject"].get("name") == first_pod}
        assert "TaintManagerEviction" in reasons, reasons
    finally:
        run_cli("down", "--purge", "--address", cluster.address, data_dir=data_dir, check=False)
        cluster.shutdown()
        ray_stop()
