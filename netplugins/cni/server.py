"""Serve a ``NetworkPlugin`` as the gRPC service of ``proto/cni/cni.proto`` on a unix socket.

A thin shell: each RPC converts the request into ``netplugins.cni.types`` values, awaits the
plugin, and converts back. A ``CNIError`` becomes a gRPC status (chosen by ``status_for``) with the
specification's error object in the binary trailing metadata ``raykube-cni-error-bin``, which the
client turns back into the same ``CNIError`` subclass; any other exception becomes code 5 (I/O
failure) with its text, so a plugin bug reaches the runtime as a CNI error, not a hang.

Invariant: ADD and DEL of one container are serialised (a per-container lock), as the runtime
expects of a plugin executable it runs once per command; different containers run concurrently.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import grpc.aio

from netplugins.cni import cni_pb2, cni_pb2_grpc
from netplugins.cni.plugin import NetworkPlugin
from netplugins.cni.types import (
    CNI_VERSION,
    SUPPORTED_VERSIONS,
    Attachment,
    CNIError,
    IOFailure,
    NetRequest,
)

log = logging.getLogger("raykube.cni")

ERROR_KEY = "raykube-cni-error-bin"

_STATUS = {
    1: grpc.StatusCode.FAILED_PRECONDITION,
    2: grpc.StatusCode.INVALID_ARGUMENT,
    3: grpc.StatusCode.NOT_FOUND,
    4: grpc.StatusCode.INVALID_ARGUMENT,
    5: grpc.StatusCode.INTERNAL,
    6: grpc.StatusCode.INVALID_ARGUMENT,
    7: grpc.StatusCode.INVALID_ARGUMENT,
    11: grpc.StatusCode.UNAVAILABLE,
    50: grpc.StatusCode.UNAVAILABLE,
    51: grpc.StatusCode.UNAVAILABLE,
}


def status_for(code: int) -> grpc.StatusCode:
    """The gRPC status a CNI error code travels under (UNKNOWN for plugin-specific codes)."""
    return _STATUS.get(code, grpc.StatusCode.UNKNOWN)


class _Servicer(cni_pb2_grpc.CNIServicer):
    def __init__(self, plugin: NetworkPlugin) -> None:
        self.plugin = plugin
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}  # lock, users

    async def _call(self, context: grpc.aio.ServicerContext, body: Callable[[], Awaitable[Any]]) -> Any:
        try:
            return await body()
        except CNIError as e:
            err = e
        except Exception as e:  # a plugin bug must reach the runtime as a CNI error
            log.exception("network plugin %s failed", self.plugin.NAME)
            err = IOFailure(f"{type(e).__name__}: {e}")
        context.set_trailing_metadata(((ERROR_KEY, err.to_proto().SerializeToString()),))
        await context.abort(status_for(err.code), err.msg)

    async def _locked(self, container_id: str, body: Callable[[], Awaitable[Any]]) -> Any:
        lock, users = self._locks.get(container_id, (asyncio.Lock(), 0))
        self._locks[container_id] = (lock, users + 1)
        try:
            async with lock:
                return await body()
        finally:
            lock, users = self._locks[container_id]
            if users == 1:
                del self._locks[container_id]
            else:
                self._locks[container_id] = (lock, users - 1)

    async def Add(self, request: Any, context: Any) -> Any:
        async def body() -> Any:
            req = NetRequest.from_proto(request.conf)
            result = await self._locked(req.container_id, lambda: self.plugin.add(req))
            return cni_pb2.AddResponse(result=result.to_proto())

        return await self._call(context, body)

    async def Del(self, request: Any, context: Any) -> Any:
        async def body() -> Any:
            prev = request.prev_result if request.HasField("prev_result") else None
            req = NetRequest.from_proto(request.conf, prev)
            await self._locked(req.container_id, lambda: self.plugin.delete(req))
            return cni_pb2.DelResponse()

        return await self._call(context, body)

    async def Check(self, request: Any, context: Any) -> Any:
        async def body() -> Any:
            prev = request.prev_result if request.HasField("prev_result") else None
            req = NetRequest.from_proto(request.conf, prev)
            await self._locked(req.container_id, lambda: self.plugin.check(req))
            return cni_pb2.CheckResponse()

        return await self._call(context, body)

    async def Status(self, request: Any, context: Any) -> Any:
        async def body() -> Any:
            await self.plugin.status()
            return cni_pb2.StatusResponse()

        return await self._call(context, body)

    async def GC(self, request: Any, context: Any) -> Any:
        async def body() -> Any:
            valid = [Attachment(a.container_id, a.ifname or "eth0") for a in request.valid_attachments]
            await self.plugin.gc(valid)
            return cni_pb2.GCResponse()

        return await self._call(context, body)

    async def Version(self, request: Any, context: Any) -> Any:
        return cni_pb2.VersionResponse(
            cni_version=CNI_VERSION,
            supported_versions=list(SUPPORTED_VERSIONS),
            plugin=self.plugin.NAME or type(self.plugin).__name__,
            node_network=self.plugin.NODE_NETWORK,
        )


class NetworkServer:
    """A started plugin behind its socket; ``await stop()`` (idempotent) stops serving and the plugin."""

    def __init__(self, plugin: NetworkPlugin, socket_path: str, server: grpc.aio.Server) -> None:
        self.plugin = plugin
        self.socket_path = socket_path
        self._server: grpc.aio.Server | None = server

    async def stop(self, purge: bool = False, grace: float = 1.0) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        await server.stop(grace)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket_path)
        await self.plugin.stop(purge=purge)


async def serve(plugin: NetworkPlugin, socket_path: str) -> NetworkServer:
    """``await plugin.start()``, then serve it on ``unix://socket_path`` (a stale socket is replaced)."""
    await plugin.start()
    with contextlib.suppress(FileNotFoundError):
        os.unlink(socket_path)
    os.makedirs(os.path.dirname(os.path.abspath(socket_path)), exist_ok=True)
    server = grpc.aio.server()
    cni_pb2_grpc.add_CNIServicer_to_server(_Servicer(plugin), server)  # type: ignore[no-untyped-call]
    server.add_insecure_port(f"unix://{socket_path}")
    await server.start()
    return NetworkServer(plugin, socket_path, server)
