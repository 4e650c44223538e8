"""etcd's KV service (Range, Put, DeleteRange, Txn, Compact) over a ``Backend``.

Each call: etcd's request checks (``convert.check_*``), the store op, the backend, the response with
etcd's header (``cluster_id``, ``member_id``, ``raft_term`` of this member; ``revision`` the store
revision the request was served at: a write's own revision, a read's current revision). Errors
become etcd's statuses (``errors``). A write's ``raykube-request-id`` metadata (``RequestId``) makes a
client's retry apply once.

ignore_value / ignore_lease (a put keeping the key's current value or lease) are done as etcd's
semantics ask, without a store op of their own: read the key, then a Txn that puts it only if its
mod_revision is still the one read, retried until it holds; a missing key is etcd's
``key not found``. Txns are served through the log, read-only ones too (the store needs no special
path for them; etcd serves those locally, which only changes their cost).
"""

from __future__ import annotations

from typing import Any, TypeAlias

from cluster.store.etcd_api import convert, errors
from cluster.store.etcd_api.backend import REQUEST_ID_METADATA, Backend, RequestId
from cluster.store.etcdpb import rpc_pb2, rpc_pb2_grpc
from cluster.store.mvcc import (
    CompactOp,
    CompactResult,
    Compare,
    CompareResult,
    CompareTarget,
    DeleteRangeResult,
    Op,
    PutOp,
    PutResult,
    RangeOp,
    Result,
    TxnOp,
    TxnResult,
)

Context: TypeAlias = Any  # grpc.aio.ServicerContext (grpc has no type stubs)

_CAS_ATTEMPTS = 100


def request_id(context: Context) -> RequestId | None:
    """The client's ``raykube-request-id``, or None; a malformed one is InvalidArgument."""
    for key, value in context.invocation_metadata() or ():
        if key == REQUEST_ID_METADATA:
            text = value.decode() if isinstance(value, bytes) else value
            try:
                return RequestId.parse(text)
            except ValueError as e:
                raise errors.EtcdError(errors.Code.INVALID_ARGUMENT, f"etcdserver: {e}") from None
    return None


async def write(backend: Backend, op: Op, context: Context) -> Result:
    return await backend.write(op, request_id(context))


class KVServicer(rpc_pb2_grpc.KVServicer):
    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    def _header(self, revision: int | None = None) -> rpc_pb2.ResponseHeader:
        return convert.header_pb(self.backend.header(revision))

    @errors.unary
    async def Range(self, request: rpc_pb2.RangeRequest, context: Context) -> rpc_pb2.RangeResponse:
        convert.check_range(request)
        query = convert.range_query(request)
        result = await self.backend.range(query.op, serializable=request.serializable)
        out = query.finish(result)
        out.header.CopyFrom(self._header(result.revision))
        return out

    @errors.unary
    async def Put(self, request: rpc_pb2.PutRequest, context: Context) -> rpc_pb2.PutResponse:
        convert.check_put(request)
        if request.ignore_value or request.ignore_lease:
            res: Result = await self._put_keeping(request, context)
        else:
            res = await write(self.backend, convert.put_op(request), context)
        assert isinstance(res, PutResult), res
        out = convert.put_response(res)
        out.header.CopyFrom(self._header(res.revision))
        return out

    async def _put_keeping(self, request: rpc_pb2.PutRequest, context: Context) -> PutResult:
        """A put with ignore_value and/or ignore_lease: compare-and-swap on the key's mod_revision."""
        rid = request_id(context)
        for _ in range(_CAS_ATTEMPTS):
            got = await self.backend.range(RangeOp(request.key))
            if not got.kvs:
                raise errors.KEY_NOT_FOUND
            cur = got.kvs[0]
            put = PutOp(
                key=request.key,
                value=cur.value if request.ignore_value else request.value,
                lease=cur.lease if request.ignore_lease else request.lease,
                prev_kv=request.prev_kv,
            )
            same = Compare(request.key, CompareTarget.MOD, CompareResult.EQUAL, cur.mod_revision)
            res = await self.backend.write(TxnOp(compare=(same,), success=(put,)), rid)
            assert isinstance(res, TxnResult), res
            if res.succeeded:
                [done] = res.responses
                assert isinstance(done, PutResult), done
                return done
            rid = None  # the next attempt is another request (this one was applied: as a no-op)
        raise errors.EtcdError(errors.Code.ABORTED, "etcdserver: the key kept changing under ignore_value")

    @errors.unary
    async def DeleteRange(
        self, request: rpc_pb2.DeleteRangeRequest, context: Context
    ) -> rpc_pb2.DeleteRangeResponse:
        convert.check_delete(request)
        res = await write(self.backend, convert.delete_op(request), context)
        assert isinstance(res, DeleteRangeResult), res
        out = convert.delete_response(res)
        out.header.CopyFrom(self._header(res.revision))
        return out

    @errors.unary
    async def Txn(self, request: rpc_pb2.TxnRequest, context: Context) -> rpc_pb2.TxnResponse:
        convert.check_txn(request)
        res = await write(self.backend, convert.txn_op(request), context)
        assert isinstance(res, TxnResult), res
        out = convert.txn_response(request, res)
        out.header.CopyFrom(self._header(res.revision))
        return out

    @errors.unary
    async def Compact(
        self, request: rpc_pb2.CompactionRequest, context: Context
    ) -> rpc_pb2.CompactionResponse:
        res = await write(self.backend, CompactOp(max(request.revision, 0)), context)
        assert isinstance(res, CompactResult), res
        return rpc_pb2.CompactionResponse(header=self._header(res.revision))
