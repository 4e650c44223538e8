"""``cluster.machinery.mountinfo``: parsing the kernel's mount table, and reading this process's."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from cluster.machinery import mountinfo
from tests.capabilities import needs, not_root


@pytest.mark.parametrize(
    ("field", "text"),
    [
        pytest.param("/plain/path", "/plain/path", id="plain"),
        pytest.param("/with\\040space/and\\011tab", "/with space/and\ttab", id="escapes"),
        pytest.param("/back\\134slash", "/back\\slash", id="backslash"),
        pytest.param("/not\\04", "/not\\04", id="short"),
    ],
)
def test_mountinfo_unescape(field: str, text: str) -> None:
    assert mountinfo.unescape(field) == text


MOUNTINFO = """\
22 1 252:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
40 22 7:0 / /data/volumes/hp-1 rw,relatime shared:20 - ext4 /dev/loop0 rw
41 22 252:0 /data/volumes/hp-1 /pods/a\\040b/mount ro,relatime shared:1 - ext4 /dev/vda rw
"""


def test_parse_mountinfo_unescapes_and_keeps_order() -> None:
    entries = mountinfo.parse(MOUNTINFO)
    assert [e.mount_point for e in entries] == ["/", "/data/volumes/hp-1", "/pods/a b/mount"]
    assert entries[1].source == "/dev/loop0" and entries[1].fs_type == "ext4"
    assert entries[2].root == "/data/volumes/hp-1" and entries[2].options.startswith("ro,")


def test_malformed_lines_are_skipped() -> None:
    assert mountinfo.parse("garbage\n22 1 252:0 / / rw - ext4\n") == []


@needs("root", not_root())
def test_bind_mounts_on_one_filesystem_are_mount_points_and_listed_deepest_first(tmp_path: Path) -> None:
    outer, inner = tmp_path / "a b", tmp_path / "a b" / "in"
    inner.mkdir(parents=True)
    subprocess.run(["mount", "--bind", str(tmp_path / "a b"), str(outer)], check=True)
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(inner)], check=True)
    try:
        assert mountinfo.is_mount_point(str(outer)) and mountinfo.is_mount_point(str(inner))
        assert not os.path.ismount(str(outer))  # what os.path.ismount misses
        assert mountinfo.mount_points_under(str(tmp_path)) == [str(inner), str(outer)]
    finally:
        subprocess.run(["umount", str(inner)], check=True)
        subprocess.run(["umount", str(outer)], check=True)
    assert mountinfo.mount_points_under(str(tmp_path)) == []
