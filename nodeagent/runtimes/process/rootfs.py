"""Running a container inside its image's root filesystem (images imported from OCI layouts).

Role: ``prepare(state_dir, hostname)`` writes the per-container files CRI runtimes provide
(``hosts``, ``hostname``, ``resolv.conf``); ``enter_argv`` wraps a command so that it runs chrooted
into the image's root; ``exec_argv_suffix`` does the same for exec into a running container.

In the namespaced isolation modes the wrapper runs as PID 1 of the container's fresh mount
namespace (``unshare --mount`` makes it private, so nothing leaks to the host): it mounts an overlay
(the image root read-only below, ``<state>/upper`` above) on ``<state>/merged`` so each container
writes its own layer (if overlay is refused, it falls back to a bind mount of the shared root and
says so on stderr), mounts ``/proc``, a small ``/dev`` (a tmpfs with null, zero, full, random,
urandom and tty bound from the host), the three files over ``/etc``, and then
``unshare --root --wd`` chroots and execs the command, keeping the PID. In ``plain`` mode (no mount
namespace) the command is only chrooted into the image root itself, shared and without
``/proc``; that needs root, and the runtime refuses the container otherwise.

Invariants: argv builders are pure (table-testable); paths inside the image are resolved with
``oci_layout.resolve_in`` so a symlink in an image never points a check at the host.
"""

from __future__ import annotations

import os
import shutil

from cluster.machinery.files import private_dir
from nodeagent.runtimes.process.oci_layout import resolve_in

# bash, since dash cannot redirect fds above 9. $1 image root, $2 state dir, $3 working dir, $4 the fd
# to report "ready" on, then the command.
ENTER_SCRIPT = r"""
set -e
lower=$1 state=$2 wd=$3 fd=$4
shift 4
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


def prepare(state_dir: str, hostname: str, resolv_conf: str = "/etc/resolv.conf") -> None:
    """Write ``hosts``, ``hostname`` and ``resolv.conf`` (the host's copy) into ``state_dir``.

    ``state_dir`` and its parents are private; the three files are 0644 like the kubelet's, since
    any user inside the container reads them (bind-mounted, so the 0700 parents do not matter).
    """
    private_dir(state_dir)
    with open(os.path.join(state_dir, "hosts"), "w") as f:
        f.write(hosts_file(hostname))
    with open(os.path.join(state_dir, "hostname"), "w") as f:
        f.write(hostname + "\n")
    try:
        shutil.copyfile(resolv_conf, os.path.join(state_dir, "resolv.conf"))
    except OSError:
        open(os.path.join(state_dir, "resolv.conf"), "w").close()


def enter_argv(
    namespaced: bool, rootfs: str, state_dir: str, working_dir: str, cmd: list[str], ready_fd: int = -1
) -> list[str]:
    """``cmd`` run chrooted into ``rootfs`` (see the module docstring for both modes).

    Namespaced: the wrapper writes ``ready`` to ``ready_fd`` (which it inherits and then closes) once
    the root is mounted, so the caller can wait for it before an exec may enter the root; the fd
    closes without ``ready`` when setting up fails."""
    if namespaced:
        args = [rootfs, state_dir, working_dir, str(ready_fd)]
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
