"""Small process helpers shared by sandboxes, containers and exec: signalling and /proc lookups.

Invariants: every process the runtime starts is a session (and process group) leader, so a
process group kill reaches everything it spawned that did not leave the group on purpose; killing an
already-gone group is not an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from pathlib import Path

from cluster.machinery.files import private_dir, write_private

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def killpg(pgid: int, sig: int = signal.SIGKILL) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def kill(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (Linux ``/proc/<pid>/task/*/children``)."""
    out: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                out += [int(x) for x in (task / "children").read_text().split()]
    except OSError:
        return []
    return out


def start_time(pid: int) -> int | None:
    """The process start time in clock ticks since boot, or None when ``pid`` is gone.

    Used with the pid to recognise our own process after a restart (pids are reused).
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


async def first_child(pid: int, attempts: int = 200) -> int | None:
    """Wait for ``pid`` to fork its first child (the ``unshare --fork`` case) and return it.

    The fork happens within a few ms of exec; yield to the loop between looks, give up after
    ``attempts`` looks (about 1 s) or when ``pid`` exits.
    """
    for _ in range(attempts):
        kids = children(pid)
        if kids:
            return kids[0]
        if start_time(pid) is None:
            return None
        await asyncio.sleep(0.005)
    return None


def exit_code(returncode: int) -> int:
    """Shell convention, as containerd reports: killed by signal N -> 128 + N."""
    return 128 - returncode if returncode < 0 else returncode


class PidLedger:
    """Process groups the runtime started, recorded on disk so a restarted runtime can kill orphans.

    One file per group leader, ``<dir>/<pid>``, holding the leader's start time; ``reap`` kills only
    groups whose leader still has that start time (so a reused pid is left alone).
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.dir = Path(directory)
        private_dir(self.dir)

    def add(self, pid: int) -> None:
        st = start_time(pid)
        if st is not None:
            write_private(self.dir / str(pid), str(st))

    def discard(self, pid: int) -> None:
        (self.dir / str(pid)).unlink(missing_ok=True)

    def reap(self) -> list[int]:
        """Kill the recorded groups still alive; forget all records; return the pids killed."""
        killed = []
        for f in self.dir.iterdir():
            with contextlib.suppress(ValueError, OSError):
                pid, recorded = int(f.name), int(f.read_text())
                if start_time(pid) == recorded:
                    killpg(pid, signal.SIGKILL)
                    kill(pid, signal.SIGKILL)
                    killed.append(pid)
            f.unlink(missing_ok=True)
        return killed
