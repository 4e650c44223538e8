"""API server benchmark: throughput and latency of the Kubernetes REST API through real HTTPS.

The bench brings up its own raykube (store + API server actors) in a fresh Ray namespace
``raykube-bench-api-<random>`` and a temporary data dir, joining the machine's Ray or starting a
local one, and always tears it down again (also on errors and Ctrl-C); a Ray it started is stopped,
a Ray it joined is left alone. All traffic goes through one keep-alive ``aiohttp.ClientSession``
authenticated with the client certificate embedded in the kubeconfig the API server wrote.

Measurements (each op timed with ``time.perf_counter_ns``; closed loop, ``clients`` workers):

- ``create`` / ``create_pod``: POST a small ConfigMap / a one-container Pod with a unique name.
- ``get``: GET one ConfigMap by name; ``list``: GET a namespace holding 100 ConfigMaps.
- ``update``: PUT a worker's own ConfigMap with the resourceVersion of its last write; a 409
  re-GETs and retries (the retries are counted; the op's latency includes them).
- ``watch_event``: ``clients`` watchers on one namespace while one writer creates; latency from the
  create's 201 reply to the ADDED event arriving on each watch (0 when it arrived first); ops/s is
  events delivered per second over all watchers.
- ``paced``: open loop, creates scheduled at a fixed rate whatever the completions; latency counts
  from each create's scheduled time, so a server that falls behind cannot hide it.

Invariants: a figure is only reported from successful operations; failed ones are counted in
``errors``, never folded into the latencies. See docs/bench-api.md.

Entry point: ``main(argv)`` (``raykube bench api ...`` / ``python -m bench.api``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import ssl
import sys
import tempfile
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray

from bench.api_authz import MODES, compare, measure_alternating, user_context
from bench.api_measure import (  # noqa: F401 - re-exported for callers and tests
    ACTOR_HOPS_PER_CREATE,
    FULL_DURATION_S,
    FULL_PACED_S,
    FULL_WARMUP_S,
    GOAL_PACED_P99_MS,
    GOAL_PEAK_POD_CREATES,
    LIST_SIZE,
    MEASUREMENTS,
    OPS,
    PACED_RATE,
    QUICK_DURATION_S,
    QUICK_PACED_S,
    QUICK_WARMUP_S,
    RUN_SLACK_S,
    WATCH_DRAIN_S,
    Api,
    Bench,
    Op,
    OpError,
    cm_path,
    configmap,
    drive,
    paced_offsets_ns,
    pod,
    slo_summary,
    ssl_context_from_kubeconfig,
    summarize,
)
from cluster.apiserver.auth.options import SecurityOptions
from cluster.bootstrap import (
    connect_ray,
    deploy_apiserver,
    deploy_store,
    stop_local_ray_if_ours,
    teardown,
    wait_until_serving,
)
from cluster.store.clients import client_kind
from cluster.store_deploy import store_pki

# ---- the suite ------------------------------------------------------------------------------


@dataclass
class Config:
    ops: list[str]
    clients: list[int]
    duration_s: float
    warmup_s: float
    paced_s: float
    replicas: int = 1


async def run_suite(
    cfg: Config, server: str, ctx: ssl.SSLContext, say: Callable[[str], None]
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """Every (op, clients) point, then the paced run; returns (results, paced or None)."""
    import aiohttp

    max_clients = max(cfg.clients)
    # Watchers hold a connection each while the writer needs one more; paced creates may overlap.
    limit = max(256, 2 * max_clients + 8)
    connector = aiohttp.TCPConnector(ssl=ctx, limit=limit, limit_per_host=limit, keepalive_timeout=60)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=10)
    results: list[dict[str, Any]] = []
    paced = None
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        bench = Bench(Api(session, server), max_clients)
        say("creating namespaces and fixtures")
        await bench.setup()
        for op in (o for o in OPS if o in cfg.ops):
            for clients in cfg.clients:
                say(f"{op} clients={clients}")
                try:
                    if op == "watch_event":
                        row = await bench.watch_event(clients, cfg.duration_s)
                    else:
                        row = await bench.closed_loop(op, clients, cfg.duration_s, cfg.warmup_s)
                except (OpError, OSError, TimeoutError) as e:  # recorded; the other points still run
                    say(f"[red]{op} clients={clients} failed: {type(e).__name__}: {e}[/red]")
                    row = {**summarize(op, clients, [], 0, 1), "error": f"{type(e).__name__}: {e}"[:300]}
                results.append(row)
        if "paced" in cfg.ops:
            say(f"paced creates at {PACED_RATE:.0f}/s for {cfg.paced_s:g}s")
            paced = await bench.paced(PACED_RATE, cfg.paced_s)
    return results, paced


@contextlib.contextmanager
def raykube_for_bench(
    replicas: int, say: Callable[[str], None], security: SecurityOptions | None = None
) -> Any:
    """A throw-away raykube (store + API server) in a fresh Ray namespace; yields the kubeconfig path.

    Joins the machine's Ray or starts a local one; on the way out (errors and Ctrl-C included) kills
    every actor of the namespace, removes the data dir, and stops Ray only if it started it.
    """
    data_dir = Path(tempfile.mkdtemp(prefix="raykube-bench-api-"))
    namespace = f"raykube-bench-api-{uuid.uuid4().hex[:8]}"
    started = False
    was_connected = ray.is_initialized()
    handles: list[Any] = []
    try:
        started = connect_ray(None, data_dir)
        say(("started a local Ray" if started else "joined the running Ray") + f"; namespace {namespace}")
        # As `raykube up`: the replicas serve etcd's API (free ports, TLS), which the API servers use
        # unless $RAYKUBE_STORE_CLIENT=ray (then they call the replica actors through Ray).
        handles, _ = deploy_store(
            replicas, data_dir, namespace, detached=False, store_port=0, tls=store_pki(data_dir)
        )
        asyncio.run(wait_until_serving(namespace, timeout=120, data_dir=data_dir))
        _, kubeconfig = deploy_apiserver(data_dir, namespace, host="127.0.0.1", port=0, security=security)
        yield kubeconfig, data_dir
    finally:
        del handles
        if ray.is_initialized():
            with contextlib.suppress(Exception):
                teardown(namespace)
        if started:
            stop_local_ray_if_ours(data_dir)  # the marker connect_ray left says this Ray is ours
        elif not was_connected and ray.is_initialized():
            ray.shutdown()  # disconnect only; the joined Ray keeps running
        shutil.rmtree(data_dir, ignore_errors=True)


# ---- report ---------------------------------------------------------------------------------


def machine_info(cfg: Config) -> dict[str, Any]:
    info: dict[str, Any] = {
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "loadavg_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "store_replicas": cfg.replicas,
        "duration_s": cfg.duration_s,
        "warmup_s": cfg.warmup_s,
        "paced_duration_s": cfg.paced_s,
        "client": "aiohttp (same machine as the server)",
        "store_client": client_kind(),  # how the API servers reach the store: grpc (etcd API) or ray
    }
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                info["cpu_model"] = line.split(":", 1)[1].strip()
                break
    with contextlib.suppress(Exception):
        import aiohttp

        info["aiohttp"] = aiohttp.__version__
    return info


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def render(results: Sequence[dict[str, Any]], slo: dict[str, Any], console: Any) -> None:
    from rich.table import Table

    if not results:
        return
    table = Table(title="raykube bench api (HTTPS, JSON, loopback)")
    table.add_column("op")
    for col in ("clients", "ops/s", "p50 ms", "p99 ms", "errors", "retries"):
        table.add_column(col, justify="right")
    for r in results:
        ops = "-" if r["ops_per_s"] is None else f"{r['ops_per_s']:,.0f}"
        errors = f"[red]{r['errors']}[/red]" if r["errors"] else "0"
        table.add_row(
            r["op"],
            str(r["clients"]),
            ops,
            _ms(r["p50_ms"]),
            _ms(r["p99_ms"]),
            errors,
            str(r.get("retries", "")),
        )
    console.print(table)
    verdict = {True: "[green]met[/green]", False: "[red]not met[/red]"}
    if "paced_create" in slo:
        p = slo["paced_create"]
        console.print(
            f"paced creates: target {p['target_rate']:.0f}/s, achieved {p['achieved_rate'] or 0:.0f}/s, "
            f"p50 {_ms(p['p50_ms'])} ms, p99 {_ms(p['p99_ms'])} ms, errors {p['errors']} — goal p99 ≤ "
            f"{p['goal_p99_ms']:.0f} ms {verdict[p['met']]} "
            f"(Kubernetes SLO p99 ≤ {p['kubernetes_slo_p99_ms']:.0f} ms)",
            soft_wrap=True,
        )
    if "peak_pod_creates" in slo:
        p = slo["peak_pod_creates"]
        console.print(
            f"peak pod creates: {p['ops_per_s']:,.0f}/s at {p['clients']} clients — goal ≥ "
            f"{p['goal_ops_per_s']:,.0f}/s {verdict[p['met']]}",
            soft_wrap=True,
        )
    if results:
        console.print(
            f"actor hops per create: {slo['actor_hops_per_create']}", soft_wrap=True, highlight=False
        )


def run_authz(cfg: Config, say: Callable[[str], None]) -> dict[str, Any]:
    """The authorization row (``bench.api_authz``): two fresh clusters up side by side, AlwaysAllow
    and RBAC, and each op measured on them in turn (``ROUNDS`` times each, alternating), so that
    load drifting on the machine weighs on both alike."""
    clients = min(16, max(cfg.clients))
    with contextlib.ExitStack() as stack:
        targets = {}
        for mode, security in MODES.items():
            say(f"authorization row: --authorization-mode {','.join(security.authorization_modes)}")
            kubeconfig, data_dir = stack.enter_context(
                raykube_for_bench(cfg.replicas, say, security=security)
            )
            server, admin_ctx = ssl_context_from_kubeconfig(kubeconfig, data_dir)
            targets[mode] = (server, admin_ctx, user_context(data_dir, data_dir))
        rows = asyncio.run(measure_alternating(targets, clients, cfg.duration_s, cfg.warmup_s, say))
    return compare(rows["AlwaysAllow"], rows["RBAC"])


def render_authz(authz: dict[str, Any], console: Any) -> None:
    from rich.table import Table

    table = Table(title="authorization: RBAC (1,000 Roles + RoleBindings) vs AlwaysAllow, as a bound user")
    table.add_column("op")
    for col in ("clients", "AlwaysAllow ops/s", "RBAC ops/s", "ratio", "AlwaysAllow p99", "RBAC p99"):
        table.add_column(col, justify="right")
    for o in authz["ops"]:
        a, r = o["always_allow_ops_per_s"], o["rbac_ops_per_s"]
        table.add_row(
            o["op"],
            str(o["clients"]),
            "-" if a is None else f"{a:,.0f}",
            "-" if r is None else f"{r:,.0f}",
            "-" if o["ratio"] is None else f"{o['ratio']:.3f}",
            _ms(o["always_allow_p99_ms"]),
            _ms(o["rbac_p99_ms"]),
        )
    console.print(table)
    ratio = authz["throughput_ratio"]
    verdict = "[green]met[/green]" if authz["met"] else "[red]not met[/red]"
    console.print(
        f"RBAC throughput {'-' if ratio is None else f'{ratio:.3f}'} of AlwaysAllow (geometric mean; cost "
        f"{authz['cost_pct']}%) — goal ≥ {authz['goal_ratio']} {verdict}",
        soft_wrap=True,
    )


# ---- CLI ------------------------------------------------------------------------------------


def _int_list(text: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from e
    if not values or any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return list(dict.fromkeys(values))


def _ops(text: str) -> list[str]:
    values = [x.strip() for x in text.split(",") if x.strip()]
    bad = [v for v in values if v not in MEASUREMENTS]
    if not values or bad:
        raise argparse.ArgumentTypeError(f"ops must be among {','.join(MEASUREMENTS)}, got {text!r}")
    return list(dict.fromkeys(values))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="raykube bench api",
        description="Throughput/latency of raykube's API server through real HTTPS (create, get, list, "
        "update, watch), plus paced creates at 200/s and peak pod creates/s.",
    )
    p.add_argument("--quick", action="store_true", help="short durations; whole run under 3 minutes")
    p.add_argument("--json", metavar="FILE", help="write the results as JSON to FILE")
    p.add_argument("--clients", type=_int_list, default=[1, 16, 64], help="default: 1,16,64")
    p.add_argument("--ops", type=_ops, default=list(MEASUREMENTS), help=f"default: {','.join(MEASUREMENTS)}")
    p.add_argument("--replicas", type=int, choices=(1, 3), default=1, help="store replicas (default: 1)")
    p.add_argument(
        "--authz",
        choices=("on", "off", "only"),
        default="on",
        help="the authorization row: the create/get/list/update mix as a bound non-admin user with RBAC "
        "(1,000 Roles and RoleBindings) and with AlwaysAllow, in two fresh clusters (default: on)",
    )
    # Hidden knobs for tests and experiments.
    p.add_argument("--duration", type=float, default=None, help=argparse.SUPPRESS)
    p.add_argument("--warmup", type=float, default=None, help=argparse.SUPPRESS)
    p.add_argument("--paced-duration", type=float, default=None, help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    from rich.console import Console

    args = build_parser().parse_args(argv)
    quick = args.quick

    def pick(value: float | None, full: float, short: float) -> float:
        return value if value is not None else (short if quick else full)

    cfg = Config(
        ops=args.ops,
        clients=args.clients,
        duration_s=pick(args.duration, FULL_DURATION_S, QUICK_DURATION_S),
        warmup_s=pick(args.warmup, FULL_WARMUP_S, QUICK_WARMUP_S),
        paced_s=pick(args.paced_duration, FULL_PACED_S, QUICK_PACED_S),
        replicas=args.replicas,
    )
    if cfg.duration_s <= 0 or cfg.warmup_s < 0 or cfg.paced_s <= 0:
        print("durations must be > 0 (warmup >= 0)", file=sys.stderr)
        return 2
    console, err = Console(), Console(stderr=True)

    def say(msg: str) -> None:
        err.print(msg, highlight=False, soft_wrap=True)

    machine = machine_info(cfg)
    results: list[dict[str, Any]] = []
    paced = None
    authz: dict[str, Any] | None = None
    try:
        if args.authz != "only":
            with raykube_for_bench(cfg.replicas, say) as (kubeconfig, data_dir):
                server, ctx = ssl_context_from_kubeconfig(kubeconfig, data_dir)
                results, paced = asyncio.run(run_suite(cfg, server, ctx, say))
        if args.authz != "off":
            authz = run_authz(cfg, say)
    except KeyboardInterrupt:
        err.print("interrupted; raykube torn down")
        return 130
    slo = slo_summary(results, paced)
    doc = {"suite": "api", "results": results, "slo": slo, "machine": machine}
    if authz is not None:
        doc["authorization"] = authz
    if args.json:
        Path(args.json).write_text(json.dumps(doc, indent=2) + "\n")
    render(results, slo, console)
    if authz is not None:
        render_authz(authz, console)
    failed = any(r["errors"] or r["ops_per_s"] is None for r in results) or bool(paced and paced["errors"])
    failed = failed or bool(authz and any(o["errors"] or o["ratio"] is None for o in authz["ops"]))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
