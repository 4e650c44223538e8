"""The bridge plugin's settings and the CNI network configuration list it runs (pure).

``BridgeSettings.from_options`` reads ``PluginContext.options`` (``bridge``, ``cluster_cidr``,
``backend``, ``pod_cidr``, ``peers``, ``vni``, ``mtu``); ``conflist`` renders the reference plugins'
configuration for a node's podCIDR: ``bridge`` (gateway on the bridge, no masquerade of its own:
ours is cluster-aware, see ``masquerade_ruleset``) with ``host-local`` IPAM, then ``portmap``.

Invariants: the same settings and podCIDR always give the same conflist (the benchmark runs the
reference plugins directly with exactly this); host-local keeps its state under ``ipam_dir``.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from typing import Any

NETWORK_NAME = "raykube"
CNI_VERSION = "1.0.0"
BACKENDS = ("host-gw", "vxlan")
DEFAULT_BRIDGE = "rk0"
DEFAULT_CLUSTER_CIDR = "10.244.0.0/16"
VXLAN_PORT = 8472
VXLAN_OVERHEAD = 50
# Routes we install carry this protocol number, so reconciliation only ever deletes its own.
ROUTE_PROTO = 0x72


@dataclass(frozen=True, slots=True)
class BridgeSettings:
    bridge: str = DEFAULT_BRIDGE
    cluster_cidr: str = DEFAULT_CLUSTER_CIDR
    backend: str = "host-gw"
    pod_cidr: str | None = None  # fixed podCIDR (tests, the kit); else the Node's spec.podCIDR
    vni: int = 1
    mtu: int = 0  # pod MTU; 0: the kernel's default (host-gw), underlay - 50 (vxlan)

    @property
    def vxlan_device(self) -> str:
        return f"rkvx{self.vni}"

    @property
    def nft_table(self) -> str:
        return f"rk-{self.bridge}"

    @staticmethod
    def from_options(options: dict[str, Any]) -> BridgeSettings:
        """Validated settings; raises ValueError naming the bad option."""
        backend = str(options.get("backend") or "host-gw")
        if backend not in BACKENDS:
            raise ValueError(f"backend {backend!r}: choose one of {', '.join(BACKENDS)}")
        bridge = str(options.get("bridge") or DEFAULT_BRIDGE)
        if not 0 < len(bridge) <= 15 or "/" in bridge or " " in bridge:
            raise ValueError(f"bridge {bridge!r} is not a valid interface name")
        cluster = str(ipaddress.ip_network(str(options.get("cluster_cidr") or DEFAULT_CLUSTER_CIDR)))
        pod_cidr = options.get("pod_cidr")
        if pod_cidr:
            pod_cidr = str(ipaddress.ip_network(str(pod_cidr)))
        return BridgeSettings(
            bridge=bridge,
            cluster_cidr=cluster,
            backend=backend,
            pod_cidr=pod_cidr or None,
            vni=int(options.get("vni") or 1),
            mtu=int(options.get("mtu") or 0),
        )


def ipam_dir(root_dir: str) -> str:
    return os.path.join(root_dir, "ipam")


def conflist(settings: BridgeSettings, pod_cidr: str, root_dir: str, mtu: int = 0) -> dict[str, Any]:
    """The network configuration list for ADD/DEL/CHECK on a node whose podCIDR is ``pod_cidr``."""
    bridge: dict[str, Any] = {
        "type": "bridge",
        "bridge": settings.bridge,
        "isGateway": True,
        "ipMasq": False,
        "hairpinMode": True,
        "ipam": {
            "type": "host-local",
            "ranges": [[{"subnet": pod_cidr}]],
            "routes": [{"dst": "0.0.0.0/0"}],
            "dataDir": ipam_dir(root_dir),
        },
    }
    if mtu:
        bridge["mtu"] = mtu
    portmap = {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True}
    return {"cniVersion": CNI_VERSION, "name": NETWORK_NAME, "plugins": [bridge, portmap]}


def loopback_conflist() -> dict[str, Any]:
    return {"cniVersion": CNI_VERSION, "name": NETWORK_NAME + "-lo", "plugins": [{"type": "loopback"}]}


def masquerade_ruleset(table: str, cluster_cidr: str) -> str:
    """An ``nft -f`` script (re)creating our table: pods' traffic leaving the cluster CIDR is
    masqueraded, traffic inside it keeps its source (pod-to-pod across nodes)."""
    return "\n".join(
        [
            f"table ip {table}",
            f"delete table ip {table}",
            f"table ip {table} {{",
            "  chain postrouting {",
            "    type nat hook postrouting priority srcnat; policy accept;",
            f"    ip saddr {cluster_cidr} ip daddr != {cluster_cidr} masquerade",
            "  }",
            "}",
            "",
        ]
    )


def forward_rules(cluster_cidr: str, bridge: str) -> list[list[str]]:
    """iptables ``filter`` FORWARD rules accepting the cluster's traffic (as flannel adds): a host
    whose FORWARD policy is DROP (Docker sets it) would otherwise drop pod traffic, also between pods
    on one bridge, since br_netfilter passes bridged frames through iptables. They go into iptables,
    not our nft table, because an accept in one table does not override a drop in another."""
    comment = ["-m", "comment", "--comment", f"raykube {bridge}"]
    return [
        ["FORWARD", "-s", cluster_cidr, *comment, "-j", "ACCEPT"],
        ["FORWARD", "-d", cluster_cidr, *comment, "-j", "ACCEPT"],
    ]
