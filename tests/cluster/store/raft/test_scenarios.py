"""Scripted Raft scenarios: each test reads as a short protocol story."""

from __future__ import annotations

import pytest

from cluster.store.raft import (
    ConfChangeType,
    Message,
    MessageType,
    ProgressState,
    ProposalDropped,
    StateRole,
)

from .harness import Network

LEADER, FOLLOWER = StateRole.LEADER, StateRole.FOLLOWER


def expire_lease(net: Network, *nids: int) -> None:
    """Let ``nids`` go one election timeout without hearing from the leader (check-quorum lease)."""
    for n in nids:
        net.tick(n, 10)


def three_node_cluster_led_by_1() -> Network:
    net = Network()
    net.add_nodes(3)
    net.campaign(1)
    net.stabilize()
    return net


def test_election() -> None:
    net = Network()
    net.add_nodes(3)
    assert [net.term(n) for n in (1, 2, 3)] == [1, 1, 1]  # bootstrap term

    net.campaign(1)
    # Pre-vote first: no term change until the pre-vote wins.
    assert net.role(1) is StateRole.PRE_CANDIDATE and net.term(1) == 1
    net.stabilize()

    assert [net.role(n) for n in (1, 2, 3)] == [LEADER, FOLLOWER, FOLLOWER]
    assert [net.term(n) for n in (1, 2, 3)] == [2, 2, 2]
    # The new leader's empty entry (index 2) is committed everywhere.
    assert [net.commit(n) for n in (1, 2, 3)] == [2, 2, 2]
    assert all(net.raw(n).status().leader_id == 1 for n in (1, 2, 3))


def test_election_by_timeout_uses_randomized_ticks() -> None:
    net = Network(seed=7)
    net.add_nodes(3)
    for _ in range(40):
        net.tick_all()
        net.stabilize()
        if net.leader() is not None:
            break
    assert net.leader() is not None
    assert sum(net.role(n) is LEADER for n in (1, 2, 3)) == 1


def test_replication_and_batching() -> None:
    net = three_node_cluster_led_by_1()
    net.propose(1, b"a")
    net.propose(1, b"b", b"c", b"d")
    apps = [m for m in net.inflight if m.type is MessageType.APP]
    assert {m.to for m in apps} == {2, 3}
    net.stabilize()
    assert net.datas() == {n: [b"a", b"b", b"c", b"d"] for n in (1, 2, 3)}
    assert [net.commit(n) for n in (1, 2, 3)] == [6, 6, 6]
    progress = net.raw(1).status().progress
    assert progress[2] == (6, 7, ProgressState.REPLICATE)


def test_follower_forwards_proposals() -> None:
    net = three_node_cluster_led_by_1()
    net.propose(3, b"via-follower")
    net.stabilize()
    assert net.datas() == {n: [b"via-follower"] for n in (1, 2, 3)}


def test_proposal_without_leader_is_dropped() -> None:
    net = Network()
    net.add_nodes(3)
    with pytest.raises(ProposalDropped):
        net.propose(2, b"x")


def test_pipelining_sends_ahead_without_waiting() -> None:
    net = three_node_cluster_led_by_1()
    for i in range(5):
        net.propose(1, b"p%d" % i)
    # Five APPs to each follower are in flight at once (replicate state, optimistic next).
    assert sum(m.type is MessageType.APP and m.to == 2 for m in net.inflight) == 5
    assert net.raw(1).status().progress[2][1] == 8
    net.stabilize()
    assert net.commit(2) == 7


def test_leader_change_overwrites_uncommitted_entries() -> None:
    net = three_node_cluster_led_by_1()
    net.isolate(1)
    net.propose(1, b"lost-1", b"lost-2")  # only reaches the old leader's log
    net.stabilize()
    assert net.raw(1).raft.log.last_index() == 4 and net.commit(1) == 2

    expire_lease(net, 3)  # otherwise 3 still trusts leader 1 and ignores 2's pre-vote
    net.campaign(2)
    net.stabilize()
    assert net.role(2) is LEADER and net.term(2) == 3
    net.propose(2, b"kept")
    net.stabilize()

    net.recover()
    net.tick(2)  # heartbeat: the old leader sees a higher term and steps down
    net.stabilize()
    assert net.role(1) is FOLLOWER and net.term(1) == 3
    assert net.log_terms(1) == net.log_terms(2) == [(2, 2), (3, 3), (4, 3)]
    assert net.datas() == {n: [b"kept"] for n in (1, 2, 3)}


def test_partitioned_node_rejoins_without_disrupting_the_leader() -> None:
    net = three_node_cluster_led_by_1()
    net.isolate(3)
    net.tick(3, 100)  # many election timeouts, but pre-votes never win
    net.stabilize()
    assert net.term(3) == 2 and net.role(3) is StateRole.PRE_CANDIDATE
    net.propose(1, b"while-away")
    net.stabilize()

    net.recover()
    for _ in range(30):
        net.tick_all()
        net.stabilize()
    assert net.role(1) is LEADER and [net.term(n) for n in (1, 2, 3)] == [2, 2, 2]
    assert net.datas()[3] == [b"while-away"]


def test_without_pre_vote_rejoining_node_bumps_the_term() -> None:
    net = Network(pre_vote=False)
    net.add_nodes(3)
    net.campaign(1)
    net.stabilize()
    net.isolate(3)
    net.tick(3, 50)
    assert net.term(3) > 2  # the contrast that motivates pre-vote


def test_check_quorum_leader_steps_down_when_isolated() -> None:
    net = three_node_cluster_led_by_1()
    net.isolate(1)
    net.tick(1, 10)
    assert net.role(1) is LEADER
    net.tick(1, 10)
    assert net.role(1) is FOLLOWER


def test_leader_lease_ignores_votes_from_a_node_with_a_longer_timeout() -> None:
    net = three_node_cluster_led_by_1()
    vote = Message(MessageType.VOTE, to=2, frm=3, term=5, index=100, log_term=5)
    net.raw(2).step(vote)
    assert net.term(2) == 2 and net.raw(2).status().vote == 1  # a fresh follower ignores it
    expire_lease(net, 2)
    net.raw(2).step(vote)
    assert net.term(2) == 5 and net.raw(2).status().vote == 3


def test_snapshot_catch_up_after_compaction() -> None:
    net = three_node_cluster_led_by_1()
    net.isolate(3)
    for i in range(10):
        net.propose(1, b"e%d" % i)
    net.stabilize()
    net.compact(1)
    assert net.raw(1).raft.log.first_index() == 13

    net.recover()
    net.tick(1)  # heartbeat -> 3 answers -> leader finds entries compacted -> SNAP
    kinds = []
    for _ in range(10):
        kinds += [m.type for m in net.inflight if m.to == 3]
        net.deliver()
    assert MessageType.SNAP in kinds
    net.raw(1).report_snapshot(3, ok=True)
    net.stabilize()
    assert net.datas()[3] == [b"e%d" % i for i in range(10)]
    net.propose(1, b"after")
    net.stabilize()
    assert net.datas()[3][-1] == b"after" and net.raw(1).status().progress[3][2] is ProgressState.REPLICATE


def test_add_a_fourth_node_that_catches_up_by_snapshot() -> None:
    net = three_node_cluster_led_by_1()
    net.propose(1, b"x", b"y")
    net.stabilize()
    net.compact(1)
    net.add_nodes(1)  # node 4: empty storage, waits to be contacted
    assert net.raw(4).status().voters == ()
    net.propose_conf_change(1, ConfChangeType.ADD_NODE, 4)
    net.stabilize()
    net.tick(1)
    net.stabilize()
    net.raw(1).report_snapshot(4, ok=True)
    net.tick(1)
    net.stabilize()
    assert net.raw(1).status().voters == (1, 2, 3, 4)
    assert net.raw(4).status().voters == (1, 2, 3, 4)
    assert net.datas()[4] == [b"x", b"y"]
    net.propose(1, b"z")
    net.stabilize()
    assert net.datas() == {n: [b"x", b"y", b"z"] for n in (1, 2, 3, 4)}


def test_only_one_conf_change_at_a_time() -> None:
    net = three_node_cluster_led_by_1()
    net.add_nodes(1)
    net.propose_conf_change(1, ConfChangeType.ADD_NODE, 4)
    with pytest.raises(ProposalDropped):
        net.propose_conf_change(1, ConfChangeType.REMOVE_NODE, 3)


def test_remove_a_follower_then_commit_with_the_smaller_quorum() -> None:
    net = three_node_cluster_led_by_1()
    net.propose_conf_change(1, ConfChangeType.REMOVE_NODE, 3)
    net.stabilize()
    assert net.raw(1).status().voters == (1, 2)
    net.crash(3)
    net.propose(1, b"two-of-two")
    net.stabilize()
    assert net.datas(1, 2) if False else net.datas([1, 2]) == {1: [b"two-of-two"], 2: [b"two-of-two"]}


def test_removed_leader_steps_down_and_the_rest_elect_a_new_one() -> None:
    net = three_node_cluster_led_by_1()
    net.propose_conf_change(1, ConfChangeType.REMOVE_NODE, 1)
    net.stabilize()
    assert net.role(1) is FOLLOWER and net.raw(2).status().voters == (2, 3)
    net.crash(1)
    for _ in range(40):
        net.tick_all()
        net.stabilize()
    leader = net.leader()
    assert leader in (2, 3)
    net.propose(leader, b"after-removal")
    net.stabilize()
    assert net.datas([2, 3]) == {2: [b"after-removal"], 3: [b"after-removal"]}


def test_replace_a_lost_replica() -> None:
    net = three_node_cluster_led_by_1()
    net.propose(1, b"before")
    net.stabilize()
    net.crash(3)  # disk lost for good
    net.propose_conf_change(1, ConfChangeType.REMOVE_NODE, 3)
    net.stabilize()
    net.add_nodes(1)
    net.propose_conf_change(1, ConfChangeType.ADD_NODE, 4)
    net.stabilize()
    net.tick(1)
    net.stabilize()
    assert net.raw(1).status().voters == (1, 2, 4)
    assert net.datas([1, 2, 4]) == {n: [b"before"] for n in (1, 2, 4)}


def test_read_index_on_leader_and_follower() -> None:
    net = three_node_cluster_led_by_1()
    net.propose(1, b"w")
    net.stabilize()
    net.read_index(1, b"r1")
    assert net.nodes[1].read_states == []  # needs a heartbeat round first
    net.stabilize()
    assert [(r.index, r.request_ctx) for r in net.nodes[1].read_states] == [(3, b"r1")]
    net.read_index(2, b"r2")
    net.stabilize()
    assert [(r.index, r.request_ctx) for r in net.nodes[2].read_states] == [(3, b"r2")]


def test_partitioned_old_leader_cannot_serve_reads_and_new_leader_waits_for_its_commit() -> None:
    net = three_node_cluster_led_by_1()
    net.isolate(1)
    net.read_index(1, b"stale")
    net.tick(1, 5)
    net.stabilize()
    assert net.nodes[1].read_states == []

    expire_lease(net, 3)
    net.campaign(2)
    # Hold back everything except the election so the new leader has not committed yet.
    for _ in range(4):  # PRE_VOTE, PRE_VOTE_RESP, VOTE, VOTE_RESP
        net.deliver()
    assert net.role(2) is LEADER and net.commit(2) == 2
    net.read_index(2, b"fresh")
    net.deliver([3])
    assert net.nodes[2].read_states == []
    net.stabilize()
    assert [(r.index, r.request_ctx) for r in net.nodes[2].read_states] == [(3, b"fresh")]
    assert net.nodes[1].read_states == []


def test_restart_resumes_from_persisted_state() -> None:
    net = three_node_cluster_led_by_1()
    net.propose(1, b"a", b"b")
    net.stabilize()
    before = net.raw(2).status()
    net.restart(2)  # applied resets to the snapshot index: committed entries are re-delivered
    after = net.raw(2).status()
    assert (after.term, after.vote, after.commit) == (before.term, before.vote, before.commit)
    assert after.applied == 4 and net.datas()[2] == [b"a", b"b"]
    net.propose(1, b"c")
    net.stabilize()
    assert net.datas()[2] == [b"a", b"b", b"c"]


def test_restart_after_compaction_and_vote_is_remembered() -> None:
    net = Network()
    net.add_nodes(3)
    net.campaign(1)
    net.deliver()  # pre-vote requests
    net.deliver()  # pre-vote responses -> real VOTE
    net.deliver([2])  # node 2 grants its vote to 1 in term 2
    assert net.raw(2).status().vote == 1
    net.restart(2)
    assert net.raw(2).status().vote == 1 and net.term(2) == 2
    net.stabilize()
    net.propose(1, b"k")
    net.stabilize()
    net.compact(2)
    net.restart(2)
    assert net.datas()[2] == [b"k"] and net.raw(2).status().applied == 3


def test_leadership_transfer() -> None:
    net = three_node_cluster_led_by_1()
    net.raw(1).transfer_leader(3)
    net.process(1)
    with pytest.raises(ProposalDropped):
        net.propose(1, b"during-transfer")
    net.stabilize()
    assert net.role(3) is LEADER and net.term(3) == 3 and net.role(1) is FOLLOWER
