"""msgpack encoding of the store's values: requests (Raft entry data), results and errors
(remembered by the session table, so part of snapshots) and key versions.

Every value is a msgpack array whose first element, where a value has variants, is a small
integer tag. The encoding is canonical: equal values encode to equal bytes, which is what lets
``MVCCStore.hash`` hash a snapshot.
"""

from __future__ import annotations

from typing import Any

import msgpack  # type: ignore[import-untyped]

from cluster.store.ops import (
    MAX_REQUEST_BYTES,
    Compacted,
    CompactOp,
    CompactResult,
    Compare,
    CompareResult,
    CompareTarget,
    DeleteRangeOp,
    DeleteRangeResult,
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
    Request,
    RequestTooLarge,
    Result,
    StoreError,
    TxnOp,
    TxnResult,
)

_RANGE, _PUT, _DELETE, _TXN, _COMPACT, _LEASE_GRANT, _LEASE_REVOKE = range(7)

_ERRORS: dict[str, type[StoreError]] = {
    cls.__name__: cls
    for cls in (Compacted, FutureRevision, RequestTooLarge, LeaseNotFound, LeaseExists, InvalidRequest)
}


def pack(obj: Any) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)  # type: ignore[no-any-return]


def unpack(data: bytes) -> Any:
    return msgpack.unpackb(data, raw=False, use_list=True, strict_map_key=False)


# --- key versions ------------------------------------------------------------------------------


def kv_to_wire(kv: KeyValue) -> list[Any]:
    return [kv.key, kv.value, kv.create_revision, kv.mod_revision, kv.version, kv.lease]


def kv_from_wire(w: list[Any]) -> KeyValue:
    return KeyValue(*w)


def _opt_kv_to_wire(kv: KeyValue | None) -> list[Any] | None:
    return None if kv is None else kv_to_wire(kv)


def _opt_kv_from_wire(w: list[Any] | None) -> KeyValue | None:
    return None if w is None else kv_from_wire(w)


# --- ops and requests --------------------------------------------------------------------------


def op_to_wire(op: Op) -> list[Any]:
    if isinstance(op, PutOp):
        return [_PUT, op.key, op.value, op.lease, op.prev_kv]
    if isinstance(op, RangeOp):
        return [_RANGE, op.key, op.range_end, op.limit, op.revision, op.keys_only, op.count_only]
    if isinstance(op, DeleteRangeOp):
        return [_DELETE, op.key, op.range_end, op.prev_kv]
    if isinstance(op, TxnOp):
        return [
            _TXN,
            [[c.key, int(c.target), int(c.result), c.value] for c in op.compare],
            [op_to_wire(o) for o in op.success],
            [op_to_wire(o) for o in op.failure],
        ]
    if isinstance(op, CompactOp):
        return [_COMPACT, op.revision]
    if isinstance(op, LeaseGrantOp):
        return [_LEASE_GRANT, op.id, op.ttl]
    if isinstance(op, LeaseRevokeOp):
        return [_LEASE_REVOKE, op.id]
    raise InvalidRequest(f"unknown operation type {type(op).__name__}")


def op_from_wire(w: list[Any]) -> Op:
    tag = w[0]
    if tag == _PUT:
        return PutOp(w[1], w[2], w[3], w[4])
    if tag == _RANGE:
        return RangeOp(w[1], w[2], w[3], w[4], w[5], w[6])
    if tag == _DELETE:
        return DeleteRangeOp(w[1], w[2], w[3])
    if tag == _TXN:
        return TxnOp(
            tuple(Compare(c[0], CompareTarget(c[1]), CompareResult(c[2]), c[3]) for c in w[1]),
            tuple(op_from_wire(o) for o in w[2]),
            tuple(op_from_wire(o) for o in w[3]),
        )
    if tag == _COMPACT:
        return CompactOp(w[1])
    if tag == _LEASE_GRANT:
        return LeaseGrantOp(w[1], w[2])
    if tag == _LEASE_REVOKE:
        return LeaseRevokeOp(w[1])
    raise InvalidRequest(f"unknown operation tag {tag!r}")


def encode_request(req: Request) -> bytes:
    """Encode a request as Raft entry data. Raises RequestTooLarge past MAX_REQUEST_BYTES."""
    try:
        data = pack([req.client_id, req.seq, req.first_incomplete, op_to_wire(req.op)])
    except (TypeError, ValueError, OverflowError) as e:
        raise InvalidRequest(f"request cannot be encoded: {e}") from None
    if len(data) > MAX_REQUEST_BYTES:
        raise RequestTooLarge(len(data), MAX_REQUEST_BYTES)
    return data


def decode_request(data: bytes) -> Request:
    """Inverse of encode_request. Raises InvalidRequest on bytes it did not produce."""
    try:
        w = unpack(data)
        return Request(w[0], w[1], w[2], op_from_wire(w[3]))
    except StoreError:
        raise
    except Exception as e:  # malformed entry data: any decoding failure is the same answer
        raise InvalidRequest(f"malformed request: {type(e).__name__}") from None


# --- results and errors ------------------------------------------------------------------------


def result_to_wire(r: Result) -> list[Any]:
    if isinstance(r, PutResult):
        return [_PUT, r.revision, _opt_kv_to_wire(r.prev_kv)]
    if isinstance(r, RangeResult):
        return [_RANGE, [kv_to_wire(kv) for kv in r.kvs], r.count, r.more, r.revision]
    if isinstance(r, DeleteRangeResult):
        return [_DELETE, r.revision, r.deleted, [kv_to_wire(kv) for kv in r.prev_kvs]]
    if isinstance(r, TxnResult):
        return [_TXN, r.revision, r.succeeded, [result_to_wire(x) for x in r.responses]]
    if isinstance(r, CompactResult):
        return [_COMPACT, r.revision]
    if isinstance(r, LeaseGrantResult):
        return [_LEASE_GRANT, r.id, r.ttl, r.revision]
    return [_LEASE_REVOKE, r.revision]


def result_from_wire(w: list[Any]) -> Result:
    tag = w[0]
    if tag == _PUT:
        return PutResult(w[1], _opt_kv_from_wire(w[2]))
    if tag == _RANGE:
        return RangeResult(tuple(kv_from_wire(kv) for kv in w[1]), w[2], w[3], w[4])
    if tag == _DELETE:
        return DeleteRangeResult(w[1], w[2], tuple(kv_from_wire(kv) for kv in w[3]))
    if tag == _TXN:
        return TxnResult(w[1], w[2], tuple(result_from_wire(x) for x in w[3]))
    if tag == _COMPACT:
        return CompactResult(w[1])
    if tag == _LEASE_GRANT:
        return LeaseGrantResult(w[1], w[2], w[3])
    return LeaseRevokeResult(w[1])


def outcome_to_wire(outcome: Result | StoreError) -> list[Any]:
    """A remembered outcome: [0, result] or [1, error class name, error args]."""
    if isinstance(outcome, StoreError):
        return [1, type(outcome).__name__, list(outcome.args)]
    return [0, result_to_wire(outcome)]


def outcome_from_wire(w: list[Any]) -> Result | StoreError:
    if w[0] == 1:
        return _ERRORS[w[1]](*w[2])
    return result_from_wire(w[1])
