"""The storage API through the real kubectl 1.33 on the session cluster: discovery, tables, the default
class, protection finalizers, Kubernetes' refusals (an invalid claim, a resize the class forbids, a
shrink) and the CSIDriver/VolumeAttachment objects. The objects here name no real driver, so whatever
volume controllers run leave them unprovisioned."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator

import pytest

from tests.integration.conftest import Kubectl

pytestmark = pytest.mark.integration

PROVISIONER = "example.com/nowhere"  # no plugin answers it: claims of these classes stay Pending


def rows(text: str) -> list[list[str]]:
    """kubectl's table as lists of cells; columns are separated by two or more spaces."""
    return [[cell for cell in line.split("  ") if cell.strip()] for line in text.strip().splitlines()]


def cells(text: str) -> list[list[str]]:
    return [[c.strip() for c in row] for row in rows(text)]


@pytest.fixture
def names(kubectl: Kubectl) -> Iterator[dict[str, str]]:
    """Unique names for the cluster-scoped objects of one test; removed afterwards, finalizers and all
    (the protection controllers need not run for the cleanup to finish)."""
    suffix = secrets.token_hex(3)
    made = {
        "default": f"t-default-{suffix}",
        "fixed": f"t-fixed-{suffix}",
        "pv": f"t-pv-{suffix}",
        "driver": f"t-{suffix}.csi.example.com",
        "va": f"t-va-{suffix}",
    }
    yield made
    # Deleted first, then their finalizers dropped: whatever controller adds one meanwhile (the
    # attacher on the VolumeAttachment) cannot keep the object alive once it is being deleted.
    drop = '{"metadata":{"finalizers":null}}'
    for kind, name, namespaced in (
        ("pvc", "data", True),
        ("pvc", "plain", True),
        ("pv", made["pv"], False),
        ("volumeattachment", made["va"], False),
        ("storageclass", made["default"], False),
        ("storageclass", made["fixed"], False),
        ("csidriver", made["driver"], False),
    ):
        kubectl.run(
            "delete", kind, name, "--wait=false", "--ignore-not-found", check=False, namespaced=namespaced
        )
        kubectl.run("patch", kind, name, "--type=merge", "-p", drop, check=False, namespaced=namespaced)


def test_api_resources_list_the_storage_kinds(kubectl: Kubectl) -> None:
    out = kubectl.out("api-resources", "--api-group=storage.k8s.io", namespaced=False)
    assert [[c.strip() for c in row] for row in rows(out)] == [
        ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"],
        ["csidrivers", "storage.k8s.io/v1", "false", "CSIDriver"],
        ["csinodes", "storage.k8s.io/v1", "false", "CSINode"],
        ["csistoragecapacities", "storage.k8s.io/v1", "true", "CSIStorageCapacity"],
        ["storageclasses", "sc", "storage.k8s.io/v1", "false", "StorageClass"],
        ["volumeattachments", "storage.k8s.io/v1", "false", "VolumeAttachment"],
    ]


def storage_class(name: str, *, default: bool, expand: bool) -> str:
    annotation = '  annotations: {storageclass.kubernetes.io/is-default-class: "true"}\n' if default else ""
    return (
        "apiVersion: storage.k8s.io/v1\nkind: StorageClass\n"
        f"metadata:\n  name: {name}\n{annotation}"
        f"provisioner: {PROVISIONER}\nallowVolumeExpansion: {str(expand).lower()}\n"
    )


def test_claims_volumes_and_classes(kubectl: Kubectl, names: dict[str, str]) -> None:
    kubectl.apply(storage_class(names["fixed"], default=False, expand=False))
    kubectl.apply(storage_class(names["default"], default=True, expand=True))
    sc = cells(kubectl.out("get", "sc", names["default"], names["fixed"], namespaced=False))
    assert sc[0] == [
        "NAME",
        "PROVISIONER",
        "RECLAIMPOLICY",
        "VOLUMEBINDINGMODE",
        "ALLOWVOLUMEEXPANSION",
        "AGE",
    ]
    assert [row[:5] for row in sc[1:]] == [
        [f"{names['default']} (default)", PROVISIONER, "Delete", "Immediate", "true"],
        [names["fixed"], PROVISIONER, "Delete", "Immediate", "false"],
    ]

    # A volume pre-bound to the claim "data", and that claim naming it, in the class that forbids growth.
    kubectl.apply(
        f"""
apiVersion: v1
kind: PersistentVolume
metadata: {{name: {names["pv"]}}}
spec:
  capacity: {{storage: 1Gi}}
  accessModes: [ReadWriteOnce]
  storageClassName: {names["fixed"]}
  claimRef: {{namespace: {kubectl.namespace}, name: data}}
  hostPath: {{path: /tmp/{names["pv"]}}}
"""
    )
    kubectl.apply(
        f"""
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: data}}
spec:
  accessModes: [ReadWriteOnce]
  storageClassName: {names["fixed"]}
  volumeName: {names["pv"]}
  resources: {{requests: {{storage: 1Gi}}}}
"""
    )
    kubectl.apply(
        """
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: plain}
spec:
  accessModes: [ReadWriteOncePod]
  resources: {requests: {storage: 100Mi}}
"""
    )
    pv = kubectl.json("get", "pv", names["pv"], namespaced=False)
    assert pv["metadata"]["finalizers"] == ["kubernetes.io/pv-protection"]
    assert pv["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
    assert pv["spec"]["volumeMode"] == "Filesystem"
    assert "lastPhaseTransitionTime" in pv["status"]
    plain = kubectl.json("get", "pvc", "plain")
    assert plain["metadata"]["finalizers"] == ["kubernetes.io/pvc-protection"]
    assert plain["spec"]["storageClassName"] == names["default"]  # the newest default class
    assert plain["status"]["phase"] == "Pending"

    # Bound, as the PV controller would record it (the status subresource is how it does).
    bound = {"status": {"phase": "Bound", "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"]}}
    kubectl.run("patch", "pvc", "data", "--subresource=status", "--type=merge", "-p", json.dumps(bound))
    pvc = cells(kubectl.out("get", "pvc", "data", "plain"))
    assert pvc[0] == [
        "NAME", "STATUS", "VOLUME", "CAPACITY", "ACCESS MODES", "STORAGECLASS", "VOLUMEATTRIBUTESCLASS",
        "AGE",
    ]  # fmt: skip
    assert pvc[1][:7] == ["data", "Bound", names["pv"], "1Gi", "RWO", names["fixed"], "<unset>"]
    assert pvc[2][:4] == ["plain", "Pending", names["default"], "<unset>"]
    pvs = cells(kubectl.out("get", "pv", names["pv"], namespaced=False))
    assert pvs[0] == [
        "NAME", "CAPACITY", "ACCESS MODES", "RECLAIM POLICY", "STATUS", "CLAIM", "STORAGECLASS",
        "VOLUMEATTRIBUTESCLASS", "REASON", "AGE",
    ]  # fmt: skip
    assert pvs[1][:4] == [names["pv"], "1Gi", "RWO", "Retain"]
    assert pvs[1][5:8] == [f"{kubectl.namespace}/data", names["fixed"], "<unset>"]

    grow = kubectl.fails(
        "patch", "pvc", "data", "-p", '{"spec":{"resources":{"requests":{"storage":"2Gi"}}}}'
    )
    assert grow.strip() == (
        'Error from server (Forbidden): persistentvolumeclaims "data" is forbidden: only dynamically '
        "provisioned pvc can be resized and the storageclass that provisions the pvc must support resize"
    )
    shrink = kubectl.fails(
        "patch", "pvc", "data", "-p", '{"spec":{"resources":{"requests":{"storage":"500Mi"}}}}'
    )
    assert shrink.strip() == (
        'The PersistentVolumeClaim "data" is invalid: spec.resources.requests.storage: Forbidden: '
        "field can not be less than status.capacity"
    )


def test_an_invalid_claim_is_refused(kubectl: Kubectl) -> None:
    err = kubectl.fails(
        "create",
        "-f",
        "-",
        input="apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: bad}\nspec: {}\n",
    )
    # kubectl lists the causes of a 422 one per line.
    assert err.strip().splitlines() == [
        'The PersistentVolumeClaim "bad" is invalid: ',
        "* spec.accessModes: Required value: at least 1 access mode is required",
        "* spec.resources[storage]: Required value",
    ]


def test_csi_driver_defaults_and_volume_attachments(kubectl: Kubectl, names: dict[str, str]) -> None:
    kubectl.apply(f"apiVersion: storage.k8s.io/v1\nkind: CSIDriver\nmetadata: {{name: {names['driver']}}}\n")
    spec = kubectl.json("get", "csidriver", names["driver"], namespaced=False)["spec"]
    assert spec == {
        "attachRequired": True,
        "fsGroupPolicy": "ReadWriteOnceWithFSType",
        "podInfoOnMount": False,
        "requiresRepublish": False,
        "seLinuxMount": False,
        "storageCapacity": False,
        "volumeLifecycleModes": ["Persistent"],
    }
    drivers = cells(kubectl.out("get", "csidriver", names["driver"], namespaced=False))
    assert drivers[0] == [
        "NAME", "ATTACHREQUIRED", "PODINFOONMOUNT", "STORAGECAPACITY", "TOKENREQUESTS", "REQUIRESREPUBLISH",
        "MODES", "AGE",
    ]  # fmt: skip
    assert drivers[1][:7] == [names["driver"], "true", "false", "false", "<unset>", "false", "Persistent"]

    kubectl.apply(
        f"""
apiVersion: storage.k8s.io/v1
kind: VolumeAttachment
metadata: {{name: {names["va"]}}}
spec:
  attacher: {names["driver"]}
  nodeName: nowhere
  source: {{persistentVolumeName: some-pv}}
"""
    )
    # The status subresource takes the attacher's word (the cluster's own attacher, which acts for every
    # driver, may write its own verdict on this node-less attachment right after).
    attached = {"status": {"attached": True, "attachmentMetadata": {"devicePath": "/dev/x"}}}
    written = kubectl.json(
        "patch", "volumeattachment", names["va"], "--subresource=status", "--type=merge",
        "-p", json.dumps(attached), namespaced=False,
    )  # fmt: skip
    assert written["status"]["attached"] is True
    assert written["spec"]["nodeName"] == "nowhere"
    vas = cells(kubectl.out("get", "volumeattachments", names["va"], namespaced=False))
    assert vas[0] == ["NAME", "ATTACHER", "PV", "NODE", "ATTACHED", "AGE"]
    assert vas[1][:4] == [names["va"], names["driver"], "some-pv", "nowhere"]
    assert vas[1][4] in ("true", "false")
    err = kubectl.fails(
        "patch", "volumeattachment", names["va"], "--type=merge", "-p", '{"spec":{"nodeName":"elsewhere"}}',
        namespaced=False,
    )  # fmt: skip
    assert err.startswith(f'The VolumeAttachment "{names["va"]}" is invalid: spec: Invalid value: ')
    assert err.strip().endswith("field is immutable")
