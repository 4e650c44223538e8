"""The REST verbs for every resource: get, list, watch, create, update, patch, delete, deletecollection.

Handlers decode the request, call the registry (writes) or the watch cache (lists and watches), and
encode the answer as JSON, as a ``meta.k8s.io`` Table when the client asks for one (``kubectl get``),
or as a chunked stream of watch events.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import time
from typing import Any

import orjson
from aiohttp import web

from cluster.apiserver import fieldvalidation
from cluster.apiserver.context import warning_header
from cluster.apiserver.errors import StatusError, bad_request, method_not_allowed, success_status
from cluster.apiserver.fieldselectors import parse_field_selector
from cluster.apiserver.patch import (
    ApplyConflict,
    PatchError,
    apply_patch,
    json_merge_patch,
    json_patch,
    strategic_merge_patch,
    supports_strategic_merge,
)
from cluster.apiserver.registry import Registry, utcnow
from cluster.apiserver.request import (
    PATCH_TYPES,
    Target,
    decode_body,
    dry_run,
    json_response,
    media_type,
    query_bool,
    query_int,
    read_object,
    read_raw,
)
from cluster.apiserver.resources import ResourceInfo
from cluster.apiserver.storage import ObjectStore, list_prefix
from cluster.apiserver.tables import requested_table_version, to_table
from cluster.apiserver.watchcache import TooOld, WatchCache
from cluster.machinery.fields import FieldSelector
from cluster.machinery.labels import LabelSelector, SelectorError, parse_label_selector
from cluster.store.mvcc import Compacted


def _label_selector(request: web.Request) -> LabelSelector:
    try:
        return parse_label_selector(request.query.get("labelSelector", ""))
    except SelectorError as e:
        raise bad_request(f"unable to parse requirement: {e}") from None


def _continue_token(revision: int, last_key: str) -> str:
    raw = orjson.dumps({"v": "meta.k8s.io/v1", "rv": revision, "start": last_key})
    return base64.urlsafe_b64encode(raw).decode()


def _parse_continue(token: str) -> tuple[int, str]:
    try:
        data = orjson.loads(base64.urlsafe_b64decode(token.encode()))
        return int(data["rv"]), str(data["start"])
    except Exception:
        raise bad_request("continue key is not valid: incorrect encoded start resourceVersion") from None


def _warn(resp: web.Response, warnings: list[str]) -> web.Response:
    for w in warnings:
        resp.headers.add("Warning", warning_header(w))
    return resp


class ResourceAPI:
    def __init__(self, registry: Registry, cache: WatchCache, store: ObjectStore) -> None:
        self.registry = registry
        self.cache = cache
        self.store = store

    # ------------------------------------------------------------------ output helpers

    def _respond(
        self, request: web.Request, info: ResourceInfo, obj: dict[str, Any], status: int = 200
    ) -> web.Response:
        table_version = requested_table_version(request.headers.get("Accept", ""))
        if table_version and obj.get("kind") != "Status":
            table = to_table(
                info,
                [obj],
                now=utcnow(),
                include_object=request.query.get("includeObject", "Metadata"),
                resource_version=obj.get("metadata", {}).get("resourceVersion", ""),
                table_version=table_version,
            )
            return json_response(table, status)
        return json_response(obj, status)

    # ------------------------------------------------------------------ reads

    async def get(self, request: web.Request, t: Target) -> web.Response:
        assert t.name is not None
        obj = await self.registry.get(t.info, t.namespace, t.name)
        return self._respond(request, t.info, obj)

    def _filters(self, request: web.Request, t: Target) -> tuple[LabelSelector, FieldSelector]:
        labels = _label_selector(request)
        fields = parse_field_selector(request.query.get("fieldSelector"), t.info.group, t.info.plural)
        return labels, fields

    def _match(self, obj: dict[str, Any], labels: LabelSelector, fields: FieldSelector) -> bool:
        return labels.matches(obj.get("metadata", {}).get("labels")) and fields.matches(obj)

    async def list(self, request: web.Request, t: Target) -> web.Response:
        if query_bool(request, "watch"):
            return await self.watch(request, t)
        info = t.info
        labels, fields = self._filters(request, t)
        limit = query_int(request, "limit") or 0
        cont = request.query.get("continue")
        prefix = list_prefix(info, t.namespace)
        ns_prefix = prefix if (info.namespaced and t.namespace) else None
        if cont:
            revision, start = _parse_continue(cont)
            try:
                page = await self.store.list(prefix, start_after=start.encode(), limit=0, revision=revision)
            except Compacted:
                raise StatusError(
                    410,
                    "Expired",
                    "The provided continue parameter is too old to display a consistent list result. You can "
                    "start a new list without the continue parameter.",
                ) from None
            items = [o for o in page.items if self._match(o, labels, fields)]
        else:
            cache = self.cache.for_prefix(list_prefix(info, None))
            if request.query.get("resourceVersion") == "0":
                await cache.wait_ready()
                objs, revision = cache.snapshot()
            else:
                objs, revision = await cache.consistent_snapshot()
            if ns_prefix:
                ns = t.namespace
                objs = [o for o in objs if o.get("metadata", {}).get("namespace") == ns]
            items = [o for o in objs if self._match(o, labels, fields)]
            items.sort(key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))
        next_token = ""
        remaining: int | None = None
        if limit and len(items) > limit:
            last = items[limit - 1]["metadata"]
            last_key = (
                list_prefix(info, last.get("namespace")) + last["name"]
                if info.namespaced
                else (list_prefix(info, None) + last["name"])
            )
            remaining = len(items) - limit
            items = items[:limit]
            next_token = _continue_token(revision, last_key)
        table_version = requested_table_version(request.headers.get("Accept", ""))
        if table_version:
            return json_response(
                to_table(
                    info,
                    items,
                    now=utcnow(),
                    include_object=request.query.get("includeObject", "Metadata"),
                    resource_version=str(revision),
                    continue_token=next_token,
                    table_version=table_version,
                )
            )
        meta: dict[str, Any] = {"resourceVersion": str(revision)}
        if next_token:
            meta["continue"] = next_token
            meta["remainingItemCount"] = remaining
        body = {"kind": info.list_kind, "apiVersion": info.api_version, "metadata": meta, "items": []}
        for o in items:
            o = dict(o)
            o.setdefault("apiVersion", info.api_version)
            o.setdefault("kind", info.kind)
            body["items"].append(o)
        return json_response(body)

    # ------------------------------------------------------------------ watch

    async def watch(self, request: web.Request, t: Target) -> web.StreamResponse:
        info = t.info
        labels, fields = self._filters(request, t)
        prefix = list_prefix(info, None)
        ns = t.namespace if info.namespaced else None
        name = t.name or fields.exact("metadata.name")
        cache = self.cache.for_prefix(prefix)
        rv_param = request.query.get("resourceVersion", "")
        from_rev: int | None = None
        if rv_param not in ("", "0"):
            try:
                from_rev = int(rv_param)
            except ValueError:
                raise bad_request(f"invalid resource version: {rv_param}") from None
        timeout = query_int(request, "timeoutSeconds") or 1800
        bookmarks = query_bool(request, "allowWatchBookmarks")
        table_version = requested_table_version(request.headers.get("Accept", ""))
        include_object = request.query.get("includeObject", "Metadata")

        def include(key: str) -> bool:
            rest = key[len(prefix) :]
            if ns is not None and not rest.startswith(ns + "/"):
                return False
            return not (name and rest.rsplit("/", 1)[-1] != name)

        resp = web.StreamResponse(status=200)
        resp.content_type = "application/json"
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        first_table = True

        async def send(ev_type: str, obj: dict[str, Any]) -> None:
            nonlocal first_table
            if table_version and ev_type not in ("ERROR", "BOOKMARK"):
                obj = to_table(
                    info,
                    [obj],
                    now=utcnow(),
                    include_object=include_object,
                    resource_version=obj["metadata"].get("resourceVersion", ""),
                    table_version=table_version,
                    include_columns=first_table,
                )
                first_table = False
            await resp.write(orjson.dumps({"type": ev_type, "object": obj}) + b"\n")

        deadline = time.monotonic() + timeout
        stream = cache.watch(from_rev, include)
        try:
            last_sent = time.monotonic()
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                wait = min(remaining, 5.0) if bookmarks else remaining
                try:
                    ev = await asyncio.wait_for(anext(stream), wait)
                except TimeoutError:
                    if bookmarks and time.monotonic() - last_sent >= 5.0:
                        rv = str(cache.revision)
                        await send(
                            "BOOKMARK",
                            {
                                "kind": info.kind,
                                "apiVersion": info.api_version,
                                "metadata": {"resourceVersion": rv},
                            },
                        )
                        last_sent = time.monotonic()
                    continue
                except StopAsyncIteration:
                    break
                obj, prev = ev.obj, ev.prev
                now_match = self._match(obj, labels, fields)
                was_match = prev is not None and self._match(prev, labels, fields)
                if ev.type == "DELETED":
                    if was_match:
                        await send("DELETED", obj)
                elif now_match and (ev.type == "ADDED" or was_match):
                    await send(ev.type, obj)
                elif now_match:
                    await send("ADDED", obj)
                elif was_match:
                    gone = copy.deepcopy(obj)
                    await send("DELETED", gone)
                else:
                    continue
                last_sent = time.monotonic()
        except TooOld as e:
            await send(
                "ERROR",
                {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "metadata": {},
                    "status": "Failure",
                    "message": str(e),
                    "reason": "Expired",
                    "code": 410,
                },
            )
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            with contextlib.suppress(Exception):
                await stream.aclose()
        with contextlib.suppress(Exception):
            await resp.write_eof()
        return resp

    # ------------------------------------------------------------------ writes

    async def create(self, request: web.Request, t: Target) -> web.Response:
        body = await read_object(request)
        warnings = fieldvalidation.check(t.info, body, request.query.get("fieldValidation"))
        obj = await self.registry.create(
            t.info,
            t.namespace,
            body,
            dry_run=dry_run(request),
            field_manager=request.query.get("fieldManager"),
        )
        return _warn(self._respond(request, t.info, obj, 201), warnings)

    async def update(self, request: web.Request, t: Target) -> web.Response:
        assert t.name is not None
        body = await read_object(request)
        warnings = fieldvalidation.check(t.info, body, request.query.get("fieldValidation"))
        obj = await self.registry.update(
            t.info,
            t.namespace,
            t.name,
            body,
            subresource=t.subresource,
            dry_run=dry_run(request),
            field_manager=request.query.get("fieldManager"),
        )
        return _warn(self._respond(request, t.info, obj), warnings)

    async def patch(self, request: web.Request, t: Target) -> web.Response:
        assert t.name is not None
        mtype = media_type(request)
        ptype = PATCH_TYPES.get(mtype)
        if ptype is None or ptype == "apply-cbor":
            raise StatusError(
                415,
                "UnsupportedMediaType",
                f"the body of the request was in an unknown format - accepted media types include: "
                f"{', '.join(k for k in PATCH_TYPES if not k.endswith('cbor'))}",
            )
        patch = decode_body(
            await read_raw(request), "application/json" if ptype != "apply" else "application/yaml"
        )
        manager = request.query.get("fieldManager")
        is_dry = dry_run(request)
        info = t.info
        for _attempt in range(5):
            try:
                current: dict[str, Any] | None = await self.registry.get(info, t.namespace, t.name)
            except StatusError as e:
                if e.code != 404 or ptype != "apply" or t.subresource:
                    raise
                current = None
            now = utcnow()
            kind_key = (info.api_version, info.kind)
            try:
                if ptype == "apply":
                    if not isinstance(patch, dict):
                        raise bad_request("apply patch must be an object")
                    if not manager:
                        raise bad_request(
                            "PATCH, application/apply-patch+yaml requires fieldManager to be set"
                        )
                    patched = apply_patch(
                        current,
                        patch,
                        manager=manager,
                        force=query_bool(request, "force"),
                        kind_key=kind_key,
                        now=now,
                    )
                    if current is None:
                        patched.setdefault("metadata", {})["name"] = t.name
                        warnings = fieldvalidation.check(info, patch, request.query.get("fieldValidation"))
                        created = await self.registry.create(info, t.namespace, patched, dry_run=is_dry)
                        return _warn(self._respond(request, info, created, 201), warnings)
                    if current.get("status") is not None and t.subresource != "status":
                        patched["status"] = current["status"]
                elif current is None:
                    raise StatusError(404, "NotFound", "not found")
                elif ptype == "merge":
                    patched = json_merge_patch(current, patch)
                elif ptype == "json":
                    patched = json_patch(current, patch)
                else:
                    if not supports_strategic_merge(kind_key):
                        raise StatusError(
                            415, "UnsupportedMediaType", "strategic merge patch is not supported"
                        )
                    if not isinstance(patch, dict):
                        raise bad_request("strategic merge patch must be an object")
                    patched = strategic_merge_patch(current, patch, kind_key)
            except PatchError as e:
                reason = "BadRequest" if e.code == 400 else ("Invalid" if e.code == 422 else "InternalError")
                raise StatusError(e.code, reason, e.message) from None
            except ApplyConflict as e:
                raise StatusError(
                    409,
                    "Conflict",
                    e.message(),
                    details={
                        "name": t.name,
                        "kind": info.plural,
                        "causes": e.causes(),
                        **({"group": info.group} if info.group else {}),
                    },
                ) from None
            assert current is not None
            warnings = fieldvalidation.check(info, patched, request.query.get("fieldValidation"))
            # A patch may not move the object to another name, and always targets what we read.
            patched.setdefault("metadata", {})
            if ptype != "json" or "resourceVersion" not in str(patch):
                patched["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
            try:
                obj = await self.registry.update(
                    info,
                    t.namespace,
                    t.name,
                    patched,
                    subresource=t.subresource,
                    dry_run=is_dry,
                    field_manager=manager if ptype != "apply" else None,
                    current=current,
                )
            except StatusError as e:
                if e.code == 409 and e.reason == "Conflict" and "modified" in e.message:
                    continue  # someone wrote between our read and write: re-read and re-apply the patch
                raise
            return _warn(self._respond(request, info, obj), warnings)
        raise StatusError(
            409, "Conflict", f'Operation cannot be fulfilled on {info.plural} "{t.name}": too many conflicts'
        )

    async def _delete_options(self, request: web.Request) -> tuple[dict[str, Any], bool]:
        """DeleteOptions from the body and the query (query wins), and whether this is a dry run.

        kubectl sends ``dryRun`` in the body (``{"dryRun": ["All"]}``), other clients in the query.
        """
        options: dict[str, Any] = {}
        raw = await read_raw(request)
        if raw:
            decoded = decode_body(raw, media_type(request) or "application/json")
            if isinstance(decoded, dict):
                options = decoded
        grace = query_int(request, "gracePeriodSeconds")
        if grace is not None:
            options["gracePeriodSeconds"] = grace
        if request.query.get("propagationPolicy"):
            options["propagationPolicy"] = request.query["propagationPolicy"]
        if options.get("propagationPolicy") not in (None, "Orphan", "Foreground", "Background"):
            raise bad_request(f"Unsupported value: {options['propagationPolicy']!r}")
        body_dry = options.get("dryRun") or []
        if any(v != "All" for v in body_dry):
            raise bad_request(f'Invalid dryRun value {body_dry!r}: supported values: "All"')
        return options, dry_run(request) or bool(body_dry)

    async def delete(self, request: web.Request, t: Target) -> web.Response:
        assert t.name is not None
        options, is_dry = await self._delete_options(request)
        obj, deleted = await self.registry.delete(t.info, t.namespace, t.name, options, dry_run=is_dry)
        if not deleted:
            return self._respond(
                request, t.info, obj, 202 if not obj["metadata"].get("deletionGracePeriodSeconds") else 200
            )
        if t.info.group == "" and t.info.kind in ("Pod", "Service"):  # Kubernetes' ReturnDeletedObject kinds
            return self._respond(request, t.info, obj)
        return json_response(success_status(t.info, t.name, obj["metadata"].get("uid", "")))

    async def delete_collection(self, request: web.Request, t: Target) -> web.Response:
        info = t.info
        labels, fields = self._filters(request, t)
        cache = self.cache.for_prefix(list_prefix(info, None))
        objs, revision = await cache.consistent_snapshot()
        options, is_dry = await self._delete_options(request)
        deleted = []
        for o in objs:
            meta = o["metadata"]
            if info.namespaced and t.namespace and meta.get("namespace") != t.namespace:
                continue
            if not self._match(o, labels, fields):
                continue
            try:
                obj, _ = await self.registry.delete(
                    info, meta.get("namespace"), meta["name"], options, dry_run=is_dry
                )
                deleted.append(obj)
            except StatusError as e:
                if e.code != 404:
                    raise
        return json_response(
            {
                "kind": info.list_kind,
                "apiVersion": info.api_version,
                "metadata": {"resourceVersion": str(revision)},
                "items": deleted,
            }
        )

    # ------------------------------------------------------------------ dispatch

    async def dispatch(self, request: web.Request, t: Target) -> web.StreamResponse:
        m = request.method
        if t.name is None:
            if m == "GET":
                return await self.list(request, t)
            if m == "POST":
                return await self.create(request, t)
            if m == "DELETE":
                return await self.delete_collection(request, t)
            raise method_not_allowed()
        if m == "GET":
            if query_bool(request, "watch"):
                return await self.watch(request, t)
            return await self.get(request, t)
        if m == "PUT":
            return await self.update(request, t)
        if m == "PATCH":
            return await self.patch(request, t)
        if m == "DELETE":
            return await self.delete(request, t)
        raise method_not_allowed()
