"""Async client for the replicated store over Ray calls to the replica actors: finds the leader,
batches, retries exactly-once. A ``cluster.store.api.StoreAPI``; ``cluster.store.etcd_client`` is the
other one (etcd's gRPC API, the default), this one the fallback (``RAYKUBE_STORE_CLIENT=ray``).

* Writes are wrapped in ``Request(client_id, seq, first_incomplete, op)``. A retry (after a timeout,
  a dead replica or a leader change) resends the same seq, and the state machine returns the
  remembered result instead of applying it again.
* Concurrent writes from one client are batched: while ``max_inflight`` calls are in flight, new
  requests queue and leave together in the next call, which the leader proposes as one Raft round.
* Reads are linearizable (ReadIndex on the leader) unless ``serializable=True``.
* ``watch`` yields events from a revision, resuming on any replica after failures with no gap and
  no duplicate, and raises ``Compacted`` if the start revision falls out of the history window.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import ray

from cluster.store.actor import REPLICA_PREFIX
from cluster.store.api import Unavailable as Unavailable  # re-exported: callers import it from here
from cluster.store.api import WatchResponse as WatchResponse
from cluster.store.mvcc import (
    CompactOp,
    Compare,
    CompareResult,
    CompareTarget,
    DeleteRangeOp,
    Event,
    KeyValue,
    LeaseGrantOp,
    LeaseRevokeOp,
    PutOp,
    RangeOp,
    RangeResult,
    Request,
    StoreError,
    TxnOp,
    TxnResult,
    encode_request,
    prefix_end,
)
from cluster.store.replica import NotLeader


@dataclass
class _Pending:
    data: bytes
    future: asyncio.Future[Any]


class StoreClient:
    def __init__(
        self,
        namespace: str,
        *,
        request_timeout: float = 5.0,
        deadline: float = 30.0,
        max_inflight: int = 4,
    ) -> None:
        self.namespace = namespace
        self.request_timeout = request_timeout
        self.deadline = deadline
        self.max_inflight = max_inflight
        self.client_id = os.urandom(16)
        self._seq = itertools.count(1)
        self._outstanding: set[int] = set()
        self._handles: dict[int, Any] = {}
        self._leader: int = 0
        self._queue: list[_Pending] = []
        self._inflight = 0
        self._closed = False

    @classmethod
    async def connect(cls, namespace: str, **kwargs: Any) -> StoreClient:
        client = cls(namespace, **kwargs)
        await client._refresh_handles()
        if not client._handles:
            raise Unavailable(f"no store replicas in Ray namespace {namespace!r}")
        return client

    async def close(self) -> None:
        self._closed = True

    # ------------------------------------------------------------------ discovery

    async def _refresh_handles(self) -> None:
        def lookup() -> dict[int, Any]:
            found: dict[int, Any] = {}
            for entry in ray.util.list_named_actors(all_namespaces=True):
                if entry["namespace"] != self.namespace or not entry["name"].startswith(REPLICA_PREFIX):
                    continue
                with contextlib.suppress(ValueError):
                    rid = int(entry["name"][len(REPLICA_PREFIX) :])
                    found[rid] = ray.get_actor(entry["name"], namespace=self.namespace)
            return found

        self._handles = await asyncio.to_thread(lookup)

    def _submit(self, rid: int, handle: Any, method: str, *args: Any, **kwargs: Any) -> Any:
        """Submit an actor call. Ray refuses the submission itself (a plain Exception) when the actor
        was killed for good, as a removed store member is: forget that replica and report it as
        unavailable, so the caller tries another one (and the next lookup finds any new member)."""
        try:
            return getattr(handle, method).remote(*args, **kwargs)
        except Exception as e:
            self._handles.pop(rid, None)
            raise ray.exceptions.ActorUnavailableError(f"store-{rid}: {e}", None) from e

    def _candidates(self) -> list[int]:
        ids = sorted(self._handles)
        if self._leader in self._handles:
            ids.remove(self._leader)
            ids.insert(0, self._leader)
        return ids

    async def _call_leader(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """Call ``method`` on the leader, following hints and retrying until the deadline."""
        deadline = time.monotonic() + self.deadline
        attempt = 0
        last_error: BaseException | None = None
        while time.monotonic() < deadline and not self._closed:
            candidates = self._candidates() or [0]
            rid = candidates[attempt % len(candidates)] if self._leader == 0 else self._leader
            handle = self._handles.get(rid)
            attempt += 1
            if handle is None:
                await self._refresh_handles()
                await asyncio.sleep(0.05)
                continue
            try:
                ref = self._submit(rid, handle, method, *args, **kwargs)
                result = await asyncio.wait_for(ref, self.request_timeout)
            except (TimeoutError, ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError) as e:
                last_error = e
                self._leader = 0
                await asyncio.sleep(min(0.02 * attempt, 0.3))
                continue
            if not isinstance(result, NotLeader):
                self._leader = rid
                return result
            last_error = result
            self._leader = result.leader if result.leader in self._handles else 0
            if result.leader == 0 or result.leader == rid:
                await asyncio.sleep(min(0.05 * attempt, 0.5))
        raise Unavailable(f"store unavailable for {method}: {last_error!r}")

    # ------------------------------------------------------------------ writes

    async def _write(self, op: Any) -> Any:
        seq = next(self._seq)
        self._outstanding.add(seq)
        try:
            first = min(self._outstanding)
            data = encode_request(Request(self.client_id, seq, first, op))
            fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            self._queue.append(_Pending(data, fut))
            self._pump()
            result = await fut
        finally:
            self._outstanding.discard(seq)
        if isinstance(result, StoreError):
            raise result
        return result

    def _pump(self) -> None:
        while self._queue and self._inflight < self.max_inflight:
            batch, self._queue = self._queue, []
            self._inflight += 1
            asyncio.get_running_loop().create_task(self._send_batch(batch))

    async def _send_batch(self, batch: list[_Pending]) -> None:
        try:
            results = await self._call_leader("propose", [p.data for p in batch])
            for p, r in zip(batch, results, strict=True):
                if p.future.done():
                    continue
                if isinstance(r, NotLeader):
                    # The leader stepped down before this entry committed: resend the same seq.
                    self._queue.append(p)
                else:
                    p.future.set_result(r)
        except BaseException as e:
            for p in batch:
                if not p.future.done():
                    p.future.set_exception(e if isinstance(e, Exception) else Unavailable(repr(e)))
        finally:
            self._inflight -= 1
            self._pump()

    async def put(self, key: bytes, value: bytes, *, lease: int = 0, prev_kv: bool = False) -> Any:
        return await self._write(PutOp(key, value, lease, prev_kv))

    async def delete(self, key: bytes, range_end: bytes = b"", *, prev_kv: bool = False) -> Any:
        return await self._write(DeleteRangeOp(key, range_end, prev_kv))

    async def txn(
        self, compare: Sequence[Compare], success: Sequence[Any], failure: Sequence[Any] = ()
    ) -> TxnResult:
        result: TxnResult = await self._write(TxnOp(tuple(compare), tuple(success), tuple(failure)))
        return result

    async def compare_and_put(self, key: bytes, expected_mod_revision: int, value: bytes) -> TxnResult:
        cmp = Compare(key, CompareTarget.MOD, CompareResult.EQUAL, expected_mod_revision)
        return await self.txn([cmp], [PutOp(key, value)])

    async def compact(self, revision: int) -> Any:
        return await self._write(CompactOp(revision))

    async def lease_grant(self, ttl: int, lease_id: int = 0) -> Any:
        return await self._write(LeaseGrantOp(lease_id, ttl))

    async def lease_revoke(self, lease_id: int) -> Any:
        return await self._write(LeaseRevokeOp(lease_id))

    async def lease_keepalive(self, lease_id: int) -> int:
        ttl: int = await self._call_leader("lease_keepalive", lease_id)
        return ttl

    # ------------------------------------------------------------------ reads

    async def range(self, op: RangeOp, *, serializable: bool = False) -> RangeResult:
        result = await self._call_leader("range", op, serializable)
        if isinstance(result, StoreError):
            raise result
        assert isinstance(result, RangeResult)
        return result

    async def get(self, key: bytes, *, revision: int = 0, serializable: bool = False) -> KeyValue | None:
        res = await self.range(RangeOp(key, revision=revision), serializable=serializable)
        return res.kvs[0] if res.kvs else None

    async def get_prefix(self, prefix: bytes, *, limit: int = 0) -> RangeResult:
        return await self.range(RangeOp(prefix, prefix_end(prefix), limit=limit))

    # ------------------------------------------------------------------ watch

    async def watch(
        self, key: bytes, range_end: bytes = b"", start_revision: int = 0, *, poll_timeout: float = 5.0
    ) -> AsyncIterator[WatchResponse]:
        """Yield events with revision >= start_revision (0: from now), forever, resuming on failures."""
        if start_revision == 0:
            start_revision = (await self.range(RangeOp(key, range_end, count_only=True))).revision + 1
        next_rev = start_revision
        order = itertools.count()
        while not self._closed:
            ids = self._candidates()
            if not ids:
                await self._refresh_handles()
                await asyncio.sleep(0.1)
                continue
            rid = ids[next(order) % len(ids)] if self._leader == 0 else self._leader
            handle = self._handles.get(rid)
            if handle is None:  # forgotten meanwhile (a removed member)
                self._leader = 0
                continue
            try:
                ref = self._submit(rid, handle, "wait_events", key, range_end, next_rev, poll_timeout)
                result = await asyncio.wait_for(ref, poll_timeout + self.request_timeout)
            except (TimeoutError, ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError):
                self._leader = 0
                await asyncio.sleep(0.05)
                continue
            if isinstance(result, StoreError):
                raise result
            if isinstance(result, NotLeader):  # that replica stopped or awaits replacement: try another
                self._leader = 0
                await asyncio.sleep(0.05)
                continue
            events, revision, compact = result
            if events:
                next_rev = events[-1].kv.mod_revision + 1
            else:
                # Nothing matched up to `revision` (one atomic read): resume after it, so an idle watch
                # does not rescan the same history on every poll.
                next_rev = max(next_rev, revision + 1)
            yield WatchResponse(tuple(events), max(revision, next_rev - 1), compact)

    async def progress(self, key: bytes, range_end: bytes, start_revision: int) -> tuple[list[Event], int]:
        """Events from ``start_revision`` on the leader, without waiting, and the leader's revision.

        A watcher that gets no events learns it is complete up to the returned revision (etcd's
        progress notification): call after a linearizable read, so the leader has applied at least
        that read's revision.
        """
        result = await self._call_leader("wait_events", key, range_end, start_revision, 0.0)
        if isinstance(result, StoreError):
            raise result
        events, revision, _compact = result
        return list(events), revision

    # ------------------------------------------------------------------ admin

    async def status(self) -> list[dict[str, Any]]:
        await self._refresh_handles()

        async def one(rid: int, handle: Any) -> dict[str, Any]:
            try:
                st: dict[str, Any] = await asyncio.wait_for(handle.status.remote(), 3.0)
                st["health"] = st.get("state", "ok")  # "failed: ..." or "awaiting replacement: ..."
                return st
            except Exception as e:
                return {"id": rid, "health": f"unreachable ({type(e).__name__})"}

        return list(await asyncio.gather(*(one(r, h) for r, h in sorted(self._handles.items()))))
