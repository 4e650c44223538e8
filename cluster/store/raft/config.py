"""Tunables of one Raft replica, and the errors the core reports to its caller."""

from __future__ import annotations

import random
from dataclasses import dataclass


class ProposalDropped(Exception):
    """The proposal was not accepted: no known leader, a leadership transfer is in progress,
    this node is not a member, or (for conf changes) another conf change is still pending."""


@dataclass(frozen=True, slots=True)
class Config:
    id: int
    rng: random.Random
    election_tick: int = 10  # randomized timeout in [election_tick, 2*election_tick)
    heartbeat_tick: int = 1
    pre_vote: bool = True
    # The leader steps down if it has not heard from a quorum within an election timeout;
    # followers that heard from a leader within an election timeout ignore (pre)votes.
    check_quorum: bool = True
    max_size_per_msg: int = 1 << 20  # bytes of entry data per APP (at least one entry always)
    max_inflight_msgs: int = 256  # pipelining window per follower
    max_committed_size_per_ready: int = 8 << 20
    applied: int = 0  # last applied index on restart (usually the snapshot index)

    def validate(self) -> None:
        if self.id == 0:
            raise ValueError("id 0 is reserved for 'none'")
        if self.heartbeat_tick <= 0:
            raise ValueError("heartbeat_tick must be positive")
        if self.election_tick <= self.heartbeat_tick:
            raise ValueError("election_tick must be greater than heartbeat_tick")
        if self.max_inflight_msgs <= 0:
            raise ValueError("max_inflight_msgs must be positive")
