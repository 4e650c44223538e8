"""An in-memory ``AgentApi`` for the agent's tests: objects in a dict, the API server's pod deletion rules.

Every change notifies ``changed`` (an ``asyncio.Condition``), so tests await a condition on the stored
objects (``wait_for``) instead of sleeping. Pod deletion follows ``cluster/apiserver``: a bound,
non-terminal pod gets ``deletionTimestamp`` + ``deletionGracePeriodSeconds`` (from the options, else
``terminationGracePeriodSeconds``, else 30); grace 0 removes it; a ``uid`` precondition that does not
match is a 409.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import itertools
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from cluster.client.errors import ApiError
from nodeagent.agent.api import PodHandler

Key = tuple[str, str, str, str]  # group_version, plural, namespace, name


class FakeFeed:
    def __init__(self, api: FakeApi, node: str, on_change: PodHandler, on_delete: PodHandler) -> None:
        self.api, self.node, self.on_change, self.on_delete = api, node, on_change, on_delete

    def _mine(self, pod: dict[str, Any]) -> bool:
        return (pod.get("spec") or {}).get("nodeName") == self.node

    def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        pod = self.api.objects.get(("v1", "pods", namespace, name))
        return copy.deepcopy(pod) if pod is not None and self._mine(pod) else None

    def list(self) -> list[dict[str, Any]]:
        return [copy.deepcopy(p) for p in self.api.pods() if self._mine(p)]

    async def run(self) -> None:
        await asyncio.Event().wait()

    async def wait_synced(self, timeout: float | None = None) -> bool:
        return True


class FakeApi:
    def __init__(self) -> None:
        self.objects: dict[Key, dict[str, Any]] = {}
        self.feeds: list[FakeFeed] = []
        self.changed = asyncio.Condition()
        self._rv = itertools.count(1)
        self.calls: list[tuple[str, str, str]] = []  # (verb, plural, name)

    # -- helpers for tests ------------------------------------------------------------------------

    def pods(self) -> list[dict[str, Any]]:
        return [o for (gv, plural, _, _), o in self.objects.items() if (gv, plural) == ("v1", "pods")]

    def pod(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.objects.get(("v1", "pods", namespace, name))

    async def wait_for(self, predicate: Callable[[], Any], timeout: float = 60.0) -> Any:
        """Wait until ``predicate()`` is truthy (re-checked on every change and every 0.2 s)."""

        async def check() -> Any:
            async with self.changed:
                while True:
                    value = predicate()
                    if value:
                        return value
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.changed.wait(), 0.2)

        return await asyncio.wait_for(check(), timeout)

    async def _notify(self) -> None:
        async with self.changed:
            self.changed.notify_all()

    def _emit(self, pod: dict[str, Any], deleted: bool) -> None:
        for feed in self.feeds:
            if (pod.get("spec") or {}).get("nodeName") != feed.node:
                continue
            (feed.on_delete if deleted else feed.on_change)(copy.deepcopy(pod))

    # -- AgentApi ---------------------------------------------------------------------------------

    def pod_feed(self, node_name: str, on_change: PodHandler, on_delete: PodHandler) -> FakeFeed:
        feed = FakeFeed(self, node_name, on_change, on_delete)
        self.feeds.append(feed)
        return feed

    async def get(self, group_version: str, plural: str, namespace: str | None, name: str) -> dict[str, Any]:
        obj = self.objects.get((group_version, plural, namespace or "", name))
        if obj is None:
            raise ApiError(404, "NotFound", f'{plural} "{name}" not found')
        return copy.deepcopy(obj)

    async def list(
        self, group_version: str, plural: str, namespace: str | None, *, field_selector: str | None = None
    ) -> list[dict[str, Any]]:
        return [
            copy.deepcopy(o)
            for (gv, pl, ns, _), o in self.objects.items()
            if (gv, pl) == (group_version, plural) and (namespace is None or ns == namespace)
        ]

    async def create(
        self, group_version: str, plural: str, namespace: str | None, body: dict[str, Any]
    ) -> dict[str, Any]:
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {})
        key = (group_version, plural, namespace or "", meta["name"])
        self.calls.append(("create", plural, meta["name"]))
        if key in self.objects:
            raise ApiError(409, "AlreadyExists", f'{plural} "{meta["name"]}" already exists')
        if namespace:
            meta["namespace"] = namespace
        meta["uid"] = str(uuid.uuid4())
        meta["resourceVersion"] = str(next(self._rv))
        meta["creationTimestamp"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        self.objects[key] = obj
        if plural == "pods":
            self._emit(obj, deleted=False)
        await self._notify()
        return copy.deepcopy(obj)

    async def update(
        self, group_version: str, plural: str, namespace: str | None, body: dict[str, Any]
    ) -> dict[str, Any]:
        meta = body["metadata"]
        key = (group_version, plural, namespace or "", meta["name"])
        self.calls.append(("update", plural, meta["name"]))
        current = self.objects.get(key)
        if current is None:
            raise ApiError(404, "NotFound", f'{plural} "{meta["name"]}" not found')
        if meta.get("resourceVersion") != current["metadata"]["resourceVersion"]:
            raise ApiError(409, "Conflict", "the object has been modified")
        obj = copy.deepcopy(body)
        obj["metadata"]["resourceVersion"] = str(next(self._rv))
        self.objects[key] = obj
        await self._notify()
        return copy.deepcopy(obj)

    async def create_subresource(
        self, group_version: str, plural: str, namespace: str | None, name: str, subresource: str,
        body: dict[str, Any],
    ) -> dict[str, Any]:  # fmt: skip
        """Only ``serviceaccounts/<name>/token``: a token naming the account and the request count."""
        self.calls.append(("create", f"{plural}/{subresource}", name))
        if (plural, subresource) != ("serviceaccounts", "token"):
            raise ApiError(404, "NotFound", f"the fake API has no {plural}/{subresource}")
        n = sum(1 for c in self.calls if c[1] == "serviceaccounts/token")
        return {**body, "status": {"token": f"token-{n}-{namespace}-{name}"}}

    async def _merge(self, key: Key, patch: dict[str, Any]) -> dict[str, Any]:
        current = self.objects.get(key)
        if current is None:
            raise ApiError(404, "NotFound", f'{key[1]} "{key[3]}" not found')
        obj = _merge_patch(copy.deepcopy(current), patch)
        obj["metadata"]["resourceVersion"] = str(next(self._rv))
        self.objects[key] = obj
        if key[1] == "pods":
            self._emit(obj, deleted=False)
        await self._notify()
        return copy.deepcopy(obj)

    async def patch(
        self, group_version: str, plural: str, namespace: str | None, name: str, patch: dict[str, Any]
    ) -> dict[str, Any]:
        self.calls.append(("patch", plural, name))
        return await self._merge((group_version, plural, namespace or "", name), patch)

    async def patch_status(
        self, group_version: str, plural: str, namespace: str | None, name: str, status: dict[str, Any]
    ) -> dict[str, Any]:
        self.calls.append(("patch_status", plural, name))
        return await self._merge((group_version, plural, namespace or "", name), {"status": status})

    async def delete(
        self,
        group_version: str,
        plural: str,
        namespace: str | None,
        name: str,
        *,
        grace_period_seconds: int | None = None,
        uid: str | None = None,
    ) -> None:
        key = (group_version, plural, namespace or "", name)
        self.calls.append(("delete", plural, name))
        current = self.objects.get(key)
        if current is None:
            raise ApiError(404, "NotFound", f'{plural} "{name}" not found')
        if uid and current["metadata"].get("uid") != uid:
            raise ApiError(409, "Conflict", "Precondition failed: UID in precondition")
        grace = 0
        spec, status = current.get("spec") or {}, current.get("status") or {}
        if plural == "pods" and spec.get("nodeName") and status.get("phase") not in ("Succeeded", "Failed"):
            grace = grace_period_seconds
            if grace is None:
                grace = int(spec.get("terminationGracePeriodSeconds", 30))
        if grace > 0:
            if current["metadata"].get("deletionTimestamp"):
                return
            current["metadata"]["deletionTimestamp"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            current["metadata"]["deletionGracePeriodSeconds"] = grace
            current["metadata"]["resourceVersion"] = str(next(self._rv))
            self._emit(current, deleted=False)
        else:
            del self.objects[key]
            if plural == "pods":
                self._emit(current, deleted=True)
        await self._notify()


def _merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if not isinstance(target, dict):
        target = {}
    for k, v in patch.items():
        if v is None:
            target.pop(k, None)
        else:
            target[k] = _merge_patch(target.get(k), v)
    return target
