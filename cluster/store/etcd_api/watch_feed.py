"""One shared event feed per replica, fanned out to every watcher of every Watch stream.

The gRPC side (``cluster.store.etcd_api.watch``) turns what this module hands it into etcd's
``WatchResponse`` messages; here is only the bookkeeping that makes a watch ordered, gap-free and
duplicate-free, the way etcd's ``watchableStore`` does it:

* A watcher is **synced** when everything below its ``next_rev`` has been handed to its stream
  and the feed's position is at least ``next_rev - 1``: the feed's single task then delivers it
  the new events of each applied batch (one ``wait_revision`` for the whole replica, not a
  long-poll per watcher).
* A watcher is **unsynced** while it replays history (a start revision in the past), or after
  its stream fell behind (a slow client: etcd's "victims"). The sync task reads its events from
  the replica's event log in chunks and moves it to the synced set once it has caught up with
  the feed; reading and joining happen in one loop step, so nothing falls in between. A
  watcher's ``next_rev`` only grows, so an event already handed out is never handed out again.
* A ``next_rev`` at or below the compact revision ``c`` (``MVCCStore.events`` keeps the events
  above it) ends the watcher with ``Sink.compacted(watcher, c)``, etcd's number. (A watch that
  starts exactly at ``c`` is served from a range read by the stream before it joins the feed,
  with ``next_rev`` ``c + 1``, as etcd serves it.)
* ``progress_rev``: every event of the watcher's range at or below it has been handed to the
  stream; progress notifications carry it.

Events are handed out per applied batch: one call per watcher and batch with every matching
event of the batch, whole revisions only, and the batch's revision (header revision: the store
revision the batch was read at, so a response also says "complete up to here").

Everything runs on the replica's event loop; the feed's tasks start with the first watcher and
are cancelled when the last one goes, so an idle server runs no task of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from cluster.store.etcd_api.backend import Header
from cluster.store.ops import Compacted, Event, EventType

log = logging.getLogger("raykube.store.watch")

ALL_KEYS = (b"\0", b"\0")
"""(key, range_end) selecting every key: etcd's "\\0" range end means "every key >= key"."""

FEED_CHUNK = 2000
"""Events read per step, by the feed and by a catching-up watcher (whole revisions, so a step may
read a little more): bounds one loop step's work."""

BACKLOG_HIGH = 256
"""A stream with more unsent responses than this has its watchers taken off the feed (they catch
up from the history once it drains), so a slow client costs memory bounded by the history."""

BACKLOG_LOW = 32
"""A stream's watchers catch up again once its backlog is below this."""


class EventSource(Protocol):
    """What the feed reads (``cluster.store.etcd_api.backend.Backend`` provides it)."""

    def events(self, key: bytes, range_end: bytes, start_revision: int, limit: int = 0) -> list[Event]: ...

    async def wait_revision(self, after: int, timeout: float | None) -> int: ...

    def header(self, revision: int | None = None) -> Header: ...


class Sink(Protocol):
    """A Watch stream, as the feed sees it. Calls never block and never await."""

    def deliver(self, watcher: Watcher, events: Sequence[Event], revision: int) -> None:
        """Hand ``events`` (non-empty, in order) to the client; ``revision`` for the header."""

    def compacted(self, watcher: Watcher, compact_revision: int) -> None:
        """The watcher's start revision is gone: tell the client; the feed has dropped it."""

    def failed(self, reason: str) -> None:
        """The replica stopped serving: end the stream so the client goes elsewhere."""

    def backlog(self) -> int:
        """How many responses wait to be sent."""

    def synced(self) -> None:
        """Every watcher of this stream may have become synced (a deferred progress request)."""


def matcher(key: bytes, range_end: bytes) -> Callable[[bytes], bool]:
    """etcd's watch range: one key (empty range_end), every key >= key ("\\0"), or [key, range_end)."""
    if not range_end:
        return key.__eq__
    if range_end == b"\0":
        return key.__le__
    return lambda k: key <= k < range_end


@dataclass(eq=False, slots=True)
class Watcher:
    """One watch of a stream. ``start_revision`` is the first revision asked for (resolved: a
    create with 0 starts after the revision of its created response)."""

    id: int
    key: bytes
    range_end: bytes
    start_revision: int
    sink: Sink
    prev_kv: bool = False
    no_put: bool = False
    no_delete: bool = False
    progress_notify: bool = False
    fragment: bool = False
    next_rev: int = 0
    progress_rev: int = 0
    synced: bool = False
    quiet: bool = True  # no event sent since the last progress tick (etcd elides that tick)
    match: Callable[[bytes], bool] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.match = matcher(self.key, self.range_end)
        self.next_rev = self.start_revision
        self.progress_rev = 0

    def select(self, events: Sequence[Event]) -> list[Event]:
        """The events of ``events`` this watcher wants (range, filters, not delivered yet)."""
        if self.no_put and self.no_delete:
            return []
        match, first = self.match, self.next_rev
        drop = EventType.PUT if self.no_put else EventType.DELETE if self.no_delete else -1
        return [e for e in events if e.kv.mod_revision >= first and e.type != drop and match(e.kv.key)]

    def selection_key(self) -> tuple[bytes, bytes, bool, bool, int]:
        """Watchers with equal keys select the same events from a batch (computed once)."""
        return self.key, self.range_end, self.no_put, self.no_delete, self.next_rev


class EventFeed:
    """The shared feed of one replica; ``add``/``remove`` watchers, nothing else to call."""

    def __init__(self, source: EventSource, *, poll_seconds: float = 1.0) -> None:
        self.source = source
        self.poll_seconds = poll_seconds
        self.pos = 0  # every event at or below pos has been handed to the synced watchers
        self._synced: set[Watcher] = set()
        self._unsynced: set[Watcher] = set()
        self._sync_wake = asyncio.Event()
        self._feed_task: asyncio.Task[None] | None = None
        self._sync_task: asyncio.Task[None] | None = None
        self.set_aside = 0  # how many times a slow stream's watcher was taken off the feed

    # ------------------------------------------------------------------ watchers

    def add(self, w: Watcher) -> None:
        """Start feeding ``w`` from ``w.next_rev``: it replays history first when that is behind."""
        if self._feed_task is None:
            self.pos = self.source.header().revision
            loop = asyncio.get_running_loop()
            self._feed_task = loop.create_task(self._feed_loop(), name="etcd-watch-feed")
            self._sync_task = loop.create_task(self._sync_loop(), name="etcd-watch-sync")
        self._unsynced.add(w)
        self._sync_wake.set()

    def remove(self, w: Watcher) -> None:
        """Stop feeding ``w``; nothing reaches its sink after this returns."""
        self._synced.discard(w)
        self._unsynced.discard(w)
        w.synced = False
        if not self._synced and not self._unsynced:
            self._stop()

    def watchers(self) -> int:
        return len(self._synced) + len(self._unsynced)

    def resync(self, sink: Sink) -> None:
        """``sink`` drained its backlog: let its set-aside watchers catch up."""
        if any(w.sink is sink for w in self._unsynced):
            self._sync_wake.set()

    def _stop(self) -> None:
        for task in (self._feed_task, self._sync_task):
            if task is not None:
                task.cancel()
        self._feed_task = self._sync_task = None

    async def close(self) -> None:
        tasks = [t for t in (self._feed_task, self._sync_task) if t is not None]
        self._stop()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t

    # ------------------------------------------------------------------ the feed

    async def _feed_loop(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                started = loop.time()
                revision = await self.source.wait_revision(self.pos, self.poll_seconds)
                if revision <= self.pos:
                    if loop.time() - started < self.poll_seconds / 2:
                        await asyncio.sleep(0.05)  # the replica closed: do not spin
                    continue
                self._step()
        except asyncio.CancelledError:
            raise
        except Exception as e:  # NotServing: this replica stopped for good
            self._fail(f"{type(e).__name__}: {e}")

    def _step(self) -> None:
        """Read what was applied after ``pos`` and hand it to the synced watchers (one loop step)."""
        try:
            events = self.source.events(*ALL_KEYS, self.pos + 1, FEED_CHUNK)
        except Compacted:
            # A snapshot from the leader moved this follower past a compaction beyond our position:
            # each watcher catches up by itself from its own next revision (or learns it is compacted).
            self._demote(list(self._synced))
            self.pos = self.source.header().revision
            return
        revision = self.source.header().revision
        pos = events[-1].kv.mod_revision if len(events) >= FEED_CHUNK else revision
        selections: dict[tuple[bytes, bytes, bool, bool, int], list[Event]] = {}
        slow: list[Watcher] = []
        for w in self._synced:
            if events:
                skey = w.selection_key()
                chosen = selections.get(skey)
                if chosen is None:
                    chosen = selections[skey] = w.select(events)
                if chosen:
                    w.sink.deliver(w, chosen, pos)
                    w.quiet = False
            w.next_rev = max(w.next_rev, pos + 1)
            w.progress_rev = max(w.progress_rev, pos)
            if w.sink.backlog() > BACKLOG_HIGH:
                slow.append(w)
        self.pos = pos
        if slow:
            self.set_aside += len(slow)
            self._demote(slow)

    def _demote(self, watchers: list[Watcher]) -> None:
        for w in watchers:
            self._synced.discard(w)
            self._unsynced.add(w)
            w.synced = False
        self._sync_wake.set()

    def _fail(self, reason: str) -> None:
        """End every watcher's stream; a later watcher starts the feed again (and ends the same
        way at once if the replica still does not serve)."""
        log.warning("watch feed stopped: %s", reason)
        sinks = {w.sink for w in self._synced | self._unsynced}
        self._synced.clear()
        self._unsynced.clear()
        self._stop()  # cancels the calling task too: it returns right after
        for sink in sinks:
            sink.failed(reason)

    # ------------------------------------------------------------------ catching up

    async def _sync_loop(self) -> None:
        while True:
            await self._sync_wake.wait()
            self._sync_wake.clear()
            while self._unsynced:
                progressed = False
                for w in list(self._unsynced):
                    if w not in self._unsynced or w.sink.backlog() > BACKLOG_LOW:
                        continue  # removed meanwhile, or its client has not read what it has yet
                    try:
                        self._catch_up(w)
                    except Compacted as e:
                        self._unsynced.discard(w)
                        w.sink.compacted(w, e.compact_revision)
                        if not self.watchers():
                            self._stop()
                            return
                    except Exception as e:  # NotServing
                        self._fail(f"{type(e).__name__}: {e}")
                        return
                    progressed = True
                if not progressed:
                    break  # every unsynced watcher waits for its stream to drain (resync wakes us)
                await asyncio.sleep(0)  # let the feed, the streams and the replica run

    def _catch_up(self, w: Watcher) -> None:
        """One chunk of history for ``w``; joins the synced set when it reaches the feed."""
        events = self.source.events(w.key, w.range_end, w.next_rev, FEED_CHUNK)
        revision = self.source.header().revision
        if len(events) >= FEED_CHUNK:
            through = events[-1].kv.mod_revision
        else:
            through = revision
        chosen = w.select(events)
        if chosen:
            w.sink.deliver(w, chosen, through)
            w.quiet = False
        w.next_rev = max(w.next_rev, through + 1)
        w.progress_rev = max(w.progress_rev, through)
        if through >= self.pos and w in self._unsynced:
            # The feed has handed out nothing above `through` that w missed: join it. w.next_rev
            # skips what the feed will hand out again between pos and through.
            self._unsynced.discard(w)
            self._synced.add(w)
            w.synced = True
            w.sink.synced()
