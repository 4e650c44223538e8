"""Table printers for RBAC, storage, scheduling, policy and coordination, mirroring kubectl's printers.

Role: roles, clusterroles, rolebindings, clusterrolebindings, storageclasses, priorityclasses,
poddisruptionbudgets and leases. Pure functions of (object, now).
"""

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
    as_int,
    as_list,
    created_at_column,
    field_doc,
    get,
    name_column,
    name_of,
    rfc3339,
)
from cluster.machinery.meta import object_meta

_DEFAULT_CLASS_ANNOTATIONS = (
    "storageclass.kubernetes.io/is-default-class",
    "storageclass.beta.kubernetes.io/is-default-class",
)


def role_printer() -> TablePrinter:
    """Roles and ClusterRoles: Name and Created At."""
    return TablePrinter(
        (name_column(), created_at_column()),
        lambda role, now: [name_of(role), rfc3339(object_meta(role).get("creationTimestamp"))],
    )


def _binding_row(binding: Obj, now: datetime) -> list[Any]:
    users: list[str] = []
    groups: list[str] = []
    service_accounts: list[str] = []
    for subject in as_list(binding.get("subjects")):
        kind = get(subject, "kind")
        name = str(get(subject, "name", default=""))
        if kind == "User":
            users.append(name)
        elif kind == "Group":
            groups.append(name)
        elif kind == "ServiceAccount":
            service_accounts.append(f"{get(subject, 'namespace', default='')}:{name}")
    role_ref = as_dict(binding.get("roleRef"))
    return [
        name_of(binding),
        f"{role_ref.get('kind', '')}/{role_ref.get('name', '')}",
        age(binding, now),
        ", ".join(users),
        ", ".join(groups),
        ", ".join(service_accounts),
    ]


def binding_printer() -> TablePrinter:
    """RoleBindings and ClusterRoleBindings: Role, Age; wide adds Users, Groups, ServiceAccounts."""
    return TablePrinter(
        (
            name_column(),
            Column("Role", "string", field_doc("V1RoleBinding", "roleRef")),
            age_column(),
            Column("Users", "string", "Users in the roleBinding", priority=1),
            Column("Groups", "string", "Groups in the roleBinding", priority=1),
            Column("ServiceAccounts", "string", "ServiceAccounts in the roleBinding", priority=1),
        ),
        _binding_row,
    )


def _storage_class_row(sc: Obj, now: datetime) -> list[Any]:
    annotations = as_dict(object_meta(sc).get("annotations"))
    name = name_of(sc)
    if any(annotations.get(a) == "true" for a in _DEFAULT_CLASS_ANNOTATIONS):
        name += " (default)"
    return [
        name,
        str(sc.get("provisioner") or ""),
        str(sc.get("reclaimPolicy") or "Delete"),
        str(sc.get("volumeBindingMode") or "Immediate"),
        sc.get("allowVolumeExpansion") is True,
        age(sc, now),
    ]


def storageclass_printer() -> TablePrinter:
    return TablePrinter(
        (
            name_column(),
            Column("Provisioner", "string", field_doc("V1StorageClass", "provisioner")),
            Column("ReclaimPolicy", "string", field_doc("V1StorageClass", "reclaimPolicy")),
            Column("VolumeBindingMode", "string", field_doc("V1StorageClass", "volumeBindingMode")),
            Column("AllowVolumeExpansion", "string", field_doc("V1StorageClass", "allowVolumeExpansion")),
            age_column(),
        ),
        _storage_class_row,
    )


def priorityclass_printer() -> TablePrinter:
    return TablePrinter(
        (
            name_column(),
            Column("Value", "integer", field_doc("V1PriorityClass", "value")),
            Column("Global-Default", "boolean", field_doc("V1PriorityClass", "globalDefault")),
            Column("Preemption Policy", "string", field_doc("V1PriorityClass", "preemptionPolicy")),
            age_column(),
        ),
        lambda pc, now: [
            name_of(pc),
            as_int(pc.get("value", 0)),
            pc.get("globalDefault") is True,
            str(pc.get("preemptionPolicy") or "PreemptLowerPriority"),
            age(pc, now),
        ],
    )


def _int_or_percent(value: Any) -> str:
    return "N/A" if value is None else str(value)


def pdb_printer() -> TablePrinter:
    return TablePrinter(
        (
            name_column(),
            Column("Min Available", "string", "The minimum number of pods that must be available."),
            Column("Max Unavailable", "string", "The maximum number of pods that may be unavailable."),
            Column(
                "Allowed Disruptions",
                "integer",
                "Calculated number of pods that may be disrupted at this time.",
            ),
            age_column(),
        ),
        lambda pdb, now: [
            name_of(pdb),
            _int_or_percent(get(pdb, "spec", "minAvailable")),
            _int_or_percent(get(pdb, "spec", "maxUnavailable")),
            as_int(get(pdb, "status", "disruptionsAllowed", default=0)),
            age(pdb, now),
        ],
    )


def lease_printer() -> TablePrinter:
    return TablePrinter(
        (
            name_column(),
            Column("Holder", "string", field_doc("V1LeaseSpec", "holderIdentity")),
            age_column(),
        ),
        lambda lease, now: [
            name_of(lease),
            str(get(lease, "spec", "holderIdentity", default="")),
            age(lease, now),
        ],
    )
