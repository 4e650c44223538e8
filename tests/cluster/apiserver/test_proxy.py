"""``pods/log`` and ``pods/exec`` through ``NodeProxy`` to a real ``AgentServer`` over a real process
runtime (no Ray): the proxy is mounted on a tiny aiohttp app with the API server's Status mapping."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from cluster.apiserver import tls
from cluster.apiserver.errors import StatusError, not_found
from cluster.apiserver.proxy import NodeProxy, agent_location, pick_container
from cluster.apiserver.request import parse_path
from cluster.apiserver.resources import ResourceInfo
from cluster.machinery import remotecommand as rc
from nodeagent.server.tls import agent_ssl_context, ensure_agent_cert
from tests.nodeagent.server.harness import Env, environment, ws_exec


class Objects:
    def __init__(self, port: int) -> None:
        self.items: dict[tuple[str, str | None, str], dict[str, Any]] = {
            ("pods", "default", "web"): _pod("web", "n1", ["app", "side"]),
            ("pods", "default", "solo"): _pod("solo", "n1", ["app"]),
            ("pods", "default", "pending"): _pod("pending", "", ["app"]),
            ("pods", "default", "hollow"): _pod("hollow", "h1", ["app"]),
            ("nodes", None, "n1"): _node("n1", port),
            ("nodes", None, "h1"): _node("h1", 0),
        }

    async def get(self, info: ResourceInfo, namespace: str | None, name: str) -> dict[str, Any]:
        try:
            return self.items[(info.plural, namespace, name)]
        except KeyError:
            raise not_found(info, name) from None


def _pod(name: str, node: str, containers: list[str]) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"nodeName": node, "containers": [{"name": c} for c in containers]},
    }


def _node(name: str, port: int) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "status": {
            "addresses": [
                {"type": "InternalIP", "address": "127.0.0.1"},
                {"type": "Hostname", "address": name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
        },
    }


@web.middleware
async def _status(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        resp: web.StreamResponse = await handler(request)
        return resp
    except StatusError as e:
        return web.Response(body=orjson.dumps(e.body()), status=e.code, content_type="application/json")


@asynccontextmanager
async def api(proxy: NodeProxy) -> AsyncIterator[str]:
    async def route(request: web.Request) -> web.StreamResponse:
        m = request.match_info
        t = parse_path("", "v1", ["namespaces", m["ns"], "pods", m["name"], m["sub"]])
        return await (proxy.log if t.subresource == "log" else proxy.exec)(request, t)

    app = web.Application(middlewares=[_status])
    app.router.add_route("*", "/api/v1/namespaces/{ns}/pods/{name}/{sub}", route)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    finally:
        await runner.cleanup()


@asynccontextmanager
async def stack(tmp: Path) -> AsyncIterator[tuple[Env, str]]:
    async with environment(tmp) as env:
        await env.add_container("app", ["sh", "-c", "echo hello; echo world; sleep 60"])
        await env.add_container("side", ["sleep", "60"])
        await env.add_container("app", ["sleep", "60"], pod="solo")
        async with api(NodeProxy(Objects(env.agent.port))) as base:
            yield env, base


def _exec_url(base: str, pod: str, *cmd: str, extra: str = "stdout=true&stderr=true") -> str:
    return (
        f"{base}/api/v1/namespaces/default/pods/{pod}/exec?"
        + "&".join(f"command={c}" for c in cmd)
        + "&"
        + extra
    )


def test_log_is_proxied_and_follow_streams(tmp_path: Path) -> None:
    async def main() -> None:
        async with stack(tmp_path) as (_env, base), aiohttp.ClientSession() as s:
            url = f"{base}/api/v1/namespaces/default/pods/web/log?container=app"
            got = b""
            async with s.get(url + "&follow=true") as r:
                assert (r.status, r.content_type) == (200, "text/plain")
                while got != b"hello\nworld\n":
                    got += await r.content.readany()
            async with s.get(url + "&tailLines=1&timestamps=true") as r:
                line = await r.read()
            assert line.endswith(b"Z world\n") and line.count(b"\n") == 1

    asyncio.run(main())


def test_exec_is_relayed_with_exit_codes_and_stdin(tmp_path: Path) -> None:
    async def main() -> None:
        async with stack(tmp_path) as (_env, base), aiohttp.ClientSession() as s:
            r = await ws_exec(
                s,
                _exec_url(
                    base,
                    "web",
                    "sh",
                    "-c",
                    "echo%20o;echo%20e%20>%262;exit%203",
                    extra="container=app&stdout=true&stderr=true",
                ),
            )
            assert (r.stdout, r.stderr, r.protocol, r.close_code) == (b"o\n", b"e\n", rc.V5, 1000)
            assert r.status == rc.exit_status(3)
            r = await ws_exec(
                s, _exec_url(base, "solo", "cat", extra="stdin=true&stdout=true"), stdin=b"ping\n"
            )
            assert (r.stdout, r.status) == (b"ping\n", rc.success_status())

    asyncio.run(main())


@pytest.mark.parametrize(
    ("path", "code", "message"),
    [
        pytest.param("nope/log", 404, 'pods "nope" not found', id="no-pod"),
        pytest.param(
            "web/log",
            400,
            "a container name must be specified for pod web, choose one of: [app side]",
            id="ambiguous",
        ),
        pytest.param("web/log?container=x", 400, "container x is not valid for pod web", id="bad-container"),
        pytest.param(
            "hollow/log",
            400,
            'container "app" in pod "hollow" is waiting to start: no node agent',
            id="hollow-node",
        ),
        pytest.param(
            "pending/exec?command=true&stdout=true",
            400,
            "pod pending does not have a host assigned",
            id="exec-unscheduled",
        ),
        pytest.param(
            "web/log?container=app&previous=true",
            400,
            'previous terminated container "app" in pod "web" not found',
            id="agent-status-passed-through",
        ),
        pytest.param("solo/exec?command=true&stdout=true", 400, "SPDY is not supported", id="spdy"),
    ],
)
def test_errors(tmp_path: Path, path: str, code: int, message: str) -> None:
    async def main() -> None:
        async with stack(tmp_path) as (_env, base), aiohttp.ClientSession() as s:
            async with s.get(f"{base}/api/v1/namespaces/default/pods/{path}") as r:
                body = await r.json()
            assert (r.status, body["kind"], body["code"]) == (code, "Status", code)
            assert message in body["message"]

    asyncio.run(main())


def test_exec_into_a_stopped_container_passes_the_agents_400(tmp_path: Path) -> None:
    async def main() -> None:
        async with stack(tmp_path) as (env, base), aiohttp.ClientSession() as s:
            env.lookup.mark_stopped("default", "solo", "app")
            with pytest.raises(aiohttp.WSServerHandshakeError) as e:
                await ws_exec(s, _exec_url(base, "solo", "true"))
            assert e.value.status == 400

    asyncio.run(main())


def test_unscheduled_pod_has_an_empty_log(tmp_path: Path) -> None:
    async def main() -> None:
        async with (
            stack(tmp_path) as (_env, base),
            aiohttp.ClientSession() as s,
            s.get(f"{base}/api/v1/namespaces/default/pods/pending/log") as r,
        ):
            assert (r.status, await r.read()) == (200, b"")

    asyncio.run(main())


def test_over_tls_with_the_kubelet_client_certificate(tmp_path: Path) -> None:
    pki = tls.ensure_pki(tmp_path / "pki", hosts=[])
    cert, key = ensure_agent_cert(pki, tmp_path / "agent", "n1", ["127.0.0.1"])
    server_ctx = agent_ssl_context(pki.ca_cert, cert, key)

    async def main() -> None:
        async with environment(tmp_path / "rt", ssl_context=server_ctx) as env, aiohttp.ClientSession() as s:
            await env.add_container("app", ["sh", "-c", "echo secure; sleep 60"], pod="solo")
            # No client certificate: the agent's handshake refuses it.
            anonymous = ssl.create_default_context(cafile=str(pki.ca_cert))
            with pytest.raises(aiohttp.ClientError):
                async with s.get(f"{env.base}/healthz", ssl=anonymous) as r:
                    await r.read()
            proxy = NodeProxy.from_pki_dir(Objects(env.agent.port), tmp_path / "pki")
            async with api(proxy) as base:
                got = b""
                async with s.get(f"{base}/api/v1/namespaces/default/pods/solo/log?follow=true") as r:
                    while got != b"secure\n":
                        got += await r.content.readany()
                r2 = await ws_exec(s, _exec_url(base, "solo", "sh", "-c", "exit%207"))
                assert rc.exit_code_of(r2.status or {}) == 7

    (tmp_path / "rt").mkdir()
    asyncio.run(main())


@pytest.mark.parametrize(
    ("containers", "requested", "want"),
    [
        pytest.param(["a"], None, "a", id="only-one"),
        pytest.param(["a", "b"], "b", "b", id="named"),
    ],
)
def test_pick_container(containers: list[str], requested: str | None, want: str) -> None:
    assert pick_container(_pod("p", "n", containers), requested) == want


@pytest.mark.parametrize(
    ("addresses", "port", "want"),
    [
        pytest.param(
            [{"type": "Hostname", "address": "h"}, {"type": "InternalIP", "address": "10.0.0.2"}],
            10250,
            ("10.0.0.2", 10250),
            id="internal-ip-first",
        ),
        pytest.param([{"type": "Hostname", "address": "h"}], 7, ("h", 7), id="hostname"),
        pytest.param([{"type": "InternalIP", "address": "10.0.0.2"}], 0, None, id="no-port-no-agent"),
    ],
)
def test_agent_location(addresses: list[dict[str, str]], port: int, want: tuple[str, int] | None) -> None:
    node = {"status": {"addresses": addresses, "daemonEndpoints": {"kubeletEndpoint": {"Port": port}}}}
    loc = agent_location(node, "https")
    assert (None if loc is None else (loc.host, loc.port)) == want
