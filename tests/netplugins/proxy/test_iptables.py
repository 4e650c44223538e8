"""The iptables rendering, pure: chain names, balancing, NodePorts, affinity, REJECT, masquerade."""

from __future__ import annotations

from netplugins.proxy.iptables import IptOptions, Rendering, chain_prefix, hook_rules, render, restore_script
from netplugins.proxy.model import Endpoint, NodeInfo, ServicePort, ServicePortName, ServiceTable

WEB = ServicePortName("default", "web", "http", "TCP")
EMPTY = ServicePortName("default", "empty", "", "UDP")
NOEP = '-m comment --comment "default/empty: has no endpoints" -j REJECT'
OPTS = IptOptions("rkproxy-test", cluster_cidr="10.244.0.0/16")
NODE = NodeInfo("n1", ("10.250.0.2",))
E0, E1, E2 = (
    Endpoint("10.244.0.10", 8080, "n1"),
    Endpoint("10.244.0.11", 8080, "n2"),
    Endpoint("10.244.0.12", 8080),
)


def rules(r: Rendering) -> list[str]:
    return [x for chains in (r.nat, r.filter) for rs in chains.values() for x in rs]


def table(port: ServicePort, *eps: Endpoint) -> ServiceTable:
    return {port.name: (port, tuple(eps))}


def test_every_chain_is_ours_and_fits() -> None:
    r = render(table(ServicePort(WEB, ("10.96.0.20",), 80, node_port=30080), E0, E1), NODE, OPTS)
    prefix = chain_prefix(OPTS.table)
    assert prefix.startswith("RKPROXY-") and prefix != chain_prefix("rkproxy-other")
    for chain in (*r.nat, *r.filter):
        assert chain.startswith(prefix) and len(chain) <= 28, chain
    assert all(rule.split()[1] in (*r.nat, *r.filter) for rule in rules(r))


def test_balancing_is_random_over_ready_endpoints() -> None:
    unready = Endpoint("10.244.0.13", 8080, ready=False, serving=False)
    r = render(table(ServicePort(WEB, ("10.96.0.20",), 80), E0, E1, E2, unready), NODE, OPTS)
    svc = next(
        c for c in r.nat if c.startswith(chain_prefix(OPTS.table) + "S") and not c.endswith("SERVICES")
    )
    picks = [x for x in r.nat[svc] if "-j RKPROXY" in x and "MARK" not in x]
    assert [p.split("--probability ")[1].split()[0] if "--probability" in p else None for p in picks] == [
        "0.33333333333",
        "0.50000000000",
        None,
    ]
    dnat = [x for x in rules(r) if "DNAT" in x]
    assert sorted(x.split()[-1] for x in dnat) == ["10.244.0.10:8080", "10.244.0.11:8080", "10.244.0.12:8080"]
    # traffic from outside the cluster CIDR is marked for masquerade; hairpin too
    assert (
        f"-A {svc} ! -s 10.244.0.0/16 -d 10.96.0.20/32 -p tcp -m tcp --dport 80 "
        "-j MARK --set-xmark 0x40000/0x40000" in r.nat[svc]
    )
    assert sum("-s 10.244.0.1" in x and "MARK" in x for x in rules(r)) == 3
    assert r.filter == {chain_prefix(OPTS.table) + "REJECT": []}


def test_node_ports_external_and_lb_ips_go_through_a_masquerading_chain() -> None:
    port = ServicePort(
        WEB,
        ("10.96.0.20",),
        80,
        node_port=30080,
        external_ips=("1.2.3.4",),
        load_balancer_ips=("172.29.0.5",),
    )
    r = render(table(port, E0), NODE, OPTS)
    p = chain_prefix(OPTS.table)
    services = r.nat[p + "SERVICES"]
    assert services[-1] == f"-A {p}SERVICES -m addrtype --dst-type LOCAL ! -d 127.0.0.0/8 -j {p}NODEPORTS"
    ext = next(c for c in r.nat if c.startswith(p + "X"))
    assert r.nat[ext][0].endswith("-j MARK --set-xmark 0x40000/0x40000")
    assert r.nat[ext][1].split()[-1].startswith(p + "S")
    assert sum(x.endswith(f"-j {ext}") for x in services) == 2
    assert r.nat[p + "NODEPORTS"] == [
        f'-A {p}NODEPORTS -p tcp -m tcp --dport 30080 -m comment --comment "default/web:http node port" '
        f"-j {ext}"
    ]


def test_client_ip_affinity_uses_recent() -> None:
    r = render(table(ServicePort(WEB, ("10.96.0.20",), 80, session_affinity_timeout=30), E0, E1), NODE, OPTS)
    checks = [x for x in rules(r) if "--rcheck" in x]
    sets = [x for x in rules(r) if "--set " in x and "recent" in x]
    assert len(checks) == 2 and len(sets) == 2
    for c in checks:
        sep = c.split()[-1]
        assert f"--name {sep} --rcheck --seconds 30 --reap" in c
        assert any(s.startswith(f"-A {sep} ") and f"--name {sep} --set" in s for s in sets)
    assert not any(
        "recent" in x for x in rules(render(table(ServicePort(WEB, ("10.96.0.20",), 80), E0), NODE, OPTS))
    )


def test_no_endpoints_rejects_in_filter_and_routes_nothing() -> None:
    port = ServicePort(EMPTY, ("10.96.0.22",), 53, node_port=30053)
    r = render(table(port, Endpoint("10.244.0.10", 53, ready=False, serving=False)), NODE, OPTS)
    p = chain_prefix(OPTS.table)
    assert r.filter[p + "REJECT"] == [
        f"-A {p}REJECT -d 10.96.0.22/32 -p udp -m udp --dport 53 {NOEP}",
        f"-A {p}REJECT -m addrtype --dst-type LOCAL -p udp -m udp --dport 30053 {NOEP}",
    ]
    assert set(r.nat) == {p + "SERVICES", p + "NODEPORTS", p + "POSTRTG"}


def test_internal_local_keeps_node_endpoints() -> None:
    port = ServicePort(WEB, ("10.96.0.20",), 80, internal_local=True)
    dnat = [x for x in rules(render(table(port, E0, E1), NODE, OPTS)) if "DNAT" in x]
    assert [x.split()[-1] for x in dnat] == ["10.244.0.10:8080"]


def test_restore_script_declares_ours_and_removes_stale() -> None:
    r = render(table(ServicePort(WEB, ("10.96.0.20",), 80), E0), NODE, OPTS)
    p = chain_prefix(OPTS.table)
    script = restore_script(r, {"nat": [p + "SGONE", p + "SERVICES"]})
    assert script.startswith("*nat\n") and script.count("COMMIT") == 2 and "*filter\n" in script
    assert f":{p}SGONE - [0:0]" in script and f"-X {p}SGONE" in script and f"-X {p}SERVICES" not in script
    for chain in r.nat:
        assert f":{chain} - [0:0]" in script
    assert not any(
        line.startswith(("-A PREROUTING", "-A OUTPUT", "-A INPUT")) for line in script.splitlines()
    )
    hooks = hook_rules(OPTS.table)
    assert [c for c, _ in hooks["nat"]] == ["PREROUTING", "OUTPUT", "POSTROUTING"]
    assert [c for c, _ in hooks["filter"]] == ["INPUT", "FORWARD", "OUTPUT"]


def test_deterministic() -> None:
    t = {
        **table(ServicePort(WEB, ("10.96.0.20",), 80), E1, E0),
        **table(ServicePort(EMPTY, ("10.96.0.22",), 53)),
    }
    assert restore_script(render(t, NODE, OPTS)) == restore_script(
        render(dict(reversed(t.items())), NODE, OPTS)
    )
