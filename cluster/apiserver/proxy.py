"""``pods/log`` and ``pods/exec``: the API server finds the pod's node agent and proxies to it.

As kube-apiserver's ``LogLocation``/``ExecLocation``: read the pod (404 as usual), pick the container
(the only one, or 400 with Kubernetes' texts), read ``spec.nodeName`` (empty: an empty log, or for exec
400 ``pod <name> does not have a host assigned``), then the Node's address (InternalIP, else Hostname)
and ``status.daemonEndpoints.kubeletEndpoint.Port``. A node without that port has no agent (hollow
nodes): 400, as before agents existed. Then:

* log → ``GET https://<ip>:<port>/containerLogs/<ns>/<pod>/<container>?<PodLogOptions>``, streamed back
  as ``text/plain`` chunk by chunk (``follow`` stays open until the agent ends it or the client leaves);
* exec → a WebSocket to ``/exec/<ns>/<pod>/<container>?command=..&input=1&output=1&error=1&tty=1``
  with the client's subprotocol (``v5.channel.k8s.io`` from kubectl 1.30+), frames relayed both ways.
  SPDY (kubectl's fallback, and the only protocol of kubectl <= 1.29) is not spoken: such a request
  gets the same errors as a WebSocket one, else 400 saying so.

Agent errors (Status JSON) are passed through with their code. TLS: the API server presents its
"kubelet client" certificate (``ensure_kubelet_client_cert``) and verifies the agent's serving
certificate against the cluster CA unless ``insecureSkipTLSVerifyBackend=true``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

import aiohttp
from aiohttp import web

from cluster.apiserver import tls
from cluster.apiserver.errors import StatusError, bad_request
from cluster.apiserver.request import Target
from cluster.apiserver.resources import ResourceInfo, lookup
from cluster.machinery import pki as certutil
from cluster.machinery import remotecommand as rc
from cluster.machinery.files import FILE_MODE, write_file_atomic
from cluster.machinery.relay import relay

KUBELET_CLIENT_CN = "kube-apiserver-kubelet-client"
KUBELET_CLIENT_GROUPS = ["system:masters"]
KUBELET_CLIENT_CERT = "apiserver-kubelet-client.crt"
KUBELET_CLIENT_KEY = "apiserver-kubelet-client.key"
CLIENT_CHECK_INTERVAL = 0.5  # how often a quiet log stream checks that its client is still there
LOG_PARAMS = ("follow", "previous", "tailLines", "sinceSeconds", "sinceTime", "timestamps", "limitBytes")


class ObjectReader(Protocol):
    """What the proxy needs from the registry."""

    async def get(self, info: ResourceInfo, namespace: str | None, name: str) -> dict[str, Any]: ...


# -- pure parts ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AgentLocation:
    scheme: str
    host: str
    port: int

    def url(self, path: str) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}{path}"


def pick_container(pod: Mapping[str, Any], requested: str | None) -> str:
    """The container a log/exec request means, with kube-apiserver's ``validateContainer`` texts."""
    name = pod.get("metadata", {}).get("name", "")
    spec = pod.get("spec") or {}
    names: list[str] = [c["name"] for c in spec.get("containers") or []]
    init = [c["name"] for c in spec.get("initContainers") or []]
    ephemeral = [c["name"] for c in spec.get("ephemeralContainers") or []]
    if not requested:
        if len(names) == 1:
            return names[0]
        msg = f"a container name must be specified for pod {name}, choose one of: [{' '.join(names)}]"
        if init:
            msg += f" or one of the init containers: [{' '.join(init)}]"
        if ephemeral:
            msg += f" or one of the ephemeral containers: [{' '.join(ephemeral)}]"
        raise bad_request(msg)
    if requested not in (*names, *init, *ephemeral):
        raise bad_request(f"container {requested} is not valid for pod {name}")
    return requested


def agent_location(node: Mapping[str, Any], scheme: str) -> AgentLocation | None:
    """Where the node's agent listens, or None when the node has no agent port (hollow nodes)."""
    status = node.get("status") or {}
    port = ((status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get("Port") or 0
    if not port:
        return None
    addresses = status.get("addresses") or []
    for kind in ("InternalIP", "Hostname", "ExternalIP"):
        for a in addresses:
            if a.get("type") == kind and a.get("address"):
                return AgentLocation(scheme, a["address"], int(port))
    known = [a.get("address") for a in addresses]
    raise StatusError(
        500,
        "InternalError",
        f"Internal error occurred: no preferred addresses found; known addresses: {known}",
    )


def no_agent_error(pod_name: str, container: str, subresource: str) -> StatusError:
    return bad_request(
        f'container "{container}" in pod "{pod_name}" is waiting to start: no node agent runs this pod yet '
        f"({subresource} needs the raykube node agent)"
    )


# -- TLS ---------------------------------------------------------------------------------------------


def ensure_kubelet_client_cert(pki_dir: Path, *, now: datetime | None = None) -> tuple[Path, Path]:
    """Create or reuse the API server's client certificate for node agents in ``pki_dir``."""
    now = now or datetime.now(UTC)
    pki = tls.Pki.in_dir(pki_dir)
    cert_path, key_path = pki_dir / KUBELET_CLIENT_CERT, pki_dir / KUBELET_CLIENT_KEY
    ca_cert, _ = certutil.load_ca(pki)
    have = certutil.load_pair(cert_path, key_path)
    if have is None or not certutil.signed_by(have[0], ca_cert) or not certutil.fresh(have[0], now):
        cert_pem, key_pem = tls.issue_client_cert(pki, KUBELET_CLIENT_CN, KUBELET_CLIENT_GROUPS, now=now)
        write_file_atomic(key_path, key_pem, mode=FILE_MODE)
        write_file_atomic(cert_path, cert_pem, mode=FILE_MODE)  # nothing in the data dir is for others
    return cert_path, key_path


def kubelet_client_contexts(pki_dir: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(verifying, not verifying the agent's certificate) client contexts presenting our cert."""
    cert, key = ensure_kubelet_client_cert(pki_dir)
    pki = tls.Pki.in_dir(pki_dir)
    verifying = tls.client_ssl_context(pki, cert=cert, key=key)
    insecure = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    insecure.check_hostname = False
    insecure.verify_mode = ssl.CERT_NONE
    insecure.load_cert_chain(certfile=str(cert), keyfile=str(key))
    return verifying, insecure


# -- the proxy ---------------------------------------------------------------------------------------


def _passthrough(status: int, body: bytes, content_type: str | None) -> web.Response:
    return web.Response(
        body=body, status=status, headers={"Content-Type": content_type or "application/json"}
    )


def _gone(request: web.Request) -> bool:
    return request.transport is None or request.transport.is_closing()


async def _next_chunk(upstream: aiohttp.ClientResponse, request: web.Request) -> bytes:
    """The agent's next bytes, or b"" at its end or once the client has gone (aiohttp does not cancel
    a handler when its client disconnects, and a quiet ``follow`` would otherwise hold both open)."""
    read = asyncio.ensure_future(upstream.content.readany())
    while not read.done():
        await asyncio.wait({read}, timeout=CLIENT_CHECK_INTERVAL)
        if not read.done() and _gone(request):
            read.cancel()
            return b""
    return read.result()


class NodeProxy:
    """Serves ``pods/log`` and ``pods/exec`` by proxying to node agents.

    ``client_ssl`` None means agents are reached over plain HTTP (tests, insecure local clusters).
    """

    def __init__(
        self,
        objects: ObjectReader,
        *,
        client_ssl: ssl.SSLContext | None = None,
        insecure_ssl: ssl.SSLContext | None = None,
    ) -> None:
        self.objects = objects
        self.client_ssl = client_ssl
        self.insecure_ssl = insecure_ssl or client_ssl
        pods, nodes = lookup("", "v1", "pods"), lookup("", "v1", "nodes")
        assert pods is not None and nodes is not None
        self.pods, self.nodes = pods, nodes

    @classmethod
    def from_pki_dir(cls, objects: ObjectReader, pki_dir: Path | None) -> NodeProxy:
        if pki_dir is None or not (pki_dir / "ca.key").exists():
            return cls(objects)
        verifying, insecure = kubelet_client_contexts(pki_dir)
        return cls(objects, client_ssl=verifying, insecure_ssl=insecure)

    def _ssl(self, request: web.Request) -> ssl.SSLContext | None:
        if request.query.get("insecureSkipTLSVerifyBackend", "").lower() == "true":
            return self.insecure_ssl
        return self.client_ssl

    async def _locate(self, t: Target, request: web.Request) -> tuple[str, AgentLocation | None]:
        assert t.name is not None and t.namespace is not None
        pod = await self.objects.get(self.pods, t.namespace, t.name)
        container = pick_container(pod, request.query.get("container"))
        node_name = (pod.get("spec") or {}).get("nodeName")
        if not node_name:
            return container, None
        node = await self.objects.get(self.nodes, None, node_name)
        loc = agent_location(node, "https" if self.client_ssl is not None else "http")
        if loc is None:
            raise no_agent_error(t.name, container, t.subresource or "")
        return container, loc

    def _path(self, route: str, t: Target, container: str) -> str:
        assert t.namespace is not None and t.name is not None
        return "/" + "/".join(quote(p, safe="") for p in (route, t.namespace, t.name, container))

    async def log(self, request: web.Request, t: Target) -> web.StreamResponse:
        container, loc = await self._locate(t, request)
        if loc is None:  # not scheduled yet: kube-apiserver streams nothing
            return web.Response(body=b"", content_type="text/plain")
        params = [(k, request.query[k]) for k in LOG_PARAMS if k in request.query]
        url = loc.url(self._path("containerLogs", t, container))
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=10)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            try:
                upstream = await session.get(url, params=params, ssl=self._ssl(request) or False)
            except aiohttp.ClientError as e:
                raise StatusError(500, "InternalError", f"Internal error occurred: {e}") from None
            async with upstream:
                if upstream.status != 200:
                    return _passthrough(upstream.status, await upstream.read(), upstream.content_type)
                resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
                resp.enable_chunked_encoding()
                await resp.prepare(request)
                with contextlib.suppress(ConnectionResetError, aiohttp.ClientConnectionResetError):
                    while chunk := await _next_chunk(upstream, request):
                        await resp.write(chunk)
                    if not _gone(request):
                        await resp.write_eof()
                return resp

    async def exec(self, request: web.Request, t: Target) -> web.StreamResponse:
        container, loc = await self._locate(t, request)
        if loc is None:
            raise bad_request(f"pod {t.name} does not have a host assigned")
        opts = rc.ExecOptions.from_query(request.query.getall("command", []), request.query)
        protocol = rc.negotiate(rc.offered_protocols(request.headers.get("Sec-WebSocket-Protocol")))
        if request.headers.get("Upgrade", "").lower() != "websocket" or protocol is None:
            raise bad_request(
                "exec needs a WebSocket upgrade with one of the subprotocols "
                f"{', '.join(rc.PROTOCOLS)} (SPDY is not supported; use kubectl 1.30 or newer)"
            )
        url = loc.url(self._path("exec", t, container))
        params = opts.kubelet_query()
        ctx = self._ssl(request) or False
        async with aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10)
        ) as session:
            try:
                upstream = await session.ws_connect(
                    url, params=params, protocols=(protocol,), ssl=ctx, max_msg_size=0
                )
            except aiohttp.WSServerHandshakeError:
                # The agent refused the upgrade with a Status; ask again without it to read that Status.
                async with session.get(url, params=params, ssl=ctx) as r:
                    return _passthrough(r.status, await r.read(), r.content_type)
            except aiohttp.ClientError as e:
                raise StatusError(500, "InternalError", f"Internal error occurred: {e}") from None
            ws = web.WebSocketResponse(protocols=(protocol,), max_msg_size=0)
            await ws.prepare(request)
            await relay(ws, upstream)
            return ws
