"""The storage.k8s.io/v1 kinds: StorageClass, CSIDriver, CSINode, VolumeAttachment and
CSIStorageCapacity, with Kubernetes 1.33's rules and messages (``pkg/apis/storage/validation``).
PersistentVolumes and claims, and the helpers shared with them, are in ``volumes``.
"""

from __future__ import annotations

from typing import Any

from cluster.apiserver.validation import names
from cluster.apiserver.validation.fields import (
    Cause,
    as_dict,
    as_list,
    child,
    dicts,
    duplicate,
    forbidden,
    immutable,
    index,
    invalid,
    not_supported,
    required,
    too_long,
)
from cluster.apiserver.validation.meta import validate_label_selector
from cluster.apiserver.validation.volumes import (
    class_name_causes,
    quantity_or_none,
    validate_csi_driver_name,
    validate_persistent_volume_spec,
)

BINDING_MODES = ("Immediate", "WaitForFirstConsumer")
CLASS_RECLAIM_POLICIES = ("Delete", "Retain")
FS_GROUP_POLICIES = ("File", "None", "ReadWriteOnceWithFSType")
LIFECYCLE_MODES = ("Persistent", "Ephemeral")
_CSI_NODE_ID_MAX = 256
_MAX_ATTACH_METADATA_SIZE = 256 * 1024
_MAX_PARAMETERS_SIZE = 256 * 1024
_MAX_PARAMETERS = 512
_MAX_VOLUME_ERROR_MESSAGE = 1024


def _parameters(params: Any, path: str) -> list[Cause]:
    values = as_dict(params)
    if len(values) > _MAX_PARAMETERS:
        return [too_long(path, _MAX_PARAMETERS)]
    causes = [invalid(path, k, "field can not be empty.") for k in values if not k]
    if sum(len(k) + len(str(v)) for k, v in values.items()) > _MAX_PARAMETERS_SIZE:
        causes.append(too_long(path, _MAX_PARAMETERS_SIZE))
    return causes


def _topology_term(term: dict[str, Any], path: str) -> tuple[dict[str, frozenset[str]], list[Cause]]:
    seen: dict[str, frozenset[str]] = {}
    causes: list[Cause] = []
    for i, req in enumerate(dicts(term.get("matchLabelExpressions"))):
        p = index(child(path, "matchLabelExpressions"), i)
        label = str(req.get("key") or "")
        causes.extend(invalid(child(p, "key"), label, m) for m in names.qualified_name(label))
        values = [str(v) for v in as_list(req.get("values"))]
        if not values:
            causes.append(required(child(p, "values")))
        for j, v in enumerate(values):
            causes.extend(invalid(index(child(p, "values"), j), v, m) for m in names.label_value(v))
        if label in seen:
            causes.append(duplicate(child(p, "key"), label))
        seen[label] = frozenset(values)
    if term and not term.get("matchLabelExpressions"):
        causes.append(
            required(child(path, "matchLabelExpressions"), "must have at least one label expression")
        )
    return seen, causes


def validate_storage_class(sc: dict[str, Any]) -> list[Cause]:
    causes: list[Cause] = []
    provisioner = str(sc.get("provisioner") or "")
    if not provisioner:
        causes.append(required("provisioner"))
    else:
        causes.extend(
            invalid("provisioner", provisioner, m) for m in names.qualified_name(provisioner.lower())
        )
    causes += _parameters(sc.get("parameters"), "parameters")
    policy = sc.get("reclaimPolicy")
    if policy and policy not in CLASS_RECLAIM_POLICIES:
        causes.append(not_supported("reclaimPolicy", policy, CLASS_RECLAIM_POLICIES))
    mode = sc.get("volumeBindingMode")
    if mode is None:
        causes.append(required("volumeBindingMode"))
    elif mode not in BINDING_MODES:
        causes.append(not_supported("volumeBindingMode", mode, BINDING_MODES))
    terms: list[dict[str, frozenset[str]]] = []
    for i, term in enumerate(dicts(sc.get("allowedTopologies"))):
        p = index("allowedTopologies", i)
        seen, term_causes = _topology_term(term, p)
        causes += term_causes
        if seen in terms:
            causes.append(duplicate(child(p, "matchLabelExpressions"), ""))
        terms.append(seen)
    return causes


def validate_storage_class_update(new: dict[str, Any], old: dict[str, Any]) -> list[Cause]:
    causes: list[Cause] = []
    for field in ("parameters", "provisioner", "reclaimPolicy"):
        if new.get(field) != old.get(field):
            causes.append(forbidden(field, f"updates to {field} are forbidden."))
    if new.get("volumeBindingMode") != old.get("volumeBindingMode"):
        causes.append(immutable("volumeBindingMode", new.get("volumeBindingMode")))
    return causes


def validate_csi_driver(driver: dict[str, Any]) -> list[Cause]:
    spec = as_dict(driver.get("spec"))
    causes: list[Cause] = []
    for field, path in (
        ("attachRequired", "spec.attachedRequired"),
        ("podInfoOnMount", "spec.podInfoOnMount"),
        ("storageCapacity", "spec.storageCapacity"),
    ):
        if spec.get(field) is None:
            causes.append(required(path))
    policy = spec.get("fsGroupPolicy")
    if policy is not None and policy not in FS_GROUP_POLICIES:
        causes.append(not_supported("spec.fsGroupPolicy", policy, FS_GROUP_POLICIES))
    audiences: set[str] = set()
    for i, request in enumerate(dicts(spec.get("tokenRequests"))):
        p = index("spec.tokenRequests", i)
        audience = str(request.get("audience") or "")
        if audience in audiences:
            causes.append(duplicate(child(p, "audience"), audience))
            continue
        audiences.add(audience)
        seconds = request.get("expirationSeconds")
        if isinstance(seconds, int):
            if seconds < 600:
                causes.append(
                    invalid(
                        child(p, "expirationSeconds"),
                        seconds,
                        "may not specify a duration less than 10 minutes",
                    )
                )
            if seconds > 1 << 32:
                causes.append(
                    invalid(
                        child(p, "expirationSeconds"),
                        seconds,
                        "may not specify a duration larger than 2^32 seconds",
                    )
                )
    for mode in as_list(spec.get("volumeLifecycleModes")):
        if mode not in LIFECYCLE_MODES:
            causes.append(not_supported("spec.volumeLifecycleModes", mode, LIFECYCLE_MODES))
    if spec.get("seLinuxMount") is None:
        causes.append(required("spec.seLinuxMount"))
    period = spec.get("nodeAllocatableUpdatePeriodSeconds")
    if isinstance(period, int) and period < 10:
        causes.append(
            invalid(
                "spec.nodeAllocatableUpdatePeriodSeconds",
                period,
                "must be greater than or equal to 10 seconds",
            )
        )
    return causes


def validate_csi_driver_update(new: dict[str, Any], old: dict[str, Any]) -> list[Cause]:
    ns, os_ = as_dict(new.get("spec")), as_dict(old.get("spec"))
    causes: list[Cause] = []
    if ns.get("attachRequired") != os_.get("attachRequired"):
        causes.append(immutable("spec.attachedRequired", ns.get("attachRequired")))
    if ns.get("volumeLifecycleModes") != os_.get("volumeLifecycleModes"):
        causes.append(immutable("spec.volumeLifecycleModes", ns.get("volumeLifecycleModes")))
    return causes


def validate_csi_node(node: dict[str, Any]) -> list[Cause]:
    causes: list[Cause] = []
    seen: set[str] = set()
    for i, driver in enumerate(dicts(as_dict(node.get("spec")).get("drivers"))):
        p = index("spec.drivers", i)
        name = str(driver.get("name") or "")
        causes += validate_csi_driver_name(name, child(p, "name"))
        node_id = str(driver.get("nodeID") or "")
        if not node_id:
            causes.append(required(child(p, "nodeID")))
        if len(node_id) > _CSI_NODE_ID_MAX:
            causes.append(
                invalid(child(p, "nodeID"), node_id, f"must be {_CSI_NODE_ID_MAX} characters or less")
            )
        count = as_dict(driver.get("allocatable")).get("count")
        if isinstance(count, int) and count < 0:
            causes.append(
                invalid(child(p, "allocatable", "count"), count, "must be greater than or equal to 0")
            )
        if name in seen:
            causes.append(duplicate(child(p, "name"), name))
        seen.add(name)
        keys: set[str] = set()
        for topology_key in (str(k) for k in as_list(driver.get("topologyKeys"))):
            if not topology_key:
                causes.append(required(p))
            if topology_key in keys:
                causes.append(duplicate(p, topology_key))
            keys.add(topology_key)
            causes.extend(invalid(p, topology_key, m) for m in names.qualified_name(topology_key))
    return causes


def validate_csi_node_update(new: dict[str, Any], old: dict[str, Any]) -> list[Cause]:
    """A driver entry, once registered, changes only by being removed and added again."""
    causes: list[Cause] = []
    old_drivers = {d.get("name"): d for d in dicts(as_dict(old.get("spec")).get("drivers"))}
    for driver in dicts(as_dict(new.get("spec")).get("drivers")):
        before = old_drivers.get(driver.get("name"))
        if before is not None and before != driver:
            causes.append(immutable("spec.drivers", driver))
    return causes


def validate_volume_attachment(va: dict[str, Any]) -> list[Cause]:
    spec = as_dict(va.get("spec"))
    causes: list[Cause] = []
    attacher = spec.get("attacher") or ""
    if not attacher:
        causes.append(required("spec.attacher"))
    source = as_dict(spec.get("source"))
    pv_name, inline = source.get("persistentVolumeName"), source.get("inlineVolumeSpec")
    detail = "must specify exactly one of inlineVolumeSpec and persistentVolumeName"
    if pv_name is None and inline is None:
        causes.append(required("spec.source", detail))
    elif pv_name is not None and inline is not None:
        causes.append(forbidden("spec.source", detail))
    elif pv_name is not None:
        if not pv_name:
            causes.append(
                required("spec.source.persistentVolumeName", "must specify non empty persistentVolumeName")
            )
    else:
        causes += validate_persistent_volume_spec(
            as_dict(inline), "spec.source.inlineVolumeSpec", inline=True
        )
    node_name = str(spec.get("nodeName") or "")
    causes.extend(invalid("spec.nodeName", node_name, m) for m in names.subdomain_name(node_name))
    status = as_dict(va.get("status"))
    metadata = as_dict(status.get("attachmentMetadata"))
    if sum(len(k) + len(str(v)) for k, v in metadata.items()) > _MAX_ATTACH_METADATA_SIZE:
        causes.append(too_long("status.attachmentMetadata", _MAX_ATTACH_METADATA_SIZE))
    for field in ("attachError", "detachError"):
        error = as_dict(status.get(field))
        if len(str(error.get("message") or "")) > _MAX_VOLUME_ERROR_MESSAGE:
            causes.append(too_long(f"status.{field}.message", _MAX_ATTACH_METADATA_SIZE))
        code = error.get("errorCode")
        if isinstance(code, int) and code < 0:
            causes.append(
                invalid(f"status.{field}.errorCode", code, names.inclusive_range_error(0, 2**31 - 1))
            )
    # v1 only: the attacher is a CSI driver name and the PV name an object name.
    causes += validate_csi_driver_name(attacher, "spec.attacher") if attacher else []
    if pv_name:
        causes.extend(
            invalid("spec.source.persistentVolumeName", pv_name, m)
            for m in names.subdomain_name(str(pv_name))
        )
    return causes


def validate_volume_attachment_update(new: dict[str, Any], old: dict[str, Any]) -> list[Cause]:
    if as_dict(new.get("spec")) != as_dict(old.get("spec")):
        return [immutable("spec", as_dict(new.get("spec")))]
    return []


def validate_csi_storage_capacity(capacity: dict[str, Any]) -> list[Cause]:
    causes: list[Cause] = []
    if capacity.get("nodeTopology") is not None:
        causes += validate_label_selector(capacity["nodeTopology"], "nodeTopology")
    causes += class_name_causes(capacity.get("storageClassName") or "", "storageClassName")
    for field in ("capacity", "maximumVolumeSize"):
        if capacity.get(field) is not None:
            q = quantity_or_none(capacity[field])
            if q is None or q < 0:
                causes.append(invalid(field, capacity[field], "must be greater than or equal to 0"))
    return causes


def validate_csi_storage_capacity_update(new: dict[str, Any], old: dict[str, Any]) -> list[Cause]:
    causes: list[Cause] = []
    for field in ("nodeTopology", "storageClassName"):
        if new.get(field) != old.get(field):
            causes.append(immutable(field, new.get(field)))
    return causes
