"""Expectations: what a controller has asked for and not yet seen in its cache (kube's
``ControllerExpectations`` with ``UIDTrackingControllerExpectations`` for deletions).

A controller that creates 5 pods and reconciles again before its informer delivered them would see
too few pods and create 5 more. So before acting it records what it expects (``expect_creations(key,
5)``, ``expect_deletions(key, uids)``), the informer handlers lower the expectation as the events
arrive (``creation_observed``, ``deletion_observed``), and ``reconcile`` only computes a new plan
when the key is ``satisfied``: everything expected was observed, nothing was ever expected, or the
record is older than ``ttl`` (5 minutes, as kube: a lost event must not block a controller forever).
A create the server refused never produces an event, so the caller lowers the count itself
(``creation_observed``) for every failed request; likewise ``deletion_observed`` for a failed delete.

Deletions are tracked by uid, so a delete event seen twice (a watch and a relist) counts once.
Not thread-safe: one event loop.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from cluster.machinery.times import Clock

EXPECTATIONS_TTL = 300.0


@dataclass(slots=True)
class _Record:
    creations: int
    deletions: set[str] = field(default_factory=set)
    at: float = 0.0


class Expectations:
    def __init__(self, clock: Clock, ttl: float = EXPECTATIONS_TTL) -> None:
        self._clock = clock
        self._ttl = ttl
        self._records: dict[str, _Record] = {}

    def expect_creations(self, key: str, count: int) -> None:
        """Expect ``count`` more creations for ``key`` (replaces a satisfied or expired record)."""
        record = self._fresh(key)
        record.creations += max(0, count)

    def expect_deletions(self, key: str, uids: Iterable[str]) -> None:
        record = self._fresh(key)
        record.deletions.update(uids)

    def creation_observed(self, key: str) -> None:
        record = self._records.get(key)
        if record is not None and record.creations > 0:
            record.creations -= 1

    def deletion_observed(self, key: str, uid: str) -> None:
        record = self._records.get(key)
        if record is not None:
            record.deletions.discard(uid)

    def satisfied(self, key: str) -> bool:
        record = self._records.get(key)
        if record is None:
            return True
        if record.creations <= 0 and not record.deletions:
            return True
        return self._clock.monotonic() - record.at > self._ttl

    def pending(self, key: str) -> tuple[int, int]:
        """(creations, deletions) still expected for ``key`` (for logs and tests)."""
        record = self._records.get(key)
        return (record.creations, len(record.deletions)) if record else (0, 0)

    def forget(self, key: str) -> None:
        """Drop the record (the owner was deleted)."""
        self._records.pop(key, None)

    def _fresh(self, key: str) -> _Record:
        now = self._clock.monotonic()
        record = self._records.get(key)
        if record is None or self.satisfied(key):
            record = _Record(0, set(), now)
            self._records[key] = record
        else:
            record.at = now
        return record
