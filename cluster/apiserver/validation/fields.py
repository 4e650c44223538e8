"""Field errors: the `Cause` value and its constructors, mirroring apimachinery's field.Error.

A `Cause` is one entry of `Status.details.causes`. Its `message` is exactly what Kubernetes'
`ErrorBody()` prints ("Required value", 'Invalid value: "x": detail', ...), and `detail()` is the
`field: message` text that follows "is invalid: " in the Status message.

Invariants: constructors never raise; values are rendered the way Go's fmt does for the types the
wire form has (strings quoted with %q, numbers and booleans bare, null for absent values, Go literals
for string lists and string maps).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

REQUIRED = "FieldValueRequired"
INVALID = "FieldValueInvalid"
NOT_SUPPORTED = "FieldValueNotSupported"
DUPLICATE = "FieldValueDuplicate"
FORBIDDEN = "FieldValueForbidden"
TOO_LONG = "FieldValueTooLong"
TOO_MANY = "FieldValueTooMany"
NOT_FOUND = "FieldValueNotFound"
TYPE_INVALID = "FieldValueTypeInvalid"

_TYPE_TEXT = {
    REQUIRED: "Required value",
    INVALID: "Invalid value",
    NOT_SUPPORTED: "Unsupported value",
    DUPLICATE: "Duplicate value",
    FORBIDDEN: "Forbidden",
    TOO_LONG: "Too long",
    TOO_MANY: "Too many",
    NOT_FOUND: "Not found",
    TYPE_INVALID: "Invalid value",
}


@dataclass(frozen=True, slots=True)
class Cause:
    """One field error; `type` is the StatusCause reason, `message` its ErrorBody()."""

    type: str
    field: str
    message: str

    def detail(self) -> str:
        """The `field: message` text Kubernetes prints after "is invalid: "."""
        return f"{self.field}: {self.message}" if self.field else self.message

    def as_status_cause(self) -> dict[str, str]:
        """The wire form of this cause inside `Status.details.causes`."""
        return {"reason": self.type, "message": self.message, "field": self.field}


@dataclass(frozen=True, slots=True)
class GoLiteral:
    """A value already rendered as Go would print it (e.g. a struct literal)."""

    text: str


def go_quote(text: str) -> str:
    """Go's %q for the printable strings the API carries (JSON escaping is the same for ASCII)."""
    return json.dumps(text, ensure_ascii=False)


def go_value(value: Any) -> str:
    """Render `value` like Go's fmt does inside field.Error.ErrorBody()."""
    if isinstance(value, GoLiteral):
        return value.text
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return go_quote(value)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "[]string{" + ", ".join(go_quote(v) for v in value) + "}"
    if isinstance(value, dict) and all(isinstance(v, str) for v in value.values()):
        items = ", ".join(f"{go_quote(k)}:{go_quote(v)}" for k, v in sorted(value.items()))
        return "map[string]string{" + items + "}"
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _with_detail(body: str, detail: str) -> str:
    return f"{body}: {detail}" if detail else body


def required(field: str, detail: str = "") -> Cause:
    return Cause(REQUIRED, field, _with_detail(_TYPE_TEXT[REQUIRED], detail))


def forbidden(field: str, detail: str) -> Cause:
    return Cause(FORBIDDEN, field, _with_detail(_TYPE_TEXT[FORBIDDEN], detail))


def invalid(field: str, value: Any, detail: str) -> Cause:
    return Cause(INVALID, field, _with_detail(f"Invalid value: {go_value(value)}", detail))


def type_invalid(field: str, value: Any, detail: str) -> Cause:
    return Cause(TYPE_INVALID, field, _with_detail(f"Invalid value: {go_value(value)}", detail))


def duplicate(field: str, value: Any) -> Cause:
    return Cause(DUPLICATE, field, f"Duplicate value: {go_value(value)}")


def not_found(field: str, value: Any) -> Cause:
    return Cause(NOT_FOUND, field, f"Not found: {go_value(value)}")


def not_supported(field: str, value: Any, supported: Iterable[str]) -> Cause:
    quoted = ", ".join(go_quote(s) for s in supported)
    return Cause(NOT_SUPPORTED, field, f"Unsupported value: {go_value(value)}: supported values: {quoted}")


def too_long(field: str, max_length: int) -> Cause:
    detail = f"must have at most {max_length} bytes" if max_length >= 0 else "value is too long"
    return Cause(TOO_LONG, field, f"Too long: {detail}")


def too_many(field: str, actual: int, max_items: int) -> Cause:
    return Cause(TOO_MANY, field, f"Too many: {actual}: must have at most {max_items} items")


def child(path: str, *names: str) -> str:
    """`child("spec", "template")` -> "spec.template"; an empty base yields just the children."""
    tail = ".".join(names)
    if not path:
        return tail
    return f"{path}.{tail}" if tail else path


def index(path: str, i: int) -> str:
    return f"{path}[{i}]"


def key(path: str, k: str) -> str:
    return f"{path}[{k}]"


def immutable(field: str, new: Any) -> Cause:
    return invalid(field, new, "field is immutable")


def nonnegative(value: Any, field: str) -> list[Cause]:
    """ValidateNonnegativeField: absent values pass; negatives fail with Kubernetes' text."""
    if isinstance(value, int | float) and not isinstance(value, bool) and value < 0:
        return [invalid(field, value, "must be greater than or equal to 0")]
    return []


def as_dict(value: Any) -> dict[str, Any]:
    """The value if it is a mapping, else an empty one (validators tolerate malformed input)."""
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def dicts(value: Any) -> list[dict[str, Any]]:
    """The list's entries with non-mappings replaced by {} so indices stay aligned."""
    return [v if isinstance(v, dict) else {} for v in as_list(value)]
