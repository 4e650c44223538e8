"""The etcd-v3-like MVCC key-value store: the deterministic state machine Raft replicas apply.

Every replica applies the same committed ``Request`` values in the same order through
``MVCCStore.apply`` and so reaches the same state (``hash()`` checks it). The store does no I/O
and reads no clock or randomness; lease expiry is decided by the leader, which proposes a
``LeaseRevokeOp``. Local reads (``range``, ``events``, ``leases``) never change state.

Revisions (as in etcd):

* An empty store is at revision 1 and has never been compacted (``compact_revision`` 0). Each
  request that changes keys advances the revision by exactly one, however many keys it
  touches (a Txn, a multi-key delete, a lease revoke); within that revision changes are
  ordered by execution (etcd's sub-revisions), which is the order of ``events``. Requests
  that change no key (a delete matching nothing, a read-only or empty Txn, lease grants, a
  revoke of a lease with no keys, compaction) leave the revision alone.
* ``CompactOp(c)`` needs ``compact_revision < c <= revision`` (Compacted, FutureRevision
  otherwise). Afterwards each key keeps only its versions above ``c`` plus its latest version
  at or below ``c`` unless that is a tombstone, and the event log keeps only revisions above
  ``c``.
* Reads: ``range`` at revision ``r`` needs ``r <= revision`` (FutureRevision) and
  ``r >= compact_revision`` (Compacted): the state at exactly ``c`` is still whole (etcd's
  rule). Watches: ``events`` from ``s`` needs ``s > compact_revision``: the events *of*
  revision ``c`` itself are gone (a deletion at ``c`` left no tombstone), so resuming there
  would silently miss them; etcd's equal case is the source of its missing-delete bugs.

Validation precedes mutation: a request that raises a ``StoreError`` has changed no key,
revision, lease or event. The session table (exactly-once retries) is described in
``cluster.store.sessions``; it is replicated state and part of snapshots and the hash.
"""

from __future__ import annotations

import gc
import hashlib
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable
from operator import attrgetter
from typing import Any

from sortedcontainers import SortedDict  # type: ignore[import-untyped]

from cluster.store.codec import decode_request, encode_request, kv_to_wire, pack, unpack
from cluster.store.ops import (
    MAX_LEASE_TTL,
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
    prefix_end,
)
from cluster.store.sessions import DEFAULT_MAX_CLIENTS, DEFAULT_MAX_RESULTS, SessionTable
from cluster.store.validation import (
    MAX_INT64,
    check_delete,
    check_put,
    check_range,
    check_txn,
    is_int,
)

__all__ = [
    "MAX_LEASE_TTL",
    "MAX_REQUEST_BYTES",
    "MAX_TXN_OPS",
    "CompactOp",
    "CompactResult",
    "Compacted",
    "Compare",
    "CompareResult",
    "CompareTarget",
    "DeleteRangeOp",
    "DeleteRangeResult",
    "Event",
    "EventType",
    "FutureRevision",
    "InvalidRequest",
    "KeyValue",
    "LeaseExists",
    "LeaseGrantOp",
    "LeaseGrantResult",
    "LeaseNotFound",
    "LeaseRevokeOp",
    "LeaseRevokeResult",
    "MVCCStore",
    "Op",
    "PutOp",
    "PutResult",
    "RangeOp",
    "RangeResult",
    "Request",
    "RequestTooLarge",
    "Result",
    "StoreError",
    "TxnOp",
    "TxnResult",
    "decode_request",
    "encode_request",
    "prefix_end",
]

_SNAPSHOT_FORMAT = 1
_MOD = attrgetter("mod_revision")

# The branch a Txn takes, decided before it runs: (succeeded, paths of the nested Txns of
# the taken branch, in order).
_Path = tuple[bool, list["_Path"]]


def _matcher(key: bytes, range_end: bytes) -> Callable[[bytes], bool]:
    if not range_end:
        return key.__eq__
    if range_end == b"\0":
        return key.__le__
    return lambda k: key <= k < range_end


class MVCCStore:
    """See the module docstring. Not thread-safe: one caller applies and reads."""

    def __init__(self, *, max_clients: int = DEFAULT_MAX_CLIENTS, max_results: int = DEFAULT_MAX_RESULTS):
        self.revision = 1
        self.compact_revision = 0
        self._live: SortedDict = SortedDict()  # key -> current KeyValue
        self._history: SortedDict = SortedDict()  # key -> [KeyValue] by mod_revision, tombstones included
        self._events: list[Event] = []  # every change above compact_revision, in order
        self._event_revs: list[int] = []  # _events[i].kv.mod_revision, for bisect
        self._lease_ttl: dict[int, int] = {}
        self._lease_keys: dict[int, set[bytes]] = {}
        self._next_lease_id = 1
        self._sessions = SessionTable(max_clients, max_results)
        self._changed = False  # has the request being applied written at revision + 1?

    # --- the replicated write path -------------------------------------------------------

    def apply(self, req: Request) -> Result:
        """Apply one committed request; raises StoreError, which the caller records as the
        request's result. A retry of an applied (client_id, seq) returns the remembered
        result, or raises the remembered error again, without applying anything."""
        cid = req.client_id
        if not cid:
            if type(cid) is not bytes:
                raise InvalidRequest("client_id must be bytes")
            return self._apply_op(req.op)
        if type(cid) is not bytes or not is_int(req.seq) or not is_int(req.first_incomplete):
            raise InvalidRequest("client_id must be bytes, seq and first_incomplete integers")
        remembered = self._sessions.lookup(cid, req.seq, req.first_incomplete)
        if remembered is not None:
            if isinstance(remembered, StoreError):
                raise type(remembered)(*remembered.args)
            return remembered
        try:
            result = self._apply_op(req.op)
        except StoreError as e:
            self._sessions.remember(cid, req.seq, e)
            raise
        self._sessions.remember(cid, req.seq, result)
        return result

    def _apply_op(self, op: Op) -> Result:
        t = type(op)
        self._changed = False
        result: Result
        if t is PutOp:
            assert isinstance(op, PutOp)
            check_put(op)
            if op.lease and op.lease not in self._lease_ttl:
                raise LeaseNotFound(op.lease)
            rev = self.revision + 1
            prev = self._put(op.key, op.value, op.lease, rev)
            self.revision = rev
            self._changed = False
            return PutResult(rev, prev if op.prev_kv else None)
        if t is DeleteRangeOp:
            assert isinstance(op, DeleteRangeOp)
            check_delete(op)
            result = self._delete_range(op)
        elif t is TxnOp:
            assert isinstance(op, TxnOp)
            result = self._txn(op)
        elif t is CompactOp:
            assert isinstance(op, CompactOp)
            return self._compact(op.revision)
        elif t is LeaseGrantOp:
            assert isinstance(op, LeaseGrantOp)
            return self._lease_grant(op.id, op.ttl)
        elif t is LeaseRevokeOp:
            assert isinstance(op, LeaseRevokeOp)
            result = self._lease_revoke(op.id)
        elif t is RangeOp:
            raise InvalidRequest("a range is a read: apply it inside a TxnOp or call range()")
        else:
            raise InvalidRequest(f"unknown operation type {t.__name__}")
        if self._changed:
            self.revision += 1
            self._changed = False
        return result

    def _put(self, key: bytes, value: bytes, lease: int, rev: int) -> KeyValue | None:
        live = self._live
        prev: KeyValue | None = live.get(key)
        if prev is None:
            kv = KeyValue(key, value, rev, rev, 1, lease)
            live[key] = kv
            hist = self._history.get(key)
            if hist is None:
                self._history[key] = [kv]
            else:
                hist.append(kv)
        else:
            kv = KeyValue(key, value, prev.create_revision, rev, prev.version + 1, lease)
            dict.__setitem__(live, key, kv)  # key already in the sorted index
            self._history[key].append(kv)
            if prev.lease and prev.lease != lease:
                self._lease_keys[prev.lease].discard(key)
        if lease:
            self._lease_keys[lease].add(key)
        self._events.append(Event(EventType.PUT, kv, prev))
        self._event_revs.append(rev)
        self._changed = True
        return prev

    def _delete(self, key: bytes, rev: int) -> KeyValue:
        prev: KeyValue = self._live.pop(key)
        tombstone = KeyValue(key, b"", 0, rev, 0, 0)
        self._history[key].append(tombstone)
        if prev.lease:
            self._lease_keys[prev.lease].discard(key)
        self._events.append(Event(EventType.DELETE, tombstone, prev))
        self._event_revs.append(rev)
        self._changed = True
        return prev

    def _delete_range(self, op: DeleteRangeOp) -> DeleteRangeResult:
        keys = self._live_keys(op.key, op.range_end)
        rev = self.revision + 1
        prevs = [self._delete(k, rev) for k in keys]
        return DeleteRangeResult(self._visible(), len(prevs), tuple(prevs) if op.prev_kv else ())

    def _visible(self) -> int:
        """The revision a read sees: the pending one once the current request has written."""
        return self.revision + 1 if self._changed else self.revision

    def _txn(self, op: TxnOp) -> TxnResult:
        check_txn(op, 0)
        path = self._path(op)  # every compare, nested ones too, sees the state before the txn
        self._check_path(op, path)
        return self._run_txn(op, path)

    def _path(self, op: TxnOp) -> _Path:
        ok = all(self._holds(c) for c in op.compare)
        return ok, [self._path(o) for o in (op.success if ok else op.failure) if type(o) is TxnOp]

    def _holds(self, c: Compare) -> bool:
        kv: KeyValue | None = self._live.get(c.key)
        actual: int | bytes
        target = c.target
        if target is CompareTarget.VALUE:
            if kv is None:
                return False  # etcd: a value compare against a missing key never holds
            actual = kv.value
        elif kv is None:
            actual = 0
        elif target is CompareTarget.MOD:
            actual = kv.mod_revision
        elif target is CompareTarget.VERSION:
            actual = kv.version
        elif target is CompareTarget.CREATE:
            actual = kv.create_revision
        else:
            actual = kv.lease
        want = c.value
        result = c.result
        if result is CompareResult.EQUAL:
            return actual == want
        if result is CompareResult.NOT_EQUAL:
            return actual != want
        if result is CompareResult.LESS:
            return actual < want  # type: ignore[operator]
        return actual > want  # type: ignore[operator]

    def _check_path(self, op: TxnOp, path: _Path) -> None:
        ok, nested = path
        paths = iter(nested)
        for o in op.success if ok else op.failure:
            if type(o) is PutOp:
                if o.lease and o.lease not in self._lease_ttl:
                    raise LeaseNotFound(o.lease)
            elif type(o) is RangeOp:
                self._check_read_revision(o.revision)
            elif type(o) is TxnOp:
                self._check_path(o, next(paths))

    def _run_txn(self, op: TxnOp, path: _Path) -> TxnResult:
        ok, nested = path
        paths = iter(nested)
        responses: list[Result] = []
        for o in op.success if ok else op.failure:
            if type(o) is PutOp:
                rev = self.revision + 1
                prev = self._put(o.key, o.value, o.lease, rev)
                responses.append(PutResult(rev, prev if o.prev_kv else None))
            elif type(o) is DeleteRangeOp:
                responses.append(self._delete_range(o))
            elif type(o) is RangeOp:
                responses.append(self._range(o))
            elif type(o) is TxnOp:
                responses.append(self._run_txn(o, next(paths)))
        return TxnResult(self._visible(), ok, tuple(responses))

    def _compact(self, revision: int) -> CompactResult:
        if not is_int(revision):
            raise InvalidRequest("compact revision must be an integer >= 0")
        if revision <= self.compact_revision:
            raise Compacted(self.compact_revision)
        if revision > self.revision:
            raise FutureRevision(self.revision)
        cut = bisect_right(self._event_revs, revision)
        touched = {e.kv.key for e in self._events[:cut]}
        # Fresh lists rather than del[:cut], so the old arrays are freed whole.
        self._events = self._events[cut:]
        self._event_revs = self._event_revs[cut:]
        history = self._history
        for key in touched:  # only keys changed since the last compaction hold more to drop
            hist = history[key]
            keep = bisect_right(hist, revision, key=_MOD) - 1
            if hist[keep].version == 0:
                keep += 1  # the latest version at the compact revision is a tombstone
            if keep == len(hist):
                del history[key]
            elif keep:
                history[key] = hist[keep:]
        self.compact_revision = revision
        return CompactResult(self.revision)

    def _lease_grant(self, lease_id: int, ttl: int) -> LeaseGrantResult:
        if not is_int(lease_id) or not is_int(ttl, 1, MAX_LEASE_TTL):
            raise InvalidRequest(f"lease id must be an integer >= 0 and ttl in [1, {MAX_LEASE_TTL}]")
        if lease_id == 0:
            lease_id = self._next_lease_id
            if lease_id > MAX_INT64:
                raise InvalidRequest("lease ids exhausted")
        elif lease_id in self._lease_ttl:
            raise LeaseExists(lease_id)
        self._lease_ttl[lease_id] = ttl
        self._lease_keys[lease_id] = set()
        self._next_lease_id = max(self._next_lease_id, lease_id + 1)
        return LeaseGrantResult(lease_id, ttl, self.revision)

    def _lease_revoke(self, lease_id: int) -> LeaseRevokeResult:
        if lease_id not in self._lease_ttl:
            raise LeaseNotFound(lease_id)
        rev = self.revision + 1
        for key in sorted(self._lease_keys[lease_id]):  # sorted: sets iterate in per-process order
            self._delete(key, rev)
        del self._lease_ttl[lease_id]
        del self._lease_keys[lease_id]
        return LeaseRevokeResult(self._visible())

    # --- local reads -------------------------------------------------------------------

    def range(self, op: RangeOp) -> RangeResult:
        """Read keys now or at a past revision. Raises FutureRevision, Compacted, InvalidRequest."""
        check_range(op)
        self._changed = False
        self._check_read_revision(op.revision)
        return self._range(op)

    def _check_read_revision(self, revision: int) -> None:
        if revision > self.revision:
            raise FutureRevision(self.revision)
        if 0 < revision < self.compact_revision:
            raise Compacted(self.compact_revision)

    def _live_keys(self, key: bytes, range_end: bytes) -> list[bytes]:
        live = self._live
        if not range_end:
            return [key] if key in live else []
        hi = None if range_end == b"\0" else range_end
        return list(live.irange(key, hi, inclusive=(True, False)))

    def _range(self, op: RangeOp) -> RangeResult:
        visible = self._visible()
        at = op.revision or visible
        limit = op.limit
        kvs: list[KeyValue]
        if at == visible:
            live = self._live
            key, end = op.key, op.range_end
            if not end:
                one = live.get(key)
                kvs = [] if one is None else [one]
                count = len(kvs)
            elif end != b"\0" and end <= key:
                kvs, count = [], 0
            else:
                start = live.bisect_left(key)
                stop = len(live) if end == b"\0" else live.bisect_left(end)
                count = stop - start
                if op.count_only:
                    kvs = []
                else:
                    kvs = live.values()[start : min(stop, start + limit) if limit else stop]
        else:
            kvs, count = self._range_at(op, at)
        if op.count_only:
            return RangeResult((), count, False, visible)
        if op.keys_only:
            kvs = [
                KeyValue(kv.key, b"", kv.create_revision, kv.mod_revision, kv.version, kv.lease) for kv in kvs
            ]
        return RangeResult(tuple(kvs), count, bool(limit) and count > limit, visible)

    def _range_at(self, op: RangeOp, at: int) -> tuple[list[KeyValue], int]:
        history = self._history
        if not op.range_end:
            hists: Iterable[list[KeyValue]] = [history[op.key]] if op.key in history else []
        else:
            hi = None if op.range_end == b"\0" else op.range_end
            hists = (history[k] for k in history.irange(op.key, hi, inclusive=(True, False)))
        kvs: list[KeyValue] = []
        count = 0
        want = op.limit or -1
        for hist in hists:
            i = bisect_right(hist, at, key=_MOD) - 1
            if i >= 0 and hist[i].version:
                count += 1
                if want and not op.count_only:
                    kvs.append(hist[i])
                    want -= 1
        return kvs, count

    def events(self, key: bytes, range_end: bytes, start_revision: int, limit: int = 0) -> list[Event]:
        """Every change to keys in the range at revisions >= start_revision, in order, with
        prev_kv. With a limit, stops after ``limit`` events but never inside a revision (the
        last revision is always whole). start_revision 0 means "after now": nothing yet.
        Raises Compacted when start_revision <= compact_revision: resume from a newer list."""
        if type(key) is not bytes or type(range_end) is not bytes:
            raise InvalidRequest("key and range_end must be bytes")
        if not is_int(start_revision) or not is_int(limit):
            raise InvalidRequest("start_revision and limit must be integers >= 0")
        if start_revision == 0:
            return []
        if start_revision <= self.compact_revision:
            raise Compacted(self.compact_revision)
        revs, events = self._event_revs, self._events
        match = _matcher(key, range_end)
        out: list[Event] = []
        last = -1
        for i in range(bisect_left(revs, start_revision), len(events)):
            if limit and len(out) >= limit and revs[i] != last:
                break
            ev = events[i]
            if match(ev.kv.key):
                out.append(ev)
                last = revs[i]
        return out

    def leases(self) -> dict[int, int]:
        """Every granted lease: id -> granted ttl (seconds), by id."""
        return dict(sorted(self._lease_ttl.items()))

    def lease_keys(self, lease_id: int) -> tuple[bytes, ...]:
        """The keys attached to a lease, sorted. Raises LeaseNotFound."""
        if lease_id not in self._lease_keys:
            raise LeaseNotFound(lease_id)
        return tuple(sorted(self._lease_keys[lease_id]))

    # --- snapshots -------------------------------------------------------------------------

    def snapshot(self) -> bytes:
        """The whole replicated state in a canonical msgpack encoding: the retained version
        of each key at the compact revision, then the event log (which holds every later
        version), leases and sessions. Equal states give equal bytes."""
        c = self.compact_revision
        base = [kv_to_wire(h[0]) for h in self._history.values() if h[0].mod_revision <= c]
        events = [[int(e.type), kv_to_wire(e.kv)] for e in self._events]
        return pack(
            [
                _SNAPSHOT_FORMAT,
                self.revision,
                self.compact_revision,
                self._next_lease_id,
                base,
                events,
                sorted([lease_id, ttl] for lease_id, ttl in self._lease_ttl.items()),
                self._sessions.to_wire(),
            ]
        )

    @classmethod
    def restore(cls, data: bytes) -> MVCCStore:
        """The store a snapshot was taken of. Builds millions of objects with no cycles among
        them, so the cyclic collector is paused meanwhile (it would rescan them repeatedly)."""
        paused = gc.isenabled()
        gc.disable()
        try:
            return cls._restore(data)
        finally:
            if paused:
                gc.enable()

    @classmethod
    def _restore(cls, data: bytes) -> MVCCStore:
        w: list[Any] = unpack(data)
        if w[0] != _SNAPSHOT_FORMAT:
            raise InvalidRequest(f"unknown snapshot format {w[0]!r}")
        _, revision, compact_revision, next_lease_id, base, events, leases, sessions = w
        store = cls()
        store.revision = revision
        store.compact_revision = compact_revision
        store._next_lease_id = next_lease_id
        store._sessions = SessionTable.from_wire(sessions)
        live: dict[bytes, KeyValue] = {}
        history: dict[bytes, list[KeyValue]] = {}
        for kvw in base:
            kv = KeyValue(*kvw)
            live[kv.key] = kv
            history[kv.key] = [kv]
        put, delete = EventType.PUT, EventType.DELETE
        log, revs = store._events, store._event_revs
        for type_, kvw in events:
            kv = KeyValue(*kvw)
            key = kv.key
            prev = live.get(key)
            if type_ == put:
                live[key] = kv
                log.append(Event(put, kv, prev))
            else:
                del live[key]
                log.append(Event(delete, kv, prev))
            hist = history.get(key)
            if hist is None:
                history[key] = [kv]
            else:
                hist.append(kv)
            revs.append(kv.mod_revision)
        store._live = SortedDict(live)
        store._history = SortedDict(history)
        for lease_id, ttl in leases:
            store._lease_ttl[lease_id] = ttl
            store._lease_keys[lease_id] = set()
        for kv in live.values():
            if kv.lease:
                store._lease_keys[kv.lease].add(kv.key)
        return store

    def hash(self) -> int:
        """A 64-bit blake2b of the snapshot: equal on replicas that applied the same requests."""
        return int.from_bytes(hashlib.blake2b(self.snapshot(), digest_size=8).digest(), "big")
