"""Async client of a network plugin's gRPC socket: what a runtime (or the CNI shim) calls.

``CNIClient(socket_path)`` opens one grpc.aio channel to ``unix://<socket_path>``; each CNI operation
is a coroutine over ``netplugins.cni.types`` values with a deadline. A failed call raises the
plugin's ``CNIError`` subclass (from the ``raykube-cni-error-bin`` trailer), or, when the plugin is
not there to answer, ``PluginNotAvailable`` (code 50) / ``TryAgainLater`` (11, deadline exceeded).

Invariants: safe to use concurrently from one event loop; ``close()`` is idempotent; never retries.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar

import grpc
import grpc.aio

from netplugins.cni import cni_pb2, cni_pb2_grpc
from netplugins.cni.server import ERROR_KEY
from netplugins.cni.types import (
    Attachment,
    CNIError,
    IOFailure,
    NetRequest,
    PluginNotAvailable,
    Result,
    TryAgainLater,
)

DEFAULT_TIMEOUT = 30.0

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class VersionInfo:
    cni_version: str
    supported_versions: tuple[str, ...]
    plugin: str
    node_network: bool


def error_from_rpc(e: grpc.aio.AioRpcError, socket_path: str) -> CNIError:
    """The CNIError a failed call carries, or one that says why the plugin did not answer."""
    for key, value in e.trailing_metadata() or ():
        if key == ERROR_KEY and isinstance(value, bytes):
            return CNIError.from_proto(cni_pb2.Error.FromString(value))
    code = e.code()
    if code == grpc.StatusCode.UNAVAILABLE:
        return PluginNotAvailable(f"network plugin at {socket_path} is not answering", e.details() or "")
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return TryAgainLater(f"network plugin at {socket_path} did not answer in time")
    return IOFailure(f"network plugin call failed: {code.name}: {e.details()}")


class CNIClient:
    """See the module docstring. Use as ``async with CNIClient(path) as cni: ...``."""

    def __init__(self, socket_path: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.socket_path = socket_path
        self.timeout = timeout
        self._channel: grpc.aio.Channel | None = grpc.aio.insecure_channel(f"unix://{socket_path}")
        self._stub = cni_pb2_grpc.CNIStub(self._channel)  # type: ignore[no-untyped-call]

    async def __aenter__(self) -> CNIClient:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        channel, self._channel = self._channel, None
        if channel is not None:
            await channel.close()

    async def _call(self, rpc: Callable[..., Awaitable[_T]], request: Any, timeout: float | None) -> _T:
        try:
            return await rpc(request, timeout=timeout or self.timeout)
        except grpc.aio.AioRpcError as e:
            raise error_from_rpc(e, self.socket_path) from None

    async def add(self, req: NetRequest, timeout: float | None = None) -> Result:
        resp = await self._call(self._stub.Add, cni_pb2.AddRequest(conf=req.to_proto()), timeout)
        return Result.from_proto(resp.result)

    def _with_prev(self, message: Any, req: NetRequest) -> Any:
        if req.prev_result is not None:
            message.prev_result.CopyFrom(req.prev_result.to_proto())
        return message

    async def delete(self, req: NetRequest, timeout: float | None = None) -> None:
        await self._call(
            self._stub.Del, self._with_prev(cni_pb2.DelRequest(conf=req.to_proto()), req), timeout
        )

    async def check(self, req: NetRequest, timeout: float | None = None) -> None:
        message = self._with_prev(cni_pb2.CheckRequest(conf=req.to_proto()), req)
        await self._call(self._stub.Check, message, timeout)

    async def status(self, timeout: float | None = None) -> None:
        await self._call(self._stub.Status, cni_pb2.StatusRequest(), timeout)

    async def gc(self, valid: list[Attachment], timeout: float | None = None) -> None:
        attachments = [cni_pb2.Attachment(container_id=a.container_id, ifname=a.ifname) for a in valid]
        await self._call(self._stub.GC, cni_pb2.GCRequest(valid_attachments=attachments), timeout)

    async def version(self, timeout: float | None = None) -> VersionInfo:
        resp = await self._call(self._stub.Version, cni_pb2.VersionRequest(), timeout)
        return VersionInfo(resp.cni_version, tuple(resp.supported_versions), resp.plugin, resp.node_network)

    async def wait_ready(self, timeout: float = 30.0) -> VersionInfo:
        """Wait until the socket answers Version (the plugin may still say not-ready in Status)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            try:
                return await self.version(timeout=min(5.0, max(0.1, deadline - loop.time())))
            except CNIError:
                if loop.time() >= deadline:
                    raise
                await asyncio.sleep(0.1)
