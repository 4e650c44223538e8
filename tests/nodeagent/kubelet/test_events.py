"""The kubelet's event references and client-go's EventCorrelator (aggregation, spam filter, keys),
driven by a fake clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from nodeagent.kubelet import events as ev

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
POD: dict[str, Any] = {
    "metadata": {"name": "web", "namespace": "shop", "uid": "u-1", "resourceVersion": "42"},
    "spec": {"initContainers": [{"name": "setup"}], "containers": [{"name": "app"}]},
}


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


def event(message: str = "Started container app", *, reason: str = "Started", container: str = "app",
          kind: str = ev.NORMAL, at: datetime = T0) -> ev.Event:  # fmt: skip
    return ev.new_event(
        ev.pod_ref(POD, container), kind, reason, message, "node-a", at, component=ev.COMPONENT
    )


@pytest.mark.parametrize(
    ("container", "field_path"),
    [
        pytest.param(None, "", id="pod"),
        pytest.param("app", "spec.containers{app}", id="container"),
        pytest.param("setup", "spec.initContainers{setup}", id="init-container"),
    ],
)
def test_pod_ref_sets_the_kubelets_field_path(container: str | None, field_path: str) -> None:
    ref = ev.pod_ref(POD, container).as_dict()
    assert ref.get("fieldPath", "") == field_path
    assert ref["kind"] == "Pod" and ref["uid"] == "u-1" and ref["resourceVersion"] == "42"
    assert ref["namespace"] == "shop" and ref["apiVersion"] == "v1"


def test_node_event_body() -> None:
    body = ev.new_event(
        ev.node_ref("node-a"),
        ev.NORMAL,
        "Starting",
        "Starting kubelet.",
        "node-a",
        T0,
        component=ev.COMPONENT,
    ).body()
    assert body["involvedObject"] == {"kind": "Node", "name": "node-a", "uid": "node-a"}
    assert body["metadata"]["namespace"] == "default"  # cluster-scoped objects' events
    assert body["source"] == {"component": "kubelet", "host": "node-a"}
    assert body["reportingComponent"] == "kubelet" and body["reportingInstance"] == "node-a"
    assert body["firstTimestamp"] == body["lastTimestamp"] == "2026-01-02T03:04:05Z"
    assert body["count"] == 1 and body["metadata"]["name"].startswith("node-a.")


@pytest.mark.parametrize(
    ("other", "same"),
    [
        pytest.param(event(), True, id="identical"),
        pytest.param(event(at=T0 + timedelta(hours=1)), True, id="later-same-key"),
        pytest.param(event("Started container other"), False, id="message"),
        pytest.param(event(reason="Created"), False, id="reason"),
        pytest.param(event(kind=ev.WARNING), False, id="type"),
        pytest.param(event(container="setup"), False, id="field-path"),
    ],
)
def test_event_key_is_client_gos_get_event_key(other: ev.Event, same: bool) -> None:
    assert (ev.event_key(event()) == ev.event_key(other)) is same


def test_a_repeat_becomes_a_count_patch_of_the_first_event() -> None:
    clock = Clock()
    c = ev.EventCorrelator(clock)
    first = c.correlate(event())
    assert first.event is not None and first.patch is None and first.event.count == 1
    c.update_state(first.key, first.event)
    clock.advance(timedelta(seconds=30))
    second = c.correlate(event(at=clock.now))
    assert second.event is not None
    assert second.event.name == first.event.name and second.event.count == 2
    assert second.event.first == T0 and second.event.last == clock.now
    assert second.patch == {
        "count": 2,
        "lastTimestamp": "2026-01-02T03:04:35Z",
        "message": "Started container app",
    }
    third = c.correlate(event(at=clock.now))
    assert third.event is not None and third.event.count == 3 and third.event.name == first.event.name


def test_update_state_adopts_the_name_the_server_stored() -> None:
    c = ev.EventCorrelator(Clock())
    first = c.correlate(event())
    assert first.event is not None
    c.update_state(first.key, ev.Event(**{**_fields(first.event), "name": "web.recreated"}))
    again = c.correlate(event())
    assert again.event is not None and again.event.name == "web.recreated"


def _fields(e: ev.Event) -> dict[str, Any]:
    return {name: getattr(e, name) for name in ev.Event.__dataclass_fields__}


def test_different_messages_are_separate_events_until_the_aggregator_combines_them() -> None:
    c = ev.EventCorrelator(Clock())
    results = [
        c.correlate(
            event(f"Liveness probe failed: try {i}", reason="Unhealthy", at=T0 + timedelta(seconds=i))
        )
        for i in range(12)
    ]
    names = [r.event.name if r.event else "" for r in results]
    assert len(set(names[:9])) == 9 and all(r.patch is None for r in results[:9])  # 9 distinct messages
    tenth, eleventh = results[9].event, results[10].event
    assert tenth is not None and eleventh is not None
    assert tenth.message == "(combined from similar events): Liveness probe failed: try 9"
    assert eleventh.name == tenth.name and eleventh.count == 2  # the combined event itself aggregates
    assert results[10].patch is not None and results[10].patch["count"] == 2


def test_the_aggregator_forgets_after_its_interval() -> None:
    clock = Clock()
    c = ev.EventCorrelator(clock, max_events=3)
    for i in range(2):
        c.correlate(event(f"m{i}", reason="Unhealthy"))
    clock.advance(timedelta(minutes=11))
    fresh = c.correlate(event("m2", reason="Unhealthy", at=clock.now))
    assert fresh.event is not None and fresh.event.message == "m2"


def test_spam_filter_allows_a_burst_then_one_per_refill() -> None:
    clock = Clock()
    c = ev.EventCorrelator(clock)  # client-go defaults: burst 25, one token per 5 minutes
    allowed = [not c.correlate(event(at=clock.now)).skip for _ in range(30)]
    assert allowed == [True] * 25 + [False] * 5
    clock.advance(timedelta(minutes=4, seconds=59))
    assert c.correlate(event(at=clock.now)).skip
    clock.advance(timedelta(seconds=2))
    assert not c.correlate(event(at=clock.now)).skip
    assert c.correlate(event(at=clock.now)).skip


def test_spam_filter_buckets_per_object_and_type() -> None:
    clock = Clock()
    c = ev.EventCorrelator(clock, burst=2)
    assert [c.correlate(event()).skip for _ in range(3)] == [False, False, True]
    # Another container of the same pod shares the pod's bucket (the spam key has no fieldPath) ...
    assert c.correlate(event(container="setup")).skip
    # ... a Warning has its own, and so has another pod.
    assert not c.correlate(event(kind=ev.WARNING)).skip
    other = ev.new_event(
        ev.pod_ref({"metadata": {"name": "db", "uid": "u-2"}}),
        ev.NORMAL,
        "Started",
        "x",
        "n",
        T0,
        component=ev.COMPONENT,
    )
    assert not c.correlate(other).skip


@pytest.mark.parametrize(
    ("ctype", "status", "reason"),
    [
        pytest.param("Ready", "True", "NodeReady", id="ready"),
        pytest.param("Ready", "False", "NodeNotReady", id="not-ready"),
        pytest.param("Ready", "Unknown", "NodeNotReady", id="unknown"),
        pytest.param("MemoryPressure", "False", "NodeHasSufficientMemory", id="memory"),
        pytest.param("DiskPressure", "True", "NodeHasDiskPressure", id="disk"),
        pytest.param("PIDPressure", "False", "NodeHasSufficientPID", id="pid"),
        pytest.param("NetworkUnavailable", "False", None, id="no-event"),
    ],
)
def test_node_condition_reasons(ctype: str, status: str, reason: str | None) -> None:
    assert ev.node_condition_reason(ctype, status) == reason


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        pytest.param(0.25, "250ms", id="ms"),
        pytest.param(1.5, "1.5s", id="s"),
        pytest.param(123.25, "2m3.25s", id="m"),
    ],
)
def test_go_seconds(seconds: float, text: str) -> None:
    assert ev.go_seconds(seconds) == text


def test_kubelet_message_formats() -> None:
    assert ev.already_present("busybox") == 'Container image "busybox" already present on machine'
    assert ev.probe_failed("liveness", "nope\n") == "Liveness probe failed: nope\n"
    assert ev.pulled("busybox", 1.5, 1.5, 42) == (
        'Successfully pulled image "busybox" in 1.5s (1.5s including waiting). Image size: 42 bytes.'
    )
