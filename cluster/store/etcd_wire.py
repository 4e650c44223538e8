"""The client's side of etcd's v3 wire: our operations as etcd requests, etcd's responses as our
results, and etcd's gRPC statuses as our typed errors (or as "try another replica").

Everything here is pure (no I/O): ``cluster.store.etcd_client`` sends what it builds. The mapping is
etcd's (``api/etcdserverpb/rpc.proto``, ``api/v3rpc/rpctypes/error.go``), so the same code reads the
answers of our replicas and of a real etcd.

Errors carry less on etcd's wire than in ``cluster.store.ops``: etcd's "required revision has been
compacted" does not say the compact revision, nor "requested lease not found" which lease. What the
request knows (the lease id, the request's size) is filled in from the request; a revision the server
put in the trailing metadata (``raykube-compact-revision``, ``raykube-current-revision``) is taken
from there, else it is 0.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import grpc

from cluster.store.etcdpb import kv_pb2, rpc_pb2
from cluster.store.ops import (
    MAX_REQUEST_BYTES,
    Compacted,
    CompactOp,
    CompactResult,
    Compare,
    CompareTarget,
    DeleteRangeOp,
    DeleteRangeResult,
    Event,
    EventType,
    FutureRevision,
    InvalidRequest,
    KeyValue,
    LeaseExists,
    LeaseGrantOp,
    LeaseGrantResult,
    LeaseNotFound,
    LeaseRevokeOp,
    LeaseRevokeResult,
    Op,
    PutOp,
    PutResult,
    RangeOp,
    RangeResult,
    RequestTooLarge,
    Result,
    StoreError,
    TxnOp,
    TxnResult,
)

REQUEST_ID_KEY = "raykube-request-id"
COMPACT_REVISION_KEY = "raykube-compact-revision"
CURRENT_REVISION_KEY = "raykube-current-revision"

# etcd's messages (rpctypes), as the server sends them.
ERR_COMPACTED = "etcdserver: mvcc: required revision has been compacted"
ERR_FUTURE_REV = "etcdserver: mvcc: required revision is a future revision"
ERR_LEASE_NOT_FOUND = "etcdserver: requested lease not found"
ERR_LEASE_EXIST = "etcdserver: lease already exists"
ERR_REQUEST_TOO_LARGE = "etcdserver: request is too large"
ERR_NOT_LEADER = "etcdserver: not leader"
ERR_LEARNER = "etcdserver: rpc not supported for learner"
ERR_TOO_MANY_REQUESTS = "etcdserver: too many requests"

# Statuses after which another replica (or the same one later) may well succeed: the replica is
# unreachable, stopped, not (or no longer) the leader, or without one. A write retried after them
# carries the same request id, so it is applied at most once.
_RETRY_CODES = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED}
)
_RETRY_MESSAGES = frozenset({ERR_NOT_LEADER, ERR_LEARNER, ERR_TOO_MANY_REQUESTS})


class RefusedByServer(StoreError):
    """An etcd status with no counterpart in ``cluster.store.ops`` that still changed nothing
    (permission denied, unimplemented, a precondition etcd checks): its code and message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return f"{self.message} ({self.code})"


class Retry(Exception):
    """An attempt failed in a way another endpoint, or a later attempt, may not: try again."""


class ServerFailure(Exception):
    """The server failed the request (INTERNAL, UNKNOWN, DATA_LOSS): a write's outcome is unknown."""


# ----------------------------------------------------------------------------------- requests


def request_id(client_id: bytes, seq: int, first_incomplete: int) -> tuple[tuple[str, str], ...]:
    """The gRPC metadata that makes a write exactly-once (the server's session table key)."""
    return ((REQUEST_ID_KEY, f"{client_id.hex()}/{seq}/{first_incomplete}"),)


def range_request(op: RangeOp, serializable: bool = False) -> rpc_pb2.RangeRequest:
    return rpc_pb2.RangeRequest(
        key=op.key,
        range_end=op.range_end,
        limit=op.limit,
        revision=op.revision,
        keys_only=op.keys_only,
        count_only=op.count_only,
        serializable=serializable,
    )


def put_request(op: PutOp) -> rpc_pb2.PutRequest:
    return rpc_pb2.PutRequest(key=op.key, value=op.value, lease=op.lease, prev_kv=op.prev_kv)


def delete_request(op: DeleteRangeOp) -> rpc_pb2.DeleteRangeRequest:
    return rpc_pb2.DeleteRangeRequest(key=op.key, range_end=op.range_end, prev_kv=op.prev_kv)


_TARGET_FIELD = {
    CompareTarget.VERSION: "version",
    CompareTarget.CREATE: "create_revision",
    CompareTarget.MOD: "mod_revision",
    CompareTarget.VALUE: "value",
    CompareTarget.LEASE: "lease",
}


def compare_message(c: Compare) -> rpc_pb2.Compare:
    msg = rpc_pb2.Compare(result=int(c.result), target=int(c.target), key=c.key)  # type: ignore[arg-type]
    setattr(msg, _TARGET_FIELD[CompareTarget(c.target)], c.value)
    return msg


def request_op(op: Op) -> rpc_pb2.RequestOp:
    if isinstance(op, PutOp):
        return rpc_pb2.RequestOp(request_put=put_request(op))
    if isinstance(op, DeleteRangeOp):
        return rpc_pb2.RequestOp(request_delete_range=delete_request(op))
    if isinstance(op, RangeOp):
        return rpc_pb2.RequestOp(request_range=range_request(op))
    if isinstance(op, TxnOp):
        return rpc_pb2.RequestOp(request_txn=txn_request(op))
    raise InvalidRequest(f"{type(op).__name__} cannot be part of a transaction")


def txn_request(op: TxnOp) -> rpc_pb2.TxnRequest:
    return rpc_pb2.TxnRequest(
        compare=[compare_message(c) for c in op.compare],
        success=[request_op(o) for o in op.success],
        failure=[request_op(o) for o in op.failure],
    )


def write_request(op: Op) -> tuple[str, Any]:
    """(KV or Lease method name, request message) for a write."""
    if isinstance(op, PutOp):
        return "Put", put_request(op)
    if isinstance(op, DeleteRangeOp):
        return "DeleteRange", delete_request(op)
    if isinstance(op, TxnOp):
        return "Txn", txn_request(op)
    if isinstance(op, CompactOp):
        return "Compact", rpc_pb2.CompactionRequest(revision=op.revision)
    if isinstance(op, LeaseGrantOp):
        return "LeaseGrant", rpc_pb2.LeaseGrantRequest(TTL=op.ttl, ID=op.id)
    if isinstance(op, LeaseRevokeOp):
        return "LeaseRevoke", rpc_pb2.LeaseRevokeRequest(ID=op.id)
    raise InvalidRequest(f"{type(op).__name__} is not a write")


# ----------------------------------------------------------------------------------- results


def key_value(kv: kv_pb2.KeyValue) -> KeyValue:
    return KeyValue(kv.key, kv.value, kv.create_revision, kv.mod_revision, kv.version, kv.lease)


def key_values(kvs: Iterable[kv_pb2.KeyValue]) -> tuple[KeyValue, ...]:
    return tuple(
        KeyValue(kv.key, kv.value, kv.create_revision, kv.mod_revision, kv.version, kv.lease) for kv in kvs
    )


def event(ev: kv_pb2.Event) -> Event:
    prev = key_value(ev.prev_kv) if ev.HasField("prev_kv") else None
    return Event(EventType(ev.type), key_value(ev.kv), prev)


def range_result(resp: rpc_pb2.RangeResponse, revision: int = 0) -> RangeResult:
    return RangeResult(key_values(resp.kvs), resp.count, resp.more, resp.header.revision or revision)


def put_result(resp: rpc_pb2.PutResponse, revision: int = 0) -> PutResult:
    prev = key_value(resp.prev_kv) if resp.HasField("prev_kv") else None
    return PutResult(resp.header.revision or revision, prev)


def delete_result(resp: rpc_pb2.DeleteRangeResponse, revision: int = 0) -> DeleteRangeResult:
    return DeleteRangeResult(resp.header.revision or revision, resp.deleted, key_values(resp.prev_kvs))


def txn_result(resp: rpc_pb2.TxnResponse, revision: int = 0) -> TxnResult:
    """Nested responses get the transaction's revision where their own header is empty."""
    rev = resp.header.revision or revision
    return TxnResult(rev, resp.succeeded, tuple(response_op(r, rev) for r in resp.responses))


def response_op(r: rpc_pb2.ResponseOp, revision: int) -> Result:
    which = r.WhichOneof("response")
    if which == "response_put":
        return put_result(r.response_put, revision)
    if which == "response_delete_range":
        return delete_result(r.response_delete_range, revision)
    if which == "response_range":
        return range_result(r.response_range, revision)
    if which == "response_txn":
        return txn_result(r.response_txn, revision)
    raise ServerFailure(f"transaction response without a response ({which})")


def write_result(op: Op, resp: Any) -> Result:
    """The result of ``write_request(op)``'s response."""
    if isinstance(op, PutOp):
        return put_result(resp)
    if isinstance(op, DeleteRangeOp):
        return delete_result(resp)
    if isinstance(op, TxnOp):
        return txn_result(resp)
    if isinstance(op, CompactOp):
        return CompactResult(resp.header.revision)
    if isinstance(op, LeaseGrantOp):
        return LeaseGrantResult(resp.ID, resp.TTL, resp.header.revision)
    if isinstance(op, LeaseRevokeOp):
        return LeaseRevokeResult(resp.header.revision)
    raise InvalidRequest(f"{type(op).__name__} is not a write")


# ----------------------------------------------------------------------------------- errors


def is_retryable(code: grpc.StatusCode, message: str) -> bool:
    """Whether another attempt (on another replica, or later) may succeed."""
    return code in _RETRY_CODES or message in _RETRY_MESSAGES


def _metadata_int(trailing: Sequence[tuple[str, Any]] | None, key: str) -> int:
    for k, v in trailing or ():
        if k == key:
            try:
                return int(v)
            except (TypeError, ValueError):
                return 0
    return 0


def _lease_of(op: Op | None) -> int:
    if isinstance(op, LeaseGrantOp | LeaseRevokeOp):
        return op.id
    if isinstance(op, PutOp):
        return op.lease
    if isinstance(op, TxnOp):
        for o in (*op.success, *op.failure):
            if isinstance(o, PutOp) and o.lease:
                return o.lease
    return 0


def store_error(
    code: grpc.StatusCode,
    message: str,
    *,
    op: Op | None = None,
    size: int = 0,
    trailing: Sequence[tuple[str, Any]] | None = None,
) -> Exception:
    """The exception for a status that ``is_retryable`` refused: a typed ``StoreError`` where
    etcd's message has one in ``cluster.store.ops``, ``RefusedByServer`` for other refusals, and
    ``ServerFailure`` where the server failed (a write's outcome unknown)."""
    if message == ERR_COMPACTED or message.startswith(ERR_COMPACTED):
        return Compacted(_metadata_int(trailing, COMPACT_REVISION_KEY))
    if message == ERR_FUTURE_REV or message.startswith(ERR_FUTURE_REV):
        return FutureRevision(_metadata_int(trailing, CURRENT_REVISION_KEY))
    if message == ERR_LEASE_NOT_FOUND:
        return LeaseNotFound(_lease_of(op))
    if message == ERR_LEASE_EXIST:
        return LeaseExists(_lease_of(op))
    if message == ERR_REQUEST_TOO_LARGE or (
        code == grpc.StatusCode.RESOURCE_EXHAUSTED and "message larger" in message
    ):
        return RequestTooLarge(size, MAX_REQUEST_BYTES)
    if code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.OUT_OF_RANGE):
        return InvalidRequest(message.removeprefix("etcdserver: "))  # the store's own text
    if code in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.DATA_LOSS):
        return ServerFailure(f"{message} ({code.name})")
    return RefusedByServer(code.name, message)
