"""DefaultPreemption: the PostFilter that frees a node for a pod by evicting lower-priority pods.

Runs when no node passed Filter. For every node whose rejection is resolvable (not
UNSCHEDULABLE_AND_UNRESOLVABLE) it simulates kube-scheduler's ``SelectVictimsOnNode``: remove all pods
of lower priority, check the pod fits (PreFilter over the simulated cluster, then Filter on the node),
then reprieve pods one by one -- first those whose eviction would violate a PodDisruptionBudget, then
the rest, each group highest priority (then earliest start) first -- keeping a pod whenever the
incoming pod still fits. Among the candidate nodes it picks, in order: fewest PDB violations, lowest
highest-victim priority, smallest sum of victim priorities, fewest victims, latest start time of the
highest-priority victims, then the first candidate. The result is ``PostFilterResult(node, victims)``;
the actor evicts them and sets ``status.nominatedNodeName``.

Inputs beyond the pod: the node statuses from Filter, the snapshot (``handle.snapshot()``), the
PodDisruptionBudgets (``handle.pdbs()``, optional), and a ``FilterRunner`` -- the Framework, passed to
``new``/``set_framework`` or found as ``handle.framework()``. Messages carry kube-scheduler's
``"preemption: "`` prefix, e.g. ``"preemption: 0/3 nodes are available: 3 Preemption is not helpful
for scheduling."``. Invariants: pure; nothing in the snapshot is mutated (nodes are cloned). The dry
run starts at the first node (kube-scheduler starts at a random offset).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from cluster.machinery.labels import SelectorError, label_selector_from_dict
from cluster.machinery.times import parse_rfc3339
from cluster.scheduler.framework import (
    SUCCESS,
    Code,
    CycleState,
    Handle,
    NodeInfo,
    PostFilterResult,
    Status,
)

NAME = "DefaultPreemption"
NOT_HELPFUL = "Preemption is not helpful for scheduling"
NO_VICTIMS = "No preemption victims found for incoming pod"
NEVER = "not eligible due to preemptionPolicy=Never."
TERMINATING = "not eligible due to a terminating pod on the nominated node."
_INT32_MAX = 2**31 - 1


class FilterRunner(Protocol):
    """The part of the Framework preemption needs to re-run the filters on a simulated node."""

    def run_pre_filter(self, state: CycleState, pod: dict[str, Any], nodes: list[NodeInfo]) -> Status: ...

    def run_filter(self, state: CycleState, pod: dict[str, Any], node: NodeInfo) -> Status: ...


def priority(pod: Mapping[str, Any]) -> int:
    return int((pod.get("spec") or {}).get("priority") or 0)


def start_time(pod: Mapping[str, Any], now: float) -> float:
    """``status.startTime`` in seconds; ``now`` for pods that have not started."""
    started = parse_rfc3339((pod.get("status") or {}).get("startTime"))
    return now if started is None else started.timestamp()


def importance_key(pod: Mapping[str, Any], now: float) -> tuple[int, float]:
    """Sort key for kube-scheduler's MoreImportantPod: higher priority, then earlier start, first."""
    return (-priority(pod), start_time(pod, now))


def split_by_pdb_violation(
    pods: Iterable[dict[str, Any]], pdbs: Iterable[Mapping[str, Any]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(violating, non-violating): evicting the pods in order, which would take a budget below 0."""
    budgets = list(pdbs)
    allowed = [int((b.get("status") or {}).get("disruptionsAllowed") or 0) for b in budgets]
    violating: list[dict[str, Any]] = []
    non_violating: list[dict[str, Any]] = []
    for pod in pods:
        meta = pod.get("metadata") or {}
        labels = meta.get("labels") or {}
        violated = False
        # A pod without labels matches no budget.
        for i, pdb in enumerate(budgets if labels else []):
            pdb_meta = pdb.get("metadata") or {}
            if (pdb_meta.get("namespace") or "default") != (meta.get("namespace") or "default"):
                continue
            try:
                selector = label_selector_from_dict((pdb.get("spec") or {}).get("selector"))
            except SelectorError:
                continue
            if selector.empty() or not selector.matches(labels):
                continue
            if meta.get("name") in ((pdb.get("status") or {}).get("disruptedPods") or {}):
                continue
            allowed[i] -= 1
            if allowed[i] < 0:
                violated = True
        (violating if violated else non_violating).append(pod)
    return violating, non_violating


@dataclass(frozen=True, slots=True)
class Candidate:
    node_name: str
    victims: list[dict[str, Any]]
    num_pdb_violations: int


def pick_one_node(candidates: list[Candidate], now: float) -> Candidate | None:
    """kube-scheduler's pickOneNodeForPreemption over candidates in dry-run order."""
    if not candidates:
        return None
    for c in candidates:
        if not c.victims:
            return c

    def earliest_top_start(c: Candidate) -> float:
        top = max(priority(v) for v in c.victims)
        return min(start_time(v, now) for v in c.victims if priority(v) == top)

    def key(c: Candidate) -> tuple[int, int, int, int, float]:
        return (
            c.num_pdb_violations,
            max(priority(v) for v in c.victims),
            sum(priority(v) + _INT32_MAX + 1 for v in c.victims),
            len(c.victims),
            -earliest_top_start(c),
        )

    return min(candidates, key=key)  # min keeps the first of equal keys


def _fit_error(num_all_nodes: int, statuses: Iterable[Status]) -> str:
    counts: Counter[str] = Counter()
    for status in statuses:
        counts.update(status.reasons)
    histogram = ", ".join(sorted(f"{count} {reason}" for reason, count in counts.items()))
    return f"0/{num_all_nodes} nodes are available: {histogram}."


def _terminating_by_preemption(pod: Mapping[str, Any]) -> bool:
    if not (pod.get("metadata") or {}).get("deletionTimestamp"):
        return False
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(
        c.get("type") == "DisruptionTarget" and c.get("reason") == "PreemptionByScheduler" for c in conditions
    )


class DefaultPreemption:
    """PostFilter: nominate a node and the victims to evict there."""

    NAME = NAME

    def __init__(self, args: Mapping[str, Any], handle: Handle, runner: FilterRunner | None = None) -> None:
        self._handle = handle
        self._runner = runner
        self.min_candidate_nodes_percentage = int(args.get("minCandidateNodesPercentage", 10))
        self.min_candidate_nodes_absolute = int(args.get("minCandidateNodesAbsolute", 100))
        if not 0 <= self.min_candidate_nodes_percentage <= 100:
            raise ValueError("minCandidateNodesPercentage: must be in the range [0, 100]")
        if self.min_candidate_nodes_absolute < 0:
            raise ValueError("minCandidateNodesAbsolute: must be non-negative")
        if self.min_candidate_nodes_percentage == 0 and self.min_candidate_nodes_absolute == 0:
            raise ValueError("minCandidateNodesPercentage and minCandidateNodesAbsolute cannot both be zero")

    def name(self) -> str:
        return NAME

    def set_framework(self, runner: FilterRunner) -> None:
        self._runner = runner

    def _filter_runner(self) -> FilterRunner | None:
        if self._runner is None:
            getter = getattr(self._handle, "framework", None)
            if callable(getter):
                self._runner = getter()
        return self._runner

    def _pdbs(self) -> list[dict[str, Any]]:
        getter = getattr(self._handle, "pdbs", None)
        return list(getter()) if callable(getter) else []

    def num_candidates(self, num_nodes: int) -> int:
        n = num_nodes * self.min_candidate_nodes_percentage // 100
        return min(max(n, self.min_candidate_nodes_absolute), num_nodes)

    def eligibility(self, pod: Mapping[str, Any], filtered: Mapping[str, Status]) -> str:
        """Why the pod may not preempt ("" when it may)."""
        if (pod.get("spec") or {}).get("preemptionPolicy") == "Never":
            return NEVER
        nominated = (pod.get("status") or {}).get("nominatedNodeName")
        if not nominated:
            return ""
        status = filtered.get(nominated)
        if status is not None and status.code == Code.UNSCHEDULABLE_AND_UNRESOLVABLE:
            return ""
        info = self._handle.snapshot().get(nominated)
        mine = priority(pod)
        if info is not None and any(priority(p) < mine and _terminating_by_preemption(p) for p in info.pods):
            return TERMINATING
        return ""

    def post_filter(
        self, state: CycleState, pod: dict[str, Any], filtered: dict[str, Status]
    ) -> tuple[PostFilterResult | None, Status]:
        reason = self.eligibility(pod, filtered)
        if reason:
            return None, Status.unschedulable(f"preemption: {reason}")
        runner = self._filter_runner()
        if runner is None:
            return None, Status.error(f"{NAME}: no framework to run the filters with")
        all_nodes = list(self._handle.snapshot().node_infos)
        statuses: dict[str, Status] = {}
        potential: list[NodeInfo] = []
        for info in all_nodes:
            status = filtered.get(info.name)
            if status is not None and status.code == Code.UNSCHEDULABLE_AND_UNRESOLVABLE:
                statuses[info.name] = Status.unschedulable(NOT_HELPFUL, resolvable=False)
            else:
                potential.append(info)
        candidates = self.dry_run(pod, potential, all_nodes, runner, statuses)
        now = self._handle.now()
        best = pick_one_node(candidates, now)
        if best is None:
            message = _fit_error(len(all_nodes), statuses.values())
            return PostFilterResult(""), Status.unschedulable(f"preemption: {message}")
        return PostFilterResult(best.node_name, best.victims), SUCCESS

    def dry_run(
        self,
        pod: dict[str, Any],
        potential: list[NodeInfo],
        all_nodes: list[NodeInfo],
        runner: FilterRunner,
        statuses: dict[str, Status],
    ) -> list[Candidate]:
        """Candidates (non-violating first), stopping once enough were found; failures go in statuses."""
        wanted = self.num_candidates(len(potential))
        violating: list[Candidate] = []
        non_violating: list[Candidate] = []
        pdbs = self._pdbs()
        for info in potential:
            victims, num_violations, status = self.select_victims_on_node(pod, info, all_nodes, runner, pdbs)
            if not status.is_success():
                statuses[info.name] = status
                continue
            candidate = Candidate(info.name, victims, num_violations)
            (violating if num_violations else non_violating).append(candidate)
            if non_violating and len(non_violating) + len(violating) >= wanted:
                break
        return non_violating + violating

    def select_victims_on_node(
        self,
        pod: dict[str, Any],
        node: NodeInfo,
        all_nodes: list[NodeInfo],
        runner: FilterRunner,
        pdbs: list[dict[str, Any]],
    ) -> tuple[list[dict[str, Any]], int, Status]:
        """kube-scheduler's SelectVictimsOnNode on a clone of ``node``."""
        sim = node.clone()
        others = [sim if n.name == node.name else n for n in all_nodes]
        mine = priority(pod)
        potential = [p for p in sim.pods if priority(p) < mine]
        if not potential:
            return [], 0, Status.unschedulable(NO_VICTIMS, resolvable=False)
        for victim in potential:
            sim.remove_pod(victim)
        status = self._fits(runner, pod, sim, others)
        if not status.is_success():
            return [], 0, status
        now = self._handle.now()
        potential.sort(key=lambda p: importance_key(p, now))
        violating, non_violating = split_by_pdb_violation(potential, pdbs)
        victims: list[dict[str, Any]] = []
        num_violations = 0
        for group, violates in ((violating, 1), (non_violating, 0)):
            for candidate in group:
                sim.add_pod(candidate)
                if not self._fits(runner, pod, sim, others).is_success():
                    sim.remove_pod(candidate)
                    victims.append(candidate)
                    num_violations += violates
        if violating and non_violating:
            victims.sort(key=lambda p: importance_key(p, now))
        return victims, num_violations, SUCCESS

    @staticmethod
    def _fits(runner: FilterRunner, pod: dict[str, Any], node: NodeInfo, nodes: list[NodeInfo]) -> Status:
        # A fresh PreFilter over the simulated cluster stands in for kube-scheduler's AddPod/RemovePod
        # PreFilter extensions: slower, but every plugin's precomputed state sees the removals.
        state = CycleState()
        status = runner.run_pre_filter(state, pod, nodes)
        if not status.is_success():
            return status
        return runner.run_filter(state, pod, node)


def new(args: dict[str, Any], handle: Handle) -> DefaultPreemption:
    return DefaultPreemption(args or {}, handle)
