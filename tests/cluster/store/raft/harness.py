"""A tiny in-memory cluster for scripted Raft scenarios (in the spirit of etcd's rafttest).

Each node has a ``MemoryStorage`` "disk" that only ever holds what a ``Ready`` told it to
persist, so ``restart`` rebuilds a node from exactly its durable state. Messages sit in an
in-flight queue until ``deliver``/``stabilize``; ``isolate``/``cut`` drop them at delivery.
The state machine is the list of applied NORMAL payloads; its snapshot is that list, pickled.
"""

from __future__ import annotations

import pickle
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from cluster.store.raft import (
    ConfChange,
    ConfChangeType,
    Config,
    ConfState,
    EntryType,
    MemoryStorage,
    Message,
    RawNode,
    ReadState,
    StateRole,
)


@dataclass
class Node:
    id: int
    storage: MemoryStorage
    raw: RawNode
    applied: list[bytes] = field(default_factory=list)
    applied_index: int = 0
    conf_state: ConfState = field(default_factory=ConfState)
    read_states: list[ReadState] = field(default_factory=list)
    up: bool = True


class Network:
    def __init__(self, seed: int = 0, **config: object) -> None:
        self.seed = seed
        self.config = config
        self.nodes: dict[int, Node] = {}
        self.inflight: list[Message] = []
        self.isolated: set[int] = set()
        self.cuts: set[frozenset[int]] = set()

    # -- building -----------------------------------------------------------------------

    def _config(self, nid: int, applied: int = 0) -> Config:
        rng = random.Random(self.seed * 1000 + nid)
        return Config(id=nid, rng=rng, applied=applied, **self.config)  # type: ignore[arg-type]

    def add_nodes(self, n: int) -> None:
        """Start ``n`` bootstrapped voters 1..n (or, if the cluster exists, blank joiners)."""
        if not self.nodes:
            voters = list(range(1, n + 1))
            for nid in voters:
                storage = MemoryStorage()
                RawNode.bootstrap(storage, voters)
                self._start(nid, storage)
        else:
            for nid in range(max(self.nodes) + 1, max(self.nodes) + 1 + n):
                self._start(nid, MemoryStorage())

    def _start(self, nid: int, storage: MemoryStorage) -> None:
        snap = storage.snapshot()
        node = Node(nid, storage, RawNode(self._config(nid, snap.metadata.index), storage))
        self._restore_sm(node, snap.data, snap.metadata.index, snap.metadata.conf_state)
        self.nodes[nid] = node

    @staticmethod
    def _restore_sm(node: Node, data: bytes, index: int, cs: ConfState) -> None:
        node.applied = list(pickle.loads(data)) if data else []
        node.applied_index = index
        node.conf_state = cs

    def restart(self, nid: int) -> None:
        """Crash and restart ``nid``: everything not persisted is lost, in-flight messages kept."""
        self._start(nid, self.nodes[nid].storage)
        self.process(nid)

    def crash(self, nid: int) -> None:
        self.nodes[nid].up = False

    # -- inputs -------------------------------------------------------------------------

    def raw(self, nid: int) -> RawNode:
        return self.nodes[nid].raw

    def campaign(self, nid: int) -> None:
        self.raw(nid).campaign()
        self.process(nid)

    def propose(self, nid: int, *datas: bytes) -> None:
        self.raw(nid).propose_many(datas)
        self.process(nid)

    def propose_conf_change(self, nid: int, kind: ConfChangeType, target: int) -> None:
        self.raw(nid).propose_conf_change(ConfChange(kind, target))
        self.process(nid)

    def read_index(self, nid: int, ctx: bytes) -> None:
        self.raw(nid).read_index(ctx)
        self.process(nid)

    def tick(self, nid: int, n: int = 1) -> None:
        for _ in range(n):
            self.raw(nid).tick()
            self.process(nid)

    def tick_all(self, n: int = 1) -> None:
        for _ in range(n):
            for nid, node in self.nodes.items():
                if node.up:
                    self.tick(nid)

    def compact(self, nid: int) -> None:
        """Snapshot ``nid``'s state machine at its applied index and compact its log there."""
        node = self.nodes[nid]
        node.storage.create_snapshot(node.applied_index, node.conf_state, pickle.dumps(node.applied))
        node.storage.compact(node.applied_index)

    # -- partitions ---------------------------------------------------------------------

    def isolate(self, nid: int) -> None:
        self.isolated.add(nid)

    def cut(self, a: int, b: int) -> None:
        self.cuts.add(frozenset((a, b)))

    def recover(self) -> None:
        self.isolated.clear()
        self.cuts.clear()

    def connected(self, a: int, b: int) -> bool:
        if a in self.isolated or b in self.isolated or frozenset((a, b)) in self.cuts:
            return False
        return self.nodes[a].up and b in self.nodes and self.nodes[b].up

    # -- the Ready loop -----------------------------------------------------------------

    def process(self, nid: int) -> None:
        node = self.nodes[nid]
        raw = node.raw
        while raw.has_ready():
            rd = raw.ready()
            if rd.hard_state is not None:
                node.storage.set_hard_state(rd.hard_state)
            if rd.snapshot is not None:
                node.storage.apply_snapshot(rd.snapshot)
            node.storage.append(rd.entries)
            self.inflight.extend(rd.messages)
            if rd.snapshot is not None:
                meta = rd.snapshot.metadata
                self._restore_sm(node, rd.snapshot.data, meta.index, meta.conf_state)
            for e in rd.committed_entries:
                if e.type is EntryType.CONF_CHANGE:
                    node.conf_state = raw.apply_conf_change(ConfChange.decode(e.data))
                elif e.data:
                    node.applied.append(e.data)
                node.applied_index = e.index
            node.read_states.extend(rd.read_states)
            raw.advance(rd)

    def deliver(self, only: Iterable[int] | None = None) -> int:
        """Deliver every in-flight message (to ``only`` if given); returns how many arrived."""
        targets = None if only is None else set(only)
        keep: list[Message] = []
        batch, self.inflight = self.inflight, []
        delivered = 0
        for m in batch:
            if targets is not None and m.to not in targets:
                keep.append(m)
                continue
            if self.connected(m.frm, m.to):
                self.raw(m.to).step(m)
                self.process(m.to)
                delivered += 1
        self.inflight = keep + self.inflight
        return delivered

    def drop(self, to: int | None = None) -> None:
        """Lose every in-flight message (only those addressed to ``to`` if given)."""
        self.inflight = [] if to is None else [m for m in self.inflight if m.to != to]

    def stabilize(self, max_rounds: int = 1000) -> None:
        for nid, node in self.nodes.items():
            if node.up:
                self.process(nid)
        for _ in range(max_rounds):
            if not self.inflight:
                return
            self.deliver()
        raise AssertionError("network did not stabilize")

    # -- observations -------------------------------------------------------------------

    def role(self, nid: int) -> StateRole:
        return self.raw(nid).status().role

    def term(self, nid: int) -> int:
        return self.raw(nid).status().term

    def commit(self, nid: int) -> int:
        return self.raw(nid).status().commit

    def leader(self) -> int | None:
        leaders = [n for n, node in self.nodes.items() if node.up and self.role(n) is StateRole.LEADER]
        top = max((self.term(n) for n in leaders), default=0)
        current = [n for n in leaders if self.term(n) == top]
        return current[0] if current else None

    def log_terms(self, nid: int) -> list[tuple[int, int]]:
        """(index, term) of every entry in ``nid``'s log above its snapshot."""
        log = self.raw(nid).raft.log
        ents = log.slice(log.first_index(), log.last_index() + 1, None)
        return [(e.index, e.term) for e in ents]

    def datas(self, nids: Sequence[int] | None = None) -> dict[int, list[bytes]]:
        return {n: self.nodes[n].applied for n in (nids or self.nodes)}
