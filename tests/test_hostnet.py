"""tests/hostnet.py: the parsers keep identity and drop what flaps; a real leak (veth pair, address,
route, netns, nft table, chain and rule) is reported, and nothing once it is cleaned up."""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from tests import hostnet
from tests.capabilities import require

VETH: dict[str, Any] = {
    "ifindex": 7,
    "ifname": "rkv1-0",
    "flags": ["BROADCAST", "MULTICAST", "UP", "LOWER_UP"],
    "mtu": 1500,
    "operstate": "UP",
    "master": "rkul1",
    "address": "aa:bb:cc:dd:ee:01",
    "linkinfo": {"info_kind": "veth"},
    "stats64": {"rx": {"bytes": 1}},
}


def flapped(link: dict[str, Any]) -> dict[str, Any]:
    return dict(
        link,
        ifindex=9,
        flags=["BROADCAST", "MULTICAST", "UP", "NO-CARRIER"],
        operstate="DOWN",
        mtu=9000,
        address="aa:bb:cc:dd:ee:02",
        stats64={"rx": {"bytes": 99}},
    )


@pytest.mark.parametrize(
    ("parse", "a", "b"),
    [
        pytest.param(hostnet.link_lines, [VETH], [flapped(VETH)], id="link-carrier-mac-mtu-stats"),
        pytest.param(
            hostnet.addr_lines,
            [
                {
                    "ifname": "e",
                    "addr_info": [
                        {"family": "inet", "local": "10.0.0.1", "prefixlen": 24, "valid_life_time": 5}
                    ],
                }
            ],
            [
                {
                    "ifname": "e",
                    "addr_info": [
                        {"family": "inet", "local": "10.0.0.1", "prefixlen": 24, "valid_life_time": 4}
                    ],
                }
            ],
            id="addr-lifetime",
        ),
        pytest.param(
            lambda rs: hostnet.route_lines(rs, "4"),
            [{"dst": "10.1.0.0/24", "dev": "b", "protocol": "kernel", "flags": []}],
            [{"dst": "10.1.0.0/24", "dev": "b", "protocol": "kernel", "flags": ["linkdown"], "expires": 3}],
            id="route-linkdown-expiry",
        ),
        pytest.param(
            hostnet.nft_lines,
            {
                "nftables": [
                    {
                        "rule": {
                            "family": "inet",
                            "table": "t",
                            "chain": "c",
                            "handle": 3,
                            "expr": [{"counter": {"packets": 1, "bytes": 60}}],
                        }
                    }
                ]
            },
            {
                "nftables": [
                    {
                        "rule": {
                            "family": "inet",
                            "table": "t",
                            "chain": "c",
                            "handle": 8,
                            "expr": [{"counter": {"packets": 7, "bytes": 900}}],
                        }
                    }
                ]
            },
            id="nft-handle-counter",
        ),
    ],
)
def test_volatile_fields_do_not_count(parse: Any, a: Any, b: Any) -> None:
    assert parse(a) == parse(b)
    assert parse(a), "the object itself must still be described"


@pytest.mark.parametrize(
    ("parse", "a", "b"),
    [
        pytest.param(hostnet.link_lines, [VETH], [dict(VETH, master="rkul2")], id="link-master"),
        pytest.param(hostnet.link_lines, [VETH], [dict(VETH, flags=["BROADCAST"])], id="link-admin-down"),
        pytest.param(
            lambda rs: hostnet.route_lines(rs, "4"),
            [{"dst": "10.1.0.0/24", "dev": "b"}],
            [{"dst": "10.1.0.0/24", "dev": "b", "gateway": "10.0.0.2"}],
            id="route-gateway",
        ),
        pytest.param(
            hostnet.nft_lines,
            {
                "nftables": [
                    {"rule": {"family": "inet", "table": "t", "chain": "c", "expr": [{"accept": None}]}}
                ]
            },
            {
                "nftables": [
                    {"rule": {"family": "inet", "table": "t", "chain": "c", "expr": [{"drop": None}]}}
                ]
            },
            id="nft-verdict",
        ),
    ],
)
def test_identity_fields_count(parse: Any, a: Any, b: Any) -> None:
    assert parse(a) != parse(b)


def test_diff_is_a_multiset_and_only_scopes_it() -> None:
    before = hostnet.Snapshot(("link a (veth, up)", "sysctl x=0"))
    after = hostnet.Snapshot(("link a (veth, up)", "link a (veth, up)", "link b (dummy, up)", "sysctl x=1"))
    assert hostnet.diff(before, after) == [
        "- sysctl x=0",
        "+ link a (veth, up)",
        "+ link b (dummy, up)",
        "+ sysctl x=1",
    ]
    assert hostnet.diff(before, after, only=["link b"]) == ["+ link b (dummy, up)"]
    assert hostnet.diff(before, after, only=["link b", "sysctl"]) == [
        "- sysctl x=0",
        "+ link b (dummy, up)",
        "+ sysctl x=1",
    ]
    assert hostnet.diff(after, after) == []


# ------------------------------------------------------------------------------------ real host


def sh(*cmd: str) -> None:
    subprocess.run(list(cmd), text=True, capture_output=True, check=True, timeout=30)


@pytest.fixture
def leak() -> Iterator[str]:
    """Leaves a veth pair with an address and a route, a netns and an nft table/chain/rule (rk-named),
    removed after the test whatever happens."""
    require("root", hostnet.missing())
    name = f"rkd{secrets.token_hex(4)}"
    try:
        yield name
    finally:
        subprocess.run(["ip", "link", "del", name], capture_output=True, check=False)
        subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)
        subprocess.run(["nft", "delete", "table", "inet", name], capture_output=True, check=False)


def test_snapshot_reports_what_a_run_leaves_behind(leak: str) -> None:
    before = hostnet.snapshot()
    sh("ip", "link", "add", leak, "type", "veth", "peer", "name", f"{leak}p")  # no dummy module here
    sh("ip", "addr", "add", "198.18.77.1/32", "dev", leak)
    sh("ip", "link", "set", leak, "up")
    sh("ip", "route", "add", "198.18.78.0/24", "dev", leak)
    sh("ip", "netns", "add", leak)
    sh("nft", "add", "table", "inet", leak)
    sh("nft", "add", "chain", "inet", leak, "c")
    sh("nft", "add", "rule", "inet", leak, "c", "ip", "daddr", "198.18.78.9", "counter", "accept")
    leaked = hostnet.diff(before, hostnet.snapshot(), only=[leak])

    expected = [
        f"+ link {leak} (veth, up)",
        f"+ link {leak}p (veth, down)",
        f"+ addr {leak} 198.18.77.1/32",
        f"+ route4 table main unicast 198.18.78.0/24 dev {leak} scope link",
        f"+ netns {leak}",
        f"+ nft table inet {leak}",
        f"+ nft chain inet {leak} c",
        f"+ file /run/netns/{leak}",
    ]
    for line in expected:
        assert line in leaked, f"{line!r} missing from {leaked}"
    rules = [line for line in leaked if line.startswith(f"+ nft rule inet {leak} c ")]
    assert len(rules) == 1 and "198.18.78.9" in rules[0], leaked

    subprocess.run(["ip", "link", "del", leak], check=True)
    subprocess.run(["ip", "netns", "del", leak], check=True)
    subprocess.run(["nft", "delete", "table", "inet", leak], check=True)
    assert hostnet.diff(before, hostnet.snapshot(), only=[leak]) == []
