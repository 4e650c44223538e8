"""Server-side Tables (``meta.k8s.io/v1`` Table): what ``kubectl get`` prints.

Role: ``to_table`` turns stored objects of one resource into a Table with Kubernetes' own column
definitions and cells (the per-resource printers live in the sibling modules, one per API area);
``table_content_type_requested`` / ``requested_table_version`` read the Accept header.

Request semantics the caller must honour:
- kubectl asks ``Accept: application/json;as=Table;v=v1;g=meta.k8s.io,...;v=v1beta1...,application/json``.
  Reply with a Table of the offered version (v1 preferred); plain ``application/json`` is fine as
  Content-Type.
- ``includeObject`` query parameter: ``None`` (rows carry no object), ``Metadata`` (the default:
  rows carry ``PartialObjectMetadata`` so ``-A``, ``--show-labels`` and ``-L`` work) or ``Object``
  (the full object, sent by ``--sort-by`` and custom columns).
- Pass the list's ``resourceVersion``: ``kubectl get -w`` starts its watch from the Table's one.

Invariants: pure (``now`` is given), never raises for odd stored objects, and cells always include
the wide (priority 1) columns, as kube-apiserver renders them.
"""

from __future__ import annotations

from datetime import datetime
from functools import cache
from typing import Any, Literal

from cluster.apiserver.resources import ResourceInfo
from cluster.apiserver.tables import certificates, cluster, core, networking, storage, workloads
from cluster.apiserver.tables.format import (
    Column,
    TablePrinter,
    created_at_column,
    human_duration,
    name_column,
    name_of,
    rfc3339,
)
from cluster.apiserver.tables.pods import pod_printer
from cluster.machinery.meta import object_meta

IncludeObject = Literal["None", "Metadata", "Object"]
INCLUDE_OBJECT_VALUES: tuple[str, ...] = ("None", "Metadata", "Object")
TABLE_GROUP = "meta.k8s.io"

_PRINTER_FACTORIES = {
    ("", "pods"): pod_printer,
    ("", "nodes"): core.node_printer,
    ("", "namespaces"): core.namespace_printer,
    ("", "services"): core.service_printer,
    ("", "endpoints"): core.endpoints_printer,
    ("", "configmaps"): core.configmap_printer,
    ("", "secrets"): core.secret_printer,
    ("", "serviceaccounts"): core.serviceaccount_printer,
    ("", "events"): core.event_printer,
    ("events.k8s.io", "events"): core.event_printer,
    ("", "persistentvolumes"): core.pv_printer,
    ("", "persistentvolumeclaims"): core.pvc_printer,
    ("", "resourcequotas"): core.resourcequota_printer,
    ("", "limitranges"): core.limitrange_printer,
    ("apps", "deployments"): workloads.deployment_printer,
    ("apps", "replicasets"): workloads.replicaset_printer,
    ("apps", "statefulsets"): workloads.statefulset_printer,
    ("apps", "daemonsets"): workloads.daemonset_printer,
    ("apps", "controllerrevisions"): workloads.controllerrevision_printer,
    ("batch", "jobs"): workloads.job_printer,
    ("batch", "cronjobs"): workloads.cronjob_printer,
    ("networking.k8s.io", "ingresses"): networking.ingress_printer,
    ("networking.k8s.io", "ingressclasses"): networking.ingressclass_printer,
    ("networking.k8s.io", "networkpolicies"): networking.networkpolicy_printer,
    ("discovery.k8s.io", "endpointslices"): networking.endpointslice_printer,
    ("rbac.authorization.k8s.io", "roles"): cluster.role_printer,
    ("rbac.authorization.k8s.io", "clusterroles"): cluster.role_printer,
    ("rbac.authorization.k8s.io", "rolebindings"): cluster.binding_printer,
    ("rbac.authorization.k8s.io", "clusterrolebindings"): cluster.binding_printer,
    ("storage.k8s.io", "storageclasses"): cluster.storageclass_printer,
    ("storage.k8s.io", "csidrivers"): storage.csidriver_printer,
    ("storage.k8s.io", "csinodes"): storage.csinode_printer,
    ("storage.k8s.io", "volumeattachments"): storage.volumeattachment_printer,
    ("storage.k8s.io", "csistoragecapacities"): storage.csistoragecapacity_printer,
    ("scheduling.k8s.io", "priorityclasses"): cluster.priorityclass_printer,
    ("policy", "poddisruptionbudgets"): cluster.pdb_printer,
    ("coordination.k8s.io", "leases"): cluster.lease_printer,
    ("certificates.k8s.io", "certificatesigningrequests"): certificates.csr_printer,
}


def _default_printer() -> TablePrinter:
    """The generic apiserver Table: Name and Created At."""
    return TablePrinter(
        (name_column(), created_at_column()),
        lambda obj, now: [name_of(obj), rfc3339(object_meta(obj).get("creationTimestamp"))],
    )


@cache
def printer_for(group: str, plural: str) -> TablePrinter:
    """The printer of ``group``/``plural``; the default Name/Created At printer when none is specific."""
    factory = _PRINTER_FACTORIES.get((group, plural), _default_printer)
    return factory()


def has_specific_printer(group: str, plural: str) -> bool:
    return (group, plural) in _PRINTER_FACTORIES


def _row_object(obj: dict[str, Any], include_object: str, table_version: str) -> dict[str, Any] | None:
    if include_object == "None":
        return None
    if include_object == "Object":
        return obj
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": f"{TABLE_GROUP}/{table_version}",
        "metadata": object_meta(obj),
    }


def to_table(
    info: ResourceInfo,
    objects: list[dict[str, Any]],
    *,
    now: datetime,
    include_object: str = "Metadata",
    resource_version: str = "",
    continue_token: str = "",
    table_version: str = "v1",
    include_columns: bool = True,
) -> dict[str, Any]:
    """A ``meta.k8s.io/<table_version>`` Table of ``objects`` (all of resource ``info``).

    ``include_object`` is the ``includeObject`` query value (unknown values act as ``Metadata``).
    ``include_columns=False`` omits column definitions (allowed after the first watch event).
    """
    printer = printer_for(info.group, info.plural)
    rows: list[dict[str, Any]] = []
    for obj in objects:
        row: dict[str, Any] = {"cells": printer.row(obj, now)}
        if printer.conditions is not None:
            conditions = printer.conditions(obj)
            if conditions:
                row["conditions"] = conditions
        row_object = _row_object(obj, include_object, table_version)
        if row_object is not None:
            row["object"] = row_object
        rows.append(row)
    metadata: dict[str, Any] = {}
    if resource_version:
        metadata["resourceVersion"] = resource_version
    if continue_token:
        metadata["continue"] = continue_token
    columns: list[dict[str, Any]] = [c.definition() for c in printer.columns] if include_columns else []
    return {
        "kind": "Table",
        "apiVersion": f"{TABLE_GROUP}/{table_version}",
        "metadata": metadata,
        "columnDefinitions": columns,
        "rows": rows,
    }


def requested_table_version(accept: str) -> str | None:
    """``"v1"`` or ``"v1beta1"`` when the Accept header offers a Table (v1 wins), else None."""
    offered: list[str] = []
    for part in accept.split(","):
        pieces = [p.strip() for p in part.split(";")]
        params = {}
        for piece in pieces[1:]:
            key, _, value = piece.partition("=")
            params[key.strip().lower()] = value.strip()
        if (
            params.get("as") == "Table"
            and params.get("g") == TABLE_GROUP
            and params.get("v") in ("v1", "v1beta1")
        ):
            offered.append(params["v"])
    if "v1" in offered:
        return "v1"
    return offered[0] if offered else None


def table_content_type_requested(accept: str) -> bool:
    """True when Accept asks for ``as=Table;g=meta.k8s.io`` with ``v=v1`` or ``v=v1beta1``."""
    return requested_table_version(accept) is not None


__all__ = [
    "INCLUDE_OBJECT_VALUES",
    "Column",
    "IncludeObject",
    "TablePrinter",
    "has_specific_printer",
    "human_duration",
    "printer_for",
    "requested_table_version",
    "table_content_type_requested",
    "to_table",
]
