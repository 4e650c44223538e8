"""``raykube up``'s checks that run before Ray is touched: a refused request starts and writes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from cluster.bootstrap import ClusterConfig, UpConfig, UpRefused, _cluster_cidr, up


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
    assert _cluster_cidr(UpConfig(data_dir=tmp_path, cluster_cidr=asked), old) == expected


def test_cluster_json_keeps_the_cluster_cidr(tmp_path: Path) -> None:
    ClusterConfig(replicas=3, namespace="ns", cluster_cidr="10.32.0.0/12").save(tmp_path)
    assert ClusterConfig.load(tmp_path) == ClusterConfig(
        replicas=3, namespace="ns", cluster_cidr="10.32.0.0/12"
    )
    (tmp_path / "cluster.json").write_text('{"replicas": 1, "namespace": "ns"}')  # written before the flag
    loaded = ClusterConfig.load(tmp_path)
    assert loaded is not None and loaded.cluster_cidr == "10.244.0.0/16"
