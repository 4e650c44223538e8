"""Replicas that lose their disk, fail to persist or fail to apply, without Ray.

* Fail stop (etcd's rule): a failed fsync or a failed apply ends the replica; the others elect a
  leader and nothing acknowledged is lost; no two replicas ever show different state hashes at the
  same revision; a restart from the WAL converges.
* Empty rejoin: a replica whose data directory is gone (Ray restarted it on another node) must not
  vote, or a stale peer can win an election and drop writes a quorum acknowledged.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cluster.store.linearizability import UNKNOWN_RETURN, CheckResult, Operation, check_operations, kv_model
from cluster.store.membership import EmptyStart
from cluster.store.mvcc import PutOp, RangeOp, Request, StoreError, encode_request
from cluster.store.raft.types import ConfChange, ConfChangeType, Message
from cluster.store.replica import NotLeader, NotServing, Replica, ReplicaOptions

FAST = ReplicaOptions(tick_seconds=0.01, election_tick=10, snapshot_entries=200, keep_entries=20)
VOTERS = [1, 2, 3]


class LocalTransport:
    def __init__(self) -> None:
        self.replicas: dict[int, Replica] = {}

    def send(self, to: int, messages: list[Message]) -> None:
        r = self.replicas.get(to)
        if r is not None and not r._closed:
            r.deliver(messages)


def replica(
    t: LocalTransport, rid: int, data: Path, empty: EmptyStart, fatal: list[str] | None = None
) -> Replica:
    on_fatal = None if fatal is None else fatal.append
    r = Replica(rid, VOTERS, data, t, FAST, empty_start=empty, on_fatal=on_fatal)
    t.replicas[rid] = r
    r.start()
    return r


def cluster(tmp: Path, fatal: list[str] | None = None) -> LocalTransport:
    t = LocalTransport()
    for rid in VOTERS:
        replica(t, rid, tmp / f"r{rid}", EmptyStart.BOOTSTRAP, fatal)
    return t


def leaders(t: LocalTransport) -> list[Replica]:
    return [r for r in t.replicas.values() if r.role.name == "LEADER" and not r._closed]


async def until(what: str, cond: Callable[[], bool], state: Callable[[], Any], timeout: float = 10.0) -> None:
    """Wait for ``cond``; on timeout fail with ``state()`` printed, never hang."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; state: {state()}")
        await asyncio.sleep(0.01)


def statuses(t: LocalTransport) -> list[dict[str, Any]]:
    return [r.status() for r in t.replicas.values()]


class Writer:
    """Leader-following writes and linearizable reads on a few keys, recorded for the checker."""

    def __init__(self, t: LocalTransport, cid: bytes = b"w") -> None:
        self.t, self.cid = t, cid
        self.seq = itertools.count(1)
        self.history: list[Operation] = []
        self.acked: dict[bytes, bytes] = {}

    async def _on_leader(self, call: Callable[[Replica], Any], timeout: float = 1.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for r in leaders(self.t):
                try:
                    return await asyncio.wait_for(call(r), deadline - time.monotonic())
                except (NotLeader, TimeoutError):
                    pass
            await asyncio.sleep(0.01)
        raise TimeoutError

    async def put(self, key: bytes, value: bytes) -> Any:
        seq = next(self.seq)
        data = encode_request(Request(self.cid, seq, seq, PutOp(key, value)))

        async def go(r: Replica) -> Any:
            [res] = await r.propose([data])
            if isinstance(res, NotLeader):
                raise res
            return res

        return await self._on_leader(go)

    async def run(self, stop: asyncio.Event) -> None:
        for n in itertools.count():
            if stop.is_set():
                return
            key = b"/lin/k%d" % (n % 3)
            call = time.monotonic_ns()
            try:
                if n % 4 == 3:
                    res = await self._on_leader(lambda r, k=key: r.range(RangeOp(k)))  # type: ignore[misc]
                    kv = res.kvs[0] if res.kvs else None
                    out: Any = (kv.value, kv.mod_revision) if kv else (None, 0)
                    self.history.append(Operation(0, ("get", key), call, out, time.monotonic_ns()))
                    continue
                value = b"v%d" % n
                res = await self.put(key, value)
            except (TimeoutError, NotServing):
                if n % 4 != 3:
                    self.history.append(Operation(0, ("put", key, value), call, None, UNKNOWN_RETURN))
                continue
            assert not isinstance(res, StoreError), res
            self.history.append(Operation(0, ("put", key, value), call, res.revision, time.monotonic_ns()))
            try:
                unique = await self.put(b"/ack/%d" % n, value)  # acknowledged: must survive everything
            except (TimeoutError, NotServing):
                continue
            assert unique.revision > 0, unique
            self.acked[b"/ack/%d" % n] = value


def lost(t: LocalTransport, leader: Replica, acked: dict[bytes, bytes]) -> list[bytes]:
    return [k for k, v in acked.items() if k.startswith(b"/ack/") and _value(leader, k) != v]


def _value(r: Replica, key: bytes) -> bytes | None:
    res = r.mvcc.range(RangeOp(key))
    return res.kvs[0].value if res.kvs else None


def test_fsync_failure_on_the_leader_elects_another_and_loses_nothing(tmp_path: Path) -> None:
    async def scenario() -> None:
        fatal: list[str] = []
        t = cluster(tmp_path, fatal)
        await until("a leader", lambda: len(leaders(t)) == 1, lambda: statuses(t))
        writer, stop = Writer(t), asyncio.Event()
        task = asyncio.create_task(writer.run(stop))
        await asyncio.sleep(0.3)
        old = leaders(t)[0]
        old.inject_fault("fsync")
        await until("the leader to fail stop", lambda: old.failed is not None, lambda: statuses(t))
        assert old.status()["state"].startswith("failed: persist failed"), old.status()
        assert fatal and "injected fsync failure" in fatal[0], fatal
        await until("a new leader", lambda: any(r is not old for r in leaders(t)), lambda: statuses(t))
        acked_before = len(writer.acked)
        more = lambda: len(writer.acked) > acked_before + 5  # noqa: E731
        await until("writes on the new leader", more, lambda: statuses(t))
        # Ray restarts the process: the WAL replays and the replica catches up.
        await old.close()
        restarted = replica(t, old.id, tmp_path / f"r{old.id}", EmptyStart.REFUSE, fatal)
        await asyncio.sleep(0.3)
        stop.set()
        await asyncio.wait_for(task, 10)
        reps = list(t.replicas.values())
        await until(
            "convergence", lambda: len({r.kv_hash() for r in reps}) == 1, lambda: [r.kv_hash() for r in reps]
        )
        assert restarted.status()["state"] == "ok"
        [leader] = leaders(t)
        assert not lost(t, leader, writer.acked), "acknowledged writes lost"
        assert check_operations(kv_model(), writer.history, timeout_s=60) == CheckResult.OK
        for r in reps:
            await r.close()

    asyncio.run(scenario())


def test_apply_failure_stops_the_replica_and_never_diverges(tmp_path: Path) -> None:
    async def scenario() -> None:
        fatal: list[str] = []
        t = cluster(tmp_path, fatal)
        await until("a leader", lambda: len(leaders(t)) == 1, lambda: statuses(t))
        writer, stop = Writer(t), asyncio.Event()
        task = asyncio.create_task(writer.run(stop))
        await asyncio.sleep(0.2)
        victim = next(r for r in t.replicas.values() if r.role.name != "LEADER")
        victim.inject_fault("apply")
        # Sample every replica's (revision -> hash) while writes go on: never two hashes at one revision.
        seen: dict[int, set[int]] = {}
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            for r in t.replicas.values():
                _applied, rev, h = r.kv_hash()
                seen.setdefault(rev, set()).add(h)
            await asyncio.sleep(0.005)
        assert victim.failed is not None and "injected apply failure" in victim.failed, victim.status()
        assert victim.status()["state"].startswith("failed: apply failed"), victim.status()
        diverged = {rev: hs for rev, hs in seen.items() if len(hs) > 1}
        assert not diverged, f"replicas disagree at revisions {sorted(diverged)[:5]}"
        await victim.close()
        restarted = replica(t, victim.id, tmp_path / f"r{victim.id}", EmptyStart.REFUSE, fatal)
        await asyncio.sleep(0.3)
        stop.set()
        await asyncio.wait_for(task, 10)
        reps = list(t.replicas.values())
        await until(
            "convergence", lambda: len({r.kv_hash() for r in reps}) == 1, lambda: [r.kv_hash() for r in reps]
        )
        assert restarted.failed is None
        for r in reps:
            await r.close()

    asyncio.run(scenario())


def test_replica_moved_to_an_empty_data_dir_does_not_vote_and_loses_nothing(tmp_path: Path) -> None:
    """The stale-leader scenario: Y is cut off while L and X acknowledge writes; X's disk is lost
    and it comes back empty; L dies. Were X to vote as a fresh member, Y (without the writes) would
    win and the writes a quorum acknowledged would be gone once L returns."""

    async def scenario() -> None:
        t = cluster(tmp_path)
        await until("a leader", lambda: len(leaders(t)) == 1, lambda: statuses(t))
        lead = leaders(t)[0]
        x, y = (r for r in t.replicas.values() if r is not lead)
        writer, stop = Writer(t), asyncio.Event()
        task = asyncio.create_task(writer.run(stop))
        y.blocked = {lead.id, x.id}
        lead.blocked, x.blocked = {y.id}, {y.id}
        await until("writes acknowledged by L and X", lambda: len(writer.acked) > 20, lambda: statuses(t))
        # X moves to a fresh data directory (Ray restarted it elsewhere): it must await replacement.
        await x.close()
        x2 = replica(t, x.id, tmp_path / "x-elsewhere", EmptyStart.REFUSE)
        assert x2.status()["state"].startswith("awaiting replacement"), x2.status()
        await lead.close()
        y.blocked = set()
        await asyncio.sleep(1.0)  # ten election timeouts: Y alone must not win
        assert not leaders(t), f"a leader without a quorum of real logs: {statuses(t)}"
        # L comes back from its WAL; with Y it has a quorum, and the log with the writes wins.
        lead2 = replica(t, lead.id, tmp_path / f"r{lead.id}", EmptyStart.REFUSE)
        await until("a leader", lambda: len(leaders(t)) == 1, lambda: statuses(t))
        # Replace X through a membership change: remove it, add a new member (id 4) that joins empty.
        leader = leaders(t)[0]
        await asyncio.wait_for(leader.change_membership(ConfChange(ConfChangeType.REMOVE_NODE, x.id)), 5)
        await x2.close()
        del t.replicas[x.id]
        await asyncio.wait_for(leader.change_membership(ConfChange(ConfChangeType.ADD_NODE, 4)), 5)
        newcomer = replica(t, 4, tmp_path / "r4", EmptyStart.JOIN)
        await asyncio.sleep(0.3)
        stop.set()
        await asyncio.wait_for(task, 10)
        reps = [lead2, y, newcomer]
        await until(
            "convergence", lambda: len({r.kv_hash() for r in reps}) == 1, lambda: [r.kv_hash() for r in reps]
        )
        assert not lost(t, leaders(t)[0], writer.acked), "acknowledged writes lost"
        assert check_operations(kv_model(), writer.history, timeout_s=60) == CheckResult.OK
        for r in reps:
            await r.close()

    asyncio.run(scenario())
