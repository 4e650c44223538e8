"""Small groups: coordination (Lease), scheduling (PriorityClass) and policy (PodDisruptionBudget)
(StorageClass is in ``storage``). Each kind has a handful of field rules and, where Kubernetes has
them, update restrictions.
"""

from __future__ import annotations

from typing import Any

from cluster.apiserver.validation.apps import int_or_percent, validate_positive_int_or_percent
from cluster.apiserver.validation.fields import (
    Cause,
    as_dict,
    forbidden,
    immutable,
    invalid,
    nonnegative,
    not_supported,
)
from cluster.apiserver.validation.meta import validate_label_selector

HIGHEST_USER_PRIORITY = 1_000_000_000
SYSTEM_PRIORITY_CLASSES = {"system-cluster-critical": 2_000_000_000, "system-node-critical": 2_000_001_000}


def validate_lease(lease: dict[str, Any]) -> list[Cause]:
    spec = as_dict(lease.get("spec"))
    causes: list[Cause] = []
    duration = spec.get("leaseDurationSeconds")
    if isinstance(duration, int) and duration <= 0:
        causes.append(invalid("spec.leaseDurationSeconds", duration, "must be greater than 0"))
    causes += nonnegative(spec.get("leaseTransitions"), "spec.leaseTransitions")
    return causes


def validate_priority_class(pc: dict[str, Any]) -> list[Cause]:
    causes: list[Cause] = []
    name = as_dict(pc.get("metadata")).get("name") or ""
    value = pc.get("value")
    if name.startswith("system-"):
        if SYSTEM_PRIORITY_CLASSES.get(name) != value:
            causes.append(
                forbidden(
                    "metadata.name",
                    "priority class names with 'system-' prefix are reserved for system use only",
                )
            )
    elif isinstance(value, int) and value > HIGHEST_USER_PRIORITY:
        causes.append(
            forbidden("value", f"maximum allowed value of a user defined priority is {HIGHEST_USER_PRIORITY}")
        )
    policy = pc.get("preemptionPolicy")
    if policy is not None and policy not in ("Never", "PreemptLowerPriority"):
        causes.append(not_supported("preemptionPolicy", policy, ("Never", "PreemptLowerPriority")))
    return causes


def validate_priority_class_update(new: dict[str, Any], old: dict[str, Any]) -> list[Cause]:
    causes: list[Cause] = []
    if new.get("value") != old.get("value"):
        causes.append(forbidden("value", "may not be changed in an update."))
    if new.get("preemptionPolicy") != old.get("preemptionPolicy"):
        causes.append(immutable("preemptionPolicy", new.get("preemptionPolicy")))
    return causes


def validate_pod_disruption_budget(pdb: dict[str, Any]) -> list[Cause]:
    spec = as_dict(pdb.get("spec"))
    causes: list[Cause] = []
    if spec.get("minAvailable") is not None and spec.get("maxUnavailable") is not None:
        causes.append(
            invalid(
                "spec.minAvailable",
                spec["minAvailable"],
                "minAvailable and maxUnavailable cannot be both set",
            )
        )
    for field in ("minAvailable", "maxUnavailable"):
        value = spec.get(field)
        causes += validate_positive_int_or_percent(value, f"spec.{field}")
        parsed = int_or_percent(value) if value is not None else None
        if parsed is not None and parsed[1] and parsed[0] > 100:
            causes.append(invalid(f"spec.{field}", value, "must not be greater than 100%"))
    if spec.get("selector") is not None:
        causes += validate_label_selector(spec["selector"], "spec.selector")
    policy = spec.get("unhealthyPodEvictionPolicy")
    if policy is not None and policy not in ("AlwaysAllow", "IfHealthyBudget"):
        causes.append(
            not_supported("spec.unhealthyPodEvictionPolicy", policy, ("AlwaysAllow", "IfHealthyBudget"))
        )
    return causes
