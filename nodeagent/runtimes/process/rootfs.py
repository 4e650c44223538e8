"""Running a container inside its image's root filesystem (images imported from OCI layouts).

Role: ``prepare(state_dir, hostname)`` writes the per-container files CRI runtimes provide
(``hosts``, ``hostname``, ``resolv.conf``: the pod's DNS config when the sandbox has one, else the
host's); ``enter_argv`` wraps a command so that it runs chrooted into the image's root;
``exec_argv_suffix`` does the same for exec into a running container. Containers on the host's
filesystem get the pod's resolv.conf too in the namespaced modes: ``bind_resolv_argv`` binds it over
``/etc/resolv.conf`` inside their private mount namespace (in ``plain`` mode they see the host's),
and their CRI mounts over paths that exist on the host (never created there).

In the namespaced isolation modes the wrapper runs as PID 1 of the container's fresh mount
namespace (``unshare --mount`` makes it private, so nothing leaks to the host): it mounts an overlay
(the image root read-only below, ``<state>/upper`` above) on ``<state>/merged`` so each container
writes its own layer (if overlay is refused, it falls back to a bind mount of the shared root and
says so on stderr), mounts ``/proc``, a small ``/dev`` (a tmpfs with null, zero, full, random,
urandom and tty bound from the host), the three files over ``/etc``, and then
``unshare --root --wd`` chroots and execs the command, keeping the PID. Just before the chroot, the
container's CRI mounts are bound below the merged root (``mounts.py``). In ``plain`` mode (no mount
namespace) the command is only chrooted into the image root itself, shared and without
``/proc``; that needs root, and the runtime refuses the container otherwise.

Invariants: argv builders are pure (table-testable); paths inside the image are resolved with
``oci_layout.resolve_in`` so a symlink in an image never points a check at the host.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Sequence

from cluster.machinery.files import private_dir
from nodeagent.runtimes.process import mounts
from nodeagent.runtimes.process.oci_layout import resolve_in

# bash, since dash cannot redirect fds above 9. $1 image root, $2 state dir, $3 working dir, $4 the fd
# to report "ready" on, $5 how many arguments after it are the mounts helper's argv (0: no mounts),
# those, then the command.
ENTER_SCRIPT = r"""
set -e
lower=$1 state=$2 wd=$3 fd=$4 n=$5
shift 5
binds=("${@:1:$n}")
shift "$n"
m=$state/merged
mkdir -p "$state/upper" "$state/work" "$m"
if ! mount -t overlay overlay -o "lowerdir=$lower,upperdir=$state/upper,workdir=$state/work" "$m" 2>/dev/null
then
    echo "raykube: overlay refused here; the container writes into the shared image root" >&2
    mount --bind "$lower" "$m"
fi
mount -t proc proc "$m/proc"
mount -t tmpfs -o nosuid,mode=755 tmpfs "$m/dev"
for d in null zero full random urandom tty; do
    touch "$m/dev/$d"
    mount --bind "/dev/$d" "$m/dev/$d"
done
mkdir "$m/dev/shm" "$m/dev/pts"
ln -s /proc/self/fd "$m/dev/fd"
ln -s /proc/self/fd/0 "$m/dev/stdin"
ln -s /proc/self/fd/1 "$m/dev/stdout"
ln -s /proc/self/fd/2 "$m/dev/stderr"
for f in hosts hostname resolv.conf; do
    mount --bind "$state/$f" "$m/etc/$f"
done
if [ "$n" -gt 0 ]; then "${binds[@]}"; fi
echo ready >&"$fd"
eval "exec $fd>&-"
exec unshare --root="$m" --wd="$wd" -- "$@"
"""

HOSTS = (
    "# Kubernetes-managed hosts file.\n"
    "127.0.0.1\tlocalhost\n"
    "::1\tlocalhost ip6-localhost ip6-loopback\n"
    "fe00::0\tip6-localnet\n"
    "fe00::0\tip6-mcastprefix\n"
    "fe00::1\tip6-allnodes\n"
    "fe00::2\tip6-allrouters\n"
)


def hosts_file(hostname: str, ip: str = "127.0.0.1") -> str:
    """The pod's ``/etc/hosts``: localhost lines, then the pod's own name, as the kubelet writes it."""
    return HOSTS + (f"{ip}\t{hostname}\n" if hostname else "")


def resolv_conf_text(servers: Sequence[str], searches: Sequence[str], options: Sequence[str]) -> str:
    """A resolv.conf from the CRI's ``DNSConfig`` fields."""
    lines = [f"nameserver {s}" for s in servers]
    if searches:
        lines.append("search " + " ".join(searches))
    if options:
        lines.append("options " + " ".join(options))
    return "\n".join(lines) + "\n"


def write_resolv_conf(state_dir: str, text: str) -> str:
    """``text`` as ``<state_dir>/resolv.conf`` (0644 in a private directory); returns its path."""
    private_dir(state_dir)
    path = os.path.join(state_dir, "resolv.conf")
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, 0o644)
    return path


def prepare(
    state_dir: str, hostname: str, resolv_conf: str = "/etc/resolv.conf", resolv_text: str | None = None
) -> None:
    """Write ``hosts``, ``hostname`` and ``resolv.conf`` into ``state_dir``: ``resolv_text`` (the
    pod's DNS config) or else a copy of the host's ``resolv_conf``.

    ``state_dir`` and its parents are private; the three files are 0644 like the kubelet's, since
    any user inside the container reads them (bind-mounted, so the 0700 parents do not matter).
    """
    private_dir(state_dir)
    with open(os.path.join(state_dir, "hosts"), "w") as f:
        f.write(hosts_file(hostname))
    with open(os.path.join(state_dir, "hostname"), "w") as f:
        f.write(hostname + "\n")
    if resolv_text is not None:
        write_resolv_conf(state_dir, resolv_text)
        return
    try:
        shutil.copyfile(resolv_conf, os.path.join(state_dir, "resolv.conf"))
    except OSError:
        open(os.path.join(state_dir, "resolv.conf"), "w").close()


# $1 the pod's resolv.conf (empty: none), $2 the fd to report "ready" on, $3 how many arguments after
# it are the mounts helper's argv, those, then the command. Runs as the container's first process,
# inside its private mount namespace (unshare --mount), so the host's files are untouched. bash: dash
# cannot redirect fds above 9.
BIND_RESOLV_SCRIPT = r"""
if [ -n "$1" ] && ! mount --bind "$1" /etc/resolv.conf 2>/dev/null; then
    echo "raykube: could not bind the pod's resolv.conf over /etc/resolv.conf; the host's applies" >&2
fi
fd=$2 n=$3
shift 3
if [ "$n" -gt 0 ]; then "${@:1:$n}" || exit 1; fi
shift "$n"
echo ready >&"$fd"
eval "exec $fd>&-"
exec "$@"
"""


def bind_resolv_argv(
    resolv_conf: str, cmd: list[str], ready_fd: int, mounts_spec: str = "", python: str = sys.executable
) -> list[str]:
    """``cmd`` (a host-filesystem container, namespaced modes) with the pod's resolv.conf (when
    given) bound over ``/etc/resolv.conf`` and the container's mounts (``mounts.spec``) bound over
    their existing host paths first (none is created); the shell says ``ready`` on ``ready_fd`` once
    bound (so an exec does not race the mounts) and execs ``cmd``, which keeps the PID."""
    binds = mounts.bind_argv(python, "/", False, mounts_spec) if mounts_spec else []
    head = [resolv_conf, str(ready_fd), str(len(binds)), *binds]
    return ["/bin/bash", "-c", BIND_RESOLV_SCRIPT, "raykube-dns", *head, *cmd]


def enter_argv(
    namespaced: bool,
    rootfs: str,
    state_dir: str,
    working_dir: str,
    cmd: list[str],
    ready_fd: int = -1,
    mounts_spec: str = "",
    python: str = sys.executable,
) -> list[str]:
    """``cmd`` run chrooted into ``rootfs`` (see the module docstring for both modes).

    Namespaced: the wrapper writes ``ready`` to ``ready_fd`` (which it inherits and then closes) once
    the root is mounted, and the container's mounts (``mounts.spec``, created as mount points in the
    container's own layer) bound, so the caller can wait for it before an exec may enter the root;
    the fd closes without ``ready`` when setting up fails."""
    if namespaced:
        merged = os.path.join(state_dir, "merged")
        binds = mounts.bind_argv(python, merged, True, mounts_spec) if mounts_spec else []
        args = [rootfs, state_dir, working_dir, str(ready_fd), str(len(binds)), *binds]
        return ["/bin/bash", "-c", ENTER_SCRIPT, "raykube-rootfs", *args, *cmd]
    return ["unshare", f"--root={rootfs}", f"--wd={working_dir}", "--", *cmd]


def exec_argv_suffix(namespaced: bool, rootfs: str, state_dir: str, working_dir: str) -> list[str]:
    """What follows ``nsenter ... --`` (or stands alone in plain mode) to exec inside the root."""
    root = os.path.join(state_dir, "merged") if namespaced else rootfs
    return ["unshare", f"--root={root}", f"--wd={working_dir}", "--"]


def find_executable(rootfs: str, name: str, path_env: str) -> str | None:
    """``name`` looked up like execvp inside ``rootfs``; the in-image path, or None."""
    candidates = [name] if "/" in name else [os.path.join(d or ".", name) for d in path_env.split(":")]
    for cand in candidates:
        host = resolve_in(rootfs, cand)
        if os.path.isfile(host) and os.access(host, os.X_OK):
            return cand
    return None


def is_dir(rootfs: str, path: str) -> bool:
    return os.path.isdir(resolve_in(rootfs, path))
