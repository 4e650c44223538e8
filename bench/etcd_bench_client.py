"""The one gRPC client of the store benchmark: etcd's v3 API, spoken to etcd and to raykube alike.

``EtcdBenchClient`` takes a list of client endpoints (``host:port``) and optional TLS material,
finds the leader with ``Maintenance.Status`` (every endpoint must name the same leader, which must
be one of them) and opens ``conns`` channels to it. Writes and linearizable reads go to the leader
only, so neither system pays a follower-to-leader forward; requests are spread over the channels
round-robin, one channel per call. The stubs are the project's (``cluster.store.etcdpb``, etcd's
packages and field numbers), so the bytes on the wire are the same whichever system listens.

Each channel has its own subchannel pool: gRPC would otherwise share one TCP connection between
channels with the same target and arguments, and ``conns`` would not be the number of connections.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from cluster.store.etcdpb import rpc_pb2, rpc_pb2_grpc

DEFAULT_CONNS = 4
REQUEST_TIMEOUT_S = 30.0
LEADER_TIMEOUT_S = 60.0
MAX_MESSAGE_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class ClientTLS:
    """PEM bytes: the CA that signed the servers' certificates, and an optional client pair."""

    ca: bytes
    cert: bytes | None = None
    key: bytes | None = None

    @classmethod
    def from_files(
        cls, ca: str | Path, cert: str | Path | None = None, key: str | Path | None = None
    ) -> ClientTLS:
        return cls(
            ca=Path(ca).read_bytes(),
            cert=Path(cert).read_bytes() if cert else None,
            key=Path(key).read_bytes() if key else None,
        )

    def credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(
            root_certificates=self.ca, private_key=self.key, certificate_chain=self.cert
        )


def _channel(endpoint: str, tls: ClientTLS | None) -> grpc.aio.Channel:
    options = [
        ("grpc.use_local_subchannel_pool", 1),  # one TCP connection per channel
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ]
    if tls is None:
        return grpc.aio.insecure_channel(endpoint, options=options)
    return grpc.aio.secure_channel(endpoint, tls.credentials(), options=options)


def _error_text(e: BaseException) -> str:
    if isinstance(e, grpc.aio.AioRpcError):
        return f"{e.code().name}: {e.details()}"
    return f"{type(e).__name__}: {e}"


async def find_leader(
    endpoints: Sequence[str], tls: ClientTLS | None, timeout: float = LEADER_TIMEOUT_S
) -> tuple[str, int]:
    """The endpoint of the member every endpoint names as leader, and its member id.

    Polls ``Maintenance.Status`` on every endpoint until they agree on one leader that is among
    them (an election may be under way when the system has just started) or ``timeout`` passes.
    """
    channels = [_channel(ep, tls) for ep in endpoints]
    try:
        stubs = [rpc_pb2_grpc.MaintenanceStub(ch) for ch in channels]  # type: ignore[no-untyped-call]
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        while True:
            try:
                answers = [await s.Status(rpc_pb2.StatusRequest(), timeout=2.0) for s in stubs]
                ids = [a.header.member_id for a in answers]
                leaders = {a.leader for a in answers}
                if len(leaders) == 1 and (leader := leaders.pop()) in ids and leader != 0:
                    return endpoints[ids.index(leader)], leader
                last = f"members {ids} name leaders {sorted({a.leader for a in answers})}"
            except grpc.aio.AioRpcError as e:  # not serving yet: poll until the deadline
                last = _error_text(e)
            if time.monotonic() > deadline:
                raise TimeoutError(f"no agreed leader among {list(endpoints)} after {timeout:.0f}s ({last})")
            await asyncio.sleep(0.1)
    finally:
        for ch in channels:
            await ch.close()


class EtcdBenchClient:
    """``conns`` channels to the leader of an etcd-API cluster; the calls the workloads make.

    Every call raises on failure (a gRPC error or a malformed answer): the workloads record no
    figures for a measurement in which any request failed.
    """

    def __init__(
        self,
        endpoints: Sequence[str],
        *,
        tls: ClientTLS | None = None,
        conns: int = DEFAULT_CONNS,
        timeout: float = REQUEST_TIMEOUT_S,
    ):
        if not endpoints:
            raise ValueError("no endpoints")
        self.endpoints = list(endpoints)
        self.tls = tls
        self.conns = max(1, conns)
        self.timeout = timeout
        self.leader_endpoint: str | None = None
        self.leader_id: int | None = None
        self._channels: list[grpc.aio.Channel] = []
        self._kv: list[rpc_pb2_grpc.KVStub] = []
        self._watch: list[rpc_pb2_grpc.WatchStub] = []
        self._rr: itertools.cycle[rpc_pb2_grpc.KVStub] | None = None

    @staticmethod
    def describe(conns: int = DEFAULT_CONNS) -> str:
        """What drove a measurement (the ``client`` of every row): the same string for both systems."""
        return (
            f"bench.etcd_bench_client: grpcio {grpc.__version__} (grpc.aio), {conns} channels to the leader"
        )

    async def connect(self, timeout: float = LEADER_TIMEOUT_S) -> None:
        self.leader_endpoint, self.leader_id = await find_leader(self.endpoints, self.tls, timeout)
        self._channels = [_channel(self.leader_endpoint, self.tls) for _ in range(self.conns)]
        self._kv = [rpc_pb2_grpc.KVStub(ch) for ch in self._channels]  # type: ignore[no-untyped-call]
        self._watch = [rpc_pb2_grpc.WatchStub(ch) for ch in self._channels]  # type: ignore[no-untyped-call]
        self._rr = itertools.cycle(self._kv)

    def _next_kv(self) -> rpc_pb2_grpc.KVStub:
        if self._rr is None:
            raise RuntimeError("connect() first")
        return next(self._rr)

    async def put(self, key: bytes, value: bytes) -> int:
        """One put; the revision it created."""
        resp = await self._next_kv().Put(rpc_pb2.PutRequest(key=key, value=value), timeout=self.timeout)
        return int(resp.header.revision)

    async def get(self, key: bytes) -> Sequence[Any]:
        """A linearizable single-key Range; the key-values found (mvccpb.KeyValue)."""
        resp = await self._next_kv().Range(rpc_pb2.RangeRequest(key=key), timeout=self.timeout)
        kvs: Sequence[Any] = resp.kvs
        return kvs

    async def cas(self, key: bytes, mod_revision: int, value: bytes) -> tuple[bool, int]:
        """Put ``value`` if ``key`` was last modified at ``mod_revision``, else read it.

        One Txn: compare MOD == mod_revision; success: put; failure: range. Returns whether the put
        happened and the key's mod_revision now (the put's revision, or the one read).
        """
        req = rpc_pb2.TxnRequest(
            compare=[
                rpc_pb2.Compare(
                    result=rpc_pb2.Compare.EQUAL,
                    target=rpc_pb2.Compare.MOD,
                    key=key,
                    mod_revision=mod_revision,
                )
            ],
            success=[rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=key, value=value))],
            failure=[rpc_pb2.RequestOp(request_range=rpc_pb2.RangeRequest(key=key))],
        )
        resp = await self._next_kv().Txn(req, timeout=self.timeout)
        if resp.succeeded:
            return True, int(resp.header.revision)
        kvs = resp.responses[0].response_range.kvs if resp.responses else []
        if len(kvs) != 1:
            raise RuntimeError(f"compare failed on {key!r} but its read found {len(kvs)} keys")
        return False, int(kvs[0].mod_revision)

    async def put_all(self, items: Sequence[tuple[bytes, bytes]]) -> int:
        """Put every (key, value) in one Txn without compares; the revision they all got."""
        req = rpc_pb2.TxnRequest(
            success=[rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=k, value=v)) for k, v in items]
        )
        resp = await self._next_kv().Txn(req, timeout=self.timeout)
        if not resp.succeeded:
            raise RuntimeError("a Txn without compares did not succeed")
        return int(resp.header.revision)

    async def revision(self) -> int:
        """The store's current revision (the header of a linearizable count-only Range)."""
        req = rpc_pb2.RangeRequest(key=b"\x00", count_only=True)
        resp = await self._next_kv().Range(req, timeout=self.timeout)
        return int(resp.header.revision)

    def watch_stub(self, i: int) -> rpc_pb2_grpc.WatchStub:
        """The Watch stub of channel ``i mod conns`` (watch streams are spread over the channels)."""
        if not self._watch:
            raise RuntimeError("connect() first")
        return self._watch[i % len(self._watch)]

    async def close(self) -> None:
        channels, self._channels, self._kv, self._watch, self._rr = self._channels, [], [], [], None
        for ch in channels:
            await ch.close()
