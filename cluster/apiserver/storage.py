"""Kubernetes objects in the replicated store: keys, revisions and optimistic concurrency.

Every object is one key, ``/registry/<resource>/<namespace>/<name>`` (cluster-scoped:
``/registry/<resource>/<name>``), holding the object's JSON. ``metadata.resourceVersion`` is never
stored: it is the key's mod revision, filled in on the way out. Writes are transactions that compare
the mod revision the caller read, so two writers can never both win (the loser gets 409 Conflict).

Only a failed compare is a conflict. Every other store failure goes through ``status_for_store_error``,
which says what the client may conclude: ``Unavailable`` (no replica answered before the client's
deadline, across timeouts and leader changes) means a write's outcome is unknown and becomes 504 Timeout,
as kube-apiserver answers when etcd does not reply in time; a typed ``StoreError`` is a refusal that
changed nothing (500); anything else is a 500 whose outcome is unknown for a write.

Values of the resources an EncryptionConfiguration names pass through its transformers
(``ValueTransformers``, from ``cluster.apiserver.encryption_config``) on the way in and out, with the
key as authenticated data; other resources' values are the JSON itself, at no extra cost. A value
that cannot be decrypted is kube's 500 ``unable to transform key "<key>": <reason>``.
"""

from __future__ import annotations

import builtins
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import orjson

from cluster.apiserver.errors import StatusError, internal, timeout
from cluster.apiserver.resources import ResourceInfo
from cluster.store.api import StoreAPI, Unavailable
from cluster.store.mvcc import (
    Compare,
    CompareResult,
    CompareTarget,
    DeleteRangeOp,
    KeyValue,
    PutOp,
    RangeOp,
    StoreError,
    prefix_end,
)

REGISTRY = "/registry/"
_T = TypeVar("_T")


def resource_prefix(info: ResourceInfo) -> str:
    # events.k8s.io/v1 Events are stored apart from core/v1 Events (no cross-version conversion yet).
    name = f"{info.group}/{info.plural}" if info.group == "events.k8s.io" else info.plural
    return f"{REGISTRY}{name}/"


def object_key(info: ResourceInfo, namespace: str | None, name: str) -> str:
    if info.namespaced:
        return f"{resource_prefix(info)}{namespace}/{name}"
    return f"{resource_prefix(info)}{name}"


def list_prefix(info: ResourceInfo, namespace: str | None) -> str:
    if info.namespaced and namespace:
        return f"{resource_prefix(info)}{namespace}/"
    return resource_prefix(info)


class ValueTransformer(Protocol):
    """Encrypts (``to_storage``) and decrypts (``from_storage``) one resource's values; ``context``
    is the store key. Raises ``encryption.TransformError`` (any exception) when it cannot."""

    def to_storage(self, data: bytes, context: bytes) -> bytes: ...

    def from_storage(self, data: bytes, context: bytes) -> bytes: ...


class ValueTransformers(Protocol):
    def for_key(self, key: str) -> ValueTransformer | None:
        """The transformer of the resource stored under ``key``; None: its values are stored plain."""
        ...


def untransformable(key: str | bytes, reason: object) -> StatusError:
    """kube's storage error for a value its transformers cannot read (wrong or missing key)."""
    name = key.decode(errors="replace") if isinstance(key, bytes) else key
    return internal(f'unable to transform key "{name}": {reason}')


_ENCRYPTED_MARK = b"k8s:enc:"


def decode(kv: KeyValue, values: ValueTransformer | None = None) -> dict[str, Any]:
    raw = kv.value
    if values is not None:
        try:
            raw = values.from_storage(raw, kv.key)
        except Exception as err:
            raise untransformable(kv.key, err) from None
    try:
        obj: dict[str, Any] = orjson.loads(raw)
    except orjson.JSONDecodeError:
        if raw.startswith(_ENCRYPTED_MARK):  # encrypted, but this resource has no encryption configured
            raise untransformable(kv.key, "identity transformer tried to read encrypted data") from None
        raise
    obj.setdefault("metadata", {})["resourceVersion"] = str(kv.mod_revision)
    return obj


def encode(obj: dict[str, Any]) -> bytes:
    meta = obj.get("metadata", {})
    if "resourceVersion" in meta:
        obj = {**obj, "metadata": {k: v for k, v in meta.items() if k != "resourceVersion"}}
    return orjson.dumps(obj)


class Conflict(Exception):
    """The compare failed: the key is missing, exists, or changed since it was read."""


# kube-apiserver's text when a request outlives its deadline (its storage timeouts read the same).
DEADLINE_EXCEEDED = "request did not complete within requested timeout - context deadline exceeded"
OUTCOME_UNKNOWN = "the store did not confirm the write, so its outcome is unknown (it may have been applied)"


def status_for_store_error(error: Exception, *, write: bool) -> StatusError:
    """The ``Status`` for a store failure other than ``Conflict`` (see the module docstring).

    ``write`` says whether the request may have changed the store: only then is the outcome unknown.
    A ``StatusError`` passes through unchanged.
    """
    if isinstance(error, StatusError):
        return error
    if isinstance(error, Unavailable):
        detail = f"{OUTCOME_UNKNOWN}: {error}" if write else str(error)
        return timeout(f"{DEADLINE_EXCEEDED} ({detail})")
    if isinstance(error, StoreError):
        return internal(f"the store refused the request, nothing was changed: {error}")
    message = f"{type(error).__name__}: {error}"
    return internal(f"{message}; {OUTCOME_UNKNOWN}" if write else message)


@dataclass(frozen=True, slots=True)
class ListResult:
    items: list[dict[str, Any]]
    revision: int
    more: bool
    last_key: bytes


class ObjectStore:
    """Objects in the store. A store that does not answer (``Unavailable``) surfaces here as the 504
    ``StatusError`` of ``status_for_store_error``, which knows whether the call was a read or a write;
    typed store errors (``Compacted``, ...) pass through for callers that handle them."""

    def __init__(self, client: StoreAPI, values: ValueTransformers | None = None) -> None:
        self.client = client
        self.values = values  # encryption at rest; None: nothing configured

    def _transformer(self, key: str) -> ValueTransformer | None:
        return self.values.for_key(key) if self.values is not None else None

    def _encode(self, key: str, obj: dict[str, Any]) -> bytes:
        data = encode(obj)
        t = self.values.for_key(key) if self.values is not None else None
        return data if t is None else t.to_storage(data, key.encode())

    @staticmethod
    async def _call(call: Awaitable[_T], *, write: bool) -> _T:
        try:
            return await call
        except Unavailable as e:
            raise status_for_store_error(e, write=write) from e

    async def get(self, key: str) -> dict[str, Any] | None:
        kv = await self._call(self.client.get(key.encode()), write=False)
        return decode(kv, self._transformer(key)) if kv else None

    async def exists(self, key: str) -> bool:
        return await self._call(self.client.get(key.encode()), write=False) is not None

    async def current_revision(self, prefix: str) -> int:
        op = RangeOp(prefix.encode(), prefix_end(prefix.encode()), count_only=True)
        res = await self._call(self.client.range(op), write=False)
        return res.revision

    async def list(
        self, prefix: str, *, start_after: bytes = b"", limit: int = 0, revision: int = 0
    ) -> ListResult:
        start = start_after + b"\0" if start_after else prefix.encode()
        op = RangeOp(start, prefix_end(prefix.encode()), limit=limit, revision=revision)
        res = await self._call(self.client.range(op), write=False)
        t = self._transformer(prefix)
        items = [decode(kv, t) for kv in res.kvs]
        last = res.kvs[-1].key if res.kvs else b""
        return ListResult(items, revision or res.revision, res.more, last)

    async def create(
        self, key: str, obj: dict[str, Any], extra_creates: Sequence[str] = ()
    ) -> dict[str, Any]:
        """Create ``key`` (and the marker keys in ``extra_creates``, e.g. an allocated IP) atomically."""
        keys = [key, *extra_creates]
        cmp = [Compare(k.encode(), CompareTarget.VERSION, CompareResult.EQUAL, 0) for k in keys]
        puts = [PutOp(key.encode(), self._encode(key, obj))] + [
            PutOp(k.encode(), key.encode()) for k in extra_creates
        ]
        res = await self._call(self.client.txn(cmp, puts), write=True)
        if not res.succeeded:
            raise Conflict(key)
        out = dict(obj)
        out["metadata"] = {**obj.get("metadata", {}), "resourceVersion": str(res.revision)}
        return out

    async def update(self, key: str, obj: dict[str, Any], expected_revision: int) -> dict[str, Any]:
        cmp = Compare(key.encode(), CompareTarget.MOD, CompareResult.EQUAL, expected_revision)
        res = await self._call(
            self.client.txn([cmp], [PutOp(key.encode(), self._encode(key, obj))]), write=True
        )
        if not res.succeeded:
            raise Conflict(key)
        out = dict(obj)
        out["metadata"] = {**obj.get("metadata", {}), "resourceVersion": str(res.revision)}
        return out

    async def delete(self, key: str, expected_revision: int, extra_deletes: Sequence[str] = ()) -> int:
        cmp = Compare(key.encode(), CompareTarget.MOD, CompareResult.EQUAL, expected_revision)
        ops = [DeleteRangeOp(key.encode())] + [DeleteRangeOp(k.encode()) for k in extra_deletes]
        res = await self._call(self.client.txn([cmp], ops), write=True)
        if not res.succeeded:
            raise Conflict(key)
        return res.revision

    async def keys_with_prefix(self, prefix: str) -> builtins.list[str]:
        op = RangeOp(prefix.encode(), prefix_end(prefix.encode()), keys_only=True)
        res = await self._call(self.client.range(op), write=False)
        return [kv.key.decode() for kv in res.kvs]
