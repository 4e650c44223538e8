"""The scheduling queue: pending pods in three places, as in kube-scheduler.

- activeQ: a heap ordered by priority (``spec.priority``, default 0) descending, then by the time the
  pod entered the queue ascending; ``pop`` takes from here.
- backoffQ: pods that failed and wait out their backoff, ``1 s * 2**(attempts-1)`` capped at 10 s from
  the time they were put back; they return to activeQ once it has passed.
- unschedulable pool: pods no node fits; a cluster event (``move_all_to_active_or_backoff``) moves
  them out (to backoffQ while their backoff lasts, else activeQ), and any left there for 5 minutes are
  flushed out the same way.
- gated pods: every move into activeQ first asks the ``pre_enqueue`` hook (the profile's PreEnqueue
  plugins, e.g. SchedulingGates). A pod it rejects waits in the unschedulable pool marked ``gated``;
  cluster events and the 5-minute flush leave it there (no event can lift a gate), and only an update of
  the pod (``update``) asks the hook again.
Invariants: a pod (by uid, else namespace/name) is in at most one place, or in flight between ``pop``
and ``done``; a pod the hook rejects is never popped; time comes only from the injected clock; ``pop``
never blocks (the actor wraps it).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cluster.scheduler.framework.status import SUCCESS, Status
from cluster.scheduler.framework.types import pod_key

INITIAL_BACKOFF = 1.0
MAX_BACKOFF = 10.0
UNSCHEDULABLE_MAX_DURATION = 5 * 60.0

ACTIVE, BACKOFF, UNSCHEDULABLE, GATED = "active", "backoff", "unschedulable", "gated"

PreEnqueue = Callable[[dict[str, Any]], Status]


def _admit_all(pod: dict[str, Any]) -> Status:
    return SUCCESS


def pod_priority(pod: dict[str, Any]) -> int:
    return int((pod.get("spec") or {}).get("priority") or 0)


@dataclass(slots=True)
class QueuedPodInfo:
    """A pod in the queue with its bookkeeping; ``timestamp`` is when it last entered the queue."""

    pod: dict[str, Any]
    timestamp: float
    initial_attempt_timestamp: float | None = None
    attempts: int = 0
    unschedulable_plugins: set[str] = field(default_factory=set)
    gated: bool = False  # rejected by a PreEnqueue plugin: waits for an update of the pod

    @property
    def key(self) -> str:
        return pod_key(self.pod)

    @property
    def priority(self) -> int:
        return pod_priority(self.pod)


def backoff_duration(attempts: int) -> float:
    """1 s doubled per attempt after the first, capped at 10 s."""
    duration = INITIAL_BACKOFF
    for _ in range(1, attempts):
        duration *= 2
        if duration >= MAX_BACKOFF:
            return MAX_BACKOFF
    return duration


class SchedulingQueue:
    """See the module docstring. Not thread-safe: the owning actor serialises calls."""

    def __init__(self, clock: Callable[[], float], pre_enqueue: PreEnqueue = _admit_all) -> None:
        self._clock = clock
        self._pre_enqueue = pre_enqueue
        self._seq = itertools.count()
        self._active: list[tuple[int, float, int, str]] = []  # (-priority, timestamp, seq, key)
        self._backoff: list[tuple[float, int, str]] = []  # (expiry, seq, key)
        self._entries: dict[str, tuple[str, int]] = {}  # key -> (place, seq) of its live heap entry
        self._infos: dict[str, QueuedPodInfo] = {}
        self._unschedulable: dict[str, QueuedPodInfo] = {}
        self._in_flight: dict[str, QueuedPodInfo] = {}
        self.scheduling_cycle = 0
        self._move_request_cycle = -1

    # -- placing pods -------------------------------------------------------------------------------
    def _push_active(self, info: QueuedPodInfo) -> None:
        """Into activeQ if every PreEnqueue plugin lets the pod in; else parked as gated."""
        status = self._pre_enqueue(info.pod)
        if not status.is_success():
            self._entries.pop(info.key, None)
            info.gated = True
            info.unschedulable_plugins = {status.plugin} if status.plugin else set()
            self._infos[info.key] = info
            self._unschedulable[info.key] = info
            return
        info.gated = False
        self._unschedulable.pop(info.key, None)
        seq = next(self._seq)
        self._infos[info.key] = info
        self._entries[info.key] = (ACTIVE, seq)
        heapq.heappush(self._active, (-info.priority, info.timestamp, seq, info.key))

    def _push_backoff(self, info: QueuedPodInfo) -> None:
        seq = next(self._seq)
        self._infos[info.key] = info
        self._entries[info.key] = (BACKOFF, seq)
        heapq.heappush(self._backoff, (self.backoff_expiry(info), seq, info.key))

    def _remove(self, key: str) -> QueuedPodInfo | None:
        self._entries.pop(key, None)  # heap entries die lazily
        self._unschedulable.pop(key, None)
        return self._infos.pop(key, None)

    def backoff_expiry(self, info: QueuedPodInfo) -> float:
        return info.timestamp + backoff_duration(info.attempts)

    def _is_backing_off(self, info: QueuedPodInfo) -> bool:
        return info.attempts > 0 and self.backoff_expiry(info) > self._clock()

    def _requeue(self, info: QueuedPodInfo) -> None:
        """Out of the unschedulable pool: to backoffQ while backing off, else activeQ."""
        self._unschedulable.pop(info.key, None)
        if self._is_backing_off(info):
            self._push_backoff(info)
        else:
            self._push_active(info)

    def add(self, pod: dict[str, Any]) -> None:
        """A new pending pod goes to activeQ; a pod already queued is updated instead."""
        key = pod_key(pod)
        if key in self._infos or key in self._in_flight:
            self.update(pod)
            return
        self._push_active(QueuedPodInfo(pod, self._clock()))

    def update(self, pod: dict[str, Any]) -> None:
        """A changed pending pod: it may fit now, so it leaves the unschedulable pool."""
        key = pod_key(pod)
        if key in self._in_flight:
            self._in_flight[key].pod = pod
            return
        info = self._infos.get(key)
        if info is None:
            self.add(pod)
            return
        info.pod = pod
        place = self._entries[key][0] if key in self._entries else UNSCHEDULABLE
        if place == ACTIVE:
            self._push_active(info)  # priority may have changed; the old heap entry is now stale
        elif place == UNSCHEDULABLE:
            self._requeue(info)

    def delete(self, pod: dict[str, Any]) -> None:
        key = pod_key(pod)
        self._remove(key)
        self._in_flight.pop(key, None)

    # -- the scheduling loop ---------------------------------------------------------------------------
    def flush(self) -> None:
        """Move finished backoffs to activeQ and pods unschedulable for 5 minutes out of the pool."""
        now = self._clock()
        while self._backoff and self._backoff[0][0] <= now:
            _, seq, key = heapq.heappop(self._backoff)
            if self._entries.get(key) == (BACKOFF, seq):
                self._push_active(self._infos[key])
        stale = [
            i
            for i in self._unschedulable.values()
            if not i.gated and now - i.timestamp >= UNSCHEDULABLE_MAX_DURATION
        ]
        for info in stale:
            self._requeue(info)

    def pop(self) -> QueuedPodInfo | None:
        """The next pod to schedule, or None when activeQ is empty; the pod is in flight until ``done``."""
        self.flush()
        while self._active:
            _, _, seq, key = heapq.heappop(self._active)
            if self._entries.get(key) != (ACTIVE, seq):
                continue
            info = self._infos.pop(key)
            del self._entries[key]
            info.attempts += 1
            if info.initial_attempt_timestamp is None:
                info.initial_attempt_timestamp = self._clock()
            self.scheduling_cycle += 1
            self._in_flight[key] = info
            return info
        return None

    def done(self, pod_uid: str) -> None:
        """The cycle for this pod is over (bound, or handed back with ``add_unschedulable``)."""
        self._in_flight.pop(pod_uid, None)

    def add_unschedulable(self, pinfo: QueuedPodInfo, cycle: int) -> None:
        """Put back a pod that failed in scheduling cycle ``cycle``.

        If a cluster event arrived since that cycle began, the pod may fit now, so it goes to backoffQ;
        otherwise to the unschedulable pool. Its timestamp restarts now (backoff counts from here).
        """
        key = pinfo.key
        self._in_flight.pop(key, None)
        if key in self._infos:
            return  # re-added (updated) while in flight; the newer entry wins
        pinfo.timestamp = self._clock()
        if self._move_request_cycle >= cycle:
            self._push_backoff(pinfo)
        else:
            self._infos[key] = pinfo
            self._unschedulable[key] = pinfo

    def add_backoff(self, pinfo: QueuedPodInfo) -> None:
        """Put back a pod whose cycle errored (not a fit failure): it retries after its backoff."""
        self._in_flight.pop(pinfo.key, None)
        if pinfo.key in self._infos:
            return
        pinfo.timestamp = self._clock()
        self._push_backoff(pinfo)

    def move_all_to_active_or_backoff(self, event: str) -> None:
        """A cluster event (``"NodeAdd"``, ``"PodDelete"``, ...) that may make pending pods fit."""
        for info in list(self._unschedulable.values()):
            if not info.gated:
                self._requeue(info)
        self._move_request_cycle = self.scheduling_cycle

    # -- inspection -----------------------------------------------------------------------------------
    def pending_pods(self) -> dict[str, int]:
        gated = sum(1 for i in self._unschedulable.values() if i.gated)
        counts = {ACTIVE: 0, BACKOFF: 0, UNSCHEDULABLE: len(self._unschedulable) - gated, GATED: gated}
        for place, _ in self._entries.values():
            counts[place] += 1
        counts["inFlight"] = len(self._in_flight)
        return counts

    def place_of(self, pod: dict[str, Any]) -> str | None:
        """Where the pod is: "active", "backoff", "unschedulable", "gated", "inFlight", or None."""
        key = pod_key(pod)
        if key in self._in_flight:
            return "inFlight"
        if key in self._unschedulable:
            return GATED if self._unschedulable[key].gated else UNSCHEDULABLE
        entry = self._entries.get(key)
        return entry[0] if entry else None

    def __len__(self) -> int:
        return len(self._infos)
