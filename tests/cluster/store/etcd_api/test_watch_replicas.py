"""etcd's Watch stream on replicas that change under it: a follower's watch across a leader change,
a follower that receives a snapshot past a compaction, a follower cut off from the quorum (streams
that require a leader end), a replica that stops. Helpers from ``test_watch``."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import grpc
import pytest

from cluster.store.mvcc import CompactOp, prefix_end
from cluster.store.replica import ReplicaOptions
from tests.cluster.store.etcd_api.cluster import LocalCluster, start_cluster
from tests.cluster.store.etcd_api.test_watch import Stream, put, run, served


def test_follower_watch_through_leader_change(tmp_path: Path) -> None:
    async def scenario(c: LocalCluster) -> None:
        leader = await c.leader()
        follower = await c.follower()
        other = next(x for x in c.backends.values() if x is not leader and x is not follower)
        acked: list[int] = []
        stop = asyncio.Event()

        async def writer(n0: int) -> None:
            n = n0
            while not stop.is_set():
                try:
                    acked.append(await put(follower, b"/w/%05d" % n, b"%d" % n))  # forwarded to the leader
                except (TimeoutError, Exception):
                    await asyncio.sleep(0.02)
                n += 1
                await asyncio.sleep(0)

        async with served(follower) as (addr, _):
            s = Stream(addr)
            await s.create(b"/w/", prefix_end(b"/w/"), start_revision=1)
            task = asyncio.get_running_loop().create_task(writer(0))
            while len(acked) < 50:
                await asyncio.sleep(0.01)
            # kill the leader: the other two elect a new one; the follower's watch goes on
            c.transport.down.add(leader.member_id)
            c.forwarder.down.add(leader.member_id)
            await leader.replica.close()
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 15
            while loop.time() < deadline and not (
                other.replica.role.name == "LEADER" or follower.replica.role.name == "LEADER"
            ):
                await asyncio.sleep(0.02)
            mark = len(acked)
            while len(acked) < mark + 50 and loop.time() < deadline:
                await asyncio.sleep(0.01)
            stop.set()
            await task
            assert len(acked) >= mark + 50, "no writes after the leader change"
            last = max(acked)
            got: list[Any] = []
            while not got or got[-1].kv.mod_revision < last:
                resp = await s.read()
                assert resp.events and not resp.canceled, resp
                got.extend(resp.events)
            revs = [e.kv.mod_revision for e in got]
            assert revs == sorted(set(revs)), "events out of order or repeated"
            assert set(acked) <= set(revs), (
                f"acknowledged writes missing: {sorted(set(acked) - set(revs))[:5]}"
            )
            # every revision of the store up to `last` is a put of /w/: no gap anywhere
            assert revs[: revs.index(last) + 1] == list(range(2, last + 1))
            await s.close()
        # resuming on the other replica from the middle continues without a gap either
        async with served(other) as (addr2, _):
            s2 = Stream(addr2)
            await s2.create(b"/w/", prefix_end(b"/w/"), start_revision=revs[len(revs) // 2])
            rest = await s2.events(last - revs[len(revs) // 2] + 1)
            assert [e.kv.mod_revision for e in rest] == list(range(revs[len(revs) // 2], last + 1))
            await s2.close()

    run(tmp_path, scenario, size=3)


def test_snapshot_past_a_compaction_cancels_a_lagging_follower_watch(tmp_path: Path) -> None:
    """A follower cut off while the leader writes, compacts and truncates its log receives a
    snapshot: its watchers below the new compaction point learn it (compacted), they never
    silently skip the revisions in between; a watcher above it goes on."""

    async def main() -> None:
        options = ReplicaOptions(tick_seconds=0.01, election_tick=10, snapshot_entries=40, keep_entries=5)
        c = await start_cluster(tmp_path, 3, options)
        try:
            leader = await c.leader()
            f = await c.follower()
            await put(leader, b"/n/first")  # 2
            async with served(f) as (addr, servicer):
                s = Stream(addr)
                old = await s.create(b"/n/", prefix_end(b"/n/"), start_revision=2)
                [first] = await s.events(1)
                assert first.kv.mod_revision == 2
                f.replica.blocked = set(c.backends) - {f.member_id}
                for b in c.backends.values():
                    if b is not f:
                        b.replica.blocked = {f.member_id}
                for i in range(150):
                    await put(leader, b"/n/%03d" % i)  # 3..152
                await leader.write(CompactOp(100))
                for i in range(60):  # past another snapshot, so the log the follower misses is gone
                    await put(leader, b"/m/%03d" % i)
                assert leader.replica.storage.first_index() > f.replica.applied + 1
                for b in c.backends.values():
                    b.replica.blocked = set()
                loop = asyncio.get_running_loop()
                deadline = loop.time() + 15
                while loop.time() < deadline and f.replica.mvcc.compact_revision < 100:
                    await asyncio.sleep(0.02)
                assert f.replica.mvcc.compact_revision == 100, "the follower got no snapshot"
                gone = await s.read()
                assert (gone.watch_id, gone.canceled, gone.compact_revision) == (old.watch_id, True, 100), (
                    gone
                )
                fresh = await s.create(b"/n/", prefix_end(b"/n/"), start_revision=gone.compact_revision)
                evs = await s.events(53)
                assert [e.kv.mod_revision for e in evs] == list(range(100, 153))
                assert fresh.watch_id != old.watch_id
                assert servicer.feed.watchers() == 1
                await s.close()
        finally:
            await c.close()

    asyncio.run(main())


def test_require_leader_streams_end_on_a_cut_off_replica(tmp_path: Path) -> None:
    async def scenario(c: LocalCluster) -> None:
        f = await c.follower()
        async with served(f, leader_check_interval=0.1) as (addr, servicer):
            strict = Stream(addr, metadata=(("hasleader", "true"),))
            await strict.create(b"/r")
            lenient = Stream(addr)
            await lenient.create(b"/r")
            f.replica.blocked = set(c.backends) - {f.member_id}  # hears nobody, reaches nobody
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await strict.read(timeout=15)
            assert (err.value.code(), err.value.details()) == (
                grpc.StatusCode.UNAVAILABLE,
                "etcdserver: no leader",
            )
            # a new stream that requires a leader is refused at once; one that does not is served
            refused = Stream(addr, metadata=(("hasleader", "true"),))
            with pytest.raises(grpc.aio.AioRpcError) as err2:
                await refused.create(b"/r")
            assert err2.value.details() == "etcdserver: no leader"
            f.replica.blocked = set()
            await c.leader()
            await put(await c.leader(), b"/r", b"back")
            [ev] = await lenient.events(1)
            assert ev.kv.value == b"back"
            for s in (strict, lenient, refused):
                await s.close()
            assert servicer.feed.watchers() <= 1

    run(tmp_path, scenario, size=3)


@pytest.mark.parametrize("size", [1])
def test_stream_ends_unavailable_when_the_replica_stops(tmp_path: Path, size: int) -> None:
    async def scenario(c: LocalCluster) -> None:
        b = await c.leader()
        async with served(b) as (addr, _):
            s = Stream(addr)
            await s.create(b"/s")
            b.replica._fail_stop("test: stopped", None)
            with pytest.raises(grpc.aio.AioRpcError) as err:
                while True:
                    resp = await asyncio.wait_for(s.call.read(), 10)
                    assert resp is not grpc.aio.EOF
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
            assert err.value.details() == "etcdserver: server stopped"
            await s.close()

    run(tmp_path, scenario, size)
