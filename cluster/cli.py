"""The ``raykube`` command line: up, down, status, store, bench."""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

# Tables must stay readable when piped (no terminal: rich would assume 80 columns and truncate).
console = Console() if sys.stdout.isatty() else Console(width=160)


def _data_dir(args: argparse.Namespace) -> Path:
    from cluster.bootstrap import default_data_dir

    return Path(args.data_dir).expanduser() if args.data_dir else default_data_dir()


def _refuse_foreign(namespace: str, data_dir: Path, doing: str) -> bool:
    """Print why and return True when ``namespace`` runs the cluster of another data directory."""
    from cluster.ownership import NamespaceTaken, check

    try:
        check(namespace, data_dir)
    except NamespaceTaken as e:
        console.print(
            f"[red]error:[/] the Ray namespace {namespace!r} runs the raykube cluster of "
            f"{e.owner.describe()}, not the one of {data_dir}; {doing}. Use `--data-dir {e.owner.data_dir}` "
            f"for that cluster, or start this one beside it in a namespace of its own: "
            f"`raykube up --data-dir {data_dir} --ray-namespace NAME --port 0`.",
            soft_wrap=True,
        )
        return True
    return False


def cmd_up(args: argparse.Namespace) -> int:
    import ray

    from cluster.bootstrap import (
        ClusterConfig,
        connect_ray,
        default_namespace,
        deploy_apiserver,
        deploy_controller_manager,
        deploy_node_agents,
        deploy_scheduler,
        deploy_store,
        find_store,
        wait_until_serving,
    )

    data_dir = _data_dir(args)
    existing = ClusterConfig.load(data_dir)
    replicas = args.replicas or (existing.replicas if existing else 1)
    if existing and args.replicas and args.replicas != existing.replicas:
        console.print(
            f"[red]error:[/] the store in {data_dir} was created with {existing.replicas} replica(s); "
            f"`raykube down --purge` first to start over with {args.replicas} (or change membership "
            "one replica at a time)."
        )
        return 2
    if replicas not in (1, 3, 5):
        console.print("[red]error:[/] --replicas must be 1, 3 or 5")
        return 2
    t0 = time.monotonic()
    started = connect_ray(args.address, data_dir)
    console.print(
        ("started a local Ray head" if started else "joined the running Ray cluster") + f" ({data_dir})"
    )
    namespace = args.ray_namespace or (existing.namespace if existing else None) or default_namespace()
    from cluster.ownership import NamespaceTaken, claim

    try:
        claim(namespace, data_dir)
    except NamespaceTaken:
        _refuse_foreign(namespace, data_dir, "nothing was started or written")
        return 2
    cfg = ClusterConfig(replicas=replicas, namespace=namespace)
    cfg.save(data_dir)
    had = find_store(cfg.namespace)
    _, placement = deploy_store(replicas, data_dir, cfg.namespace)
    asyncio.run(wait_until_serving(cfg.namespace, timeout=args.timeout))
    verb = "already running" if len(had) == replicas else "started"
    console.print(f"store {verb}: {placement}")
    port, kubeconfig = deploy_apiserver(data_dir, cfg.namespace, port=args.port)
    console.print(f"API server: https://127.0.0.1:{port} (ready after {time.monotonic() - t0:.1f}s)")
    console.print(f"kubeconfig: {kubeconfig}")
    profiles = deploy_scheduler(data_dir, cfg.namespace)
    console.print(f"scheduler: running (profiles: {', '.join(profiles)})")
    manifests = Path(args.manifests_dir).expanduser() if args.manifests_dir else None
    follow = None
    if args.runtime != "none":
        follow = {
            "data_dir": str(data_dir),
            "apiserver_port": port,
            "runtime": args.runtime,
            "manifests_dir": manifests,
            "api_host": ray.util.get_node_ip_address(),
            "head_node_id": ray.get_runtime_context().get_node_id(),
        }
    controllers = deploy_controller_manager(data_dir, cfg.namespace, agents=follow)
    console.print(f"controller manager: running ({', '.join(controllers)})")
    if args.runtime != "none":
        agents = deploy_node_agents(
            data_dir, cfg.namespace, apiserver_port=port, runtime=args.runtime, manifests_dir=manifests
        )
        for agent in agents:
            console.print(f"node {agent['node']}: agent on port {agent['port']}, runtime {agent['runtime']}")
        console.print(f"static pods: {manifests or data_dir / 'manifests'}")
    console.print(f"  export KUBECONFIG={kubeconfig}; kubectl get nodes")
    return 0


def cmd_kubeconfig(args: argparse.Namespace) -> int:
    path = _data_dir(args) / "kubeconfig"
    if not path.exists():
        console.print("no kubeconfig yet: run `raykube up` first")
        return 1
    print(path)
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    import ray

    from cluster.bootstrap import (
        ClusterConfig,
        connect_ray,
        default_namespace,
        stop_local_ray_if_ours,
        stop_node_agents,
        teardown,
    )
    from cluster.ownership import release

    data_dir = _data_dir(args)
    cfg = ClusterConfig.load(data_dir)
    namespace = cfg.namespace if cfg else default_namespace()
    foreign = False
    try:
        connect_ray(args.address, data_dir, start_if_missing=False)
        # Only ever the cluster of this data directory: another one's actors (and its Ray) stay up.
        foreign = _refuse_foreign(namespace, data_dir, "stopped nothing")
        if not foreign:
            stopped = stop_node_agents(namespace, remove_pods=True)
            if stopped:
                console.print(f"stopped the pods and {len(stopped)} node actor(s)")
            killed = teardown(namespace)
            release(namespace, data_dir)
            console.print(f"stopped {len(killed)} actor(s): {', '.join(sorted(killed)) or '-'}")
    except ConnectionError:
        console.print("no Ray cluster running")
    if not foreign and ray.is_initialized() and stop_local_ray_if_ours(data_dir):
        console.print("stopped the local Ray head raykube had started")
    if args.purge:
        shutil.rmtree(data_dir, ignore_errors=True)
        console.print(f"purged {data_dir}")
    return 1 if foreign else 0


def cmd_status(args: argparse.Namespace) -> int:
    from cluster.bootstrap import ClusterConfig, connect_ray, default_namespace
    from cluster.store.client import StoreClient, Unavailable

    data_dir = _data_dir(args)
    cfg = ClusterConfig.load(data_dir)
    namespace = cfg.namespace if cfg else default_namespace()
    try:
        connect_ray(args.address, data_dir, start_if_missing=False)
    except ConnectionError:
        console.print("raykube is not running (no Ray cluster); start it with `raykube up`")
        return 1
    if _refuse_foreign(namespace, data_dir, "its status is not this one's"):
        return 1

    async def collect() -> list[dict[str, Any]]:
        client = await StoreClient.connect(namespace)
        return await client.status()

    try:
        rows = asyncio.run(collect())
    except Unavailable:
        console.print("raykube is not running (no store replicas); start it with `raykube up`")
        return 1
    table = Table(title=f"raykube store ({namespace})")
    for col in ("replica", "node", "role", "leader", "term", "commit", "applied", "revision", "health"):
        table.add_column(col, justify="right" if col in ("term", "commit", "applied", "revision") else "left")
    for r in rows:
        node = f"{r.get('node_ip', '?')} ({str(r.get('node_id', ''))[:8]})" if "node_ip" in r else "?"
        table.add_row(
            f"store-{r['id']}",
            node,
            str(r.get("role", "?")),
            f"store-{r['leader']}" if r.get("leader") else "-",
            str(r.get("term", "")),
            str(r.get("commit", "")),
            str(r.get("applied", "")),
            str(r.get("revision", "")),
            str(r.get("health", "")),
        )
    console.print(table)
    from nodeagent.actor import runtime_limits

    for node, version, limits in runtime_limits(namespace):
        console.print(f"node {node}: runtime {version}, resource limits {limits}", soft_wrap=True)
    healthy = [r for r in rows if r.get("health") == "ok"]
    leaders = {r.get("leader") for r in healthy if r.get("leader")}
    return 0 if healthy and len(leaders) == 1 else 1


def cmd_store(args: argparse.Namespace) -> int:
    from cluster.bootstrap import ClusterConfig, connect_ray, default_namespace
    from cluster.store.client import StoreClient

    data_dir = _data_dir(args)
    cfg = ClusterConfig.load(data_dir)
    namespace = cfg.namespace if cfg else default_namespace()
    connect_ray(args.address, data_dir, start_if_missing=False)
    if _refuse_foreign(namespace, data_dir, "its store is not this one's"):
        return 1

    async def run() -> int:
        client = await StoreClient.connect(namespace)
        if args.op == "put":
            res = await client.put(args.key.encode(), args.value.encode())
            console.print(f"OK (revision {res.revision})")
        elif args.op == "get":
            if args.prefix:
                rr = await client.get_prefix(args.key.encode())
                for kv in rr.kvs:
                    print(f"{kv.key.decode(errors='replace')}\t{kv.value.decode(errors='replace')}")
            else:
                kv = await client.get(args.key.encode())
                if kv is None:
                    console.print(f"{args.key}: not found")
                    return 1
                print(kv.value.decode(errors="replace"))
        elif args.op == "del":
            res = await client.delete(args.key.encode())
            console.print(f"deleted {res.deleted}")
        return 0

    return asyncio.run(run())


def cmd_bench(args: argparse.Namespace, rest: list[str]) -> int:
    if args.suite == "store":
        from bench.store import main as bench_store

        return bench_store(rest)
    if args.suite == "api":
        from bench.api import main as bench_api

        return bench_api(rest)
    if args.suite == "scheduling":
        from bench.scheduling import main as bench_scheduling

        return bench_scheduling(rest)
    if args.suite == "startup":
        from bench.startup import main as bench_startup

        return bench_startup(rest)
    console.print(
        f"[red]error:[/] unknown bench suite {args.suite!r} (available: store, api, scheduling, startup)"
    )
    return 2


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="raykube", description="Kubernetes-style orchestration on Ray")
    sub = p.add_subparsers(dest="command", required=True)

    def common(sp: argparse.ArgumentParser) -> None:
        sp.add_argument(
            "--address", default=None, help="Ray address to join (default: local, started if needed)"
        )
        sp.add_argument(
            "--data-dir", default=None, help="state directory (default: $RAYKUBE_DATA_DIR or ~/.raykube)"
        )

    up = sub.add_parser("up", help="start or join Ray and deploy the control plane (idempotent)")
    common(up)
    up.add_argument("--replicas", type=int, default=None, help="store replicas: 1 (default), 3 or 5")
    up.add_argument("--timeout", type=float, default=120.0)
    up.add_argument("--port", type=int, default=6443, help="API server port (HTTPS; 0 picks a free one)")
    up.add_argument(
        "--ray-namespace",
        default=None,
        help="Ray namespace of the control plane (default: the one in DATA_DIR/cluster.json, else "
        "$RAYKUBE_NAMESPACE or raykube). A namespace holds one data directory's cluster: to run several "
        "raykube clusters on one Ray cluster, give each its own (and its own --port)",
    )
    up.add_argument(
        "--runtime",
        choices=["process", "containerd", "none"],
        default="process",
        help="CRI runtime of the node agents: process (default, no root needed), containerd (root), "
        "or none (control plane only)",
    )
    up.add_argument(
        "--manifests-dir", default=None, help="static pod manifests (default: DATA_DIR/manifests)"
    )
    down = sub.add_parser("down", help="stop the control plane (and the local Ray head raykube started)")
    common(down)
    down.add_argument("--purge", action="store_true", help="also delete the data directory")
    st = sub.add_parser("status", help="show the store replicas")
    common(st)
    store = sub.add_parser("store", help="read and write raw keys in the replicated store")
    common(store)
    store.add_argument("op", choices=["get", "put", "del"])
    store.add_argument("key")
    store.add_argument("value", nargs="?", default="")
    store.add_argument("--prefix", action="store_true")
    kc = sub.add_parser("kubeconfig", help="print the path of the admin kubeconfig")
    common(kc)
    bench = sub.add_parser("bench", help="run a benchmark suite (store)", add_help=False)
    bench.add_argument("suite")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if args.command == "bench":
        return cmd_bench(args, rest)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    handlers = {
        "up": cmd_up,
        "down": cmd_down,
        "status": cmd_status,
        "store": cmd_store,
        "kubeconfig": cmd_kubeconfig,
    }
    return handlers[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
