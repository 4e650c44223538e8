"""An indexed in-memory cache of wire-form objects: the store behind an informer.

Objects are keyed like client-go's ``MetaNamespaceKeyFunc``: ``"<namespace>/<name>"`` for namespaced
objects and ``"<name>"`` for cluster-scoped ones. Indexes map an index value to the set of keys whose
object produced it; the ``namespace`` index always exists.

Invariants: every index agrees with the stored objects after each call returns; the cache holds the
objects it was given, not copies, so callers must treat returned objects as read-only (copy before
mutating, as with client-go listers). Used from one event loop; no locking.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from cluster.machinery.labels import LabelSelector, as_selector

IndexFunc = Callable[[dict[str, Any]], list[str]]
NAMESPACE_INDEX = "namespace"


def object_key(obj: Mapping[str, Any]) -> str:
    """``namespace/name``, or ``name`` for cluster-scoped objects."""
    meta = obj.get("metadata") or {}
    namespace, name = meta.get("namespace"), meta.get("name", "")
    return f"{namespace}/{name}" if namespace else name


def split_key(key: str) -> tuple[str | None, str]:
    """Inverse of :func:`object_key`: ``(namespace or None, name)``."""
    namespace, sep, name = key.partition("/")
    return (namespace, name) if sep else (None, namespace)


def namespace_index(obj: dict[str, Any]) -> list[str]:
    namespace = (obj.get("metadata") or {}).get("namespace")
    return [namespace] if namespace else []


class DeletedFinalStateUnknown(dict[str, Any]):
    """Tombstone handed to ``on_delete`` when a relist finds an object gone whose deletion the watch
    never delivered. It is a dict holding the last state the cache knew, so handlers that only read
    the object keep working; ``key`` names it and ``isinstance`` tells it apart from a watched delete.
    """

    def __init__(self, key: str, obj: Mapping[str, Any]) -> None:
        super().__init__(obj)
        self.key = key


class Lister:
    """Indexed cache: read with :meth:`get`, :meth:`list`, :meth:`by_index`; written by the informer."""

    def __init__(self) -> None:
        self._items: dict[str, dict[str, Any]] = {}
        self._index_funcs: dict[str, IndexFunc] = {}
        self._indices: dict[str, dict[str, set[str]]] = {}
        self.add_index(NAMESPACE_INDEX, namespace_index)

    # -- reads -------------------------------------------------------------------------------------

    def get(self, namespace: str | None, name: str) -> dict[str, Any] | None:
        return self._items.get(f"{namespace}/{name}" if namespace else name)

    def get_by_key(self, key: str) -> dict[str, Any] | None:
        return self._items.get(key)

    def list(
        self,
        namespace: str | None = None,
        label_selector: str | Mapping[str, Any] | LabelSelector | None = None,
    ) -> list[dict[str, Any]]:
        """Objects in ``namespace`` (all when ``None``) matching the selector, ordered by key."""
        selector = as_selector(label_selector)
        if namespace is None:
            keys: Iterable[str] = self._items
        else:
            keys = self._indices[NAMESPACE_INDEX].get(namespace, ())
        found = [self._items[k] for k in sorted(keys)]
        if selector.empty():
            return found
        return [obj for obj in found if selector.matches_object(obj)]

    def keys(self) -> builtins.list[str]:
        return sorted(self._items)

    def by_index(self, index_name: str, value: str) -> builtins.list[dict[str, Any]]:
        """Objects whose index function returned ``value``; KeyError for an unknown index."""
        keys = self._indices[index_name].get(value, ())
        return [self._items[k] for k in sorted(keys)]

    def index_keys(self, index_name: str, value: str) -> builtins.list[str]:
        return sorted(self._indices[index_name].get(value, ()))

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """A shallow copy of the key -> object map."""
        return dict(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    # -- writes ------------------------------------------------------------------------------------

    def add_index(self, name: str, fn: IndexFunc) -> None:
        """Register an index; existing objects are indexed at once. Re-registering a name replaces it."""
        self._index_funcs[name] = fn
        index: dict[str, set[str]] = {}
        for key, obj in self._items.items():
            for value in fn(obj):
                index.setdefault(value, set()).add(key)
        self._indices[name] = index

    def upsert(self, obj: dict[str, Any]) -> dict[str, Any] | None:
        """Store ``obj``; return the object it replaced, if any."""
        key = object_key(obj)
        old = self._items.get(key)
        if old is not None:
            self._unindex(key, old)
        self._items[key] = obj
        self._index(key, obj)
        return old

    def remove(self, key: str) -> dict[str, Any] | None:
        """Drop the object under ``key``; return it, or ``None`` if it was absent."""
        old = self._items.pop(key, None)
        if old is not None:
            self._unindex(key, old)
        return old

    def replace(self, objs: Iterable[dict[str, Any]]) -> None:
        """Swap the whole content (after a relist) and rebuild the indexes."""
        self._items = {object_key(o): o for o in objs}
        for name, fn in list(self._index_funcs.items()):
            self.add_index(name, fn)

    def _index(self, key: str, obj: dict[str, Any]) -> None:
        for name, fn in self._index_funcs.items():
            index = self._indices[name]
            for value in fn(obj):
                index.setdefault(value, set()).add(key)

    def _unindex(self, key: str, obj: dict[str, Any]) -> None:
        for name, fn in self._index_funcs.items():
            index = self._indices[name]
            for value in fn(obj):
                keys = index.get(value)
                if keys is not None:
                    keys.discard(key)
                    if not keys:
                        del index[value]
