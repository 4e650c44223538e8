"""The store replica as a detached, named Ray actor: a thin shell around ``Replica``.

Replicas are named ``store-<id>`` in the cluster's Ray namespace. Raft messages travel between
them as one fire-and-forget actor call per destination per Raft round (``step_batch``), carrying
every message of that round. Ray restarts a killed replica with the same constructor arguments,
and the replica recovers from its write-ahead log.

Fail stop: when the replica reports a fatal disk or apply failure, the actor ends its own process
(``os._exit``, which Ray counts as a crash and restarts, unlike ``exit_actor``); until then its
status says ``failed``. A restarted actor whose data directory is empty (Ray may place it on a
node without its disk) never bootstraps: ``was_current_actor_reconstructed`` overrides the first
start's arguments, and the replica awaits replacement (``cluster.store.membership``).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Sequence
from typing import Any

import ray

from cluster.store.membership import empty_start_rule
from cluster.store.mvcc import RangeOp
from cluster.store.raft.types import ConfChange, ConfChangeType, Message
from cluster.store.replica import NotLeader, Replica, ReplicaOptions

log = logging.getLogger("raykube.store")

REPLICA_PREFIX = "store-"


def replica_name(replica_id: int) -> str:
    return f"{REPLICA_PREFIX}{replica_id}"


class RayTransport:
    """Sends Raft messages to peer replicas by actor name; handles are cached and refreshed on error."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self._handles: dict[int, Any] = {}

    def send(self, to: int, messages: list[Message]) -> None:
        handle = self._handles.get(to)
        if handle is None:
            try:
                handle = ray.get_actor(replica_name(to), namespace=self.namespace)
            except ValueError:
                raise ConnectionError(f"replica {to} is not running") from None
            self._handles[to] = handle
        handle.step_batch.remote(messages)


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=0, max_concurrency=10_000)  # type: ignore[call-overload]
class StoreReplicaActor:
    def __init__(
        self,
        replica_id: int,
        voters: Sequence[int],
        data_dir: str,
        namespace: str,
        options: ReplicaOptions | None = None,
        join: bool = False,
        initial: bool = False,
    ) -> None:
        """``initial``: this is the first start of a new cluster, so an empty data directory may
        bootstrap; ``join``: a new member id that a membership change adds."""
        logging.basicConfig(level=logging.INFO)
        ctx = ray.get_runtime_context()
        rule = empty_start_rule(initial=initial, join=join, reconstructed=ctx.was_current_actor_reconstructed)
        self.replica = Replica(
            replica_id,
            voters,
            data_dir,
            RayTransport(namespace),
            options,
            empty_start=rule,
            on_fatal=self._exit_process,
        )
        self.replica.start()
        self.node_id = ray.get_runtime_context().get_node_id()
        self.node_ip = ray.util.get_node_ip_address()  # type: ignore[no-untyped-call]

    @staticmethod
    def _exit_process(reason: str) -> None:
        """Fail stop: let ``status`` report the failure for a moment, then die so Ray restarts us."""
        log.critical("store replica exits its process: %s", reason)
        for handler in logging.getLogger().handlers:
            handler.flush()
        asyncio.get_running_loop().call_later(1.0, os._exit, 70)

    async def ready(self) -> int:
        return self.replica.id

    async def step_batch(self, messages: list[Message]) -> None:
        self.replica.deliver(messages)

    # Client-facing calls return NotLeader as a value (not an exception) so that clients can follow
    # the leader hint without unwrapping Ray's task errors.

    async def propose(self, datas: list[bytes]) -> Any:
        try:
            return await self.replica.propose(datas)
        except NotLeader as e:
            return e

    async def range(self, op: RangeOp, serializable: bool = False) -> Any:
        try:
            return await self.replica.range(op, serializable=serializable)
        except NotLeader as e:
            return e

    async def ranges(self, ops: list[RangeOp], serializable: bool = False) -> Any:
        try:
            if not serializable:
                await self.replica.linearizable_read_index()
        except NotLeader as e:
            return e
        return [await self.replica.range(op, serializable=True) for op in ops]

    async def wait_events(
        self, key: bytes, range_end: bytes, start_revision: int, timeout: float, limit: int = 1000
    ) -> Any:
        try:
            return await self.replica.wait_events(key, range_end, start_revision, timeout, limit)
        except Exception as e:  # typed store errors travel back as values
            return e

    async def lease_keepalive(self, lease_id: int) -> Any:
        try:
            return self.replica.lease_keepalive(lease_id)
        except NotLeader as e:
            return e

    async def add_member(self, node_id: int) -> Any:
        try:
            return await self.replica.change_membership(ConfChange(ConfChangeType.ADD_NODE, node_id))
        except NotLeader as e:
            return e

    async def remove_member(self, node_id: int) -> Any:
        try:
            return await self.replica.change_membership(ConfChange(ConfChangeType.REMOVE_NODE, node_id))
        except NotLeader as e:
            return e

    async def status(self) -> dict[str, Any]:
        st = self.replica.status()
        st["node_id"] = self.node_id
        st["node_ip"] = self.node_ip
        return st

    async def kv_hash(self) -> tuple[int, int, int]:
        return self.replica.kv_hash()

    async def set_blocked(self, peers: list[int]) -> None:
        """Fault injection for tests: drop all Raft traffic to and from ``peers``."""
        self.replica.blocked = set(peers)

    async def inject_fault(self, kind: str) -> None:
        """Fault injection for tests: the next persist ("fsync") or apply ("apply") fails."""
        self.replica.inject_fault(kind)

    async def pid(self) -> int:
        return os.getpid()

    async def shutdown(self) -> None:
        await self.replica.close()
        await asyncio.sleep(0)
