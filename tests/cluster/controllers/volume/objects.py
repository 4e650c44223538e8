"""Claims, volumes and classes as the API server returns them, for the volume controllers' tests."""

from __future__ import annotations

from typing import Any


def pv(
    name: str,
    size: str = "1Gi",
    *,
    modes: tuple[str, ...] = ("ReadWriteOnce",),
    klass: str = "",
    phase: str = "Available",
    claim_ref: dict[str, Any] | None = None,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    reclaim: str = "Retain",
    mode: str | None = None,
    deleting: bool = False,
    csi: dict[str, Any] | None = None,
    affinity: dict[str, list[str]] | None = None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "uid": f"uid-{name}"}
    if labels:
        meta["labels"] = labels
    if annotations:
        meta["annotations"] = annotations
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    spec: dict[str, Any] = {
        "capacity": {"storage": size},
        "accessModes": list(modes),
        "persistentVolumeReclaimPolicy": reclaim,
    }
    if klass:
        spec["storageClassName"] = klass
    if claim_ref:
        spec["claimRef"] = claim_ref
    if mode:
        spec["volumeMode"] = mode
    spec["csi"] = csi or {"driver": "hostpath.csi.raykube.io", "volumeHandle": f"handle-{name}"}
    if affinity:
        terms = [
            {"matchExpressions": [{"key": k, "operator": "In", "values": v} for k, v in affinity.items()]}
        ]
        spec["nodeAffinity"] = {"required": {"nodeSelectorTerms": terms}}
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": meta,
        "spec": spec,
        "status": {"phase": phase},
    }


def pvc(
    name: str,
    size: str = "1Gi",
    *,
    namespace: str = "ns",
    modes: tuple[str, ...] = ("ReadWriteOnce",),
    klass: str | None = "",
    volume_name: str = "",
    selector: dict[str, Any] | None = None,
    annotations: dict[str, str] | None = None,
    phase: str = "Pending",
    mode: str | None = None,
    status: dict[str, Any] | None = None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "uid": f"uid-{name}",
        "resourceVersion": "7",
    }
    if annotations:
        meta["annotations"] = annotations
    spec: dict[str, Any] = {"accessModes": list(modes), "resources": {"requests": {"storage": size}}}
    if klass is not None:
        spec["storageClassName"] = klass
    if volume_name:
        spec["volumeName"] = volume_name
    if selector is not None:
        spec["selector"] = selector
    if mode:
        spec["volumeMode"] = mode
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": meta,
        "spec": spec,
        "status": status if status is not None else {"phase": phase},
    }


def ref(name: str, *, namespace: str = "ns", uid: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": "PersistentVolumeClaim", "namespace": namespace, "name": name}
    if uid is not None:
        out["uid"] = uid
    return out


def storage_class(
    name: str, provisioner: str = "hostpath.csi.raykube.io", mode: str = "Immediate"
) -> dict[str, Any]:
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {"name": name},
        "provisioner": provisioner,
        "volumeBindingMode": mode,
        "reclaimPolicy": "Delete",
    }
