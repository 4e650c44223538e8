"""`raykube up` with the default volume plugin: every node has its ``csi-<node>`` actor serving the
built-in driver (its socket and name handed to the node agent), and the cluster has the driver's
CSIDriver and the default StorageClass ``standard``, seen through kubectl 1.33."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from tests.integration.conftest import RAYKUBE, Kubectl, RaykubeCluster
from tests.integration.support import wait_until

pytestmark = [pytest.mark.integration]

PROBE = """
import json, os, ray
ray.init(address="auto", logging_level="ERROR")
ns = os.environ["RAYKUBE_NAMESPACE"]
names = [e["name"] for e in ray.util.list_named_actors(all_namespaces=True) if e["namespace"] == ns]
out = {}
for name in sorted(n for n in names if n.startswith("csi-")):
    out[name] = ray.get(ray.get_actor(name, namespace=ns).ready.remote(), timeout=60)
print("RESULT " + json.dumps(out))
"""


def test_storage_defaults_and_volume_plugin_actors(raykube_cluster: RaykubeCluster, kubectl: Kubectl) -> None:
    driver = kubectl.json("get", "csidriver", "hostpath.csi.raykube.io")
    assert driver["spec"]["attachRequired"] is False
    assert driver["spec"]["podInfoOnMount"] is True
    assert driver["spec"]["volumeLifecycleModes"] == ["Persistent", "Ephemeral"]
    sc = kubectl.json("get", "storageclass", "standard")
    assert sc["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"] == "true"
    assert (sc["provisioner"], sc["volumeBindingMode"], sc["reclaimPolicy"], sc["allowVolumeExpansion"]) == (
        "hostpath.csi.raykube.io",
        "WaitForFirstConsumer",
        "Delete",
        True,
    )
    assert "standard (default)" in kubectl.out("get", "storageclass")

    nodes = [n["metadata"]["name"] for n in kubectl.json("get", "nodes")["items"]]
    proc = subprocess.run(
        [sys.executable, "-c", PROBE],
        env=raykube_cluster.env,
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
    )
    plugins = json.loads(next(line for line in proc.stdout.splitlines() if line.startswith("RESULT "))[7:])
    assert sorted(plugins) == sorted(f"csi-{node}" for node in nodes)
    for node in nodes:
        info = plugins[f"csi-{node}"]
        assert info["driver"] == "hostpath.csi.raykube.io"
        assert info["node_id"] == node
        assert info["topology"]["topology.hostpath.csi.raykube.io/node"] == node
    status = subprocess.run(
        [*RAYKUBE, "status", "--data-dir", str(raykube_cluster.data_dir)],
        capture_output=True, text=True, env=raykube_cluster.env, timeout=120, check=False,
    )  # fmt: skip
    for node in nodes:
        line = (
            f"node {node}: volume plugin hostpath.csi.raykube.io, ready ({plugins[f'csi-{node}']['socket']})"
        )
        assert line in status.stdout, status.stdout + status.stderr


def test_default_class_provisions_through_the_node_plugin(kubectl: Kubectl) -> None:
    """A claim without a class gets ``standard``; its pod's scheduling picks the node, and the
    controller manager's CreateVolume reaches that node's ``csi-<node>`` actor (ControllerOptions.csi):
    a PV of the driver, with the node's topology as its node affinity, bound to the claim."""
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "8Mi"}}},
    }
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "user"},
        "spec": {
            "containers": [{"name": "main", "image": "busybox", "command": ["sleep", "3600"]}],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}],
        },
    }
    kubectl.apply(json.dumps(claim))
    kubectl.apply(json.dumps(pod))

    def bound() -> dict[str, Any] | None:
        got: dict[str, Any] = kubectl.json("get", "pvc", "data")
        return got if got.get("status", {}).get("phase") == "Bound" else None

    pvc = wait_until(bound, "claim data Bound", timeout=120)
    assert pvc["spec"]["storageClassName"] == "standard"
    node = pvc["metadata"]["annotations"]["volume.kubernetes.io/selected-node"]
    pv = kubectl.json("get", "pv", pvc["spec"]["volumeName"])
    assert pv["spec"]["csi"]["driver"] == "hostpath.csi.raykube.io"
    assert pv["metadata"]["annotations"]["pv.kubernetes.io/provisioned-by"] == "hostpath.csi.raykube.io"
    terms = pv["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"]
    expressions = {e["key"]: e["values"] for t in terms for e in t["matchExpressions"]}
    assert expressions["topology.hostpath.csi.raykube.io/node"] == [node]
    kubectl.run("delete", "pod", "user", "--wait=false")
