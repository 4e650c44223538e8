"""``raykube up``'s checks that run before Ray is touched: a refused request starts and writes nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cluster.bootstrap import up
from cluster.store_deploy import store_bundles
from cluster.up_config import (
    ClusterConfig,
    UpConfig,
    UpRefused,
    chosen_cluster_cidr,
    chosen_network,
    default_network,
)
from netplugins.host.plugin import HostNetwork


@pytest.mark.parametrize(
    ("existing", "asked", "message"),
    [
        pytest.param(None, 2, "--replicas must be 1, 3 or 5", id="even-replicas"),
        pytest.param(None, 7, "--replicas must be 1, 3 or 5", id="too-many-replicas"),
        pytest.param(1, 3, "was created with 1 replica(s)", id="other-than-the-store-was-created-with"),
    ],
)
def test_refused_before_ray(tmp_path: Path, existing: int | None, asked: int, message: str) -> None:
    if existing is not None:
        ClusterConfig(replicas=existing).save(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(UpRefused, match=message.replace("(", r"\(").replace(")", r"\)")):
        next(up(UpConfig(data_dir=tmp_path, replicas=asked)))
    assert sorted(p.name for p in tmp_path.iterdir()) == before


@pytest.mark.parametrize(
    "controllers",
    [pytest.param(("*", "-replicaset2"), id="unknown-minus"), pytest.param(("cronjobs",), id="unknown-name")],
)
def test_unknown_controller_refused_before_ray(tmp_path: Path, controllers: tuple[str, ...]) -> None:
    with pytest.raises(UpRefused, match="is not in the list of known controllers"):
        next(up(UpConfig(data_dir=tmp_path, controllers=controllers)))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("existing", "asked", "message"),
    [
        pytest.param(None, "10.244.0.0/33", "--cluster-cidr: .* is not a valid CIDR", id="bad-prefix"),
        pytest.param(None, "10.244.1.0/16", "--cluster-cidr: .* host bits set", id="host-bits"),
        pytest.param(None, "10.0.0.0/16,10.1.0.0/16", "one IPv4 and one IPv6", id="two-ipv4"),
        pytest.param(
            "10.244.0.0/16", "10.245.0.0/16", "created with --cluster-cidr 10.244.0.0/16", id="changed"
        ),
    ],
)
def test_cluster_cidr_refused_before_ray(
    tmp_path: Path, existing: str | None, asked: str, message: str
) -> None:
    if existing is not None:
        ClusterConfig(replicas=1, cluster_cidr=existing).save(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(UpRefused, match=message):
        next(up(UpConfig(data_dir=tmp_path, cluster_cidr=asked)))
    assert sorted(p.name for p in tmp_path.iterdir()) == before


@pytest.mark.parametrize(
    ("existing", "asked", "expected"),
    [
        pytest.param(None, None, "10.244.0.0/16", id="default"),
        pytest.param(None, "10.32.0.0/12", "10.32.0.0/12", id="asked"),
        pytest.param("10.32.0.0/12", None, "10.32.0.0/12", id="kept-from-cluster-json"),
        pytest.param("10.32.0.0/12", "10.32.0.0/12", "10.32.0.0/12", id="same-again"),
        pytest.param(
            None, " 10.1.0.0/16 , fd00:10:244::/56", "10.1.0.0/16,fd00:10:244::/56", id="dual-stack"
        ),
    ],
)
def test_cluster_cidr_chosen(tmp_path: Path, existing: str | None, asked: str | None, expected: str) -> None:
    old = ClusterConfig(replicas=1, cluster_cidr=existing) if existing else None
    assert chosen_cluster_cidr(UpConfig(data_dir=tmp_path, cluster_cidr=asked), old) == expected


def test_cluster_json_keeps_the_cluster_cidr(tmp_path: Path) -> None:
    ClusterConfig(replicas=3, namespace="ns", cluster_cidr="10.32.0.0/12").save(tmp_path)
    assert ClusterConfig.load(tmp_path) == ClusterConfig(
        replicas=3, namespace="ns", cluster_cidr="10.32.0.0/12"
    )
    (tmp_path / "cluster.json").write_text('{"replicas": 1, "namespace": "ns"}')  # written before the flag
    loaded = ClusterConfig.load(tmp_path)
    assert loaded is not None and loaded.cluster_cidr == "10.244.0.0/16"


@pytest.mark.parametrize(
    ("existing", "config", "message"),
    [
        pytest.param(
            None, {"network": "calico"}, "--network: unknown network plugin 'calico'", id="unknown-name"
        ),
        pytest.param(
            None, {"network": "nosuch.module:Net"}, "cannot import network plugin module", id="bad-import"
        ),
        pytest.param(
            None, {"network": "cluster.up_config:UpConfig"}, "not a NetworkPlugin", id="not-a-plugin"
        ),
        pytest.param(None, {"network_backend": "ipip"}, "--network-backend must be one of", id="bad-backend"),
        pytest.param(None, {"runtime": "cri-o"}, "--runtime: unknown runtime 'cri-o'", id="unknown-runtime"),
        pytest.param(None, {"runtime": "nosuch.module:Rt"}, "cannot import runtime module", id="bad-runtime"),
        pytest.param(
            None,
            {"runtime": "containerd", "network": "host"},
            "--runtime containerd cannot use --network host.*use --network bridge",
            id="containerd-host",
        ),
        pytest.param(
            "host",
            {"network": "tests.cluster.test_bootstrap:Custom"},
            "created with --network host",
            id="changed",
        ),
    ],
)
def test_network_refused_before_ray(
    tmp_path: Path, existing: str | None, config: dict[str, Any], message: str
) -> None:
    if existing is not None:
        ClusterConfig(replicas=1, network=existing, network_backend="host-gw").save(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(UpRefused, match=message):
        next(up(UpConfig(data_dir=tmp_path, **config)))
    assert sorted(p.name for p in tmp_path.iterdir()) == before


class Custom(HostNetwork):
    NAME = "custom"


@pytest.mark.parametrize(
    ("existing", "config", "expected"),
    [
        pytest.param(None, {"network": "host"}, ("host", "host-gw"), id="asked"),
        pytest.param(
            None,
            {"network": "tests.cluster.test_bootstrap:Custom", "network_backend": "vxlan"},
            ("tests.cluster.test_bootstrap:Custom", "vxlan"),
            id="import-path",
        ),
        pytest.param(("host", "vxlan"), {}, ("host", "vxlan"), id="kept-from-cluster-json"),
        pytest.param(None, {}, (default_network(), "host-gw"), id="default"),
    ],
)
def test_network_chosen(
    tmp_path: Path, existing: tuple[str, str] | None, config: dict[str, Any], expected: tuple[str, str]
) -> None:
    old = ClusterConfig(replicas=1, network=existing[0], network_backend=existing[1]) if existing else None
    choice = chosen_network(UpConfig(data_dir=tmp_path, **config), old)
    assert (choice.plugin, choice.backend) == expected


def test_default_network_is_host_without_root_or_the_reference_plugins(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    assert default_network() == "host"
    monkeypatch.setattr("os.geteuid", lambda: 0)
    monkeypatch.setattr("cluster.up_config.CNI_BIN", "/nonexistent/cni")
    assert default_network() == "host"


def test_cluster_json_keeps_the_network(tmp_path: Path) -> None:
    ClusterConfig(replicas=1, network="host", network_backend="vxlan").save(tmp_path)
    loaded = ClusterConfig.load(tmp_path)
    assert loaded is not None and (loaded.network, loaded.network_backend) == ("host", "vxlan")


def test_store_replicas_ask_for_control_plane_nodes_only_when_there_are_enough() -> None:
    plane = {"Resources": {"CPU": 4.0, "raykube_control_plane": 1.0}}
    worker = {"Resources": {"CPU": 8.0}}
    assert (
        store_bundles(3, [plane, plane, plane, worker]) == [{"CPU": 0.01, "raykube_control_plane": 0.01}] * 3
    )
    # Two control-plane nodes for three replicas: any node, or the group could never be placed.
    assert store_bundles(3, [plane, plane, worker, worker]) == [{"CPU": 0.01}] * 3
