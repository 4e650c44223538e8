"""Defaults for core/v1 kinds other than Pods, and for the smaller API groups.

Includes the Service fields the registry sets in Kubernetes (ipFamilyPolicy, ipFamilies) so stored
Services look like a single-stack IPv4 cluster's; clusterIP and nodePort allocation stay outside.
Secret `stringData` is merged into base64 `data`, as the v1 conversion does on decode.
"""

from __future__ import annotations

import base64
from typing import Any

RBAC_GROUP = "rbac.authorization.k8s.io"


def _spec(obj: dict[str, Any]) -> dict[str, Any]:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        spec = obj["spec"] = {}
    return spec


def _status(obj: dict[str, Any]) -> dict[str, Any] | None:
    status = obj.setdefault("status", {})
    return status if isinstance(status, dict) else None


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def default_service(obj: dict[str, Any]) -> None:
    spec = _spec(obj)
    spec.setdefault("sessionAffinity", "None")
    if spec["sessionAffinity"] == "None":
        spec.pop("sessionAffinityConfig", None)
    elif spec["sessionAffinity"] == "ClientIP":
        config = spec.setdefault("sessionAffinityConfig", {})
        client_ip = config.setdefault("clientIP", {}) if isinstance(config, dict) else None
        if isinstance(client_ip, dict):
            client_ip.setdefault("timeoutSeconds", 10800)
    spec.setdefault("type", "ClusterIP")
    svc_type = spec["type"]
    for port in _dicts(spec.get("ports")):
        port.setdefault("protocol", "TCP")
        if port.get("targetPort") in (None, 0, ""):
            port["targetPort"] = port.get("port")
    if svc_type in ("NodePort", "LoadBalancer"):
        spec.setdefault("externalTrafficPolicy", "Cluster")
    if svc_type != "ExternalName":
        spec.setdefault("internalTrafficPolicy", "Cluster")
        spec.setdefault("ipFamilyPolicy", "SingleStack")
        spec.setdefault("ipFamilies", ["IPv4"])
    if svc_type == "LoadBalancer":
        spec.setdefault("allocateLoadBalancerNodePorts", True)
    status = _status(obj)
    if status is not None:
        status.setdefault("loadBalancer", {})


def default_namespace(obj: dict[str, Any]) -> None:
    meta = obj.setdefault("metadata", {})
    name = meta.get("name") if isinstance(meta, dict) else None
    if isinstance(meta, dict) and name:
        labels = meta.get("labels")
        if not isinstance(labels, dict):
            labels = meta["labels"] = {}
        labels["kubernetes.io/metadata.name"] = name
    spec = _spec(obj)
    spec.setdefault("finalizers", ["kubernetes"])
    status = _status(obj)
    if status is not None:
        status.setdefault("phase", "Active")


def default_secret(obj: dict[str, Any]) -> None:
    obj.setdefault("type", "Opaque")
    string_data = obj.pop("stringData", None)
    if isinstance(string_data, dict) and string_data:
        data = obj.get("data")
        if not isinstance(data, dict):
            data = obj["data"] = {}
        for k, v in string_data.items():
            data[k] = base64.b64encode(str(v).encode()).decode()


def default_persistent_volume_claim(obj: dict[str, Any]) -> None:
    _spec(obj).setdefault("volumeMode", "Filesystem")
    status = _status(obj)
    if status is not None:
        status.setdefault("phase", "Pending")


def default_persistent_volume(obj: dict[str, Any]) -> None:
    spec = _spec(obj)
    spec.setdefault("persistentVolumeReclaimPolicy", "Retain")
    spec.setdefault("volumeMode", "Filesystem")
    status = _status(obj)
    if status is not None:
        status.setdefault("phase", "Pending")


def default_node(obj: dict[str, Any]) -> None:
    status = obj.get("status")
    if isinstance(status, dict) and "capacity" in status and "allocatable" not in status:
        status["allocatable"] = dict(status["capacity"])


def default_endpoints(obj: dict[str, Any]) -> None:
    for subset in _dicts(obj.get("subsets")):
        for port in _dicts(subset.get("ports")):
            port.setdefault("protocol", "TCP")


def default_endpoint_slice(obj: dict[str, Any]) -> None:
    for port in _dicts(obj.get("ports")):
        port.setdefault("name", "")
        port.setdefault("protocol", "TCP")


def default_limit_range(obj: dict[str, Any]) -> None:
    """SetDefaults_LimitRangeItem: for Container items, default/defaultRequest come from max/default."""
    for item in _dicts(_spec(obj).get("limits")):
        if item.get("type") != "Container":
            continue
        default = item.setdefault("default", {})
        for name, value in (item.get("max") or {}).items():
            default.setdefault(name, value)
        request = item.setdefault("defaultRequest", {})
        for name, value in default.items():
            request.setdefault(name, value)
        for name, value in (item.get("min") or {}).items():
            request.setdefault(name, value)
        for field in ("default", "defaultRequest"):
            if not item[field]:
                del item[field]  # empty ResourceLists are omitted on the wire


def default_ingress(obj: dict[str, Any]) -> None:
    for rule in _dicts(_spec(obj).get("rules")):
        http = rule.get("http")
        for path in _dicts(http.get("paths")) if isinstance(http, dict) else []:
            path.setdefault("pathType", "ImplementationSpecific")


def default_network_policy(obj: dict[str, Any]) -> None:
    spec = _spec(obj)
    for direction in ("ingress", "egress"):
        for rule in _dicts(spec.get(direction)):
            for port in _dicts(rule.get("ports")):
                port.setdefault("protocol", "TCP")
    if not spec.get("policyTypes"):
        spec["policyTypes"] = ["Ingress", "Egress"] if spec.get("egress") else ["Ingress"]


def default_priority_class(obj: dict[str, Any]) -> None:
    obj.setdefault("preemptionPolicy", "PreemptLowerPriority")


def default_binding(obj: dict[str, Any]) -> None:
    for subject in _dicts(obj.get("subjects")):
        if not subject.get("apiGroup") and subject.get("kind") in ("User", "Group"):
            # ServiceAccount subjects default to the core group "", which is omitted on the wire.
            subject["apiGroup"] = RBAC_GROUP


def default_storage_class(obj: dict[str, Any]) -> None:
    obj.setdefault("reclaimPolicy", "Delete")
    obj.setdefault("volumeBindingMode", "Immediate")


def default_ingress_class(obj: dict[str, Any]) -> None:
    params = _spec(obj).get("parameters")
    if isinstance(params, dict):
        params.setdefault("scope", "Cluster")
