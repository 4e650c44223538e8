"""The controller manager: builds the enabled controllers on one shared set of informers and runs them.

``ControllerManager.start()`` constructs every enabled controller (each registers its informer
handlers), lets each ``prepare`` (async set-up such as discovery), starts the shared informers, waits
for their first lists (so no controller acts on an empty cache and, say, deletes what it cannot see
yet), then starts every controller's workers. A controller whose construction or preparation fails
is logged and left out; the others run (a bad one must not take the cluster's controllers down).

Each controller records events through its own :class:`~cluster.client.event_recorder.EventRecorder`
(source component = the controller's ``COMPONENT``), whose sender task the manager runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from cluster.client.event_recorder import ClientEventWriter, EventRecorder
from cluster.client.events import object_ref
from cluster.client.rest import ApiClient
from cluster.controllers.registry import CONTROLLERS
from cluster.controllers.runtime import (
    Controller,
    ControllerContext,
    ControllerOptions,
    Recorder,
    SharedInformers,
)
from cluster.machinery.times import Clock, SystemClock

log = logging.getLogger("raykube.controllers")

SYNC_TIMEOUT = 120.0


class ObjectRecorder:
    """``Recorder`` for controllers: events about wire-form objects, queued on an ``EventRecorder``."""

    def __init__(self, recorder: EventRecorder) -> None:
        self.recorder = recorder

    def event(self, obj: Mapping[str, Any], event_type: str, reason: str, message: str) -> None:
        self.recorder.event(object_ref(obj), event_type, reason, message)


class ControllerManager:
    def __init__(
        self,
        client: ApiClient,
        names: Sequence[str],
        *,
        clock: Clock | None = None,
        options: ControllerOptions | None = None,
        registry: Mapping[str, type[Controller]] | None = None,
    ) -> None:
        self.client = client
        self.names = list(names)
        self.clock = clock or SystemClock()
        self.registry = CONTROLLERS if registry is None else registry
        self.informers = SharedInformers(client)
        self._recorders: dict[str, EventRecorder] = {}
        self._recorder_tasks: list[asyncio.Task[None]] = []
        self.ctx = ControllerContext(
            client, self.informers, self.clock, self._recorder_for, options or ControllerOptions()
        )
        self.controllers: dict[str, Controller] = {}
        self.failed: dict[str, str] = {}

    def _recorder_for(self, component: str) -> Recorder:
        recorder = self._recorders.get(component)
        if recorder is None:
            recorder = EventRecorder(ClientEventWriter(self.client), "", self.clock.now, component=component)
            self._recorders[component] = recorder
            self._recorder_tasks.append(asyncio.get_running_loop().create_task(recorder.run()))
        return ObjectRecorder(recorder)

    async def start(self, sync_timeout: float = SYNC_TIMEOUT) -> None:
        for name in self.names:
            try:
                controller = self.registry[name](self.ctx)
                await controller.prepare()
            except Exception as err:
                log.exception("controller %s failed to start; the others run without it", name)
                self.failed[name] = f"{type(err).__name__}: {err}"
                continue
            self.controllers[name] = controller
        self.informers.start()
        unsynced = await self.informers.wait_synced(sync_timeout)
        if unsynced:
            log.warning("informers not synced after %.0fs: %s", sync_timeout, unsynced)
        for controller in self.controllers.values():
            controller.start()
        log.info("controllers running: %s", ", ".join(self.controllers) or "none")

    async def stop(self) -> None:
        for controller in self.controllers.values():
            await controller.stop()
        await self.informers.stop()
        for recorder in self._recorders.values():
            with contextlib.suppress(Exception):
                await recorder.flush(2.0)
        for task in self._recorder_tasks:
            task.cancel()
        for task in self._recorder_tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
