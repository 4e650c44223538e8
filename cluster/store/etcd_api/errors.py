"""etcd's gRPC errors: status codes and exact texts (etcd's api/v3rpc/rpctypes/error.go), and the
mapping of our store's outcomes onto them.

Clients match these texts: etcd's Go client turns a status whose message is one of etcd's known
texts back into its typed error (``rpctypes.Error``), and etcdctl prints ``Error: <message>``. So a
message here is etcd's to the byte; where etcd has no equivalent (a feature we do not serve), the
code is etcd-like and the text ours, still prefixed ``etcdserver:``.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, NoReturn, TypeVar

import grpc

from cluster.store.etcdpb import rpc_pb2
from cluster.store.mvcc import (
    Compacted,
    FutureRevision,
    InvalidRequest,
    LeaseExists,
    LeaseNotFound,
    RequestTooLarge,
    StoreError,
)
from cluster.store.replica import NotLeader, NotServing

log = logging.getLogger("raykube.store.etcd")

Code = grpc.StatusCode


class EtcdError(Exception):
    """A gRPC status to answer with: ``code`` and etcd's ``message``. The constants below are
    raised as they are (``raise EMPTY_KEY``): only their code and message are ever read."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return f"{self.code.name}: {self.message}"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, EtcdError) and (self.code, self.message) == (other.code, other.message)

    def __hash__(self) -> int:
        return hash((self.code, self.message))


# KV and request validation
EMPTY_KEY = EtcdError(Code.INVALID_ARGUMENT, "etcdserver: key is not provided")
KEY_NOT_FOUND = EtcdError(Code.INVALID_ARGUMENT, "etcdserver: key not found")
VALUE_PROVIDED = EtcdError(Code.INVALID_ARGUMENT, "etcdserver: value is provided")
LEASE_PROVIDED = EtcdError(Code.INVALID_ARGUMENT, "etcdserver: lease is provided")
TOO_MANY_OPS = EtcdError(Code.INVALID_ARGUMENT, "etcdserver: too many operations in txn request")
DUPLICATE_KEY = EtcdError(Code.INVALID_ARGUMENT, "etcdserver: duplicate key given in txn request")
INVALID_SORT_OPTION = EtcdError(Code.INVALID_ARGUMENT, "etcdserver: invalid sort option")
COMPACTED = EtcdError(Code.OUT_OF_RANGE, "etcdserver: mvcc: required revision has been compacted")
FUTURE_REV = EtcdError(Code.OUT_OF_RANGE, "etcdserver: mvcc: required revision is a future revision")
NO_SPACE = EtcdError(Code.RESOURCE_EXHAUSTED, "etcdserver: mvcc: database space exceeded")
REQUEST_TOO_LARGE = EtcdError(Code.INVALID_ARGUMENT, "etcdserver: request is too large")
TOO_MANY_REQUESTS = EtcdError(Code.RESOURCE_EXHAUSTED, "etcdserver: too many requests")

# Leases
LEASE_NOT_FOUND = EtcdError(Code.NOT_FOUND, "etcdserver: requested lease not found")
LEASE_EXIST = EtcdError(Code.FAILED_PRECONDITION, "etcdserver: lease already exists")
LEASE_TTL_TOO_LARGE = EtcdError(Code.OUT_OF_RANGE, "etcdserver: too large lease TTL")

# Watch
WATCH_CANCELED = EtcdError(Code.CANCELLED, "etcdserver: watch canceled")

# Members
MEMBER_NOT_FOUND = EtcdError(Code.NOT_FOUND, "etcdserver: member not found")

# Auth
PERMISSION_DENIED = EtcdError(Code.PERMISSION_DENIED, "etcdserver: permission denied")
AUTH_NOT_ENABLED = EtcdError(Code.FAILED_PRECONDITION, "etcdserver: authentication is not enabled")

# Cluster state
NO_LEADER = EtcdError(Code.UNAVAILABLE, "etcdserver: no leader")
NOT_LEADER = EtcdError(Code.FAILED_PRECONDITION, "etcdserver: not leader")
LEADER_CHANGED = EtcdError(Code.UNAVAILABLE, "etcdserver: leader changed")
NOT_CAPABLE = EtcdError(Code.FAILED_PRECONDITION, "etcdserver: not capable")
STOPPED = EtcdError(Code.UNAVAILABLE, "etcdserver: server stopped")
TIMEOUT = EtcdError(Code.UNAVAILABLE, "etcdserver: request timed out")
TIMEOUT_WAIT_APPLIED_INDEX = EtcdError(
    Code.UNAVAILABLE, "etcdserver: request timed out, waiting for the applied index took too long"
)
UNHEALTHY = EtcdError(Code.UNAVAILABLE, "etcdserver: unhealthy cluster")
CORRUPT = EtcdError(Code.DATA_LOSS, "etcdserver: corrupt cluster")
CANCELED = EtcdError(Code.CANCELLED, "etcdserver: request canceled")
DEADLINE_EXCEEDED = EtcdError(Code.DEADLINE_EXCEEDED, "etcdserver: context deadline exceeded")

# Our store's InvalidRequest texts that are etcd's (cluster.store.validation uses etcd's words).
_INVALID_TEXTS = {
    "key is not provided": EMPTY_KEY,
    "duplicate key given in txn request": DUPLICATE_KEY,
}


def unimplemented(what: str) -> EtcdError:
    """For etcd features this store does not serve (etcd would serve them: ours, not etcd's, text)."""
    return EtcdError(Code.UNIMPLEMENTED, f"etcdserver: {what} is not supported by raykube's store")


def to_etcd_error(exc: BaseException) -> EtcdError:
    """The gRPC status etcd answers for this outcome (Unknown with the text for anything else)."""
    if isinstance(exc, EtcdError):
        return exc
    if isinstance(exc, StoreError):
        return _store_error(exc)
    if isinstance(exc, NotServing):
        return STOPPED
    if isinstance(exc, NotLeader):
        return NOT_LEADER if exc.leader else NO_LEADER
    if isinstance(exc, TimeoutError):
        return TIMEOUT
    return EtcdError(Code.UNKNOWN, str(exc) or type(exc).__name__)


def _store_error(exc: StoreError) -> EtcdError:
    if isinstance(exc, Compacted):
        return COMPACTED
    if isinstance(exc, FutureRevision):
        return FUTURE_REV
    if isinstance(exc, RequestTooLarge):
        return REQUEST_TOO_LARGE
    if isinstance(exc, LeaseNotFound):
        return LEASE_NOT_FOUND
    if isinstance(exc, LeaseExists):
        return LEASE_EXIST
    if isinstance(exc, InvalidRequest):
        return _INVALID_TEXTS.get(exc.message) or EtcdError(
            Code.INVALID_ARGUMENT, f"etcdserver: {exc.message}"
        )
    return EtcdError(Code.UNKNOWN, f"etcdserver: {exc}")


async def abort(context: grpc.aio.ServicerContext[Any, Any], exc: BaseException) -> NoReturn:
    err = to_etcd_error(exc)
    if err.code == Code.UNKNOWN:
        log.warning("etcd API: unexpected error answered as Unknown: %r", exc, exc_info=exc)
    await context.abort(err.code, err.message)
    raise AssertionError("context.abort returned")  # pragma: no cover (abort always raises)


T = TypeVar("T")
S = TypeVar("S")


def unary(
    fn: Callable[[S, Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[T]],
) -> Callable[[S, Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[T]]:
    """Decorate a unary servicer method: any exception becomes etcd's status for it."""

    @functools.wraps(fn)
    async def wrapper(self: S, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> T:
        try:
            return await fn(self, request, context)
        except Exception as e:
            if isinstance(e, grpc.aio.AbortError):
                raise
            await abort(context, e)

    return wrapper


def streaming(
    fn: Callable[[S, Any, grpc.aio.ServicerContext[Any, Any]], AsyncIterator[T]],
) -> Callable[[S, Any, grpc.aio.ServicerContext[Any, Any]], AsyncIterator[T]]:
    """Decorate a streaming servicer method (an async generator) the same way."""

    @functools.wraps(fn)
    async def wrapper(self: S, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[T]:
        try:
            async for item in fn(self, request, context):
                yield item
        except Exception as e:
            if isinstance(e, grpc.aio.AbortError):
                raise
            await abort(context, e)

    return wrapper


C = TypeVar("C", bound=type)


def unserved_answer_unimplemented(cls: C) -> C:
    """Class decorator for a servicer: every method of the generated base class that ``cls`` does
    not define answers UNIMPLEMENTED (``etcdserver: <Method> is not served by raykube's store``)
    from a coroutine, which grpc.aio accepts for every RPC kind (the generated defaults are
    synchronous and need a thread pool the aio server does not have)."""
    for base in cls.__mro__[1:]:
        if base is object:
            continue
        for name, attr in vars(base).items():
            if name.startswith("_") or not callable(attr) or name in vars(cls):
                continue
            streams = _streams_responses(base.__name__.removesuffix("Servicer"), name)
            setattr(cls, name, _unimplemented_stream(name) if streams else _unimplemented_method(name))
    return cls


def _streams_responses(service: str, method: str) -> bool:
    """Whether etcd's ``service.method`` answers with a stream (grpc.aio then wants an async
    generator as its handler, not a coroutine: Maintenance.Snapshot, Watch, LeaseKeepAlive)."""
    found = rpc_pb2.DESCRIPTOR.services_by_name.get(service)
    return bool(
        found is not None
        and method in found.methods_by_name
        and found.methods_by_name[method].server_streaming
    )


def _unimplemented_method(name: str) -> Callable[..., Awaitable[Any]]:
    async def method(self: Any, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        await context.abort(Code.UNIMPLEMENTED, f"etcdserver: {name} is not served by raykube's store")

    method.__name__ = name
    return method


def _unimplemented_stream(name: str) -> Callable[..., AsyncIterator[Any]]:
    async def method(
        self: Any, request: Any, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[Any]:
        await context.abort(Code.UNIMPLEMENTED, f"etcdserver: {name} is not served by raykube's store")
        yield  # never reached: abort raises; the yield makes this the async generator gRPC expects

    method.__name__ = name
    return method
