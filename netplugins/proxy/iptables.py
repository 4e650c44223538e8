"""The iptables rendering of a ``ServiceTable`` (pure): ``iptables-restore`` input in kube-proxy's
iptables-mode layout, with our own chain names. The fallback data path where nftables is missing.

Layout (``T`` = a short hash of the options' ``table`` name, so each cluster/node has its own chains):
- nat ``RKPROXY-T-SERVICES`` (jumped to from nat PREROUTING and OUTPUT): one rule per cluster IP,
  external IP and LoadBalancer IP of each Service port with ready endpoints, jumping to the port's
  ``RKPROXY-T-S<hash>`` chain (cluster IPs) or ``RKPROXY-T-X<hash>`` chain (external traffic: marks
  for masquerade, then the ``S`` chain); last, local-destination traffic (``-m addrtype --dst-type
  LOCAL``, not 127.0.0.0/8) goes to ``RKPROXY-T-NODEPORTS``, which matches NodePorts to ``X`` chains.
- ``S`` chain: marks cluster-IP traffic from outside the cluster CIDR (all of it without a CIDR), then
  with ClientIP affinity sends a client seen recently (``-m recent --rcheck --seconds --reap``) to
  its endpoint again, then picks one ``RKPROXY-T-E<hash>`` chain per endpoint with ``-m statistic
  --mode random --probability 1/k`` (the last one unconditionally).
- ``E`` chain: marks hairpin traffic (source is the endpoint), DNATs (recording the client with
  ``-m recent --set`` under affinity).
- nat ``RKPROXY-T-POSTRTG`` (from POSTROUTING): masquerades marked packets, clearing the mark.
- filter ``RKPROXY-T-REJECT`` (from INPUT, FORWARD, OUTPUT for new connections): REJECTs every
  address and NodePort of a Service port without ready endpoints.

Invariants: deterministic output; every chain we write starts with ``chain_prefix(table)``; the
restore script declares (so flushes) every chain of ours and never touches a built-in chain — the
jumps from built-in chains are ``hook_rules``, added by the backend once.
Not rendered: externalTrafficPolicy Local (external traffic balances over all endpoints, and is
masqueraded); internalTrafficPolicy Local is honoured for cluster IPs.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from netplugins.proxy.model import (
    Endpoint,
    NodeInfo,
    ServicePort,
    ServicePortName,
    ServiceTable,
    select_endpoints,
)

DEFAULT_MASQUERADE_MARK = 0x40000  # the nftables backend's mark
LOOPBACK = "127.0.0.0/8"


@dataclass(frozen=True, slots=True)
class IptOptions:
    """``table``: the name our nftables table would have (the chains' suffix comes from it);
    ``cluster_cidr``: pod range whose cluster-IP traffic keeps its source (None: masquerade all)."""

    table: str
    cluster_cidr: str | None = None
    masquerade_mark: int = DEFAULT_MASQUERADE_MARK


@dataclass(frozen=True, slots=True)
class Rendering:
    """Our chains per iptables table (``nat``/``filter``): chain name -> its ``-A`` lines, in order."""

    nat: dict[str, list[str]]
    filter: dict[str, list[str]]


def chain_hash(text: str, length: int = 16) -> str:
    """A chain-name-safe digest of ``text`` (base32 of sha256), as kube-proxy names its chains."""
    return base64.b32encode(hashlib.sha256(text.encode()).digest()).decode()[:length]


def port_text(name: ServicePortName) -> str:
    return f"{name.namespace}/{name.name}:{name.port_name}"


def chain_prefix(table: str) -> str:
    """Every chain of the proxy named ``table`` starts with this (at most 28 characters in all)."""
    return f"RKPROXY-{chain_hash(table, 6)}-"


def top_chains(table: str) -> dict[str, str]:
    p = chain_prefix(table)
    return {
        "services": f"{p}SERVICES",
        "nodeports": f"{p}NODEPORTS",
        "postrouting": f"{p}POSTRTG",
        "reject": f"{p}REJECT",
    }


def hook_rules(table: str) -> dict[str, list[tuple[str, str]]]:
    """The jumps from built-in chains: iptables table -> (built-in chain, rule spec after ``-A CHAIN``)."""
    top = top_chains(table)
    svc = f'-m comment --comment "raykube service portals" -j {top["services"]}'
    new = "-m conntrack --ctstate NEW"
    rej = f'{new} -m comment --comment "raykube services without endpoints" -j {top["reject"]}'
    return {
        "nat": [
            ("PREROUTING", svc),
            ("OUTPUT", svc),
            ("POSTROUTING", f'-m comment --comment "raykube service masquerade" -j {top["postrouting"]}'),
        ],
        "filter": [("INPUT", rej), ("FORWARD", rej), ("OUTPUT", rej)],
    }


def render(table: ServiceTable, node: NodeInfo, options: IptOptions) -> Rendering:
    """All our chains for ``table`` on ``node``."""
    top = top_chains(options.table)
    mark = f"0x{options.masquerade_mark:x}"
    nat: dict[str, list[str]] = {top["services"]: [], top["nodeports"]: [], top["postrouting"]: []}
    nat[top["postrouting"]] = [
        f"-A {top['postrouting']} -m mark ! --mark {mark}/{mark} -j RETURN",
        f"-A {top['postrouting']} -j MARK --xor-mark {mark}",
        f"-A {top['postrouting']} -j MASQUERADE",
    ]
    reject: list[str] = []
    for name in sorted(table):
        port, endpoints = table[name]
        local = node.name if port.internal_local else None
        ready = select_endpoints(endpoints, local)
        if not select_endpoints(endpoints):
            reject += _reject_rules(top["reject"], port)
            continue
        _service_chains(nat, top, port, ready, options, mark)
    services = nat.pop(top["services"])
    services.append(
        f"-A {top['services']} -m addrtype --dst-type LOCAL ! -d {LOOPBACK} -j {top['nodeports']}"
    )
    nat = {top["services"]: services, **nat}
    return Rendering(nat=nat, filter={top["reject"]: reject})


def _match(proto: str, dst: str | None, dport: int) -> str:
    d = f"-d {dst}/32 " if dst else ""
    return f"{d}-p {proto} -m {proto} --dport {dport}"


def _reject_rules(chain: str, port: ServicePort) -> list[str]:
    proto = port.name.protocol.lower()
    comment = f'-m comment --comment "{port_text(port.name)} has no endpoints"'
    rules = [
        f"-A {chain} {_match(proto, ip, port.port)} {comment} -j REJECT"
        for ip in (*port.cluster_ips, *port.external_ips, *port.load_balancer_ips)
    ]
    if port.node_port is not None:
        m = _match(proto, None, port.node_port)
        rules.append(f"-A {chain} -m addrtype --dst-type LOCAL {m} {comment} -j REJECT")
    return rules


def _service_chains(
    nat: dict[str, list[str]],
    top: dict[str, str],
    port: ServicePort,
    ready: Sequence[Endpoint],
    options: IptOptions,
    mark: str,
) -> None:
    proto = port.name.protocol.lower()
    text = port_text(port.name)
    prefix = chain_prefix(options.table)
    svc = f"{prefix}S{chain_hash(f'{options.table}/{text}/{proto}', 11)}"
    ext = f"{prefix}X{chain_hash(f'{options.table}/{text}/{proto}', 11)}"
    rules = nat.setdefault(svc, [])
    for ip in port.cluster_ips:
        m = _match(proto, ip, port.port)
        nat[top["services"]].append(
            f'-A {top["services"]} {m} -m comment --comment "{text} cluster IP" -j {svc}'
        )
        src = f"! -s {options.cluster_cidr} " if options.cluster_cidr else ""
        rules.append(f"-A {svc} {src}{m} -j MARK --set-xmark {mark}/{mark}")
    external = [*port.external_ips, *port.load_balancer_ips]
    if external or port.node_port is not None:
        nat[ext] = [f"-A {ext} -j MARK --set-xmark {mark}/{mark}", f"-A {ext} -j {svc}"]
        for ip in external:
            m = _match(proto, ip, port.port)
            nat[top["services"]].append(
                f'-A {top["services"]} {m} -m comment --comment "{text} external" -j {ext}'
            )
        if port.node_port is not None:
            m = _match(proto, None, port.node_port)
            nat[top["nodeports"]].append(
                f'-A {top["nodeports"]} {m} -m comment --comment "{text} node port" -j {ext}'
            )
    seps = [f"{prefix}E{chain_hash(f'{options.table}/{text}/{proto}:{e.ip}:{e.port}', 11)}" for e in ready]
    timeout = port.session_affinity_timeout
    if timeout is not None:
        for sep in seps:
            rules.append(f"-A {svc} -m recent --name {sep} --rcheck --seconds {timeout} --reap -j {sep}")
    for i, (ep, sep) in enumerate(zip(ready, seps, strict=True)):
        left = len(ready) - i
        pick = "" if left == 1 else f"-m statistic --mode random --probability {1 / left:.11f} "
        rules.append(f'-A {svc} -m comment --comment "{text} -> {ep.ip}:{ep.port}" {pick}-j {sep}')
        remember = f"-m recent --name {sep} --set " if timeout is not None else ""
        nat[sep] = [
            f"-A {sep} -s {ep.ip}/32 -j MARK --set-xmark {mark}/{mark}",
            f"-A {sep} -p {proto} {remember}-m {proto} -j DNAT --to-destination {ep.ip}:{ep.port}",
        ]


def restore_section(
    iptables_table: str, declare: Sequence[str], rules: Sequence[str], delete: Sequence[str] = ()
) -> str:
    """One ``*table ... COMMIT`` section for ``iptables-restore --noflush``: declaring a chain creates
    or flushes it; ``delete`` chains are declared (emptied) and then removed."""
    lines = [
        f"*{iptables_table}",
        *(f":{c} - [0:0]" for c in (*declare, *delete)),
        *rules,
        *(f"-X {c}" for c in delete),
        "COMMIT",
    ]
    return "\n".join(lines) + "\n"


def restore_script(rendering: Rendering, stale: dict[str, list[str]] | None = None) -> str:
    """The whole rendering as one restore input: each of our chains flushed and rewritten, and
    ``stale`` chains (iptables table -> chain names of ours no longer rendered) removed."""
    stale = stale or {}
    out = []
    for name, chains in (("nat", rendering.nat), ("filter", rendering.filter)):
        gone = [c for c in stale.get(name, []) if c not in chains]
        out.append(restore_section(name, list(chains), [r for rs in chains.values() for r in rs], gone))
    return "".join(out)
