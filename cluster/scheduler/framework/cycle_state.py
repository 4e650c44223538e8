"""Per-cycle scratch space shared by the plugins scheduling one pod.

Invariants: one ``CycleState`` per scheduling attempt; PreFilter/PreScore results are written under the
plugin's own key and read back by its Filter/Score. ``clone`` is shallow per key: values must be treated
as immutable, or cloned by their owner, once written (preemption clones the state to simulate removals).
"""

from __future__ import annotations

import copy


class CycleState:
    """A key/value store scoped to one scheduling cycle."""

    __slots__ = ("_data",)

    def __init__(self) -> None:
        self._data: dict[str, object] = {}

    def write(self, key: str, value: object) -> None:
        self._data[key] = value

    def read(self, key: str) -> object:
        """The value under ``key``; raises ``KeyError`` when the key was never written."""
        return self._data[key]

    def delete(self, key: str) -> None:
        self._data.pop(key, None)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def clone(self) -> CycleState:
        """A copy whose values are cloned when they offer ``clone()``, else copied shallowly."""
        other = CycleState()
        for key, value in self._data.items():
            cloner = getattr(value, "clone", None)
            other._data[key] = cloner() if callable(cloner) else copy.copy(value)
        return other
