"""Helpers shared by the integration modules: polling with a deadline, kubectl against a kubeconfig,
stopping a node's agent.

A module that waits with its own timeout and interval binds them once and calls the result like the
function itself, e.g. ``wait_until = functools.partial(support.wait_until, timeout=120.0)`` (a call
may still pass its own ``timeout=``).
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

from tests.integration.conftest import KUBECTL_DIR

T = TypeVar("T")

KUBECTL_133 = str(KUBECTL_DIR / "kubectl.1.33")


def wait_until(probe: Callable[[], T | None], what: str, timeout: float, every: float = 0.5) -> T:
    """Call ``probe`` every ``every`` seconds until it returns something truthy, and return that.

    ``probe`` is always called at least once, and once more after the deadline has passed; past
    ``timeout`` seconds the wait fails with an AssertionError naming ``what`` was awaited and the
    last value ``probe`` returned.
    """
    deadline = time.monotonic() + timeout
    while True:
        last = probe()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")
        time.sleep(every)


def kubectl_at(kubeconfig: Path | str, *args: str, input: str | None = None) -> str:
    """Run kubectl 1.33 with ``kubeconfig`` (60 s at most) and return its stdout; fail on a non-zero exit."""
    proc = subprocess.run(
        [KUBECTL_133, "--kubeconfig", str(kubeconfig), *args],
        capture_output=True,
        text=True,
        input=input,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, f"kubectl {' '.join(args)}: {proc.stdout}{proc.stderr}"
    return proc.stdout


def stop_agent(
    node: str, namespace: str, *, address: str = "auto", env: Mapping[str, str] | None = None
) -> None:
    """Stop the node agent of ``node`` through its Ray actor ``agent-<node>`` in the Ray namespace
    ``namespace`` (from a fresh Python process connected to the Ray at ``address``, with ``env``).

    The agent shuts down but its actor stays, so the controller manager does not replace it (a killed
    agent actor would be redeployed within 15 s, as systemd restarts a kubelet): the node stops
    reporting until `raykube up` starts the agent again.
    """
    script = (
        f"import ray; ray.init(address={address!r}, logging_level='ERROR');"
        f"ray.get(ray.get_actor({'agent-' + node!r}, namespace={namespace!r}).shutdown.remote())"
    )
    subprocess.run([sys.executable, "-c", script], env=env, check=True, timeout=120)
