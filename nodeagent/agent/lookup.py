"""How the agent's HTTP server (``kubectl logs`` / ``exec``) finds a container on this node.

``NodeAgent`` implements ``ContainerLookup``. The lookup is synchronous and cheap: it reads the agent's
in-memory view (the last pod object and the last CRI relist), never the API server or the runtime, so
the answer may lag the world by one relist (about a second). Errors carry Kubernetes' own status code,
reason and message texts, so the server can hand them on as a ``Status`` object unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

__all__ = ["ContainerLookup", "ContainerRef", "LookupFailed"]


@dataclass(frozen=True, slots=True)
class ContainerRef:
    """One container of a pod on this node, as ``kubectl logs`` / ``exec`` need it."""

    pod_uid: str
    container_name: str
    container_id: str  # CRI id (no scheme); "" if the container never started
    log_path: str  # current instance's CRI log file ("" if none)
    previous_log_path: str  # the previous instance's log file ("" if none)
    running: bool


class LookupFailed(Exception):
    """A lookup that Kubernetes answers with an error ``Status``: ``code`` (404, 400), ``reason``
    (``NotFound``, ``BadRequest``) and ``message`` (Kubernetes' text)."""

    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message

    def __repr__(self) -> str:
        return f"LookupFailed({self.code}, {self.reason!r}, {self.message!r})"


class ContainerLookup(Protocol):
    def lookup_container(self, namespace: str, pod: str, container: str | None) -> ContainerRef:
        """container None = the pod's only container; raises LookupFailed(code, reason, message)
        with Kubernetes' texts: 404 NotFound 'pods "x" not found', 400 BadRequest 'a container name must be
        specified for pod x, choose one of: [a b]', 400 'container y is not valid for pod x',
        400 'container "y" in pod "x" is waiting to start: ContainerCreating' ..."""
        ...
