"""Table printers for networking.k8s.io/v1 and discovery.k8s.io/v1, mirroring kubectl's ``printers.go``.

Role: ingresses, ingressclasses, networkpolicies and endpointslices. Pure functions of (object, now).
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
    as_list,
    field_doc,
    format_label_selector,
    get,
    load_balancer_ingress,
    name_column,
    name_of,
)

_MAX_LISTED = 3


def _ingress_hosts(rules: Any) -> str:
    """``formatHosts``: up to four hosts (``*`` for a rule without host), then `` + N more...``."""
    hosts = [str(get(rule, "host") or "*") for rule in as_list(rules)]
    if not hosts:
        return "*"
    if len(hosts) > 4:
        return ",".join(hosts[:4]) + f" + {len(hosts) - 4} more..."
    return ",".join(hosts)


def _ingress_row(ing: Obj, now: datetime) -> list[Any]:
    spec = get(ing, "spec", default={})
    return [
        name_of(ing),
        get(spec, "ingressClassName") or "<none>",
        _ingress_hosts(get(spec, "rules")),
        load_balancer_ingress(get(ing, "status", default={})),
        "80, 443" if as_list(get(spec, "tls")) else "80",
        age(ing, now),
    ]


def ingress_printer() -> TablePrinter:
    return TablePrinter(
        (
            name_column(),
            Column(
                "Class", "string", "The name of the IngressClass resource that should be used for ingress"
            ),
            Column(
                "Hosts", "string", "Hosts that incoming requests are matched against before the ingress rule"
            ),
            Column("Address", "string", "Address is a list containing ingress points for the load-balancer"),
            Column("Ports", "string", "Ports of TLS configurations that open"),
            age_column(),
        ),
        _ingress_row,
    )


def _ingress_class_parameters(params: Any) -> str:
    if not isinstance(params, dict):
        return "<none>"
    kind = str(params.get("kind", ""))
    if params.get("apiGroup"):
        kind = f"{kind}.{params['apiGroup']}"
    return f"{kind}/{params.get('name', '')}"


def ingressclass_printer() -> TablePrinter:
    return TablePrinter(
        (
            name_column(),
            Column("Controller", "string", "Controller that is responsible for handling this class"),
            Column("Parameters", "string", "A reference to a resource with additional parameters"),
            age_column(),
        ),
        lambda ic, now: [
            name_of(ic),
            str(get(ic, "spec", "controller", default="")),
            _ingress_class_parameters(get(ic, "spec", "parameters")),
            age(ic, now),
        ],
    )


def networkpolicy_printer() -> TablePrinter:
    return TablePrinter(
        (
            name_column(),
            Column("Pod-Selector", "string", field_doc("V1NetworkPolicySpec", "podSelector")),
            age_column(),
        ),
        lambda np, now: [
            name_of(np),
            format_label_selector(get(np, "spec", "podSelector")),
            age(np, now),
        ],
    )


def _listed(items: list[str], empty: str) -> str:
    if not items:
        return empty
    if len(items) > _MAX_LISTED:
        return ",".join(items[:_MAX_LISTED]) + f" + {len(items) - _MAX_LISTED} more..."
    return ",".join(items)


def _slice_row(es: Obj, now: datetime) -> list[Any]:
    ports = ["<unset>" if get(p, "port") is None else str(get(p, "port")) for p in as_list(es.get("ports"))]
    addresses = [str(a) for e in as_list(es.get("endpoints")) for a in as_list(get(e, "addresses"))]
    return [
        name_of(es),
        str(es.get("addressType") or ""),
        _listed(ports, "<unset>"),
        _listed(addresses, "<unset>"),
        age(es, now),
    ]


def endpointslice_printer() -> TablePrinter:
    return TablePrinter(
        (
            name_column(),
            Column("AddressType", "string", field_doc("V1EndpointSlice", "addressType")),
            Column("Ports", "string", field_doc("V1EndpointSlice", "ports")),
            Column("Endpoints", "string", field_doc("V1EndpointSlice", "endpoints")),
            age_column(),
        ),
        _slice_row,
    )
