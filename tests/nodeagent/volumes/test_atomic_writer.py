"""The atomic writer: the kubelet's ``..data`` layout, updates, modes, and a reader that never sees a mix."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from nodeagent.volumes import atomic_writer as aw
from nodeagent.volumes.plan import FileProjection as F


def test_layout_and_update(tmp_path: Path) -> None:
    assert aw.write(str(tmp_path), {"a": F(b"1", 0o644), "dir/b": F(b"2", 0o600)}) is True
    assert os.readlink(tmp_path / "a") == "..data/a" and os.readlink(tmp_path / "dir") == "..data/dir"
    first = os.readlink(tmp_path / "..data")
    assert first.startswith("..") and (tmp_path / first).is_dir()
    assert (tmp_path / "a").read_text() == "1" and (tmp_path / "dir" / "b").read_text() == "2"
    assert os.stat(tmp_path / "dir" / "b").st_mode & 0o777 == 0o600
    assert aw.write(str(tmp_path), {"a": F(b"1", 0o644), "dir/b": F(b"2", 0o600)}) is False  # unchanged
    assert os.readlink(tmp_path / "..data") == first
    assert aw.write(str(tmp_path), {"a": F(b"new", 0o444)}) is True
    second = os.readlink(tmp_path / "..data")
    assert second != first and not (tmp_path / first).exists()
    assert sorted(os.listdir(tmp_path)) == sorted(["..data", second, "a"])
    assert (tmp_path / "a").read_text() == "new" and os.stat(tmp_path / "a").st_mode & 0o777 == 0o444
    assert aw.write(str(tmp_path), {"a": F(b"new", 0o644)}) is True  # a mode change alone is a change


def test_leftovers_of_a_crashed_writer_go(tmp_path: Path) -> None:
    (tmp_path / "..2020_01_01_00_00_00.junk").mkdir()
    aw.write(str(tmp_path), {"a": F(b"1", 0o644)})
    assert [e for e in os.listdir(tmp_path) if e.startswith("..20")] == [os.readlink(tmp_path / "..data")]


@pytest.mark.parametrize("path", ["/abs", "../up", "a/../b", "..hidden", ""])
def test_invalid_paths(tmp_path: Path, path: str) -> None:
    with pytest.raises(aw.PayloadError):
        aw.write(str(tmp_path), {path: F(b"", 0o644)})


def test_concurrent_reader_sees_one_version(tmp_path: Path) -> None:
    """A reader that opened ``..data`` once reads a and b of the same version; reading a file through
    its user-visible link always gives a whole version (never empty, never missing)."""
    target = str(tmp_path)
    aw.write(target, {"a": F(b"v0", 0o644), "b": F(b"v0", 0o644)})
    stop = threading.Event()
    seen: list[tuple[bytes, bytes]] = []
    single: list[bytes] = []
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            while not stop.is_set():
                with open(os.path.join(target, "a"), "rb") as f:
                    single.append(f.read())
                try:
                    d = os.open(os.path.join(target, "..data"), os.O_RDONLY | os.O_DIRECTORY)
                except FileNotFoundError:
                    continue
                try:
                    fa = os.open("a", os.O_RDONLY, dir_fd=d)
                    fb = os.open("b", os.O_RDONLY, dir_fd=d)
                except FileNotFoundError:  # that version was removed after we opened it: read again
                    continue
                finally:
                    os.close(d)
                seen.append((os.read(fa, 100), os.read(fb, 100)))
                os.close(fa)
                os.close(fb)
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    for i in range(1, 300):
        v = f"v{i}".encode()
        aw.write(target, {"a": F(v, 0o644), "b": F(v, 0o644)})
    stop.set()
    for t in threads:
        t.join()
    assert not errors, errors
    assert seen and all(a == b for a, b in seen)
    assert single and all(s.startswith(b"v") for s in single)
    assert aw.read(target) == {"a": b"v299", "b": b"v299"}
