"""The real API server in process, over HTTP on 127.0.0.1, on an in-memory MVCC store with watches:
controllers run against it through the real ``ApiClient`` and informers, without Ray.

``WatchableStore`` adds the two store calls the watch cache needs (``watch``, ``progress``) to the
fault-injecting store of the API server tests; a watch polls the MVCC history every few ms.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiohttp.test_utils import TestServer

from cluster.apiserver.server import ApiServer
from cluster.client.rest import ApiClient
from cluster.controllers.runtime import (
    Controller,
    ControllerContext,
    ControllerOptions,
    SharedInformers,
)
from cluster.machinery.times import SystemClock
from cluster.store.api import WatchResponse
from tests.cluster.apiserver.faulty_store import FaultyStore
from tests.cluster.controllers.fakes import FakeRecorder

POLL = 0.01


class WatchableStore(FaultyStore):
    async def watch(
        self, key: bytes, range_end: bytes = b"", start_revision: int = 0, *, poll_timeout: float = 5.0
    ) -> AsyncIterator[WatchResponse]:
        next_rev = start_revision or self.mvcc.revision + 1
        while True:
            events = self.mvcc.events(key, range_end, next_rev)
            if events:
                next_rev = events[-1].kv.mod_revision + 1
            revision = self.mvcc.revision
            yield WatchResponse(tuple(events), max(revision, next_rev - 1), self.mvcc.compact_revision)
            next_rev = max(next_rev, revision + 1)
            await asyncio.sleep(POLL)

    async def progress(self, key: bytes, range_end: bytes, start_revision: int) -> tuple[list[Any], int]:
        return list(self.mvcc.events(key, range_end, start_revision)), self.mvcc.revision


@asynccontextmanager
async def local_apiserver() -> AsyncIterator[ApiClient]:
    app = ApiServer(WatchableStore()).app(insecure_local=True)  # type: ignore[arg-type]
    server = TestServer(app)
    await server.start_server()
    client = ApiClient(str(server.make_url("")))
    try:
        yield client
    finally:
        await client.close()
        await server.close()


class RunningController:
    """One controller on its own shared informers against ``client``, started as the manager starts
    it (informers synced first); ``recorder`` collects its Events. ``async with`` stops both."""

    def __init__(self, client: Any, controller: type[Controller], extra: dict[str, Any]) -> None:
        self.recorder = FakeRecorder()
        self.informers = SharedInformers(client)
        options = ControllerOptions(extra=extra)
        ctx = ControllerContext(client, self.informers, SystemClock(), lambda _: self.recorder, options)
        self.controller = controller(ctx)

    async def __aenter__(self) -> RunningController:
        self.informers.start()
        assert await self.informers.wait_synced(10) == []
        self.controller.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.controller.stop()
        await self.informers.stop()
