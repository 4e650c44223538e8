"""Defaults for the storage.k8s.io/v1 kinds beyond StorageClass (which sits with the other small
groups in ``core``): what ``SetDefaults_CSIDriver`` fills in, so a driver object created with only a
name reads back as a 1.33 cluster stores it (and the kubelet side can rely on every field being set).
"""

from __future__ import annotations

from typing import Any


def default_csi_driver(obj: dict[str, Any]) -> None:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        spec = obj["spec"] = {}
    spec.setdefault("attachRequired", True)
    spec.setdefault("podInfoOnMount", False)
    spec.setdefault("storageCapacity", False)
    spec.setdefault("fsGroupPolicy", "ReadWriteOnceWithFSType")
    if not spec.get("volumeLifecycleModes"):
        spec["volumeLifecycleModes"] = ["Persistent"]
    spec.setdefault("requiresRepublish", False)
    # SELinuxMountReadWriteOncePod is on by default since 1.28, and with it this default.
    spec.setdefault("seLinuxMount", False)


def default_volume_attachment(obj: dict[str, Any]) -> None:
    """``status.attached`` has no ``omitempty`` in Go: every VolumeAttachment read shows it."""
    status = obj.setdefault("status", {})
    if isinstance(status, dict):
        status.setdefault("attached", False)
