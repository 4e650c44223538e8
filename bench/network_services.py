"""The network benchmark's Service half, pure: the synthetic cluster it programs and resolves, the
iptables peer's rules, and the figures made of the raw samples ``bench.network_svcrun`` returns.

- ``synthetic_cluster(n, per)``: ``n`` ClusterIP Services (namespace ``bench``, names ``svc-00000``
  ..., one TCP port 80 named ``http``) with ``per`` ready endpoints each (port 8080) in one
  EndpointSlice per Service, as the API returns them (plain dicts). ClusterIPs come from
  ``10.100.0.0/16``, endpoint addresses from ``10.245.0.0/16``; deterministic.
- ``change_endpoint(slices, k)``: the slices with change number ``k`` applied (one endpoint address
  of one Service replaced by a fresh one from ``10.246.0.0/16``): what one pod being replaced does.
- ``iptables_chains`` / ``iptables_full`` / ``iptables_partial``: the peer. kube-proxy's iptables mode
  layout (``KUBE-SERVICES`` jumping to a ``KUBE-SVC-*`` chain per Service port, which picks one
  ``KUBE-SEP-*`` chain per endpoint with ``statistic --mode random``; the SEP chain marks hairpin
  traffic and DNATs) rendered by us from the same ``ServiceTable`` for ``iptables-restore``. The
  partial script is what kube-proxy's partial syncs write: the top-level chain always, the chains
  that changed, and ``-X`` for chains that went.
- ``hosts_file`` / ``dns_names``: the same Services as ``/etc/hosts`` lines for the DNS baseline and
  the names the load generator asks.
- ``*_summary``: p50/p99/mean and ratios (ours / peer), with ``bench.network_paths.latency_summary``.

Invariants: everything here is deterministic and touches nothing outside its arguments.
"""

from __future__ import annotations

import copy
import ipaddress
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from bench.network_paths import latency_summary, ratio
from netplugins.proxy.iptables import chain_hash, port_text, restore_section
from netplugins.proxy.model import ServiceTable, select_endpoints

NAMESPACE = "bench"
ZONE = "cluster.local"
SERVICE_PORT = 80
TARGET_PORT = 8080
CLUSTER_IP_BASE = ipaddress.IPv4Address("10.100.0.0")
ENDPOINT_BASE = ipaddress.IPv4Address("10.245.0.0")
CHANGED_BASE = ipaddress.IPv4Address("10.246.0.0")
MASQ_MARK = "0x4000/0x4000"


def service_name(i: int) -> str:
    return f"svc-{i:05d}"


def service_object(name: str, cluster_ip: str, namespace: str = NAMESPACE) -> dict[str, Any]:
    return {
        "metadata": {"namespace": namespace, "name": name},
        "spec": {
            "type": "ClusterIP",
            "clusterIP": cluster_ip,
            "clusterIPs": [cluster_ip],
            "ports": [{"name": "http", "protocol": "TCP", "port": SERVICE_PORT, "targetPort": TARGET_PORT}],
        },
    }


def slice_object(service: str, addresses: Sequence[str], namespace: str = NAMESPACE) -> dict[str, Any]:
    return {
        "metadata": {
            "namespace": namespace,
            "name": f"{service}-abcde",
            "labels": {"kubernetes.io/service-name": service},
        },
        "addressType": "IPv4",
        "ports": [{"name": "http", "protocol": "TCP", "port": TARGET_PORT}],
        "endpoints": [
            {"addresses": [ip], "conditions": {"ready": True, "serving": True, "terminating": False}}
            for ip in addresses
        ],
    }


def synthetic_cluster(n: int, per: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``n`` Services with ``per`` endpoints each, and their slices (see the module docstring)."""
    services, slices = [], []
    for i in range(n):
        name = service_name(i)
        services.append(service_object(name, str(CLUSTER_IP_BASE + i + 1)))
        slices.append(slice_object(name, [str(ENDPOINT_BASE + i * per + j + 1) for j in range(per)]))
    return services, slices


def change_endpoint(slices: Sequence[dict[str, Any]], k: int) -> list[dict[str, Any]]:
    """``slices`` with change ``k``: endpoint ``k % per`` of Service ``(k * 37) % n`` gets a new
    address (``10.246.0.0 + k + 1``); the other slices are the same objects."""
    out = list(slices)
    index = (k * 37) % len(slices)
    changed = copy.deepcopy(slices[index])
    endpoints = changed["endpoints"]
    endpoints[k % len(endpoints)]["addresses"] = [str(CHANGED_BASE + k + 1)]
    out[index] = changed
    return out


def changed_service(n: int, k: int) -> str:
    return service_name((k * 37) % n)


def fqdn(service: Mapping[str, Any]) -> str:
    meta = service["metadata"]
    return f"{meta['name']}.{meta['namespace']}.svc.{ZONE}"


def dns_names(services: Sequence[Mapping[str, Any]]) -> list[str]:
    return [fqdn(s) for s in services]


def hosts_file(services: Sequence[Mapping[str, Any]]) -> str:
    """``<ClusterIP> <fqdn>`` per Service: the baseline resolver's records."""
    return "".join(f"{s['spec']['clusterIP']} {fqdn(s)}\n" for s in services)


# -------------------------------------------------------------------------- the iptables peer


def iptables_chains(table: ServiceTable, cluster_cidr: str) -> dict[str, list[str]]:
    """Every ``nat`` chain of ours (name -> its rules, as ``-A`` lines) for ``table``: the layout of
    kube-proxy's iptables mode for ClusterIP Services (no NodePorts, affinity or policies here)."""
    chains: dict[str, list[str]] = {"KUBE-SERVICES": [], "KUBE-MARK-MASQ": [], "KUBE-POSTROUTING": []}
    chains["KUBE-MARK-MASQ"].append(f"-A KUBE-MARK-MASQ -j MARK --set-xmark {MASQ_MARK}")
    chains["KUBE-POSTROUTING"] += [
        f"-A KUBE-POSTROUTING -m mark ! --mark {MASQ_MARK} -j RETURN",
        "-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000",
        "-A KUBE-POSTROUTING -j MASQUERADE --random-fully",
    ]
    for name in sorted(table):
        port, endpoints = table[name]
        proto = name.protocol.lower()
        text = port_text(name)
        svc = f"KUBE-SVC-{chain_hash(text)}"
        ready = select_endpoints(endpoints)
        rules = chains.setdefault(svc, [])
        for ip in port.cluster_ips:
            match = f"-d {ip}/32 -p {proto} -m {proto} --dport {port.port}"
            chains["KUBE-SERVICES"].append(
                f'-A KUBE-SERVICES {match} -m comment --comment "{text} cluster IP" -j {svc}'
            )
            rules.append(f"-A {svc} ! -s {cluster_cidr} {match} -j KUBE-MARK-MASQ")
        for i, ep in enumerate(ready):
            sep = f"KUBE-SEP-{chain_hash(f'{text}:{ep.ip}:{ep.port}')}"
            left = len(ready) - i
            pick = "" if left == 1 else f"-m statistic --mode random --probability {1 / left:.11f} "
            rules.append(f'-A {svc} -m comment --comment "{text} -> {ep.ip}:{ep.port}" {pick}-j {sep}')
            chains[sep] = [
                f"-A {sep} -s {ep.ip}/32 -j KUBE-MARK-MASQ",
                f"-A {sep} -p {proto} -m {proto} -j DNAT --to-destination {ep.ip}:{ep.port}",
            ]
    return chains


def _restore(declare: Sequence[str], rules: Sequence[str], delete: Sequence[str] = ()) -> str:
    return restore_section("nat", [c for c in declare if c not in delete], rules, delete)


def iptables_full(chains: Mapping[str, Sequence[str]]) -> str:
    """An ``iptables-restore --noflush`` script writing every chain, and the hooks' jumps."""
    hooks = [
        '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
        '-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
        '-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING',
    ]
    return _restore(list(chains), [*hooks, *(r for rules in chains.values() for r in rules)])


def iptables_partial(old: Mapping[str, Sequence[str]], new: Mapping[str, Sequence[str]]) -> str:
    """What a partial sync writes (``--noflush``): ``KUBE-SERVICES`` always, every chain that is new
    or changed, and ``-X`` for chains that went."""
    write = [c for c in new if c == "KUBE-SERVICES" or list(old.get(c, ())) != list(new[c])]
    gone = [c for c in old if c not in new]
    # A chain to delete must be empty and unreferenced first: flush it (declare) in the same restore.
    return _restore([*write, *gone], [r for c in write for r in new[c]], gone)


def rule_count(chains: Mapping[str, Sequence[str]]) -> int:
    return sum(len(r) for r in chains.values())


# ------------------------------------------------------------------------------------ figures


def _ms(values_ns: Sequence[float]) -> dict[str, float]:
    return latency_summary([v / 1e6 for v in values_ns], 3)


def programming_summary(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Full programming and single-endpoint changes, ms; the peer's beside ours when measured."""
    ours = raw["ours"]
    doc: dict[str, Any] = {
        "services": raw["services"],
        "endpoints_per_service": raw["endpoints_per_service"],
        "changes": len(ours["change_ns"]),
        "ours": {
            "full_ms": [round(v / 1e6, 1) for v in ours["full_ns"]],
            "full_nft_ms": [round(v / 1e6, 1) for v in ours["full_nft_ns"]],
            "full_script_lines": ours["full_script_lines"],
            "change_ms": _ms(ours["change_ns"]),
            "change_nft_ms": _ms(ours["change_nft_ns"]),
            "change_script_lines": _median_int(ours["change_script_lines"]),
            "build_table_ms": _ms(ours["build_table_ns"]),
            "partial_syncs": ours["partial_syncs"],
            "verified": ours["verified"],
        },
        "peer": None,
        "ratio": None,
        "slo_p99_s": 30.0,
    }
    doc["meets_slo"] = doc["ours"]["change_ms"]["p99"] <= 30_000
    peer = raw.get("peer")
    if peer:
        doc["peer"] = {
            "what": peer["what"],
            "rules": peer["rules"],
            "full_ms": [round(v / 1e6, 1) for v in peer["full_ns"]],
            "change_ms": _ms(peer["change_ns"]),
            "change_script_lines": _median_int(peer["change_script_lines"]),
        }
        doc["ratio"] = {
            "full_median": ratio(statistics.median(ours["full_ns"]), statistics.median(peer["full_ns"])),
            "change_p50": ratio(doc["ours"]["change_ms"]["p50"], doc["peer"]["change_ms"]["p50"]),
            "change_p99": ratio(doc["ours"]["change_ms"]["p99"], doc["peer"]["change_ms"]["p99"]),
        }
    return doc


def _median_int(values: Sequence[int]) -> int:
    return int(statistics.median(values)) if values else 0


def dns_summary(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Queries per second and latency (µs) per server, rounds pooled; ratios ours / baseline."""
    sides: dict[str, Any] = {}
    for side in ("ours", "baseline"):
        rounds = raw[side]
        answered = sum(r["answered"] for r in rounds)
        seconds = sum(r["seconds"] for r in rounds)
        sides[side] = {
            "qps": round(answered / seconds, 1) if seconds > 0 else 0.0,
            "qps_rounds": [
                round(r["answered"] / r["seconds"], 1) if r["seconds"] > 0 else 0.0 for r in rounds
            ],
            "latency_us": latency_summary([ns / 1000 for r in rounds for ns in r["latency_ns"]], 1),
            "answered": answered,
            # the load generator's CPU time over the wall time: near 1.0, the client was the limit
            "client_cpu_share": round(sum(r["client_cpu_s"] for r in rounds) / seconds, 2)
            if seconds > 0
            else 0.0,
            "lost": sum(r["lost"] for r in rounds),
            "errors": sum(r["errors"] for r in rounds),
        }
    return {
        "services": raw["services"],
        "concurrency": raw["concurrency"],
        "seconds_per_round": raw["seconds"],
        "rounds": len(raw["ours"]),
        "baseline_what": raw["baseline_what"],
        **sides,
        "ratio": {
            "qps": ratio(sides["ours"]["qps"], sides["baseline"]["qps"]),
            "p99": ratio(sides["ours"]["latency_us"]["p99"], sides["baseline"]["latency_us"]["p99"]),
        },
        "same_answers": raw["same_answers"],
    }


HTTP_PATHS = ("direct", "clusterip", "ingress")
HTTP_MODES = ("keepalive", "new_connection")


def http_summary(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Per path and mode p50/p99/mean in µs; ratios to the direct path (p50, p99)."""
    paths = {
        path: {
            mode: latency_summary([ns / 1000 for ns in raw["samples"][path][mode]], 1) for mode in HTTP_MODES
        }
        for path in HTTP_PATHS
    }
    direct = paths["direct"]
    ratios = {
        path: {
            f"{mode}_{stat}": ratio(paths[path][mode][stat], direct[mode][stat])
            for mode in HTTP_MODES
            for stat in ("p50", "p99")
        }
        for path in HTTP_PATHS
        if path != "direct"
    }
    return {
        "requests_per_mode": raw["requests"],
        "rounds": raw["rounds"],
        "what": raw["what"],
        "latency_us": paths,
        "ratio_to_direct": ratios,
    }
