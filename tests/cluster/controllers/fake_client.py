"""An in-memory stand-in for ``ApiClient`` in controller unit tests: objects by (group version,
plural, namespace, name), the verbs controllers use, every write recorded in ``calls``.

It is no API server: a delete removes the object at once (no grace) unless it has finalizers or
the policy is Foreground/Orphan, which set ``deletionTimestamp`` and the GC finalizer as the API
server does; an update or patch that leaves a deleting object without finalizers removes it. Merge
patches follow RFC 7386; JSON patches support test/add/remove (what the controllers send).
"""

from __future__ import annotations

import copy
from typing import Any

from cluster.client.errors import ApiError


def _not_found(plural: str, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{plural} "{name}" not found')


def _merge(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict) or not isinstance(target, dict):
        return copy.deepcopy(patch)
    out = dict(target)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = _merge(out.get(key), value)
    return out


def _json_patch(obj: dict[str, Any], ops: list[dict[str, Any]]) -> dict[str, Any]:
    """test / add / remove on ``/a/b`` paths into objects (what the controllers send)."""
    out = copy.deepcopy(obj)
    for op in ops:
        *parents, last = op["path"].strip("/").split("/")
        target = out
        for part in parents:
            target = target[part]
        if op["op"] == "test":
            if target.get(last) != op["value"]:
                raise ApiError(422, "Invalid", f"testing value {op['path']} failed")
        elif op["op"] in ("add", "replace"):
            target[last] = copy.deepcopy(op["value"])
        elif op["op"] == "remove":
            del target[last]
        else:
            raise AssertionError(f"unsupported op {op['op']}")
    return out


class FakeClient:
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str | None, str], dict[str, Any]] = {}
        self.calls: list[tuple[Any, ...]] = []  # every request but list: (verb, gv, plural, ns, name, ...)
        self.paths: dict[str, dict[str, Any]] = {}  # get_path answers (discovery documents)
        self._rv = 0

    def put(self, gv: str, plural: str, obj: dict[str, Any]) -> dict[str, Any]:
        meta = obj.setdefault("metadata", {})
        self._rv += 1
        meta["resourceVersion"] = str(self._rv)
        meta.setdefault("uid", f"uid-{meta['name']}")
        self.objects[(gv, plural, meta.get("namespace"), meta["name"])] = obj
        return obj

    def stored(self, gv: str, plural: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        return self.objects.get((gv, plural, namespace, name))

    def writes(self, verb: str) -> list[tuple[Any, ...]]:
        return [c for c in self.calls if c[0] == verb]

    async def get_path(self, path: str) -> dict[str, Any]:
        if path not in self.paths:
            raise ApiError(404, "NotFound", path)
        return copy.deepcopy(self.paths[path])

    async def get(
        self, gv: str, plural: str, name: str, namespace: str | None = None, subresource: str | None = None
    ) -> dict[str, Any]:
        self.calls.append(("get", gv, plural, namespace, name))
        obj = self.objects.get((gv, plural, namespace, name))
        if obj is None:
            raise _not_found(plural, name)
        return copy.deepcopy(obj)

    async def list(self, gv: str, plural: str, namespace: str | None = None, **_: Any) -> dict[str, Any]:
        items = [
            copy.deepcopy(o)
            for (g, p, ns, _n), o in sorted(self.objects.items(), key=lambda kv: str(kv[0]))
            if g == gv and p == plural and (namespace is None or ns == namespace)
        ]
        return {"items": items, "metadata": {"resourceVersion": str(self._rv)}}

    list_all = list

    async def create(
        self, gv: str, plural: str, body: dict[str, Any], namespace: str | None = None, **_: Any
    ) -> dict[str, Any]:
        self.calls.append(("create", gv, plural, namespace, body["metadata"]["name"]))
        return copy.deepcopy(self.put(gv, plural, copy.deepcopy(body)))

    async def update(
        self,
        gv: str,
        plural: str,
        body: dict[str, Any],
        namespace: str | None = None,
        *,
        subresource: str | None = None,
    ) -> dict[str, Any]:
        name = body["metadata"]["name"]
        self.calls.append(("update", gv, plural, namespace, name, subresource, copy.deepcopy(body)))
        if (gv, plural, namespace, name) not in self.objects:
            raise _not_found(plural, name)
        return copy.deepcopy(self.put(gv, plural, copy.deepcopy(body)))

    async def patch(
        self,
        gv: str,
        plural: str,
        name: str,
        patch: Any,
        namespace: str | None = None,
        *,
        subresource: str | None = None,
        patch_type: str = "merge",
        **_: Any,
    ) -> dict[str, Any]:
        self.calls.append(("patch", gv, plural, namespace, name, subresource, copy.deepcopy(patch)))
        obj = self.objects.get((gv, plural, namespace, name))
        if obj is None:
            raise _not_found(plural, name)
        if patch_type == "json":
            return copy.deepcopy(self._settle(gv, plural, self.put(gv, plural, _json_patch(obj, patch))))
        want_rv = (patch.get("metadata") or {}).get("resourceVersion")
        if want_rv and want_rv != obj["metadata"]["resourceVersion"]:
            raise ApiError(409, "Conflict", f"{plural} {name}: the object has been modified")
        return copy.deepcopy(self.put(gv, plural, _merge(obj, patch)))

    async def delete(
        self,
        gv: str,
        plural: str,
        name: str,
        namespace: str | None = None,
        *,
        propagation_policy: str | None = None,
        grace_period_seconds: int | None = None,
        preconditions: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        self.calls.append(("delete", gv, plural, namespace, name, propagation_policy))
        obj = self.objects.get((gv, plural, namespace, name))
        if obj is None:
            raise _not_found(plural, name)
        uid = (preconditions or {}).get("uid")
        if uid and uid != obj["metadata"].get("uid"):
            raise ApiError(409, "Conflict", "Precondition failed: UID")
        meta = obj["metadata"]
        finalizers = list(meta.get("finalizers") or [])
        extra = {"Foreground": "foregroundDeletion", "Orphan": "orphan"}.get(propagation_policy or "")
        if extra and extra not in finalizers:
            finalizers.append(extra)
        if not finalizers:
            del self.objects[(gv, plural, namespace, name)]
            return obj
        meta["finalizers"] = finalizers
        meta.setdefault("deletionTimestamp", "2026-01-01T00:00:00Z")
        return copy.deepcopy(self.put(gv, plural, obj))

    def _settle(self, gv: str, plural: str, obj: dict[str, Any]) -> dict[str, Any]:
        meta = obj["metadata"]
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            del self.objects[(gv, plural, meta.get("namespace"), meta["name"])]
            return obj
        return obj
