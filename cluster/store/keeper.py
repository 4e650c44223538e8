"""The store keeper: replaces a store replica that is lost for good, as an operator would.

A replica is lost when its Ray node is dead (Ray could not restart it elsewhere), when it has no
actor at all, or when it awaits replacement (Ray restarted it on a node without its disk, so the
empty-start rule made it refuse: ``cluster.store.membership``). Ray's own restarts are given time
first: only a replica lost for longer than ``grace`` is replaced, and never while the store has no
leader (no quorum: a membership change could not commit, and the replica may yet come back) or
while a membership change is pending (Raft takes one at a time).

A replacement is etcd's procedure for a member whose data is gone: remove the old id through the
leader, kill its actor for good, start ``store-<next unused id>`` with ``join=True`` on a live Ray
node that hosts no replica (control-plane nodes first), add it as a member and wait until it has
caught up (the leader sends it a snapshot). Replica ids are never reused.

``plan`` is the whole decision, pure and unit-tested (this module imports nothing of Ray);
``cluster.store.members.StoreKeeper`` is the loop the elected controller manager runs
(``async def run``), with the Ray calls.
A replica whose restarted actor found its old log (a shared or re-attached disk, or the single disk
of a ``ray.cluster_utils`` cluster) is not lost: it resumes as the same member, which is safe because
its promises are in that log.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

DEFAULT_GRACE = 30.0


@dataclass(frozen=True, slots=True)
class MemberView:
    """One ``store-<id>`` actor as the keeper and ``raykube store members`` see it."""

    id: int
    node_id: str  # the Ray node it runs on (from its status, else Ray's actor table); "" unknown
    state: str  # "ok", "failed: ...", "awaiting replacement: ...", "unreachable (...)"
    role: str = ""
    term: int = 0
    voters: tuple[int, ...] = ()
    applied: int = 0
    commit: int = 0
    pending_conf: bool = False
    node_ip: str = ""


@dataclass(frozen=True, slots=True)
class RayNode:
    node_id: str
    alive: bool
    name: str = ""
    ip: str = ""
    control_plane: bool = False


@dataclass(frozen=True, slots=True)
class Plan:
    """``replace`` ``member`` with a new replica on Ray node ``node``, or ``wait`` (``reason`` says why).
    ``lost_since``: when each currently lost voter was first seen lost (the next call's input)."""

    action: str  # "wait" | "replace"
    reason: str
    member: int = 0
    node: str = ""
    lost_since: dict[int, float] = field(default_factory=dict)


def quorum(n: int) -> int:
    return n // 2 + 1


def lost_voters(
    members: Sequence[MemberView], nodes: Sequence[RayNode], voters: Sequence[int]
) -> dict[int, str]:
    """Voter id -> why it is lost (see the module docstring). A replica that is merely unreachable
    on a live node, or failed (Ray restarts it and its log replays), is not lost."""
    alive = {n.node_id for n in nodes if n.alive}
    by_id = {m.id: m for m in members}
    lost: dict[int, str] = {}
    for vid in voters:
        m = by_id.get(vid)
        if m is None:
            lost[vid] = "no replica actor"
        elif m.state.startswith("awaiting replacement"):
            lost[vid] = "awaits replacement (empty data directory)"
        elif m.node_id and m.node_id not in alive:
            lost[vid] = f"its Ray node {m.node_id[:8]} is dead"
        elif not m.node_id and m.state.startswith("unreachable"):
            lost[vid] = "it runs on no Ray node"
    return lost


def pick_node(members: Sequence[MemberView], nodes: Sequence[RayNode], replacing: int) -> str | None:
    """A live Ray node hosting no replica (the one being replaced does not count), control-plane
    nodes first, then the node the replaced replica is on (where Ray put its placement-group bundle
    when it restarted it without its disk); None when there is none."""
    busy = {m.node_id for m in members if m.id != replacing and m.node_id}
    own = next((m.node_id for m in members if m.id == replacing), "")
    free = [n for n in nodes if n.alive and n.node_id not in busy]
    if not free:
        return None
    return min(free, key=lambda n: (not n.control_plane, n.node_id != own, n.node_id)).node_id


def plan(
    members: Sequence[MemberView],
    nodes: Sequence[RayNode],
    now: float,
    *,
    lost_since: Mapping[int, float] | None = None,
    grace: float = DEFAULT_GRACE,
) -> Plan:
    """What the keeper does now, given every replica's view (``members``: one per ``store-*`` actor)
    and Ray's nodes."""
    since = dict(lost_since or {})
    leaders = [m for m in members if m.role == "leader" and m.state == "ok"]
    if not leaders:
        return Plan(
            "wait", "the store has no leader (no quorum): nothing can change membership", lost_since=since
        )
    leader = max(leaders, key=lambda m: m.term)
    voters = list(leader.voters)
    lost = lost_voters(members, nodes, voters)
    since = {vid: since.get(vid, now) for vid in lost}
    if not lost:
        return Plan("wait", f"all {len(voters)} voters are healthy", lost_since=since)
    if leader.pending_conf:
        return Plan("wait", "a membership change is pending", lost_since=since)
    healthy = [v for v in voters if v not in lost]
    if len(healthy) < quorum(len(voters) - 1):
        return Plan("wait", f"only {len(healthy)} of {len(voters)} voters are healthy", lost_since=since)
    due = sorted(vid for vid, t in since.items() if now - t >= grace)
    if not due:
        waits = ", ".join(
            f"store-{v} ({lost[v]}, {grace - (now - since[v]):.0f}s left)" for v in sorted(lost)
        )
        return Plan("wait", f"within the grace period: {waits}", lost_since=since)
    victim = due[0]
    node = pick_node(members, nodes, victim)
    if node is None:
        return Plan(
            "wait",
            f"store-{victim} {lost[victim]}, but no live Ray node is free of replicas",
            lost_since=since,
        )
    return Plan("replace", f"store-{victim} {lost[victim]}", member=victim, node=node, lost_since=since)
