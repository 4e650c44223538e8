"""Store membership on Ray: what each replica reports, and adding, removing and replacing members.

Shared by the store keeper's loop (``StoreKeeper``: ``cluster.store.keeper`` decides, this acts) and
the operator commands (``raykube store members``, ``raykube store member add|remove``). Each change
is one Raft membership change through the leader, in etcd's order: a new member's actor starts first
with ``join=True`` (it waits, empty, until the leader contacts it), then the leader adds its id and
sends it a snapshot; a removed member's id leaves the configuration first, then its actor is killed
for good.

Replica ids are never reused (a removed id could still have messages in flight, and its old
directory may still hold a log): the highest id ever used is kept in the store under
``MEMBERS_KEY`` (reserved before the new actor starts) and in the cluster marker
(``cluster.json``, which ``raykube up`` reads to recreate the current members and not removed ones).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from cluster.naming import node_names
from cluster.store.actor import REPLICA_PREFIX, StoreReplicaActor, replica_name
from cluster.store.client import StoreClient
from cluster.store.keeper import DEFAULT_GRACE, MemberView, Plan, RayNode, pick_node, plan
from cluster.store.membership import record_members, recorded_members
from cluster.store.replica import ReplicaOptions

log = logging.getLogger("raykube.store.keeper")

MEMBERS_KEY = b"/raykube/store/members"
CONTROL_PLANE_LABEL = ("raykube.io/role", "control-plane")  # a Ray node label (or resource name)


class MembershipRefused(Exception):
    """The change would be unsafe or is impossible now; the message says what to do instead."""


def ray_nodes() -> list[RayNode]:
    """Ray's nodes (blocking). A node is control-plane when it carries the label or resource
    ``raykube.io/role: control-plane`` (set on the control-plane node type of a cluster config)."""
    entries = ray.nodes()  # type: ignore[no-untyped-call]
    names = node_names(entries)
    key, value = CONTROL_PLANE_LABEL
    out = []
    for n in entries:
        labels = n.get("Labels") or {}
        cp = labels.get(key) == value or f"{key}/{value}" in (n.get("Resources") or {})
        out.append(
            RayNode(
                node_id=n["NodeID"],
                alive=bool(n.get("Alive")),
                name=names.get(n["NodeID"], ""),
                ip=str(n.get("NodeManagerAddress") or ""),
                control_plane=cp,
            )
        )
    return out


def _actor_node(handle: Any) -> str:
    """Where a replica that does not answer runs, from Ray's actor table: only while Ray says it is
    ALIVE (a restarting actor's entry names no node it actually runs on); "" otherwise."""
    try:
        info = ray._private.state.actors(handle._ray_actor_id.hex())
    except Exception:
        return ""
    if info.get("State") != "ALIVE":
        return ""
    return str((info.get("Address") or {}).get("NodeID") or "")


async def observe(client: StoreClient, namespace: str) -> list[MemberView]:
    """Every ``store-*`` actor's view (``client.status`` refreshes the handles first)."""
    statuses = await client.status()
    views = []
    for st in statuses:
        node = str(st.get("node_id") or "")
        if not node and (handle := client._handles.get(st["id"])) is not None:
            node = await asyncio.to_thread(_actor_node, handle)
        views.append(
            MemberView(
                id=int(st["id"]),
                node_id=node,
                state=str(st.get("health") or st.get("state") or "?"),
                role=str(st.get("role", "")),
                term=int(st.get("term", 0)),
                voters=tuple(st.get("voters", ())),
                applied=int(st.get("applied", 0)),
                commit=int(st.get("commit", 0)),
                pending_conf=bool(st.get("pending_conf", False)),
                node_ip=str(st.get("node_ip", "")),
            )
        )
    return views


def current_leader(views: list[MemberView]) -> MemberView:
    leaders = [v for v in views if v.role == "leader" and v.state == "ok"]
    if not leaders:
        raise MembershipRefused(
            "the store has no leader (no quorum of replicas answers): membership cannot change now; "
            "bring a lost replica's node back or wait for an election, then retry"
        )
    return max(leaders, key=lambda v: v.term)


async def _max_id(client: StoreClient, data_dir: Path | None, views: list[MemberView]) -> int:
    ids = [v.id for v in views] + [i for v in views for i in v.voters]
    kv = await client.get(MEMBERS_KEY)
    if kv is not None:
        ids.append(int(json.loads(kv.value).get("max_id", 0)))
    if data_dir is not None and (rec := recorded_members(data_dir / "store")) is not None:
        ids.append(rec[1])
    return max(ids, default=0)


async def _record(client: StoreClient, data_dir: Path | None, voters: list[int], max_id: int) -> None:
    await client.put(MEMBERS_KEY, json.dumps({"voters": sorted(voters), "max_id": max_id}).encode())
    if data_dir is not None:
        await asyncio.to_thread(record_members, data_dir / "store", voters, max_id)


async def _network_of(namespace: str, member: int) -> Any:
    """How a new replica listens: as ``member`` does (its TLS), on free ports of its own node, which
    it records and keeps (``cluster.store.network``); None when ``member`` talks through Ray only."""
    handle = await asyncio.to_thread(ray.get_actor, replica_name(member), namespace=namespace)
    return await asyncio.wait_for(handle.network_template.remote(), 10)


def _resolve_node(node: str | None, views: list[MemberView]) -> str:
    """A Ray node id (or name, or id prefix) to put a new replica on; default: a free live node."""
    nodes = ray_nodes()
    if node is None:
        picked = pick_node(views, nodes, replacing=0)
        if picked is None:
            raise MembershipRefused(
                "every live Ray node already hosts a replica; add a Ray node, or name one with --node"
            )
        return picked
    for n in nodes:
        if n.alive and (node in (n.node_id, n.name) or (len(node) >= 6 and n.node_id.startswith(node))):
            return n.node_id
    raise MembershipRefused(f"no live Ray node {node!r}; `ray status` or `raykube store members` lists them")


async def add_member(
    client: StoreClient,
    namespace: str,
    data_dir: Path,
    node: str | None = None,
    *,
    options: ReplicaOptions | None = None,
    catch_up_timeout: float = 120.0,
) -> int:
    """Start ``store-<next id>`` on ``node`` (id or name; default a live node without a replica),
    add it as a voter and wait until it has caught up. Returns the new id."""
    views = await observe(client, namespace)
    leader = current_leader(views)
    if leader.pending_conf:
        raise MembershipRefused("a membership change is still pending on the leader; retry in a few seconds")
    node_id = await asyncio.to_thread(_resolve_node, node, views)
    new_id = await _max_id(client, data_dir, views) + 1
    voters = list(leader.voters)
    await _record(client, None, voters, new_id)  # reserve the id before anything uses it
    network = await _network_of(namespace, leader.id)
    handle = StoreReplicaActor.options(  # type: ignore[attr-defined]
        name=replica_name(new_id),
        namespace=namespace,
        lifetime="detached",
        scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False),
    ).remote(
        new_id,
        [*voters, new_id],
        str(data_dir / "store" / f"replica-{new_id}"),
        namespace,
        options,
        join=True,
        network=network,
    )
    try:
        await asyncio.wait_for(handle.ready.remote(), 120)
        result = await client._call_leader("add_member", new_id)
    except BaseException:
        # Not added (or not known to be): no idle replica may hold a node. Were the change applied
        # after all, the keeper sees a voter without an actor and replaces it.
        ray.kill(handle, no_restart=True)
        raise
    voters = sorted(result)
    await _record(client, data_dir, voters, new_id)
    # Caught up: the newcomer applied what the leader had committed when it was added.
    target = max(v.commit for v in await observe(client, namespace) if v.role == "leader")
    deadline = time.monotonic() + catch_up_timeout
    while True:
        st = await asyncio.wait_for(handle.status.remote(), 5)
        if st.get("applied", 0) >= target:
            return new_id
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"store-{new_id} was added but has not caught up ({st.get('applied')} < {target})"
            )
        await asyncio.sleep(0.2)


async def remove_member(client: StoreClient, namespace: str, data_dir: Path | None, member: int) -> list[int]:
    """Remove ``member`` through the leader and kill its actor for good. Refused for an unknown id,
    the last member, or when the members left healthy would be fewer than their quorum."""
    views = await observe(client, namespace)
    leader = current_leader(views)
    voters = list(leader.voters)
    if member not in voters:
        raise MembershipRefused(
            f"store-{member} is not a member (voters: {', '.join(f'store-{v}' for v in voters)})"
        )
    if len(voters) == 1:
        raise MembershipRefused(f"store-{member} is the last member: the store would have no replica left")
    if leader.pending_conf:
        raise MembershipRefused("a membership change is still pending on the leader; retry in a few seconds")
    healthy = {v.id for v in views if v.state == "ok"}
    left = [v for v in voters if v != member]
    if len([v for v in left if v in healthy]) < len(left) // 2 + 1:
        raise MembershipRefused(
            f"removing store-{member} would leave {len([v for v in left if v in healthy])} healthy of "
            f"{len(left)} voters, fewer than their quorum: add a member first or bring one back"
        )
    result = await client._call_leader("remove_member", member)
    kv = await client.get(MEMBERS_KEY)
    max_id = max([member, *voters, int(json.loads(kv.value)["max_id"]) if kv else 0])
    await _record(client, data_dir, list(result), max_id)
    with contextlib.suppress(ValueError):
        ray.kill(ray.get_actor(replica_name(member), namespace=namespace), no_restart=True)
    return sorted(result)


async def replace_member(
    client: StoreClient,
    namespace: str,
    data_dir: Path,
    member: int,
    node: str,
    *,
    options: ReplicaOptions | None = None,
) -> int:
    """The keeper's replacement: remove ``member`` (lost), then add a new one on ``node``."""
    await remove_member(client, namespace, data_dir, member)
    return await add_member(client, namespace, data_dir, node, options=options)


def replica_ids(names: list[str]) -> list[int]:
    """``store-<id>`` actor names -> ids (others ignored)."""
    ids = []
    for name in names:
        with contextlib.suppress(ValueError):
            ids.append(int(name.removeprefix(REPLICA_PREFIX)))
    return sorted(ids)


class StoreKeeper:
    """The loop: observe, plan, act; one replacement at a time. Run by the elected controller manager
    (``asyncio.create_task(keeper.run())``, cancelled when leadership is lost)."""

    def __init__(
        self,
        namespace: str,
        data_dir: str | Path,
        *,
        grace: float = DEFAULT_GRACE,
        period: float = 5.0,
        options: ReplicaOptions | None = None,
    ) -> None:
        self.namespace = namespace
        self.data_dir = Path(data_dir)
        self.grace = grace
        self.period = period
        self.options = options
        self.lost_since: dict[int, float] = {}
        self.last_reason = ""
        self.last_node: dict[int, str] = {}
        self.pass_timeout = 300.0  # one pass, a replacement's catch-up included

    async def step(self) -> Plan:
        loop = asyncio.get_running_loop()
        client = await StoreClient.connect(self.namespace, deadline=10.0, request_timeout=3.0)
        try:
            members = [self._remember(m) for m in await observe(client, self.namespace)]
            nodes = await asyncio.to_thread(ray_nodes)
            p = plan(members, nodes, loop.time(), lost_since=self.lost_since, grace=self.grace)
            self.lost_since = p.lost_since
            if p.reason != self.last_reason:
                seen = ", ".join(
                    f"store-{m.id} {m.role or '-'} {m.state[:24]} on {m.node_id[:8] or '?'}" for m in members
                )
                log.info("store keeper: %s [%s]", p.reason, seen)
                self.last_reason = p.reason
            if p.action == "replace":
                new_id = await replace_member(
                    client, self.namespace, self.data_dir, p.member, p.node, options=self.options
                )
                log.warning(
                    "store keeper: replaced store-%d (%s) by store-%d on node %s",
                    p.member,
                    p.reason,
                    new_id,
                    p.node[:8],
                )
                self.lost_since.pop(p.member, None)
            return p
        finally:
            await client.close()

    def _remember(self, m: MemberView) -> MemberView:
        """A replica that stops answering keeps the node it was last seen on (Ray's actor table may
        no longer name one while it waits to be restarted)."""
        if m.node_id:
            self.last_node[m.id] = m.node_id
            return m
        return replace(m, node_id=self.last_node.get(m.id, ""))

    async def run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self.step(), self.pass_timeout)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("store keeper: a pass failed; retrying in %.0fs", self.period)
            await asyncio.sleep(self.period)
