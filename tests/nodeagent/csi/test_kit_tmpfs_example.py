"""The conformance kit against examples/tmpfs_csi.py, the plugin developers' example (root)."""

from __future__ import annotations

from pathlib import Path

import pytest

from examples.tmpfs_csi import TmpfsPlugin
from nodeagent.csi import kit
from tests.capabilities import not_root, require
from tests.nodeagent.csi.served import run_kit

# It stages nothing and has no listing, capacity or expansion; every check of what it advertises
# (stats, capacity_enforced in the volume context) must pass.
SKIPS = {"controller.list.pages", "controller.list.after_delete", "controller.capacity", "controller.expand"}
SKIPS |= {"node.expand"}


@pytest.mark.parametrize("name", list(kit.CHECKS))
def test_tmpfs_example(tmp_path: Path, name: str) -> None:
    require("root", not_root())
    (result,) = run_kit(tmp_path, TmpfsPlugin, [name])
    assert result.status != "fail", result.message
    assert result.status == ("skip" if name in SKIPS else "pass"), result
