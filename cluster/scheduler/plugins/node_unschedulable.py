"""NodeUnschedulable: cordoned nodes (``spec.unschedulable: true``) take no new pods.

A pod still fits a cordoned node when it tolerates the ``node.kubernetes.io/unschedulable:NoSchedule``
taint (DaemonSet pods do). The rejection is unresolvable: preemption cannot uncordon a node. Pure.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cluster.scheduler.framework.columns import BoolArray, IntArray
from cluster.scheduler.framework.cycle_state import CycleState
from cluster.scheduler.framework.status import SUCCESS, Status
from cluster.scheduler.framework.types import NodeInfo, Snapshot
from cluster.scheduler.plugins.taint_toleration import pod_tolerations, tolerates

NAME = "NodeUnschedulable"
ERR_REASON_UNSCHEDULABLE = "node(s) were unschedulable"
UNSCHEDULABLE_TAINT: dict[str, Any] = {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}


class NodeUnschedulable:
    """Filter: reject cordoned nodes unless the pod tolerates the unschedulable taint."""

    NAME = NAME

    def name(self) -> str:
        return NAME

    def filter(self, state: CycleState, pod: dict[str, Any], node: NodeInfo) -> Status:
        if not (node.node.get("spec") or {}).get("unschedulable"):
            return SUCCESS
        if tolerates(pod_tolerations(pod), UNSCHEDULABLE_TAINT):
            return SUCCESS
        return Status.unschedulable(ERR_REASON_UNSCHEDULABLE, resolvable=False)

    def filter_many(
        self, state: CycleState, pod: dict[str, Any], snapshot: Snapshot, rows: IntArray
    ) -> BoolArray:
        cols = snapshot.columns()
        if not cols.flagged("unschedulable") or tolerates(pod_tolerations(pod), UNSCHEDULABLE_TAINT):
            return np.ones(len(rows), dtype=np.bool_)
        passing: BoolArray = ~cols.unschedulable[rows]
        return passing


def new(args: dict[str, Any] | None, handle: object) -> NodeUnschedulable:
    """Factory for the registry; NodeUnschedulable takes no arguments."""
    return NodeUnschedulable()
