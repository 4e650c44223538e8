"""The few mount operations the volume manager does, as thin wrappers over the syscalls (as root).

``mount(2)`` through libc (so a bind source can be ``/proc/self/fd/N``, the kubelet's trick for a
subPath opened without following symlinks: the kernel binds exactly the opened inode, and nothing
can swap a symlink in between the check and the mount). Mount points come from
``cluster.machinery.mountinfo``. ``remove_tree`` never deletes through a mount: it unmounts everything below
first and refuses when something stays mounted. ``open_beneath`` is subpath_linux.go's safe open.
"""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
import stat

from cluster.machinery import mountinfo

MS_RDONLY = 1
MS_BIND = 4096
MNT_DETACH = 2

_libc = ctypes.CDLL(None, use_errno=True)


class EscapeError(Exception):
    """A subPath that leaves its volume (through a symlink), or a path component that is a symlink."""


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def mount(source: str, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    _check(
        _libc.mount(
            source.encode(), target.encode(), fstype.encode() if fstype else None,
            ctypes.c_ulong(flags), data.encode() if data else None,
        ),
        f"mount {source} on {target}",
    )  # fmt: skip


def unmount(target: str) -> None:
    """Unmount ``target``; a busy mount is detached (it goes once the last user lets go)."""
    if _libc.umount2(target.encode(), 0) == 0:
        return
    err = ctypes.get_errno()
    if err == errno.EINVAL:  # not a mount point (any more)
        return
    _check(_libc.umount2(target.encode(), MNT_DETACH), f"umount {target}")


def mount_tmpfs(target: str, size: int | None = None) -> None:
    options = "mode=0755" + (f",size={size}" if size else "")
    mount("tmpfs", target, "tmpfs", 0, options)


def bind_fd(fd: int, target: str) -> None:
    mount(f"/proc/self/fd/{fd}", target, None, MS_BIND)


def unmount_under(root: str) -> None:
    for _ in range(8):  # stacked mounts come off one layer per pass
        found = mountinfo.mount_points_under(root)
        if not found:
            return
        for m in found:
            unmount(m)


def remove_tree(root: str) -> None:
    """Unmount everything below ``root``, then delete it; refuses (OSError) while a mount remains, so a
    bind-mounted host directory is never emptied."""
    if not os.path.lexists(root):
        return
    unmount_under(root)
    left = mountinfo.mount_points_under(root)
    if left:
        raise OSError(errno.EBUSY, f"still mounted, not removing {root}: {', '.join(left)}")
    shutil.rmtree(root)


def open_beneath(base: str, rel: str, *, create: bool) -> int:
    """An ``O_PATH`` fd of ``base/rel`` opened one component at a time without following symlinks.

    The caller has already checked that ``rel`` resolves inside ``base``; this closes the race where a
    component is replaced by a symlink afterwards. Missing components are made as directories (0755)
    when ``create`` (the kubelet makes a missing subPath). Raises ``EscapeError`` for a symlink.
    """
    flags = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(base, flags | os.O_DIRECTORY)
    try:
        for part in [p for p in rel.split("/") if p and p != "."]:
            try:
                child = os.open(part, flags, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                os.mkdir(part, 0o755, dir_fd=fd)
                child = os.open(part, flags | os.O_DIRECTORY, dir_fd=fd)
            if stat.S_ISLNK(os.fstat(child).st_mode):
                os.close(child)
                raise EscapeError(f"{part} is a symlink")
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd
