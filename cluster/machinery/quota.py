"""What an object counts against a ResourceQuota: kube's quota evaluators (``pkg/quota/v1/evaluator/
core``), pure, shared by the ResourceQuota admission plugin (one new object's usage) and the quota
controller (the sum over a namespace's objects).

* Every object counts ``count/<plural>`` (``count/<plural>.<group>`` outside the core group).
* Pods count ``pods`` and their compute resources (``requests.cpu``/``cpu``, ``requests.memory``/
  ``memory``, ``limits.cpu``, ``limits.memory``, ``requests.ephemeral-storage`` ...: the containers'
  sum, or the largest init container when that is more) while they are not terminal (phase
  Succeeded or Failed) and not being deleted past their grace period (counted as not terminal here).
* Services count ``services``, ``services.loadbalancers`` and ``services.nodeports`` (one per
  node port); ConfigMaps, Secrets and claims count themselves (``configmaps``, ``secrets``,
  ``persistentvolumeclaims``); claims also count ``requests.storage`` and the per-class
  ``<class>.storageclass.storage.k8s.io/requests.storage`` and ``.../persistentvolumeclaims``.
* Scopes (``spec.scopes``): ``Terminating``/``NotTerminating`` (activeDeadlineSeconds set or not),
  ``BestEffort``/``NotBestEffort`` (no requests or limits at all), and ``scopeSelector`` with
  ``PriorityClass`` (``In``, ``NotIn``, ``Exists``, ``DoesNotExist``); a scoped quota only sees pods.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from cluster.machinery.resource_lists import value

COMPUTE = ("cpu", "memory", "ephemeral-storage")
POD_SCOPES = frozenset({"Terminating", "NotTerminating", "BestEffort", "NotBestEffort", "PriorityClass"})
# core kinds whose objects also count under their plain name (``pods``, ``secrets`` ...)
CORE_COUNTS = frozenset(
    {"pods", "services", "configmaps", "secrets", "persistentvolumeclaims"}
    | {"replicationcontrollers", "resourcequotas"}
)


def count_name(group: str, plural: str) -> str:
    return f"count/{plural}.{group}" if group else f"count/{plural}"


def is_terminal(pod: Mapping[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def _container_totals(spec: Mapping[str, Any], field: str) -> dict[str, Decimal]:
    summed: dict[str, Decimal] = {}
    for container in spec.get("containers") or []:
        for name, raw in ((container.get("resources") or {}).get(field) or {}).items():
            summed[name] = summed.get(name, Decimal(0)) + value(raw)
    for init in spec.get("initContainers") or []:
        for name, raw in ((init.get("resources") or {}).get(field) or {}).items():
            summed[name] = max(summed.get(name, Decimal(0)), value(raw))
    return summed


def pod_usage(pod: Mapping[str, Any]) -> dict[str, Decimal]:
    usage = {"pods": Decimal(1), "count/pods": Decimal(1)}
    if is_terminal(pod):
        return {}
    spec = pod.get("spec") or {}
    for name, amount in _container_totals(spec, "requests").items():
        usage[f"requests.{name}"] = amount
        if name in COMPUTE:
            usage[name] = amount
    for name, amount in _container_totals(spec, "limits").items():
        usage[f"limits.{name}"] = amount
    return usage


def usage(group: str, plural: str, obj: Mapping[str, Any]) -> dict[str, Decimal]:
    """What ``obj`` (of resource ``group``/``plural``) counts against a quota."""
    if not group and plural == "pods":
        return pod_usage(obj)
    out = {count_name(group, plural): Decimal(1)}
    if group:
        return out
    if plural in CORE_COUNTS:
        out[plural] = Decimal(1)
    spec = obj.get("spec") or {}
    if plural == "services":
        kind = spec.get("type") or "ClusterIP"
        if kind == "LoadBalancer":
            out["services.loadbalancers"] = Decimal(1)
        if kind in ("NodePort", "LoadBalancer"):
            out["services.nodeports"] = Decimal(len(spec.get("ports") or []))
    elif plural == "persistentvolumeclaims":
        storage = value(((spec.get("resources") or {}).get("requests") or {}).get("storage", 0))
        out["requests.storage"] = storage
        cls = spec.get("storageClassName")
        if cls:
            out[f"{cls}.storageclass.storage.k8s.io/requests.storage"] = storage
            out[f"{cls}.storageclass.storage.k8s.io/persistentvolumeclaims"] = Decimal(1)
    return out


def _is_best_effort(pod: Mapping[str, Any]) -> bool:
    spec = pod.get("spec") or {}
    for field in ("containers", "initContainers"):
        for container in spec.get(field) or []:
            resources = container.get("resources") or {}
            if resources.get("requests") or resources.get("limits"):
                return False
    return True


def _scope_matches(scope: str, pod: Mapping[str, Any], requirement: Mapping[str, Any] | None = None) -> bool:
    spec = pod.get("spec") or {}
    if scope == "Terminating":
        return spec.get("activeDeadlineSeconds") is not None
    if scope == "NotTerminating":
        return spec.get("activeDeadlineSeconds") is None
    if scope == "BestEffort":
        return _is_best_effort(pod)
    if scope == "NotBestEffort":
        return not _is_best_effort(pod)
    if scope == "PriorityClass":
        name = spec.get("priorityClassName") or ""
        operator = (requirement or {}).get("operator", "Exists")
        values = (requirement or {}).get("values") or []
        return {
            "In": name in values,
            "NotIn": name not in values,
            "Exists": bool(name),
            "DoesNotExist": not name,
        }.get(operator, False)
    return False


def scoped(quota: Mapping[str, Any]) -> bool:
    spec = quota.get("spec") or {}
    return bool(spec.get("scopes") or (spec.get("scopeSelector") or {}).get("matchExpressions"))


def matches(quota: Mapping[str, Any], group: str, plural: str, obj: Mapping[str, Any]) -> bool:
    """Whether ``quota``'s scopes let it see ``obj`` (an unscoped quota sees everything)."""
    if not scoped(quota):
        return True
    if group or plural != "pods":
        return False
    spec = quota.get("spec") or {}
    if not all(_scope_matches(s, obj) for s in spec.get("scopes") or []):
        return False
    expressions = (spec.get("scopeSelector") or {}).get("matchExpressions") or []
    return all(_scope_matches(e.get("scopeName", ""), obj, e) for e in expressions)


def total_usage(
    hard: Iterable[str], objects: Iterable[tuple[str, str, Mapping[str, Any]]], quota: Mapping[str, Any]
) -> dict[str, Decimal]:
    """``status.used`` of ``quota``: for each resource in ``hard``, the sum over ``objects``
    ((group, plural, object) triples) its scopes see."""
    names = set(hard)
    used = dict.fromkeys(names, Decimal(0))
    for group, plural, obj in objects:
        if not matches(quota, group, plural, obj):
            continue
        for name, amount in usage(group, plural, obj).items():
            if name in names:
                used[name] += amount
    return used


def resources_to_list(hard_names: Iterable[str]) -> set[tuple[str, str]]:
    """The (group, plural) kinds whose objects a quota over ``hard_names`` must count."""
    kinds: set[tuple[str, str]] = set()
    for name in hard_names:
        if name.startswith("count/"):
            plural, _, group = name.removeprefix("count/").partition(".")
            kinds.add((group, plural))
        elif name in ("pods", "cpu", "memory", "ephemeral-storage") or name.startswith(
            ("requests.", "limits.")
        ):
            kinds.add(("", "persistentvolumeclaims" if name == "requests.storage" else "pods"))
        elif name.startswith("services"):
            kinds.add(("", "services"))
        elif name in (
            "configmaps",
            "secrets",
            "persistentvolumeclaims",
            "replicationcontrollers",
            "resourcequotas",
        ):
            kinds.add(("", name))
        elif ".storageclass.storage.k8s.io/" in name:
            kinds.add(("", "persistentvolumeclaims"))
    return kinds
