"""``/exec/...`` of ``AgentServer``: the agent asks the runtime's CRI Exec for a URL and relays the
WebSocket both ways; errors before the upgrade are Status JSON."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

from cluster.machinery import remotecommand as rc
from tests.nodeagent.server.harness import environment, ws_exec


def _q(*cmd: str, extra: str = "output=1&error=1") -> str:
    return "&".join(f"command={c}" for c in cmd) + "&" + extra


@pytest.mark.parametrize(
    ("query", "stdin", "stdout", "stderr", "code"),
    [
        pytest.param(
            _q("sh", "-c", "echo%20out;echo%20err%20>%262"), None, b"out\n", b"err\n", 0, id="separate"
        ),
        pytest.param(_q("sh", "-c", "exit%203"), None, b"", b"", 3, id="exit-3"),
        pytest.param(
            _q("cat", extra="input=1&output=1&error=1"), b"echo me\n", b"echo me\n", b"", 0, id="stdin"
        ),
        pytest.param(
            _q("cat", extra="stdin=true&stdout=true"),
            b"api names\n",
            b"api names\n",
            b"",
            0,
            id="api-param-names",
        ),
    ],
)
def test_exec_through_the_agent(
    tmp_path: Path, query: str, stdin: bytes | None, stdout: bytes, stderr: bytes, code: int
) -> None:
    async def main() -> None:
        async with environment(tmp_path) as env, aiohttp.ClientSession() as s:
            await env.add_container("app", ["sleep", "60"])
            r = await ws_exec(s, f"{env.base}/exec/default/web/app?{query}", stdin=stdin)
            assert (r.stdout, r.stderr, r.protocol, r.close_code) == (stdout, stderr, rc.V5, 1000)
            assert r.status is not None and rc.exit_code_of(r.status) == code

    asyncio.run(main())


@pytest.mark.parametrize("protocol", [rc.V4, rc.V1])
def test_subprotocol_is_negotiated_end_to_end(tmp_path: Path, protocol: str) -> None:
    async def main() -> None:
        async with environment(tmp_path) as env, aiohttp.ClientSession() as s:
            await env.add_container("app", ["sleep", "60"])
            r = await ws_exec(s, f"{env.base}/exec/default/web/app?{_q('echo', 'hi')}", protocols=(protocol,))
            assert (r.protocol, r.stdout) == (protocol, b"hi\n")

    asyncio.run(main())


@pytest.mark.parametrize(
    ("path", "headers", "code", "message"),
    [
        pytest.param(
            "/exec/default/nope/app?command=true&output=1", True, 404, 'pods "nope" not found', id="no-pod"
        ),
        pytest.param(
            "/exec/default/web/app?output=1",
            True,
            400,
            "you must specify at least one command for the container",
            id="no-command",
        ),
        pytest.param(
            "/exec/default/web/app?command=true",
            True,
            400,
            "you must specify at least 1 of stdin, stdout, stderr",
            id="no-stream",
        ),
        pytest.param(
            "/exec/default/web/done?command=true&output=1",
            True,
            400,
            'container "done" in pod "web" is not running',
            id="not-running",
        ),
        pytest.param(
            "/exec/default/web/app?command=true&output=1",
            False,
            400,
            "SPDY is not supported",
            id="no-websocket",
        ),
    ],
)
def test_exec_errors_are_status(tmp_path: Path, path: str, headers: bool, code: int, message: str) -> None:
    async def main() -> None:
        async with environment(tmp_path) as env, aiohttp.ClientSession() as s:
            await env.add_container("app", ["sleep", "60"])
            await env.add_container("done", ["sleep", "60"])
            env.lookup.mark_stopped("default", "web", "done")
            hdrs = (
                {
                    "Upgrade": "websocket",
                    "Connection": "Upgrade",
                    "Sec-WebSocket-Version": "13",
                    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
                    "Sec-WebSocket-Protocol": rc.V5,
                }
                if headers
                else {"Upgrade": "SPDY/3.1", "Connection": "Upgrade"}
            )
            async with s.post(env.base + path, headers=hdrs) as r:
                body = await r.json()
            assert (r.status, body["kind"], body["code"]) == (code, "Status", code)
            assert message in body["message"]

    asyncio.run(main())


@pytest.mark.timeout(60)
def test_client_leaving_kills_the_command(tmp_path: Path) -> None:
    async def main() -> None:
        async with environment(tmp_path) as env, aiohttp.ClientSession() as s:
            await env.add_container("app", ["sleep", "60"])
            pidfile = tmp_path / "exec.pid"
            script = f"echo%20$$%20>{pidfile};echo%20up;sleep%20600"
            url = f"{env.base}/exec/default/web/app?{_q('sh', '-c', script)}"
            async with s.ws_connect(url, protocols=(rc.V5,)) as ws:
                msg = await ws.receive()
                assert msg.data == rc.frame(rc.STDOUT, b"up\n")
            pid = int(pidfile.read_text())
            # The runtime kills the command's process group when the relay closes its side; wait for it.
            while Path(f"/proc/{pid}").exists() and Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z":
                await asyncio.sleep(0.02)

    asyncio.run(main())
