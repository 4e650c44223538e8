"""Claim expansion through real kubectl 1.33 against `raykube up`, with the built-in hostpath driver.

A claim of the default class ``standard`` (WaitForFirstConsumer, allowVolumeExpansion) is provisioned
for a running pod; ``kubectl patch`` asks for twice the size. The ``persistentvolume-expander`` calls
``ControllerExpandVolume`` on the node holding the volume and the PV's capacity grows; the driver asks
for node expansion, so the claim gets ``FileSystemResizePending`` (unless the node agent's
NodeExpandVolume already grew it online). After the pod is restarted the claim's ``status.capacity``
is the new size and the resize conditions are gone; the claim carries
``volume.kubernetes.io/storage-resizer`` and the events ``ExternalExpanding`` and ``Resizing``.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any, TypeVar

import pytest

from tests.integration import support
from tests.integration import volume_scenarios as vs
from tests.integration.conftest import Kubectl, RaykubeCluster

pytestmark = pytest.mark.integration

wait_until = functools.partial(support.wait_until, timeout=90.0)
T = TypeVar("T")


@pytest.fixture(scope="module")
def image(raykube_cluster: RaykubeCluster) -> str:
    """The busybox root the process runtime needs to mount a volume at a new path (``/data``)."""
    return vs.install_rooted_busybox(raykube_cluster.data_dir)


def user_pod(image: str) -> str:
    container = vs.container("main", image, vs.SLEEP, [{"name": "data", "mountPath": "/data"}])
    return vs.pod("user", [container], [{"name": "data", "persistentVolumeClaim": {"claimName": "grow"}}])


def waited(kubectl: Kubectl, probe: Callable[[], T | None], what: str) -> T:
    """``wait_until``, failing with the claim, the pod, the volumes and the events in the message."""
    try:
        return wait_until(probe, what)
    except AssertionError as err:
        state = kubectl.out("get", "pod,pvc", "-o", "wide") + kubectl.out("get", "pv", namespaced=False)
        state += kubectl.out("get", "events") + kubectl.out("get", "pvc", "grow", "-o", "yaml")
        raise AssertionError(f"{err}\n{state}") from None


def reasons(kubectl: Kubectl, name: str) -> set[str]:
    events = kubectl.json("get", "events", "--field-selector", f"involvedObject.name={name}")["items"]
    return {e.get("reason", "") for e in events}


def test_expand_a_claim_and_restart_its_pod(kubectl: Kubectl, image: str) -> None:
    kubectl.apply(vs.claim("grow", None, "32Mi"))
    kubectl.apply(user_pod(image))
    try:

        def running() -> bool | None:
            pod = kubectl.json("get", "pod", "user")
            return (pod.get("status") or {}).get("phase") == "Running" or None

        waited(kubectl, running, "pod user Running on its provisioned claim")
        claim = kubectl.json("get", "pvc", "grow")
        assert claim["status"]["phase"] == "Bound"
        volume_name = claim["spec"]["volumeName"]

        patch = {"spec": {"resources": {"requests": {"storage": "64Mi"}}}}
        kubectl.run("patch", "pvc", "grow", "--type=merge", "-p", json.dumps(patch))

        def volume_grown() -> dict[str, Any] | None:
            volume: dict[str, Any] = kubectl.json("get", "pv", volume_name, namespaced=False)
            return volume if volume["spec"]["capacity"]["storage"] == "64Mi" else None

        waited(kubectl, volume_grown, "the volume's capacity 64Mi")

        def claim_status() -> dict[str, Any] | None:
            status: dict[str, Any] = kubectl.json("get", "pvc", "grow").get("status") or {}
            kinds = {c.get("type") for c in status.get("conditions") or ()}
            done = status.get("capacity", {}).get("storage") == "64Mi"
            return status if done or "FileSystemResizePending" in kinds else None

        # The controller's part is done; the node grows the file system online if it can, otherwise
        # when the volume is next staged. As kube's condition message says: restart the pod.
        waited(kubectl, claim_status, "FileSystemResizePending or the claim's capacity 64Mi")
        assert {"ExternalExpanding", "Resizing"} <= reasons(kubectl, "grow")
        kubectl.run("delete", "pod", "user")
        kubectl.apply(user_pod(image))
        waited(kubectl, running, "pod user Running again")

        def claim_grown() -> dict[str, Any] | None:
            grown: dict[str, Any] = kubectl.json("get", "pvc", "grow")
            return grown if (grown.get("status") or {}).get("capacity", {}).get("storage") == "64Mi" else None

        grown = waited(kubectl, claim_grown, "the claim's capacity 64Mi")
        kinds = {c.get("type") for c in grown["status"].get("conditions") or ()}
        assert not kinds & {"Resizing", "FileSystemResizePending"}, grown["status"]
        assert (
            grown["metadata"]["annotations"]["volume.kubernetes.io/storage-resizer"]
            == "hostpath.csi.raykube.io"
        )
        assert {"FileSystemResizeRequired", "VolumeResizeSuccessful"} & reasons(kubectl, "grow")
    finally:
        kubectl.run("delete", "pod", "user", "--wait=false", check=False)
        kubectl.run("delete", "pvc", "grow", "--wait=false", check=False)
