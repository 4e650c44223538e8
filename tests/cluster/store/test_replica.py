"""The replica host without Ray: three ``Replica`` objects in one event loop, wired by a local transport.

Covers the I/O shell around the pure cores: persist → send → apply → advance, ReadIndex reads,
exactly-once retries, leader failover, restart from the write-ahead log, watch, lease expiry.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from cluster.store.membership import EmptyStart
from cluster.store.mvcc import LeaseGrantOp, PutOp, RangeOp, Request, encode_request, prefix_end
from cluster.store.raft.types import Message
from cluster.store.replica import NotLeader, Replica, ReplicaOptions

FAST = ReplicaOptions(tick_seconds=0.01, election_tick=10, snapshot_entries=50, keep_entries=10)


class LocalTransport:
    def __init__(self) -> None:
        self.replicas: dict[int, Replica] = {}
        self.down: set[int] = set()

    def send(self, to: int, messages: list[Message]) -> None:
        r = self.replicas.get(to)
        if r is not None and to not in self.down:
            r.deliver(messages)


async def start(tmp: Path, transport: LocalTransport, ids: tuple[int, ...] = (1, 2, 3)) -> dict[int, Replica]:
    for i in ids:
        r = Replica(i, [1, 2, 3], tmp / f"r{i}", transport, FAST, empty_start=EmptyStart.BOOTSTRAP)
        transport.replicas[i] = r
        r.start()
    return transport.replicas


async def leader_of(replicas: dict[int, Replica], timeout: float = 10.0) -> Replica:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        leaders = [r for r in replicas.values() if r.role.name == "LEADER" and not r._closed]
        if len(leaders) == 1:
            return leaders[0]
        await asyncio.sleep(0.02)
    raise AssertionError(f"no leader in {timeout}s: {[r.status() for r in replicas.values()]}")


async def put(r: Replica, key: bytes, value: bytes, client: bytes = b"c", seq: int = 1) -> object:
    res = await r.propose([encode_request(Request(client, seq, seq, PutOp(key, value)))])
    return res[0]


def test_replicate_read_failover_restart(tmp_path: Path) -> None:
    async def scenario() -> None:
        t = LocalTransport()
        reps = await start(tmp_path, t)
        leader = await leader_of(reps)
        for i in range(120):  # crosses several snapshots (snapshot_entries=50)
            res = await put(leader, f"/k/{i:03d}".encode(), b"v%d" % i, seq=i + 1)
            assert getattr(res, "revision", 0) > 0, res
        # A retry of an applied request returns the remembered result, not a second write.
        again = await put(leader, b"/k/005", b"other", seq=6)
        assert again == await put(leader, b"/k/005", b"other", seq=6)
        got = await leader.range(RangeOp(b"/k/005"))
        assert got.kvs[0].value == b"v5" and got.kvs[0].version == 1

        follower = next(r for r in reps.values() if r is not leader)
        with pytest.raises(NotLeader):
            await follower.range(RangeOp(b"/k/000"))

        # Watch from the start sees all 120 puts in order.
        events, _rev, _ = await follower.wait_events(b"/k/", prefix_end(b"/k/"), 2, timeout=2.0, limit=0)
        assert [e.kv.key for e in events] == [f"/k/{i:03d}".encode() for i in range(120)]

        # Stop the leader: the others elect a new one and keep serving.
        old = leader.id
        t.down.add(old)
        await leader.close()
        new = await leader_of({k: v for k, v in reps.items() if k != old})
        assert new.id != old
        res = await put(new, b"/after", b"failover", client=b"d", seq=1)
        assert getattr(res, "revision", 0) > 0

        # Restart the old leader from its WAL: it catches up (by snapshot or log) and agrees.
        t.down.discard(old)
        r = Replica(old, [1, 2, 3], tmp_path / f"r{old}", t, FAST)
        t.replicas[old] = r
        r.start()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while loop.time() < deadline and len({x.kv_hash() for x in t.replicas.values()}) != 1:
            await asyncio.sleep(0.05)
        hashes = [x.kv_hash() for x in t.replicas.values()]
        assert len(set(hashes)) == 1, f"no convergence in 10 s: (applied, revision, hash) {hashes}"
        assert r.mvcc.range(RangeOp(b"/after")).kvs[0].value == b"failover"
        for x in t.replicas.values():
            await x.close()

    asyncio.run(scenario())


def test_lease_expires_on_the_leader_clock(tmp_path: Path) -> None:
    async def scenario() -> None:
        t = LocalTransport()
        reps = await start(tmp_path, t)
        leader = await leader_of(reps)
        [grant] = await leader.propose([encode_request(Request(b"", 0, 0, LeaseGrantOp(7, 1)))])
        assert grant.id == 7
        [res] = await leader.propose([encode_request(Request(b"", 0, 0, PutOp(b"/leased", b"x", lease=7)))])
        assert res.revision > 0
        assert leader.lease_keepalive(7) == 1
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5
        while loop.time() < deadline and leader.mvcc.range(RangeOp(b"/leased")).kvs:
            await asyncio.sleep(0.05)
        assert not leader.mvcc.range(RangeOp(b"/leased")).kvs, f"lease not expired in 5 s: {leader.status()}"
        assert 7 not in leader.mvcc.leases()
        for x in reps.values():
            await x.close()

    asyncio.run(scenario())
