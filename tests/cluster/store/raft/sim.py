"""A seeded randomized cluster simulation that checks Raft's safety properties at every step.

Faults: message loss, reordering, duplication, partitions, crash-restarts (a node's "disk" is
only what its Readys told it to persist), compaction with snapshot catch-up and, optionally,
membership changes. Checked continuously:

* election safety: at most one leader per term;
* log matching: an (index, term) pair always names the same entry with the same predecessor
  term, in every log that ever persisted it (by induction, logs agreeing on one entry agree
  on the whole prefix);
* leader completeness: when a node becomes leader of term T, its log holds every entry known
  committed in a term <= T (above its own snapshot);
* state machine safety: no two nodes apply different entries (or snapshots) at an index.

``run_liveness`` then heals everything and requires a leader whose whole configuration has
applied every committed entry.
"""

from __future__ import annotations

import contextlib
import random
import zlib
from dataclasses import dataclass, field

from cluster.store.raft import (
    ConfChange,
    ConfChangeType,
    Config,
    ConfState,
    EntryType,
    MemoryStorage,
    Message,
    MessageType,
    ProposalDropped,
    RawNode,
    Ready,
    StateRole,
)

MT = MessageType


class SafetyViolation(AssertionError):
    pass


@dataclass
class SimNode:
    id: int
    storage: MemoryStorage
    raw: RawNode | None = None
    sm_index: int = 0
    sm_crc: int = 0
    conf_state: ConfState = field(default_factory=ConfState)
    removed: bool = False


def _sm_encode(index: int, crc: int) -> bytes:
    return b"%d:%d" % (index, crc)


def _sm_decode(data: bytes) -> tuple[int, int]:
    if not data:
        return 0, 0
    a, b = data.split(b":")
    return int(a), int(b)


class Sim:
    def __init__(self, seed: int, n: int, membership: bool = False) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.membership = membership
        self.nodes: dict[int, SimNode] = {}
        self.net: list[Message] = []
        self.group: dict[int, int] = {}  # node -> partition group; absent = group 0
        self.loss = self.rng.choice((0.0, 0.05, 0.2))
        self.dup = self.rng.choice((0.0, 0.05))
        self.election_tick = self.rng.choice((3, 5, 10))
        self.max_inflight = self.rng.choice((1, 4, 256))
        self.next_payload = 0
        # Invariant bookkeeping.
        self.leader_of_term: dict[int, int] = {}
        self.entry_ids: dict[tuple[int, int], tuple[int, bytes, int]] = {}
        self.committed: dict[int, int] = {}  # index -> term of the committed entry
        self.commit_term: dict[int, int] = {}  # index -> lowest term at which it was seen committed
        self.applied_crc: dict[int, int] = {}
        self.seen_commit: dict[int, int] = {}
        self.checked_terms: set[int] = set()  # terms whose leader passed the completeness check
        for nid in range(1, n + 1):
            storage = MemoryStorage()
            RawNode.bootstrap(storage, range(1, n + 1))
            self.nodes[nid] = SimNode(nid, storage)
            self.start(nid)

    # -- node lifecycle -----------------------------------------------------------------

    def start(self, nid: int) -> None:
        node = self.nodes[nid]
        snap = node.storage.snapshot()
        cfg = Config(
            id=nid,
            rng=random.Random(self.rng.random()),
            applied=snap.metadata.index,
            election_tick=self.election_tick,
            max_inflight_msgs=self.max_inflight,
            max_size_per_msg=self.rng.choice((1, 1 << 20)),
        )
        node.raw = RawNode(cfg, node.storage)
        node.sm_index, node.sm_crc = _sm_decode(snap.data) if snap.data else (snap.metadata.index, 0)
        node.conf_state = snap.metadata.conf_state
        self.seen_commit[nid] = node.storage.hard_state().commit
        self.process(node)

    def crash(self, nid: int) -> None:
        self.nodes[nid].raw = None

    def up(self) -> list[SimNode]:
        return [n for n in self.nodes.values() if n.raw is not None]

    # -- the Ready loop, with checks ----------------------------------------------------

    def process(self, node: SimNode) -> None:
        raw = node.raw
        assert raw is not None
        while raw.has_ready():
            rd = raw.ready()
            self.persist(node, rd)
            self.net.extend(rd.messages)
            self.apply(node, rd)
            raw.advance(rd)
        st = raw.status()
        if st.role is StateRole.LEADER:
            first = self.leader_of_term.setdefault(st.term, node.id)
            if first != node.id:
                raise SafetyViolation(f"two leaders in term {st.term}: {first} and {node.id}")
            if st.term not in self.checked_terms:
                self.checked_terms.add(st.term)
                self.check_leader_completeness(node, st.term)

    def persist(self, node: SimNode, rd: Ready) -> None:
        st = node.storage
        if rd.hard_state is not None:
            st.set_hard_state(rd.hard_state)
        if rd.snapshot is not None:
            st.apply_snapshot(rd.snapshot)
        st.append(rd.entries)
        for e in rd.entries:
            try:
                prev = st.term(e.index - 1)
            except Exception:
                continue
            ident = (int(e.type), e.data, prev)
            known = self.entry_ids.setdefault((e.index, e.term), ident)
            if known != ident:
                raise SafetyViolation(f"log matching: ({e.index}, {e.term}) is {known} and {ident}")
        if rd.hard_state is not None:
            old = self.seen_commit.get(node.id, 0)
            new = rd.hard_state.commit
            assert node.raw is not None
            log = node.raw.raft.log
            for i in range(max(old, log.first_index() - 1) + 1, new + 1):
                t = log.term(i)
                if self.committed.setdefault(i, t) != t:
                    raise SafetyViolation(f"index {i} committed with terms {self.committed[i]} and {t}")
                self.commit_term[i] = min(self.commit_term.get(i, rd.hard_state.term), rd.hard_state.term)
            self.seen_commit[node.id] = max(old, new)

    def apply(self, node: SimNode, rd: Ready) -> None:
        raw = node.raw
        assert raw is not None
        if rd.snapshot is not None:
            meta = rd.snapshot.metadata
            _index, crc = _sm_decode(rd.snapshot.data) if rd.snapshot.data else (meta.index, 0)
            node.sm_index, node.sm_crc, node.conf_state = meta.index, crc, meta.conf_state
            self._check_applied(meta.index, crc)
        for e in rd.committed_entries:
            if e.index != node.sm_index + 1:
                raise SafetyViolation(f"node {node.id} applied {e.index} after {node.sm_index}")
            if e.type is EntryType.CONF_CHANGE:
                cc = ConfChange.decode(e.data)
                node.conf_state = raw.apply_conf_change(cc)
                if cc.type is ConfChangeType.REMOVE_NODE and cc.node_id in self.nodes:
                    self.nodes[cc.node_id].removed = True
            node.sm_crc = zlib.crc32(b"%d/%d/" % (e.term, e.type) + e.data, node.sm_crc)
            node.sm_index = e.index
            self._check_applied(e.index, node.sm_crc)

    def _check_applied(self, index: int, crc: int) -> None:
        if self.applied_crc.setdefault(index, crc) != crc:
            raise SafetyViolation(f"state machines diverge at index {index}")

    def check_leader_completeness(self, node: SimNode, term: int) -> None:
        assert node.raw is not None
        log = node.raw.raft.log
        floor = log.first_index()
        for i, t in self.committed.items():
            if i >= floor and self.commit_term[i] <= term and log.term_or_zero(i) != t:
                raise SafetyViolation(f"leader {node.id} of term {term} lacks committed entry {i}")

    # -- faults and inputs --------------------------------------------------------------

    def connected(self, a: int, b: int) -> bool:
        return self.group.get(a, 0) == self.group.get(b, 0)

    def deliver_one(self, lossy: bool = True) -> None:
        i = self.rng.randrange(len(self.net))
        m = self.net[i]
        if lossy and self.rng.random() < self.dup:
            pass  # leave a copy behind: it will be delivered again later
        else:
            self.net[i] = self.net[-1]
            self.net.pop()
        self.deliver(m, lossy)

    def deliver(self, m: Message, lossy: bool) -> None:
        sender = self.nodes.get(m.frm)
        target = self.nodes.get(m.to)
        lost = target is None or target.raw is None or not self.connected(m.frm, m.to)
        lost = lost or (lossy and self.rng.random() < self.loss)
        if m.type is MT.SNAP and sender is not None and sender.raw is not None:
            sender.raw.report_snapshot(m.to, ok=not lost)
            self.process(sender)
        if lost or target is None or target.raw is None:
            return
        target.raw.step(m)
        self.process(target)

    def propose(self) -> None:
        node = self.rng.choice(self.up())
        assert node.raw is not None
        self.next_payload += 1
        batch = [b"p%d.%d" % (self.next_payload, k) for k in range(self.rng.randint(1, 3))]
        with contextlib.suppress(ProposalDropped):
            node.raw.propose_many(batch)
        self.process(node)

    def change_membership(self) -> None:
        leaders = [n for n in self.up() if n.raw is not None and n.raw.status().role is StateRole.LEADER]
        if not leaders:
            return
        leader = leaders[0]
        assert leader.raw is not None
        voters = leader.raw.status().voters
        if len(voters) > 3 or (len(voters) == 3 and self.rng.random() < 0.5):
            cc = ConfChange(ConfChangeType.REMOVE_NODE, self.rng.choice(voters))
        else:
            nid = max(self.nodes) + 1
            self.nodes[nid] = SimNode(nid, MemoryStorage())
            self.start(nid)
            cc = ConfChange(ConfChangeType.ADD_NODE, nid)
        with contextlib.suppress(ProposalDropped):
            leader.raw.propose_conf_change(cc)
        self.process(leader)

    def compact(self) -> None:
        node = self.rng.choice(self.up())
        if node.sm_index > node.storage.snapshot().metadata.index:
            node.storage.create_snapshot(
                node.sm_index, node.conf_state, _sm_encode(node.sm_index, node.sm_crc)
            )
            keep = self.rng.choice((0, 0, 5))
            if node.sm_index - keep > node.storage.first_index() - 1:
                node.storage.compact(node.sm_index - keep)

    def leader(self) -> SimNode | None:
        for n in self.up():
            if n.raw is not None and n.raw.status().role is StateRole.LEADER:
                return n
        return None

    def partition(self) -> None:
        leader = self.leader()
        if leader is not None and self.rng.random() < 0.5:
            self.group = {leader.id: 1}  # cut the leader off, typically with unreplicated entries
        else:
            self.group = {nid: self.rng.randrange(2) for nid in self.nodes}

    def tick(self, node: SimNode) -> None:
        assert node.raw is not None
        node.raw.tick()
        self.process(node)

    def step(self) -> None:
        r = self.rng.random()
        ups = self.up()
        if r < 0.40 and self.net:
            self.deliver_one()
        elif r < 0.60 and ups:
            self.tick(self.rng.choice(ups))
        elif r < 0.65:
            for node in ups:  # time passes for everyone
                self.tick(node)
        elif r < 0.80 and ups:
            self.propose()
        elif r < 0.83:
            self.partition()
        elif r < 0.86:
            self.group = {}
        elif r < 0.88 and len(ups) > 1:
            leader = self.leader()
            victim = leader if leader is not None and self.rng.random() < 0.5 else self.rng.choice(ups)
            self.crash(victim.id)
        elif r < 0.92:
            down = [n for n in self.nodes.values() if n.raw is None and not n.removed]
            if down:
                self.start(self.rng.choice(down).id)
        elif r < 0.95 and ups:
            self.compact()
        elif r < 0.97 and self.membership:
            self.change_membership()

    # -- liveness -----------------------------------------------------------------------

    def run_liveness(self, max_rounds: int = 400) -> None:
        self.group = {}
        for node in self.nodes.values():
            if node.raw is None:
                self.start(node.id)
        for _ in range(max_rounds):
            while self.net:
                m = self.net.pop(0)
                self.deliver(m, lossy=False)
            if self.converged():
                return
            for node in self.up():
                assert node.raw is not None
                node.raw.tick()
                self.process(node)
        raise AssertionError(f"seed {self.seed}: no convergence after healing: {self.describe()}")

    def converged(self) -> bool:
        leaders = [n for n in self.up() if n.raw is not None and n.raw.status().role is StateRole.LEADER]
        top = max((n.raw.status().term for n in leaders if n.raw is not None), default=0)
        current = [n for n in leaders if n.raw is not None and n.raw.status().term == top]
        if len(current) != 1:
            return False
        raw = current[0].raw
        assert raw is not None
        st = raw.status()
        if raw.raft.log.term_or_zero(st.commit) != st.term or st.commit < max(self.committed, default=0):
            return False
        members = [self.nodes[v] for v in st.voters]
        if any(m.sm_index != st.commit for m in members):
            return False
        if len({m.sm_crc for m in members}) != 1:
            raise SafetyViolation("state machines differ after convergence")
        return True

    def describe(self) -> str:
        parts = []
        for n in self.nodes.values():
            if n.raw is None:
                parts.append(f"{n.id}:down")
                continue
            st = n.raw.status()
            state = f"{st.role.name} t={st.term} c={st.commit} a={n.sm_index}"
            parts.append(f"{n.id}:{state} v={st.voters} p={st.progress}")
        return "; ".join(parts)


def run_seed(seed: int, n: int, steps: int, membership: bool = False) -> Sim:
    sim = Sim(seed, n, membership)
    for _ in range(steps):
        sim.step()
    sim.run_liveness()
    return sim
