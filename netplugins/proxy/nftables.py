"""The nftables rendering of a ServiceTable (pure): kube-proxy's nftables mode, in our own table.

Role: ``service_rules`` turns one Service port into a ``ServiceRules`` value (its chains, affinity
sets and map elements); ``full_ruleset`` renders the whole table (base chains + every service) as an
``nft -f`` script that atomically replaces our table; ``incremental_ruleset`` renders only the
difference between two sets of ``ServiceRules`` (one transaction), so one Service changing does not
rewrite 10,000 others.

Layout (table ``ip <options.table>``):
- ``services`` (jumped to from the nat prerouting and output hooks) matches
  ``ip daddr . meta l4proto . th dport`` in the ``service-ips`` verdict map (ClusterIPs, external
  IPs, LoadBalancer IPs) and, for local destinations other than 127.0.0.0/8
  (``fib daddr type local``), ``meta l4proto . th dport`` in ``service-nodeports``.
- ``service-<hash>-<ns>/<name>/<proto>/<port>`` balances with ``numgen random mod N vmap`` over
  ``endpoint-<hash>-<...>__<ip>/<port>`` chains, which DNAT. ``local-<hash>-...`` balances over the
  node's own endpoints (traffic policies Local). ``external-<hash>-...`` is the entry for NodePort,
  external and LoadBalancer traffic: masquerade and go to the service chain (policy Cluster), or keep
  the client address and go to the local chain (policy Local; pods and the node itself still use
  the service chain, as kube-proxy).
- ClientIP affinity: each endpoint chain records ``ip saddr`` in its own dynamic set
  ``affinity-<hash>-...`` (with the timeout); the service chain first sends a known client back to
  the endpoint whose set holds it.
- Masquerade via a mark: ``mark-for-masquerade`` sets ``options.masquerade_mark``; ``masquerading``
  (nat postrouting) masquerades marked packets. Marked: ClusterIP traffic from outside the cluster
  CIDR (all ClusterIP traffic when no CIDR is known), external traffic with policy Cluster, and
  hairpin traffic (an endpoint reaching itself through its Service).
- No usable endpoints: the address is an element of ``no-endpoint-services`` /
  ``no-endpoint-nodeports``, checked in filter hooks (priority -110, before DNAT) for new
  connections: REJECT (TCP reset, else ICMP port unreachable) when the Service has no endpoints at
  all, DROP when only a Local policy leaves none on this node (kube-proxy's choice).
- Headless Services never reach here (the model drops them); only IPv4 addresses are programmed.

Invariants: rendering is deterministic (sorted), and the chain/set names of a Service port depend
only on its ``ServicePortName`` (and endpoint address), so the diff of two renderings is exact.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from netplugins.proxy.model import (
    Endpoint,
    NodeInfo,
    ServicePort,
    ServicePortName,
    ServiceTable,
    select_endpoints,
)

DEFAULT_MASQUERADE_MARK = 0x40000
V = TypeVar("V")
REJECT_VERDICT = "goto reject-chain"
DROP_VERDICT = "drop"


@dataclass(frozen=True, slots=True)
class NftOptions:
    """``table``: our table's name (family ip); ``cluster_cidr``: the pods' range, whose ClusterIP
    traffic keeps its source address (None: masquerade all ClusterIP traffic)."""

    table: str
    cluster_cidr: str | None = None
    masquerade_mark: int = DEFAULT_MASQUERADE_MARK


@dataclass(frozen=True, slots=True)
class ServiceRules:
    """Everything one Service port owns in the table. ``chains`` maps a chain name to its rules (in
    order); ``sets`` an affinity set name to its declaration body; the element dicts map an element
    key (as nft writes it) to its verdict."""

    chains: dict[str, tuple[str, ...]] = field(default_factory=dict)
    sets: dict[str, str] = field(default_factory=dict)
    service_ips: dict[str, str] = field(default_factory=dict)
    service_nodeports: dict[str, str] = field(default_factory=dict)
    no_endpoint_services: dict[str, str] = field(default_factory=dict)
    no_endpoint_nodeports: dict[str, str] = field(default_factory=dict)


MAPS = ("service-ips", "service-nodeports", "no-endpoint-services", "no-endpoint-nodeports")


def _maps(rules: ServiceRules) -> dict[str, dict[str, str]]:
    return {
        "service-ips": rules.service_ips,
        "service-nodeports": rules.service_nodeports,
        "no-endpoint-services": rules.no_endpoint_services,
        "no-endpoint-nodeports": rules.no_endpoint_nodeports,
    }


def short_hash(text: str) -> str:
    """8 characters of base32(sha256(text)): tells apart chains whose readable part is truncated."""
    return base64.b32encode(hashlib.sha256(text.encode()).digest()).decode()[:8]


def port_base(name: ServicePortName) -> str:
    """``<ns>/<name>/<proto>/<port name>`` (``_`` for an unnamed port): the readable chain suffix."""
    return f"{name.namespace}/{name.name}/{name.protocol.lower()}/{name.port_name or '_'}"


def chain_name(kind: str, name: ServicePortName) -> str:
    base = port_base(name)
    return f"{kind}-{short_hash(base)}-{base}"


def endpoint_chain(name: ServicePortName, ep: Endpoint) -> str:
    base = f"{port_base(name)}__{ep.ip}/{ep.port}"
    return f"endpoint-{short_hash(base)}-{base}"


def affinity_set(name: ServicePortName, ep: Endpoint, timeout: int) -> str:
    """The endpoint's ClientIP set; the timeout is part of the hash, so a new timeout is a new set
    (and every rule naming it changes with it)."""
    base = f"{port_base(name)}__{ep.ip}/{ep.port}"
    return f"affinity-{short_hash(f'{base}@{timeout}')}-{base}"


def _v4(addresses: Iterable[str]) -> list[str]:
    return sorted(a for a in addresses if ":" not in a)


# ---------------------------------------------------------------------------------------------------
# one Service port


def service_rules(
    port: ServicePort, endpoints: tuple[Endpoint, ...], node: NodeInfo, opts: NftOptions
) -> ServiceRules:
    """The rules one Service port owns (empty when it has no IPv4 address)."""
    rules = ServiceRules()
    name = port.name
    proto = name.protocol.lower()
    cluster_ips = _v4(port.cluster_ips)
    external = _v4((*port.external_ips, *port.load_balancer_ips))
    if not cluster_ips and not external and port.node_port is None:
        return rules
    ready = tuple(e for e in select_endpoints(endpoints) if ":" not in e.ip)
    local = tuple(e for e in select_endpoints(endpoints, node.name) if ":" not in e.ip)
    svc_chain = chain_name("service", name)
    local_chain = chain_name("local", name)
    ext_chain = chain_name("external", name)
    masq_cluster = _cluster_masquerade_rule(cluster_ips, opts)

    if not ready:
        for ip in (*cluster_ips, *external):
            rules.no_endpoint_services[f"{ip} . {proto} . {port.port}"] = REJECT_VERDICT
        if port.node_port is not None:
            rules.no_endpoint_nodeports[f"{proto} . {port.node_port}"] = REJECT_VERDICT
        return rules

    balanced = set(ready)
    rules.chains[svc_chain] = _balancing_chain(name, ready, port, masq_cluster)
    if (port.internal_local or port.external_local) and local:
        balanced.update(local)
        rules.chains[local_chain] = _balancing_chain(name, local, port, masq_cluster)
    for ep in sorted(balanced):
        rules.chains[endpoint_chain(name, ep)] = _endpoint_chain(name, ep, port)
        if port.session_affinity_timeout is not None:
            rules.sets[affinity_set(name, ep, port.session_affinity_timeout)] = (
                f"type ipv4_addr; flags dynamic,timeout; timeout {port.session_affinity_timeout}s;"
            )

    internal = svc_chain
    if port.internal_local:
        internal = local_chain if local else ""
    for ip in cluster_ips:
        key = f"{ip} . {proto} . {port.port}"
        if internal:
            rules.service_ips[key] = f"goto {internal}"
        else:
            rules.no_endpoint_services[key] = DROP_VERDICT

    if not external and port.node_port is None:
        return rules
    if port.external_local and not local:
        for ip in external:
            rules.no_endpoint_services[f"{ip} . {proto} . {port.port}"] = DROP_VERDICT
        if port.node_port is not None:
            rules.no_endpoint_nodeports[f"{proto} . {port.node_port}"] = DROP_VERDICT
        return rules
    rules.chains[ext_chain] = _external_chain(port, svc_chain, local_chain, opts)
    for ip in external:
        rules.service_ips[f"{ip} . {proto} . {port.port}"] = f"goto {ext_chain}"
    if port.node_port is not None:
        rules.service_nodeports[f"{proto} . {port.node_port}"] = f"goto {ext_chain}"
    return rules


def _cluster_masquerade_rule(cluster_ips: list[str], opts: NftOptions) -> str | None:
    if not cluster_ips:
        return None
    daddr = cluster_ips[0] if len(cluster_ips) == 1 else "{ " + ", ".join(cluster_ips) + " }"
    source = f" ip saddr != {opts.cluster_cidr}" if opts.cluster_cidr else ""
    return f"ip daddr {daddr}{source} jump mark-for-masquerade"


def _balancing_chain(
    name: ServicePortName, eps: tuple[Endpoint, ...], port: ServicePort, masq: str | None
) -> tuple[str, ...]:
    rules: list[str] = [masq] if masq else []
    ordered = sorted(eps)
    timeout = port.session_affinity_timeout
    if timeout is not None:
        rules += [
            f"ip saddr @{affinity_set(name, ep, timeout)} goto {endpoint_chain(name, ep)}" for ep in ordered
        ]
    targets = ", ".join(f"{i} : goto {endpoint_chain(name, ep)}" for i, ep in enumerate(ordered))
    rules.append(f"numgen random mod {len(ordered)} vmap {{ {targets} }}")
    return tuple(rules)


def _endpoint_chain(name: ServicePortName, ep: Endpoint, port: ServicePort) -> tuple[str, ...]:
    rules = [f"ip saddr {ep.ip} jump mark-for-masquerade"]  # hairpin: the endpoint reaching itself
    if port.session_affinity_timeout is not None:
        rules.append(f"update @{affinity_set(name, ep, port.session_affinity_timeout)} {{ ip saddr }}")
    rules.append(f"meta l4proto {name.protocol.lower()} dnat to {ep.ip}:{ep.port}")
    return tuple(rules)


def _external_chain(port: ServicePort, svc_chain: str, local_chain: str, opts: NftOptions) -> tuple[str, ...]:
    if not port.external_local:
        return ("jump mark-for-masquerade", f"goto {svc_chain}")
    rules = []
    if opts.cluster_cidr:
        rules.append(f"ip saddr {opts.cluster_cidr} goto {svc_chain}")  # pods: as internal traffic
    rules += [
        "fib saddr type local jump mark-for-masquerade",  # the node itself: its source is local
        f"fib saddr type local goto {svc_chain}",
        f"goto {local_chain}",  # from outside: keep the client address, local endpoints only
    ]
    return tuple(rules)


def table_rules(
    table: ServiceTable,
    node: NodeInfo,
    opts: NftOptions,
    reuse: tuple[ServiceTable, Mapping[ServicePortName, ServiceRules]] | None = None,
) -> dict[ServicePortName, ServiceRules]:
    """``service_rules`` for every Service port in the table. ``reuse``: the table and rules of the
    previous sync on the same node; a Service port whose entry is unchanged keeps its rules instead
    of being rendered again, so one changed Service costs one rendering, not one per Service."""
    old_table, old_rules = reuse or ({}, {})
    out: dict[ServicePortName, ServiceRules] = {}
    for name, entry in sorted(table.items()):
        kept = old_rules.get(name)
        if kept is not None and old_table.get(name) == entry:
            out[name] = kept
        else:
            out[name] = service_rules(entry[0], entry[1], node, opts)
    return out


# ---------------------------------------------------------------------------------------------------
# scripts


def base_commands(opts: NftOptions) -> list[str]:
    """Our table's fixed part: maps, hooks, the masquerade and reject chains."""
    t = f"ip {opts.table}"
    mark = f"0x{opts.masquerade_mark:x}"
    key3 = "type ipv4_addr . inet_proto . inet_service : verdict;"
    key2 = "type inet_proto . inet_service : verdict;"
    services_match = "ip daddr . meta l4proto . th dport"
    nodeport_match = "fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport"
    return [
        f'add table {t} {{ comment "raykube service proxy"; }}',
        f"add map {t} service-ips {{ {key3} }}",
        f"add map {t} service-nodeports {{ {key2} }}",
        f"add map {t} no-endpoint-services {{ {key3} }}",
        f"add map {t} no-endpoint-nodeports {{ {key2} }}",
        f"add chain {t} mark-for-masquerade",
        f"add rule {t} mark-for-masquerade meta mark set meta mark or {mark}",
        f"add chain {t} masquerading",
        f"add rule {t} masquerading meta mark & {mark} == 0 return",
        f"add rule {t} masquerading meta mark set meta mark xor {mark}",
        f"add rule {t} masquerading masquerade fully-random",
        f"add chain {t} services",
        f"add rule {t} services {services_match} vmap @service-ips",
        f"add rule {t} services {nodeport_match} vmap @service-nodeports",
        f"add chain {t} reject-chain",
        f"add rule {t} reject-chain meta l4proto tcp reject with tcp reset",
        f"add rule {t} reject-chain reject",
        f"add chain {t} endpoints-check",
        f"add rule {t} endpoints-check {services_match} vmap @no-endpoint-services",
        f"add rule {t} endpoints-check {nodeport_match} vmap @no-endpoint-nodeports",
        f"add chain {t} nat-prerouting {{ type nat hook prerouting priority dstnat; policy accept; }}",
        f"add rule {t} nat-prerouting jump services",
        f"add chain {t} nat-output {{ type nat hook output priority -100; policy accept; }}",
        f"add rule {t} nat-output jump services",
        f"add chain {t} nat-postrouting {{ type nat hook postrouting priority srcnat; policy accept; }}",
        f"add rule {t} nat-postrouting jump masquerading",
        *(
            cmd
            for hook in ("input", "forward", "output")
            for cmd in (
                f"add chain {t} filter-{hook} {{ type filter hook {hook} priority -110; policy accept; }}",
                f"add rule {t} filter-{hook} ct state new jump endpoints-check",
            )
        ),
    ]


def full_ruleset(rules: Mapping[ServicePortName, ServiceRules], opts: NftOptions) -> str:
    """An ``nft -f`` script replacing our whole table atomically with the base part and ``rules``."""
    t = f"ip {opts.table}"
    lines = [f"add table {t}", f"delete table {t}", *base_commands(opts)]
    return "\n".join(lines + _incremental({}, rules, opts)) + "\n"


def incremental_ruleset(
    old: Mapping[ServicePortName, ServiceRules], new: Mapping[ServicePortName, ServiceRules], opts: NftOptions
) -> str:
    """An ``nft -f`` script (one transaction) turning a table that holds ``old`` into one holding
    ``new``; "" when nothing changed. Only Service ports whose rules differ are touched."""
    changed = {k for k in old.keys() | new.keys() if old.get(k) != new.get(k)}
    lines = _incremental(
        {k: old[k] for k in changed if k in old}, {k: new[k] for k in changed if k in new}, opts
    )
    return "\n".join(lines) + "\n" if lines else ""


def _incremental(
    old: Mapping[ServicePortName, ServiceRules], new: Mapping[ServicePortName, ServiceRules], opts: NftOptions
) -> list[str]:
    t = f"ip {opts.table}"
    old_chains = _merge(r.chains for r in old.values())
    new_chains = _merge(r.chains for r in new.values())
    old_sets = _merge(r.sets for r in old.values())
    new_sets = _merge(r.sets for r in new.values())
    old_elems = {m: _merge(_maps(r)[m] for r in old.values()) for m in MAPS}
    new_elems = {m: _merge(_maps(r)[m] for r in new.values()) for m in MAPS}
    out: list[str] = []
    # 1. elements that go or change verdict leave first (they may reference chains about to go)
    for m in MAPS:
        gone = sorted(k for k, v in old_elems[m].items() if new_elems[m].get(k) != v)
        if gone:
            out.append(f"delete element {t} {m} {{ {', '.join(gone)} }}")
    # 2. empty every changed or vanishing chain, so no rule references what is deleted below
    for chain in sorted(old_chains.keys() | new_chains.keys()):
        if old_chains.get(chain) == new_chains.get(chain):
            continue
        if chain in new_chains:
            out.append(f"add chain {t} {chain}")
        if chain in old_chains:
            out.append(f"flush chain {t} {chain}")
    # 3. affinity sets (a name fixes its declaration, so a set only comes or goes)
    out += [f"delete set {t} {s}" for s in sorted(set(old_sets) - set(new_sets))]
    out += [f"add set {t} {s} {{ {new_sets[s]} }}" for s in sorted(set(new_sets) - set(old_sets))]
    # 4. rules of new and changed chains; endpoint chains exist before the vmaps naming them
    for chain in sorted(new_chains, key=_creation_order):
        if old_chains.get(chain) != new_chains[chain]:
            out += [f"add rule {t} {chain} {rule}" for rule in new_chains[chain]]
    # 5. chains that vanished (now empty and unreferenced)
    for chain in sorted(set(old_chains) - set(new_chains)):
        out.append(f"delete chain {t} {chain}")
    # 6. new and changed elements
    for m in MAPS:
        added = sorted(f"{k} : {v}" for k, v in new_elems[m].items() if old_elems[m].get(k) != v)
        if added:
            out.append(f"add element {t} {m} {{ {', '.join(added)} }}")
    return out


def _creation_order(chain: str) -> tuple[int, str]:
    order = {"endpoint": 0, "local": 1, "service": 2, "external": 3}
    return (order.get(chain.split("-", 1)[0], 4), chain)


def _merge(dicts: Iterable[Mapping[str, V]]) -> dict[str, V]:
    merged: dict[str, V] = {}
    for d in dicts:
        merged.update(d)
    return merged


def render_table(table: ServiceTable, node: NodeInfo, opts: NftOptions) -> str:
    """The full script for ``table`` on ``node`` (start-up, tests)."""
    return full_ruleset(table_rules(table, node, opts), opts)


def table_name(namespace: str, node: str = "") -> str:
    """Our table for ``node`` of the cluster in Ray ``namespace``: ``rkproxy-`` + 6 hex of a hash of
    both (neither two clusters nor two Ray nodes sharing one network namespace share a table; as the
    bridge's name)."""
    return "rkproxy-" + hashlib.sha256(f"{namespace}/{node}".encode()).hexdigest()[:6]
