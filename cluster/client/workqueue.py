"""A controller work queue with client-go semantics, and the worker loop that drains it.

The queue holds keys (``namespace/name``), not objects: a reconciler reads the current state itself.

Invariants (those of client-go's ``workqueue`` package):

* **dedup** - a key is queued at most once; adding a queued key again is a no-op;
* **one worker per key** - between :meth:`WorkQueue.get` and :meth:`WorkQueue.done` a key is
  *processing*; adding it meanwhile marks it dirty, and ``done`` queues it again, so no two workers
  ever hold the same key, yet no change is lost;
* **delayed adds** - :meth:`add_after` parks a key until ``clock() + delay``; a key parked twice
  keeps the earlier deadline; parked keys become queued when a reader (``get``, ``len``) notices
  their deadline passed, so a fake clock drives them deterministically;
* **rate-limited requeue** - :meth:`add_rate_limited` parks a key for ``base * 2**failures`` seconds
  (capped at ``max_delay``) and counts the failure; :meth:`forget` resets the count. Defaults match
  client-go's per-item limiter (5 ms, 1000 s);
* **shutdown** - after :meth:`shut_down` adds are ignored, queued keys still drain, and ``get`` raises
  :class:`ShutDown` once the queue is empty.

Single event loop only; every method except ``get`` is synchronous and may be called from handlers.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


class ShutDown(Exception):
    """Raised by :meth:`WorkQueue.get` once the queue is shut down and drained."""


class WorkQueue:
    def __init__(
        self,
        *,
        base_delay: float = 0.005,
        max_delay: float = 1000.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._base_delay = base_delay
        self._max_delay = max_delay
        self._clock = clock
        self._queue: deque[str] = deque()
        self._dirty: set[str] = set()
        self._processing: set[str] = set()
        self._failures: dict[str, int] = {}
        # Parked keys: heap of (ready_at, seq, key) plus the live deadline per key; stale heap
        # entries (superseded by an earlier deadline, or already promoted) are skipped lazily.
        self._parked: list[tuple[float, int, str]] = []
        self._parked_at: dict[str, float] = {}
        self._seq = itertools.count()
        self._waiters: list[asyncio.Future[None]] = []
        self._shutting_down = False

    # -- adding ------------------------------------------------------------------------------------

    def add(self, key: str) -> None:
        """Queue ``key`` unless it is already queued; if it is processing, queue it after ``done``."""
        if self._shutting_down or key in self._dirty:
            return
        self._dirty.add(key)
        if key in self._processing:
            return
        self._queue.append(key)
        self._wake()

    def add_after(self, key: str, delay: float) -> None:
        """Queue ``key`` once ``delay`` seconds of the clock have passed (at once if ``delay <= 0``)."""
        if self._shutting_down:
            return
        if delay <= 0:
            self.add(key)
            return
        ready_at = self._clock() + delay
        current = self._parked_at.get(key)
        if current is not None and current <= ready_at:
            return
        self._parked_at[key] = ready_at
        heapq.heappush(self._parked, (ready_at, next(self._seq), key))
        self._wake()  # a waiting get() must shorten its sleep to the new deadline

    def when(self, key: str) -> float:
        """Count one more failure of ``key`` and return the backoff it earns."""
        failures = self._failures.get(key, 0)
        self._failures[key] = failures + 1
        if failures >= 64:  # 2**64 * base overflows any sane cap; avoid float overflow surprises
            return self._max_delay
        return min(self._base_delay * 2.0**failures, self._max_delay)

    def add_rate_limited(self, key: str) -> None:
        """Requeue ``key`` after its exponential backoff (see module docstring)."""
        self.add_after(key, self.when(key))

    def forget(self, key: str) -> None:
        """Reset ``key``'s failure count; call after a successful reconcile."""
        self._failures.pop(key, None)

    def num_requeues(self, key: str) -> int:
        return self._failures.get(key, 0)

    # -- consuming ---------------------------------------------------------------------------------

    async def get(self) -> str:
        """Wait for a queued key and mark it processing; the caller must call :meth:`done` with it.

        Raises :class:`ShutDown` when the queue is shut down and nothing is left to hand out.
        """
        loop = asyncio.get_running_loop()
        while True:
            self._promote()
            if self._queue:
                key = self._queue.popleft()
                self._processing.add(key)
                self._dirty.discard(key)
                return key
            if self._shutting_down:
                raise ShutDown
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.append(waiter)
            timeout = None
            if self._parked:
                timeout = max(0.0, self._parked[0][0] - self._clock())
            try:
                await asyncio.wait([waiter], timeout=timeout)
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
                if not waiter.done():
                    waiter.cancel()

    def done(self, key: str) -> None:
        """Finish processing ``key``; if it was added meanwhile, it is queued again now."""
        self._processing.discard(key)
        if key in self._dirty:
            self._queue.append(key)
            self._wake()

    def shut_down(self) -> None:
        """Stop accepting keys; waiting getters wake and drain what is queued, then get ShutDown."""
        self._shutting_down = True
        self._parked.clear()
        self._parked_at.clear()
        self._wake()

    @property
    def shutting_down(self) -> bool:
        return self._shutting_down

    def __len__(self) -> int:
        """Number of queued keys (parked keys whose deadline passed are queued first)."""
        self._promote()
        return len(self._queue)

    def parked(self) -> int:
        """Number of keys waiting for a delay to pass."""
        return len(self._parked_at)

    def processing(self) -> frozenset[str]:
        return frozenset(self._processing)

    # -- internals ---------------------------------------------------------------------------------

    def _promote(self) -> None:
        now = self._clock()
        while self._parked and self._parked[0][0] <= now:
            ready_at, _, key = heapq.heappop(self._parked)
            if self._parked_at.get(key) == ready_at:
                del self._parked_at[key]
                self.add(key)

    def _wake(self) -> None:
        # Wake every waiter: each re-checks the queue, so no wake-up can be lost to a cancelled getter.
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._waiters.clear()


async def run_workers(queue: WorkQueue, reconcile: Callable[[str], Awaitable[None]], workers: int) -> None:
    """Run ``workers`` loops of get -> reconcile -> done until the queue shuts down and drains.

    A reconcile that returns forgets the key's failures; one that raises is logged and the key is
    requeued with backoff (``add_rate_limited``). Cancelling this coroutine cancels every worker; a
    key being reconciled at that moment is still marked done.
    """

    async def worker() -> None:
        while True:
            try:
                key = await queue.get()
            except ShutDown:
                return
            try:
                await reconcile(key)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("reconcile %s failed; requeued with backoff", key)
                queue.add_rate_limited(key)
            else:
                queue.forget(key)
            finally:
                queue.done(key)

    tasks = [asyncio.create_task(worker(), name=f"worker-{i}") for i in range(max(1, workers))]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
