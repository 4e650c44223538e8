"""A LocalCluster served over real gRPC on loopback, its event loop on a background thread, so that a
test can call it with blocking gRPC stubs and run the real ``etcdctl`` with ``subprocess``."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import threading
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import grpc

from cluster.store.etcd_api.backend import MemberURLs
from cluster.store.etcd_api.server import ServerTLS, bound_port, build_server
from cluster.store.etcdpb import rpc_pb2_grpc
from tests.cluster.store.etcd_api.cluster import LocalCluster, start_cluster

T = TypeVar("T")

ETCDCTL = "/usr/bin/etcdctl"


class Served:
    def __init__(self, tmp: Path, size: int = 3, tls: ServerTLS | None = None) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="etcd-api-test-loop", daemon=True)
        self.thread.start()
        self.tls = tls
        self.servers: dict[int, grpc.aio.Server] = {}
        self.ports: dict[int, int] = {}
        self.cluster: LocalCluster = self.run(self._start(tmp, size))

    async def _start(self, tmp: Path, size: int) -> LocalCluster:
        cluster = await start_cluster(tmp, size)
        for rid, backend in cluster.backends.items():
            server = build_server(backend, host="127.0.0.1", port=0, tls=self.tls)
            await server.start()
            self.servers[rid] = server
            self.ports[rid] = bound_port(server)
        scheme = "https" if self.tls else "http"
        urls = {
            rid: MemberURLs((f"{scheme}://127.0.0.1:{port + 10000}",), (f"{scheme}://127.0.0.1:{port}",))
            for rid, port in self.ports.items()
        }
        for backend in cluster.backends.values():
            backend.member_urls.update(urls)
        return cluster

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, fn: Callable[[], T]) -> T:
        """Run a plain function on the cluster's loop (the replicas are not thread-safe)."""

        async def wrap() -> T:
            return fn()

        return self.run(wrap())

    def leader_id(self) -> int:
        return self.run(self.cluster.leader()).member_id

    def follower_id(self) -> int:
        return self.run(self.cluster.follower()).member_id

    def endpoint(self, rid: int | None = None) -> str:
        return f"127.0.0.1:{self.ports[rid if rid is not None else self.leader_id()]}"

    def channel(self, rid: int | None = None) -> grpc.Channel:
        return grpc.insecure_channel(self.endpoint(rid))

    def stubs(self, rid: int | None = None) -> Stubs:
        return Stubs(self.channel(rid))

    def etcdctl(
        self, *args: str, rid: int | None = None, stdin: str | None = None, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        full = {**os.environ, "ETCDCTL_API": "3", **(env or {})}
        endpoint = self.endpoint(rid)
        cmd = [ETCDCTL, f"--endpoints={endpoint}", "--dial-timeout=5s", "--command-timeout=10s", *args]
        return subprocess.run(
            cmd, input=stdin, capture_output=True, text=True, env=full, timeout=60, check=False
        )

    def etcdctl_json(self, *args: str, rid: int | None = None) -> Any:
        out = self.etcdctl("-w", "json", *args, rid=rid)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    def close(self) -> None:
        async def stop() -> None:
            for server in self.servers.values():
                await server.stop(None)
            await self.cluster.close()

        try:
            self.run(stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()


class Stubs:
    def __init__(self, channel: grpc.Channel) -> None:
        self.channel = channel
        self.kv = rpc_pb2_grpc.KVStub(channel)
        self.lease = rpc_pb2_grpc.LeaseStub(channel)
        self.maintenance = rpc_pb2_grpc.MaintenanceStub(channel)
        self.cluster = rpc_pb2_grpc.ClusterStub(channel)
        self.auth = rpc_pb2_grpc.AuthStub(channel)
        self.watch = rpc_pb2_grpc.WatchStub(channel)
