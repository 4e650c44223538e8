"""``raykube store`` beyond raw keys: the members (``members``, ``member add|remove``) and ``env``,
the shell lines that point etcdctl at the store (``cluster.store.endpoints``)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from cluster.store.client import StoreClient
from cluster.store.endpoints import env_text, store_endpoints
from cluster.store.members import add_member, observe, ray_nodes, remove_member


def store_env(namespace: str, data_dir: Path) -> int:
    """``raykube store env``: ``export`` lines for etcdctl (stdout, for ``eval``); 1 when no replica
    is known to listen."""
    endpoints = store_endpoints(namespace=namespace, data_dir=data_dir)
    if not endpoints:
        print(
            f"no store replica serves etcd's API in namespace {namespace!r} ({data_dir}); start it with "
            "`raykube up`",
            file=sys.stderr,
        )
        return 1
    sys.stdout.write(env_text(endpoints, data_dir / "pki"))
    return 0


async def store_membership(
    args: argparse.Namespace, client: StoreClient, namespace: str, data_dir: Path, console: Console
) -> int:
    """``store members`` (a table), ``store member add [--node N]``, ``store member remove ID``."""
    if args.op == "member" and args.key == "add":
        new_id = await add_member(client, namespace, data_dir, args.node)
        console.print(f"store-{new_id} added and caught up")
        return 0
    if args.op == "member" and args.key == "remove":
        try:
            member = int(args.value.removeprefix("store-"))
        except ValueError:
            console.print(
                "usage: raykube store member remove ID (a number, as `raykube store members` shows)"
            )
            return 2
        voters = await remove_member(client, namespace, data_dir, member)
        console.print(f"store-{member} removed; voters now {', '.join(f'store-{v}' for v in voters)}")
        return 0
    if args.op == "member":
        console.print("usage: raykube store member add [--node NODE] | raykube store member remove ID")
        return 2
    views = await observe(client, namespace)
    nodes = {n.node_id: n for n in await asyncio.to_thread(ray_nodes)}
    voters = next((v.voters for v in views if v.role == "leader" and v.state == "ok"), ())
    table = Table(title=f"store members ({namespace})")
    for col in ("id", "ray node", "node", "role", "voter", "applied", "status"):
        table.add_column(col, justify="right" if col in ("id", "applied") else "left")
    for v in views:
        node = nodes.get(v.node_id)
        where = f"{node.name} ({node.ip})" + ("" if node.alive else " DEAD") if node else "?"
        table.add_row(
            str(v.id),
            v.node_id[:12] or "?",
            where,
            v.role or "-",
            "yes" if v.id in voters else "no",
            str(v.applied),
            v.state,
        )
    console.print(table)
    return 0 if voters and all(v.state == "ok" for v in views if v.id in voters) else 1
