"""Table printers for the storage.k8s.io kinds other than StorageClass (in ``cluster``): csidrivers,
csinodes, volumeattachments and csistoragecapacities, with kube-apiserver's columns and cells
(``pkg/printers/internalversion``). Pure functions of (object, now)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from cluster.apiserver.tables.format import (
    Column,
    Obj,
    TablePrinter,
    age,
    age_column,
    as_dict,
    as_list,
    field_doc,
    get,
    name_column,
    name_of,
)


def _flag(spec: dict[str, Any], field: str, default: bool) -> bool:
    value = spec.get(field)
    return value if isinstance(value, bool) else default


def _csi_driver_row(driver: Obj, now: datetime) -> list[Any]:
    spec = as_dict(driver.get("spec"))
    modes = ",".join(str(m) for m in as_list(spec.get("volumeLifecycleModes"))) or "<none>"
    requests = spec.get("tokenRequests")
    tokens = (
        ",".join(str(get(r, "audience", default="")) for r in as_list(requests))
        if requests is not None
        else "<unset>"
    )
    return [
        name_of(driver),
        _flag(spec, "attachRequired", True),
        _flag(spec, "podInfoOnMount", False),
        _flag(spec, "storageCapacity", False),
        tokens,
        _flag(spec, "requiresRepublish", False),
        modes,
        age(driver, now),
    ]


def csidriver_printer() -> TablePrinter:
    def doc(field: str) -> str:
        return field_doc("V1CSIDriverSpec", field)

    return TablePrinter(
        (
            name_column(),
            Column("AttachRequired", "boolean", doc("attachRequired")),
            Column("PodInfoOnMount", "boolean", doc("podInfoOnMount")),
            Column("StorageCapacity", "boolean", doc("storageCapacity")),
            Column("TokenRequests", "string", doc("tokenRequests")),
            Column("RequiresRepublish", "boolean", doc("requiresRepublish")),
            Column("Modes", "string", doc("volumeLifecycleModes")),
            age_column(),
        ),
        _csi_driver_row,
    )


def csinode_printer() -> TablePrinter:
    return TablePrinter(
        (
            name_column(),
            Column(
                "Drivers", "integer", "Drivers indicates the number of CSI drivers registered on the node"
            ),
            age_column(),
        ),
        lambda node, now: [name_of(node), len(as_list(get(node, "spec", "drivers"))), age(node, now)],
    )


def _volume_attachment_row(va: Obj, now: datetime) -> list[Any]:
    spec = as_dict(va.get("spec"))
    return [
        name_of(va),
        str(spec.get("attacher") or ""),
        str(get(spec, "source", "persistentVolumeName", default="") or ""),
        str(spec.get("nodeName") or ""),
        get(va, "status", "attached") is True,
        age(va, now),
    ]


def volumeattachment_printer() -> TablePrinter:
    return TablePrinter(
        (
            name_column(),
            Column("Attacher", "string", field_doc("V1VolumeAttachmentSpec", "attacher"), format="name"),
            Column("PV", "string", field_doc("V1VolumeAttachmentSource", "persistentVolumeName")),
            Column("Node", "string", field_doc("V1VolumeAttachmentSpec", "nodeName")),
            Column("Attached", "boolean", field_doc("V1VolumeAttachmentStatus", "attached")),
            age_column(),
        ),
        _volume_attachment_row,
    )


def csistoragecapacity_printer() -> TablePrinter:
    return TablePrinter(
        (
            name_column(),
            Column("StorageClassName", "string", field_doc("V1CSIStorageCapacity", "storageClassName")),
            Column("Capacity", "string", field_doc("V1CSIStorageCapacity", "capacity")),
        ),
        lambda capacity, now: [
            name_of(capacity),
            str(capacity.get("storageClassName") or ""),
            str(capacity["capacity"]) if capacity.get("capacity") is not None else "<unset>",
        ],
    )
