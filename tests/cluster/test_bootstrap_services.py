"""``raykube up --service-cidr`` and ``--lb-pool``: chosen, defaulted per network plugin, kept in
cluster.json, and refused before Ray is touched when invalid (or, for the Service CIDR, changed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cluster.bootstrap import up
from cluster.up_config import (
    ClusterConfig,
    UpConfig,
    UpRefused,
    chosen_lb_pool,
    chosen_service_cidr,
    service_cidr_for,
)


@pytest.mark.parametrize(
    ("existing", "asked", "plugin", "expected"),
    [
        pytest.param(None, None, "bridge", "10.96.0.0/12", id="default"),
        pytest.param(None, None, "host", "127.96.0.0/16", id="host-default-loopback"),
        pytest.param(None, "10.100.0.0/16", "host", "10.100.0.0/16", id="asked"),
        pytest.param("10.96.0.0/12", None, "host", "10.96.0.0/12", id="kept-from-cluster-json"),
    ],
)
def test_service_cidr_chosen(
    tmp_path: Path, existing: str | None, asked: str | None, plugin: str, expected: str
) -> None:
    old = ClusterConfig(replicas=1, service_cidr=existing) if existing else None
    assert chosen_service_cidr(UpConfig(data_dir=tmp_path, service_cidr=asked), old, plugin) == expected
    assert service_cidr_for("bridge") == "10.96.0.0/12"


@pytest.mark.parametrize(
    ("existing", "asked", "expected"),
    [
        pytest.param(None, None, "172.29.0.0/24", id="default"),
        pytest.param(None, " 10.0.0.0/30 , 10.1.0.1-10.1.0.9", "10.0.0.0/30,10.1.0.1-10.1.0.9", id="list"),
        pytest.param("10.5.0.0/24", None, "10.5.0.0/24", id="kept"),
        pytest.param("10.5.0.0/24", "10.6.0.0/24", "10.6.0.0/24", id="may-change"),
    ],
)
def test_lb_pool_chosen(tmp_path: Path, existing: str | None, asked: str | None, expected: str) -> None:
    old = ClusterConfig(replicas=1, lb_pool=existing) if existing else None
    assert chosen_lb_pool(UpConfig(data_dir=tmp_path, lb_pool=asked), old) == expected


@pytest.mark.parametrize(
    ("existing", "config", "message"),
    [
        pytest.param(None, {"service_cidr": "10.96.0.1/12"}, "--service-cidr: .*host bits", id="host-bits"),
        pytest.param(None, {"service_cidr": "10.96.0.0/30"}, "--service-cidr: .*too small", id="small"),
        pytest.param("10.96.0.0/12", {"service_cidr": "10.100.0.0/16"}, "created with --service-cidr",
                     id="changed"),
        pytest.param(None, {"lb_pool": "10.0.0.9-10.0.0.1"}, "--lb-pool: .*must go up", id="bad-pool"),
    ],
)  # fmt: skip
def test_refused_before_ray(
    tmp_path: Path, existing: str | None, config: dict[str, str], message: str
) -> None:
    if existing is not None:
        ClusterConfig(replicas=1, service_cidr=existing).save(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(UpRefused, match=message):
        next(up(UpConfig(data_dir=tmp_path, runtime="none", **config)))  # type: ignore[arg-type]
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_cluster_json_keeps_them(tmp_path: Path) -> None:
    saved = ClusterConfig(replicas=1, service_cidr="127.96.0.0/16", lb_pool="10.9.0.0/29")
    saved.save(tmp_path)
    assert ClusterConfig.load(tmp_path) == saved
    (tmp_path / "cluster.json").write_text('{"replicas": 1}')  # written before the flags
    loaded = ClusterConfig.load(tmp_path)
    assert loaded is not None and (loaded.service_cidr, loaded.lb_pool) == ("10.96.0.0/12", "172.29.0.0/24")
