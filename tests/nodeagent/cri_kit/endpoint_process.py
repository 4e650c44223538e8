"""The ``process`` runtime as a kit endpoint, run as ``python -m nodeagent.runtimes.process``.

Two endpoints: ``process`` (namespaced: the best isolation the machine allows, root or user
namespaces) and ``process-plain`` (forced plain subprocesses, the fallback used where unshare is not
permitted). ``process`` never falls back to plain itself: on a machine without namespaces its
isolation cases would silently test the plain fallback twice, so it needs ``isolation``.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from nodeagent.runtimes.process.isolation import probe
from tests.nodeagent.cri_kit.endpoints import CAP_PID_NAMESPACE, CAP_POD_NETWORK, CAP_UTS, Endpoint

NAME = "process"
CAPABILITY = "isolation"
REPO_ROOT = Path(__file__).resolve().parents[3]


def missing() -> str | None:
    iso = probe()
    return None if iso.namespaced else f"the isolation probe fell back to plain mode: {iso.reason}"


@contextlib.asynccontextmanager
async def run_process_runtime(tmp: Path, name: str, isolation: str | None) -> AsyncIterator[Endpoint]:
    sock = tmp / "process.sock"
    argv = [
        sys.executable,
        "-m",
        "nodeagent.runtimes.process",
        "--socket",
        str(sock),
        "--root",
        str(tmp / "root"),
    ]
    argv += ["--cgroup-base", "raykube-kit"]
    if isolation:
        argv += ["--isolation", isolation]
    proc = subprocess.Popen(argv, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=None, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # "ready <socket> isolation=<mode>", or EOF if it failed
        if not line.startswith("ready "):
            raise RuntimeError(f"process runtime did not start (exit {proc.wait()})")
        mode = line.rsplit("isolation=", 1)[-1].strip()
        if isolation is None and mode == "plain":
            raise RuntimeError("the process runtime fell back to plain although the probe found namespaces")
        caps = frozenset({CAP_POD_NETWORK, CAP_PID_NAMESPACE, CAP_UTS}) if mode != "plain" else frozenset()
        (tmp / "logs").mkdir(exist_ok=True)
        yield Endpoint(
            name=name,
            socket=str(sock),
            long_image="busybox",
            short_image="busybox:1.36",
            removable_image="raykube.local/kit-removable:1",
            log_root=str(tmp / "logs"),
            workdir=str(tmp),
            capabilities=caps,
        )
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def endpoint(tmp: Path) -> contextlib.AbstractAsyncContextManager[Endpoint]:
    return run_process_runtime(tmp, NAME, None)
