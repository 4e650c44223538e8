"""The Raft state machine: roles, elections, replication, commit, reads and membership.

Pure: input is :meth:`Raft.tick` and :meth:`Raft.step`, output accumulates in ``msgs``,
``read_states`` and the log's unstable part, which :class:`~.rawnode.RawNode` hands to the
caller as a ``Ready``. No I/O, no clock, randomness only from ``Config.rng``.

Roles swap behaviour by swapping ``_tick`` and ``_step_role`` (as etcd does). Terms are
handled once, in :meth:`step`, before any role-specific code sees a message.

Membership is single-server and takes effect when the caller applies the CONF_CHANGE entry
(:meth:`apply_conf_change`); the leader accepts a new one only once the previous is applied.
"""

from __future__ import annotations

from collections.abc import Callable

from . import leader
from .config import Config, ProposalDropped
from .log import RaftLog
from .progress import Progress
from .quorum import VoteResult, committed_index, vote_result
from .read_only import ReadOnly
from .storage import Compacted, Storage, Unavailable
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
    ReadState,
    SoftState,
    StateRole,
)

MT = MessageType
CAMPAIGN_TRANSFER = b"raft:campaign-transfer"
_HEARTBEAT_LIKE = (MT.APP, MT.HEARTBEAT, MT.SNAP)


class Raft:
    def __init__(self, config: Config, storage: Storage) -> None:
        config.validate()
        self.id = config.id
        self.cfg = config
        self.rng = config.rng
        self.log = RaftLog(storage, config.max_committed_size_per_ready)
        hs, cs = storage.initial_state()
        self.term = 0
        self.vote = NONE
        self.lead = NONE
        self.role = StateRole.FOLLOWER
        self.prs: dict[int, Progress] = {}
        self._set_voters(cs.voters)
        self.msgs: list[Message] = []
        self.read_states: list[ReadState] = []
        self.votes: dict[int, bool] = {}
        self.read_only = ReadOnly()
        self.pending_read_index: list[Message] = []  # held until the leader commits in its term
        self.lead_transferee = NONE
        self.pending_conf_index = 0
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.randomized_election_timeout = 0
        self._tick: Callable[[], None] = self._tick_election
        self._step_role: Callable[[Message], None] = self._step_follower
        if hs != HardState():
            if not self.log.committed <= hs.commit <= self.log.last_index():
                raise ValueError(f"hard state commit {hs.commit} outside the stored log")
            self.log.commit_to(hs.commit)
            self.term = hs.term
            self.vote = hs.vote
        if config.applied:
            self.log.applied_to(min(config.applied, self.log.committed))
        self.become_follower(self.term, NONE)

    # -- state snapshots --------------------------------------------------------------------

    def soft_state(self) -> SoftState:
        return SoftState(leader=self.lead, role=self.role)

    def hard_state(self) -> HardState:
        return HardState(term=self.term, vote=self.vote, commit=self.log.committed)

    def voters(self) -> tuple[int, ...]:
        return tuple(sorted(self.prs))

    # -- sending ----------------------------------------------------------------------------

    def send(self, m: Message, *, term: int | None = None) -> None:
        """Queue ``m``, stamping sender and term (PROP/READ_INDEX travel without a term)."""
        if term is None:
            term = 0 if m.type in (MT.PROP, MT.READ_INDEX) else self.term
        self.msgs.append(
            Message(
                m.type,
                m.to,
                m.frm or self.id,
                term,
                m.log_term,
                m.index,
                m.entries,
                m.commit,
                m.snapshot,
                m.reject,
                m.reject_hint,
                m.context,
            )
        )

    def send_append(self, to: int, send_if_empty: bool = True) -> bool:
        pr = self.prs[to]
        if pr.is_paused():
            return False
        prev = pr.next - 1
        try:
            prev_term = self.log.term(prev)
            ents = self.log.entries(pr.next, self.cfg.max_size_per_msg)
        except (Compacted, Unavailable):
            return self._send_snapshot(to, pr)
        if not ents and not send_if_empty:
            return False
        self.send(
            Message(
                MT.APP, to=to, index=prev, log_term=prev_term, entries=tuple(ents), commit=self.log.committed
            )
        )
        pr.sent_entries(len(ents))
        return True

    def _send_snapshot(self, to: int, pr: Progress) -> bool:
        if not pr.recent_active:
            return False  # don't ship a snapshot to a peer that may well be down
        snap = self.log.snapshot()
        if snap.is_empty:
            raise AssertionError("need a snapshot but storage has none")
        self.send(Message(MT.SNAP, to=to, snapshot=snap))
        pr.become_snapshot(snap.metadata.index)
        return True

    def bcast_append(self) -> None:
        for to in self.prs:
            if to != self.id:
                self.send_append(to)

    def bcast_heartbeat(self, ctx: bytes = b"") -> None:
        for to, pr in self.prs.items():
            if to != self.id:
                commit = min(pr.match, self.log.committed)
                self.send(Message(MT.HEARTBEAT, to=to, commit=commit, context=ctx))

    # -- role transitions -------------------------------------------------------------------

    def _reset(self, term: int) -> None:
        if self.term != term:
            self.term = term
            self.vote = NONE
        self.lead = NONE
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.randomized_election_timeout = self.cfg.election_tick + self.rng.randrange(self.cfg.election_tick)
        self.lead_transferee = NONE
        self.votes = {}
        last = self.log.last_index()
        for pid in self.prs:
            self.prs[pid] = Progress(
                last + 1, self.cfg.max_inflight_msgs, match=last if pid == self.id else 0
            )
        self.pending_conf_index = 0
        self.read_only = ReadOnly()
        self.pending_read_index = []

    def become_follower(self, term: int, lead: int) -> None:
        self._reset(term)
        self.lead = lead
        self.role = StateRole.FOLLOWER
        self._tick = self._tick_election
        self._step_role = self._step_follower

    def become_pre_candidate(self) -> None:
        # Neither term nor vote change: a pre-election that fails leaves no trace.
        self.votes = {}
        self.lead = NONE
        self.role = StateRole.PRE_CANDIDATE
        self._tick = self._tick_election
        self._step_role = self._step_candidate

    def become_candidate(self) -> None:
        self._reset(self.term + 1)
        self.vote = self.id
        self.role = StateRole.CANDIDATE
        self._tick = self._tick_election
        self._step_role = self._step_candidate

    def become_leader(self) -> None:
        self._reset(self.term)
        self.lead = self.id
        self.role = StateRole.LEADER
        self._tick = self._tick_heartbeat
        self._step_role = self._step_leader
        self.prs[self.id].recent_active = True
        # Conservative: any conf change in the uncommitted tail may still be pending.
        self.pending_conf_index = self.log.last_index()
        # The empty entry lets the leader commit (and so learn the commit index) in its term.
        self.append_entries([Entry(term=0, index=0)])

    def promotable(self) -> bool:
        return self.id in self.prs and self.log.unstable.snapshot is None

    # -- ticks ------------------------------------------------------------------------------

    def tick(self) -> None:
        self._tick()

    def _tick_election(self) -> None:
        self.election_elapsed += 1
        if self.promotable() and self.election_elapsed >= self.randomized_election_timeout:
            self.election_elapsed = 0
            self.step(Message(MT.HUP, frm=self.id))

    def _tick_heartbeat(self) -> None:
        self.heartbeat_elapsed += 1
        self.election_elapsed += 1
        if self.election_elapsed >= self.cfg.election_tick:
            self.election_elapsed = 0
            if self.cfg.check_quorum and not self._quorum_active():
                self.become_follower(self.term, NONE)
                return
            if self.lead_transferee != NONE:
                self.lead_transferee = NONE  # the transfer timed out
        if self.heartbeat_elapsed >= self.cfg.heartbeat_tick:
            self.heartbeat_elapsed = 0
            self.bcast_heartbeat(self.read_only.last_pending_ctx() or b"")

    def _quorum_active(self) -> bool:
        active = {pid: True for pid, pr in self.prs.items() if pid == self.id or pr.recent_active}
        for pid, pr in self.prs.items():
            if pid != self.id:
                pr.recent_active = False
        return vote_result(self.prs, active) is VoteResult.WON

    # -- elections --------------------------------------------------------------------------

    def _hup(self, transfer: bool = False) -> None:
        if self.role is StateRole.LEADER or not self.promotable():
            return
        if self._has_unapplied_conf_change():
            return  # campaigning with a stale configuration could elect a minority
        if self.cfg.pre_vote and not transfer:
            self._campaign(pre_vote=True)
        else:
            self._campaign(pre_vote=False, transfer=transfer)

    def _has_unapplied_conf_change(self) -> bool:
        lo, hi = max(self.log.applied + 1, self.log.first_index()), self.log.committed + 1
        if lo >= hi:
            return False
        return any(e.type is EntryType.CONF_CHANGE for e in self.log.slice(lo, hi, None))

    def _campaign(self, pre_vote: bool, transfer: bool = False) -> None:
        if pre_vote:
            self.become_pre_candidate()
            kind, term = MT.PRE_VOTE, self.term + 1
        else:
            self.become_candidate()
            kind, term = MT.VOTE, self.term
        if self._poll(self.id, True) is VoteResult.WON:
            # Single-voter configuration: we won already.
            if pre_vote:
                self._campaign(pre_vote=False)
            else:
                self.become_leader()
            return
        ctx = CAMPAIGN_TRANSFER if transfer else b""
        last = self.log.last_index()
        last_term = self.log.last_term()
        for pid in self.prs:
            if pid != self.id:
                self.send(Message(kind, to=pid, index=last, log_term=last_term, context=ctx), term=term)

    def _poll(self, pid: int, granted: bool) -> VoteResult:
        self.votes.setdefault(pid, granted)
        return vote_result(self.prs, self.votes)

    # -- the entry point --------------------------------------------------------------------

    def step(self, m: Message) -> None:
        """Process one message. Raises :class:`ProposalDropped` for rejected local proposals."""
        if m.term == 0:
            pass  # local message, or a forwarded PROP / READ_INDEX
        elif m.term > self.term:
            if m.type in (MT.VOTE, MT.PRE_VOTE):
                force = m.context == CAMPAIGN_TRANSFER
                in_lease = (
                    self.cfg.check_quorum
                    and self.lead != NONE
                    and self.election_elapsed < self.cfg.election_tick
                )
                if in_lease and not force:
                    return  # we heard from a live leader recently: don't let it be deposed
            if m.type is MT.PRE_VOTE or (m.type is MT.PRE_VOTE_RESP and not m.reject):
                pass  # a pre-vote never changes our term; a granted one is for a future term
            elif m.type in _HEARTBEAT_LIKE:
                self.become_follower(m.term, m.frm)
            else:
                self.become_follower(m.term, NONE)
        elif m.term < self.term:
            if (self.cfg.check_quorum or self.cfg.pre_vote) and m.type in (MT.APP, MT.HEARTBEAT):
                # A stale leader (e.g. back from a partition) learns our term and steps down.
                self.send(Message(MT.APP_RESP, to=m.frm))
            elif m.type is MT.PRE_VOTE:
                self.send(Message(MT.PRE_VOTE_RESP, to=m.frm, reject=True))
            return

        if m.type is MT.HUP:
            self._hup()
        elif m.type in (MT.VOTE, MT.PRE_VOTE):
            self._handle_vote_request(m)
        else:
            self._step_role(m)

    def _handle_vote_request(self, m: Message) -> None:
        can_vote = (
            self.vote == m.frm
            or (self.vote == NONE and self.lead == NONE)
            or (m.type is MT.PRE_VOTE and m.term > self.term)
        )
        resp = MT.VOTE_RESP if m.type is MT.VOTE else MT.PRE_VOTE_RESP
        if can_vote and self.log.is_up_to_date(m.index, m.log_term):
            # Answer with the request's term so the candidate counts it (it may be our term + 1
            # for a pre-vote, which must not change our own term).
            self.send(Message(resp, to=m.frm), term=m.term)
            if m.type is MT.VOTE:
                self.election_elapsed = 0
                self.vote = m.frm
        else:
            self.send(Message(resp, to=m.frm, reject=True))

    # -- leader -----------------------------------------------------------------------------

    def append_entries(self, ents: list[Entry]) -> None:
        li = self.log.last_index()
        stamped = [Entry(self.term, li + 1 + i, e.type, e.data) for i, e in enumerate(ents)]
        li = self.log.append(stamped)
        self.prs[self.id].maybe_update(li)
        self.maybe_commit()

    def maybe_commit(self) -> bool:
        prs = self.prs
        mci = committed_index(prs, lambda pid: prs[pid].match)
        if not self.log.maybe_commit(mci, self.term):
            return False
        if self.pending_read_index and self.committed_in_term():
            held, self.pending_read_index = self.pending_read_index, []
            for rm in held:
                leader.handle_read_index(self, rm)
        return True

    def committed_in_term(self) -> bool:
        return self.log.term_or_zero(self.log.committed) == self.term

    def _step_leader(self, m: Message) -> None:
        leader.step_leader(self, m)

    # -- candidate / follower ---------------------------------------------------------------

    def _step_candidate(self, m: Message) -> None:
        my_resp = MT.PRE_VOTE_RESP if self.role is StateRole.PRE_CANDIDATE else MT.VOTE_RESP
        t = m.type
        if t is MT.PROP:
            raise ProposalDropped("no leader (election in progress)")
        if t in _HEARTBEAT_LIKE:
            self.become_follower(m.term, m.frm)  # a leader of our term exists
            self._step_follower(m)
        elif t is my_resp:
            result = self._poll(m.frm, not m.reject)
            if result is VoteResult.WON:
                if self.role is StateRole.PRE_CANDIDATE:
                    self._campaign(pre_vote=False)
                else:
                    self.become_leader()
                    self.bcast_append()
            elif result is VoteResult.LOST:
                self.become_follower(self.term, NONE)

    def _step_follower(self, m: Message) -> None:
        t = m.type
        if t is MT.PROP:
            if self.lead == NONE:
                raise ProposalDropped("no leader to forward the proposal to")
            self.send(Message(MT.PROP, to=self.lead, entries=m.entries))
        elif t is MT.APP:
            self.election_elapsed = 0
            self.lead = m.frm
            self._handle_append(m)
        elif t is MT.HEARTBEAT:
            self.election_elapsed = 0
            self.lead = m.frm
            self.log.commit_to(m.commit)
            self.send(Message(MT.HEARTBEAT_RESP, to=m.frm, context=m.context))
        elif t is MT.SNAP:
            self.election_elapsed = 0
            self.lead = m.frm
            self._handle_snapshot(m)
        elif t is MT.TRANSFER_LEADER:
            if self.lead != NONE:
                self.send(Message(MT.TRANSFER_LEADER, to=self.lead, frm=m.frm))
        elif t is MT.TIMEOUT_NOW:
            self._hup(transfer=True)
        elif t is MT.READ_INDEX:
            if self.lead != NONE:
                self.send(Message(MT.READ_INDEX, to=self.lead, context=m.context))
        elif t is MT.READ_INDEX_RESP:
            self.read_states.append(ReadState(index=m.index, request_ctx=m.context))

    def _handle_append(self, m: Message) -> None:
        if m.index < self.log.committed:
            self.send(Message(MT.APP_RESP, to=m.frm, index=self.log.committed))
            return
        last_new = self.log.maybe_append(m.index, m.log_term, m.commit, m.entries)
        if last_new is not None:
            self.send(Message(MT.APP_RESP, to=m.frm, index=last_new))
            return
        # Tell the leader where our log could match: the largest index at or below the
        # probe whose term is <= the probe's term, so it can skip whole terms at once.
        hint, hint_term = self.log.find_conflict_by_term(min(m.index, self.log.last_index()), m.log_term)
        self.send(
            Message(MT.APP_RESP, to=m.frm, index=m.index, reject=True, reject_hint=hint, log_term=hint_term)
        )

    def _handle_snapshot(self, m: Message) -> None:
        assert m.snapshot is not None
        if self._restore(m):
            self.send(Message(MT.APP_RESP, to=m.frm, index=self.log.last_index()))
        else:
            self.send(Message(MT.APP_RESP, to=m.frm, index=self.log.committed))

    def _restore(self, m: Message) -> bool:
        assert m.snapshot is not None
        meta = m.snapshot.metadata
        if meta.index <= self.log.committed:
            return False
        if self.log.match_term(meta.index, meta.term):
            self.log.commit_to(meta.index)  # we have the entries already; just catch up
            return False
        self.log.restore(m.snapshot)
        self.prs = {}
        self._set_voters(meta.conf_state.voters)
        return True

    # -- membership -------------------------------------------------------------------------

    def _set_voters(self, voters: tuple[int, ...]) -> None:
        last = self.log.last_index()
        for v in voters:
            self.prs[v] = Progress(last + 1, self.cfg.max_inflight_msgs, match=last if v == self.id else 0)

    def apply_conf_change(self, cc: ConfChange) -> ConfState:
        if cc.type is ConfChangeType.ADD_NODE:
            if cc.node_id not in self.prs:
                pr = Progress(self.log.last_index() + 1, self.cfg.max_inflight_msgs)
                pr.recent_active = True  # give the newcomer a grace period before check-quorum
                self.prs[cc.node_id] = pr
        elif cc.node_id in self.prs:
            del self.prs[cc.node_id]
            if cc.node_id == self.lead_transferee:
                self.lead_transferee = NONE
            if self.role is StateRole.LEADER:
                if cc.node_id == self.id:
                    self.become_follower(self.term, NONE)
                elif self.maybe_commit():
                    self.bcast_append()  # a smaller quorum may commit more
        return ConfState(voters=self.voters())


__all__ = ["CAMPAIGN_TRANSFER", "Raft"]
