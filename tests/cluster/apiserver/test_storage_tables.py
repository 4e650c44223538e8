"""``kubectl get`` for the storage kinds: kube-apiserver's columns and cells."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from cluster.apiserver.resources import lookup
from cluster.apiserver.tables import to_table

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
META = {"name": "x", "creationTimestamp": "2024-05-01T11:55:00Z"}


def table(group: str, plural: str, obj: dict[str, Any]) -> tuple[list[str], list[Any]]:
    info = lookup(group, "v1", plural)
    assert info is not None
    out = to_table(info, [obj], now=NOW)
    return [c["name"] for c in out["columnDefinitions"]], out["rows"][0]["cells"]


@pytest.mark.parametrize(
    ("group", "plural", "obj", "columns", "cells"),
    [
        pytest.param(
            "storage.k8s.io",
            "csidrivers",
            {"metadata": META, "spec": {"attachRequired": False, "podInfoOnMount": True,
                                          "volumeLifecycleModes": ["Persistent", "Ephemeral"]}},
            ["Name", "AttachRequired", "PodInfoOnMount", "StorageCapacity", "TokenRequests",
             "RequiresRepublish", "Modes", "Age"],
            ["x", False, True, False, "<unset>", False, "Persistent,Ephemeral", "5m"],
            id="csidriver",
        ),
        pytest.param(
            "storage.k8s.io",
            "csidrivers",
            {"metadata": META, "spec": {"tokenRequests": [{"audience": "a"}, {"audience": "b"}]}},
            None,
            ["x", True, False, False, "a,b", False, "<none>", "5m"],
            id="csidriver-unset-fields",
        ),
        pytest.param(
            "storage.k8s.io",
            "csinodes",
            {"metadata": META, "spec": {"drivers": [{"name": "d", "nodeID": "n"}]}},
            ["Name", "Drivers", "Age"],
            ["x", 1, "5m"],
            id="csinode",
        ),
        pytest.param(
            "storage.k8s.io",
            "volumeattachments",
            {"metadata": META, "spec": {"attacher": "d.csi", "nodeName": "n1",
                                          "source": {"persistentVolumeName": "pv1"}},
             "status": {"attached": True}},
            ["Name", "Attacher", "PV", "Node", "Attached", "Age"],
            ["x", "d.csi", "pv1", "n1", True, "5m"],
            id="volumeattachment",
        ),
        pytest.param(
            "storage.k8s.io",
            "storageclasses",
            {"metadata": {**META, "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
             "provisioner": "hostpath.csi.raykube.io", "reclaimPolicy": "Delete",
             "volumeBindingMode": "WaitForFirstConsumer", "allowVolumeExpansion": True},
            ["Name", "Provisioner", "ReclaimPolicy", "VolumeBindingMode", "AllowVolumeExpansion", "Age"],
            ["x (default)", "hostpath.csi.raykube.io", "Delete", "WaitForFirstConsumer", True, "5m"],
            id="storageclass-default",
        ),
        pytest.param(
            "",
            "persistentvolumeclaims",
            {"metadata": META, "spec": {"volumeName": "pv1", "storageClassName": "standard",
                                          "volumeMode": "Filesystem"},
             "status": {"phase": "Bound", "capacity": {"storage": "1Gi"},
                        "accessModes": ["ReadWriteOncePod", "ReadWriteOnce"]}},
            ["Name", "Status", "Volume", "Capacity", "Access Modes", "StorageClass", "VolumeAttributesClass",
             "Age", "VolumeMode"],
            ["x", "Bound", "pv1", "1Gi", "RWO,RWOP", "standard", "<unset>", "5m", "Filesystem"],
            id="pvc-bound",
        ),
        pytest.param(
            "",
            "persistentvolumes",
            {"metadata": META, "spec": {"capacity": {"storage": "2Gi"}, "accessModes": ["ReadWriteMany"],
                                          "persistentVolumeReclaimPolicy": "Retain",
                                          "claimRef": {"namespace": "default", "name": "data"},
                                          "storageClassName": "standard"},
             "status": {"phase": "Bound"}},
            ["Name", "Capacity", "Access Modes", "Reclaim Policy", "Status", "Claim", "StorageClass",
             "VolumeAttributesClass", "Reason", "Age", "VolumeMode"],
            ["x", "2Gi", "RWX", "Retain", "Bound", "default/data", "standard", "<unset>", "", "5m",
             "<unset>"],
            id="pv-bound",
        ),
    ],
)  # fmt: skip
def test_storage_tables(
    group: str, plural: str, obj: dict[str, Any], columns: list[str] | None, cells: list[Any]
) -> None:
    got_columns, got_cells = table(group, plural, obj)
    if columns is not None:
        assert got_columns == columns
    assert got_cells == cells
