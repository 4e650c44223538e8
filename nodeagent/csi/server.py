"""Serve a ``CSIPlugin`` as the CSI Identity, Controller and Node services on a unix socket.

The handlers are built from the plugin's methods (``nodeagent.csi.rpc`` names them): an RPC the
plugin does not define is not registered, so gRPC itself answers UNIMPLEMENTED. A ``CSIError``
becomes its status code and message; any other exception becomes INTERNAL with the exception's
type and text (and is logged), so a plugin bug reaches the caller as an error, never as a hang.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable
from typing import Any

import grpc
import grpc.aio

from nodeagent.csi import csi_pb2, rpc
from nodeagent.csi.errors import CSIError
from nodeagent.csi.plugin import CSIPlugin

log = logging.getLogger("raykube.csi")


def _unary(plugin: CSIPlugin, method: rpc.Method, fn: Callable[[Any], Any]) -> grpc.RpcMethodHandler:
    async def handle(request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            response = await fn(request)
        except CSIError as e:
            code, message = e.code, e.message
        except Exception as e:  # a plugin bug must reach the caller as a CSI error
            log.exception("volume plugin %s: %s failed", type(plugin).__name__, method.name)
            code, message = grpc.StatusCode.INTERNAL, f"{type(e).__name__}: {e}"
        else:
            if response is None:  # an empty response is common: accept a bare return
                return method.response()
            return response
        await context.abort(code, message)

    return grpc.unary_unary_rpc_method_handler(
        handle,
        request_deserializer=method.request.FromString,
        response_serializer=method.response.SerializeToString,
    )


def handlers(plugin: CSIPlugin) -> list[grpc.GenericRpcHandler]:
    """One generic handler per CSI service with the RPCs the plugin implements."""
    by_service: dict[str, dict[str, grpc.RpcMethodHandler]] = {s: {} for s in rpc.SERVICES}
    for name, method in rpc.METHODS.items():
        fn = plugin.handler(name)
        if fn is not None:
            by_service[method.service][name] = _unary(plugin, method, fn)
    package = csi_pb2.DESCRIPTOR.package
    return [grpc.method_handlers_generic_handler(f"{package}.{s}", h) for s, h in by_service.items()]


async def serve(plugin: CSIPlugin, socket_path: str) -> grpc.aio.Server:
    """``await plugin.start()``, then serve it on ``unix://socket_path`` (a stale socket file is
    replaced). Undo with ``stop_serving``."""
    await plugin.start()
    with contextlib.suppress(FileNotFoundError):
        os.unlink(socket_path)
    os.makedirs(os.path.dirname(os.path.abspath(socket_path)), exist_ok=True)
    server = grpc.aio.server()
    server.add_generic_rpc_handlers(handlers(plugin))
    server.add_insecure_port(f"unix://{socket_path}")
    await server.start()
    return server


async def stop_serving(
    server: grpc.aio.Server, plugin: CSIPlugin, socket_path: str, purge: bool = False, grace: float = 1.0
) -> None:
    """Stop answering, remove the socket file, then ``await plugin.stop(purge)``."""
    await server.stop(grace)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(socket_path)
    await plugin.stop(purge=purge)
