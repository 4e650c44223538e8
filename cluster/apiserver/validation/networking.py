"""networking.k8s.io/v1: Ingresses, IngressClasses and NetworkPolicies."""

from __future__ import annotations

from typing import Any

from cluster.apiserver.validation import names
from cluster.apiserver.validation.containers import PROTOCOLS, port_num_or_name
from cluster.apiserver.validation.fields import (
    Cause,
    GoLiteral,
    as_dict,
    as_list,
    child,
    dicts,
    forbidden,
    index,
    invalid,
    not_supported,
    required,
)
from cluster.apiserver.validation.meta import validate_label_selector

PATH_TYPES = ("Exact", "ImplementationSpecific", "Prefix")
POLICY_TYPES = ("Ingress", "Egress")


def _host(host: str, path: str, *, wildcard: bool = True) -> list[Cause]:
    if not names.ip_address(host):
        return [invalid(path, host, "must be a DNS name, not an IP address")]
    if wildcard and host.startswith("*."):
        return [invalid(path, host, m) for m in names.dns1123_subdomain(host[2:])]
    return [invalid(path, host, m) for m in names.dns1123_subdomain(host)]


def _backend(backend: dict[str, Any], path: str) -> list[Cause]:
    service, resource = backend.get("service"), backend.get("resource")
    if service is not None and resource is not None:
        return [invalid(path, "", "cannot set both resource and service backends")]
    if resource is not None:
        r = as_dict(resource)
        return [required(child(path, "resource", f)) for f in ("kind", "name") if not r.get(f)]
    if service is None:
        return [invalid(path, "", "resource or service backend is required")]
    svc = as_dict(service)
    causes: list[Cause] = []
    name = svc.get("name") or ""
    if not name:
        causes.append(required(child(path, "service.name")))
    else:
        causes.extend(invalid(child(path, "service.name"), name, m) for m in names.dns1035_label(name))
    port = as_dict(svc.get("port"))
    if port.get("name") and port.get("number"):
        causes.append(
            invalid(child(path, "service.port"), port["name"], "cannot set both port name & port number")
        )
    elif port.get("name"):
        causes.extend(
            invalid(child(path, "service.port.name"), port["name"], m) for m in names.port_name(port["name"])
        )
    elif port.get("number") is not None:
        causes.extend(
            invalid(child(path, "service.port.number"), port["number"], m)
            for m in names.port_num(port["number"])
        )
    else:
        causes.append(required(child(path, "service.port"), "port name or number is required"))
    return causes


def validate_ingress(ing: dict[str, Any]) -> list[Cause]:
    spec = as_dict(ing.get("spec"))
    causes: list[Cause] = []
    rules = dicts(spec.get("rules"))
    if not rules and spec.get("defaultBackend") is None:
        causes.append(
            invalid(
                "spec.rules",
                GoLiteral("[]networking.IngressRule(nil)"),
                "either `defaultBackend` or `rules` must be specified",
            )
        )
    if spec.get("defaultBackend") is not None:
        causes += _backend(as_dict(spec["defaultBackend"]), "spec.defaultBackend")
    for i, rule in enumerate(rules):
        rp = index("spec.rules", i)
        if rule.get("host"):
            causes += _host(str(rule["host"]), child(rp, "host"))
        if rule.get("http") is None:
            continue
        paths = dicts(as_dict(rule["http"]).get("paths"))
        if not paths:
            causes.append(required(child(rp, "http.paths")))
        for j, p in enumerate(paths):
            pp = index(child(rp, "http.paths"), j)
            ptype = p.get("pathType")
            if not ptype:
                causes.append(required(child(pp, "pathType"), "pathType must be specified"))
            elif ptype not in PATH_TYPES:
                causes.append(not_supported(child(pp, "pathType"), ptype, PATH_TYPES))
            path_text = p.get("path") or ""
            if ptype in ("Exact", "Prefix") and not path_text.startswith("/"):
                causes.append(invalid(child(pp, "path"), path_text, "must be an absolute path"))
            causes += _backend(as_dict(p.get("backend")), child(pp, "backend"))
    for i, tls in enumerate(dicts(spec.get("tls"))):
        for j, host in enumerate(as_list(tls.get("hosts"))):
            causes += _host(str(host), index(child(index("spec.tls", i), "hosts"), j))
    cls = spec.get("ingressClassName")
    if cls:
        causes.extend(invalid("spec.ingressClassName", cls, m) for m in names.dns1123_subdomain(cls))
    return causes


def validate_ingress_class(ic: dict[str, Any]) -> list[Cause]:
    controller = as_dict(ic.get("spec")).get("controller") or ""
    if not controller:
        return [required("spec.controller")]
    if "/" not in controller or names.dns1123_subdomain(controller.split("/", 1)[0]):
        return [
            invalid("spec.controller", controller, 'must be a domain-prefixed path (such as "acme.io/foo")')
        ]
    return []


def validate_ingress_class_update(new: dict[str, Any], old: dict[str, Any]) -> list[Cause]:
    nc, oc = as_dict(new.get("spec")).get("controller"), as_dict(old.get("spec")).get("controller")
    return [invalid("spec.controller", nc, "field is immutable")] if nc != oc else []


def _peer(peer: dict[str, Any], path: str) -> list[Cause]:
    kinds = [k for k in ("podSelector", "namespaceSelector", "ipBlock") if peer.get(k) is not None]
    if not kinds:
        return [required(path, "must specify a peer")]
    causes: list[Cause] = []
    if "ipBlock" in kinds and len(kinds) > 1:
        causes.append(forbidden(path, "may not specify both ipBlock and another peer"))
    for k in ("podSelector", "namespaceSelector"):
        if peer.get(k) is not None:
            causes += validate_label_selector(peer[k], child(path, k))
    if peer.get("ipBlock") is not None:
        block = as_dict(peer["ipBlock"])
        cidr = block.get("cidr") or ""
        if not cidr:
            causes.append(required(child(path, "ipBlock.cidr")))
        else:
            causes.extend(invalid(child(path, "ipBlock.cidr"), cidr, m) for m in names.cidr(cidr))
        for i, ex in enumerate(as_list(block.get("except"))):
            causes.extend(
                invalid(index(child(path, "ipBlock.except"), i), ex, m) for m in names.cidr(str(ex))
            )
    return causes


def _np_ports(ports: Any, path: str) -> list[Cause]:
    causes: list[Cause] = []
    for i, port in enumerate(dicts(ports)):
        p = index(path, i)
        proto = port.get("protocol")
        if proto is not None and proto not in PROTOCOLS:
            causes.append(not_supported(child(p, "protocol"), proto, PROTOCOLS))
        if port.get("port") is not None:
            causes += port_num_or_name(port["port"], child(p, "port"))
        end = port.get("endPort")
        if end is not None:
            start = port.get("port")
            if not isinstance(start, int):
                causes.append(required(child(p, "port"), "When endPort is specified, port must be specified"))
                causes.append(
                    invalid(child(p, "endPort"), end, "may not be specified when `port` is non-numeric")
                )
            elif end < start:
                causes.append(invalid(child(p, "endPort"), end, "must be greater than or equal to `port`"))
            else:
                causes.extend(invalid(child(p, "endPort"), end, m) for m in names.port_num(end))
    return causes


def validate_network_policy(np_obj: dict[str, Any]) -> list[Cause]:
    spec = as_dict(np_obj.get("spec"))
    causes = validate_label_selector(spec.get("podSelector"), "spec.podSelector")
    for direction, peers in (("ingress", "from"), ("egress", "to")):
        for i, rule in enumerate(dicts(spec.get(direction))):
            rp = index(child("spec", direction), i)
            causes += _np_ports(rule.get("ports"), child(rp, "ports"))
            for j, peer in enumerate(dicts(rule.get(peers))):
                causes += _peer(peer, index(child(rp, peers), j))
    types = as_list(spec.get("policyTypes"))
    for i, t in enumerate(types):
        if t not in POLICY_TYPES:
            causes.append(not_supported(index("spec.policyTypes", i), t, POLICY_TYPES))
    if len(types) > 2:
        causes.append(invalid("spec.policyTypes", types, "may not specify more than two policyTypes"))
    return causes
