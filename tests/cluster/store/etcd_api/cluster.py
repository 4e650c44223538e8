"""In-process store clusters for the etcd API tests: real Replicas (no Ray) on a local transport,
each with a ``ReplicaBackend`` whose forwarder calls the leader's backend directly."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

from cluster.store.etcd_api.backend import InProcessForwarder, ReplicaBackend, default_cluster_id
from cluster.store.membership import EmptyStart
from cluster.store.raft.types import Message, StateRole
from cluster.store.replica import Replica, ReplicaOptions

FAST = ReplicaOptions(tick_seconds=0.01, election_tick=10)


@dataclass
class LocalTransport:
    replicas: dict[int, Replica] = field(default_factory=dict)
    down: set[int] = field(default_factory=set)

    def send(self, to: int, messages: list[Message]) -> None:
        r = self.replicas.get(to)
        if r is not None and to not in self.down:
            r.deliver(messages)


@dataclass
class LocalCluster:
    transport: LocalTransport
    forwarder: InProcessForwarder
    backends: dict[int, ReplicaBackend]

    async def leader(self, timeout: float = 10.0) -> ReplicaBackend:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            leaders = [b for b in self.backends.values() if b.replica.role == StateRole.LEADER]
            if len(leaders) == 1 and all(
                b.replica.leader == leaders[0].member_id for b in self.backends.values()
            ):
                return leaders[0]
            await asyncio.sleep(0.02)
        raise AssertionError(
            f"no leader in {timeout}s: {[b.replica.status() for b in self.backends.values()]}"
        )

    async def follower(self) -> ReplicaBackend:
        leader = await self.leader()
        return next(b for b in self.backends.values() if b is not leader)

    async def close(self) -> None:
        for b in self.backends.values():
            await b.replica.close()


async def start_cluster(tmp: Path, size: int = 3, options: ReplicaOptions = FAST) -> LocalCluster:
    ids = list(range(1, size + 1))
    transport = LocalTransport()
    forwarder = InProcessForwarder()
    backends: dict[int, ReplicaBackend] = {}
    for i in ids:
        r = Replica(i, ids, tmp / f"r{i}", transport, options, empty_start=EmptyStart.BOOTSTRAP)
        transport.replicas[i] = r
        backends[i] = ReplicaBackend(r, cluster_id=default_cluster_id(ids), forward=forwarder)
        r.start()
    forwarder.backends = backends
    cluster = LocalCluster(transport, forwarder, backends)
    await cluster.leader()
    return cluster
