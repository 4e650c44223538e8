"""`ContainerdRuntime`: start, supervise and stop one Debian containerd serving the CRI on its own socket.

Role: the containerd runtime plugin's engine, Ray-free (the plugin actor and `python -m
nodeagent.runtimes.containerd` are thin wrappers). The node agent speaks CRI to `socket_path`.

Lifecycle and invariants:
- `start()` checks prerequisites (root, binaries) and raises `ContainerdUnavailable` when they are
  missing, so the caller can fall back to the `process` runtime. It writes config.toml and the CNI
  conflist under `root_dir`, kills a stale containerd left by an earlier run of the SAME config, starts
  `containerd --config` (output appended to `<root_dir>/containerd.log`), waits until `ctr plugins ls`
  shows the CRI plugin `ok` (else `ContainerdStartError` with the log tail), and imports the busybox and
  pause images into the `k8s.io` namespace. Returns the socket path. Not re-entrant: one start, one stop.
- While running, a supervisor task restarts containerd when it exits on its own, waiting
  `Backoff.delay(n)` between attempts (reset after a long enough healthy run). Containers survive a
  containerd restart (their shims keep running and containerd reconnects).
- `stop()` removes every pod sandbox through CRI (so CNI DEL runs and network namespaces, veths and
  hostPort rules go away), SIGTERMs containerd (SIGKILL after a grace period), then runs `cleanup.cleanup`
  for what lives outside root_dir. Idempotent; never raises for cleanup failures (they are logged).
- `healthy()` is true while the process runs and its last readiness check passed.
- Pod network: with `network_socket` (the node's raykube network plugin), containerd's conflist is
  one `raykube-cni` entry naming that socket and its bin dir is `<root>/cni/bin` (the shim launcher,
  written for this Python, and a link to `loopback`); the plugin owns the bridge, hostPort rules and
  ip_forward, so cleanup leaves them alone. Without it, containerd's own bridge conflist as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import sys
import time
from dataclasses import dataclass
from typing import IO

from cluster.machinery.files import open_private, private_dir, write_private
from netplugins.cni.shim import launcher_script
from nodeagent.cri.client import CRIClient
from nodeagent.images import PAUSE_IMAGE, write_images
from nodeagent.images.busybox import DEFAULT_BUSYBOX
from nodeagent.runtimes.containerd import cleanup as host
from nodeagent.runtimes.containerd.config import (
    CNI_BIN_DIR,
    CRI_NAMESPACE,
    DEFAULT_BRIDGE,
    DEFAULT_POD_CIDR,
    SHIM_BIN_LINKS,
    SHIM_TYPE,
    ContainerdPaths,
    NetworkSpec,
    conflist_filename,
    render_config,
    render_conflist,
    render_shim_conflist,
)

log = logging.getLogger(__name__)

REQUIRED_BINARIES = ("containerd", "ctr", "runc", "containerd-shim-runc-v2", "iptables", "ip")
REQUIRED_CNI_PLUGINS = ("bridge", "host-local", "portmap", "loopback")


class ContainerdError(RuntimeError):
    """Base of the containerd plugin's errors."""


class ContainerdUnavailable(ContainerdError):
    """The machine cannot run this plugin (not root, or binaries missing); use the `process` runtime."""


class ContainerdStartError(ContainerdError):
    """containerd was started but did not become ready (the message carries the log tail)."""


@dataclass(frozen=True, slots=True)
class Backoff:
    """Restart delays: `initial` doubling up to `cap`; the count resets after `reset_after` s healthy."""

    initial: float = 1.0
    cap: float = 30.0
    reset_after: float = 60.0

    def delay(self, failures: int) -> float:
        return float(min(self.cap, self.initial * (2 ** max(0, failures))))


def missing_prerequisites(busybox: str = DEFAULT_BUSYBOX) -> list[str]:
    """Human-readable reasons this machine cannot run the plugin; empty when it can."""
    problems = []
    if os.geteuid() != 0:
        problems.append(f"needs root (euid is {os.geteuid()})")
    problems += [f"binary {b!r} not on PATH" for b in REQUIRED_BINARIES if shutil.which(b) is None]
    problems += [
        f"CNI plugin {p!r} missing in {CNI_BIN_DIR}"
        for p in REQUIRED_CNI_PLUGINS
        if not os.access(os.path.join(CNI_BIN_DIR, p), os.X_OK)
    ]
    if not os.access(busybox, os.X_OK):
        problems.append(f"{busybox} missing (install busybox-static)")
    return problems


def cri_plugin_ok(plugins_ls: str) -> bool:
    """Whether `ctr plugins ls` output lists the CRI gRPC plugin with status ok."""
    for line in plugins_ls.splitlines():
        cols = line.split()
        if len(cols) >= 3 and cols[0] == "io.containerd.grpc.v1" and cols[1] == "cri":
            return cols[-1] == "ok"
    return False


def write_shim_bin_dir(bin_dir: str, python: str = sys.executable) -> None:
    """Fill a CNI bin dir for the raykube network plugin: the `raykube-cni` launcher (this Python
    running netplugins.cni.shim) and links to the reference plugins containerd runs itself."""
    private_dir(bin_dir)
    shim = os.path.join(bin_dir, SHIM_TYPE)
    tmp = shim + ".tmp"
    with open(tmp, "w") as f:
        f.write(launcher_script(python))
    os.chmod(tmp, 0o700)
    os.replace(tmp, shim)
    for name in SHIM_BIN_LINKS:
        link = os.path.join(bin_dir, name)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(link)
        os.symlink(os.path.join(CNI_BIN_DIR, name), link)


class ContainerdRuntime:
    """One supervised containerd with its own root, state, socket and pod network. See module doc."""

    def __init__(
        self,
        root_dir: str,
        *,
        pod_cidr: str = DEFAULT_POD_CIDR,
        bridge: str = DEFAULT_BRIDGE,
        sandbox_image: str = PAUSE_IMAGE,
        busybox: str = DEFAULT_BUSYBOX,
        start_timeout: float = 30.0,
        stop_timeout: float = 10.0,
        backoff: Backoff | None = None,
        network_socket: str | None = None,
    ) -> None:
        self.paths = ContainerdPaths(os.path.abspath(root_dir))
        self.network_socket = network_socket
        self.network = NetworkSpec(pod_cidr=pod_cidr, bridge=bridge)
        self.sandbox_image = sandbox_image
        self.busybox = busybox
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.backoff = backoff or Backoff()
        self.restarts = 0
        self._proc: asyncio.subprocess.Process | None = None
        self._log: IO[bytes] | None = None
        self._ready = False
        self._ready_event = asyncio.Event()
        self._stopping = False
        self._stopped = asyncio.Event()
        self._supervisor: asyncio.Task[None] | None = None
        self._started_at = 0.0
        self._snapshot: host.HostSnapshot | None = None

    @property
    def socket_path(self) -> str:
        return self.paths.socket

    @property
    def endpoint(self) -> str:
        """The gRPC target for the CRI clients, `unix://<socket>`."""
        return "unix://" + self.paths.socket

    def healthy(self) -> bool:
        return self._ready and self._proc is not None and self._proc.returncode is None

    async def wait_healthy(self, timeout: float) -> None:
        """Wait until containerd is (again) ready, e.g. after the supervisor restarted it.

        Raises TimeoutError after `timeout` seconds. Returns at once while healthy.
        """
        async with asyncio.timeout(timeout):
            while not self.healthy():
                if self._ready_event.is_set():
                    await asyncio.sleep(0)  # the exit is reaped but the supervisor has not run yet
                else:
                    await self._ready_event.wait()

    async def start(self) -> str:
        """Start containerd and wait until its CRI plugin is ready; returns the socket path."""
        if self._proc is not None:
            raise ContainerdError("already started")
        problems = missing_prerequisites(self.busybox)
        if problems:
            raise ContainerdUnavailable("containerd runtime unavailable: " + "; ".join(problems))
        await asyncio.to_thread(self._prepare)
        self._snapshot = await asyncio.to_thread(host.HostSnapshot.take, self.network.bridge)
        try:
            await self._launch()
            await self._wait_ready()
            await self._import_images()
        except BaseException:
            await self.stop(remove_pods=False)
            raise
        self._supervisor = asyncio.create_task(self._supervise(), name="containerd-supervisor")
        return self.paths.socket

    def _prepare(self) -> None:
        p = self.paths
        # containerd's own trees are 0711 as containerd makes them (a container of another user reaches
        # its bundle); what we write is private to the user, like the rest of the data directory.
        for d in (p.root, p.state, p.opt, p.runc_root):
            os.makedirs(d, mode=0o711, exist_ok=True)
        for d in (p.root_dir, p.cni_conf_dir, p.ipam_data_dir):
            private_dir(d)
        if self.network_socket:
            bin_dir = p.cni_bin_dir
            write_shim_bin_dir(bin_dir)
            netconf = render_shim_conflist(self.network, self.network_socket)
        else:
            bin_dir, netconf = CNI_BIN_DIR, render_conflist(self.network, p)
        write_private(p.config, render_config(p, sandbox_image=self.sandbox_image, cni_bin_dir=bin_dir))
        conflist = os.path.join(p.cni_conf_dir, conflist_filename(self.network))
        write_private(conflist, json.dumps(netconf, indent=2))
        self._kill_stale()
        for stale in (p.socket, p.ttrpc_socket):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(stale)
        write_images(p.images_dir, self.busybox)

    def _kill_stale(self) -> None:
        """Kill a containerd still running with OUR config file (an earlier run that was not stopped)."""
        marker = self.paths.config.encode()
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    argv = f.read().split(b"\0")
            except OSError:
                continue
            if argv and os.path.basename(argv[0]) == b"containerd" and marker in argv:
                log.warning("killing stale containerd pid %s using %s", entry, self.paths.config)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(entry), signal.SIGKILL)

    async def _launch(self) -> None:
        if self._log is None:
            self._log = os.fdopen(open_private(self.paths.log, os.O_WRONLY | os.O_APPEND), "ab")
        self._ready = False
        self._proc = await asyncio.create_subprocess_exec(
            "containerd",
            "--config",
            self.paths.config,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=self._log,
            stderr=self._log,
            start_new_session=True,  # our terminal's Ctrl-C must not reach it; stop() decides
        )
        self._started_at = time.monotonic()

    async def _ctr(self, *args: str, namespace: str = CRI_NAMESPACE) -> tuple[int, str]:
        proc = await asyncio.create_subprocess_exec(
            "ctr",
            "--address",
            self.paths.socket,
            "--namespace",
            namespace,
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await proc.communicate()
        return proc.returncode or 0, out.decode(errors="replace")

    def _log_tail(self, n: int = 20) -> str:
        try:
            with open(self.paths.log, "rb") as f:
                return b"\n".join(f.read().splitlines()[-n:]).decode(errors="replace")
        except OSError:
            return "(no log)"

    async def _wait_ready(self) -> None:
        """Poll until the CRI plugin reports ok. containerd has no readiness notification to await."""
        assert self._proc is not None
        deadline = time.monotonic() + self.start_timeout
        while True:
            if self._proc.returncode is not None:
                raise ContainerdStartError(
                    f"containerd exited with {self._proc.returncode} while starting:\n{self._log_tail()}"
                )
            if os.path.exists(self.paths.socket):
                rc, out = await self._ctr("plugins", "ls")
                if rc == 0 and cri_plugin_ok(out):
                    self._ready = True
                    self._ready_event.set()
                    return
            if time.monotonic() > deadline:
                raise ContainerdStartError(
                    f"containerd CRI not ready after {self.start_timeout}s:\n{self._log_tail()}"
                )
            await asyncio.sleep(0.05)

    async def _import_images(self) -> None:
        for filename in ("pause.oci.tar", "busybox.oci.tar"):
            rc, out = await self._ctr("images", "import", os.path.join(self.paths.images_dir, filename))
            if rc != 0:
                raise ContainerdStartError(f"ctr images import {filename} failed: {out.strip()}")

    async def _supervise(self) -> None:
        failures = 0
        while not self._stopping:
            proc = self._proc
            assert proc is not None
            rc = await proc.wait()
            if self._stopping:
                return
            self._ready = False
            self._ready_event.clear()
            if time.monotonic() - self._started_at >= self.backoff.reset_after:
                failures = 0
            delay = self.backoff.delay(failures)
            failures += 1
            log.warning("containerd exited with %s; restarting in %.1fs", rc, delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopped.wait(), delay)
            if self._stopping:
                return
            try:
                await self._launch()
                await self._wait_ready()
                self.restarts += 1
                log.info("containerd restarted (%d restarts so far)", self.restarts)
            except ContainerdError:
                log.exception("containerd restart failed; will retry")
                if self._proc is not None and self._proc.returncode is None:
                    self._proc.kill()

    async def remove_all_pods(self, timeout: float = 30.0) -> int:
        """Stop and remove every pod sandbox through CRI; returns how many were removed."""
        removed = 0
        async with CRIClient(self.paths.socket, timeout=timeout) as cri:
            for sandbox in await cri.list_pod_sandbox():
                await cri.stop_pod_sandbox(sandbox.id)
                await cri.remove_pod_sandbox(sandbox.id)
                removed += 1
        return removed

    async def stop(self, remove_pods: bool = True) -> None:
        """Remove pods (optional), stop containerd, clean up the host. Idempotent."""
        self._stopping = True
        self._stopped.set()
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
            self._supervisor = None
        proc = self._proc
        if remove_pods and proc is not None and proc.returncode is None and self._ready:
            try:
                n = await self.remove_all_pods()
                log.info("removed %d pod sandboxes before stopping containerd", n)
            except Exception:
                log.exception("removing pods through CRI failed; shims are killed instead")
        self._ready = False
        self._ready_event.clear()
        if proc is not None and proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), self.stop_timeout)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        if self._snapshot is not None:
            await asyncio.to_thread(
                host.cleanup,
                self._snapshot,
                self.paths.root_dir,
                self.paths.socket,
                self.network.name,
                self.network.bridge,
                own_network=not self.network_socket,
            )
        if self._log is not None:
            self._log.close()
            self._log = None
