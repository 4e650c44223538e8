"""The watch cache against a fake store client: consistent lists without waiting for a watch poll."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson

from cluster.apiserver.watchcache import ResourceCache
from cluster.store.mvcc import KeyValue, RangeResult


class FakeClient:
    """A store whose global revision moved (writes elsewhere) while this prefix stayed unchanged."""

    def __init__(self, prefix_events: list[Any]) -> None:
        self.revision = 5
        self.prefix_events = prefix_events
        self.progress_calls = 0

    async def range(self, op: Any, *, serializable: bool = False) -> RangeResult:
        if op.count_only:
            return RangeResult((), 1, False, self.revision)
        kv = KeyValue(b"/registry/pods/ns/a", orjson.dumps({"metadata": {"name": "a"}}), 2, 2, 1)
        return RangeResult((kv,), 1, False, self.revision)

    async def watch(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        await asyncio.Event().wait()  # a long poll that never returns during the test
        yield None

    async def progress(self, key: bytes, range_end: bytes, start_revision: int) -> tuple[list[Any], int]:
        self.progress_calls += 1
        return self.prefix_events, self.revision


def test_list_after_writes_elsewhere_is_served_at_the_new_revision() -> None:
    async def scenario() -> None:
        client = FakeClient(prefix_events=[])
        cache = ResourceCache(client, "/registry/pods/")  # type: ignore[arg-type]
        await cache.wait_ready()
        assert cache.revision == 5
        client.revision = 9  # other resources were written
        objs, rev = await asyncio.wait_for(cache.consistent_snapshot(), 2.0)
        assert rev == 9 and [o["metadata"]["name"] for o in objs] == ["a"]
        assert client.progress_calls == 1
        await cache.stop()

    asyncio.run(scenario())


def test_a_pending_event_for_the_prefix_is_waited_for() -> None:
    async def scenario() -> None:
        client = FakeClient(prefix_events=["an event the watch has not delivered yet"])
        cache = ResourceCache(client, "/registry/pods/")  # type: ignore[arg-type]
        await cache.wait_ready()
        client.revision = 9
        wait = asyncio.ensure_future(cache.consistent_snapshot())
        await asyncio.sleep(0.2)
        assert not wait.done()  # it must not claim revision 9 while an event is missing
        cache._apply([], 9)  # the watch delivers up to revision 9
        async with cache._changed:
            cache._changed.notify_all()
        _, rev = await asyncio.wait_for(wait, 2.0)
        assert rev == 9
        await cache.stop()

    asyncio.run(scenario())
