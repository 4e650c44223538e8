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
from typing import Any

import numpy as np

from cluster.client.selectors import NOTHING, LabelSelector, label_selector_from_dict
from cluster.scheduler.framework import (
    MAX_NODE_SCORE,
    SUCCESS,
    Code,
    CycleState,
    Handle,
    NodeInfo,
    Status,
)

NAME = "InterPodAffinity"
REASON_AFFINITY = "node(s) didn't match pod affinity rules"
REASON_ANTI_AFFINITY = "node(s) didn't match pod anti-affinity rules"
REASON_EXISTING_ANTI_AFFINITY = "node(s) didn't satisfy existing pods anti-affinity rules"

_PRE_FILTER_KEY = "PreFilter" + NAME
_PRE_SCORE_KEY = "PreScore" + NAME

TopologyPair = tuple[str, str]


@dataclass(frozen=True, slots=True)
class AffinityTerm:
    """A pod (anti-)affinity term with its namespaces resolved; ``weight`` is 0 for required terms."""

    namespaces: frozenset[str]
    selector: LabelSelector
    topology_key: str
    namespace_selector: LabelSelector = NOTHING
    weight: int = 0

    def matches(self, pod: Mapping[str, Any], namespace_labels: Mapping[str, str] | None) -> bool:
        """Whether ``pod`` is selected: in a listed (or selected) namespace and with matching labels."""
        meta = pod.get("metadata") or {}
        namespace = meta.get("namespace") or "default"
        in_namespace = namespace in self.namespaces or self.namespace_selector.matches(namespace_labels)
        return in_namespace and self.selector.matches(meta.get("labels"))


def _namespace(pod: Mapping[str, Any]) -> str:
    return str((pod.get("metadata") or {}).get("namespace") or "default")


def _build_term(
    raw: Mapping[str, Any], pod: Mapping[str, Any], weight: int, known: Mapping[str, Mapping[str, str]] | None
) -> AffinityTerm:
    """Resolve one term; with ``known`` namespace labels a non-empty selector is merged into names."""
    namespaces = frozenset(raw.get("namespaces") or ())
    ns_raw = raw.get("namespaceSelector")
    ns_selector = NOTHING if ns_raw is None else label_selector_from_dict(ns_raw)
    if not namespaces and ns_raw is None:
        namespaces = frozenset({_namespace(pod)})
    if known is not None and not ns_selector.empty() and not ns_selector.nothing:
        namespaces |= {name for name, labels in known.items() if ns_selector.matches(labels)}
        ns_selector = NOTHING
    return AffinityTerm(
        namespaces=namespaces,
        selector=label_selector_from_dict(raw.get("labelSelector")),
        topology_key=str(raw.get("topologyKey") or ""),
        namespace_selector=ns_selector,
        weight=weight,
    )


@dataclass(frozen=True, slots=True)
class PodTerms:
    """The four term lists of one pod's ``spec.affinity``."""

    required_affinity: tuple[AffinityTerm, ...] = ()
    required_anti_affinity: tuple[AffinityTerm, ...] = ()
    preferred_affinity: tuple[AffinityTerm, ...] = ()
    preferred_anti_affinity: tuple[AffinityTerm, ...] = ()


def pod_terms(pod: Mapping[str, Any], namespaces: Mapping[str, Mapping[str, str]] | None = None) -> PodTerms:
    """Parse a pod's affinity; pass ``namespaces`` (name -> labels) to merge namespace selectors."""
    affinity = (pod.get("spec") or {}).get("affinity") or {}

    def required(kind: str) -> tuple[AffinityTerm, ...]:
        raw = (affinity.get(kind) or {}).get("requiredDuringSchedulingIgnoredDuringExecution") or []
        return tuple(_build_term(t, pod, 0, namespaces) for t in raw)

    def preferred(kind: str) -> tuple[AffinityTerm, ...]:
        raw = (affinity.get(kind) or {}).get("preferredDuringSchedulingIgnoredDuringExecution") or []
        return tuple(
            _build_term(t.get("podAffinityTerm") or {}, pod, int(t.get("weight") or 0), namespaces)
            for t in raw
        )

    return PodTerms(
        required("podAffinity"),
        required("podAntiAffinity"),
        preferred("podAffinity"),
        preferred("podAntiAffinity"),
    )


def _matches_all(terms: Iterable[AffinityTerm], pod: Mapping[str, Any]) -> bool:
    terms = tuple(terms)
    return bool(terms) and all(t.matches(pod, None) for t in terms)


@dataclass(frozen=True, slots=True)
class PreFilterState:
    terms: PodTerms
    existing_anti_affinity: Counter[TopologyPair] = field(default_factory=Counter)
    affinity: Counter[TopologyPair] = field(default_factory=Counter)
    anti_affinity: Counter[TopologyPair] = field(default_factory=Counter)


def compute_pre_filter_state(
    pod: Mapping[str, Any],
    nodes: Iterable[NodeInfo],
    namespaces: Mapping[str, Mapping[str, str]] | None = None,
) -> PreFilterState:
    """Count the topology pairs Filter needs, over every node of the snapshot."""
    terms = pod_terms(pod, namespaces if namespaces is not None else {})
    own_ns_labels = (namespaces or {}).get(_namespace(pod))
    existing: Counter[TopologyPair] = Counter()
    affinity: Counter[TopologyPair] = Counter()
    anti: Counter[TopologyPair] = Counter()
    for info in nodes:
        labels = info.labels
        for other in info.pods_with_required_anti_affinity:
            for term in pod_terms(other).required_anti_affinity:
                if term.topology_key in labels and term.matches(pod, own_ns_labels):
                    existing[(term.topology_key, labels[term.topology_key])] += 1
        if not terms.required_affinity and not terms.required_anti_affinity:
            continue
        for other in info.pods:
            if _matches_all(terms.required_affinity, other):
                for term in terms.required_affinity:
                    if term.topology_key in labels:
                        affinity[(term.topology_key, labels[term.topology_key])] += 1
            for term in terms.required_anti_affinity:
                if term.topology_key in labels and term.matches(other, None):
                    anti[(term.topology_key, labels[term.topology_key])] += 1
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
    return not state.affinity and _matches_all(state.terms.required_affinity, pod)


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
    own_ns_labels = (namespaces or {}).get(_namespace(pod))
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

    def pre_filter(self, state: CycleState, pod: dict[str, Any], nodes: list[NodeInfo]) -> Status:
        # ``nodes`` is every node of the cycle (preemption passes its simulated copies here).
        if not _has_required_terms(pod):
            nodes = self._relevant(nodes, "anti_affinity_pods")
            if not nodes:
                return Status(Code.SKIP)  # no terms of its own, and no existing pod's can reject it
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

    def pre_score(self, state: CycleState, pod: dict[str, Any], nodes: list[NodeInfo]) -> Status:
        snapshot = self._handle.snapshot()
        all_nodes = snapshot.node_infos if len(snapshot) else nodes
        if not _has_preferred_terms(pod):
            # Only existing pods' own terms can score: only nodes with such pods matter.
            all_nodes = self._relevant(all_nodes, "affinity_pods")
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
