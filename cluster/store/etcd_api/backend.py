"""What the etcd v3 gRPC services call: the ``Backend`` protocol, and ``ReplicaBackend`` over a ``Replica``.

The services (``kv``, ``lease``, ``watch``, ``maintenance``, ``cluster``) only translate protobuf to
``cluster.store.ops`` values and back; every decision about where a request runs is made here:

* **Writes** (put, delete, txn, compact, lease grant and revoke) are wrapped in the session
  ``Request`` (exactly-once: ``cluster.store.sessions``) and proposed on the leader. On a follower
  they travel to the leader through the ``Forwarder``. A client that sends the gRPC metadata
  ``raykube-request-id: <client_id hex>/<seq>/<first_incomplete>`` (``RequestId``) has its retries
  applied once; without it the backend numbers the request under its own client id, which still
  makes the backend's own retries (leader change, forwarder failure) safe.
* **Reads**: serializable ranges are served from this replica's state; linearizable ones after
  ReadIndex: on the leader directly, on a follower by asking the leader for its read index
  (forwarded ``read_index``) and waiting until the local state has applied that far, so the data
  itself is read locally, as etcd does.
* **Watch** is served locally by any replica (its history is a prefix of the leader's):
  ``events`` reads, ``wait_revision`` waits for the next revision, ``wait_events`` does both.
* **Leases**: keepalive and time-to-live need the leader's clock, so they are forwarded; the list
  of leases is replicated state, read locally.

Errors: store outcomes raise the typed ``StoreError`` of ``cluster.store.ops`` (Compacted,
FutureRevision, LeaseNotFound, ...); when no leader can be reached before ``request_timeout`` a
call raises ``NotLeader`` (``leader`` 0 when none is known) or ``NotServing`` (this replica
fail-stopped or awaits replacement). ``cluster.store.etcd_api.errors`` maps them to etcd's gRPC
codes and messages.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import math
import os
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from cluster.store.mvcc import (
    Event,
    LeaseNotFound,
    Op,
    RangeOp,
    RangeResult,
    Request,
    Result,
    StoreError,
    encode_request,
)
from cluster.store.raft.types import StateRole
from cluster.store.replica import NotLeader, Replica

REQUEST_ID_METADATA = "raykube-request-id"
"""gRPC metadata key of a client's request id (``RequestId.render``): lower case, as gRPC wants."""

VERSION = "3.4.0"
"""The etcd version we report in Status: etcdctl 3.4 and clients read it as a semantic version."""


@dataclass(frozen=True, slots=True)
class RequestId:
    """A client's name for one write, for exactly-once retries (``cluster.store.sessions``).

    On the wire (metadata ``raykube-request-id``): ``<client_id as hex>/<seq>/<first_incomplete>``,
    e.g. ``"9f0c...e1/42/40"``. A client retries a write with the same seq; ``first_incomplete``
    is its lowest seq still awaiting an answer (the store forgets results below it).
    """

    client_id: bytes
    seq: int
    first_incomplete: int

    def render(self) -> str:
        return f"{self.client_id.hex()}/{self.seq}/{self.first_incomplete}"

    @classmethod
    def parse(cls, text: str) -> RequestId:
        """Raises ValueError for anything but ``<hex, 1..64 bytes>/<seq>/<first_incomplete>``,
        seq >= 1 and 1 <= first_incomplete <= seq."""
        parts = text.split("/")
        if len(parts) != 3:
            raise ValueError(
                f"{REQUEST_ID_METADATA} must be <client id hex>/<seq>/<first incomplete>: {text!r}"
            )
        try:
            client_id = bytes.fromhex(parts[0])
            seq, first = int(parts[1]), int(parts[2])
        except ValueError:
            raise ValueError(f"{REQUEST_ID_METADATA}: not <hex>/<int>/<int>: {text!r}") from None
        if not 1 <= len(client_id) <= 64 or seq < 1 or not 1 <= first <= seq:
            raise ValueError(f"{REQUEST_ID_METADATA}: bad client id length or sequence numbers: {text!r}")
        return cls(client_id, seq, first)


@dataclass(frozen=True, slots=True)
class Header:
    """etcd's ResponseHeader: who answered, at which store revision, in which Raft term."""

    cluster_id: int
    member_id: int
    revision: int
    raft_term: int


@dataclass(frozen=True, slots=True)
class MemberURLs:
    peer_urls: tuple[str, ...] = ()
    client_urls: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class MemberInfo:
    """One member as MemberList shows it (name ``store-<id>``, as the replica actor is named)."""

    id: int
    name: str
    peer_urls: tuple[str, ...]
    client_urls: tuple[str, ...]
    is_learner: bool = False


@dataclass(frozen=True, slots=True)
class BackendStatus:
    """What Maintenance.Status reports. ``raft_index`` is the commit index, ``applied`` the
    applied index; ``db_size`` the bytes of the write-ahead log (our on-disk state); ``errors``
    why this replica does not serve (fail stop, awaiting replacement), else empty."""

    member_id: int
    cluster_id: int
    leader: int
    raft_term: int
    raft_index: int
    applied: int
    revision: int
    compact_revision: int
    db_size: int
    errors: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class LeaseTTL:
    """LeaseTimeToLive: ``remaining`` whole seconds before expiry on the leader's clock."""

    id: int
    granted_ttl: int
    remaining: int
    keys: tuple[bytes, ...] = ()


Forwarder = Callable[[int, str, tuple[Any, ...]], Awaitable[Any]]
"""``forward(leader_id, method, args)``: run ``serve_forwarded(method, args)`` on the backend of
replica ``leader_id`` and return its value. Methods: ``"propose"`` (``list[bytes]`` of encoded
``Request``) -> list of results or StoreError values; ``"read_index"`` () -> the leader's applied
index once a ReadIndex round confirmed it; ``"lease_keepalive"`` (lease id) -> the ttl, 0 when
the lease does not exist; ``"lease_time_to_live"`` (lease id, keys) -> ``LeaseTTL`` or a
``LeaseNotFound`` value. Every value is picklable (Ray) and ``NotLeader``/``NotServing`` come back
as values, never raised. The forwarder may raise anything when the leader cannot be reached
(ConnectionError, a Ray actor error, a timeout): the backend then retries until its deadline."""


class Backend(Protocol):
    """The interface the gRPC services use; ``ReplicaBackend`` is the implementation.

    Every coroutine may raise ``NotLeader`` or ``NotServing`` (no leader reachable in time) and
    ``TimeoutError`` (the leader did not answer in time: the write's outcome is unknown).
    """

    member_id: int
    cluster_id: int
    min_lease_ttl: int
    """The shortest lease TTL granted (etcd: 1.5 election timeouts, rounded up to seconds)."""

    def header(self, revision: int | None = None) -> Header:
        """The response header; ``revision`` None: the current store revision."""

    async def write(self, op: Op, request_id: RequestId | None = None) -> Result:
        """Replicate a write (not a RangeOp); returns its result, raises its StoreError."""

    async def range(self, op: RangeOp, *, serializable: bool = False) -> RangeResult:
        """Read; raises Compacted, FutureRevision, InvalidRequest."""

    def events(self, key: bytes, range_end: bytes, start_revision: int, limit: int = 0) -> list[Event]:
        """This replica's events >= start_revision (``MVCCStore.events``; raises Compacted)."""

    async def wait_revision(self, after: int, timeout: float | None) -> int:
        """Wait until the store revision is above ``after`` (or timeout); returns the revision."""

    async def wait_events(
        self, key: bytes, range_end: bytes, start_revision: int, timeout: float, limit: int = 1000
    ) -> tuple[list[Event], int, int]:
        """Events >= start_revision, waiting up to ``timeout``: (events, revision, compact revision)."""

    async def lease_keepalive(self, lease_id: int) -> int:
        """Renew on the leader; returns the ttl, 0 when the lease does not exist."""

    async def lease_time_to_live(self, lease_id: int, keys: bool = False) -> LeaseTTL:
        """Raises LeaseNotFound."""

    def leases(self) -> dict[int, int]:
        """Every lease: id -> granted ttl."""

    def status(self) -> BackendStatus: ...

    def kv_hash(self) -> tuple[int, int, int]:
        """(applied index, revision, 64-bit hash of the replicated state)."""

    def members(self) -> list[MemberInfo]: ...


def default_cluster_id(voters: Sequence[int]) -> int:
    """A stable 64-bit cluster id from the bootstrap voters (etcd hashes its initial members too)."""
    text = ",".join(str(v) for v in sorted(voters)).encode()
    return int.from_bytes(hashlib.sha256(b"raykube-store:" + text).digest()[:8], "big") or 1


class ReplicaBackend:
    """``Backend`` over an in-process ``Replica`` (in the replica actor, or in a test's event loop).

    ``forward`` reaches the leader (see ``Forwarder``); without one a follower answers NotLeader.
    ``member_urls`` (id -> MemberURLs) feeds MemberList; the host fills it as it learns addresses.
    """

    def __init__(
        self,
        replica: Replica,
        *,
        cluster_id: int,
        forward: Forwarder | None = None,
        member_urls: dict[int, MemberURLs] | None = None,
        request_timeout: float = 7.0,
    ) -> None:
        self.replica = replica
        self.member_id = replica.id
        self.cluster_id = cluster_id
        self.forward = forward
        self.member_urls: dict[int, MemberURLs] = member_urls if member_urls is not None else {}
        self.request_timeout = request_timeout
        opts = replica.options
        self.min_lease_ttl = max(1, math.ceil(1.5 * opts.election_tick * opts.tick_seconds))
        self._client_id = os.urandom(16)  # our session for writes that came without a request id
        self._seqs = itertools.count(1)
        self._inflight: set[int] = set()

    # ------------------------------------------------------------------ header, status

    def header(self, revision: int | None = None) -> Header:
        rev = self.replica.mvcc.revision if revision is None else revision
        # The core's term directly: node.status() builds a whole Status, too much for every response.
        return Header(self.cluster_id, self.member_id, rev, self.replica.node.raft.term)

    def status(self) -> BackendStatus:
        st = self.replica.status()
        errors = tuple(e for e in (self.replica.failed, self.replica.awaiting) if e)
        return BackendStatus(
            member_id=self.member_id,
            cluster_id=self.cluster_id,
            leader=st["leader"],
            raft_term=st["term"],
            raft_index=st["commit"],
            applied=st["applied"],
            revision=st["revision"],
            compact_revision=st["compact_revision"],
            db_size=st["wal_bytes"],
            errors=errors,
        )

    def kv_hash(self) -> tuple[int, int, int]:
        return self.replica.kv_hash()

    def members(self) -> list[MemberInfo]:
        voters = self.replica.node.status().voters
        out = []
        for vid in sorted(voters):
            urls = self.member_urls.get(vid, MemberURLs())
            out.append(MemberInfo(vid, f"store-{vid}", urls.peer_urls, urls.client_urls))
        return out

    # ------------------------------------------------------------------ writes

    async def write(self, op: Op, request_id: RequestId | None = None) -> Result:
        if request_id is not None:
            req = Request(request_id.client_id, request_id.seq, request_id.first_incomplete, op)
            [outcome] = await self._to_leader("propose", ([encode_request(req)],))
        else:
            seq = next(self._seqs)
            self._inflight.add(seq)
            try:
                req = Request(self._client_id, seq, min(self._inflight), op)
                [outcome] = await self._to_leader("propose", ([encode_request(req)],))
            finally:
                self._inflight.discard(seq)
        if isinstance(outcome, BaseException):
            raise outcome
        result: Result = outcome
        return result

    # ------------------------------------------------------------------ reads

    async def range(self, op: RangeOp, *, serializable: bool = False) -> RangeResult:
        if not serializable:
            # On the leader this is its own ReadIndex round; on a follower the leader's, then we
            # wait to have applied as far. Either way a leader change in between is retried.
            index = await self._to_leader("read_index", ())
            if not await self.replica.wait_applied(
                lambda: self.replica.applied >= index, self.request_timeout
            ):
                raise TimeoutError(f"replica {self.member_id} did not apply up to read index {index} in time")
        outcome = await self.replica.range(op, serializable=True)
        if isinstance(outcome, StoreError):
            raise outcome
        result: RangeResult = outcome
        return result

    def events(self, key: bytes, range_end: bytes, start_revision: int, limit: int = 0) -> list[Event]:
        self.replica._check_serving()
        return self.replica.mvcc.events(key, range_end, start_revision, limit)

    async def wait_revision(self, after: int, timeout: float | None) -> int:
        await self.replica.wait_applied(lambda: self.replica.mvcc.revision > after, timeout)
        return self.replica.mvcc.revision

    async def wait_events(
        self, key: bytes, range_end: bytes, start_revision: int, timeout: float, limit: int = 1000
    ) -> tuple[list[Event], int, int]:
        events, revision, compact = await self.replica.wait_events(
            key, range_end, start_revision, timeout, limit
        )
        return list(events), revision, compact

    # ------------------------------------------------------------------ leases

    async def lease_keepalive(self, lease_id: int) -> int:
        ttl: int = await self._to_leader("lease_keepalive", (lease_id,))
        return ttl

    async def lease_time_to_live(self, lease_id: int, keys: bool = False) -> LeaseTTL:
        outcome = await self._to_leader("lease_time_to_live", (lease_id, keys))
        if isinstance(outcome, StoreError):
            raise outcome
        ttl: LeaseTTL = outcome
        return ttl

    def leases(self) -> dict[int, int]:
        return self.replica.mvcc.leases()

    # ------------------------------------------------------------------ the leader's side

    async def serve_forwarded(self, method: str, args: tuple[Any, ...]) -> Any:
        """Run a forwarded call here, as the leader (see ``Forwarder``): NotLeader, NotServing
        and StoreError come back as values."""
        try:
            if method == "propose":
                return await self.replica.propose(*args)
            if method == "read_index":
                return await self.replica.linearizable_read_index()
            if method == "lease_keepalive":
                return self.replica.lease_keepalive(*args)
            if method == "lease_time_to_live":
                return self._lease_time_to_live_here(*args)
        except (NotLeader, StoreError) as e:
            return e
        raise ValueError(f"unknown forwarded method {method!r}")

    def _lease_time_to_live_here(self, lease_id: int, keys: bool) -> LeaseTTL:
        self.replica._check_serving()
        if not self._leads():
            raise NotLeader(self.replica.leader)
        granted = self.replica.mvcc.leases().get(lease_id)
        if granted is None:
            raise LeaseNotFound(lease_id)
        left = self.replica.lease_remaining(lease_id)
        remaining = granted if left is None else int(left + 0.999)  # etcd rounds up to whole seconds
        names = self.replica.mvcc.lease_keys(lease_id) if keys else ()
        return LeaseTTL(lease_id, granted, remaining, names)

    # ------------------------------------------------------------------ routing

    def _leads(self) -> bool:
        return self.replica.role == StateRole.LEADER

    async def _to_leader(self, method: str, args: tuple[Any, ...]) -> Any:
        """Run ``method`` here if we lead, else on the leader through ``forward``; retry across
        leader changes and unreachable leaders until ``request_timeout`` (a forwarded write
        carries its request id, so a retry is applied once)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.request_timeout
        delay = 0.01
        while True:
            self.replica._check_serving()
            leader = self.member_id if self._leads() else self.replica.leader
            outcome: Any
            if leader == self.member_id:
                outcome = await self.serve_forwarded(method, args)
            elif leader and self.forward is not None:
                try:
                    outcome = await asyncio.wait_for(
                        self.forward(leader, method, args), max(deadline - loop.time(), 0.001)
                    )
                except Exception as e:  # unreachable, or too slow: the outcome of a write is unknown
                    outcome = e
            elif leader:
                raise NotLeader(leader)  # no forwarder: the client must go to the leader itself
            else:
                outcome = NotLeader(leader)  # an election is on: wait for its outcome
            if method == "propose" and isinstance(outcome, list):
                refused = [o for o in outcome if isinstance(o, NotLeader)]
                if not refused:
                    return outcome
                outcome = refused[0]
            if isinstance(outcome, StoreError) or not isinstance(outcome, BaseException):
                return outcome
            if loop.time() + delay >= deadline:
                if isinstance(outcome, NotLeader):
                    raise outcome
                raise TimeoutError(
                    f"{method}: no answer from the leader in {self.request_timeout:g} s"
                ) from outcome
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.2)


@dataclass
class InProcessForwarder:
    """A ``Forwarder`` for backends in one event loop (tests, a single-process store): calls
    ``serve_forwarded`` of the leader's backend directly. ``down`` holds ids that are unreachable."""

    backends: dict[int, ReplicaBackend] = field(default_factory=dict)
    down: set[int] = field(default_factory=set)

    async def __call__(self, leader: int, method: str, args: tuple[Any, ...]) -> Any:
        backend = self.backends.get(leader)
        if backend is None or leader in self.down:
            raise ConnectionError(f"replica {leader} is not reachable")
        return await backend.serve_forwarded(method, args)
