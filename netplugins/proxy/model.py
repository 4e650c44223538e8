"""What a service proxy must route, computed from Service and EndpointSlice objects (pure).

Role: turn the API's Services and EndpointSlices (plain JSON dicts as the client returns them) into a
``ServiceTable`` — one entry per Service port, with every endpoint the slices list for it — and say
which of those endpoints may receive traffic. Every proxy backend (nftables, userspace) programs from
this table and nothing else, so they agree on the semantics.

Invariants:
- Headless Services (``clusterIP: None``) and ``ExternalName`` Services are not in the table.
- A Service port is keyed by ``ServicePortName(namespace, name, port_name, protocol)``; its endpoints
  come from the slices labelled ``kubernetes.io/service-name`` whose ports carry the same port name and
  protocol. The endpoint's port is that slice port's number, so ``targetPort`` by name resolves per
  endpoint (pods resolving a named port differently sit in different slices).
- The table keeps unready endpoints too (with their conditions); ``select_endpoints`` is the one
  rule for traffic: ready endpoints, else — as kube-proxy — serving-but-terminating ones.
- Output is deterministic: endpoints sorted by (ip, port), duplicates across slices merged.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
DEFAULT_AFFINITY_TIMEOUT = 10800  # seconds; Kubernetes' default for sessionAffinity ClientIP
PROTOCOLS = ("TCP", "UDP", "SCTP")


@dataclass(frozen=True, slots=True, order=True)
class ServicePortName:
    """One port of one Service: the unit a proxy routes."""

    namespace: str
    name: str
    port_name: str
    protocol: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}/{self.protocol.lower()}/{self.port_name}"


@dataclass(frozen=True, slots=True)
class ServicePort:
    """The addresses a Service port answers on and how it balances.

    ``session_affinity_timeout`` is None without affinity, else the ClientIP timeout in seconds.
    ``external_local``: externalTrafficPolicy Local for a Service reachable from outside (NodePort,
    LoadBalancer or external IPs); ``internal_local``: internalTrafficPolicy Local.
    """

    name: ServicePortName
    cluster_ips: tuple[str, ...]
    port: int
    node_port: int | None = None
    external_ips: tuple[str, ...] = ()
    load_balancer_ips: tuple[str, ...] = ()
    session_affinity_timeout: int | None = None
    external_local: bool = False
    internal_local: bool = False


@dataclass(frozen=True, slots=True, order=True)
class Endpoint:
    """One backend address of a Service port, with its EndpointSlice conditions."""

    ip: str
    port: int
    node_name: str | None = None
    ready: bool = True
    serving: bool = True
    terminating: bool = False


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """The node a proxy runs on: its name (for Local traffic policies) and addresses (NodePorts)."""

    name: str
    ips: tuple[str, ...]


ServiceTable = dict[ServicePortName, tuple[ServicePort, tuple[Endpoint, ...]]]


def select_endpoints(endpoints: Iterable[Endpoint], local_node: str | None = None) -> tuple[Endpoint, ...]:
    """The endpoints that receive traffic: ready ones, or if none is ready the serving-but-terminating
    ones (kube-proxy's fallback, so a rolling update does not drop connections). With ``local_node``
    only endpoints on that node are considered (Local traffic policies); the fallback applies to that
    local set."""
    pool = [e for e in endpoints if local_node is None or e.node_name == local_node]
    ready = tuple(e for e in pool if e.ready)
    if ready:
        return ready
    return tuple(e for e in pool if e.serving and e.terminating)


def build_table(services: Iterable[Mapping[str, Any]], slices: Iterable[Mapping[str, Any]]) -> ServiceTable:
    """The ServiceTable for these Services and EndpointSlices (any order; unrelated slices ignored)."""
    by_service: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for eps in slices:
        meta = eps.get("metadata") or {}
        owner = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
        if owner and eps.get("addressType", "IPv4") in ("IPv4", "IPv6"):
            by_service.setdefault((meta.get("namespace") or "default", owner), []).append(eps)
    table: ServiceTable = {}
    for svc in services:
        meta = svc.get("metadata") or {}
        key = (meta.get("namespace") or "default", meta.get("name") or "")
        for port in service_ports(svc):
            table[port.name] = (port, slice_endpoints(by_service.get(key, []), port.name))
    return table


def service_ports(svc: Mapping[str, Any]) -> list[ServicePort]:
    """The routable ports of one Service ([] for headless, ExternalName or IP-less Services)."""
    meta = svc.get("metadata") or {}
    spec = svc.get("spec") or {}
    kind = spec.get("type") or "ClusterIP"
    cluster_ips = _cluster_ips(spec)
    if kind == "ExternalName" or not cluster_ips:
        return []
    external_ips = tuple(spec.get("externalIPs") or ())
    lb_ips: tuple[str, ...] = ()
    if kind == "LoadBalancer":
        ingress = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        lb_ips = tuple(i["ip"] for i in ingress if i.get("ip"))
    affinity = None
    if spec.get("sessionAffinity") == "ClientIP":
        cfg = ((spec.get("sessionAffinityConfig") or {}).get("clientIP")) or {}
        affinity = int(cfg.get("timeoutSeconds") or DEFAULT_AFFINITY_TIMEOUT)
    externally_reachable = kind in ("NodePort", "LoadBalancer") or bool(external_ips)
    ports = []
    for p in spec.get("ports") or []:
        node_port = p.get("nodePort") if kind in ("NodePort", "LoadBalancer") else None
        ports.append(
            ServicePort(
                name=ServicePortName(
                    meta.get("namespace") or "default",
                    meta.get("name") or "",
                    p.get("name") or "",
                    p.get("protocol") or "TCP",
                ),
                cluster_ips=cluster_ips,
                port=int(p["port"]),
                node_port=int(node_port) if node_port else None,
                external_ips=external_ips,
                load_balancer_ips=lb_ips,
                session_affinity_timeout=affinity,
                external_local=externally_reachable and spec.get("externalTrafficPolicy") == "Local",
                internal_local=spec.get("internalTrafficPolicy") == "Local",
            )
        )
    return ports


def slice_endpoints(slices: Iterable[Mapping[str, Any]], port: ServicePortName) -> tuple[Endpoint, ...]:
    """The endpoints of ``port`` across a Service's slices; the port number comes from the slice port
    with the same name and protocol (slices without one contribute nothing). Duplicates merge,
    preferring the readier copy."""
    merged: dict[tuple[str, int], Endpoint] = {}
    for eps in slices:
        number = _slice_port(eps, port)
        if number is None:
            continue
        for ep in eps.get("endpoints") or []:
            cond = ep.get("conditions") or {}
            ready = cond.get("ready") is not False  # unset means ready (EndpointSlice API)
            serving = cond.get("serving") if cond.get("serving") is not None else ready
            terminating = bool(cond.get("terminating"))
            for address in ep.get("addresses") or []:
                new = Endpoint(address, number, ep.get("nodeName"), ready, bool(serving), terminating)
                old = merged.get((address, number))
                if old is None or _rank(new) > _rank(old):
                    merged[(address, number)] = new
    return tuple(sorted(merged.values()))


def _slice_port(eps: Mapping[str, Any], port: ServicePortName) -> int | None:
    for sp in eps.get("ports") or []:
        if (sp.get("name") or "") == port.port_name and (sp.get("protocol") or "TCP") == port.protocol:
            value = sp.get("port")
            return int(value) if value else None
    return None


def _rank(e: Endpoint) -> tuple[bool, bool, bool]:
    return (e.ready, e.serving, not e.terminating)


def _cluster_ips(spec: Mapping[str, Any]) -> tuple[str, ...]:
    ips = [ip for ip in (spec.get("clusterIPs") or [spec.get("clusterIP")]) if ip and ip != "None"]
    return tuple(ips)
