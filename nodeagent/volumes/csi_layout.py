"""Where CSI volumes live on the node's disk, and the ``vol_data.json`` records that name them.

The kubelet's layout under the agent's data dir: a volume is published for a pod at
``pods/<uid>/volumes/kubernetes.io~csi/<pv name or inline volume name>/mount`` and staged once per node
at ``plugins/kubernetes.io/csi/<driver>/<sha256(handle)>/globalmount``. Beside each ``mount`` and
``globalmount`` a ``vol_data.json`` (Kubernetes' keys: ``specVolID``, ``volumeHandle``,
``driverName``, ``nodeName``, ``attachmentID``, ``volumeLifecycleMode``) says which volume it is, so
unpublish, unstage and a restarted agent's cleanup need nothing but the disk.

Names derived as Kubernetes derives them: the VolumeAttachment ``csi-<sha256(handle+driver+node)>``
and an inline volume's handle ``csi-<sha256(pod uid + volume name)>``.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
from collections.abc import Mapping

from cluster.machinery import mountinfo

PLUGIN_DIR = "kubernetes.io~csi"
VOL_DATA = "vol_data.json"


def attachment_name(handle: str, driver: str, node: str) -> str:
    """The VolumeAttachment's name for a volume on a node."""
    return "csi-" + hashlib.sha256(f"{handle}{driver}{node}".encode()).hexdigest()


def ephemeral_handle(pod_uid: str, volume_name: str) -> str:
    """The volume handle of an inline (ephemeral) CSI volume."""
    return "csi-" + hashlib.sha256(f"{pod_uid}{volume_name}".encode()).hexdigest()


def staging_root(data_dir: str) -> str:
    return os.path.join(data_dir, "plugins", "kubernetes.io", "csi")


def staging_path(data_dir: str, driver: str, handle: str) -> str:
    """Where a volume is staged on this node: one ``globalmount`` per driver and handle."""
    return os.path.join(
        staging_root(data_dir), driver, hashlib.sha256(handle.encode()).hexdigest(), "globalmount"
    )


def target_path(data_dir: str, pod_uid: str, volume_name: str) -> str:
    """Where a pod's CSI volume is published (``volume_name`` is the PV's name for a claim)."""
    return os.path.join(data_dir, "pods", pod_uid, "volumes", PLUGIN_DIR, volume_name, "mount")


def read_vol_data(volume_dir: str) -> dict[str, str] | None:
    """The ``vol_data.json`` of a volume directory (the parent of ``mount``/``globalmount``), if any."""
    try:
        with open(os.path.join(volume_dir, VOL_DATA), encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_vol_data(volume_dir: str, data: Mapping[str, str]) -> None:
    """Write the record atomically (a crash leaves the old one or the new one)."""
    os.makedirs(volume_dir, mode=0o750, exist_ok=True)
    tmp = os.path.join(volume_dir, VOL_DATA + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(dict(data), f, sort_keys=True)
    os.replace(tmp, os.path.join(volume_dir, VOL_DATA))


def remove_volume_dir(mount_dir: str) -> bool:
    """Remove an unmounted ``mount``/``globalmount`` dir, its ``vol_data.json`` and their parent
    (each only if present and, for the dirs, empty); False, removing nothing, while ``mount_dir`` is
    still a mount point."""
    if mountinfo.is_mount_point(mount_dir):
        return False
    parent = os.path.dirname(mount_dir)
    with contextlib.suppress(FileNotFoundError):
        os.rmdir(mount_dir)
    with contextlib.suppress(FileNotFoundError):
        os.remove(os.path.join(parent, VOL_DATA))
    with contextlib.suppress(FileNotFoundError):
        os.rmdir(parent)
    return True


def published_volumes(data_dir: str) -> dict[str, dict[str, str]]:
    """Every CSI volume published on this node: its target dir (``.../mount``) -> its record."""
    pattern = os.path.join(glob.escape(data_dir), "pods", "*", "volumes", PLUGIN_DIR, "*", VOL_DATA)
    return _records(pattern, "mount")


def staged_volumes(data_dir: str) -> dict[str, dict[str, str]]:
    """Every staged volume on this node: its staging dir (``.../globalmount``) -> its record."""
    return _records(os.path.join(glob.escape(staging_root(data_dir)), "*", "*", VOL_DATA), "globalmount")


def _records(pattern: str, leaf: str) -> dict[str, dict[str, str]]:
    out = {}
    for path in sorted(glob.glob(pattern)):
        volume_dir = os.path.dirname(path)
        data = read_vol_data(volume_dir)
        if data is not None:
            out[os.path.join(volume_dir, leaf)] = data
    return out
