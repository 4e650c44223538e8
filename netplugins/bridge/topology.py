"""Across nodes: from the Node list to the routes, neighbours and fdb entries a node needs (pure).

``peer_of(node)`` reads one Node object (``spec.podCIDR``, the ``InternalIP`` of ``status.addresses``,
our VTEP MAC annotation); ``desired(own, peers, backend, device)`` is what this node must have;
``plan(desired, actual)`` the changes that get there. The shell (``netplugins.bridge.links``) reads
the actual state and applies the plan.

Backends (as flannel's):
- ``host-gw``: a route to every other node's podCIDR via that node's address (one L2 segment).
- ``vxlan``: each node's VTEP address is its podCIDR's network address (``10.244.3.0/32``) on the
  VXLAN device; per remote node an onlink route ``<podCIDR> via <its VTEP address> dev <device>``, a
  permanent neighbour entry (VTEP address -> its VTEP MAC) and an fdb entry (MAC -> its node IP).

Invariants: ``desired`` never includes the own node, a node without podCIDR or address, or (vxlan)
without VTEP MAC; ``plan`` deletes only entries in ``actual``, which the caller must restrict to
ours (routes carrying our protocol number; neighbours and fdb entries of our VXLAN device).
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

VTEP_MAC_ANNOTATION = "raykube.io/vxlan-vtep-mac"


@dataclass(frozen=True, slots=True, order=True)
class Peer:
    """One node as the network sees it."""

    name: str
    pod_cidr: str
    ip: str
    vtep_mac: str = ""


@dataclass(frozen=True, slots=True, order=True)
class RouteEntry:
    dst: str
    via: str
    dev: str = ""  # set (and onlink) for the vxlan backend


@dataclass(frozen=True, slots=True, order=True)
class NeighEntry:
    ip: str
    mac: str
    dev: str


@dataclass(frozen=True, slots=True, order=True)
class FdbEntry:
    mac: str
    dst: str
    dev: str


@dataclass(frozen=True, slots=True)
class NetState:
    routes: frozenset[RouteEntry] = frozenset()
    neighbours: frozenset[NeighEntry] = frozenset()
    fdb: frozenset[FdbEntry] = frozenset()


@dataclass(frozen=True, slots=True)
class Plan:
    add_routes: tuple[RouteEntry, ...] = ()
    del_routes: tuple[RouteEntry, ...] = ()
    add_neighbours: tuple[NeighEntry, ...] = ()
    del_neighbours: tuple[NeighEntry, ...] = ()
    add_fdb: tuple[FdbEntry, ...] = ()
    del_fdb: tuple[FdbEntry, ...] = ()

    @property
    def empty(self) -> bool:
        return not any(
            (
                self.add_routes,
                self.del_routes,
                self.add_neighbours,
                self.del_neighbours,
                self.add_fdb,
                self.del_fdb,
            )
        )


def _ipv4_network(text: str) -> str | None:
    try:
        net = ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None
    return str(net) if net.version == 4 else None


def internal_ip(node: Mapping[str, Any]) -> str:
    """The node's first IPv4 InternalIP ("" when it has none)."""
    for addr in (node.get("status") or {}).get("addresses") or []:
        if addr.get("type") == "InternalIP":
            try:
                if ipaddress.ip_address(str(addr.get("address", ""))).version == 4:
                    return str(addr["address"])
            except ValueError:
                continue
    return ""


def pod_cidr_of(node: Mapping[str, Any]) -> str:
    """The node's IPv4 podCIDR (``spec.podCIDRs`` first, then ``spec.podCIDR``; "" when none)."""
    spec = node.get("spec") or {}
    for cidr in [*(spec.get("podCIDRs") or []), spec.get("podCIDR") or ""]:
        net = _ipv4_network(str(cidr)) if cidr else None
        if net:
            return net
    return ""


def peer_of(node: Mapping[str, Any]) -> Peer:
    meta = node.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    return Peer(
        name=str(meta.get("name", "")),
        pod_cidr=pod_cidr_of(node),
        ip=internal_ip(node),
        vtep_mac=str(annotations.get(VTEP_MAC_ANNOTATION, "")).lower(),
    )


def vtep_address(pod_cidr: str) -> str:
    """A node's VTEP address: its podCIDR's network address (flannel's scheme)."""
    return str(ipaddress.ip_network(pod_cidr).network_address)


def vtep_mac(node_name: str) -> str:
    """A stable, locally administered unicast MAC for a node's VXLAN device (same across restarts)."""
    digest = hashlib.sha256(node_name.encode()).digest()
    return ":".join(f"{b:02x}" for b in (0x0A, *digest[:5]))


def desired(own: str, peers: Iterable[Peer], backend: str, device: str, own_ip: str = "") -> NetState:
    """What node ``own`` needs to reach every other node's podCIDR with ``backend``. A peer with
    our own address (``own_ip``) shares our host and network namespace (several Ray nodes on one
    machine): its bridge is local, so the kernel's connected route reaches its pods already."""
    routes: set[RouteEntry] = set()
    neighbours: set[NeighEntry] = set()
    fdb: set[FdbEntry] = set()
    for p in peers:
        if p.name == own or not p.pod_cidr or not p.ip or p.ip == own_ip:
            continue
        if backend == "host-gw":
            routes.add(RouteEntry(p.pod_cidr, p.ip))
        elif backend == "vxlan":
            if not p.vtep_mac:
                continue
            vtep = vtep_address(p.pod_cidr)
            routes.add(RouteEntry(p.pod_cidr, vtep, device))
            neighbours.add(NeighEntry(vtep, p.vtep_mac, device))
            fdb.add(FdbEntry(p.vtep_mac, p.ip, device))
        else:
            raise ValueError(f"unknown backend {backend!r}")
    return NetState(frozenset(routes), frozenset(neighbours), frozenset(fdb))


def plan(want: NetState, have: NetState) -> Plan:
    """Add what is missing, delete what is ours and no longer wanted. A route to the same
    destination with another gateway is deleted and added (``ip route replace`` would do both)."""
    return Plan(
        add_routes=tuple(sorted(want.routes - have.routes)),
        del_routes=tuple(
            sorted(r for r in have.routes - want.routes if r.dst not in {w.dst for w in want.routes})
        ),
        add_neighbours=tuple(sorted(want.neighbours - have.neighbours)),
        del_neighbours=tuple(
            sorted(
                n for n in have.neighbours - want.neighbours if n.ip not in {w.ip for w in want.neighbours}
            )
        ),
        add_fdb=tuple(sorted(want.fdb - have.fdb)),
        del_fdb=tuple(sorted(have.fdb - want.fdb)),
    )


def parse_peers(items: Iterable[Mapping[str, Any]]) -> list[Peer]:
    """Static peers (``--peers`` JSON: ``[{"name", "podCIDR", "ip", "vtepMAC"?}]``; a missing
    ``vtepMAC`` is the node name's ``vtep_mac``), for tests and the benchmark without an API server."""
    out = []
    for item in items:
        name = str(item["name"])
        out.append(
            Peer(
                name=name,
                pod_cidr=str(ipaddress.ip_network(str(item["podCIDR"]))),
                ip=str(ipaddress.ip_address(str(item["ip"]))),
                vtep_mac=str(item.get("vtepMAC") or vtep_mac(name)).lower(),
            )
        )
    return out
