"""Plugin results: a fixed set of codes plus human-readable reasons.

Invariants: a ``Status`` is an immutable value; ``reasons`` are the exact texts that end up, counted
across nodes, in the FailedScheduling event (for example ``"Insufficient cpu"``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace


class Code(enum.IntEnum):
    """Status codes of the Kubernetes scheduler framework."""

    SUCCESS = 0
    ERROR = 1
    UNSCHEDULABLE = 2
    UNSCHEDULABLE_AND_UNRESOLVABLE = 3
    WAIT = 4
    SKIP = 5
    PENDING = 6


@dataclass(frozen=True, slots=True)
class Status:
    """The result of running one plugin (or one extension point)."""

    code: Code = Code.SUCCESS
    reasons: tuple[str, ...] = ()
    plugin: str = ""

    def is_success(self) -> bool:
        return self.code == Code.SUCCESS

    def is_skip(self) -> bool:
        return self.code == Code.SKIP

    def is_wait(self) -> bool:
        return self.code == Code.WAIT

    def is_rejected(self) -> bool:
        """True for UNSCHEDULABLE and UNSCHEDULABLE_AND_UNRESOLVABLE (the pod does not fit here)."""
        return self.code in (Code.UNSCHEDULABLE, Code.UNSCHEDULABLE_AND_UNRESOLVABLE)

    def message(self) -> str:
        return ", ".join(self.reasons)

    def with_plugin(self, plugin: str) -> Status:
        """This status attributed to ``plugin`` (an existing attribution is kept)."""
        return self if self.plugin else replace(self, plugin=plugin)

    @staticmethod
    def unschedulable(*reasons: str, resolvable: bool = True) -> Status:
        """A rejection; ``resolvable=False`` means preemption cannot help on that node."""
        code = Code.UNSCHEDULABLE if resolvable else Code.UNSCHEDULABLE_AND_UNRESOLVABLE
        return Status(code, tuple(reasons))

    @staticmethod
    def error(*reasons: str) -> Status:
        return Status(Code.ERROR, tuple(reasons))

    @staticmethod
    def skip() -> Status:
        return Status(Code.SKIP)

    @staticmethod
    def wait(*reasons: str) -> Status:
        return Status(Code.WAIT, tuple(reasons))


SUCCESS = Status()
