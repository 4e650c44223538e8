"""A follower's forwarded calls to the leader over gRPC, on the leader's client port.

``ReplicaBackend`` forwards what only the leader can do (``Forwarder``: propose, read_index,
lease_keepalive, lease_time_to_live) and waits for the answer. This carries those calls as one
unary method, ``/raykube.store.Forward/Call``, registered beside etcd's services on every replica's
client port (``forward_handler``); ``GrpcForwarder`` keeps one channel per leader. It replaces a Ray
actor call on the hot path of every write sent to a follower.

Only replicas may call it: with TLS the caller must present the replicas' peer certificate
(``cluster.store.tls.PEER_COMMON_NAME``); etcd's other identities (the API server's, etcdctl's) get
``PermissionDenied``, since a forwarded propose skips the request checks etcd's services make.

The payload is msgpack (``cluster.store.codec``): ``[method, args]`` in, and out ``[0, value]``,
``[1, leader]`` (NotLeader), ``[2, reason]`` (NotServing) or ``[3, error]`` (a StoreError).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from cluster.store import codec
from cluster.store.etcd_api.backend import LeaseTTL
from cluster.store.ops import StoreError
from cluster.store.replica_types import NotLeader, NotServing
from cluster.store.tls import PEER_COMMON_NAME, ClientTls, allowed_peer_pem

SERVICE = "raykube.store.Forward"
METHOD = f"/{SERVICE}/Call"
PERMISSION_DENIED = "etcdserver: permission denied"

Serve = Callable[[str, tuple[Any, ...]], Awaitable[Any]]


# ------------------------------------------------------------------------------------ encoding


def encode_call(method: str, args: tuple[Any, ...]) -> bytes:
    return codec.pack([method, list(args)])


def decode_call(data: bytes) -> tuple[str, tuple[Any, ...]]:
    method, args = codec.unpack(data)
    return str(method), tuple(args)


def _value_to_wire(value: Any) -> Any:
    if isinstance(value, LeaseTTL):
        return ["ttl", value.id, value.granted_ttl, value.remaining, list(value.keys)]
    if isinstance(value, list):  # propose: one outcome per request
        return ["list", [encode_outcome(v) for v in value]]
    if isinstance(value, int):
        return ["int", value]
    return ["result", codec.outcome_to_wire(value)]


def _value_from_wire(w: list[Any]) -> Any:
    kind = w[0]
    if kind == "ttl":
        return LeaseTTL(w[1], w[2], w[3], tuple(w[4]))
    if kind == "list":
        return [decode_outcome(v) for v in w[1]]
    if kind == "int":
        return w[1]
    return codec.outcome_from_wire(w[1])


def encode_outcome(value: Any) -> list[Any]:
    if isinstance(value, NotServing):
        return [2, value.reason]
    if isinstance(value, NotLeader):
        return [1, value.leader]
    if isinstance(value, StoreError):
        return [3, codec.outcome_to_wire(value)]
    return [0, _value_to_wire(value)]


def decode_outcome(w: list[Any]) -> Any:
    tag = w[0]
    if tag == 1:
        return NotLeader(w[1])
    if tag == 2:
        return NotServing(w[1])
    if tag == 3:
        return codec.outcome_from_wire(w[1])
    return _value_from_wire(w[1])


# ------------------------------------------------------------------------------------ the leader


def forward_handler(serve: Serve, *, require_peer: bool = True) -> grpc.GenericRpcHandler:
    """The ``Forward`` service over ``serve`` (``ReplicaBackend.serve_forwarded``), for a grpc.aio
    server; ``require_peer``: only callers with the replicas' certificate (a server with TLS)."""

    async def call(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        if require_peer:
            pems = context.auth_context().get("x509_pem_cert") or []
            if len(pems) != 1 or not allowed_peer_pem(pems[0]):
                await context.abort(grpc.StatusCode.PERMISSION_DENIED, PERMISSION_DENIED)
        method, args = decode_call(request)
        outcome = await serve(method, args)
        return codec.pack(encode_outcome(outcome))

    return grpc.method_handlers_generic_handler(SERVICE, {"Call": grpc.unary_unary_rpc_method_handler(call)})


# ------------------------------------------------------------------------------------ the follower


class GrpcForwarder:
    """A ``Forwarder`` that calls the leader's ``Forward`` service. ``resolve(leader_id)`` gives the
    leader's client address (``host:port``); channels are kept per leader and dropped (and the
    address asked again) when a call fails, since a restarted leader may listen elsewhere."""

    def __init__(self, resolve: Callable[[int], Awaitable[str]], tls: ClientTls | None) -> None:
        self.resolve = resolve
        self.tls = tls
        self._channels: dict[int, tuple[grpc.aio.Channel, Any]] = {}

    async def _stub(self, leader: int) -> Any:
        entry = self._channels.get(leader)
        if entry is None:
            target = await self.resolve(leader)
            options = [("grpc.ssl_target_name_override", "localhost")] if self.tls is not None else []
            channel = (
                grpc.aio.secure_channel(target, self.tls.channel_credentials(), options=options)
                if self.tls is not None
                else grpc.aio.insecure_channel(target)
            )
            entry = self._channels[leader] = (channel, channel.unary_unary(METHOD))
        return entry[1]

    async def __call__(self, leader: int, method: str, args: tuple[Any, ...]) -> Any:
        stub = await self._stub(leader)
        try:
            reply = await stub(encode_call(method, args))
        except grpc.aio.AioRpcError as err:
            await self.drop(leader)
            if err.code() == grpc.StatusCode.PERMISSION_DENIED:
                raise PermissionError(err.details()) from None
            raise ConnectionError(f"forwarding {method} to replica {leader}: {err.code().name}") from None
        return decode_outcome(codec.unpack(reply))

    async def drop(self, leader: int) -> None:
        entry = self._channels.pop(leader, None)
        if entry is not None:
            await entry[0].close()

    async def close(self) -> None:
        await asyncio.gather(*(self.drop(leader) for leader in list(self._channels)))


__all__ = ["METHOD", "PEER_COMMON_NAME", "GrpcForwarder", "forward_handler"]
