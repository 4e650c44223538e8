"""The controller manager: builds the enabled controllers on one shared set of informers and runs them.

``ControllerManager.start()`` constructs every enabled controller (each registers its informer
handlers), lets each ``prepare`` (async set-up such as discovery), starts the shared informers, waits
for their first lists (so no controller acts on an empty cache and, say, deletes what it cannot see
yet), then starts every controller's workers. A controller whose construction or preparation fails
is logged and left out; the others run (a bad one must not take the cluster's controllers down).

Each controller records events through its own :class:`~cluster.client.event_recorder.EventRecorder`
(source component = the controller's ``COMPONENT``), whose sender task the manager runs.

Identities, as kube-controller-manager with ``--use-service-account-credentials``: the shared
informers read with ``client`` (``system:kube-controller-manager``), each controller writes, and
sends its events, with ``clients(account)``, the client of its ServiceAccount (``SERVICE_ACCOUNTS``).
Without ``clients`` (unit tests, a single identity) every controller uses ``client``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from cluster.client.event_recorder import ClientEventWriter, EventRecorder
from cluster.client.events import object_ref
from cluster.client.rest import ApiClient
from cluster.controllers.registry import CONTROLLERS, SERVICE_ACCOUNTS
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
        clients: Callable[[str], ApiClient] | None = None,
        accounts: Mapping[str, str] | None = None,
    ) -> None:
        self.client = client
        self.clients = clients
        self.accounts = SERVICE_ACCOUNTS if accounts is None else accounts
        self.names = list(names)
        self.clock = clock or SystemClock()
        self.registry = CONTROLLERS if registry is None else registry
        self.informers = SharedInformers(client)
        self._recorders: dict[tuple[str, str], EventRecorder] = {}
        self._recorder_tasks: list[asyncio.Task[None]] = []
        self.ctx = ControllerContext(
            client, self.informers, self.clock, self._recorder_for, options or ControllerOptions()
        )
        self.controllers: dict[str, Controller] = {}
        self.failed: dict[str, str] = {}

    def _recorder_for(self, component: str, account: str = "") -> Recorder:
        recorder = self._recorders.get((component, account))
        if recorder is None:
            client = self.clients(account) if account and self.clients is not None else self.client
            recorder = EventRecorder(ClientEventWriter(client), "", self.clock.now, component=component)
            self._recorders[(component, account)] = recorder
            self._recorder_tasks.append(asyncio.get_running_loop().create_task(recorder.run()))
        return ObjectRecorder(recorder)

    def context_for(self, name: str) -> ControllerContext:
        """The context controller ``name`` runs with: the shared informers, and its own account's
        client for writes and events (the manager's when there is none)."""
        account = self.accounts.get(name, "")
        if self.clients is None:
            return self.ctx
        if not account:
            log.warning("controller %s has no ServiceAccount: it writes as the controller manager", name)
            return self.ctx

        def recorder_for(component: str) -> Recorder:
            return self._recorder_for(component, account)

        return replace(self.ctx, client=self.clients(account), recorder_for=recorder_for)

    async def start(self, sync_timeout: float = SYNC_TIMEOUT) -> None:
        for name in self.names:
            try:
                controller = self.registry[name](self.context_for(name))
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
