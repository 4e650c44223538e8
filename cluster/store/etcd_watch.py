"""Watches of ``EtcdStoreClient`` over etcd's bidirectional Watch stream.

``resuming`` keeps one watch going across failures. Each stream is created with
``start_revision`` = the revision after the last one it delivered, so a consumer sees every event
once: no gap (a replica's history is a prefix of the leader's, so any replica can continue where
another stopped) and no duplicate (an event below that revision is dropped, should a server send
one). What counts as delivered up to a revision ``r``:

* a response with events: every event up to the last one's revision (etcd sends a revision's
  events together unless the watcher asked for fragments, which this client never does);
* a progress response (no events; the watch's id, or -1 for the answer to a progress request):
  everything up to its header revision (etcd sends progress only for a watch that has caught up);
* the created response says nothing: the events from the start revision may still be on the way.

While nothing arrives for ``poll_timeout`` seconds the client asks for progress, so an idle watch
still reports progress that often; if the replica does not answer within the request timeout the
stream is taken for dead and the watch resumes elsewhere. A cancel with ``compact_revision`` means
the start revision left the history: ``Compacted``, as etcd's clients report it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING, Any

import grpc

from cluster.store.api import WatchResponse
from cluster.store.etcd_wire import Retry, event, is_retryable, store_error
from cluster.store.etcdpb import rpc_pb2
from cluster.store.ops import Compacted, Event

if TYPE_CHECKING:
    from cluster.store.etcd_client import Endpoint, EtcdStoreClient

PROGRESS_WATCH_ID = -1  # etcd's id on the answer to a progress request (clientv3.InvalidWatchID)


class StreamBroken(Retry):
    """The watch stream ended, was canceled by the server or stopped answering: resume elsewhere."""


def _create(key: bytes, range_end: bytes, start_revision: int, *, notify: bool) -> rpc_pb2.WatchRequest:
    return rpc_pb2.WatchRequest(
        create_request=rpc_pb2.WatchCreateRequest(
            key=key, range_end=range_end, start_revision=start_revision, progress_notify=notify
        )
    )


_PROGRESS = rpc_pb2.WatchRequest(progress_request=rpc_pb2.WatchProgressRequest())


def _check(resp: rpc_pb2.WatchResponse) -> None:
    if resp.compact_revision:
        raise Compacted(resp.compact_revision)
    if resp.canceled:
        raise StreamBroken(f"watch canceled by the server: {resp.cancel_reason or 'no reason given'}")


async def _responses(call: Any, poll_timeout: float, answer_timeout: float) -> AsyncGenerator[Any, None]:
    """The stream's responses, and None after ``poll_timeout`` idle seconds once a progress request
    is on its way; raises StreamBroken when the stream ends or a progress request goes unanswered."""
    queue: asyncio.Queue[Any] = asyncio.Queue()

    async def read() -> None:
        try:
            while True:
                item = await call.read()
                queue.put_nowait(item)
                if item is grpc.aio.EOF:
                    return
        except asyncio.CancelledError:
            raise
        except BaseException as e:
            queue.put_nowait(e)

    reader = asyncio.get_running_loop().create_task(read())
    asked = False
    try:
        while True:
            try:
                item = await asyncio.wait_for(queue.get(), answer_timeout if asked else poll_timeout)
            except TimeoutError:
                if asked:
                    raise StreamBroken(
                        f"no answer to a progress request within {answer_timeout:.1f}s"
                    ) from None
                await call.write(_PROGRESS)
                asked = True
                continue
            if item is grpc.aio.EOF:
                raise StreamBroken("the watch stream ended")
            if isinstance(item, BaseException):
                raise item
            asked = False
            yield item
    finally:
        reader.cancel()
        with contextlib.suppress(BaseException):
            await reader


async def _watch_on(
    ep: Endpoint, key: bytes, range_end: bytes, start: int, poll_timeout: float, answer_timeout: float
) -> AsyncGenerator[tuple[tuple[Event, ...], int], None]:
    """(events, complete-up-to revision) from one stream to ``ep``, until it fails."""
    call = ep.watch.Watch()
    try:
        await call.write(_create(key, range_end, start, notify=True))
        watch_id: int | None = None
        async with contextlib.aclosing(_responses(call, poll_timeout, answer_timeout)) as responses:
            async for resp in responses:
                _check(resp)
                if resp.created:
                    watch_id = resp.watch_id
                    continue
                if resp.watch_id not in (watch_id, PROGRESS_WATCH_ID):
                    continue
                if resp.events:
                    yield tuple(event(e) for e in resp.events), resp.events[-1].kv.mod_revision
                elif watch_id is not None:
                    yield (), resp.header.revision
    finally:
        call.cancel()


async def resuming(
    client: EtcdStoreClient, key: bytes, range_end: bytes, start_revision: int, poll_timeout: float
) -> AsyncGenerator[WatchResponse, None]:
    """``EtcdStoreClient.watch`` from ``start_revision`` (> 0), forever (see the module docstring)."""
    next_rev = start_revision
    attempt = 0
    index: int | None = None
    while not client._closed:
        index = client._pick(index if attempt else None)
        ep = client.endpoints[index]
        stream = _watch_on(ep, key, range_end, next_rev, poll_timeout, client.request_timeout)
        try:
            async with contextlib.aclosing(stream):
                async for events, revision in stream:
                    attempt = 0
                    fresh = tuple(e for e in events if e.kv.mod_revision >= next_rev)
                    if fresh:
                        next_rev = fresh[-1].kv.mod_revision + 1
                    revision = max(revision, next_rev - 1)
                    next_rev = max(next_rev, revision + 1)
                    if fresh or not events:
                        yield WatchResponse(fresh, revision, 0)
        except grpc.aio.AioRpcError as e:
            code, message = e.code(), e.details() or ""
            if not is_retryable(code, message):
                raise store_error(code, message, trailing=e.trailing_metadata()) from None
        except StreamBroken:
            pass
        client._lost(index)
        await client._after_failure(attempt)
        attempt += 1


async def progress_once(
    ep: Endpoint, key: bytes, range_end: bytes, start_revision: int, timeout: float
) -> tuple[list[Event], int]:
    """One ``EtcdStoreClient.progress`` attempt on ``ep``: a watch from ``start_revision`` and a
    progress request; the events that arrive before its answer, and the answer's revision."""
    call = ep.watch.Watch(timeout=timeout)
    events: list[Event] = []
    try:
        await call.write(_create(key, range_end, start_revision, notify=False))
        await call.write(_PROGRESS)
        watch_id: int | None = None
        while True:
            resp = await call.read()
            if resp is grpc.aio.EOF:
                raise StreamBroken("the watch stream ended before the progress answer")
            _check(resp)
            if resp.created:
                watch_id = resp.watch_id
            elif resp.events:
                events.extend(event(e) for e in resp.events if e.kv.mod_revision >= start_revision)
            elif watch_id is not None and resp.watch_id in (watch_id, PROGRESS_WATCH_ID):
                return events, resp.header.revision
    finally:
        call.cancel()
