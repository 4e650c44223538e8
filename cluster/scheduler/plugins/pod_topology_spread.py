"""PodTopologySpread: spread matching pods evenly across topology domains (kube-scheduler's plugin).

Filter (``whenUnsatisfiable: DoNotSchedule`` constraints): PreFilter counts the pods matching each
constraint's selector (same namespace, not terminating) per domain, over the *eligible* nodes -- nodes
carrying every constraint's topology key and passing the node inclusion policies
(``nodeAffinityPolicy`` Honor and ``nodeTaintsPolicy`` Ignore by default). A node passes when
``count(domain) + selfMatch - globalMin <= maxSkew``, where ``globalMin`` is 0 while fewer than
``minDomains`` domains exist. Missing topology label: "node(s) didn't match pod topology spread
constraints (missing required label)", unresolvable; too much skew: "node(s) didn't match pod
topology spread constraints".

Score (``ScheduleAnyway`` constraints): per constraint ``count * log(domains + 2) + maxSkew - 1``,
summed, rounded, then normalized so the least crowded node gets 100.

Defaulting: a pod without constraints gets the cluster defaults (``defaultingType: System`` = hostname
maxSkew 3 and zone maxSkew 5, both ScheduleAnyway; ``List`` = ``defaultConstraints``) with the selector
of the services, replication controller, replica set or stateful set that own it, read from the
handle's optional ``services()``, ``replication_controllers()``, ``replica_sets()``, ``stateful_sets()``;
no selector, no defaults. Invariants: pure; CycleState values are not mutated after they are written.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cluster.machinery.labels import LabelSelector, Requirement, label_selector_from_dict
from cluster.scheduler.framework import MAX_NODE_SCORE, SUCCESS, Code, CycleState, Handle, NodeInfo, Status
from cluster.scheduler.plugins.node_affinity import pod_matches_node
from cluster.scheduler.plugins.taint_toleration import find_untolerated_taint, pod_tolerations

NAME = "PodTopologySpread"
REASON_CONSTRAINTS_NOT_MATCH = "node(s) didn't match pod topology spread constraints"
REASON_NODE_LABEL_NOT_MATCH = REASON_CONSTRAINTS_NOT_MATCH + " (missing required label)"
HOSTNAME = "kubernetes.io/hostname"
ZONE = "topology.kubernetes.io/zone"
DO_NOT_SCHEDULE = "DoNotSchedule"
SCHEDULE_ANYWAY = "ScheduleAnyway"
SYSTEM_DEFAULT_CONSTRAINTS: tuple[dict[str, Any], ...] = (
    {"maxSkew": 3, "topologyKey": HOSTNAME, "whenUnsatisfiable": SCHEDULE_ANYWAY},
    {"maxSkew": 5, "topologyKey": ZONE, "whenUnsatisfiable": SCHEDULE_ANYWAY},
)

_PRE_FILTER_KEY = "PreFilter" + NAME
_PRE_SCORE_KEY = "PreScore" + NAME


@dataclass(frozen=True, slots=True)
class Constraint:
    """One topology spread constraint with its selector resolved."""

    max_skew: int
    topology_key: str
    selector: LabelSelector
    min_domains: int = 1
    node_affinity_policy: str = "Honor"
    node_taints_policy: str = "Ignore"

    def includes(self, pod: Mapping[str, Any], node: NodeInfo) -> bool:
        """The node inclusion policies: whether the node's domain counts for this constraint."""
        if self.node_affinity_policy == "Honor" and not pod_matches_node(dict(pod), node.labels, node.name):
            return False
        return not (
            self.node_taints_policy == "Honor"
            and find_untolerated_taint(node.taints, pod_tolerations(dict(pod))) is not None
        )


def _labels(obj: Mapping[str, Any]) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("labels") or {})


def _namespace(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("namespace") or "default")


def parse_constraints(
    raw: Iterable[Mapping[str, Any]],
    pod: Mapping[str, Any],
    action: str,
    selector: LabelSelector | None = None,
) -> list[Constraint]:
    """The constraints with ``whenUnsatisfiable == action``; ``selector`` overrides (for defaults)."""
    pod_labels = _labels(pod)
    out = []
    for c in raw:
        if (c.get("whenUnsatisfiable") or DO_NOT_SCHEDULE) != action:
            continue
        sel = selector if selector is not None else label_selector_from_dict(c.get("labelSelector"))
        extra = tuple(
            Requirement(key, "In", (pod_labels[key],))
            for key in c.get("matchLabelKeys") or ()
            if key in pod_labels
        )
        if extra and not sel.nothing:
            sel = LabelSelector(sel.requirements + extra)
        out.append(
            Constraint(
                max_skew=int(c.get("maxSkew") or 1),
                topology_key=str(c.get("topologyKey") or ""),
                selector=sel,
                min_domains=int(c.get("minDomains") or 1),
                node_affinity_policy=str(c.get("nodeAffinityPolicy") or "Honor"),
                node_taints_policy=str(c.get("nodeTaintsPolicy") or "Ignore"),
            )
        )
    return out


def _controller(pod: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for ref in (pod.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return dict(ref)
    return None


def _list(handle: object, method: str, namespace: str) -> list[dict[str, Any]]:
    lister = getattr(handle, method, None)
    if not callable(lister):
        return []
    return [obj for obj in lister() if _namespace(obj) == namespace]


def default_selector(pod: Mapping[str, Any], handle: object) -> LabelSelector:
    """kube-scheduler's DefaultSelector: services' selectors merged, plus the controller's selector."""
    namespace, pod_labels = _namespace(pod), _labels(pod)
    merged: dict[str, str] = {}
    for service in _list(handle, "services", namespace):
        selector = (service.get("spec") or {}).get("selector") or {}
        if selector and all(pod_labels.get(k) == v for k, v in selector.items()):
            merged.update(selector)
    extra: tuple[Requirement, ...] = ()
    owner = _controller(pod)
    if owner is not None:
        kind, api_version, name = owner.get("kind"), owner.get("apiVersion"), owner.get("name")
        method = {
            ("v1", "ReplicationController"): "replication_controllers",
            ("apps/v1", "ReplicaSet"): "replica_sets",
            ("apps/v1", "StatefulSet"): "stateful_sets",
        }.get((str(api_version), str(kind)))
        found = (
            [o for o in _list(handle, method, namespace) if o["metadata"].get("name") == name]
            if method
            else []
        )
        if found and kind == "ReplicationController":
            merged.update((found[0].get("spec") or {}).get("selector") or {})
        elif found:
            extra = label_selector_from_dict((found[0].get("spec") or {}).get("selector") or {}).requirements
    base = tuple(Requirement(k, "Equals", (v,)) for k, v in sorted(merged.items()))
    return LabelSelector(base + extra)


def count_matching(pods: Iterable[Mapping[str, Any]], selector: LabelSelector, namespace: str) -> int:
    """Pods in ``namespace``, not being deleted, whose labels match ``selector``."""
    return sum(
        1
        for p in pods
        if not (p.get("metadata") or {}).get("deletionTimestamp")
        and _namespace(p) == namespace
        and selector.matches(_labels(p))
    )


def _has_all_keys(labels: Mapping[str, str], constraints: Iterable[Constraint]) -> bool:
    return all(c.topology_key in labels for c in constraints)


@dataclass(frozen=True, slots=True)
class PreFilterState:
    constraints: list[Constraint]
    match_num: list[dict[str, int]] = field(default_factory=list)  # per constraint: domain -> count

    def min_match_num(self, i: int) -> int:
        counts = self.match_num[i]
        if len(counts) < self.constraints[i].min_domains:
            return 0
        return min(counts.values())


def compute_pre_filter_state(
    pod: Mapping[str, Any], constraints: list[Constraint], nodes: Iterable[NodeInfo]
) -> PreFilterState:
    match_num: list[dict[str, int]] = [{} for _ in constraints]
    namespace = _namespace(pod)
    for info in nodes:
        labels = info.labels
        if not _has_all_keys(labels, constraints):
            continue
        for i, c in enumerate(constraints):
            if not c.includes(pod, info):
                continue
            value = labels[c.topology_key]
            match_num[i][value] = match_num[i].get(value, 0) + count_matching(
                info.pods, c.selector, namespace
            )
    return PreFilterState(constraints, match_num)


def filter_node(state: PreFilterState, pod: Mapping[str, Any], labels: Mapping[str, str]) -> Status:
    pod_labels = _labels(pod)
    for i, c in enumerate(state.constraints):
        value = labels.get(c.topology_key)
        if value is None:
            return Status.unschedulable(REASON_NODE_LABEL_NOT_MATCH, resolvable=False)
        self_match = 1 if c.selector.matches(pod_labels) else 0
        skew = state.match_num[i].get(value, 0) + self_match - state.min_match_num(i)
        if skew > c.max_skew:
            return Status.unschedulable(REASON_CONSTRAINTS_NOT_MATCH)
    return SUCCESS


@dataclass(frozen=True, slots=True)
class PreScoreState:
    constraints: list[Constraint]
    ignored_nodes: frozenset[str]
    pod_counts: list[dict[str, int]]  # per constraint (hostname constraints are counted in Score)
    weights: list[float]


def compute_pre_score_state(
    pod: Mapping[str, Any],
    constraints: list[Constraint],
    filtered: list[NodeInfo],
    all_nodes: Iterable[NodeInfo],
    *,
    require_all_topologies: bool,
) -> PreScoreState:
    ignored: set[str] = set()
    pod_counts: list[dict[str, int]] = [{} for _ in constraints]
    for info in filtered:
        labels = info.labels
        if require_all_topologies and not _has_all_keys(labels, constraints):
            ignored.add(info.name)
            continue
        for i, c in enumerate(constraints):
            if c.topology_key != HOSTNAME:
                pod_counts[i].setdefault(labels.get(c.topology_key, ""), 0)
    weights = []
    for i, c in enumerate(constraints):
        size = len(filtered) - len(ignored) if c.topology_key == HOSTNAME else len(pod_counts[i])
        weights.append(math.log(size + 2))
    namespace = _namespace(pod)
    for info in all_nodes:
        labels = info.labels
        if require_all_topologies and not _has_all_keys(labels, constraints):
            continue
        for i, c in enumerate(constraints):
            value = labels.get(c.topology_key, "")
            if value not in pod_counts[i] or not c.includes(pod, info):
                continue
            pod_counts[i][value] += count_matching(info.pods, c.selector, namespace)
    return PreScoreState(constraints, frozenset(ignored), pod_counts, weights)


def score_node(state: PreScoreState, pod: Mapping[str, Any], node: NodeInfo) -> int:
    if node.name in state.ignored_nodes:
        return 0
    labels, total = node.labels, 0.0
    for i, c in enumerate(state.constraints):
        value = labels.get(c.topology_key)
        if value is None:
            continue
        if c.topology_key == HOSTNAME:
            count = count_matching(node.pods, c.selector, _namespace(pod))
        else:
            count = state.pod_counts[i].get(value, 0)
        total += count * state.weights[i] + (c.max_skew - 1)
    return math.floor(total + 0.5)


def normalize(state: PreScoreState, scores: dict[str, int]) -> None:
    """Fewer matching pods -> higher score; ignored nodes get 0."""
    valid = [s for name, s in scores.items() if name not in state.ignored_nodes]
    low, high = (min(valid), max(valid)) if valid else (0, 0)
    for name, value in scores.items():
        if name in state.ignored_nodes:
            scores[name] = 0
        elif high == 0:
            scores[name] = MAX_NODE_SCORE
        else:
            scores[name] = MAX_NODE_SCORE * (high + low - value) // high


class PodTopologySpread:
    """PreFilter, Filter, PreScore, Score and NormalizeScore for topology spread constraints."""

    NAME = NAME

    def __init__(self, args: Mapping[str, Any], handle: Handle) -> None:
        self._handle = handle
        defaulting = args.get("defaultingType") or "System"
        if defaulting not in ("System", "List"):
            raise ValueError(f"defaultingType: unsupported value {defaulting!r}")
        listed = list(args.get("defaultConstraints") or [])
        if defaulting == "System" and listed:
            raise ValueError("defaultConstraints: must be empty when defaultingType is System")
        self.system_defaulted = defaulting == "System"
        self.default_constraints = list(SYSTEM_DEFAULT_CONSTRAINTS) if self.system_defaulted else listed

    def name(self) -> str:
        return NAME

    def constraints(self, pod: Mapping[str, Any], action: str) -> list[Constraint]:
        """The pod's own constraints for ``action``, else the cluster defaults with the default selector."""
        own = (pod.get("spec") or {}).get("topologySpreadConstraints") or []
        if own:
            return parse_constraints(own, pod, action)
        if not any(
            (c.get("whenUnsatisfiable") or DO_NOT_SCHEDULE) == action for c in self.default_constraints
        ):
            return []
        selector = default_selector(pod, self._handle)
        if selector.empty():
            return []
        return parse_constraints(self.default_constraints, pod, action, selector)

    def pre_filter(self, state: CycleState, pod: dict[str, Any], nodes: list[NodeInfo]) -> Status:
        constraints = self.constraints(pod, DO_NOT_SCHEDULE)
        if not constraints:
            return Status(Code.SKIP)
        state.write(_PRE_FILTER_KEY, compute_pre_filter_state(pod, constraints, nodes))
        return SUCCESS

    def filter(self, state: CycleState, pod: dict[str, Any], node: NodeInfo) -> Status:
        try:
            computed = state.read(_PRE_FILTER_KEY)
        except KeyError:
            return Status.error(f"{NAME}: PreFilter state not found")
        assert isinstance(computed, PreFilterState)
        return filter_node(computed, pod, node.labels)

    def pre_score(self, state: CycleState, pod: dict[str, Any], nodes: list[NodeInfo]) -> Status:
        constraints = self.constraints(pod, SCHEDULE_ANYWAY)
        if not constraints or not nodes:
            return Status(Code.SKIP)
        snapshot = self._handle.snapshot()
        all_nodes = snapshot.node_infos if len(snapshot) else nodes
        own = bool((pod.get("spec") or {}).get("topologySpreadConstraints"))
        computed = compute_pre_score_state(
            pod, constraints, nodes, all_nodes, require_all_topologies=own or not self.system_defaulted
        )
        state.write(_PRE_SCORE_KEY, computed)
        return SUCCESS

    def score(self, state: CycleState, pod: dict[str, Any], node: NodeInfo) -> tuple[int, Status]:
        try:
            computed = state.read(_PRE_SCORE_KEY)
        except KeyError:
            return 0, Status.error(f"{NAME}: PreScore state not found")
        assert isinstance(computed, PreScoreState)
        return score_node(computed, pod, node), SUCCESS

    def normalize_score(self, state: CycleState, pod: dict[str, Any], scores: dict[str, int]) -> Status:
        try:
            computed = state.read(_PRE_SCORE_KEY)
        except KeyError:
            return SUCCESS
        assert isinstance(computed, PreScoreState)
        normalize(computed, scores)
        return SUCCESS


def new(args: dict[str, Any], handle: Handle) -> PodTopologySpread:
    return PodTopologySpread(args or {}, handle)
