"""The node lifecycle controller: a node whose agent stopped reporting becomes NotReady (Unknown).

As kube-controller-manager's node lifecycle controller does, every ``monitor_period`` it looks at each
Node's last sign of life: the newest of its Lease's ``renewTime`` (``kube-node-lease/<node>``) and its
Ready condition's ``lastHeartbeatTime``. When that is older than ``grace`` (node-monitor-grace-period,
40 s by default), every condition the agent maintains (Ready, MemoryPressure, DiskPressure,
PIDPressure) is set to ``Unknown`` with reason ``NodeStatusUnknown`` and message ``Kubelet stopped
posting node status.``, and the taints ``node.kubernetes.io/unreachable`` (NoSchedule and NoExecute)
are added, so the scheduler sends no new pods there; the pods on the node get ``Ready=False``. A node
that reports again has the taints removed (its agent rewrites the conditions itself).

``node_decision`` is pure; ``NodeLifecycleController`` is the asyncio shell (informers in, status
patches out). Not done: evicting pods after their NoExecute ``tolerationSeconds`` (kube's taint
manager); nodes stay tainted until their agent returns or the Node is deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cluster.client.errors import ApiError
from cluster.client.informer import Informer
from cluster.machinery.times import parse_rfc3339, rfc3339

log = logging.getLogger("raykube.controllers.nodelifecycle")

DEFAULT_GRACE = 40.0
DEFAULT_MONITOR_PERIOD = 5.0
UNREACHABLE_TAINT_KEY = "node.kubernetes.io/unreachable"
AGENT_CONDITIONS = ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure")
UNKNOWN_REASON = "NodeStatusUnknown"
UNKNOWN_MESSAGE = "Kubelet stopped posting node status."


def last_seen(node: dict[str, Any], lease: dict[str, Any] | None) -> datetime | None:
    """The newest sign of life: the Lease's renewTime or the Ready condition's heartbeat."""
    times = []
    if lease is not None:
        times.append(parse_rfc3339((lease.get("spec") or {}).get("renewTime")))
    for condition in (node.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            times.append(parse_rfc3339(condition.get("lastHeartbeatTime")))
    if not any(times):
        times.append(parse_rfc3339((node.get("metadata") or {}).get("creationTimestamp")))
    found = [t for t in times if t is not None]
    return max(found) if found else None


def _unreachable_taints(now: datetime) -> list[dict[str, Any]]:
    return [
        {"key": UNREACHABLE_TAINT_KEY, "effect": "NoSchedule", "timeAdded": rfc3339(now)},
        {"key": UNREACHABLE_TAINT_KEY, "effect": "NoExecute", "timeAdded": rfc3339(now)},
    ]


@dataclass(frozen=True, slots=True)
class NodeDecision:
    """What to write: a new ``status.conditions`` list and/or a new ``spec.taints`` list (None: keep),
    and whether the node's pods must be marked not ready."""

    conditions: list[dict[str, Any]] | None = None
    taints: list[dict[str, Any]] | None = None
    mark_pods_not_ready: bool = False


def node_decision(
    node: dict[str, Any], lease: dict[str, Any] | None, now: datetime, grace: float
) -> NodeDecision:
    """Compare the node's last sign of life with ``now``; see the module docstring."""
    seen = last_seen(node, lease)
    stale = seen is None or now - seen > timedelta(seconds=grace)
    taints = list((node.get("spec") or {}).get("taints") or [])
    has_taint = any(t.get("key") == UNREACHABLE_TAINT_KEY for t in taints)
    if not stale:
        if has_taint:
            return NodeDecision(taints=[t for t in taints if t.get("key") != UNREACHABLE_TAINT_KEY])
        return NodeDecision()
    conditions = list((node.get("status") or {}).get("conditions") or [])
    changed = False
    by_type = {c.get("type"): i for i, c in enumerate(conditions)}
    for kind in AGENT_CONDITIONS:
        current = conditions[by_type[kind]] if kind in by_type else None
        if current is not None and current.get("status") == "Unknown":
            continue
        replacement = {
            "type": kind,
            "status": "Unknown",
            "reason": UNKNOWN_REASON,
            "message": UNKNOWN_MESSAGE,
            "lastHeartbeatTime": (current or {}).get("lastHeartbeatTime") or rfc3339(now),
            "lastTransitionTime": rfc3339(now),
        }
        if current is None:
            conditions.append(replacement)
        else:
            conditions[by_type[kind]] = replacement
        changed = True
    new_taints = None if has_taint else taints + _unreachable_taints(now)
    return NodeDecision(conditions if changed else None, new_taints, mark_pods_not_ready=changed)


def pod_not_ready_patch(pod: dict[str, Any], now: datetime) -> dict[str, Any] | None:
    """The status merge patch setting the pod's Ready condition to False (None if it already is)."""
    conditions = list((pod.get("status") or {}).get("conditions") or [])
    index = next((i for i, c in enumerate(conditions) if c.get("type") == "Ready"), None)
    if index is None or conditions[index].get("status") == "False":
        return None
    conditions[index] = {**conditions[index], "status": "False", "lastTransitionTime": rfc3339(now)}
    return {"status": {"conditions": conditions}}


class NodeLifecycleController:
    """The shell around ``node_decision``: node and lease informers, a periodic check, patches."""

    def __init__(
        self,
        client: Any,
        *,
        grace: float = DEFAULT_GRACE,
        monitor_period: float = DEFAULT_MONITOR_PERIOD,
        clock: Any = lambda: datetime.now(UTC),
    ) -> None:
        self.client = client
        self.grace = grace
        self.monitor_period = monitor_period
        self.clock = clock
        self.nodes = Informer(client, "v1", "nodes")
        self.leases = Informer(client, "coordination.k8s.io/v1", "leases", namespace="kube-node-lease")
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        for informer in (self.nodes, self.leases):
            self._tasks.append(asyncio.create_task(informer.run()))
        for informer in (self.nodes, self.leases):
            await informer.wait_synced(60)
        self._tasks.append(asyncio.create_task(self._loop()))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()

    async def _loop(self) -> None:
        while True:
            try:
                await self.check_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # the loop must outlive any one bad pass
                log.exception("node lifecycle pass failed")
            await asyncio.sleep(self.monitor_period)

    async def check_once(self) -> None:
        """One pass over every node (what the loop runs each ``monitor_period``)."""
        now = self.clock()
        for node in self.nodes.store.list():
            name = (node.get("metadata") or {}).get("name", "")
            lease = self.leases.store.get("kube-node-lease", name)
            decision = node_decision(node, lease, now, self.grace)
            await self._apply(name, decision, now)

    async def _apply(self, name: str, decision: NodeDecision, now: datetime) -> None:
        try:
            if decision.taints is not None:
                await self.client.patch("v1", "nodes", name, {"spec": {"taints": decision.taints}})
            if decision.conditions is not None:
                log.warning("node %s stopped reporting: marking it Unknown", name)
                status = {"status": {"conditions": decision.conditions}}
                await self.client.patch("v1", "nodes", name, status, subresource="status")
            if decision.mark_pods_not_ready:
                pods = await self.client.list("v1", "pods", field_selector=f"spec.nodeName={name}")
                for pod in pods.get("items") or []:
                    not_ready = pod_not_ready_patch(pod, now)
                    if not_ready is not None:
                        meta = pod["metadata"]
                        await self.client.patch(
                            "v1", "pods", meta["name"], not_ready, meta.get("namespace"), subresource="status"
                        )
        except ApiError as err:
            log.warning("node lifecycle for %s: %s", name, err)
