"""Attach and detach end to end: `raykube up --volume-plugin tests.integration.attaching_csi:AttachingTmpfs`
(the example tmpfs driver plus ControllerPublish/Unpublish) in a fresh data dir, its CSIDriver with
``attachRequired: true`` and a WaitForFirstConsumer class. A pod using a claim of that class gets a
VolumeAttachment from the attachdetach controller, published on the volume's node (the driver records
it) and marked attached; the node agent stages the volume only then and the pod runs with it; the Node
lists it in ``status.volumesAttached``. Deleting the pod unpublishes the volume and removes the
VolumeAttachment.

Root only (the example mounts tmpfs). Run under ``flock /tmp/raykube-heavy.lock``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tests.integration import volume_scenarios as vs
from tests.integration.support import wait_until
from tests.integration.test_tmpfs_csi_cluster import own_cluster  # noqa: F401  (the fixture)
from tests.integration.test_volumes_clusters import OwnCluster

pytestmark = pytest.mark.integration

DRIVER = "tmpfs.csi.example.com"


def attachment_name(handle: str, node: str) -> str:
    return "csi-" + hashlib.sha256(f"{handle}{DRIVER}{node}".encode()).hexdigest()


def test_volume_attached_before_the_pod_runs_and_detached_after(own_cluster: OwnCluster) -> None:  # noqa: F811
    data_dir = own_cluster.cluster.data_dir
    own_cluster.up("--volume-plugin", "tests.integration.attaching_csi:AttachingTmpfs")
    image = vs.install_rooted_busybox(data_dir)
    k = own_cluster.kubectl()
    k.apply(
        json.dumps({"apiVersion": "storage.k8s.io/v1", "kind": "CSIDriver", "metadata": {"name": DRIVER},
                    "spec": {"attachRequired": True}})
    )  # fmt: skip
    k.apply(
        json.dumps({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
                    "metadata": {"name": "attached"}, "provisioner": DRIVER,
                    "volumeBindingMode": "WaitForFirstConsumer", "reclaimPolicy": "Delete"})
    )  # fmt: skip
    k.apply(vs.claim("disk", "attached", size="4Mi"))
    k.apply(vs.claim_pod("user", image, "disk"))
    pod = vs.ready_pod(k, "user")
    node = pod["spec"]["nodeName"]
    pv = k.json("get", "pv", k.json("get", "pvc", "disk")["spec"]["volumeName"])
    handle = pv["spec"]["csi"]["volumeHandle"]
    name = attachment_name(handle, node)
    va = k.json("get", "volumeattachment", name)
    assert va["spec"] == {
        "attacher": DRIVER,
        "nodeName": node,
        "source": {"persistentVolumeName": pv["metadata"]["name"]},
    }
    assert va["status"]["attached"] is True
    assert va["status"]["attachmentMetadata"] == {"attached-to": node}
    record = Path(data_dir, "nodes", node, "csi", "attached", handle)
    assert record.read_text() == node, "ControllerPublishVolume ran on the volume's node"
    attached = wait_until(
        lambda: k.json("get", "node", node)["status"].get("volumesAttached"),
        "Node.status.volumesAttached",
        timeout=60,
    )
    assert {"name": f"kubernetes.io/csi/{DRIVER}^{handle}", "devicePath": ""} in attached
    assert vs.sh(k, "user", "echo on-disk > /data/note && cat /data/note") == "on-disk\n"

    k.run("delete", "pod", "user", "--timeout=90s")
    wait_until(lambda: vs.gone(k, "volumeattachment", name), f"VolumeAttachment {name} removed", timeout=120)
    assert not record.exists(), "ControllerUnpublishVolume ran"
    k.run("delete", "pvc", "disk", "--timeout=90s")
    wait_until(lambda: vs.gone(k, "pv", pv["metadata"]["name"]), "PV deleted with its claim", timeout=120)
    own_cluster.down()
