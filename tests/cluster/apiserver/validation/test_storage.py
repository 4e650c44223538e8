"""Validation of PersistentVolumes, claims and the storage.k8s.io kinds: Kubernetes' rules and words."""

from __future__ import annotations

from typing import Any

import pytest

from tests.cluster.apiserver.validation.conftest import create_details, edit, update_details

PV: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "PersistentVolume",
    "metadata": {"name": "pv1"},
    "spec": {
        "accessModes": ["ReadWriteOnce"],
        "capacity": {"storage": "1Gi"},
        "csi": {"driver": "hostpath.csi.raykube.io", "volumeHandle": "vol-1"},
    },
}
PVC: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "PersistentVolumeClaim",
    "metadata": {"name": "data", "namespace": "default"},
    "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
}
SC: dict[str, Any] = {
    "apiVersion": "storage.k8s.io/v1",
    "kind": "StorageClass",
    "metadata": {"name": "fast"},
    "provisioner": "hostpath.csi.raykube.io",
}
DRIVER: dict[str, Any] = {
    "apiVersion": "storage.k8s.io/v1",
    "kind": "CSIDriver",
    "metadata": {"name": "hostpath.csi.raykube.io"},
    "spec": {},
}
CSI_NODE: dict[str, Any] = {
    "apiVersion": "storage.k8s.io/v1",
    "kind": "CSINode",
    "metadata": {"name": "node-1"},
    "spec": {
        "drivers": [
            {
                "name": "hostpath.csi.raykube.io",
                "nodeID": "node-1",
                "topologyKeys": ["topology.hostpath.csi.raykube.io/node"],
            }
        ]
    },
}
VA: dict[str, Any] = {
    "apiVersion": "storage.k8s.io/v1",
    "kind": "VolumeAttachment",
    "metadata": {"name": "csi-0123"},
    "spec": {
        "attacher": "hostpath.csi.raykube.io",
        "nodeName": "node-1",
        "source": {"persistentVolumeName": "pv1"},
    },
}
LOCAL_AFFINITY = {
    "required": {
        "nodeSelectorTerms": [
            {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": ["node-1"]}]}
        ]
    }
}


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        pytest.param(PV, [], id="valid-csi"),
        pytest.param(
            edit(edit(PV, "spec.csi", None), "spec.hostPath", {"path": "/srv/data", "type": "Directory"}),
            [],
            id="valid-hostpath",
        ),
        pytest.param(
            edit(edit(PV, "spec.csi", None), "spec.nfs", {"server": "nfs.example", "path": "/exports"}),
            [],
            id="valid-nfs",
        ),
        pytest.param(
            edit(
                edit(edit(PV, "spec.csi", None), "spec.local", {"path": "/mnt/disks/a"}),
                "spec.nodeAffinity",
                LOCAL_AFFINITY,
            ),
            [],
            id="valid-local",
        ),
        pytest.param(
            edit(PV, "spec.capacity", None),
            [
                "spec.capacity: Required value",
                'spec.capacity: Unsupported value: core.ResourceList(nil): supported values: "storage"',
            ],
            id="no-capacity",
        ),
        pytest.param(
            edit(PV, "spec.capacity.storage", "0"),
            ['spec.capacity[storage]: Invalid value: "0": must be greater than zero'],
            id="zero-capacity",
        ),
        pytest.param(edit(PV, "spec.accessModes", None), ["spec.accessModes: Required value"], id="no-modes"),
        pytest.param(
            edit(PV, "spec.accessModes", ["ReadWriteOnce", "ReadWriteOncePod"]),
            ["spec.accessModes: Forbidden: may not use ReadWriteOncePod with other access modes"],
            id="rwop-mixed",
        ),
        pytest.param(
            edit(PV, "spec.accessModes", ["WriteSometimes"]),
            [
                'spec.accessModes: Unsupported value: "WriteSometimes": supported values: "ReadOnlyMany", '
                '"ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod"'
            ],
            id="bad-mode",
        ),
        pytest.param(
            edit(PV, "spec.csi", None), ["spec: Required value: must specify a volume type"], id="no-source"
        ),
        pytest.param(
            edit(PV, "spec.hostPath", {"path": "/srv"}),
            ["spec.csi: Forbidden: may not specify more than 1 volume type"],
            id="two-sources",
        ),
        pytest.param(
            edit(PV, "spec.persistentVolumeReclaimPolicy", "Keep"),
            [
                'spec.persistentVolumeReclaimPolicy: Unsupported value: "Keep": supported values: '
                '"Delete", "Recycle", "Retain"'
            ],
            id="bad-policy",
        ),
        pytest.param(
            edit(edit(PV, "spec.csi", None), "spec.local", {"path": "/mnt/disks/a"}),
            ["spec.nodeAffinity: Required value: Local volume requires node affinity"],
            id="local-without-affinity",
        ),
        pytest.param(
            edit(PV, "spec.nodeAffinity", {"required": {"nodeSelectorTerms": []}}),
            [
                "spec.nodeAffinity.required.nodeSelectorTerms: Required value: "
                "must have at least one node selector term"
            ],
            id="affinity-no-terms",
        ),
        pytest.param(
            edit(edit(PV, "spec.csi", None), "spec.hostPath", {"path": "/srv/../etc"}),
            ["spec.hostPath.path: Invalid value: \"/srv/../etc\": must not contain '..'"],
            id="hostpath-backsteps",
        ),
        pytest.param(
            edit(edit(PV, "spec.csi", None), "spec.nfs", {"server": "nfs.example", "path": "exports"}),
            ['spec.nfs.path: Invalid value: "exports": must be an absolute path'],
            id="nfs-relative",
        ),
        pytest.param(
            edit(PV, "spec.csi.volumeHandle", None),
            ["spec.csi.volumeHandle: Required value"],
            id="csi-no-handle",
        ),
        pytest.param(
            edit(PV, "spec.volumeMode", "Raw"),
            ['spec.volumeMode: Unsupported value: "Raw": supported values: "Block", "Filesystem"'],
            id="bad-volume-mode",
        ),
    ],
)
def test_persistent_volume(obj: dict[str, Any], expected: list[str]) -> None:
    assert create_details(obj, namespaced=False) == expected


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        pytest.param(PVC, [], id="valid"),
        pytest.param(
            edit(PVC, "spec.resources", None), ["spec.resources[storage]: Required value"], id="no-storage"
        ),
        pytest.param(
            edit(PVC, "spec.accessModes", None),
            ["spec.accessModes: Required value: at least 1 access mode is required"],
            id="no-modes",
        ),
        pytest.param(
            edit(PVC, "spec.resources.requests.storage", "0"),
            ['spec.resources[storage]: Invalid value: "0": must be greater than zero'],
            id="zero",
        ),
        pytest.param(
            edit(PVC, "spec.storageClassName", "Fast_SSD"),
            [
                'spec.storageClassName: Invalid value: "Fast_SSD": a lowercase RFC 1123 subdomain '
                "must consist of lower case alphanumeric characters, '-' or '.', and must start and end "
                "with an alphanumeric character (e.g. 'example.com', regex used for validation is "
                "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
            ],
            id="bad-class",
        ),
        pytest.param(
            edit(PVC, "spec.dataSource", {"kind": "Snapshot", "name": "s"}),
            [
                'spec.dataSource: Invalid value: "Snapshot": '
                "must be 'PersistentVolumeClaim' when referencing the default apiGroup"
            ],
            id="data-source-kind",
        ),
    ],
)
def test_persistent_volume_claim(obj: dict[str, Any], expected: list[str]) -> None:
    assert create_details(obj) == expected


def bound(pvc: dict[str, Any], capacity: str = "1Gi") -> dict[str, Any]:
    out = edit(pvc, "spec.volumeName", "pv1")
    return edit(out, "status", {"phase": "Bound", "capacity": {"storage": capacity}})


SPEC_IMMUTABLE = (
    "spec: Forbidden: spec is immutable after creation except resources.requests and "
    "volumeAttributesClassName for bound claims"
)


def test_claim_binding_sets_volume_name_once() -> None:
    assert update_details(edit(PVC, "spec.volumeName", "pv1"), PVC) == []
    changed = update_details(edit(bound(PVC), "spec.volumeName", "pv2"), bound(PVC))
    assert [d.split("\n")[0] for d in changed] == [SPEC_IMMUTABLE]


def test_a_bound_claim_may_grow_but_not_shrink_below_its_capacity() -> None:
    assert update_details(edit(bound(PVC), "spec.resources.requests.storage", "2Gi"), bound(PVC)) == []
    assert update_details(edit(bound(PVC), "spec.resources.requests.storage", "500Mi"), bound(PVC)) == [
        "spec.resources.requests.storage: Forbidden: field can not be less than status.capacity"
    ]
    # An expansion that failed may be taken back to anything above the capacity it had.
    grown = edit(bound(PVC), "spec.resources.requests.storage", "4Gi")
    assert update_details(edit(grown, "spec.resources.requests.storage", "2Gi"), grown) == []


def test_an_unbound_claim_keeps_its_request() -> None:
    details = update_details(edit(PVC, "spec.resources.requests.storage", "2Gi"), PVC)
    assert [d.split("\n")[0] for d in details] == [SPEC_IMMUTABLE]
    assert "storage" in details[0]


def test_claim_class_may_be_set_once_when_absent_but_not_changed() -> None:
    assert update_details(edit(PVC, "spec.storageClassName", "standard"), PVC) == []
    null_class = {**PVC, "spec": {**PVC["spec"], "storageClassName": None}}
    assert update_details(edit(PVC, "spec.storageClassName", "standard"), null_class) == []
    classed = edit(PVC, "spec.storageClassName", "standard")
    details = update_details(edit(classed, "spec.storageClassName", "fast"), classed)
    assert [d.split("\n")[0] for d in details] == [SPEC_IMMUTABLE]


def test_pv_source_and_mode_are_immutable() -> None:
    details = update_details(edit(PV, "spec.csi.volumeHandle", "vol-2"), PV, namespaced=False)
    assert [d.split("\n")[0] for d in details] == [
        "spec.persistentvolumesource: Forbidden: spec.persistentvolumesource is immutable after creation"
    ]
    assert update_details(edit(PV, "spec.volumeMode", "Block"), PV, namespaced=False) == [
        'volumeMode: Invalid value: "Block": field is immutable'
    ]
    # Binding and reclaim policy changes are what the PV controller and users do all the time.
    claimed = edit(PV, "spec.claimRef", {"namespace": "default", "name": "data", "uid": "u1"})
    assert (
        update_details(edit(claimed, "spec.persistentVolumeReclaimPolicy", "Delete"), PV, namespaced=False)
        == []
    )


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        pytest.param(SC, [], id="valid"),
        pytest.param(edit(SC, "provisioner", None), ["provisioner: Required value"], id="no-provisioner"),
        pytest.param(
            edit(SC, "reclaimPolicy", "Recycle"),
            ['reclaimPolicy: Unsupported value: "Recycle": supported values: "Delete", "Retain"'],
            id="recycle",
        ),
        pytest.param(
            edit(SC, "volumeBindingMode", "Later"),
            [
                'volumeBindingMode: Unsupported value: "Later": supported values: '
                '"Immediate", "WaitForFirstConsumer"'
            ],
            id="binding-mode",
        ),
        pytest.param(
            edit(SC, "parameters", {"": "x"}),
            ['parameters: Invalid value: "": field can not be empty.'],
            id="param",
        ),
    ],
)
def test_storage_class(obj: dict[str, Any], expected: list[str]) -> None:
    assert create_details(obj, namespaced=False) == expected


def test_storage_class_update() -> None:
    sc = edit(SC, "parameters", {"type": "fast"})
    assert update_details(edit(sc, "allowVolumeExpansion", True), sc, namespaced=False) == []
    assert update_details(edit(sc, "parameters", {"type": "slow"}), sc, namespaced=False) == [
        "parameters: Forbidden: updates to parameters are forbidden."
    ]
    assert update_details(edit(sc, "reclaimPolicy", "Retain"), sc, namespaced=False) == [
        "reclaimPolicy: Forbidden: updates to reclaimPolicy are forbidden."
    ]
    assert update_details(edit(sc, "volumeBindingMode", "WaitForFirstConsumer"), sc, namespaced=False) == [
        'volumeBindingMode: Invalid value: "WaitForFirstConsumer": field is immutable'
    ]


def test_csi_driver() -> None:
    assert create_details(DRIVER, namespaced=False) == []
    assert create_details(edit(DRIVER, "spec.fsGroupPolicy", "Some"), namespaced=False) == [
        'spec.fsGroupPolicy: Unsupported value: "Some": supported values: "File", "None", '
        '"ReadWriteOnceWithFSType"'
    ]
    assert create_details(edit(DRIVER, "spec.volumeLifecycleModes", ["Forever"]), namespaced=False) == [
        'spec.volumeLifecycleModes: Unsupported value: "Forever": supported values: "Persistent", "Ephemeral"'
    ]
    assert update_details(edit(DRIVER, "spec.attachRequired", False), DRIVER, namespaced=False) == [
        "spec.attachedRequired: Invalid value: false: field is immutable"
    ]
    assert update_details(edit(DRIVER, "spec.podInfoOnMount", True), DRIVER, namespaced=False) == []


def test_csi_node() -> None:
    assert create_details(CSI_NODE, namespaced=False) == []
    twice = edit(CSI_NODE, "spec.drivers", CSI_NODE["spec"]["drivers"] * 2)
    assert create_details(twice, namespaced=False) == [
        'spec.drivers[1].name: Duplicate value: "hostpath.csi.raykube.io"'
    ]
    assert create_details(edit(CSI_NODE, "spec.drivers.0.nodeID", ""), namespaced=False) == [
        "spec.drivers[0].nodeID: Required value"
    ]
    moved = edit(CSI_NODE, "spec.drivers.0.nodeID", "node-2")
    assert [d.split(":")[0] for d in update_details(moved, CSI_NODE, namespaced=False)] == ["spec.drivers"]
    assert update_details(edit(CSI_NODE, "spec.drivers", []), CSI_NODE, namespaced=False) == []


def test_volume_attachment() -> None:
    assert create_details(VA, namespaced=False) == []
    assert create_details(edit(VA, "spec.source", {}), namespaced=False) == [
        "spec.source: Required value: must specify exactly one of inlineVolumeSpec and persistentVolumeName"
    ]
    both = edit(
        VA, "spec.source.inlineVolumeSpec", {"accessModes": ["ReadWriteOnce"], "csi": PV["spec"]["csi"]}
    )
    assert create_details(both, namespaced=False) == [
        "spec.source: Forbidden: must specify exactly one of inlineVolumeSpec and persistentVolumeName"
    ]
    assert create_details(edit(VA, "spec.attacher", None), namespaced=False) == [
        "spec.attacher: Required value"
    ]
    assert create_details(edit(VA, "spec.nodeName", "Node_1"), namespaced=False)[0].startswith(
        'spec.nodeName: Invalid value: "Node_1": a lowercase RFC 1123 subdomain'
    )
    details = update_details(edit(VA, "spec.nodeName", "node-2"), VA, namespaced=False)
    assert [d.split(":")[0] for d in details] == ["spec"] and details[0].endswith("field is immutable")
    attached = edit(VA, "status", {"attached": True, "attachmentMetadata": {"path": "/dev/x"}})
    assert update_details(attached, VA, namespaced=False) == []
