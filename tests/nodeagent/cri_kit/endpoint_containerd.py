"""containerd as a CRI kit endpoint: a `ContainerdRuntime` under the kit's temp dir.

Needs root and the Debian packages (see docs/containerd.md); `missing` names what is missing (a
failure unless RAYKUBE_ALLOW_MISSING=containerd).
Only the two built-in images exist offline, and containerd's PullImage always asks the registry, so the
kit's pull-and-remove case is skipped (`removable_image=None`). Run under
`flock /tmp/raykube-heavy.lock` on shared machines.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

from nodeagent.images import BUSYBOX_IMAGE
from nodeagent.runtimes.containerd import ContainerdRuntime, missing_prerequisites
from tests.nodeagent.cri_kit.endpoints import CAP_PID_NAMESPACE, CAP_POD_NETWORK, CAP_UTS, Endpoint

NAME = "containerd"
CAPABILITY = "containerd"


def missing() -> str | None:
    missing = missing_prerequisites()
    return "; ".join(missing) if missing else None


@contextlib.asynccontextmanager
async def _containerd(tmp: Path) -> AsyncIterator[Endpoint]:
    rt = ContainerdRuntime(
        str(tmp / "containerd"), pod_cidr="10.213.2.0/24", bridge=f"rk-k{os.getpid() % 100000}"
    )
    try:
        socket_path = await rt.start()
        (tmp / "logs").mkdir(exist_ok=True)
        yield Endpoint(
            name=NAME,
            socket=socket_path,
            long_image="busybox",  # containerd normalises it to docker.io/library/busybox:latest
            short_image=BUSYBOX_IMAGE,
            removable_image=None,
            log_root=str(tmp / "logs"),
            workdir="/tmp",
            capabilities=frozenset({CAP_POD_NETWORK, CAP_PID_NAMESPACE, CAP_UTS}),
        )
    finally:
        await rt.stop()


def endpoint(tmp: Path) -> contextlib.AbstractAsyncContextManager[Endpoint]:
    return _containerd(tmp)
