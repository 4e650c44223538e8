"""The ``end_to_end`` mode: scheduler_perf's workloads through the whole raykube control plane.

For one workload this starts a private control plane in its own Ray namespace (the Raft store
replicas, the API server on a free port, the scheduler actor; Ray itself is started only when none is
running, and stopped afterwards only then), then, through the API server's REST API exactly as
scheduler_perf drives kube-apiserver:

1. creates the hollow nodes (Node objects with capacity and a Ready condition; no agent runs them),
2. creates the init pods and waits until each is bound (or, for ``Unschedulable`` workloads, marked
   ``PodScheduled=False``),
3. opens a pod watch, creates the measured pods with up to ``CREATE_CONCURRENCY`` requests in flight,
   and records for each pod when its create returned and when the watch first showed it bound.

SchedulingThroughput is computed from the bind times with ``scheduling_metrics`` (1-second windows from
the moment the first measured pod was sent), latency is create-to-bound per pod. Creation runs while
the scheduler binds, as in scheduler_perf, so the figure includes the API server and the store's
write path (create, bind and a ``Scheduled`` event per pod).

``hops_per_pod`` counts the process boundaries one measured pod crosses on its way to being bound:
client -> API server -> store (create), store -> API server -> scheduler (watch), scheduler -> API
server -> store (binding); with more than one replica each store write also crosses leader ->
followers, counted once. It is a description of the path, not a measurement.

Layouts (``LAYOUTS``): ``one-node`` (the default: one store replica, one API server, one scheduler
on this machine's Ray), ``one-node-3`` (three replicas on that one Ray node) and ``three-nodes`` (a
``ray.cluster_utils`` cluster of three Ray nodes started for the run: three replicas spread one per
node, an API server on each node sharing one port, a scheduler on each node of which the elected
one works). ``three-nodes`` has the same process boundaries per pod as ``one-node-3``; what changes
is that any of them may cross from one Ray node to another (``cross_node_hops_max``) and that the
work is spread over more processes. The three Ray nodes share this machine's cores and loopback, so
the figure shows the cost of the spread layout's extra processes and routing, not of a network.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import ray
from ray.cluster_utils import Cluster

from bench.control_plane import private_control_plane
from bench.scheduling_metrics import latency_summary_ms, overall_rate, throughput_samples, throughput_summary
from bench.scheduling_ray import read_address_file, restore_address_file
from bench.scheduling_workloads import Workload
from cluster import bootstrap, control_plane
from cluster.client.rest import ApiClient

END_TO_END = "end_to_end"
CREATE_CONCURRENCY = 64
BENCH_NAMESPACE = "sched-bench"
SETTLE_TIMEOUT_S = 120.0  # give up when no pod got bound for this long


LAYOUTS = ("one-node", "one-node-3", "three-nodes")


def hops_per_pod(replicas: int) -> int:
    """Process boundaries on a measured pod's path (see the module docstring)."""
    return 6 + (2 if replicas > 1 else 0)


async def _create_all(
    client: Any, plural: str, objects: list[dict[str, Any]], namespace: str | None
) -> list[float]:
    """Create ``objects`` with bounded concurrency; returns when each create returned (monotonic)."""
    gate = asyncio.Semaphore(CREATE_CONCURRENCY)
    done_at = [0.0] * len(objects)

    async def create(i: int, obj: dict[str, Any]) -> None:
        if namespace is not None:
            obj = {**obj, "metadata": {**obj.get("metadata", {}), "namespace": namespace}}
        async with gate:
            await client.create("v1", plural, obj, namespace)
            done_at[i] = time.monotonic()

    await asyncio.gather(*(create(i, obj) for i, obj in enumerate(objects)))
    return done_at


def _bound(pod: dict[str, Any]) -> bool:
    return bool((pod.get("spec") or {}).get("nodeName"))


def _marked_unschedulable(pod: dict[str, Any]) -> bool:
    return any(
        c.get("type") == "PodScheduled" and c.get("status") == "False"
        for c in (pod.get("status") or {}).get("conditions") or []
    )


class _PodWatch:
    """One pod watch recording the first time each named pod was seen bound (or unschedulable)."""

    def __init__(self, client: Any, resource_version: str) -> None:
        self.bound_at: dict[str, float] = {}
        self.unschedulable: set[str] = set()
        self.changed = asyncio.Event()
        self._task = asyncio.create_task(self._run(client, resource_version))

    async def _run(self, client: Any, resource_version: str) -> None:
        rv = resource_version
        while True:
            try:
                async for event in client.watch("v1", "pods", BENCH_NAMESPACE, resource_version=rv):
                    obj = event.get("object") or {}
                    rv = (obj.get("metadata") or {}).get("resourceVersion") or rv
                    name = (obj.get("metadata") or {}).get("name", "")
                    if event.get("type") == "BOOKMARK":
                        continue
                    if _bound(obj) and name not in self.bound_at:
                        self.bound_at[name] = time.monotonic()
                        self.changed.set()
                    elif _marked_unschedulable(obj):
                        self.unschedulable.add(name)
                        self.changed.set()
            except asyncio.CancelledError:
                raise
            except Exception:  # a dropped stream resumes from the last version seen
                await asyncio.sleep(0.2)

    async def wait_for(self, names: set[str], *, unschedulable_ok: bool = False) -> set[str]:
        """Wait until every name is bound (or marked unschedulable when allowed), or until nothing
        changed for ``SETTLE_TIMEOUT_S``; returns the names still missing."""

        def missing() -> set[str]:
            done = set(self.bound_at) | (self.unschedulable if unschedulable_ok else set())
            return names - done

        while remaining := missing():
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), SETTLE_TIMEOUT_S)
            except TimeoutError:
                return remaining
        return set()

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._task


async def measure(client: Any, workload: Workload, replicas: int) -> dict[str, Any]:
    """Steps 1-3 of the module docstring against a running control plane reachable by ``client``."""
    with contextlib.suppress(Exception):
        await client.create("v1", "namespaces", {"metadata": {"name": BENCH_NAMESPACE}})
    with contextlib.suppress(Exception):  # pods need it (ServiceAccount admission); no controller here
        await client.create("v1", "serviceaccounts", {"metadata": {"name": "default"}}, BENCH_NAMESPACE)
    nodes = workload.build_nodes()
    started = time.monotonic()
    await _create_all(client, "nodes", nodes, None)
    node_seconds = time.monotonic() - started

    listed = await client.list("v1", "pods", BENCH_NAMESPACE, limit=1)
    watch = _PodWatch(client, listed["metadata"]["resourceVersion"])
    try:
        init = workload.build_init_pods()
        await _create_all(client, "pods", init, BENCH_NAMESPACE)
        init_missing = await watch.wait_for(
            {p["metadata"]["name"] for p in init}, unschedulable_ok=workload.expect_unschedulable_init
        )
        pods = workload.build_measure_pods()
        t0 = time.monotonic()
        created_at = await _create_all(client, "pods", pods, BENCH_NAMESPACE)
        names = [p["metadata"]["name"] for p in pods]
        missing = await watch.wait_for(set(names))
        duration = time.monotonic() - t0
    finally:
        await watch.close()
    bind_times = [watch.bound_at[n] - t0 for n in names if n in watch.bound_at]
    latencies = [watch.bound_at[n] - c for n, c in zip(names, created_at, strict=True) if n in watch.bound_at]
    samples = throughput_samples(bind_times, 0.0)
    throughput = throughput_summary(samples)
    entry: dict[str, Any] = {
        "workload": workload.name,
        "mode": END_TO_END,
        "throughput": throughput,
        "latency_ms": latency_summary_ms(latencies),
        "hops_per_pod": hops_per_pod(replicas),
        "nodes": workload.nodes,
        "init_pods": workload.init_pods,
        "measured_pods": workload.measure_pods,
        "scheduled": len(bind_times),
        "unscheduled": len(missing),
        "init_not_settled": len(init_missing),
        "store_replicas": replicas,
        "duration_s": duration,
        "node_create_s": node_seconds,
        "windows": len(samples),
        "throughput_series": samples,
        "latency_meaning": "create request returned -> watch shows spec.nodeName (pods created while "
        f"the scheduler runs, {CREATE_CONCURRENCY} creates in flight)",
    }
    if not samples:
        rate = overall_rate(bind_times, 0.0)
        entry["throughput"] = {"average": rate, "p50": rate, "p90": rate, "p99": rate}
        entry["note"] = "run shorter than two 1-second windows: all four figures are the overall rate"
    return entry


def run_end_to_end(workload: Workload, *, replicas: int = 1, layout: str = "one-node") -> dict[str, Any]:
    """Start a private control plane in ``layout``, ``measure`` the workload on it, tear it all down."""
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r} (known: {', '.join(LAYOUTS)})")
    if layout == "one-node-3":
        replicas = 3
    if layout != "three-nodes":
        return _run_on(workload, replicas, layout, None)
    if ray.is_initialized():
        ray.shutdown()
    previous = read_address_file()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        for _ in range(2):
            cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        return _run_on(workload, 3, layout, cluster.address)
    finally:
        if ray.is_initialized():
            ray.shutdown()
        cluster.shutdown()  # type: ignore[no-untyped-call]
        restore_address_file(previous)


def _placement(namespace: str) -> dict[str, Any]:
    """Where the pieces ran: Ray nodes, the store leader's node, the API servers' and the working
    scheduler's (indexes into the sorted node ids, so a JSON reader can compare them)."""
    nodes = sorted(n["NodeID"] for n in ray.nodes() if n.get("Alive"))  # type: ignore[no-untyped-call]

    def index(node_id: str | None) -> int | None:
        return nodes.index(node_id) if node_id in nodes else None

    leader = None
    for name in control_plane.find_store(namespace):
        with contextlib.suppress(Exception):
            st = ray.get(ray.get_actor(name, namespace=namespace).status.remote(), timeout=10)
            if st.get("role") == "leader":
                leader = st.get("node_id")
    schedulers = control_plane.control_plane_instances("scheduler", namespace)
    working = None
    for inst in schedulers:
        with contextlib.suppress(Exception):
            if ray.get(ray.get_actor(inst.actor, namespace=namespace).leading.remote(), timeout=10):
                working = inst.node_id
    return {
        "ray_nodes": len(nodes),
        "store_leader_node": index(leader),
        "apiserver_nodes": sorted(
            i
            for i in (index(x.node_id) for x in control_plane.control_plane_instances("apiserver", namespace))
            if i is not None
        ),
        "scheduler_instances": len(schedulers),
        "working_scheduler_node": index(working),
    }


def _run_on(workload: Workload, replicas: int, layout: str, address: str | None) -> dict[str, Any]:
    with private_control_plane("raykube-bench-sched", replicas, address) as (data_dir, namespace, kubeconfig):
        bootstrap.deploy_scheduler(data_dir, namespace)

        async def go() -> dict[str, Any]:
            async with ApiClient.from_kubeconfig(str(kubeconfig)) as client:
                return await measure(client, workload, replicas)

        entry = asyncio.run(go())
        entry["layout"] = layout
        entry["placement"] = _placement(namespace)
        # Every boundary may cross Ray nodes in the spread layout; none does on one node.
        entry["cross_node_hops_max"] = entry["hops_per_pod"] if layout == "three-nodes" else 0
        return entry
