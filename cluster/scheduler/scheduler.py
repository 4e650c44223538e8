"""The scheduler's asyncio shell: informers in, bindings, events and status patches out.

The pure core (``schedule_one``, the ``Framework``, the ``SchedulingQueue``) decides; this module only
feeds it and carries out what it decided, as kube-scheduler's ``Scheduler`` does:

- A pod informer and a node informer keep a live ``ClusterCache``. Pods with an empty
  ``spec.nodeName`` whose ``spec.schedulerName`` names one of our profiles go into the queue; assigned
  pods are counted on their nodes. Node adds/updates and assigned-pod adds/deletes are cluster events
  that move unschedulable pods back to the active or backoff queue.
- The loop pops up to ``batch_size`` pods and runs ``schedule_one`` for each on the cache's live
  ``Snapshot`` (updated incrementally by the informer handlers; pods placed earlier are assumed in it,
  so later ones see them), then binds the placed pods with one ``bind_many`` call.
- Pods that a PreEnqueue plugin rejects (``spec.schedulingGates``) wait in the queue unpopped, with no
  event or status patch (the API server marked them ``SchedulingGated`` on create), until an update
  removes the last gate.
- Placed pods stay *assumed* in the cache until the informer shows them bound, so the next batch sees
  them too; a failed binding forgets the assumption and the pod backs off.
- A pod that does not fit goes to the unschedulable pool (an error: to backoff), gets a Warning
  ``FailedScheduling`` event with ``fit_error_message``'s text and a ``PodScheduled=False``
  (``Unschedulable``) condition through the status subresource. When preemption found a node, the pod's
  ``status.nominatedNodeName`` is set and the victims are deleted (each gets a ``Preempted`` event).

Invariants: only the loop task pops, so a pod is never in two cycles at once; handlers only touch the
cache and the queue (no I/O); every API failure is logged and the loop continues.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cluster.client.errors import ApiError
from cluster.client.informer import Informer
from cluster.client.rest import ApiClient
from cluster.machinery.meta import object_meta
from cluster.machinery.times import rfc3339
from cluster.scheduler.config import SchedulerConfiguration, build_registry
from cluster.scheduler.framework.interface import SnapshotHandle
from cluster.scheduler.framework.runtime import Framework
from cluster.scheduler.framework.status import SUCCESS, Code, Status
from cluster.scheduler.framework.types import Snapshot, pod_key
from cluster.scheduler.plugins.default_binder import recorded_binding
from cluster.scheduler.plugins.volume_binding import WORK_KEY, VolumeListers, recorded_work
from cluster.scheduler.queue import QueuedPodInfo, SchedulingQueue
from cluster.scheduler.schedule_one import ScheduleResult, forget, run_binding_cycle, schedule_one
from cluster.scheduler.volume_binder import bind_pod_volumes

log = logging.getLogger("raykube.scheduler")

COMPONENT = "default-scheduler"
TERMINAL_PHASES = frozenset({"Succeeded", "Failed"})
_IGNORED_METADATA = ("resourceVersion", "managedFields", "generation")


def _node_name(pod: dict[str, Any]) -> str:
    return str((pod.get("spec") or {}).get("nodeName") or "")


def _stripped(obj: dict[str, Any], *, drop_status: bool) -> dict[str, Any]:
    """The object without the fields that change on every write (and without status if asked)."""
    out = {k: v for k, v in obj.items() if not (drop_status and k == "status")}
    out["metadata"] = {k: v for k, v in object_meta(obj).items() if k not in _IGNORED_METADATA}
    return out


def pod_spec_changed(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """True when a pending pod changed in a way that may change where it fits (not just its status,
    which the scheduler itself writes; otherwise every failure would wake the pod again)."""
    return _stripped(old, drop_status=True) != _stripped(new, drop_status=True)


def node_changed(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """True when a node changed beyond its resourceVersion (heartbeat-only changes still count: the
    node's conditions are read by no in-tree filter, but allocatable and taints are)."""
    return _stripped(old, drop_status=False) != _stripped(new, drop_status=False)


def _pod_ref(pod: dict[str, Any]) -> str:
    meta = object_meta(pod)
    return f"{meta.get('namespace') or 'default'}/{meta.get('name', '')}"


def is_terminal(pod: dict[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") in TERMINAL_PHASES


def unschedulable_condition(message: str, now: datetime) -> dict[str, Any]:
    return {
        "type": "PodScheduled",
        "status": "False",
        "reason": "Unschedulable",
        "message": message,
        "lastProbeTime": None,
        "lastTransitionTime": rfc3339(now),
    }


def status_patch_for_failure(
    pod: dict[str, Any], message: str, nominated: str | None, now: datetime
) -> dict[str, Any] | None:
    """The merge patch for ``pods/<name>/status`` after a failed cycle, or None if nothing changes.

    The PodScheduled condition is replaced (its transition time kept when it was already False);
    other conditions are kept as they are (a merge patch replaces the whole list).
    """
    status = pod.get("status") or {}
    conditions = list(status.get("conditions") or [])
    current = next((c for c in conditions if c.get("type") == "PodScheduled"), None)
    wanted = unschedulable_condition(message, now)
    if current is not None and current.get("status") == "False" and current.get("lastTransitionTime"):
        wanted["lastTransitionTime"] = current["lastTransitionTime"]
    patch: dict[str, Any] = {}
    if current is None or {k: current.get(k) for k in ("status", "reason", "message")} != {
        k: wanted[k] for k in ("status", "reason", "message")
    }:
        patch["conditions"] = [c for c in conditions if c.get("type") != "PodScheduled"] + [wanted]
    if nominated and status.get("nominatedNodeName") != nominated:
        patch["nominatedNodeName"] = nominated
    return {"status": patch} if patch else None


def pod_event(
    pod: dict[str, Any], name: str, event_type: str, reason: str, message: str, now: datetime
) -> dict[str, Any]:
    """A core/v1 Event about ``pod`` from the default scheduler, as ``kubectl describe`` shows it."""
    meta = object_meta(pod)
    namespace = meta.get("namespace") or "default"
    stamp = rfc3339(now)
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": name, "namespace": namespace},
        "involvedObject": {
            "apiVersion": "v1",
            "kind": "Pod",
            "namespace": namespace,
            "name": meta.get("name", ""),
            "uid": meta.get("uid", ""),
            "resourceVersion": meta.get("resourceVersion", ""),
        },
        "type": event_type,
        "reason": reason,
        "message": message,
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "reportingInstance": COMPONENT,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }


class ClusterCache:
    """Nodes and assigned pods as the informers report them, plus pods assumed by our bindings, kept
    in one live ``Snapshot`` that every scheduling cycle uses directly (no per-batch rebuild, which
    at 5,000 nodes and 10,000 pods would cost more than the cycles themselves).

    Invariants: a pod is counted on at most one node, once (assumed and confirmed copies share the
    pod key); pods whose node is not known yet wait in ``pods_by_node`` and are counted when it
    appears; removing a node forgets its pods from the snapshot but not from ``pods``.
    """

    __slots__ = ("_live", "assumed", "nodes", "pods", "pods_by_node")

    def __init__(self) -> None:
        self.nodes: dict[str, dict[str, Any]] = {}
        self.pods: dict[str, dict[str, Any]] = {}  # pod key -> assigned pod (as the informer has it)
        self.assumed: dict[str, dict[str, Any]] = {}  # pod key -> pod with nodeName, not yet observed
        self.pods_by_node: dict[str, dict[str, dict[str, Any]]] = {}
        self._live = Snapshot([], [])

    def snapshot(self) -> Snapshot:
        """The live snapshot: nodes sorted by name, bound pods plus the still-unconfirmed assumed ones."""
        return self._live

    def set_node(self, node: dict[str, Any]) -> None:
        name = str(object_meta(node).get("name", ""))
        known = name in self.nodes
        self.nodes[name] = node
        self._live.add_node(node)
        if not known:
            for pod in self.pods_by_node.get(name, {}).values():
                self._live.add_pod(pod)

    def remove_node(self, name: str) -> None:
        self.nodes.pop(name, None)
        self._live.remove_node(name)

    def _count(self, key: str, pod: dict[str, Any]) -> None:
        node = _node_name(pod)
        self.pods_by_node.setdefault(node, {})[key] = pod
        self._live.add_pod(pod)

    def _uncount(self, key: str, pod: dict[str, Any]) -> None:
        node = _node_name(pod)
        on_node = self.pods_by_node.get(node)
        if on_node is not None:
            on_node.pop(key, None)
            if not on_node:
                del self.pods_by_node[node]
        self._live.remove_pod(pod, node)

    def set_pod(self, pod: dict[str, Any]) -> bool:
        """Count an assigned pod (replacing its assumed or older copy); True when it is new here."""
        key = pod_key(pod)
        previous = self.pods.get(key)
        if previous is None:
            previous = self.assumed.pop(key, None)
        else:
            self.assumed.pop(key, None)
        if previous is not None:
            self._uncount(key, previous)
        self.pods[key] = pod
        self._count(key, pod)
        return previous is None

    def remove_pod(self, key: str) -> bool:
        """Forget a pod (assigned or assumed); True when it was counted as assigned."""
        assumed = self.assumed.pop(key, None)
        if assumed is not None:
            self._uncount(key, assumed)
        pod = self.pods.pop(key, None)
        if pod is not None:
            self._uncount(key, pod)
        return pod is not None

    def assume(self, pod: dict[str, Any], node_name: str) -> None:
        """Record a pod the cycle already assumed in the snapshot (``schedule_one`` did that)."""
        spec = dict(pod.get("spec") or {})
        spec["nodeName"] = node_name
        key = pod_key(pod)
        copy = {**pod, "spec": spec}
        self.assumed[key] = copy
        self.pods_by_node.setdefault(node_name, {})[key] = copy

    def forget(self, pod: dict[str, Any], node_name: str) -> None:
        """Undo ``assume`` (and the snapshot's count) after a failed binding."""
        key = pod_key(pod)
        copy = self.assumed.pop(key, None)
        if copy is not None:
            self._uncount(key, copy)


@dataclass(slots=True)
class _Bound:
    pinfo: QueuedPodInfo
    result: ScheduleResult
    framework: Framework
    node_name: str


class Scheduler:
    """See the module docstring. Create it inside the event loop that will ``run`` it."""

    def __init__(
        self,
        client: ApiClient,
        config: SchedulerConfiguration,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        rng: random.Random | None = None,
        batch_size: int = 256,
        idle_wait: float = 0.2,
        max_binding_batches: int = 4,
    ) -> None:
        self.client = client
        self.config = config
        self._wall_clock = wall_clock
        self._rng = rng if rng is not None else random.Random()
        self.batch_size = batch_size
        self._idle_wait = idle_wait
        self.queue = SchedulingQueue(clock, pre_enqueue=self._pre_enqueue)
        self.cache = ClusterCache()
        self.handle = SnapshotHandle(clock=clock)
        registry = build_registry(config)
        self.frameworks = {p.scheduler_name: Framework(p, registry, self.handle) for p in config.profiles}
        self.pods = Informer(client, "v1", "pods")
        self.nodes = Informer(client, "v1", "nodes")
        self.pdbs = Informer(client, "policy/v1", "poddisruptionbudgets")
        self._wake = asyncio.Event()
        self._start_index = 0
        self._event_seq = itertools.count()
        self._tasks: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[None]] = set()
        self._binding_slots = asyncio.Semaphore(max_binding_batches)
        self.scheduled = 0
        self.failed_attempts = 0
        self.pods.add_handler(self._on_pod_add, self._on_pod_update, self._on_pod_delete)
        self.nodes.add_handler(self._on_node_add, self._on_node_update, self._on_node_delete)
        self._volume_claims: Any = None  # the claim lister, when a plugin reads volumes
        self.volume_informers = self._wire_volume_listers()

    def _wire_volume_listers(self) -> list[Informer]:
        """Claims, PVs, StorageClasses and CSINodes for the plugins that read them (VolumeBinding);
        no informers at all when no profile enables such a plugin. A claim or PV change is a cluster
        event that may let a pod waiting for volumes fit."""
        wanting = [
            plugin
            for fw in self.frameworks.values()
            for plugin in fw.plugins.values()
            if callable(getattr(plugin, "set_volume_listers", None))
        ]
        if not wanting:
            return []
        claims = Informer(self.client, "v1", "persistentvolumeclaims")
        volumes = Informer(self.client, "v1", "persistentvolumes")
        classes = Informer(self.client, "storage.k8s.io/v1", "storageclasses")
        csinodes = Informer(self.client, "storage.k8s.io/v1", "csinodes")
        listers = VolumeListers(claims.store, volumes.store, classes.store, csinodes.store)
        for plugin in wanting:
            plugin.set_volume_listers(listers)
        claims.add_handler(self._on_volume_object, self._on_volume_update, None)
        volumes.add_handler(self._on_volume_object, self._on_volume_update, None)
        csinodes.add_handler(self._on_volume_object, self._on_volume_update, None)
        self._volume_claims = claims.store
        return [claims, volumes, classes, csinodes]

    def _on_volume_object(self, _: dict[str, Any]) -> None:
        self._move("VolumeChange")  # a claim, PV or CSINode appeared: pods waiting for volumes may fit

    def _on_volume_update(self, _: dict[str, Any], __: dict[str, Any]) -> None:
        self._move("VolumeChange")

    # -- informer handlers (no I/O) -----------------------------------------------------------------
    def _pre_enqueue(self, pod: dict[str, Any]) -> Status:
        """The pod's profile's PreEnqueue plugins (SchedulingGates): may it enter the active queue?"""
        fw = self.frameworks.get((pod.get("spec") or {}).get("schedulerName") or "default-scheduler")
        return fw.run_pre_enqueue(pod) if fw is not None else SUCCESS

    def _responsible(self, pod: dict[str, Any]) -> bool:
        name = (pod.get("spec") or {}).get("schedulerName") or "default-scheduler"
        return name in self.frameworks

    def _move(self, event: str) -> None:
        self.queue.move_all_to_active_or_backoff(event)
        self._wake.set()

    def _on_pod_add(self, pod: dict[str, Any]) -> None:
        if _node_name(pod):
            self._on_assigned(pod)
        elif self._responsible(pod) and not is_terminal(pod):
            self.queue.add(pod)
            self._wake.set()

    def _on_pod_update(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        if _node_name(new):
            self.queue.delete(new)
            self._on_assigned(new)
        elif self._responsible(new) and not is_terminal(new):
            if pod_spec_changed(old, new):
                self.queue.update(new)
                self._wake.set()
        else:
            self.queue.delete(new)

    def _on_pod_delete(self, pod: dict[str, Any]) -> None:
        self.queue.delete(pod)
        if self.cache.remove_pod(pod_key(pod)):
            self._move("AssignedPodDelete")

    def _on_assigned(self, pod: dict[str, Any]) -> None:
        key = pod_key(pod)
        if is_terminal(pod):
            if self.cache.remove_pod(key):
                self._move("AssignedPodDelete")  # a finished pod frees its node
            return
        added = key not in self.cache.pods
        self.cache.set_pod(pod)
        if added:
            self._move("AssignedPodAdd")  # may satisfy pod affinity

    def _on_node_add(self, node: dict[str, Any]) -> None:
        self.cache.set_node(node)
        self._move("NodeAdd")

    def _on_node_update(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        self.cache.set_node(new)
        if node_changed(old, new):
            self._move("NodeUpdate")

    def _on_node_delete(self, node: dict[str, Any]) -> None:
        self.cache.remove_node(str(object_meta(node).get("name", "")))

    # -- lifecycle ----------------------------------------------------------------------------------
    async def start(self, sync_timeout: float = 60.0) -> None:
        """Start the informers and the loop; return once pods and nodes are listed."""
        for informer in (self.pods, self.nodes, self.pdbs, *self.volume_informers):
            self._tasks.append(asyncio.create_task(informer.run()))
        for informer in (self.pods, self.nodes, *self.volume_informers):
            if not await informer.wait_synced(sync_timeout):
                raise TimeoutError("the scheduler's informers did not sync")
        self._tasks.append(asyncio.create_task(self._loop()))

    async def stop(self) -> None:
        for task in [*self._tasks, *self._background]:
            task.cancel()
        for task in [*self._tasks, *self._background]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        self._background.clear()

    def stats(self) -> dict[str, Any]:
        return {
            "scheduled": self.scheduled,
            "failedAttempts": self.failed_attempts,
            "nodes": len(self.cache.nodes),
            "assignedPods": len(self.cache.pods),
            "assumedPods": len(self.cache.assumed),
            "pending": self.queue.pending_pods(),
            "profiles": sorted(self.frameworks),
        }

    # -- the scheduling loop ------------------------------------------------------------------------
    async def _loop(self) -> None:
        while True:
            try:
                batch = self._pop_batch()
                if not batch:
                    self._wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), self._idle_wait)
                    continue
                await self.schedule_batch(batch)
            except asyncio.CancelledError:
                raise
            except Exception:  # the loop must outlive any one bad cycle
                log.exception("scheduling cycle failed")
                await asyncio.sleep(self._idle_wait)

    def _pop_batch(self) -> list[tuple[QueuedPodInfo, int]]:
        batch: list[tuple[QueuedPodInfo, int]] = []
        while len(batch) < self.batch_size:
            pinfo = self.queue.pop()
            if pinfo is None:
                break
            batch.append((pinfo, self.queue.scheduling_cycle))
        return batch

    async def schedule_batch(self, batch: list[tuple[QueuedPodInfo, int]]) -> None:
        """Schedule each pod on the live snapshot in turn; bind the placed ones together."""
        snapshot = self.cache.snapshot()
        self.handle.set_snapshot(snapshot)
        if self.pdbs.has_synced:
            self.handle.set_pdbs(self.pdbs.store.list())
        placed: list[_Bound] = []
        failures: list[tuple[QueuedPodInfo, int, ScheduleResult]] = []
        for pinfo, cycle in batch:
            pod = pinfo.pod
            fw = self.frameworks.get((pod.get("spec") or {}).get("schedulerName") or "default-scheduler")
            if fw is None or object_meta(pod).get("deletionTimestamp") or _node_name(pod):
                self.queue.done(pinfo.key)
                continue
            result = schedule_one(
                fw,
                pod,
                snapshot,
                percentage_of_nodes_to_score=self.config.percentage_of_nodes_to_score,
                start_index=self._start_index,
                rng=self._rng,
            )
            if snapshot.node_infos:
                self._start_index = (self._start_index + result.evaluated) % len(snapshot.node_infos)
            if result.node_name is None:
                failures.append((pinfo, cycle, result))
                continue
            if result.status.is_wait():
                # Permit waits are not supported by this shell: treat as a rejection and retry later.
                if result.state is not None:
                    fw.run_unreserve(result.state, pod, result.node_name)
                forget(snapshot, pod, result.node_name)
                self.queue.add_backoff(pinfo)
                continue
            status = run_binding_cycle(fw, result, pod, snapshot)
            if not status.is_success():
                result.node_name = None
                result.status = status
                failures.append((pinfo, cycle, result))
                continue
            self.cache.assume(pod, result.node_name)
            placed.append(_Bound(pinfo, result, fw, result.node_name))
        # Binding runs beside the next cycles, as kube-scheduler's binding goroutines do: the pods
        # stay assumed in the cache meanwhile, and at most ``max_binding_batches`` are in flight.
        await self._binding_slots.acquire()
        self._spawn(self._bind_and_release(placed, failures))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _bind_and_release(
        self, placed: list[_Bound], failures: list[tuple[QueuedPodInfo, int, ScheduleResult]]
    ) -> None:
        try:
            await asyncio.gather(self._bind(placed), *(self._handle_failure(p, c, r) for p, c, r in failures))
        except Exception:
            log.exception("binding a batch failed")
        finally:
            self._binding_slots.release()

    async def drain(self) -> None:
        """Wait for every binding and failure report started so far (tests, shutdown)."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

    async def _bind(self, placed: list[_Bound]) -> None:
        if any(recorded_work(bound.result.state) is not None for bound in placed):
            # Pods whose claims must be bound first wait on their own, off the binding slots.
            for bound in placed:
                if recorded_work(bound.result.state) is not None:
                    self._spawn(self._bind_after_volumes(bound))
            placed = [bound for bound in placed if recorded_work(bound.result.state) is None]
        if not placed:
            return
        requests: list[tuple[str, str, str]] = []
        for bound in placed:
            binding = recorded_binding(bound.result.state) if bound.result.state else None
            meta = (binding or {}).get("metadata") or object_meta(bound.pinfo.pod)
            requests.append((meta.get("namespace") or "default", meta.get("name", ""), bound.node_name))
        errors: list[ApiError | None]
        try:
            errors = await self.client.bind_many(requests)
        except ApiError as err:  # a transport failure fails the whole batch
            errors = [err] * len(placed)
        events: list[Coroutine[Any, Any, None]] = []
        for bound, error in zip(placed, errors, strict=True):
            pod = bound.pinfo.pod
            if error is None:
                self.scheduled += 1
                self.queue.done(bound.pinfo.key)
                message = f"Successfully assigned {_pod_ref(pod)} to {bound.node_name}"
                events.append(self._post_event(pod, "Normal", "Scheduled", message))
                continue
            log.warning("binding %s to %s failed: %s", bound.pinfo.key, bound.node_name, error)
            self.cache.forget(pod, bound.node_name)
            if bound.result.state is not None:
                bound.framework.run_unreserve(bound.result.state, pod, bound.node_name)
            if error.status == 404 or (error.status == 409 and not self._still_pending(pod)):
                self.queue.done(bound.pinfo.key)  # deleted, or bound by someone else
            else:
                self.queue.add_backoff(bound.pinfo)
                events.append(
                    self._post_event(pod, "Warning", "FailedScheduling", f"Binding rejected: {error}")
                )
        self._wake.set()
        await asyncio.gather(*events)

    async def _bind_after_volumes(self, bound: _Bound) -> None:
        """VolumeBinding's PreBind I/O (claimRefs, selected-node, the wait for Bound claims), then the
        pod's own binding; a failure undoes the reservation and the pod backs off, as a failed PreBind."""
        state = bound.result.state
        work = recorded_work(state)
        if state is None or work is None:
            return
        state.delete(WORK_KEY)
        pod = bound.pinfo.pod
        error = await bind_pod_volumes(self.client, work, self._volume_claims)
        if error is None:
            plugin = bound.framework.plugins.get("VolumeBinding")
            if plugin is not None:
                plugin.forget_bound(work.claims)
            await self._bind([bound])
            return
        log.warning("binding the volumes of %s on %s failed: %s", bound.pinfo.key, bound.node_name, error)
        self.cache.forget(pod, bound.node_name)
        bound.framework.run_unreserve(state, pod, bound.node_name)
        self.queue.add_backoff(bound.pinfo)
        self._wake.set()
        message = f'running PreBind plugin "VolumeBinding": {error}'
        await self._post_event(pod, "Warning", "FailedScheduling", message)

    def _still_pending(self, pod: dict[str, Any]) -> bool:
        """Whether the informer still shows the pod unbound and not terminating. As kube-scheduler's
        failure handler, a rejected binding drops the pod only when it was bound or deleted meanwhile; a
        409 from a write race (or a gate the informer has not shown yet) must not lose the pod."""
        meta = object_meta(pod)
        cached = self.pods.store.get(meta.get("namespace") or "default", str(meta.get("name", "")))
        return (
            cached is not None and not _node_name(cached) and not object_meta(cached).get("deletionTimestamp")
        )

    async def _handle_failure(self, pinfo: QueuedPodInfo, cycle: int, result: ScheduleResult) -> None:
        pod = pinfo.pod
        self.failed_attempts += 1
        if result.status.code == Code.ERROR:
            message = f"running scheduling cycle: {result.status.message()}"
            self.queue.add_backoff(pinfo)
        else:
            message = result.message
            self.queue.add_unschedulable(pinfo, cycle)
        await self._post_event(pod, "Warning", "FailedScheduling", message)
        if result.nominated:
            await self._preempt(pod, result.nominated, result.victims)
        patch = status_patch_for_failure(pod, message, result.nominated, self._wall_clock())
        if patch is not None:
            meta = object_meta(pod)
            await self._call(
                "patch pod status",
                self.client.patch(
                    "v1",
                    "pods",
                    meta.get("name", ""),
                    patch,
                    meta.get("namespace") or "default",
                    subresource="status",
                ),
            )

    async def _preempt(self, pod: dict[str, Any], node_name: str, victims: list[dict[str, Any]]) -> None:
        uid = object_meta(pod).get("uid", "")
        for victim in victims:
            meta = object_meta(victim)
            await self._post_event(
                victim, "Normal", "Preempted", f"Preempted by pod {uid} on node {node_name}"
            )
            await self._call(
                "delete victim",
                self.client.delete("v1", "pods", meta.get("name", ""), meta.get("namespace") or "default"),
            )

    async def _post_event(self, pod: dict[str, Any], event_type: str, reason: str, message: str) -> None:
        now = self._wall_clock()
        # Unique like kube's "<pod>.<hex nanoseconds>"; the counter separates events in the same tick.
        nanos = int(now.timestamp() * 1e9)
        name = f"{object_meta(pod).get('name', 'pod')}.{nanos:x}{next(self._event_seq) % 4096:03x}"
        event = pod_event(pod, name, event_type, reason, message, now)
        await self._call(
            "post event", self.client.create("v1", "events", event, event["metadata"]["namespace"])
        )

    async def _call(self, what: str, request: Coroutine[Any, Any, Any]) -> None:
        try:
            await request
        except ApiError as err:
            log.warning("%s: %s", what, err)
