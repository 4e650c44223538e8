"""Volumes of the core group: PersistentVolumes and PersistentVolumeClaims, and the helpers the
storage.k8s.io kinds share with them (access modes, node selectors, CSI driver names, PV sources).

Rules and messages are Kubernetes 1.33's (``pkg/apis/core/validation``), with its default feature
gates: RecoverVolumeExpansionFailure on (a claim may shrink its request back towards
``status.capacity``, never below it), VolumeAttributesClass off (``volumeAttributesClassName`` may not
change). Where Kubernetes prints a Go value we cannot reproduce (a struct with pointers, a
``cmp.Diff``), the message keeps Kubernetes' words and shows the value as JSON. The storage.k8s.io
kinds are in ``storage``.
"""

from __future__ import annotations

import json
import posixpath
from typing import Any

from cluster.apiserver.validation import names
from cluster.apiserver.validation.fields import (
    Cause,
    GoLiteral,
    as_dict,
    as_list,
    child,
    dicts,
    forbidden,
    immutable,
    index,
    invalid,
    key,
    not_supported,
    required,
    too_long,
)
from cluster.apiserver.validation.meta import validate_label_selector
from cluster.machinery.quantity import QuantityError, parse_quantity

ACCESS_MODES = ("ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod")
VOLUME_MODES = ("Block", "Filesystem")
RECLAIM_POLICIES = ("Delete", "Recycle", "Retain")
HOST_PATH_TYPES = (
    "", "BlockDevice", "CharDevice", "Directory", "DirectoryOrCreate", "File", "FileOrCreate", "Socket",
)  # fmt: skip
BETA_CLASS_ANNOTATION = "volume.beta.kubernetes.io/storage-class"
_NODE_SELECTOR_OPS = ("In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt")
# The volume sources of a PV in the order Kubernetes checks them: the first one counts, every later
# one is "more than 1 volume type" (flexVolume is counted but never refused, as in Kubernetes).
_PV_SOURCES = (
    ("hostPath", "hostPath"), ("gcePersistentDisk", "gcePersistentDisk"),
    ("awsElasticBlockStore", "awsElasticBlockStore"), ("glusterfs", "glusterfs"), ("flocker", "flocker"),
    ("nfs", "nfs"), ("rbd", "rbd"), ("quobyte", "quobyte"), ("cephfs", "cephFS"), ("iscsi", "iscsi"),
    ("cinder", "cinder"), ("fc", "fc"), ("flexVolume", ""), ("azureFile", "azureFile"),
    ("vsphereVolume", "vsphereVolume"), ("photonPersistentDisk", "photonPersistentDisk"),
    ("portworxVolume", "portworxVolume"), ("azureDisk", "azureDisk"), ("scaleIO", "scaleIO"),
    ("local", "local"), ("storageos", "storageos"), ("csi", "csi"),
)  # fmt: skip


# --- shared pieces ---------------------------------------------------------------------------------


def quantity_or_none(value: Any) -> Any:
    try:
        return parse_quantity(value)
    except QuantityError:
        return None


def _positive_quantity(value: Any, path: str) -> list[Cause]:
    q = quantity_or_none(value)
    if q is None:
        return [invalid(path, value, "must be a valid resource quantity")]
    return [] if q > 0 else [invalid(path, str(value), "must be greater than zero")]


def _access_modes(modes: Any, path: str, detail: str) -> list[Cause]:
    values = as_list(modes)
    causes = [] if values else [required(path, detail)]
    rwop = other = False
    for mode in values:
        if mode not in ACCESS_MODES:
            causes.append(not_supported(path, mode, ACCESS_MODES))
        elif mode == "ReadWriteOncePod":
            rwop = True
        else:
            other = True
    if rwop and other:
        causes.append(forbidden(path, "may not use ReadWriteOncePod with other access modes"))
    return causes


def class_name_causes(value: Any, path: str) -> list[Cause]:
    return [invalid(path, value, m) for m in names.subdomain_name(str(value))]


def validate_csi_driver_name(name: Any, path: str) -> list[Cause]:
    """ValidateCSIDriverName: a DNS subdomain (case-insensitive) of at most 63 characters."""
    text = str(name or "")
    causes = [] if text else [required(path)]
    if len(text) > 63:
        causes.append(too_long(path, 63))
    causes.extend(invalid(path, text, m) for m in names.dns1123_subdomain(text.lower()))
    return causes


def _no_backsteps(value: str, path: str) -> list[Cause]:
    return [invalid(path, value, "must not contain '..'")] if ".." in value.split("/") else []


def _node_selector_requirement(req: dict[str, Any], path: str) -> list[Cause]:
    op, values = req.get("operator", ""), as_list(req.get("values"))
    causes: list[Cause] = []
    if op in ("In", "NotIn"):
        if not values:
            causes.append(
                required(child(path, "values"), "must be specified when `operator` is 'In' or 'NotIn'")
            )
    elif op in ("Exists", "DoesNotExist"):
        if values:
            causes.append(
                forbidden(
                    child(path, "values"),
                    "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                )
            )
    elif op in ("Gt", "Lt"):
        if len(values) != 1:
            causes.append(
                required(
                    child(path, "values"), "must be specified single value when `operator` is 'Lt' or 'Gt'"
                )
            )
    else:
        causes.append(invalid(child(path, "operator"), op, "not a valid selector operator"))
    label = str(req.get("key", ""))
    causes.extend(invalid(child(path, "key"), label, m) for m in names.qualified_name(label))
    for i, v in enumerate(values):
        causes.extend(invalid(index(child(path, "values"), i), v, m) for m in names.label_value(str(v)))
    return causes


def _node_field_requirement(req: dict[str, Any], path: str) -> list[Cause]:
    causes: list[Cause] = []
    op = req.get("operator", "")
    if op in ("In", "NotIn"):
        if len(as_list(req.get("values"))) != 1:
            causes.append(
                required(
                    child(path, "values"),
                    "must be only one value when `operator` is 'In' or 'NotIn' for node field selector",
                )
            )
    else:
        causes.append(invalid(child(path, "operator"), op, "not a valid selector operator"))
    if req.get("key") != "metadata.name":
        causes.append(not_supported(child(path, "key"), req.get("key", ""), ("metadata.name",)))
    return causes


def validate_node_selector(selector: Any, path: str) -> list[Cause]:
    """ValidateNodeSelector (a PV's nodeAffinity.required)."""
    terms_path = child(path, "nodeSelectorTerms")
    terms = dicts(as_dict(selector).get("nodeSelectorTerms"))
    if not terms:
        return [required(terms_path, "must have at least one node selector term")]
    causes: list[Cause] = []
    for i, term in enumerate(terms):
        tp = index(terms_path, i)
        for j, req in enumerate(dicts(term.get("matchExpressions"))):
            causes += _node_selector_requirement(req, index(child(tp, "matchExpressions"), j))
        for j, req in enumerate(dicts(term.get("matchFields"))):
            causes += _node_field_requirement(req, index(child(tp, "matchFields"), j))
    return causes


# --- PersistentVolume ------------------------------------------------------------------------------


def _secret_ref(ref: Any, path: str) -> list[Cause]:
    r = as_dict(ref)
    causes: list[Cause] = []
    name, namespace = str(r.get("name") or ""), str(r.get("namespace") or "")
    if not name:
        causes.append(required(child(path, "name")))
    else:
        causes.extend(invalid(child(path, "name"), name, m) for m in names.dns1123_subdomain(name))
    if not namespace:
        causes.append(required(child(path, "namespace")))
    else:
        causes.extend(invalid(child(path, "namespace"), namespace, m) for m in names.dns1123_label(namespace))
    return causes


def _csi_source(csi: dict[str, Any], path: str) -> list[Cause]:
    causes = validate_csi_driver_name(csi.get("driver"), child(path, "driver"))
    if not csi.get("volumeHandle"):
        causes.append(required(child(path, "volumeHandle")))
    for ref in (
        "controllerPublishSecretRef",
        "controllerExpandSecretRef",
        "nodePublishSecretRef",
        "nodeExpandSecretRef",
    ):
        if csi.get(ref) is not None:
            causes += _secret_ref(csi[ref], child(path, ref))
    return causes


def _host_path_source(source: dict[str, Any], path: str) -> list[Cause]:
    p = str(source.get("path") or "")
    if not p:
        return [required(child(path, "path"))]
    causes = _no_backsteps(p, child(path, "path"))
    kind = source.get("type")
    if kind is not None and kind not in HOST_PATH_TYPES:
        causes.append(not_supported(child(path, "type"), kind, HOST_PATH_TYPES))
    return causes


def _nfs_source(source: dict[str, Any], path: str) -> list[Cause]:
    causes: list[Cause] = []
    if not source.get("server"):
        causes.append(required(child(path, "server")))
    p = str(source.get("path") or "")
    if not p:
        causes.append(required(child(path, "path")))
    elif not p.startswith("/"):
        causes.append(invalid(child(path, "path"), p, "must be an absolute path"))
    return causes


def _local_source(source: dict[str, Any], path: str) -> list[Cause]:
    p = str(source.get("path") or "")
    return [required(child(path, "path"))] if not p else _no_backsteps(p, child(path, "path"))


_SOURCE_CHECKS = {
    "hostPath": _host_path_source,
    "nfs": _nfs_source,
    "local": _local_source,
    "csi": _csi_source,
}


def _capacity_literal(capacity: dict[str, Any]) -> GoLiteral:
    if not capacity:
        return GoLiteral("core.ResourceList(nil)")
    items = ", ".join(f"{json.dumps(k)}:{json.dumps(str(v))}" for k, v in sorted(capacity.items()))
    return GoLiteral("core.ResourceList{" + items + "}")


def validate_persistent_volume_spec(spec: dict[str, Any], path: str, *, inline: bool = False) -> list[Cause]:
    """ValidatePersistentVolumeSpec; ``inline`` is a VolumeAttachment's inlineVolumeSpec."""
    causes: list[Cause] = []
    if inline:
        if spec.get("claimRef") is not None:
            causes.append(
                forbidden(child(path, "claimRef"), "may not be specified in the context of inline volumes")
            )
        if as_dict(spec.get("capacity")):
            causes.append(
                forbidden(child(path, "capacity"), "may not be specified in the context of inline volumes")
            )
        if spec.get("csi") is None:
            causes.append(
                required(child(path, "csi"), "has to be specified in the context of inline volumes")
            )
    causes += _access_modes(spec.get("accessModes"), child(path, "accessModes"), "")
    if not inline:
        capacity = as_dict(spec.get("capacity"))
        if not capacity:
            causes.append(required(child(path, "capacity")))
        if "storage" not in capacity or len(capacity) > 1:
            causes.append(not_supported(child(path, "capacity"), _capacity_literal(capacity), ("storage",)))
        for name, value in capacity.items():
            causes += _positive_quantity(value, key(child(path, "capacity"), name))
    policy = spec.get("persistentVolumeReclaimPolicy")
    if policy:
        if inline and policy != "Retain":
            causes.append(
                forbidden(
                    child(path, "persistentVolumeReclaimPolicy"),
                    "may only be Retain in the context of inline volumes",
                )
            )
        elif not inline and policy not in RECLAIM_POLICIES:
            causes.append(
                not_supported(child(path, "persistentVolumeReclaimPolicy"), policy, RECLAIM_POLICIES)
            )
    affinity_set = False
    if spec.get("nodeAffinity") is not None:
        if inline:
            causes.append(
                forbidden(
                    child(path, "nodeAffinity"), "may not be specified in the context of inline volumes"
                )
            )
        else:
            affinity_set = True
            required_terms = as_dict(spec["nodeAffinity"]).get("required")
            if required_terms is None:
                causes.append(
                    required(
                        child(path, "nodeAffinity", "required"), "must specify required node constraints"
                    )
                )
            else:
                causes += validate_node_selector(required_terms, child(path, "nodeAffinity", "required"))
    count = 0
    for field, forbidden_path in _PV_SOURCES:
        source = spec.get(field)
        if source is None:
            continue
        if count > 0 and forbidden_path:
            causes.append(forbidden(child(path, forbidden_path), "may not specify more than 1 volume type"))
            continue
        count += 1
        check = _SOURCE_CHECKS.get(field)
        if check is not None:
            causes += check(as_dict(source), child(path, field))
        if field == "local" and not affinity_set:
            causes.append(required(child(path, "nodeAffinity"), "Local volume requires node affinity"))
    if count == 0:
        causes.append(required(path, "must specify a volume type"))
    host_path = as_dict(spec.get("hostPath"))
    if host_path and posixpath.normpath(str(host_path.get("path") or ".")) == "/" and policy == "Recycle":
        causes.append(
            forbidden(
                child(path, "persistentVolumeReclaimPolicy"),
                "may not be 'recycle' for a hostPath mount of '/'",
            )
        )
    class_name = spec.get("storageClassName")
    if class_name:
        if inline:
            causes.append(
                forbidden(
                    child(path, "storageClassName"), "may not be specified in the context of inline volumes"
                )
            )
        else:
            causes += class_name_causes(class_name, child(path, "storageClassName"))
    mode = spec.get("volumeMode")
    if mode is not None:
        if inline and mode != "Filesystem":
            causes.append(
                forbidden(
                    child(path, "volumeMode"),
                    "may not specify volumeMode other than Filesystem in the context of inline volumes",
                )
            )
        elif not inline and mode not in VOLUME_MODES:
            causes.append(not_supported(child(path, "volumeMode"), mode, VOLUME_MODES))
    return causes


def validate_persistent_volume(pv: dict[str, Any]) -> list[Cause]:
    return validate_persistent_volume_spec(as_dict(pv.get("spec")), "spec")


_PV_NOT_SOURCE = {
    "accessModes", "capacity", "claimRef", "persistentVolumeReclaimPolicy", "storageClassName",
    "mountOptions", "volumeMode", "nodeAffinity", "volumeAttributesClassName",
}  # fmt: skip


def _present(spec: dict[str, Any]) -> dict[str, Any]:
    """``spec`` without null fields: JSON null and absence are one and the same to Go's decoder."""
    return {k: v for k, v in spec.items() if v is not None}


def _json_diff(kind: str, old: dict[str, Any], new: dict[str, Any]) -> str:
    lines = [f"  {kind}{{"]
    for k in sorted(set(old) | set(new)):
        if old.get(k) != new.get(k):
            lines.append(f"- \t{k}: {json.dumps(old.get(k), sort_keys=True)},")
            lines.append(f"+ \t{k}: {json.dumps(new.get(k), sort_keys=True)},")
    lines.append("  }")
    return "\n".join(lines) + "\n"


def validate_persistent_volume_update(new: dict[str, Any], old: dict[str, Any]) -> list[Cause]:
    causes = validate_persistent_volume(new)
    ns, os_ = as_dict(new.get("spec")), as_dict(old.get("spec"))
    new_source = {k: v for k, v in _present(ns).items() if k not in _PV_NOT_SOURCE}
    old_source = {k: v for k, v in _present(os_).items() if k not in _PV_NOT_SOURCE}
    # A CSI volume may gain a controllerExpandSecretRef after creation (for later expansion).
    new_csi, old_csi = as_dict(new_source.get("csi")), as_dict(old_source.get("csi"))
    if new_csi and old_csi and "controllerExpandSecretRef" not in old_csi:
        new_source["csi"] = {k: v for k, v in new_csi.items() if k != "controllerExpandSecretRef"}
    if new_source != old_source:
        diff = _json_diff("core.PersistentVolumeSource", old_source, new_source)
        causes.append(
            forbidden(
                "spec.persistentvolumesource",
                f"spec.persistentvolumesource is immutable after creation\n{diff}",
            )
        )
    if ns.get("volumeMode") != os_.get("volumeMode"):
        causes.append(immutable("volumeMode", ns.get("volumeMode")))
    if os_.get("nodeAffinity") is not None and ns.get("nodeAffinity") != os_["nodeAffinity"]:
        causes.append(immutable("nodeAffinity", ns.get("nodeAffinity")))
    if ns.get("volumeAttributesClassName") != os_.get("volumeAttributesClassName"):
        causes.append(
            forbidden(
                "spec.volumeAttributesClassName",
                "update is forbidden when the VolumeAttributesClass feature gate is disabled",
            )
        )
    return causes


# --- PersistentVolumeClaim -------------------------------------------------------------------------


def _data_source(ref: dict[str, Any], path: str, *, namespaced: bool) -> list[Cause]:
    causes: list[Cause] = []
    if not ref.get("name"):
        causes.append(required(child(path, "name")))
    if not ref.get("kind"):
        causes.append(required(child(path, "kind")))
    group = str(ref.get("apiGroup") or "")
    if not group and ref.get("kind") != "PersistentVolumeClaim":
        causes.append(
            invalid(
                path,
                ref.get("kind", ""),
                "must be 'PersistentVolumeClaim' when referencing the default apiGroup",
            )
        )
    if group:
        causes.extend(invalid(child(path, "apiGroup"), group, m) for m in names.dns1123_subdomain(group))
    namespace = ref.get("namespace")
    if namespaced and namespace:
        causes.extend(
            invalid(child(path, "namespace"), namespace, m) for m in names.label_name(str(namespace))
        )
    return causes


def validate_persistent_volume_claim_spec(spec: dict[str, Any], path: str) -> list[Cause]:
    """ValidatePersistentVolumeClaimSpec (also for StatefulSet volumeClaimTemplates)."""
    causes: list[Cause] = []
    if not as_list(spec.get("accessModes")):
        causes.append(required(child(path, "accessModes"), "at least 1 access mode is required"))
    if spec.get("selector") is not None:
        causes += validate_label_selector(spec["selector"], child(path, "selector"))
    causes += [
        c
        for c in _access_modes(spec.get("accessModes"), child(path, "accessModes"), "")
        if c.type != "FieldValueRequired"
    ]
    requests = as_dict(as_dict(spec.get("resources")).get("requests"))
    storage_path = key(child(path, "resources"), "storage")
    if "storage" not in requests:
        causes.append(required(storage_path))
    else:
        causes += _positive_quantity(requests["storage"], storage_path)
    if spec.get("storageClassName"):
        causes += class_name_causes(spec["storageClassName"], child(path, "storageClassName"))
    mode = spec.get("volumeMode")
    if mode is not None and mode not in VOLUME_MODES:
        causes.append(not_supported(child(path, "volumeMode"), mode, VOLUME_MODES))
    source, source_ref = spec.get("dataSource"), spec.get("dataSourceRef")
    if source is not None:
        causes += _data_source(as_dict(source), child(path, "dataSource"), namespaced=False)
    if source_ref is not None:
        causes += _data_source(as_dict(source_ref), child(path, "dataSourceRef"), namespaced=True)
    if as_dict(source_ref).get("namespace"):
        if source is not None:
            causes.append(
                invalid(
                    path,
                    child(path, "dataSource"),
                    "may not be specified when dataSourceRef.namespace is specified",
                )
            )
    elif source is not None and source_ref is not None:
        s, r = as_dict(source), as_dict(source_ref)
        if (s.get("apiGroup"), s.get("kind"), s.get("name")) != (
            r.get("apiGroup"),
            r.get("kind"),
            r.get("name"),
        ):
            causes.append(invalid(path, child(path, "dataSource"), "must match dataSourceRef"))
    return causes


def validate_persistent_volume_claim(pvc: dict[str, Any]) -> list[Cause]:
    return validate_persistent_volume_claim_spec(as_dict(pvc.get("spec")), "spec")


def claim_class(pvc: dict[str, Any]) -> str:
    """GetPersistentVolumeClaimClass: the beta annotation wins over spec.storageClassName."""
    annotations = as_dict(as_dict(pvc.get("metadata")).get("annotations"))
    if BETA_CLASS_ANNOTATION in annotations:
        return str(annotations[BETA_CLASS_ANNOTATION])
    return str(as_dict(pvc.get("spec")).get("storageClassName") or "")


def _storage_request(pvc: dict[str, Any]) -> Any:
    value = as_dict(as_dict(as_dict(pvc.get("spec")).get("resources")).get("requests")).get("storage")
    q = quantity_or_none(value) if value is not None else None
    return q if q is not None else 0


def validate_persistent_volume_claim_update(new: dict[str, Any], old: dict[str, Any]) -> list[Cause]:
    """ValidatePersistentVolumeClaimUpdate: the spec is fixed once created, except that binding sets
    volumeName once, a bound claim's storage request may change (growth is PersistentVolumeClaimResize's
    business), and a claim created before the default class existed may get one."""
    causes = validate_persistent_volume_claim(new)
    new_spec, old_spec = _present(as_dict(new.get("spec"))), _present(as_dict(old.get("spec")))
    if not old_spec.get("volumeName"):
        old_spec.pop("volumeName", None)
        if "volumeName" in new_spec:
            old_spec["volumeName"] = new_spec["volumeName"]
    old_beta = as_dict(as_dict(old.get("metadata")).get("annotations")).get(BETA_CLASS_ANNOTATION)
    new_beta = as_dict(as_dict(new.get("metadata")).get("annotations")).get(BETA_CLASS_ANNOTATION)
    new_class = new_spec.get("storageClassName")
    if (
        old_beta is not None
        and "storageClassName" not in old_spec
        and new_class == old_beta
        and new_beta in (None, old_beta)
    ):
        # From the beta annotation to the field: the annotation may go as the field takes its value.
        new_spec.pop("storageClassName")
    else:
        if new_beta != old_beta:
            causes.append(
                invalid(
                    child("metadata.annotations", BETA_CLASS_ANNOTATION), new_beta or "", "field is immutable"
                )
            )
        if "storageClassName" not in old_spec and new_class is not None and old_beta in (None, new_class):
            # From no class to one (the 1.28+ retroactive default class assignment), once.
            new_spec.pop("storageClassName")
    if as_dict(new.get("status")).get("phase") == "Bound":
        resources = dict(as_dict(new_spec.get("resources")))
        requests = dict(as_dict(resources.get("requests")))
        old_storage = as_dict(as_dict(old_spec.get("resources")).get("requests")).get("storage")
        if old_storage is None:
            requests.pop("storage", None)
        else:
            requests["storage"] = old_storage
        resources["requests"] = requests
        new_spec["resources"] = resources
    new_spec.pop("volumeAttributesClassName", None)
    if "volumeAttributesClassName" in old_spec:
        new_spec["volumeAttributesClassName"] = old_spec["volumeAttributesClassName"]
    if new_spec != old_spec:
        diff = _json_diff("core.PersistentVolumeClaimSpec", old_spec, new_spec)
        causes.append(
            forbidden(
                "spec",
                "spec is immutable after creation except resources.requests and volumeAttributesClassName "
                f"for bound claims\n{diff}",
            )
        )
    new_size, old_size = _storage_request(new), _storage_request(old)
    status_size = (
        quantity_or_none(as_dict(as_dict(old.get("status")).get("capacity")).get("storage") or 0) or 0
    )
    if new_size < old_size and new_size <= status_size:
        causes.append(
            forbidden("spec.resources.requests.storage", "field can not be less than status.capacity")
        )
    if as_dict(new.get("spec")).get("volumeMode") != as_dict(old.get("spec")).get("volumeMode"):
        causes.append(immutable("volumeMode", as_dict(new.get("spec")).get("volumeMode")))
    if as_dict(new.get("spec")).get("volumeAttributesClassName") != as_dict(old.get("spec")).get(
        "volumeAttributesClassName"
    ):
        causes.append(
            forbidden(
                "spec.volumeAttributesClassName",
                "update is forbidden when the VolumeAttributesClass feature gate is disabled",
            )
        )
    return causes
