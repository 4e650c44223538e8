"""Autoscaling for real, under Ray's fake multi-node provider: pending pods bring a Ray node, an idle
node goes back.

The head starts as ``ray start`` would on a cloud head (``RAY_FAKE_CLUSTER=1 ray start --head
--autoscaling-config=fake_cluster.yaml``: a 1-CPU head, a worker type of 2 CPUs, min 0), with its own
temp dir; ``raykube up --scale-down-unneeded-time 15`` joins it, and the controller manager finds
Ray's autoscaler on its own. A Deployment of two pods of 1500m CPU fits nowhere (the head's Node
has 1 CPU): the scheduler marks them Unschedulable, the autoscaler loop asks Ray for their bundles
(``TriggeredScaleUp``), Ray's monitor starts two workers, the membership follower gives each its
agent, the Nodes turn Ready and the pods run there. Scaled to 0, the workers are unneeded; after
15 s each is tainted ``ToBeDeletedByClusterAutoscaler`` and cordoned (``ScaleDown``), its agents
stop, Ray finds it idle and removes it after ``idle_timeout_minutes`` (15 s), and its Node is
deleted.

The phases' durations are printed (``-s``) as ``autoscaling timings: ...``.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration import support
from tests.integration.conftest import ray_stop, run_cli

pytestmark = [pytest.mark.integration, pytest.mark.own_ray]

FAKE_CLUSTER = Path(__file__).with_name("fake_cluster.yaml")
NAMESPACE = "autoscaling"
TAINT = "ToBeDeletedByClusterAutoscaler"

wait_until = functools.partial(support.wait_until, timeout=180.0, every=1.0)

DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: big}
spec:
  replicas: 2
  selector: {matchLabels: {app: big}}
  template:
    metadata: {labels: {app: big}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - {name: c, image: busybox, command: ["sleep", "3600"], resources: {requests: {cpu: 1500m}}}
"""


def _ray_bin() -> str:
    return shutil.which("ray") or str(Path(sys.executable).with_name("ray"))


def _start_fake_head(temp_dir: str) -> str:
    """``ray start --head`` with the fake provider; returns the cluster's address."""
    env = dict(
        os.environ,
        RAY_FAKE_CLUSTER="1",
        AUTOSCALER_UPDATE_INTERVAL_S="1",
        RAY_USAGE_STATS_ENABLED="0",
        # `ray start --head` turns token auth on when ~/.ray/auth_token exists; drivers here do not send it.
        RAY_AUTH_MODE="disabled",
    )
    subprocess.run(
        [
            _ray_bin(), "start", "--head", "--num-cpus=1", f"--temp-dir={temp_dir}",
            f"--autoscaling-config={FAKE_CLUSTER}", "--include-dashboard=false", "--disable-usage-stats",
        ],
        env=env, check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    return (Path(temp_dir) / "ray_current_cluster").read_text().strip()


@pytest.mark.timeout(900)
def test_pending_pods_bring_a_node_and_an_idle_node_goes(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ray

    monkeypatch.setenv("RAYKUBE_NAMESPACE", NAMESPACE)
    monkeypatch.setenv("RAYKUBE_NODE_DELETE_DELAY", "5")  # the membership follower deletes gone Nodes
    ray_stop()
    temp_dir = tempfile.mkdtemp(prefix="rk-as-", dir="/tmp")  # short: Ray's socket paths must fit
    timings: dict[str, float] = {}
    address = ""
    try:
        t0 = time.monotonic()
        address = _start_fake_head(temp_dir)
        run_cli(
            "up", "--address", address, "--scale-down-unneeded-time", "15", data_dir=data_dir, timeout=400
        )
        timings["head+up"] = time.monotonic() - t0
        ray.init(address=address, namespace=NAMESPACE, logging_level="WARNING")
        kubeconfig = str(data_dir / "kubeconfig")

        def kubectl(*args: str, stdin: str | None = None) -> str:
            return support.kubectl_at(kubeconfig, *args, input=stdin)

        def get(kind: str, *args: str) -> list[dict[str, Any]]:
            items: list[dict[str, Any]] = json.loads(kubectl("get", kind, *args, "-o", "json"))["items"]
            return items

        def ready(node: dict[str, Any]) -> bool:
            return any(
                c["type"] == "Ready" and c["status"] == "True" for c in node["status"].get("conditions", [])
            )

        def alive_ray_nodes() -> int:
            return sum(1 for n in ray.nodes() if n["Alive"])

        [head] = wait_until(
            lambda: [n["metadata"]["name"] for n in get("nodes") if ready(n)], "the head's Node"
        )
        t1 = time.monotonic()
        kubectl("apply", "-f", "-", stdin=DEPLOYMENT)

        def running() -> list[str]:
            pods = get("pods", "-l", "app=big")
            placed = [p["spec"].get("nodeName", "") for p in pods if p["status"].get("phase") == "Running"]
            return placed if len(placed) == 2 else []

        def reasons(kind: str) -> set[str]:
            return {e["reason"] for e in get("events") if e["involvedObject"].get("kind") == kind}

        wait_until(lambda: "TriggeredScaleUp" in reasons("Pod"), "TriggeredScaleUp on the pending pods")
        timings["pending->request"] = time.monotonic() - t1
        wait_until(lambda: alive_ray_nodes() == 3, "two Ray workers started by Ray's autoscaler")
        timings["pending->ray nodes"] = time.monotonic() - t1
        placed = wait_until(running, "both pods Running", timeout=300)
        timings["pending->running"] = time.monotonic() - t1
        assert head not in placed and len(set(placed)) == 2, placed
        workers = set(placed)
        assert all(ready(n) for n in get("nodes") if n["metadata"]["name"] in workers)

        t2 = time.monotonic()
        kubectl("scale", "deployment/big", "--replicas=0")

        def tainted() -> set[str]:
            return {
                n["metadata"]["name"]
                for n in get("nodes")
                if n["spec"].get("unschedulable")
                and any(t["key"] == TAINT for t in n["spec"].get("taints", []))
            }

        wait_until(lambda: tainted() >= workers, "both workers cordoned and tainted", timeout=120)
        timings["idle->cordoned"] = time.monotonic() - t2
        assert head not in tainted()
        wait_until(lambda: alive_ray_nodes() == 1, "Ray released both workers", timeout=240)
        timings["idle->ray released"] = time.monotonic() - t2
        wait_until(lambda: {n["metadata"]["name"] for n in get("nodes")} == {head}, "the workers' Nodes gone")
        timings["idle->nodes deleted"] = time.monotonic() - t2
        assert "ScaleDown" in reasons("Node"), reasons("Node")
        assert ready(get("nodes")[0])  # the head was left alone
        timings["total"] = time.monotonic() - t0
    finally:
        print("autoscaling timings: " + ", ".join(f"{k} {v:.1f}s" for k, v in timings.items()))
        with_ray = ray.is_initialized()
        if with_ray:
            ray.shutdown()
        if address:
            run_cli("down", "--purge", "--address", address, data_dir=data_dir, check=False)
        ray_stop()
        shutil.rmtree(temp_dir, ignore_errors=True)
