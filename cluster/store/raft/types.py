"""Values exchanged between the Raft core and its caller.

Everything here is an immutable value: the core hands these out in a :class:`Ready`
and the caller persists, sends and applies them. They must stay picklable (they travel
between replicas as Ray actor-call arguments) and carry no behaviour beyond small helpers.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

NodeId = int
"""Replica id; 0 means "none" (no vote, no known leader)."""

NONE: NodeId = 0


class EntryType(enum.IntEnum):
    NORMAL = 0
    CONF_CHANGE = 1


class ConfChangeType(enum.IntEnum):
    ADD_NODE = 0
    REMOVE_NODE = 1


@dataclass(frozen=True, slots=True)
class ConfChange:
    """A single-server membership change, carried as the data of a CONF_CHANGE entry."""

    type: ConfChangeType
    node_id: NodeId

    def encode(self) -> bytes:
        return bytes([int(self.type)]) + self.node_id.to_bytes(8, "big")

    @staticmethod
    def decode(data: bytes) -> ConfChange:
        return ConfChange(ConfChangeType(data[0]), int.from_bytes(data[1:9], "big"))


@dataclass(frozen=True, slots=True)
class Entry:
    term: int
    index: int
    type: EntryType = EntryType.NORMAL
    data: bytes = b""


@dataclass(frozen=True, slots=True)
class HardState:
    """What must be on disk before any message that depends on it leaves the node."""

    term: int = 0
    vote: NodeId = NONE
    commit: int = 0


@dataclass(frozen=True, slots=True)
class ConfState:
    voters: tuple[NodeId, ...] = ()


@dataclass(frozen=True, slots=True)
class SnapshotMetadata:
    index: int = 0
    term: int = 0
    conf_state: ConfState = field(default_factory=ConfState)


@dataclass(frozen=True, slots=True)
class Snapshot:
    metadata: SnapshotMetadata = field(default_factory=SnapshotMetadata)
    data: bytes = b""

    @property
    def is_empty(self) -> bool:
        return self.metadata.index == 0


class MessageType(enum.IntEnum):
    # Local messages (never sent over the wire).
    HUP = 0  # start an election
    BEAT = 1  # leader: send heartbeats
    PROP = 2  # proposal (may be forwarded by a follower to the leader)
    # Wire messages.
    APP = 3
    APP_RESP = 4
    VOTE = 5
    VOTE_RESP = 6
    PRE_VOTE = 7
    PRE_VOTE_RESP = 8
    SNAP = 9
    HEARTBEAT = 10
    HEARTBEAT_RESP = 11
    READ_INDEX = 12
    READ_INDEX_RESP = 13
    TIMEOUT_NOW = 14
    SNAP_STATUS = 15  # local: report a snapshot send result
    UNREACHABLE = 16  # local: report an unreachable peer
    TRANSFER_LEADER = 17


@dataclass(frozen=True, slots=True)
class Message:
    type: MessageType
    to: NodeId = NONE
    frm: NodeId = NONE
    term: int = 0
    log_term: int = 0
    index: int = 0
    entries: tuple[Entry, ...] = ()
    commit: int = 0
    snapshot: Snapshot | None = None
    reject: bool = False
    reject_hint: int = 0
    context: bytes = b""


@dataclass(frozen=True, slots=True)
class ReadState:
    """A ReadIndex answer: once ``applied >= index`` a read tagged ``request_ctx`` is linearizable."""

    index: int
    request_ctx: bytes


class StateRole(enum.IntEnum):
    FOLLOWER = 0
    CANDIDATE = 1
    LEADER = 2
    PRE_CANDIDATE = 3


@dataclass(frozen=True, slots=True)
class SoftState:
    """Volatile state, not persisted: who leads and what this node is."""

    leader: NodeId = NONE
    role: StateRole = StateRole.FOLLOWER


@dataclass(frozen=True, slots=True)
class Ready:
    """What the caller must do, in this order:

    1. persist ``hard_state`` (if not None), ``entries`` and ``snapshot`` (if not None),
       durably (fsync) when ``must_sync``;
    2. send ``messages``;
    3. apply ``snapshot`` to the state machine (if not None), then ``committed_entries``,
       calling ``RawNode.apply_conf_change`` for CONF_CHANGE entries;
    4. call ``RawNode.advance(ready)``.
    """

    soft_state: SoftState | None = None
    hard_state: HardState | None = None
    read_states: tuple[ReadState, ...] = ()
    entries: tuple[Entry, ...] = ()
    snapshot: Snapshot | None = None
    committed_entries: tuple[Entry, ...] = ()
    messages: tuple[Message, ...] = ()
    must_sync: bool = False
