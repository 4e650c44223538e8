"""The bridge plugin's options and the conflist it runs (pure), and host-local reservation files."""

from __future__ import annotations

from pathlib import Path

import pytest

from netplugins.bridge.config import BridgeSettings, conflist, masquerade_ruleset
from netplugins.bridge.plugin import parse_reservation, reservations


def test_defaults() -> None:
    s = BridgeSettings.from_options({})
    assert (s.bridge, s.cluster_cidr, s.backend, s.pod_cidr) == ("rk0", "10.244.0.0/16", "host-gw", None)
    assert (s.nft_table, s.vxlan_device) == ("rk-rk0", "rkvx1")


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({"backend": "ipip"}, id="backend"),
        pytest.param({"bridge": "a-name-longer-than-15"}, id="bridge-name"),
        pytest.param({"cluster_cidr": "10.244.0.1/16"}, id="cluster-cidr-host-bits"),
        pytest.param({"pod_cidr": "nonsense"}, id="pod-cidr"),
    ],
)
def test_bad_options_are_refused(options: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        BridgeSettings.from_options(options)


def test_conflist_shape() -> None:
    c = conflist(BridgeSettings.from_options({"bridge": "rkx"}), "10.244.5.0/24", "/state")
    assert (c["cniVersion"], c["name"]) == ("1.0.0", "raykube")
    bridge, portmap = c["plugins"]
    assert (
        bridge["bridge"] == "rkx" and bridge["isGateway"] and not bridge["ipMasq"] and bridge["hairpinMode"]
    )
    assert bridge["ipam"] == {
        "type": "host-local",
        "ranges": [[{"subnet": "10.244.5.0/24"}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": "/state/ipam",
    }
    assert "mtu" not in bridge
    assert portmap == {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True}
    assert conflist(BridgeSettings(), "10.244.5.0/24", "/s", mtu=1450)["plugins"][0]["mtu"] == 1450


def test_masquerade_keeps_cluster_sources() -> None:
    script = masquerade_ruleset("rk-rkx", "10.244.0.0/16")
    assert "ip saddr 10.244.0.0/16 ip daddr != 10.244.0.0/16 masquerade" in script
    assert script.startswith("table ip rk-rkx\ndelete table ip rk-rkx\n")  # re-applying replaces


@pytest.mark.parametrize(
    ("text", "want"),
    [("abc\r\neth0", ("abc", "eth0")), ("abc", ("abc", "")), ("abc\neth1\n", ("abc", "eth1"))],
)
def test_parse_reservation(text: str, want: tuple[str, str]) -> None:
    assert parse_reservation(text) == want


def test_reservations_lists_only_address_files(tmp_path: Path) -> None:
    (tmp_path / "10.244.5.7").write_text("c1\r\neth0")
    (tmp_path / "last_reserved_ip.0").write_text("10.244.5.7")
    (tmp_path / "lock").write_text("")
    assert reservations(str(tmp_path)) == [("10.244.5.7", "c1", "eth0")]
    assert reservations(str(tmp_path / "missing")) == []
