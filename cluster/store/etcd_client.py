"""The store's client over etcd's v3 gRPC API (``StoreAPI``): what the API server, the controllers
and the CLI use to reach the replicas' client ports. It speaks only etcd's API, so it works against a
real etcd as well (without the exactly-once promise, which needs our servers).

* Exactly-once writes: every write carries the gRPC metadata ``raykube-request-id`` =
  ``<client id hex>/<seq>/<first incomplete seq>``; a retry (after a timeout, a stopped replica or a
  leader change) resends the same seq, and the replicas' session table answers it with the remembered
  result instead of applying it again (``cluster.store.sessions``).
* Leader following: writes and linearizable reads go to the leader, found with ``Maintenance.Status``
  (the endpoint whose member id is the leader its replica names). On ``etcdserver: not leader``,
  ``UNAVAILABLE`` or a timeout the call moves on to the next endpoint at once, and the leader is
  looked up again in the background; followers forward, so any endpoint serves meanwhile. Calls keep
  trying until ``deadline`` and then raise ``Unavailable``.
* Errors: etcd's statuses map back onto ``cluster.store.ops`` errors (``cluster.store.etcd_wire``).
* Watches (``cluster.store.etcd_watch``) resume on another endpoint from the revision after the last
  one delivered, so a consumer sees no gap and no duplicate.
* TLS: ``tls`` is anything with ``channel_credentials()`` (``cluster.store.tls.ClientTls``: the CA,
  and the client certificate the replicas require); ``https://`` endpoints need it.
* Endpoints change (a replica replaced on another node): ``discover``, when given, is asked for the
  current client URLs after every endpoint failed once in a row (at most every 2 s).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, Protocol, TypeVar

import grpc

from cluster.store import etcd_watch
from cluster.store.api import Unavailable, WatchResponse
from cluster.store.etcd_wire import (
    Retry,
    ServerFailure,
    is_retryable,
    key_value,
    range_request,
    range_result,
    request_id,
    store_error,
    write_request,
    write_result,
)
from cluster.store.etcdpb import rpc_pb2, rpc_pb2_grpc
from cluster.store.ops import (
    MAX_REQUEST_BYTES,
    CompactOp,
    CompactResult,
    Compare,
    CompareResult,
    CompareTarget,
    DeleteRangeOp,
    DeleteRangeResult,
    Event,
    KeyValue,
    LeaseGrantOp,
    LeaseGrantResult,
    LeaseRevokeOp,
    LeaseRevokeResult,
    Op,
    PutOp,
    PutResult,
    RangeOp,
    RangeResult,
    RequestTooLarge,
    Result,
    TxnOp,
    TxnResult,
    prefix_end,
)

_T = TypeVar("_T")

STATUS_TIMEOUT = 2.0  # one Maintenance.Status of the leader lookup and of status()
LEADER_RECHECK = 10.0  # seconds between leader lookups while every call succeeds (a leader may step down)
REDISCOVER_EVERY = 2.0  # at most one endpoint discovery per this many seconds
DROPPED_CHANNEL_GRACE = 30.0  # a channel to an endpoint that left closes after its calls had time to end
_CHANNEL_OPTIONS = (
    ("grpc.max_receive_message_length", -1),  # a list of every object of a kind: no 4 MiB cap
    ("grpc.max_send_message_length", -1),  # requests are checked against MAX_REQUEST_BYTES first
    # A replica that restarts is back within seconds: do not wait gRPC's default 2 minutes of backoff.
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 2000),
)


class ChannelTLS(Protocol):
    def channel_credentials(self) -> grpc.ChannelCredentials: ...


class Endpoint:
    """One replica's client URL and the stubs of a channel to it."""

    def __init__(self, url: str, tls: ChannelTLS | None) -> None:
        self.url = url
        scheme, _, rest = url.rpartition("://")
        self.target = rest.rstrip("/")
        secure = scheme == "https" or (not scheme and tls is not None)
        if secure and tls is None:
            raise ValueError(f"{url}: an https endpoint needs TLS material (the CA and a client certificate)")
        if secure:
            assert tls is not None
            self.channel = grpc.aio.secure_channel(
                self.target, tls.channel_credentials(), options=_CHANNEL_OPTIONS
            )
        else:
            self.channel = grpc.aio.insecure_channel(self.target, options=_CHANNEL_OPTIONS)
        self.kv = rpc_pb2_grpc.KVStub(self.channel)  # type: ignore[no-untyped-call]
        self.lease = rpc_pb2_grpc.LeaseStub(self.channel)  # type: ignore[no-untyped-call]
        self.watch = rpc_pb2_grpc.WatchStub(self.channel)  # type: ignore[no-untyped-call]
        self.maintenance = rpc_pb2_grpc.MaintenanceStub(self.channel)  # type: ignore[no-untyped-call]
        self.member_id = 0  # learned from its answers


class EtcdStoreClient:
    """See the module docstring. Create it inside the event loop that uses it (``connect``)."""

    def __init__(
        self,
        endpoints: Sequence[str],
        *,
        tls: ChannelTLS | None = None,
        request_timeout: float = 5.0,
        deadline: float = 30.0,
        max_inflight: int = 0,  # accepted for StoreClient's signature: gRPC multiplexes every call
        discover: Callable[[], Awaitable[Sequence[str]]] | None = None,
    ) -> None:
        if not endpoints:
            raise Unavailable("no store endpoints to connect to")
        self._tls = tls
        self.endpoints = [Endpoint(url, tls) for url in endpoints]
        self._discover = discover
        self._discovered_at = -REDISCOVER_EVERY
        self._closing: set[asyncio.Task[None]] = set()
        self.request_timeout = request_timeout
        self.deadline = deadline
        self.client_id = os.urandom(16)
        self._seq = itertools.count(1)
        self._outstanding: set[int] = set()
        self._preferred: int | None = None  # index of the leader's endpoint, when known
        self._next = 0  # where a first attempt goes while the leader is unknown
        self._lookup: asyncio.Task[None] | None = None
        self._looked_up_at = 0.0
        self._closed = False

    @classmethod
    async def connect(cls, endpoints: Sequence[str], **kwargs: Any) -> EtcdStoreClient:
        """A client with the leader looked up once; does not fail when no endpoint answers yet
        (calls retry until their deadline)."""
        client = cls(endpoints, **kwargs)
        await client._find_leader()
        return client

    async def close(self) -> None:
        self._closed = True
        if self._lookup is not None:
            self._lookup.cancel()
        for task in list(self._closing):
            task.cancel()
        for ep in self.endpoints:
            with contextlib.suppress(Exception):
                await ep.channel.close()

    # ------------------------------------------------------------------ the leader

    async def _status_of(self, ep: Endpoint, timeout: float) -> rpc_pb2.StatusResponse | None:
        try:
            st: rpc_pb2.StatusResponse = await ep.maintenance.Status(rpc_pb2.StatusRequest(), timeout=timeout)
        except grpc.aio.AioRpcError:
            return None
        ep.member_id = st.header.member_id
        return st

    async def _find_leader(self) -> None:
        """Ask every endpoint who leads; prefer the endpoint of the leader the newest term names."""
        self._looked_up_at = asyncio.get_running_loop().time()
        answers = await asyncio.gather(*(self._status_of(ep, STATUS_TIMEOUT) for ep in self.endpoints))
        known = [(st.raftTerm, st.leader) for st in answers if st is not None and st.leader]
        if not known:
            return
        _, leader = max(known)
        for i, (ep, st) in enumerate(zip(self.endpoints, answers, strict=False)):
            if ep.member_id == leader and st is not None:  # a leader whose endpoint answers
                self._preferred = i
                return

    def _lost(self, index: int) -> None:
        """The endpoint at ``index`` failed: stop preferring it and look the leader up again."""
        if self._preferred == index:
            self._preferred = None
        self._next = index + 1
        self._look_up()

    def _look_up(self) -> None:
        if (self._lookup is None or self._lookup.done()) and not self._closed:
            self._lookup = asyncio.get_running_loop().create_task(self._find_leader())

    def _pick(self, after: int | None) -> int:
        """The endpoint for a call's next attempt: the leader's, unless that is where the call
        failed last (``after``); else the one after where it failed."""
        if asyncio.get_running_loop().time() - self._looked_up_at > LEADER_RECHECK:
            self._look_up()  # the preferred endpoint may have stepped down and forward since
        if self._preferred is not None and self._preferred != after:
            return self._preferred
        return (self._next if after is None else after + 1) % len(self.endpoints)

    # ------------------------------------------------------------------ calls

    async def _retrying(
        self,
        what: str,
        attempt_on: Callable[[Endpoint, float], Awaitable[_T]],
        *,
        op: Op | None = None,
        size: int = 0,
    ) -> _T:
        """Run ``attempt_on(endpoint, timeout)`` on the leader, then on the next endpoints, until one
        succeeds or refuses for good (a typed error), or ``deadline`` passes (``Unavailable``)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.deadline
        last: BaseException | None = None
        index: int | None = None
        for attempt in itertools.count():
            remaining = deadline - loop.time()
            if self._closed or remaining <= 0:
                break
            index = self._pick(index)
            ep = self.endpoints[index]
            try:
                result = await attempt_on(ep, min(self.request_timeout, remaining))
            except grpc.aio.AioRpcError as e:
                code, message = e.code(), e.details() or ""
                if not is_retryable(code, message):
                    raise store_error(
                        code, message, op=op, size=size, trailing=e.trailing_metadata()
                    ) from None
                last = e
            except (Retry, TimeoutError) as e:
                last = e
            else:
                if self._preferred is None and (self._lookup is None or self._lookup.done()):
                    self._preferred = index  # no leader lookup yet: stay where it worked
                return result
            self._lost(index)
            await self._after_failure(attempt)
        if self._closed:
            raise Unavailable(f"store client closed during {what}")
        raise Unavailable(f"store unavailable for {what} after {self.deadline:.0f}s: {_describe(last)}")

    async def _after_failure(self, attempt: int) -> None:
        """After ``attempt`` failed: once every endpoint failed in a row, back off and ask
        ``discover`` whether the endpoints changed."""
        n = len(self.endpoints)
        if (attempt + 1) % n == 0:
            await asyncio.sleep(min(0.05 * (attempt + 1) / n, 0.5))
            await self._rediscover()

    async def _rediscover(self) -> None:
        loop = asyncio.get_running_loop()
        if self._discover is None or loop.time() - self._discovered_at < REDISCOVER_EVERY:
            return
        self._discovered_at = loop.time()
        try:
            urls = list(await asyncio.wait_for(self._discover(), 2 * STATUS_TIMEOUT))
        except Exception:
            return
        if not urls or urls == [ep.url for ep in self.endpoints]:
            return
        kept: dict[str, Endpoint | None] = {ep.url: ep for ep in self.endpoints}
        self.endpoints = [kept.pop(url, None) or Endpoint(url, self._tls) for url in urls]
        self._preferred = None
        self._look_up()
        for dropped in kept.values():  # calls still running on them may finish first
            assert dropped is not None
            task = loop.create_task(_close_later(dropped.channel, DROPPED_CHANNEL_GRACE))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    # ------------------------------------------------------------------ writes

    async def _write(self, op: Op) -> Result:
        method, request = write_request(op)
        size = request.ByteSize()
        if size > MAX_REQUEST_BYTES:
            raise RequestTooLarge(size, MAX_REQUEST_BYTES)
        seq = next(self._seq)
        self._outstanding.add(seq)
        try:
            metadata = request_id(self.client_id, seq, min(self._outstanding))

            async def attempt(ep: Endpoint, timeout: float) -> Any:
                stub = ep.lease if method.startswith("Lease") else ep.kv
                return await getattr(stub, method)(request, timeout=timeout, metadata=metadata)

            response = await self._retrying(method, attempt, op=op, size=size)
        finally:
            self._outstanding.discard(seq)
        return write_result(op, response)

    async def put(self, key: bytes, value: bytes, *, lease: int = 0, prev_kv: bool = False) -> PutResult:
        result = await self._write(PutOp(key, value, lease, prev_kv))
        assert isinstance(result, PutResult)
        return result

    async def delete(self, key: bytes, range_end: bytes = b"", *, prev_kv: bool = False) -> DeleteRangeResult:
        result = await self._write(DeleteRangeOp(key, range_end, prev_kv))
        assert isinstance(result, DeleteRangeResult)
        return result

    async def txn(
        self, compare: Sequence[Compare], success: Sequence[Op], failure: Sequence[Op] = ()
    ) -> TxnResult:
        result = await self._write(TxnOp(tuple(compare), tuple(success), tuple(failure)))
        assert isinstance(result, TxnResult)
        return result

    async def compare_and_put(self, key: bytes, expected_mod_revision: int, value: bytes) -> TxnResult:
        cmp = Compare(key, CompareTarget.MOD, CompareResult.EQUAL, expected_mod_revision)
        return await self.txn([cmp], [PutOp(key, value)])

    async def compact(self, revision: int) -> CompactResult:
        result = await self._write(CompactOp(revision))
        assert isinstance(result, CompactResult)
        return result

    async def lease_grant(self, ttl: int, lease_id: int = 0) -> LeaseGrantResult:
        result = await self._write(LeaseGrantOp(lease_id, ttl))
        assert isinstance(result, LeaseGrantResult)
        return result

    async def lease_revoke(self, lease_id: int) -> LeaseRevokeResult:
        result = await self._write(LeaseRevokeOp(lease_id))
        assert isinstance(result, LeaseRevokeResult)
        return result

    async def lease_keepalive(self, lease_id: int) -> int:
        """One keep-alive over etcd's LeaseKeepAlive stream: the lease's TTL, 0 when it is gone."""

        async def attempt(ep: Endpoint, timeout: float) -> int:
            call = ep.lease.LeaseKeepAlive(timeout=timeout)
            try:
                await call.write(rpc_pb2.LeaseKeepAliveRequest(ID=lease_id))
                response = await call.read()
            finally:
                call.cancel()
            if response is grpc.aio.EOF:
                raise Retry("the keep-alive stream ended without an answer")
            assert isinstance(response, rpc_pb2.LeaseKeepAliveResponse)
            return max(response.TTL, 0)

        return await self._retrying("LeaseKeepAlive", attempt)

    # ------------------------------------------------------------------ reads

    async def range(self, op: RangeOp, *, serializable: bool = False) -> RangeResult:
        request = range_request(op, serializable)

        async def attempt(ep: Endpoint, timeout: float) -> rpc_pb2.RangeResponse:
            response: rpc_pb2.RangeResponse = await ep.kv.Range(request, timeout=timeout)
            return response

        return range_result(await self._retrying("Range", attempt, op=op))

    async def get(self, key: bytes, *, revision: int = 0, serializable: bool = False) -> KeyValue | None:
        request = rpc_pb2.RangeRequest(key=key, revision=revision, serializable=serializable)

        async def attempt(ep: Endpoint, timeout: float) -> rpc_pb2.RangeResponse:
            response: rpc_pb2.RangeResponse = await ep.kv.Range(request, timeout=timeout)
            return response

        response = await self._retrying("Range", attempt)
        return key_value(response.kvs[0]) if response.kvs else None

    async def get_prefix(self, prefix: bytes, *, limit: int = 0) -> RangeResult:
        return await self.range(RangeOp(prefix, prefix_end(prefix), limit=limit))

    # ------------------------------------------------------------------ watch

    async def watch(
        self, key: bytes, range_end: bytes = b"", start_revision: int = 0, *, poll_timeout: float = 5.0
    ) -> AsyncIterator[WatchResponse]:
        """Events with revision >= start_revision (0: from now), forever, resuming on failures
        (``cluster.store.etcd_watch.resuming``); raises ``Compacted`` if the history is gone."""
        if start_revision == 0:
            start_revision = (await self.range(RangeOp(key, range_end, count_only=True))).revision + 1
        async for response in etcd_watch.resuming(self, key, range_end, start_revision, poll_timeout):
            yield response

    async def progress(self, key: bytes, range_end: bytes, start_revision: int) -> tuple[list[Event], int]:
        """Events from ``start_revision`` up to the serving replica's revision, and that revision:
        a watch created there and asked for progress (etcd answers a progress request once the
        watch has caught up, so every event up to the answer's revision came before it)."""

        async def attempt(ep: Endpoint, timeout: float) -> tuple[list[Event], int]:
            return await etcd_watch.progress_once(ep, key, range_end, start_revision, timeout)

        return await self._retrying("Watch progress", attempt)

    # ------------------------------------------------------------------ admin

    async def status(self) -> list[dict[str, Any]]:
        """``Maintenance.Status`` of every endpoint (``StoreAPI.status``'s rows, plus ``endpoint``)."""

        async def one(ep: Endpoint) -> dict[str, Any]:
            try:
                st = await ep.maintenance.Status(rpc_pb2.StatusRequest(), timeout=STATUS_TIMEOUT)
            except grpc.aio.AioRpcError as e:
                return {"id": ep.member_id, "endpoint": ep.url, "health": f"unreachable ({e.code().name})"}
            ep.member_id = st.header.member_id
            return {
                "id": st.header.member_id,
                "endpoint": ep.url,
                "role": "leader" if st.leader and st.leader == st.header.member_id else "follower",
                "leader": st.leader,
                "term": st.raftTerm,
                "commit": st.raftIndex,
                "applied": st.raftAppliedIndex,
                "revision": st.header.revision,
                "version": st.version,
                "db_size": st.dbSize,
                "health": "; ".join(st.errors) or "ok",
            }

        return list(await asyncio.gather(*(one(ep) for ep in self.endpoints)))


async def _close_later(channel: grpc.aio.Channel, delay: float) -> None:
    await asyncio.sleep(delay)
    with contextlib.suppress(Exception):
        await channel.close()


def _describe(error: BaseException | None) -> str:
    if isinstance(error, grpc.aio.AioRpcError):
        return f"{error.code().name}: {error.details()}"
    return repr(error)


__all__ = ["EtcdStoreClient", "Retry", "ServerFailure", "Unavailable"]
