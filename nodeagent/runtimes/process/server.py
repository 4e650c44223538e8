"""The process runtime's gRPC face: RuntimeService and ImageService servicers over ``ProcessRuntime``.

Each RPC forwards to the runtime method of the same name and maps the runtime's typed errors to gRPC
status codes (NotFoundError → NOT_FOUND, InvalidArgumentError → INVALID_ARGUMENT,
FailedPreconditionError → FAILED_PRECONDITION, ExecTimeout → DEADLINE_EXCEEDED, anything else →
UNKNOWN). ``Exec`` returns a one-time URL on the runtime's streaming server (``streaming.py``), which
``serve`` starts on 127.0.0.1 next to the gRPC socket.

``serve(socket_path, root_dir, network_socket=None)`` starts a grpc.aio server on
``unix://socket_path`` and returns a ``ProcessRuntime`` whose ``server`` attribute is the running
server; ``stop_server`` shuts both down (killing every pod process). With ``network_socket`` the
runtime gives pods their network from the node's CNI plugin on that socket (``network.py``);
``serve`` waits for the plugin and GCs what a previous instance left before it serves.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import grpc.aio

from nodeagent.cri import api_pb2_grpc
from nodeagent.runtimes.process import runtime as rt
from nodeagent.runtimes.process.cgroups import CgroupManager
from nodeagent.runtimes.process.exec import ExecTimeout
from nodeagent.runtimes.process.isolation import Isolation
from nodeagent.runtimes.process.network import PodNetwork
from nodeagent.runtimes.process.streaming import StreamingServer

log = logging.getLogger(__name__)

_CODES: list[tuple[type[BaseException], grpc.StatusCode]] = [
    (rt.NotFoundError, grpc.StatusCode.NOT_FOUND),
    (rt.InvalidArgumentError, grpc.StatusCode.INVALID_ARGUMENT),
    (rt.FailedPreconditionError, grpc.StatusCode.FAILED_PRECONDITION),
    # containerd answers a failed CNI ADD with UNKNOWN too, but it is not a runtime bug to log
    (rt.NetworkSetupError, grpc.StatusCode.UNKNOWN),
    (ExecTimeout, grpc.StatusCode.DEADLINE_EXCEEDED),
]


def _rpc(method: str) -> Callable[[Any, Any, grpc.aio.ServicerContext], Awaitable[Any]]:
    async def handler(self: _Servicer, request: Any, context: grpc.aio.ServicerContext) -> Any:
        fn = getattr(self.runtime, method)
        try:
            result = fn(request)
            if hasattr(result, "__await__"):
                result = await result
            return result
        except grpc.aio.AbortError:
            raise
        except Exception as e:
            code = next((c for t, c in _CODES if isinstance(e, t)), None)
            if code is None:
                code = grpc.StatusCode.UNKNOWN
                log.exception("process runtime: %s failed", method)
            await context.abort(code, str(e))

    return functools.update_wrapper(handler, _rpc)


class _Servicer:
    def __init__(self, runtime: rt.ProcessRuntime) -> None:
        self.runtime = runtime


class RuntimeServicer(_Servicer, api_pb2_grpc.RuntimeServiceServicer):
    Version = _rpc("version")
    Status = _rpc("status")
    RunPodSandbox = _rpc("run_pod_sandbox")
    StopPodSandbox = _rpc("stop_pod_sandbox")
    RemovePodSandbox = _rpc("remove_pod_sandbox")
    PodSandboxStatus = _rpc("pod_sandbox_status")
    ListPodSandbox = _rpc("list_pod_sandbox")
    CreateContainer = _rpc("create_container")
    StartContainer = _rpc("start_container")
    StopContainer = _rpc("stop_container")
    RemoveContainer = _rpc("remove_container")
    ListContainers = _rpc("list_containers")
    ContainerStatus = _rpc("container_status")
    ReopenContainerLog = _rpc("reopen_container_log")
    ExecSync = _rpc("exec_sync")
    Exec = _rpc("exec")


class ImageServicer(_Servicer, api_pb2_grpc.ImageServiceServicer):
    ListImages = _rpc("list_images")
    ImageStatus = _rpc("image_status")
    PullImage = _rpc("pull_image")
    RemoveImage = _rpc("remove_image")


async def serve(
    socket_path: str,
    root_dir: str,
    *,
    isolation: Isolation | None = None,
    cgroups: CgroupManager | None = None,
    cgroup_base: str = "raykube",
    network_socket: str | None = None,
) -> rt.ProcessRuntime:
    """Start the runtime on ``unix://socket_path``; the caller must ``await stop_server(runtime)``.

    ``cgroups`` defaults to probing writable cgroup v1 controllers under ``/sys/fs/cgroup/*/<base>``.
    """
    runtime = rt.ProcessRuntime(
        root_dir,
        isolation=isolation,
        cgroups=cgroups or CgroupManager.probe(cgroup_base),
        network=PodNetwork(network_socket) if network_socket else None,
    )
    await runtime.start_network()
    with contextlib.suppress(FileNotFoundError):
        os.unlink(socket_path)
    os.makedirs(os.path.dirname(os.path.abspath(socket_path)), exist_ok=True)
    server = grpc.aio.server()
    api_pb2_grpc.add_RuntimeServiceServicer_to_server(RuntimeServicer(runtime), server)  # type: ignore[no-untyped-call]
    api_pb2_grpc.add_ImageServiceServicer_to_server(ImageServicer(runtime), server)  # type: ignore[no-untyped-call]
    server.add_insecure_port(f"unix://{socket_path}")
    streaming = StreamingServer(runtime.exec_stream)
    await streaming.start()
    runtime.streaming = streaming
    await server.start()
    runtime.server = server  # type: ignore[attr-defined]
    return runtime


async def stop_server(runtime: rt.ProcessRuntime, grace: float = 1.0) -> None:
    """Stop serving and kill every pod process. Idempotent."""
    server: grpc.aio.Server | None = getattr(runtime, "server", None)
    if server is not None:
        await server.stop(grace)
    if runtime.streaming is not None:
        await runtime.streaming.stop()
    await runtime.shutdown()
