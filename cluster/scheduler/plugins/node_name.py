"""NodeName: a pod that names its node (``spec.nodeName``) fits only that node.

Filter passes every node when the pod names none; otherwise only the named node passes, and the
rejection is unresolvable (preempting pods elsewhere cannot make another node the named one). Pure.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cluster.scheduler.framework.columns import BoolArray, IntArray
from cluster.scheduler.framework.cycle_state import CycleState
from cluster.scheduler.framework.status import SUCCESS, Status
from cluster.scheduler.framework.types import NodeInfo, Snapshot

NAME = "NodeName"
ERR_REASON = "node(s) didn't match the requested node name"


def fits(pod: dict[str, Any], node: NodeInfo) -> bool:
    """Whether the pod names no node or names this one."""
    wanted = (pod.get("spec") or {}).get("nodeName") or ""
    return not wanted or wanted == node.name


class NodeName:
    """Filter: the node must be the one in ``spec.nodeName``, if any."""

    NAME = NAME

    def name(self) -> str:
        return NAME

    def filter(self, state: CycleState, pod: dict[str, Any], node: NodeInfo) -> Status:
        if fits(pod, node):
            return SUCCESS
        return Status.unschedulable(ERR_REASON, resolvable=False)

    def filter_many(
        self, state: CycleState, pod: dict[str, Any], snapshot: Snapshot, rows: IntArray
    ) -> BoolArray | None:
        if (pod.get("spec") or {}).get("nodeName"):
            return None  # rare (the pod is normally bound already): ask node by node
        return np.ones(len(rows), dtype=np.bool_)


def new(args: dict[str, Any] | None, handle: object) -> NodeName:
    """Factory for the registry; NodeName takes no arguments."""
    return NodeName()
