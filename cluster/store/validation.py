"""Request validation for the MVCC store: everything that can be checked without the store's
state (types, empty keys, txn size and nesting, duplicate keys in a txn). ``MVCCStore`` runs these
before it changes anything, so a rejected request leaves no trace.
"""

from __future__ import annotations

from cluster.store.ops import (
    MAX_TXN_OPS,
    Compare,
    CompareResult,
    CompareTarget,
    DeleteRangeOp,
    InvalidRequest,
    PutOp,
    RangeOp,
    TxnOp,
)

MAX_INT64 = 2**63 - 1
MAX_TXN_DEPTH = 32
_DUPLICATE_KEY = "duplicate key given in txn request"


def _in_range(k: bytes, key: bytes, range_end: bytes) -> bool:
    if not range_end:
        return k == key
    if range_end == b"\0":
        return k >= key
    return key <= k < range_end


def is_int(x: object, lo: int = 0, hi: int = MAX_INT64) -> bool:
    return type(x) is int and lo <= x <= hi


def _check_key(key: object, range_end: object = b"") -> None:
    if type(key) is not bytes or type(range_end) is not bytes:
        raise InvalidRequest("key and range_end must be bytes")
    if not key:
        raise InvalidRequest("key is not provided")


def check_range(op: RangeOp) -> None:
    _check_key(op.key, op.range_end)
    if not is_int(op.limit) or not is_int(op.revision):
        raise InvalidRequest("range limit and revision must be integers >= 0")
    if type(op.keys_only) is not bool or type(op.count_only) is not bool:
        raise InvalidRequest("keys_only and count_only must be booleans")


def check_put(op: PutOp) -> None:
    _check_key(op.key)
    if type(op.value) is not bytes:
        raise InvalidRequest("value must be bytes")
    if not is_int(op.lease) or type(op.prev_kv) is not bool:
        raise InvalidRequest("lease must be an integer >= 0 and prev_kv a boolean")


def check_delete(op: DeleteRangeOp) -> None:
    _check_key(op.key, op.range_end)
    if type(op.prev_kv) is not bool:
        raise InvalidRequest("prev_kv must be a boolean")


def _check_compare(c: Compare) -> None:
    if type(c) is not Compare:
        raise InvalidRequest("txn compares must be Compare values")
    _check_key(c.key)
    if type(c.target) is not CompareTarget or type(c.result) is not CompareResult:
        raise InvalidRequest("compare target and result must be CompareTarget and CompareResult")
    if c.target is CompareTarget.VALUE:
        if type(c.value) is not bytes:
            raise InvalidRequest("a VALUE compare needs a bytes value")
    elif not is_int(c.value, -MAX_INT64 - 1):
        raise InvalidRequest(f"a {c.target.name} compare needs an integer value")


def _check_branch(ops: object, depth: int) -> tuple[set[bytes], list[tuple[bytes, bytes]]]:
    """Check one branch statically (both branches of nested Txns, whatever the compares say)
    and return the keys it puts and the ranges it deletes. Mirrors etcd's checkIntervals: no
    key is put twice, no put lands in a deleted range, except that the two branches of one
    nested Txn may put the same key (they never both run). Overlapping deletes are fine."""
    if type(ops) is not tuple or len(ops) > MAX_TXN_OPS:
        raise InvalidRequest(f"txn branches must be tuples of at most {MAX_TXN_OPS} ops")
    dels: list[tuple[bytes, bytes]] = []
    put_ops: list[PutOp] = []
    txns: list[TxnOp] = []
    for o in ops:
        t = type(o)
        if t is PutOp:
            check_put(o)
            put_ops.append(o)
        elif t is DeleteRangeOp:
            check_delete(o)
            dels.append((o.key, o.range_end))
        elif t is RangeOp:
            check_range(o)
        elif t is TxnOp:
            txns.append(o)
        else:
            raise InvalidRequest(f"a txn holds only range, put, delete and txn ops, not {t.__name__}")
    puts: set[bytes] = set()
    for txn in txns:  # nested puts are checked against this level's deletes and each other
        then_puts, then_dels, else_puts, else_dels = check_txn(txn, depth + 1)
        for k in then_puts:
            if k in puts or any(_in_range(k, s, e) for s, e in dels):
                raise InvalidRequest(_DUPLICATE_KEY)
        for k in else_puts:
            if (k in puts and k not in then_puts) or any(_in_range(k, s, e) for s, e in dels):
                raise InvalidRequest(_DUPLICATE_KEY)
        puts |= then_puts
        puts |= else_puts
        dels += then_dels
        dels += else_dels
    for o in put_ops:  # then this level's puts, against everything below and beside them
        if o.key in puts or (dels and any(_in_range(o.key, s, e) for s, e in dels)):
            raise InvalidRequest(_DUPLICATE_KEY)
        puts.add(o.key)
    return puts, dels


def check_txn(
    op: TxnOp, depth: int
) -> tuple[set[bytes], list[tuple[bytes, bytes]], set[bytes], list[tuple[bytes, bytes]]]:
    if depth > MAX_TXN_DEPTH:
        raise InvalidRequest(f"txns nest at most {MAX_TXN_DEPTH} deep")
    if type(op.compare) is not tuple or len(op.compare) > MAX_TXN_OPS:
        raise InvalidRequest(f"txn compares must be a tuple of at most {MAX_TXN_OPS}")
    for c in op.compare:
        _check_compare(c)
    then_puts, then_dels = _check_branch(op.success, depth)
    else_puts, else_dels = _check_branch(op.failure, depth)
    return then_puts, then_dels, else_puts, else_dels
