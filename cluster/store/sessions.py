"""Client sessions: exactly-once application of retried requests (Raft dissertation 6.3, RIFL).

A client numbers its requests with increasing ``seq`` and tells the store, with every request,
``first_incomplete``: its lowest seq still waiting for an answer. The table remembers the
outcome (result or error) of every applied (client, seq) with seq >= first_incomplete, so a
retry of an applied request gets the remembered outcome instead of being applied twice, and a
delayed copy of a request the client already saw answered (seq < first_incomplete, outcome
forgotten) is refused as stale rather than re-applied.

The table is replicated state: it changes only inside ``MVCCStore.apply`` and is bounded
deterministically, by apply order, never by time:

* at most ``max_clients`` sessions; a new client evicts the least recently used one;
* at most ``max_results`` remembered outcomes per client; past that the lowest seq is dropped
  and the client's watermark moves above it (a later copy of it is refused as stale).

Limit: a client whose session was evicted and which then retries a request that had been
applied gets it applied again; size ``max_clients`` above the number of live clients.
"""

from __future__ import annotations

from typing import Any

from cluster.store.codec import outcome_from_wire, outcome_to_wire
from cluster.store.ops import InvalidRequest, Result, StoreError

Outcome = Result | StoreError

DEFAULT_MAX_CLIENTS = 10_000
DEFAULT_MAX_RESULTS = 1_024


class _Session:
    __slots__ = ("first_incomplete", "outcomes")

    def __init__(self, first_incomplete: int) -> None:
        self.first_incomplete = first_incomplete
        self.outcomes: dict[int, Outcome] = {}


class SessionTable:
    def __init__(
        self, max_clients: int = DEFAULT_MAX_CLIENTS, max_results: int = DEFAULT_MAX_RESULTS
    ) -> None:
        if max_clients < 1 or max_results < 1:
            raise ValueError("session table bounds must be positive")
        self.max_clients = max_clients
        self.max_results = max_results
        # Insertion order is recency order (least recently used first): a touched session is
        # popped and reinserted. Apply order alone decides it, so every replica agrees.
        self._sessions: dict[bytes, _Session] = {}

    def __len__(self) -> int:
        return len(self._sessions)

    def lookup(self, client_id: bytes, seq: int, first_incomplete: int) -> Outcome | None:
        """Record the client's progress and return the remembered outcome of (client, seq),
        or None when the request must be applied (then call ``remember``).

        Raises InvalidRequest for a malformed or stale request; those are not remembered.
        """
        if seq < 1 or first_incomplete < 1 or first_incomplete > seq:
            raise InvalidRequest(
                f"invalid session numbering: seq {seq}, first_incomplete {first_incomplete} "
                "(want 1 <= first_incomplete <= seq)"
            )
        session = self._sessions.pop(client_id, None)
        if session is None:
            session = _Session(first_incomplete)
            if len(self._sessions) >= self.max_clients:
                del self._sessions[next(iter(self._sessions))]
        self._sessions[client_id] = session
        if first_incomplete > session.first_incomplete:
            session.first_incomplete = first_incomplete
            outcomes = session.outcomes
            for done in [s for s in outcomes if s < first_incomplete]:
                del outcomes[done]
        remembered = session.outcomes.get(seq)
        if remembered is not None:
            return remembered
        if seq < session.first_incomplete:
            raise InvalidRequest(
                f"stale request: seq {seq} of this client is below its acknowledged "
                f"watermark {session.first_incomplete}"
            )
        return None

    def remember(self, client_id: bytes, seq: int, outcome: Outcome) -> None:
        """Store the outcome of a request ``lookup`` said to apply (same client, same seq)."""
        session = self._sessions[client_id]
        outcomes = session.outcomes
        outcomes[seq] = outcome
        if len(outcomes) > self.max_results:
            lowest = min(outcomes)
            del outcomes[lowest]
            session.first_incomplete = max(session.first_incomplete, lowest + 1)

    # --- snapshots ---------------------------------------------------------------------------

    def to_wire(self) -> list[Any]:
        return [
            self.max_clients,
            self.max_results,
            [
                [
                    cid,
                    s.first_incomplete,
                    [[seq, outcome_to_wire(o)] for seq, o in sorted(s.outcomes.items())],
                ]
                for cid, s in self._sessions.items()
            ],
        ]

    @classmethod
    def from_wire(cls, w: list[Any]) -> SessionTable:
        table = cls(w[0], w[1])
        for cid, first_incomplete, outcomes in w[2]:
            session = _Session(first_incomplete)
            session.outcomes = {seq: outcome_from_wire(o) for seq, o in outcomes}
            table._sessions[bytes(cid)] = session
        return table
