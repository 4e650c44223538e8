"""The store keeper's decision (``cluster.store.keeper.plan``) with fake replica views and Ray nodes."""

from __future__ import annotations

from pathlib import Path

from cluster.store.keeper import MemberView, RayNode, lost_voters, pick_node, plan
from cluster.store.membership import CLUSTER_MARKER, record_cluster, record_members, recorded_members

N = [RayNode("head", True), RayNode("w1", True), RayNode("w2", True), RayNode("w3", True)]


def view(rid: int, node: str, role: str = "follower", state: str = "ok", **kw: object) -> MemberView:
    return MemberView(rid, node, state, role=role, term=3, voters=(1, 2, 3), **kw)  # type: ignore[arg-type]


def healthy() -> list[MemberView]:
    return [view(1, "w1", "leader"), view(2, "w2"), view(3, "w3")]


def dead(node: str) -> list[RayNode]:
    return [RayNode(n.node_id, n.node_id != node) for n in N]


def test_all_healthy_waits() -> None:
    p = plan(healthy(), N, 100.0)
    assert p.action == "wait" and "healthy" in p.reason and p.lost_since == {}


def test_a_voter_on_a_dead_node_is_replaced_after_the_grace_on_the_free_node() -> None:
    members = [view(1, "w1", "leader"), view(2, "w2"), view(3, "w3", state="unreachable (GetTimeoutError)")]
    nodes = dead("w3")
    first = plan(members, nodes, 100.0, grace=30)
    assert first.action == "wait" and "grace" in first.reason and first.lost_since == {3: 100.0}
    still = plan(members, nodes, 129.0, lost_since=first.lost_since, grace=30)
    assert still.action == "wait" and still.lost_since == {3: 100.0}
    due = plan(members, nodes, 130.0, lost_since=still.lost_since, grace=30)
    assert (due.action, due.member, due.node) == ("replace", 3, "head"), due


def test_a_replica_awaiting_replacement_on_the_spare_node_is_replaced_there() -> None:
    """Ray restarted store-3 on the spare node without its disk: it refuses, and that node (which
    only it occupies) is where its replacement goes."""
    members = [view(1, "w1", "leader"), view(2, "w2"), view(3, "head", state="awaiting replacement: empty")]
    nodes = [*dead("w3"), RayNode("a-spare", True)]  # another free node sorts first, yet head wins
    p = plan(members, nodes, 0.0, lost_since={3: -31.0}, grace=30)
    assert (p.action, p.member, p.node) == ("replace", 3, "head"), p


def test_a_replica_that_came_back_with_its_log_is_not_lost() -> None:
    """A restart on a node that sees the same disk (cluster_utils; a re-attached volume) resumes."""
    members = [view(1, "w1", "leader"), view(2, "w2"), view(3, "head")]
    p = plan(members, dead("w3"), 50.0, lost_since={3: 0.0})
    assert p.action == "wait" and p.lost_since == {}


def test_no_leader_no_change() -> None:
    members = [view(1, "w1", state="unreachable"), view(2, "w2"), view(3, "w3", state="awaiting replacement")]
    p = plan(members, dead("w1"), 1000.0, lost_since={1: 0.0, 3: 0.0})
    assert p.action == "wait" and "no leader" in p.reason


def test_pending_conf_change_waits() -> None:
    members = [view(1, "w1", "leader", pending_conf=True), view(2, "w2"), view(3, "w3", state="unreachable")]
    p = plan(members, dead("w3"), 100.0, lost_since={3: 0.0})
    assert p.action == "wait" and "pending" in p.reason


def test_below_quorum_of_the_smaller_configuration_waits() -> None:
    """Five voters, three lost: removing one would leave 2 healthy of 4 (quorum 3)."""
    v5 = (1, 2, 3, 4, 5)
    nodes = [RayNode(f"n{i}", i <= 2) for i in range(1, 7)]
    members = [
        MemberView(
            i, f"n{i}", "ok" if i <= 2 else "unreachable", role="leader" if i == 1 else "follower", voters=v5
        )
        for i in v5
    ]
    p = plan(members, nodes, 100.0, lost_since=dict.fromkeys(v5[2:], 0.0))
    assert p.action == "wait" and "2 of 5" in p.reason


def test_no_free_node_waits() -> None:
    nodes = [RayNode("w1", True), RayNode("w2", True), RayNode("w3", False)]
    members = [view(1, "w1", "leader"), view(2, "w2"), view(3, "w3", state="unreachable")]
    p = plan(members, nodes, 100.0, lost_since={3: 0.0})
    assert p.action == "wait" and "no live Ray node" in p.reason


def test_control_plane_nodes_are_preferred_and_a_missing_actor_is_lost() -> None:
    nodes = [RayNode("a", True), RayNode("b", True, control_plane=True), *N[1:]]
    members = [view(1, "w1", "leader"), view(2, "w2")]  # store-3 has no actor at all
    assert lost_voters(members, nodes, (1, 2, 3)) == {3: "no replica actor"}
    p = plan(members, nodes, 100.0, lost_since={3: 0.0})
    assert (p.action, p.member, p.node) == ("replace", 3, "b"), p
    assert pick_node(members, [RayNode("w1", True)], replacing=3) is None


def test_the_marker_records_current_members_and_the_highest_id(tmp_path: Path) -> None:
    store = tmp_path / "store"
    record_members(store, [1, 2, 4], 4)
    assert not (store / CLUSTER_MARKER).exists(), "a directory without a cluster must not get a marker"
    record_cluster(store, [1, 2, 3])
    assert recorded_members(store) == ([1, 2, 3], 3)
    record_members(store, [1, 2, 4], 4)
    record_members(store, [1, 2], 5)
    assert recorded_members(store) == ([1, 2], 5)


def test_an_unreachable_replica_on_no_node_is_lost_but_one_on_a_live_node_is_not() -> None:
    members = [
        view(1, "w1", "leader"),
        view(2, "w2", state="unreachable (GetTimeoutError)"),
        view(3, "", state="unreachable"),
    ]
    assert lost_voters(members, N, (1, 2, 3)) == {3: "it runs on no Ray node"}
