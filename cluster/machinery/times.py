"""RFC 3339 timestamps as Kubernetes writes them: ``metav1.Time`` and ``metav1.MicroTime``.

``metav1.Time`` serialises in UTC with second precision (``2006-01-02T15:04:05Z``), ``MicroTime``
with six fractional digits (``2006-01-02T15:04:05.000000Z``: Leases' ``renewTime``, events.k8s.io
``eventTime``). Aware datetimes are converted to UTC first; naive ones are taken to be UTC already.
Parsing accepts both forms, any number of fractional digits and ``Z`` or an offset.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol

TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
MICRO_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def _utc(t: datetime) -> datetime:
    return t.astimezone(UTC) if t.tzinfo is not None else t


def rfc3339(t: datetime) -> str:
    """``t`` as ``metav1.Time`` text (whole seconds, UTC, ``Z``)."""
    return _utc(t).strftime(TIME_FORMAT)


def rfc3339_micro(t: datetime) -> str:
    """``t`` as ``metav1.MicroTime`` text (microseconds, UTC, ``Z``)."""
    return _utc(t).strftime(MICRO_TIME_FORMAT)


def parse_rfc3339(value: object) -> datetime | None:
    """An RFC 3339 timestamp as an aware datetime; None when ``value`` is not one (or not a string).

    Text without an offset is taken as UTC.
    """
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class Clock(Protocol):
    """Time as the controllers, the leader elector and their tests see it (tests inject a manual one)."""

    def now(self) -> datetime:
        """Wall-clock time, aware UTC: what is written into objects (Lease renewTime, conditions)."""
        ...

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin that never go back: delays, queues, observed expiries."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()
