"""The `containerd` runtime plugin: a supervised Debian containerd with a generated config, its own
root/state/socket, a bridge pod network and the locally built busybox and pause images. The node agent
speaks CRI to `ContainerdRuntime.socket_path`. Needs root; see docs/containerd.md."""

from nodeagent.runtimes.containerd.config import (
    DEFAULT_BRIDGE,
    DEFAULT_POD_CIDR,
    ContainerdPaths,
    NetworkSpec,
)
from nodeagent.runtimes.containerd.supervisor import (
    Backoff,
    ContainerdError,
    ContainerdRuntime,
    ContainerdStartError,
    ContainerdUnavailable,
    missing_prerequisites,
)

__all__ = [
    "DEFAULT_BRIDGE",
    "DEFAULT_POD_CIDR",
    "Backoff",
    "ContainerdError",
    "ContainerdPaths",
    "ContainerdRuntime",
    "ContainerdStartError",
    "ContainerdUnavailable",
    "NetworkSpec",
    "missing_prerequisites",
]
