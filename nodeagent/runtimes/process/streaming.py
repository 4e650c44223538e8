"""The process runtime's streaming server: the URL that CRI ``Exec`` returns.

As in containerd's CRI plugin, ``Exec`` does not run anything: it stores the request under a
one-time random token and returns ``http://127.0.0.1:<port>/exec/<token>``. The first WebSocket
request to that URL (within ``token_ttl`` seconds) consumes the token, starts the command with
``ProcessRuntime.exec_stream`` and speaks the remotecommand protocol (``cluster.machinery.remotecommand``):
stdout/stderr out on channels 1/2, stdin in on channel 0 (v5 ``[255, 0]`` closes it), resize on
channel 4 for a tty, then the exit Status on channel 3 and a normal close.

Invariants: a token works once; the server listens on loopback only; when the client goes away the
command's process group is killed; every session ends with the command reaped.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import logging
import os
import secrets
import signal
import struct
import termios
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import WSMsgType, web

from cluster.machinery import remotecommand as rc
from nodeagent.cri import api_pb2
from nodeagent.runtimes.process import procs
from nodeagent.runtimes.process.exec import ExecStream

log = logging.getLogger(__name__)

TOKEN_TTL = 60.0  # the kubelet streaming library's request cache TTL
StartExec = Callable[[str, list[str], bool], Awaitable[ExecStream]]


@dataclass(frozen=True, slots=True)
class _Pending:
    request: api_pb2.ExecRequest
    expires: float


class StreamingServer:
    """Serves exec sessions for tokens handed out by ``register_exec``; start before use."""

    def __init__(
        self,
        start_exec: StartExec,
        *,
        host: str = "127.0.0.1",
        token_ttl: float = TOKEN_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.start_exec = start_exec
        self.host = host
        self.port = 0
        self.token_ttl = token_ttl
        self.clock = clock
        self._pending: dict[str, _Pending] = {}
        self._runner: web.AppRunner | None = None
        self._sessions: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        app = web.Application()
        app.router.add_get("/exec/{token}", self._exec)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    def register_exec(self, request: api_pb2.ExecRequest) -> str:
        """Store ``request`` under a fresh one-time token; return the URL that runs it."""
        if self._runner is None:
            raise RuntimeError("streaming server not started")
        now = self.clock()
        for token in [t for t, p in self._pending.items() if p.expires <= now]:
            del self._pending[token]
        token = secrets.token_urlsafe(24)
        copy = api_pb2.ExecRequest()
        copy.CopyFrom(request)
        self._pending[token] = _Pending(copy, now + self.token_ttl)
        return f"http://{self.host}:{self.port}/exec/{token}"

    def _take(self, token: str) -> api_pb2.ExecRequest | None:
        pending = self._pending.pop(token, None)
        if pending is None or pending.expires <= self.clock():
            return None
        return pending.request

    async def _exec(self, request: web.Request) -> web.StreamResponse:
        req = self._take(request.match_info["token"])
        if req is None:
            raise web.HTTPNotFound(text="unknown or expired exec token")
        protocol = rc.negotiate(rc.offered_protocols(request.headers.get("Sec-WebSocket-Protocol")))
        if protocol is None:
            raise web.HTTPBadRequest(text=f"a WebSocket subprotocol is required, one of {list(rc.PROTOCOLS)}")
        try:
            stream = await self.start_exec(req.container_id, list(req.cmd), req.tty)
        except Exception as e:  # the container stopped between Exec and the upgrade
            raise web.HTTPInternalServerError(text=f"cannot start exec: {e}") from None
        ws = web.WebSocketResponse(protocols=(protocol,), max_msg_size=0)
        try:
            await ws.prepare(request)
        except BaseException:
            _kill(stream)
            await stream.process.wait()
            raise
        await run_session(ws, stream, req, protocol)
        return ws


def _kill(stream: ExecStream) -> None:
    if stream.process.returncode is None:
        procs.killpg(stream.process.pid, signal.SIGKILL)


async def _pump_reader(
    reader: asyncio.StreamReader | None, ws: web.WebSocketResponse, channel: int | None
) -> None:
    """Copy a pipe to a channel (or discard it when the client did not ask for the stream)."""
    if reader is None:
        return
    while chunk := await reader.read(65536):
        if channel is not None and not ws.closed:
            with contextlib.suppress(ConnectionResetError):
                await ws.send_bytes(rc.frame(channel, chunk))


async def _pump_pty(master: int, ws: web.WebSocketResponse, wanted: bool) -> None:
    """Copy the pty master to stdout until the command side closes (EIO) or EOF."""
    loop = asyncio.get_running_loop()
    chunks: asyncio.Queue[bytes] = asyncio.Queue()

    def readable() -> None:
        try:
            data = os.read(master, 65536)
        except BlockingIOError:
            return
        except OSError:  # EIO: every slave end is closed
            data = b""
        if not data:
            loop.remove_reader(master)
        chunks.put_nowait(data)

    loop.add_reader(master, readable)
    try:
        while chunk := await chunks.get():
            if wanted and not ws.closed:
                with contextlib.suppress(ConnectionResetError):
                    await ws.send_bytes(rc.frame(rc.STDOUT, chunk))
    finally:
        loop.remove_reader(master)


async def _write_pty(master: int, data: bytes) -> None:
    while data:
        try:
            n = os.write(master, data)
        except BlockingIOError:
            await asyncio.sleep(0.005)  # the terminal's input queue is full; the reader drains it
            continue
        except OSError as e:
            if e.errno == errno.EIO:
                return
            raise
        data = data[n:]


def _resize(master: int, payload: bytes) -> None:
    size = rc.parse_resize(payload)
    if size is not None:
        with contextlib.suppress(OSError):
            fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", size[1], size[0], 0, 0))


async def _read_client(ws: web.WebSocketResponse, stream: ExecStream, req: api_pb2.ExecRequest) -> None:
    """Client → command: stdin data, stdin close, resize. Returns when the client closes."""
    proc, master = stream.process, stream.pty_master
    stdin_open = req.stdin
    async for msg in ws:
        if msg.type != WSMsgType.BINARY or not msg.data:
            continue
        channel, payload = msg.data[0], msg.data[1:]
        if channel == rc.STDIN and stdin_open:
            if master is not None:
                await _write_pty(master, payload)
            elif proc.stdin is not None:
                with contextlib.suppress(ConnectionResetError, BrokenPipeError):
                    proc.stdin.write(payload)
                    await proc.stdin.drain()
        elif channel == rc.CLOSE and payload[:1] == bytes((rc.STDIN,)) and stdin_open:
            stdin_open = False
            if master is not None:
                await _write_pty(master, b"\x04")  # end of input for a terminal: ^D
            elif proc.stdin is not None:
                proc.stdin.close()
        elif channel == rc.RESIZE and master is not None:
            _resize(master, payload)


async def run_session(
    ws: web.WebSocketResponse, stream: ExecStream, req: api_pb2.ExecRequest, protocol: str
) -> None:
    """Relay one exec between ``ws`` and ``stream`` until the command exits or the client leaves."""
    proc, master = stream.process, stream.pty_master
    if master is not None:
        os.set_blocking(master, False)
        outputs = [asyncio.ensure_future(_pump_pty(master, ws, req.stdout))]
    else:
        if not req.stdin and proc.stdin is not None:
            proc.stdin.close()
        outputs = [
            asyncio.ensure_future(_pump_reader(proc.stdout, ws, rc.STDOUT if req.stdout else None)),
            asyncio.ensure_future(_pump_reader(proc.stderr, ws, rc.STDERR if req.stderr else None)),
        ]
    client = asyncio.ensure_future(_read_client(ws, stream, req))
    finished = asyncio.ensure_future(asyncio.gather(proc.wait(), *outputs))
    try:
        await asyncio.wait([client, finished], return_when=asyncio.FIRST_COMPLETED)  # type: ignore[type-var]
        if finished.done() and not ws.closed:
            payload = rc.status_payload(rc.exit_status(procs.exit_code(proc.returncode or 0)), protocol)
            with contextlib.suppress(ConnectionResetError):
                if payload is not None:
                    await ws.send_bytes(rc.frame(rc.ERROR, payload))
                await ws.close()
    finally:
        _kill(stream)
        client.cancel()
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(asyncio.shield(finished), 5.0)
        finished.cancel()
        if master is not None:
            with contextlib.suppress(OSError):
                os.close(master)
        if proc.returncode is None:
            await proc.wait()
