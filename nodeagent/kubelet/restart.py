"""Restart policy decisions and the CrashLoopBackOff timer, as the kubelet applies them.

``should_restart`` says whether a container that is not running should be started again under the
pod's ``restartPolicy`` (Always, OnFailure, Never). ``CrashLoopBackOff`` is the per-container back-off
(10 s doubling to 5 min; forgotten once 10 min pass without a crash), keyed by pod uid + container
name + spec hash. It is the one stateful piece here: the caller owns one instance per node agent and
passes ``now`` (UTC) on every call; nothing reads a clock.

Protocol (the kubelet's doBackOff): before (re)starting a container whose previous instance exited,
call ``check``. If it returns ``start=False`` the container stays waiting with reason
``CrashLoopBackOff`` and the returned message; try again later (``retry_at``). ``start=True`` has
already recorded the restart, so the next crash doubles the delay. The first restart after a crash
is immediate, as in Kubernetes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from nodeagent.kubelet.runtime_view import RuntimeContainer

CRASH_LOOP_BACK_OFF = "CrashLoopBackOff"
INITIAL_BACKOFF = timedelta(seconds=10)
MAX_BACKOFF = timedelta(minutes=5)


def restart_policy(pod: Mapping[str, Any]) -> str:
    """The pod's restartPolicy, defaulting to Always as the API server does."""
    return str((pod.get("spec") or {}).get("restartPolicy") or "Always")


def should_restart_on_failure(pod: Mapping[str, Any]) -> bool:
    """Whether a failed container (or init container) is retried: every policy but Never."""
    return restart_policy(pod) != "Never"


def should_restart(pod: Mapping[str, Any], latest: RuntimeContainer | None) -> bool:
    """Whether a not-running container should be started (again); ``latest`` is its newest instance.

    Never-started containers start; running ones do not; created/unknown ones are retried; an exited
    one restarts under Always, under OnFailure only after a non-zero exit, never under Never. A pod
    being deleted starts nothing.
    """
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return False
    if latest is None:
        return True
    if latest.state == "running":
        return False
    if latest.state in ("created", "unknown"):
        return True
    policy = restart_policy(pod)
    if policy == "Never":
        return False
    return not (policy == "OnFailure" and latest.exit_code == 0)


def is_init_container_failed(latest: RuntimeContainer) -> bool:
    """An init container failed if it exited non-zero or its state is unknown."""
    return (latest.state == "exited" and latest.exit_code != 0) or latest.state == "unknown"


def go_duration(delta: timedelta) -> str:
    """A duration as Go's ``time.Duration.String`` prints whole seconds: ``10s``, ``1m20s``, ``5m0s``."""
    total = int(delta.total_seconds())
    hours, rest = divmod(total, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{seconds}s"
    if minutes:
        return f"{minutes}m{seconds}s"
    return f"{seconds}s"


def format_pod(pod: Mapping[str, Any]) -> str:
    """The kubelet's ``format.Pod``: ``name_namespace(uid)``."""
    meta = pod.get("metadata") or {}
    return f"{meta.get('name', '')}_{meta.get('namespace', '')}({meta.get('uid', '')})"


def backoff_key(pod: Mapping[str, Any], container: Mapping[str, Any], spec_hash: str) -> str:
    """One key per pod uid, container name and spec: a changed spec starts a fresh back-off."""
    meta = pod.get("metadata") or {}
    pod_part = f"{meta.get('name', '')}_{meta.get('namespace', '')}_{meta.get('uid', '')}"
    return f"{pod_part}_{container['name']}_{spec_hash}"


@dataclass(frozen=True, slots=True)
class BackOffDecision:
    """``start`` or stay waiting with ``reason``/``message`` until ``retry_at``."""

    start: bool
    delay: timedelta = timedelta(0)
    reason: str = ""
    message: str = ""
    retry_at: datetime | None = None


@dataclass(slots=True)
class _Entry:
    backoff: timedelta
    last_update: datetime


class CrashLoopBackOff:
    """Per-container exponential back-off; the caller serialises calls (one pod worker per pod)."""

    def __init__(self, initial: timedelta = INITIAL_BACKOFF, maximum: timedelta = MAX_BACKOFF) -> None:
        self.initial = initial
        self.maximum = maximum
        self._entries: dict[str, _Entry] = {}

    def _expired(self, at: datetime, entry: _Entry) -> bool:
        # Stable for twice the cap (10 min): start again from the initial delay.
        return at - entry.last_update > self.maximum * 2

    def get(self, key: str) -> timedelta:
        """The current delay for ``key`` (0 when unknown)."""
        entry = self._entries.get(key)
        return entry.backoff if entry else timedelta(0)

    def in_backoff_since(self, key: str, event_time: datetime, now: datetime) -> bool:
        """Whether ``now`` is still within the delay counted from ``event_time`` (the last exit)."""
        entry = self._entries.get(key)
        if entry is None or self._expired(now, entry):
            return False
        return now - event_time < entry.backoff

    def next(self, key: str, now: datetime) -> None:
        """Record a restart: first (or after a stable spell) the initial delay, else double, capped."""
        entry = self._entries.get(key)
        if entry is None or self._expired(now, entry):
            self._entries[key] = _Entry(self.initial, now)
        else:
            entry.backoff = min(entry.backoff * 2, self.maximum)
            entry.last_update = now

    def check(
        self,
        pod: Mapping[str, Any],
        container: Mapping[str, Any],
        exited: RuntimeContainer | None,
        now: datetime,
    ) -> BackOffDecision:
        """Decide whether to (re)start ``container`` now; ``exited`` is its newest instance if exited."""
        if exited is None or exited.state != "exited":
            return BackOffDecision(start=True)
        key = backoff_key(pod, container, exited.spec_hash)
        finished = exited.finished_at or now
        if self.in_backoff_since(key, finished, now):
            delay = self.get(key)
            message = (
                f"back-off {go_duration(delay)} restarting failed container={container['name']} "
                f"pod={format_pod(pod)}"
            )
            return BackOffDecision(
                start=False,
                delay=delay,
                reason=CRASH_LOOP_BACK_OFF,
                message=message,
                retry_at=finished + delay,
            )
        self.next(key, now)
        return BackOffDecision(start=True)

    def forget_pod(self, uid: str) -> None:
        """Drop every entry of a pod (after it is removed)."""
        for key in [k for k in self._entries if f"_{uid}_" in k]:
            del self._entries[key]

    def gc(self, now: datetime) -> None:
        """Drop entries idle for longer than twice the cap; call now and then."""
        for key in [k for k, e in self._entries.items() if self._expired(now, e)]:
            del self._entries[key]
