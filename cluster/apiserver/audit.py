"""The audit log: one ``audit.k8s.io/v1`` Event per request and stage, as kube-apiserver writes them.

The ``Auditor`` middleware runs after authentication and before impersonation (kube's filter order),
so an event's ``user`` is who authenticated and ``impersonatedUser`` whom they acted as. The policy
(``audit_policy``) gives each request a level from that user and the request's attributes; at
``None`` the request only gets its ``Audit-Id`` header. Otherwise the stages are written as they
happen: ``RequestReceived`` before the handler, ``ResponseStarted`` when a long-running request
(watch, proxy, exec, attach, port-forward, log) sends its headers, ``ResponseComplete`` when the
request ends, ``Panic`` instead when the handler failed unexpectedly. ``Metadata`` events carry no
object; ``Request`` adds ``requestObject`` (the body as sent), ``RequestResponse`` also
``responseObject`` (the body returned). Annotations the request collected (the authorizer's
``authorization.k8s.io/decision`` and ``reason``, PodSecurity's audit violations: see
``context.add_audit_annotation``) are in the events written after them.

Events go to ``AuditLog``: a queue drained by one thread that appends whole lines to the file
(``-``: to this process's log), so the event loop never waits on the disk. Without a policy there is
no ``Auditor`` at all and requests pay nothing.
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import orjson
from aiohttp import web

from cluster.apiserver import audit_policy
from cluster.apiserver.audit_policy import Level, Policy, RequestAuditConfig
from cluster.apiserver.auth import request_info
from cluster.apiserver.auth.authorizer import RequestAttributes
from cluster.apiserver.auth.user import UserInfo
from cluster.apiserver.context import begin_audit_annotations
from cluster.apiserver.errors import StatusError
from cluster.apiserver.request import decode_body
from cluster.apiserver.storage import status_for_store_error
from cluster.store.api import Unavailable
from cluster.store.mvcc import StoreError

log = logging.getLogger("raykube.apiserver.audit")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

HEADER = "Audit-Id"
DECISION_ANNOTATION = "authorization.k8s.io/decision"  # "allow" or "forbid", from the authorize filter
REASON_ANNOTATION = "authorization.k8s.io/reason"
_LONG_RUNNING_VERBS = frozenset({"watch", "proxy"})
_LONG_RUNNING_SUBRESOURCES = frozenset({"attach", "exec", "proxy", "log", "portforward"})


class Sink(Protocol):
    def write(self, event: dict[str, Any]) -> None:
        """Take one event; must not block the caller (the event loop)."""
        ...


class AuditLog:
    """Events appended to ``path`` as JSON lines (``-``: logged), written by a thread of its own."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._queue: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._fd: int | None = None
        if path != "-":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self._thread = threading.Thread(target=self._run, name="audit-log", daemon=True)
        self._thread.start()

    def write(self, event: dict[str, Any]) -> None:
        self._queue.put(orjson.dumps(event) + b"\n")

    def _run(self) -> None:
        while True:
            line = self._queue.get()
            batch = [line]
            while line is not None and len(batch) < 1000:  # take what else is waiting, write once
                try:
                    line = self._queue.get_nowait()
                except queue.Empty:
                    break
                batch.append(line)
            lines = [b for b in batch if b is not None]
            try:
                if self._fd is None:
                    for b in lines:
                        log.info("%s", b.decode().rstrip())
                elif lines:
                    os.write(self._fd, b"".join(lines))
            except OSError as err:
                log.error("audit log %s: could not write %d event(s): %s", self.path, len(lines), err)
            if None in batch:
                return

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued, then stop (events written after this are dropped)."""
        self._queue.put(None)
        self._thread.join(timeout)
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def micro_time(t: float) -> str:
    """kube's MicroTime: RFC 3339 in UTC with microseconds."""
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def object_ref(attrs: RequestAttributes) -> dict[str, Any] | None:
    if not attrs.resource_request:
        return None
    ref: dict[str, Any] = {"resource": attrs.resource}
    if attrs.namespace:
        ref["namespace"] = attrs.namespace
    if attrs.name:
        ref["name"] = attrs.name
    if attrs.api_group:
        ref["apiGroup"] = attrs.api_group
    ref["apiVersion"] = attrs.api_version
    if attrs.subresource:
        ref["subresource"] = attrs.subresource
    return ref


def response_status(code: int, status: dict[str, Any] | None = None) -> dict[str, Any]:
    """``responseStatus``: the code, and for a failure the Status' bounded fields (as kube copies them)."""
    out: dict[str, Any] = {"metadata": {}}
    if status is not None and status.get("kind") == "Status":
        for key in ("status", "message", "reason", "details"):
            if status.get(key):
                out[key] = status[key]
    out["code"] = code
    return out


def _without_managed_fields(obj: Any) -> Any:
    if not isinstance(obj, dict):
        return obj
    meta = obj.get("metadata")
    if isinstance(meta, dict) and "managedFields" in meta:
        obj = {**obj, "metadata": {k: v for k, v in meta.items() if k != "managedFields"}}
    if isinstance(obj.get("items"), list):
        obj = {**obj, "items": [_without_managed_fields(i) for i in obj["items"]]}
    return obj


def _decode(raw: bytes, content_type: str) -> Any:
    """A body for the log (JSON, YAML or Kubernetes protobuf, as the request decoder reads them), or
    None when it is none of them (text, a log stream) or does not decode."""
    if not raw:
        return None
    mtype = content_type.split(";")[0].strip().lower()
    if mtype.startswith("text/"):
        return None
    try:
        return decode_body(raw, mtype)
    except Exception:  # not for the log; the handler answered the client already
        return None


class _Request:
    """One audited request's state: its config, the event's fixed fields and its annotations."""

    __slots__ = ("annotations", "attrs", "code", "config", "fields", "long_running", "received", "started")

    def __init__(
        self, attrs: RequestAttributes, config: RequestAuditConfig, fields: dict[str, Any], received: float
    ) -> None:
        self.attrs = attrs
        self.config = config
        self.fields = fields
        self.annotations = begin_audit_annotations()
        self.long_running = (
            attrs.verb in _LONG_RUNNING_VERBS or attrs.subresource in _LONG_RUNNING_SUBRESOURCES
        )
        self.started = False
        self.code = 0  # the status sent, once headers went out
        self.received = received


class Auditor:
    """The ``audit`` middleware and the ``on_response_prepare`` hook (see the module docstring)."""

    def __init__(self, policy: Policy, sink: Sink, clock: Callable[[], float] = time.time) -> None:
        self.policy = policy
        self.sink = sink
        self.clock = clock

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        audit_id = request.headers.get(HEADER) or str(uuid.uuid4())
        request["audit_id"] = audit_id
        user: UserInfo = request["user"]
        attrs = request_info.attributes(request.method, request.path, request.query, user)
        config = self.policy.evaluate(attrs)
        if config.level is Level.NONE:
            return await handler(request)
        received = self.clock()
        fields: dict[str, Any] = {
            "requestURI": request.raw_path,
            "verb": attrs.verb,
            "user": user.to_api(),
            "sourceIPs": _source_ips(request),
        }
        if agent := request.headers.get("User-Agent"):
            fields["userAgent"] = agent
        if (ref := object_ref(attrs)) is not None:
            fields["objectRef"] = ref
        state = request["audit"] = _Request(attrs, config, fields, received)
        self._emit(request, state, "RequestReceived")
        try:
            response = await handler(request)
        except StatusError as err:
            self._complete(request, state, "ResponseComplete", err.code, err.body())
            raise
        except web.HTTPException as err:
            self._complete(request, state, "ResponseComplete", err.status, None)
            raise
        except asyncio.CancelledError:  # the client went away: the request still completed
            if state.code:
                self._complete(request, state, "ResponseComplete", state.code, None)
            raise
        except Exception as err:
            status = status_for_store_error(err, write=request.method not in ("GET", "HEAD"))
            if isinstance(err, Unavailable | StoreError):
                self._complete(request, state, "ResponseComplete", status.code, status.body())
            else:
                panic = {"kind": "Status", "status": "Failure", "reason": "InternalError"}
                panic["message"] = f"APIServer panic'd: {type(err).__name__}: {err}"
                self._complete(request, state, "Panic", 500, panic)
            raise
        body = None
        if isinstance(response, web.Response) and (
            response.status >= 400 or config.level >= Level.REQUEST_RESPONSE
        ):
            raw = response.body
            if isinstance(raw, bytes):
                body = _decode(raw, response.content_type)
        self._complete(request, state, "ResponseComplete", response.status, body)
        return response

    async def on_response_prepare(self, request: web.Request, response: web.StreamResponse) -> None:
        """aiohttp's hook before headers go out: the ``Audit-Id`` header, and a long-running
        request's ``ResponseStarted`` event."""
        audit_id = request.get("audit_id")
        if audit_id is None:
            if response.status == 401 and "user" not in request:  # refused before this middleware ran
                self._failed_authentication(request, response)
            return
        response.headers[HEADER] = audit_id
        state: _Request | None = request.get("audit")
        if state is None:
            return
        state.code = response.status
        if state.long_running and not state.started:
            state.started = True
            self._emit(request, state, "ResponseStarted", responseStatus=response_status(response.status))

    def _failed_authentication(self, request: web.Request, response: web.StreamResponse) -> None:
        """kube's failed-authentication audit: one ``ResponseStarted`` event with no user, the 401 and
        which credentials were tried, when the policy selects the request for an empty user."""
        attrs = request_info.attributes(request.method, request.path, request.query, UserInfo(""))
        config = self.policy.evaluate(attrs)
        audit_id = request.headers.get(HEADER) or str(uuid.uuid4())
        response.headers[HEADER] = audit_id
        if config.level is Level.NONE:
            return
        now = self.clock()
        fields: dict[str, Any] = {"requestURI": request.raw_path, "verb": attrs.verb, "user": {}}
        fields["sourceIPs"] = _source_ips(request)
        if agent := request.headers.get("User-Agent"):
            fields["userAgent"] = agent
        if (ref := object_ref(attrs)) is not None:
            fields["objectRef"] = ref
        state = _Request(attrs, config, fields, now)
        request["audit_id"] = audit_id
        status = {"metadata": {}, "message": _auth_methods(request), "code": response.status}
        self._emit(request, state, "ResponseStarted", responseStatus=status)

    def _complete(self, request: web.Request, state: _Request, stage: str, code: int, body: Any) -> None:
        extra: dict[str, Any] = {
            "responseStatus": response_status(code, body if isinstance(body, dict) else None)
        }
        level = state.config.level
        if level >= Level.METADATA and state.attrs.verb == "create":
            self._complete_ref_from_request(request, state)
        if level >= Level.REQUEST and (raw := request.get("raw_body")):
            obj = _decode(raw, request.headers.get("Content-Type", ""))
            if obj is not None:
                extra["requestObject"] = self._trim(state, obj)
        if level >= Level.REQUEST_RESPONSE and body is not None:
            extra["responseObject"] = self._trim(state, body)
        self._emit(request, state, stage, **extra)

    def _complete_ref_from_request(self, request: web.Request, state: _Request) -> None:
        """A create names its object in the body: kube's objectRef takes the name (and namespace) from it."""
        ref = state.fields.get("objectRef")
        raw = request.get("raw_body")
        if ref is None or "name" in ref or not raw:
            return
        obj = _decode(raw, request.headers.get("Content-Type", ""))
        meta = obj.get("metadata") if isinstance(obj, dict) else None
        if isinstance(meta, dict) and meta.get("name"):
            ref["name"] = meta["name"]
            if meta.get("namespace") and "namespace" not in ref:
                ref["namespace"] = meta["namespace"]

    @staticmethod
    def _trim(state: _Request, obj: Any) -> Any:
        return _without_managed_fields(obj) if state.config.omit_managed_fields else obj

    def _emit(self, request: web.Request, state: _Request, stage: str, **extra: Any) -> None:
        if stage in state.config.omit_stages:
            return
        event: dict[str, Any] = {
            "kind": "Event",
            "apiVersion": "audit.k8s.io/v1",
            "level": state.config.level.text,
            "auditID": request["audit_id"],
            "stage": stage,
            "requestURI": state.fields["requestURI"],
            "verb": state.fields["verb"],
            "user": state.fields["user"],
        }
        impersonated: UserInfo | None = request.get("impersonated_user")
        if impersonated is not None and stage != "RequestReceived":
            event["impersonatedUser"] = impersonated.to_api()
        event["sourceIPs"] = state.fields["sourceIPs"]
        if "userAgent" in state.fields:
            event["userAgent"] = state.fields["userAgent"]
        if "objectRef" in state.fields:  # a copy: a create's name is filled in later, the sink is async
            event["objectRef"] = dict(state.fields["objectRef"])
        for key in ("responseStatus", "requestObject", "responseObject"):
            if key in extra:
                event[key] = extra[key]
        event["requestReceivedTimestamp"] = micro_time(state.received)
        event["stageTimestamp"] = micro_time(self.clock())
        if state.annotations:
            event["annotations"] = dict(state.annotations)
        try:
            self.sink.write(event)
        except Exception:  # a full disk must not fail the request
            log.exception("audit: could not queue an event")


def _auth_methods(request: web.Request) -> str:
    """kube's text for what a refused request tried."""
    methods = []
    scheme, _, credential = request.headers.get("Authorization", "").strip().partition(" ")
    if scheme.lower() == "basic":
        methods.append("basic")
    if scheme.lower() == "bearer" and credential.strip():
        methods.append("bearer")
    if request.query.get("access_token", "").strip():
        methods.append("access_token")
    transport = request.transport
    ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
    if ssl_object is not None and ssl_object.getpeercert(binary_form=True):
        methods.append("x509")
    if methods:
        return f"Authentication failed, attempted: {', '.join(methods)}"
    return "Authentication failed, no credentials provided"


def _source_ips(request: web.Request) -> list[str]:
    """kube's ``SourceIPs``: X-Forwarded-For's addresses, X-Real-Ip, then the peer (each once)."""
    ips: list[str] = []
    forwarded = request.headers.get("X-Forwarded-For", "")
    ips += [ip.strip() for ip in forwarded.split(",") if ip.strip()]
    if real := request.headers.get("X-Real-Ip", "").strip():
        ips.append(real)
    if request.remote:
        ips.append(request.remote)
    return list(dict.fromkeys(ips))


def for_api_server(
    policy_file: str | None, log_path: str | None, pki_dir: Path | None
) -> tuple[Auditor, AuditLog] | None:
    """The API server's auditor from ``SecurityOptions`` (the policy is a file in ``pki_dir``); None
    without both a policy and a log path (nothing would be written)."""
    if not policy_file or not log_path or pki_dir is None:
        return None
    policy = audit_policy.load(pki_dir / policy_file)
    sink = AuditLog(log_path)
    return Auditor(policy, sink), sink
