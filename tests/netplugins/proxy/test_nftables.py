"""netplugins.proxy.nftables: the rendered ruleset (table tests), the incremental diff, and real
``nft`` (check mode for syntax, and applying in a throwaway network namespace that incremental
updates reach exactly the state a full rebuild gives)."""

from __future__ import annotations

import json
import subprocess
from dataclasses import replace
from typing import Any

import pytest

from netplugins.proxy.model import Endpoint, NodeInfo, ServicePort, ServicePortName, ServiceTable
from netplugins.proxy.nftables import (
    DROP_VERDICT,
    REJECT_VERDICT,
    NftOptions,
    affinity_set,
    chain_name,
    endpoint_chain,
    full_ruleset,
    incremental_ruleset,
    render_table,
    service_rules,
    table_rules,
)
from tests.capabilities import no_netns, require

OPTS = NftOptions("rkproxy-test00", cluster_cidr="10.244.0.0/16")
NODE = NodeInfo("n1", ("10.250.0.2",))
WEB = ServicePortName("default", "web", "http", "TCP")
E1 = Endpoint("10.244.0.2", 8080, "n1")
E2 = Endpoint("10.244.1.2", 8080, "n2")
UNREADY = Endpoint("10.244.0.9", 8080, "n1", ready=False, serving=False)


def web(**changes: Any) -> ServicePort:
    return replace(ServicePort(WEB, ("10.96.0.20",), 80), **changes)


def test_cluster_ip_balances_over_ready_endpoints_only() -> None:
    rules = service_rules(web(), (E1, E2, UNREADY), NODE, OPTS)
    svc = chain_name("service", WEB)
    assert rules.service_ips == {"10.96.0.20 . tcp . 80": f"goto {svc}"}
    assert rules.chains[svc] == (
        "ip daddr 10.96.0.20 ip saddr != 10.244.0.0/16 jump mark-for-masquerade",
        f"numgen random mod 2 vmap {{ 0 : goto {endpoint_chain(WEB, E1)}, "
        f"1 : goto {endpoint_chain(WEB, E2)} }}",
    )
    assert rules.chains[endpoint_chain(WEB, E1)] == (
        "ip saddr 10.244.0.2 jump mark-for-masquerade",
        "meta l4proto tcp dnat to 10.244.0.2:8080",
    )
    assert endpoint_chain(WEB, UNREADY) not in rules.chains
    assert rules.no_endpoint_services == {} and rules.sets == {}


def test_no_cluster_cidr_masquerades_all_cluster_ip_traffic() -> None:
    rules = service_rules(web(), (E1,), NODE, NftOptions("t"))
    assert rules.chains[chain_name("service", WEB)][0] == "ip daddr 10.96.0.20 jump mark-for-masquerade"


@pytest.mark.parametrize(
    ("port", "endpoints", "services", "nodeports"),
    [
        pytest.param(
            web(node_port=30080),
            (UNREADY,),
            {"10.96.0.20 . tcp . 80": REJECT_VERDICT},
            {"tcp . 30080": REJECT_VERDICT},
            id="no-ready-endpoint-rejects",
        ),
        pytest.param(
            web(internal_local=True),
            (E2,),
            {"10.96.0.20 . tcp . 80": DROP_VERDICT},
            {},
            id="internal-local-without-local-endpoint-drops",
        ),
        pytest.param(
            web(node_port=30080, external_local=True),
            (E2,),
            {},
            {"tcp . 30080": DROP_VERDICT},
            id="external-local-without-local-endpoint-drops-nodeport-only",
        ),
    ],
)
def test_no_endpoint_verdicts(
    port: ServicePort, endpoints: tuple[Endpoint, ...], services: dict[str, str], nodeports: dict[str, str]
) -> None:
    rules = service_rules(port, endpoints, NODE, OPTS)
    assert (rules.no_endpoint_services, rules.no_endpoint_nodeports) == (services, nodeports)


def test_session_affinity_sets_and_rules() -> None:
    rules = service_rules(web(session_affinity_timeout=60), (E1, E2), NODE, OPTS)
    s1, s2 = affinity_set(WEB, E1, 60), affinity_set(WEB, E2, 60)
    assert rules.sets == {
        s1: "type ipv4_addr; flags dynamic,timeout; timeout 60s;",
        s2: "type ipv4_addr; flags dynamic,timeout; timeout 60s;",
    }
    svc = rules.chains[chain_name("service", WEB)]
    assert svc[1:3] == (
        f"ip saddr @{s1} goto {endpoint_chain(WEB, E1)}",
        f"ip saddr @{s2} goto {endpoint_chain(WEB, E2)}",
    )
    assert f"update @{s1} {{ ip saddr }}" in rules.chains[endpoint_chain(WEB, E1)]
    assert affinity_set(WEB, E1, 60) != affinity_set(WEB, E1, 61)


def test_node_port_external_and_lb_ips_enter_the_external_chain_with_masquerade() -> None:
    port = web(node_port=30080, external_ips=("192.0.2.7",), load_balancer_ips=("172.29.0.5",))
    rules = service_rules(port, (E1, E2), NODE, OPTS)
    ext = chain_name("external", WEB)
    assert rules.service_nodeports == {"tcp . 30080": f"goto {ext}"}
    assert rules.service_ips["192.0.2.7 . tcp . 80"] == f"goto {ext}"
    assert rules.service_ips["172.29.0.5 . tcp . 80"] == f"goto {ext}"
    assert rules.chains[ext] == ("jump mark-for-masquerade", f"goto {chain_name('service', WEB)}")


def test_external_local_keeps_client_address_and_uses_local_endpoints() -> None:
    rules = service_rules(web(node_port=30080, external_local=True), (E1, E2), NODE, OPTS)
    local, svc = chain_name("local", WEB), chain_name("service", WEB)
    assert rules.chains[chain_name("external", WEB)] == (
        f"ip saddr 10.244.0.0/16 goto {svc}",
        "fib saddr type local jump mark-for-masquerade",
        f"fib saddr type local goto {svc}",
        f"goto {local}",
    )
    assert rules.chains[local][-1] == f"numgen random mod 1 vmap {{ 0 : goto {endpoint_chain(WEB, E1)} }}"
    assert rules.service_ips == {"10.96.0.20 . tcp . 80": f"goto {svc}"}  # ClusterIP stays cluster-wide


def test_internal_local_routes_cluster_ip_to_local_chain() -> None:
    rules = service_rules(web(internal_local=True), (E1, E2), NODE, OPTS)
    assert rules.service_ips == {"10.96.0.20 . tcp . 80": f"goto {chain_name('local', WEB)}"}


def test_ipv6_addresses_are_left_out() -> None:
    port = web(cluster_ips=("fd00::20",))
    assert service_rules(port, (E1,), NODE, OPTS).chains == {}


def test_incremental_touches_only_the_changed_service() -> None:
    other = ServicePortName("default", "other", "", "UDP")
    table: ServiceTable = {
        WEB: (web(), (E1, E2)),
        other: (ServicePort(other, ("10.96.0.30",), 53), (Endpoint("10.244.0.3", 53, "n1"),)),
    }
    old = table_rules(table, NODE, OPTS)
    new = table_rules({**table, WEB: (web(), (E1,))}, NODE, OPTS)
    script = incremental_ruleset(old, new, OPTS)
    assert "other" not in script
    assert f"delete chain ip rkproxy-test00 {endpoint_chain(WEB, E2)}" in script
    assert f"flush chain ip rkproxy-test00 {chain_name('service', WEB)}" in script
    assert incremental_ruleset(new, new, OPTS) == ""


def test_unchanged_service_ports_reuse_their_rules_and_changed_ones_are_rendered() -> None:
    other = ServicePortName("default", "other", "", "UDP")
    table: ServiceTable = {
        WEB: (web(), (E1, E2)),
        other: (ServicePort(other, ("10.96.0.30",), 53), (Endpoint("10.244.0.3", 53, "n1"),)),
    }
    old = table_rules(table, NODE, OPTS)
    changed = {**table, WEB: (web(), (E1,))}
    new = table_rules(changed, NODE, OPTS, reuse=(table, old))
    assert new == table_rules(changed, NODE, OPTS)  # the same rules as rendering everything
    assert new[other] is old[other]  # unchanged: kept, not rendered again
    assert new[WEB] != old[WEB]


def test_removed_service_loses_elements_before_its_chains() -> None:
    old = table_rules({WEB: (web(), (E1,))}, NODE, OPTS)
    lines = incremental_ruleset(old, {}, OPTS).splitlines()
    assert lines[0] == "delete element ip rkproxy-test00 service-ips { 10.96.0.20 . tcp . 80 }"
    deleted = sorted(line.split()[-1] for line in lines if line.startswith("delete chain"))
    assert deleted == sorted([chain_name("service", WEB), endpoint_chain(WEB, E1)])


# ---------------------------------------------------------------------------------------------------
# real nft, in a throwaway network namespace (unshare -n): never the host's ruleset

SCENARIOS: list[ServiceTable] = [
    {WEB: (web(node_port=30080, session_affinity_timeout=60), (E1, E2))},
    {WEB: (web(node_port=30080, session_affinity_timeout=120), (E1,))},  # timeout and endpoints change
    {WEB: (web(node_port=30080, external_local=True, load_balancer_ips=("172.29.0.5",)), (E1, E2))},
    {WEB: (web(internal_local=True), (E2,))},
    {WEB: (web(), (UNREADY,))},
    {},
]


def nft_script(script: str) -> str:
    """Run ``script`` and then list our table as JSON, in one fresh network namespace."""
    body = f"nft -f - <<'EOF'\n{script}EOF\nnft -j list table ip {OPTS.table}"
    done = subprocess.run(["unshare", "-n", "sh", "-ec", body], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


def normalized(listing: str) -> dict[str, Any]:
    """Chains with their rules in order, sets, map elements: what a table means, without handles."""
    chains: dict[str, list[str]] = {}
    objects: dict[str, Any] = {}
    for item in json.loads(listing)["nftables"]:
        if "chain" in item:
            c = item["chain"]
            chains.setdefault(c["name"], [])
            objects["chain " + c["name"]] = {k: c.get(k) for k in ("type", "hook", "prio")}
        elif "rule" in item:
            chains.setdefault(item["rule"]["chain"], []).append(
                json.dumps(item["rule"]["expr"], sort_keys=True)
            )
        elif "set" in item or "map" in item:
            s = item.get("set") or item["map"]
            elems = sorted(json.dumps(e, sort_keys=True) for e in s.get("elem", []))
            objects[f"set {s['name']}"] = (s.get("timeout"), s.get("flags"), elems)
    return {"chains": chains, "objects": objects}


def test_full_ruleset_passes_nft_check() -> None:
    require("netns", no_netns())
    script = render_table(SCENARIOS[0] | SCENARIOS[3], NODE, OPTS)
    done = subprocess.run(
        ["unshare", "-n", "nft", "-c", "-f", "-"], input=script, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr


def test_incremental_updates_reach_what_a_full_rebuild_gives() -> None:
    require("netns", no_netns())
    applied = full_ruleset({}, OPTS)
    previous = table_rules({}, NODE, OPTS)
    for table in SCENARIOS:
        current = table_rules(table, NODE, OPTS)
        applied += incremental_ruleset(previous, current, OPTS)
        previous = current
        assert normalized(nft_script(applied)) == normalized(nft_script(full_ruleset(current, OPTS)))
