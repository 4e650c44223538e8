"""How the process runtime isolates pods on this machine, probed once, and the argv that follow.

Three modes, best first:

* ``root``: ``unshare --net --ipc --uts`` for the sandbox holder; containers enter it with
  ``nsenter --net --ipc --uts`` and get their own PID and mount namespaces via
  ``unshare --pid --fork --kill-child --mount --mount-proc``.
* ``userns``: the same, inside an unprivileged user namespace (``unshare --user --map-root-user``);
  containers join with ``nsenter --user --preserve-credentials``.
* ``plain``: no namespaces; sandboxes are idle holder processes and containers plain subprocesses
  that share the host's network.

``Isolation`` is a frozen value; ``probe()`` runs the real commands (each ~10 ms) and never raises.
Builders return argv lists only, so they are table-testable without spawning anything.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from typing import Literal

Mode = Literal["root", "userns", "plain"]

# The holder: bring loopback up, set the hostname (when it owns a UTS namespace), then wait forever.
# SIOCSIFFLAGS on "lo" with IFF_UP|IFF_LOOPBACK|IFF_RUNNING avoids needing iproute2.
HOLDER_SCRIPT = r"""
import fcntl, signal, socket, struct, sys
if sys.argv[1] == "1":
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        fcntl.ioctl(s, 0x8914, struct.pack("16sH14s", b"lo", 0x1 | 0x8 | 0x40, b""))
    except OSError:
        pass  # host network: loopback is already up and may not be ours to touch
    s.close()
    if sys.argv[2]:
        socket.sethostname(sys.argv[2])
sys.stdout.write("ready\n")
sys.stdout.flush()
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
while True:
    signal.pause()
"""


@dataclass(frozen=True, slots=True)
class Isolation:
    """What the machine allows. ``reason`` explains a downgrade (shown in Status)."""

    mode: Mode
    reason: str = ""

    @property
    def namespaced(self) -> bool:
        return self.mode != "plain"

    def holder_argv(self, hostname: str, host_network: bool = False) -> list[str]:
        """The sandbox holder process; it prints ``ready`` once namespaces are set up.

        ``host_network`` (hostNetwork pods) keeps the node's network namespace but still gives the
        pod its own IPC and UTS namespaces.
        """
        py = [sys.executable, "-I", "-S", "-c", HOLDER_SCRIPT, "1" if self.namespaced else "0", hostname]
        net = [] if host_network else ["--net"]
        if self.mode == "root":
            return ["unshare", *net, "--ipc", "--uts", "--", *py]
        if self.mode == "userns":
            return ["unshare", "--user", "--map-root-user", *net, "--ipc", "--uts", "--", *py]
        return py

    def _join(self, holder_pid: int) -> list[str]:
        user = ["--user", "--preserve-credentials"] if self.mode == "userns" else []
        return ["nsenter", "-t", str(holder_pid), *user, "--net", "--ipc", "--uts", "--"]

    def container_argv(self, holder_pid: int, cmd: list[str], slave_mounts: bool = False) -> list[str]:
        """A container's main process: joined to the pod, in its own PID and mount namespaces (a
        slave of the host's with ``slave_mounts``, for HostToContainer mounts; else private)."""
        if not self.namespaced:
            return list(cmd)
        propagation = ["--propagation", "slave"] if slave_mounts else []
        own = ["unshare", "--pid", "--fork", "--kill-child", "--mount", *propagation, "--mount-proc", "--"]
        return [*self._join(holder_pid), *own, *cmd]

    def exec_argv(self, init_pid: int, cmd: list[str]) -> list[str]:
        """A command inside a running container (all of its namespaces, via its PID 1)."""
        if not self.namespaced:
            return list(cmd)
        user = ["--user", "--preserve-credentials"] if self.mode == "userns" else []
        nss = ["--net", "--ipc", "--uts", "--pid", "--mount"]
        return ["nsenter", "-t", str(init_pid), *user, *nss, "--", *cmd]


def _works(argv: list[str]) -> bool:
    try:
        r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return r.returncode == 0


def probe(force: Mode | None = None) -> Isolation:
    """Find the best mode; ``force`` (or env ``RAYKUBE_PROCESS_ISOLATION``) pins one for tests."""
    force = force or os.environ.get("RAYKUBE_PROCESS_ISOLATION") or None  # type: ignore[assignment]
    if force == "plain":
        return Isolation("plain", "forced by configuration")
    missing = [b for b in ("unshare", "nsenter") if shutil.which(b) is None]
    if missing:
        return Isolation("plain", f"{', '.join(missing)} not found")
    container = ["unshare", "--pid", "--fork", "--kill-child", "--mount", "--mount-proc", "true"]
    root_ns = ["unshare", "--net", "--ipc", "--uts", *container]
    if os.geteuid() == 0 and force in (None, "root") and _works(root_ns):
        return Isolation("root")
    user_ns = ["unshare", "--user", "--map-root-user", "--net", "--ipc", "--uts", *container]
    if force in (None, "userns") and _works(user_ns):
        return Isolation("userns")
    return Isolation("plain", "unshare of net/ipc/uts/pid/mount namespaces is not permitted here")
