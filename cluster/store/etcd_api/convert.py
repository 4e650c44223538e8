"""etcd's protobuf messages <-> the store's values (``cluster.store.ops``), with etcd's request checks.

Requests: ``check_*`` reject what etcd's gRPC layer rejects, in etcd's order and with its errors
(``errors``: empty key, too many txn ops, duplicate keys in a txn, sort options). ``range_query``,
``put_op``, ``delete_op``, ``txn_op`` build the store's ops. The store's ``RangeOp`` knows limit,
revision, keys_only and count_only; sorting and the min/max mod/create revision filters are done
here after the read, as etcd does them after its index lookup (``RangeQuery.finish``): with either,
the read fetches every key of the range, then filters, sorts and cuts at the limit; ``count`` stays
the number of keys in the range before the filters, as etcd's.

Responses: ``kv_pb``, ``event_pb``, ``header_pb`` and the ``*_response`` builders. Responses nested
in a TxnResponse carry only their revision in their header, as etcd's do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cluster.store.etcd_api import errors
from cluster.store.etcd_api.backend import Header
from cluster.store.etcdpb import kv_pb2, rpc_pb2
from cluster.store.mvcc import (
    MAX_TXN_OPS,
    Compare,
    CompareResult,
    CompareTarget,
    DeleteRangeOp,
    DeleteRangeResult,
    Event,
    KeyValue,
    Op,
    PutOp,
    PutResult,
    RangeOp,
    RangeResult,
    Result,
    TxnOp,
    TxnResult,
)

_SORT_ORDERS = frozenset(rpc_pb2.RangeRequest.SortOrder.values())
_SORT_TARGETS = frozenset(rpc_pb2.RangeRequest.SortTarget.values())

# ---------------------------------------------------------------------------------------------
# Values


def kv_pb(kv: KeyValue) -> kv_pb2.KeyValue:
    return kv_pb2.KeyValue(
        key=kv.key,
        create_revision=kv.create_revision,
        mod_revision=kv.mod_revision,
        version=kv.version,
        value=kv.value,
        lease=kv.lease,
    )


def event_pb(ev: Event, prev_kv: bool = False) -> kv_pb2.Event:
    out = kv_pb2.Event(type=ev.type.value, kv=kv_pb(ev.kv))  # type: ignore[arg-type]
    if prev_kv and ev.prev_kv is not None:
        out.prev_kv.CopyFrom(kv_pb(ev.prev_kv))
    return out


def header_pb(h: Header) -> rpc_pb2.ResponseHeader:
    return rpc_pb2.ResponseHeader(
        cluster_id=h.cluster_id, member_id=h.member_id, revision=h.revision, raft_term=h.raft_term
    )


# ---------------------------------------------------------------------------------------------
# Request checks (etcd's v3rpc/key.go)


def check_range(r: rpc_pb2.RangeRequest) -> None:
    if not r.key:
        raise errors.EMPTY_KEY
    if r.sort_order not in _SORT_ORDERS or r.sort_target not in _SORT_TARGETS:
        raise errors.INVALID_SORT_OPTION


def check_put(r: rpc_pb2.PutRequest) -> None:
    if not r.key:
        raise errors.EMPTY_KEY
    if r.ignore_value and r.value:
        raise errors.VALUE_PROVIDED
    if r.ignore_lease and r.lease:
        raise errors.LEASE_PROVIDED


def check_delete(r: rpc_pb2.DeleteRangeRequest) -> None:
    if not r.key:
        raise errors.EMPTY_KEY


def check_txn(r: rpc_pb2.TxnRequest, max_ops: int = MAX_TXN_OPS) -> None:
    """etcd's checkTxnRequest, then checkIntervals on both branches."""
    _check_txn_ops(r, max_ops)
    _check_intervals(r.success)
    _check_intervals(r.failure)


def _check_txn_ops(r: rpc_pb2.TxnRequest, max_ops: int) -> None:
    opc = max(len(r.compare), len(r.success), len(r.failure))
    if opc > max_ops:
        raise errors.TOO_MANY_OPS
    for c in r.compare:
        if not c.key:
            raise errors.EMPTY_KEY
    for u in (*r.success, *r.failure):
        kind = u.WhichOneof("request")
        if kind == "request_range":
            check_range(u.request_range)
        elif kind == "request_put":
            check_put(u.request_put)
        elif kind == "request_delete_range":
            check_delete(u.request_delete_range)
        elif kind == "request_txn":
            _check_txn_ops(u.request_txn, max_ops - opc)
        else:
            raise errors.KEY_NOT_FOUND


def _in(k: bytes, start: bytes, end: bytes) -> bool:
    if not end:
        return k == start
    if end == b"\0":
        return k >= start
    return start <= k < end


def _check_intervals(reqs: Any) -> tuple[set[bytes], list[tuple[bytes, bytes]]]:
    """No key put twice in one branch, nor put inside a range deleted by it (etcd's checkIntervals);
    the two branches of a nested txn may put the same key, as only one runs."""
    dels = [
        (u.request_delete_range.key, u.request_delete_range.range_end)
        for u in reqs
        if u.WhichOneof("request") == "request_delete_range"
    ]
    puts: set[bytes] = set()
    for u in reqs:
        if u.WhichOneof("request") != "request_txn":
            continue
        then_puts, then_dels = _check_intervals(u.request_txn.success)
        else_puts, else_dels = _check_intervals(u.request_txn.failure)
        for k in then_puts:
            if k in puts or any(_in(k, s, e) for s, e in dels):
                raise errors.DUPLICATE_KEY
            puts.add(k)
        for k in else_puts:
            if (k in puts and k not in then_puts) or any(_in(k, s, e) for s, e in dels):
                raise errors.DUPLICATE_KEY
            puts.add(k)
        dels += then_dels + else_dels
    for u in reqs:
        if u.WhichOneof("request") != "request_put":
            continue
        k = u.request_put.key
        if k in puts or any(_in(k, s, e) for s, e in dels):
            raise errors.DUPLICATE_KEY
        puts.add(k)
    return puts, dels


# ---------------------------------------------------------------------------------------------
# Ranges: the read, then etcd's filters, sort and limit


_SORT_KEYS = {
    rpc_pb2.RangeRequest.KEY: lambda kv: kv.key,
    rpc_pb2.RangeRequest.VERSION: lambda kv: kv.version,
    rpc_pb2.RangeRequest.CREATE: lambda kv: kv.create_revision,
    rpc_pb2.RangeRequest.MOD: lambda kv: kv.mod_revision,
    rpc_pb2.RangeRequest.VALUE: lambda kv: kv.value,
}


@dataclass(frozen=True, slots=True)
class RangeQuery:
    """A RangeRequest as the store's ``op`` plus what etcd does after the read."""

    op: RangeOp
    request: rpc_pb2.RangeRequest
    post: bool  # sort or revision filters: the op reads every key, ``finish`` filters and cuts

    def finish(self, result: RangeResult) -> rpc_pb2.RangeResponse:
        r = self.request
        if not self.post:
            return rpc_pb2.RangeResponse(
                kvs=[kv_pb(kv) for kv in result.kvs], more=result.more, count=result.count
            )
        kvs = list(result.kvs)
        if r.max_mod_revision:
            kvs = [kv for kv in kvs if kv.mod_revision <= r.max_mod_revision]
        if r.min_mod_revision:
            kvs = [kv for kv in kvs if kv.mod_revision >= r.min_mod_revision]
        if r.max_create_revision:
            kvs = [kv for kv in kvs if kv.create_revision <= r.max_create_revision]
        if r.min_create_revision:
            kvs = [kv for kv in kvs if kv.create_revision >= r.min_create_revision]
        order = r.sort_order
        if r.sort_target != rpc_pb2.RangeRequest.KEY and order == rpc_pb2.RangeRequest.NONE:
            order = rpc_pb2.RangeRequest.ASCEND
        if not _default_ordering(r.sort_target, order):
            # Stable, as Go's sort.Sort is not: ties keep key order, which is what etcd returns in practice.
            kvs.sort(key=_SORT_KEYS[r.sort_target], reverse=order == rpc_pb2.RangeRequest.DESCEND)
        more = result.more
        if r.limit > 0 and len(kvs) > r.limit:
            kvs, more = kvs[: r.limit], True
        out = rpc_pb2.RangeResponse(more=more, count=result.count)
        if not r.count_only:
            out.kvs.extend(kv_pb(kv) for kv in kvs)
        if r.keys_only:
            for kv in out.kvs:
                kv.value = b""
        return out


def _default_ordering(target: int, order: int) -> bool:
    return order == rpc_pb2.RangeRequest.NONE or (
        target == rpc_pb2.RangeRequest.KEY and order == rpc_pb2.RangeRequest.ASCEND
    )


def range_query(r: rpc_pb2.RangeRequest) -> RangeQuery:
    filters = bool(r.min_mod_revision or r.max_mod_revision or r.min_create_revision or r.max_create_revision)
    order = r.sort_order
    if r.sort_target != rpc_pb2.RangeRequest.KEY and order == rpc_pb2.RangeRequest.NONE:
        order = rpc_pb2.RangeRequest.ASCEND  # a target without an order sorts ascending
    post = filters or not _default_ordering(r.sort_target, order)
    # etcd decides whether to read the whole range on the order as sent: a sort target with
    # order NONE reads only ``limit`` keys (in key order), then sorts those.
    whole = filters or not _default_ordering(r.sort_target, r.sort_order)
    op = RangeOp(
        key=r.key,
        range_end=r.range_end,
        limit=0 if whole else max(r.limit, 0),
        revision=max(r.revision, 0),
        keys_only=r.keys_only and not post,
        count_only=r.count_only and not filters,
    )
    return RangeQuery(op, r, post)


# ---------------------------------------------------------------------------------------------
# Writes


def put_op(r: rpc_pb2.PutRequest) -> PutOp:
    """A plain put; ignore_value/ignore_lease need the current version (``kv`` resolves them)."""
    return PutOp(key=r.key, value=r.value, lease=r.lease, prev_kv=r.prev_kv)


def delete_op(r: rpc_pb2.DeleteRangeRequest) -> DeleteRangeOp:
    return DeleteRangeOp(key=r.key, range_end=r.range_end, prev_kv=r.prev_kv)


_TARGET_FIELDS = {
    rpc_pb2.Compare.VERSION: "version",
    rpc_pb2.Compare.CREATE: "create_revision",
    rpc_pb2.Compare.MOD: "mod_revision",
    rpc_pb2.Compare.VALUE: "value",
    rpc_pb2.Compare.LEASE: "lease",
}


def compare_op(c: rpc_pb2.Compare) -> Compare:
    if c.range_end:
        raise errors.unimplemented("a compare over a key range (range_end)")
    if c.target not in _TARGET_FIELDS or c.result not in (0, 1, 2, 3):
        raise errors.EtcdError(errors.Code.INVALID_ARGUMENT, "etcdserver: unknown compare target or result")
    name = _TARGET_FIELDS[c.target]
    # etcd reads the union member of the target; another member set (or none) compares against zero.
    value: int | bytes
    if c.WhichOneof("target_union") == name:
        value = getattr(c, name)
    else:
        value = b"" if c.target == rpc_pb2.Compare.VALUE else 0
    return Compare(key=c.key, target=CompareTarget(c.target), result=CompareResult(c.result), value=value)


def txn_op(r: rpc_pb2.TxnRequest) -> TxnOp:
    return TxnOp(
        compare=tuple(compare_op(c) for c in r.compare),
        success=tuple(request_op(u) for u in r.success),
        failure=tuple(request_op(u) for u in r.failure),
    )


def request_op(u: rpc_pb2.RequestOp) -> Op:
    kind = u.WhichOneof("request")
    if kind == "request_range":
        return range_query(u.request_range).op
    if kind == "request_put":
        p = u.request_put
        if p.ignore_value or p.ignore_lease:
            raise errors.unimplemented("ignore_value and ignore_lease inside a txn")
        return put_op(p)
    if kind == "request_delete_range":
        return delete_op(u.request_delete_range)
    if kind == "request_txn":
        return txn_op(u.request_txn)
    raise errors.KEY_NOT_FOUND


# ---------------------------------------------------------------------------------------------
# Responses


def _nested_header(revision: int) -> rpc_pb2.ResponseHeader:
    return rpc_pb2.ResponseHeader(revision=revision)


def put_response(res: PutResult) -> rpc_pb2.PutResponse:
    out = rpc_pb2.PutResponse()
    if res.prev_kv is not None:
        out.prev_kv.CopyFrom(kv_pb(res.prev_kv))
    return out


def delete_response(res: DeleteRangeResult) -> rpc_pb2.DeleteRangeResponse:
    return rpc_pb2.DeleteRangeResponse(deleted=res.deleted, prev_kvs=[kv_pb(kv) for kv in res.prev_kvs])


def txn_response(req: rpc_pb2.TxnRequest, res: TxnResult) -> rpc_pb2.TxnResponse:
    """The responses of the branch taken, each converted by the request it answers."""
    ops = req.success if res.succeeded else req.failure
    out = rpc_pb2.TxnResponse(succeeded=res.succeeded)
    for u, r in zip(ops, res.responses, strict=True):
        out.responses.append(_response_op(u, r, res.revision))
    return out


def _response_op(u: rpc_pb2.RequestOp, r: Result, revision: int) -> rpc_pb2.ResponseOp:
    kind = u.WhichOneof("request")
    if kind == "request_range" and isinstance(r, RangeResult):
        rr = range_query(u.request_range).finish(r)
        rr.header.CopyFrom(_nested_header(r.revision))
        return rpc_pb2.ResponseOp(response_range=rr)
    if kind == "request_put" and isinstance(r, PutResult):
        pr = put_response(r)
        pr.header.CopyFrom(_nested_header(revision))
        return rpc_pb2.ResponseOp(response_put=pr)
    if kind == "request_delete_range" and isinstance(r, DeleteRangeResult):
        dr = delete_response(r)
        dr.header.CopyFrom(_nested_header(revision))
        return rpc_pb2.ResponseOp(response_delete_range=dr)
    if kind == "request_txn" and isinstance(r, TxnResult):
        tr = txn_response(u.request_txn, r)
        tr.header.CopyFrom(_nested_header(revision))
        return rpc_pb2.ResponseOp(response_txn=tr)
    raise TypeError(f"txn response {type(r).__name__} does not answer a {kind}")
