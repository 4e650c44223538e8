"""TaintToleration: keep pods off nodes whose taints they do not tolerate, and prefer fewer soft taints.

Filter rejects a node with a ``NoSchedule`` or ``NoExecute`` taint that no toleration of the pod matches
(unresolvable: preemption cannot remove a taint). Score counts the node's ``PreferNoSchedule`` taints the
pod does not tolerate; NormalizeScore maps them reversed onto 0..100, so the node with the fewest
untolerated soft taints scores 100. Matching is ``cluster.machinery.taints`` (core/v1
``Toleration.ToleratesTaint``, shared with the controllers). Over columns, only the rows flagged as
having hard (Filter) or soft (Score) taints are looked at node by node.
Pure: no I/O.
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np

from cluster.machinery.taints import find_untolerated_taint as _find_untolerated_taint
from cluster.machinery.taints import tolerates_taint as tolerates_taint  # re-exported for the tests
from cluster.machinery.taints import tolerations_tolerate_taint
from cluster.scheduler.framework.columns import BoolArray, IntArray
from cluster.scheduler.framework.cycle_state import CycleState
from cluster.scheduler.framework.status import SUCCESS, Status
from cluster.scheduler.framework.types import NodeInfo, Snapshot

NAME = "TaintToleration"
MAX_NODE_SCORE = 100
_PRE_SCORE_KEY = "PreScore" + NAME
_DO_NOT_SCHEDULE = ("NoSchedule", "NoExecute")

Obj = dict[str, Any]


def tolerates(tolerations: list[Obj], taint: Obj) -> bool:
    """Whether any of ``tolerations`` matches ``taint``."""
    return tolerations_tolerate_taint(tolerations, taint)


def pod_tolerations(pod: Obj) -> list[Obj]:
    return list((pod.get("spec") or {}).get("tolerations") or [])


def find_untolerated_taint(taints: list[Obj], tolerations: list[Obj]) -> Obj | None:
    """The first ``NoSchedule``/``NoExecute`` taint, in node order, that no toleration matches."""
    return _find_untolerated_taint(taints, tolerations, _DO_NOT_SCHEDULE)


def prefer_no_schedule_tolerations(tolerations: list[Obj]) -> list[Obj]:
    """The tolerations that can tolerate a ``PreferNoSchedule`` taint (empty effect or that effect)."""
    return [t for t in tolerations if (t.get("effect") or "") in ("", "PreferNoSchedule")]


def count_intolerable_prefer_no_schedule(taints: list[Obj], tolerations: list[Obj]) -> int:
    soft = [taint for taint in taints if taint.get("effect") == "PreferNoSchedule"]
    return sum(1 for taint in soft if not tolerates(tolerations, taint))


def default_normalize_score(
    scores: dict[str, int], *, reverse: bool, max_score: int = MAX_NODE_SCORE
) -> None:
    """kube-scheduler's DefaultNormalizeScore, in place: scale to 0..max_score by the highest raw score.

    With ``reverse`` the scale is flipped (highest raw score gets 0); when every raw score is 0 the
    reversed scores are all ``max_score`` and the plain ones stay 0. Integer division truncates as Go does.
    """
    highest = max(scores.values(), default=0)
    if highest == 0:
        if reverse:
            for node in scores:
                scores[node] = max_score
        return
    for node, raw in scores.items():
        score = max_score * raw // highest
        scores[node] = max_score - score if reverse else score


def default_normalize_many(scores: IntArray, *, reverse: bool, max_score: int = MAX_NODE_SCORE) -> IntArray:
    """``default_normalize_score`` over an array (a new array; the same integers)."""
    highest = int(scores.max()) if len(scores) and scores.any() else 0
    if highest == 0:
        return np.full(len(scores), max_score if reverse else 0, dtype=np.int64) if reverse else scores.copy()
    scaled: IntArray = max_score * scores // highest
    return max_score - scaled if reverse else scaled


class TaintToleration:
    """Filter on hard taints, Score on soft (``PreferNoSchedule``) taints."""

    NAME = NAME

    def name(self) -> str:
        return NAME

    def filter(self, state: CycleState, pod: Obj, node: NodeInfo) -> Status:
        taint = find_untolerated_taint(node.taints, pod_tolerations(pod))
        if taint is None:
            return SUCCESS
        reason = f"node(s) had untolerated taint {{{taint.get('key', '')}: {taint.get('value', '')}}}"
        return Status.unschedulable(reason, resolvable=False)

    def pre_score(self, state: CycleState, pod: Obj, nodes: list[NodeInfo]) -> Status:
        state.write(_PRE_SCORE_KEY, prefer_no_schedule_tolerations(pod_tolerations(pod)))
        return SUCCESS

    def score(self, state: CycleState, pod: Obj, node: NodeInfo) -> tuple[int, Status]:
        try:
            tolerations = cast("list[Obj]", state.read(_PRE_SCORE_KEY))
        except KeyError:
            tolerations = prefer_no_schedule_tolerations(pod_tolerations(pod))
        return count_intolerable_prefer_no_schedule(node.taints, tolerations), SUCCESS

    def normalize_score(self, state: CycleState, pod: Obj, scores: dict[str, int]) -> Status:
        default_normalize_score(scores, reverse=True)
        return SUCCESS

    def filter_many(self, state: CycleState, pod: Obj, snapshot: Snapshot, rows: IntArray) -> BoolArray:
        mask = np.ones(len(rows), dtype=np.bool_)
        cols = snapshot.columns()
        if not cols.flagged("hard_taints"):
            return mask
        column = cols.hard_taints
        tolerations = pod_tolerations(pod)
        infos = snapshot.node_infos
        for i in np.flatnonzero(column[rows]).tolist():
            mask[i] = find_untolerated_taint(infos[rows[i]].taints, tolerations) is None
        return mask

    def score_many(self, state: CycleState, pod: Obj, snapshot: Snapshot, rows: IntArray) -> IntArray:
        scores = np.zeros(len(rows), dtype=np.int64)
        cols = snapshot.columns()
        soft = np.flatnonzero(cols.soft_taints[rows]).tolist() if cols.flagged("soft_taints") else []
        if soft:
            try:
                tolerations = cast("list[Obj]", state.read(_PRE_SCORE_KEY))
            except KeyError:
                tolerations = prefer_no_schedule_tolerations(pod_tolerations(pod))
            infos = snapshot.node_infos
            for i in soft:
                scores[i] = count_intolerable_prefer_no_schedule(infos[rows[i]].taints, tolerations)
        return scores

    def normalize_many(self, state: CycleState, pod: Obj, scores: IntArray) -> IntArray:
        return default_normalize_many(scores, reverse=True)


def new(args: dict[str, Any] | None, handle: object) -> TaintToleration:
    """Factory for the registry; TaintToleration takes no arguments."""
    return TaintToleration()
