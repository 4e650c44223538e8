"""Shared by the server tests: a real process runtime, pods made through CRIClient, a fake
``ContainerLookup`` over them, an ``AgentServer`` on a random port, and a remotecommand client."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from cluster.machinery import remotecommand as rc
from nodeagent.agent.lookup import ContainerRef, LookupFailed
from nodeagent.cri import api_pb2 as pb
from nodeagent.cri.client import CRIClient
from nodeagent.runtimes.process import ProcessRuntime, serve, stop_server
from nodeagent.runtimes.process.cgroups import CgroupManager
from nodeagent.runtimes.process.isolation import Isolation
from nodeagent.server.agent import AgentServer


@dataclass
class FakeLookup:
    """``ContainerLookup`` over a dict (namespace, pod, container) → ContainerRef."""

    refs: dict[tuple[str, str, str], ContainerRef] = field(default_factory=dict)

    def lookup_container(self, namespace: str, pod: str, container: str | None) -> ContainerRef:
        mine = {c: r for (ns, p, c), r in self.refs.items() if (ns, p) == (namespace, pod)}
        if not mine:
            raise LookupFailed(404, "NotFound", f'pods "{pod}" not found')
        if container is None:
            if len(mine) > 1:
                raise LookupFailed(
                    400,
                    "BadRequest",
                    f"a container name must be specified for pod {pod}, "
                    f"choose one of: [{' '.join(sorted(mine))}]",
                )
            return next(iter(mine.values()))
        if container not in mine:
            raise LookupFailed(400, "BadRequest", f"container {container} is not valid for pod {pod}")
        return mine[container]

    def mark_stopped(self, namespace: str, pod: str, container: str) -> None:
        key = (namespace, pod, container)
        self.refs[key] = replace(self.refs[key], running=False)


@dataclass
class Env:
    tmp: Path
    runtime: ProcessRuntime
    cri: CRIClient
    lookup: FakeLookup
    agent: AgentServer
    sandbox: pb.PodSandboxConfig
    sandbox_id: str

    @property
    def base(self) -> str:
        scheme = "https" if self.agent.ssl_context is not None else "http"
        return f"{scheme}://127.0.0.1:{self.agent.port}"

    async def add_container(self, name: str, cmd: list[str], *, pod: str = "web", ns: str = "default") -> str:
        cfg = pb.ContainerConfig(
            metadata=pb.ContainerMetadata(name=f"{pod}.{name}"),  # one sandbox serves every fake pod
            image=pb.ImageSpec(image="busybox"),
            command=cmd,
            log_path=f"{pod}_{name}/0.log",
        )
        os.makedirs(self.tmp / "logs" / f"{pod}_{name}", exist_ok=True)
        cid = await self.cri.create_container(self.sandbox_id, cfg, self.sandbox)
        await self.cri.start_container(cid)
        self.lookup.refs[(ns, pod, name)] = ContainerRef(
            pod_uid="uid-1",
            container_name=name,
            container_id=cid,
            log_path=str(self.tmp / "logs" / f"{pod}_{name}" / "0.log"),
            previous_log_path="",
            running=True,
        )
        return cid

    async def wait_exited(self, cid: str) -> None:
        """Until the runtime reports the container EXITED (the runtime's own reaper decides)."""
        while (await self.cri.container_status(cid)).status.state != pb.CONTAINER_EXITED:
            await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def environment(
    tmp: Path, *, isolation: str = "plain", ssl_context: Any = None, poll_interval: float = 0.05
) -> AsyncIterator[Env]:
    sock = str(tmp / "rt.sock")
    runtime = await serve(
        sock,
        str(tmp / "root"),
        isolation=Isolation(isolation),
        cgroups=CgroupManager(base="", writable=()),  # type: ignore[arg-type]
    )
    cri = CRIClient(sock)
    lookup = FakeLookup()
    agent = AgentServer(lookup, cri, host="127.0.0.1", ssl_context=ssl_context, poll_interval=poll_interval)
    try:
        await cri.wait_ready()
        await cri.pull_image("busybox")
        sc = pb.PodSandboxConfig(
            metadata=pb.PodSandboxMetadata(name="web", uid="uid-1", namespace="default"),
            hostname="web",
            log_directory=str(tmp / "logs"),
        )
        sid = await cri.run_pod_sandbox(sc)
        await agent.start()
        yield Env(tmp, runtime, cri, lookup, agent, sc, sid)
    finally:
        await agent.stop()
        await cri.close()
        await stop_server(runtime)


@dataclass
class ExecResult:
    stdout: bytes
    stderr: bytes
    status: dict[str, Any] | None
    protocol: str | None
    close_code: int | None


async def ws_exec(
    session: aiohttp.ClientSession,
    url: str,
    *,
    stdin: bytes | None = None,
    protocols: tuple[str, ...] = (rc.V5,),
    close_stdin: bool = True,
    ssl: Any = None,
) -> ExecResult:
    """Run one exec as kubectl does over WebSocket: send stdin (then ``ff 00``), collect until close."""
    out, err = bytearray(), bytearray()
    status: dict[str, Any] | None = None
    async with session.ws_connect(
        url, protocols=protocols, **({"ssl": ssl} if ssl is not None else {})
    ) as ws:
        if stdin is not None:
            await ws.send_bytes(rc.frame(rc.STDIN, stdin))
            if close_stdin:
                await ws.send_bytes(bytes((rc.CLOSE, rc.STDIN)))
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.BINARY or not msg.data:
                continue
            ch, data = msg.data[0], msg.data[1:]
            if ch == rc.STDOUT:
                out += data
            elif ch == rc.STDERR:
                err += data
            elif ch == rc.ERROR and data:
                status = orjson.loads(data) if ws.protocol != rc.V1 else {"message": data.decode()}
        return ExecResult(bytes(out), bytes(err), status, ws.protocol, ws.close_code)
