"""Volumes on clusters of their own, each from `raykube up` in a fresh data dir (own Ray namespace,
joining the machine's Ray if one runs, never stopping it) to `raykube down --purge`:

* the core scenarios (an emptyDir shared by two containers, a ConfigMap from a directory and its
  update, a StatefulSet pod keeping its claim's data), a Secret on tmpfs and a subPath through a
  symlink out of its volume refused, with the ``containerd`` runtime (CRI mounts, done by containerd
  itself);
* with the ``process`` runtime, a StatefulSet claim and a Secret volume mounted, then
  `raykube down --purge`: no mount below the data dir is left (``findmnt`` before `up` and after).

Root only (mounts; containerd's prerequisites for the first). Run alone on shared machines, under
``flock /tmp/raykube-heavy.lock``.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from nodeagent.runtimes.containerd import missing_prerequisites
from tests.capabilities import require
from tests.integration import volume_scenarios as vs
from tests.integration.conftest import RAYKUBE, Kubectl, RaykubeCluster, kubectl_binary

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


class OwnCluster:
    """One `raykube up` in ``data_dir``; ``down`` purges it and returns the mounts left below it."""

    def __init__(self, data_dir: Path) -> None:
        env = dict(
            os.environ,
            RAYKUBE_NAMESPACE=f"volumes-{secrets.token_hex(4)}",
            RAY_USAGE_STATS_ENABLED="0",
            COLUMNS="200",
        )
        env.pop("RAYKUBE_DATA_DIR", None)
        self.cluster = RaykubeCluster(data_dir, data_dir / "kubeconfig", env)
        self.down_done = False

    def cli(self, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*RAYKUBE, *args, "--data-dir", str(self.cluster.data_dir)],
            capture_output=True,
            text=True,
            env=self.cluster.env,
            cwd=REPO,
            timeout=timeout,
            check=False,
        )

    def up(self, *args: str) -> None:
        up = self.cli("up", "--port", "0", *args, timeout=300)
        assert up.returncode == 0 and self.cluster.kubeconfig.exists(), (
            f"raykube up:\n{up.stdout}\n{up.stderr}"
        )

    def kubectl(self) -> Kubectl:
        ns = f"vol-{secrets.token_hex(3)}"
        Kubectl(self.cluster, "1.33", None).run("create", "namespace", ns)
        return Kubectl(self.cluster, "1.33", ns)

    def down(self) -> None:
        self.down_done = True
        down = self.cli("down", "--purge", timeout=240)
        assert down.returncode == 0, f"raykube down --purge:\n{down.stdout}\n{down.stderr}"


@pytest.fixture
def own_cluster() -> Iterator[OwnCluster]:
    if os.geteuid() != 0:
        require("root", "volumes on a cluster of its own need root (mounts)")
    kubectl_binary("1.33")
    # Short: containerd's sockets live under the data dir (unix socket paths are at most 108 bytes).
    data_dir = Path(tempfile.mkdtemp(prefix="rk-vol-", dir="/tmp"))
    c = OwnCluster(data_dir)
    try:
        yield c
    finally:
        if not c.down_done:
            c.cli("down", "--purge", timeout=240)
        left = vs.mounts_under(data_dir)
        for target in reversed(left):  # never leave the shared machine with our mounts
            subprocess.run(["umount", "-l", target], check=False, capture_output=True)
        shutil.rmtree(data_dir, ignore_errors=True)


def test_core_volume_scenarios_on_containerd(own_cluster: OwnCluster, tmp_path: Path) -> None:
    problems = missing_prerequisites()
    require("containerd", f"containerd end to end needs: {'; '.join(problems)}" if problems else None)
    before = vs.mounts_under(own_cluster.cluster.data_dir)
    own_cluster.up("--runtime", "containerd")
    k = own_cluster.kubectl()
    (node,) = k.json("get", "nodes")["items"]
    assert node["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("containerd://")
    vs.pods_with_volumes_run(k, "busybox", tmp_path)
    vs.secret_on_tmpfs(k, "busybox")
    vs.subpath_escape_refused(k, "busybox")
    own_cluster.down()
    left = vs.mounts_under(own_cluster.cluster.data_dir)
    assert left == before, "mounts of ours survived raykube down --purge:\n" + "\n".join(left)


def test_down_purge_leaves_no_mount(own_cluster: OwnCluster) -> None:
    data_dir = own_cluster.cluster.data_dir
    before = vs.mounts_under(data_dir)
    own_cluster.up()
    image = vs.install_rooted_busybox(data_dir)
    k = own_cluster.kubectl()
    vs.statefulset_pod_keeps_its_data(k, image)
    vs.secret_on_tmpfs(k, image)
    during = vs.mounts_under(data_dir)
    assert during != before, "the claim and the secret are mounts below the data dir while the pods run"
    own_cluster.down()
    left = vs.mounts_under(data_dir)
    assert left == before, "mounts of ours survived raykube down --purge:\n" + "\n".join(left)
