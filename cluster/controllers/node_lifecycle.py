"""The node lifecycle controller (kube-controller-manager's ``nodelifecycle``, event source
``node-controller``): nodes that stop reporting become Unknown, and bad nodes carry the taints that
keep new pods away and, through the taint eviction controller, send running pods elsewhere.

Every ``monitor_period`` (5 s) each Node is looked at again (a periodic requeue of its key): its last
sign of life is the newest of its Lease's ``renewTime`` (``kube-node-lease/<node>``) and its Ready
condition's ``lastHeartbeatTime``. When that is older than ``grace`` (node-monitor-grace-period,
40 s by default), every condition the agent maintains (Ready, MemoryPressure, DiskPressure,
PIDPressure) is set to ``Unknown`` with reason ``NodeStatusUnknown`` and message ``Kubelet stopped
posting node status.``, the node gets a ``NodeNotReady`` event and its pods ``Ready=False``.

The taints follow the Ready condition, as kube's NoSchedule and NoExecute tainting passes do:

* ``Ready=False`` (the agent says the node is not ready): ``node.kubernetes.io/not-ready``;
* ``Ready=Unknown`` (nobody says anything): ``node.kubernetes.io/unreachable``;
* ``Ready=True``: neither,

each with effect ``NoSchedule`` (the scheduler sends no new pods) and ``NoExecute`` (with
``timeAdded``: the taint eviction controller deletes pods that do not tolerate it, or once their
``tolerationSeconds`` ran out). Other taints are left alone; a node without a Ready condition that
still reports keeps its taints.

``node_decision`` is pure; ``NodeLifecycleController`` applies it (node taints, node status, pod
status patches). Not done: kube's zone-level rate limits and disruption modes (a whole zone going
dark is treated like any node).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar

from cluster.client.errors import ApiError
from cluster.controllers.runtime import Controller, ControllerContext
from cluster.machinery.times import parse_rfc3339, rfc3339

log = logging.getLogger("raykube.controllers.nodelifecycle")

DEFAULT_GRACE = 40.0
DEFAULT_MONITOR_PERIOD = 5.0
UNREACHABLE_TAINT_KEY = "node.kubernetes.io/unreachable"
NOT_READY_TAINT_KEY = "node.kubernetes.io/not-ready"
MANAGED_TAINT_KEYS = (NOT_READY_TAINT_KEY, UNREACHABLE_TAINT_KEY)
TAINT_FOR_READY = {"True": None, "False": NOT_READY_TAINT_KEY, "Unknown": UNREACHABLE_TAINT_KEY}
AGENT_CONDITIONS = ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure")
UNKNOWN_REASON = "NodeStatusUnknown"
UNKNOWN_MESSAGE = "Kubelet stopped posting node status."
LEASE_NAMESPACE = "kube-node-lease"
NODE_NAME_INDEX = "spec.nodeName"


def node_name_index(pod: dict[str, Any]) -> list[str]:
    """Index function for a pods lister: the node the pod is bound to."""
    name = (pod.get("spec") or {}).get("nodeName")
    return [name] if name else []


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


def ready_status(conditions: list[dict[str, Any]]) -> str | None:
    return next((str(c.get("status")) for c in conditions if c.get("type") == "Ready"), None)


def wanted_taints(taints: list[dict[str, Any]], ready: str | None, now: datetime) -> list[dict[str, Any]]:
    """``taints`` with the not-ready/unreachable pair that ``ready`` calls for (kept as they are when
    already there, so ``timeAdded`` does not move) and the other one removed."""
    if ready is None:
        return taints
    want = TAINT_FOR_READY.get(ready)
    kept = [t for t in taints if t.get("key") not in MANAGED_TAINT_KEYS or t.get("key") == want]
    if want is None:
        return kept
    for effect in ("NoSchedule", "NoExecute"):
        if not any(t.get("key") == want and t.get("effect") == effect for t in kept):
            taint: dict[str, Any] = {"key": want, "effect": effect}
            if effect == "NoExecute":
                taint["timeAdded"] = rfc3339(now)  # the eviction deadlines count from here
            kept.append(taint)
    return kept


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
    conditions = list((node.get("status") or {}).get("conditions") or [])
    changed = False
    if stale:
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
    taints = list((node.get("spec") or {}).get("taints") or [])
    new_taints = wanted_taints(taints, ready_status(conditions), now)
    return NodeDecision(
        conditions if changed else None,
        new_taints if new_taints != taints else None,
        mark_pods_not_ready=changed,
    )


def pod_not_ready_patch(pod: dict[str, Any], now: datetime) -> dict[str, Any] | None:
    """The status merge patch setting the pod's Ready condition to False (None if it already is)."""
    conditions = list((pod.get("status") or {}).get("conditions") or [])
    index = next((i for i, c in enumerate(conditions) if c.get("type") == "Ready"), None)
    if index is None or conditions[index].get("status") == "False":
        return None
    conditions[index] = {**conditions[index], "status": "False", "lastTransitionTime": rfc3339(now)}
    return {"status": {"conditions": conditions}}


def _ready(node: Mapping[str, Any]) -> str | None:
    return ready_status(list((node.get("status") or {}).get("conditions") or []))


class NodeLifecycleController(Controller):
    """Keys are node names; each is looked at again every ``monitor_period`` seconds."""

    NAME: ClassVar[str] = "nodelifecycle"
    COMPONENT: ClassVar[str] = "node-controller"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.grace = ctx.options.node_monitor_grace
        self.monitor_period = float(ctx.options.extra.get("node_monitor_period", DEFAULT_MONITOR_PERIOD))
        self.nodes = self.watch("v1", "nodes", on_add=self.enqueue, on_update=self._node_updated)
        self.leases = self.watch("coordination.k8s.io/v1", "leases")
        self.pods = self.watch("v1", "pods")
        self.pods.add_index(NODE_NAME_INDEX, node_name_index)

    def _node_updated(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        if _ready(old) != _ready(new):  # react to a reported Ready change now, not at the next period
            self.enqueue(new)

    async def reconcile(self, key: str) -> float | None:
        node = self.nodes.get(None, key)
        if node is None:
            return None  # deleted: its key is not requeued
        now = self.clock.now()
        decision = node_decision(node, self.leases.get(LEASE_NAMESPACE, key), now, self.grace)
        try:
            await self._apply(node, decision, now)
        except ApiError as err:
            if err.status == 404:
                return None
            log.warning("node lifecycle for %s: %s", key, err)
        return self.monitor_period

    async def _apply(self, node: dict[str, Any], decision: NodeDecision, now: datetime) -> None:
        name = node["metadata"]["name"]
        if decision.taints is not None:
            await self.client.patch("v1", "nodes", name, {"spec": {"taints": decision.taints}})
        if decision.conditions is not None:
            log.warning("node %s stopped reporting: marking it Unknown", name)
            await self.client.patch(
                "v1", "nodes", name, {"status": {"conditions": decision.conditions}}, subresource="status"
            )
            self.recorder.event(node, "Normal", "NodeNotReady", f"Node {name} status is now: NodeNotReady")
        if decision.mark_pods_not_ready:
            for pod in self.pods.by_index(NODE_NAME_INDEX, name):
                not_ready = pod_not_ready_patch(pod, now)
                if not_ready is None:
                    continue
                meta = pod["metadata"]
                self.recorder.event(pod, "Warning", "NodeNotReady", "Node is not ready")
                try:
                    await self.client.patch(
                        "v1", "pods", meta["name"], not_ready, meta.get("namespace"), subresource="status"
                    )
                except ApiError as err:
                    if err.status != 404:
                        raise
