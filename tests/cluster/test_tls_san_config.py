"""``raykube up --tls-san``: the names are checked before Ray is touched, recorded in cluster.json,
kept by a later ``up`` that gives none, and replaced by one that gives others."""

from __future__ import annotations

from pathlib import Path

import pytest

from cluster.bootstrap import up
from cluster.cli import build_parser
from cluster.up_config import ClusterConfig, UpConfig, UpRefused, chosen_tls_sans


def test_the_flag_repeats() -> None:
    args = build_parser().parse_args(["up", "--tls-san", "203.0.113.7", "--tls-san", "api.example.com"])
    assert args.tls_san == ["203.0.113.7", "api.example.com"]
    assert build_parser().parse_args(["up"]).tls_san is None


def test_recorded_kept_and_replaced(tmp_path: Path) -> None:
    ClusterConfig(replicas=1, tls_sans=("203.0.113.7", "api.example.com")).save(tmp_path)
    existing = ClusterConfig.load(tmp_path)
    assert existing is not None and existing.tls_sans == ("203.0.113.7", "api.example.com")
    assert chosen_tls_sans(UpConfig(data_dir=tmp_path), existing) == ("203.0.113.7", "api.example.com")
    asked = UpConfig(data_dir=tmp_path, tls_sans=("API.example.com", " 2001:db8::1 ", "api.example.com"))
    assert chosen_tls_sans(asked, existing) == ("api.example.com", "2001:db8::1")
    assert chosen_tls_sans(UpConfig(data_dir=tmp_path, tls_sans=()), existing) == ()
    assert chosen_tls_sans(UpConfig(data_dir=tmp_path), None) == ()


def test_a_cluster_json_from_before_the_flag_has_none(tmp_path: Path) -> None:
    (tmp_path / "cluster.json").write_text('{"replicas": 1}')
    loaded = ClusterConfig.load(tmp_path)
    assert loaded is not None and loaded.tls_sans == ()


@pytest.mark.parametrize("bad", ["not a name", "-api.example.com", "api..example.com", "x" * 64 + ".com"])
def test_a_bad_name_is_refused_before_ray(tmp_path: Path, bad: str) -> None:
    with pytest.raises(UpRefused, match="--tls-san"):
        next(up(UpConfig(data_dir=tmp_path, runtime="none", network="host", tls_sans=(bad,))))
    assert not (tmp_path / "cluster.json").exists()
