"""Running commands inside a running container: ExecSync, and streaming exec for the node agent.

Both spawn ``exec_argv``: ``nsenter`` into all of the container's namespaces through its PID 1
(``Isolation.exec_argv``), then ``unshare --root`` into the container's root for images that have
one, with the container's environment and working directory. ``exec_sync`` collects output (capped
at 16 MiB per stream, as CRI requires) and enforces the CRI timeout by killing the command's process
group; ``exec_stream`` hands the caller an asyncio subprocess with pipes, or with a pseudo-terminal
when ``tty`` is set, for ``kubectl exec`` sessions relayed by the node agent.

Invariants: an exec never outlives its timeout; every exec is its own process group.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from dataclasses import dataclass

from nodeagent.runtimes.process import procs, rootfs
from nodeagent.runtimes.process.containers import Container
from nodeagent.runtimes.process.isolation import Isolation

MAX_OUTPUT = 16 * 1024 * 1024


class ExecTimeout(TimeoutError):
    """The command did not finish within the ExecSync timeout (it was killed)."""


@dataclass(frozen=True, slots=True)
class ExecResult:
    stdout: bytes
    stderr: bytes
    exit_code: int


async def _read_capped(reader: asyncio.StreamReader | None) -> bytes:
    if reader is None:
        return b""
    chunks: list[bytes] = []
    size = 0
    while chunk := await reader.read(65536):
        if size < MAX_OUTPUT:
            chunks.append(chunk[: MAX_OUTPUT - size])
            size += len(chunks[-1])
    return b"".join(chunks)


def exec_argv(c: Container, isolation: Isolation, cmd: list[str]) -> list[str]:
    """``cmd`` in all of ``c``'s namespaces, and chrooted into its image root when it has one."""
    if c.rootfs:
        cmd = [*rootfs.exec_argv_suffix(isolation.namespaced, c.rootfs, c.state_dir, c.working_dir), *cmd]
    return isolation.exec_argv(c.init_pid, cmd)


async def exec_sync(c: Container, isolation: Isolation, cmd: list[str], timeout: float) -> ExecResult:
    """Run ``cmd`` in ``c`` and wait; ``timeout`` <= 0 means no limit. Raises ``ExecTimeout``."""
    proc = await asyncio.create_subprocess_exec(
        *exec_argv(c, isolation, cmd),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=c.env,
        cwd=c.host_cwd,
        start_new_session=True,
    )
    work = asyncio.gather(_read_capped(proc.stdout), _read_capped(proc.stderr), proc.wait())
    try:
        out, err, rc = await asyncio.wait_for(work, timeout if timeout > 0 else None)
    except TimeoutError:
        procs.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()
        raise ExecTimeout(f"command {cmd!r} did not finish within {timeout:g}s") from None
    except asyncio.CancelledError:
        procs.killpg(proc.pid, signal.SIGKILL)
        raise
    return ExecResult(out, err, procs.exit_code(rc))


@dataclass(frozen=True, slots=True)
class ExecStream:
    """A running exec. Without tty: ``process.stdin/stdout/stderr`` are pipes. With tty: the
    process's stdio is a pty slave and the caller reads and writes ``pty_master`` (a raw fd the
    caller must close); resize with ``termios``/``TIOCSWINSZ`` on it."""

    process: asyncio.subprocess.Process
    pty_master: int | None = None


async def exec_stream(c: Container, isolation: Isolation, cmd: list[str], tty: bool) -> ExecStream:
    """Start ``cmd`` in ``c`` with its stdio connected to the caller; see ``ExecStream``."""
    argv = exec_argv(c, isolation, cmd)
    if not tty:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=c.env,
            cwd=c.host_cwd,
            start_new_session=True,
        )
        return ExecStream(proc)
    master, slave = os.openpty()
    env = {"TERM": "xterm", **c.env}
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=c.host_cwd, start_new_session=True
        )
    except BaseException:
        os.close(master)
        raise
    finally:
        with contextlib.suppress(OSError):
            os.close(slave)
    return ExecStream(proc, master)
