"""The host-port ledger's pure rules: what collides, what a repeated claim does, what GC keeps."""

from __future__ import annotations

from typing import Any

import pytest

from netplugins.host.ledger import HostPort, Ledger, MappingError, PortConflict, host_ports


def tcp(port: int, ip: str = "") -> HostPort:
    return HostPort(ip, port, "TCP")


@pytest.mark.parametrize(
    ("a", "b", "collide"),
    [
        pytest.param(tcp(80), tcp(80), True, id="same-port-wildcard"),
        pytest.param(tcp(80), tcp(81), False, id="other-port"),
        pytest.param(tcp(80), HostPort("", 80, "UDP"), False, id="other-protocol"),
        pytest.param(tcp(80, "10.0.0.1"), tcp(80, "10.0.0.2"), False, id="distinct-addresses"),
        pytest.param(tcp(80, "10.0.0.1"), tcp(80, "10.0.0.1"), True, id="same-address"),
        pytest.param(tcp(80, "0.0.0.0"), tcp(80, "10.0.0.1"), True, id="wildcard-v4-vs-address"),
        pytest.param(tcp(80, "10.0.0.1"), tcp(80, "::"), True, id="address-vs-wildcard-v6"),
    ],
)
def test_collides(a: HostPort, b: HostPort, collide: bool) -> None:
    assert a.collides(b) is collide
    assert b.collides(a) is collide


@pytest.mark.parametrize(
    ("mappings", "ports"),
    [
        pytest.param([], (), id="none"),
        pytest.param([{"containerPort": 80}], (), id="no-host-port"),
        pytest.param(
            [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp", "hostIP": ""}], (tcp(8080),), id="tcp"
        ),
        pytest.param([{"hostPort": 53, "protocol": "udp"}], (HostPort("", 53, "UDP"),), id="udp"),
        pytest.param([{"hostPort": 80}], (tcp(80),), id="protocol-defaults-to-tcp"),
        pytest.param([{"hostPort": 80}, {"hostPort": 80, "protocol": "TCP"}], (tcp(80),), id="deduplicated"),
    ],
)
def test_host_ports(mappings: list[dict[str, Any]], ports: tuple[HostPort, ...]) -> None:
    assert host_ports(mappings) == ports


@pytest.mark.parametrize(
    "mapping",
    [
        pytest.param({"hostPort": 70000}, id="out-of-range"),
        pytest.param({"hostPort": "x"}, id="not-a-number"),
        pytest.param({"hostPort": 80, "protocol": "icmp"}, id="bad-protocol"),
    ],
)
def test_host_ports_rejects(mapping: dict[str, Any]) -> None:
    with pytest.raises(MappingError):
        host_ports([mapping])


def test_claim_conflict_names_port_and_holder() -> None:
    ledger = Ledger().claim("a/eth0", "default/a", (tcp(8080),))
    assert isinstance(ledger, Ledger)
    conflict = ledger.claim("b/eth0", "default/b", (tcp(8080),))
    assert conflict == PortConflict(tcp(8080), "default/a")
    assert conflict.message() == "hostPort 8080/TCP is already used by pod default/a"


def test_repeated_claim_replaces_own_ports() -> None:
    ledger = Ledger().claim("a/eth0", "default/a", (tcp(8080),))
    assert isinstance(ledger, Ledger)
    again = ledger.claim("a/eth0", "default/a", (tcp(9090),))
    assert isinstance(again, Ledger)
    assert again.holdings["a/eth0"].ports == (tcp(9090),)
    # 8080 is free again for another pod
    assert isinstance(again.claim("b/eth0", "default/b", (tcp(8080),)), Ledger)


def test_release_and_keep_only() -> None:
    ledger = Ledger()
    for key in ("a/eth0", "b/eth0", "c/eth0"):
        claimed = ledger.claim(key, key, ())
        assert isinstance(claimed, Ledger)
        ledger = claimed
    assert set(ledger.release("b/eth0").holdings) == {"a/eth0", "c/eth0"}
    assert set(ledger.keep_only({"c/eth0", "x/eth0"}).holdings) == {"c/eth0"}


def test_json_round_trip() -> None:
    ledger = Ledger().claim("a/eth0", "default/a", (tcp(8080, "10.0.0.1"), HostPort("", 53, "UDP")))
    assert isinstance(ledger, Ledger)
    assert Ledger.from_json(ledger.to_json()) == ledger
