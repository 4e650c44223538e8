"""``raykube up --store-port``: where the store replicas' client and peer ports start, checked before
Ray is touched and recorded in cluster.json."""

from __future__ import annotations

from pathlib import Path

import pytest

from cluster.cli import build_parser
from cluster.up_config import ClusterConfig, UpConfig, UpRefused, chosen_store_port


def test_the_flag() -> None:
    assert build_parser().parse_args(["up", "--store-port", "12379"]).store_port == 12379
    assert build_parser().parse_args(["up"]).store_port is None


@pytest.mark.parametrize(
    ("asked", "api_port", "recorded", "want"),
    [
        pytest.param(None, 6443, None, 2379, id="etcd-default"),
        pytest.param(None, 0, None, 0, id="free-with-port-0"),
        pytest.param(12379, 0, None, 12379, id="asked-beats-port-0"),
        pytest.param(None, 6443, 0, 0, id="recorded-free"),
        pytest.param(None, 0, 2379, 2379, id="recorded-beats-port-0"),
        pytest.param(0, 6443, 2379, 0, id="asked-beats-recorded"),
    ],
)
def test_chosen_store_port(
    tmp_path: Path, asked: int | None, api_port: int, recorded: int | None, want: int
) -> None:
    existing = None
    if recorded is not None:
        ClusterConfig(replicas=1, store_port=recorded).save(tmp_path)
        existing = ClusterConfig.load(tmp_path)
        assert existing is not None and existing.store_port == recorded
    assert chosen_store_port(UpConfig(data_dir=tmp_path, port=api_port, store_port=asked), existing) == want


def test_a_cluster_json_from_before_the_flag_has_none(tmp_path: Path) -> None:
    (tmp_path / "cluster.json").write_text('{"replicas": 1}')
    loaded = ClusterConfig.load(tmp_path)
    assert loaded is not None and loaded.store_port is None


@pytest.mark.parametrize("bad", [-1, 65535, 70000])
def test_a_bad_port_is_refused(tmp_path: Path, bad: int) -> None:
    with pytest.raises(UpRefused, match="--store-port"):
        chosen_store_port(UpConfig(data_dir=tmp_path, store_port=bad), None)
