"""NodeResourcesFit: the pod's requests must fit the node's free allocatable; score by utilisation.

Filter (kube-scheduler's ``fitsRequest``): one more pod must not exceed the node's pod count, and each
requested cpu, memory, ephemeral-storage and scalar resource must fit ``allocatable - requested``.
All shortages are reported together; the rejection is unresolvable when a request exceeds the whole
allocatable (no preemption can help). Extended resources named in ``ignoredResources`` or whose prefix is
in ``ignoredResourceGroups`` are not checked.

Score (``scoringStrategy``) rates the node after placing the pod, per configured resource, then takes the
weighted mean: ``LeastAllocated`` (default; free share), ``MostAllocated`` (used share) or
``RequestedToCapacityRatio`` (a broken-linear ``shape`` of utilisation -> 0..10, scaled to 0..100).
Scoring counts cpu/memory with the non-zero defaults (100m/200Mi per container without a request);
resources a node does not have, and extended resources the pod does not request, are left out.
Integer arithmetic truncates like Go's. ``filter_many``/``score_many`` give the same answers over
``NodeColumns`` for cpu, memory, ephemeral-storage and pods (LeastAllocated and MostAllocated); pods
that request extended resources, and RequestedToCapacityRatio, use the per-node path. Pure: no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from cluster.scheduler.framework.columns import BoolArray, IntArray, NodeColumns, take
from cluster.scheduler.framework.cycle_state import CycleState
from cluster.scheduler.framework.status import SUCCESS, Status
from cluster.scheduler.framework.types import NodeInfo, Resource, Snapshot, pod_requests, pod_requests_nonzero

NAME = "NodeResourcesFit"
MAX_NODE_SCORE = 100
MAX_CUSTOM_PRIORITY_SCORE = 10
MAX_UTILIZATION = 100
LEAST_ALLOCATED = "LeastAllocated"
MOST_ALLOCATED = "MostAllocated"
REQUESTED_TO_CAPACITY_RATIO = "RequestedToCapacityRatio"
DEFAULT_RESOURCES: tuple[tuple[str, int], ...] = (("cpu", 1), ("memory", 1))
_PRE_FILTER_KEY = "PreFilter" + NAME
_PRE_SCORE_KEY = "PreScore" + NAME

Scorer = Callable[[list[int], list[int]], int]
"""(requested per resource, allocatable per resource) -> node score; allocatable 0 means "skip"."""


def go_div(a: int, b: int) -> int:
    """Integer division truncating toward zero, as Go's ``/`` on int64."""
    quotient = abs(a) // abs(b)
    return quotient if (a >= 0) == (b >= 0) else -quotient


def amount(resources: Resource, name: str) -> int:
    """The amount of resource ``name`` (``cpu`` in millicores)."""
    if name == "cpu":
        return resources.milli_cpu
    if name == "memory":
        return resources.memory
    if name == "ephemeral-storage":
        return resources.ephemeral_storage
    if name == "pods":
        return resources.allowed_pod_number
    return resources.scalar.get(name, 0)


def is_extended_resource_name(name: str) -> bool:
    """Vendor resources such as ``example.com/gpu`` (not native, not ``kubernetes.io/``-prefixed)."""
    native = "/" not in name or "kubernetes.io/" in name
    return not native and not name.startswith("requests.")


@dataclass(frozen=True, slots=True)
class InsufficientResource:
    """One shortage found by Filter; ``unresolvable`` when even an empty node could not fit it."""

    resource_name: str
    reason: str
    requested: int
    used: int
    capacity: int
    unresolvable: bool = False


def insufficient_resources(
    request: Resource,
    node: NodeInfo,
    ignored: frozenset[str] = frozenset(),
    ignored_groups: frozenset[str] = frozenset(),
) -> list[InsufficientResource]:
    """Every resource the pod's ``request`` lacks on ``node``, in kube-scheduler's order."""
    alloc, used = node.allocatable, node.requested
    out: list[InsufficientResource] = []
    if len(node.pods) + 1 > alloc.allowed_pod_number:
        out.append(InsufficientResource("pods", "Too many pods", 1, len(node.pods), alloc.allowed_pod_number))
    checks = [
        ("cpu", request.milli_cpu, used.milli_cpu, alloc.milli_cpu),
        ("memory", request.memory, used.memory, alloc.memory),
        ("ephemeral-storage", request.ephemeral_storage, used.ephemeral_storage, alloc.ephemeral_storage),
    ]
    for name in sorted(request.scalar):
        if is_extended_resource_name(name) and (name in ignored or name.split("/")[0] in ignored_groups):
            continue
        checks.append((name, request.scalar[name], used.scalar.get(name, 0), alloc.scalar.get(name, 0)))
    for name, wanted, in_use, capacity in checks:
        if wanted > 0 and wanted > capacity - in_use:
            reason = f"Insufficient {name}"
            out.append(InsufficientResource(name, reason, wanted, in_use, capacity, wanted > capacity))
    return out


def least_requested_score(requested: int, capacity: int) -> int:
    if capacity == 0 or requested > capacity:
        return 0
    return (capacity - requested) * MAX_NODE_SCORE // capacity


def most_requested_score(requested: int, capacity: int) -> int:
    if capacity == 0:
        return 0
    # Pods without requests count the non-zero defaults, which may exceed the capacity.
    return min(requested, capacity) * MAX_NODE_SCORE // capacity


def _weighted_mean(per_resource: Callable[[int, int], int], weights: list[int]) -> Scorer:
    def scorer(requested: list[int], allocatable: list[int]) -> int:
        total = weight_sum = 0
        for req, alloc, weight in zip(requested, allocatable, weights, strict=True):
            if alloc == 0:
                continue
            total += per_resource(req, alloc) * weight
            weight_sum += weight
        return total // weight_sum if weight_sum else 0

    return scorer


def least_allocated_scorer(weights: list[int]) -> Scorer:
    return _weighted_mean(least_requested_score, weights)


def most_allocated_scorer(weights: list[int]) -> Scorer:
    return _weighted_mean(most_requested_score, weights)


def broken_linear(shape: list[tuple[int, int]]) -> Callable[[int], int]:
    """The piecewise-linear function through ``(utilization, score)`` points, flat beyond both ends."""

    def function(p: int) -> int:
        for i, (utilization, score) in enumerate(shape):
            if p <= utilization:
                if i == 0:
                    return score
                prev_u, prev_s = shape[i - 1]
                return prev_s + go_div((score - prev_s) * (p - prev_u), utilization - prev_u)
        return shape[-1][1]

    return function


def requested_to_capacity_ratio_scorer(weights: list[int], shape: list[tuple[int, int]]) -> Scorer:
    """Shape scores are 0..10 and scaled to 0..100; resources scoring 0 are left out of the mean."""
    raw = broken_linear([(u, s * (MAX_NODE_SCORE // MAX_CUSTOM_PRIORITY_SCORE)) for u, s in shape])

    def per_resource(requested: int, capacity: int) -> int:
        if capacity == 0 or requested > capacity:
            return raw(MAX_UTILIZATION)
        return raw(requested * MAX_UTILIZATION // capacity)

    def scorer(requested: list[int], allocatable: list[int]) -> int:
        total = weight_sum = 0
        for req, alloc, weight in zip(requested, allocatable, weights, strict=True):
            if alloc == 0:
                continue
            score = per_resource(req, alloc)
            if score > 0:
                total += score * weight
                weight_sum += weight
        return math.floor(total / weight_sum + 0.5) if weight_sum else 0

    return scorer


def pod_request_list(pod: dict[str, Any], names: list[str], *, use_requested: bool) -> list[int]:
    """The pod's request per resource; cpu/memory with non-zero defaults unless ``use_requested``."""
    actual = pod_requests(pod)
    scoring = actual if use_requested else pod_requests_nonzero(pod)
    return [amount(scoring if name in ("cpu", "memory") else actual, name) for name in names]


def allocatable_and_requested(
    node: NodeInfo, name: str, pod_request: int, *, use_requested: bool
) -> tuple[int, int]:
    """(allocatable, requested including the pod) for one resource; (0, 0) means leave it out."""
    if name in ("cpu", "memory"):
        on_node = node.requested if use_requested else node.non_zero_requested
        return amount(node.allocatable, name), amount(on_node, name) + pod_request
    if name == "ephemeral-storage":
        return node.allocatable.ephemeral_storage, node.requested.ephemeral_storage + pod_request
    if pod_request == 0 or name not in node.allocatable.scalar:
        return 0, 0
    return node.allocatable.scalar[name], node.requested.scalar.get(name, 0) + pod_request


def allocation_score(
    node: NodeInfo, names: list[str], requests: list[int], scorer: Scorer, *, use_requested: bool
) -> int:
    allocatable: list[int] = []
    requested: list[int] = []
    for name, pod_request in zip(names, requests, strict=True):
        alloc, req = allocatable_and_requested(node, name, pod_request, use_requested=use_requested)
        allocatable.append(alloc)
        requested.append(req if alloc else 0)
    return scorer(requested, allocatable)


COLUMN_RESOURCES = ("cpu", "memory", "ephemeral-storage")


def fits_many(request: Resource, cols: NodeColumns, rows: IntArray) -> BoolArray:
    """``insufficient_resources(...) == []`` for each row, ignoring extended resources."""
    mask: BoolArray = take(cols.free_pods, rows) >= 1
    for wanted, free in (
        (request.milli_cpu, cols.free_cpu),
        (request.memory, cols.free_mem),
        (request.ephemeral_storage, cols.free_eph),
    ):
        if wanted > 0:
            mask &= take(free, rows) >= wanted
    return mask


def columns_for(
    cols: NodeColumns, name: str, rows: IntArray, *, use_requested: bool
) -> tuple[IntArray, IntArray]:
    """(allocatable, requested on node) for a column resource, as ``allocatable_and_requested``."""
    if name == "cpu":
        return take(cols.alloc_cpu, rows), take(cols.req_cpu if use_requested else cols.nz_cpu, rows)
    if name == "memory":
        return take(cols.alloc_mem, rows), take(cols.req_mem if use_requested else cols.nz_mem, rows)
    return take(cols.alloc_eph, rows), take(cols.req_eph, rows)


def _free_for_scoring(cols: NodeColumns, name: str, rows: IntArray) -> IntArray:
    """allocatable minus what scoring counts as requested (non-zero defaults for cpu and memory)."""
    if name == "cpu":
        return take(cols.nz_free_cpu, rows)
    if name == "memory":
        return take(cols.nz_free_mem, rows)
    return take(cols.free_eph, rows)


def weighted_mean_many(
    cols: NodeColumns,
    rows: IntArray,
    names: list[str],
    weights: list[int],
    requests: list[int],
    strategy: str,
) -> IntArray:
    """LeastAllocated/MostAllocated over rows: the same integers as ``allocation_score``."""
    total = np.zeros(len(rows), dtype=np.int64)
    weight_sum: IntArray | int = 0
    for name, weight, pod_request in zip(names, weights, requests, strict=True):
        alloc, on_node = columns_for(cols, name, rows, use_requested=False)
        if cols.flagged("scalar") or not alloc.all():
            # Some node lacks the resource: it is left out of that node's mean.
            present = alloc > 0
            capacity = np.where(present, alloc, 1)
            requested = on_node + pod_request
            if strategy == LEAST_ALLOCATED:
                fits = present & (requested <= alloc)
                score = np.where(fits, (alloc - requested) * MAX_NODE_SCORE // capacity, 0)
            else:
                score = np.where(present, np.minimum(requested, alloc) * MAX_NODE_SCORE // capacity, 0)
            total += score * weight * present
            weight_sum = weight_sum + weight * present
            continue
        if strategy == LEAST_ALLOCATED:
            score = _free_for_scoring(cols, name, rows) - pod_request
            np.maximum(score, 0, out=score)  # more requested than allocatable scores 0
        else:
            score = np.minimum(on_node + pod_request, alloc)
        score *= MAX_NODE_SCORE
        score //= alloc
        if weight != 1:
            score *= weight
        total += score
        weight_sum = weight_sum + weight
    if isinstance(weight_sum, int):
        if weight_sum > 1:
            total //= weight_sum
        return total
    result: IntArray = np.where(weight_sum > 0, total // np.maximum(weight_sum, 1), 0)
    return result


def parse_resources(specs: list[dict[str, Any]] | None) -> tuple[list[str], list[int]]:
    """``[{name, weight}]`` -> (names, weights); empty means cpu and memory with weight 1."""
    pairs = [(str(s["name"]), int(s.get("weight", 1))) for s in specs or []] or list(DEFAULT_RESOURCES)
    for name, weight in pairs:
        if not 1 <= weight <= 100:
            raise ValueError(f"resource {name} weight {weight} not in valid range [1, 100]")
    return [n for n, _ in pairs], [w for _, w in pairs]


def _parse_shape(points: list[dict[str, Any]] | None) -> list[tuple[int, int]]:
    shape = [(int(p.get("utilization", 0)), int(p.get("score", 0))) for p in points or []]
    if not shape:
        raise ValueError("requestedToCapacityRatio.shape: at least one point is required")
    for i, (utilization, score) in enumerate(shape):
        if not 0 <= utilization <= MAX_UTILIZATION or not 0 <= score <= MAX_CUSTOM_PRIORITY_SCORE:
            raise ValueError(f"shape point {i}: utilization must be 0..100 and score 0..10")
        if i and utilization <= shape[i - 1][0]:
            raise ValueError("shape: utilization values must be sorted in increasing order")
    return shape


class NodeResourcesFit:
    """Filter on free allocatable; Score by the configured scoring strategy."""

    NAME = NAME

    def __init__(self, args: dict[str, Any] | None = None) -> None:
        args = args or {}
        self.ignored = frozenset(args.get("ignoredResources") or ())
        self.ignored_groups = frozenset(args.get("ignoredResourceGroups") or ())
        strategy = args.get("scoringStrategy") or {}
        self.strategy = str(strategy.get("type") or LEAST_ALLOCATED)
        self.resources, weights = parse_resources(strategy.get("resources"))
        self.weights = weights
        if self.strategy == LEAST_ALLOCATED:
            self.scorer = least_allocated_scorer(weights)
        elif self.strategy == MOST_ALLOCATED:
            self.scorer = most_allocated_scorer(weights)
        elif self.strategy == REQUESTED_TO_CAPACITY_RATIO:
            shape = _parse_shape((strategy.get("requestedToCapacityRatio") or {}).get("shape"))
            self.scorer = requested_to_capacity_ratio_scorer(weights, shape)
        else:
            raise ValueError(f"scoringStrategy.type: unsupported value {self.strategy!r}")

    def name(self) -> str:
        return NAME

    def pre_filter(self, state: CycleState, pod: dict[str, Any], nodes: list[NodeInfo]) -> Status:
        state.write(_PRE_FILTER_KEY, pod_requests(pod))
        return SUCCESS

    def filter(self, state: CycleState, pod: dict[str, Any], node: NodeInfo) -> Status:
        try:
            request = cast(Resource, state.read(_PRE_FILTER_KEY))
        except KeyError:
            request = pod_requests(pod)
        shortages = insufficient_resources(request, node, self.ignored, self.ignored_groups)
        if not shortages:
            return SUCCESS
        resolvable = not any(s.unresolvable for s in shortages)
        return Status.unschedulable(*(s.reason for s in shortages), resolvable=resolvable)

    def pre_score(self, state: CycleState, pod: dict[str, Any], nodes: list[NodeInfo]) -> Status:
        state.write(_PRE_SCORE_KEY, pod_request_list(pod, self.resources, use_requested=False))
        return SUCCESS

    def score(self, state: CycleState, pod: dict[str, Any], node: NodeInfo) -> tuple[int, Status]:
        try:
            requests = cast("list[int]", state.read(_PRE_SCORE_KEY))
        except KeyError:
            requests = pod_request_list(pod, self.resources, use_requested=False)
        return allocation_score(node, self.resources, requests, self.scorer, use_requested=False), SUCCESS

    def filter_many(
        self, state: CycleState, pod: dict[str, Any], snapshot: Snapshot, rows: IntArray
    ) -> BoolArray | None:
        try:
            request = cast(Resource, state.read(_PRE_FILTER_KEY))
        except KeyError:
            request = pod_requests(pod)
        checked = [
            name
            for name in request.scalar
            if not (
                is_extended_resource_name(name)
                and (name in self.ignored or name.split("/")[0] in self.ignored_groups)
            )
        ]
        if checked:
            return None
        return fits_many(request, snapshot.columns(), rows)

    def score_many(
        self, state: CycleState, pod: dict[str, Any], snapshot: Snapshot, rows: IntArray
    ) -> IntArray | None:
        if self.strategy == REQUESTED_TO_CAPACITY_RATIO or not set(self.resources) <= set(COLUMN_RESOURCES):
            return None
        try:
            requests = cast("list[int]", state.read(_PRE_SCORE_KEY))
        except KeyError:
            requests = pod_request_list(pod, self.resources, use_requested=False)
        return weighted_mean_many(
            snapshot.columns(), rows, self.resources, self.weights, requests, self.strategy
        )


def new(args: dict[str, Any] | None, handle: object) -> NodeResourcesFit:
    """Factory for the registry; ``args`` is NodeResourcesFitArgs (raises ValueError when invalid)."""
    return NodeResourcesFit(args)
