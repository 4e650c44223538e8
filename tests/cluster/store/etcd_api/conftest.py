from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.store.etcd_api.served import Served


@pytest.fixture
def served3(tmp_path: Path) -> Iterator[Served]:
    s = Served(tmp_path, 3)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def served1(tmp_path: Path) -> Iterator[Served]:
    s = Served(tmp_path, 1)
    try:
        yield s
    finally:
        s.close()
