"""What our components need from the store, whatever carries it: ``StoreAPI``.

Two clients satisfy it: ``cluster.store.etcd_client.EtcdStoreClient`` speaks etcd's v3 gRPC API to
the replicas' client ports (the default), and ``cluster.store.client.StoreClient`` calls the replica
actors through Ray (the fallback, ``RAYKUBE_STORE_CLIENT=ray``). Both promise the same things:

* writes are applied exactly once however often they are retried (each carries the client's id, a
  sequence number and its lowest unanswered one, which the replicated session table remembers);
* reads are linearizable unless ``serializable=True``;
* a typed ``StoreError`` (``Compacted``, ``FutureRevision``, ``LeaseNotFound``, ...) is a refusal that
  changed nothing; ``Unavailable`` means no replica answered before the deadline, so a write's outcome
  is unknown;
* ``watch`` yields every event from its start revision once, in order, resuming on another replica
  after a failure with no gap and no duplicate, and raises ``Compacted`` when the start revision has
  left the history window.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from cluster.store.ops import (
    CompactResult,
    Compare,
    DeleteRangeResult,
    Event,
    KeyValue,
    LeaseGrantResult,
    LeaseRevokeResult,
    Op,
    PutResult,
    RangeOp,
    RangeResult,
    TxnResult,
)


class Unavailable(Exception):
    """No replica could serve the request before the deadline; a write's outcome is unknown."""


@dataclass(frozen=True, slots=True)
class WatchResponse:
    events: tuple[Event, ...]
    revision: int  # progress: every event at or below this revision has been delivered
    compact_revision: int


class StoreAPI(Protocol):
    """The store as the API server, the controllers and the CLI use it (see the module docstring)."""

    async def close(self) -> None: ...

    async def put(self, key: bytes, value: bytes, *, lease: int = 0, prev_kv: bool = False) -> PutResult: ...

    async def delete(
        self, key: bytes, range_end: bytes = b"", *, prev_kv: bool = False
    ) -> DeleteRangeResult: ...

    async def txn(
        self, compare: Sequence[Compare], success: Sequence[Op], failure: Sequence[Op] = ()
    ) -> TxnResult: ...

    async def compare_and_put(self, key: bytes, expected_mod_revision: int, value: bytes) -> TxnResult: ...

    async def compact(self, revision: int) -> CompactResult: ...

    async def lease_grant(self, ttl: int, lease_id: int = 0) -> LeaseGrantResult: ...

    async def lease_revoke(self, lease_id: int) -> LeaseRevokeResult: ...

    async def lease_keepalive(self, lease_id: int) -> int:
        """The lease's TTL after refreshing it; 0 when no such lease exists (as etcd answers)."""
        ...

    async def range(self, op: RangeOp, *, serializable: bool = False) -> RangeResult: ...

    async def get(self, key: bytes, *, revision: int = 0, serializable: bool = False) -> KeyValue | None: ...

    async def get_prefix(self, prefix: bytes, *, limit: int = 0) -> RangeResult: ...

    def watch(
        self, key: bytes, range_end: bytes = b"", start_revision: int = 0, *, poll_timeout: float = 5.0
    ) -> AsyncIterator[WatchResponse]:
        """Events with revision >= ``start_revision`` (0: from now), forever. A response with no
        events reports progress; one comes at least every ``poll_timeout`` seconds while idle."""
        ...

    async def progress(self, key: bytes, range_end: bytes, start_revision: int) -> tuple[list[Event], int]:
        """Events of ``[key, range_end)`` from ``start_revision`` up to a revision ``r``, without
        waiting for new ones, and ``r``: a watcher with no events is complete up to ``r`` (etcd's
        progress notification). Called after a linearizable read, ``r`` is normally at least that
        read's revision (served by the leader)."""
        ...

    async def status(self) -> list[dict[str, Any]]:
        """One row per replica: ``id``, ``role``, ``leader``, ``term``, ``commit``, ``applied``,
        ``revision`` and ``health`` ("ok" or why not)."""
        ...
