"""An event recorder: a bounded queue in front of one sender task (client-go's broadcaster and
``recordToSink``), used by the node agent and by every controller.

``EventRecorder.event(ref, type, reason, message)`` never blocks and never raises: it stamps the event
with the clock and appends it to a queue of ``max_queued`` events (client-go: 1000); a full queue
drops the event and counts it in ``dropped``, so a slow or absent API server can never stall a pod
worker or a controller. ``run()`` (one task per recorder) drains the queue through the
``EventCorrelator`` and writes each result through an ``EventWriter`` (the agent's API, or
``ClientEventWriter`` over an ``ApiClient``): POST ``v1/events`` for a new event, a merge PATCH of
``count``/``lastTimestamp``/``message`` for a repeat (a 404 on the PATCH, e.g. the Event expired,
falls back to a create, as client-go does). As in client-go, only a write that did not reach the
server (a transport error or ``write_timeout``) is retried, ``retries`` times with a growing pause;
one the server rejected (a terminating namespace, an existing name, anything with an HTTP status) is
dropped at once, so it never holds up the events behind it. Both are counted in ``failed``.
``flush()`` waits until everything queued so far has been handled (tests; the agent's stop).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any, Protocol

from cluster.client import events as ev
from cluster.client.errors import ApiError, TransportError
from cluster.client.rest import ApiClient

log = logging.getLogger(__name__)


class EventWriter(Protocol):
    """Where events go: a create and a merge patch of ``v1/events`` (the node agent's ``AgentApi`` is one)."""

    async def create(
        self, group_version: str, plural: str, namespace: str | None, body: dict[str, Any]
    ) -> dict[str, Any]: ...

    async def patch(
        self, group_version: str, plural: str, namespace: str | None, name: str, patch: dict[str, Any]
    ) -> dict[str, Any]: ...


class ClientEventWriter:
    """``EventWriter`` over an ``ApiClient`` (the controllers')."""

    def __init__(self, client: ApiClient) -> None:
        self.client = client

    async def create(
        self, group_version: str, plural: str, namespace: str | None, body: dict[str, Any]
    ) -> dict[str, Any]:
        return await self.client.create(group_version, plural, body, namespace)

    async def patch(
        self, group_version: str, plural: str, namespace: str | None, name: str, patch: dict[str, Any]
    ) -> dict[str, Any]:
        return await self.client.patch(group_version, plural, name, patch, namespace)


class EventSink(Protocol):
    """What pod workers and the node loop record through."""

    def event(self, ref: ev.ObjectRef, event_type: str, reason: str, message: str) -> None: ...


class NullEvents:
    """Records nothing (tools and tests that do not look at events)."""

    def event(self, ref: ev.ObjectRef, event_type: str, reason: str, message: str) -> None:
        return None


class EventRecorder:
    def __init__(
        self,
        api: EventWriter,
        host: str,
        clock: Callable[[], datetime],
        *,
        component: str,
        correlator: ev.EventCorrelator | None = None,
        max_queued: int = 1000,
        retries: int = 3,
        retry_delay: float = 1.0,
        write_timeout: float = 15.0,
    ) -> None:
        self.api = api
        self.host = host
        self.component = component
        self.clock = clock
        self.correlator = correlator or ev.EventCorrelator(clock)
        self.max_queued = max_queued
        self.retries = retries
        self.retry_delay = retry_delay
        self.write_timeout = write_timeout
        self.dropped = 0
        self.failed = 0
        self.written = 0
        self._queue: deque[ev.Event] = deque()
        self._seq = 0
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()

    def event(self, ref: ev.ObjectRef, event_type: str, reason: str, message: str) -> None:
        """Queue one event; see the module docstring (never blocks, never raises)."""
        if len(self._queue) >= self.max_queued:
            self.dropped += 1
            log.debug("event queue full, dropped %s %s for %s", event_type, reason, ref.name)
            return
        self._seq += 1
        self._queue.append(
            ev.new_event(
                ref, event_type, reason, message, self.host, self.clock(), self._seq, component=self.component
            )
        )
        self._idle.clear()
        self._wake.set()

    async def flush(self, timeout: float = 10.0) -> None:
        await asyncio.wait_for(self._idle.wait(), timeout)

    async def run(self) -> None:
        """Send until cancelled."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                event = self._queue.popleft()
                try:
                    await self._send(event)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    self.failed += 1
                    log.exception("recording event %s %s", event.reason, event.ref.name)
            self._idle.set()

    async def _send(self, event: ev.Event) -> None:
        result = self.correlator.correlate(event)
        if result.event is None:
            return  # spam-filtered
        for attempt in range(self.retries + 1):
            try:
                written = await asyncio.wait_for(self._write(result), self.write_timeout)
            except (TransportError, TimeoutError) as err:
                if attempt == self.retries:
                    self.failed += 1
                    log.warning("event %s for %s not recorded: %s", event.reason, event.ref.name, err)
                    return
                await asyncio.sleep(self.retry_delay * (attempt + 1))
                continue
            except ApiError as err:
                # The server answered: retrying cannot help (client-go: "will not retry!"). A terminating
                # namespace or an existing name is routine, anything else worth a warning.
                self.failed += 1
                routine = err.status == 409 or "being terminated" in str(err)
                (log.debug if routine else log.warning)(
                    "event %s for %s not recorded: %s", event.reason, event.ref.name, err
                )
                return
            self.correlator.update_state(result.key, written)
            self.written += 1
            return

    async def _write(self, result: ev.Correlation) -> ev.Event:
        event = result.event
        assert event is not None
        if result.patch is not None:
            try:
                obj = await self.api.patch("v1", "events", event.namespace, event.name, result.patch)
                return _as_written(event, obj)
            except ApiError as err:
                if err.status != 404:
                    raise
        obj = await self.api.create("v1", "events", event.namespace, event.body())
        return _as_written(event, obj)


def _as_written(event: ev.Event, obj: dict[str, object]) -> ev.Event:
    meta = obj.get("metadata")
    name = meta.get("name") if isinstance(meta, dict) else None
    count = obj.get("count")
    return replace(
        event, name=str(name or event.name), count=count if isinstance(count, int) else event.count
    )
