"""``raykube up``'s checks that run before Ray is touched: a refused request starts and writes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from cluster.bootstrap import ClusterConfig, UpConfig, UpRefused, up


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
