"""What the external-provisioner role decides, without I/O: which node provisions a claim, the CSI
``CreateVolumeRequest`` for it, and the PersistentVolume that records the result.

Kubernetes' csi-provisioner (kubernetes-csi/external-provisioner) is the reference: the volume is named
``pvc-<claim uid>`` (CreateVolume is idempotent by name, so a retry after a crash finds the same volume),
the StorageClass parameters go to the driver except the ``csi.storage.k8s.io/`` ones it interprets
itself, access modes map to CSI access modes, and the driver's ``accessible_topology`` becomes the PV's
node affinity (one term per topology segment). Our drivers keep volumes on the node whose plugin is
called, so the node chosen here is also where ``CreateVolume`` runs.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cluster.controllers.volume.topology import node_for_pv
from cluster.machinery.quantity import parse_quantity
from nodeagent.csi import csi_pb2

Obj = Mapping[str, Any]

STORAGE_PROVISIONER_ANN = "volume.kubernetes.io/storage-provisioner"
BETA_STORAGE_PROVISIONER_ANN = "volume.beta.kubernetes.io/storage-provisioner"
SELECTED_NODE_ANN = "volume.kubernetes.io/selected-node"
PROVISIONED_BY_ANN = "pv.kubernetes.io/provisioned-by"
PROVISIONER_FINALIZER = "external-provisioner.volume.kubernetes.io/finalizer"
CSI_PARAMETER_PREFIX = "csi.storage.k8s.io/"
FSTYPE_PARAMETER = CSI_PARAMETER_PREFIX + "fstype"

_ACCESS_MODES: dict[str, Any] = {
    "ReadWriteOnce": csi_pb2.VolumeCapability.AccessMode.SINGLE_NODE_WRITER,
    "ReadOnlyMany": csi_pb2.VolumeCapability.AccessMode.MULTI_NODE_READER_ONLY,
    "ReadWriteMany": csi_pb2.VolumeCapability.AccessMode.MULTI_NODE_MULTI_WRITER,
    "ReadWriteOncePod": csi_pb2.VolumeCapability.AccessMode.SINGLE_NODE_SINGLE_WRITER,
}


class TopologyMismatch(ValueError):
    """The chosen node cannot host the volume (the driver is not on it, or the class's
    allowedTopologies exclude it): the scheduler must pick another node."""


def claim_driver(claim: Obj) -> str:
    """The provisioner the PV controller handed the claim to (the GA annotation, else the beta one)."""
    annotations = (claim.get("metadata") or {}).get("annotations") or {}
    return str(
        annotations.get(STORAGE_PROVISIONER_ANN) or annotations.get(BETA_STORAGE_PROVISIONER_ANN) or ""
    )


def selected_node(claim: Obj) -> str:
    return str(((claim.get("metadata") or {}).get("annotations") or {}).get(SELECTED_NODE_ANN) or "")


def volume_name(claim: Obj) -> str:
    """``pvc-<uid>``: the PV name and the CreateVolume name (its idempotency key)."""
    return f"pvc-{(claim.get('metadata') or {}).get('uid', '')}"


def requested_bytes(claim: Obj) -> int:
    request = (((claim.get("spec") or {}).get("resources") or {}).get("requests") or {}).get("storage")
    return int(parse_quantity(request)) if request is not None else 0


def format_bytes(count: int) -> str:
    """A byte count as Kubernetes writes a binary-SI quantity: ``1Gi``, ``512Mi``, else plain bytes."""
    for suffix, power in (("Ei", 60), ("Pi", 50), ("Ti", 40), ("Gi", 30), ("Mi", 20), ("Ki", 10)):
        if count and count % (1 << power) == 0:
            return f"{count >> power}{suffix}"
    return str(count)


# -- topology ----------------------------------------------------------------------------------------


def csi_node_driver(csinode: Obj | None, driver: str) -> Obj | None:
    """The CSINode's entry for ``driver`` (name, nodeID, topologyKeys), or None."""
    for entry in ((csinode or {}).get("spec") or {}).get("drivers") or ():
        if entry.get("name") == driver:
            return dict(entry)
    return None


def node_labels(node: Obj) -> dict[str, str]:
    return dict((node.get("metadata") or {}).get("labels") or {})


def allowed_by_class(storage_class: Obj, labels: Mapping[str, str]) -> bool:
    """The class's ``allowedTopologies`` (terms ORed, expressions ANDed, values In) admit ``labels``;
    a class without them admits every node."""
    terms = storage_class.get("allowedTopologies") or []
    if not terms:
        return True
    return any(
        all(
            labels.get(str(e.get("key"))) in [str(v) for v in e.get("values") or []]
            for e in term.get("matchLabelExpressions") or []
        )
        for term in terms
    )


def node_segment(node: Obj, csinode: Obj | None, driver: str) -> dict[str, str]:
    """The node's topology segment for ``driver``: its values of the keys the driver registered in
    CSINode. Raises TopologyMismatch when the driver is not on the node or a label is missing."""
    name = (node.get("metadata") or {}).get("name", "")
    entry = csi_node_driver(csinode, driver)
    if entry is None:
        raise TopologyMismatch(f'driver "{driver}" is not registered on node "{name}" (no CSINode entry)')
    labels = node_labels(node)
    segment: dict[str, str] = {}
    for key in entry.get("topologyKeys") or ():
        if key not in labels:
            raise TopologyMismatch(f'node "{name}" has no label "{key}", a topology key of driver "{driver}"')
        segment[str(key)] = labels[key]
    return segment


def can_provision_on(node: Obj, csinode: Obj | None, driver: str, storage_class: Obj) -> bool:
    """Whether ``driver`` could create a volume of ``storage_class`` on ``node``."""
    try:
        node_segment(node, csinode, driver)
    except TopologyMismatch:
        return False
    return allowed_by_class(storage_class, node_labels(node))


def pick_immediate_node(
    claim: Obj, nodes: Iterable[Obj], csinodes: Mapping[str, Obj], driver: str, storage_class: Obj
) -> str | None:
    """A node for an Immediate claim: one that can host it, chosen by a hash of the claim's uid so
    claims spread over the eligible nodes and a retry picks the same one."""
    eligible = sorted(
        str(n["metadata"]["name"])
        for n in nodes
        if can_provision_on(n, csinodes.get(n["metadata"]["name"]), driver, storage_class)
    )
    if not eligible:
        return None
    uid = str((claim.get("metadata") or {}).get("uid", ""))
    return eligible[zlib.crc32(uid.encode()) % len(eligible)]


# -- the request and the PersistentVolume ------------------------------------------------------------


def fs_type(storage_class: Obj) -> str:
    return str((storage_class.get("parameters") or {}).get(FSTYPE_PARAMETER) or "")


def volume_capabilities(claim: Obj, storage_class: Obj) -> list[csi_pb2.VolumeCapability]:
    """One capability per access mode; a mount volume (fsType from the class) unless volumeMode Block."""
    spec = claim.get("spec") or {}
    block = spec.get("volumeMode") == "Block"
    caps = []
    for mode in spec.get("accessModes") or ["ReadWriteOnce"]:
        cap = csi_pb2.VolumeCapability(
            access_mode=csi_pb2.VolumeCapability.AccessMode(mode=_ACCESS_MODES.get(mode, 0))
        )
        if block:
            cap.block.SetInParent()
        else:
            cap.mount.fs_type = fs_type(storage_class)
            cap.mount.mount_flags.extend(storage_class.get("mountOptions") or [])
        caps.append(cap)
    return caps


def create_volume_request(
    claim: Obj, storage_class: Obj, segment: Mapping[str, str]
) -> csi_pb2.CreateVolumeRequest:
    """The CreateVolume call for ``claim``; ``segment`` is the chosen node's topology."""
    parameters = {
        str(k): str(v)
        for k, v in (storage_class.get("parameters") or {}).items()
        if not str(k).startswith(CSI_PARAMETER_PREFIX)
    }
    request = csi_pb2.CreateVolumeRequest(
        name=volume_name(claim),
        capacity_range=csi_pb2.CapacityRange(required_bytes=requested_bytes(claim)),
        volume_capabilities=volume_capabilities(claim, storage_class),
        parameters=parameters,
    )
    if segment:
        request.accessibility_requirements.requisite.add(segments=dict(segment))
        request.accessibility_requirements.preferred.add(segments=dict(segment))
    return request


def node_affinity(topologies: Iterable[Mapping[str, str]]) -> dict[str, Any] | None:
    """One nodeSelectorTerm per accessible topology segment (its keys ANDed), as csi-provisioner writes."""
    terms = [
        {
            "matchExpressions": [
                {"key": k, "operator": "In", "values": [v]} for k, v in sorted(segment.items())
            ]
        }
        for segment in topologies
        if segment
    ]
    return {"required": {"nodeSelectorTerms": terms}} if terms else None


@dataclass(frozen=True, slots=True)
class Provisioned:
    """What CreateVolume answered, in plain values."""

    volume_id: str
    capacity_bytes: int
    volume_context: dict[str, str]
    accessible_topology: list[dict[str, str]]

    @staticmethod
    def from_response(response: csi_pb2.CreateVolumeResponse) -> Provisioned:
        volume = response.volume
        return Provisioned(
            volume.volume_id,
            int(volume.capacity_bytes),
            dict(volume.volume_context),
            [dict(t.segments) for t in volume.accessible_topology],
        )


def persistent_volume(claim: Obj, storage_class: Obj, driver: str, result: Provisioned) -> dict[str, Any]:
    """The PV recording a provisioned volume, pre-bound to ``claim`` (by uid) so only it can take it."""
    meta = claim.get("metadata") or {}
    spec = claim.get("spec") or {}
    capacity = result.capacity_bytes or requested_bytes(claim)
    pv_spec: dict[str, Any] = {
        "accessModes": list(spec.get("accessModes") or ["ReadWriteOnce"]),
        "capacity": {"storage": format_bytes(capacity)},
        "claimRef": {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "namespace": meta.get("namespace") or "default",
            "name": meta.get("name", ""),
            "uid": meta.get("uid", ""),
            "resourceVersion": meta.get("resourceVersion", ""),
        },
        "csi": {"driver": driver, "volumeHandle": result.volume_id},
        "persistentVolumeReclaimPolicy": storage_class.get("reclaimPolicy") or "Delete",
        "storageClassName": (storage_class.get("metadata") or {}).get("name", ""),
        "volumeMode": spec.get("volumeMode") or "Filesystem",
    }
    if fs_type(storage_class):
        pv_spec["csi"]["fsType"] = fs_type(storage_class)
    if result.volume_context:
        pv_spec["csi"]["volumeAttributes"] = dict(result.volume_context)
    if storage_class.get("mountOptions"):
        pv_spec["mountOptions"] = list(storage_class["mountOptions"])
    affinity = node_affinity(result.accessible_topology)
    if affinity is not None:
        pv_spec["nodeAffinity"] = affinity
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {
            "name": volume_name(claim),
            "annotations": {PROVISIONED_BY_ANN: driver},
            "finalizers": [PROVISIONER_FINALIZER],
        },
        "spec": pv_spec,
    }


# -- deletion ----------------------------------------------------------------------------------------


def provisioned_by(pv: Obj) -> str:
    return str(((pv.get("metadata") or {}).get("annotations") or {}).get(PROVISIONED_BY_ANN) or "")


def should_delete(pv: Obj) -> bool:
    """A volume this role made whose claim is gone and whose policy is Delete: the volume goes, then
    the PV (csi-provisioner's shouldDelete, with the finalizer it adds)."""
    spec = pv.get("spec") or {}
    if not provisioned_by(pv) or (spec.get("csi") or {}).get("driver") != provisioned_by(pv):
        return False
    return (
        spec.get("persistentVolumeReclaimPolicy") == "Delete"
        and (pv.get("status") or {}).get("phase") == "Released"
    )


def drops_finalizer_only(pv: Obj) -> bool:
    """A PV being deleted whose volume must be kept (Retain): our finalizer just goes."""
    meta = pv.get("metadata") or {}
    return (
        bool(meta.get("deletionTimestamp"))
        and PROVISIONER_FINALIZER in (meta.get("finalizers") or ())
        and (pv.get("spec") or {}).get("persistentVolumeReclaimPolicy") != "Delete"
    )


def node_for_volume(pv: Obj, nodes: Iterable[Obj], csinodes: Mapping[str, Obj]) -> str | None:
    """The node whose plugin can act on the PV's volume: its driver is registered there (CSINode) and
    the PV's node affinity admits it (for node-local volumes, the one node holding the data)."""
    driver = str(((pv.get("spec") or {}).get("csi") or {}).get("driver") or "")
    with_driver = [
        n for n in nodes if csi_node_driver(csinodes.get(str(n["metadata"]["name"])), driver) is not None
    ]
    return node_for_pv(pv, with_driver)
