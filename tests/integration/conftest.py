"""Integration tests: real Ray, real actors, real processes.

They share the machine's Ray: the CLI tests run `raykube` in subprocesses (which start and stop a
local Ray head), the store tests start their own in-process Ray. They must not overlap, so they
live in modules that pytest runs one after another.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

RAYKUBE = [sys.executable, "-m", "cluster.cli"]


def run_cli(
    *args: str, data_dir: Path, check: bool = True, timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, RAYKUBE_DATA_DIR=str(data_dir), RAY_USAGE_STATS_ENABLED="0", COLUMNS="200")
    proc = subprocess.run(
        [*RAYKUBE, *args], capture_output=True, text=True, env=env, timeout=timeout, check=False
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"raykube {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


def ray_stop() -> None:
    ray_bin = shutil.which("ray") or str(Path(sys.executable).with_name("ray"))
    subprocess.run([ray_bin, "stop", "--force"], capture_output=True, check=False, timeout=120)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "raykube-data"
