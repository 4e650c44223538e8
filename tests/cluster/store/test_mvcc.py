"""Table tests of the MVCC store: one table per operation and its edges."""

from __future__ import annotations

import pickle

import pytest

from cluster.store.mvcc import (
    MAX_REQUEST_BYTES,
    MAX_TXN_OPS,
    Compacted,
    CompactOp,
    CompactResult,
    Compare,
    CompareResult,
    CompareTarget,
    DeleteRangeOp,
    DeleteRangeResult,
    Event,
    EventType,
    FutureRevision,
    InvalidRequest,
    KeyValue,
    LeaseExists,
    LeaseGrantOp,
    LeaseGrantResult,
    LeaseNotFound,
    LeaseRevokeOp,
    LeaseRevokeResult,
    MVCCStore,
    Op,
    PutOp,
    PutResult,
    RangeOp,
    RangeResult,
    Request,
    RequestTooLarge,
    Result,
    StoreError,
    TxnOp,
    TxnResult,
    decode_request,
    encode_request,
    prefix_end,
)

T, R = CompareTarget, CompareResult


def do(store: MVCCStore, op: Op) -> Result:
    return store.apply(Request(b"", 0, 0, op))


def kv(key: bytes, value: bytes, create: int, mod: int, version: int, lease: int = 0) -> KeyValue:
    return KeyValue(key, value, create, mod, version, lease)


def sample() -> MVCCStore:
    """a..e put at revisions 2..6, b overwritten at 7, d deleted at 8."""
    s = MVCCStore()
    for k in (b"a", b"b", b"c", b"d", b"e"):
        do(s, PutOp(k, k.upper()))
    do(s, PutOp(b"b", b"B2"))
    do(s, DeleteRangeOp(b"d"))
    return s


A, B1, B2, C, D, E = (
    kv(b"a", b"A", 2, 2, 1),
    kv(b"b", b"B", 3, 3, 1),
    kv(b"b", b"B2", 3, 7, 2),
    kv(b"c", b"C", 4, 4, 1),
    kv(b"d", b"D", 5, 5, 1),
    kv(b"e", b"E", 6, 6, 1),
)


@pytest.mark.parametrize(
    ("prefix", "end"),
    [
        pytest.param(b"a", b"b", id="simple"),
        pytest.param(b"ab", b"ac", id="two-bytes"),
        pytest.param(b"a\xff", b"b", id="trailing-ff-dropped"),
        pytest.param(b"a\xff\xff", b"b", id="several-ff"),
        pytest.param(b"\xff", b"\0", id="all-ff-unbounded"),
        pytest.param(b"", b"\0", id="empty-unbounded"),
    ],
)
def test_prefix_end(prefix: bytes, end: bytes) -> None:
    assert prefix_end(prefix) == end


@pytest.mark.parametrize(
    ("op", "kvs", "count", "more"),
    [
        pytest.param(RangeOp(b"a"), (A,), 1, False, id="single-key"),
        pytest.param(RangeOp(b"d"), (), 0, False, id="deleted-key"),
        pytest.param(RangeOp(b"zz"), (), 0, False, id="missing-key"),
        pytest.param(RangeOp(b"b", b"e"), (B2, C), 2, False, id="half-open-range"),
        pytest.param(RangeOp(b"b", b"\0"), (B2, C, E), 3, False, id="from-key"),
        pytest.param(RangeOp(b"\0", b"\0"), (A, B2, C, E), 4, False, id="all-keys"),
        pytest.param(RangeOp(b"b", prefix_end(b"b")), (B2,), 1, False, id="prefix"),
        pytest.param(RangeOp(b"c", b"a"), (), 0, False, id="end-before-key"),
        pytest.param(RangeOp(b"\0", b"\0", limit=2), (A, B2), 4, True, id="limit-more"),
        pytest.param(RangeOp(b"\0", b"\0", limit=4), (A, B2, C, E), 4, False, id="limit-exact"),
        pytest.param(RangeOp(b"\0", b"\0", count_only=True), (), 4, False, id="count-only"),
        pytest.param(
            RangeOp(b"a", b"c", keys_only=True),
            (kv(b"a", b"", 2, 2, 1), kv(b"b", b"", 3, 7, 2)),
            2,
            False,
            id="keys-only",
        ),
        pytest.param(RangeOp(b"\0", b"\0", revision=6), (A, B1, C, D, E), 5, False, id="past-all"),
        pytest.param(RangeOp(b"b", revision=6), (B1,), 1, False, id="past-single-old-value"),
        pytest.param(RangeOp(b"d", revision=7), (D,), 1, False, id="past-before-delete"),
        pytest.param(RangeOp(b"d", revision=8), (), 0, False, id="past-at-delete"),
        pytest.param(RangeOp(b"\0", b"\0", revision=3), (A, B1), 2, False, id="past-early"),
        pytest.param(RangeOp(b"\0", b"\0", revision=1), (), 0, False, id="revision-1-empty"),
        pytest.param(RangeOp(b"\0", b"\0", revision=6, limit=2), (A, B1), 5, True, id="past-limit"),
        pytest.param(RangeOp(b"\0", b"\0", revision=6, count_only=True), (), 5, False, id="past-count"),
        pytest.param(RangeOp(b"\0", b"\0", revision=8), (A, B2, C, E), 4, False, id="revision-current"),
    ],
)
def test_range(op: RangeOp, kvs: tuple[KeyValue, ...], count: int, more: bool) -> None:
    s = sample()
    assert s.range(op) == RangeResult(kvs, count, more, 8)


@pytest.mark.parametrize(
    ("op", "compact", "error"),
    [
        pytest.param(RangeOp(b"a", revision=9), 0, FutureRevision(8), id="future"),
        pytest.param(RangeOp(b"a", revision=4), 5, Compacted(5), id="below-compact"),
        pytest.param(RangeOp(b""), 0, InvalidRequest("key is not provided"), id="empty-key"),
        pytest.param(
            RangeOp(b"a", limit=-1),
            0,
            InvalidRequest("range limit and revision must be integers >= 0"),
            id="limit",
        ),
    ],
)
def test_range_errors(op: RangeOp, compact: int, error: StoreError) -> None:
    s = sample()
    if compact:
        do(s, CompactOp(compact))
    with pytest.raises(StoreError) as raised:
        s.range(op)
    assert raised.value == error


def test_range_at_compact_revision_is_whole() -> None:
    s = sample()
    before = s.range(RangeOp(b"\0", b"\0", revision=6))
    do(s, CompactOp(6))
    assert s.range(RangeOp(b"\0", b"\0", revision=6)) == before
    assert s.range(RangeOp(b"b", revision=7)).kvs == (B2,)


def test_put_versions_and_recreation() -> None:
    s = MVCCStore()
    assert s.revision == 1
    assert do(s, PutOp(b"k", b"1")) == PutResult(2)
    assert do(s, PutOp(b"k", b"2", prev_kv=True)) == PutResult(3, kv(b"k", b"1", 2, 2, 1))
    do(s, DeleteRangeOp(b"k"))
    assert do(s, PutOp(b"k", b"3", prev_kv=True)) == PutResult(5, None)
    assert s.range(RangeOp(b"k")).kvs == (kv(b"k", b"3", 5, 5, 1),)
    assert s.range(RangeOp(b"k", revision=3)).kvs == (kv(b"k", b"2", 2, 3, 2),)


@pytest.mark.parametrize(
    ("op", "result", "revision"),
    [
        pytest.param(DeleteRangeOp(b"a"), DeleteRangeResult(9, 1), 9, id="single"),
        pytest.param(DeleteRangeOp(b"d"), DeleteRangeResult(8, 0), 8, id="already-deleted-no-bump"),
        pytest.param(DeleteRangeOp(b"x", b"\0"), DeleteRangeResult(8, 0), 8, id="empty-range-no-bump"),
        pytest.param(
            DeleteRangeOp(b"a", b"c", prev_kv=True), DeleteRangeResult(9, 2, (A, B2)), 9, id="range-prev-kv"
        ),
        pytest.param(DeleteRangeOp(b"\0", b"\0"), DeleteRangeResult(9, 4), 9, id="everything"),
    ],
)
def test_delete_range(op: DeleteRangeOp, result: DeleteRangeResult, revision: int) -> None:
    s = sample()
    assert do(s, op) == result
    assert s.revision == revision
    if result.deleted:
        deletions = s.events(b"\0", b"\0", revision)
        assert [e.type for e in deletions] == [EventType.DELETE] * result.deleted
        assert all(e.kv.mod_revision == revision and e.kv.version == 0 for e in deletions)


@pytest.mark.parametrize(
    ("key", "target", "result", "value", "holds"),
    [
        pytest.param(b"b", T.VERSION, R.EQUAL, 2, True, id="version-eq"),
        pytest.param(b"b", T.VERSION, R.GREATER, 1, True, id="version-gt"),
        pytest.param(b"b", T.VERSION, R.LESS, 2, False, id="version-lt-false"),
        pytest.param(b"b", T.CREATE, R.EQUAL, 3, True, id="create-eq"),
        pytest.param(b"b", T.MOD, R.EQUAL, 7, True, id="mod-eq"),
        pytest.param(b"b", T.MOD, R.NOT_EQUAL, 7, False, id="mod-ne-false"),
        pytest.param(b"b", T.MOD, R.LESS, 8, True, id="mod-lt"),
        pytest.param(b"b", T.VALUE, R.EQUAL, b"B2", True, id="value-eq"),
        pytest.param(b"b", T.VALUE, R.GREATER, b"B1", True, id="value-gt-bytes"),
        pytest.param(b"b", T.VALUE, R.LESS, b"B1", False, id="value-lt-false"),
        pytest.param(b"b", T.LEASE, R.EQUAL, 0, True, id="lease-eq"),
        pytest.param(b"zz", T.VERSION, R.EQUAL, 0, True, id="missing-version-0"),
        pytest.param(b"zz", T.MOD, R.EQUAL, 0, True, id="missing-mod-0"),
        pytest.param(b"zz", T.CREATE, R.EQUAL, 0, True, id="missing-create-0"),
        pytest.param(b"d", T.CREATE, R.EQUAL, 0, True, id="deleted-create-0"),
        pytest.param(b"zz", T.LEASE, R.EQUAL, 0, True, id="missing-lease-0"),
        pytest.param(b"zz", T.VALUE, R.NOT_EQUAL, b"x", False, id="missing-value-never-holds"),
        pytest.param(b"zz", T.VALUE, R.EQUAL, b"", False, id="missing-value-empty"),
    ],
)
def test_txn_compare(
    key: bytes, target: CompareTarget, result: CompareResult, value: int | bytes, holds: bool
) -> None:
    s = sample()
    out = do(s, TxnOp((Compare(key, target, result, value),), (PutOp(b"t", b"yes"),), (PutOp(b"t", b"no"),)))
    assert isinstance(out, TxnResult)
    assert out.succeeded is holds
    assert s.range(RangeOp(b"t")).kvs[0].value == (b"yes" if holds else b"no")


def test_txn_is_one_revision_in_execution_order() -> None:
    s = sample()
    out = do(
        s,
        TxnOp(
            (Compare(b"a", T.MOD, R.EQUAL, 2),),
            (
                RangeOp(b"a"),
                PutOp(b"z", b"Z"),
                DeleteRangeOp(b"a", b"c"),
                RangeOp(b"\0", b"\0", keys_only=True),
                RangeOp(b"\0", b"\0", revision=8, count_only=True),
                TxnOp((Compare(b"z", T.VERSION, R.EQUAL, 0),), (PutOp(b"y", b"Y"),), (PutOp(b"x", b"X"),)),
            ),
        ),
    )
    assert s.revision == 9
    assert out == TxnResult(
        9,
        True,
        (
            RangeResult((A,), 1, False, 8),
            PutResult(9),
            DeleteRangeResult(9, 2),
            RangeResult(
                (kv(b"c", b"", 4, 4, 1), kv(b"e", b"", 6, 6, 1), kv(b"z", b"", 9, 9, 1)), 3, False, 9
            ),
            RangeResult((), 4, False, 9),
            # nested compares see the state before the txn: z was missing
            TxnResult(9, True, (PutResult(9),)),
        ),
    )
    events = s.events(b"\0", b"\0", 9)
    assert [(e.type, e.kv.key) for e in events] == [
        (EventType.PUT, b"z"),
        (EventType.DELETE, b"a"),
        (EventType.DELETE, b"b"),
        (EventType.PUT, b"y"),
    ]


def test_read_only_and_empty_txn_keep_revision() -> None:
    s = sample()
    assert do(s, TxnOp((), (RangeOp(b"a"),))) == TxnResult(8, True, (RangeResult((A,), 1, False, 8),))
    assert do(s, TxnOp()) == TxnResult(8, True, ())
    assert s.revision == 8


@pytest.mark.parametrize(
    ("ops", "ok"),
    [
        pytest.param((PutOp(b"k", b"1"), PutOp(b"k", b"2")), False, id="put-twice"),
        pytest.param((PutOp(b"k", b"1"), DeleteRangeOp(b"k")), False, id="put-then-delete"),
        pytest.param((DeleteRangeOp(b"a", b"z"), PutOp(b"k", b"1")), False, id="put-in-deleted-range"),
        pytest.param((DeleteRangeOp(b"a", b"\0"), PutOp(b"k", b"1")), False, id="put-in-from-key-delete"),
        pytest.param((DeleteRangeOp(b"a", b"k"), PutOp(b"k", b"1")), True, id="put-at-delete-end-ok"),
        pytest.param((DeleteRangeOp(b"a", b"z"), DeleteRangeOp(b"k")), True, id="overlapping-deletes-ok"),
        pytest.param(
            (TxnOp((), (PutOp(b"k", b"1"),), (PutOp(b"k", b"2"),)),), True, id="nested-then-else-same-key-ok"
        ),
        pytest.param((PutOp(b"k", b"1"), TxnOp((), (PutOp(b"k", b"2"),))), False, id="nested-and-outer-put"),
        pytest.param(
            (DeleteRangeOp(b"k"), TxnOp((), (), (PutOp(b"k", b"2"),))), False, id="outer-del-nested-put"
        ),
        pytest.param(
            (TxnOp((), (DeleteRangeOp(b"k"),)), PutOp(b"k", b"2")), False, id="nested-del-outer-put"
        ),
        pytest.param(
            (TxnOp((), (PutOp(b"k", b"1"),)), TxnOp((), (PutOp(b"k", b"2"),))), False, id="two-nested-puts"
        ),
    ],
)
def test_txn_duplicate_keys(ops: tuple[Op, ...], ok: bool) -> None:
    s = sample()
    before = s.hash()
    txn = TxnOp((Compare(b"zz", T.VERSION, R.GREATER, 0),), (), ops)  # ops sit on the failure branch
    if ok:
        do(s, txn)
        assert s.revision == 9
    else:
        with pytest.raises(InvalidRequest, match="duplicate key given in txn request"):
            do(s, txn)
        assert s.hash() == before


def test_txn_duplicate_check_covers_the_branch_not_taken() -> None:
    s = sample()
    txn = TxnOp((), (PutOp(b"k", b"1"),), (PutOp(b"j", b"1"), PutOp(b"j", b"2")))
    with pytest.raises(InvalidRequest, match="duplicate key"):
        do(s, txn)


# Requests that must fail and change nothing: (setup, op, error).
BAD = [
    pytest.param(PutOp(b"", b"v"), InvalidRequest("key is not provided"), id="put-empty-key"),
    pytest.param(PutOp(b"k", "v"), InvalidRequest("value must be bytes"), id="put-str-value"),  # type: ignore[arg-type]
    pytest.param(PutOp(b"k", b"v", lease=99), LeaseNotFound(99), id="put-unknown-lease"),
    pytest.param(DeleteRangeOp(b""), InvalidRequest("key is not provided"), id="delete-empty-key"),
    pytest.param(RangeOp(b"a"), None, id="top-level-range"),
    pytest.param(CompactOp(11), FutureRevision(10), id="compact-future"),
    pytest.param(CompactOp(0), Compacted(0), id="compact-zero"),
    pytest.param(LeaseRevokeOp(5), LeaseNotFound(5), id="revoke-unknown"),
    pytest.param(LeaseGrantOp(1, 10), LeaseExists(1), id="grant-existing"),
    pytest.param(LeaseGrantOp(0, 0), None, id="grant-zero-ttl"),
    pytest.param(
        TxnOp((), (PutOp(b"k", b"v"), PutOp(b"x", b"v", lease=42))), LeaseNotFound(42), id="txn-lease"
    ),
    pytest.param(
        TxnOp((), (PutOp(b"k", b"v"), RangeOp(b"a", revision=11))), FutureRevision(10), id="txn-future"
    ),
    pytest.param(TxnOp((), (PutOp(b"k", b"v"), CompactOp(3))), None, id="txn-compact-op"),
    pytest.param(TxnOp((), (PutOp(b"k", b"v"), DeleteRangeOp(b""))), None, id="txn-empty-key"),
    pytest.param(
        TxnOp((), (PutOp(b"k", b"v"), TxnOp((), (PutOp(b"x", b"v", lease=7),)))),
        LeaseNotFound(7),
        id="nested-lease",
    ),
    pytest.param(TxnOp((Compare(b"a", T.MOD, R.EQUAL, b"2"),), ()), None, id="compare-wrong-type"),
    pytest.param(TxnOp((Compare(b"a", T.VALUE, R.EQUAL, 2),), ()), None, id="value-compare-int"),
    pytest.param(
        TxnOp((), tuple(PutOp(b"k%d" % i, b"") for i in range(MAX_TXN_OPS + 1))), None, id="too-many-ops"
    ),
]


@pytest.mark.parametrize(("op", "error"), BAD)
def test_bad_requests_change_nothing(op: Op, error: StoreError | None) -> None:
    s = sample()
    do(s, LeaseGrantOp(1, 10))
    do(s, PutOp(b"a", b"A", lease=1))  # 9
    do(s, PutOp(b"f", b"F", lease=1))  # 10
    s2 = MVCCStore.restore(s.snapshot())
    before, revision, nevents = s.hash(), s.revision, len(s.events(b"\0", b"\0", 1))
    assert revision == 10
    with pytest.raises(StoreError) as raised:
        do(s, op)
    if error is not None:
        assert raised.value == error
    else:
        assert isinstance(raised.value, InvalidRequest)
    assert (s.hash(), s.revision, len(s.events(b"\0", b"\0", 1))) == (before, revision, nevents)
    assert s.leases() == s2.leases() == {1: 10}
    assert s.lease_keys(1) == (b"a", b"f")


def test_compaction() -> None:
    s = sample()  # b: 3, 7; d: 5, deleted 8
    for i in range(10):
        do(s, PutOp(b"hot", b"%d" % i))  # revisions 9..18
    assert do(s, CompactOp(17)) == CompactResult(18)
    assert s.compact_revision == 17
    # the latest version at the compact revision survives, tombstones and older versions do not
    assert s.range(RangeOp(b"\0", b"\0", revision=17)).kvs == (
        A,
        B2,
        C,
        E,
        kv(b"hot", b"8", 9, 17, 9),
    )
    assert sum(len(h) for h in s._history.values()) == 6
    assert b"d" not in s._history
    assert [e.kv.mod_revision for e in s.events(b"\0", b"\0", 18)] == [18]
    assert len(s._events) == 1
    for call in (
        lambda: s.range(RangeOp(b"a", revision=16)),
        lambda: s.events(b"a", b"", 17),
        lambda: s.events(b"a", b"", 1),
        lambda: do(s, CompactOp(17)),
        lambda: do(s, CompactOp(3)),
    ):
        with pytest.raises(Compacted) as raised:
            call()
        assert raised.value.compact_revision == 17
    with pytest.raises(FutureRevision):
        do(s, CompactOp(19))
    assert do(s, CompactOp(18)) == CompactResult(18)  # compacting at the current revision is allowed
    assert s._events == []
    assert s.range(RangeOp(b"hot")).kvs == (kv(b"hot", b"9", 9, 18, 10),)


def test_compaction_keeps_recreated_key_after_tombstone() -> None:
    s = MVCCStore()
    do(s, PutOp(b"k", b"1"))  # 2
    do(s, DeleteRangeOp(b"k"))  # 3
    do(s, PutOp(b"k", b"2"))  # 4
    do(s, CompactOp(3))
    assert s._history[b"k"] == [kv(b"k", b"2", 4, 4, 1)]
    assert s.range(RangeOp(b"k", revision=3)).kvs == ()
    assert s.events(b"k", b"", 4) == [Event(EventType.PUT, kv(b"k", b"2", 4, 4, 1), None)]


def test_events() -> None:
    s = sample()
    do(s, TxnOp((), (PutOp(b"a", b"A2"), PutOp(b"c", b"C2"), PutOp(b"x", b"X"))))  # 9
    do(s, PutOp(b"a", b"A3"))  # 10
    all_events = s.events(b"\0", b"\0", 1)
    assert [e.kv.mod_revision for e in all_events] == [2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 10]
    assert all_events[5] == Event(EventType.PUT, B2, B1)
    assert all_events[6] == Event(EventType.DELETE, kv(b"d", b"", 0, 8, 0), D)
    assert s.events(b"a", b"", 9) == [
        Event(EventType.PUT, kv(b"a", b"A2", 2, 9, 2), A),
        Event(EventType.PUT, kv(b"a", b"A3", 2, 10, 3), kv(b"a", b"A2", 2, 9, 2)),
    ]
    assert [e.kv.key for e in s.events(b"b", b"d", 1)] == [b"b", b"c", b"b", b"c"]
    assert s.events(b"\0", b"\0", 0) == []
    assert s.events(b"\0", b"\0", 11) == []
    assert s.events(b"\0", b"\0", 99) == []


@pytest.mark.parametrize(
    ("start", "limit", "revisions"),
    [
        pytest.param(8, 1, [8], id="limit-at-revision-end"),
        pytest.param(8, 2, [8, 9, 9, 9], id="limit-inside-txn-takes-whole-revision"),
        pytest.param(9, 1, [9, 9, 9], id="limit-1-whole-txn"),
        pytest.param(9, 3, [9, 9, 9], id="limit-exact"),
        pytest.param(9, 4, [9, 9, 9, 10], id="limit-past-end"),
        pytest.param(9, 0, [9, 9, 9, 10], id="no-limit"),
    ],
)
def test_events_limit_never_splits_a_revision(start: int, limit: int, revisions: list[int]) -> None:
    s = sample()
    do(s, TxnOp((), (PutOp(b"a", b"A2"), PutOp(b"c", b"C2"), PutOp(b"x", b"X"))))
    do(s, PutOp(b"a", b"A3"))
    assert [e.kv.mod_revision for e in s.events(b"\0", b"\0", start, limit)] == revisions


def test_leases() -> None:
    s = MVCCStore()
    assert do(s, LeaseGrantOp(0, 30)) == LeaseGrantResult(1, 30, 1)
    assert do(s, LeaseGrantOp(10, 5)) == LeaseGrantResult(10, 5, 1)
    assert do(s, LeaseGrantOp(0, 7)) == LeaseGrantResult(11, 7, 1)  # ids picked above every granted one
    assert s.leases() == {1: 30, 10: 5, 11: 7}
    do(s, PutOp(b"a", b"", lease=1))
    do(s, PutOp(b"b", b"", lease=1))
    do(s, PutOp(b"c", b"", lease=10))
    do(s, PutOp(b"d", b"", lease=1))
    assert s.lease_keys(1) == (b"a", b"b", b"d")
    do(s, PutOp(b"b", b"", lease=10))  # moves b to lease 10
    do(s, PutOp(b"d", b""))  # detaches d
    assert (s.lease_keys(1), s.lease_keys(10)) == ((b"a",), (b"b", b"c"))
    do(s, DeleteRangeOp(b"c"))
    assert s.lease_keys(10) == (b"b",)
    rev = s.revision
    assert do(s, LeaseRevokeOp(10)) == LeaseRevokeResult(rev + 1)
    assert do(s, LeaseRevokeOp(1)) == LeaseRevokeResult(rev + 2)  # one revision per revoke
    assert [(e.type, e.kv.key, e.kv.mod_revision) for e in s.events(b"\0", b"\0", rev + 1)] == [
        (EventType.DELETE, b"b", rev + 1),
        (EventType.DELETE, b"a", rev + 2),
    ]
    assert do(s, LeaseRevokeOp(11)) == LeaseRevokeResult(rev + 2)  # no keys: no new revision
    assert s.leases() == {}
    assert s.range(RangeOp(b"\0", b"\0")).kvs == (kv(b"d", b"", 5, 7, 2),)
    with pytest.raises(LeaseNotFound):
        s.lease_keys(1)
    with pytest.raises(LeaseNotFound):
        do(s, PutOp(b"a", b"", lease=1))


def test_request_size_limit_and_codec() -> None:
    big = Request(b"c", 1, 1, PutOp(b"k", b"x" * MAX_REQUEST_BYTES))
    with pytest.raises(RequestTooLarge) as raised:
        encode_request(big)
    assert raised.value.limit == MAX_REQUEST_BYTES
    assert raised.value.size > MAX_REQUEST_BYTES
    assert f"{raised.value.size} bytes" in str(raised.value) and str(MAX_REQUEST_BYTES) in str(raised.value)
    fits = Request(b"c", 1, 1, PutOp(b"k", b"x" * (MAX_REQUEST_BYTES - 100)))
    assert decode_request(encode_request(fits)) == fits
    with pytest.raises(InvalidRequest, match="malformed request"):
        decode_request(b"\x93\x01")


@pytest.mark.parametrize(
    "op",
    [
        pytest.param(RangeOp(b"a", b"b", 3, 4, True, False), id="range"),
        pytest.param(PutOp(b"a", b"b", 3, True), id="put"),
        pytest.param(DeleteRangeOp(b"a", b"\0", True), id="delete"),
        pytest.param(
            TxnOp(
                (Compare(b"a", T.VALUE, R.LESS, b"x"), Compare(b"b", T.MOD, R.GREATER, -1)),
                (TxnOp((), (PutOp(b"a", b"1"),)),),
                (RangeOp(b"a"),),
            ),
            id="txn",
        ),
        pytest.param(CompactOp(5), id="compact"),
        pytest.param(LeaseGrantOp(0, 60), id="lease-grant"),
        pytest.param(LeaseRevokeOp(12), id="lease-revoke"),
    ],
)
def test_codec_round_trip(op: Op) -> None:
    req = Request(b"client", 7, 3, op)
    assert decode_request(encode_request(req)) == req


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(Compacted(5), id="compacted"),
        pytest.param(FutureRevision(9), id="future"),
        pytest.param(RequestTooLarge(2_000_000, MAX_REQUEST_BYTES), id="too-large"),
        pytest.param(LeaseNotFound(3), id="lease-not-found"),
        pytest.param(LeaseExists(3), id="lease-exists"),
        pytest.param(InvalidRequest("nope"), id="invalid"),
    ],
)
def test_errors_pickle(error: StoreError) -> None:
    again = pickle.loads(pickle.dumps(error))
    assert again == error and str(again) == str(error)


def test_same_history_same_hash() -> None:
    a, b = sample(), sample()
    assert a.hash() == b.hash()
    do(b, PutOp(b"a", b"A"))
    assert a.hash() != b.hash()
    do(a, PutOp(b"a", b"A"))
    assert a.hash() == b.hash()
