"""The raw-runtime peer of ``bench.startup``: pods started over CRI directly, no control plane.

``run_raw(runtime, pods)`` starts a fresh runtime instance of that kind (the ``process`` runtime as a
subprocess, ``python -m nodeagent.runtimes.process``; or a ``ContainerdRuntime`` on its own bridge
``rk-bench0`` and pod CIDR, never the node agents' network), then, with ``CREATE_CONCURRENCY`` pods in
flight, per pod: RunPodSandbox, CreateContainer (busybox ``sleep 3600``), StartContainer. It records,
per pod, the time from RunPodSandbox sent to StartContainer returned, then stops and removes every
sandbox and the runtime, on errors too. The image is pulled (if absent) before the clock starts.
The clock starts when the first request of the pod is sent, as raykube's does (``bench.startup``
starts it when the pod's create request is sent, not when the create returns).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nodeagent.cri import api_pb2 as pb
from nodeagent.cri.client import CRIClient
from nodeagent.runtimes.containerd import ContainerdRuntime

CREATE_CONCURRENCY = 64
IMAGE = "busybox"
RAW_NAMESPACE = "startup-bench"


async def gathered(count: int, one: Callable[[int], Any]) -> None:
    """Run ``one(i)`` for i in range(count) with at most ``CREATE_CONCURRENCY`` in flight."""
    gate = asyncio.Semaphore(CREATE_CONCURRENCY)

    async def limited(i: int) -> None:
        async with gate:
            await one(i)

    await asyncio.gather(*(limited(i) for i in range(count)))


async def raw_cri_startup(socket_path: str, pods: int, log_root: str, image: str = IMAGE) -> dict[str, Any]:
    """Start ``pods`` one-container pods over CRI at ``socket_path``; remove them; return raw figures."""
    latencies: list[float] = []
    ends: list[float] = []
    sandboxes: list[str] = []
    async with CRIClient(socket_path, timeout=120) as cri:
        await cri.wait_ready(timeout=30)
        if await cri.image_status(image) is None:
            await cri.pull_image(image)

        async def one(i: int) -> None:
            name = f"raw-{i:05d}"
            logdir = Path(log_root) / name
            logdir.mkdir(parents=True, exist_ok=True)
            config = pb.PodSandboxConfig(
                metadata=pb.PodSandboxMetadata(name=name, uid=f"uid-{name}", namespace=RAW_NAMESPACE),
                hostname=name,
                log_directory=str(logdir),
                labels={"app": "startup-bench-raw"},
            )
            container = pb.ContainerConfig(
                metadata=pb.ContainerMetadata(name="sleep"),
                image=pb.ImageSpec(image=image),
                command=["sleep"],
                args=["3600"],
                log_path="sleep/0.log",
            )
            sent = time.monotonic()
            sandbox = await cri.run_pod_sandbox(config)
            sandboxes.append(sandbox)
            cid = await cri.create_container(sandbox, container, config)
            await cri.start_container(cid)
            done = time.monotonic()
            latencies.append(done - sent)
            ends.append(done)

        first_sent = time.monotonic()
        try:
            await gathered(pods, one)
        finally:
            for sandbox in sandboxes:
                with contextlib.suppress(Exception):
                    await cri.stop_pod_sandbox(sandbox)
                    await cri.remove_pod_sandbox(sandbox)
    return {"latencies": latencies, "first_sent": first_sent, "last_done": max(ends, default=first_sent)}


async def _raw_process(pods: int, work: Path) -> dict[str, Any]:
    socket_path = str(work / "cri.sock")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "nodeagent.runtimes.process",
        "--socket",
        socket_path,
        "--root",
        str(work / "root"),
        stdout=asyncio.subprocess.PIPE,
        cwd=str(Path(__file__).resolve().parents[1]),
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 60)
        if not line.startswith(b"ready"):
            raise RuntimeError(f"process runtime did not start: {line!r}")
        return await raw_cri_startup(socket_path, pods, str(work / "logs"))
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 60)
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def _raw_containerd(pods: int, work: Path) -> dict[str, Any]:
    # Its own bridge and pod CIDR: never the node agents' containerd network.
    rt = ContainerdRuntime(str(work / "containerd"), pod_cidr="10.215.0.0/22", bridge="rk-bench0")
    try:
        socket_path = await rt.start()
        return await raw_cri_startup(socket_path, pods, str(work / "logs"))
    finally:
        await rt.stop()


def run_raw(runtime: str, pods: int) -> dict[str, Any]:
    """``{"latencies", "first_sent", "last_done"}`` (seconds, monotonic) for ``pods`` pods on a fresh
    ``runtime`` (a short temp dir keeps the unix socket paths short)."""
    work = Path(tempfile.mkdtemp(prefix="rk-raw-"))
    try:
        runner = _raw_process if runtime == "process" else _raw_containerd
        return asyncio.run(runner(pods, work))
    finally:
        shutil.rmtree(work, ignore_errors=True)
