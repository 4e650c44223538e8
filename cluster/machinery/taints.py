"""Taints and tolerations: whether a pod's tolerations cover a node's taints.

One copy of core/v1's ``Toleration.ToleratesTaint`` for everyone who needs it (the scheduler's
TaintToleration and NodeUnschedulable plugins, the DaemonSet controller's node eligibility, the taint
eviction controller). A toleration matches a taint when:

* its ``effect`` is empty (every effect) or the taint's effect;
* its ``key`` is the taint's key, or empty with operator ``Exists`` (every key);
* its ``operator`` is ``Exists`` (any value) or ``Equal``, the default, with the same ``value``
  (a missing value counts as ``""``). Any other operator matches nothing.

An empty key with ``Equal`` is the one combination the Go function would still compare values for;
the API rejects it ("operator must be Exists when `key` is empty"), and here it matches nothing, so a
toleration that slipped past validation never tolerates every taint by accident.

Pure: inputs are wire-form mappings and are never modified.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import Any, TypeVar

NO_SCHEDULE = "NoSchedule"
PREFER_NO_SCHEDULE = "PreferNoSchedule"
NO_EXECUTE = "NoExecute"
EXISTS = "Exists"
EQUAL = "Equal"

Taint = Mapping[str, Any]
Toleration = Mapping[str, Any]
T = TypeVar("T", bound=Mapping[str, Any])


def tolerates_taint(toleration: Toleration, taint: Taint) -> bool:
    """Whether one toleration matches one taint (the rules in the module docstring)."""
    effect = toleration.get("effect") or ""
    if effect and effect != taint.get("effect"):
        return False
    key = toleration.get("key") or ""
    operator = toleration.get("operator") or EQUAL
    if key:
        if key != taint.get("key"):
            return False
    elif operator != EXISTS:
        return False
    if operator == EXISTS:
        return True
    return operator == EQUAL and (toleration.get("value") or "") == (taint.get("value") or "")


def matching_toleration(tolerations: Iterable[T], taint: Taint) -> T | None:
    """The first of ``tolerations`` that matches ``taint`` (None: none does)."""
    return next((t for t in tolerations if tolerates_taint(t, taint)), None)


def tolerations_tolerate_taint(tolerations: Iterable[Toleration], taint: Taint) -> bool:
    """Whether any of ``tolerations`` matches ``taint``."""
    return any(tolerates_taint(t, taint) for t in tolerations)


def find_untolerated_taint(
    taints: Iterable[T], tolerations: Collection[Toleration], effects: Collection[str]
) -> T | None:
    """The first taint, in the given order, whose effect is one of ``effects`` and that no toleration
    matches (None: every such taint is tolerated)."""
    for taint in taints:
        if taint.get("effect") in effects and not tolerations_tolerate_taint(tolerations, taint):
            return taint
    return None
