"""Client sessions: a retried request is applied once; its outcome (result or error) is
remembered until the client acknowledges it, and the table is bounded by apply order."""

from __future__ import annotations

import pytest

from cluster.store.mvcc import (
    DeleteRangeOp,
    InvalidRequest,
    LeaseNotFound,
    MVCCStore,
    Op,
    PutOp,
    PutResult,
    RangeOp,
    Request,
    StoreError,
)


def req(client: bytes, seq: int, first_incomplete: int, op: Op) -> Request:
    return Request(client, seq, first_incomplete, op)


def test_retry_returns_remembered_result_without_reapplying() -> None:
    s = MVCCStore()
    first = s.apply(req(b"c", 1, 1, PutOp(b"k", b"v")))
    assert first == PutResult(2)
    assert s.apply(req(b"c", 1, 1, PutOp(b"k", b"v"))) == first
    assert s.revision == 2
    assert s.range(RangeOp(b"k")).kvs[0].version == 1


def test_retry_of_failed_request_raises_same_error_and_stays_failed() -> None:
    s = MVCCStore()
    with pytest.raises(LeaseNotFound):
        s.apply(req(b"c", 1, 1, PutOp(b"k", b"v", lease=5)))
    with pytest.raises(LeaseNotFound) as raised:
        s.apply(req(b"c", 1, 1, PutOp(b"k", b"v", lease=5)))
    assert raised.value == LeaseNotFound(5)
    assert s.revision == 1


def test_no_client_id_means_no_dedup() -> None:
    s = MVCCStore()
    s.apply(req(b"", 1, 1, PutOp(b"k", b"v")))
    s.apply(req(b"", 1, 1, PutOp(b"k", b"v")))
    assert s.revision == 3


def test_concurrent_seqs_out_of_order() -> None:
    s = MVCCStore()
    r3 = s.apply(req(b"c", 3, 1, PutOp(b"a", b"3")))
    r1 = s.apply(req(b"c", 1, 1, PutOp(b"b", b"1")))
    r2 = s.apply(req(b"c", 2, 1, DeleteRangeOp(b"a")))
    assert s.revision == 4
    assert [s.apply(req(b"c", q, 1, PutOp(b"z", b""))) for q in (1, 2, 3)] == [r1, r2, r3]
    assert s.revision == 4


@pytest.mark.parametrize(
    ("seq", "first_incomplete", "message"),
    [
        pytest.param(2, 1, "stale request", id="delayed-copy-of-acknowledged-seq"),
        pytest.param(0, 0, "invalid session numbering", id="seq-zero"),
        pytest.param(5, 6, "invalid session numbering", id="first-incomplete-above-seq"),
    ],
)
def test_stale_and_malformed_requests_are_refused(seq: int, first_incomplete: int, message: str) -> None:
    s = MVCCStore()
    for q in (1, 2, 3):
        s.apply(req(b"c", q, 1, PutOp(b"k", b"%d" % q)))
    s.apply(req(b"c", 4, 4, PutOp(b"j", b"")))  # acknowledges 1..3: their results are forgotten
    before = s.revision
    with pytest.raises(InvalidRequest, match=message):
        s.apply(req(b"c", seq, first_incomplete, PutOp(b"k", b"again")))
    assert s.revision == before


def test_clients_evicted_least_recently_used_first() -> None:
    s = MVCCStore(max_clients=2)
    s.apply(req(b"a", 1, 1, PutOp(b"k", b"a")))  # 2
    s.apply(req(b"b", 1, 1, PutOp(b"k", b"b")))  # 3
    s.apply(req(b"a", 1, 1, PutOp(b"k", b"a")))  # duplicate: touches a
    s.apply(req(b"c", 1, 1, PutOp(b"k", b"c")))  # 4, evicts b
    assert s.apply(req(b"a", 1, 1, PutOp(b"k", b"a"))) == PutResult(2)
    assert s.apply(req(b"b", 1, 1, PutOp(b"k", b"b"))) == PutResult(5)  # forgotten: applied again
    assert len(s._sessions) == 2


def test_results_per_client_bounded() -> None:
    s = MVCCStore(max_results=3)
    for q in range(1, 6):
        s.apply(req(b"c", q, 1, PutOp(b"k%d" % q, b"")))
    assert s.apply(req(b"c", 5, 1, PutOp(b"x", b""))) == PutResult(6)
    with pytest.raises(InvalidRequest, match="stale"):
        s.apply(req(b"c", 2, 1, PutOp(b"x", b"")))  # dropped to stay in bound: refused, not re-applied
    assert s.revision == 6


def test_sessions_survive_snapshot() -> None:
    s = MVCCStore(max_clients=5)
    s.apply(req(b"c", 1, 1, PutOp(b"k", b"v")))
    with pytest.raises(StoreError):
        s.apply(req(b"c", 2, 1, PutOp(b"k", b"v", lease=9)))
    r = MVCCStore.restore(s.snapshot())
    assert r.hash() == s.hash()
    assert r.apply(req(b"c", 1, 1, PutOp(b"k", b"v"))) == PutResult(2)
    with pytest.raises(LeaseNotFound):
        r.apply(req(b"c", 2, 1, PutOp(b"k", b"v", lease=9)))
    assert r.revision == 2 and r._sessions.max_clients == 5
