"""etcd's Watch stream over real Replicas (no Ray), served with real gRPC on loopback.

Each test drives the stream through the generated stubs the way clientv3 does (one stream, many
watches) and checks what etcd sends: created first, events in revision order with nothing lost or
repeated, filters, prev_kv, cancel, compaction, progress, fragments; then that a client leaving
leaves nothing behind. ``test_watch_replicas.py`` changes the replicas under a watch;
``test_watch_etcdctl.py`` checks the same through the real etcdctl 3.4.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import grpc

from cluster.store.etcd_api.backend import ReplicaBackend
from cluster.store.etcd_api.watch import (
    ERR_COMPACTED,
    ERR_DUPLICATE_ID,
    ERR_EMPTY_RANGE,
    WatchServicer,
    fragments,
)
from cluster.store.etcdpb import kv_pb2, rpc_pb2, rpc_pb2_grpc
from cluster.store.mvcc import CompactOp, DeleteRangeOp, PutOp, TxnOp, prefix_end
from tests.cluster.store.etcd_api.cluster import LocalCluster, start_cluster

NOPUT = rpc_pb2.WatchCreateRequest.NOPUT
NODELETE = rpc_pb2.WatchCreateRequest.NODELETE


@asynccontextmanager
async def served(backend: ReplicaBackend, **options: Any) -> AsyncIterator[tuple[str, WatchServicer]]:
    """The backend's Watch service on 127.0.0.1 (a free port): (address, servicer)."""
    server = grpc.aio.server()
    servicer = WatchServicer(backend, **options)
    rpc_pb2_grpc.add_WatchServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield f"127.0.0.1:{port}", servicer
    finally:
        await server.stop(None)
        await servicer.feed.close()


class Stream:
    """A client side of one Watch call."""

    def __init__(
        self,
        address: str,
        options: list[tuple[str, Any]] | None = None,
        metadata: tuple[tuple[str, str], ...] = (),
    ) -> None:
        self.channel = grpc.aio.insecure_channel(address, options=options)
        self.call = rpc_pb2_grpc.WatchStub(self.channel).Watch(metadata=metadata)  # type: ignore[no-untyped-call]

    async def create(self, key: bytes, range_end: bytes = b"", **fields: Any) -> rpc_pb2.WatchResponse:
        req = rpc_pb2.WatchCreateRequest(key=key, range_end=range_end, **fields)
        await self.call.write(rpc_pb2.WatchRequest(create_request=req))
        resp = await self.read()
        assert resp.created, resp
        return resp

    async def send(self, **request: Any) -> None:
        await self.call.write(rpc_pb2.WatchRequest(**request))

    async def read(self, timeout: float = 10.0) -> rpc_pb2.WatchResponse:
        resp = await asyncio.wait_for(self.call.read(), timeout)
        assert resp is not grpc.aio.EOF, "the server ended the stream"
        assert isinstance(resp, rpc_pb2.WatchResponse)
        return resp

    async def events(self, count: int, watch_id: int | None = None) -> list[Any]:
        """Read responses until ``count`` events arrived; every response must be an event response."""
        got: list[Any] = []
        while len(got) < count:
            resp = await self.read()
            assert resp.events and not resp.created and not resp.canceled, resp
            if watch_id is not None:
                assert resp.watch_id == watch_id
            assert resp.header.revision >= resp.events[-1].kv.mod_revision
            got.extend(resp.events)
        assert len(got) == count, got
        return got

    async def close(self) -> None:
        self.call.cancel()
        await self.channel.close()


async def put(b: ReplicaBackend, key: bytes, value: bytes = b"v") -> int:
    res = await b.write(PutOp(key, value))
    return int(res.revision)  # type: ignore[union-attr]


def keys(events: list[Any]) -> list[bytes]:
    return [e.kv.key for e in events]


def run(tmp: Path, scenario: Any, size: int = 1) -> None:
    async def main() -> None:
        c = await start_cluster(tmp, size)
        try:
            await scenario(c)
        finally:
            await c.close()

    asyncio.run(main())


def test_history_then_live_events_in_order(tmp_path: Path) -> None:
    async def scenario(c: LocalCluster) -> None:
        b = await c.leader()
        for i in range(5):
            await put(b, b"/k/%d" % i, b"v%d" % i)  # revisions 2..6
        await put(b, b"/other", b"x")  # 7: outside the prefix
        async with served(b) as (addr, _):
            s = Stream(addr)
            created = await s.create(b"/k/", prefix_end(b"/k/"), start_revision=3)
            assert created.watch_id == 0 and created.header.revision == 7
            assert created.header.member_id == b.member_id and created.header.cluster_id == b.cluster_id
            replay = await s.events(4, watch_id=0)
            assert keys(replay) == [b"/k/1", b"/k/2", b"/k/3", b"/k/4"]
            assert [e.kv.mod_revision for e in replay] == [3, 4, 5, 6]
            await put(b, b"/k/1", b"again")
            await b.write(DeleteRangeOp(b"/k/2"))
            live = await s.events(2)
            assert [(e.type, e.kv.key, e.kv.mod_revision) for e in live] == [(0, b"/k/1", 8), (1, b"/k/2", 9)]
            assert live[0].kv.version == 2 and live[0].kv.value == b"again"
            assert not live[0].HasField("prev_kv")  # not asked for
            # start_revision 0: from after the created response's revision
            s2 = Stream(addr)
            now = await s2.create(b"/k/1")
            assert now.header.revision == 9
            await put(b, b"/k/1", b"third")
            [ev] = await s2.events(1)
            assert ev.kv.mod_revision == 10
            # a client that half-closes keeps receiving, as from etcd
            await s2.call.done_writing()
            await put(b, b"/k/1", b"fourth")
            [ev] = await s2.events(1)
            assert ev.kv.mod_revision == 11
            await s.close()
            await s2.close()

    run(tmp_path, scenario)


def test_filters_prev_kv_and_ranges(tmp_path: Path) -> None:
    async def scenario(c: LocalCluster) -> None:
        b = await c.leader()
        async with served(b) as (addr, _):
            s = Stream(addr)
            noput = await s.create(b"/f/", prefix_end(b"/f/"), filters=[NOPUT], prev_kv=True)
            nodel = await s.create(b"/f/", prefix_end(b"/f/"), filters=[NODELETE])
            fromkey = await s.create(b"/f/b", b"\0")  # every key >= /f/b
            assert (noput.watch_id, nodel.watch_id, fromkey.watch_id) == (0, 1, 2)
            await put(b, b"/f/a", b"1")  # 2
            await put(b, b"/f/b", b"2")  # 3
            await b.write(DeleteRangeOp(b"/f/a"))  # 4
            await b.write(
                TxnOp(success=(PutOp(b"/f/a", b"3"), PutOp(b"/g", b"4")))
            )  # 5: two keys, one revision
            by_id: dict[int, list[Any]] = {0: [], 1: [], 2: []}
            while len(by_id[0]) < 1 or len(by_id[1]) < 3 or len(by_id[2]) < 2:
                resp = await s.read()
                by_id[resp.watch_id].extend(resp.events)
            [deleted] = by_id[0]
            assert deleted.type == 1 and deleted.kv.key == b"/f/a" and deleted.kv.mod_revision == 4
            assert deleted.prev_kv.value == b"1" and deleted.prev_kv.mod_revision == 2
            assert [(e.kv.key, e.kv.mod_revision) for e in by_id[1]] == [
                (b"/f/a", 2),
                (b"/f/b", 3),
                (b"/f/a", 5),
            ]
            assert [(e.kv.key, e.kv.mod_revision) for e in by_id[2]] == [(b"/f/b", 3), (b"/g", 5)]
            # prev_kv on a put that replaced a version
            s2 = Stream(addr)
            await s2.create(b"/f/b", prev_kv=True)
            await put(b, b"/f/b", b"new")
            [ev] = await s2.events(1)
            assert ev.prev_kv.value == b"2" and ev.kv.value == b"new"
            await s.close()
            await s2.close()

    run(tmp_path, scenario)


def test_ids_cancel_and_errors(tmp_path: Path) -> None:
    async def scenario(c: LocalCluster) -> None:
        b = await c.leader()
        async with served(b) as (addr, servicer):
            s = Stream(addr)
            a = await s.create(b"/a")
            mine = await s.create(b"/b", watch_id=7)
            auto = await s.create(b"/c")
            assert (a.watch_id, mine.watch_id, auto.watch_id) == (0, 7, 1)
            dup = await s.create(b"/d", watch_id=7)
            assert (dup.watch_id, dup.canceled, dup.cancel_reason) == (-1, True, ERR_DUPLICATE_ID)
            empty = await s.create(b"/z", b"/a")
            assert (empty.watch_id, empty.canceled, empty.cancel_reason) == (-1, True, ERR_EMPTY_RANGE)
            negative = await s.create(b"/a", start_revision=-1)
            assert (negative.watch_id, negative.canceled, negative.cancel_reason) == (-1, True, ERR_COMPACTED)
            await s.send(cancel_request=rpc_pb2.WatchCancelRequest(watch_id=0))
            gone = await s.read()
            assert (gone.watch_id, gone.canceled, gone.created) == (0, True, False)
            await s.send(cancel_request=rpc_pb2.WatchCancelRequest(watch_id=42))  # unknown: no answer
            await put(b, b"/a", b"x")  # canceled watch: nothing
            await put(b, b"/b", b"y")
            [ev] = await s.events(1, watch_id=7)
            assert ev.kv.key == b"/b"
            # automatic ids only grow (etcd's nextID): a freed id is not handed out again
            again = await s.create(b"/e")
            assert again.watch_id == 2
            assert servicer.feed.watchers() == 3
            await s.close()

    run(tmp_path, scenario)


def test_compacted_start_revision(tmp_path: Path) -> None:
    async def scenario(c: LocalCluster) -> None:
        b = await c.leader()
        for i in range(6):
            await put(b, b"/c", b"%d" % i)  # revisions 2..7
        await b.write(CompactOp(5))
        async with served(b) as (addr, servicer):
            s = Stream(addr)
            created = await s.create(b"/c", start_revision=3)
            assert created.watch_id == 0 and not created.canceled
            gone = await s.read()
            assert gone.watch_id == 0 and gone.canceled and gone.compact_revision == 5, gone
            assert not gone.events and gone.header.revision == 0
            # compact_revision is where a watch can start again
            ok = await s.create(b"/c", start_revision=gone.compact_revision)
            assert ok.watch_id == 1 and not ok.canceled
            evs = await s.events(3, watch_id=1)
            # from the compact revision itself: the version written there that compaction kept, as etcd
            assert [e.kv.mod_revision for e in evs] == [5, 6, 7]
            assert [e.kv.value for e in evs] == [b"3", b"4", b"5"] and not evs[0].HasField("prev_kv")
            assert servicer.feed.watchers() == 1
            await s.close()

    run(tmp_path, scenario)


def test_progress_request_and_progress_notify(tmp_path: Path) -> None:
    async def scenario(c: LocalCluster) -> None:
        b = await c.leader()
        for i in range(3):
            await put(b, b"/p/%d" % i)  # 2..4
        async with served(b, progress_interval=0.2) as (addr, _):
            s = Stream(addr)
            await s.send(progress_request=rpc_pb2.WatchProgressRequest())  # no watch: at once
            first = await s.read()
            assert (first.watch_id, first.header.revision, len(first.events)) == (-1, 4, 0)
            await s.create(b"/p/", prefix_end(b"/p/"), start_revision=2)
            await s.send(progress_request=rpc_pb2.WatchProgressRequest())
            # the progress response never overtakes the replayed events
            evs = await s.events(3, watch_id=0)
            assert [e.kv.mod_revision for e in evs] == [2, 3, 4]
            progress = await s.read()
            assert (progress.watch_id, progress.header.revision, list(progress.events)) == (-1, 4, [])
            # progress_notify: an idle watch hears its revision every interval
            s2 = Stream(addr)
            w = await s2.create(b"/q", progress_notify=True)
            await put(b, b"/p/x")  # 5: not in /q's range, moves its progress on
            note = await s2.read()
            assert note.watch_id == w.watch_id and not note.events and not note.created
            assert note.header.revision in (4, 5)
            while note.header.revision < 5:
                note = await s2.read()
            assert note.header.revision == 5 and note.watch_id == w.watch_id
            await s.close()
            await s2.close()

    run(tmp_path, scenario)


def test_fragments_split_large_batches(tmp_path: Path) -> None:
    async def scenario(c: LocalCluster) -> None:
        b = await c.leader()
        value = b"x" * 300
        await b.write(TxnOp(success=tuple(PutOp(b"/big/%02d" % i, value) for i in range(20))))  # one revision
        async with served(b, max_response_bytes=2000) as (addr, _):
            s = Stream(addr)
            await s.create(b"/big/", prefix_end(b"/big/"), start_revision=2, fragment=True)
            parts = []
            while True:
                resp = await s.read()
                parts.append(resp)
                if not resp.fragment:
                    break
            assert len(parts) >= 3 and all(p.fragment for p in parts[:-1])
            assert all(p.watch_id == 0 and p.header.revision == 2 for p in parts)
            assert all(p.ByteSize() < 2000 for p in parts)
            got = [e.kv.key for p in parts for e in p.events]
            assert got == [b"/big/%02d" % i for i in range(20)]
            # without fragment the same revision comes whole
            whole = await s.create(b"/big/", prefix_end(b"/big/"), start_revision=2)
            resp = await s.read()
            assert resp.watch_id == whole.watch_id and len(resp.events) == 20 and not resp.fragment
            await s.close()

    run(tmp_path, scenario)


def test_client_leaving_leaves_nothing(tmp_path: Path) -> None:
    def ours() -> list[asyncio.Task[Any]]:
        # the feed, sync, reader, progress and leader tasks are all named etcd-watch-*; a count
        # of every task would also see the replica's own short-lived wait_for tasks
        return [t for t in asyncio.all_tasks() if t.get_name().startswith("etcd-watch")]

    async def scenario(c: LocalCluster) -> None:
        b = await c.leader()
        async with served(b, progress_interval=0.1) as (addr, servicer):
            streams = [Stream(addr, metadata=(("hasleader", "true"),)) for _ in range(3)]
            for s in streams:
                for k in (b"/x", b"/y"):
                    await s.create(k, progress_notify=True)
            await put(b, b"/x")
            assert servicer.streams == 3 and servicer.feed.watchers() == 6
            names = sorted({t.get_name() for t in ours()})
            assert names == [
                "etcd-watch-feed",
                "etcd-watch-leader",
                "etcd-watch-progress",
                "etcd-watch-reader",
                "etcd-watch-sync",
            ], names
            for s in streams:
                await s.close()
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 10
            while loop.time() < deadline and (servicer.streams or ours()):
                await asyncio.sleep(0.05)
            assert servicer.streams == 0 and servicer.feed.watchers() == 0
            assert not ours(), ours()

    run(tmp_path, scenario)


def test_many_watchers_one_feed(tmp_path: Path) -> None:
    async def scenario(c: LocalCluster) -> None:
        b = await c.leader()
        async with served(b) as (addr, servicer):
            streams = [Stream(addr) for _ in range(16)]
            for s in streams:
                await s.create(b"/m/", prefix_end(b"/m/"))
            writes = [put(b, b"/m/%03d" % i, b"v") for i in range(200)]
            revs = sorted(await asyncio.gather(*writes))
            for s in streams:
                got = await s.events(200)
                assert [e.kv.mod_revision for e in got] == revs
                await s.close()
            assert servicer.feed.watchers() <= 16

    run(tmp_path, scenario)


def test_slow_client_is_set_aside_then_caught_up(tmp_path: Path) -> None:
    async def scenario(c: LocalCluster) -> None:
        b = await c.leader()
        async with served(b) as (addr, servicer):
            slow = Stream(addr, [("grpc.http2.bdp_probe", 0)])  # HTTP/2 window stays at 64 KiB
            await slow.create(b"/s/", prefix_end(b"/s/"))
            fast = Stream(addr)
            await fast.create(b"/s/", prefix_end(b"/s/"))
            revs = []
            fast_got: list[Any] = []
            for i in range(600):  # one batch each; the slow client reads nothing meanwhile
                revs.append(await put(b, b"/s/%04d" % i, b"x" * 2048))
                if i % 50 == 49:
                    fast_got.extend(await fast.events(50))
            assert [e.kv.mod_revision for e in fast_got] == revs
            assert servicer.feed.set_aside >= 1, "the slow stream was never taken off the feed"
            got = await slow.events(600)  # now it reads: history first, then the feed again
            assert [e.kv.mod_revision for e in got] == revs
            await put(b, b"/s/live")
            [live] = await slow.events(1)
            assert live.kv.key == b"/s/live"
            await slow.close()
            await fast.close()

    run(tmp_path, scenario)


def _check_split(whole: rpc_pb2.WatchResponse, parts: list[rpc_pb2.WatchResponse], max_bytes: int) -> None:
    """The rule etcd documents for ``fragment`` (WatchCreateRequest.fragment, WatchResponse.fragment),
    stated as properties that fix the split: a response under the limit, or with fewer than two events,
    goes whole; otherwise the events go in order in parts that each stay under the limit unless they
    hold one event, each part as full as the limit allows (the next event would not fit), and every part
    but the last says ``fragment``."""
    if whole.ByteSize() < max_bytes or len(whole.events) < 2:
        assert parts == [whole]
        return
    assert [e for p in parts for e in p.events] == list(whole.events)
    assert [p.fragment for p in parts] == [True] * (len(parts) - 1) + [False]
    for i, part in enumerate(parts):
        assert part.header == whole.header and part.watch_id == whole.watch_id
        assert part.events, "an empty part"
        assert len(part.events) == 1 or part.ByteSize() < max_bytes
        if i + 1 < len(parts):
            fuller = rpc_pb2.WatchResponse()
            fuller.CopyFrom(part)
            fuller.events.append(parts[i + 1].events[0])
            assert fuller.ByteSize() >= max_bytes, "a part that had room for the next event"


def test_fragments_follow_etcds_rule() -> None:
    rng = random.Random(17)
    for _ in range(300):
        n = rng.randint(0, 30)
        events = [
            kv_pb2.Event(
                kv=kv_pb2.KeyValue(key=b"/k/%d" % i, value=b"v" * rng.choice([0, 5, 120, 200, 1000, 3000]))
            )
            for i in range(n)
        ]
        wr = rpc_pb2.WatchResponse(
            header=rpc_pb2.ResponseHeader(revision=rng.randint(1, 1 << 40)), watch_id=3
        )
        wr.events.extend(events)
        max_bytes = rng.choice([50, 300, 1000, 2500, 10_000])
        _check_split(wr, fragments(wr, max_bytes), max_bytes)
