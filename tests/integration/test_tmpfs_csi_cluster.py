"""The plugin developers' example volume plugin in a cluster: `raykube up --volume-plugin
examples.tmpfs_csi:TmpfsPlugin` in a fresh data dir (own Ray namespace, joining the machine's Ray,
never stopping it), then what an operator of a third-party driver does: its CSIDriver and a
StorageClass. A claim of that class is provisioned on its pod's node by that node's plugin (a tmpfs
of the claim's size), the pod writes into it, a later pod reads it back, and deleting the claim
deletes the volume. The built-in driver's objects are not created for another plugin.

Root only (the example mounts tmpfs). Run under ``flock /tmp/raykube-heavy.lock``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.capabilities import require
from tests.integration import volume_scenarios as vs
from tests.integration.conftest import kubectl_binary
from tests.integration.support import wait_until
from tests.integration.test_volumes_clusters import OwnCluster

pytestmark = pytest.mark.integration

DRIVER = "tmpfs.csi.example.com"


@pytest.fixture
def own_cluster() -> Iterator[OwnCluster]:
    if os.geteuid() != 0:
        require("root", "the tmpfs example driver mounts: run as root")
    kubectl_binary("1.33")
    data_dir = Path(tempfile.mkdtemp(prefix="rk-tmpfs-", dir="/tmp"))
    c = OwnCluster(data_dir)
    try:
        yield c
    finally:
        if not c.down_done:
            c.cli("down", "--purge", timeout=240)
        for target in reversed(vs.mounts_under(data_dir)):  # never leave the shared machine our mounts
            subprocess.run(["umount", "-l", target], check=False, capture_output=True)
        shutil.rmtree(data_dir, ignore_errors=True)


def test_example_driver_provisions_and_keeps_data(own_cluster: OwnCluster) -> None:
    data_dir = own_cluster.cluster.data_dir
    own_cluster.up("--volume-plugin", "examples.tmpfs_csi:TmpfsPlugin")
    status = own_cluster.cli("status", timeout=120)
    assert f"volume plugin {DRIVER}, ready" in status.stdout, status.stdout + status.stderr
    image = vs.install_rooted_busybox(data_dir)
    k = own_cluster.kubectl()
    assert vs.gone(k, "csidriver", "hostpath.csi.raykube.io")
    assert vs.gone(k, "storageclass", "standard")
    k.apply(
        json.dumps({"apiVersion": "storage.k8s.io/v1", "kind": "CSIDriver", "metadata": {"name": DRIVER},
                    "spec": {"attachRequired": False}})
    )  # fmt: skip
    k.apply(
        json.dumps({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "tmpfs"},
                    "provisioner": DRIVER, "volumeBindingMode": "WaitForFirstConsumer",
                    "reclaimPolicy": "Delete"})
    )  # fmt: skip
    k.apply(vs.claim("scratch", "tmpfs", size="4Mi"))
    k.apply(vs.claim_pod("writer", image, "scratch"))
    vs.ready_pod(k, "writer")
    pvc = k.json("get", "pvc", "scratch")
    pv_name = pvc["spec"]["volumeName"]
    pv = k.json("get", "pv", pv_name)
    node = pvc["metadata"]["annotations"]["volume.kubernetes.io/selected-node"]
    assert pv["spec"]["csi"]["driver"] == DRIVER
    terms = pv["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"]
    assert {e["key"]: e["values"] for t in terms for e in t["matchExpressions"]} == {
        "topology.tmpfs.csi.example.com/node": [node]
    }
    # The volume is the driver's tmpfs of the claim's size, seen from inside the pod.
    assert vs.sh(k, "writer", "df -k /data | tail -1").split()[1] == "4096"
    vs.sh(k, "writer", "echo kept > /data/note")
    k.run("delete", "pod", "writer")
    k.apply(vs.claim_pod("reader", image, "scratch"))
    vs.ready_pod(k, "reader")
    assert vs.sh(k, "reader", "cat /data/note") == "kept\n"
    k.run("delete", "pod", "reader")
    k.run("delete", "pvc", "scratch")
    wait_until(lambda: vs.gone(k, "pv", pv_name), f"PV {pv_name} deleted with its claim", timeout=120)
    records = list((data_dir / "nodes" / node / "csi").glob("*.json"))
    assert records == [], f"the driver still has volumes after DeleteVolume: {records}"
    own_cluster.down()
