"""Volumes through real kubectl 1.33 against the session's `raykube up` (the process runtime), with
pods really running (scenarios in volume_scenarios.py):

* (a) a StatefulSet pod keeps what it wrote to its claim (default class ``standard``, the hostpath
  CSI driver) across its deletion;
* (b) a WaitForFirstConsumer claim stays Pending until a pod uses it, then binds on that pod's node
  (the PV's nodeAffinity names it);
* (c) reclaimPolicy Delete removes the PV and the volume's data on the node; Retain keeps the PV
  (Released) and the data, which a new claim bound to it by volumeName reads back;
* (d) a ConfigMap from a directory shows its keys as files and an applied change reaches the pod;
* (e) a Secret volume is a tmpfs; (f) an emptyDir is shared by two containers;
* (g) a subPath through a symlink out of its volume is refused with an event;
* (h) a hostPath of type Directory on a missing path fails with FailedMount;
* a container on the host's filesystem (a record image) cannot get a mount point the host lacks:
  CreateContainerError naming the path.

The containers run an imported busybox OCI layout, so they have a root filesystem of their own in
which the runtime makes their mount points.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import pytest

from tests.integration import volume_scenarios as vs
from tests.integration.conftest import Kubectl, RaykubeCluster

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def image(raykube_cluster: RaykubeCluster) -> str:
    return vs.install_rooted_busybox(raykube_cluster.data_dir)


def test_statefulset_pod_keeps_its_data(kubectl: Kubectl, image: str) -> None:
    vs.statefulset_pod_keeps_its_data(kubectl, image)


def test_wait_for_first_consumer_then_delete_removes_the_data(
    kubectl: Kubectl, image: str, raykube_cluster: RaykubeCluster
) -> None:
    token = secrets.token_hex(8)
    kubectl.apply(vs.claim("late", "standard"))
    ev = vs.event_with(kubectl, "late", "waiting for first consumer to be created before binding")
    assert ev["reason"] == "WaitForFirstConsumer"
    pvc = kubectl.json("get", "pvc", "late")
    assert pvc["status"]["phase"] == "Pending" and not pvc["spec"].get("volumeName"), pvc

    kubectl.apply(vs.claim_pod("user", image, "late"))
    node = vs.ready_pod(kubectl, "user")["spec"]["nodeName"]
    vs.sh(kubectl, "user", f"echo {token} > /data/marker")
    pvc = kubectl.json("get", "pvc", "late")
    assert pvc["status"]["phase"] == "Bound"
    assert pvc["metadata"]["annotations"]["volume.kubernetes.io/selected-node"] == node
    pv = kubectl.json("get", "pv", pvc["spec"]["volumeName"], namespaced=False)
    terms = pv["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"]
    assert {"key": vs.TOPOLOGY_KEY, "operator": "In", "values": [node]} in terms[0]["matchExpressions"]
    assert pv["spec"]["persistentVolumeReclaimPolicy"] == "Delete"
    handle = pv["spec"]["csi"]["volumeHandle"]
    assert vs.node_volume_paths(raykube_cluster.data_dir, node, handle), "the volume's data on the node"

    kubectl.run("delete", "pod", "user", "--timeout=90s")
    kubectl.run("delete", "pvc", "late", "--timeout=90s")
    vs.wait_until(lambda: vs.gone(kubectl, "pv", pv["metadata"]["name"]), "the PV to be deleted")
    vs.wait_until(
        lambda: not vs.node_volume_paths(raykube_cluster.data_dir, node, handle),
        f"the data of volume {handle} to be removed from node {node}",
    )


def test_retain_keeps_the_volume_and_its_data(kubectl: Kubectl, image: str, namespace: str) -> None:
    token = secrets.token_hex(8)
    sc = f"retain-{namespace}"
    storage_class: dict[str, Any] = {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {"name": sc},
        "provisioner": vs.DRIVER,
        "reclaimPolicy": "Retain",
        "volumeBindingMode": "WaitForFirstConsumer",
    }
    kubectl.apply(json.dumps(storage_class))
    pv_name = ""
    try:
        kubectl.apply(vs.claim("kept", sc))
        kubectl.apply(vs.claim_pod("writer", image, "kept"))
        vs.ready_pod(kubectl, "writer")
        vs.sh(kubectl, "writer", f"echo {token} > /data/marker")
        pv_name = kubectl.json("get", "pvc", "kept")["spec"]["volumeName"]
        kubectl.run("delete", "pod", "writer", "--timeout=90s")
        kubectl.run("delete", "pvc", "kept", "--timeout=90s")
        released = vs.wait_until(
            lambda: (p := kubectl.json("get", "pv", pv_name))["status"]["phase"] == "Released" and p,
            f"PV {pv_name} Released",
        )
        assert released["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
        # An administrator makes it Available again; a claim naming it binds and sees the old data.
        kubectl.run("patch", "pv", pv_name, "--type=json", "-p", '[{"op":"remove","path":"/spec/claimRef"}]')
        vs.wait_until(
            lambda: kubectl.json("get", "pv", pv_name)["status"]["phase"] == "Available",
            f"PV {pv_name} Available",
        )
        kubectl.apply(vs.claim("again", sc, volume_name=pv_name))
        kubectl.apply(vs.claim_pod("reader", image, "again"))
        vs.ready_pod(kubectl, "reader")
        assert vs.sh(kubectl, "reader", "cat /data/marker") == f"{token}\n"
    finally:
        kubectl.run("delete", "pod", "reader", "--ignore-not-found", "--timeout=90s", check=False)
        kubectl.run("delete", "pvc", "again", "--ignore-not-found", "--timeout=90s", check=False)
        if pv_name:
            kubectl.run("delete", "pv", pv_name, "--ignore-not-found", "--wait=false", check=False)
        kubectl.run("delete", "storageclass", sc, "--ignore-not-found", check=False)


def test_configmap_from_directory_and_its_update(kubectl: Kubectl, image: str, tmp_path: Path) -> None:
    vs.configmap_from_directory(kubectl, image, tmp_path)


def test_secret_volume_is_tmpfs(kubectl: Kubectl, image: str) -> None:
    vs.secret_on_tmpfs(kubectl, image)


def test_emptydir_shared_by_two_containers(kubectl: Kubectl, image: str) -> None:
    vs.emptydir_is_shared(kubectl, image)


def test_subpath_through_a_symlink_out_of_the_volume_is_refused(kubectl: Kubectl, image: str) -> None:
    vs.subpath_escape_refused(kubectl, image)


def test_hostpath_directory_missing_fails_to_mount(kubectl: Kubectl, image: str) -> None:
    missing = f"/tmp/raykube-no-such-dir-{secrets.token_hex(6)}"
    kubectl.apply(
        vs.pod(
            "hostdir",
            [vs.container("main", image, vs.SLEEP, [{"name": "host", "mountPath": "/host"}])],
            [{"name": "host", "hostPath": {"path": missing, "type": "Directory"}}],
        )
    )
    ev = vs.event_with(kubectl, "hostdir", f"hostPath type check failed: {missing} is not a directory")
    assert (ev["type"], ev["reason"]) == ("Warning", "FailedMount"), ev
    assert 'MountVolume.SetUp failed for volume "host"' in ev["message"]
    assert not Path(missing).exists()


def test_host_filesystem_container_gets_no_new_mount_point(kubectl: Kubectl) -> None:
    """busybox as a record image runs on the host's filesystem: a mount at a path the host lacks is
    refused (CreateContainerError naming it), and the host gets no such directory."""
    path = f"/raykube-no-such-path-{secrets.token_hex(6)}"
    kubectl.apply(
        vs.pod(
            "onhost",
            [vs.container("main", "busybox", vs.SLEEP, [{"name": "scratch", "mountPath": path}])],
            [{"name": "scratch", "emptyDir": {}}],
        )
    )
    ev = vs.event_with(kubectl, "onhost", f"mount target {path} does not exist on the host's filesystem")
    assert ev["type"] == "Warning" and "image" in ev["message"], ev
    assert not Path(path).exists()
