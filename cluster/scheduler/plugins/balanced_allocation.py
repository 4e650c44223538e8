"""NodeResourcesBalancedAllocation: prefer nodes whose resources would be used evenly.

For each configured resource (default cpu and memory, weights ignored) the fraction
``(requested on node + pod's request) / allocatable`` is capped at 1; the score is
``int((1 - std) * 100)`` where ``std`` is the population standard deviation of the fractions (for two
resources ``|f1 - f2| / 2``). Actual requests are used, not the non-zero scoring defaults. Resources the
node lacks, and extended resources the pod does not request, are left out. As in current kube-scheduler
(kubernetes#129138), best-effort pods (no request among the resources) skip this plugin: PreScore returns
SKIP, so they do not all pile onto one node. ``score_many`` does the same float64 arithmetic over
``NodeColumns`` for one or two of cpu, memory and ephemeral-storage. Pure: no I/O.
"""

from __future__ import annotations

import math
from typing import Any, cast

import numpy as np

from cluster.scheduler.framework.columns import IntArray
from cluster.scheduler.framework.cycle_state import CycleState
from cluster.scheduler.framework.status import SUCCESS, Status
from cluster.scheduler.framework.types import NodeInfo, Snapshot
from cluster.scheduler.plugins.node_resources_fit import (
    COLUMN_RESOURCES,
    MAX_NODE_SCORE,
    allocation_score,
    columns_for,
    parse_resources,
    pod_request_list,
)

NAME = "NodeResourcesBalancedAllocation"
_PRE_SCORE_KEY = "PreScore" + NAME


def balanced_resource_score(requested: list[int], allocatable: list[int]) -> int:
    """``int((1 - std) * 100)`` over the used fractions of the resources the node has."""
    fractions = [min(req / alloc, 1.0) for req, alloc in zip(requested, allocatable, strict=True) if alloc]
    std = 0.0
    if len(fractions) == 2:
        std = abs((fractions[0] - fractions[1]) / 2)
    elif len(fractions) > 2:
        mean = sum(fractions) / len(fractions)
        std = math.sqrt(sum((f - mean) * (f - mean) for f in fractions) / len(fractions))
    return int((1 - std) * MAX_NODE_SCORE)


class BalancedAllocation:
    """Score: 100 for perfectly even utilisation across the configured resources."""

    NAME = NAME

    def __init__(self, args: dict[str, Any] | None = None) -> None:
        self.resources, _ = parse_resources((args or {}).get("resources"))

    def name(self) -> str:
        return NAME

    def pre_score(self, state: CycleState, pod: dict[str, Any], nodes: list[NodeInfo]) -> Status:
        requests = pod_request_list(pod, self.resources, use_requested=True)
        if not any(requests):
            return Status.skip()
        state.write(_PRE_SCORE_KEY, requests)
        return SUCCESS

    def score(self, state: CycleState, pod: dict[str, Any], node: NodeInfo) -> tuple[int, Status]:
        try:
            requests = cast("list[int]", state.read(_PRE_SCORE_KEY))
        except KeyError:
            requests = pod_request_list(pod, self.resources, use_requested=True)
            if not any(requests):
                return 0, SUCCESS
        score = allocation_score(node, self.resources, requests, balanced_resource_score, use_requested=True)
        return score, SUCCESS

    def score_many(
        self, state: CycleState, pod: dict[str, Any], snapshot: Snapshot, rows: IntArray
    ) -> IntArray | None:
        if len(self.resources) > 2 or not set(self.resources) <= set(COLUMN_RESOURCES):
            return None
        try:
            requests = cast("list[int]", state.read(_PRE_SCORE_KEY))
        except KeyError:
            return None
        cols = snapshot.columns()
        fractions = []
        for name, pod_request in zip(self.resources, requests, strict=True):
            alloc, on_node = columns_for(cols, name, rows, use_requested=True)
            if not alloc.all():
                return None  # a node lacks the resource: the per-node path leaves it out
            fraction = (on_node + pod_request) / alloc
            np.minimum(fraction, 1.0, out=fraction)
            fractions.append(fraction)
        if len(fractions) < 2:
            return np.full(len(rows), MAX_NODE_SCORE, dtype=np.int64)
        # The per-node formula step by step (the same float64 operations, so the same rounding).
        std = fractions[0] - fractions[1]
        std /= 2
        np.abs(std, out=std)
        np.subtract(1, std, out=std)
        std *= MAX_NODE_SCORE
        result: IntArray = std.astype(np.int64)
        return result


def new(args: dict[str, Any] | None, handle: object) -> BalancedAllocation:
    """Factory for the registry; ``args`` is NodeResourcesBalancedAllocationArgs (``resources``)."""
    return BalancedAllocation(args)
