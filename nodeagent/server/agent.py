"""The node agent's HTTP(S) server: the kubelet routes the API server proxies ``kubectl logs`` and
``kubectl exec`` to.

Routes (as the kubelet's):

* ``GET /containerLogs/{namespace}/{pod}/{container}`` with the PodLogOptions query → ``text/plain``,
  chunked and flushed per chunk when ``follow=true``;
* ``GET|POST /exec/{namespace}/{pod}/{container}?command=..&input=1&output=1&error=1&tty=1`` with a
  WebSocket upgrade (remotecommand subprotocols, see ``remotecommand.py``; the API's names ``stdin``,
  ``stdout``, ``stderr`` are accepted too): asks the CRI runtime's ``Exec`` for a URL and relays frames
  both ways with the client's subprotocol;
* ``GET /healthz`` → ``ok``.

Who may call: over TLS (the agent's context requires a client certificate from the cluster CA, so a
client without one never gets past the handshake), only the API server's kubelet client
certificate (``API_SERVER_CLIENT``, CN ``kube-apiserver-kubelet-client``): any other verified
certificate (a user's, a node's) gets the kubelet's ``403 Forbidden (user=..., verb=...,
resource=nodes, subresource=...)``, as a kubelet whose authorizer only allows the API server. No
anonymous kubelet (CIS 4.2.1/4.2.2). Without TLS (unit tests) nothing is checked.

Errors are Kubernetes ``Status`` JSON: the lookup's code/reason/message unchanged, 400 BadRequest for a
bad query, a container that is not running or a request without a WebSocket upgrade (SPDY is not
spoken), 500 InternalError when the runtime fails. Containers are found through a ``ContainerLookup``
(the agent's in-memory view); the server holds no pod state itself.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from cluster.machinery import remotecommand as rc
from cluster.machinery.relay import relay
from nodeagent.agent.lookup import ContainerLookup, ContainerRef, LookupFailed
from nodeagent.cri.client import CRIClient, CRIError, FailedPrecondition, NotFound
from nodeagent.server.logs import BadLogQuery, log_options, stream_log

log = logging.getLogger(__name__)


class AgentError(Exception):
    """Becomes a ``Status`` response."""

    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message


def status_json(code: int, reason: str, message: str) -> web.Response:
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    return web.Response(body=orjson.dumps(body), status=code, content_type="application/json")


def _bad(message: str) -> AgentError:
    return AgentError(400, "BadRequest", message)


@web.middleware
async def _errors(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        resp: web.StreamResponse = await handler(request)
        return resp
    except AgentError as e:
        return status_json(e.code, e.reason, e.message)
    except LookupFailed as e:
        return status_json(e.code, e.reason, e.message)
    except web.HTTPException as e:
        if e.status < 400:
            raise
        reason = {404: "NotFound", 405: "MethodNotAllowed"}.get(e.status, "BadRequest")
        return status_json(e.status, reason, e.text or e.reason)


# The API server's client certificate for kubelets (cluster.apiserver.proxy.KUBELET_CLIENT_CN).
API_SERVER_CLIENT = "kube-apiserver-kubelet-client"

_VERBS = {
    "GET": "get",
    "HEAD": "get",
    "POST": "create",
    "PUT": "update",
    "PATCH": "patch",
    "DELETE": "delete",
}
# The kubelet's finer subresources by path prefix; everything else is nodes/proxy.
_SUBRESOURCES = (
    ("/stats", "stats"),
    ("/metrics", "metrics"),
    ("/logs", "log"),
    ("/checkpoint", "checkpoint"),
)


def peer_common_name(peercert: Any) -> str:
    """CN of a verified peer certificate as ``ssl`` reports it ('' when there is none)."""
    for rdn in (peercert or {}).get("subject", ()):
        for attribute, value in rdn:
            if attribute == "commonName":
                return str(value)
    return ""


def forbidden_message(user: str, method: str, path: str) -> str:
    """The kubelet's refusal text for ``user`` calling ``method path``."""
    sub = next(
        (name for prefix, name in _SUBRESOURCES if path == prefix or path.startswith(prefix + "/")), "proxy"
    )
    verb = _VERBS.get(method, method.lower())
    return f"Forbidden (user={user}, verb={verb}, resource=nodes, subresource={sub})"


class AgentServer:
    """Serve the kubelet's log and exec routes for the containers ``lookup`` knows."""

    def __init__(
        self,
        lookup: ContainerLookup,
        cri: CRIClient,
        *,
        host: str,
        port: int = 0,
        ssl_context: Any = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        poll_interval: float = 0.2,
        allowed_clients: frozenset[str] = frozenset({API_SERVER_CLIENT}),
    ) -> None:
        """``allowed_clients``: the certificate CNs served over TLS (module docstring)."""
        self.allowed_clients = allowed_clients
        self.lookup = lookup
        self.cri = cri
        self.host = host
        self.port = port
        self.ssl_context = ssl_context
        self.clock = clock
        self.poll_interval = poll_interval
        self._runner: web.AppRunner | None = None

    @web.middleware
    async def _only_allowed_clients(self, request: web.Request, handler: Any) -> web.StreamResponse:
        transport = request.transport
        user = peer_common_name(transport.get_extra_info("peercert") if transport is not None else None)
        if user not in self.allowed_clients:
            return web.Response(status=403, text=forbidden_message(user, request.method, request.path))
        resp: web.StreamResponse = await handler(request)
        return resp

    def app(self) -> web.Application:
        checks = [self._only_allowed_clients] if self.ssl_context is not None else []
        app = web.Application(middlewares=[*checks, _errors])
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/containerLogs/{namespace}/{pod}/{container}", self.container_logs)
        app.router.add_route("GET", "/exec/{namespace}/{pod}/{container}", self.exec)
        app.router.add_route("POST", "/exec/{namespace}/{pod}/{container}", self.exec)
        return app

    async def start(self) -> int:
        """Listen; return the bound port (``port=0`` picks a free one)."""
        self._runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, ssl_context=self.ssl_context)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        return self.port

    async def stop(self) -> None:
        """Stop listening and end open streams. Idempotent."""
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    def _find(self, request: web.Request) -> ContainerRef:
        m = request.match_info
        return self.lookup.lookup_container(m["namespace"], m["pod"], m["container"] or None)

    # -- logs -------------------------------------------------------------------------------------

    async def container_logs(self, request: web.Request) -> web.StreamResponse:
        try:
            q = log_options(request.query)
        except BadLogQuery as e:
            raise _bad(str(e)) from None
        ref = self._find(request)
        m = request.match_info
        if q.previous:
            if not ref.previous_log_path:
                raise _bad(
                    f'previous terminated container "{ref.container_name}" in pod "{m["pod"]}" not found'
                )
            path, follow = ref.previous_log_path, False
        else:
            if not ref.log_path:
                raise _bad(f'container "{ref.container_name}" in pod "{m["pod"]}" is waiting to start')
            path, follow = ref.log_path, q.follow

        def running() -> bool:
            if request.transport is None or request.transport.is_closing():
                return False  # the client has gone (aiohttp does not cancel the handler)
            try:
                now_ref = self.lookup.lookup_container(m["namespace"], m["pod"], m["container"] or None)
            except LookupFailed:
                return False
            return now_ref.running and now_ref.container_id == ref.container_id

        resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
        if follow:
            resp.enable_chunked_encoding()
        await resp.prepare(request)
        chunks: AsyncGenerator[bytes, None] = stream_log(
            path, q.options, self.clock(), follow=follow, running=running, poll_interval=self.poll_interval
        )
        try:
            async for chunk in chunks:
                await resp.write(chunk)
        except (ConnectionResetError, aiohttp.ClientConnectionResetError):
            return resp  # the client went away
        finally:
            await chunks.aclose()
        await resp.write_eof()
        return resp

    # -- exec -------------------------------------------------------------------------------------

    async def exec(self, request: web.Request) -> web.StreamResponse:
        opts = rc.ExecOptions.from_query(request.query.getall("command", []), request.query)
        if not opts.command:
            raise _bad("you must specify at least one command for the container")
        if not (opts.stdin or opts.stdout or opts.stderr):
            raise _bad("you must specify at least 1 of stdin, stdout, stderr")
        ref = self._find(request)
        if not ref.running or not ref.container_id:
            raise _bad(
                f'container "{ref.container_name}" in pod "{request.match_info["pod"]}" is not running'
            )
        protocol = rc.negotiate(rc.offered_protocols(request.headers.get("Sec-WebSocket-Protocol")))
        if request.headers.get("Upgrade", "").lower() != "websocket" or protocol is None:
            raise _bad(
                "exec needs a WebSocket upgrade with one of the subprotocols "
                f"{', '.join(rc.PROTOCOLS)} (SPDY is not supported; use kubectl 1.30 or newer)"
            )
        try:
            url = await self.cri.exec(
                ref.container_id,
                opts.command,
                tty=opts.tty,
                stdin=opts.stdin,
                stdout=opts.stdout,
                stderr=opts.stderr,
            )
        except FailedPrecondition as e:
            raise _bad(f'container "{ref.container_name}" is not running: {e.details}') from None
        except NotFound as e:
            raise AgentError(404, "NotFound", f"container not found ({e.details})") from None
        except CRIError as e:
            raise AgentError(500, "InternalError", f"Internal error occurred: {e}") from None
        async with aiohttp.ClientSession() as session:
            # A v5 client may reach a runtime that only speaks v4 (containerd 1.6's streaming server).
            offer = [protocol, rc.V4] if protocol == rc.V5 else [protocol]
            try:
                upstream = await session.ws_connect(url, protocols=offer, max_msg_size=0, autoping=True)
            except aiohttp.ClientError as e:
                raise AgentError(
                    500, "InternalError", f"Internal error occurred: runtime stream: {e}"
                ) from None
            ws = web.WebSocketResponse(protocols=(protocol,), max_msg_size=0)
            await ws.prepare(request)
            await relay(ws, upstream, drop_stream_close=upstream.protocol != protocol)
        return ws
