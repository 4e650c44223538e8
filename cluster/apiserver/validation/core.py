"""Core (v1) kinds other than Pods and Services: Namespaces, Nodes, ConfigMaps, Secrets,
ServiceAccounts, Events (v1 and events.k8s.io), ResourceQuotas and LimitRanges (PersistentVolumes and
claims are in ``storage``).

Data sizes count decoded bytes: Secret `data` values are base64 on the wire.
"""

from __future__ import annotations

import base64
import binascii
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
    key,
    not_supported,
    required,
    too_long,
)
from cluster.machinery.quantity import QuantityError, parse_quantity

MAX_SECRET_SIZE = 1024 * 1024
_TAINT_EFFECTS = ("NoExecute", "NoSchedule", "PreferNoSchedule")


def _decoded_len(value: Any) -> int:
    try:
        return len(base64.b64decode(str(value), validate=True))
    except (binascii.Error, ValueError):
        return len(str(value))


def _validate_keys(data: Any, path: str) -> list[Cause]:
    return [invalid(key(path, k), k, m) for k in as_dict(data) for m in names.config_map_key(k)]


def validate_config_map(cm: dict[str, Any]) -> list[Cause]:
    data, binary = as_dict(cm.get("data")), as_dict(cm.get("binaryData"))
    causes = _validate_keys(data, "data")
    causes += [
        invalid(key("data", k), k, "duplicate of key present in binaryData") for k in data if k in binary
    ]
    causes += _validate_keys(binary, "binaryData")
    causes += [
        invalid(key("binaryData", k), k, "duplicate of key present in data") for k in binary if k in data
    ]
    total = sum(len(str(v).encode()) for v in data.values()) + sum(_decoded_len(v) for v in binary.values())
    if total > MAX_SECRET_SIZE:
        causes.append(too_long("", MAX_SECRET_SIZE))
    return causes


def _immutable_payload(new: dict[str, Any], old: dict[str, Any], fields: tuple[str, ...]) -> list[Cause]:
    if old.get("immutable") is not True:
        return []
    causes: list[Cause] = []
    if new.get("immutable") is not True:
        causes.append(forbidden("immutable", "field is immutable when `immutable` is set"))
    causes.extend(
        forbidden(f, "field is immutable when `immutable` is set")
        for f in fields
        if as_dict(new.get(f)) != as_dict(old.get(f))
    )
    return causes


def validate_config_map_update(new: dict[str, Any], old: dict[str, Any]) -> list[Cause]:
    return _immutable_payload(new, old, ("data", "binaryData")) + validate_config_map(new)


_SECRET_REQUIRED_KEYS = {
    "kubernetes.io/dockercfg": (".dockercfg",),
    "kubernetes.io/dockerconfigjson": (".dockerconfigjson",),
    "kubernetes.io/ssh-auth": ("ssh-privatekey",),
    "kubernetes.io/tls": ("tls.crt", "tls.key"),
}


def validate_secret(secret: dict[str, Any]) -> list[Cause]:
    data = as_dict(secret.get("data"))
    causes = _validate_keys(data, "data")
    if sum(_decoded_len(v) for v in data.values()) > MAX_SECRET_SIZE:
        causes.append(too_long("data", MAX_SECRET_SIZE))
    secret_type = secret.get("type") or "Opaque"
    if secret_type == "kubernetes.io/service-account-token":
        annotations = as_dict(as_dict(secret.get("metadata")).get("annotations"))
        if not annotations.get("kubernetes.io/service-account.name"):
            causes.append(required(key("metadata.annotations", "kubernetes.io/service-account.name")))
    elif secret_type == "kubernetes.io/basic-auth" and "username" not in data and "password" not in data:
        causes += [required(key("data", "username")), required(key("data", "password"))]
    for k in _SECRET_REQUIRED_KEYS.get(secret_type, ()):
        if k not in data:
            causes.append(required(key("data", k)))
    return causes


def validate_secret_update(new: dict[str, Any], old: dict[str, Any]) -> list[Cause]:
    causes: list[Cause] = []
    if (new.get("type") or "Opaque") != (old.get("type") or "Opaque"):
        causes.append(immutable("type", new.get("type", "")))
    return causes + _immutable_payload(new, old, ("data",)) + validate_secret(new)


def validate_namespace(ns: dict[str, Any]) -> list[Cause]:
    causes: list[Cause] = []
    for f in as_list(as_dict(ns.get("spec")).get("finalizers")):
        msgs = names.qualified_name(str(f))
        causes.extend(invalid("spec.finalizers", f, m) for m in msgs)
        if not msgs and "/" not in str(f) and f != "kubernetes":
            causes.append(
                invalid(
                    "spec.finalizers",
                    f,
                    "name is neither a standard finalizer name nor is it fully qualified",
                )
            )
    return causes


def _pod_cidrs(spec: dict[str, Any]) -> list[str]:
    """``spec.podCIDRs``, or ``[spec.podCIDR]`` when only the single field is set (v1's two views of
    one list, as kube's conversion reads them)."""
    cidrs = [str(c) for c in as_list(spec.get("podCIDRs"))]
    return cidrs or ([str(spec["podCIDR"])] if spec.get("podCIDR") else [])


def validate_node_cidrs(spec: dict[str, Any]) -> list[Cause]:
    """Each podCIDR a valid CIDR; two only as a dual-stack pair; none twice; ``podCIDR`` is
    ``podCIDRs[0]`` when both are given."""
    causes: list[Cause] = []
    cidrs = [str(c) for c in as_list(spec.get("podCIDRs"))]
    for i, c in enumerate(cidrs):
        causes.extend(invalid(index("spec.podCIDRs", i), c, m) for m in names.cidr(c))
    single = spec.get("podCIDR")
    if single:
        causes.extend(invalid("spec.podCIDR", single, m) for m in names.cidr(str(single)))
        if cidrs and cidrs[0] != single:
            causes.append(invalid("spec.podCIDR", single, "must match the first entry of spec.podCIDRs"))
    families = {names.ip_family(c) for c in cidrs}
    if len(cidrs) > 2 or (len(cidrs) == 2 and None not in families and len(families) != 2):
        causes.append(invalid("spec.podCIDRs", cidrs, "may specify no more than one CIDR for each IP family"))
    seen: set[str] = set()
    for i, c in enumerate(cidrs):
        if c in seen:
            causes.append(duplicate(index("spec.podCIDRs", i), c))
        seen.add(c)
    return causes


def validate_node(node: dict[str, Any]) -> list[Cause]:
    spec = as_dict(node.get("spec"))
    causes = validate_node_cidrs(spec)
    for i, taint in enumerate(dicts(spec.get("taints"))):
        p = index("spec.taints", i)
        causes.extend(
            invalid(child(p, "key"), taint.get("key", ""), m)
            for m in names.qualified_name(str(taint.get("key", "")))
        )
        if taint.get("value"):
            causes.extend(
                invalid(child(p, "value"), taint["value"], m) for m in names.label_value(str(taint["value"]))
            )
        effect = taint.get("effect") or ""
        if not effect:
            causes.append(required(child(p, "effect")))
        elif effect not in _TAINT_EFFECTS:
            causes.append(not_supported(child(p, "effect"), effect, _TAINT_EFFECTS))
    return causes


def validate_node_update(new: dict[str, Any], old: dict[str, Any]) -> list[Cause]:
    causes = validate_node(new)
    # Only the node IPAM controller's first write may set them: from nothing to valid, then never again.
    old_cidrs = _pod_cidrs(as_dict(old.get("spec")))
    if old_cidrs and _pod_cidrs(as_dict(new.get("spec"))) != old_cidrs:
        causes.append(
            forbidden("spec.podCIDRs", 'node updates may not change podCIDR except from "" to valid')
        )
    return causes


def validate_service_account(sa: dict[str, Any]) -> list[Cause]:
    return [
        required(child(index("secrets", i), "name"))
        for i, s in enumerate(dicts(sa.get("secrets")))
        if not s.get("name") and not s.get("uid")
    ]


def validate_event(event: dict[str, Any]) -> list[Cause]:
    """Legacy core/v1 Events: the involved object's namespace must agree with the event's."""
    causes: list[Cause] = []
    ns = as_dict(event.get("metadata")).get("namespace") or ""
    involved_ns = as_dict(event.get("involvedObject")).get("namespace") or ""
    if (not involved_ns and ns not in ("", "default")) or (involved_ns and involved_ns != ns):
        causes.append(invalid("involvedObject.namespace", involved_ns, "does not match event.namespace"))
    if event.get("type") and event["type"] not in ("Normal", "Warning"):
        causes.append(invalid("type", "", f"has invalid value: {event['type']}"))
    return causes


def validate_events_v1_event(event: dict[str, Any]) -> list[Cause]:
    """events.k8s.io/v1 Events carry the reporting fields as required values."""
    causes: list[Cause] = []
    for f in ("reportingController", "reportingInstance", "action", "reason", "eventTime"):
        if not event.get(f):
            causes.append(required(f))
    controller = event.get("reportingController") or ""
    if controller:
        causes.extend(invalid("reportingController", controller, m) for m in names.qualified_name(controller))
    if event.get("type") not in ("Normal", "Warning"):
        causes.append(invalid("type", "", f"has invalid value: {event.get('type', '')}"))
    return causes


def _quantities(values: Any, path: str) -> list[Cause]:
    causes: list[Cause] = []
    for name, value in as_dict(values).items():
        p = key(path, name)
        causes.extend(invalid(p, name, m) for m in names.qualified_name(name))
        try:
            if parse_quantity(value) < 0:
                causes.append(invalid(p, value, "must be greater than or equal to 0"))
        except QuantityError as exc:
            causes.append(invalid(p, value, str(exc)))
    return causes


def validate_resource_quota(rq: dict[str, Any]) -> list[Cause]:
    spec = as_dict(rq.get("spec"))
    causes = _quantities(spec.get("hard"), "spec.hard")
    scopes = (
        "BestEffort",
        "CrossNamespacePodAffinity",
        "NotBestEffort",
        "NotTerminating",
        "PriorityClass",
        "Terminating",
        "VolumeAttributesClass",
    )
    causes.extend(
        not_supported(index("spec.scopes", i), s, scopes)
        for i, s in enumerate(as_list(spec.get("scopes")))
        if s not in scopes
    )
    return causes


_LIMIT_TYPES = ("Container", "PersistentVolumeClaim", "Pod")


def validate_limit_range(lr: dict[str, Any]) -> list[Cause]:
    causes: list[Cause] = []
    for i, item in enumerate(dicts(as_dict(lr.get("spec")).get("limits"))):
        p = index("spec.limits", i)
        if not item.get("type"):
            causes.append(required(child(p, "type")))
        for f in ("max", "min", "default", "defaultRequest", "maxLimitRequestRatio"):
            causes += _quantities(item.get(f), child(p, f))
        if item.get("type") == "Pod":
            for f in ("default", "defaultRequest"):
                if as_dict(item.get(f)):
                    causes.append(forbidden(child(p, f), "may not be specified when `type` is 'Pod'"))
    return causes
