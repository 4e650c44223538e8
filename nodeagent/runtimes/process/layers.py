"""Applying OCI image layers to a root filesystem without ever acting outside it.

Role: ``unpack_layers(image, dest)`` applies an imported image's layers, lowest first, into ``dest``,
as a container runtime's snapshotter would; ``add_mount_points(dest, ...)`` then makes the entries
the runtime mounts over.

Invariants:
- Nothing outside ``dest`` is created, changed or removed, whatever the layers hold. Every operation
  goes through directory fds opened with ``O_NOFOLLOW`` and ``*at`` calls that do not follow the last
  component (``lstat``, ``unlinkat``, ``linkat`` without ``AT_SYMLINK_FOLLOW``, ``fchmod`` on an fd
  of the entry just made), so a link in the tree is never the way out; the final directory-metadata
  pass reopens each directory the same way and skips one that a later layer replaced by a link.
- Semantics are containerd's ``archive`` package (``applyNaive``): an entry name is cleaned and
  scoped to the root (``..`` stops there, a leading ``/`` is dropped); symlinks met on the way to an
  entry's parent are followed, but only inside the root (an absolute target restarts at the root);
  an existing entry is replaced by the layer's unless both are directories, judged by ``lstat``, so a
  symlink where the layer has a directory is replaced by a real directory (the layer wins, as in
  overlayfs); a hard link's target is resolved inside the root without following its last component.
- Whiteouts follow the OCI layer spec: ``.wh.<name>`` deletes ``<name>`` of its own directory and
  a name that is not an entry of that directory (``.wh.``, ``.wh..``, ``.wh...``) makes the layer
  invalid (``LayoutError``), as containerd's "invalid whiteout name"; ``.wh..wh..opq`` empties its
  directory of lower layers' content before the layer's own entries apply, and only a real directory
  (a link there is left for the layer to replace); other ``.wh..wh.`` names are aufs metadata, skipped.
- Owners are kept and device nodes created only as root; otherwise device nodes are skipped with a
  warning (images rarely carry them: the runtime provides ``/dev``). FIFOs are made either way.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import stat
import tarfile
from dataclasses import dataclass

from nodeagent.runtimes.process.oci_layout import OPAQUE, WHITEOUT, LayoutError, LayoutImage, clean_name

log = logging.getLogger(__name__)

_MAX_HOPS = 40  # as the kernel's MAXSYMLINKS
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def _lstat(name: str, dir_fd: int) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _open_dir(root_fd: int, rel: str, create: bool) -> tuple[int, tuple[str, ...]] | None:
    """An fd of directory ``rel`` resolved inside the root, and its link-free path from the root.

    Symlinks on the way are followed only inside the root (``..`` stops at it, an absolute target
    restarts at it); each step is an ``O_NOFOLLOW`` open relative to the previous directory, so no
    path string is ever resolved by the kernel across a link. Missing directories are made (0755)
    when ``create``, else the answer is None. The caller closes the fd.
    """
    stack = [os.dup(root_fd)]
    names: list[str] = []
    todo = [p for p in rel.split("/") if p]
    hops = 0
    try:
        while todo:
            part = todo.pop(0)
            if part == ".":
                continue
            if part == "..":
                if names:
                    os.close(stack.pop())
                    names.pop()
                continue
            st = _lstat(part, stack[-1])
            if st is None:
                if not create:
                    return None
                os.mkdir(part, 0o755, dir_fd=stack[-1])
                st = os.stat(part, dir_fd=stack[-1], follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode):
                hops += 1
                if hops > _MAX_HOPS:
                    raise LayoutError(f"too many symlinks resolving {rel!r}")
                target = os.readlink(part, dir_fd=stack[-1])
                if target.startswith("/"):
                    while names:
                        os.close(stack.pop())
                        names.pop()
                todo[:0] = [p for p in target.split("/") if p]
                continue
            if not stat.S_ISDIR(st.st_mode):
                raise LayoutError(
                    f"cannot unpack under {rel!r}: {'/'.join((*names, part))} is not a directory"
                )
            stack.append(os.open(part, _DIR_FLAGS, dir_fd=stack[-1]))
            names.append(part)
        return stack.pop(), tuple(names)
    finally:
        for fd in stack:
            os.close(fd)


def _open_exact(root_fd: int, names: tuple[str, ...]) -> int | None:
    """An fd of the directory at exactly ``names`` (no link followed anywhere), or None."""
    fd = os.dup(root_fd)
    for part in names:
        try:
            nfd = os.open(part, _DIR_FLAGS, dir_fd=fd)
        except OSError:  # gone, or replaced by a link or a file by a later layer
            os.close(fd)
            return None
        os.close(fd)
        fd = nfd
    return fd


def _remove_at(dir_fd: int, name: str) -> None:
    """Remove ``name`` of ``dir_fd`` (a tree without following links); nothing if it is missing."""
    st = _lstat(name, dir_fd)
    if st is None:
        return
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(name, dir_fd=dir_fd)  # fd-based walk: links inside are removed, not followed
    else:
        os.unlink(name, dir_fd=dir_fd)


def _whiteout_target(member: str, base: str) -> str:
    """The name a ``.wh.<name>`` entry deletes; refuses a name that is not an entry of its directory."""
    name = base[len(WHITEOUT) :]
    if name in ("", ".", "..") or "/" in name or "\0" in name:
        raise LayoutError(f"invalid whiteout {member!r}: it must name an entry of its own directory")
    return name


@dataclass(frozen=True, slots=True)
class _DirMeta:
    mode: int
    mtime: int


class _Layer:
    """One layer applied to the root behind ``root_fd``; ``dirs`` collects directory metadata."""

    def __init__(self, root_fd: int, as_root: bool, dirs: dict[tuple[str, ...], _DirMeta]) -> None:
        self.root_fd = root_fd
        self.as_root = as_root
        self.dirs = dirs

    def apply(self, tar: tarfile.TarFile) -> None:
        members = list(tar)
        # Opaque markers clear lower content before anything of this layer lands in the directory.
        for m in members:
            rel = clean_name(m.name)
            if os.path.basename(rel) == OPAQUE:
                self._clear(os.path.dirname(rel))
        for m in members:
            rel = clean_name(m.name)
            if not rel:
                continue  # the root itself: its mode and owner are the runtime's
            parent, base = os.path.split(rel)
            if base == OPAQUE or base.startswith(WHITEOUT + WHITEOUT):
                continue  # aufs metadata (.wh..wh.plnk, ...) is not content, as Docker skips it
            if base.startswith(WHITEOUT):
                name = _whiteout_target(m.name, base)
                found = _open_dir(self.root_fd, parent, create=False)
                if found is not None:
                    try:
                        _remove_at(found[0], name)
                    finally:
                        os.close(found[0])
                continue
            found = _open_dir(self.root_fd, parent, create=True)
            assert found is not None
            fd, names = found
            try:
                self._entry(tar, m, fd, base, names)
            finally:
                os.close(fd)

    def _clear(self, rel: str) -> None:
        """Empty directory ``rel`` of lower content; a link there is the layer's to replace, not follow."""
        parent, base = os.path.split(rel)
        found = _open_dir(self.root_fd, parent, create=False)
        if found is None:
            return
        try:
            if base:
                st = _lstat(base, found[0])
                if st is None or not stat.S_ISDIR(st.st_mode):
                    return
                dfd = os.open(base, _DIR_FLAGS, dir_fd=found[0])
            else:
                dfd = os.dup(found[0])
            try:
                for child in os.listdir(dfd):
                    _remove_at(dfd, child)
            finally:
                os.close(dfd)
        finally:
            os.close(found[0])

    def _entry(
        self, tar: tarfile.TarFile, m: tarfile.TarInfo, fd: int, base: str, names: tuple[str, ...]
    ) -> None:
        mode = m.mode & 0o7777
        st = _lstat(base, fd)
        if m.isdir():
            if st is not None and not stat.S_ISDIR(st.st_mode):
                _remove_at(fd, base)  # a link (even to a directory) or a file: the layer's directory wins
                st = None
            if st is None:
                os.mkdir(base, 0o755, dir_fd=fd)
            self._own(fd, base, m)
            self.dirs[(*names, base)] = _DirMeta(mode, int(m.mtime))  # applied last, see unpack_layers
            return
        if st is not None:
            _remove_at(fd, base)
        if m.isreg():
            src = tar.extractfile(m)
            assert src is not None
            out = os.fdopen(os.open(base, _FILE_FLAGS, 0o600, dir_fd=fd), "wb")
            with src, out:
                shutil.copyfileobj(src, out)
                out.flush()
                if self.as_root:
                    with contextlib.suppress(OSError):
                        os.fchown(out.fileno(), m.uid, m.gid)
                os.fchmod(out.fileno(), mode)  # after chown, which clears set-id bits
                os.utime(out.fileno(), (m.mtime, m.mtime))
            return
        if m.issym():
            os.symlink(m.linkname, base, dir_fd=fd)
        elif m.islnk():
            self._hardlink(m, fd, base)
            return  # the link shares its target's inode and metadata
        elif m.ischr() or m.isblk():
            if not self.as_root:
                log.warning("skipping device node %s: creating devices needs root", m.name)
                return
            kind = stat.S_IFCHR if m.ischr() else stat.S_IFBLK
            os.mknod(base, kind | mode, os.makedev(m.devmajor, m.devminor), dir_fd=fd)
            self._chmod_node(fd, base, mode)
        elif m.isfifo():
            os.mknod(base, stat.S_IFIFO | mode, dir_fd=fd)
            self._chmod_node(fd, base, mode)
        else:
            log.warning("skipping %s: unsupported tar entry type %r", m.name, m.type)
            return
        self._own(fd, base, m)
        os.utime(base, (m.mtime, m.mtime), dir_fd=fd, follow_symlinks=False)

    def _hardlink(self, m: tarfile.TarInfo, fd: int, base: str) -> None:
        target = clean_name(m.linkname)
        tparent, tbase = os.path.split(target)
        found = _open_dir(self.root_fd, tparent, create=False) if tbase else None
        if found is None:
            raise LayoutError(f"hard link {m.name!r}: target {m.linkname!r} is not in the image")
        try:
            # linkat without AT_SYMLINK_FOLLOW: a link to a symlink links the symlink, never its target.
            os.link(tbase, base, src_dir_fd=found[0], dst_dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            raise LayoutError(f"hard link {m.name!r}: target {m.linkname!r} is not in the image") from None
        finally:
            os.close(found[0])

    def _own(self, fd: int, base: str, m: tarfile.TarInfo) -> None:
        if self.as_root:
            with contextlib.suppress(OSError):
                os.chown(base, m.uid, m.gid, dir_fd=fd, follow_symlinks=False)

    @staticmethod
    def _chmod_node(fd: int, base: str, mode: int) -> None:
        """Exact mode of a node just made (mknod applies the umask); kept as made where unsupported."""
        with contextlib.suppress(NotImplementedError, OSError):
            os.chmod(base, mode, dir_fd=fd, follow_symlinks=False)


def unpack_layers(image: LayoutImage, dest: str, as_root: bool | None = None) -> None:
    """Apply ``image``'s layers, lowest first, into the (new, empty) directory ``dest``.

    ``as_root`` (default: running as root) keeps owners and creates device nodes; otherwise device
    nodes are skipped with a warning. Raises ``LayoutError`` for a layer that cannot be read or that
    tries to leave ``dest`` (a whiteout of ``.``/``..``, a hard link to outside the image); the
    caller removes ``dest`` then. Nothing outside ``dest`` is created, changed or removed.
    """
    os.makedirs(dest, exist_ok=True)
    root = os.geteuid() == 0 if as_root is None else as_root
    dirs: dict[tuple[str, ...], _DirMeta] = {}
    root_fd = os.open(dest, _DIR_FLAGS)
    try:
        for path, _media in image.layers:
            try:
                with tarfile.open(path, "r:*") as tar:
                    _Layer(root_fd, root, dirs).apply(tar)
            except (tarfile.TarError, OSError) as e:
                raise LayoutError(f"cannot unpack layer {os.path.basename(path)}: {e}") from None
        # Directory modes and times last: a read-only directory (0555 /proc) must not block writing
        # into it, and files made inside would change its mtime. Children before parents.
        for names in sorted(dirs, reverse=True):
            fd = _open_exact(root_fd, names)
            if fd is None:
                continue
            try:
                os.fchmod(fd, dirs[names].mode)
                os.utime(fd, (dirs[names].mtime, dirs[names].mtime))
            finally:
                os.close(fd)
    finally:
        os.close(root_fd)


def add_mount_points(dest: str, dirs: tuple[str, ...], files: tuple[str, ...]) -> None:
    """Make the directories and files the runtime mounts over in the unpacked root ``dest``.

    A mount point must be a real entry of the root, since the mount follows links on the host's
    side: a file mount point that is a link or missing becomes an empty file (the runtime binds over
    it, its content never shows); a directory mount point that is a link or a file is refused
    (``LayoutError``) rather than replaced, since the image's content there would be lost.
    """
    root_fd = os.open(dest, _DIR_FLAGS)
    try:
        for d in dirs:
            st = _lstat(d, root_fd)
            if st is None:
                os.mkdir(d, 0o755, dir_fd=root_fd)
            elif not stat.S_ISDIR(st.st_mode):
                raise LayoutError(f"/{d} of the image is not a directory; the runtime mounts over it")
        for f in files:
            parent, base = os.path.split(f)
            fd = _open_exact(root_fd, tuple(p for p in parent.split("/") if p))
            if fd is None:
                raise LayoutError(f"/{parent} of the image is not a directory; the runtime mounts over /{f}")
            try:
                st = _lstat(base, fd)
                if st is not None and not stat.S_ISREG(st.st_mode):
                    _remove_at(fd, base)
                    st = None
                if st is None:
                    os.close(os.open(base, _FILE_FLAGS, 0o644, dir_fd=fd))
            finally:
                os.close(fd)
    finally:
        os.close(root_fd)
