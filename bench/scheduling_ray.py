"""The Ray-native peer: Ray placing the same pods as tasks on a ``ray.cluster_utils.Cluster``.

The cluster has a head plus ``ray_nodes`` simulated nodes, each carrying the custom resource
``pod_cpu`` sized so the whole cluster holds the workload's nodes' cpu (4 per node). Each measured pod
becomes one task with ``num_cpus=0`` and ``resources={"pod_cpu": <the pod's cpu request in cores>}``
that returns the time it started; throughput is tasks started per second from the first submission to
the last start. This counts task placements (Ray's scheduling decision plus a task running in a
pooled worker), not processes or containers started. A short warm-up batch runs first so worker
start-up is not counted.

Invariants: the peer starts its own Ray processes and shuts down only those; it refuses to run when
this process is already connected to a Ray it did not start.
"""

from __future__ import annotations

import time
from typing import Any

import ray
from ray.cluster_utils import Cluster

from bench.scheduling_workloads import Workload
from cluster.scheduler.framework import pod_requests

RAY_SYSTEM = "ray-native"
RAY_COUNTS = "task placements (tasks started per second), not processes started"
CUSTOM_RESOURCE = "pod_cpu"
WARMUP_TASKS = 50


def _pod_cores(pod: dict[str, Any]) -> float:
    return pod_requests(pod).milli_cpu / 1000.0


def run_ray_peer(
    workloads: list[Workload], *, ray_nodes: int = 4, max_tasks: int | None = None
) -> list[dict[str, Any]]:
    """One peer entry per workload, all on one Ray cluster started (and shut down) here."""
    if ray.is_initialized():
        return [
            _error(w, "this process is already connected to a Ray cluster; not touching it")
            for w in workloads
        ]
    largest = max(w.nodes for w in workloads)
    per_node = float(largest * 4) / ray_nodes
    previous_address = read_address_file()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    try:
        for _ in range(ray_nodes):
            cluster.add_node(num_cpus=0, resources={CUSTOM_RESOURCE: per_node})
        ray.init(address=cluster.address, include_dashboard=False, log_to_driver=False)
        cluster.wait_for_nodes()

        @ray.remote(num_cpus=0)
        def started() -> float:
            return time.time()

        ray.get([started.options(resources={CUSTOM_RESOURCE: 0.1}).remote() for _ in range(WARMUP_TASKS)])
        entries = []
        for workload in workloads:
            pods = workload.build_measure_pods()
            if max_tasks is not None:
                pods = pods[:max_tasks]
            begin = time.time()
            refs = [
                started.options(resources={CUSTOM_RESOURCE: _pod_cores(p) or 0.001}).remote() for p in pods
            ]
            starts = ray.get(refs)
            elapsed = max(starts) - begin if starts else 0.0
            entries.append(
                {
                    "system": RAY_SYSTEM,
                    "workload": workload.name,
                    "throughput": {"average": len(starts) / elapsed if elapsed > 0 else 0.0},
                    "counts": RAY_COUNTS,
                    "tasks": len(starts),
                    "ray_nodes": ray_nodes,
                    "ray_version": ray.__version__,
                }
            )
        return entries
    finally:
        if ray.is_initialized():
            ray.shutdown()
        cluster.shutdown()  # type: ignore[no-untyped-call]
        restore_address_file(previous_address)


def read_address_file() -> str | None:
    try:  # a private Ray helper, imported here so that its absence in a Ray release is survivable
        from ray._private.utils import read_ray_address

        return read_ray_address()
    except Exception:  # a private Ray helper: best effort
        return None


def restore_address_file(previous: str | None) -> None:
    """Put back the address another Ray on this machine recorded (starting ours overwrote it)."""
    if not previous:
        return
    try:  # a private Ray helper, imported here so that its absence in a Ray release is survivable
        from ray._private.utils import write_ray_address

        write_ray_address(previous)
    except Exception:  # a private Ray helper: best effort
        return


def _error(workload: Workload, message: str) -> dict[str, Any]:
    return {"system": RAY_SYSTEM, "workload": workload.name, "error": message, "counts": RAY_COUNTS}
