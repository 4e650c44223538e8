"""The owner record of a Ray namespace: identity by resolved path and host, and how it is named."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from cluster.machinery import mountinfo
from cluster.ownership import NamespaceTaken, Owner, purge
from tests.capabilities import needs, not_root


@pytest.mark.parametrize(
    ("other", "same"),
    [
        pytest.param(lambda d: Owner.of(d), True, id="same-dir"),
        pytest.param(lambda d: Owner.of(d / "x" / ".."), True, id="same-dir-other-spelling"),
        pytest.param(lambda d: Owner.of(d / "link"), True, id="symlink-to-it"),
        pytest.param(lambda d: Owner.of(d.parent), False, id="other-dir"),
        pytest.param(lambda d: Owner.of(d, host="elsewhere"), False, id="same-path-other-host"),
    ],
)
def test_owner_identity(tmp_path: Path, other: Callable[[Path], Owner], same: bool) -> None:
    data = tmp_path / "data"
    (data / "x").mkdir(parents=True)
    (tmp_path / "data" / "link").symlink_to(data)
    mine = Owner.of(data)
    theirs = other(data)
    assert (mine == theirs) is same
    assert Owner.decode(theirs.encode()) == theirs


def test_namespace_taken_names_the_owner(tmp_path: Path) -> None:
    here = Owner.of(tmp_path / "a")
    remote = Owner(str(tmp_path / "a"), "host-b")
    assert here.describe() == str(tmp_path / "a") and socket.gethostname() not in here.describe()
    assert remote.describe() == f"{tmp_path / 'a'} on host host-b"
    err = NamespaceTaken("raykube", remote, Owner.of(tmp_path / "b"))
    assert str(err) == (
        f"the Ray namespace 'raykube' runs the raykube cluster of {tmp_path / 'a'} on host host-b, "
        f"not of {tmp_path / 'b'}"
    )


@needs("root", not_root())
def test_purge_unmounts_what_a_dead_agent_left_then_deletes(tmp_path: Path) -> None:
    """``raykube down --purge``: the token tmpfs of a pod whose node agent died comes off with the tree
    (before, the mount outlived the deleted data directory)."""
    data_dir = tmp_path / "data"
    volume = data_dir / "nodes" / "vm" / "pods" / "uid" / "volumes" / "kubernetes.io~projected" / "kube-api"
    volume.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(volume)], check=True)
    (volume / "token").write_text("secret")
    try:
        assert purge(data_dir) is None
    finally:
        if mountinfo.is_mount_point(str(volume)):
            subprocess.run(["umount", str(volume)], check=False)
    assert mountinfo.mount_points_under(str(tmp_path)) == []
    assert not data_dir.exists()
