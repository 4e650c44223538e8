"""CRIClient: gRPC status codes become typed errors; calls reach a real process-runtime socket."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import grpc.aio
import pytest

from nodeagent.cri import api_pb2 as pb
from nodeagent.cri.client import (
    CRIClient,
    CRIError,
    DeadlineExceeded,
    FailedPrecondition,
    NotFound,
    Unavailable,
    Unimplemented,
    error_from_rpc,
)
from nodeagent.runtimes.process.cgroups import CgroupManager
from nodeagent.runtimes.process.isolation import Isolation
from nodeagent.runtimes.process.server import serve, stop_server


def _err(code: grpc.StatusCode, details: str) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details)


@pytest.mark.parametrize(
    ("code", "details", "cls"),
    [
        pytest.param(grpc.StatusCode.NOT_FOUND, "x", NotFound, id="not-found"),
        pytest.param(
            grpc.StatusCode.UNKNOWN, 'an error occurred: container "x" not found', NotFound, id="containerd"
        ),
        pytest.param(grpc.StatusCode.FAILED_PRECONDITION, "x", FailedPrecondition, id="precondition"),
        pytest.param(grpc.StatusCode.UNIMPLEMENTED, "x", Unimplemented, id="unimplemented"),
        pytest.param(grpc.StatusCode.DEADLINE_EXCEEDED, "x", DeadlineExceeded, id="deadline"),
        pytest.param(grpc.StatusCode.INTERNAL, "boom", CRIError, id="other"),
    ],
)
def test_error_mapping(code: grpc.StatusCode, details: str, cls: type[CRIError]) -> None:
    e = error_from_rpc(_err(code, details), "ContainerStatus")
    assert type(e) is cls
    assert (e.code, e.details, e.method) == (code, details, "ContainerStatus")


def test_unavailable_socket(tmp_path: Path) -> None:
    async def main() -> None:
        async with CRIClient(str(tmp_path / "nobody.sock"), timeout=2) as c:
            with pytest.raises((Unavailable, DeadlineExceeded)):
                await c.version()

    asyncio.run(main())


def test_calls_against_the_process_runtime(tmp_path: Path) -> None:
    sock = str(tmp_path / "rt.sock")
    cg = CgroupManager(base="", writable=())

    async def main() -> None:
        rt = await serve(sock, str(tmp_path / "root"), isolation=Isolation("plain"), cgroups=cg)
        try:
            async with CRIClient(sock) as c:
                await c.wait_ready()
                assert (await c.version()).runtime_name == "raykube-process"
                await c.pull_image("busybox")
                sc = pb.PodSandboxConfig(
                    metadata=pb.PodSandboxMetadata(name="p"), log_directory=str(tmp_path)
                )
                sid = await c.run_pod_sandbox(sc)
                cfg = pb.ContainerConfig(
                    metadata=pb.ContainerMetadata(name="c"),
                    image=pb.ImageSpec(image="busybox"),
                    command=["sleep", "60"],
                    log_path="c.log",
                )
                cid = await c.create_container(sid, cfg, sc)
                with pytest.raises(FailedPrecondition):
                    await c.reopen_container_log(cid)  # not running yet
                await c.start_container(cid)
                await c.reopen_container_log(cid)
                assert (await c.exec(cid, ["true"])).startswith("http://127.0.0.1:")
                with pytest.raises(NotFound):
                    await c.container_status("nope")
                with pytest.raises(FailedPrecondition):
                    await c.start_container(cid)  # already running
                await c.remove_pod_sandbox(sid)
        finally:
            await stop_server(rt)

    asyncio.run(main())
