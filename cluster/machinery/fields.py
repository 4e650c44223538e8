"""Field selectors (apimachinery's ``fields``): ``spec.nodeName=n1,status.phase!=Failed``.

The grammar and matching only: which fields a resource supports is the caller's table (the API
server's ``cluster.apiserver.fieldselectors``), given as a mapping from field label to a ``Getter``
that reads the field of an object as text. Operators: ``=``, ``==``, ``!=``. Malformed text or a
field not in the table raises ``FieldSelectorError`` with Kubernetes' messages.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

Getter = Callable[[dict[str, Any]], str]


class FieldSelectorError(ValueError):
    """The selector is malformed or names a field the resource does not support."""


def field_path(*keys: str) -> Getter:
    """A getter for the field at ``keys``: missing or null is ``""``, booleans ``true``/``false``."""

    def get(obj: dict[str, Any]) -> str:
        cur: Any = obj
        for k in keys:
            if not isinstance(cur, dict):
                return ""
            cur = cur.get(k)
        if cur is None:
            return ""
        if isinstance(cur, bool):
            return "true" if cur else "false"
        return str(cur)

    return get


@dataclass(frozen=True, slots=True)
class FieldRequirement:
    field: str
    op: str  # "=" or "!="
    value: str
    getter: Getter


@dataclass(frozen=True, slots=True)
class FieldSelector:
    requirements: tuple[FieldRequirement, ...]

    def matches(self, obj: dict[str, Any]) -> bool:
        for r in self.requirements:
            actual = r.getter(obj)
            if (actual == r.value) != (r.op == "="):
                return False
        return True

    def exact(self, field: str) -> str | None:
        """The value ``field`` must equal, if the selector requires one (lets callers use an index)."""
        for r in self.requirements:
            if r.field == field and r.op == "=":
                return r.value
        return None

    @property
    def empty(self) -> bool:
        return not self.requirements


def parse_field_selector(text: str | None, fields: Mapping[str, Getter]) -> FieldSelector:
    """Parse ``text`` against the supported ``fields``; empty or None selects everything."""
    if not text:
        return FieldSelector(())
    reqs: list[FieldRequirement] = []
    for clause in text.split(","):
        clause = clause.strip()
        if not clause:
            continue
        if "!=" in clause:
            field, value = clause.split("!=", 1)
            op = "!="
        elif "==" in clause:
            field, value = clause.split("==", 1)
            op = "="
        elif "=" in clause:
            field, value = clause.split("=", 1)
            op = "="
        else:
            raise FieldSelectorError(f"invalid selector: '{text}'; can't understand '{clause}'")
        field = field.strip()
        getter = fields.get(field)
        if getter is None:
            raise FieldSelectorError(f"field label not supported: {field}")
        reqs.append(FieldRequirement(field, op, value.strip(), getter))
    return FieldSelector(tuple(reqs))
