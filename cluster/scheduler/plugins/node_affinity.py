"""NodeAffinity: ``spec.nodeSelector`` and node affinity terms, plus the scheduler's ``addedAffinity``.

Filter: the node must carry every ``nodeSelector`` label and match at least one of the required
``nodeSelectorTerms`` (terms are ORed; a term's ``matchExpressions`` and ``matchFields`` are ANDed; an
empty or invalid term matches nothing). Rejections are unresolvable. The profile's ``addedAffinity``
required terms are checked first, with their own reason. PreFilter returns SKIP when there is nothing to
check. Score: the sum of the weights of the preferred terms (the pod's and ``addedAffinity``'s) the node
matches, normalized so the best node gets 100; PreScore returns SKIP without preferred terms.

Operators (labels): In, NotIn (also true when the label is absent), Exists, DoesNotExist, Gt and Lt
(integer comparison; false when the label is absent or not an integer). ``matchFields`` supports only
``metadata.name`` with In/NotIn and exactly one value. Pure: no I/O.
"""

from __future__ import annotations

import re
from typing import Any, cast

from cluster.scheduler.framework.cycle_state import CycleState
from cluster.scheduler.framework.status import SUCCESS, Status
from cluster.scheduler.framework.types import NodeInfo
from cluster.scheduler.plugins.taint_toleration import default_normalize_score

NAME = "NodeAffinity"
ERR_REASON_POD = "node(s) didn't match Pod's node affinity/selector"
ERR_REASON_ENFORCED = "node(s) didn't match scheduler-enforced node affinity"
_PRE_SCORE_KEY = "PreScore" + NAME

Obj = dict[str, Any]


class InvalidRequirement(ValueError):
    """A selector requirement that Kubernetes would refuse to parse."""


_INTEGER = re.compile(r"[+-]?[0-9]+")


def _parse_int(text: str) -> int | None:
    """Go's ``strconv.ParseInt(text, 10, 64)``: no spaces or underscores, int64 range."""
    if not _INTEGER.fullmatch(text):
        return None
    value = int(text)
    return value if -(2**63) <= value < 2**63 else None


def match_label_requirement(requirement: Obj, labels: dict[str, str]) -> bool:
    """Whether ``labels`` satisfy one ``matchExpressions`` entry; raises InvalidRequirement if malformed."""
    key = str(requirement.get("key") or "")
    operator = str(requirement.get("operator") or "")
    values = [str(v) for v in requirement.get("values") or []]
    if operator in ("In", "NotIn"):
        if not values:
            raise InvalidRequirement(f"{key}: values must be non-empty for {operator}")
        if operator == "In":
            return key in labels and labels[key] in values
        return key not in labels or labels[key] not in values
    if operator in ("Exists", "DoesNotExist"):
        if values:
            raise InvalidRequirement(f"{key}: values must be empty for {operator}")
        return (key in labels) == (operator == "Exists")
    if operator in ("Gt", "Lt"):
        bound = _parse_int(values[0]) if len(values) == 1 else None
        if bound is None:
            raise InvalidRequirement(f"{key}: {operator} needs exactly one integer value")
        have = _parse_int(labels[key]) if key in labels else None
        if have is None:
            return False
        return have > bound if operator == "Gt" else have < bound
    raise InvalidRequirement(f"{key}: {operator!r} is not a valid label selector operator")


def match_field_requirement(requirement: Obj, node_name: str) -> bool:
    """Whether the node satisfies one ``matchFields`` entry (only ``metadata.name`` exists)."""
    key = str(requirement.get("key") or "")
    operator = str(requirement.get("operator") or "")
    values = [str(v) for v in requirement.get("values") or []]
    if key != "metadata.name":
        raise InvalidRequirement(f"{key!r} is not a valid field selector key")
    if operator not in ("In", "NotIn"):
        raise InvalidRequirement(f"{operator!r} is not a valid field selector operator")
    if len(values) != 1:
        raise InvalidRequirement(f"unexpected number of value ({len(values)}) for node field selector")
    return (node_name == values[0]) == (operator == "In")


def match_term(term: Obj, labels: dict[str, str], node_name: str) -> bool:
    """Whether a node matches one NodeSelectorTerm (ANDed requirements); raises InvalidRequirement."""
    matched = True
    for requirement in term.get("matchExpressions") or []:
        matched = match_label_requirement(requirement, labels) and matched
    for requirement in term.get("matchFields") or []:
        matched = match_field_requirement(requirement, node_name) and matched
    return matched


def match_node_selector_terms(terms: list[Obj], labels: dict[str, str], node_name: str) -> bool:
    """ORed terms; empty and invalid terms match nothing, so an empty list matches no node."""
    for term in terms:
        if not term.get("matchExpressions") and not term.get("matchFields"):
            continue
        try:
            if match_term(term, labels, node_name):
                return True
        except InvalidRequirement:
            continue
    return False


def _required_terms(node_affinity: Obj | None) -> list[Obj] | None:
    required = (node_affinity or {}).get("requiredDuringSchedulingIgnoredDuringExecution")
    if required is None:
        return None
    return list(required.get("nodeSelectorTerms") or [])


def _preferred_terms(node_affinity: Obj | None) -> list[Obj]:
    return list((node_affinity or {}).get("preferredDuringSchedulingIgnoredDuringExecution") or [])


def pod_node_affinity(pod: Obj) -> Obj:
    return cast(Obj, ((pod.get("spec") or {}).get("affinity") or {}).get("nodeAffinity") or {})


def pod_matches_node(pod: Obj, labels: dict[str, str], node_name: str) -> bool:
    """The pod's ``nodeSelector`` and required node affinity, both, against a node."""
    selector = (pod.get("spec") or {}).get("nodeSelector") or {}
    if any(labels.get(key) != value for key, value in selector.items()):
        return False
    terms = _required_terms(pod_node_affinity(pod))
    return terms is None or match_node_selector_terms(terms, labels, node_name)


def preferred_score(terms: list[Obj], labels: dict[str, str], node_name: str) -> int:
    """Sum of the weights of the preferred terms the node matches (an empty preference matches all)."""
    total = 0
    for term in terms:
        weight = int(term.get("weight") or 0)
        if weight == 0:
            continue
        try:
            if match_term(term.get("preference") or {}, labels, node_name):
                total += weight
        except InvalidRequirement:
            continue  # the API server rejects such pods; treat the term as matching nothing
    return total


class NodeAffinity:
    """Filter on nodeSelector/required affinity; Score on preferred affinity."""

    NAME = NAME

    def __init__(self, args: dict[str, Any] | None = None) -> None:
        added = (args or {}).get("addedAffinity") or {}
        self.added_required = _required_terms(added)
        self.added_preferred = _preferred_terms(added)

    def name(self) -> str:
        return NAME

    def pre_filter(self, state: CycleState, pod: Obj, nodes: list[NodeInfo]) -> Status:
        has_required = _required_terms(pod_node_affinity(pod)) is not None
        has_selector = (pod.get("spec") or {}).get("nodeSelector") is not None
        if not has_required and not has_selector and self.added_required is None:
            return Status.skip()
        return SUCCESS

    def filter(self, state: CycleState, pod: Obj, node: NodeInfo) -> Status:
        labels, name = node.labels, node.name
        if self.added_required is not None and not match_node_selector_terms(
            self.added_required, labels, name
        ):
            return Status.unschedulable(ERR_REASON_ENFORCED, resolvable=False)
        if not pod_matches_node(pod, labels, name):
            return Status.unschedulable(ERR_REASON_POD, resolvable=False)
        return SUCCESS

    def _preferred(self, pod: Obj) -> list[Obj]:
        return self.added_preferred + _preferred_terms(pod_node_affinity(pod))

    def pre_score(self, state: CycleState, pod: Obj, nodes: list[NodeInfo]) -> Status:
        terms = self._preferred(pod)
        if not terms:
            return Status.skip()
        state.write(_PRE_SCORE_KEY, terms)
        return SUCCESS

    def score(self, state: CycleState, pod: Obj, node: NodeInfo) -> tuple[int, Status]:
        try:
            terms = cast("list[Obj]", state.read(_PRE_SCORE_KEY))
        except KeyError:
            terms = self._preferred(pod)
        return preferred_score(terms, node.labels, node.name), SUCCESS

    def normalize_score(self, state: CycleState, pod: Obj, scores: dict[str, int]) -> Status:
        default_normalize_score(scores, reverse=False)
        return SUCCESS


def new(args: dict[str, Any] | None, handle: object) -> NodeAffinity:
    """Factory for the registry; ``args`` is NodeAffinityArgs (``addedAffinity``)."""
    return NodeAffinity(args)
