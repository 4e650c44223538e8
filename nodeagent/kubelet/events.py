"""Events as the kubelet records them: its reasons (``pkg/kubelet/events/event.go``) and message
formats, named once for the agent and the tests, and the kubelet's ``involvedObject`` builders.

``pod_ref``/``node_ref`` build the reference as the kubelet does: a container's events point at the
pod with ``fieldPath: spec.containers{name}``, the node's at ``kind: Node`` whose uid is the node's
name. The event values and client-go's correlator, shared with the controllers, live in
``cluster.client.events`` and are re-exported here for the agent's callers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cluster.client.events import (
    COMBINED_PREFIX,
    NORMAL,
    WARNING,
    Correlation,
    Event,
    EventCorrelator,
    ObjectRef,
    event_key,
    new_event,
)

__all__ = [
    "COMBINED_PREFIX", "NORMAL", "WARNING", "Correlation", "Event", "EventCorrelator", "ObjectRef",
    "event_key", "new_event", "node_ref", "pod_ref",
]  # fmt: skip

COMPONENT = "kubelet"

# Container and image events.
CREATED_CONTAINER = "Created"
STARTED_CONTAINER = "Started"
FAILED_TO_CREATE_CONTAINER = "Failed"
KILLING_CONTAINER = "Killing"
BACK_OFF_START_CONTAINER = "BackOff"
EXCEEDED_GRACE_PERIOD = "ExceededGracePeriod"
PULLING_IMAGE = "Pulling"
PULLED_IMAGE = "Pulled"
FAILED_TO_PULL_IMAGE = "Failed"
# Pod events.
FAILED_CREATE_POD_SANDBOX = "FailedCreatePodSandBox"
SANDBOX_CHANGED = "SandboxChanged"
# Probe events.
CONTAINER_UNHEALTHY = "Unhealthy"
# Node events.
STARTING_KUBELET = "Starting"
NODE_READY = "NodeReady"
NODE_NOT_READY = "NodeNotReady"
# raykube: a container runs without the resource limits its spec asks for (cgroups not applied).
RESOURCE_LIMITS_NOT_APPLIED = "ResourceLimitsNotApplied"


def already_present(image: str) -> str:
    return f'Container image "{image}" already present on machine'


def go_seconds(seconds: float) -> str:
    """A duration roughly as Go prints it: ``850ms``, ``1.234s``, ``2m3.5s``."""
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    minutes, rest = divmod(seconds, 60)
    text = f"{rest:.3f}".rstrip("0").rstrip(".") + "s"
    return f"{int(minutes)}m{text}" if minutes else text


def pulled(image: str, seconds: float, waiting: float, size: int) -> str:
    return (
        f'Successfully pulled image "{image}" in {go_seconds(seconds)} '
        f"({go_seconds(waiting)} including waiting). Image size: {size} bytes."
    )


def probe_failed(kind: str, output: str) -> str:
    """``Liveness probe failed: <output>`` (the kubelet's prober, output as the probe returned it)."""
    return f"{kind.capitalize()} probe failed: {output}"


def probe_errored(kind: str, output: str) -> str:
    return f"{kind.capitalize()} probe errored and resulted in unknown state: {output}"


def node_condition_reason(ctype: str, status: str) -> str | None:
    """The event reason the kubelet's node status setters record when a condition changes."""
    reasons = {
        ("Ready", "True"): NODE_READY,
        ("MemoryPressure", "False"): "NodeHasSufficientMemory",
        ("MemoryPressure", "True"): "NodeHasInsufficientMemory",
        ("DiskPressure", "False"): "NodeHasNoDiskPressure",
        ("DiskPressure", "True"): "NodeHasDiskPressure",
        ("PIDPressure", "False"): "NodeHasSufficientPID",
        ("PIDPressure", "True"): "NodeHasInsufficientPID",
    }
    if ctype == "Ready":
        return reasons.get((ctype, status), NODE_NOT_READY)
    return reasons.get((ctype, status))


def pod_ref(pod: Mapping[str, Any], container: str | None = None) -> ObjectRef:
    """The pod, or with ``container`` one of its containers (``spec.containers{name}``, or
    ``spec.initContainers{name}`` for an init container), as ``ref.GetPartialReference`` builds it."""
    meta = pod.get("metadata") or {}
    path = ""
    if container is not None:
        inits = {c.get("name") for c in (pod.get("spec") or {}).get("initContainers") or ()}
        path = f"spec.{'initContainers' if container in inits else 'containers'}{{{container}}}"
    return ObjectRef(
        "Pod", str(meta.get("name", "")), str(meta.get("namespace") or "default"),
        str(meta.get("uid", "")), "v1", str(meta.get("resourceVersion", "")), path,
    )  # fmt: skip


def node_ref(node_name: str) -> ObjectRef:
    """The kubelet's ``nodeRef``: uid is the node's name, not the Node object's uid."""
    return ObjectRef("Node", node_name, uid=node_name, api_version="")
