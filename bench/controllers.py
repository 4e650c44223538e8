"""Controller benchmark: how fast the controllers turn a workload object into pods, next to the API
server's own pod-create ceiling measured in the same run.

``raykube bench controllers [--quick] [--json FILE]`` starts a private control plane in its own Ray
namespace (the Raft store, the API server on a free port; Ray is started only when none runs, and
stopped afterwards only then) and, through the REST API:

1. **the ceiling**: 64 clients POST pods back to back (``bench api``'s ``create_pod``) for a fixed
   time, before any scheduler or controller runs, so nothing else loads the server: creates per
   second is what the API server and store can take. Those pods are then deleted again;
2. starts the scheduler and the controller manager (every controller but the node lifecycle ones:
   the hollow nodes have no agent and would be marked unreachable), and creates hollow nodes (Node
   objects with room for every pod; no agent runs them);
3. **a Deployment** of N replicas: from the create request to N pods created (by the Deployment and
   ReplicaSet controllers) and to N pods bound (by the scheduler), watched on a pod watch;
4. **a Job** with N completions and parallelism N: the same, through the Job controller.

For 3 and 4 the figure is pods created per second by the controllers (N over the time from the
workload's create request to its last pod's ADDED event), and its ratio to the ceiling. Beside it,
the store writes the workload caused until its last pod was bound (the revision delta: pod creates,
bindings, the scheduler's and controllers' Events, status updates), per pod and per second, since
the ceiling counts creates alone while the workload's path writes several times per pod. The goal of
issue 11 is a ratio of at least 0.8. The controllers create in slow-start batches (1, 2, 4, ...),
so part of the gap to the ceiling is by design; the report says how many batches that is.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.api_measure import Api, OpError, drive, ssl_context_from_kubeconfig, summarize
from bench.control_plane import private_control_plane
from cluster import bootstrap
from cluster.client.rest import ApiClient
from cluster.controllers.registry import CONTROLLERS

CLIENTS = 64
HOLLOW_NODES = 10
STALL_TIMEOUT_S = 120.0  # give up when no pod was created or bound for this long
NODE_CONTROLLERS = ("nodelifecycle", "taint-eviction-controller")
PAUSE_IMAGE = "registry.k8s.io/pause:3.10"


@dataclass(frozen=True, slots=True)
class Config:
    pods: int
    ceiling_s: float
    warmup_s: float
    controllers: tuple[str, ...] | None = None  # None: controllers_spec()


FULL = Config(pods=1000, ceiling_s=10.0, warmup_s=2.0)
QUICK = Config(pods=300, ceiling_s=4.0, warmup_s=1.0)


def controllers_spec() -> tuple[str, ...]:
    """``*`` without the node lifecycle controllers (hollow nodes never report)."""
    return ("*", *(f"-{name}" for name in NODE_CONTROLLERS if name in CONTROLLERS))


def hollow_node(index: int, pods: int) -> dict[str, Any]:
    capacity = {"pods": str(pods), "cpu": "64", "memory": "256Gi"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": f"hollow-{index}", "labels": {"kubernetes.io/hostname": f"hollow-{index}"}},
        "status": {
            "capacity": dict(capacity),
            "allocatable": dict(capacity),
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


def pod_template(app: str, restart: str = "Always") -> dict[str, Any]:
    return {
        "metadata": {"labels": {"app": app}},
        "spec": {"restartPolicy": restart, "containers": [{"name": "pause", "image": PAUSE_IMAGE}]},
    }


def deployment(name: str, replicas: int) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": pod_template(name),
        },
    }


def job(name: str, pods: int) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {"completions": pods, "parallelism": pods, "template": pod_template(name, "Never")},
    }


def slow_start_rounds(pods: int) -> int:
    """Batches of 1, 2, 4, ... needed for ``pods`` creates when none fails."""
    return math.ceil(math.log2(pods + 1)) if pods > 0 else 0


def per_bucket(times: list[float], width: float) -> list[int]:
    """How many of ``times`` (seconds from the start) fall in each ``width``-second bucket."""
    if not times:
        return []
    counts = [0] * (int(max(times) / width) + 1)
    for t in times:
        counts[int(t / width)] += 1
    return counts


# ---- measuring ------------------------------------------------------------------------------------


class PodCounter:
    """A pod watch on one namespace: when each pod was first seen, and when first seen bound."""

    def __init__(self, client: ApiClient, namespace: str, resource_version: str) -> None:
        self.added: dict[str, float] = {}
        self.bound: dict[str, float] = {}
        self.progress = asyncio.Event()
        self._task = asyncio.create_task(self._run(client, namespace, resource_version))

    async def _run(self, client: ApiClient, namespace: str, resource_version: str) -> None:
        while True:
            async for event in client.watch("v1", "pods", namespace, resource_version=resource_version):
                obj = event.get("object") or {}
                resource_version = (obj.get("metadata") or {}).get("resourceVersion") or resource_version
                if event.get("type") not in ("ADDED", "MODIFIED"):
                    continue
                name = obj["metadata"]["name"]
                now = time.monotonic()
                self.added.setdefault(name, now)
                if (obj.get("spec") or {}).get("nodeName"):
                    self.bound.setdefault(name, now)
                self.progress.set()

    async def wait_for(self, pods: int) -> bool:
        """Until ``pods`` pods are bound; False when nothing moved for ``STALL_TIMEOUT_S``."""
        while len(self.bound) < pods:
            self.progress.clear()
            try:
                await asyncio.wait_for(self.progress.wait(), STALL_TIMEOUT_S)
            except TimeoutError:
                return False
        return True

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._task


async def store_revision(client: ApiClient) -> int:
    """The store's current revision: every write anywhere in the cluster advances it by one."""
    listed = await client.list("v1", "namespaces", limit=1)
    return int(listed["metadata"]["resourceVersion"])


async def measure_workload(
    client: ApiClient, kind: str, plural: str, body: dict[str, Any], pods: int, ceiling: float | None
) -> dict[str, Any]:
    namespace = f"bench-{body['metadata']['name']}"
    await client.create("v1", "namespaces", {"metadata": {"name": namespace}})
    listed = await client.list("v1", "pods", namespace, limit=1)
    counter = PodCounter(client, namespace, listed["metadata"]["resourceVersion"])
    group_version = body["apiVersion"]
    try:
        revision0 = await store_revision(client)
        t0 = time.monotonic()
        await client.create(group_version, plural, body, namespace)
        settled = await counter.wait_for(pods)
        elapsed = time.monotonic() - t0
        writes = await store_revision(client) - revision0
    finally:
        await counter.close()
    created = sorted(t - t0 for t in counter.added.values())
    bound = sorted(t - t0 for t in counter.bound.values())
    create_s = created[-1] if len(created) >= pods else None
    rate = pods / create_s if create_s else None
    return {
        "workload": f"{kind}/{pods}",
        "pods": pods,
        "created": len(created),
        "bound": len(bound),
        "settled": settled,
        "first_pod_s": created[0] if created else None,
        "all_created_s": create_s,
        "all_bound_s": bound[-1] if len(bound) >= pods else None,
        "pods_created_per_s": rate,
        "ratio_to_api_ceiling": (rate / ceiling) if rate and ceiling else None,
        "slow_start_rounds": slow_start_rounds(pods),
        "store_writes": writes,
        "writes_per_pod": writes / pods,
        "writes_per_s": writes / elapsed,
        "created_per_100ms": per_bucket(created, 0.1),
    }


async def measure_ceiling(kubeconfig: Path, scratch: Path, cfg: Config) -> dict[str, Any]:
    """64 clients creating pods back to back, then the pods deleted again (step 1)."""
    import aiohttp

    server, ctx = ssl_context_from_kubeconfig(kubeconfig, scratch)
    connector = aiohttp.TCPConnector(ssl=ctx, limit=2 * CLIENTS, limit_per_host=2 * CLIENTS)
    names = iter(range(10**9))
    async with aiohttp.ClientSession(connector=connector) as session:
        api = Api(session, server)
        ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bench-ceiling"}}
        await api.call("POST", "/api/v1/namespaces", ns, ok=(201, 409))
        # The controller manager (its serviceaccount controller) starts after this step: make the
        # default account the pods are admitted with (ServiceAccount admission refuses them without).
        account = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}}
        await api.call("POST", "/api/v1/namespaces/bench-ceiling/serviceaccounts", account, ok=(201, 409))
        path = "/api/v1/namespaces/bench-ceiling/pods"

        async def create_pod(_: int) -> int:
            body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"ceiling-{next(names)}"}}
            body["spec"] = pod_template("ceiling")["spec"]
            await api.call("POST", path, body, ok=(201,))
            return 0

        await drive(create_pod, CLIENTS, cfg.warmup_s)
        latencies, elapsed, errors, _ = await drive(create_pod, CLIENTS, cfg.ceiling_s)
        row = summarize("create_pod", CLIENTS, latencies, elapsed, errors)
        with contextlib.suppress(OpError):  # unbound pods go at once (no kubelet to wait for)
            await api.call("DELETE", path, None, ok=(200,))
    return row


async def run_phases(kubeconfig: Path, cfg: Config, deploy_rest: Callable[[], None]) -> dict[str, Any]:
    ceiling_row = await measure_ceiling(kubeconfig, kubeconfig.parent, cfg)
    ceiling = ceiling_row.get("ops_per_s")
    await asyncio.to_thread(deploy_rest)
    results = []
    async with ApiClient.from_kubeconfig(str(kubeconfig)) as client:
        per_node = cfg.pods * 2 // HOLLOW_NODES + 10
        for i in range(HOLLOW_NODES):
            await client.create("v1", "nodes", hollow_node(i, per_node))
        results.append(
            await measure_workload(
                client, "Deployment", "deployments", deployment("deploy", cfg.pods), cfg.pods, ceiling
            )
        )
        results.append(await measure_workload(client, "Job", "jobs", job("job", cfg.pods), cfg.pods, ceiling))
    return {"api_ceiling": ceiling_row, "results": results}


def run(cfg: Config, say: Callable[[str], None]) -> dict[str, Any]:
    with private_control_plane("raykube-bench-controllers") as (data_dir, namespace, kubeconfig):
        say(f"control plane up in Ray namespace {namespace}")

        def deploy_rest() -> None:
            say("starting the scheduler and the controller manager")
            bootstrap.deploy_scheduler(data_dir, namespace)
            spec = cfg.controllers or controllers_spec()
            bootstrap.deploy_controller_manager(data_dir, namespace, controllers=spec)

        say(f"API ceiling: {CLIENTS} clients creating pods for {cfg.ceiling_s:g}s")
        return asyncio.run(run_phases(kubeconfig, cfg, deploy_rest))


# ---- report ---------------------------------------------------------------------------------------


def _fmt(value: Any, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def render(doc: dict[str, Any], console: Any) -> None:
    from rich.table import Table

    ceiling = doc["api_ceiling"]
    console.print(
        f"API ceiling: {_fmt(ceiling.get('ops_per_s'))} pod creates/s at {CLIENTS} clients "
        f"(p99 {_fmt(ceiling.get('p99_ms'))} ms, errors {ceiling.get('errors')})"
    )
    table = Table(title="controllers: create request -> pods created / bound")
    for col in (
        "workload",
        "created",
        "bound",
        "first pod s",
        "all created s",
        "all bound s",
        "pods/s",
        "ratio",
    ):
        table.add_column(col, justify="left" if col == "workload" else "right")
    for r in doc["results"]:
        table.add_row(
            r["workload"], str(r["created"]), str(r["bound"]), _fmt(r["first_pod_s"], 2),
            _fmt(r["all_created_s"], 2), _fmt(r["all_bound_s"], 2), _fmt(r["pods_created_per_s"]),
            _fmt(r["ratio_to_api_ceiling"], 2),
        )  # fmt: skip
    console.print(table)
    console.print(f"goal: ratio >= {doc['goal_ratio']} (pods created by the controllers / the API's ceiling)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="raykube bench controllers", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--quick", action="store_true", help=f"{QUICK.pods} pods per workload instead of {FULL.pods}"
    )
    p.add_argument("--pods", type=int, default=None, help="pods per workload (overrides --quick)")
    p.add_argument("--json", default=None, help="also write the results to this file")
    p.add_argument(
        "--controllers",
        default=None,
        help="the controller manager's --controllers list (default: all but the node lifecycle ones), "
        "e.g. replicaset,deployment,job to see what the other controllers cost",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    from rich.console import Console

    args = build_parser().parse_args(argv)
    cfg = QUICK if args.quick else FULL
    if args.pods is not None:
        if args.pods <= 0:
            print("--pods must be > 0", file=sys.stderr)
            return 2
        cfg = Config(args.pods, cfg.ceiling_s, cfg.warmup_s)
    if args.controllers:
        cfg = Config(cfg.pods, cfg.ceiling_s, cfg.warmup_s, tuple(args.controllers.split(",")))
    err = Console(stderr=True)

    def say(msg: str) -> None:
        err.print(msg, highlight=False, soft_wrap=True)

    try:
        doc = run(cfg, say)
    except KeyboardInterrupt:
        err.print("interrupted; raykube torn down")
        return 130
    doc.update(
        suite="controllers",
        goal_ratio=0.8,
        controllers=list(cfg.controllers or controllers_spec()),
        machine={
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
    )
    if args.json:
        Path(args.json).write_text(json.dumps(doc, indent=2) + "\n")
    render(doc, Console())
    complete = all(r["settled"] and r["created"] >= r["pods"] for r in doc["results"])
    return 0 if complete and doc["api_ceiling"].get("ops_per_s") else 1


if __name__ == "__main__":
    sys.exit(main())
