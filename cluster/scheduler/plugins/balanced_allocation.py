"""NodeResourcesBalancedAllocation: prefer nodes whose resources would be used evenly.

For each configured resource (default cpu and memory, weights ignored) the fraction
``(requested on node + pod's request) / allocatable`` is capped at 1; the score is
``int((1 - std) * 100)`` where ``std`` is the population standard deviation of the fractions (for two
resources ``|f1 - f2| / 2``). Actual requests are used, not the non-zero scoring defaults. Resources the
node lacks, and extended resources the pod does not request, are left out. As in current kube-scheduler
(kubernetes#129138), best-effort pods (no request among the resources) skip this plugin: PreScore returns
SKIP, so they do not all pile onto one node. Pure: no I/O.
"""

from __future__ import annotations

import math
from typing import Any, cast

from cluster.scheduler.framework.cycle_state import CycleState
from cluster.scheduler.framework.status import SUCCESS, Status
from cluster.scheduler.framework.types import NodeInfo
from cluster.scheduler.plugins.node_resources_fit import (
    MAX_NODE_SCORE,
    allocation_score,
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


def new(args: dict[str, Any] | None, handle: object) -> BalancedAllocation:
    """Factory for the registry; ``args`` is NodeResourcesBalancedAllocationArgs (``resources``)."""
    return BalancedAllocation(args)
