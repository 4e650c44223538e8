"""The pure cross-node core: Node objects -> peers -> desired routes/neighbours/fdb -> plan."""

from __future__ import annotations

from typing import Any

import pytest

from netplugins.bridge.topology import (
    VTEP_MAC_ANNOTATION,
    FdbEntry,
    NeighEntry,
    NetState,
    Peer,
    RouteEntry,
    desired,
    parse_peers,
    peer_of,
    plan,
    vtep_mac,
)


def node(name: str, cidr: str | None, ip: str | None, mac: str | None = None, **spec: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {"metadata": {"name": name}, "spec": dict(spec), "status": {}}
    if cidr:
        obj["spec"]["podCIDR"] = cidr
        obj["spec"].setdefault("podCIDRs", [cidr])
    if ip:
        obj["status"]["addresses"] = [
            {"type": "Hostname", "address": name},
            {"type": "InternalIP", "address": ip},
        ]
    if mac:
        obj["metadata"]["annotations"] = {VTEP_MAC_ANNOTATION: mac}
    return obj


@pytest.mark.parametrize(
    ("obj", "want"),
    [
        pytest.param(
            node("a", "10.244.1.0/24", "10.0.0.1"), Peer("a", "10.244.1.0/24", "10.0.0.1"), id="plain"
        ),
        pytest.param(node("a", None, "10.0.0.1"), Peer("a", "", "10.0.0.1"), id="no-podcidr"),
        pytest.param(node("a", "10.244.1.0/24", None), Peer("a", "10.244.1.0/24", ""), id="no-address"),
        pytest.param(
            node("a", None, "10.0.0.1", podCIDRs=["fd00::/64", "10.244.7.0/24"]),
            Peer("a", "10.244.7.0/24", "10.0.0.1"),
            id="dual-stack-ipv4-picked",
        ),
        pytest.param(
            node("a", "10.244.1.0/24", "10.0.0.1", mac="0A:BB:CC:DD:EE:FF"),
            Peer("a", "10.244.1.0/24", "10.0.0.1", "0a:bb:cc:dd:ee:ff"),
            id="vtep-mac-annotation",
        ),
    ],
)
def test_peer_of(obj: dict[str, Any], want: Peer) -> None:
    assert peer_of(obj) == want


PEERS = [
    Peer("a", "10.244.1.0/24", "10.0.0.1", "0a:00:00:00:00:01"),
    Peer("b", "10.244.2.0/24", "10.0.0.2", "0a:00:00:00:00:02"),
    Peer("c", "10.244.3.0/24", "10.0.0.3", ""),  # no VTEP MAC published yet
    Peer("d", "", "10.0.0.4"),  # no podCIDR yet
]


def test_host_gw_routes_every_other_node_with_podcidr() -> None:
    want = desired("a", PEERS, "host-gw", "")
    assert want == NetState(
        routes=frozenset({RouteEntry("10.244.2.0/24", "10.0.0.2"), RouteEntry("10.244.3.0/24", "10.0.0.3")})
    )


def test_vxlan_routes_via_vtep_with_neighbour_and_fdb_and_skips_nodes_without_mac() -> None:
    want = desired("a", PEERS, "vxlan", "rkvx1")
    assert want.routes == frozenset({RouteEntry("10.244.2.0/24", "10.244.2.0", "rkvx1")})
    assert want.neighbours == frozenset({NeighEntry("10.244.2.0", "0a:00:00:00:00:02", "rkvx1")})
    assert want.fdb == frozenset({FdbEntry("0a:00:00:00:00:02", "10.0.0.2", "rkvx1")})


def test_unknown_backend_is_refused() -> None:
    with pytest.raises(ValueError, match="backend"):
        desired("a", PEERS, "ipip", "")


def test_plan_adds_missing_deletes_stale_and_replaces_a_changed_gateway() -> None:
    have = NetState(
        routes=frozenset(
            {
                RouteEntry("10.244.2.0/24", "10.0.0.2"),  # wanted, keep
                RouteEntry("10.244.3.0/24", "10.0.0.99"),  # node moved: replaced, not deleted
                RouteEntry("10.244.9.0/24", "10.0.0.9"),  # node gone: delete
            }
        ),
        fdb=frozenset({FdbEntry("0a:00:00:00:00:09", "10.0.0.9", "rkvx1")}),
    )
    want = desired("a", PEERS, "host-gw", "")
    p = plan(want, have)
    assert p.add_routes == (RouteEntry("10.244.3.0/24", "10.0.0.3"),)
    assert p.del_routes == (RouteEntry("10.244.9.0/24", "10.0.0.9"),)
    assert p.del_fdb == (FdbEntry("0a:00:00:00:00:09", "10.0.0.9", "rkvx1"),)
    assert plan(want, want).empty


def test_vtep_mac_is_stable_unicast_and_locally_administered() -> None:
    mac = vtep_mac("node-1")
    assert mac == vtep_mac("node-1") != vtep_mac("node-2")
    first = int(mac.split(":")[0], 16)
    assert first & 0x01 == 0 and first & 0x02 == 2


def test_parse_peers_defaults_the_mac_from_the_name_and_validates() -> None:
    (p,) = parse_peers([{"name": "b", "podCIDR": "10.244.2.0/24", "ip": "10.0.0.2"}])
    assert p == Peer("b", "10.244.2.0/24", "10.0.0.2", vtep_mac("b"))
    with pytest.raises(ValueError):
        parse_peers([{"name": "b", "podCIDR": "10.244.2.1/24", "ip": "10.0.0.2"}])


def test_a_peer_on_our_own_address_needs_no_route() -> None:
    # Two Ray nodes sharing one host and network namespace: the other bridge is local.
    peers = [*PEERS, Peer("twin", "10.244.9.0/24", "192.0.2.1", vtep_mac("twin"))]
    own_ip = "192.0.2.1"
    for backend, device in (("host-gw", ""), ("vxlan", "rkvx1")):
        want = desired("a", peers, backend, device, own_ip)
        assert all(not r.dst.startswith("10.244.9.") for r in want.routes), want
        assert desired("a", peers, backend, device) != want  # without our address it routes to it
