"""The ``raykube`` command line: up, down, status, store, bench. It parses and prints; the steps live in
``cluster.bootstrap`` (``up``) and the benchmark suites in ``bench/`` (``BENCH_SUITES``)."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ray
from rich.console import Console
from rich.table import Table

from cluster.bootstrap import (
    ApiServerUp,
    ControllersUp,
    DnsUp,
    IngressUp,
    NodeAgentsUp,
    RayJoined,
    SchedulerUp,
    StoreUp,
    connect_ray,
    default_data_dir,
    stop_local_ray_if_ours,
    teardown,
    up,
)
from cluster.kubeconfigs import kubeconfig_for_server, kubeconfig_for_user
from cluster.naming import default_namespace
from cluster.node_agents import DELETE_DELAY_ENV, stop_node_agents
from cluster.ownership import NamespaceTaken, check, purge, release
from cluster.status import ClusterStatus
from cluster.status import collect as collect_status
from cluster.store.api import StoreAPI
from cluster.store.client import StoreClient, Unavailable
from cluster.store.clients import connect_store
from cluster.store.members import MembershipRefused
from cluster.store_cli import store_env, store_membership
from cluster.up_config import ClusterConfig, UpConfig, UpRefused
from netplugins.actor import network_plugins
from nodeagent.actor import runtime_limits
from nodeagent.csi.actor import volume_plugins

# Tables must stay readable when piped (no terminal: rich would assume 80 columns and truncate); text
# lines are never hard-wrapped, so a path or a command in a message can be copied whole.
console = Console(soft_wrap=True) if sys.stdout.isatty() else Console(width=160, soft_wrap=True)


def _data_dir(args: argparse.Namespace) -> Path:
    return Path(args.data_dir).expanduser() if args.data_dir else default_data_dir()


def _refuse_foreign(namespace: str, data_dir: Path, doing: str) -> bool:
    """Print why and return True when ``namespace`` runs the cluster of another data directory."""
    try:
        check(namespace, data_dir)
    except NamespaceTaken as e:
        _print_foreign(e, data_dir, doing)
        return True
    return False


def _print_foreign(e: NamespaceTaken, data_dir: Path, doing: str) -> None:
    console.print(
        f"[red]error:[/] the Ray namespace {e.namespace!r} runs the raykube cluster of "
        f"{e.owner.describe()}, not the one of {data_dir}; {doing}. Use `--data-dir {e.owner.data_dir}` "
        f"for that cluster, or start this one beside it in a namespace of its own: "
        f"`raykube up --data-dir {data_dir} --ray-namespace NAME --port 0`.",
        soft_wrap=True,
    )


def cmd_up(args: argparse.Namespace) -> int:
    if args.node_delete_delay is not None:  # the controller manager gets it with the node agents' config
        os.environ[DELETE_DELAY_ENV] = str(args.node_delete_delay)
    config = UpConfig(
        data_dir=_data_dir(args),
        address=args.address,
        replicas=args.replicas,
        namespace=args.ray_namespace,
        port=args.port,
        store_port=args.store_port,
        runtime=args.runtime,
        manifests_dir=Path(args.manifests_dir).expanduser() if args.manifests_dir else None,
        timeout=args.timeout,
        controllers=tuple(args.controllers.split(",")) if args.controllers else None,
        cluster_cidr=args.cluster_cidr,
        service_cidr=args.service_cidr,
        lb_pool=args.lb_pool,
        network=args.network,
        network_backend=args.network_backend,
        volume_plugin=args.volume_plugin,
        autoscale=args.autoscale,
        scale_down_unneeded=args.scale_down_unneeded_time,
        tls_sans=tuple(args.tls_san) if args.tls_san else None,
        authorization_mode=args.authorization_mode,
        anonymous_auth=args.anonymous_auth,
        token_auth_file=Path(args.token_auth_file) if args.token_auth_file else None,
        encryption_provider_config=(
            Path(args.encryption_provider_config) if args.encryption_provider_config else None
        ),
        audit_policy_file=Path(args.audit_policy_file) if args.audit_policy_file else None,
        audit_log_path=args.audit_log_path,
    )
    kubeconfig: Path | None = None
    try:
        for step in up(config):
            match step:
                case RayJoined(started, data_dir):
                    joined = "started a local Ray head" if started else "joined the running Ray cluster"
                    console.print(f"{joined} ({data_dir})")
                case StoreUp(already_running, placement):
                    console.print(f"store {'already running' if already_running else 'started'}: {placement}")
                case ApiServerUp(port, kubeconfig, ready_after):
                    console.print(f"API server: https://127.0.0.1:{port} (ready after {ready_after:.1f}s)")
                    console.print(f"kubeconfig: {kubeconfig}")
                case SchedulerUp(profiles):
                    console.print(f"scheduler: running (profiles: {', '.join(profiles)})")
                case ControllersUp(controllers):
                    console.print(f"controller manager: running ({', '.join(controllers)})")
                case IngressUp(_, _, missing) if missing:
                    console.print(f"ingress: not started: {missing}", soft_wrap=True)
                case IngressUp(http, https):
                    console.print(
                        f"ingress: nginx on {http} (http), {https} (https), kube-system/raykube-ingress"
                    )
                case DnsUp(cluster_ip, address):
                    console.print(f"cluster DNS: {cluster_ip} (kube-system/kube-dns), served on {address}")
                case NodeAgentsUp(agents, manifests_dir):
                    for agent in agents:
                        console.print(
                            f"node {agent.node}: agent on port {agent.port}, runtime {agent.runtime}"
                        )
                    console.print(f"static pods: {manifests_dir}")
    except UpRefused as e:
        console.print(f"[red]error:[/] {e}")
        return 2
    except NamespaceTaken as e:
        _print_foreign(e, config.data_dir, "nothing was started or written")
        return 2
    console.print(f"  export KUBECONFIG={kubeconfig}; kubectl get nodes")
    return 0


def cmd_kubeconfig(args: argparse.Namespace) -> int:
    data_dir = _data_dir(args)
    path = data_dir / "kubeconfig"
    if not path.exists():
        console.print("no kubeconfig yet: run `raykube up` first")
        return 1
    if args.user is not None:
        out = Path(args.out).expanduser() if args.out else None
        return kubeconfig_for_user(
            data_dir, args.user, args.group or [], args.days, args.server, out, say=console.print
        )
    if args.server is None:
        print(path)
        return 0
    out = Path(args.out).expanduser() if args.out else None
    return kubeconfig_for_server(data_dir, args.server, out, say=console.print)


def cmd_down(args: argparse.Namespace) -> int:
    data_dir = _data_dir(args)
    cfg = ClusterConfig.load(data_dir)
    namespace = cfg.namespace if cfg else default_namespace()
    foreign = False
    try:
        connect_ray(args.address, data_dir, start_if_missing=False)
        # Only ever the cluster of this data directory: another one's actors (and its Ray) stay up.
        foreign = _refuse_foreign(namespace, data_dir, "stopped nothing")
        if not foreign:
            stopped = stop_node_agents(namespace, remove_pods=True, purge=args.purge)
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
        if (problem := purge(data_dir)) is not None:
            console.print(f"[red]error:[/] {problem}")
        console.print(f"purged {data_dir}")
    return 1 if foreign else 0


def cmd_status(args: argparse.Namespace) -> int:
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
    columns = ("replica", "node", "client URL", "role", "leader", "term", "commit", "applied", "revision")
    for col in (*columns, "health"):
        table.add_column(col, justify="right" if col in ("term", "commit", "applied", "revision") else "left")
    for r in rows:
        node = f"{r.get('node_ip', '?')} ({str(r.get('node_id', ''))[:8]})" if "node_ip" in r else "?"
        table.add_row(
            f"store-{r['id']}",
            node,
            str(r.get("client_url") or "-"),
            str(r.get("role", "?")),
            f"store-{r['leader']}" if r.get("leader") else "-",
            str(r.get("term", "")),
            str(r.get("commit", "")),
            str(r.get("applied", "")),
            str(r.get("revision", "")),
            str(r.get("health", "")),
        )
    console.print(table)
    for node, version, limits in runtime_limits(namespace):
        console.print(f"node {node}: runtime {version}, resource limits {limits}", soft_wrap=True)
    for node, plugin, readiness in network_plugins(namespace):
        console.print(f"node {node}: network plugin {plugin}, {readiness}", soft_wrap=True)
    for node, driver, readiness in volume_plugins(namespace):
        console.print(f"node {node}: volume plugin {driver}, {readiness}", soft_wrap=True)
    _print_cluster(asyncio.run(collect_status(namespace, data_dir / "kubeconfig")), namespace)
    healthy = [r for r in rows if r.get("health") == "ok"]
    leaders = {r.get("leader") for r in healthy if r.get("leader")}
    return 0 if healthy and len(leaders) == 1 else 1


def _print_cluster(st: ClusterStatus, namespace: str) -> None:
    """Ray's nodes beside their Node objects, the control-plane instances and their Leases, and the
    autoscaler's standing request (``raykube status``, after the store table)."""
    nodes = Table(title=f"Ray nodes and Kubernetes Nodes ({namespace})")
    for col in ("node", "ray node id", "ip", "ray", "Ready", "schedulable", "ray node type"):
        nodes.add_column(col)
    for n in st.nodes:
        nodes.add_row(
            n.name, n.ray_node_id[:12] or "-", n.ip or "-", n.ray_state, n.node_ready,
            "yes" if n.schedulable else "no (cordoned)", n.node_type or "-",
        )  # fmt: skip
    console.print(nodes)
    instances = Table(title="control-plane instances (Ray actors)")
    for col in ("component", "actor", "node", "holds the lease"):
        instances.add_column(col)
    for i in st.instances:
        instances.add_row(i.component, i.actor, i.node, i.leader)
    console.print(instances)
    if st.autoscaler_request:
        wanted = "; ".join(json.dumps(b, sort_keys=True) for b in st.autoscaler_request)
        count = len(st.autoscaler_request)
        console.print(f"autoscaler: {count} bundle(s) requested from Ray: {wanted}", soft_wrap=True)
    else:
        console.print("autoscaler: no request in flight")
    for err in st.errors:
        console.print(f"[yellow]note:[/] {err}", soft_wrap=True)


def cmd_store(args: argparse.Namespace) -> int:
    data_dir = _data_dir(args)
    cfg = ClusterConfig.load(data_dir)
    namespace = cfg.namespace if cfg else default_namespace()
    connect_ray(args.address, data_dir, start_if_missing=False)
    if _refuse_foreign(namespace, data_dir, "its store is not this one's"):
        return 1
    if args.op == "env":
        return store_env(namespace, data_dir)

    async def run() -> int:
        if args.op in ("members", "member"):  # membership changes work on the replica actors (Ray)
            try:
                members = await StoreClient.connect(namespace)
                return await store_membership(args, members, namespace, data_dir, console)
            except MembershipRefused as e:
                console.print(f"[red]refused:[/] {e}")
                return 1
        client = await connect_store(namespace, data_dir=data_dir)  # etcd's API, as the API server
        try:
            return await _store_keys(args, client)
        finally:
            await client.close()

    return asyncio.run(run())


async def _store_keys(args: argparse.Namespace, client: StoreAPI) -> int:
    """``store put KEY VALUE``, ``store get [--prefix] KEY``, ``store del KEY``."""
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
        deleted = await client.delete(args.key.encode())
        console.print(f"deleted {deleted.deleted}")
    return 0


# `raykube bench SUITE` -> the module whose ``main(argv)`` runs it. Imported only when asked for: the
# project never imports bench/ otherwise, and a suite pulls in its own dependencies (etcd's client).
BENCH_SUITES = {
    "store": "bench.store",
    "api": "bench.api",
    "scheduling": "bench.scheduling",
    "startup": "bench.startup",
    "controllers": "bench.controllers",
    "network": "bench.network",
    "join": "bench.join",
}


def cmd_bench(args: argparse.Namespace, rest: list[str]) -> int:
    module = BENCH_SUITES.get(args.suite)
    if module is None:
        console.print(
            f"[red]error:[/] unknown bench suite {args.suite!r} (available: {', '.join(BENCH_SUITES)})"
        )
        return 2
    run: Callable[[list[str]], int] = importlib.import_module(module).main
    return run(rest)


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
        "--store-port",
        type=int,
        default=None,
        help="first client port of the store replicas (etcd's v3 API; each takes the next free pair of "
        "client and peer ports from there; 0: free ones). Default: the one in DATA_DIR/cluster.json, "
        "else 0 with --port 0, else 2379 (etcd's). Replicas keep the ports they were given",
    )
    up.add_argument(
        "--ray-namespace",
        default=None,
        help="Ray namespace of the control plane (default: the one in DATA_DIR/cluster.json, else "
        "$RAYKUBE_NAMESPACE or raykube). A namespace holds one data directory's cluster: to run several "
        "raykube clusters on one Ray cluster, give each its own (and its own --port)",
    )
    up.add_argument(
        "--runtime",
        default="process",
        help="CRI runtime of the node agents: process (default, no root needed), containerd (root), "
        "none (control plane only), or pkg.module:Class (a class taking the runtime directory, with "
        "async start() returning its CRI socket and async stop())",
    )
    up.add_argument(
        "--network",
        default=None,
        help="pod network plugin: bridge (root; an IP per pod from the node's podCIDR), host (pods share "
        "the node's network), or pkg.module:Class (a netplugins.cni.plugin.NetworkPlugin). Default: the "
        "one in DATA_DIR/cluster.json, else bridge as root with /usr/lib/cni/bridge, else host",
    )
    up.add_argument(
        "--volume-plugin",
        default=None,
        metavar="NAME",
        help="CSI volume plugin of every node: hostpath (node-local volumes; raykube up also creates its "
        "CSIDriver and the default StorageClass standard), pkg.module:Class (a nodeagent.csi.plugin."
        "CSIPlugin), or socket:/path/to/csi.sock (a CSI driver already serving there on every node). "
        "Default: the one in DATA_DIR/cluster.json, else hostpath",
    )
    up.add_argument(
        "--authorization-mode",
        default=None,
        metavar="MODES",
        help="comma-separated authorizers asked in order: Node, RBAC, AlwaysAllow, AlwaysDeny "
        "(default: the ones in DATA_DIR/cluster.json, else Node,RBAC)",
    )
    up.add_argument(
        "--anonymous-auth",
        default=None,
        type=lambda v: v.lower() in ("true", "1", "yes"),
        metavar="true|false",
        help="let requests without credentials in as system:anonymous, for what RBAC grants it "
        "(/healthz, /livez, /readyz, /version); false answers them 401 (default: true)",
    )
    up.add_argument(
        "--token-auth-file",
        default=None,
        metavar="FILE",
        help='static bearer tokens, one per line: token,user,uid[,"group1,group2"] '
        "(copied into DATA_DIR/pki)",
    )
    up.add_argument(
        "--encryption-provider-config",
        default=None,
        metavar="FILE",
        help="an EncryptionConfiguration (apiserver.config.k8s.io/v1) for data at rest (copied into "
        "DATA_DIR/pki; default: one made on first up, encrypting Secrets with aesgcm)",
    )
    up.add_argument(
        "--audit-policy-file", default=None, metavar="FILE", help="an audit Policy (audit.k8s.io/v1)"
    )
    up.add_argument(
        "--audit-log-path",
        default=None,
        metavar="PATH",
        help="where each API server writes audit events, one JSON per line ('-': its log)",
    )
    up.add_argument(
        "--node-delete-delay",
        type=float,
        default=None,
        metavar="SECONDS",
        help="how long the Node of a Ray node that died stays before it is deleted "
        "(default: $RAYKUBE_NODE_DELETE_DELAY, else 300)",
    )
    up.add_argument(
        "--network-backend",
        default=None,
        choices=["host-gw", "vxlan"],
        help="how pod traffic crosses nodes: host-gw (routes, nodes on one L2 segment) or vxlan "
        "(default: the one in DATA_DIR/cluster.json, else host-gw)",
    )
    up.add_argument(
        "--manifests-dir", default=None, help="static pod manifests (default: DATA_DIR/manifests)"
    )
    up.add_argument(
        "--controllers",
        default=None,
        help="controllers to run, as kube-controller-manager's flag: '*' (all, the default), 'name' turns "
        "one on, '-name' off, comma separated, e.g. '*,-cronjob' (default: $RAYKUBE_CONTROLLERS or '*')",
    )
    up.add_argument(
        "--autoscale",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="ask Ray's autoscaler for nodes for pods that fit nowhere and release idle nodes (default: "
        "$RAYKUBE_AUTOSCALE, else on when Ray runs an autoscaler: ray up, KubeRay, --autoscaling-config)",
    )
    up.add_argument(
        "--scale-down-unneeded-time",
        type=float,
        default=None,
        metavar="SECONDS",
        help="how long a node runs no pods (but DaemonSet, static and control-plane ones) before it is "
        "cordoned, drained and handed back to Ray (default: $RAYKUBE_SCALE_DOWN_UNNEEDED, else 600)",
    )
    up.add_argument(
        "--cluster-cidr",
        default=None,
        help="pod network, carved into one /24 (IPv6: /64) per node's spec.podCIDR; one CIDR or an "
        "IPv4,IPv6 pair (default: the one in DATA_DIR/cluster.json, else 10.244.0.0/16)",
    )
    up.add_argument(
        "--service-cidr",
        default=None,
        help="ClusterIPs come from it; the kubernetes Service takes its first address, cluster DNS its "
        "tenth (default: the one in DATA_DIR/cluster.json, else 10.96.0.0/12, or 127.96.0.0/16 with "
        "--network host, where the userspace proxy listens on ClusterIPs as local loopback addresses)",
    )
    up.add_argument(
        "--lb-pool",
        default=None,
        help="addresses for Services of type LoadBalancer: CIDRs and first-last ranges, comma separated "
        "(default: the one in DATA_DIR/cluster.json, else 172.29.0.0/24)",
    )
    up.add_argument(
        "--tls-san",
        action="append",
        default=None,
        metavar="NAME_OR_IP",
        help="another name or address for the API server certificate (repeatable), e.g. the head's "
        "public IP or a DNS name in front of it; recorded in DATA_DIR/cluster.json, so a later `up` "
        "keeps them until given --tls-san again (every control-plane node's IP and host name are "
        "always in it)",
    )
    down = sub.add_parser("down", help="stop the control plane (and the local Ray head raykube started)")
    common(down)
    down.add_argument("--purge", action="store_true", help="also delete the data directory")
    st = sub.add_parser("status", help="show the store replicas")
    common(st)
    store = sub.add_parser(
        "store",
        help="read and write raw keys in the replicated store; list its members (members), add or "
        "remove one (member add [--node NODE] | member remove ID); env: export lines for etcdctl "
        '(eval "$(raykube store env)")',
    )
    common(store)
    store.add_argument("op", choices=["get", "put", "del", "members", "member", "env"])
    store.add_argument("key", nargs="?", default="")
    store.add_argument("value", nargs="?", default="")
    store.add_argument("--prefix", action="store_true")
    store.add_argument(
        "--node", default=None, help="member add: the Ray node (id or name) for the new replica"
    )
    kc = sub.add_parser(
        "kubeconfig",
        help="print the path of the admin kubeconfig; with --server, an admin kubeconfig for that URL",
    )
    common(kc)
    kc.add_argument(
        "--server",
        default=None,
        help="the API server's URL as another machine reaches it, e.g. https://PUBLIC_IP:6443 (the "
        "certificate must name that host: raykube up --tls-san); prints the kubeconfig, or writes --out",
    )
    kc.add_argument(
        "--out", default=None, help="with --server or --user: write the kubeconfig here (mode 0600)"
    )
    kc.add_argument(
        "--user",
        default=None,
        help="a kubeconfig for this user instead of the admin: a client certificate from the cluster CA "
        "(CN = the user); prints the kubeconfig, or writes --out",
    )
    kc.add_argument("--group", action="append", help="with --user: a group of the user (O); repeatable")
    kc.add_argument("--days", type=int, default=365, help="with --user: how long the certificate is valid")
    bench = sub.add_parser("bench", help="run a benchmark suite (store)", add_help=False)
    bench.add_argument("suite")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if args.command == "bench":
        return cmd_bench(args, rest)
    if args.command == "store" and rest and not args.key:
        # `store get --prefix KEY`: argparse fills the optional KEY (optional for `store members`)
        # with nothing at the flag, leaving the key over; it is the key (and the value after it).
        args.key, args.value, rest = rest[0], rest[1] if len(rest) > 1 else args.value, rest[2:]
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
