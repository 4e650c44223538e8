"""One scheduling cycle for one pod, as kube-scheduler runs it, on a snapshot; pure.

``schedule_one`` runs PreFilter, then Filter over nodes taken round-robin from ``start_index`` until
``num_feasible_nodes_to_find`` nodes pass, then PostFilter (preemption) when none did, or PreScore/Score
and picks the best node (ties broken by the injected ``rng``, else the first in evaluation order), then
Reserve and Permit. On success the pod is assumed on its node in the snapshot, so the next cycle on
the same snapshot sees it; the caller runs ``run_binding_cycle`` (or undoes with ``forget``) and
advances its start index by ``result.evaluated``. A failure carries kube-scheduler's FailedScheduling
message, e.g. ``0/5 nodes are available: 3 Insufficient cpu, 2 node(s) had untolerated taint {x: y}.``
"""

from __future__ import annotations

import contextlib
import operator
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cluster.scheduler.framework.columns import IntArray
from cluster.scheduler.framework.cycle_state import CycleState
from cluster.scheduler.framework.runtime import Framework, NeedsPerNodePath
from cluster.scheduler.framework.status import SUCCESS, Code, Status
from cluster.scheduler.framework.types import NodeInfo, Snapshot

MIN_FEASIBLE_NODES_TO_FIND = 100
MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND = 5
BASE_PERCENTAGE_OF_NODES_TO_SCORE = 50
NO_NODES_AVAILABLE = "no nodes available to schedule pods"
_MIN_CHUNK = 128  # nodes filtered per vector pass when few feasible nodes remain to be found


@dataclass(slots=True)
class ScheduleResult:
    """The outcome of one cycle. ``node_name`` is set only when the pod was placed (and assumed)."""

    node_name: str | None
    status: Status
    filtered: dict[str, Status] = field(default_factory=dict)
    evaluated: int = 0
    feasible: int = 0
    nominated: str | None = None
    victims: list[dict[str, Any]] = field(default_factory=list)
    state: CycleState | None = None
    permit_timeout: float = 0.0  # seconds to wait when status is WAIT

    @property
    def message(self) -> str:
        """The FailedScheduling event message (empty on success)."""
        return "" if self.node_name is not None else self.status.message()


def num_feasible_nodes_to_find(percentage_of_nodes_to_score: int, num_all_nodes: int) -> int:
    """How many feasible nodes to look for before scoring, as kube-scheduler computes it.

    Below 100 nodes, all of them; a percentage of 0 means adaptive (50% minus 1% per 125 nodes, at least
    5%); never fewer than 100 nodes.
    """
    if num_all_nodes < MIN_FEASIBLE_NODES_TO_FIND or percentage_of_nodes_to_score >= 100:
        return num_all_nodes
    percentage = percentage_of_nodes_to_score
    if percentage <= 0:
        percentage = BASE_PERCENTAGE_OF_NODES_TO_SCORE - num_all_nodes // 125
        percentage = max(percentage, MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND)
    return max(num_all_nodes * percentage // 100, MIN_FEASIBLE_NODES_TO_FIND)


def fit_error_message(
    num_all_nodes: int, filtered: dict[str, Status], pre_filter_msg: str = "", post_filter_msg: str = ""
) -> str:
    """kube-scheduler's FitError text: each reason counted over nodes, as ``"<count> <reason>"`` strings
    sorted as strings and joined by ", "; a PreFilter rejection replaces the histogram; PostFilter's
    message follows."""
    message = f"0/{num_all_nodes} nodes are available:"
    if pre_filter_msg:
        message += f" {pre_filter_msg}."
    else:
        counts: Counter[str] = Counter()
        for status in filtered.values():
            counts.update(status.reasons)
        histogram = sorted(f"{count} {reason}" for reason, count in counts.items())
        if histogram:
            message += f" {', '.join(histogram)}."
    if post_filter_msg:
        message += f" {post_filter_msg}"
    return message


def _select_host(feasible: list[NodeInfo], scores: dict[str, int], rng: random.Random | None) -> str:
    """The highest total; among ties the first in evaluation order, or one drawn uniformly by ``rng``."""
    best_score = max(scores.get(node.name, 0) for node in feasible)
    ties = [node.name for node in feasible if scores.get(node.name, 0) == best_score]
    return ties[0] if rng is None or len(ties) == 1 else ties[rng.randrange(len(ties))]


def _select_row(rows: IntArray, totals: IntArray, rng: random.Random | None) -> int:
    """``_select_host`` over columns: the same choice for the same scores and ``rng`` state."""
    ties = rows[totals == totals.max()]
    return int(ties[0] if rng is None or len(ties) == 1 else ties[rng.randrange(len(ties))])


def _find_feasible_many(
    fw: Framework, state: CycleState, pod: dict[str, Any], snapshot: Snapshot, start_index: int, wanted: int
) -> tuple[IntArray, int]:
    """The first ``wanted`` feasible rows from ``start_index`` round-robin, and how many nodes were
    evaluated to find them, as the per-node loop would; in chunks so a full cluster costs one pass."""
    count = len(snapshot.node_infos)
    found: list[IntArray] = []
    have = 0
    position = 0
    while position < count and have < wanted:
        size = min(count - position, max(wanted - have, _MIN_CHUNK))
        rows = (start_index + position + np.arange(size, dtype=np.int64)) % count
        passing = np.flatnonzero(fw.run_filter_many(state, pod, snapshot, rows))
        need = wanted - have
        if len(passing) >= need:
            found.append(rows[passing[:need]])
            return np.concatenate(found), position + int(passing[need - 1]) + 1
        found.append(rows[passing])
        have += len(passing)
        position += size
    return (np.concatenate(found) if found else np.empty(0, dtype=np.int64)), count


def schedule_one(
    fw: Framework,
    pod: dict[str, Any],
    snapshot: Snapshot,
    *,
    percentage_of_nodes_to_score: int,
    start_index: int,
    rng: random.Random | None = None,
    vectorized: bool = True,
) -> ScheduleResult:
    """Run one scheduling cycle; see the module docstring. The profile's own
    ``percentageOfNodesToScore``, when set, overrides ``percentage_of_nodes_to_score``.

    ``vectorized`` filters and scores over ``snapshot.columns()`` (plugins' ``filter_many``/
    ``score_many``, per node for plugins without them); the decision is the same as the per-node
    path's (``vectorized=False``), which is kept as the reference and for the failure report."""
    state = CycleState()
    nodes = snapshot.node_infos
    if not nodes:
        status = Status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, (NO_NODES_AVAILABLE,))
        return ScheduleResult(None, status, state=state)

    filtered: dict[str, Status] = {}
    feasible: list[NodeInfo] = []
    pre_filter_msg = ""
    status = fw.run_pre_filter(state, pod, nodes)
    evaluated = len(nodes)
    if status.is_rejected():
        pre_filter_msg = status.message()
        filtered = dict.fromkeys((node.name for node in nodes), status)
    elif not status.is_success():
        return ScheduleResult(None, status, state=state)
    else:
        percentage = fw.profile.percentage_of_nodes_to_score
        wanted = num_feasible_nodes_to_find(
            percentage_of_nodes_to_score if percentage is None else percentage, len(nodes)
        )
        rows: IntArray | None = None
        if vectorized:
            try:
                rows, evaluated = _find_feasible_many(fw, state, pod, snapshot, start_index, wanted)
            except NeedsPerNodePath:
                rows = None
        if rows is not None and len(rows):
            return _score_and_assume(fw, state, pod, snapshot, rows, evaluated, rng)
        # Nothing fits (or a Filter erred): the per-node loop collects every node's reasons.
        count = len(nodes)
        evaluated = 0
        for offset in range(count):
            node = nodes[(start_index + offset) % count]
            evaluated += 1
            node_status = fw.run_filter(state, pod, node)
            if node_status.is_success():
                feasible.append(node)
                if len(feasible) >= wanted:
                    break
            elif node_status.is_rejected():
                filtered[node.name] = node_status
            else:
                return ScheduleResult(None, node_status, filtered, evaluated, state=state)

    if not feasible:
        return _fail(fw, state, pod, len(nodes), filtered, evaluated, pre_filter_msg)

    if len(feasible) == 1:
        chosen = feasible[0].name
    else:
        status = fw.run_pre_score(state, pod, feasible)
        if not status.is_success():
            return ScheduleResult(None, status, filtered, evaluated, len(feasible), state=state)
        scores, status = fw.run_score(state, pod, feasible)
        if not status.is_success():
            return ScheduleResult(None, status, filtered, evaluated, len(feasible), state=state)
        chosen = _select_host(feasible, scores, rng)
    result = ScheduleResult(chosen, SUCCESS, filtered, evaluated, len(feasible), state=state)
    return _assume(fw, state, pod, snapshot, result)


def _score_and_assume(
    fw: Framework,
    state: CycleState,
    pod: dict[str, Any],
    snapshot: Snapshot,
    rows: IntArray,
    evaluated: int,
    rng: random.Random | None,
) -> ScheduleResult:
    """PreScore and Score over the feasible ``rows`` as columns, then pick and assume."""
    infos = snapshot.node_infos
    if len(rows) == 1:
        chosen = infos[int(rows[0])].name
    else:
        picked = rows.tolist()
        feasible = list(operator.itemgetter(*picked)(infos)) if len(picked) > 1 else [infos[picked[0]]]
        status = fw.run_pre_score(state, pod, feasible)
        if not status.is_success():
            return ScheduleResult(None, status, {}, evaluated, len(rows), state=state)
        totals, status = fw.run_score_many(state, pod, snapshot, rows)
        if not status.is_success():
            return ScheduleResult(None, status, {}, evaluated, len(rows), state=state)
        chosen = infos[_select_row(rows, totals, rng)].name
    result = ScheduleResult(chosen, SUCCESS, {}, evaluated, len(rows), state=state)
    return _assume(fw, state, pod, snapshot, result)


def _assume(
    fw: Framework, state: CycleState, pod: dict[str, Any], snapshot: Snapshot, result: ScheduleResult
) -> ScheduleResult:
    """Assume the chosen node, then Reserve and Permit (undone when either says no)."""
    chosen = result.node_name
    assert chosen is not None
    snapshot.assume(pod, chosen)
    status = fw.run_reserve(state, pod, chosen)
    if status.is_success():
        status, result.permit_timeout = fw.run_permit(state, pod, chosen)
    if status.is_success() or status.is_wait():
        result.status = status
        return result
    fw.run_unreserve(state, pod, chosen)
    forget(snapshot, pod, chosen)
    result.node_name = None
    result.status = status
    return result


def _fail(
    fw: Framework,
    state: CycleState,
    pod: dict[str, Any],
    num_all_nodes: int,
    filtered: dict[str, Status],
    evaluated: int,
    pre_filter_msg: str,
) -> ScheduleResult:
    nominated: str | None = None
    victims: list[dict[str, Any]] = []
    post_filter_msg = ""
    if fw.has_post_filter_plugins():
        found, post_status = fw.run_post_filter(state, pod, filtered)
        if post_status.code == Code.ERROR:
            return ScheduleResult(None, post_status, filtered, evaluated, state=state)
        post_filter_msg = post_status.message()
        if found is not None:
            nominated = found.nominated_node_name or None
            victims = list(found.victims)
    message = fit_error_message(num_all_nodes, filtered, pre_filter_msg, post_filter_msg)
    return ScheduleResult(
        None,
        Status(Code.UNSCHEDULABLE, (message,)),
        filtered,
        evaluated,
        0,
        nominated,
        victims,
        state,
    )


def forget(snapshot: Snapshot, pod: dict[str, Any], node_name: str) -> None:
    """Undo ``schedule_one``'s assumption of ``pod`` on ``node_name`` (no-op if it is not there)."""
    info = snapshot.get(node_name)
    if info is not None:
        with contextlib.suppress(KeyError):
            info.remove_pod(pod)


def run_binding_cycle(
    fw: Framework, result: ScheduleResult, pod: dict[str, Any], snapshot: Snapshot | None = None
) -> Status:
    """PreBind, Bind and PostBind for a placed pod (after any Permit wait was allowed).

    On failure runs Unreserve and, given the snapshot, forgets the assumed pod. A Bind status of SKIP
    (no bind plugin took the pod) counts as a failure, as in kube-scheduler.
    """
    if result.node_name is None or result.state is None:
        raise ValueError("run_binding_cycle needs a result that placed the pod")
    node_name, state = result.node_name, result.state
    status = fw.run_pre_bind(state, pod, node_name)
    if status.is_success():
        status = fw.run_bind(state, pod, node_name)
        if status.is_skip():
            status = Status(Code.ERROR, ("no bind plugin bound the pod",))
    if status.is_success():
        fw.run_post_bind(state, pod, node_name)
        return status
    fw.run_unreserve(state, pod, node_name)
    if snapshot is not None:
        forget(snapshot, pod, node_name)
    return status
