"""The PV controller and pvc-protection through real kubectl 1.33 against `raykube up`.

Static volumes (``spec.csi`` of the built-in driver with made-up handles: binding never calls the
driver) and claims with ``storageClassName: ""``:

* a claim binds to the smallest volume that fits, both ways (claimRef with the claim's uid,
  volumeName, the bind annotations, phases Bound, the claim's capacity and access modes);
* a claim naming its volume (``spec.volumeName``) gets that one, though a smaller one fits;
* a claim no volume fits stays Pending with the FailedBinding event;
* a claim in use by a pod stays Terminating after ``kubectl delete`` (pvc-protection) and goes once the
  pod is gone; its Retain volume is then Released and keeps its claimRef.
"""

from __future__ import annotations

import functools
import json
from typing import Any

import pytest

from tests.integration import support
from tests.integration.conftest import Kubectl

pytestmark = pytest.mark.integration

WAIT = 120.0
DRIVER = "hostpath.csi.raykube.io"

wait_until = functools.partial(support.wait_until, timeout=WAIT)


def volume(name: str, size: str, reclaim: str = "Retain") -> str:
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": name},
            "spec": {
                "capacity": {"storage": size},
                "accessModes": ["ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": reclaim,
                "storageClassName": "",
                "csi": {"driver": DRIVER, "volumeHandle": f"made-up-{name}"},
            },
        }
    )


def claim(name: str, size: str, volume_name: str = "") -> str:
    spec: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "storageClassName": "",
        "resources": {"requests": {"storage": size}},
    }
    if volume_name:
        spec["volumeName"] = volume_name
    return json.dumps(
        {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name}, "spec": spec}
    )


def phase(kubectl: Kubectl, kind: str, name: str, want: str) -> dict[str, Any] | None:
    proc = kubectl.run("get", kind, name, "-o", "json", check=False)
    if proc.returncode != 0:
        return None
    obj: dict[str, Any] = json.loads(proc.stdout)
    return obj if (obj.get("status") or {}).get("phase") == want else None


def gone(kubectl: Kubectl, kind: str, name: str) -> bool | None:
    proc = kubectl.run("get", kind, name, "--ignore-not-found", "-o", "name", check=False)
    return (proc.returncode == 0 and not proc.stdout.strip()) or None


def test_static_binding_prebinding_and_protection(kubectl: Kubectl, namespace: str) -> None:
    # Volumes are cluster-scoped: names carry the test's namespace, and they are removed at the end.
    small, big, named = (f"{namespace}-{n}" for n in ("small", "big", "named"))
    try:
        for name, size in ((small, "1Gi"), (big, "5Gi"), (named, "3Gi")):
            kubectl.apply(volume(name, size))
        kubectl.apply(claim("data", "500Mi"))
        kubectl.apply(claim("chosen", "1Gi", volume_name=named))
        kubectl.apply(claim("huge", "100Gi"))

        bound = wait_until(lambda: phase(kubectl, "pvc", "data", "Bound"), "claim data Bound")
        assert bound["spec"]["volumeName"] == small
        assert bound["status"]["capacity"] == {"storage": "1Gi"}
        assert bound["status"]["accessModes"] == ["ReadWriteOnce"]
        annotations = bound["metadata"]["annotations"]
        assert annotations["pv.kubernetes.io/bind-completed"] == "yes"
        assert annotations["pv.kubernetes.io/bound-by-controller"] == "yes"
        assert "kubernetes.io/pvc-protection" in bound["metadata"]["finalizers"]
        pv = wait_until(lambda: phase(kubectl, "pv", small, "Bound"), "volume small Bound")
        ref = pv["spec"]["claimRef"]
        assert (ref["namespace"], ref["name"], ref["uid"]) == (namespace, "data", bound["metadata"]["uid"])
        assert "kubernetes.io/pv-protection" in pv["metadata"]["finalizers"]

        chosen = wait_until(lambda: phase(kubectl, "pvc", "chosen", "Bound"), "claim chosen Bound")
        assert chosen["spec"]["volumeName"] == named
        assert "pv.kubernetes.io/bound-by-controller" not in chosen["metadata"]["annotations"]
        wait_until(lambda: phase(kubectl, "pv", named, "Bound"), "volume named Bound")

        def failed_binding() -> bool | None:
            events = kubectl.json("get", "events", "--field-selector", "involvedObject.name=huge")["items"]
            return any(e.get("reason") == "FailedBinding" for e in events) or None

        wait_until(failed_binding, "FailedBinding event on claim huge")
        assert phase(kubectl, "pvc", "huge", "Pending") is not None
        assert phase(kubectl, "pv", big, "Available") is not None

        # A pod on a node uses the claim: deleting the claim leaves it Terminating.
        node = kubectl.json("get", "nodes", namespaced=False)["items"][0]["metadata"]["name"]
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "user"},
            "spec": {
                "nodeName": node,
                "terminationGracePeriodSeconds": 1,
                "containers": [{"name": "main", "image": "busybox", "command": ["sleep", "3600"]}],
                "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}],
            },
        }
        kubectl.apply(json.dumps(pod))
        kubectl.run("delete", "pvc", "data", "--wait=false")
        held = wait_until(
            lambda: (
                (c := phase(kubectl, "pvc", "data", "Bound")) and c["metadata"].get("deletionTimestamp") and c
            ),
            "claim data Terminating",
        )
        assert held["metadata"]["finalizers"] == ["kubernetes.io/pvc-protection"]
        assert "Terminating" in kubectl.out("get", "pvc", "data")
        assert phase(kubectl, "pv", small, "Bound") is not None

        kubectl.run("delete", "pod", "user", "--wait=false")
        wait_until(lambda: gone(kubectl, "pvc", "data"), "claim data removed once its pod is gone")
        released = wait_until(lambda: phase(kubectl, "pv", small, "Released"), "volume small Released")
        assert released["spec"]["claimRef"]["name"] == "data"  # Retain: kept for the administrator
    finally:
        kubectl.run("delete", "pvc", "--all", "--wait=false", check=False)
        kubectl.run("delete", "pod", "--all", "--wait=false", check=False)
        for name in (small, big, named):
            kubectl.run("delete", "pv", name, "--wait=false", check=False, namespaced=False)
