"""The shared watch feed over a fake event source whose feed wake-ups the test controls, so the
interleavings that matter happen every time: a watcher that catches up past the feed's position
joins without a repeat, a slow sink is set aside and caught up, a compaction past the feed's
position cancels exactly the watchers below it, and a stopped source fails every sink."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from cluster.store.etcd_api.backend import Header
from cluster.store.etcd_api.watch_feed import BACKLOG_HIGH, EventFeed, Watcher
from cluster.store.ops import Compacted, Event, EventType, KeyValue


class FakeSource:
    """An event log with a revision and a compact revision; ``wait_revision`` returns only when the
    test opens the gate (``release``), so the feed's position lags when the test wants it to."""

    def __init__(self) -> None:
        self.log: list[Event] = []
        self.revision = 1
        self.compact = 0
        self.gate = asyncio.Event()
        self.stopped: str | None = None

    def put(self, key: bytes) -> int:
        self.revision += 1
        self.log.append(Event(EventType.PUT, KeyValue(key, b"v", self.revision, self.revision, 1)))
        return self.revision

    def events(self, key: bytes, range_end: bytes, start_revision: int, limit: int = 0) -> list[Event]:
        if self.stopped:
            raise RuntimeError(self.stopped)
        if start_revision <= self.compact:
            raise Compacted(self.compact)
        return [e for e in self.log if e.kv.mod_revision >= start_revision]

    async def wait_revision(self, after: int, timeout: float | None) -> int:
        while self.revision <= after or not self.gate.is_set():
            if self.stopped:
                raise RuntimeError(self.stopped)
            await self.gate.wait()
            if self.revision <= after:
                self.gate.clear()
        self.gate.clear()
        return self.revision

    def header(self, revision: int | None = None) -> Header:
        return Header(1, 1, self.revision if revision is None else revision, 1)

    def release(self) -> None:
        self.gate.set()


class Sink:
    def __init__(self) -> None:
        self.got: dict[int, list[int]] = {}
        self.compacted_at: dict[int, int] = {}
        self.failures: list[str] = []
        self.queue = 0  # pretend backlog

    def deliver(self, watcher: Watcher, events: Sequence[Event], revision: int) -> None:
        assert all(e.kv.mod_revision <= revision for e in events)
        self.got.setdefault(watcher.id, []).extend(e.kv.mod_revision for e in events)

    def compacted(self, watcher: Watcher, compact_revision: int) -> None:
        self.compacted_at[watcher.id] = compact_revision

    def failed(self, reason: str) -> None:
        self.failures.append(reason)

    def backlog(self) -> int:
        return self.queue

    def synced(self) -> None:
        pass


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


def test_catching_up_past_the_feed_repeats_nothing() -> None:
    async def scenario() -> None:
        src, sink = FakeSource(), Sink()
        for _ in range(9):
            src.put(b"/a")  # 2..10
        feed = EventFeed(src)
        live = Watcher(1, b"/a", b"", 11, sink)
        feed.add(live)  # the feed starts at 10
        await settle()
        assert feed.pos == 10 and live.synced
        for _ in range(5):
            src.put(b"/a")  # 11..15, the feed not woken yet
        old = Watcher(2, b"/a", b"", 2, sink)
        feed.add(old)
        await settle()
        assert old.synced and feed.pos == 10  # caught up through 15, ahead of the feed
        assert sink.got[2] == list(range(2, 16))
        src.release()
        await settle()
        assert feed.pos == 15
        src.put(b"/a")
        src.release()
        await settle()
        assert sink.got[1] == list(range(11, 17))
        assert sink.got[2] == list(range(2, 17)), "a revision handed out twice or skipped"
        await feed.close()

    asyncio.run(scenario())


def test_slow_sink_is_set_aside_and_caught_up() -> None:
    async def scenario() -> None:
        src, slow, fast = FakeSource(), Sink(), Sink()
        feed = EventFeed(src)
        a, b = Watcher(1, b"/a", b"", 2, slow), Watcher(2, b"/a", b"", 2, fast)
        feed.add(a)
        feed.add(b)
        await settle()
        slow.queue = BACKLOG_HIGH + 1
        for _ in range(3):
            src.put(b"/a")
            src.release()
            await settle()
        assert feed.set_aside == 1 and not a.synced and b.synced
        assert slow.got[1] == [2] and fast.got[2] == [2, 3, 4]
        slow.queue = 0
        feed.resync(slow)
        await settle()
        assert a.synced and slow.got[1] == [2, 3, 4]
        await feed.close()

    asyncio.run(scenario())


def test_compaction_past_the_feed_cancels_only_watchers_below_it() -> None:
    async def scenario() -> None:
        src, sink = FakeSource(), Sink()
        feed = EventFeed(src)
        below = Watcher(1, b"/a", b"", 2, sink)
        feed.add(below)
        await settle()
        for _ in range(10):
            src.put(b"/a")  # 2..11, the feed not woken
        src.compact = 6  # a snapshot installed past a compaction at 6
        src.log = [e for e in src.log if e.kv.mod_revision > 6]
        above = Watcher(2, b"/a", b"", 8, sink)
        feed.add(above)
        await settle()
        src.release()
        await settle()
        assert sink.compacted_at == {1: 6}
        assert sink.got[2] == [8, 9, 10, 11]
        assert feed.watchers() == 1
        await feed.close()

    asyncio.run(scenario())


def test_a_stopped_source_fails_every_sink_and_leaves_no_task() -> None:
    async def scenario() -> None:
        src, s1, s2 = FakeSource(), Sink(), Sink()
        feed = EventFeed(src)
        feed.add(Watcher(1, b"/a", b"", 2, s1))
        feed.add(Watcher(2, b"/b", b"", 2, s2))
        await settle()
        src.stopped = "replica not serving"
        src.put(b"/a")
        src.release()
        await settle()
        assert s1.failures and s2.failures and feed.watchers() == 0
        assert feed._feed_task is None and feed._sync_task is None
        assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("etcd-watch")]

    asyncio.run(scenario())
