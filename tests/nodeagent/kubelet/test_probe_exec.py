"""probe_exec: httpGet, tcpSocket and exec against local servers and a fake exec_sync."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Sequence
from typing import Any

import pytest
from aiohttp import web

from nodeagent.kubelet.probe_exec import ProbeOutcome, resolve_port, run_probe


async def no_exec(cmd: Sequence[str], timeout: float) -> tuple[int, bytes]:
    raise AssertionError("exec_sync must not be called")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def with_server(
    probe: dict[str, Any], container: dict[str, Any]
) -> tuple[ProbeOutcome, dict[str, str]]:
    seen: dict[str, str] = {}
    release = asyncio.Event()

    async def handler(request: web.Request) -> web.StreamResponse:
        seen.update(request.headers)
        seen["path"] = request.path_qs
        if request.path == "/slow":
            await release.wait()
        if request.path == "/redirect":
            raise web.HTTPFound("/elsewhere")
        status = int(request.query.get("status", "200"))
        return web.Response(status=status, text="ok")

    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = int(runner.addresses[0][1])
    try:
        container = {**container, "ports": [{"name": "http", "containerPort": port}]}
        if probe["httpGet"].get("port") is None:
            probe = {"httpGet": {**probe["httpGet"], "port": port}}
        out = await run_probe(probe, container, "127.0.0.1", no_exec, timeout=0.5)
    finally:
        release.set()
        await runner.cleanup()
    return out, seen


@pytest.mark.parametrize(
    ("get", "result"),
    [
        pytest.param({"path": "/healthz"}, "success", id="200"),
        pytest.param({"path": "/x?status=399"}, "success", id="399"),
        pytest.param({"path": "/redirect"}, "success", id="302-is-success"),
        pytest.param({"path": "/x?status=400"}, "failure", id="400"),
        pytest.param({"path": "/x?status=500"}, "failure", id="500"),
        pytest.param({"path": "/slow"}, "failure", id="timeout"),
        pytest.param({"path": "/", "port": "http"}, "success", id="named-port"),
    ],
)
def test_http_get(get: dict[str, Any], result: str) -> None:
    out, _ = asyncio.run(with_server({"httpGet": get}, {"name": "c"}))
    assert out.result == result


def test_http_headers_and_user_agent() -> None:
    probe = {"httpGet": {"path": "healthz", "httpHeaders": [{"name": "X-Probe", "value": "yes"}]}}
    out, seen = asyncio.run(with_server(probe, {"name": "c"}))
    assert out.result == "success"
    assert (seen["X-Probe"], seen["path"]) == ("yes", "/healthz")
    assert seen["User-Agent"].startswith("kube-probe/")


def test_http_connection_refused() -> None:
    out = asyncio.run(run_probe({"httpGet": {"port": free_port()}}, {}, "127.0.0.1", no_exec, 1))
    assert out.result == "failure"


async def tcp_probe(listen: bool) -> ProbeOutcome:
    port = free_port()
    server = None
    if listen:
        server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", port)
    try:
        return await run_probe({"tcpSocket": {"port": port}}, {}, "127.0.0.1", no_exec, 1)
    finally:
        if server is not None:
            server.close()
            await server.wait_closed()


@pytest.mark.parametrize(("listen", "result"), [(True, "success"), (False, "failure")])
def test_tcp(listen: bool, result: str) -> None:
    assert asyncio.run(tcp_probe(listen)).result == result


@pytest.mark.parametrize(
    ("code", "hang", "result"),
    [
        pytest.param(0, False, "success", id="exit-0"),
        pytest.param(1, False, "failure", id="exit-1"),
        pytest.param(0, True, "failure", id="timeout"),
    ],
)
def test_exec(code: int, hang: bool, result: str) -> None:
    calls: list[tuple[list[str], float]] = []

    async def exec_sync(cmd: Sequence[str], timeout: float) -> tuple[int, bytes]:
        calls.append((list(cmd), timeout))
        if hang:
            await asyncio.Event().wait()
        return code, b"out"

    out = asyncio.run(run_probe({"exec": {"command": ["cat", "/ok"]}}, {}, "", exec_sync, 0.05))
    assert out.result == result
    assert calls == [(["cat", "/ok"], 0.05)]


@pytest.mark.parametrize(
    ("probe", "output"),
    [
        pytest.param({"grpc": {"port": 1}}, "grpc probes are not supported by raykube", id="grpc"),
        pytest.param({}, "missing probe handler", id="empty"),
        pytest.param(
            {"tcpSocket": {"port": "nope"}}, "couldn't find port: nope in c", id="unknown-named-port"
        ),
    ],
)
def test_unknown(probe: dict[str, Any], output: str) -> None:
    assert asyncio.run(run_probe(probe, {"name": "c"}, "127.0.0.1", no_exec, 1)) == ProbeOutcome(
        "unknown", output
    )


def test_resolve_port() -> None:
    assert resolve_port("8080", {}) == 8080
    assert resolve_port("web", {"ports": [{"name": "web", "containerPort": 80}]}) == 80
