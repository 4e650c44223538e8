"""Our own nginx master (Debian's ``nginx`` binary) under a private prefix directory: start it,
swap its configuration gracefully, stop it. Never the system nginx service.

``NginxProcess(prefix)`` owns ``prefix/`` (0700): ``nginx.conf`` (the configuration serving now),
``certs/`` (0600 files), ``logs/``, ``tmp/`` and ``nginx.pid``. The master runs in the foreground
(``daemon off``) as our child and gets SIGTERM if we die (``PR_SET_PDEATHSIG``); a master a crashed
predecessor left behind (its pid file, its prefix on its command line) is stopped before ours starts.

``apply(rendered)`` is the only way a configuration changes: write the certificates and the
candidate ``nginx.conf.new``, ``nginx -t`` it, and only if nginx accepts it rename it over
``nginx.conf`` and SIGHUP the master (nginx's graceful reload: new workers take new connections,
old workers finish their in-flight requests, then exit). A refused candidate changes nothing that
serves; the caller gets nginx's message. Calls must not overlap (the controller has one renderer).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import shutil
import signal
from dataclasses import dataclass
from pathlib import Path

from cluster.machinery.files import private_dir, write_private
from netplugins.ingress.config import Rendered

log = logging.getLogger("raykube.ingress")

PR_SET_PDEATHSIG = 1


class NginxError(Exception):
    """nginx refused a configuration or did not start; the message is nginx's."""


@dataclass(frozen=True, slots=True)
class Applied:
    ok: bool
    message: str = ""


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.path.exists(p)), None)


def _die_with_parent() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _accepting(worker: int) -> bool:
    try:
        title = Path(f"/proc/{worker}/cmdline").read_bytes()
    except OSError:
        return False
    return b"worker process" in title and b"shutting down" not in title


class NginxProcess:
    def __init__(self, prefix: str | Path, binary: str | None = None) -> None:
        self.prefix = Path(prefix).resolve()
        binary = binary or nginx_binary()
        if binary is None:
            raise NginxError("no nginx binary: install Debian's nginx-light (scripts/setup does, as root)")
        self.binary = binary
        self._proc: asyncio.subprocess.Process | None = None
        self.reloads = 0

    @property
    def conf(self) -> Path:
        return self.prefix / "nginx.conf"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and self._proc.returncode is None else None

    def _prepare_dirs(self) -> None:
        private_dir(self.prefix)
        for sub in ("certs", "logs", "tmp"):
            private_dir(self.prefix / sub)

    async def _run(self, *args: str) -> tuple[int, str]:
        proc = await asyncio.create_subprocess_exec(
            self.binary, "-p", f"{self.prefix}/", *args,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        out, _ = await proc.communicate()
        return proc.returncode or 0, out.decode(errors="replace").strip()

    def _write(self, rendered: Rendered) -> Path:
        for rel, content in rendered.files.items():
            path = self.prefix / rel
            if not path.exists() or path.read_bytes() != content:
                write_private(path, content)
        return write_private(self.prefix / "nginx.conf.new", rendered.text)

    async def test(self, rendered: Rendered) -> Applied:
        """Write ``rendered`` as the candidate and ``nginx -t`` it; nothing serving changes."""
        self._prepare_dirs()
        candidate = self._write(rendered)
        code, out = await self._run("-t", "-q", "-c", str(candidate))
        return Applied(code == 0, out)

    async def start(self, rendered: Rendered, timeout: float = 10.0) -> None:
        """Start the master with ``rendered`` (stopping a stale one first); returns once it serves."""
        await self._stop_stale()
        tested = await self.test(rendered)
        if not tested.ok:
            raise NginxError(tested.message)
        os.replace(self.prefix / "nginx.conf.new", self.conf)
        self._proc = await asyncio.create_subprocess_exec(
            self.binary, "-p", f"{self.prefix}/", "-c", str(self.conf), "-g", "daemon off;",
            stdin=asyncio.subprocess.DEVNULL, preexec_fn=_die_with_parent, start_new_session=True,
        )  # fmt: skip
        await self._wait(lambda: bool(self._workers()), timeout, "nginx did not start its workers")

    async def apply(self, rendered: Rendered, timeout: float = 10.0) -> Applied:
        """Test ``rendered``; if nginx accepts it, make it the configuration and reload gracefully."""
        if self.pid is None:
            raise NginxError("nginx is not running")
        tested = await self.test(rendered)
        if not tested.ok:
            log.warning("nginx refused the new configuration: %s", tested.message)
            return tested
        old = set(self._workers())
        os.replace(self.prefix / "nginx.conf.new", self.conf)
        os.kill(self.pid, signal.SIGHUP)
        await self._wait(lambda: self._reloaded(old), timeout, "nginx did not reload")
        self.reloads += 1
        self._gc_certs(rendered)
        return Applied(True)

    def _gc_certs(self, rendered: Rendered) -> None:
        keep = {self.prefix / rel for rel in rendered.files}
        for path in (self.prefix / "certs").iterdir():
            if path not in keep:
                path.unlink(missing_ok=True)

    def _reloaded(self, old: set[int]) -> bool:
        """New workers run and every old one has stopped accepting (it retitles itself "shutting
        down" as it closes its listening sockets) or is gone."""
        return bool(set(self._workers()) - old) and all(not _accepting(pid) for pid in old)

    def workers(self) -> list[int]:
        """The master's worker pids (those of a reload's old workers too, until they exit)."""
        return self._workers()

    def _workers(self) -> list[int]:
        if self.pid is None:
            return []
        try:
            text = Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text()
        except OSError:
            return []
        return [int(p) for p in text.split()]

    async def _wait(self, cond: object, timeout: float, what: str) -> None:
        assert callable(cond)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not cond():
            if self._proc is not None and self._proc.returncode is not None:
                raise NginxError(f"nginx exited with {self._proc.returncode}: {self.error_log_tail()}")
            if loop.time() > deadline:
                raise NginxError(f"{what} within {timeout}s: {self.error_log_tail()}")
            await asyncio.sleep(0.02)

    def error_log_tail(self, lines: int = 5) -> str:
        with contextlib.suppress(OSError):
            return " | ".join((self.prefix / "logs" / "error.log").read_text().splitlines()[-lines:])
        return ""

    async def stop(self, timeout: float = 30.0) -> None:
        """Graceful stop (SIGQUIT: in-flight requests finish), SIGKILL after ``timeout``."""
        proc, self._proc = self._proc, None
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGQUIT)
        try:
            await asyncio.wait_for(proc.wait(), timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()

    async def _stop_stale(self) -> None:
        pidfile = self.prefix / "nginx.pid"
        try:
            pid = int(pidfile.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return
        if str(self.prefix).encode() not in cmdline or b"nginx" not in cmdline:
            return  # a recycled pid: not our nginx
        log.info("stopping the nginx master %d a previous controller left behind", pid)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGQUIT)
        for _ in range(500):
            if not Path(f"/proc/{pid}").exists():
                return
            await asyncio.sleep(0.02)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
