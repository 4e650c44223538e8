"""The agent's Events against a REAL process runtime and the fake API: what ``kubectl describe`` lists.

The kubectl-level twin is tests/integration/test_events_kubectl.py.
"""

from __future__ import annotations

import asyncio
import re
from datetime import datetime
from pathlib import Path
from typing import Any

from cluster.client.errors import ApiError, TransportError
from cluster.client.event_recorder import EventRecorder
from nodeagent.agent.agent import NodeAgent
from nodeagent.kubelet import events as ev
from tests.nodeagent.agent.fake_api import FakeApi
from tests.nodeagent.agent.test_agent import SLEEP, cstatus, pod, run


def events_of(api: FakeApi, name: str, kind: str = "Pod") -> list[dict[str, Any]]:
    return [
        o
        for (gv, plural, _, _), o in api.objects.items()
        if (gv, plural) == ("v1", "events")
        and o["involvedObject"].get("kind") == kind
        and o["involvedObject"].get("name") == name
    ]


def reasons(api: FakeApi, name: str, kind: str = "Pod") -> set[str]:
    return {e["reason"] for e in events_of(api, name, kind)}


def test_a_started_pod_has_the_kubelets_container_events(tmp_path: Path) -> None:
    async def scenario(api: FakeApi, agent: NodeAgent) -> None:
        await api.create("v1", "pods", "default", pod("web", [{"name": "app", "command": SLEEP}]))
        await api.wait_for(lambda: {"Pulled", "Created", "Started"} <= reasons(api, "web"))
        by_reason = {e["reason"]: e for e in events_of(api, "web")}
        # A fresh runtime pulls busybox (Pulling, then Pulled with the kubelet's timing text).
        assert by_reason["Pulling"]["message"] == 'Pulling image "busybox"'
        assert re.fullmatch(
            r'Successfully pulled image "busybox" in \S+ \(\S+ including waiting\)\. Image size: \d+ bytes\.',
            by_reason["Pulled"]["message"],
        )
        assert by_reason["Created"]["message"] == "Created container app"
        started = by_reason["Started"]
        assert started["message"] == "Started container app" and started["type"] == "Normal"
        assert started["involvedObject"]["fieldPath"] == "spec.containers{app}"
        assert started["involvedObject"]["uid"] == api.pod("default", "web")["metadata"]["uid"]  # type: ignore[index]
        assert started["source"] == {"component": "kubelet", "host": "node-a"}
        await api.delete("v1", "pods", "default", "web", grace_period_seconds=1)
        await api.wait_for(lambda: "Killing" in reasons(api, "web"))
        killing = next(e for e in events_of(api, "web") if e["reason"] == "Killing")
        assert killing["message"] == "Stopping container app"

    run(tmp_path, scenario)


def test_a_failing_liveness_probe_is_unhealthy_with_its_output_then_killed(tmp_path: Path) -> None:
    async def scenario(api: FakeApi, agent: NodeAgent) -> None:
        probe = {
            "exec": {"command": ["sh", "-c", "echo not-alive; exit 1"]},
            "periodSeconds": 1,
            "failureThreshold": 2,
        }
        await api.create(
            "v1", "pods", "default", pod("live", [{"name": "app", "command": SLEEP, "livenessProbe": probe}])
        )
        await api.wait_for(lambda: {"Unhealthy", "Killing"} <= reasons(api, "live"))
        by_reason = {e["reason"]: e for e in events_of(api, "live")}
        unhealthy = by_reason["Unhealthy"]
        assert unhealthy["type"] == "Warning" and unhealthy["message"] == "Liveness probe failed: not-alive\n"
        assert unhealthy["count"] >= 2  # two failures before the threshold: one Event, counted
        assert by_reason["Killing"]["message"] == "Container app failed liveness probe, will be restarted"

    run(tmp_path, scenario)


def test_a_crash_loop_is_one_back_off_event_with_a_count(tmp_path: Path) -> None:
    async def scenario(api: FakeApi, agent: NodeAgent) -> None:
        await api.create(
            "v1", "pods", "default", pod("crash", [{"name": "app", "command": ["sh", "-c", "exit 1"]}])
        )

        def backoffs() -> list[dict[str, Any]]:
            return [e for e in events_of(api, "crash") if e["reason"] == "BackOff"]

        await api.wait_for(lambda: any(e["count"] >= 2 for e in backoffs()))
        assert len(backoffs()) == 1
        uid = api.pod("default", "crash")["metadata"]["uid"]  # type: ignore[index]
        assert (
            backoffs()[0]["message"]
            == f"Back-off restarting failed container app in pod crash_default({uid})"
        )
        assert cstatus(api, "crash", "app")["restartCount"] >= 1
        started = [e for e in events_of(api, "crash") if e["reason"] == "Started"]
        assert len(started) == 1 and started[0]["count"] >= 2  # every restart patches the same Event

    run(tmp_path, scenario)


def test_node_events_starting_and_ready(tmp_path: Path) -> None:
    async def scenario(api: FakeApi, agent: NodeAgent) -> None:
        await api.wait_for(
            lambda: {"Starting", "NodeReady", "NodeHasSufficientMemory"} <= reasons(api, "node-a", "Node")
        )
        by_reason = {e["reason"]: e for e in events_of(api, "node-a", "Node")}
        assert by_reason["Starting"]["message"] == "Starting kubelet."
        assert by_reason["NodeReady"]["message"] == "Node node-a status is now: NodeReady"
        assert by_reason["NodeReady"]["involvedObject"] == {"kind": "Node", "name": "node-a", "uid": "node-a"}

    run(tmp_path, scenario)


class _BlockedApi(FakeApi):
    """An API server that never answers an event write."""

    async def create(
        self, group_version: str, plural: str, namespace: str | None, body: dict[str, Any]
    ) -> dict[str, Any]:
        if plural == "events":
            await asyncio.Event().wait()
        return await super().create(group_version, plural, namespace, body)


def test_a_full_queue_drops_instead_of_blocking() -> None:
    async def scenario() -> None:
        recorder = EventRecorder(
            _BlockedApi(), "node-a", lambda: datetime(2026, 1, 1), component="kubelet", max_queued=3
        )
        sender = asyncio.create_task(recorder.run())
        ref = ev.node_ref("node-a")
        for i in range(10):
            recorder.event(ref, ev.NORMAL, "Test", f"m{i}")  # returns at once although nothing is sent
        await asyncio.sleep(0.05)
        # Three were queued before the sender ran (it now blocks on the first), the other seven dropped.
        assert recorder.dropped == 7 and recorder.written == 0
        sender.cancel()

    asyncio.run(scenario())


def test_limits_the_runtime_cannot_apply_are_a_warning_on_the_pod_and_the_node(tmp_path: Path) -> None:
    """The test runtime has no writable cgroups (``CgroupManager(writable=())``): never silent."""

    async def scenario(api: FakeApi, agent: NodeAgent) -> None:
        limited = {"name": "app", "command": SLEEP, "resources": {"limits": {"memory": "64Mi"}}}
        await api.create("v1", "pods", "default", pod("capped", [limited]))
        await api.wait_for(lambda: "ResourceLimitsNotApplied" in reasons(api, "capped"))
        warning = next(e for e in events_of(api, "capped") if e["reason"] == "ResourceLimitsNotApplied")
        assert (
            warning["type"] == "Warning" and warning["involvedObject"]["fieldPath"] == "spec.containers{app}"
        )
        assert warning["message"].startswith("Container app runs without its resource limits: ")
        assert "memory: not writable" in warning["message"]
        await api.wait_for(lambda: "ResourceLimitsNotApplied" in reasons(api, "node-a", "Node"))
        await api.create("v1", "pods", "default", pod("free", [{"name": "app", "command": SLEEP}]))
        await api.wait_for(lambda: "Started" in reasons(api, "free"))
        assert "ResourceLimitsNotApplied" not in reasons(api, "free")  # no limits asked, nothing to say

    run(tmp_path, scenario)


class _RejectingApi(FakeApi):
    """A terminating namespace (403, as the API server's NamespaceLifecycle) and, once, a lost connection."""

    def __init__(self) -> None:
        super().__init__()
        self.transport_failures = 1
        self.rejected = 0

    async def create(
        self, group_version: str, plural: str, namespace: str | None, body: dict[str, Any]
    ) -> dict[str, Any]:
        if plural == "events" and namespace == "gone":
            self.rejected += 1
            raise ApiError(403, "Forbidden", 'events "x" is forbidden: namespace gone is being terminated')
        if plural == "events" and self.transport_failures:
            self.transport_failures -= 1
            raise TransportError("connection refused")
        return await super().create(group_version, plural, namespace, body)


def test_a_rejected_event_is_not_retried_and_a_lost_connection_is() -> None:
    async def scenario() -> None:
        api = _RejectingApi()
        recorder = EventRecorder(
            api, "node-a", lambda: datetime(2026, 1, 1), component="kubelet", retry_delay=0.01
        )
        sender = asyncio.create_task(recorder.run())
        recorder.event(ev.ObjectRef("Pod", "p", "ok", "u1"), ev.NORMAL, "Started", "Started container a")
        for i in range(20):  # client-go never retries these: a retry of each would stall the queue
            recorder.event(ev.ObjectRef("Pod", f"p{i}", "gone", f"u{i}"), ev.NORMAL, "Killing", "Stopping")
        recorder.event(ev.ObjectRef("Pod", "q", "ok", "u2"), ev.NORMAL, "Started", "Started container b")
        await recorder.flush(timeout=5)
        assert (recorder.written, recorder.failed) == (2, 20)  # the first went through on its retry
        assert api.rejected == 20  # one attempt each
        sender.cancel()

    asyncio.run(scenario())
