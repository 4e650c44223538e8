"""``python -m nodeagent.csi.sanity``: one line per check and the exit code, against hostpath served
on a socket in this process (a thread runs its event loop) and against nothing."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from nodeagent.csi.hostpath import HostPathPlugin
from nodeagent.csi.server import serve, stop_serving
from tests.capabilities import not_root, require
from tests.nodeagent.csi.served import context, leftover_mounts
from tests.nodeagent.csi.test_kit_hostpath import IgnoresReadonly


@pytest.fixture
def served(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """The socket of a plugin (``request.param``: its class) served until the test ends."""
    require("root", not_root())
    plugin = request.param(context(tmp_path, enforce_capacity="true"))
    sock = str(tmp_path / "csi.sock")
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    server = asyncio.run_coroutine_threadsafe(serve(plugin, sock), loop).result(60)
    try:
        yield sock
    finally:
        asyncio.run_coroutine_threadsafe(stop_serving(server, plugin, sock, purge=True), loop).result(60)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
    assert leftover_mounts(tmp_path) == []


def sanity(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nodeagent.csi.sanity", *args], capture_output=True, text=True, timeout=300
    )


@pytest.mark.parametrize("served", [HostPathPlugin], indirect=True)
def test_passes_hostpath(served: str, tmp_path: Path) -> None:
    done = sanity("--socket", served, "--staging", str(tmp_path / "s"), "--target", str(tmp_path / "t"))
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("driver hostpath.csi.raykube.io ")
    assert "PASS node.lifecycle" in lines and "PASS controller.create.idempotent" in lines
    assert lines[-1].endswith(" passed, 0 skipped, 0 failed")


@pytest.mark.parametrize("served", [IgnoresReadonly], indirect=True)
def test_fails_a_broken_driver(served: str) -> None:
    done = sanity("--socket", served, "--only", "node.read*", "--only", "identity.*")
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert "PASS identity.probe" in lines
    assert any(
        line.startswith("FAIL node.readonly: ") and "published readonly, succeeded" in line for line in lines
    )
    assert lines[-1] == "3 passed, 0 skipped, 1 failed"


def test_nothing_on_the_socket(tmp_path: Path) -> None:
    done = sanity("--socket", str(tmp_path / "none.sock"), "--only", "identity.probe", "--wait", "1")
    assert done.returncode == 2
    assert "cannot reach a CSI driver at" in done.stderr


def test_list() -> None:
    done = sanity("--socket", "/nonexistent", "--list")
    assert done.returncode == 0 and "node.expand" in done.stdout.split()
