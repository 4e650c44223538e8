"""The API server's HTTP(S) application: routing, the request path, discovery and OpenAPI.

Every request goes through the same path (kube-apiserver's filter order), so that later stages slot
in without touching handlers:

    authenticate (``auth.authn``: certificate, token, or anonymous)  →  audit  →  impersonate  →
    authorize (``auth.authorizer``, every path, resource or not)  →
    handler (decode → admission/validation in the registry → store)  →  Status on any error

Errors are always ``v1.Status`` bodies; an unexpected exception is logged and becomes a 500 without a
stack trace.
"""

from __future__ import annotations

import asyncio
import logging
import os
import platform
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from cluster.apiserver import audit, discovery, encryption_config, openapi
from cluster.apiserver.admission.service_allocation import DEFAULT_SERVICE_NETWORK, ServiceNetwork
from cluster.apiserver.audit import DECISION_ANNOTATION, REASON_ANNOTATION
from cluster.apiserver.auth import identity_reviews, impersonation, request_info
from cluster.apiserver.auth.authn import ANONYMOUS_USER, Authenticator
from cluster.apiserver.auth.authorization import Authorization
from cluster.apiserver.auth.authorizer import Authorizer, Decision, forbidden
from cluster.apiserver.auth.bootstrap_policy import reconcile_policy
from cluster.apiserver.auth.escalation import with_escalation_check
from cluster.apiserver.auth.objects import CachedObjects
from cluster.apiserver.auth.options import SecurityOptions
from cluster.apiserver.auth.reviews import REVIEW_PLURALS, serve_review
from cluster.apiserver.auth.user import UserInfo
from cluster.apiserver.bootstrap_objects import ensure_system_objects
from cluster.apiserver.certificates import approval as csr_approval
from cluster.apiserver.context import add_audit_annotation, begin_warnings, set_user, warning_header
from cluster.apiserver.endpoint_reconciler import EndpointReconciler
from cluster.apiserver.errors import StatusError, status_body, unauthorized
from cluster.apiserver.handlers import ResourceAPI
from cluster.apiserver.registry import Registry
from cluster.apiserver.request import json_response, parse_path
from cluster.apiserver.storage import ObjectStore, status_for_store_error
from cluster.apiserver.subresources import Subresources
from cluster.apiserver.watchcache import WatchCache
from cluster.machinery.tasks import cancel_and_wait
from cluster.store.api import StoreAPI

log = logging.getLogger("raykube.apiserver")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

PUBLIC_PATHS = ("/healthz", "/livez", "/readyz", "/version")


class ApiServer:
    def __init__(
        self,
        client: StoreAPI,
        *,
        authorizer: Authorizer | None = None,
        pki_dir: Path | None = None,
        services: ServiceNetwork = DEFAULT_SERVICE_NETWORK,
        security: SecurityOptions | None = None,
    ) -> None:
        self.client = client
        self.security = security or SecurityOptions()
        values = encryption_config.for_api_server(self.security.encryption_provider_config, pki_dir)
        self.store = ObjectStore(client, values)
        self.cache = WatchCache(client, values)
        sec = self.security
        self.auditor = audit.for_api_server(sec.audit_policy_file, sec.audit_log_path, pki_dir)
        # the ServiceAccount plugin needs a server that issues tokens: one with a PKI directory
        self.registry = Registry(
            self.store, cache=self.cache, services=services, service_accounts=pki_dir is not None
        )
        self.api = ResourceAPI(self.registry, self.cache, self.store)
        self.subresources = Subresources(self.api, pki_dir)
        self.authenticator = Authenticator.for_server(
            pki_dir, self.security.token_auth_file, CachedObjects(self.cache, self.store)
        )
        self.authorization = Authorization(self.security)  # --authorization-mode (default Node,RBAC)
        self.authorizer: Authorizer = authorizer or self.authorization.authorizer
        self.registry.admission = with_escalation_check(  # RBAC: no granting what one does not hold
            self.registry.admission, self.authorizer, self.authorization.rbac
        )
        self.started = time.time()
        self.endpoints: EndpointReconciler | None = None
        self._endpoints_task: asyncio.Task[None] | None = None

    def advertise(self, node: str, ip: str, port: int) -> None:
        """Keep ``ip:port`` in the ``kubernetes`` Service's Endpoints while this server runs
        (``cluster.apiserver.endpoint_reconciler``; ``node`` names this instance)."""
        self.endpoints = EndpointReconciler(self.registry, node, ip, port)
        self._endpoints_task = asyncio.get_running_loop().create_task(self.endpoints.run())

    # ------------------------------------------------------------------ middleware

    @web.middleware
    async def errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except StatusError as e:
            headers = {"Retry-After": str(e.retry_after)} if e.retry_after else None
            resp = json_response(e.body(), e.code)
            if headers:
                resp.headers.update(headers)
            return resp
        except web.HTTPException as e:
            if e.status >= 400:
                reason = {404: "NotFound", 405: "MethodNotAllowed"}.get(e.status, "BadRequest")
                msg = "the server could not find the requested resource" if e.status == 404 else e.reason
                return json_response(status_body(e.status, reason, msg), e.status)
            raise
        except Exception as e:
            log.exception("internal error serving %s %s", request.method, request.path)
            err = status_for_store_error(e, write=request.method not in ("GET", "HEAD"))
            return json_response(err.body(), err.code)

    @web.middleware
    async def authenticate(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        user = await self.authenticator.authenticate(request)
        if user is None:
            if not self.security.anonymous_auth:
                raise unauthorized()
            user = ANONYMOUS_USER
        request["user"] = user
        set_user(user)
        warnings = begin_warnings()
        response = await handler(request)
        if warnings and not response.prepared:
            for text in warnings:
                response.headers.add("Warning", warning_header(text))
        return response

    @web.middleware
    async def impersonate(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """``kubectl --as``/``--as-group``: act as another user when allowed to ``impersonate`` it
        (``auth.impersonation``); ``request["impersonated_user"]`` is then who the request acts as."""
        if impersonation.requested(request.headers):
            acting = impersonation.impersonate(request["user"], request.headers, self.authorizer)
            if acting is not None:
                request["impersonated_user"] = acting
                request["user"] = acting
                set_user(acting)
        return await handler(request)

    @web.middleware
    async def authorize(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Every request, resource or not, is authorised before any handler runs (a 403 never
        reveals whether the object exists)."""
        attrs = request_info.attributes(request.method, request.path, request.query, request["user"])
        decision, reason = self.authorizer.authorize(attrs)
        add_audit_annotation(DECISION_ANNOTATION, "allow" if decision is Decision.ALLOW else "forbid")
        add_audit_annotation(REASON_ANNOTATION, reason)
        if decision is not Decision.ALLOW:
            raise forbidden(attrs, reason)
        request["authz"] = attrs
        return await handler(request)

    # ------------------------------------------------------------------ routes

    async def version(self, request: web.Request) -> web.Response:
        return json_response(
            discovery.version_info(
                git_commit="raykube",
                build_date="2026-11-27T00:00:00Z",
                platform=f"{platform.system().lower()}/{platform.machine()}",
                go_version="python" + platform.python_version(),
            )
        )

    async def healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    def _discovery_root(self, request: web.Request, *, core: bool) -> web.Response:
        mode, ctype = discovery.negotiate_discovery(request.headers.get("Accept", ""))
        if mode == "legacy":
            return json_response(discovery.api_versions() if core else discovery.api_group_list())
        resp = web.Response(body=_json(discovery.aggregated_discovery(core=core, version=mode)))
        resp.headers["Content-Type"] = ctype
        return resp

    async def api_root(self, request: web.Request) -> web.Response:
        return self._discovery_root(request, core=True)

    async def apis_root(self, request: web.Request) -> web.Response:
        return self._discovery_root(request, core=False)

    async def group_version(self, request: web.Request) -> web.Response:
        group = request.match_info.get("group", "")
        version = request.match_info["version"]
        doc = discovery.api_resource_list(group, version)
        if doc is None:
            raise StatusError(404, "NotFound", "the server could not find the requested resource")
        return json_response(doc)

    async def group(self, request: web.Request) -> web.Response:
        name = request.match_info["group"]
        for g in discovery.api_group_list()["groups"]:
            if g["name"] == name:
                return json_response({"kind": "APIGroup", "apiVersion": "v1", **g})
        raise StatusError(404, "NotFound", "the server could not find the requested resource")

    async def openapi_v2(self, request: web.Request) -> web.Response:
        resp = web.Response(body=openapi.openapi_v2_stub())
        resp.headers["Content-Type"] = openapi.OPENAPI_V2_CONTENT_TYPE
        return resp

    async def openapi_v3(self, request: web.Request) -> web.Response:
        return json_response(openapi.openapi_v3_index())

    async def openapi_v3_path(self, request: web.Request) -> web.Response:
        body = openapi.openapi_v3_group_bytes(request.match_info["path"])
        if body is None:
            raise StatusError(404, "NotFound", "the server could not find the requested resource")
        resp = web.Response(body=body, content_type="application/json")
        resp.headers["Cache-Control"] = "public, immutable"
        return resp

    async def resource(self, request: web.Request) -> web.StreamResponse:
        group = request.match_info.get("group", "")
        version = request.match_info["version"]
        parts = [p for p in request.match_info["rest"].split("/") if p]
        target = parse_path(group, version, parts)
        user: UserInfo = request["user"]
        if target.info.plural in REVIEW_PLURALS:
            return await serve_review(request, target, user, self.authorizer)
        if target.info.plural in identity_reviews.PLURALS:
            return await identity_reviews.serve(request, target, user, self.authenticator)
        if target.subresource == "approval" and target.info.plural == "certificatesigningrequests":
            return await csr_approval(request, target, user, self.registry, self.authorizer)
        if target.subresource:
            return await self.subresources.dispatch(request, target)
        return await self.api.dispatch(request, target)

    # ------------------------------------------------------------------ app

    def app(self, *, insecure_local: bool = False) -> web.Application:
        app = web.Application(
            middlewares=[
                self.errors,
                self.authenticate,
                *self._audit_middleware(),
                self.impersonate,
                self.authorize,
            ],
            client_max_size=4 * 1024 * 1024,
        )
        app["insecure_local"] = insecure_local
        r = app.router
        for p in PUBLIC_PATHS[:3]:
            r.add_get(p, self.healthz)
        r.add_get("/version", self.version)
        r.add_get("/api", self.api_root)
        r.add_get("/apis", self.apis_root)
        r.add_get("/openapi/v2", self.openapi_v2)
        r.add_get("/openapi/v3", self.openapi_v3)
        r.add_get("/openapi/v3/{path:.+}", self.openapi_v3_path)
        r.add_get("/api/{version}", self.group_version)
        r.add_get("/apis/{group}", self.group)
        r.add_get("/apis/{group}/{version}", self.group_version)
        r.add_route("*", "/api/{version}/{rest:.+}", self.resource)
        r.add_route("*", "/apis/{group}/{version}/{rest:.+}", self.resource)
        app.on_startup.append(self._on_startup)
        app.on_cleanup.append(self._on_cleanup)
        if self.auditor is not None:
            app.on_response_prepare.append(self.auditor[0].on_response_prepare)
        return app

    def _audit_middleware(self) -> list[Handler]:
        """``audit`` (``cluster.apiserver.audit``) when a policy and a log are configured, else none."""
        return [self.auditor[0].middleware] if self.auditor is not None else []  # type: ignore[list-item]

    async def _on_startup(self, app: web.Application) -> None:
        # aiohttp runs this before the site listens: the authorizers' caches hold their initial
        # lists before the first request (none is denied for a binding not yet seen), and the
        # default RBAC policy is reconciled as kube's rbac/bootstrap-roles hook does.
        await self.authorization.start(self.cache)
        await ensure_system_objects(self.registry)
        await reconcile_policy(self.registry)
        await self.authorization.caught_up()

    async def _on_cleanup(self, app: web.Application) -> None:
        if self._endpoints_task is not None and self.endpoints is not None:
            await cancel_and_wait([self._endpoints_task])
            try:
                await asyncio.wait_for(self.endpoints.stop(), 5.0)
            except Exception as err:  # the store may be gone too; the Lease then expires on its own
                log.warning("could not withdraw this API server from the kubernetes Endpoints: %s", err)
        await self.cache.stop()
        if self.auditor is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.auditor[1].close)


def _json(body: Any) -> bytes:
    import orjson

    return orjson.dumps(body)


async def run_server(
    client: StoreAPI,
    host: str,
    port: int,
    ssl_context: Any,
    *,
    ready: Callable[[int], None] | None = None,
    pki_dir: Path | None = None,
    services: ServiceNetwork = DEFAULT_SERVICE_NETWORK,
    reuse_port: bool = False,
    advertise: tuple[str, str] | None = None,
    security: SecurityOptions | None = None,
) -> web.AppRunner:
    """Serve on ``host:port`` (0: any free port; ``ready`` gets the bound one). With ``reuse_port``
    the socket has SO_REUSEPORT, so several API servers on one host (Ray nodes of a test cluster)
    share the port and the kernel spreads connections over the live ones. ``advertise`` is
    ``(node name, IP)``: this instance then keeps ``IP:<bound port>`` in the ``kubernetes`` Endpoints."""
    server = ApiServer(client, pki_dir=pki_dir, services=services, security=security)
    runner = web.AppRunner(server.app(), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(
        runner, host, port, ssl_context=ssl_context, reuse_address=True, reuse_port=reuse_port, backlog=1024
    )
    await site.start()
    bound = port
    if port == 0 and site._server is not None:
        bound = site._server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
    if advertise is not None:
        server.advertise(advertise[0], advertise[1], bound)
    if ready:
        ready(bound)
    log.info("API server listening on %s:%d (pid %d)", host, bound, os.getpid())
    return runner
