"""Nodes that join and leave a running raykube (``ray.cluster_utils``: a head and one worker, fast
dead-node detection).

Join: a Ray node added with Ray labels, a node type (``$RAY_NODE_TYPE_NAME``, as ``ray up`` sets it)
and a GPU becomes a Ready Node within seconds, labelled with its Ray labels and node type, with cpu
and ``nvidia.com/gpu`` capacity from Ray's resources and none of its custom resources; the
join-to-Ready time is measured for it and two more nodes (``bench.join.time_joins``) and printed.

Leave: the worker running a Deployment's only pod is killed (SIGKILL, as a lost host); Ray marks it
dead, its Node turns Unknown at once (well inside the 40 s node monitor grace) with the shutdown
taint, the pod is evicted after its 2 s toleration and comes back on another node, and after the
delete delay (15 s here) the Node object is gone (events NodeNotReady and DeletingNode), as are
the dead node's actors.

Stops the machine's Ray first, as the other multi-node tests do.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from pathlib import Path
from typing import Any

import pytest

from bench.join import HEAD_SYSTEM_CONFIG, summary, time_joins
from tests.integration import support
from tests.integration.conftest import ray_stop, run_cli

pytestmark = [pytest.mark.integration, pytest.mark.own_ray]

NAMESPACE = "join-leave"
UNREACHABLE = "node.kubernetes.io/unreachable"
SHUTDOWN = "node.cloudprovider.kubernetes.io/shutdown"

wait_until = functools.partial(support.wait_until, timeout=120.0, every=0.5)


def ready(node: dict[str, Any]) -> str:
    return next((c["status"] for c in node["status"].get("conditions", []) if c["type"] == "Ready"), "")


@pytest.mark.timeout(600)
def test_nodes_join_ready_and_leave(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import ray
    from ray.cluster_utils import Cluster

    monkeypatch.setenv("RAYKUBE_NAMESPACE", NAMESPACE)
    monkeypatch.setenv("RAYKUBE_NODE_DELETE_DELAY", "15")
    ray_stop()
    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 2, "include_dashboard": False, "_system_config": HEAD_SYSTEM_CONFIG},
    )
    try:
        worker = cluster.add_node(num_cpus=2, labels={"raykube.io/pool": "first"})
        cluster.wait_for_nodes()
        # The node network plugin: every Ray node here shares this host, and a removed node's plugin
        # dies with its raylet, so a bridge plugin's bridge, route and nft table would outlive it.
        run_cli("up", "--address", cluster.address, "--network", "host", data_dir=data_dir, timeout=400)
        kubeconfig = data_dir / "kubeconfig"

        def kubectl(*args: str, stdin: str | None = None) -> str:
            return support.kubectl_at(kubeconfig, *args, input=stdin)

        def nodes() -> dict[str, dict[str, Any]]:
            items = json.loads(kubectl("get", "nodes", "-o", "json"))["items"]
            return {n["metadata"]["labels"].get("ray.io/node-id", ""): n for n in items}

        wait_until(lambda: sum(ready(n) == "True" for n in nodes().values()) == 2, "two Ready nodes")
        worker_id = worker.node_id

        # --- join: labels, node type, capacity; then the join-to-Ready figures.
        monkeypatch.setenv("RAY_NODE_TYPE_NAME", "raykube.gpu")  # what ray up exports to ray start
        added: list[Any] = []

        def add_gpu_node() -> str:
            node = cluster.add_node(
                num_cpus=1,
                num_gpus=1,
                resources={"custom_thing": 3},
                labels={
                    "raykube.io/pool": "gpu",
                    "node.kubernetes.io/instance-type": "m5.large",
                    "bad key!": "x",
                },
            )
            added.append(node)
            return str(node.node_id)

        [gpu_seconds] = time_joins(add_gpu_node, kubeconfig, 1, timeout=60)
        monkeypatch.delenv("RAY_NODE_TYPE_NAME")
        gpu_node = nodes()[added[0].node_id]
        labels = gpu_node["metadata"]["labels"]
        assert labels["raykube.io/pool"] == "gpu"
        assert labels["raykube.io/ray-node-type"] == "raykube.gpu"
        assert labels["ray.io/node-group"] == "raykube.gpu"
        assert labels["node.kubernetes.io/instance-type"] == "m5.large"
        assert labels["ray.io/node-id"] == added[0].node_id
        assert "bad key!" not in labels
        capacity = gpu_node["status"]["capacity"]
        assert (capacity["cpu"], capacity["nvidia.com/gpu"]) == ("1", "1")
        assert not any("custom" in key for key in capacity), capacity
        more = time_joins(lambda: str(cluster.add_node(num_cpus=1).node_id), kubeconfig, 2, timeout=60)
        figures = summary([gpu_seconds, *more])
        print("join-to-Ready:", json.dumps(figures))

        # --- leave: the worker running the Deployment's pod is lost.
        others = [n["metadata"]["name"] for i, n in nodes().items() if i != worker_id]
        worker_name = nodes()[worker_id]["metadata"]["name"]
        for name in others:  # the pod goes to the worker, its replacement anywhere else
            kubectl("cordon", name)
        kubectl(
            "apply",
            "-f",
            "-",
            stdin=f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: mover}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: mover}}}}
  template:
    metadata: {{labels: {{app: mover}}}}
    spec:
      terminationGracePeriodSeconds: 1
      tolerations: [{{key: {UNREACHABLE}, operator: Exists, effect: NoExecute, tolerationSeconds: 2}}]
      containers: [{{name: c, image: busybox, command: ["sleep", "3600"]}}]
""",
        )

        def running() -> list[tuple[str, str]]:
            pods = json.loads(kubectl("get", "pods", "-l", "app=mover", "-o", "json"))["items"]
            return [
                (p["metadata"]["name"], p["spec"].get("nodeName", ""))
                for p in pods
                if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")
            ]

        [(first_pod, first_node)] = wait_until(running, "the pod Running on the worker")
        assert first_node == worker_name
        for name in others:
            kubectl("uncordon", name)

        cluster.remove_node(worker, allow_graceful=False)
        lost = time.monotonic()

        def unknown() -> dict[str, Any] | None:
            node = nodes().get(worker_id)
            return node if node is not None and ready(node) == "Unknown" else None

        node = wait_until(unknown, "the lost node's Ready condition Unknown", timeout=30)
        unknown_after = time.monotonic() - lost
        taints = {(t["key"], t["effect"]) for t in node["spec"].get("taints", [])}
        assert (SHUTDOWN, "NoSchedule") in taints, taints
        wait_until(
            lambda: (
                (UNREACHABLE, "NoExecute")
                in {(t["key"], t["effect"]) for t in nodes()[worker_id]["spec"].get("taints", [])}
            ),
            "the unreachable NoExecute taint",
        )

        def replaced() -> list[tuple[str, str]]:
            return [(name, n) for name, n in running() if name != first_pod]

        [(_, second_node)] = wait_until(replaced, "the replacement pod Running on another node")
        assert second_node != worker_name
        events = json.loads(kubectl("get", "events", "-o", "json"))["items"]
        assert "TaintManagerEviction" in {
            e["reason"] for e in events if e["involvedObject"].get("name") == first_pod
        }

        wait_until(lambda: worker_id not in nodes(), "the lost node's Node deleted", timeout=90)
        deleted_after = time.monotonic() - lost

        def node_events() -> set[str]:
            items = json.loads(kubectl("get", "events", "-n", "default", "-o", "json"))["items"]
            return {
                e["reason"]
                for e in items
                if e["involvedObject"].get("kind") == "Node"
                and e["involvedObject"].get("name") == worker_name
            }

        wait_until(lambda: {"NodeNotReady", "DeletingNode"} <= node_events(), "the Node's events")
        ray.init(address=cluster.address, namespace=NAMESPACE, logging_level=logging.ERROR)
        try:
            names = set(ray.util.list_named_actors())
        finally:
            ray.shutdown()
        assert not {f"{kind}-{worker_name}" for kind in ("network", "proxy", "runtime", "agent")} & names
        print(f"lost node: Unknown after {unknown_after:.1f}s, Node deleted after {deleted_after:.1f}s")
    finally:
        run_cli("down", "--purge", "--address", cluster.address, data_dir=data_dir, check=False)
        cluster.shutdown()
        ray_stop()
