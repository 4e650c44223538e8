"""LoadBalancer announcement: the owner rule (pure), the add/remove plan (pure), and the Announcer
on a real interface in a throwaway network namespace (never the host's interfaces)."""

from __future__ import annotations

import json
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from netplugins.proxy.announce import Announcer, Present, label_for, owner, plan
from tests.capabilities import no_netns, require


@pytest.mark.parametrize(
    ("nodes", "expected"),
    [
        pytest.param(["node-b", "node-a", "node-c"], "node-a", id="lowest"),
        pytest.param(["w2", "head"], "head", id="unsorted"),
        pytest.param([], "", id="none-ready"),
    ],
)
def test_owner(nodes: list[str], expected: str) -> None:
    assert owner(nodes) == expected
    assert owner(reversed(nodes)) == expected  # the same answer whatever the order it is computed in


def test_plan() -> None:
    present = Present(ours=frozenset({"172.29.0.1", "172.29.0.2"}), others=frozenset({"172.29.0.9"}))
    assert plan({"172.29.0.1", "172.29.0.3", "172.29.0.9"}, present) == (["172.29.0.3"], ["172.29.0.2"])
    assert plan(set(), present) == ([], ["172.29.0.1", "172.29.0.2"])  # never someone else's


def test_label_fits_the_kernel_limit() -> None:
    assert label_for("eth0", "node-a") == "eth0:rk0702"
    assert label_for("eth0", "node-b") != "eth0:rk0702"  # per node: simulated nodes share a netns
    assert label_for("a-long-ifname", "node-a") is None


# -- on a real interface in a network namespace --------------------------------------------------------


@pytest.fixture
def netns() -> Iterator[str]:
    require("netns", no_netns())
    name = f"rkann{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        ip = ["ip", "-n", name]
        subprocess.run([*ip, "link", "add", "rkup0", "type", "veth", "peer", "name", "rkup1"], check=True)
        subprocess.run([*ip, "addr", "add", "10.201.0.2/24", "dev", "rkup0"], check=True)
        subprocess.run([*ip, "link", "set", "rkup0", "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=True)


def addresses(ns: str) -> dict[str, str]:
    """/32 and /128 addresses of rkup0 -> their label ('' without one)."""
    links = json.loads(subprocess.run(["ip", "-n", ns, "-j", "addr", "show", "dev", "rkup0"],
                                      check=True, capture_output=True, text=True).stdout)  # fmt: skip
    return {
        a["local"]: a.get("label", "") if a["family"] == "inet" else ""
        for link in links
        for a in link["addr_info"]
        if a["prefixlen"] in (32, 128)
    }


def test_announcer_adds_removes_and_keeps_what_is_not_ours(netns: str, tmp_path: Path) -> None:
    state = tmp_path / "announced.json"
    ip = ("ip", "-n", netns)
    subprocess.run([*ip, "addr", "add", "10.201.0.77/32", "dev", "rkup0"], check=True)  # someone else's
    announcer = Announcer("node-a", "10.201.0.2", ip_cmd=ip, state_path=state)
    assert announcer.interface() == "rkup0"

    assert announcer.sync({"172.29.0.1", "172.29.0.2", "10.201.0.77"}, am_owner=True) == (
        ["172.29.0.1", "172.29.0.2"],
        [],
    )
    assert addresses(netns) == {
        "172.29.0.1": "rkup0:rk0702",
        "172.29.0.2": "rkup0:rk0702",
        "10.201.0.77": "rkup0",
    }
    assert announcer.sync({"172.29.0.1", "172.29.0.2"}, am_owner=True) == ([], [])  # idempotent

    assert announcer.sync({"172.29.0.1"}, am_owner=True) == ([], ["172.29.0.2"])
    assert set(addresses(netns)) == {"172.29.0.1", "10.201.0.77"}

    # a new Announcer (a restarted proxy) adopts what the old one added; no longer the owner: all go
    again = Announcer("node-a", "10.201.0.2", ip_cmd=ip, state_path=state)
    assert again.sync({"172.29.0.1"}, am_owner=False) == ([], ["172.29.0.1"])
    assert set(addresses(netns)) == {"10.201.0.77"}

    # IPv6 carries no label: the state file alone marks it ours
    assert again.sync({"fd00:29::5", "172.29.0.3"}, am_owner=True) == (["172.29.0.3", "fd00:29::5"], [])
    assert json.loads(state.read_text()) == ["172.29.0.3", "fd00:29::5"]
    # a restarted Announcer (after a crash) adopts the IPv6 one by the state file alone
    restarted = Announcer("node-a", "10.201.0.2", ip_cmd=ip, state_path=state)
    restarted.close(purge=False)
    assert set(addresses(netns)) == {"10.201.0.77"}  # ours withdrawn, the foreign one kept
    assert state.exists()
    restarted.close(purge=True)
    assert not state.exists()


def test_announcer_without_the_node_ip_does_nothing(netns: str) -> None:
    announcer = Announcer("node-a", "10.201.9.9", ip_cmd=("ip", "-n", netns))
    assert announcer.sync({"172.29.0.1"}, am_owner=True) == ([], [])
    assert addresses(netns) == {}


def test_two_nodes_sharing_a_namespace_leave_each_other_alone(netns: str) -> None:
    ip = ("ip", "-n", netns)
    a = Announcer("node-a", "10.201.0.2", ip_cmd=ip)
    b = Announcer("node-b", "10.201.0.2", ip_cmd=ip)
    lb = {"172.29.0.1"}
    assert a.sync(lb, am_owner=owner(["node-b", "node-a"]) == "node-a") == (["172.29.0.1"], [])
    assert b.sync(lb, am_owner=owner(["node-b", "node-a"]) == "node-b") == ([], [])
    assert set(addresses(netns)) == {"172.29.0.1"}  # b did not take a's address for its own
    a.close(purge=True)
    assert addresses(netns) == {}
