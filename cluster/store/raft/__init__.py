"""A pure Raft consensus core in the style of etcd's raft library (no I/O, no clock).

See ``docs/raft.md`` for how to drive it. Public API: :class:`RawNode`, :class:`Config`,
:class:`MemoryStorage`, :class:`Status`, :class:`ProposalDropped` and the value types.
"""

from .config import Config, ProposalDropped
from .progress import ProgressState
from .rawnode import RawNode, Status
from .storage import Compacted, MemoryStorage, SnapOutOfDate, Storage, StorageError, Unavailable
from .types import (
    NONE,
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MessageType,
    NodeId,
    ReadState,
    Ready,
    Snapshot,
    SnapshotMetadata,
    SoftState,
    StateRole,
)

__all__ = [
    "NONE",
    "Compacted",
    "ConfChange",
    "ConfChangeType",
    "ConfState",
    "Config",
    "Entry",
    "EntryType",
    "HardState",
    "MemoryStorage",
    "Message",
    "MessageType",
    "NodeId",
    "ProgressState",
    "ProposalDropped",
    "RawNode",
    "ReadState",
    "Ready",
    "SnapOutOfDate",
    "Snapshot",
    "SnapshotMetadata",
    "SoftState",
    "StateRole",
    "Status",
    "Storage",
    "StorageError",
    "Unavailable",
]
