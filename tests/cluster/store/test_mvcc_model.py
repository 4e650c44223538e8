"""Model-based test: MVCCStore against a tiny reference model (the whole key space as a dict,
one copy per revision) over random put/delete/txn/lease/compact sequences, with snapshot
round-trips mixed in.

After every step: a range at every retained revision equals the model's copy; reads below
the compact revision fail; the event stream from compact_revision + 1 is ordered, gap-free and
duplicate-free (applying each revision's events to the model's previous copy gives its next
copy, with prev_kv equal to what was replaced), and paging it with a limit gives the same
stream without splitting a revision. A twin restored from a snapshot and fed the same requests
keeps the same hash.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from cluster.store.mvcc import (
    Compacted,
    CompactOp,
    Compare,
    CompareResult,
    CompareTarget,
    DeleteRangeOp,
    Event,
    EventType,
    FutureRevision,
    InvalidRequest,
    KeyValue,
    LeaseGrantOp,
    LeaseNotFound,
    LeaseRevokeOp,
    MVCCStore,
    Op,
    PutOp,
    RangeOp,
    Request,
    Result,
    StoreError,
    TxnOp,
    TxnResult,
)

KEYS = [b"a", b"b", b"c", b"d", b"e"]
keys = st.sampled_from(KEYS)
values = st.binary(max_size=3)
ALL = RangeOp(b"\0", b"\0")
State = dict[bytes, KeyValue]


def _put(state: State, key: bytes, value: bytes, lease: int, rev: int) -> None:
    old = state.get(key)
    create, version = (old.create_revision, old.version + 1) if old else (rev, 1)
    state[key] = KeyValue(key, value, create, rev, version, lease)


class StoreVsModel(RuleBasedStateMachine):
    @initialize()
    def start(self) -> None:
        self.store = MVCCStore()
        self.twin: MVCCStore | None = None
        self.states: dict[int, State] = {1: {}}  # revision -> the whole key space at it
        self.revision = 1
        self.compact_rev = 0
        self.leases: dict[int, int] = {}
        self.next_lease = 1

    # --- driving both sides ------------------------------------------------------------------

    def apply(self, op: Op) -> Result | StoreError:
        outcomes: list[Result | StoreError] = []
        for store in (self.store, self.twin):
            if store is None:
                continue
            try:
                outcomes.append(store.apply(Request(b"", 0, 0, op)))
            except StoreError as e:
                outcomes.append(e)
        assert all(o == outcomes[0] for o in outcomes)
        return outcomes[0]

    def commit(self, state: State) -> None:
        """The model's view of a request: a new revision when the key space changed."""
        if state != self.states[self.revision]:
            self.revision += 1
            self.states[self.revision] = state

    @rule(key=keys, value=values, lease=st.sampled_from([0, 0, 1, 2, 3, 99]))
    def put(self, key: bytes, value: bytes, lease: int) -> None:
        out = self.apply(PutOp(key, value, lease))
        if lease and lease not in self.leases:
            assert out == LeaseNotFound(lease)
            return
        state = dict(self.states[self.revision])
        _put(state, key, value, lease, self.revision + 1)
        self.revision += 1
        self.states[self.revision] = state

    @rule(key=keys, end=st.sampled_from([b"", b"", b"c", b"\0", b"zz"]))
    def delete(self, key: bytes, end: bytes) -> None:
        self.apply(DeleteRangeOp(key, end))
        state = {
            k: kv
            for k, kv in self.states[self.revision].items()
            if not (k == key if not end else (k >= key if end == b"\0" else key <= k < end))
        }
        self.commit(state)

    @rule(
        key=keys,
        guess=st.integers(0, 4),
        writes=st.lists(st.tuples(keys, st.one_of(st.none(), values)), max_size=3, unique_by=lambda w: w[0]),
        other=keys,
    )
    def txn(self, key: bytes, guess: int, writes: list[tuple[bytes, bytes | None]], other: bytes) -> None:
        current = self.states[self.revision]
        mod = current[key].mod_revision if key in current else 0
        want = mod if guess == 0 else guess  # often right, sometimes wrong
        success: list[Op] = [PutOp(k, v) if v is not None else DeleteRangeOp(k) for k, v in writes]
        success.append(RangeOp(b"\0", b"\0", keys_only=True))
        out = self.apply(
            TxnOp(
                (Compare(key, CompareTarget.MOD, CompareResult.EQUAL, want),),
                tuple(success),
                (PutOp(other, b"failed"),),
            )
        )
        assert isinstance(out, TxnResult)
        assert out.succeeded is (mod == want)
        state = dict(current)
        rev = self.revision + 1
        if out.succeeded:
            for k, v in writes:
                if v is None:
                    state.pop(k, None)
                else:
                    _put(state, k, v, 0, rev)
            assert [kv.key for kv in out.responses[-1].kvs] == sorted(state)  # type: ignore[union-attr]
        else:
            _put(state, other, b"failed", 0, rev)
        self.commit(state)
        assert out.revision == self.revision

    @rule(lease=st.sampled_from([0, 1, 2, 3]))
    def grant(self, lease: int) -> None:
        out = self.apply(LeaseGrantOp(lease, 10))
        if lease in self.leases:
            assert isinstance(out, StoreError)
            return
        lease = lease or self.next_lease
        self.leases[lease] = 10
        self.next_lease = max(self.next_lease, lease + 1)
        assert self.store.leases() == self.leases

    @rule(lease=st.sampled_from([1, 2, 3]))
    def revoke(self, lease: int) -> None:
        out = self.apply(LeaseRevokeOp(lease))
        if lease not in self.leases:
            assert out == LeaseNotFound(lease)
            return
        del self.leases[lease]
        self.commit({k: kv for k, kv in self.states[self.revision].items() if kv.lease != lease})

    @rule(back=st.integers(-1, 6))
    def compact(self, back: int) -> None:
        target = self.revision - back
        out = self.apply(CompactOp(target))
        if target < 0:
            assert isinstance(out, InvalidRequest)
        elif target > self.revision:
            assert out == FutureRevision(self.revision)
        elif target <= self.compact_rev:
            assert out == Compacted(self.compact_rev)
        else:
            assert not isinstance(out, StoreError)
            for r in range(max(self.compact_rev, 1), target):
                del self.states[r]
            self.compact_rev = target

    @precondition(lambda self: self.twin is None)
    @rule()
    def snapshot(self) -> None:
        self.twin = MVCCStore.restore(self.store.snapshot())
        assert self.twin.hash() == self.store.hash()
        assert self.twin.snapshot() == self.store.snapshot()

    # --- checks -------------------------------------------------------------------------------

    def stores(self) -> list[MVCCStore]:
        return [self.store] if self.twin is None else [self.store, self.twin]

    @invariant()
    def reads_match_model(self) -> None:
        for s in self.stores():
            self.check_reads(s)

    def check_reads(self, s: MVCCStore) -> None:
        assert (s.revision, s.compact_revision) == (self.revision, self.compact_rev)
        for r, state in self.states.items():
            got = s.range(RangeOp(b"\0", b"\0", revision=r))
            assert got.kvs == tuple(state[k] for k in sorted(state)), r
            one = s.range(RangeOp(b"c", revision=r))
            assert one.kvs == ((state[b"c"],) if b"c" in state else ())
        if self.compact_rev > 1:
            try:
                s.range(RangeOp(b"a", revision=self.compact_rev - 1))
                raise AssertionError("read below the compact revision succeeded")
            except Compacted:
                pass
        assert s.leases() == self.leases
        for lease in self.leases:
            attached = sorted(k for k, kv in self.states[self.revision].items() if kv.lease == lease)
            assert list(s.lease_keys(lease)) == attached

    @invariant()
    def events_replay_the_history(self) -> None:
        for s in self.stores():
            self.check_events(s)

    def check_events(self, s: MVCCStore) -> None:
        start = self.compact_rev + 1
        stream = s.events(b"\0", b"\0", start)
        by_rev: dict[int, list[Event]] = {}
        for e in stream:
            by_rev.setdefault(e.kv.mod_revision, []).append(e)
        revs = [e.kv.mod_revision for e in stream]
        assert revs == sorted(revs)
        assert set(by_rev) == set(range(max(start, 2), self.revision + 1))  # every revision, no gaps
        for r, events in by_rev.items():
            state = dict(self.states[r - 1])
            touched = [e.kv.key for e in events]
            assert len(touched) == len(set(touched))  # no key twice in one revision
            for e in events:
                assert e.prev_kv == state.get(e.kv.key)
                if e.type is EventType.PUT:
                    state[e.kv.key] = e.kv
                else:
                    assert e.kv == KeyValue(e.kv.key, b"", 0, r, 0, 0)
                    del state[e.kv.key]
            assert state == self.states[r]
        for limit in (1, 2):
            paged: list[Event] = []
            at = start
            while batch := s.events(b"\0", b"\0", at, limit):
                # past the limit, only the rest of the last revision
                assert len(batch) <= limit or len({e.kv.mod_revision for e in batch[limit - 1 :]}) == 1
                paged += batch
                at = batch[-1].kv.mod_revision + 1
            assert paged == stream
        c = s.events(b"c", b"", start)
        assert c == [e for e in stream if e.kv.key == b"c"]
        # compaction frees: only the versions at the compact revision and the events after it stay
        base = len(self.states[self.compact_rev]) if self.compact_rev else 0
        assert sum(len(h) for h in s._history.values()) == base + len(stream)

    @invariant()
    def twin_agrees(self) -> None:
        if self.twin is not None:
            assert self.twin.hash() == self.store.hash()


StoreVsModel.TestCase.settings = settings(
    max_examples=120,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestStoreVsModel = StoreVsModel.TestCase


ops = st.one_of(
    st.builds(PutOp, keys, values, st.sampled_from([0, 0, 1, 2, 9]), st.booleans()),
    st.builds(DeleteRangeOp, keys, st.sampled_from([b"", b"c", b"\0"]), st.booleans()),
    st.builds(
        TxnOp,
        st.tuples(
            st.builds(
                Compare,
                keys,
                st.just(CompareTarget.VERSION),
                st.sampled_from(CompareResult),
                st.integers(0, 2),
            )
        ),
        st.tuples(st.builds(PutOp, keys, values)),
        st.tuples(st.builds(DeleteRangeOp, keys), st.builds(RangeOp, keys, st.just(b"\0"))),
    ),
    st.builds(CompactOp, st.integers(0, 12)),
    st.builds(LeaseGrantOp, st.sampled_from([0, 1, 2]), st.just(5)),
    st.builds(LeaseRevokeOp, st.sampled_from([1, 2])),
)
requests = st.lists(
    st.builds(
        lambda client, seq, op: Request(client, seq, 1, op),
        st.sampled_from([b"", b"x", b"y"]),
        st.integers(1, 4),
        ops,
    ),
    max_size=40,
)


def run(store: MVCCStore, req: Request) -> Result | StoreError:
    try:
        return store.apply(req)
    except StoreError as e:
        return e


@settings(max_examples=150, deadline=None)
@given(before=requests, after=requests)
def test_snapshot_round_trip_keeps_state_and_behaviour(before: list[Request], after: list[Request]) -> None:
    store = MVCCStore(max_clients=2, max_results=2)
    for req in before:
        run(store, req)
    data = store.snapshot()
    restored = MVCCStore.restore(data)
    assert restored.snapshot() == data and restored.hash() == store.hash()
    for req in after:
        assert run(restored, req) == run(store, req)
        assert restored.hash() == store.hash()
    assert restored.range(ALL) == store.range(ALL)
    assert restored.events(b"\0", b"\0", store.compact_revision + 1) == store.events(
        b"\0", b"\0", store.compact_revision + 1
    )
