"""Majority arithmetic over a set of voters: the commit index and election outcomes.

Pure functions over plain dicts so they are trivially testable. An empty voter set wins every
vote and has no commit index constraint (it never happens for a node that can campaign).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Collection, Mapping


class VoteResult(enum.Enum):
    PENDING = "pending"
    LOST = "lost"
    WON = "won"


def majority(n: int) -> int:
    return n // 2 + 1


def committed_index(voters: Collection[int], match: Callable[[int], int]) -> int:
    """Largest index that a majority of ``voters`` has acknowledged."""
    if not voters:
        return 0
    acked = sorted((match(v) for v in voters), reverse=True)
    return acked[majority(len(acked)) - 1]


def vote_result(voters: Collection[int], votes: Mapping[int, bool]) -> VoteResult:
    """Outcome of an election in which ``votes`` maps voter id to granted/rejected."""
    if not voters:
        return VoteResult.WON
    granted = rejected = 0
    for v in voters:
        got = votes.get(v)
        if got is True:
            granted += 1
        elif got is False:
            rejected += 1
    need = majority(len(voters))
    if granted >= need:
        return VoteResult.WON
    if len(voters) - rejected < need:
        return VoteResult.LOST
    return VoteResult.PENDING
