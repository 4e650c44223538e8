"""The mount and loop-device commands the hostpath driver runs, and /proc/self/mountinfo.

Every change goes through the util-linux tools (``mount``, ``umount``, ``losetup``) and e2fsprogs
(``mkfs.ext4``, ``e2fsck``, ``resize2fs``), run without a shell. Whether a path is a mount point is
read from mountinfo (``cluster.machinery.mountinfo``): ``os.path.ismount`` misses bind mounts of a
directory on the same filesystem, which is exactly what staging and publishing make.

Loop filesystems are mounted with ``mount -o loop``, whose loop devices detach themselves when the
last mount of the filesystem goes (autoclear), so a crash between mount steps leaks no device.
"""

from __future__ import annotations

import asyncio
import logging
import os

from cluster.machinery import mountinfo
from cluster.machinery.mountinfo import MountEntry

log = logging.getLogger(__name__)


class MountError(RuntimeError):
    """A command failed; the message has the command and its stderr."""


def top_mount(path: str) -> MountEntry | None:
    """The topmost mount at ``path`` (resolved), or None when it is not a mount point."""
    real = os.path.realpath(path)
    found = None
    for entry in mountinfo.table():
        if entry.mount_point == real:
            found = entry
    return found


async def run(*argv: str) -> str:
    """Run a command, return its stdout; raise MountError with its stderr when it fails."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    if proc.returncode != 0:
        detail = (err or out).decode(errors="replace").strip()
        raise MountError(f"{' '.join(argv)} failed (exit {proc.returncode}): {detail}")
    return out.decode(errors="replace")


async def bind(source: str, target: str, *, readonly: bool = False) -> None:
    """Bind-mount ``source`` at ``target``; read-only takes a second remount (a bind mount ignores
    ``ro`` on its first mount)."""
    await run("mount", "--bind", source, target)
    if readonly:
        try:
            await run("mount", "-o", "remount,bind,ro", target)
        except MountError:
            await unmount(target)
            raise


async def unmount(path: str) -> None:
    """Unmount every mount stacked at ``path``; a busy one is detached lazily so stop never leaves
    a mount behind in our namespace (its users keep it until they let go)."""
    while mountinfo.is_mount_point(path):
        try:
            await run("umount", path)
        except MountError as err:
            log.warning("hostpath: %s; detaching it lazily", err)
            await run("umount", "-l", path)


async def make_image(image: str, size: int) -> None:
    """A sparse file of ``size`` bytes formatted ext4 with no blocks reserved for root (the volume's
    size is what its users get)."""
    with open(image, "wb") as f:
        f.truncate(size)
    await run("mkfs.ext4", "-q", "-F", "-m", "0", image)


async def mount_image(image: str, target: str) -> None:
    await run("mount", "-o", "loop", "-t", "ext4", image, target)


async def grow_image_offline(image: str, size: int) -> None:
    """Grow an unmounted image and its filesystem to ``size`` bytes."""
    with open(image, "r+b") as f:
        f.truncate(size)
    await run("e2fsck", "-f", "-p", image)
    await run("resize2fs", image)


def loop_devices(image: str) -> list[str]:
    """The loop devices backed by ``image``, read from sysfs (``losetup -j`` was seen to crash
    while devices were being detached)."""
    real = os.path.realpath(image)
    found = []
    for entry in sorted(os.listdir("/sys/block")):
        if not entry.startswith("loop"):
            continue
        try:
            with open(
                f"/sys/block/{entry}/loop/backing_file", encoding="utf-8", errors="surrogateescape"
            ) as f:
                backing = f.read().rstrip("\n")
        except OSError:  # not attached, or gone meanwhile
            continue
        if backing == real:
            found.append(f"/dev/{entry}")
    return found


def held_elsewhere(device: str) -> list[int]:
    """Processes of other mount namespaces in which ``device`` is mounted (one per namespace): a
    container that still has a volume's filesystem, which therefore must not be grown offline."""
    try:
        rdev = os.stat(device).st_rdev
    except OSError:
        return []
    wanted = f"{os.major(rdev)}:{os.minor(rdev)}"
    own = os.stat("/proc/self/ns/mnt").st_ino
    seen, holders = {own}, []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            ns = os.stat(f"/proc/{name}/ns/mnt").st_ino
            if ns in seen:
                continue
            seen.add(ns)
            with open(f"/proc/{name}/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
                if any(line.split(" ", 3)[2] == wanted for line in f if line.count(" ") >= 3):
                    holders.append(int(name))
        except OSError:  # the process went away
            continue
    return holders


async def grow_online(image: str, size: int, device: str) -> None:
    """Grow the image of a mounted loop filesystem and the filesystem with it. resize2fs on a
    mounted ext4 needs CAP_SYS_RESOURCE; without it this raises MountError and the caller grows
    the filesystem offline instead."""
    with open(image, "r+b") as f:
        f.truncate(max(size, os.fstat(f.fileno()).st_size))
    await run("losetup", "-c", device)
    await run("resize2fs", device)


async def detach(device: str) -> None:
    await run("losetup", "-d", device)
