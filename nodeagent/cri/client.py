"""Async CRI client: the only way the node agent talks to a container runtime.

``CRIClient(socket_path)`` opens one grpc.aio channel to ``unix://<socket_path>`` and exposes the
RuntimeService and ImageService RPCs as coroutines taking and returning the ``api_pb2`` messages.
Every call carries a deadline (``timeout`` per call, else the client's default; long operations such
as PullImage and ExecSync get their own defaults). gRPC failures are raised as ``CRIError``
subclasses chosen by status code, so callers can ``except NotFound`` without importing grpc.

Invariants: methods are safe to call concurrently from one event loop; ``close()`` is idempotent;
the client never retries (the caller's reconcile loop does).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping
from types import TracebackType
from typing import Any, TypeVar

import grpc
import grpc.aio

from nodeagent.cri import api_pb2, api_pb2_grpc

DEFAULT_TIMEOUT = 10.0
PULL_TIMEOUT = 300.0
# ExecSync's own timeout is enforced by the runtime; the deadline only guards a hung runtime.
EXEC_GRACE = 10.0

_T = TypeVar("_T")


class CRIError(Exception):
    """A CRI call failed; ``code`` is the gRPC status code, ``details`` the runtime's message."""

    def __init__(self, code: grpc.StatusCode, details: str, method: str) -> None:
        super().__init__(f"{method}: {code.name}: {details}")
        self.code = code
        self.details = details
        self.method = method


class NotFound(CRIError):
    """The sandbox, container or image does not exist."""


class AlreadyExists(CRIError):
    """A sandbox or container with that name already exists."""


class InvalidArgument(CRIError):
    """The request was malformed (missing id, bad config)."""


class FailedPrecondition(CRIError):
    """The object is in the wrong state for the call (e.g. starting a running container)."""


class Unimplemented(CRIError):
    """The runtime does not implement this RPC."""


class Unavailable(CRIError):
    """The runtime's socket is not answering."""


class DeadlineExceeded(CRIError):
    """The call did not finish within its deadline."""


_BY_CODE: Mapping[grpc.StatusCode, type[CRIError]] = {
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.UNIMPLEMENTED: Unimplemented,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
}


def error_from_rpc(err: grpc.aio.AioRpcError, method: str) -> CRIError:
    """Map a grpc error to the matching ``CRIError`` subclass (``CRIError`` itself when unmapped).

    containerd reports some missing objects as UNKNOWN with a "not found" message; those become
    ``NotFound`` too, as kubelet treats them.
    """
    code = err.code()
    details = err.details() or ""
    cls = _BY_CODE.get(code, CRIError)
    if cls is CRIError and "not found" in details.lower():
        cls = NotFound
    return cls(code, details, method)


class CRIClient:
    """Async client for one CRI endpoint (a unix socket path or a full gRPC target)."""

    def __init__(self, socket_path: str, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.target = socket_path if "://" in socket_path else f"unix://{socket_path}"
        self.timeout = timeout
        self._channel: grpc.aio.Channel | None = None
        self._runtime: api_pb2_grpc.RuntimeServiceStub | None = None
        self._images: api_pb2_grpc.ImageServiceStub | None = None

    def _stubs(self) -> tuple[api_pb2_grpc.RuntimeServiceStub, api_pb2_grpc.ImageServiceStub]:
        if self._channel is None:
            # Channels are lazy; creating one here binds it to the running loop of the first call.
            self._channel = grpc.aio.insecure_channel(
                self.target, options=[("grpc.max_receive_message_length", 64 * 1024 * 1024)]
            )
            self._runtime = api_pb2_grpc.RuntimeServiceStub(self._channel)  # type: ignore[no-untyped-call]
            self._images = api_pb2_grpc.ImageServiceStub(self._channel)  # type: ignore[no-untyped-call]
        assert self._runtime is not None and self._images is not None
        return self._runtime, self._images

    async def close(self) -> None:
        if self._channel is not None:
            channel, self._channel = self._channel, None
            await channel.close()

    async def __aenter__(self) -> CRIClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def _call(
        self, method: str, fn: Callable[..., Awaitable[_T]], req: Any, timeout: float | None
    ) -> _T:
        try:
            return await fn(req, timeout=self.timeout if timeout is None else timeout)
        except grpc.aio.AioRpcError as err:
            raise error_from_rpc(err, method) from None

    async def wait_ready(self, timeout: float = 10.0) -> None:
        """Wait until the channel connects (the runtime is listening); raise ``Unavailable`` if not."""
        self._stubs()
        assert self._channel is not None
        try:
            await asyncio.wait_for(self._channel.channel_ready(), timeout)
        except TimeoutError:
            raise Unavailable(grpc.StatusCode.UNAVAILABLE, f"{self.target} not ready", "wait_ready") from None

    # -- RuntimeService ---------------------------------------------------------------------------

    async def version(self, *, timeout: float | None = None) -> api_pb2.VersionResponse:
        rt, _ = self._stubs()
        return await self._call("Version", rt.Version, api_pb2.VersionRequest(version="v1"), timeout)

    async def status(self, *, verbose: bool = False, timeout: float | None = None) -> api_pb2.StatusResponse:
        rt, _ = self._stubs()
        return await self._call("Status", rt.Status, api_pb2.StatusRequest(verbose=verbose), timeout)

    async def run_pod_sandbox(
        self, config: api_pb2.PodSandboxConfig, *, runtime_handler: str = "", timeout: float | None = None
    ) -> str:
        """Create and start a sandbox; return its id."""
        rt, _ = self._stubs()
        req = api_pb2.RunPodSandboxRequest(config=config, runtime_handler=runtime_handler)
        resp: api_pb2.RunPodSandboxResponse = await self._call(
            "RunPodSandbox", rt.RunPodSandbox, req, timeout
        )
        return resp.pod_sandbox_id

    async def stop_pod_sandbox(self, sandbox_id: str, *, timeout: float | None = None) -> None:
        rt, _ = self._stubs()
        req = api_pb2.StopPodSandboxRequest(pod_sandbox_id=sandbox_id)
        await self._call("StopPodSandbox", rt.StopPodSandbox, req, timeout)

    async def remove_pod_sandbox(self, sandbox_id: str, *, timeout: float | None = None) -> None:
        rt, _ = self._stubs()
        req = api_pb2.RemovePodSandboxRequest(pod_sandbox_id=sandbox_id)
        await self._call("RemovePodSandbox", rt.RemovePodSandbox, req, timeout)

    async def pod_sandbox_status(
        self, sandbox_id: str, *, verbose: bool = False, timeout: float | None = None
    ) -> api_pb2.PodSandboxStatusResponse:
        rt, _ = self._stubs()
        req = api_pb2.PodSandboxStatusRequest(pod_sandbox_id=sandbox_id, verbose=verbose)
        return await self._call("PodSandboxStatus", rt.PodSandboxStatus, req, timeout)

    async def list_pod_sandbox(
        self,
        *,
        id: str = "",
        state: int | None = None,
        labels: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> list[api_pb2.PodSandbox]:
        rt, _ = self._stubs()
        flt = api_pb2.PodSandboxFilter(id=id, label_selector=dict(labels or {}))
        if state is not None:
            flt.state.state = state  # type: ignore[assignment]
        resp: api_pb2.ListPodSandboxResponse = await self._call(
            "ListPodSandbox", rt.ListPodSandbox, api_pb2.ListPodSandboxRequest(filter=flt), timeout
        )
        return list(resp.items)

    async def create_container(
        self,
        sandbox_id: str,
        config: api_pb2.ContainerConfig,
        sandbox_config: api_pb2.PodSandboxConfig,
        *,
        timeout: float | None = None,
    ) -> str:
        """Create a container in the sandbox; return its id."""
        rt, _ = self._stubs()
        req = api_pb2.CreateContainerRequest(
            pod_sandbox_id=sandbox_id, config=config, sandbox_config=sandbox_config
        )
        resp: api_pb2.CreateContainerResponse = await self._call(
            "CreateContainer", rt.CreateContainer, req, timeout
        )
        return resp.container_id

    async def start_container(self, container_id: str, *, timeout: float | None = None) -> None:
        rt, _ = self._stubs()
        req = api_pb2.StartContainerRequest(container_id=container_id)
        await self._call("StartContainer", rt.StartContainer, req, timeout)

    async def stop_container(
        self, container_id: str, grace_seconds: int, *, timeout: float | None = None
    ) -> None:
        """Stop with a grace period; the call's deadline is extended by the grace period."""
        rt, _ = self._stubs()
        req = api_pb2.StopContainerRequest(container_id=container_id, timeout=grace_seconds)
        deadline = (self.timeout if timeout is None else timeout) + max(0, grace_seconds)
        await self._call("StopContainer", rt.StopContainer, req, deadline)

    async def remove_container(self, container_id: str, *, timeout: float | None = None) -> None:
        rt, _ = self._stubs()
        req = api_pb2.RemoveContainerRequest(container_id=container_id)
        await self._call("RemoveContainer", rt.RemoveContainer, req, timeout)

    async def list_containers(
        self,
        *,
        id: str = "",
        sandbox_id: str = "",
        state: int | None = None,
        labels: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> list[api_pb2.Container]:
        rt, _ = self._stubs()
        flt = api_pb2.ContainerFilter(id=id, pod_sandbox_id=sandbox_id, label_selector=dict(labels or {}))
        if state is not None:
            flt.state.state = state  # type: ignore[assignment]
        resp: api_pb2.ListContainersResponse = await self._call(
            "ListContainers", rt.ListContainers, api_pb2.ListContainersRequest(filter=flt), timeout
        )
        return list(resp.containers)

    async def container_status(
        self, container_id: str, *, verbose: bool = False, timeout: float | None = None
    ) -> api_pb2.ContainerStatusResponse:
        rt, _ = self._stubs()
        req = api_pb2.ContainerStatusRequest(container_id=container_id, verbose=verbose)
        return await self._call("ContainerStatus", rt.ContainerStatus, req, timeout)

    async def reopen_container_log(self, container_id: str, *, timeout: float | None = None) -> None:
        rt, _ = self._stubs()
        req = api_pb2.ReopenContainerLogRequest(container_id=container_id)
        await self._call("ReopenContainerLog", rt.ReopenContainerLog, req, timeout)

    async def exec_sync(
        self, container_id: str, cmd: Iterable[str], *, exec_timeout: int = 0, timeout: float | None = None
    ) -> api_pb2.ExecSyncResponse:
        """Run ``cmd`` in the container; ``exec_timeout`` seconds (0 = none) is enforced by the runtime."""
        rt, _ = self._stubs()
        req = api_pb2.ExecSyncRequest(container_id=container_id, cmd=list(cmd), timeout=exec_timeout)
        if timeout is None:
            timeout = (exec_timeout + EXEC_GRACE) if exec_timeout > 0 else None
        try:
            resp: api_pb2.ExecSyncResponse = await rt.ExecSync(req, timeout=timeout)
            return resp
        except grpc.aio.AioRpcError as err:
            raise error_from_rpc(err, "ExecSync") from None

    async def exec(
        self,
        container_id: str,
        cmd: Iterable[str],
        *,
        tty: bool = False,
        stdin: bool = False,
        stdout: bool = True,
        stderr: bool = True,
        timeout: float | None = None,
    ) -> str:
        """Ask for a streaming exec URL (``Unimplemented`` from the process runtime)."""
        rt, _ = self._stubs()
        req = api_pb2.ExecRequest(
            container_id=container_id, cmd=list(cmd), tty=tty, stdin=stdin, stdout=stdout, stderr=stderr
        )
        resp: api_pb2.ExecResponse = await self._call("Exec", rt.Exec, req, timeout)
        return resp.url

    # -- ImageService -----------------------------------------------------------------------------

    async def list_images(self, *, image: str = "", timeout: float | None = None) -> list[api_pb2.Image]:
        _, im = self._stubs()
        req = api_pb2.ListImagesRequest()
        if image:
            req.filter.image.image = image
        resp: api_pb2.ListImagesResponse = await self._call("ListImages", im.ListImages, req, timeout)
        return list(resp.images)

    async def image_status(self, image: str, *, timeout: float | None = None) -> api_pb2.Image | None:
        """The image, or None when it is not present."""
        _, im = self._stubs()
        req = api_pb2.ImageStatusRequest(image=api_pb2.ImageSpec(image=image))
        resp: api_pb2.ImageStatusResponse = await self._call("ImageStatus", im.ImageStatus, req, timeout)
        return resp.image if resp.HasField("image") else None

    async def pull_image(
        self,
        image: str,
        *,
        sandbox_config: api_pb2.PodSandboxConfig | None = None,
        timeout: float | None = None,
    ) -> str:
        """Pull (or record) an image; return its image_ref."""
        _, im = self._stubs()
        req = api_pb2.PullImageRequest(image=api_pb2.ImageSpec(image=image))
        if sandbox_config is not None:
            req.sandbox_config.CopyFrom(sandbox_config)
        resp: api_pb2.PullImageResponse = await self._call(
            "PullImage", im.PullImage, req, PULL_TIMEOUT if timeout is None else timeout
        )
        return resp.image_ref

    async def remove_image(self, image: str, *, timeout: float | None = None) -> None:
        _, im = self._stubs()
        req = api_pb2.RemoveImageRequest(image=api_pb2.ImageSpec(image=image))
        await self._call("RemoveImage", im.RemoveImage, req, timeout)
