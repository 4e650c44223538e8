"""Fakes for controller unit tests: a clock the test moves, and a recorder that keeps its events."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from cluster.client.lister import object_key

T0 = datetime(2026, 1, 1, tzinfo=UTC)


class FakeClock:
    """``Clock`` whose time moves only with ``advance``; ``monotonic`` counts seconds since ``start``."""

    def __init__(self, start: datetime = T0) -> None:
        self.start = start
        self.elapsed = 0.0

    def now(self) -> datetime:
        return self.start + timedelta(seconds=self.elapsed)

    def monotonic(self) -> float:
        return self.elapsed

    def advance(self, seconds: float) -> None:
        self.elapsed += seconds


class FakeRecorder:
    """``Recorder`` keeping ``(type, reason, message, object key)`` tuples."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, str, str]] = []

    def event(self, obj: Mapping[str, Any], event_type: str, reason: str, message: str) -> None:
        self.events.append((event_type, reason, message, object_key(obj)))

    def reasons(self) -> list[str]:
        return [reason for _, reason, _, _ in self.events]
