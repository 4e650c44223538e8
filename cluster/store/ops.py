"""Values of the MVCC store: key versions, watch events, requests, results and errors.

Everything here is an immutable value (frozen, slotted dataclasses holding bytes, ints and
tuples) so a result can be remembered by the session table and handed to several callers
without copying. Errors are typed, picklable (their ``args`` are their constructor arguments)
and have deterministic messages, because replicas store them as the result of a request.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TypeAlias

MAX_REQUEST_BYTES = 1_572_864
"""etcd's default --max-request-bytes (1.5 MiB): the largest encoded request we accept."""

MAX_TXN_OPS = 128
"""etcd's default --max-txn-ops: the most compares, or ops per branch, in one Txn."""

MAX_LEASE_TTL = 9_000_000_000
"""etcd's MaxLeaseTTL, in seconds."""


def prefix_end(prefix: bytes) -> bytes:
    """The range_end that selects every key starting with ``prefix`` (etcd's GetPrefixRangeEnd).

    Increments the last byte that is not 0xff and drops what follows; a prefix that is empty
    or all 0xff has no upper bound, so the answer is b"\\0" ("every key >= prefix").
    """
    end = bytearray(prefix)
    for i in range(len(end) - 1, -1, -1):
        if end[i] < 0xFF:
            end[i] += 1
            return bytes(end[: i + 1])
    return b"\0"


# ---------------------------------------------------------------------------------------------
# Key versions and events


@dataclass(frozen=True, slots=True)
class KeyValue:
    """One version of a key. ``version == 0`` marks a tombstone (the key was deleted at
    ``mod_revision``); live versions count from 1 since the key's last creation."""

    key: bytes
    value: bytes
    create_revision: int
    mod_revision: int
    version: int
    lease: int = 0


class EventType(enum.IntEnum):
    PUT = 0
    DELETE = 1


@dataclass(frozen=True, slots=True)
class Event:
    """A change seen by watchers. For DELETE, ``kv`` is the tombstone: the key, an empty value,
    ``mod_revision`` = the deletion revision, create_revision/version/lease 0. ``prev_kv`` is the
    version the change replaced (None when the key did not exist before)."""

    type: EventType
    kv: KeyValue
    prev_kv: KeyValue | None = None


# ---------------------------------------------------------------------------------------------
# Requests


class CompareTarget(enum.IntEnum):
    VERSION = 0
    CREATE = 1
    MOD = 2
    VALUE = 3
    LEASE = 4


class CompareResult(enum.IntEnum):
    EQUAL = 0
    GREATER = 1
    LESS = 2
    NOT_EQUAL = 3


@dataclass(frozen=True, slots=True)
class Compare:
    """``value`` is bytes for CompareTarget.VALUE and an int for every other target."""

    key: bytes
    target: CompareTarget
    result: CompareResult
    value: int | bytes


@dataclass(frozen=True, slots=True)
class RangeOp:
    """range_end: b"" = just ``key``; b"\\0" = every key >= ``key``; else [key, range_end).
    revision 0 reads the current revision."""

    key: bytes
    range_end: bytes = b""
    limit: int = 0
    revision: int = 0
    keys_only: bool = False
    count_only: bool = False


@dataclass(frozen=True, slots=True)
class PutOp:
    key: bytes
    value: bytes
    lease: int = 0
    prev_kv: bool = False


@dataclass(frozen=True, slots=True)
class DeleteRangeOp:
    key: bytes
    range_end: bytes = b""
    prev_kv: bool = False


@dataclass(frozen=True, slots=True)
class TxnOp:
    """If every compare holds, run ``success``, else ``failure``; all under one revision."""

    compare: tuple[Compare, ...] = ()
    success: tuple[Op, ...] = ()
    failure: tuple[Op, ...] = ()


@dataclass(frozen=True, slots=True)
class CompactOp:
    revision: int


@dataclass(frozen=True, slots=True)
class LeaseGrantOp:
    """``id`` 0 asks the store to pick the next free id (deterministically)."""

    id: int
    ttl: int


@dataclass(frozen=True, slots=True)
class LeaseRevokeOp:
    id: int


Op: TypeAlias = RangeOp | PutOp | DeleteRangeOp | TxnOp | CompactOp | LeaseGrantOp | LeaseRevokeOp


@dataclass(frozen=True, slots=True)
class Request:
    """A replicated request. ``client_id`` b"" disables deduplication; otherwise ``seq``
    identifies the request within the client's session (retries reuse it) and
    ``first_incomplete`` is the client's lowest seq still awaiting a result: the store may
    forget every result below it."""

    client_id: bytes
    seq: int
    first_incomplete: int
    op: Op


# ---------------------------------------------------------------------------------------------
# Results. ``revision`` is always the store revision a client should see in the response header.


@dataclass(frozen=True, slots=True)
class RangeResult:
    kvs: tuple[KeyValue, ...]
    count: int
    more: bool
    revision: int


@dataclass(frozen=True, slots=True)
class PutResult:
    revision: int
    prev_kv: KeyValue | None = None


@dataclass(frozen=True, slots=True)
class DeleteRangeResult:
    revision: int
    deleted: int
    prev_kvs: tuple[KeyValue, ...] = ()


@dataclass(frozen=True, slots=True)
class TxnResult:
    revision: int
    succeeded: bool
    responses: tuple[Result, ...]


@dataclass(frozen=True, slots=True)
class CompactResult:
    revision: int


@dataclass(frozen=True, slots=True)
class LeaseGrantResult:
    id: int
    ttl: int
    revision: int


@dataclass(frozen=True, slots=True)
class LeaseRevokeResult:
    revision: int


Result: TypeAlias = (
    RangeResult
    | PutResult
    | DeleteRangeResult
    | TxnResult
    | CompactResult
    | LeaseGrantResult
    | LeaseRevokeResult
)


# ---------------------------------------------------------------------------------------------
# Errors


class StoreError(Exception):
    """Base of every error the store returns. Two errors are equal when type and args are."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StoreError) and type(self) is type(other) and self.args == other.args

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.args))


class Compacted(StoreError):
    def __init__(self, compact_revision: int) -> None:
        super().__init__(compact_revision)
        self.compact_revision = compact_revision

    def __str__(self) -> str:
        return f"mvcc: required revision has been compacted (compact revision {self.compact_revision})"


class FutureRevision(StoreError):
    def __init__(self, current_revision: int) -> None:
        super().__init__(current_revision)
        self.current_revision = current_revision

    def __str__(self) -> str:
        return f"mvcc: required revision is a future revision (current revision {self.current_revision})"


class RequestTooLarge(StoreError):
    def __init__(self, size: int, limit: int) -> None:
        super().__init__(size, limit)
        self.size = size
        self.limit = limit

    def __str__(self) -> str:
        return f"request is too large: {self.size} bytes encoded, limit is {self.limit} bytes"


class LeaseNotFound(StoreError):
    def __init__(self, id: int) -> None:
        super().__init__(id)
        self.id = id

    def __str__(self) -> str:
        return f"lease not found: {self.id}"


class LeaseExists(StoreError):
    def __init__(self, id: int) -> None:
        super().__init__(id)
        self.id = id

    def __str__(self) -> str:
        return f"lease already exists: {self.id}"


class InvalidRequest(StoreError):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message
