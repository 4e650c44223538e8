"""A small fake Kubernetes API server (aiohttp.web on 127.0.0.1) for client and informer tests.

It keeps objects per resource, a global resourceVersion counter and an event history, and serves:
list (with ``limit``/``continue`` paging, label and ``metadata.name`` field selectors), get, create
(``dryRun``), update (resourceVersion preconditions -> 409), merge patch, delete, ``pods/<n>/binding``
and chunked watch streams. Tests drive it directly: :meth:`put` / :meth:`remove` change state and
notify watchers; :meth:`remove_silently` + :meth:`expire_watches` simulate missed events and a 410;
:meth:`fail` injects error replies. Every request is recorded in :attr:`requests`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web
from aiohttp.test_utils import TestServer

from cluster.machinery.labels import parse_label_selector


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


@dataclass
class Failure:
    method: str
    status: int
    reason: str
    times: int
    watch: bool | None = None
    retry_after: str | None = None


@dataclass
class Watcher:
    plural: str
    namespace: str | None
    queue: asyncio.Queue[dict[str, Any] | None] = field(default_factory=asyncio.Queue)


def status_body(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            result.pop(k, None)
        else:
            result[k] = merge_patch(result.get(k), v)
    return result


class FakeApiServer:
    def __init__(self) -> None:
        self.objects: dict[str, dict[tuple[str, str], dict[str, Any]]] = {}
        self.rv = 100
        self.history: list[tuple[int, str, str, dict[str, Any]]] = []
        self.compacted = 0
        self.requests: list[Recorded] = []
        self.failures: list[Failure] = []
        self.watchers: list[Watcher] = []
        self._server: TestServer | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self, ssl_context: ssl.SSLContext | None = None) -> str:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._server = TestServer(app, host="127.0.0.1")
        await self._server.start_server(ssl=ssl_context)
        return str(self._server.make_url("")).rstrip("/")

    async def stop(self) -> None:
        for w in self.watchers:
            w.queue.put_nowait(None)
        if self._server is not None:
            await self._server.close()

    # -- test controls ----------------------------------------------------------------------------

    def put(self, plural: str, obj: dict[str, Any]) -> dict[str, Any]:
        """Create or replace ``obj`` (a new resourceVersion) and emit ADDED / MODIFIED."""
        meta = obj.setdefault("metadata", {})
        key = (meta.get("namespace", ""), meta["name"])
        bucket = self.objects.setdefault(plural, {})
        kind = "MODIFIED" if key in bucket else "ADDED"
        self.rv += 1
        meta["resourceVersion"] = str(self.rv)
        meta.setdefault("uid", f"uid-{meta['name']}-{self.rv}")
        bucket[key] = obj
        self._emit(plural, kind, obj)
        return obj

    def remove(self, plural: str, namespace: str, name: str) -> dict[str, Any]:
        obj = self.objects[plural].pop((namespace, name))
        self.rv += 1
        obj = dict(obj, metadata=dict(obj["metadata"], resourceVersion=str(self.rv)))
        self._emit(plural, "DELETED", obj)
        return obj

    def remove_silently(self, plural: str, namespace: str, name: str) -> None:
        """Delete without any watch event, as if the event fell out of a compacted history."""
        del self.objects[plural][(namespace, name)]
        self.rv += 1
        self.compacted = self.rv

    def expire_watches(self) -> None:
        """Compact history to now and send ERROR 410 to every open watch."""
        self.compacted = self.rv
        err = status_body(410, "Expired", f"too old resource version: {self.rv}")
        for w in self.watchers:
            w.queue.put_nowait({"type": "ERROR", "object": err})

    def end_watches(self) -> None:
        """End every open watch stream normally (as the server's timeoutSeconds would)."""
        for w in self.watchers:
            w.queue.put_nowait(None)

    def bookmark(self) -> None:
        self.rv += 1
        for w in self.watchers:
            w.queue.put_nowait(
                {"type": "BOOKMARK", "object": {"kind": "Pod", "metadata": {"resourceVersion": str(self.rv)}}}
            )

    def fail(
        self,
        method: str,
        status: int,
        reason: str,
        times: int = 1,
        watch: bool | None = None,
        retry_after: str | None = None,
    ) -> None:
        self.failures.append(Failure(method, status, reason, times, watch, retry_after))

    def calls(self, method: str, *, watch: bool | None = None) -> list[Recorded]:
        return [
            r
            for r in self.requests
            if r.method == method and (watch is None or (r.query.get("watch") == "true") == watch)
        ]

    # -- internals ---------------------------------------------------------------------------------

    def _emit(self, plural: str, kind: str, obj: dict[str, Any]) -> None:
        self.history.append((self.rv, plural, kind, obj))
        ns = obj["metadata"].get("namespace")
        for w in self.watchers:
            if w.plural == plural and (w.namespace is None or w.namespace == ns):
                w.queue.put_nowait({"type": kind, "object": obj})

    @staticmethod
    def _parse(path: str) -> tuple[str | None, str, str | None, str | None]:
        parts = [p for p in path.split("/") if p]
        rest = parts[2:] if parts[0] == "api" else parts[3:]
        namespace = None
        if len(rest) >= 3 and rest[0] == "namespaces":
            namespace, rest = rest[1], rest[2:]
        plural = rest[0]
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        return namespace, plural, name, sub

    def _json(self, obj: Any, status: int = 200) -> web.Response:
        return web.Response(body=orjson.dumps(obj), status=status, content_type="application/json")

    def _error(self, code: int, reason: str, message: str = "") -> web.Response:
        return self._json(status_body(code, reason, message or reason), code)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        body = orjson.loads(raw) if raw else None
        query = dict(request.query)
        self.requests.append(Recorded(request.method, request.path, query, dict(request.headers), body))
        is_watch = query.get("watch") == "true"
        for f in self.failures:
            if f.times > 0 and f.method == request.method and f.watch in (None, is_watch):
                f.times -= 1
                resp = self._error(f.status, f.reason, "injected")
                if f.retry_after is not None:
                    resp.headers["Retry-After"] = f.retry_after
                return resp
        namespace, plural, name, sub = self._parse(request.path)
        bucket = self.objects.setdefault(plural, {})
        if request.method == "GET" and name is None:
            if is_watch:
                return await self._watch(request, plural, namespace, query)
            return self._list(bucket, namespace, query)
        key = (namespace or "", name or "")
        if request.method == "GET":
            if key not in bucket:
                return self._error(404, "NotFound", f'{plural} "{name}" not found')
            return self._json(bucket[key])
        if request.method == "POST" and sub == "binding":
            return self._bind(bucket, key, body)
        if request.method == "POST":
            meta = body.setdefault("metadata", {})
            if namespace:
                meta.setdefault("namespace", namespace)
            if (namespace or "", meta.get("name")) in bucket:
                return self._error(409, "AlreadyExists", f'{plural} "{meta.get("name")}" already exists')
            if query.get("dryRun") == "All":
                return self._json(body, 201)
            return self._json(self.put(plural, body), 201)
        if key not in bucket:
            return self._error(404, "NotFound", f'{plural} "{name}" not found')
        current = bucket[key]
        if request.method == "PUT":
            want = (body.get("metadata") or {}).get("resourceVersion")
            if want and want != current["metadata"]["resourceVersion"]:
                return self._error(409, "Conflict", "the object has been modified")
            if sub == "status":
                body = dict(current, status=body.get("status"))
            return self._json(self.put(plural, body))
        if request.method == "PATCH":
            if isinstance(body, list):  # json patch: not interpreted by this fake
                return self._json(current)
            return self._json(self.put(plural, merge_patch(current, body)))
        if request.method == "DELETE":
            return self._json(self.remove(plural, key[0], key[1]))
        return self._error(405, "MethodNotAllowed")

    def _bind(
        self, bucket: dict[tuple[str, str], dict[str, Any]], key: tuple[str, str], body: Any
    ) -> web.Response:
        if key not in bucket:
            return self._error(404, "NotFound", f'pods "{key[1]}" not found')
        pod = bucket[key]
        if pod.get("spec", {}).get("nodeName"):
            return self._error(409, "Conflict", f"pod {key[1]} is already assigned")
        spec = dict(pod.get("spec") or {}, nodeName=body["target"]["name"])
        self.put("pods", dict(pod, spec=spec))
        return self._json({"kind": "Status", "apiVersion": "v1", "status": "Success", "code": 201}, 201)

    def _selected(self, obj: dict[str, Any], namespace: str | None, query: dict[str, str]) -> bool:
        meta = obj["metadata"]
        if namespace is not None and meta.get("namespace") != namespace:
            return False
        if "labelSelector" in query and not parse_label_selector(query["labelSelector"]).matches_object(obj):
            return False
        fs = query.get("fieldSelector")
        return not (fs and fs.startswith("metadata.name=") and meta["name"] != fs.split("=", 1)[1])

    def _list(
        self, bucket: dict[tuple[str, str], dict[str, Any]], namespace: str | None, query: dict[str, str]
    ) -> web.Response:
        items = [bucket[k] for k in sorted(bucket) if self._selected(bucket[k], namespace, query)]
        start = int(query.get("continue") or 0)
        meta: dict[str, Any] = {"resourceVersion": str(self.rv)}
        if "limit" in query:
            limit = int(query["limit"])
            if start + limit < len(items):
                meta["continue"] = str(start + limit)
            items = items[start : start + limit]
        return self._json({"kind": "List", "apiVersion": "v1", "metadata": meta, "items": items})

    async def _watch(
        self, request: web.Request, plural: str, namespace: str | None, query: dict[str, str]
    ) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.content_type = "application/json"
        await resp.prepare(request)
        since = int(query.get("resourceVersion") or self.rv)
        if since < self.compacted:
            err = status_body(410, "Expired", f"too old resource version: {since} ({self.compacted})")
            await resp.write(orjson.dumps({"type": "ERROR", "object": err}) + b"\n")
            return resp
        watcher = Watcher(plural, namespace)
        for rv, p, kind, obj in self.history:
            if (
                rv > since
                and p == plural
                and (namespace is None or obj["metadata"].get("namespace") == namespace)
            ):
                watcher.queue.put_nowait({"type": kind, "object": obj})
        self.watchers.append(watcher)
        try:
            while True:
                event = await watcher.queue.get()
                if event is None:
                    break
                if event["type"] not in ("ERROR", "BOOKMARK") and not self._selected(
                    event["object"], namespace, query
                ):
                    continue
                await resp.write(orjson.dumps(event) + b"\n")
                if event["type"] == "ERROR":
                    break
        except ConnectionResetError:
            pass
        finally:
            self.watchers.remove(watcher)
        with contextlib.suppress(ConnectionResetError):
            await resp.write_eof()
        return resp
