"""Label selectors (apimachinery's ``labels``): parsing and matching, for the API server's list
filters, the client's listers and informer caches, and the scheduler's affinity and spread plugins.

Two input forms, one result type:

* the string form of the REST API and kubectl (``app=web,tier!=db,env in (a,b),!legacy,rank>2``),
  parsed by :func:`parse_label_selector` with the semantics of apimachinery's ``labels.Parse``;
* the ``metav1.LabelSelector`` dict of workload specs (``matchLabels`` / ``matchExpressions``),
  converted by :func:`label_selector_from_dict` like ``metav1.LabelSelectorAsSelector``.

Invariants: an empty selector matches every object; ``!=`` and ``notin`` also match objects that
lack the key (as in Kubernetes); ``>``/``<`` need the label to parse as an integer. Malformed input
raises :class:`SelectorError`. Values are immutable and safe to share between tasks.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_KEY_RE = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)
_VALUE_RE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
_SET_RE = re.compile(r"^(?P<key>\S+)\s+(?P<op>in|notin)\s*\((?P<values>[^()]*)\)$")
_BINARY_RE = re.compile(r"^(?P<key>[^!=<>\s]+)\s*(?P<op>==|=|!=|<|>)\s*(?P<value>\S*)$")

OPERATORS = frozenset({"In", "NotIn", "Exists", "DoesNotExist", "Equals", "NotEquals", "Gt", "Lt"})


class SelectorError(ValueError):
    """A label selector that does not parse or names an unknown operator."""


@dataclass(frozen=True, slots=True)
class Requirement:
    """One ``key <operator> values`` clause; all clauses of a selector must hold."""

    key: str
    operator: str
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        op = self.operator
        if op == "Exists":
            return self.key in labels
        if op == "DoesNotExist":
            return self.key not in labels
        if op in ("In", "Equals"):
            return self.key in labels and labels[self.key] in self.values
        if op in ("NotIn", "NotEquals"):
            return self.key not in labels or labels[self.key] not in self.values
        if self.key not in labels:
            return False
        try:
            have, want = int(labels[self.key]), int(self.values[0])
        except ValueError:
            return False
        return have > want if op == "Gt" else have < want


@dataclass(frozen=True, slots=True)
class LabelSelector:
    """A conjunction of requirements; ``nothing=True`` is the selector that matches no object."""

    requirements: tuple[Requirement, ...] = ()
    nothing: bool = False

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        if self.nothing:
            return False
        have = labels or {}
        return all(r.matches(have) for r in self.requirements)

    def matches_object(self, obj: Mapping[str, Any]) -> bool:
        """Match against ``obj.metadata.labels`` of a wire-form object."""
        return self.matches((obj.get("metadata") or {}).get("labels"))

    def empty(self) -> bool:
        return not self.nothing and not self.requirements


EVERYTHING = LabelSelector()
NOTHING = LabelSelector(nothing=True)


def _check_key(key: str) -> str:
    if not _KEY_RE.match(key) or len(key.rsplit("/", 1)[-1]) > 63:
        raise SelectorError(f"invalid label key {key!r}")
    return key


def _check_value(value: str) -> str:
    if len(value) > 63 or not _VALUE_RE.match(value):
        raise SelectorError(f"invalid label value {value!r}")
    return value


def _split_clauses(text: str) -> list[str]:
    """Split on commas that are not inside a ``( ... )`` value set."""
    clauses, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "(":
            depth += 1
            if depth > 1:
                raise SelectorError(f"nested parentheses in {text!r}")
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise SelectorError(f"unbalanced parentheses in {text!r}")
        elif ch == "," and depth == 0:
            clauses.append(text[start:i])
            start = i + 1
    if depth != 0:
        raise SelectorError(f"unbalanced parentheses in {text!r}")
    clauses.append(text[start:])
    return [c.strip() for c in clauses]


def _parse_clause(clause: str) -> Requirement:
    if not clause:
        raise SelectorError("empty requirement")
    if m := _SET_RE.match(clause):
        values = tuple(sorted({_check_value(v.strip()) for v in m["values"].split(",")}))
        op = "In" if m["op"] == "in" else "NotIn"
        return Requirement(_check_key(m["key"]), op, values)
    if clause.startswith("!"):
        return Requirement(_check_key(clause[1:].strip()), "DoesNotExist")
    if m := _BINARY_RE.match(clause):
        op = {"=": "Equals", "==": "Equals", "!=": "NotEquals", ">": "Gt", "<": "Lt"}[m["op"]]
        value = m["value"]
        if op in ("Gt", "Lt"):
            try:
                int(value)
            except ValueError:
                raise SelectorError(f"{clause!r}: {m['op']} needs an integer") from None
        return Requirement(_check_key(m["key"]), op, (_check_value(value),))
    if " " not in clause and not any(c in clause for c in "=!<>()"):
        return Requirement(_check_key(clause), "Exists")
    raise SelectorError(f"cannot parse requirement {clause!r}")


def parse_label_selector(text: str) -> LabelSelector:
    """Parse the string form; ``""`` is the everything selector."""
    if not text.strip():
        return EVERYTHING
    return LabelSelector(tuple(_parse_clause(c) for c in _split_clauses(text)))


def label_selector_from_dict(selector: Mapping[str, Any] | None) -> LabelSelector:
    """Convert a ``metav1.LabelSelector``; ``None`` selects nothing, ``{}`` selects everything."""
    if selector is None:
        return NOTHING
    reqs = [
        Requirement(_check_key(k), "Equals", (_check_value(str(v)),))
        for k, v in sorted((selector.get("matchLabels") or {}).items())
    ]
    for expr in selector.get("matchExpressions") or []:
        op, key, values = expr.get("operator"), expr.get("key", ""), expr.get("values") or []
        if op in ("In", "NotIn"):
            if not values:
                raise SelectorError(f"{key}: operator {op} needs at least one value")
        elif op in ("Exists", "DoesNotExist"):
            if values:
                raise SelectorError(f"{key}: operator {op} takes no values")
        else:
            raise SelectorError(f"{key}: unknown operator {op!r}")
        reqs.append(Requirement(_check_key(key), op, tuple(sorted({_check_value(v) for v in values}))))
    return LabelSelector(tuple(reqs))


def as_selector(selector: str | Mapping[str, Any] | LabelSelector | None) -> LabelSelector:
    """Accept any of the forms above; ``None`` here means no filtering (everything)."""
    if selector is None:
        return EVERYTHING
    if isinstance(selector, LabelSelector):
        return selector
    if isinstance(selector, str):
        return parse_label_selector(selector)
    return label_selector_from_dict(selector)
