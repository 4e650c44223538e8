"""Pod (anti-)affinity terms for InterPodAffinity: parsing, and the caches that keep matching cheap.

``pod_terms`` parses a pod's four term lists (cached per pod object: objects are never mutated, and the
cache keeps the pod alive so its id cannot be reused). ``MatchMemo`` remembers whether a term selects a
pod across scheduling cycles; ``NodeSummaries`` remembers per-node results while the node's pods do not
change (``NodeInfo.generation``). Both are bounded and never reuse an id after a clear. Pure: no I/O.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cluster.machinery.labels import NOTHING, LabelSelector, label_selector_from_dict
from cluster.scheduler.framework import NodeInfo

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


def namespace_of(pod: Mapping[str, Any]) -> str:
    return str((pod.get("metadata") or {}).get("namespace") or "default")


def _build_term(
    raw: Mapping[str, Any], pod: Mapping[str, Any], weight: int, known: Mapping[str, Mapping[str, str]] | None
) -> AffinityTerm:
    """Resolve one term; with ``known`` namespace labels a non-empty selector is merged into names."""
    namespaces = frozenset(raw.get("namespaces") or ())
    ns_raw = raw.get("namespaceSelector")
    ns_selector = NOTHING if ns_raw is None else label_selector_from_dict(ns_raw)
    if not namespaces and ns_raw is None:
        namespaces = frozenset({namespace_of(pod)})
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


_EMPTY_TERMS = PodTerms()
# Parsed terms of existing pods, keyed by the pod object's identity (objects are never mutated; the
# entry keeps the pod alive so its id cannot be reused). Every cycle of a pod with anti-affinity reads
# every existing anti-affinity pod's terms; parsing them each time dominated.
_TERMS_CACHE: dict[int, tuple[object, PodTerms]] = {}
_TERMS_CACHE_LIMIT = 16384


def pod_terms(pod: Mapping[str, Any], namespaces: Mapping[str, Mapping[str, str]] | None = None) -> PodTerms:
    """Parse a pod's affinity; pass ``namespaces`` (name -> labels) to merge namespace selectors."""
    if not namespaces:
        hit = _TERMS_CACHE.get(id(pod))
        if hit is not None and hit[0] is pod:
            return hit[1]
    affinity = (pod.get("spec") or {}).get("affinity") or {}
    if not affinity.get("podAffinity") and not affinity.get("podAntiAffinity"):
        return _EMPTY_TERMS
    if namespaces:
        return _parse_terms(pod, affinity, namespaces)
    if len(_TERMS_CACHE) >= _TERMS_CACHE_LIMIT:
        _TERMS_CACHE.clear()
    terms = _parse_terms(pod, affinity, None)
    _TERMS_CACHE[id(pod)] = (pod, terms)
    return terms


def _parse_terms(
    pod: Mapping[str, Any], affinity: Mapping[str, Any], namespaces: Mapping[str, Mapping[str, str]] | None
) -> PodTerms:

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


def matches_all(terms: Iterable[AffinityTerm], pod: Mapping[str, Any]) -> bool:
    terms = tuple(terms)
    return bool(terms) and all(t.matches(pod, None) for t in terms)


class MatchMemo:
    """Remembers ``term.matches(pod, None)`` across cycles. Terms are interned by value and pods
    are keyed by identity (never mutated; the memo keeps them alive), so one existing pod is matched
    against one term once, not once per cycle; the incoming pod is keyed by its namespace and labels.
    Bounded: cleared when it grows past ``limit`` entries."""

    def __init__(self, limit: int = 200_000) -> None:
        self._terms: dict[AffinityTerm, int] = {}
        self._term_sets: dict[tuple[tuple[AffinityTerm, ...], ...], int] = {}
        # Ids are never reused (per-node summaries keyed by an id may outlive a clear).
        self._next = itertools.count()
        self._signatures: dict[tuple[str, tuple[tuple[str, str], ...]], int] = {}
        self._results: dict[tuple[int, int], tuple[object, bool, object]] = {}
        self._limit = limit

    def term_set_id(self, terms: tuple[tuple[AffinityTerm, ...], ...]) -> int:
        """An id for a set of terms by value, distinct from every ``signature_id``/``term_id``."""
        found = self._term_sets.get(terms)
        if found is None:
            found = self._term_sets[terms] = (1 << 40) + next(self._next)
        return found

    def term_id(self, term: AffinityTerm) -> int:
        """A small id shared by equal terms (for terms of a new pod each cycle)."""
        found = self._terms.get(term)
        if found is None:
            found = self._terms[term] = next(self._next)
        return found

    def signature_id(self, pod: Mapping[str, Any]) -> int:
        labels = (pod.get("metadata") or {}).get("labels") or {}
        key = (namespace_of(pod), tuple(sorted(labels.items())))
        found = self._signatures.get(key)
        if found is None:
            found = self._signatures[key] = -1 - next(self._next)
        return found

    def matches(self, term: AffinityTerm, term_id: int, pod: Mapping[str, Any], pod_id: int) -> bool:
        """``term.matches(pod, None)``. ``term_id`` is a ``term_id`` or, for a term that lives as
        long as its (cached) pod, ``id(term)``; ``pod_id`` is ``id(pod)`` or a ``signature_id``.
        Entries are checked against the pod (by identity) and the term (by value) they were made for."""
        hit = self._results.get((term_id, pod_id))
        if hit is not None and (pod_id < 0 or hit[0] is pod) and (hit[2] is term or hit[2] == term):
            return hit[1]
        if len(self._results) >= self._limit:
            self._results.clear()
            self._terms.clear()
            self._term_sets.clear()
            self._signatures.clear()
            return term.matches(pod, None)
        result = term.matches(pod, None)
        self._results[(term_id, pod_id)] = (pod, result, term)
        return result


MEMO = MatchMemo()


class NodeSummaries:
    """Per-node results of the PreFilter loop, valid while the node's pods do not change.

    Keyed by the ``NodeInfo``'s identity and ``generation`` plus what the result depends on (the
    incoming pod's namespace and labels, or its terms); so a cycle costs one lookup per node with
    pods instead of one match per pod. Bounded: cleared past ``limit`` entries."""

    def __init__(self, limit: int = 100_000) -> None:
        self._entries: dict[tuple[int, int, int], tuple[NodeInfo, Any]] = {}
        self._limit = limit

    def get(self, info: NodeInfo, key: int) -> Any:
        hit = self._entries.get((id(info), info.generation, key))
        return hit[1] if hit is not None and hit[0] is info else None

    def put(self, info: NodeInfo, key: int, value: Any) -> Any:
        if len(self._entries) >= self._limit:
            self._entries.clear()
        self._entries[(id(info), info.generation, key)] = (info, value)
        return value


SUMMARIES = NodeSummaries()
