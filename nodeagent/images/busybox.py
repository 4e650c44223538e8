"""The two images every node has offline: `busybox` and the pod sandbox (`pause`) image.

Role: describe both as `ImageSpec`s built from the host's static busybox (Debian's busybox-static puts
it at /bin/busybox) and write their OCI layout tarballs into a directory.

Names (the node agent and the containerd plugin use these constants, nothing else):
- `BUSYBOX_IMAGE` = `docker.io/library/busybox:latest`, so a pod's `image: busybox` (normalised the
  way Kubernetes/containerd do) resolves without a registry.
- `PAUSE_IMAGE` = `registry.k8s.io/pause:3.9`, the tag kubelet 1.28+ uses for the sandbox. It is OUR
  busybox-based image under that name, not the upstream one: it runs a shell that sleeps forever,
  reaps children (PID 1 of the sandbox) and exits 0 on SIGTERM/SIGINT.

Invariants: the root filesystem has /bin/busybox plus one relative symlink per applet in /bin,
/etc/passwd and /etc/group (root and nobody), /root, /tmp (1777), /var/tmp and empty /proc, /sys, /dev
mount points; no /etc/hosts or /etc/resolv.conf (the CRI runtime provides those). Output is
deterministic for a given busybox binary (see `oci.py`).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence

from cluster.machinery.files import private_dir
from nodeagent.images.oci import BuiltImage, Entry, ImageSpec, write_layout_tar

BUSYBOX_IMAGE = "docker.io/library/busybox:latest"
PAUSE_IMAGE = "registry.k8s.io/pause:3.9"
DEFAULT_BUSYBOX = "/bin/busybox"
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# PID 1 of a sandbox: exit on TERM/INT; `wait` returns on any signal and reaps every child (busybox ash
# waits with waitpid(-1)), so zombies re-parented to it do not pile up.
PAUSE_SCRIPT = 'trap "exit 0" TERM INT; while :; do sleep 2147483647 & wait; done'

PASSWD = b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
GROUP = b"root:x:0:\nnogroup:x:65534:\n"


class BusyboxMissing(RuntimeError):
    """The static busybox binary is not there (install Debian's busybox-static)."""


def applets(busybox: str = DEFAULT_BUSYBOX) -> list[str]:
    """Applet names of `busybox` (`busybox --list`), sorted; raises BusyboxMissing when absent."""
    if not os.access(busybox, os.X_OK):
        raise BusyboxMissing(f"{busybox} not found or not executable; install busybox-static")
    out = subprocess.run([busybox, "--list"], check=True, capture_output=True, text=True).stdout
    return sorted({a for a in out.split() if a and "/" not in a and a != "busybox"})


def rootfs_entries(busybox_binary: bytes, applet_names: Sequence[str]) -> tuple[Entry, ...]:
    """The busybox root filesystem as layer entries (pure: the caller reads the binary)."""
    entries = [
        Entry("bin", "dir"),
        Entry("bin/busybox", "file", 0o755, busybox_binary),
        Entry("dev", "dir"),
        Entry("etc", "dir"),
        Entry("etc/group", "file", 0o644, GROUP),
        Entry("etc/passwd", "file", 0o644, PASSWD),
        Entry("proc", "dir", 0o555),
        Entry("root", "dir", 0o700),
        Entry("sys", "dir", 0o555),
        Entry("tmp", "dir", 0o1777),
        Entry("usr", "dir"),
        Entry("var", "dir"),
        Entry("var/tmp", "dir", 0o1777),
    ]
    entries += [Entry(f"bin/{a}", "symlink", 0o777, target="busybox") for a in applet_names]
    return tuple(entries)


def busybox_spec(busybox_binary: bytes, applet_names: Sequence[str]) -> ImageSpec:
    return ImageSpec(
        name=BUSYBOX_IMAGE,
        entries=rootfs_entries(busybox_binary, applet_names),
        cmd=("sh",),
        env=(PATH_ENV,),
    )


def pause_spec(busybox_binary: bytes, applet_names: Sequence[str]) -> ImageSpec:
    return ImageSpec(
        name=PAUSE_IMAGE,
        entries=rootfs_entries(busybox_binary, applet_names),
        entrypoint=("/bin/sh", "-c", PAUSE_SCRIPT),
        env=(PATH_ENV,),
        working_dir="/",
    )


def write_images(out_dir: str, busybox: str = DEFAULT_BUSYBOX) -> dict[str, tuple[str, BuiltImage]]:
    """Write `busybox.oci.tar` and `pause.oci.tar` into `out_dir` (created if missing).

    Returns {image name: (tarball path, built image)}. Idempotent: rewriting yields identical files.
    """
    names = applets(busybox)
    with open(busybox, "rb") as f:
        binary = f.read()
    private_dir(out_dir)
    result: dict[str, tuple[str, BuiltImage]] = {}
    for spec, filename in (
        (busybox_spec(binary, names), "busybox.oci.tar"),
        (pause_spec(binary, names), "pause.oci.tar"),
    ):
        path = os.path.join(out_dir, filename)
        result[spec.name] = (path, write_layout_tar(spec, path))
    return result
