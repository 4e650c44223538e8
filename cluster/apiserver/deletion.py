"""Kind-specific rules of graceful deletion (Kubernetes' strategies' ``CheckGracefulDelete`` and the
namespace strategy): how long an object may take to go, and what marks it as terminating.

Pure functions of the object and the DeleteOptions; the registry applies them.
"""

from __future__ import annotations

from typing import Any

from cluster.apiserver.resources import ResourceInfo


def grace_period(info: ResourceInfo, obj: dict[str, Any], options: dict[str, Any]) -> int:
    """Seconds of graceful termination; 0 deletes at once (unless finalizers hold the object)."""
    if info.kind == "Namespace" and info.group == "":
        return 0
    if info.kind != "Pod" or info.group != "":
        return 0
    spec, status = obj.get("spec", {}), obj.get("status", {})
    if not spec.get("nodeName") or status.get("phase") in ("Succeeded", "Failed"):
        return 0  # nothing runs it: Kubernetes deletes such pods immediately
    requested = options.get("gracePeriodSeconds")
    if requested is not None:
        return max(0, int(requested))
    return int(spec.get("terminationGracePeriodSeconds", 30))


def waits_for_finalization(info: ResourceInfo, obj: dict[str, Any]) -> bool:
    return info.kind == "Namespace" and info.group == "" and bool(obj.get("spec", {}).get("finalizers"))


def mark_terminating(info: ResourceInfo, obj: dict[str, Any]) -> dict[str, Any]:
    if info.kind == "Namespace" and info.group == "":
        obj.setdefault("status", {})["phase"] = "Terminating"
    return obj
