"""etcd's ``Watch/Watch``: the bidirectional stream of watch requests and watch responses.

One stream carries many watches. What the client sees follows etcd's ``v3rpc/watch.go``:

* **create**: a ``created`` response first, with the watch id (the client's ``watch_id`` when
  non-zero, else the stream's next id: from 0 up, skipping ids in use, never going back) and in
  its header the revision the watch starts after when ``start_revision`` is 0. An id already in
  use, or an empty range, is answered with ``created`` and ``canceled``, watch id -1 and etcd's
  mvcc text as the cancel reason; a negative start revision with etcd's compacted text. An empty
  key means "\\0" (the smallest key); a range end "\\0" means every key >= key.
* **events**: in revision order, every revision whole, nothing twice and nothing left out, each
  response's header revision at least its last event's (``cluster.store.etcd_api.watch_feed``).
  ``prev_kv`` adds the replaced version; filters ``NOPUT``/``NODELETE`` drop event types (a batch
  left empty sends nothing). With ``fragment`` a response of at least ``max_response_bytes``
  (etcd: --max-request-bytes + 512 KiB of gRPC overhead) with two events or more is split as etcd
  splits it: ``fragment`` true on all parts but the last.
* **compaction**: a start revision below the compact revision ends the watch with one response,
  ``compact_revision`` and ``canceled``, header revision 0, as etcd sends it. A watch from exactly
  the compact revision starts, as in etcd, with the versions written at that revision that
  compaction kept (``MVCCStore.events`` holds only later revisions, so they are read back as a
  range at the compact revision: the puts; a delete at that revision is lost, in etcd too).
* **cancel**: a response with ``canceled``; an unknown id is ignored (etcd answers nothing).
* **progress**: a watch with ``progress_notify`` gets an empty response with its watch id every
  ``progress_interval`` seconds (etcd: 10 minutes, plus up to 10 % jitter) when it got no event
  in the last interval and is caught up; the header revision is the revision through which it
  has every event. A ``WatchProgressRequest`` gets one empty response with watch id -1 once every
  watch of the stream is caught up (etcd >= 3.5.8 defers it likewise, so the revision never runs
  ahead of events still to come); with no watch at all it answers at once with the store revision.
* **leaving**: when the client goes away (or cancels the call) the handler is cancelled; its
  watchers leave the feed and its tasks end with it. A client that only half-closes keeps
  receiving, as with etcd. A replica that stops serving ends every stream with UNAVAILABLE
  ``etcdserver: server stopped``.
* **require leader** (clientv3's ``WithRequireLeader``, metadata ``hasleader: true``, which
  etcdctl and the Kubernetes API server send): refused with UNAVAILABLE ``etcdserver: no leader``
  while this replica knows no leader, and ended so once it has known none for three checks, one
  per election timeout (etcd's monitorLeader), so that a client of a cut-off replica moves on
  instead of waiting for events that cannot come.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import deque
from collections.abc import AsyncIterator, Sequence
from typing import Any

import grpc

from cluster.store.etcd_api.backend import Backend
from cluster.store.etcd_api.convert import event_pb, header_pb
from cluster.store.etcd_api.errors import COMPACTED, NO_LEADER, STOPPED
from cluster.store.etcd_api.watch_feed import BACKLOG_LOW, EventFeed, Watcher
from cluster.store.etcdpb import kv_pb2, rpc_pb2, rpc_pb2_grpc
from cluster.store.ops import MAX_REQUEST_BYTES, Compacted, Event, EventType, RangeOp

log = logging.getLogger("raykube.store.watch")

PROGRESS_INTERVAL = 600.0
"""etcd's default --experimental-watch-progress-notify-interval (10 minutes)."""

GRPC_OVERHEAD_BYTES = 512 * 1024
"""etcd's allowance for gRPC framing on top of --max-request-bytes."""

INVALID_WATCH_ID = -1
ERR_DUPLICATE_ID = "mvcc: duplicate watch ID provided on the WatchStream"
ERR_EMPTY_RANGE = "mvcc: watcher range is empty"
ERR_COMPACTED = COMPACTED.message
ERR_STOPPED = STOPPED.message
ERR_NO_LEADER = NO_LEADER.message
REQUIRE_LEADER_KEY = "hasleader"  # clientv3.WithRequireLeader's metadata
ELECTION_TIMEOUT = 1.0  # etcd's default (100 ms ticks x 10): how often a leaderless replica is noticed
MAX_NO_LEADER = 3  # etcd's maxNoLeaderCnt: checks without a leader before such streams end


class _EventCache:
    """Each store event converted once however many watchers get it (fan-out). Holds the event
    itself next to its message, so an id is never reused while cached; bounded."""

    def __init__(self, size: int = 16384) -> None:
        self.size = size
        self._plain: dict[int, tuple[Event, kv_pb2.Event]] = {}
        self._prev: dict[int, tuple[Event, kv_pb2.Event]] = {}

    def get(self, ev: Event, prev_kv: bool) -> kv_pb2.Event:
        cache = self._prev if prev_kv else self._plain
        hit = cache.get(id(ev))
        if hit is not None and hit[0] is ev:
            return hit[1]
        msg = event_pb(ev, prev_kv)
        if len(cache) >= self.size:
            cache.clear()
        cache[id(ev)] = (ev, msg)
        return msg


def fragments(resp: rpc_pb2.WatchResponse, max_bytes: int) -> list[rpc_pb2.WatchResponse]:
    """etcd's ``sendFragments``: whole when under ``max_bytes`` or with fewer than two events;
    else parts of as many events as keep a part under ``max_bytes`` (at least one each),
    ``fragment`` set on every part but the last."""
    if len(resp.events) < 2 or resp.ByteSize() < max_bytes:
        return [resp]
    head = rpc_pb2.WatchResponse()
    head.CopyFrom(resp)
    del head.events[:]
    head.fragment = True
    base = head.ByteSize()
    parts: list[rpc_pb2.WatchResponse] = []
    cur: list[Any] = []
    size = base
    for ev in resp.events:
        n = ev.ByteSize()
        cost = 1 + _varint_len(n) + n  # field 11's tag, length, message
        if cur and size + cost >= max_bytes:
            parts.append(_part(head, cur, fragment=True))
            cur, size = [], base
        cur.append(ev)
        size += cost
    parts.append(_part(head, cur, fragment=False))
    return parts


def _part(head: rpc_pb2.WatchResponse, events: list[Any], *, fragment: bool) -> rpc_pb2.WatchResponse:
    part = rpc_pb2.WatchResponse()
    part.CopyFrom(head)
    part.fragment = fragment
    part.events.extend(events)
    return part


def _varint_len(n: int) -> int:
    length = 1
    while n >= 0x80:
        n >>= 7
        length += 1
    return length


class WatchServicer(rpc_pb2_grpc.WatchServicer):
    """``etcdserverpb.Watch`` over a ``Backend``: one shared ``EventFeed`` for every stream."""

    def __init__(
        self,
        backend: Backend,
        *,
        progress_interval: float = PROGRESS_INTERVAL,
        max_response_bytes: int = MAX_REQUEST_BYTES + GRPC_OVERHEAD_BYTES,
        leader_check_interval: float = ELECTION_TIMEOUT,
    ) -> None:
        self.backend = backend
        self.progress_interval = progress_interval
        self.max_response_bytes = max_response_bytes
        self.leader_check_interval = leader_check_interval
        self.feed = EventFeed(backend)
        self.events = _EventCache()
        self.streams = 0  # open streams (tests check that leaving clients leave nothing behind)
        self._need_leader: set[_Stream] = set()  # streams opened with clientv3's WithRequireLeader
        self._monitor: asyncio.Task[None] | None = None

    def header(self, revision: int | None = None) -> rpc_pb2.ResponseHeader:
        return header_pb(self.backend.header(revision))

    async def Watch(
        self, request_iterator: AsyncIterator[rpc_pb2.WatchRequest], context: grpc.aio.ServicerContext
    ) -> None:
        metadata = dict(context.invocation_metadata() or ())
        if metadata.get(REQUIRE_LEADER_KEY) == "true" and not self.backend.status().leader:
            await context.abort(grpc.StatusCode.UNAVAILABLE, ERR_NO_LEADER)
        stream = _Stream(self, context)
        self.streams += 1
        if metadata.get(REQUIRE_LEADER_KEY) == "true":
            self._need_leader.add(stream)
            if self._monitor is None:
                self._monitor = asyncio.get_running_loop().create_task(
                    self._monitor_leader(), name="etcd-watch-leader"
                )
        reader = asyncio.get_running_loop().create_task(
            stream.read(request_iterator), name="etcd-watch-reader"
        )
        try:
            await stream.write()
        finally:
            reader.cancel()
            stream.close()
            self.streams -= 1
            self._need_leader.discard(stream)
            if not self._need_leader and self._monitor is not None:
                self._monitor.cancel()
                self._monitor = None
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader

    async def _monitor_leader(self) -> None:
        """etcd's monitorLeader: streams that require a leader end with "no leader" once this
        replica has known none for MAX_NO_LEADER checks in a row (one check per election timeout),
        so their clients move to a replica that is part of the quorum."""
        misses = 0
        while self._need_leader:
            await asyncio.sleep(self.leader_check_interval)
            misses = 0 if self.backend.status().leader else misses + 1
            if misses >= MAX_NO_LEADER:
                for stream in list(self._need_leader):
                    stream.abort(ERR_NO_LEADER)
                self._need_leader.clear()
        self._monitor = None


class _Failed:
    def __init__(self, message: str) -> None:
        self.message = message


class _Stream:
    """One Watch call: its watchers, its queue of responses (built when sent), its progress
    ticker. Implements ``watch_feed.Sink``; everything runs on the event loop."""

    def __init__(self, servicer: WatchServicer, context: grpc.aio.ServicerContext) -> None:
        self.servicer = servicer
        self.feed = servicer.feed
        self.context = context
        self.watchers: dict[int, Watcher] = {}
        self.next_id = 0
        self.queue: deque[Any] = deque()
        self.ready = asyncio.Event()
        self.progress_pending = False  # a WatchProgressRequest waits for every watcher to catch up
        self.ticker: asyncio.Task[None] | None = None
        self.closed = False
        self.read_error: Exception | None = None

    # ------------------------------------------------------------------ Sink (called by the feed)

    def deliver(self, watcher: Watcher, events: Sequence[Event], revision: int) -> None:
        self._push((watcher, events, revision))

    def compacted(self, watcher: Watcher, compact_revision: int) -> None:
        self.watchers.pop(watcher.id, None)
        resp = rpc_pb2.WatchResponse(
            header=self.servicer.header(0),
            watch_id=watcher.id,
            compact_revision=compact_revision,
            canceled=True,
        )
        self._push(resp)
        self.synced()

    def failed(self, reason: str) -> None:
        self.abort(ERR_STOPPED)

    def abort(self, message: str) -> None:
        """End the call with UNAVAILABLE ``message`` (etcd cancels the stream's context: what was
        still queued is not sent)."""
        for w in self.watchers.values():
            self.feed.remove(w)
        self.watchers.clear()
        self.queue.clear()
        self._push(_Failed(message))

    def backlog(self) -> int:
        return len(self.queue)

    def synced(self) -> None:
        if self.progress_pending and all(w.synced for w in self.watchers.values()):
            self.progress_pending = False
            self._push(self._progress_all())

    # ------------------------------------------------------------------ requests

    async def read(self, requests: AsyncIterator[rpc_pb2.WatchRequest]) -> None:
        """Handle requests until the client half-closes (then the writer goes on, as etcd's does)
        or reading fails (then the writer raises it, which ends the call)."""
        try:
            async for req in requests:
                kind = req.WhichOneof("request_union")
                if kind == "create_request":
                    await self._create(req.create_request)
                elif kind == "cancel_request":
                    self._cancel(req.cancel_request.watch_id)
                elif kind == "progress_request":
                    if all(w.synced for w in self.watchers.values()):
                        self._push(self._progress_all())
                    else:
                        self.progress_pending = True
                # an empty request is ignored, as etcd does
        except Exception as e:
            self.read_error = e
            self.ready.set()

    async def _create(self, creq: rpc_pb2.WatchCreateRequest) -> None:
        key = creq.key or b"\0"
        range_end = creq.range_end
        revision = self.servicer.backend.header().revision
        reason = ""
        if creq.start_revision < 0:
            reason = ERR_COMPACTED
        elif range_end and range_end != b"\0" and key >= range_end:
            reason = ERR_EMPTY_RANGE
        elif creq.watch_id and creq.watch_id in self.watchers:
            reason = ERR_DUPLICATE_ID
        if reason:
            self._push(
                rpc_pb2.WatchResponse(
                    header=self.servicer.header(revision),
                    watch_id=INVALID_WATCH_ID,
                    created=True,
                    canceled=True,
                    cancel_reason=reason,
                )
            )
            return
        wid = creq.watch_id
        if not wid:
            while self.next_id in self.watchers:
                self.next_id += 1
            wid = self.next_id
            self.next_id += 1
        filters = set(creq.filters)
        w = Watcher(
            id=wid,
            key=key,
            range_end=range_end,
            start_revision=creq.start_revision or revision + 1,
            sink=self,
            prev_kv=creq.prev_kv,
            no_put=rpc_pb2.WatchCreateRequest.NOPUT in filters,
            no_delete=rpc_pb2.WatchCreateRequest.NODELETE in filters,
            progress_notify=creq.progress_notify,
            fragment=creq.fragment,
        )
        self.watchers[wid] = w
        # Queued before the feed can hand w anything: the created response always comes first.
        self._push(rpc_pb2.WatchResponse(header=self.servicer.header(revision), watch_id=wid, created=True))
        compact = self.servicer.backend.status().compact_revision
        if compact and w.start_revision == compact:
            await self._replay_compact_revision(w, compact)
            if self.watchers.get(wid) is not w:
                return  # canceled, or the stream ended, meanwhile
        self.feed.add(w)
        if w.progress_notify and self.ticker is None:
            self.ticker = asyncio.get_running_loop().create_task(self._tick(), name="etcd-watch-progress")

    async def _replay_compact_revision(self, w: Watcher, compact: int) -> None:
        """etcd serves a watch from exactly its compact revision: the versions written at that
        revision which compaction kept (puts: a delete there left nothing, in etcd too), without
        prev_kv (the revision before is gone). Our event log starts after the compact revision, so
        they are read back as a range at it; the feed goes on from the next revision."""
        try:
            got = await self.servicer.backend.range(
                RangeOp(w.key, w.range_end, revision=compact), serializable=True
            )
        except Compacted:
            return  # compacted further meanwhile: the feed answers with the new compact revision
        if not w.no_put:
            events = [Event(EventType.PUT, kv) for kv in got.kvs if kv.mod_revision == compact]
            if events:
                self.deliver(w, events, compact)
        w.next_rev = compact + 1
        w.progress_rev = compact

    def _cancel(self, wid: int) -> None:
        w = self.watchers.pop(wid, None)
        if w is None:
            return
        self.feed.remove(w)
        self._push(rpc_pb2.WatchResponse(header=self.servicer.header(), watch_id=wid, canceled=True))
        self.synced()

    def _progress_all(self) -> rpc_pb2.WatchResponse:
        if self.watchers:
            revision = min(w.progress_rev for w in self.watchers.values())
        else:
            revision = self.servicer.backend.header().revision
        return rpc_pb2.WatchResponse(header=self.servicer.header(revision), watch_id=INVALID_WATCH_ID)

    async def _tick(self) -> None:
        interval = self.servicer.progress_interval
        while True:
            await asyncio.sleep(interval + random.uniform(0, interval / 10))
            for w in list(self.watchers.values()):
                if not w.progress_notify:
                    continue
                # etcd elides the tick after an event, and says nothing for a watcher still catching up
                # or one whose start revision lies ahead of what the store has.
                if w.quiet and w.synced and w.progress_rev >= w.start_revision - 1:
                    self._push(
                        rpc_pb2.WatchResponse(header=self.servicer.header(w.progress_rev), watch_id=w.id)
                    )
                w.quiet = True

    # ------------------------------------------------------------------ responses

    def _push(self, item: Any) -> None:
        if self.closed:
            return
        self.queue.append(item)
        self.ready.set()

    async def write(self) -> None:
        """Send queued responses until the call ends (the handler is cancelled), reading fails,
        or the stream is aborted (UNAVAILABLE)."""
        write = self.context.write
        while True:
            while not self.queue:
                if self.read_error is not None:
                    raise self.read_error
                self.ready.clear()
                await self.ready.wait()
            item = self.queue.popleft()
            if len(self.queue) == BACKLOG_LOW:
                self.feed.resync(self)
            if isinstance(item, _Failed):
                await self.context.abort(grpc.StatusCode.UNAVAILABLE, item.message)
            if isinstance(item, tuple):
                for resp in self._event_responses(*item):
                    await write(resp)
            else:
                await write(item)

    def _event_responses(
        self, w: Watcher, events: Sequence[Event], revision: int
    ) -> list[rpc_pb2.WatchResponse]:
        get = self.servicer.events.get
        resp = rpc_pb2.WatchResponse(
            header=self.servicer.header(revision),
            watch_id=w.id,
            events=[get(ev, w.prev_kv) for ev in events],
        )
        if w.fragment:
            return fragments(resp, self.servicer.max_response_bytes)
        return [resp]

    def close(self) -> None:
        self.closed = True
        for w in self.watchers.values():
            self.feed.remove(w)
        self.watchers.clear()
        self.queue.clear()
        if self.ticker is not None:
            self.ticker.cancel()
