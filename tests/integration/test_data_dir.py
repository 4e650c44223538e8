"""A data directory after a real `raykube up`: private to its user, and one cluster per Ray namespace.

Run under the heavy lock (`flock /tmp/raykube-heavy.lock`): these tests stop and start Ray.
"""

from __future__ import annotations

import fnmatch
import os
import secrets
import shutil
import ssl
import stat
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from cluster.apiserver.proxy import KUBELET_CLIENT_CERT
from nodeagent.runtimes.containerd import missing_prerequisites
from tests.capabilities import require
from tests.integration.conftest import RAYKUBE, ray_stop

pytestmark = [pytest.mark.integration, pytest.mark.own_ray]

# Paths (relative to the data directory, fnmatch patterns: `*` also crosses `/`) whose modes are
# not ours to make private, with the reason. Everything else must have no group/other bits.
EXCEPTIONS = (
    (
        "nodes/*/runtime/images/rootfs/*/*",
        "an imported image's root filesystem keeps the image's modes: a container running as any user "
        "reads its programs and /etc through the overlay",
    ),
    (
        "nodes/*/runtime/containers/*/hosts",
        "a chrooted container's /etc/hosts, 0644 as the kubelet writes it: any user in the container "
        "reads it (bind-mounted, so the 0700 directories above do not matter)",
    ),
    ("nodes/*/runtime/containers/*/hostname", "the same, for /etc/hostname"),
    ("nodes/*/runtime/containers/*/resolv.conf", "the same, for /etc/resolv.conf"),
    (
        "nodes/*/runtime/containers/*/upper*",
        "a chrooted container's writable layer: its root directory's mode is the container's `/`",
    ),
    ("nodes/*/runtime/containers/*/work*", "overlayfs' work directory, made by the kernel"),
    ("nodes/*/runtime/containers/*/merged*", "the mounted container root: the image's modes"),
    (
        "nodes/*/network/state/ipam/*",
        "the CNI reference host-local plugin's reservations, with the modes it gives them; the ipam "
        "directory above them is 0700",
    ),
    (
        "ingress/nginx/nginx.pid",
        "nginx writes its pid file 0644 itself; the nginx prefix directory above it is 0700",
    ),
    ("ingress/nginx/logs/*", "nginx opens its logs with its own modes; logs/ and its parents are 0700"),
)
# With --runtime containerd, what containerd, runc and the CNI plugins create themselves.
CONTAINERD_EXCEPTIONS = (
    (
        "nodes/*/runtime/root/*",
        "containerd's root: content store, image snapshots (the images' modes), CRI sandbox /etc files; "
        "0711 directories as containerd makes them, so a container of another user reaches its bundle",
    ),
    ("nodes/*/runtime/root", "the same"),
    ("nodes/*/runtime/state*", "containerd's state directory (bundles, fifos), made by containerd"),
    ("nodes/*/runtime/opt*", "containerd's plugin directory, 0711 as containerd expects it"),
    ("nodes/*/runtime/runc*", "runc's state, made by runc"),
    ("nodes/*/runtime/containerd.sock*", "containerd's sockets, 0660 as containerd makes them"),
    ("nodes/*/runtime/cni/ipam/*", "the host-local IPAM plugin's leases, made by the plugin"),
    (
        "nodes/*/pods/*",
        "containerd creates a container's log folder and file itself (0755/0640, as under /var/log/pods)",
    ),
)


def loose_paths(root: Path, exceptions: tuple[tuple[str, str], ...] = EXCEPTIONS) -> list[str]:
    """Entries under ``root`` (itself included) with any group/other permission bit, as "mode path"."""
    found = []
    entries = [root]
    for dirpath, dirnames, filenames in os.walk(root):
        entries += [Path(dirpath) / name for name in (*dirnames, *filenames)]
    for path in entries:
        st = path.lstat()
        if stat.S_ISLNK(st.st_mode):
            continue  # a link's own mode means nothing; its target is checked where it lies
        rel = "." if path == root else str(path.relative_to(root))
        if any(fnmatch.fnmatch(rel, pattern) for pattern, _ in exceptions):
            continue
        if st.st_mode & 0o077:
            found.append(f"{stat.S_IMODE(st.st_mode):04o} {rel}")
    return found


def cli(*args: str, data_dir: Path, namespace: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    """`raykube ARGS --data-dir DATA_DIR` with RAYKUBE_NAMESPACE and the common umask 022."""
    env = dict(os.environ, RAYKUBE_NAMESPACE=namespace, RAY_USAGE_STATS_ENABLED="0", COLUMNS="200")
    env.pop("RAYKUBE_DATA_DIR", None)
    return subprocess.run(
        [*RAYKUBE, *args, "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
        preexec_fn=lambda: os.umask(0o022),  # what the report saw: 0644 files, 0755 directories
    )


def read_pod_log(data_dir: Path, pod: str, timeout: float = 60) -> str:
    """``pods/<pod>/log`` in ``default`` as the admin, retried until the mirror pod exists."""
    pki = data_dir / "pki"
    context = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    context.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
    server = yaml.safe_load((data_dir / "kubeconfig").read_text())["clusters"][0]["cluster"]["server"]
    deadline, last = time.monotonic() + timeout, ""
    while time.monotonic() < deadline:
        try:
            url = f"{server}/api/v1/namespaces/default/pods/{pod}/log"
            with urllib.request.urlopen(url, context=context, timeout=10) as reply:
                return str(reply.read().decode())
        except (urllib.error.URLError, OSError) as e:
            last = str(e)
        time.sleep(1)
    raise AssertionError(f"no log of pod {pod} within {timeout} s: {last}")


def ok(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, f"{proc.args} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


@pytest.mark.parametrize("runtime", ["process", "containerd"])
def test_nothing_under_the_data_dir_is_open_to_other_users(tmp_path: Path, runtime: str) -> None:
    if runtime == "containerd":
        problems = missing_prerequisites()
        require("containerd", f"containerd needs: {'; '.join(problems)}" if problems else None)
        # containerd's sockets live under the data dir: keep the path short (unix sockets: 108 bytes).
        tmp_path = Path(tempfile.mkdtemp(prefix="rk-modes-", dir="/tmp"))
    data_dir, namespace = tmp_path / "data", f"modes-{secrets.token_hex(4)}"
    manifests = data_dir / "manifests"
    manifests.mkdir(parents=True, mode=0o700)
    os.chmod(data_dir, 0o755)  # as an older raykube left it: `up` tightens the data directory itself
    marker = f"static-{secrets.token_hex(4)}"
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "modes", "namespace": "default"},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [
                {"name": "app", "image": "busybox", "command": ["sh", "-c", f"echo {marker}; sleep 300"]}
            ],
        },
    }
    manifest = manifests / "modes.yaml"
    manifest.write_text(yaml.safe_dump(pod))
    manifest.chmod(0o600)
    ray_stop()
    try:
        ok(
            cli(
                "up", "--port", "0", "--runtime", runtime, data_dir=data_dir, namespace=namespace, timeout=300
            )
        )
        # A static pod running gives the node's runtime and log folders something to create.
        deadline = time.monotonic() + 90
        logs: list[Path] = []
        while time.monotonic() < deadline:
            logs = [p for p in data_dir.glob("nodes/*/pods/*/app/*.log") if marker in p.read_text()]
            if logs:
                break
            time.sleep(1)
        tree = "\n".join(sorted(str(p.relative_to(data_dir)) for p in data_dir.rglob("*")))
        assert logs, f"the static pod's log never showed {marker} within 90 s; the data dir holds:\n{tree}"
        # Reading the log through the API server makes it write its kubelet-client credentials too.
        node = logs[0].relative_to(data_dir).parts[1]
        assert marker in read_pod_log(data_dir, f"modes-{node}")
        assert (data_dir / "pki" / KUBELET_CLIENT_CERT).exists()
        for expected in ("store", "pki", "kubeconfig", "cluster.json", "nodes"):
            assert (data_dir / expected).exists(), tree
        loose = loose_paths(data_dir, EXCEPTIONS + (CONTAINERD_EXCEPTIONS if runtime == "containerd" else ()))
        assert loose == [], "open to group or others:\n" + "\n".join(loose)
    finally:
        cli("down", "--purge", data_dir=data_dir, namespace=namespace, timeout=180)
        ray_stop()
        if runtime == "containerd":
            shutil.rmtree(tmp_path, ignore_errors=True)


def test_a_second_data_dir_never_takes_over_the_first_ones_cluster(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    shared, own = f"shared-{secrets.token_hex(4)}", f"own-{secrets.token_hex(4)}"
    named_a = os.path.realpath(a)
    ray_stop()
    # A Ray cluster neither data directory started, so neither `down` stops it.
    ray_bin = str(Path(sys.executable).with_name("ray"))
    subprocess.run(
        [ray_bin, "start", "--head", "--disable-usage-stats", "--include-dashboard=false"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    try:
        ok(cli("up", "--port", "0", "--runtime", "none", data_dir=a, namespace=shared, timeout=300))
        ok(cli("store", "put", "/who", "a", data_dir=a, namespace=shared))

        # B in A's namespace: refused, naming A, with nothing written for B.
        up_b = cli("up", "--port", "0", "--runtime", "none", data_dir=b, namespace=shared)
        assert up_b.returncode == 2, up_b.stdout + up_b.stderr
        assert named_a in up_b.stdout and "--ray-namespace" in up_b.stdout, up_b.stdout
        assert not (b / "kubeconfig").exists() and not (b / "cluster.json").exists()
        for command in (("status",), ("store", "get", "/who")):
            refused = cli(*command, data_dir=b, namespace=shared)
            assert refused.returncode == 1 and named_a in refused.stdout, (command, refused.stdout)

        # `down` for B stops nothing of A's.
        down_b = cli("down", data_dir=b, namespace=shared)
        assert down_b.returncode == 1 and named_a in down_b.stdout, down_b.stdout
        assert "stopped 0" not in down_b.stdout and "actor(s):" not in down_b.stdout, down_b.stdout
        assert ok(cli("store", "get", "/who", data_dir=a, namespace=shared)).strip() == "a"

        # B beside A in a namespace of its own: its own store, API server and kubeconfig.
        ok(
            cli(
                "up", "--port", "0", "--runtime", "none", "--ray-namespace", own, data_dir=b, namespace=shared
            )
        )
        ok(cli("store", "put", "/who", "b", data_dir=b, namespace=shared))  # cluster.json names `own`
        assert ok(cli("store", "get", "/who", data_dir=a, namespace=shared)).strip() == "a"
        assert ok(cli("store", "get", "/who", data_dir=b, namespace=shared)).strip() == "b"
        servers = {
            d: yaml.safe_load((d / "kubeconfig").read_text())["clusters"][0]["cluster"]["server"]
            for d in (a, b)
        }
        assert servers[a] != servers[b], servers

        # Stopping B leaves A serving; A stops only itself too.
        ok(cli("down", data_dir=b, namespace=shared))
        assert cli("status", data_dir=b, namespace=shared).returncode == 1
        assert ok(cli("store", "get", "/who", data_dir=a, namespace=shared)).strip() == "a"
        ok(cli("down", data_dir=a, namespace=shared))
        # The namespace is free again: B may now use it (and then gives it back).
        ok(
            cli(
                "up",
                "--port",
                "0",
                "--runtime",
                "none",
                "--ray-namespace",
                shared,
                data_dir=b,
                namespace=shared,
            )
        )
        ok(cli("down", data_dir=b, namespace=shared))
    finally:
        for d in (b, a):
            cli("down", "--purge", data_dir=d, namespace=shared, timeout=120)
        ray_stop()
