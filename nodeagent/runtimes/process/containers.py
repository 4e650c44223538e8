"""Containers: one process tree per container, joined to its sandbox's namespaces.

``Container`` is the runtime's record of one CRI container; ``launch`` starts its main process
(through ``Isolation.container_argv``) with stdout/stderr pumped into the CRI log and a waiter task
that records the exit; ``stop`` signals politely, then kills after the grace period.

Signals: in the namespaced modes our child is ``nsenter``→``unshare --fork``, whose parent ignores
SIGTERM; the real command is the parent's first child (PID 1 of the container's PID namespace),
so SIGTERM goes to it (``init_pid``), and, like PID 1 under containerd, a command without a
SIGTERM handler ignores it until the grace period ends and SIGKILL of the whole process group
(``--kill-child`` takes the namespace down with it) follows.

Invariants: state moves CREATED → RUNNING → EXITED only; ``finished_at``/``exit_code``/``reason``
are set once, by the waiter, after the logs are drained; reason is ``Completed`` for exit 0 and
``Error`` otherwise (``StartError`` with exit 128 when the command cannot start), as containerd.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
from collections.abc import Callable
from dataclasses import dataclass, field

from nodeagent.cri import api_pb2
from nodeagent.runtimes.process import mounts, procs, rootfs
from nodeagent.runtimes.process.isolation import Isolation
from nodeagent.runtimes.process.logs import LogWriter

START_ERROR_EXIT = 128
# How long to keep reading output after the main process exited (grandchildren may hold the pipe).
PUMP_DRAIN_TIMEOUT = 5.0


class ContainerStartError(RuntimeError):
    """The container's command could not be started."""


@dataclass(slots=True)
class Container:
    id: str
    sandbox_id: str
    config: api_pb2.ContainerConfig
    image_ref: str
    image_id: str
    log_path: str
    env: dict[str, str]
    created_at: int
    state: int = api_pb2.CONTAINER_CREATED
    started_at: int = 0
    finished_at: int = 0
    exit_code: int = 0
    reason: str = ""
    message: str = ""
    process: asyncio.subprocess.Process | None = None
    init_pid: int = 0
    log: LogWriter | None = None
    waiter: asyncio.Task[None] | None = None
    exited: asyncio.Event = field(default_factory=asyncio.Event)
    cgroup_errors: list[str] = field(default_factory=list)
    # Set for images with a root filesystem (imported OCI layouts); empty: the host's filesystem.
    rootfs: str = ""
    state_dir: str = ""
    # A host-filesystem container's resolv.conf to bind over /etc/resolv.conf (namespaced modes).
    resolv_conf: str = ""
    image_entrypoint: tuple[str, ...] = ()
    image_cmd: tuple[str, ...] = ()
    image_working_dir: str = ""

    @property
    def argv(self) -> list[str]:
        """Kubernetes' rule: command replaces the image's Entrypoint (and drops its Cmd), args its Cmd."""
        command, args = list(self.config.command), list(self.config.args)
        if command:
            return [*command, *args]
        return [*self.image_entrypoint, *(args or self.image_cmd)]

    @property
    def working_dir(self) -> str:
        return self.config.working_dir or self.image_working_dir or "/"

    @property
    def host_cwd(self) -> str:
        """The directory to spawn in: the working dir, or / when the command chroots first."""
        return "/" if self.rootfs else self.working_dir


def container_env(
    config: api_pb2.ContainerConfig, hostname: str, image_env: tuple[str, ...] = ()
) -> dict[str, str]:
    """The container's environment: PATH and HOME defaults, HOSTNAME, the image's Env, then the
    config's envs (last wins), in containerd's order."""
    env = {"PATH": procs.DEFAULT_PATH, "HOSTNAME": hostname, "HOME": "/root" if os.geteuid() == 0 else "/"}
    for kv_text in image_env:
        key, _, value = kv_text.partition("=")
        if key:
            env[key] = value
    for kv in config.envs:
        env[kv.key] = kv.value
    return env


def _mark_exited(c: Container, now_ns: int, code: int, reason: str, message: str = "") -> None:
    c.state = api_pb2.CONTAINER_EXITED
    c.finished_at = now_ns
    c.exit_code = code
    c.reason = reason
    c.message = message
    c.exited.set()


def _preexec(procs_files: list[str], report_fd: int) -> Callable[[], None] | None:
    """Join the cgroups in the child between fork and exec; a failure is written to ``report_fd``
    (one line per group) rather than raised, so the container still starts and the parent can say
    that its limits are not applied."""
    if not procs_files:
        return None

    def join() -> None:
        for f in procs_files:
            try:
                with open(f, "w") as fh:
                    fh.write(str(os.getpid()))
            except OSError as e:
                with contextlib.suppress(OSError):
                    os.write(report_fd, f"joining {f}: {e.strerror or e}\n".encode())

    return join


def _read_reports(fd: int) -> list[str]:
    """What the child's ``join`` wrote: it ran before exec, and the spawn returns only after exec."""
    os.set_blocking(fd, False)
    data = b""
    with contextlib.suppress(BlockingIOError, OSError):
        while chunk := os.read(fd, 4096):
            data += chunk
    return [line for line in data.decode(errors="replace").splitlines() if line]


async def launch(
    c: Container,
    isolation: Isolation,
    holder_pid: int,
    clock_ns: Callable[[], int],
    cgroup_procs: list[str] | None = None,
) -> None:
    """Start ``c``'s command; on failure mark it EXITED/StartError and raise ``ContainerStartError``."""
    argv = c.argv
    if not argv:
        _mark_exited(c, clock_ns(), START_ERROR_EXIT, "StartError", "no command specified")
        raise ContainerStartError("no command specified")
    path_env = c.env.get("PATH", procs.DEFAULT_PATH)
    if c.rootfs:
        found = rootfs.find_executable(c.rootfs, argv[0], path_env) is not None
    else:
        exe = argv[0] if "/" in argv[0] else shutil.which(argv[0], path=path_env)
        found = exe is not None and os.access(exe, os.X_OK)
    if not found:
        msg = f'exec: "{argv[0]}": executable file not found in $PATH'
        _mark_exited(c, clock_ns(), START_ERROR_EXIT, "StartError", msg)
        raise ContainerStartError(msg)
    if not (rootfs.is_dir(c.rootfs, c.working_dir) if c.rootfs else os.path.isdir(c.working_dir)):
        msg = f"chdir to cwd ({c.working_dir!r}) set in config.json failed: no such file or directory"
        _mark_exited(c, clock_ns(), START_ERROR_EXIT, "StartError", msg)
        raise ContainerStartError(msg)
    if c.log_path:
        c.log = LogWriter(c.log_path, clock_ns)
    out = asyncio.subprocess.PIPE if c.log else asyncio.subprocess.DEVNULL
    ready_r = ready_w = -1
    report_r, report_w = os.pipe() if cgroup_procs else (-1, -1)
    spec = mounts.spec(c.config.mounts) if c.config.mounts else ""
    if c.rootfs:
        if isolation.namespaced:
            ready_r, ready_w = os.pipe()
        argv = rootfs.enter_argv(
            isolation.namespaced, c.rootfs, c.state_dir, c.working_dir, argv, ready_w, mounts_spec=spec
        )
    elif (c.resolv_conf or spec) and isolation.namespaced:
        ready_r, ready_w = os.pipe()
        argv = rootfs.bind_resolv_argv(c.resolv_conf, argv, ready_w, mounts_spec=spec)
    try:
        proc = await asyncio.create_subprocess_exec(
            *isolation.container_argv(holder_pid, argv, mounts.needs_slave(c.config.mounts)),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            env=c.env,
            cwd=c.host_cwd,
            start_new_session=True,
            preexec_fn=_preexec(cgroup_procs or [], report_w),
            pass_fds=(ready_w,) if ready_w >= 0 else (),
        )
    except OSError as e:
        _mark_exited(c, clock_ns(), START_ERROR_EXIT, "StartError", str(e))
        if report_r >= 0:
            os.close(report_r)
        raise ContainerStartError(str(e)) from e
    finally:
        if ready_w >= 0:
            os.close(ready_w)
        if report_w >= 0:
            os.close(report_w)
    if report_r >= 0:
        c.cgroup_errors += _read_reports(report_r)
        os.close(report_r)
    if ready_r >= 0:
        # Until the root is mounted an exec would see the host: wait for "ready" (or EOF on failure,
        # which the container's log then explains).
        try:
            await asyncio.to_thread(os.read, ready_r, 64)
        finally:
            os.close(ready_r)
    c.process = proc
    c.started_at = clock_ns()
    c.state = api_pb2.CONTAINER_RUNNING
    c.init_pid = proc.pid
    if isolation.namespaced:
        c.init_pid = await procs.first_child(proc.pid) or proc.pid
    c.waiter = asyncio.create_task(_wait(c, clock_ns), name=f"container-{c.id[:12]}")


async def _wait(c: Container, clock_ns: Callable[[], int]) -> None:
    proc = c.process
    assert proc is not None
    pumps: list[asyncio.Task[None]] = []
    if c.log is not None and proc.stdout is not None and proc.stderr is not None:
        pumps = [
            asyncio.create_task(c.log.pump("stdout", proc.stdout)),
            asyncio.create_task(c.log.pump("stderr", proc.stderr)),
        ]
    await proc.wait()
    # Anything the command left behind in its group (daemonised children) goes with it, which also
    # closes the pipes they might hold open.
    procs.killpg(proc.pid, signal.SIGKILL)
    if pumps:
        _done, pending = await asyncio.wait(pumps, timeout=PUMP_DRAIN_TIMEOUT)
        for task in pending:
            task.cancel()
    code = procs.exit_code(proc.returncode if proc.returncode is not None else -signal.SIGKILL)
    if c.log is not None:
        c.log.close()
    _mark_exited(c, clock_ns(), code, "Completed" if code == 0 else "Error")


async def stop(c: Container, grace_seconds: float) -> None:
    """SIGTERM to the container's PID 1, SIGKILL to its group after ``grace_seconds``. Idempotent."""
    proc = c.process
    if proc is None or c.state != api_pb2.CONTAINER_RUNNING:
        return
    if grace_seconds > 0:
        procs.kill(c.init_pid or proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(c.exited.wait(), grace_seconds)
            return
        except TimeoutError:
            pass
    procs.killpg(proc.pid, signal.SIGKILL)
    procs.kill(c.init_pid, signal.SIGKILL)
    await c.exited.wait()
