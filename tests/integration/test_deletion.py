"""Deletion semantics through the real kubectl: propagation policies, graceful pods, dry runs.

Garbage collection by ownerReferences (Background, Foreground, Orphan) runs in the API server's
lifecycle tasks; these tests drive it end to end and wait for it with bounded polling.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from tests.integration.conftest import Kubectl

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
