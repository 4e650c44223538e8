"""Table-driven tests of the small pieces: storage, the log, quorum arithmetic and progress."""

from __future__ import annotations

import pytest

from cluster.store.raft import Compacted, ConfState, Entry, MemoryStorage, SnapOutOfDate, Unavailable
from cluster.store.raft.log import RaftLog
from cluster.store.raft.progress import Progress, ProgressState
from cluster.store.raft.quorum import VoteResult, committed_index, vote_result


def storage_with(terms: list[int]) -> MemoryStorage:
    s = MemoryStorage()
    s.append([Entry(term=t, index=i + 1, data=b"d%d" % (i + 1)) for i, t in enumerate(terms)])
    return s


def test_memory_storage_reads_writes_and_compacts() -> None:
    s = storage_with([1, 1, 2, 3, 3])
    assert (s.first_index(), s.last_index()) == (1, 5)
    assert [e.index for e in s.entries(2, 5)] == [2, 3, 4]
    assert [e.index for e in s.entries(1, 6, max_size=5)] == [1, 2]  # 3 bytes each
    assert [e.index for e in s.entries(1, 6, max_size=0)] == [1]  # always at least one
    s.append([Entry(term=4, index=4)])  # conflicting suffix is truncated
    assert s.last_index() == 4 and s.term(4) == 4
    s.create_snapshot(3, ConfState((1, 2)), b"sm")
    s.compact(3)
    assert (s.first_index(), s.term(3)) == (4, 2)
    with pytest.raises(Compacted):
        s.entries(3, 4)
    with pytest.raises(Compacted):
        s.term(2)
    with pytest.raises(Unavailable):
        s.term(9)
    with pytest.raises(SnapOutOfDate):
        s.create_snapshot(2, None, b"")
    assert s.initial_state()[1] == ConfState((1, 2))


@pytest.mark.parametrize(
    ("matches", "expected"),
    [
        pytest.param({1: 5}, 5, id="single"),
        pytest.param({1: 5, 2: 3, 3: 1}, 3, id="three"),
        pytest.param({1: 5, 2: 3, 3: 1, 4: 0}, 1, id="four-needs-three"),
        pytest.param({1: 9, 2: 9, 3: 2, 4: 2, 5: 1}, 2, id="five"),
    ],
)
def test_committed_index(matches: dict[int, int], expected: int) -> None:
    assert committed_index(matches, matches.__getitem__) == expected


@pytest.mark.parametrize(
    ("voters", "votes", "expected"),
    [
        pytest.param((1, 2, 3), {1: True}, VoteResult.PENDING, id="pending"),
        pytest.param((1, 2, 3), {1: True, 2: True}, VoteResult.WON, id="won"),
        pytest.param((1, 2, 3), {1: True, 2: False, 3: False}, VoteResult.LOST, id="lost"),
        pytest.param((1, 2, 3, 4), {1: True, 2: True, 3: False}, VoteResult.PENDING, id="even"),
        pytest.param((1,), {1: True}, VoteResult.WON, id="alone"),
    ],
)
def test_vote_result(voters: tuple[int, ...], votes: dict[int, bool], expected: VoteResult) -> None:
    assert vote_result(voters, votes) is expected


def test_raft_log_find_conflict_by_term_skips_whole_terms() -> None:
    log = RaftLog(storage_with([1, 1, 2, 2, 2, 5, 5]), 1 << 20)
    assert log.find_conflict_by_term(7, 4) == (5, 2)
    assert log.find_conflict_by_term(7, 5) == (7, 5)
    assert log.find_conflict_by_term(3, 1) == (2, 1)
    assert log.find_conflict_by_term(2, 0) == (0, 0)


def test_raft_log_spans_storage_and_unstable() -> None:
    log = RaftLog(storage_with([1, 1, 2]), 1 << 20)
    log.append([Entry(term=3, index=4), Entry(term=3, index=5)])
    assert [e.index for e in log.slice(2, 6, None)] == [2, 3, 4, 5]
    assert log.maybe_append(3, 2, 5, [Entry(term=3, index=4), Entry(term=4, index=5)]) == 5
    assert log.term(5) == 4 and log.committed == 5
    assert log.is_up_to_date(5, 4) and not log.is_up_to_date(9, 3)


def test_progress_probe_replicate_and_inflight_window() -> None:
    pr = Progress(next_index=11, max_inflight=2)
    assert pr.state is ProgressState.PROBE
    pr.sent_entries(3)
    assert pr.is_paused() and pr.next == 11  # one probe at a time, next does not move
    assert not pr.maybe_decr_to(rejected=9, match_hint=0)  # stale reject
    assert pr.maybe_decr_to(rejected=10, match_hint=6) and pr.next == 7
    assert pr.maybe_update(8)
    pr.become_replicate()
    pr.sent_entries(2)
    pr.sent_entries(2)
    assert pr.next == 13 and pr.is_paused()  # window of 2 messages is full
    pr.inflights.free_le(10)
    pr.msg_app_flow_paused = pr.inflights.full()
    assert not pr.is_paused()
    assert pr.maybe_decr_to(rejected=12, match_hint=0) and pr.next == 9
