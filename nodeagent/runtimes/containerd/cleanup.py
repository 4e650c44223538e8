"""Host state a containerd instance leaves outside its root directory, and its careful removal.

Role: record what exists before containerd starts (`HostSnapshot.take`) and, after it stopped, remove
only what this instance created (`cleanup`).

What lands outside root_dir, and the rule for each (never touch what other processes own):
- shim processes (`containerd-shim-runc-v2 ... -address <our socket>`): killed when their command line
  names OUR socket; nobody else's shim carries that address.
- shim sockets in /run/containerd/s: removed only if created after our start AND no process listens
  on them any more (checked in /proc/net/unix); /run/containerd/s and /run/containerd are removed only
  if they did not exist before and are empty.
- libcni cache /var/lib/cni/results/<network>-*: only files of our network name (`raykube-<bridge>`);
  the directories only if we created them and they are empty.
- the bridge: deleted when it did not exist before our start (the name is ours by parameter).
- iptables `nat` chains CNI-HOSTPORT-* (portmap): flushed/deleted only if they did not exist before our
  start and hold no per-pod rules (a `-j CNI-DN-...` jump means a live pod of someone).
- net.ipv4.ip_forward (set by the bridge plugin's isGateway): set back to 0 only if it was 0 before.
- mounts under root_dir (rootfs overlays, sandbox shm) left by killed shims: unmounted deepest first.
Network namespaces (/var/run/netns/cni-*) are removed by containerd itself on RemovePodSandbox; the
supervisor removes all pods through CRI before stopping, so none should be left; /var/run/netns itself
is removed only if it did not exist before and is empty.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
from collections.abc import Callable
from dataclasses import dataclass

from netplugins.cni.portmap import HOSTPORT_CHAINS, nat_chains, remove_hostport_chains

log = logging.getLogger(__name__)

SHIM_DIR = "/run/containerd/s"
RUN_DIR = "/run/containerd"
NETNS_DIR = "/var/run/netns"
CNI_CACHE = "/var/lib/cni"
CNI_RESULTS = "/var/lib/cni/results"
IP_FORWARD = "/proc/sys/net/ipv4/ip_forward"


def _run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(cmd), capture_output=True, text=True, check=False)


def _listdir(path: str) -> frozenset[str]:
    try:
        return frozenset(os.listdir(path))
    except OSError:
        return frozenset()


def link_exists(name: str) -> bool:
    return os.path.exists(f"/sys/class/net/{name}")


def _read_ip_forward() -> str:
    try:
        with open(IP_FORWARD) as f:
            return f.read().strip()
    except OSError:
        return ""


@dataclass(frozen=True, slots=True)
class HostSnapshot:
    """What existed before our containerd started."""

    run_dir_existed: bool
    netns_dir_existed: bool
    shim_sockets: frozenset[str]
    cni_cache_existed: bool
    results_existed: bool
    bridge_existed: bool
    hostport_chains: frozenset[str]
    ip_forward: str

    @classmethod
    def take(cls, bridge: str) -> HostSnapshot:
        return cls(
            run_dir_existed=os.path.isdir(RUN_DIR),
            netns_dir_existed=os.path.isdir(NETNS_DIR),
            shim_sockets=_listdir(SHIM_DIR),
            cni_cache_existed=os.path.isdir(CNI_CACHE),
            results_existed=os.path.isdir(CNI_RESULTS),
            bridge_existed=link_exists(bridge),
            hostport_chains=nat_chains() & frozenset(HOSTPORT_CHAINS),
            ip_forward=_read_ip_forward(),
        )


def shim_pids(socket_path: str) -> list[int]:
    """PIDs of containerd shims started by the containerd listening on `socket_path`."""
    pids: list[int] = []
    for entry in _listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv and b"containerd-shim" in argv[0] and socket_path.encode() in argv:
            pids.append(int(entry))
    return pids


def kill_shims(socket_path: str) -> int:
    """SIGKILL our shims (their containers die with them: runc's pdeathsig / the shim's kill on exit)."""
    n = 0
    for pid in shim_pids(socket_path):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
            n += 1
    return n


def _listening_unix_paths() -> frozenset[str]:
    try:
        with open("/proc/net/unix") as f:
            lines = f.read().splitlines()[1:]
    except OSError:
        return frozenset()
    paths = set()
    for line in lines:
        parts = line.split()
        if len(parts) >= 8:
            paths.add(parts[7].lstrip("@"))
    return frozenset(paths)


def unmount_under(root_dir: str) -> int:
    """Lazily unmount every mount point below `root_dir`, deepest first. Returns how many."""
    root = os.path.realpath(root_dir).rstrip("/") + "/"
    points: list[str] = []
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                mp = line.split()[4].replace("\\040", " ")
                if mp.startswith(root):
                    points.append(mp)
    except OSError:
        return 0
    n = 0
    for mp in sorted(set(points), key=len, reverse=True):
        if _run("umount", "-l", mp).returncode == 0:
            n += 1
    return n


def cleanup(
    before: HostSnapshot,
    root_dir: str,
    socket_path: str,
    network_name: str,
    bridge: str,
    own_network: bool = True,
) -> None:
    """Remove what our containerd left outside root_dir (see the module docstring). Idempotent.

    Callers must have stopped containerd first; every step logs and continues on failure. With
    ``own_network=False`` (a raykube network plugin served the pods through the CNI shim) the bridge,
    the hostPort chains and ip_forward are the plugin's and are left alone.
    """
    steps: list[tuple[str, Callable[[], object]]] = [
        ("shims", lambda: kill_shims(socket_path)),
        ("mounts", lambda: unmount_under(root_dir)),
        ("shim sockets", lambda: _remove_shim_sockets(before)),
        ("cni cache", lambda: _remove_cni_cache(before, network_name)),
    ]
    if own_network:
        steps += [
            ("bridge", lambda: None if before.bridge_existed else _delete_link(bridge)),
            ("hostport chains", lambda: remove_hostport_chains(before.hostport_chains)),
            ("ip_forward", lambda: _restore_ip_forward(before.ip_forward)),
        ]
    for name, step in steps:
        try:
            step()
        except Exception:
            log.exception("containerd cleanup step %s failed; continuing", name)


def _remove_shim_sockets(before: HostSnapshot) -> None:
    listening = _listening_unix_paths()
    for name in _listdir(SHIM_DIR) - before.shim_sockets:
        path = os.path.join(SHIM_DIR, name)
        if path not in listening:
            with contextlib.suppress(OSError):
                os.unlink(path)
    if not before.netns_dir_existed:
        with contextlib.suppress(OSError):
            os.rmdir(NETNS_DIR)  # containerd creates it; only removed when empty
    if not before.run_dir_existed:
        for d in (SHIM_DIR, RUN_DIR):
            with contextlib.suppress(OSError):
                os.rmdir(d)  # only succeeds when empty


def _remove_cni_cache(before: HostSnapshot, network_name: str) -> None:
    prefix = network_name + "-"
    for name in _listdir(CNI_RESULTS):
        if name.startswith(prefix):
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(CNI_RESULTS, name))
    if not before.results_existed:
        with contextlib.suppress(OSError):
            os.rmdir(CNI_RESULTS)
    if not before.cni_cache_existed:
        with contextlib.suppress(OSError):
            os.rmdir(CNI_CACHE)


def _delete_link(name: str) -> None:
    if link_exists(name):
        _run("ip", "link", "del", name)


def _restore_ip_forward(value: str) -> None:
    if value == "0" and _read_ip_forward() == "1":
        with open(IP_FORWARD, "w") as f:
            f.write("0\n")
