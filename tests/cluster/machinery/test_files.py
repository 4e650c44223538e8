"""Private directories and files: modes set at creation whatever the umask, parents included,
existing folders left alone unless asked to tighten."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from cluster.machinery.files import open_private, private_dir, write_private


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(params=[0o000, 0o022, 0o077], ids=["umask-000", "umask-022", "umask-077"])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def test_private_dir_creates_missing_parents_0700(tmp_path: Path, umask: int) -> None:
    tmp_path.chmod(0o755)
    made = private_dir(tmp_path / "a" / "b" / "c")
    assert made.is_dir()
    assert [mode(tmp_path / p) for p in ("a", "a/b", "a/b/c")] == [0o700] * 3
    assert mode(tmp_path) == 0o755  # the existing parent is not touched


@pytest.mark.parametrize(
    ("tighten", "expected"),
    [pytest.param(False, 0o755, id="kept"), pytest.param(True, 0o700, id="tightened")],
)
def test_private_dir_existing(tmp_path: Path, tighten: bool, expected: int) -> None:
    existing = tmp_path / "mine"
    existing.mkdir()
    existing.chmod(0o755)
    private_dir(existing, tighten=tighten)
    assert mode(existing) == expected


def test_write_private_is_0600_and_atomic(tmp_path: Path, umask: int) -> None:
    path = write_private(tmp_path / "new" / "key", "secret")
    assert path.read_text() == "secret" and mode(path) == 0o600 and mode(path.parent) == 0o700
    path.chmod(0o644)
    write_private(path, b"again")  # a rewrite replaces the file: the new one is 0600 again
    assert path.read_bytes() == b"again" and mode(path) == 0o600
    assert sorted(p.name for p in path.parent.iterdir()) == ["key"]  # no temporary file left


def test_open_private(tmp_path: Path, umask: int) -> None:
    fd = open_private(tmp_path / "LOCK", os.O_RDWR)
    os.close(fd)
    assert mode(tmp_path / "LOCK") == 0o600
