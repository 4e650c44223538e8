"""CRI ``Exec`` of the process runtime: the URL, its one-time token, and the remotecommand session
spoken there (channels, exit Status, stdin, tty resize), driven with aiohttp's WebSocket client."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

from cluster.machinery import remotecommand as rc
from nodeagent.cri import api_pb2 as pb
from nodeagent.cri.client import FailedPrecondition, InvalidArgument
from nodeagent.runtimes.process.exec import ExecStream
from nodeagent.runtimes.process.streaming import StreamingServer
from tests.nodeagent.server.harness import environment, ws_exec


@pytest.mark.parametrize(
    ("cmd", "stdout", "stderr", "status"),
    [
        pytest.param(
            ["sh", "-c", "echo out; echo err >&2"], b"out\n", b"err\n", rc.success_status(), id="exit-0"
        ),
        pytest.param(["sh", "-c", "echo bye; exit 3"], b"bye\n", b"", rc.exit_status(3), id="exit-3"),
        pytest.param(["sh", "-c", "kill -9 $$"], b"", b"", rc.exit_status(137), id="killed"),
    ],
)
def test_exec_url_runs_the_command(
    tmp_path: Path, cmd: list[str], stdout: bytes, stderr: bytes, status: dict
) -> None:
    async def main() -> None:
        async with environment(tmp_path) as env, aiohttp.ClientSession() as s:
            cid = await env.add_container("app", ["sleep", "60"])
            url = await env.cri.exec(cid, cmd)
            assert url.startswith("http://127.0.0.1:")
            r = await ws_exec(s, url)
            assert (r.stdout, r.stderr, r.status, r.protocol, r.close_code) == (
                stdout,
                stderr,
                status,
                rc.V5,
                1000,
            )

    asyncio.run(main())


def test_stdin_reaches_the_command_and_v5_close_ends_it(tmp_path: Path) -> None:
    async def main() -> None:
        async with environment(tmp_path) as env, aiohttp.ClientSession() as s:
            cid = await env.add_container("app", ["sleep", "60"])
            url = await env.cri.exec(cid, ["cat"], stdin=True)
            r = await ws_exec(s, url, stdin=b"hello\nworld\n")
            assert (r.stdout, r.status) == (b"hello\nworld\n", rc.success_status())

    asyncio.run(main())


@pytest.mark.parametrize(
    ("protocol", "status"),
    [
        pytest.param(rc.V4, rc.exit_status(3), id="v4-json-status"),
        pytest.param(rc.V1, {"message": rc.exit_status(3)["message"]}, id="channel-k8s-io-text"),
    ],
)
def test_older_subprotocols(tmp_path: Path, protocol: str, status: dict) -> None:
    async def main() -> None:
        async with environment(tmp_path) as env, aiohttp.ClientSession() as s:
            cid = await env.add_container("app", ["sleep", "60"])
            url = await env.cri.exec(cid, ["sh", "-c", "echo x; exit 3"])
            r = await ws_exec(s, url, protocols=(protocol,))
            assert (r.protocol, r.stdout, r.status) == (protocol, b"x\n", status)

    asyncio.run(main())


def test_a_token_works_once(tmp_path: Path) -> None:
    async def main() -> None:
        async with environment(tmp_path) as env, aiohttp.ClientSession() as s:
            cid = await env.add_container("app", ["sleep", "60"])
            url = await env.cri.exec(cid, ["true"])
            assert (await ws_exec(s, url)).status == rc.success_status()
            with pytest.raises(aiohttp.WSServerHandshakeError) as e:
                await ws_exec(s, url)
            assert e.value.status == 404

    asyncio.run(main())


def test_tty_merges_output_and_applies_resize(tmp_path: Path) -> None:
    async def main() -> None:
        async with environment(tmp_path) as env, aiohttp.ClientSession() as s:
            cid = await env.add_container("app", ["sleep", "60"])
            # The command waits for a line on its terminal, so the resize is applied before it reads it.
            url = await env.cri.exec(
                cid, ["sh", "-c", "read x; stty size; echo e >&2"], tty=True, stdin=True, stderr=False
            )
            out = bytearray()
            async with s.ws_connect(url, protocols=(rc.V5,)) as ws:
                await ws.send_bytes(rc.frame(rc.RESIZE, b'{"Width":91,"Height":17}'))
                await ws.send_bytes(rc.frame(rc.STDIN, b"go\r"))
                status = None
                async for msg in ws:
                    if msg.data[0] == rc.STDOUT:
                        out += msg.data[1:]
                    elif msg.data[0] == rc.ERROR:
                        status = msg.data[1:]
            assert b"17 91\r\n" in out and b"e\r\n" in out
            assert status is not None and rc.exit_code_of(__import__("orjson").loads(status)) == 0

    asyncio.run(main())


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        pytest.param({"cmd": []}, InvalidArgument, id="empty-cmd"),
        pytest.param({"cmd": ["true"], "stdout": False, "stderr": False}, InvalidArgument, id="no-streams"),
        pytest.param({"cmd": ["true"], "tty": True, "stderr": True}, InvalidArgument, id="tty-and-stderr"),
    ],
)
def test_exec_validation(tmp_path: Path, kwargs: dict, error: type[Exception]) -> None:
    async def main() -> None:
        async with environment(tmp_path) as env:
            cid = await env.add_container("app", ["sleep", "60"])
            cmd = kwargs.pop("cmd")
            with pytest.raises(error):
                await env.cri.exec(cid, cmd, **kwargs)

    asyncio.run(main())


def test_exec_in_an_exited_container_is_refused(tmp_path: Path) -> None:
    async def main() -> None:
        async with environment(tmp_path) as env:
            cid = await env.add_container("app", ["true"])
            await env.wait_exited(cid)
            with pytest.raises(FailedPrecondition):
                await env.cri.exec(cid, ["true"])

    asyncio.run(main())


def test_tokens_expire() -> None:
    now = [100.0]

    async def never(container_id: str, cmd: list[str], tty: bool) -> ExecStream:
        raise AssertionError("an expired token must not start anything")

    async def main() -> None:
        server = StreamingServer(never, token_ttl=60, clock=lambda: now[0])
        await server.start()
        try:
            url = server.register_exec(pb.ExecRequest(container_id="c", cmd=["true"], stdout=True))
            now[0] += 60
            async with aiohttp.ClientSession() as s:
                with pytest.raises(aiohttp.WSServerHandshakeError) as e:
                    await s.ws_connect(url, protocols=(rc.V5,))
            assert e.value.status == 404
        finally:
            await server.stop()

    asyncio.run(main())
