"""The caller-facing Raft node: feed it time and messages, drain ``Ready`` values.

Driving loop (single-threaded; the node is not thread-safe)::

    node.tick() / node.step(msg) / node.propose(...)       # any number of inputs
    while node.has_ready():
        rd = node.ready()
        persist rd.hard_state, rd.snapshot, rd.entries      # in that order, fsync if rd.must_sync
        send rd.messages
        apply rd.snapshot, then rd.committed_entries        # apply_conf_change for CONF_CHANGE
        node.advance(rd)

``ready()`` hands out the outgoing messages and read states (they are not repeated), so call
``advance(rd)`` for every ``Ready`` before asking for the next one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field

from .config import Config, ProposalDropped
from .progress import ProgressState
from .raft import Raft
from .storage import MemoryStorage
from .types import (
    NONE,
    ConfChange,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MessageType,
    Ready,
    Snapshot,
    SnapshotMetadata,
    SoftState,
    StateRole,
)

MT = MessageType
# Message types that only make sense inside one node; dropped if they arrive from the wire.
_LOCAL_TYPES = frozenset({MT.HUP, MT.BEAT, MT.SNAP_STATUS, MT.UNREACHABLE})
_RESPONSE_TYPES = frozenset({MT.APP_RESP, MT.VOTE_RESP, MT.PRE_VOTE_RESP, MT.HEARTBEAT_RESP})

BOOTSTRAP_INDEX = 1
BOOTSTRAP_TERM = 1


@dataclass(frozen=True, slots=True)
class Status:
    id: int
    term: int
    vote: int
    commit: int
    applied: int
    role: StateRole
    leader_id: int
    # Leader only: follower id -> (match, next, state).
    progress: dict[int, tuple[int, int, ProgressState]] = field(default_factory=dict)
    voters: tuple[int, ...] = ()
    lead_transferee: int = NONE


class RawNode:
    def __init__(self, config: Config, storage: MemoryStorage) -> None:
        """Build (or restart) a node over ``storage``.

        With an empty storage and no voters the node just waits to be contacted by a leader
        (a replica being added). On restart, committed entries above ``config.applied`` are
        delivered again in ``committed_entries``.
        """
        self._raft = Raft(config, storage)
        self._prev_soft = self._raft.soft_state()
        self._prev_hard = self._raft.hard_state()

    @staticmethod
    def bootstrap(storage: MemoryStorage, voters: Sequence[int]) -> None:
        """Make a brand-new storage start with ``voters`` as its configuration.

        Writes a snapshot at index 1, term 1 with empty data carrying the configuration,
        and a hard state with term 1 and commit 1: the state machine's initial state is
        "restored from empty data". Call it once per replica with the same voters everywhere.
        A replica added later is *not* bootstrapped; it receives a snapshot from the leader.
        """
        if storage.last_index() != 0 or storage.snapshot().metadata.conf_state.voters:
            raise ValueError("bootstrap needs a fresh storage")
        if not voters or NONE in voters:
            raise ValueError(f"invalid voters {voters!r}")
        cs = ConfState(voters=tuple(sorted(set(voters))))
        meta = SnapshotMetadata(index=BOOTSTRAP_INDEX, term=BOOTSTRAP_TERM, conf_state=cs)
        storage.apply_snapshot(Snapshot(metadata=meta))
        storage.set_hard_state(HardState(term=BOOTSTRAP_TERM, commit=BOOTSTRAP_INDEX))

    @property
    def id(self) -> int:
        return self._raft.id

    # -- inputs ---------------------------------------------------------------------------------

    def tick(self) -> None:
        self._raft.tick()

    def step(self, msg: Message) -> None:
        """Deliver a message from a peer. Local-only types and stale messages are dropped."""
        if msg.type in _LOCAL_TYPES:
            return
        if msg.type in _RESPONSE_TYPES and msg.frm not in self._raft.prs:
            return  # a response from a peer we no longer track
        # A forwarded proposal we cannot take is dropped; the proposer times out and retries.
        with contextlib.suppress(ProposalDropped):
            self._raft.step(msg)

    def propose(self, data: bytes) -> None:
        self.propose_many((data,))

    def propose_many(self, datas: Sequence[bytes]) -> None:
        """Propose a batch; it is appended and replicated as one round."""
        ents = tuple(Entry(term=0, index=0, data=d) for d in datas)
        self._raft.step(Message(MT.PROP, frm=self.id, entries=ents))

    def propose_conf_change(self, cc: ConfChange) -> None:
        ent = Entry(term=0, index=0, type=EntryType.CONF_CHANGE, data=cc.encode())
        self._raft.step(Message(MT.PROP, frm=self.id, entries=(ent,)))

    def apply_conf_change(self, cc: ConfChange) -> ConfState:
        """Apply a committed conf change (call it while applying its entry); returns the new config."""
        return self._raft.apply_conf_change(cc)

    def read_index(self, ctx: bytes) -> None:
        """Ask for a linearizable read point; answered as a ``ReadState`` with ``ctx`` in a later Ready.

        The request is silently lost if leadership changes before it is confirmed; callers
        should retry after a timeout.
        """
        self._raft.step(Message(MT.READ_INDEX, context=ctx))

    def campaign(self) -> None:
        self._raft.step(Message(MT.HUP, frm=self.id))

    def transfer_leader(self, to: int) -> None:
        self._raft.step(Message(MT.TRANSFER_LEADER, frm=to))

    def report_unreachable(self, node_id: int) -> None:
        self._raft.step(Message(MT.UNREACHABLE, frm=node_id))

    def report_snapshot(self, node_id: int, ok: bool) -> None:
        self._raft.step(Message(MT.SNAP_STATUS, frm=node_id, reject=not ok))

    # -- outputs --------------------------------------------------------------------------------

    def has_ready(self) -> bool:
        r = self._raft
        if r.msgs or r.read_states or r.log.unstable.entries or r.log.unstable.snapshot is not None:
            return True
        if r.soft_state() != self._prev_soft:
            return True
        if r.hard_state() != self._prev_hard:
            return True
        return r.log.has_next_committed_ents()

    def ready(self) -> Ready:
        r = self._raft
        log = r.log
        soft = r.soft_state()
        hard = r.hard_state()
        entries = tuple(log.unstable.entries)
        snap = log.unstable.snapshot
        committed = tuple(log.next_committed_ents())
        rd = Ready(
            soft_state=soft if soft != self._prev_soft else None,
            hard_state=hard if hard != self._prev_hard else None,
            read_states=tuple(r.read_states),
            entries=entries,
            snapshot=snap,
            committed_entries=committed,
            messages=tuple(r.msgs),
            must_sync=bool(entries)
            or snap is not None
            or hard.term != self._prev_hard.term
            or hard.vote != self._prev_hard.vote,
        )
        r.msgs = []
        r.read_states = []
        self._prev_soft = soft
        self._prev_hard = hard
        if snap is not None:
            log.applying = max(log.applying, snap.metadata.index)
        if committed:
            log.applying = max(log.applying, committed[-1].index)
        return rd

    def advance(self, rd: Ready) -> None:
        """The caller has persisted, sent and applied ``rd``."""
        log = self._raft.log
        if rd.entries:
            last = rd.entries[-1]
            log.unstable.stable_to(last.index, last.term)
        if rd.snapshot is not None:
            log.unstable.stable_snap_to(rd.snapshot.metadata.index)
            log.applied_to(rd.snapshot.metadata.index)
        if rd.committed_entries:
            log.applied_to(rd.committed_entries[-1].index)

    def status(self) -> Status:
        r = self._raft
        progress: dict[int, tuple[int, int, ProgressState]] = {}
        if r.role is StateRole.LEADER:
            progress = {pid: (pr.match, pr.next, pr.state) for pid, pr in r.prs.items()}
        return Status(
            id=r.id,
            term=r.term,
            vote=r.vote,
            commit=r.log.committed,
            applied=r.log.applied,
            role=r.role,
            leader_id=r.lead,
            progress=progress,
            voters=r.voters(),
            lead_transferee=r.lead_transferee,
        )

    # -- introspection for tests and tools ------------------------------------------------------

    def soft_state(self) -> SoftState:
        return self._raft.soft_state()

    @property
    def raft(self) -> Raft:
        """The underlying state machine (tests and debugging only)."""
        return self._raft
