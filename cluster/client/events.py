"""Events as Kubernetes components record them, and client-go's ``EventCorrelator`` (pure: no I/O,
injected clock). Shared by the node agent (the kubelet's events) and the controllers.

``ObjectRef`` is an ``involvedObject``; ``object_ref`` builds one for any wire-form object.
``Event.body()`` is the core/v1 Event that is POSTed, named like client-go's ``<object>.<hex nanos>``.

``EventCorrelator.correlate(event)`` is client-go's ``EventCorrelate``, in its order:

1. the aggregator (``EventAggregate``): more than ``max_events - 1`` distinct messages with the same
   source, object, type and reason within ``max_interval`` turn into one event whose message is
   ``(combined from similar events): <message>``, keyed without the message;
2. the logger (``eventObserve``): an event whose key (``event_key``, client-go's ``getEventKey``)
   was seen before gets the earlier one's name, ``firstTimestamp`` and ``count + 1``, and a merge
   patch ``{count, lastTimestamp, message}``: the caller PATCHes the existing Event instead of creating
   a new object (``kubectl describe`` prints ``(xN over ...)``);
3. the spam filter (``EventSourceObjectSpamFilter``): a token bucket per source + object + type
   (burst 25, one token back every 5 minutes); an event without a token is skipped.

After a successful write the caller reports the object the server returned with ``update_state`` so
later repeats patch the right name. Caches are LRUs of ``cache_size`` entries (client-go: 4096). The
correlator is not thread-safe; one sender task owns it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from cluster.machinery.times import rfc3339

NORMAL, WARNING = "Normal", "Warning"
COMBINED_PREFIX = "(combined from similar events): "


@dataclass(frozen=True, slots=True)
class ObjectRef:
    """An ``involvedObject``; empty fields are left out of the JSON."""

    kind: str
    name: str
    namespace: str = ""
    uid: str = ""
    api_version: str = "v1"
    resource_version: str = ""
    field_path: str = ""

    def as_dict(self) -> dict[str, str]:
        out = {
            "kind": self.kind, "namespace": self.namespace, "name": self.name, "uid": self.uid,
            "apiVersion": self.api_version, "resourceVersion": self.resource_version,
            "fieldPath": self.field_path,
        }  # fmt: skip
        return {k: v for k, v in out.items() if v}


@dataclass(frozen=True, slots=True)
class Event:
    """A core/v1 Event as the recorder builds it; ``body()`` is what is POSTed."""

    ref: ObjectRef
    type: str
    reason: str
    message: str
    host: str
    first: datetime
    last: datetime
    name: str = ""
    count: int = 1
    component: str = ""

    @property
    def namespace(self) -> str:
        return self.ref.namespace or "default"

    def body(self) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "involvedObject": self.ref.as_dict(),
            "type": self.type,
            "reason": self.reason,
            "message": self.message,
            "source": {"component": self.component, "host": self.host},
            "reportingComponent": self.component,
            "reportingInstance": self.host,
            "firstTimestamp": rfc3339(self.first),
            "lastTimestamp": rfc3339(self.last),
            "count": self.count,
        }


def new_event(
    ref: ObjectRef,
    event_type: str,
    reason: str,
    message: str,
    host: str,
    now: datetime,
    seq: int = 0,
    *,
    component: str,
) -> Event:
    """A fresh event named like client-go's ``<object name>.<hex unix nanoseconds>``; our clock has
    microseconds, so ``seq`` (a counter of the caller's) fills the nanoseconds to keep names apart."""
    nanos = int(now.timestamp()) * 1_000_000_000 + now.microsecond * 1000 + seq % 1000
    return Event(
        ref, event_type, reason, message, host, now, now, f"{ref.name}.{nanos:x}", component=component
    )


def _object_key(e: Event) -> list[str]:
    r = e.ref
    return [e.component, e.host, r.kind, r.namespace, r.name, r.field_path, r.uid, r.api_version]


def event_key(e: Event) -> str:
    """client-go's ``getEventKey``: source, involvedObject (with fieldPath), type, reason, message."""
    return "".join([*_object_key(e), e.type, e.reason, e.message])


def aggregate_key(e: Event) -> str:
    """``EventAggregatorByReasonFunc``'s key: all of ``event_key`` but the message (plus reporter)."""
    return "".join([*_object_key(e), e.type, e.reason, e.component, e.host])


def spam_key(e: Event) -> str:
    """``getSpamKey``: source + object (without fieldPath) + type."""
    r = e.ref
    return "".join([e.component, e.host, r.kind, r.namespace, r.name, r.uid, r.api_version, e.type])


@dataclass(frozen=True, slots=True)
class Correlation:
    """What to write: ``skip`` (spam-filtered), else ``event``; a ``patch`` means PATCH ``event.name``."""

    event: Event | None
    key: str = ""
    patch: dict[str, Any] | None = None

    @property
    def skip(self) -> bool:
        return self.event is None


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: datetime


@dataclass(slots=True)
class _Aggregate:
    messages: set[str]
    last: datetime


@dataclass(frozen=True, slots=True)
class _Observed:
    count: int
    first: datetime
    name: str


class _Lru(OrderedDict[str, Any]):
    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def put(self, key: str, value: Any) -> None:
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.size:
            self.popitem(last=False)


class EventCorrelator:
    """See the module docstring; defaults are client-go's."""

    def __init__(
        self,
        clock: Callable[[], datetime],
        *,
        burst: int = 25,
        refill: timedelta = timedelta(minutes=5),
        max_events: int = 10,
        max_interval: timedelta = timedelta(minutes=10),
        cache_size: int = 4096,
    ) -> None:
        self.clock = clock
        self.burst = burst
        self.refill = refill
        self.max_events = max_events
        self.max_interval = max_interval
        self._buckets = _Lru(cache_size)
        self._aggregates = _Lru(cache_size)
        self._observed = _Lru(cache_size)

    def correlate(self, event: Event) -> Correlation:
        event, key = self._aggregate(event)
        event, patch = self._observe(event, key)
        if not self._allow(event):
            return Correlation(None)
        return Correlation(event, key, patch)

    def update_state(self, key: str, written: Event) -> None:
        """Remember the Event the server stored under ``key`` (its name may differ after a re-create)."""
        self._observed.put(key, _Observed(written.count, written.first, written.name))

    def _aggregate(self, event: Event) -> tuple[Event, str]:
        now = self.clock()
        akey = aggregate_key(event)
        record: _Aggregate | None = self._aggregates.get(akey)
        if record is None or now - record.last > self.max_interval:
            record = _Aggregate(set(), now)
        record.messages.add(event.message)
        record.last = now
        self._aggregates.put(akey, record)
        if len(record.messages) < self.max_events:
            return event, event_key(event)
        record.messages.pop()
        combined = new_event(event.ref, event.type, event.reason, COMBINED_PREFIX + event.message,
                             event.host, now, component=event.component)  # fmt: skip
        return combined, akey

    def _observe(self, event: Event, key: str) -> tuple[Event, dict[str, Any] | None]:
        seen: _Observed | None = self._observed.get(key)
        patch = None
        if seen is not None:
            event = replace(event, count=seen.count + 1, first=seen.first, name=seen.name)
            patch = {"count": event.count, "lastTimestamp": rfc3339(event.last), "message": event.message}
        self._observed.put(key, _Observed(event.count, event.first, event.name))
        return event, patch

    def _allow(self, event: Event) -> bool:
        now = self.clock()
        skey = spam_key(event)
        bucket: _Bucket | None = self._buckets.get(skey)
        if bucket is None:
            bucket = _Bucket(float(self.burst), now)
        elapsed = max(0.0, (now - bucket.at).total_seconds())
        bucket.tokens = min(float(self.burst), bucket.tokens + elapsed / self.refill.total_seconds())
        bucket.at = now
        self._buckets.put(skey, bucket)
        if bucket.tokens < 1:
            return False
        bucket.tokens -= 1
        return True


def object_ref(obj: Mapping[str, Any]) -> ObjectRef:
    """The ``involvedObject`` for a wire-form object (``ref.GetReference``)."""
    meta = obj.get("metadata") or {}
    return ObjectRef(
        str(obj.get("kind", "")), str(meta.get("name", "")), str(meta.get("namespace") or ""),
        str(meta.get("uid", "")), str(obj.get("apiVersion", "")), str(meta.get("resourceVersion", "")),
    )  # fmt: skip
