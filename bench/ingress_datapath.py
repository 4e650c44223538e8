"""Throwaway measurement for docs/ingress.md: nginx (as the Ingress controller renders it) vs a small
asyncio reverse proxy as the Ingress data path, in front of the same backend.

The backend is a third nginx answering ``200 hello`` from memory (so the proxies, not the backend,
are what is measured). The load is one asyncio client process: ``--connections`` keep-alive
connections each sending GETs back to back, ``--requests`` in all, after a warm-up; per request
latency gives p50/p99, the wall clock requests/s. Each proxy runs in its own process; nginx with
one worker, so both data paths get one core. Prints one JSON document.

    .venv/bin/python -m bench.ingress_datapath --requests 5000 --connections 16
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from netplugins.ingress.config import NginxSettings, Rendered, render
from netplugins.ingress.model import IngressModel, PathRule, Server, Upstream
from netplugins.ingress.nginx import NginxProcess, nginx_binary

HOST = "bench.test"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- the asyncio reverse proxy (the candidate; HTTP/1.1, Content-Length bodies, keep-alive both ways)


async def _read_message(reader: asyncio.StreamReader) -> bytes | None:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    return head + (await reader.readexactly(length) if length else b"")


async def _proxy_conn(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, upstream: tuple[str, int]
) -> None:
    up_r, up_w = await asyncio.open_connection(*upstream)
    try:
        while True:
            try:
                request = await _read_message(reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            if request is None:
                return
            up_w.write(request)
            response = await _read_message(up_r)
            if response is None:
                return
            writer.write(response)
            await writer.drain()
    finally:
        up_w.close()
        writer.close()


def serve_asyncio_proxy(port: int, upstream_port: int) -> None:
    async def main() -> None:
        server = await asyncio.start_server(
            lambda r, w: _proxy_conn(r, w, ("127.0.0.1", upstream_port)), "127.0.0.1", port
        )
        async with server:
            await server.serve_forever()

    asyncio.run(main())


# -- the load


async def _client(port: int, n: int, latencies: list[float]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = f"GET /x HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode()
    for _ in range(n):
        t0 = time.perf_counter()
        writer.write(request)
        try:
            response = await _read_message(reader)
        except (
            asyncio.IncompleteReadError,
            ConnectionError,
        ):  # the proxy closed a kept-alive connection (keepalive_requests)
            writer.close()
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(request)
            response = await _read_message(reader)
        latencies.append(time.perf_counter() - t0)
        assert response is not None and response.startswith(b"HTTP/1.1 200"), response
    writer.close()


async def _load(port: int, requests: int, connections: int) -> dict[str, float]:
    """Warm up, then ``requests`` GETs over ``connections`` keep-alive connections."""
    await asyncio.gather(*(_client(port, 50, []) for _ in range(connections)))  # warm-up
    latencies: list[float] = []
    t0 = time.perf_counter()
    await asyncio.gather(*(_client(port, requests // connections, latencies) for _ in range(connections)))
    wall = time.perf_counter() - t0
    q = statistics.quantiles(latencies, n=100)
    return {
        "requests": len(latencies),
        "p50_ms": round(q[49] * 1000, 3),
        "p99_ms": round(q[98] * 1000, 3),
        "rps": round(len(latencies) / wall, 1),
    }


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of ``pids`` so far (from /proc/<pid>/stat)."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / os.sysconf("SC_CLK_TCK")


def measure(port: int, requests: int, connections: int, proxy_pids: list[int]) -> dict[str, float]:
    """Load ``port``; with ``proxy_pids`` also the proxy's CPU time per request (the client, a
    Python process, caps the request rate on two cores: CPU per request compares the proxies)."""
    before = cpu_seconds(proxy_pids)
    result = asyncio.run(_load(port, requests, connections))
    if proxy_pids:
        result["proxy_cpu_us_per_request"] = round((cpu_seconds(proxy_pids) - before) / requests * 1e6, 1)
    return result


def _wait_port(port: int) -> None:
    for _ in range(500):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.01)
    raise RuntimeError(f"nothing listens on {port}")


async def _start_backend(prefix: Path, port: int) -> NginxProcess:
    conf = (
        "worker_processes 1;\n"
        f"pid {prefix}/nginx.pid;\nerror_log {prefix}/logs/error.log;\n"
        "events { worker_connections 1024; }\n"
        "http { access_log off; server { listen 127.0.0.1:%d; keepalive_requests 1000000;\n"
        '  location / { return 200 "hello\\n"; } } }\n' % port
    )
    proc = NginxProcess(prefix)
    await proc.start(Rendered(conf, {}))
    return proc


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=5000)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--serve-asyncio-proxy", nargs=2, type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve_asyncio_proxy:
        serve_asyncio_proxy(*args.serve_asyncio_proxy)
        return 0
    if nginx_binary() is None:
        print(json.dumps({"error": "no nginx binary"}))
        return 1
    loop = asyncio.new_event_loop()
    with tempfile.TemporaryDirectory(prefix="rk-ingress-bench-") as tmp:
        backend_port, nginx_port, asyncio_port = free_port(), free_port(), free_port()
        backend = loop.run_until_complete(_start_backend(Path(tmp) / "backend", backend_port))
        upstream = Upstream("bench-web-80", (("127.0.0.1", backend_port),))
        model = IngressModel(
            (Server("", ()), Server(HOST, (PathRule("/", "Prefix", upstream.name, "bench/web"),))),
            (upstream,),
            ("bench/web",),
        )
        settings = NginxSettings(str(Path(tmp) / "ingress"), "127.0.0.1", nginx_port, free_port())
        ingress = NginxProcess(settings.prefix)
        loop.run_until_complete(ingress.start(render(model, settings)))
        proxy = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.ingress_datapath",
                "--serve-asyncio-proxy",
                str(asyncio_port),
                str(backend_port),
            ],
            cwd=Path(__file__).resolve().parents[1],
        )
        try:
            _wait_port(asyncio_port)
            results = {
                "direct": measure(backend_port, args.requests, args.connections, []),
                "nginx": measure(nginx_port, args.requests, args.connections, ingress.workers()),
                "asyncio": measure(asyncio_port, args.requests, args.connections, [proxy.pid]),
            }
        finally:
            proxy.terminate()
            proxy.wait()
            loop.run_until_complete(ingress.stop())
            loop.run_until_complete(backend.stop())
            loop.close()
    out = {
        "cpus": os.cpu_count(),
        "connections": args.connections,
        "nginx_version": subprocess.run(
            [nginx_binary() or "nginx", "-v"], capture_output=True, text=True, check=False
        ).stderr.strip(),
        "results": results,
    }
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
