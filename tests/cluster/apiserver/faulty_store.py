"""A store client that fails on cue, over the real MVCC state machine (no Ray, no replicas).

It implements the ``StoreClient`` calls ``ObjectStore`` makes (``range``, ``get``, ``txn``), so API
server code runs unchanged against it; ``txn_faults`` and ``range_faults`` inject the store's error
classes before or after a write applies, or a concurrent writer just before a call.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from cluster.store.mvcc import (
    Compare,
    KeyValue,
    MVCCStore,
    PutOp,
    RangeOp,
    RangeResult,
    Request,
    TxnOp,
    TxnResult,
)


@dataclass
class Fault:
    """What the next call of one kind does: raise ``error`` before (or after) applying, and/or let
    ``concurrent`` (another writer) change the store just before the call."""

    error: Exception | None = None
    after_apply: bool = False
    concurrent: Callable[[FaultyStore], None] | None = None


class FaultyStore:
    """The ``StoreClient`` calls ``ObjectStore`` makes, served by a real ``MVCCStore``; ``txn_faults``
    and ``range_faults`` are consumed one per call, in order (``None``: behave)."""

    def __init__(self) -> None:
        self.mvcc = MVCCStore()
        self.txn_faults: list[Fault | None] = []
        self.range_faults: list[Fault | None] = []
        self.txns = 0

    def put_object(self, key: str, obj: dict[str, Any]) -> None:
        self.mvcc.apply(Request(b"", 0, 0, PutOp(key.encode(), orjson.dumps(obj))))

    def object(self, key: str) -> dict[str, Any] | None:
        kvs = self.mvcc.range(RangeOp(key.encode())).kvs
        return orjson.loads(kvs[0].value) if kvs else None

    def _next(self, faults: list[Fault | None]) -> Fault | None:
        fault = faults.pop(0) if faults else None
        if fault and fault.concurrent:
            fault.concurrent(self)
        if fault and fault.error and not fault.after_apply:
            raise fault.error
        return fault

    async def range(self, op: RangeOp, *, serializable: bool = False) -> RangeResult:
        self._next(self.range_faults)
        return self.mvcc.range(op)

    async def get(self, key: bytes, *, revision: int = 0, serializable: bool = False) -> KeyValue | None:
        res = await self.range(RangeOp(key, revision=revision))
        return res.kvs[0] if res.kvs else None

    async def txn(self, compare: list[Compare], success: list[Any], failure: list[Any] = ()) -> TxnResult:  # type: ignore[assignment]
        self.txns += 1
        fault = self._next(self.txn_faults)
        result = self.mvcc.apply(Request(b"", 0, 0, TxnOp(tuple(compare), tuple(success), tuple(failure))))
        if fault and fault.error:  # after_apply: the write happened, the answer was lost
            raise fault.error
        assert isinstance(result, TxnResult)
        return result
