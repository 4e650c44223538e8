"""Pod startup benchmark: pods created through the API to Running, per container runtime.

``raykube bench startup [--quick] [--runtime process|containerd ...] [--pods N] --json FILE``

For each runtime this starts a private control plane in its own Ray namespace (the Raft store, the API
server on a free port, the scheduler actor, and one node agent plus its CRI runtime actor per Ray node;
Ray itself is started only when none runs, and stopped afterwards only then), then through the REST API:

1. opens a pod watch and creates N busybox ``sleep 3600`` pods with up to ``CREATE_CONCURRENCY``
   requests in flight (scheduler_perf's create), the scheduler binding them to the node;
2. records, per pod, when its create request was sent and when the watch first showed it Running with the
   ``Ready`` condition ``True`` (the time the watch observed it, not the condition's timestamp, which
   has whole-second precision);
3. deletes the pods (grace period 0), stops the node agents and runtimes, and kills the actors, on
   errors too.

Unless ``--no-volumes``, the same control plane (plus the volume controllers of the controller
manager) then measures pods with volumes (a ConfigMap, an emptyDir and a claim of the default
StorageClass each, ``bench.startup_volumes``) in the same way, and with the ``process`` runtime also
pods of the volume pods' image without volumes: the result's ``volumes`` and ``image_root``.

Latency is create sent -> Running per pod (p50/p99 with scheduler_perf's percentile rule); pods/s is N
over the time from the first create sent to the last pod Running. The raw-CRI peer's clock starts at
the same point of its own path, when RunPodSandbox is sent (``bench.startup_raw``): both include the
first request's round trip, neither starts after the system has already answered.

Peers: Kubernetes' published pod startup SLO (p99 <= 5 s, marked published), and, per runtime, the
same runtime kind driven directly over CRI without the control plane (RunPodSandbox, CreateContainer,
StartContainer per pod, the same concurrency), with ``ratio_p99`` = raykube p99 / raw p99.

Invariants: the pure helpers (``pod_manifest``, ``pod_running``, ``startup_entry``, ``raw_peer``,
``slo_peer``, ``document``) read no clock; every run tears down what it started, whatever happens.
See docs/bench-startup.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import os
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import ray

from bench import startup_volumes as sv
from bench.scheduling import machine_info
from bench.scheduling_metrics import latency_summary_ms
from bench.startup_raw import CREATE_CONCURRENCY, IMAGE, gathered, run_raw
from cluster import bootstrap
from cluster.client.rest import ApiClient
from cluster.node_agents import NodeAgentsConfig, deploy_node_agents, stop_node_agents
from cluster.storage_defaults import ensure_storage_defaults
from nodeagent.runtimes.containerd import missing_prerequisites

RUNTIMES = ("process", "containerd")
DEFAULT_PODS = 100
QUICK_PODS = 20
BENCH_NAMESPACE = "startup-bench"
SETTLE_TIMEOUT_S = 120.0  # give up when no pod became Running for this long
DELETE_TIMEOUT_S = 60.0
GOALS_P99_MS = {"process": 1000.0, "containerd": 2000.0}  # issue 5's goals
SLO_P99_MS = 5000.0
SLO_SYSTEM = "Kubernetes pod startup SLO (published)"
SLO_SOURCE = "published: kubernetes/community sig-scalability/slos/pod_startup_latency.md"
# What the volume pods need of kube-controller-manager (the default StorageClass's claims).
VOLUME_CONTROLLERS = ("persistentvolume-binder", "csi-provisioner", "pvc-protection", "pv-protection")
VOLUME_KINDS = ("configMap", "emptyDir", "persistentVolumeClaim")
LATENCY_MEANING = (
    "create request sent -> pod watch first shows phase Running and condition Ready=True "
    f"({CREATE_CONCURRENCY} creates in flight, scheduler binding, node agent starting)"
)
RAW_MEANING = (
    "RunPodSandbox sent -> StartContainer returned, one container per pod, over CRI directly "
    f"({CREATE_CONCURRENCY} pods in flight, no API server, store, scheduler or node agent)"
)

Progress = Callable[[str], None]


# ---------------------------------------------------------------------- pure parts


def pod_manifest(index: int, image: str = IMAGE) -> dict[str, Any]:
    """The measured pod number ``index``: one busybox container sleeping an hour."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"startup-{index:05d}", "labels": {"app": "startup-bench"}},
        "spec": {
            "containers": [
                {
                    "name": "sleep",
                    "image": image,
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["sleep", "3600"],
                }
            ],
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 0,
        },
    }


def pod_running(pod: Mapping[str, Any]) -> bool:
    """Phase Running and the Ready condition True (every container started and ready)."""
    status = pod.get("status") or {}
    if status.get("phase") != "Running":
        return False
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])


def pods_per_second(count: int, first_sent: float, last_done: float) -> float:
    """``count`` over the span from the first request sent to the last pod done (0 for no span)."""
    span = last_done - first_sent
    return count / span if count and span > 0 else 0.0


def startup_entry(
    runtime: str,
    pods: int,
    created_at: Mapping[str, float],
    running_at: Mapping[str, float],
    first_sent: float,
    **extra: Any,
) -> dict[str, Any]:
    """One result: latency create sent -> Running per pod that got there, and pods/s over the whole run.

    ``created_at`` / ``running_at`` map pod names to times on one clock; pods missing from
    ``running_at`` count as ``not_running``.
    """
    done = [name for name in created_at if name in running_at]
    latencies = [max(0.0, running_at[name] - created_at[name]) for name in done]
    last = max((running_at[name] for name in done), default=first_sent)
    entry: dict[str, Any] = {
        "runtime": runtime,
        "pods": pods,
        "latency_ms": latency_summary_ms(latencies),
        "pods_per_second": pods_per_second(len(done), first_sent, last),
        "running": len(done),
        "not_running": pods - len(done),
        "duration_s": max(0.0, last - first_sent),
        "goal_p99_ms": GOALS_P99_MS.get(runtime),
        "latency_meaning": LATENCY_MEANING,
    }
    goal = entry["goal_p99_ms"]
    entry["meets_goal"] = bool(
        goal is not None and not entry["not_running"] and entry["latency_ms"]["p99"] < goal
    )
    entry.update(extra)
    return entry


def raw_peer(
    runtime: str, pods: int, latencies_s: Sequence[float], first_sent: float, last_done: float
) -> dict[str, Any]:
    """The same-machine peer: the runtime driven over CRI without the control plane."""
    return {
        "system": f"raw CRI ({runtime})",
        "runtime": runtime,
        "pods": pods,
        "latency_ms": latency_summary_ms(latencies_s),
        "pods_per_second": pods_per_second(len(latencies_s), first_sent, last_done),
        "started": len(latencies_s),
        "source": "measured, same machine",
        "what": RAW_MEANING,
    }


def slo_peer() -> dict[str, Any]:
    return {
        "system": SLO_SYSTEM,
        "latency_ms": {"p99": SLO_P99_MS},
        "source": SLO_SOURCE,
        "what": "stateless pod startup latency excluding image pull and init containers, p99 per cluster-day",
    }


def add_ratios(results: Sequence[dict[str, Any]], peers: Sequence[dict[str, Any]]) -> None:
    """Set ``ratio_p99`` (raykube p99 / raw p99) on each raw peer whose runtime has a result."""
    by_runtime = {r["runtime"]: r for r in results if not r.get("error")}
    for peer in peers:
        mine = by_runtime.get(peer.get("runtime", ""))
        raw_p99 = (peer.get("latency_ms") or {}).get("p99")
        if mine is not None and raw_p99:
            peer["ratio_p99"] = mine["latency_ms"]["p99"] / raw_p99


def document(
    results: list[dict[str, Any]], peers: list[dict[str, Any]], machine: dict[str, Any]
) -> dict[str, Any]:
    """The suite's JSON document (same conventions as the other suites)."""
    add_ratios(results, peers)
    return {"suite": "startup", "results": results, "peers": [*peers, slo_peer()], "machine": machine}


def error_entry(runtime: str, pods: int, error: str) -> dict[str, Any]:
    return {"runtime": runtime, "pods": pods, "error": error}


def describe_error(exc: BaseException, limit: int = 400) -> str:
    """``Type: message`` with only the message's last line (Ray errors carry whole tracebacks)."""
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[-1].strip() if lines else ''}"[:limit]


def containerd_unavailable() -> str | None:
    """Why containerd cannot run here (not root, binaries missing), or None."""
    problems = missing_prerequisites()
    return "containerd runtime unavailable: " + "; ".join(problems) if problems else None


# ---------------------------------------------------------------------- through the control plane


class _RunningWatch:
    """One pod watch recording when each pod was first seen Running and Ready (monotonic)."""

    def __init__(self, client: Any, resource_version: str) -> None:
        self.running_at: dict[str, float] = {}
        self.deleted: set[str] = set()
        self.changed = asyncio.Event()
        self._task = asyncio.create_task(self._run(client, resource_version))

    async def _run(self, client: Any, resource_version: str) -> None:
        rv = resource_version
        while True:
            try:
                async for event in client.watch("v1", "pods", BENCH_NAMESPACE, resource_version=rv):
                    if event.get("type") == "BOOKMARK":
                        continue
                    obj = event.get("object") or {}
                    meta = obj.get("metadata") or {}
                    rv = meta.get("resourceVersion") or rv
                    name = meta.get("name", "")
                    if event.get("type") == "DELETED":
                        self.deleted.add(name)
                        self.changed.set()
                    elif name not in self.running_at and pod_running(obj):
                        self.running_at[name] = time.monotonic()
                        self.changed.set()
            except asyncio.CancelledError:
                raise
            except Exception:  # a dropped stream resumes from the last version seen
                await asyncio.sleep(0.2)

    async def wait_for(self, names: set[str], done: Callable[[], set[str]], timeout: float) -> set[str]:
        """Wait until ``names <= done()`` or nothing changed for ``timeout``; return what is missing."""
        while remaining := names - done():
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), timeout)
            except TimeoutError:
                return remaining
        return set()

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._task


async def send_create(
    client: Any, manifest: dict[str, Any], sent_at: dict[str, float], clock: Callable[[], float]
) -> None:
    """Create one pod, its clock started when the request is sent (as the raw-CRI peer's is when
    RunPodSandbox is sent): the create's own round trip is part of the measured startup."""
    sent_at[manifest["metadata"]["name"]] = clock()
    await client.create("v1", "pods", manifest, BENCH_NAMESPACE)


async def measure(
    client: Any,
    runtime: str,
    pods: int,
    progress: Progress,
    objects: Callable[[int], sv.Objects] | None = None,
    label: str = "",
) -> dict[str, Any]:
    """Steps 1-3 of the module docstring (the pods' part) against a running control plane.

    ``objects(i)`` gives pod ``i`` and what it needs, created in order (the clock starts when the
    first is sent); default: ``pod_manifest(i)`` alone. Claims among them are deleted after the pods,
    and the wait for their volumes to go is ``volumes_not_deleted``."""
    with contextlib.suppress(Exception):
        await client.create("v1", "namespaces", {"metadata": {"name": BENCH_NAMESPACE}})
    with contextlib.suppress(Exception):  # pods need it (ServiceAccount admission); no controller here
        await client.create("v1", "serviceaccounts", {"metadata": {"name": "default"}}, BENCH_NAMESPACE)
    listed = await client.list("v1", "pods", BENCH_NAMESPACE, limit=1)
    watch = _RunningWatch(client, listed["metadata"]["resourceVersion"])
    sets = [objects(i) if objects else [("v1", "pods", pod_manifest(i))] for i in range(pods)]
    names = [objs[-1][2]["metadata"]["name"] for objs in sets]
    claims = [o[2]["metadata"]["name"] for objs in sets for o in objs if o[1] == "persistentvolumeclaims"]
    created_at: dict[str, float] = {}
    what = f"{runtime} {label}".strip()
    try:

        async def create(i: int) -> None:
            *before, (_version, _plural, pod) = sets[i]
            start = time.monotonic()
            for version, plural, body in before:
                await client.create(version, plural, body, BENCH_NAMESPACE)
            await send_create(client, pod, created_at, time.monotonic)
            if before:
                created_at[names[i]] = start

        first_sent = time.monotonic()
        await gathered(pods, create)
        progress(f"{what}: {pods} pods created in {time.monotonic() - first_sent:.2f}s")
        await watch.wait_for(set(names), lambda: set(watch.running_at), SETTLE_TIMEOUT_S)
        entry = startup_entry(runtime, pods, created_at, dict(watch.running_at), first_sent)
        progress(f"{what}: {entry['running']}/{pods} Running, p99 {entry['latency_ms']['p99']:.0f} ms")
        t_delete = time.monotonic()

        async def delete(i: int) -> None:
            with contextlib.suppress(Exception):
                await client.delete("v1", "pods", names[i], BENCH_NAMESPACE, grace_period_seconds=0)

        await gathered(pods, delete)
        gone = await watch.wait_for(set(names), lambda: watch.deleted, DELETE_TIMEOUT_S)
        if claims:
            await sv.delete_claims(client, BENCH_NAMESPACE, claims)
            entry["volumes_not_deleted"] = await sv.wait_no_volumes(client, DELETE_TIMEOUT_S)
        entry["delete_s"] = time.monotonic() - t_delete
        entry["not_deleted"] = len(gone)
        return entry
    finally:
        await watch.close()


async def measure_volumes(
    client: Any, runtime: str, pods: int, progress: Progress, data_dir: Path
) -> dict[str, Any]:
    """The volume variants (``bench.startup_volumes``): ``{"volumes": entry}``, plus
    ``"image_root"`` (the volume pods' image without volumes) when that is not the plain pods' image."""
    await ensure_storage_defaults(client)
    with contextlib.suppress(Exception):
        await client.create("v1", "configmaps", sv.configmap_manifest(), BENCH_NAMESPACE)
    image = IMAGE if runtime == "containerd" else sv.install_image_root(data_dir)
    out: dict[str, Any] = {}
    if image != IMAGE:
        out["image_root"] = await measure(
            client, runtime, pods, progress, lambda i: sv.plain_pod_objects(i, image), "image root"
        )
        out["image_root"]["image"] = image
    out["volumes"] = await measure(
        client, runtime, pods, progress, lambda i: sv.volume_pod_objects(i, image), "volumes"
    )
    out["volumes"].update(image=image, volume_kinds=list(VOLUME_KINDS))
    return out


def run_with_control_plane(
    runtime: str, pods: int, progress: Progress, volumes: bool = True
) -> dict[str, Any]:
    """A private control plane with ``runtime`` node agents; ``measure`` (and, with ``volumes``,
    the volume variants, their errors in ``volumes.error``); tear it all down.

    Runs inside ``ray_session`` (reusing the caller's when there is one)."""
    with ray_session(progress):
        return _run_with_control_plane(runtime, pods, progress, volumes)


def _run_with_control_plane(runtime: str, pods: int, progress: Progress, volumes: bool) -> dict[str, Any]:
    data_dir = Path(tempfile.mkdtemp(prefix="raykube-bench-startup-"))
    namespace = f"raykube-bench-startup-{runtime}-{os.getpid()}-{int(time.time())}"
    t_setup = time.monotonic()
    try:
        bootstrap.deploy_store(1, data_dir, namespace)
        asyncio.run(bootstrap.wait_until_serving(namespace))
        # All interfaces: the node agents reach the API server at the node's IP, not loopback.
        port, kubeconfig = bootstrap.deploy_apiserver(data_dir, namespace, host="0.0.0.0", port=0)
        bootstrap.deploy_scheduler(data_dir, namespace)
        if volumes:  # claims need the PV controller and the provisioner
            bootstrap.deploy_controller_manager(data_dir, namespace, controllers=VOLUME_CONTROLLERS)
        agents = deploy_node_agents(
            NodeAgentsConfig(data_dir, apiserver_port=port, runtime=runtime), namespace
        )
        setup_s = time.monotonic() - t_setup
        progress(f"{runtime}: control plane and {len(agents)} node agent(s) up in {setup_s:.1f}s")

        async def go() -> dict[str, Any]:
            async with ApiClient.from_kubeconfig(str(kubeconfig)) as client:
                entry = await measure(client, runtime, pods, progress)
                if volumes:
                    try:
                        entry.update(await measure_volumes(client, runtime, pods, progress, data_dir))
                    except Exception as exc:  # the plain figures stand on their own
                        traceback.print_exc()
                        entry["volumes"] = {"error": describe_error(exc)}
                return entry

        entry = asyncio.run(go())
        entry["setup_s"] = setup_s
        entry["nodes"] = len(agents)
        return entry
    finally:
        t_down = time.monotonic()
        with contextlib.suppress(Exception):
            stop_node_agents(namespace, remove_pods=True)
        with contextlib.suppress(Exception):
            bootstrap.teardown(namespace)
        progress(f"{runtime}: torn down in {time.monotonic() - t_down:.1f}s")
        shutil.rmtree(data_dir, ignore_errors=True)


@contextlib.contextmanager
def ray_session(progress: Progress = lambda message: None) -> Iterator[None]:
    """Connect to the machine's Ray, starting a local head only when none runs; on exit stop it only
    if it was started here, and disconnect only if connected here (nesting is a no-op)."""
    marker_dir = Path(tempfile.mkdtemp(prefix="raykube-bench-startup-ray-"))
    connected_here = not ray.is_initialized()
    started = bootstrap.connect_ray(None, marker_dir)
    try:
        yield
    finally:
        t_stop = time.monotonic()
        if started:
            bootstrap.stop_local_ray_if_ours(marker_dir)
            progress(f"stopped the Ray head this run started ({time.monotonic() - t_stop:.1f}s)")
        elif connected_here and ray.is_initialized():
            ray.shutdown()
        shutil.rmtree(marker_dir, ignore_errors=True)


# ---------------------------------------------------------------------- the suite


def measure_raw(runtime: str, pods: int) -> dict[str, Any]:
    """The raw CRI peer entry for ``runtime`` (``bench.startup_raw``)."""
    raw = run_raw(runtime, pods)
    return raw_peer(runtime, pods, raw["latencies"], raw["first_sent"], raw["last_done"])


def run_suite(
    runtimes: Sequence[str],
    pods: int,
    *,
    progress: Progress = lambda message: None,
    runner: Callable[[str, int, Progress], dict[str, Any]] = run_with_control_plane,
    raw_runner: Callable[[str, int], dict[str, Any]] | None = None,
    unavailable: Callable[[str], str | None] = lambda rt: (
        containerd_unavailable() if rt == "containerd" else None
    ),
) -> dict[str, Any]:
    """Each runtime through the control plane, then its raw peer; returns the suite's document."""
    results: list[dict[str, Any]] = []
    peers: list[dict[str, Any]] = []
    for runtime in runtimes:
        reason = unavailable(runtime)
        if reason:
            progress(f"{runtime}: skipped ({reason})")
            results.append(error_entry(runtime, pods, reason))
            peers.append({"system": f"raw CRI ({runtime})", "runtime": runtime, "error": reason})
            continue
        started = time.monotonic()
        try:
            results.append(runner(runtime, pods, progress))
        except Exception as exc:  # one failing runtime must not lose the other
            traceback.print_exc()
            results.append(error_entry(runtime, pods, describe_error(exc)))
        results[-1]["wall_s"] = time.monotonic() - started
        started = time.monotonic()
        try:
            peers.append((raw_runner or measure_raw)(runtime, pods))
        except Exception as exc:
            traceback.print_exc()
            peers.append(
                {
                    "system": f"raw CRI ({runtime})",
                    "runtime": runtime,
                    "error": describe_error(exc),
                }
            )
        peers[-1]["wall_s"] = time.monotonic() - started
        progress(f"{runtime}: raw CRI peer done in {peers[-1]['wall_s']:.1f}s")
    return document(results, peers, machine_info())


def render(doc: dict[str, Any], console: Any) -> None:
    from rich.table import Table

    table = Table(title="bench startup (create sent -> Running; raw CRI: RunPodSandbox sent -> Started)")
    for col in ("system", "runtime", "pods", "p50 ms", "p99 ms", "pods/s", "ratio p99", "note"):
        table.add_column(col)

    def f(v: Any) -> str:
        return f"{v:,.1f}" if isinstance(v, int | float) else ""

    for r in doc["results"]:
        lat = r.get("latency_ms") or {}
        note = r.get("error") or (f"{r['not_running']} not Running" if r.get("not_running") else "")
        row = ["raykube", r["runtime"], str(r["pods"]), f(lat.get("p50")), f(lat.get("p99"))]
        table.add_row(*row, f(r.get("pods_per_second")), "", note)
        for key, system in (("image_root", "raykube, image root"), ("volumes", "raykube, volumes")):
            v = r.get(key)
            if not v:
                continue
            vlat = v.get("latency_ms") or {}
            vnote = v.get("error") or (f"{v['not_running']} not Running" if v.get("not_running") else "")
            vrow = [system, r["runtime"], str(v.get("pods", "")), f(vlat.get("p50")), f(vlat.get("p99"))]
            table.add_row(*vrow, f(v.get("pods_per_second")), "", vnote)
    for p in doc["peers"]:
        lat = p.get("latency_ms") or {}
        row = [
            p["system"],
            p.get("runtime", ""),
            str(p.get("pods", "")),
            f(lat.get("p50")),
            f(lat.get("p99")),
        ]
        table.add_row(*row, f(p.get("pods_per_second")), f(p.get("ratio_p99")), p.get("error", ""))
    console.print(table)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="raykube bench startup",
        description="Pods created to Running per runtime; raw-CRI and Kubernetes SLO peers.",
    )
    p.add_argument("--quick", action="store_true", help=f"{QUICK_PODS} pods instead of {DEFAULT_PODS}")
    p.add_argument("--runtime", action="append", choices=RUNTIMES, help="repeatable; default: both")
    p.add_argument("--pods", type=int, default=None, help=f"pods per runtime (default {DEFAULT_PODS})")
    p.add_argument(
        "--no-volumes",
        dest="volumes",
        action="store_false",
        help="skip the pods with volumes (a ConfigMap, an emptyDir and a claim each)",
    )
    p.add_argument("--json", metavar="FILE", help="write the results as JSON to FILE")
    return p


def selection(args: argparse.Namespace) -> tuple[list[str], int]:
    """The runtimes (in the order given, each once; default both) and the pod count to run."""
    pods = args.pods if args.pods is not None else (QUICK_PODS if args.quick else DEFAULT_PODS)
    if pods < 1:
        raise SystemExit("--pods must be at least 1")
    return list(dict.fromkeys(args.runtime or RUNTIMES)), pods


def main(argv: list[str] | None = None) -> int:
    from rich.console import Console

    args = build_parser().parse_args(argv)
    runtimes, pods = selection(args)
    err = Console(stderr=True)

    def progress(message: str) -> None:
        err.print(message, highlight=False, soft_wrap=True)

    with ray_session(progress):  # one Ray for every runtime's control plane
        runner = functools.partial(run_with_control_plane, volumes=args.volumes)
        doc = run_suite(runtimes, pods, progress=progress, runner=runner)
    if args.json:
        Path(args.json).write_text(json.dumps(doc, indent=2) + "\n")
    render(doc, Console() if sys.stdout.isatty() else Console(width=160))
    return 1 if all(r.get("error") for r in doc["results"]) else 0


if __name__ == "__main__":
    sys.exit(main())
