"""One store replica: the Raft core, its write-ahead log and the MVCC state machine, driven by asyncio.

This is the I/O shell around the pure cores (``cluster.store.raft``, ``cluster.store.mvcc``):

* one loop task owns the ``RawNode``; every other coroutine only appends to inboxes and wakes it,
  so the core is never touched concurrently;
* each ``Ready`` is handled in etcd's order: persist (WAL append + fsync, in a worker thread so
  the loop keeps accepting messages and proposals, which then batch into the next round), send,
  apply, ``advance``;
* nothing is acknowledged before it is applied, and nothing is applied before it is durable on a
  quorum, so an acknowledged write survives SIGKILL of any minority;
* linearizable reads use ReadIndex, batched: every read waiting at the start of a loop turn shares
  one ReadIndex round;
* lease expiry is decided here, on the leader's monotonic clock, and replicated as a revoke;
* fail stop, as etcd: a failed WAL write/fsync/snapshot or a failed apply (other than a typed
  StoreError, which is a request's result) ends the replica (``on_fatal``; the actor exits its
  process so Ray restarts it and the WAL replays). Carrying on would keep a leader that persists
  nothing, or a replica whose state machine silently skipped committed entries the core has
  already moved past;
* an empty data directory only bootstraps or joins when told so (``cluster.store.membership``);
  otherwise the replica awaits replacement: it neither votes nor campaigns nor serves.

The Ray actor (``cluster.store.actor``) is a thin wrapper; tests may drive ``Replica`` with any
``Transport``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import random
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cluster.machinery.files import private_dir
from cluster.store.membership import MEMBER_MARKER, EmptyStart, read_marker, write_marker
from cluster.store.mvcc import (
    LeaseRevokeOp as _LeaseRevokeOp,
)
from cluster.store.mvcc import (
    MVCCStore,
    RangeOp,
    Request,
    StoreError,
    decode_request,
    encode_request,
)
from cluster.store.raft import Config, MemoryStorage, ProposalDropped, RawNode
from cluster.store.raft.types import (
    ConfChange,
    ConfChangeType,
    EntryType,
    HardState,
    Message,
    Ready,
    StateRole,
)
from cluster.store.replica_types import NotLeader, NotServing, ReplicaOptions, Transport
from cluster.store.wal import WAL

__all__ = ["NotLeader", "NotServing", "Replica", "ReplicaOptions", "Transport"]

log = logging.getLogger("raykube.store")


class _Fatal(Exception):
    """A failure after which this replica must not go on (fail stop)."""


class Replica:
    def __init__(
        self,
        replica_id: int,
        voters: Sequence[int],
        data_dir: str | os.PathLike[str],
        transport: Transport,
        options: ReplicaOptions | None = None,
        *,
        empty_start: EmptyStart = EmptyStart.REFUSE,
        on_fatal: Callable[[str], None] | None = None,
    ) -> None:
        self.id = replica_id
        self.on_fatal = on_fatal
        self.failed: str | None = None  # why this replica fail-stopped
        self.awaiting: str | None = None  # why this replica awaits replacement (empty data directory)
        self._fault: str | None = None  # test-only fault injection (inject_fault)
        self.options = options or ReplicaOptions()
        self.transport = transport
        self.data_dir = Path(data_dir)
        private_dir(self.data_dir)
        self.wal, recovered = WAL.open(self.data_dir / "wal")
        self.storage = MemoryStorage()
        if recovered.snapshot is not None:
            self.storage.apply_snapshot(recovered.snapshot)
            self.mvcc = MVCCStore.restore(recovered.snapshot.data) if recovered.snapshot.data else MVCCStore()
        else:
            self.mvcc = MVCCStore()
        if recovered.hard_state != HardState():
            self.storage.set_hard_state(recovered.hard_state)
        if recovered.entries:
            self.storage.append(recovered.entries)
        fresh = recovered.snapshot is None and not recovered.entries and recovered.hard_state == HardState()
        marker = read_marker(self.data_dir, MEMBER_MARKER)
        if fresh and marker is not None:
            empty_start = EmptyStart.REFUSE  # we had a log (the marker says so) and it is gone
        if fresh and empty_start == EmptyStart.BOOTSTRAP:
            RawNode.bootstrap(self.storage, list(voters))
            hs, _ = self.storage.initial_state()
            first, last = self.storage.first_index(), self.storage.last_index()
            entries = self.storage.entries(first, last + 1) if last >= first else []
            self.wal.save_snapshot(self.storage.snapshot(), hs, entries)
        if fresh and empty_start == EmptyStart.REFUSE:
            self.awaiting = (
                "awaiting replacement: empty data directory in an existing cluster "
                "(remove this member and add a new one)"
            )
            log.error("replica %d: %s (%s)", self.id, self.awaiting, self.data_dir)
        elif marker is None:
            write_marker(self.data_dir, MEMBER_MARKER, {"id": replica_id, "voters": list(voters)})
        self.applied = self.storage.snapshot().metadata.index
        self.snapshot_index = self.applied
        self.node = RawNode(
            Config(
                id=replica_id,
                rng=random.Random(int.from_bytes(os.urandom(8), "big")),
                election_tick=self.options.election_tick,
                heartbeat_tick=self.options.heartbeat_tick,
                applied=self.applied,
            ),
            self.storage,
        )
        self.role = StateRole.FOLLOWER
        self.leader = 0
        self.blocked: set[int] = set()  # fault injection: peers we neither send to nor hear from
        self._inbox: list[Message] = []
        self._snapshot_reports: list[tuple[int, bool]] = []
        self._proposals: list[tuple[bytes, tuple[bytes, int]]] = []
        self._waiting: dict[tuple[bytes, int], list[asyncio.Future[Any]]] = defaultdict(list)
        self._conf_changes: list[tuple[ConfChange, asyncio.Future[Any]]] = []
        self._conf_waiting: dict[tuple[int, int], list[asyncio.Future[Any]]] = defaultdict(list)
        self._reads: list[asyncio.Future[int]] = []
        self._read_rounds: dict[bytes, list[asyncio.Future[int]]] = {}
        self._read_index_waiters: list[tuple[int, asyncio.Future[int]]] = []
        self._read_ctx = itertools.count(1)
        self._lease_deadlines: dict[int, float] = {}
        self._lease_revoking: set[int] = set()
        self._applied_cond = asyncio.Condition()
        self._wake = asyncio.Event()
        self._closed = False
        self._task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        if self.awaiting is None:  # a replica awaiting replacement never runs its Raft core
            self._task = asyncio.get_running_loop().create_task(self._run())

    def _check_serving(self) -> None:
        reason = self.failed or self.awaiting
        if reason is not None:
            raise NotServing(reason)

    def inject_fault(self, kind: str) -> None:
        """Test-only: make the next persist ("fsync") or the next apply ("apply") fail."""
        if kind not in ("fsync", "apply"):
            raise ValueError(f"unknown fault {kind!r}")
        self._fault = kind

    async def close(self) -> None:
        self._closed = True
        self._wake.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        self.wal.close()

    # ------------------------------------------------------------------ inputs

    def deliver(self, messages: Sequence[Message]) -> None:
        if self.failed or self.awaiting:
            return
        if self.blocked:
            messages = [m for m in messages if m.frm not in self.blocked]
        self._inbox.extend(messages)
        self._wake.set()

    def report_snapshot(self, peer: int, ok: bool) -> None:
        """The transport's word on a snapshot sent to ``peer``: written out whole, or lost (etcd's
        ReportSnapshot). Without it a leader whose snapshot was dropped waits for that peer forever."""
        self._snapshot_reports.append((peer, ok))
        self._wake.set()

    async def propose(self, datas: Sequence[bytes]) -> list[Any]:
        """Replicate encoded requests; returns each one's result or StoreError, in order.

        Raises NotLeader when this replica does not lead. Requests carry (client_id, seq), so a
        caller that retries after a timeout or leader change cannot apply one twice.
        """
        self._check_serving()
        if self.role != StateRole.LEADER:
            raise NotLeader(self.leader)
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[Any]] = []
        for data in datas:
            req = decode_request(data)
            fut: asyncio.Future[Any] = loop.create_future()
            key = (req.client_id, req.seq) if req.client_id else (b"", id(fut))
            if not req.client_id:
                data = encode_request(Request(b"", id(fut), 0, req.op))
            self._waiting[key].append(fut)
            self._proposals.append((data, key))
            futures.append(fut)
        self._wake.set()
        return list(await asyncio.gather(*futures, return_exceptions=True))

    async def linearizable_read_index(self) -> int:
        """Wait until reads at the returned applied index are linearizable (ReadIndex)."""
        self._check_serving()
        if self.role != StateRole.LEADER:
            raise NotLeader(self.leader)
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._reads.append(fut)
        self._wake.set()
        return await fut

    async def range(self, op: RangeOp, *, serializable: bool = False) -> Any:
        self._check_serving()
        if not serializable:
            await self.linearizable_read_index()
        try:
            return self.mvcc.range(op)
        except StoreError as e:
            return e

    async def wait_events(
        self, key: bytes, range_end: bytes, start_revision: int, timeout: float, limit: int = 1000
    ) -> tuple[list[Any], int, int]:
        """Events with revision >= start_revision (waiting up to ``timeout`` for some).

        Returns (events, header revision, compact revision). Raises StoreError (Compacted) when
        start_revision is below the compaction window. Any replica may serve this: its history is
        a prefix of the leader's, so a watcher that moves between replicas sees no gap.
        """
        deadline = time.monotonic() + timeout
        while True:
            self._check_serving()  # a failed replica's state may be half-applied: never serve it
            events = self.mvcc.events(key, range_end, start_revision, limit)
            if events or self._closed:
                return events, self.mvcc.revision, self.mvcc.compact_revision
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return [], self.mvcc.revision, self.mvcc.compact_revision
            async with self._applied_cond:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._applied_cond.wait(), remaining)

    def lease_keepalive(self, lease_id: int) -> int:
        self._check_serving()
        if self.role != StateRole.LEADER:
            raise NotLeader(self.leader)
        leases = self.mvcc.leases()
        if lease_id not in leases:
            return 0
        self._lease_deadlines[lease_id] = time.monotonic() + leases[lease_id]
        return leases[lease_id]

    async def change_membership(self, cc: ConfChange) -> tuple[int, ...]:
        self._check_serving()
        if self.role != StateRole.LEADER:
            raise NotLeader(self.leader)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._conf_changes.append((cc, fut))
        self._wake.set()
        result: tuple[int, ...] = await fut
        return result

    def status(self) -> dict[str, Any]:
        st = self.node.status()
        return {
            "id": self.id,
            "role": StateRole(st.role).name.lower(),
            "leader": st.leader_id,
            "term": st.term,
            "commit": st.commit,
            "applied": self.applied,
            "revision": self.mvcc.revision,
            "compact_revision": self.mvcc.compact_revision,
            "voters": list(st.voters),
            "wal_bytes": self.wal.size_bytes,
            "wal_fsyncs": self.wal.syncs,
            "pid": os.getpid(),
            "state": f"failed: {self.failed}" if self.failed else self.awaiting or "ok",
            # A leader with a membership change proposed but not yet applied refuses another one.
            "pending_conf": self.node.raft.pending_conf_index > self.applied,
        }

    def kv_hash(self) -> tuple[int, int, int]:
        return self.applied, self.mvcc.revision, self.mvcc.hash()

    async def wait_applied(self, ready: Callable[[], bool], timeout: float | None = None) -> bool:
        """Wait until ``ready()`` holds, checking it again after each applied batch (a
        follower's ReadIndex waits for an applied index; a watch for a new revision). Returns
        False on timeout or when the replica closes first."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while not ready():
            self._check_serving()
            remaining = None if deadline is None else deadline - loop.time()
            if self._closed or (remaining is not None and remaining <= 0):
                return False
            async with self._applied_cond:
                if ready():  # an apply may have notified while we took the lock
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._applied_cond.wait(), remaining)
        return True

    def lease_remaining(self, lease_id: int) -> float | None:
        """Seconds before the leader revokes the lease (None: not tracked here, so not the leader
        or no such lease). Only the leader's clock decides expiry."""
        deadline = self._lease_deadlines.get(lease_id)
        return None if deadline is None else max(0.0, deadline - time.monotonic())

    # ------------------------------------------------------------------ the loop

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        tick = self.options.tick_seconds
        next_tick = loop.time() + tick
        while not self._closed:
            timeout = next_tick - loop.time()
            if timeout > 0 and not self._wake.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout)
            self._wake.clear()
            try:
                now = loop.time()
                if now >= next_tick:
                    self.node.tick()
                    # Never replay a burst of missed ticks: that would fire elections spuriously.
                    next_tick = max(next_tick + tick, now + tick / 2)
                    self._expire_leases()
                self._feed_core()
                while self.node.has_ready() and not self._closed:
                    await self._handle_ready(self.node.ready())
            except _Fatal as e:
                self._fail_stop(str(e), e.__cause__)
                return
            except Exception as e:  # a Ready half handled leaves core and disk out of step: stop
                self._fail_stop(f"loop turn failed: {e!r}", e)
                return

    def _fail_stop(self, reason: str, exc: BaseException | None) -> None:
        """Stop for good: no more Raft traffic, nothing served, every waiter told to go elsewhere
        (a write's retry reaches the next leader under the same seq, so it still applies once)."""
        self.failed = reason
        self._closed = True
        log.critical("replica %d: fail stop: %s", self.id, reason, exc_info=exc)
        self.role, self.leader = StateRole.FOLLOWER, 0
        gone = NotServing(reason)
        futures = [f for fs in self._waiting.values() for f in fs]
        futures += [f for fs in self._read_rounds.values() for f in fs] + self._reads
        futures += [f for _, f in self._read_index_waiters] + [f for _, f in self._conf_changes]
        futures += [f for fs in self._conf_waiting.values() for f in fs]
        for fut in futures:
            if not fut.done():
                fut.set_exception(gone)
        self._waiting.clear()
        if self.on_fatal is not None:
            self.on_fatal(reason)

    def _feed_core(self) -> None:
        inbox, self._inbox = self._inbox, []
        for m in inbox:
            try:
                self.node.step(m)
            except Exception:
                log.exception("replica %d: step(%s) failed", self.id, m.type)
        reports, self._snapshot_reports = self._snapshot_reports, []
        for peer, ok in reports:
            self.node.report_snapshot(peer, ok)
        if self._proposals:
            props, self._proposals = self._proposals, []
            try:
                self.node.propose_many([d for d, _ in props])
            except ProposalDropped:
                for _, key in props:
                    self._fail_waiting(key, NotLeader(self.leader))
        if self._conf_changes:
            ccs, self._conf_changes = self._conf_changes, []
            for cc, fut in ccs:
                try:
                    self.node.propose_conf_change(cc)
                    self._conf_waiting[(int(cc.type), cc.node_id)].append(fut)
                except ProposalDropped as e:
                    if not fut.done():
                        fut.set_exception(RuntimeError(f"membership change refused: {e}"))
        if self._reads:
            reads, self._reads = self._reads, []
            ctx = next(self._read_ctx).to_bytes(8, "big")
            self._read_rounds[ctx] = reads
            self.node.read_index(ctx)

    async def _handle_ready(self, rd: Ready) -> None:
        if rd.soft_state is not None:
            self._on_soft_state(rd.soft_state.role, rd.soft_state.leader)
        # A leader may send before its own write is durable (Raft thesis §10.2.1, as etcd does): the
        # entries cannot commit before the loop handles the followers' replies, which is after this
        # Ready has been persisted, so nothing is acknowledged on fewer durable copies than a quorum.
        early = self.role == StateRole.LEADER and rd.snapshot is None
        if early:
            self._send(rd.messages)
        # 1. persist
        try:
            if self._fault == "fsync":
                self._fault = None
                raise OSError(5, "injected fsync failure")
            if rd.snapshot is not None and not rd.snapshot.is_empty:
                hs = rd.hard_state or self.storage.initial_state()[0]
                await asyncio.to_thread(self.wal.save_snapshot, rd.snapshot, hs, [])
            if rd.hard_state is not None or rd.entries:
                await asyncio.to_thread(self.wal.save, rd.hard_state, list(rd.entries), sync=rd.must_sync)
        except Exception as e:
            raise _Fatal(f"persist failed: {e!r}") from e
        if rd.snapshot is not None and not rd.snapshot.is_empty:
            self.storage.apply_snapshot(rd.snapshot)
        if rd.hard_state is not None or rd.entries:
            if rd.hard_state is not None:
                self.storage.set_hard_state(rd.hard_state)
            if rd.entries:
                self.storage.append(rd.entries)
        # 2. send
        if not early:
            self._send(rd.messages)
        # 3. apply
        if rd.snapshot is not None and not rd.snapshot.is_empty:
            self.mvcc = MVCCStore.restore(rd.snapshot.data) if rd.snapshot.data else MVCCStore()
            self.applied = rd.snapshot.metadata.index
            self.snapshot_index = self.applied
        for rs in rd.read_states:
            for fut in self._read_rounds.pop(rs.request_ctx, []):
                self._read_index_waiters.append((rs.index, fut))
        try:
            self._apply(rd.committed_entries)
        except Exception as e:
            raise _Fatal(f"apply failed at index {self.applied + 1}: {e!r}") from e
        # 4. advance
        self.node.advance(rd)
        self._release_reads()
        if rd.committed_entries or rd.snapshot is not None:
            async with self._applied_cond:
                self._applied_cond.notify_all()
        if self.applied - self.snapshot_index >= self.options.snapshot_entries:
            await self._take_snapshot()

    def _send(self, messages: Sequence[Message]) -> None:
        by_peer: dict[int, list[Message]] = defaultdict(list)
        for m in messages:
            if m.to not in self.blocked:
                by_peer[m.to].append(m)
        for to, msgs in by_peer.items():
            try:
                self.transport.send(to, msgs)
            except Exception:
                log.debug("replica %d: send to %d failed", self.id, to, exc_info=True)
                with contextlib.suppress(Exception):
                    self.node.report_unreachable(to)

    def _apply(self, entries: Sequence[Any]) -> None:
        for entry in entries:
            if entry.index <= self.applied:
                continue
            if entry.type == EntryType.CONF_CHANGE:
                cc = ConfChange.decode(entry.data)
                cs = self.node.apply_conf_change(cc)
                for fut in self._conf_waiting.pop((int(cc.type), cc.node_id), []):
                    if not fut.done():
                        fut.set_result(tuple(cs.voters))
                if cc.type == ConfChangeType.REMOVE_NODE and cc.node_id == self.id:
                    log.warning("replica %d: removed from the cluster", self.id)
            elif entry.data:
                req = decode_request(entry.data)
                if self._fault == "apply":
                    self._fault = None
                    raise RuntimeError("injected apply failure")
                try:
                    result: Any = self.mvcc.apply(req)
                except StoreError as e:
                    result = e
                key = (req.client_id, req.seq)
                for fut in self._waiting.pop(key, []):
                    if not fut.done():
                        fut.set_result(result)
                if self.role == StateRole.LEADER:
                    self._track_leases(req.op, result)
            self.applied = entry.index

    def _release_reads(self) -> None:
        if not self._read_index_waiters:
            return
        still: list[tuple[int, asyncio.Future[int]]] = []
        for index, fut in self._read_index_waiters:
            if index <= self.applied:
                if not fut.done():
                    fut.set_result(self.applied)
            else:
                still.append((index, fut))
        self._read_index_waiters = still

    def _on_soft_state(self, role: StateRole, leader: int) -> None:
        was_leader = self.role == StateRole.LEADER
        self.role, self.leader = role, leader
        if was_leader and role != StateRole.LEADER:
            # Our uncommitted proposals may be overwritten; callers retry (deduplicated by seq).
            for key in list(self._waiting):
                self._fail_waiting(key, NotLeader(leader))
            for _ctx, futs in self._read_rounds.items():
                for fut in futs:
                    if not fut.done():
                        fut.set_exception(NotLeader(leader))
            self._read_rounds.clear()
            for _i, fut in self._read_index_waiters:
                if not fut.done():
                    fut.set_exception(NotLeader(leader))
            self._read_index_waiters.clear()
            for futs in self._conf_waiting.values():
                for fut in futs:
                    if not fut.done():
                        fut.set_exception(NotLeader(leader))
            self._conf_waiting.clear()
        if role == StateRole.LEADER and not was_leader:
            # A new leader cannot know how long ago a lease was renewed: give every lease a full TTL.
            now = time.monotonic()
            self._lease_deadlines = {lid: now + ttl for lid, ttl in self.mvcc.leases().items()}
            self._lease_revoking.clear()
        log.info("replica %d: role %s, leader %d", self.id, role.name, leader)

    def _fail_waiting(self, key: tuple[bytes, int], exc: Exception) -> None:
        for fut in self._waiting.pop(key, []):
            if not fut.done():
                fut.set_exception(exc)

    # ------------------------------------------------------------------ leases

    def _track_leases(self, op: Any, result: Any) -> None:
        ttl = getattr(result, "ttl", None)
        lease_id = getattr(result, "id", None)
        if ttl is not None and lease_id is not None and not isinstance(result, StoreError):
            self._lease_deadlines[lease_id] = time.monotonic() + ttl
        if isinstance(op, _LeaseRevokeOp):
            self._lease_deadlines.pop(op.id, None)
            self._lease_revoking.discard(op.id)

    def _expire_leases(self) -> None:
        if self.role != StateRole.LEADER or not self._lease_deadlines:
            return
        now = time.monotonic()
        for lid, deadline in list(self._lease_deadlines.items()):
            if deadline <= now and lid not in self._lease_revoking:
                self._lease_revoking.add(lid)
                data = encode_request(Request(b"", 0, 0, _LeaseRevokeOp(lid)))
                self._proposals.append((data, (b"", -lid)))

    # ------------------------------------------------------------------ snapshots

    async def _take_snapshot(self) -> None:
        index = self.applied
        data = self.mvcc.snapshot()
        snap = self.storage.create_snapshot(index, None, data)
        hs, _ = self.storage.initial_state()
        last = self.storage.last_index()
        entries_after = self.storage.entries(index + 1, last + 1) if last > index else []
        try:
            await asyncio.to_thread(self.wal.save_snapshot, snap, hs, entries_after)
        except Exception as e:
            raise _Fatal(f"snapshot failed: {e!r}") from e
        compact_to = index - self.options.keep_entries
        if compact_to > self.storage.first_index():
            self.storage.compact(compact_to)
        self.snapshot_index = index
        log.info("replica %d: snapshot at %d (%d bytes)", self.id, index, len(data))
