"""Scheduling benchmark: scheduler_perf's workloads on raykube's scheduler core, next to Ray and
kube-scheduler's published floors.

Modes: ``algorithm`` (``bench.scheduling_algorithm``: the core on an in-memory snapshot, no I/O) and
``end_to_end`` (``bench.scheduling_e2e``: hollow nodes and pods through the API server, the Raft store
and the scheduler actor). Peers: Ray
placing the same pods as tasks (``bench.scheduling_ray``; task placements, not processes) and
kube-scheduler's published Average SchedulingThroughput floors, marked as published figures from other
hardware. Every row names the path it measures (``path``). scheduler_perf measures through an API
server and etcd, so the floors are listed (and ``vs_published_floor`` computed) only next to
``end_to_end`` rows, never next to ``algorithm`` ones; ``end_to_end`` is the default mode.
Workloads and templates: ``bench.scheduling_workloads``; window math: ``bench.scheduling_metrics``.
See docs/bench-scheduling.md.

Entry point: ``main(argv)`` (``raykube bench scheduling ...`` / ``python -m bench.scheduling``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.scheduling_algorithm import ALGORITHM, run_algorithm
from bench.scheduling_e2e import END_TO_END, LAYOUTS, run_end_to_end
from bench.scheduling_ray import run_ray_peer
from bench.scheduling_workloads import PUBLISHED_FLOORS, QUICK_WORKLOADS, WORKLOADS, Workload

PUBLISHED_SYSTEM = "kube-scheduler (published)"
PUBLISHED_SOURCE = "published, other hardware"
RAY_QUICK_MAX_TASKS = 1000
DEFAULT_MODE = END_TO_END
# What each row measures, shown in the table and written to the JSON.
PATHS = {
    ALGORITHM: "scheduler core on an in-memory snapshot (no API server, no store, no I/O)",
    END_TO_END: "pods created through the API server, stored in the Raft store, bound by the scheduler actor",
    "ray-native": "Ray task placement on simulated nodes (no API server, no processes)",
    PUBLISHED_SYSTEM: "scheduler_perf: kube-scheduler with kube-apiserver and etcd (published CI floor)",
}


def published_peers(workloads: list[Workload]) -> list[dict[str, Any]]:
    """kube-scheduler's CI floors (scheduler_perf thresholds: PUBLISHED_FLOORS) for the workloads with one."""
    peers = []
    for workload in workloads:
        floor = PUBLISHED_FLOORS.get(workload.name)
        if floor is None:
            continue
        value, shape = floor
        peers.append(
            {
                "system": PUBLISHED_SYSTEM,
                "workload": workload.name,
                "throughput": {"average": value},
                "source": PUBLISHED_SOURCE,
                "what": "scheduler_perf threshold: lowest allowed Average SchedulingThroughput (CI floor)",
                "shape": shape,
                "path": PATHS[PUBLISHED_SYSTEM],
                "compare_with": END_TO_END,
            }
        )
    return peers


def run_suite(
    workloads: list[Workload],
    modes: list[str],
    *,
    ray_peer: bool,
    ray_max_tasks: int | None = None,
    progress: Callable[[str], None] = lambda message: None,
    runner: Callable[[Workload], dict[str, Any]] = run_algorithm,
    e2e_runner: Callable[..., dict[str, Any]] | None = None,
    layouts: tuple[str, ...] = (LAYOUTS[0],),
) -> dict[str, Any]:
    """Run every (workload, mode), ``end_to_end`` once per layout, then the peers; returns the suite's
    JSON document. ``e2e_runner(workload, layout=...)`` runs one end-to-end row."""
    if e2e_runner is None:
        e2e_runner = run_end_to_end
    results: list[dict[str, Any]] = []
    for workload in workloads:
        for mode in modes:
            for layout in layouts if mode == END_TO_END else ("",):
                shown = f"{mode}, {layout}" if layout else mode
                progress(f"{workload.name} ({shown}): {workload.nodes} nodes, {workload.measure_pods} pods")
                try:
                    if mode == END_TO_END:
                        results.append(e2e_runner(workload, layout=layout))
                    else:
                        results.append(runner(workload))
                except Exception as exc:  # one failing workload must not lose the others
                    traceback.print_exc()
                    failed = {
                        "workload": workload.name,
                        "mode": mode,
                        "error": f"{type(exc).__name__}: {exc}",
                    }
                    if layout:
                        failed["layout"] = layout
                    results.append(failed)
    peers: list[dict[str, Any]] = []
    if ray_peer:
        progress("ray-native peer (ray.cluster_utils, 4 simulated nodes)")
        try:
            peers.extend(run_ray_peer(workloads, max_tasks=ray_max_tasks))
        except Exception as exc:
            peers.append({"system": "ray-native", "error": f"{type(exc).__name__}: {exc}"})
    for r in results:
        r.setdefault("path", PATHS[r["mode"]])
    for peer in peers:
        peer.setdefault("path", PATHS.get(peer["system"], ""))
    if END_TO_END in modes:  # scheduler_perf's path: never set the floors next to in-memory rows
        published = published_peers(workloads)
        floors = {p["workload"]: p["throughput"]["average"] for p in published}
        for r in results:
            if r["mode"] == END_TO_END and not r.get("error") and r["workload"] in floors:
                r["vs_published_floor"] = round(r["throughput"]["average"] / floors[r["workload"]], 3)
        peers.extend(published)
    return {"suite": "scheduling", "results": results, "peers": peers, "machine": machine_info()}


def machine_info() -> dict[str, Any]:
    return {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "loadavg_at_end": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def _fmt(value: Any) -> str:
    return f"{value:,.1f}" if isinstance(value, int | float) else ""


def _mode(row: dict[str, Any]) -> str:
    return f"{row['mode']} ({row['layout']})" if row.get("layout") else str(row["mode"])


def render(doc: dict[str, Any], console: Any) -> None:
    from rich.table import Table

    table = Table(title="raykube bench scheduling (pods/s per 1-second window)")
    table.add_column("workload")
    table.add_column("mode / system")
    table.add_column("path measured", overflow="fold", max_width=40)
    for col in ("avg", "p50", "p90", "p99", "lat p50 ms", "lat p99 ms", "hops"):
        table.add_column(col, justify="right")
    for r in doc["results"]:
        if r.get("error"):
            table.add_row(r["workload"], _mode(r), r["path"], "[red]error[/red]", "", "", "", "", "", "")
            continue
        t, lat = r["throughput"], r["latency_ms"]
        cells = [_fmt(t[k]) for k in ("average", "p50", "p90", "p99")]
        table.add_row(
            r["workload"],
            _mode(r),
            r["path"],
            *cells,
            _fmt(lat["p50"]),
            _fmt(lat["p99"]),
            str(r["hops_per_pod"]),
        )
    for p in doc["peers"]:
        avg = "[red]error[/red]" if p.get("error") else _fmt(p["throughput"]["average"])
        table.add_row(p.get("workload", ""), p["system"], p.get("path", ""), avg, "", "", "", "", "", "")
    console.print(table)
    for r in [*doc["results"], *doc["peers"]]:
        if r.get("error"):
            console.print(
                f"{r.get('workload', '')} {r.get('mode', r.get('system'))}: {r['error']}", soft_wrap=True
            )
    for r in doc["results"]:
        if "vs_published_floor" in r:
            console.print(
                f"{r['workload']}: end_to_end average / kube-scheduler's published floor = "
                f"{r['vs_published_floor']:.3f}",
                highlight=False,
                soft_wrap=True,
            )
    console.print(
        "ray-native counts task placements, not processes; kube-scheduler figures are published CI floors "
        "from other hardware, measured through kube-apiserver and etcd: they are shown only with "
        "end_to_end rows.",
        soft_wrap=True,
        highlight=False,
    )


def plot(doc: dict[str, Any], path: str) -> None:
    """Throughput over time (one line per workload and mode) to a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 5))
    for r in doc["results"]:
        series = r.get("throughput_series") or []
        if series:
            ax.plot(range(2, len(series) + 2), series, label=f"{r['workload']} ({r['mode']})")
    ax.set_xlabel("sampling window (s since the measured pods were queued)")
    ax.set_ylabel("pods scheduled per second")
    ax.set_title("raykube bench scheduling: SchedulingThroughput")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="raykube bench scheduling",
        description="scheduler_perf-shaped scheduling throughput; Ray and published kube-scheduler peers.",
    )
    p.add_argument(
        "--workload",
        action="append",
        choices=sorted({*WORKLOADS, *(w.name for w in QUICK_WORKLOADS)}),
        metavar="NAME",
        help="run this workload (repeatable); default: all, or the quick set with --quick",
    )
    p.add_argument(
        "--mode",
        action="append",
        choices=[ALGORITHM, END_TO_END],
        help=f"default: {DEFAULT_MODE} (the path kube-scheduler's published floors are measured on)",
    )
    p.add_argument(
        "--layout",
        action="append",
        choices=LAYOUTS,
        help="end_to_end layout (repeatable): one-node (default; 1 store replica), one-node-3 (3 replicas on "
        "one Ray node), three-nodes (a 3-node ray.cluster_utils cluster: replicas, API servers and "
        "schedulers one per node)",
    )
    p.add_argument("--quick", action="store_true", help="the 500-node shapes plus a reduced 5000-node one")
    p.add_argument("--json", metavar="FILE", help="write the results as JSON to FILE")
    p.add_argument("--plot", metavar="FILE.png", help="plot throughput over time per workload")
    p.add_argument("--no-ray", action="store_true", help="skip the ray-native peer")
    p.add_argument("--list", action="store_true", help="list the workloads and exit")
    return p


def select_workloads(names: list[str] | None, quick: bool) -> list[Workload]:
    if not names:
        return list(QUICK_WORKLOADS) if quick else list(WORKLOADS.values())
    known = {**WORKLOADS, **{w.name: w for w in QUICK_WORKLOADS}}
    return [known[name] for name in dict.fromkeys(names)]


def main(argv: list[str] | None = None) -> int:
    from rich.console import Console

    args = build_parser().parse_args(argv)
    console = Console() if sys.stdout.isatty() else Console(width=160)
    err = Console(stderr=True)
    if args.list:
        for name, w in {**WORKLOADS, **{w.name: w for w in QUICK_WORKLOADS}}.items():
            console.print(f"{name}: {w.nodes} nodes, {w.init_pods} init pods, {w.measure_pods} measured")
        return 0
    workloads = select_workloads(args.workload, args.quick)
    modes = list(dict.fromkeys(args.mode or [DEFAULT_MODE]))
    doc = run_suite(
        workloads,
        modes,
        ray_peer=not args.no_ray,
        ray_max_tasks=RAY_QUICK_MAX_TASKS if args.quick else None,
        layouts=tuple(dict.fromkeys(args.layout or [LAYOUTS[0]])),
        progress=lambda m: err.print(m, highlight=False, soft_wrap=True),
    )
    if args.json:
        Path(args.json).write_text(json.dumps(doc, indent=2) + "\n")
    if args.plot:
        plot(doc, args.plot)
    render(doc, console)
    return 1 if doc["results"] and all(r.get("error") for r in doc["results"]) else 0


if __name__ == "__main__":
    sys.exit(main())
