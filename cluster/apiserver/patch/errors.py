"""Typed errors raised by the patch engines; the HTTP layer turns them into Kubernetes Status objects.

Invariant: every message is user-facing and worded like the kube-apiserver's own, and `code` is the HTTP
status Kubernetes answers with for the same failure (400 BadRequest, 422 Invalid, 500 for the strategic
merge errors Kubernetes does not classify).
"""

from __future__ import annotations

from dataclasses import dataclass


class PatchError(Exception):
    """A patch that cannot be applied; `code` is 400, 422 or 500 as Kubernetes would answer."""

    def __init__(self, message: str, code: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.code = code

    def __repr__(self) -> str:
        return f"PatchError({self.message!r}, code={self.code})"


@dataclass(frozen=True, slots=True)
class FieldConflict:
    """One field that another manager owns with a different value."""

    manager: str
    operation: str
    api_version: str
    time: str | None
    field: str  # Kubernetes path form: .spec.containers[name="nginx"].image

    def manager_text(self) -> str:
        """The manager as Kubernetes prints it: quoted name, plus version and time for Update managers."""
        text = f'"{self.manager}"'
        if self.operation == "Update":
            text += f" using {self.api_version}"
            if self.time:
                text += f" at {self.time}"
        return text


class ApplyConflict(Exception):
    """Server-side apply hit fields owned by other managers; the HTTP layer answers 409 Conflict.

    `conflicts` is [(manager, field path)], sorted; `details` carries what the Status message needs.
    """

    def __init__(self, details: list[FieldConflict]) -> None:
        self.details = sorted(details, key=lambda c: (c.manager, c.operation, c.field))
        self.conflicts: list[tuple[str, str]] = [(c.manager, c.field) for c in self.details]
        super().__init__(self.message())

    def message(self) -> str:
        """The Status message, e.g. 'Apply failed with 1 conflict: conflict with "m" using v1: .spec.x'."""
        if len(self.details) == 1:
            only = self.details[0]
            return f"Apply failed with 1 conflict: conflict with {only.manager_text()}: {only.field}"
        lines: list[str] = []
        seen: list[str] = []
        for conflict in self.details:
            text = conflict.manager_text()
            if text not in seen:
                seen.append(text)
                lines.append(f"conflicts with {text}:")
            lines.append(f"- {conflict.field}")
        return f"Apply failed with {len(self.details)} conflicts: " + "\n".join(lines)

    def causes(self) -> list[dict[str, str]]:
        """Status details.causes entries, one per conflicting field."""
        return [
            {
                "reason": "FieldManagerConflict",
                "message": f"conflict with {c.manager_text()}",
                "field": c.field,
            }
            for c in self.details
        ]
