"""CRI ``ContainerConfig.mounts`` for the process runtime: bind mounts in the container's own mount
namespace.

Role: ``check`` refuses, at CreateContainer, what this runtime cannot do (any mount in ``plain`` mode,
which has no mount namespace; ``Bidirectional`` propagation, whose mounts would never reach the host
from our slave namespace; a host-filesystem container whose target is missing, since we never create
directories on the host's root filesystem for a container, with one exception: the kubelet-managed
``/var/run/secrets/kubernetes.io/`` tree, where every pod's ServiceAccount token is mounted, is made
(empty) on the host once, so pods of record images get their token as in Kubernetes; a file over a
directory or the reverse);
``spec`` orders the mounts for the wrapper (shallowest container path first, as containerd does, so a
mount inside another lands on top of it); ``BIND_SCRIPT`` is the Python the wrapper runs as the
container's first process, after the image root is mounted and before the chroot (or, on the host's
filesystem, before the exec): for each mount it resolves the container path inside the root without
ever leaving it (the same rules as ``oci_layout.resolve_in``, but on the live tree so an earlier
mount counts), creates the mount point in the container's own layer (a directory, or an empty file
when the host path is a file) when allowed, opens it with ``O_PATH|O_NOFOLLOW`` and binds onto that
fd through ``/proc/self/fd`` (so a symlink swapped in after the check is not followed), then
remounts read-only and sets the propagation.

Propagation: the namespace is private (``unshare --mount``) unless a mount asks for
``HostToContainer``; then the whole namespace is a slave of the host's (``needs_slave``), the
HostToContainer mounts stay slaves (``rslave``: host mounts below them appear in the container) and
the others are made private again. Nothing made inside ever propagates back to the host.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

from nodeagent.cri import api_pb2
from nodeagent.runtimes.process.isolation import Isolation
from nodeagent.runtimes.process.oci_layout import LayoutError, resolve_in

PRIVATE, SLAVE = "private", "slave"
# Made on the host when missing: the ServiceAccount admission plugin mounts every pod's token volume
# below it. The mount itself happens in the container's private mount namespace; the host directory
# stays an empty mount point.
KUBELET_MANAGED_DIR = "/var/run/secrets/kubernetes.io/"

# Run as `python -I -S -c BIND_SCRIPT ROOT CREATE SPEC` inside the container's mount namespace.
# ROOT: the container's root ("/" on the host's filesystem); CREATE "1": make missing mount points;
# SPEC: JSON list of [host_path, container_path, readonly, propagation].
BIND_SCRIPT = r"""
import ctypes, json, os, stat, sys
libc = ctypes.CDLL(None, use_errno=True)
MS_RDONLY, MS_REMOUNT, MS_BIND, MS_REC = 1, 32, 4096, 16384
MS_PRIVATE, MS_SLAVE = 1 << 18, 1 << 19

def fail(msg):
    sys.stderr.write("raykube: " + msg + "\n")
    sys.exit(1)

def mount(src, fd, flags, what):
    if libc.mount(src, ("/proc/self/fd/%d" % fd).encode(), None, flags, None) != 0:
        e = ctypes.get_errno()
        fail("%s: %s" % (what, os.strerror(e)))

def resolve(root, rel):
    done, todo, hops = [], [p for p in rel.split("/") if p], 0
    while todo:
        part = todo.pop(0)
        if part == ".":
            continue
        if part == "..":
            if done:
                done.pop()
            continue
        here = os.path.join(root, *done, part)
        if os.path.islink(here):
            hops += 1
            if hops > 40:
                fail("too many symlinks resolving %r" % rel)
            target = os.readlink(here)
            if target.startswith("/"):
                done = []
            todo = [p for p in target.split("/") if p] + todo
            continue
        done.append(part)
    return os.path.join(root, *done)

root, create, spec = sys.argv[1], sys.argv[2] == "1", json.loads(sys.argv[3])
for host, cpath, readonly, propagation in spec:
    what = "mount %s at %s" % (host, cpath)
    try:
        host_dir = stat.S_ISDIR(os.stat(host).st_mode)
    except OSError as e:
        fail("%s: host path: %s" % (what, e.strerror))
    target = resolve(root, cpath)
    if not os.path.lexists(target):
        if not create:
            fail("%s: %s does not exist" % (what, cpath))
        try:
            if host_dir:
                os.makedirs(target, exist_ok=True)
            else:
                os.makedirs(os.path.dirname(target), exist_ok=True)
                os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o644))
        except OSError as e:
            fail("%s: creating the mount point: %s" % (what, e.strerror))
    try:
        fd = os.open(target, os.O_PATH | os.O_NOFOLLOW)
    except OSError as e:
        fail("%s: %s" % (what, e.strerror))
    if stat.S_ISDIR(os.fstat(fd).st_mode) != host_dir:
        fail("%s: one is a directory and the other is not" % what)
    mount(host.encode(), fd, MS_BIND | MS_REC, what)
    os.close(fd)
    fd = os.open(target, os.O_PATH | os.O_NOFOLLOW)  # now the mount's root
    if readonly:  # keep the flags the kernel locks (nosuid, nodev, ...), or a user namespace says EPERM
        f = os.statvfs("/proc/self/fd/%d" % fd).f_flag
        keep = (f & (2 | 4 | 8 | 1024 | 2048)) | ((1 << 21) if f & 4096 else 0)
        mount(None, fd, MS_REMOUNT | MS_BIND | MS_RDONLY | keep, what + " read-only")
    mount(None, fd, (MS_SLAVE if propagation == "slave" else MS_PRIVATE) | MS_REC, what + " propagation")
    os.close(fd)
"""


class MountError(ValueError):
    """A mount this runtime cannot give the container; the message says what to do instead."""


def _propagation(m: api_pb2.Mount) -> str:
    return SLAVE if m.propagation == api_pb2.PROPAGATION_HOST_TO_CONTAINER else PRIVATE


def needs_slave(mounts: Sequence[api_pb2.Mount]) -> bool:
    """Whether the container's mount namespace must be a slave of the host's (HostToContainer)."""
    return any(_propagation(m) == SLAVE for m in mounts)


def check(mounts: Sequence[api_pb2.Mount], isolation: Isolation, image_rootfs: str) -> None:
    """Raise ``MountError`` for mounts this container cannot have (see the module docstring)."""
    if not mounts:
        return
    if not isolation.namespaced:
        paths = ", ".join(m.container_path for m in mounts)
        raise MountError(
            f"mounts need mount namespaces: isolation mode plain: {isolation.reason or 'configured'} "
            f"(container paths {paths}); run the node agent as root or where unprivileged user "
            "namespaces are allowed, or use the containerd runtime"
        )
    for m in mounts:
        if not m.container_path.startswith("/"):
            raise MountError(f"mount container path {m.container_path!r} is not absolute")
        if not m.host_path.startswith("/"):
            raise MountError(f"mount host path {m.host_path!r} (for {m.container_path}) is not absolute")
        if m.propagation == api_pb2.PROPAGATION_BIDIRECTIONAL:
            raise MountError(
                f"mount propagation Bidirectional (for {m.container_path}) is not supported by the process "
                "runtime: mounts made in the container would not reach the host; use HostToContainer or "
                "the containerd runtime"
            )
        host_dir = os.path.isdir(m.host_path)
        if image_rootfs:
            try:
                target = resolve_in(image_rootfs, m.container_path)
            except LayoutError as e:
                raise MountError(f"mount at {m.container_path}: {e}") from e
        else:
            target = m.container_path
            managed = os.path.normpath(target).startswith(KUBELET_MANAGED_DIR)  # no ".." out of it
            if managed and not os.path.lexists(target) and os.path.isdir(m.host_path):
                os.makedirs(os.path.normpath(target), exist_ok=True)
            if not os.path.lexists(target):
                raise MountError(
                    f"mount target {target} does not exist on the host's filesystem, and the process "
                    "runtime never creates directories on the host for a container: run the container "
                    "from an image (an OCI layout imported into the runtime) to mount at new paths"
                )
        if os.path.lexists(target) and os.path.exists(m.host_path) and os.path.isdir(target) != host_dir:
            kind = "a directory" if host_dir else "a file"
            raise MountError(
                f"mount {m.host_path} ({kind}) at {m.container_path}: the container path is "
                f"{'not ' if host_dir else ''}a directory; a volume and its mount point must be the same kind"
            )


def spec(mounts: Sequence[api_pb2.Mount]) -> str:
    """The wrapper's SPEC argument: mounts shallowest container path first (stable), as JSON."""
    ordered = sorted(mounts, key=lambda m: len([p for p in m.container_path.split("/") if p]))
    return json.dumps([[m.host_path, m.container_path, m.readonly, _propagation(m)] for m in ordered])


def bind_argv(python: str, root: str, create: bool, spec_json: str) -> list[str]:
    """The helper's argv (``python`` is the node's interpreter, run isolated and without site)."""
    return [python, "-I", "-S", "-c", BIND_SCRIPT, root, "1" if create else "0", spec_json]
