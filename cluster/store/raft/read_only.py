"""Pending ReadIndex requests at the leader, waiting for a heartbeat round to confirm leadership.

Each request is keyed by its context. It records the commit index at the time it arrived; once
a quorum has answered a heartbeat carrying that context, that request *and every earlier one*
can be answered (the later round proves leadership at an even later time).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .types import Message


@dataclass(slots=True)
class ReadIndexStatus:
    req: Message
    index: int
    acks: dict[int, bool] = field(default_factory=dict)


class ReadOnly:
    def __init__(self) -> None:
        self.pending: dict[bytes, ReadIndexStatus] = {}
        self.queue: list[bytes] = []

    def add_request(self, index: int, req: Message) -> None:
        if req.context in self.pending:
            return
        self.pending[req.context] = ReadIndexStatus(req, index)
        self.queue.append(req.context)

    def recv_ack(self, frm: int, ctx: bytes) -> dict[int, bool] | None:
        rs = self.pending.get(ctx)
        if rs is None:
            return None
        rs.acks[frm] = True
        return rs.acks

    def advance(self, ctx: bytes) -> list[ReadIndexStatus]:
        """Pop and return every request up to and including ``ctx``."""
        if ctx not in self.pending:
            return []
        n = self.queue.index(ctx) + 1
        done = [self.pending.pop(c) for c in self.queue[:n]]
        del self.queue[:n]
        return done

    def last_pending_ctx(self) -> bytes | None:
        return self.queue[-1] if self.queue else None
