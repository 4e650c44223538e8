"""The controller runtime: shared informers, a work queue per controller, and the worker loop.

Every controller follows kube-controller-manager's shape (and controller-runtime's):

* **level-triggered**: informer handlers only enqueue keys (``namespace/name``); ``reconcile(key)``
  reads the whole current state from the listers and acts to reach the desired one, so a missed or
  repeated event changes nothing;
* **one worker per key**: the :class:`~cluster.client.workqueue.WorkQueue` never hands a key to two
  workers at once, and a key added while it is processed is processed again afterwards;
* **errors requeue with backoff**: a ``reconcile`` that raises is retried after client-go's per-item
  exponential delay (5 ms doubling, capped at 1000 s); one that returns forgets the failures, and
  may return a number of seconds after which to look at the key again (a deadline, a periodic check);
* **shared informers**: one list+watch per resource for the whole manager (:class:`SharedInformers`);
  every controller registers its handlers on it and reads its :class:`~cluster.client.lister.Lister`.

Cores take the time from a :class:`Clock`, so tests drive them with a fake one. Events go through a
:class:`Recorder` per controller (component name as kube's, e.g. ``replicaset-controller``).
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from cluster.client.informer import AddHandler, DeleteHandler, Informer, UpdateHandler
from cluster.client.lister import Lister, object_key
from cluster.client.rest import ApiClient
from cluster.client.workqueue import WorkQueue, run_workers
from cluster.machinery.times import Clock

log = logging.getLogger("raykube.controllers")


class Recorder(Protocol):
    def event(self, obj: Mapping[str, Any], event_type: str, reason: str, message: str) -> None:
        """Record an Event about ``obj``; never blocks, never raises."""
        ...


class SharedInformers:
    """One informer per resource, shared by every controller of the manager."""

    def __init__(self, client: ApiClient, *, resync_seconds: float | None = None) -> None:
        self.client = client
        self.resync_seconds = resync_seconds
        self._informers: dict[tuple[str, str], Informer] = {}
        self._tasks: dict[tuple[str, str], asyncio.Task[None]] = {}

    def informer(self, group_version: str, plural: str) -> Informer:
        key = (group_version, plural)
        informer = self._informers.get(key)
        if informer is None:
            informer = Informer(self.client, group_version, plural, resync_seconds=self.resync_seconds)
            self._informers[key] = informer
        return informer

    def lister(self, group_version: str, plural: str) -> Lister:
        return self.informer(group_version, plural).store

    def resources(self) -> list[tuple[str, str]]:
        return sorted(self._informers)

    def start(self) -> None:
        """Start every informer asked for so far that is not running yet (safe to call again)."""
        for key, informer in self._informers.items():
            if key not in self._tasks:
                self._tasks[key] = asyncio.get_running_loop().create_task(
                    informer.run(), name=f"informer {key[0]}/{key[1]}"
                )

    async def wait_synced(self, timeout: float | None = None) -> list[tuple[str, str]]:
        """Wait for every started informer's first list; return the resources still unsynced."""
        keys = list(self._informers)
        results = await asyncio.gather(*(self._informers[k].wait_synced(timeout) for k in keys))
        return [k for k, ok in zip(keys, results, strict=True) if not ok]

    async def stop(self) -> None:
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


# A call to one node's CSI plugin: (node name, RPC name such as "CreateVolume", request message) ->
# response message; raises ``nodeagent.csi.errors.CSIError``. The controller manager's Ray glue makes
# it from the node's volume plugin actor; unit tests pass a fake driver.
CSICaller = Callable[[str, str, Any], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class ControllerOptions:
    node_monitor_grace: float = 40.0
    workers: int = 5
    extra: Mapping[str, Any] = field(default_factory=dict)
    csi: CSICaller | None = None  # None: no volume plugins reachable (volume controllers say so in events)
    root_ca_pem: str = ""  # the cluster CA the root-ca-cert-publisher puts in kube-root-ca.crt ("": none)


@dataclass(frozen=True, slots=True)
class ControllerContext:
    client: ApiClient
    informers: SharedInformers
    clock: Clock
    recorder_for: Callable[[str], Recorder]
    options: ControllerOptions = ControllerOptions()


class Controller(abc.ABC):
    """Base class of every controller; see the module docstring for the contract."""

    NAME: ClassVar[str]
    COMPONENT: ClassVar[str]

    def __init__(self, ctx: ControllerContext) -> None:
        self.ctx = ctx
        self.client = ctx.client
        self.clock = ctx.clock
        self.recorder = ctx.recorder_for(self.COMPONENT)
        self.queue = WorkQueue(clock=ctx.clock.monotonic)
        self._run: asyncio.Task[None] | None = None

    # -- wiring ------------------------------------------------------------------------------------

    def watch(
        self,
        group_version: str,
        plural: str,
        *,
        on_add: AddHandler | None = None,
        on_update: UpdateHandler | None = None,
        on_delete: DeleteHandler | None = None,
    ) -> Lister:
        """Register handlers on the shared informer of a resource; return its lister."""
        informer = self.ctx.informers.informer(group_version, plural)
        if on_add or on_update or on_delete:
            informer.add_handler(on_add, on_update, on_delete)
        return informer.store

    def enqueue(self, obj_or_key: Mapping[str, Any] | str) -> None:
        self.queue.add(obj_or_key if isinstance(obj_or_key, str) else object_key(obj_or_key))

    def enqueue_after(self, obj_or_key: Mapping[str, Any] | str, seconds: float) -> None:
        key = obj_or_key if isinstance(obj_or_key, str) else object_key(obj_or_key)
        self.queue.add_after(key, seconds)

    def enqueue_controller_of(self, obj: Mapping[str, Any], kind: str) -> bool:
        """Enqueue ``namespace/name`` of ``obj``'s controller when it is a ``kind``; True if it was."""
        meta = obj.get("metadata") or {}
        for ref in meta.get("ownerReferences") or ():
            if ref.get("controller") and ref.get("kind") == kind:
                namespace = meta.get("namespace")
                self.queue.add(f"{namespace}/{ref.get('name')}" if namespace else str(ref.get("name")))
                return True
        return False

    # -- the loop ----------------------------------------------------------------------------------

    async def prepare(self) -> None:
        """Async set-up before the shared informers start (e.g. API discovery); default: nothing."""
        return None

    @abc.abstractmethod
    async def reconcile(self, key: str) -> float | None:
        """Bring ``key`` to its desired state; return seconds after which to look again, or None."""

    async def _reconcile(self, key: str) -> None:
        again = await self.reconcile(key)
        if again is not None:
            self.queue.add_after(key, max(again, 0.0))

    async def run(self) -> None:
        """Run the workers until :meth:`stop` (or cancellation)."""
        await run_workers(self.queue, self._reconcile, self.ctx.options.workers)

    def start(self) -> None:
        if self._run is None:
            self._run = asyncio.get_running_loop().create_task(self.run(), name=f"controller {self.NAME}")

    async def stop(self) -> None:
        self.queue.shut_down()
        if self._run is not None:
            self._run.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._run
            self._run = None
