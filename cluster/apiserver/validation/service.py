"""Services, Endpoints and EndpointSlices (pkg/apis/core/validation, pkg/apis/discovery).

Cluster IPs and node ports are allocated by the registry; here `spec.clusterIP` changes are only
rejected once a value was set, and node ports are checked against the default 30000-32767 range.
"""

from __future__ import annotations

from typing import Any

from cluster.apiserver.validation import names
from cluster.apiserver.validation.containers import PROTOCOLS, port_num_or_name
from cluster.apiserver.validation.fields import (
    Cause,
    as_dict,
    as_list,
    child,
    dicts,
    duplicate,
    forbidden,
    index,
    invalid,
    not_supported,
    required,
)
from cluster.apiserver.validation.meta import validate_labels

SERVICE_TYPES = ("ClusterIP", "ExternalName", "LoadBalancer", "NodePort")
SESSION_AFFINITIES = ("ClientIP", "None")
TRAFFIC_POLICIES = ("Cluster", "Local")
IP_FAMILY_POLICIES = ("PreferDualStack", "RequireDualStack", "SingleStack")
NODE_PORT_RANGE = (30000, 32767)


def _is_headless(spec: dict[str, Any]) -> bool:
    return spec.get("clusterIP") == "None"


def _validate_service_port(
    port: dict[str, Any], require_name: bool, seen: set[str], path: str
) -> list[Cause]:
    causes: list[Cause] = []
    name = port.get("name") or ""
    if require_name and not name:
        causes.append(required(child(path, "name")))
    elif name:
        causes.extend(invalid(child(path, "name"), name, m) for m in names.dns1123_label(name))
        if name in seen:
            causes.append(duplicate(child(path, "name"), name))
        seen.add(name)
    causes.extend(
        invalid(child(path, "port"), port.get("port", 0), m) for m in names.port_num(port.get("port", 0))
    )
    if "protocol" in port and port["protocol"] not in PROTOCOLS:
        if port["protocol"]:
            causes.append(not_supported(child(path, "protocol"), port["protocol"], PROTOCOLS))
        else:
            causes.append(required(child(path, "protocol")))
    if "targetPort" in port:
        causes += port_num_or_name(port["targetPort"], child(path, "targetPort"))
    return causes


def _choice(spec: dict[str, Any], field: str, allowed: tuple[str, ...], path: str) -> list[Cause]:
    if field not in spec or spec[field] is None:
        return []
    if not spec[field]:
        return [required(child(path, field))]
    if spec[field] not in allowed:
        return [not_supported(child(path, field), spec[field], allowed)]
    return []


def validate_service(svc: dict[str, Any]) -> list[Cause]:
    spec = as_dict(svc.get("spec"))
    causes: list[Cause] = []
    svc_type = spec.get("type", "ClusterIP")
    ports = dicts(spec.get("ports"))
    if not ports and not _is_headless(spec) and svc_type != "ExternalName":
        causes.append(required("spec.ports"))
    if svc_type == "ExternalName":
        if as_list(spec.get("clusterIPs")) or spec.get("clusterIP"):
            causes.append(forbidden("spec.clusterIPs", "may not be set for ExternalName services"))
        cname = str(spec.get("externalName") or "").removesuffix(".")
        if cname:
            causes.extend(invalid("spec.externalName", cname, m) for m in names.dns1123_subdomain(cname))
        else:
            causes.append(required("spec.externalName"))
    seen: set[str] = set()
    for i, port in enumerate(ports):
        causes += _validate_service_port(port, len(ports) > 1, seen, index("spec.ports", i))
    if spec.get("selector") is not None:
        causes += validate_labels(spec.get("selector"), "spec.selector")
    causes += _choice(spec, "sessionAffinity", SESSION_AFFINITIES, "spec")
    causes += _choice(spec, "type", SERVICE_TYPES, "spec")
    causes += _choice(spec, "externalTrafficPolicy", TRAFFIC_POLICIES, "spec")
    causes += _choice(spec, "internalTrafficPolicy", TRAFFIC_POLICIES, "spec")
    causes += _choice(spec, "ipFamilyPolicy", IP_FAMILY_POLICIES, "spec")
    cluster_ip = spec.get("clusterIP") or ""
    if cluster_ip and cluster_ip != "None":
        causes.extend(invalid("spec.clusterIPs[0]", cluster_ip, m) for m in names.ip_address(cluster_ip))
    if spec.get("externalTrafficPolicy") and svc_type not in ("NodePort", "LoadBalancer"):
        causes.append(
            invalid(
                "spec.externalTrafficPolicy",
                spec["externalTrafficPolicy"],
                "may only be set when `type` is 'NodePort' or 'LoadBalancer'",
            )
        )
    used_node_ports: set[tuple[Any, Any]] = set()
    used_ports: set[tuple[Any, Any]] = set()
    for i, port in enumerate(ports):
        p = index("spec.ports", i)
        node_port = port.get("nodePort") or 0
        if node_port:
            if svc_type == "ClusterIP":
                causes.append(forbidden(child(p, "nodePort"), "may not be used when `type` is 'ClusterIP'"))
            elif svc_type in ("NodePort", "LoadBalancer"):
                lo, hi = NODE_PORT_RANGE
                if not isinstance(node_port, int) or not lo <= node_port <= hi:
                    causes.append(
                        invalid(
                            child(p, "nodePort"),
                            node_port,
                            f"provided port is not in the valid range. The range of valid ports is {lo}-{hi}",
                        )
                    )
            key = (port.get("protocol", "TCP"), node_port)
            if key in used_node_ports:
                causes.append(duplicate(child(p, "nodePort"), node_port))
            used_node_ports.add(key)
        pkey = (port.get("protocol", "TCP"), port.get("port"))
        if pkey in used_ports:
            causes.append(duplicate(p, f"{pkey[1]}/{pkey[0]}"))
        used_ports.add(pkey)
    return causes


def validate_service_update(new: dict[str, Any], old: dict[str, Any]) -> list[Cause]:
    causes = validate_service(new)
    ns, os_ = as_dict(new.get("spec")), as_dict(old.get("spec"))
    if "ExternalName" in (ns.get("type"), os_.get("type")):
        return causes
    old_ip, new_ip = os_.get("clusterIP") or "", ns.get("clusterIP") or ""
    # An empty clusterIP on update is filled in from the old object by the registry.
    if old_ip and new_ip and new_ip != old_ip:
        causes.append(
            invalid(
                "spec.clusterIPs[0]", as_list(ns.get("clusterIPs")) or [new_ip], "may not change once set"
            )
        )
    return causes


def validate_endpoints(ep: dict[str, Any]) -> list[Cause]:
    causes: list[Cause] = []
    for i, subset in enumerate(dicts(ep.get("subsets"))):
        sp = index("subsets", i)
        addresses = dicts(subset.get("addresses")) + dicts(subset.get("notReadyAddresses"))
        for j, addr in enumerate(addresses):
            ap = index(child(sp, "addresses"), j)
            causes.extend(
                invalid(child(ap, "ip"), addr.get("ip", ""), m)
                for m in names.ip_address(str(addr.get("ip", "")))
            )
        ports = dicts(subset.get("ports"))
        for j, port in enumerate(ports):
            pp = index(child(sp, "ports"), j)
            if len(ports) > 1 and not port.get("name"):
                causes.append(required(child(pp, "name")))
            elif port.get("name"):
                causes.extend(
                    invalid(child(pp, "name"), port["name"], m) for m in names.dns1123_label(port["name"])
                )
            causes.extend(
                invalid(child(pp, "port"), port.get("port", 0), m)
                for m in names.port_num(port.get("port", 0))
            )
            if "protocol" in port and port["protocol"] not in PROTOCOLS:
                causes.append(not_supported(child(pp, "protocol"), port["protocol"], PROTOCOLS))
    return causes


_ADDRESS_TYPES = ("FQDN", "IPv4", "IPv6")


def validate_endpoint_slice(es: dict[str, Any]) -> list[Cause]:
    causes: list[Cause] = []
    address_type = es.get("addressType") or ""
    if not address_type:
        causes.append(required("addressType"))
    elif address_type not in _ADDRESS_TYPES:
        causes.append(not_supported("addressType", address_type, _ADDRESS_TYPES))
    for i, endpoint in enumerate(dicts(es.get("endpoints"))):
        p = index("endpoints", i)
        addrs = as_list(endpoint.get("addresses"))
        if not addrs:
            causes.append(required(child(p, "addresses"), "must contain at least 1 address"))
        for j, addr in enumerate(addrs):
            ap = index(child(p, "addresses"), j)
            if address_type in ("IPv4", "IPv6"):
                causes.extend(invalid(ap, addr, m) for m in names.ip_address(str(addr)))
            elif address_type == "FQDN":
                causes.extend(invalid(ap, addr, m) for m in names.dns1123_subdomain(str(addr)))
    for i, port in enumerate(dicts(es.get("ports"))):
        p = index("ports", i)
        if port.get("port") is not None:
            causes.extend(invalid(child(p, "port"), port["port"], m) for m in names.port_num(port["port"]))
        if port.get("name"):
            causes.extend(
                invalid(child(p, "name"), port["name"], m) for m in names.dns1123_label(port["name"])
            )
        if port.get("protocol") is not None and port["protocol"] not in PROTOCOLS:
            causes.append(not_supported(child(p, "protocol"), port["protocol"], PROTOCOLS))
    return causes
