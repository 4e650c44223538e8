"""Leader-side message handling: proposals, replication feedback, ReadIndex and transfers.

Functions over a :class:`~.raft.Raft` in the LEADER role; ``Raft`` dispatches to
:func:`step_leader` for every message that is not handled before the role switch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .config import ProposalDropped
from .progress import Progress, ProgressState
from .quorum import VoteResult, vote_result
from .types import NONE, EntryType, Message, MessageType, ReadState

if TYPE_CHECKING:
    from .raft import Raft

MT = MessageType


def step_leader(r: Raft, m: Message) -> None:
    t = m.type
    if t is MT.BEAT:
        r.bcast_heartbeat(r.read_only.last_pending_ctx() or b"")
        return
    if t is MT.PROP:
        propose(r, m)
        return
    if t is MT.READ_INDEX:
        handle_read_index(r, m)
        return
    pr = r.prs.get(m.frm)
    if pr is None:
        return
    if t is MT.APP_RESP:
        handle_append_response(r, m, pr)
    elif t is MT.HEARTBEAT_RESP:
        pr.recent_active = True
        pr.msg_app_flow_paused = False
        if pr.match < r.log.last_index():
            r.send_append(m.frm)
        if m.context:
            handle_read_ack(r, m)
    elif t is MT.SNAP_STATUS:
        if pr.state is ProgressState.SNAPSHOT:
            if m.reject:
                pr.pending_snapshot = 0
            pr.become_probe()
            # Wait for the follower's APP_RESP (or a heartbeat) before probing again.
            pr.msg_app_flow_paused = True
    elif t is MT.UNREACHABLE:
        if pr.state is ProgressState.REPLICATE:
            pr.become_probe()
    elif t is MT.TRANSFER_LEADER:
        transfer_leader(r, m.frm, pr)


def propose(r: Raft, m: Message) -> None:
    if not m.entries:
        raise ProposalDropped("empty proposal")
    if r.id not in r.prs:
        raise ProposalDropped("this node is not a member of the configuration")
    if r.lead_transferee != NONE:
        raise ProposalDropped(f"leadership is being transferred to {r.lead_transferee}")
    for i, e in enumerate(m.entries):
        if e.type is EntryType.CONF_CHANGE:
            if r.pending_conf_index > r.log.applied:
                raise ProposalDropped("a configuration change is still pending")
            r.pending_conf_index = r.log.last_index() + i + 1
    r.append_entries(list(m.entries))
    r.bcast_append()


def handle_append_response(r: Raft, m: Message, pr: Progress) -> None:
    pr.recent_active = True
    if m.reject:
        next_probe = m.reject_hint
        if m.log_term > 0:
            # Skip every entry of ours whose term the follower cannot have.
            next_probe, _ = r.log.find_conflict_by_term(m.reject_hint, m.log_term)
        if pr.maybe_decr_to(m.index, next_probe):
            if pr.state is ProgressState.REPLICATE:
                pr.become_probe()
            r.send_append(m.frm)
        return
    was_paused = pr.is_paused()
    if pr.maybe_update(m.index):
        if pr.state is ProgressState.PROBE:
            pr.become_replicate()
        elif pr.state is ProgressState.SNAPSHOT and pr.match >= pr.pending_snapshot:
            pr.become_probe()
            pr.become_replicate()
        elif pr.state is ProgressState.REPLICATE:
            pr.inflights.free_le(m.index)
        if r.maybe_commit():
            r.bcast_append()
        elif was_paused:
            r.send_append(m.frm)
        # Keep the pipeline full while there is more to send.
        while r.send_append(m.frm, send_if_empty=False):
            pass
        if m.frm == r.lead_transferee and pr.match == r.log.last_index():
            r.send(Message(MT.TIMEOUT_NOW, to=m.frm))


def handle_read_index(r: Raft, m: Message) -> None:
    if len(r.prs) == 1 and r.id in r.prs:
        answer_read(r, m, r.log.committed)
        return
    if not r.committed_in_term():
        # The commit index of a brand-new leader may be stale; wait for its first commit.
        r.pending_read_index.append(m)
        return
    r.read_only.add_request(r.log.committed, m)
    r.read_only.recv_ack(r.id, m.context)
    r.bcast_heartbeat(m.context)


def handle_read_ack(r: Raft, m: Message) -> None:
    acks = r.read_only.recv_ack(m.frm, m.context)
    if acks is None or vote_result(r.prs, acks) is not VoteResult.WON:
        return
    for rs in r.read_only.advance(m.context):
        answer_read(r, rs.req, rs.index)


def answer_read(r: Raft, req: Message, index: int) -> None:
    if req.frm in (NONE, r.id):
        r.read_states.append(ReadState(index=index, request_ctx=req.context))
    else:
        r.send(Message(MT.READ_INDEX_RESP, to=req.frm, index=index, context=req.context))


def transfer_leader(r: Raft, transferee: int, pr: Progress) -> None:
    if r.lead_transferee == transferee or transferee == r.id:
        return
    r.election_elapsed = 0  # the transfer must finish within one election timeout
    r.lead_transferee = transferee
    if pr.match == r.log.last_index():
        r.send(Message(MT.TIMEOUT_NOW, to=transferee))
    else:
        r.send_append(transferee)
