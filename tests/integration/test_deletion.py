"""Deletion semantics through the real kubectl: propagation policies, graceful pods, dry runs,
namespace deletion.

Garbage collection by ownerReferences (Background, Foreground, Orphan) is the controller manager's
garbage collector, emptying a deleted namespace its namespace controller; these tests drive them end
to end and wait for them with bounded polling.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable

import pytest

from tests.integration.conftest import Kubectl, RaykubeCluster

pytestmark = pytest.mark.integration


def eventually(check: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.25)
    return check()


def exists(k: Kubectl, kind: str, name: str) -> bool:
    return k.run("get", kind, name, check=False).returncode == 0


def owned_pair(k: Kubectl, owner: str, dependent: str) -> str:
    k.run("create", "configmap", owner, "--from-literal=a=1")
    uid = k.out("get", "configmap", owner, "-o", "jsonpath={.metadata.uid}")
    k.apply(
        f"""
apiVersion: v1
kind: ConfigMap
metadata:
  name: {dependent}
  ownerReferences: [{{apiVersion: v1, kind: ConfigMap, name: {owner}, uid: {uid}, blockOwnerDeletion: true}}]
data: {{b: "2"}}
"""
    )
    return uid


def test_background_propagation_collects_dependents(kubectl: Kubectl) -> None:
    owned_pair(kubectl, "owner-bg", "dep-bg")
    kubectl.run("delete", "configmap", "owner-bg")  # kubectl's default: Background
    assert not exists(kubectl, "configmap", "owner-bg")
    assert eventually(lambda: not exists(kubectl, "configmap", "dep-bg"))


def test_foreground_keeps_the_owner_until_dependents_are_gone(kubectl: Kubectl) -> None:
    owned_pair(kubectl, "owner-fg", "dep-fg")
    kubectl.run("delete", "configmap", "owner-fg", "--cascade=foreground", "--wait=false")
    assert eventually(lambda: not exists(kubectl, "configmap", "dep-fg"))
    assert eventually(lambda: not exists(kubectl, "configmap", "owner-fg"))


def test_foreground_waits_for_a_blocking_dependent(kubectl: Kubectl) -> None:
    """A dependent held by its own finalizer keeps its foreground-deleted owner (Terminating, with the
    foregroundDeletion finalizer) until the finalizer is removed; then both go."""
    owned_pair(kubectl, "owner-wait", "dep-wait")
    kubectl.run(
        "patch",
        "configmap",
        "dep-wait",
        "--type=merge",
        "-p",
        '{"metadata":{"finalizers":["example.com/hold"]}}',
    )
    kubectl.run("delete", "configmap", "owner-wait", "--cascade=foreground", "--wait=false")
    assert eventually(
        lambda: bool(kubectl.json("get", "configmap", "dep-wait")["metadata"].get("deletionTimestamp"))
    )
    owner = kubectl.json("get", "configmap", "owner-wait")["metadata"]
    assert owner["deletionTimestamp"] and owner["finalizers"] == ["foregroundDeletion"]
    kubectl.run("patch", "configmap", "dep-wait", "--type=merge", "-p", '{"metadata":{"finalizers":null}}')
    assert eventually(lambda: not exists(kubectl, "configmap", "dep-wait"))
    assert eventually(lambda: not exists(kubectl, "configmap", "owner-wait"))


def test_deleting_a_replicaset_collects_its_pods(kubectl: Kubectl) -> None:
    kubectl.apply(
        """
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: gc-rs}
spec:
  replicas: 2
  selector: {matchLabels: {app: gc-rs}}
  template:
    metadata: {labels: {app: gc-rs}}
    spec:
      terminationGracePeriodSeconds: 1
      containers: [{name: c, image: busybox, command: ["sleep", "3600"]}]
"""
    )

    def pods() -> list[str]:
        return [p["metadata"]["name"] for p in kubectl.json("get", "pods", "-l", "app=gc-rs")["items"]]

    assert eventually(lambda: len(pods()) == 2, timeout=60)
    kubectl.run("delete", "replicaset", "gc-rs", "--wait=false")
    assert eventually(lambda: not pods(), timeout=60), pods()


def test_orphan_leaves_dependents_without_the_reference(kubectl: Kubectl) -> None:
    owned_pair(kubectl, "owner-or", "dep-or")
    kubectl.run("delete", "configmap", "owner-or", "--cascade=orphan", "--wait=false")
    assert eventually(lambda: not exists(kubectl, "configmap", "owner-or"))
    assert eventually(
        lambda: not kubectl.json("get", "configmap", "dep-or")["metadata"].get("ownerReferences")
    )
    assert exists(kubectl, "configmap", "dep-or")


def test_a_pod_on_a_node_terminates_gracefully(kubectl: Kubectl) -> None:
    # Bound to a node name no scheduler or agent owns: it stays Terminating for its grace period.
    kubectl.apply(
        """
apiVersion: v1
kind: Pod
metadata: {name: graceful}
spec:
  nodeName: no-such-node-for-deletion-test
  terminationGracePeriodSeconds: 600
  containers: [{name: c, image: busybox}]
"""
    )
    kubectl.run("delete", "pod", "graceful", "--wait=false")
    pod = kubectl.json("get", "pod", "graceful")
    assert pod["metadata"]["deletionTimestamp"]
    assert pod["metadata"]["deletionGracePeriodSeconds"] == 600
    kubectl.run("delete", "pod", "graceful", "--grace-period=0", "--force")
    assert not exists(kubectl, "pod", "graceful")


def test_server_dry_run_stores_nothing(kubectl: Kubectl) -> None:
    out = kubectl.out("create", "configmap", "dry", "--from-literal=a=1", "--dry-run=server", "-o", "name")
    assert out.strip() == "configmap/dry"
    assert not exists(kubectl, "configmap", "dry")
    kubectl.run("create", "configmap", "kept", "--from-literal=a=1")
    kubectl.run("delete", "configmap", "kept", "--dry-run=server")
    assert exists(kubectl, "configmap", "kept")


def test_deleting_a_namespace_removes_everything_in_it(raykube_cluster: RaykubeCluster) -> None:
    name = f"gone-{secrets.token_hex(4)}"
    admin = Kubectl(raykube_cluster, "1.33", None)
    admin.run("create", "namespace", name)
    k = Kubectl(raykube_cluster, "1.33", name)
    k.run("create", "configmap", "settings", "--from-literal=a=1")
    k.apply(
        """
apiVersion: v1
kind: Pod
metadata: {name: sleeper}
spec:
  terminationGracePeriodSeconds: 1
  containers: [{name: c, image: busybox, command: ["sleep", "3600"]}]
---
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers: [{name: c, image: busybox, command: ["sleep", "3600"]}]
"""
    )
    assert eventually(lambda: len(k.json("get", "pods")["items"]) == 2, timeout=60)
    admin.run("delete", "namespace", name, "--wait=false")
    phase = admin.json("get", "namespace", name)["status"]["phase"]
    assert phase == "Terminating"
    assert eventually(lambda: not exists(admin, "namespace", name), timeout=90), admin.out(
        "get", "namespace", name, "-o", "yaml", check=False
    )
    left = admin.out("get", "pods,configmaps,replicasets", "-n", name, "-o", "name", check=False)
    assert left.strip() == ""
