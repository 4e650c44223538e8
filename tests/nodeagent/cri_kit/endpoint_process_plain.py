"""The ``process`` runtime forced to plain subprocesses (its fallback where namespaces are not allowed)."""

from __future__ import annotations

import contextlib
from pathlib import Path

from tests.nodeagent.cri_kit.endpoint_process import run_process_runtime
from tests.nodeagent.cri_kit.endpoints import Endpoint

NAME = "process-plain"
CAPABILITY = "isolation"  # never missing: plain subprocesses run anywhere


def missing() -> str | None:
    return None


def endpoint(tmp: Path) -> contextlib.AbstractAsyncContextManager[Endpoint]:
    return run_process_runtime(tmp, NAME, "plain")
