"""The storage objects a cluster with the built-in volume plugin starts with: the CSIDriver of
``hostpath.csi.raykube.io`` and the default StorageClass ``standard`` that provisions from it.

``raykube up`` creates them (when ``--volume-plugin`` is ``hostpath``, the default) once the API
server answers, as an installer does for a cluster's default driver; a cluster run with another
plugin gets neither (its driver's installer brings its own). Existing objects of these names are
left as they are: an administrator may have changed them.
"""

from __future__ import annotations

from typing import Any

from cluster.client.errors import ApiError
from cluster.client.rest import ApiClient

HOSTPATH_DRIVER = "hostpath.csi.raykube.io"
DEFAULT_CLASS = "standard"
DEFAULT_CLASS_ANNOTATION = "storageclass.kubernetes.io/is-default-class"


def hostpath_csidriver() -> dict[str, Any]:
    """Node-local volumes: nothing to attach; pod information in NodePublishVolume's volume context
    (as kubelet passes it with podInfoOnMount); usable as claims and as inline ephemeral volumes."""
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "CSIDriver",
        "metadata": {"name": HOSTPATH_DRIVER},
        "spec": {
            "attachRequired": False,
            "podInfoOnMount": True,
            "volumeLifecycleModes": ["Persistent", "Ephemeral"],
        },
    }


def standard_storageclass() -> dict[str, Any]:
    """The default class: claims without a class get a hostpath volume, made on the node their first
    pod is scheduled to (WaitForFirstConsumer: a node-local volume must follow its pod), deleted with
    the claim, and growable."""
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {"name": DEFAULT_CLASS, "annotations": {DEFAULT_CLASS_ANNOTATION: "true"}},
        "provisioner": HOSTPATH_DRIVER,
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "WaitForFirstConsumer",
        "allowVolumeExpansion": True,
    }


async def ensure_storage_defaults(client: ApiClient) -> list[str]:
    """Create what is missing of the two; returns ``kind/name`` of those created."""
    created = []
    for plural, obj in (("csidrivers", hostpath_csidriver()), ("storageclasses", standard_storageclass())):
        try:
            await client.create("storage.k8s.io/v1", plural, obj)
        except ApiError as e:
            if not e.already_exists:
                raise
            continue
        created.append(f"{obj['kind']}/{obj['metadata']['name']}")
    return created


async def ensure_with_kubeconfig(path: str) -> list[str]:
    """``ensure_storage_defaults`` as the admin of the kubeconfig at ``path`` (``raykube up``)."""
    client = ApiClient.from_kubeconfig(path)
    try:
        return await ensure_storage_defaults(client)
    finally:
        await client.close()
