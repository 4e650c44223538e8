"""Fixtures of the CRI kit: the ``endpoint`` fixture, one per registered endpoint and test module.

An endpoint's async context manager is entered on a private event loop running in a thread for the
module's lifetime; each test then talks to the endpoint's socket with its own ``CRIClient`` on
its own loop (``kit_run``).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.capabilities import require
from tests.nodeagent.cri_kit import endpoints


class _LoopThread:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="cri-kit-endpoint", daemon=True)
        self.thread.start()

    def run(self, coro, timeout: float = 120):  # type: ignore[no-untyped-def]
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture(scope="module", params=endpoints.selected())
def endpoint(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[endpoints.Endpoint]:
    mods = endpoints.load()
    name = request.param
    if name not in mods:
        pytest.fail(f"CRI endpoint {name!r} is not registered (no endpoint_*.py defines it)", pytrace=False)
    mod = mods[name]
    reason = mod.missing()
    require(mod.CAPABILITY, f"CRI endpoint {name!r}: {reason}" if reason else None)
    tmp: Path = tmp_path_factory.mktemp(f"cri-{name}")
    lt = _LoopThread()
    cm = mod.endpoint(tmp)
    try:
        ep = lt.run(cm.__aenter__())
        try:
            yield ep
        finally:
            lt.run(cm.__aexit__(None, None, None))
    finally:
        lt.close()
