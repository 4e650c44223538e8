"""The runtime's view of one pod, as the pod worker reads it from the CRI: the values the cores take.

A ``PodRuntimeView`` holds the pod's newest sandbox and every container instance the runtime still
knows (older, exited instances included), newest first per name, as the kubelet's internal PodStatus
does. ``container_hash`` is the fingerprint of a container spec the worker stores as a label on each
container it creates, so ``pod_actions`` can tell when the spec changed. Values only; no I/O.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

ContainerState = Literal["created", "running", "exited", "unknown"]


@dataclass(frozen=True, slots=True)
class RuntimeContainer:
    """One container instance as the runtime reports it (CRI ContainerStatus, in our words)."""

    name: str
    id: str  # with the runtime's scheme: "process://abc", "containerd://abc"
    state: ContainerState
    restart_count: int = 0
    exit_code: int = 0
    reason: str = ""  # runtime's reason for exited containers: "Completed", "Error", "OOMKilled"
    message: str = ""
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    spec_hash: str = ""
    image: str = ""
    image_ref: str = ""


@dataclass(frozen=True, slots=True)
class Sandbox:
    """The pod's newest sandbox; ``ready`` is CRI's SANDBOX_READY."""

    id: str
    ready: bool
    attempt: int = 0
    ips: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PodRuntimeView:
    """The newest sandbox (if any) and all container instances, newest first within a name."""

    sandbox: Sandbox | None = None
    containers: tuple[RuntimeContainer, ...] = ()

    def latest(self, name: str) -> RuntimeContainer | None:
        """The newest instance of container ``name``."""
        for c in self.containers:
            if c.name == name:
                return c
        return None

    def previous(self, name: str) -> RuntimeContainer | None:
        """The newest exited instance older than the newest one (``lastState``, ``logs --previous``)."""
        seen = False
        for c in self.containers:
            if c.name != name:
                continue
            if seen and c.state == "exited":
                return c
            seen = True
        return None


def container_hash(container: Mapping[str, Any]) -> str:
    """A stable fingerprint of a container spec (key order does not matter)."""
    text = json.dumps(container, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
