"""Dynamic provisioning and the VolumeBinding scheduler plugin through real kubectl 1.33 against the
session's `raykube up` (hostpath CSI driver). test_volumes_kubectl.py covers the WaitForFirstConsumer
story with data on disk; this file covers what the scheduler and csi-provisioner say and decide:

* an Immediate class provisions without a pod, on a node inside its allowedTopologies, with the PV
  csi-provisioner writes (provisioned-by, its finalizer, node affinity, claimRef) and the claim's
  Provisioning / ProvisioningSucceeded events; deleting the claim deletes the PV (reclaimPolicy Delete);
* a WaitForFirstConsumer claim gets ``volume.kubernetes.io/selected-node`` from the scheduler only once
  a pod uses it, and the pod is bound to that node;
* the FailedScheduling messages of kube-scheduler's VolumeBinding: a missing claim, an unbound Immediate
  claim, a bound PV whose node affinity no node has, and a class whose allowedTopologies no node has.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration import volume_scenarios as vs
from tests.integration.conftest import Kubectl, RaykubeCluster

pytestmark = pytest.mark.integration

STORAGE = "storage.k8s.io/v1"
SELECTED_NODE_ANN = "volume.kubernetes.io/selected-node"


@pytest.fixture(scope="module")
def image(raykube_cluster: RaykubeCluster) -> str:
    return vs.install_rooted_busybox(raykube_cluster.data_dir)


def storage_class(name: str, mode: str, provisioner: str = vs.DRIVER, **extra: Any) -> str:
    return json.dumps(
        {
            "apiVersion": STORAGE,
            "kind": "StorageClass",
            "metadata": {"name": name},
            "provisioner": provisioner,
            "reclaimPolicy": "Delete",
            "volumeBindingMode": mode,
            **extra,
        }
    )


def pending_pod(name: str, claim_name: str) -> str:
    container = vs.container("main", vs.ROOTED_IMAGE, vs.SLEEP, [{"name": "data", "mountPath": "/data"}])
    return vs.pod(name, [container], [{"name": "data", "persistentVolumeClaim": {"claimName": claim_name}}])


def allowed(*nodes: str) -> list[dict[str, Any]]:
    return [{"matchLabelExpressions": [{"key": vs.TOPOLOGY_KEY, "values": list(nodes)}]}]


@pytest.fixture
def classes(kubectl: Kubectl, namespace: str) -> Iterator[list[str]]:
    """StorageClass names made by the test, deleted afterwards (they are cluster-scoped)."""
    made: list[str] = []
    yield made
    for name in made:
        kubectl.run("delete", "storageclass", name, "--ignore-not-found", check=False)


def node_names(kubectl: Kubectl) -> list[str]:
    return sorted(n["metadata"]["name"] for n in kubectl.json("get", "nodes", namespaced=False)["items"])


def test_immediate_class_provisions_without_a_pod_and_delete_reclaims(
    kubectl: Kubectl, namespace: str, classes: list[str]
) -> None:
    node = node_names(kubectl)[-1]
    sc = f"now-{namespace}"
    classes.append(sc)
    kubectl.apply(storage_class(sc, "Immediate", allowedTopologies=allowed(node)))
    kubectl.apply(vs.claim("data", sc))
    pvc = vs.wait_until(
        lambda: (c := kubectl.json("get", "pvc", "data"))["status"].get("phase") == "Bound" and c,
        "claim Bound",
    )
    assert SELECTED_NODE_ANN not in (pvc["metadata"].get("annotations") or {})
    assert pvc["metadata"]["annotations"]["volume.kubernetes.io/storage-provisioner"] == vs.DRIVER
    pv_name = pvc["spec"]["volumeName"]
    assert pv_name == f"pvc-{pvc['metadata']['uid']}"
    pv = kubectl.json("get", "pv", pv_name, namespaced=False)
    assert pv["metadata"]["annotations"]["pv.kubernetes.io/provisioned-by"] == vs.DRIVER
    assert "external-provisioner.volume.kubernetes.io/finalizer" in pv["metadata"]["finalizers"]
    assert pv["spec"]["claimRef"]["uid"] == pvc["metadata"]["uid"]
    assert pv["spec"]["csi"]["driver"] == vs.DRIVER and pv["spec"]["storageClassName"] == sc
    assert pv["spec"]["persistentVolumeReclaimPolicy"] == "Delete"
    terms = pv["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"]
    assert {"key": vs.TOPOLOGY_KEY, "operator": "In", "values": [node]} in terms[0]["matchExpressions"]
    reasons = [e["reason"] for e in vs.events(kubectl, "data")]
    assert "Provisioning" in reasons and "ProvisioningSucceeded" in reasons, reasons

    kubectl.run("delete", "pvc", "data", "--timeout=90s")
    vs.wait_until(lambda: vs.gone(kubectl, "pv", pv_name), f"PV {pv_name} deleted with its claim")


def test_wait_for_first_consumer_gets_the_pods_node(
    kubectl: Kubectl, namespace: str, classes: list[str], image: str
) -> None:
    nodes = node_names(kubectl)
    sc = f"late-{namespace}"
    classes.append(sc)
    kubectl.apply(storage_class(sc, "WaitForFirstConsumer", allowedTopologies=allowed(nodes[0])))
    kubectl.apply(vs.claim("late", sc))
    vs.event_with(kubectl, "late", "waiting for first consumer to be created before binding")
    assert SELECTED_NODE_ANN not in (kubectl.json("get", "pvc", "late")["metadata"].get("annotations") or {})
    kubectl.apply(vs.claim_pod("user", image, "late"))
    pod = vs.wait_until(
        lambda: (p := kubectl.json("get", "pod", "user"))["spec"].get("nodeName") and p,
        "the pod bound to a node",
    )
    assert pod["spec"]["nodeName"] == nodes[0]  # the only node inside the class's allowedTopologies
    pvc = kubectl.json("get", "pvc", "late")
    assert pvc["status"]["phase"] == "Bound"  # bound before the pod was (PreBind waits for it)
    assert pvc["metadata"]["annotations"][SELECTED_NODE_ANN] == nodes[0]
    scheduled = vs.event_with(kubectl, "user", "Successfully assigned")
    assert scheduled["reason"] == "Scheduled"
    vs.ready_pod(kubectl, "user")  # running, with the provisioned volume mounted
    assert vs.sh(kubectl, "user", "echo ok > /data/probe && cat /data/probe") == "ok\n"
    kubectl.run("delete", "pod", "user", "--timeout=90s")
    kubectl.run("delete", "pvc", "late", "--timeout=90s")


def test_failed_scheduling_says_why(kubectl: Kubectl, namespace: str, classes: list[str]) -> None:
    nowhere, never = f"nowhere-{namespace}", f"never-{namespace}"
    classes.extend([nowhere, never])
    kubectl.apply(storage_class(nowhere, "WaitForFirstConsumer", allowedTopologies=allowed("no-such-node")))
    kubectl.apply(storage_class(never, "Immediate", provisioner="example.com/not-running"))
    kubectl.apply(vs.claim("nowhere", nowhere))
    kubectl.apply(vs.claim("never", never))
    pv_name = f"far-{namespace}"
    far = {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": pv_name},
        "spec": {
            "capacity": {"storage": "16Mi"},
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": "",
            "persistentVolumeReclaimPolicy": "Retain",
            "csi": {"driver": vs.DRIVER, "volumeHandle": "does-not-exist"},
            "nodeAffinity": {
                "required": {
                    "nodeSelectorTerms": [
                        {
                            "matchExpressions": [
                                {"key": vs.TOPOLOGY_KEY, "operator": "In", "values": ["elsewhere"]}
                            ]
                        }
                    ]
                }
            },
        },
    }
    kubectl.apply(json.dumps(far))
    try:
        kubectl.apply(vs.claim("far", "", volume_name=pv_name))
        vs.wait_until(
            lambda: kubectl.json("get", "pvc", "far")["status"].get("phase") == "Bound", "far Bound"
        )
        cases = {
            "missing": 'persistentvolumeclaim "missing" not found',
            "never": "pod has unbound immediate PersistentVolumeClaims",
            "far": "node(s) had volume node affinity conflict",
            "nowhere": "node(s) didn't find available persistent volumes to bind",
        }
        for claim_name in cases:
            kubectl.apply(pending_pod(f"uses-{claim_name}", claim_name))
        for claim_name, text in cases.items():
            event = vs.event_with(kubectl, f"uses-{claim_name}", text)
            assert event["reason"] == "FailedScheduling"
            assert event["message"].startswith("0/"), event["message"]
            assert not kubectl.json("get", "pod", f"uses-{claim_name}")["spec"].get("nodeName")
    finally:
        kubectl.run("delete", "pods", "--all", "--wait=false", check=False)
        kubectl.run("delete", "pvc", "far", "--wait=false", check=False)
        kubectl.run("delete", "pv", pv_name, "--wait=false", check=False)
