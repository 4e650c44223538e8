"""What callers of a store replica see: its errors, its options and the transport it sends through.

Split from ``cluster.store.replica`` (which re-exports them) so the replica module holds the loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from cluster.store.raft.types import Message


class NotLeader(Exception):
    """The request must go to the leader; ``leader`` is this replica's best guess (0 = unknown)."""

    def __init__(self, leader: int) -> None:
        super().__init__(f"not the leader (leader hint: {leader})")
        self.leader = leader

    def __reduce__(self) -> tuple[Any, ...]:
        return (NotLeader, (self.leader,))


class NotServing(NotLeader):
    """This replica has stopped (a fatal disk/apply failure) or awaits replacement: ask another one."""

    def __init__(self, reason: str) -> None:
        Exception.__init__(self, f"replica not serving: {reason}")
        self.leader = 0
        self.reason = reason

    def __reduce__(self) -> tuple[Any, ...]:
        return (NotServing, (self.reason,))


class Transport(Protocol):
    def send(self, to: int, messages: list[Message]) -> None:
        """Deliver ``messages`` to replica ``to``, best effort, without blocking."""


@dataclass(frozen=True, slots=True)
class ReplicaOptions:
    tick_seconds: float = 0.1
    election_tick: int = 10
    heartbeat_tick: int = 1
    snapshot_entries: int = 20_000  # take an application snapshot after this many applied entries
    keep_entries: int = 5_000  # entries kept behind a snapshot for slightly lagging followers
    max_batch_bytes: int = 4 << 20
    # Raft traffic between replica actors: "tcp", direct connections (cluster.store.peer_transport),
    # or "ray", one actor call per peer per round (the fallback). $RAYKUBE_STORE_TRANSPORT, where
    # the replica runs, overrides it.
    transport: str = "tcp"
