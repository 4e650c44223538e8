"""Join-to-Ready benchmark: how long a Ray node that joins takes to become a Ready Node.

``raykube bench join [--nodes N] [--json FILE]``

Starts a private Ray test cluster (``ray.cluster_utils``: a head with 2 CPUs and one worker; no
dashboard) and ``raykube up --address`` on it with its own data directory and Ray namespace, then
adds N worker nodes one after another (1 CPU each) and records, per node, the time from
``Cluster.add_node`` returning (the raylet registered with Ray's GCS) to the API server first
listing a Node labelled with that Ray node id whose Ready condition is True: the controller
manager's membership follower noticing the node (a 1 s poll), deploying its network plugin, proxy,
runtime and agent there, and the agent registering. Polls the API every 0.1 s. Prints (and with
``--json`` writes) ``{"nodes", "join_to_ready_s": {"p50", "p99", "max"}, "samples_s"}``
(scheduler_perf's percentile rule); tears everything down, on errors too.

Every node of a ``cluster_utils`` cluster is a raylet on this machine, so on a small machine the
figures include the node's own start-up competing for the same cores. It starts Ray processes: on a
shared machine run it under the same lock as the integration tests. ``time_joins`` is what the
integration test (tests/integration/test_nodes_join_leave.py) uses for the same measurement.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ray.cluster_utils import Cluster

from bench.scheduling_metrics import percentile_ceil
from cluster.client.rest import ApiClient
from cluster.node_facts import RAY_NODE_ID_LABEL

POLL = 0.1
DEFAULT_NODES = 4
HEAD_SYSTEM_CONFIG = {"health_check_period_ms": 1000, "health_check_failure_threshold": 3}


def ready_node_ids(nodes: Mapping[str, Any]) -> set[str]:
    """Ray node ids (the ``ray.io/node-id`` label) of the Ready Nodes in a Node list."""
    out = set()
    for node in nodes.get("items") or []:
        node_id = ((node.get("metadata") or {}).get("labels") or {}).get(RAY_NODE_ID_LABEL)
        conditions = (node.get("status") or {}).get("conditions") or []
        if node_id and any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions):
            out.add(str(node_id))
    return out


def summary(samples: Sequence[float]) -> dict[str, Any]:
    """``{"nodes", "join_to_ready_s": {"p50", "p99", "max"}, "samples_s"}``."""
    ordered = sorted(samples)
    return {
        "nodes": len(ordered),
        "join_to_ready_s": {
            "p50": round(percentile_ceil(ordered, 50), 3),
            "p99": round(percentile_ceil(ordered, 99), 3),
            "max": round(ordered[-1], 3) if ordered else 0.0,
        },
        "samples_s": [round(s, 3) for s in samples],
    }


def time_joins(
    add_node: Callable[[], str], kubeconfig: Path | str, count: int, *, timeout: float = 180.0
) -> list[float]:
    """Call ``add_node`` (adds one Ray node, returns its id; on this thread, as ``cluster_utils``
    needs the main thread) ``count`` times back to back while a poller thread watches the Nodes;
    returns each node's join-to-Ready seconds in the order added. Fails when a node is not Ready
    ``timeout`` seconds after it was added."""
    added: dict[str, float] = {}
    ready_at: dict[str, float] = {}
    stop = threading.Event()

    async def poll() -> None:
        client = ApiClient.from_kubeconfig(str(kubeconfig))
        try:
            while not stop.is_set():
                now = time.monotonic()
                for node_id in ready_node_ids(await client.list("v1", "nodes")):
                    ready_at.setdefault(node_id, now)
                await asyncio.sleep(POLL)
        finally:
            await client.close()

    poller = threading.Thread(target=asyncio.run, args=(poll(),), name="join-poller", daemon=True)
    poller.start()
    try:
        for _ in range(count):
            node_id = add_node()
            added[node_id] = time.monotonic()
        deadline = time.monotonic() + timeout
        while not added.keys() <= ready_at.keys():
            if time.monotonic() > deadline or not poller.is_alive():
                missing = sorted(added.keys() - ready_at.keys())
                raise AssertionError(f"Ray nodes {missing} not Ready {timeout:.0f}s after joining")
            time.sleep(POLL)
        return [ready_at[i] - added[i] for i in added]
    finally:
        stop.set()
        poller.join(timeout=10)


def _raykube(*args: str, data_dir: Path, env: Mapping[str, str], timeout: float) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "cluster.cli", *args, "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        env=dict(env),
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"raykube {' '.join(args)} exited {proc.returncode}: {proc.stdout}{proc.stderr}")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="raykube bench join", description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=DEFAULT_NODES, help="worker nodes to add (default 4)")
    parser.add_argument("--json", type=Path, default=None, help="also write the result here")
    args = parser.parse_args(argv)
    env = dict(os.environ, RAYKUBE_NAMESPACE=f"bench-join-{os.getpid()}", RAY_USAGE_STATS_ENABLED="0")
    with tempfile.TemporaryDirectory(prefix="raykube-bench-join-") as tmp:
        data_dir = Path(tmp) / "data"
        cluster = Cluster(
            initialize_head=True,
            head_node_args={"num_cpus": 2, "include_dashboard": False, "_system_config": HEAD_SYSTEM_CONFIG},
        )
        try:
            cluster.add_node(num_cpus=1)
            cluster.wait_for_nodes()
            _raykube("up", "--address", cluster.address, data_dir=data_dir, env=env, timeout=600)
            samples = time_joins(
                lambda: str(cluster.add_node(num_cpus=1).node_id), data_dir / "kubeconfig", args.nodes
            )
        finally:
            try:
                _raykube(
                    "down", "--purge", "--address", cluster.address, data_dir=data_dir, env=env, timeout=300
                )
            finally:
                cluster.shutdown()  # type: ignore[no-untyped-call]
    result = summary(samples)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json is not None:
        args.json.write_text(text + "\n")
    return 0
