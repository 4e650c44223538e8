"""InterPodAffinity: place pods relative to other pods by topology (kube-scheduler's plugin).

PreFilter counts, per topology pair ``(key, value)``: the existing pods whose *required anti-affinity*
terms match the incoming pod, and the existing pods matching the incoming pod's required affinity
(all terms at once) and each of its required anti-affinity terms. Filter then rejects a node when

* an affinity term's topology key is missing, or no matching pod shares the node's domain
  ("node(s) didn't match pod affinity rules", unresolvable) -- unless no pod in the cluster matches
  and the pod matches its own terms (the first pod of a group),
* a matching pod shares a domain named by one of the pod's anti-affinity terms
  ("node(s) didn't match pod anti-affinity rules"),
* an existing pod's anti-affinity forbids the node's domain
  ("node(s) didn't satisfy existing pods anti-affinity rules").

PreScore/Score sum weighted preferred terms (the pod's and the existing pods', plus the existing pods'
required affinity at ``hardPodAffinityWeight``) per topology pair; NormalizeScore maps min..max to
0..100. Namespaces: a term without ``namespaces`` and ``namespaceSelector`` means the pod's own
namespace; ``namespaceSelector: {}`` means all namespaces; other selectors need namespace labels, read
from ``handle.namespaces()`` when the handle offers it (otherwise they match no namespace).
Invariants: pure; the state written to the CycleState is never mutated after PreFilter/PreScore.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np

from cluster.scheduler.framework import (
    MAX_NODE_SCORE,
    SUCCESS,
    Code,
    CycleState,
    Handle,
    NodeInfo,
    Snapshot,
    Status,
)
from cluster.scheduler.framework.columns import BoolArray, IntArray, NodeColumns, take
from cluster.scheduler.plugins.affinity_terms import (
    MEMO,
    SUMMARIES,
    AffinityTerm,
    PodTerms,
    TopologyPair,
    matches_all,
    namespace_of,
    pod_terms,
)

NAME = "InterPodAffinity"
REASON_AFFINITY = "node(s) didn't match pod affinity rules"
REASON_ANTI_AFFINITY = "node(s) didn't match pod anti-affinity rules"
REASON_EXISTING_ANTI_AFFINITY = "node(s) didn't satisfy existing pods anti-affinity rules"

_PRE_FILTER_KEY = "PreFilter" + NAME
_PRE_SCORE_KEY = "PreScore" + NAME
_FILTER_TABLES_KEY = "FilterTables" + NAME


@dataclass(frozen=True, slots=True)
class PreFilterState:
    terms: PodTerms
    existing_anti_affinity: Counter[TopologyPair] = field(default_factory=Counter)
    affinity: Counter[TopologyPair] = field(default_factory=Counter)
    anti_affinity: Counter[TopologyPair] = field(default_factory=Counter)


def _existing_pairs(info: NodeInfo, pod: Mapping[str, Any], signature: int) -> list[TopologyPair]:
    """The topology pairs of ``info``'s pods' required anti-affinity terms that select ``pod``."""
    cached = SUMMARIES.get(info, signature)
    if cached is not None:
        return cast("list[TopologyPair]", cached)
    labels = info.labels
    pairs = []
    for other in info.pods_with_required_anti_affinity:
        for term in pod_terms(other).required_anti_affinity:
            value = labels.get(term.topology_key)
            if value is not None and MEMO.matches(term, id(term), pod, signature):
                pairs.append((term.topology_key, value))
    return cast("list[TopologyPair]", SUMMARIES.put(info, signature, pairs))


def _matching_counts(info: NodeInfo, terms: PodTerms, key: int) -> tuple[int, list[int]]:
    """(pods matching every required affinity term, pods matching each required anti term)."""
    cached = SUMMARIES.get(info, key)
    if cached is not None:
        return cast("tuple[int, list[int]]", cached)
    all_affinity = 0
    per_anti = [0] * len(terms.required_anti_affinity)
    for other in info.pods:
        if matches_all(terms.required_affinity, other):
            all_affinity += 1
        for i, term in enumerate(terms.required_anti_affinity):
            if term.matches(other, None):
                per_anti[i] += 1
    return cast("tuple[int, list[int]]", SUMMARIES.put(info, key, (all_affinity, per_anti)))


def compute_pre_filter_state(
    pod: Mapping[str, Any],
    nodes: Iterable[NodeInfo],
    namespaces: Mapping[str, Mapping[str, str]] | None = None,
) -> PreFilterState:
    """Count the topology pairs Filter needs, over every node of the snapshot."""
    terms = pod_terms(pod, namespaces if namespaces is not None else {})
    own_ns_labels = (namespaces or {}).get(namespace_of(pod))
    existing: Counter[TopologyPair] = Counter()
    affinity: Counter[TopologyPair] = Counter()
    anti: Counter[TopologyPair] = Counter()
    memoized = own_ns_labels is None  # namespace selectors need the live namespace labels
    signature = MEMO.signature_id(pod)
    own_terms = terms.required_affinity or terms.required_anti_affinity
    # The incoming pod's own terms, by value: equal terms of two pods share per-node summaries.
    # The incoming pod's own terms, by value: equal terms of two pods share per-node summaries.
    terms_key = MEMO.term_set_id((terms.required_affinity, terms.required_anti_affinity))
    for info in nodes:
        labels = info.labels
        if info.pods_with_required_anti_affinity:
            if memoized:
                existing.update(_existing_pairs(info, pod, signature))
            else:
                for other in info.pods_with_required_anti_affinity:
                    for term in pod_terms(other).required_anti_affinity:
                        value = labels.get(term.topology_key)
                        if value is not None and term.matches(pod, own_ns_labels):
                            existing[(term.topology_key, value)] += 1
        if not own_terms or not info.pods:
            continue
        all_affinity, per_anti = _matching_counts(info, terms, terms_key)
        if all_affinity:
            for term in terms.required_affinity:
                if term.topology_key in labels:
                    affinity[(term.topology_key, labels[term.topology_key])] += all_affinity
        for term, count in zip(terms.required_anti_affinity, per_anti, strict=True):
            value = labels.get(term.topology_key)
            if count and value is not None:
                anti[(term.topology_key, value)] += count
    return PreFilterState(terms, existing, affinity, anti)


def _satisfies_affinity(state: PreFilterState, pod: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    pods_exist = True
    for term in state.terms.required_affinity:
        if term.topology_key not in labels:
            return False
        if state.affinity[(term.topology_key, labels[term.topology_key])] <= 0:
            pods_exist = False
    if pods_exist:
        return True
    # The first pod of a group with affinity to itself: nothing matches anywhere yet.
    return not state.affinity and matches_all(state.terms.required_affinity, pod)


def filter_node(state: PreFilterState, pod: Mapping[str, Any], labels: Mapping[str, str]) -> Status:
    """Filter's decision for a node with these labels, given the PreFilter counts."""
    if not _satisfies_affinity(state, pod, labels):
        return Status.unschedulable(REASON_AFFINITY, resolvable=False)
    if state.anti_affinity:
        for term in state.terms.required_anti_affinity:
            value = labels.get(term.topology_key)
            if value is not None and state.anti_affinity[(term.topology_key, value)] > 0:
                return Status.unschedulable(REASON_ANTI_AFFINITY)
    existing = state.existing_anti_affinity
    if existing and any(existing[pair] > 0 for pair in labels.items()):
        return Status.unschedulable(REASON_EXISTING_ANTI_AFFINITY)
    return SUCCESS


def _value_table(
    cache: dict[tuple[str, str], BoolArray],
    which: str,
    counts: Mapping[TopologyPair, int],
    key: str,
    cols: NodeColumns,
) -> BoolArray:
    """A lookup table over label ``key``'s codes: True for values with a positive count. Its last
    slot stands for code -1 (no such label) and is False. Built once per cycle and key."""
    table = cache.get((which, key))
    if table is None:
        vocabulary = cols.label_codes(key)[1]
        table = np.zeros(len(vocabulary) + 1, dtype=np.bool_)
        for (k, value), count in counts.items():
            if k == key and count > 0 and value in vocabulary:
                table[vocabulary[value]] = True
        cache[(which, key)] = table
    return table


def filter_many(
    state: PreFilterState,
    pod: Mapping[str, Any],
    cols: NodeColumns,
    rows: IntArray,
    cache: dict[tuple[str, str], BoolArray] | None = None,
) -> BoolArray:
    """``filter_node(...).is_success()`` for each row, with label lookups as array lookups.
    ``cache`` (one per cycle) keeps the per-key lookup tables between calls."""
    tables = cache if cache is not None else {}
    passing = np.ones(len(rows), dtype=np.bool_)
    required = state.terms.required_affinity
    if required:
        has_all = np.ones(len(rows), dtype=np.bool_)
        exist = np.ones(len(rows), dtype=np.bool_)
        for term in required:
            key = term.topology_key
            codes = take(cols.label_codes(key)[0], rows)
            has_all &= codes >= 0
            exist &= _value_table(tables, "affinity", state.affinity, key, cols)[codes]
        # The first pod of a group with affinity to itself passes where the keys exist.
        first_of_group = not state.affinity and matches_all(required, pod)
        passing &= has_all & (exist | first_of_group)
    if state.anti_affinity:
        for term in state.terms.required_anti_affinity:
            key = term.topology_key
            table = _value_table(tables, "anti", state.anti_affinity, key, cols)
            passing &= ~table[take(cols.label_codes(key)[0], rows)]
    existing = state.existing_anti_affinity
    keys = tables.get(("existing-keys", ""))
    if keys is None:
        keys = tables[("existing-keys", "")] = np.array(
            sorted({k for (k, _), c in existing.items() if c > 0})
        )
    for key in keys.tolist():
        table = _value_table(tables, "existing", existing, key, cols)
        passing &= ~table[take(cols.label_codes(key)[0], rows)]
    return passing


def score_many(topology_scores: Mapping[TopologyPair, int], cols: NodeColumns, rows: IntArray) -> IntArray:
    """``score_node`` for each row: the summed weights of the topology pairs the node has."""
    totals = np.zeros(len(rows), dtype=np.int64)
    for key in {k for k, _ in topology_scores}:
        codes, vocabulary = cols.label_codes(key)
        table = np.zeros(len(vocabulary) + 1, dtype=np.int64)  # the last slot is code -1 (no label)
        for (k, value), weight in topology_scores.items():
            if k == key and value in vocabulary:
                table[vocabulary[value]] = weight
        totals += table[take(codes, rows)]
    return totals


def normalize_many(scores: IntArray) -> IntArray:
    """``normalize`` over an array: the same integers (float division, truncated)."""
    if not len(scores):
        return scores
    low, high = int(scores.min()), int(scores.max())
    if high <= low:
        return np.zeros(len(scores), dtype=np.int64)
    result: IntArray = (MAX_NODE_SCORE * (scores - low) / (high - low)).astype(np.int64)
    return result


def compute_topology_scores(
    pod: Mapping[str, Any],
    nodes: Iterable[NodeInfo],
    *,
    hard_pod_affinity_weight: int = 1,
    ignore_preferred_terms_of_existing_pods: bool = False,
    namespaces: Mapping[str, Mapping[str, str]] | None = None,
) -> dict[TopologyPair, int]:
    """PreScore: the summed weights per topology pair, over all nodes and their pods."""
    terms = pod_terms(pod, namespaces if namespaces is not None else {})
    own_ns_labels = (namespaces or {}).get(namespace_of(pod))
    has_constraints = bool(terms.preferred_affinity or terms.preferred_anti_affinity)
    scores: Counter[TopologyPair] = Counter()

    def add(term: AffinityTerm, weight: int, target: Mapping[str, Any], ns_labels: Any, labels: Any) -> None:
        if term.topology_key in labels and term.matches(target, ns_labels):
            scores[(term.topology_key, labels[term.topology_key])] += weight

    for info in nodes:
        labels = info.labels
        if not labels:
            continue
        existing_pods = info.pods if has_constraints else info.pods_with_affinity
        for other in existing_pods:
            for term in terms.preferred_affinity:
                add(term, term.weight, other, None, labels)
            for term in terms.preferred_anti_affinity:
                add(term, -term.weight, other, None, labels)
            theirs = pod_terms(other)
            if hard_pod_affinity_weight > 0:
                for term in theirs.required_affinity:
                    add(term, hard_pod_affinity_weight, pod, own_ns_labels, labels)
            if not ignore_preferred_terms_of_existing_pods:
                for term in theirs.preferred_affinity:
                    add(term, term.weight, pod, own_ns_labels, labels)
                for term in theirs.preferred_anti_affinity:
                    add(term, -term.weight, pod, own_ns_labels, labels)
    return {pair: value for pair, value in scores.items() if value != 0}


def score_node(topology_scores: Mapping[TopologyPair, int], labels: Mapping[str, str]) -> int:
    return sum(topology_scores.get(pair, 0) for pair in labels.items())


def normalize(scores: dict[str, int]) -> None:
    """Map the raw scores linearly onto 0..MAX_NODE_SCORE (all zero when they are all equal)."""
    if not scores:
        return
    low, high = min(scores.values()), max(scores.values())
    for name, value in scores.items():
        scores[name] = int(MAX_NODE_SCORE * (value - low) / (high - low)) if high > low else 0


def namespace_labels_from(handle: Handle) -> dict[str, dict[str, str]] | None:
    """Namespace name -> labels when the handle offers ``namespaces()``; ``None`` when it does not."""
    lister = getattr(handle, "namespaces", None)
    if not callable(lister):
        return None
    result: dict[str, dict[str, str]] = {}
    for ns in lister():
        meta = ns.get("metadata") or {}
        result[str(meta.get("name", ""))] = dict(meta.get("labels") or {})
    return result


def _affinity_kinds(pod: Mapping[str, Any]) -> tuple[Mapping[str, Any], ...]:
    affinity = (pod.get("spec") or {}).get("affinity") or {}
    return tuple(affinity.get(kind) or {} for kind in ("podAffinity", "podAntiAffinity"))


def _has_required_terms(pod: Mapping[str, Any]) -> bool:
    return any(kind.get("requiredDuringSchedulingIgnoredDuringExecution") for kind in _affinity_kinds(pod))


def _has_preferred_terms(pod: Mapping[str, Any]) -> bool:
    return any(kind.get("preferredDuringSchedulingIgnoredDuringExecution") for kind in _affinity_kinds(pod))


class InterPodAffinity:
    """PreFilter, Filter, PreScore, Score and NormalizeScore for pod (anti-)affinity."""

    NAME = NAME

    def __init__(self, args: Mapping[str, Any], handle: Handle) -> None:
        self._handle = handle
        self.hard_pod_affinity_weight = int(args.get("hardPodAffinityWeight", 1))
        if not 0 <= self.hard_pod_affinity_weight <= 100:
            raise ValueError("hardPodAffinityWeight: must be in the range 0-100")
        self.ignore_preferred_terms_of_existing_pods = bool(args.get("ignorePreferredTermsOfExistingPods"))

    def name(self) -> str:
        return NAME

    def _relevant(self, nodes: list[NodeInfo], flag: str) -> list[NodeInfo]:
        """``nodes``, or only those whose column ``flag`` is set when ``nodes`` is the snapshot's own
        list (the others cannot contribute): one array scan instead of a Python loop over nodes."""
        snapshot = self._handle.snapshot()
        if nodes is not snapshot.node_infos:
            return nodes
        cols = snapshot.columns()
        if not cols.flagged(flag):
            return []
        return [nodes[row] for row in np.flatnonzero(getattr(cols, flag)).tolist()]

    def _with_pods(self, nodes: list[NodeInfo]) -> list[NodeInfo]:
        """``nodes`` without the empty ones (which count for nothing), via the columns when
        ``nodes`` is the snapshot's own list."""
        snapshot = self._handle.snapshot()
        if nodes is not snapshot.node_infos:
            return nodes
        return [nodes[row] for row in np.flatnonzero(snapshot.columns().pod_count).tolist()]

    def pre_filter(self, state: CycleState, pod: dict[str, Any], nodes: list[NodeInfo]) -> Status:
        # ``nodes`` is every node of the cycle (preemption passes its simulated copies here).
        if not _has_required_terms(pod):
            nodes = self._relevant(nodes, "anti_affinity_pods")
            if not nodes:
                return Status(Code.SKIP)  # no terms of its own, and no existing pod's can reject it
        else:
            nodes = self._with_pods(nodes)
        computed = compute_pre_filter_state(pod, nodes, namespace_labels_from(self._handle))
        terms = computed.terms
        if not (terms.required_affinity or terms.required_anti_affinity or computed.existing_anti_affinity):
            return Status(Code.SKIP)
        state.write(_PRE_FILTER_KEY, computed)
        return SUCCESS

    def filter(self, state: CycleState, pod: dict[str, Any], node: NodeInfo) -> Status:
        try:
            computed = state.read(_PRE_FILTER_KEY)
        except KeyError:
            return Status.error(f"{NAME}: PreFilter state not found")
        assert isinstance(computed, PreFilterState)
        return filter_node(computed, pod, node.labels)

    def filter_many(
        self, state: CycleState, pod: dict[str, Any], snapshot: Snapshot, rows: IntArray
    ) -> BoolArray | None:
        try:
            computed = state.read(_PRE_FILTER_KEY)
        except KeyError:
            return None
        assert isinstance(computed, PreFilterState)
        try:
            tables = state.read(_FILTER_TABLES_KEY)
        except KeyError:
            tables = {}
            state.write(_FILTER_TABLES_KEY, tables)
        return filter_many(computed, pod, snapshot.columns(), rows, tables)  # type: ignore[arg-type]

    def pre_score(self, state: CycleState, pod: dict[str, Any], nodes: list[NodeInfo]) -> Status:
        snapshot = self._handle.snapshot()
        all_nodes = snapshot.node_infos if len(snapshot) else nodes
        if not _has_preferred_terms(pod):
            # Only existing pods' own terms can score: only nodes with such pods matter.
            all_nodes = self._relevant(all_nodes, "scoring_affinity_pods")
            if not all_nodes:
                return Status(Code.SKIP)
        state.write(
            _PRE_SCORE_KEY,
            compute_topology_scores(
                pod,
                all_nodes,
                hard_pod_affinity_weight=self.hard_pod_affinity_weight,
                ignore_preferred_terms_of_existing_pods=self.ignore_preferred_terms_of_existing_pods,
                namespaces=namespace_labels_from(self._handle),
            ),
        )
        return SUCCESS

    def score(self, state: CycleState, pod: dict[str, Any], node: NodeInfo) -> tuple[int, Status]:
        try:
            topology_scores = state.read(_PRE_SCORE_KEY)
        except KeyError:
            return 0, Status.error(f"{NAME}: PreScore state not found")
        assert isinstance(topology_scores, dict)
        return score_node(topology_scores, node.labels), SUCCESS

    def score_many(
        self, state: CycleState, pod: dict[str, Any], snapshot: Snapshot, rows: IntArray
    ) -> IntArray | None:
        try:
            topology_scores = state.read(_PRE_SCORE_KEY)
        except KeyError:
            return None
        assert isinstance(topology_scores, dict)
        return score_many(topology_scores, snapshot.columns(), rows)

    def normalize_many(self, state: CycleState, pod: dict[str, Any], scores: IntArray) -> IntArray:
        try:
            topology_scores = state.read(_PRE_SCORE_KEY)
        except KeyError:
            return scores
        return normalize_many(scores) if topology_scores else scores

    def normalize_score(self, state: CycleState, pod: dict[str, Any], scores: dict[str, int]) -> Status:
        try:
            topology_scores = state.read(_PRE_SCORE_KEY)
        except KeyError:
            return SUCCESS
        if topology_scores:
            normalize(scores)
        return SUCCESS


def new(args: dict[str, Any], handle: Handle) -> InterPodAffinity:
    return InterPodAffinity(args or {}, handle)
