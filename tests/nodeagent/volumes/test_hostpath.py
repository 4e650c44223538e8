"""hostPath type checks with the kubelet's messages, on real files, sockets and devices."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from nodeagent.volumes.errors import VolumeError
from nodeagent.volumes.hostpath import check_type


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    (tmp_path / "dir").mkdir()
    (tmp_path / "file").write_text("x")
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(tmp_path / "sock"))
    s.close()
    return tmp_path


@pytest.mark.parametrize(
    ("path", "kind", "error"),
    [
        pytest.param("missing", "", None, id="unchecked"),
        pytest.param("dir", "Directory", None, id="dir"),
        pytest.param("file", "Directory", "is not a directory", id="file-not-dir"),
        pytest.param("missing", "Directory", "is not a directory", id="missing-dir"),
        pytest.param("file", "File", None, id="file"),
        pytest.param("dir", "File", "is not a file", id="dir-not-file"),
        pytest.param("sock", "Socket", None, id="socket"),
        pytest.param("file", "Socket", "is not a socket file", id="not-socket"),
        pytest.param("/dev/null", "CharDevice", None, id="chardev"),
        pytest.param("file", "CharDevice", "is not a character device", id="not-chardev"),
        pytest.param("/dev/null", "BlockDevice", "is not a block device", id="not-blockdev"),
        pytest.param("dir", "Weird", "Weird is an invalid volume type", id="invalid-type"),
    ],
)
def test_check_type(tree: Path, path: str, kind: str, error: str | None) -> None:
    full = path if path.startswith("/") else str(tree / path)
    if error is None:
        check_type(full, kind)
        return
    with pytest.raises(VolumeError) as err:
        check_type(full, kind)
    assert err.value.message.endswith(error)
    if "invalid" not in error:
        assert err.value.message == f"hostPath type check failed: {full} {error}"


def test_or_create_makes_the_path(tmp_path: Path) -> None:
    check_type(str(tmp_path / "a" / "b"), "DirectoryOrCreate")
    check_type(str(tmp_path / "c" / "f"), "FileOrCreate")
    assert (tmp_path / "a" / "b").is_dir()
    assert (tmp_path / "c" / "f").is_file() and os.stat(
        tmp_path / "c" / "f"
    ).st_mode & 0o777 == 0o644 & ~_umask()
    with pytest.raises(VolumeError, match="is not a file"):
        check_type(str(tmp_path / "a"), "FileOrCreate")


def _umask() -> int:
    old = os.umask(0)
    os.umask(old)
    return old
