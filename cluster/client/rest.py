"""Async client for the Kubernetes REST API, for our controllers, scheduler and node agents.

Speaks the wire form (``dict`` objects, camelCase) as JSON via orjson over one pooled aiohttp
session. ``https://`` servers are verified against ``ca_file``/``ca_data`` and authenticated with a
client certificate (files or in-memory PEM; nothing is left on disk) or a bearer token;
``http://`` works for tests and loopback.

Invariants:

* every failure surfaces as :class:`ApiError`: a non-2xx reply carries the server's ``Status``
  (``status`` is its HTTP code); a failure to talk to the server at all is :class:`TransportError`
  (``status == 0``), so callers catch one type;
* ``watch`` yields each event of the chunked stream as ``{"type", "object"}`` in order, and turns an
  ``ERROR`` event into a raised ``ApiError`` (410 ``Expired`` means: relist);
* a 429 (or a 5xx with ``Retry-After``) is resent after the advertised wait, up to ``max_retries``
  times, since the server did not act on it; other errors are returned at once;
* with ``qps_limit`` every request, watches included, first takes a token from a bucket of
  ``qps_limit`` per second (burst ``max(1, qps_limit)``), like client-go's client-side limiter;
* with several ``servers`` (one API server per control-plane node) requests go to the current one;
  a failure to talk to it (never an HTTP error: any server's answer is the cluster's answer) makes
  the next one current. The request is resent to it when it cannot have been acted on: the
  connection was never made, or it is a read (GET). A watch that fails before its first event moves
  on the same way; one that breaks later raises, and the caller's re-watch goes to the next server.

The session is created lazily on first use inside the running loop; call :meth:`ApiClient.close`.
"""

from __future__ import annotations

import asyncio
import builtins
import math
import ssl
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson
import yarl

from cluster.client.errors import ApiError, TransportError
from cluster.client.kubeconfig import (
    ConnectionSettings,
    load_client_certificate,
    load_kubeconfig,
    load_kubeconfig_text,
)

__all__ = ["PATCH_CONTENT_TYPES", "ApiClient", "ApiError", "TransportError", "resource_path"]

PATCH_CONTENT_TYPES = {
    "merge": "application/merge-patch+json",
    "json": "application/json-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "apply": "application/apply-patch+yaml",
}


class _TokenBucket:
    """Reservation-style token bucket: a caller takes a token now and sleeps off any deficit."""

    def __init__(self, qps: float, burst: int) -> None:
        self._qps = qps
        self._burst = float(burst)
        self._tokens = float(burst)
        self._last = time.monotonic()

    async def acquire(self) -> None:
        now = time.monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._last) * self._qps)
        self._last = now
        self._tokens -= 1.0
        if self._tokens < 0:
            await asyncio.sleep(-self._tokens / self._qps)


def resource_path(
    group_version: str,
    plural: str,
    namespace: str | None = None,
    name: str | None = None,
    subresource: str | None = None,
) -> str:
    """``/api/v1/...`` for the core group, ``/apis/<group>/<version>/...`` otherwise."""
    prefix = f"/apis/{group_version}" if "/" in group_version else f"/api/{group_version}"
    parts = [prefix]
    if namespace:
        parts.append(f"namespaces/{quote(namespace, safe='')}")
    parts.append(plural)
    if name is not None:
        parts.append(quote(name, safe=""))
    if subresource:
        parts.append(subresource)
    return "/".join(parts)


class ApiClient:
    """One connection pool to the API servers (``server``, then ``servers``); safe to share between
    tasks of one event loop."""

    def __init__(
        self,
        server: str | None = None,
        *,
        servers: Sequence[str] = (),
        ca_file: str | None = None,
        cert_file: str | None = None,
        key_file: str | None = None,
        ca_data: bytes | None = None,
        cert_data: bytes | None = None,
        key_data: bytes | None = None,
        token: str | None = None,
        qps_limit: float | None = None,
        insecure_skip_tls_verify: bool = False,
        request_timeout: float = 60.0,
        max_connections: int = 100,
        max_retries: int = 3,
    ) -> None:
        self.servers: list[str] = []
        for url in [server, *servers] if server else servers:
            if url.rstrip("/") not in self.servers:
                self.servers.append(url.rstrip("/"))
        if not self.servers:
            raise ValueError("ApiClient needs a server URL (server= or servers=)")
        self._current = 0
        self.default_namespace = "default"
        self._ssl: ssl.SSLContext | bool = True
        if any(url.startswith("https://") for url in self.servers):
            ctx = ssl.create_default_context(cafile=ca_file, cadata=ca_data.decode() if ca_data else None)
            if insecure_skip_tls_verify:
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            load_client_certificate(
                ctx, cert_file=cert_file, key_file=key_file, cert_data=cert_data, key_data=key_data
            )
            self._ssl = ctx
        self._headers = {"Accept": "application/json", "User-Agent": "raykube-client/0.1"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self._limiter = _TokenBucket(qps_limit, max(1, math.ceil(qps_limit))) if qps_limit else None
        self._timeout = aiohttp.ClientTimeout(total=request_timeout)
        self._max_connections = max_connections
        self._max_retries = max_retries
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def from_kubeconfig(cls, path: str, context: str | None = None) -> ApiClient:
        """Connect as ``context`` (default: the current context) of the kubeconfig at ``path``."""
        return cls.from_settings(load_kubeconfig(path, context))

    @classmethod
    def from_kubeconfig_text(cls, text: str | None, path: str) -> ApiClient:
        """Connect with the kubeconfig ``text`` an actor was handed (it may run on a host without the
        file; relative paths resolve against ``path``'s folder), else with the file at ``path``."""
        if text is None:
            return cls.from_kubeconfig(path)
        return cls.from_settings(load_kubeconfig_text(text, str(Path(path).parent)))

    @classmethod
    def from_settings(cls, s: ConnectionSettings) -> ApiClient:
        """Connect with resolved kubeconfig settings (``cluster.client.kubeconfig``)."""
        client = cls(
            s.server,
            servers=s.servers,
            ca_file=s.ca_file,
            cert_file=s.cert_file,
            key_file=s.key_file,
            ca_data=s.ca_data,
            cert_data=s.cert_data,
            key_data=s.key_data,
            token=s.token,
            insecure_skip_tls_verify=s.insecure_skip_tls_verify,
        )
        client.default_namespace = s.namespace or "default"
        return client

    # -- plumbing ----------------------------------------------------------------------------------

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self._max_connections, ssl=self._ssl)
            self._session = aiohttp.ClientSession(
                connector=connector, headers=self._headers, json_serialize=lambda o: orjson.dumps(o).decode()
            )
        return self._session

    @property
    def server(self) -> str:
        """The API server requests go to now."""
        return self.servers[self._current]

    def _url(self, path: str, params: Mapping[str, str | None], server: str | None = None) -> yarl.URL:
        query = {k: v for k, v in params.items() if v is not None}
        return yarl.URL((server or self.server) + path, encoded=True).with_query(query)

    def _rotation(self) -> list[str]:
        """The servers in the order to try them: the current one first."""
        n = len(self.servers)
        return [self.servers[(self._current + i) % n] for i in range(n)]

    def _failed(self, server: str) -> None:
        """``server`` did not answer: make the next one current (unless another task already did)."""
        if self.server == server and len(self.servers) > 1:
            self._current = (self._current + 1) % len(self.servers)

    async def _send(
        self, method: str, server: str, path: str, params: Mapping[str, str | None], data: Any, headers: Any
    ) -> tuple[int, bytes]:
        """One request to ``server``, resent after a Retry-After the server asked for."""
        url = self._url(path, params, server)
        for attempt in range(self._max_retries + 1):
            async with self._get_session().request(
                method, url, data=data, headers=headers, timeout=self._timeout
            ) as resp:
                raw = await resp.read()
                status = resp.status
                retry_after = _retry_after(status, resp.headers.get("Retry-After"))
            if retry_after is None or attempt == self._max_retries:
                break
            # The server asked us to come back (429, or a 5xx with Retry-After) and did not act on the
            # request, so any verb may be resent, as client-go does.
            await asyncio.sleep(retry_after)
        return status, raw

    async def _request(
        self,
        method: str,
        path: str,
        params: Mapping[str, str | None] | None = None,
        body: Any = None,
        content_type: str = "application/json",
    ) -> dict[str, Any]:
        if self._limiter is not None:
            await self._limiter.acquire()
        headers = {}
        data = None
        if body is not None:
            data = orjson.dumps(body)
            headers["Content-Type"] = content_type
        servers = self._rotation()
        for i, server in enumerate(servers):
            try:
                status, raw = await self._send(method, server, path, params or {}, data, headers)
                break
            except (TimeoutError, aiohttp.ClientError) as err:
                self._failed(server)
                if i + 1 == len(servers) or not _may_resend(method, err):
                    where = f" ({server})" if len(servers) > 1 else ""
                    raise TransportError(f"{method} {path}{where}: {type(err).__name__}: {err}") from err
        if status >= 400:
            raise ApiError.from_response(status, raw)
        if not raw:
            return {}
        try:
            result = orjson.loads(raw)
        except orjson.JSONDecodeError as err:
            raise ApiError(status, "InternalError", f"{method} {path}: reply is not JSON: {err}") from err
        return result if isinstance(result, dict) else {"items": result}

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    async def __aenter__(self) -> ApiClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- verbs -------------------------------------------------------------------------------------

    async def get(
        self,
        group_version: str,
        plural: str,
        name: str,
        namespace: str | None = None,
        subresource: str | None = None,
    ) -> dict[str, Any]:
        return await self._request("GET", resource_path(group_version, plural, namespace, name, subresource))

    async def get_path(self, path: str) -> dict[str, Any]:
        """GET a path that names no resource: the discovery documents (``/api/v1``, ``/apis``,
        ``/apis/<group>/<version>``), ``/version``."""
        return await self._request("GET", path)

    async def list(
        self,
        group_version: str,
        plural: str,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int | None = None,
        continue_: str | None = None,
        resource_version: str | None = None,
    ) -> dict[str, Any]:
        """One page of a list; ``metadata.continue`` is set when more pages follow."""
        params = {
            "labelSelector": label_selector or None,
            "fieldSelector": field_selector or None,
            "limit": str(limit) if limit else None,
            "continue": continue_ or None,
            "resourceVersion": resource_version,
        }
        return await self._request("GET", resource_path(group_version, plural, namespace), params)

    async def list_all(
        self,
        group_version: str,
        plural: str,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        page_size: int = 500,
    ) -> dict[str, Any]:
        """A consistent full list, fetched in pages; the result carries the first page's
        ``metadata.resourceVersion`` (the snapshot all pages come from). If a continue token expires
        (410) the list restarts unpaginated, as client-go's pager does."""
        first = await self.list(
            group_version, plural, namespace,
            label_selector=label_selector, field_selector=field_selector, limit=page_size,
        )  # fmt: skip
        items = builtins.list(first.get("items") or [])
        token = (first.get("metadata") or {}).get("continue")
        while token:
            try:
                page = await self.list(
                    group_version, plural, namespace,
                    label_selector=label_selector, field_selector=field_selector,
                    limit=page_size, continue_=token,
                )  # fmt: skip
            except ApiError as err:
                if not err.expired:
                    raise
                return await self.list(
                    group_version, plural, namespace,
                    label_selector=label_selector, field_selector=field_selector,
                )  # fmt: skip
            items.extend(page.get("items") or [])
            token = (page.get("metadata") or {}).get("continue")
        result = dict(first)
        result["items"] = items
        result["metadata"] = {k: v for k, v in (first.get("metadata") or {}).items() if k != "continue"}
        return result

    async def create(
        self,
        group_version: str,
        plural: str,
        body: dict[str, Any],
        namespace: str | None = None,
        *,
        subresource: str | None = None,
        dry_run: bool = False,
        field_manager: str | None = None,
    ) -> dict[str, Any]:
        """POST to the collection, or to ``<name>/<subresource>`` (e.g. ``binding``, ``eviction``)."""
        name = (body.get("metadata") or {}).get("name") if subresource else None
        if subresource and not name:
            raise ValueError("create with a subresource needs body.metadata.name")
        path = resource_path(group_version, plural, namespace, name, subresource)
        params = {"dryRun": "All" if dry_run else None, "fieldManager": field_manager}
        return await self._request("POST", path, params, body)

    async def update(
        self,
        group_version: str,
        plural: str,
        body: dict[str, Any],
        namespace: str | None = None,
        *,
        subresource: str | None = None,
    ) -> dict[str, Any]:
        """PUT the whole object to ``body.metadata.name``; a stale resourceVersion gives 409."""
        name = (body.get("metadata") or {}).get("name")
        if not name:
            raise ValueError("update needs body.metadata.name")
        path = resource_path(group_version, plural, namespace, name, subresource)
        return await self._request("PUT", path, None, body)

    async def patch(
        self,
        group_version: str,
        plural: str,
        name: str,
        patch: dict[str, Any] | builtins.list[Any],
        namespace: str | None = None,
        *,
        patch_type: str = "merge",
        subresource: str | None = None,
        field_manager: str | None = None,
        force: bool | None = None,
    ) -> dict[str, Any]:
        """PATCH with ``patch_type`` in merge | json | strategic | apply (server-side apply, which
        needs ``field_manager``)."""
        try:
            content_type = PATCH_CONTENT_TYPES[patch_type]
        except KeyError:
            raise ValueError(
                f"unknown patch_type {patch_type!r}; one of {sorted(PATCH_CONTENT_TYPES)}"
            ) from None
        if patch_type == "apply" and not field_manager:
            raise ValueError("server-side apply needs a field_manager")
        params = {
            "fieldManager": field_manager,
            "force": None if force is None else ("true" if force else "false"),
        }
        path = resource_path(group_version, plural, namespace, name, subresource)
        return await self._request("PATCH", path, params, patch, content_type)

    async def delete(
        self,
        group_version: str,
        plural: str,
        name: str,
        namespace: str | None = None,
        *,
        propagation_policy: str | None = None,
        grace_period_seconds: int | None = None,
        preconditions: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """DELETE with a ``DeleteOptions`` body; returns the object (or a Status) the server sent."""
        options: dict[str, Any] = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if propagation_policy is not None:
            options["propagationPolicy"] = propagation_policy
        if grace_period_seconds is not None:
            options["gracePeriodSeconds"] = grace_period_seconds
        if preconditions is not None:
            options["preconditions"] = preconditions
        path = resource_path(group_version, plural, namespace, name)
        return await self._request("DELETE", path, None, options)

    async def watch(
        self,
        group_version: str,
        plural: str,
        namespace: str | None = None,
        *,
        resource_version: str,
        label_selector: str | None = None,
        field_selector: str | None = None,
        timeout_seconds: int = 300,
        allow_bookmarks: bool = True,
    ) -> AsyncIterator[dict[str, Any]]:
        """Yield watch events after ``resource_version`` until the server ends the stream.

        An ``ERROR`` event raises :class:`ApiError` from its Status (410: the version is too old,
        relist). Closing the iterator early (``aclose`` / leaving ``async for``) closes the stream.
        """
        params = {
            "watch": "true",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true" if allow_bookmarks else None,
            "labelSelector": label_selector or None,
            "fieldSelector": field_selector or None,
            "timeoutSeconds": str(timeout_seconds),
        }
        path = resource_path(group_version, plural, namespace)
        if self._limiter is not None:
            await self._limiter.acquire()
        # No total timeout: the server ends the stream after timeoutSeconds; a silent socket for much
        # longer than that means the connection is dead.
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=timeout_seconds + 60)
        servers = self._rotation()
        for i, server in enumerate(servers):
            started = False
            try:
                async with self._get_session().get(self._url(path, params, server), timeout=timeout) as resp:
                    if resp.status >= 400:
                        raise ApiError.from_response(resp.status, await resp.read())
                    # Events are newline-delimited JSON; one event may span many chunks, so only the
                    # new bytes are scanned for a newline (no quadratic rescans of a large object).
                    buffer = bytearray()
                    async for chunk in resp.content.iter_any():
                        scan_from = len(buffer)
                        buffer.extend(chunk)
                        start = 0
                        while (end := buffer.find(b"\n", scan_from)) >= 0:
                            line = bytes(buffer[start:end])
                            start = scan_from = end + 1
                            if line.strip():
                                started = True
                                yield _decode_event(line)
                        del buffer[:start]
                    if buffer.strip():
                        yield _decode_event(bytes(buffer))
                return
            except (TimeoutError, aiohttp.ClientError) as err:
                self._failed(server)
                if started or i + 1 == len(servers):
                    raise TransportError(f"watch {path}: {type(err).__name__}: {err}") from err

    async def bind_many(
        self, bindings: builtins.list[tuple[str, str, str]], *, concurrency: int = 32
    ) -> builtins.list[ApiError | None]:
        """POST ``pods/<name>/binding`` for each ``(namespace, pod, node)``, at most ``concurrency``
        at a time. Returns, in input order, ``None`` for a bound pod or the ApiError it got; never
        raises for a single binding's failure."""
        gate = asyncio.Semaphore(max(1, concurrency))

        async def bind(namespace: str, pod: str, node: str) -> ApiError | None:
            path = resource_path("v1", "pods", namespace, pod, "binding")
            body = {
                "apiVersion": "v1",
                "kind": "Binding",
                "metadata": {"name": pod, "namespace": namespace},
                "target": {"apiVersion": "v1", "kind": "Node", "name": node},
            }
            async with gate:
                try:
                    await self._request("POST", path, None, body)
                except ApiError as err:
                    return err
            return None

        return await asyncio.gather(*(bind(ns, pod, node) for ns, pod, node in bindings))


def _may_resend(method: str, err: BaseException) -> bool:
    """Whether a request that failed in transport may go to another server: when the connection was
    never made (nothing reached a server) or it only reads."""
    return isinstance(err, aiohttp.ClientConnectorError) or method in ("GET", "HEAD")


def _retry_after(status: int, header: str | None) -> float | None:
    """Seconds to wait before resending, or None when the reply is final. 429 always retries
    (1 s if no header); a 5xx only with a Retry-After header. Waits are capped at 10 s."""
    if status != 429 and not (status >= 500 and header):
        return None
    try:
        seconds = float(header) if header else 1.0
    except ValueError:
        seconds = 1.0
    return min(max(seconds, 0.0), 10.0)


def _decode_event(line: bytes) -> dict[str, Any]:
    try:
        event = orjson.loads(line)
    except orjson.JSONDecodeError as err:
        raise ApiError(500, "InternalError", f"watch: undecodable event: {err}") from err
    if not isinstance(event, dict) or "type" not in event:
        raise ApiError(500, "InternalError", f"watch: not an event: {line[:200]!r}")
    if event["type"] == "ERROR":
        obj = event.get("object") or {}
        raise ApiError.from_status(obj if isinstance(obj, dict) else {})
    return event
