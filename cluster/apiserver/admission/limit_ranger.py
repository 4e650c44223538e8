"""LimitRanger: kube-apiserver's admission plugin of that name, in its two halves.

* ``LimitRanger`` (mutating, before validation): a new pod's containers and init containers get the
  ``default`` limits and ``defaultRequest`` requests of each ``Container`` item of the namespace's
  LimitRanges for the resources they leave unset, and the pod is annotated
  ``kubernetes.io/limit-ranger: LimitRanger plugin set: cpu, memory request for container web; ...``.
* ``LimitRangerValidation`` (validating, after validation): each LimitRange's ``min``, ``max`` and
  ``maxLimitRequestRatio`` hold for every container (``Container``), for the pod's total
  (``Pod``: the containers' sum, or the largest init container when that is more) and for a claim's
  storage request (``PersistentVolumeClaim``, on create and update). The first LimitRange with
  violations refuses the request with all of them, in kube's words (``maximum cpu usage per
  Container is 1, but limit is 2``), bracketed when there are several.

Pods are only looked at on create: their containers' resources cannot change afterwards.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, ClassVar, Protocol

from cluster.apiserver.admission.forbidden import admission_forbidden
from cluster.apiserver.admission.interfaces import (
    Admitted,
    Attributes,
    MutatingPlugin,
    Operation,
    ValidatingPlugin,
)
from cluster.machinery import resource_lists as q

ANNOTATION = "kubernetes.io/limit-ranger"
CONTAINER, POD, CLAIM = "Container", "Pod", "PersistentVolumeClaim"


class LimitRangeLookup(Protocol):
    async def limit_ranges(self, namespace: str) -> list[dict[str, Any]]:
        """The LimitRanges of ``namespace``."""
        ...


def _items(limit_range: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [i for i in (limit_range.get("spec") or {}).get("limits") or [] if i.get("type") == kind]


def _handles(attrs: Attributes) -> bool:
    if attrs.subresource:
        return False
    if attrs.kind == ("", "Pod"):
        return attrs.operation == Operation.CREATE
    return attrs.kind == ("", "PersistentVolumeClaim")


def apply_defaults(pod: dict[str, Any], limit_ranges: list[dict[str, Any]]) -> dict[str, Any]:
    """Give ``pod``'s containers the Container defaults they lack (in place) and annotate it."""
    default_limits: dict[str, Any] = {}
    default_requests: dict[str, Any] = {}
    for limit_range in limit_ranges:
        for item in _items(limit_range, CONTAINER):
            default_requests.update(item.get("defaultRequest") or {})
            default_limits.update(item.get("default") or {})
    if not default_limits and not default_requests:
        return pod
    notes: list[str] = []
    spec = pod.get("spec") or {}
    for field, label in (("containers", "container"), ("initContainers", "init container")):
        for container in spec.get(field) or []:
            resources = container.setdefault("resources", {})
            limits = resources.setdefault("limits", {})
            requests = resources.setdefault("requests", {})
            set_limits = sorted(k for k in default_limits if k not in limits)
            set_requests = sorted(k for k in default_requests if k not in requests)
            for k in set_limits:
                limits[k] = default_limits[k]
            for k in set_requests:
                requests[k] = default_requests[k]
            if not limits:
                resources.pop("limits")
            if not requests:
                resources.pop("requests")
            name = container.get("name", "")
            if set_requests:
                notes.append(f"{', '.join(set_requests)} request for {label} {name}")
            if set_limits:
                notes.append(f"{', '.join(set_limits)} limit for {label} {name}")
    if notes:
        annotations = pod.setdefault("metadata", {}).setdefault("annotations", {})
        annotations[ANNOTATION] = "LimitRanger plugin set: " + "; ".join(notes)
    return pod


def _min(kind: str, name: str, enforced: Any, requests: dict[str, Any], limits: dict[str, Any]) -> str | None:
    floor = q.value(enforced)
    if name not in requests:
        return f"minimum {name} usage per {kind} is {q.text(enforced)}.  No request is specified"
    if q.value(requests[name]) < floor:
        return (
            f"minimum {name} usage per {kind} is {q.text(enforced)}, but request is {q.text(requests[name])}"
        )
    if name in limits and q.value(limits[name]) < floor:
        return f"minimum {name} usage per {kind} is {q.text(enforced)}, but limit is {q.text(limits[name])}"
    return None


def _max(kind: str, name: str, enforced: Any, requests: dict[str, Any], limits: dict[str, Any]) -> str | None:
    ceiling = q.value(enforced)
    if name not in limits:
        return f"maximum {name} usage per {kind} is {q.text(enforced)}.  No limit is specified"
    if q.value(limits[name]) > ceiling:
        return f"maximum {name} usage per {kind} is {q.text(enforced)}, but limit is {q.text(limits[name])}"
    if name in requests and q.value(requests[name]) > ceiling:
        return (
            f"maximum {name} usage per {kind} is {q.text(enforced)}, but request is {q.text(requests[name])}"
        )
    return None


def _max_request(kind: str, name: str, enforced: Any, requests: dict[str, Any]) -> str | None:
    if name not in requests:
        return f"maximum {name} usage per {kind} is {q.text(enforced)}.  No request is specified"
    if q.value(requests[name]) > q.value(enforced):
        return (
            f"maximum {name} usage per {kind} is {q.text(enforced)}, but request is {q.text(requests[name])}"
        )
    return None


def _ratio(
    kind: str, name: str, enforced: Any, requests: dict[str, Any], limits: dict[str, Any]
) -> str | None:
    request, limit = q.value(requests.get(name, 0)), q.value(limits.get(name, 0))
    what = f"{name} max limit to request ratio per {kind} is {q.text(enforced)}"
    if not request:
        return f"{what}, but no request is specified or request is 0"
    if not limit:
        return f"{what}, but no limit is specified or limit is 0"
    observed = limit / request
    if observed > q.value(enforced):
        return f"{what}, but provided ratio is {float(observed):f}"
    return None


def _checks(item: dict[str, Any], kind: str, requests: dict[str, Any], limits: dict[str, Any]) -> list[str]:
    found: list[str | None] = []
    found += [_min(kind, k, v, requests, limits) for k, v in (item.get("min") or {}).items()]
    found += [_max(kind, k, v, requests, limits) for k, v in (item.get("max") or {}).items()]
    found += [
        _ratio(kind, k, v, requests, limits) for k, v in (item.get("maxLimitRequestRatio") or {}).items()
    ]
    return [f for f in found if f]


def _pod_totals(spec: dict[str, Any], field: str) -> dict[str, Any]:
    """The pod's requests or limits: the containers' sum, or an init container's when larger (in
    the format of the first quantity seen, as kube's quantity sums keep it)."""
    summed: dict[str, Decimal] = {}
    binary: dict[str, bool] = {}
    for container in spec.get("containers") or []:
        for name, raw in ((container.get("resources") or {}).get(field) or {}).items():
            summed[name] = summed.get(name, Decimal(0)) + q.value(raw)
            binary.setdefault(name, q.is_binary(raw))
    for init in spec.get("initContainers") or []:
        for name, raw in ((init.get("resources") or {}).get(field) or {}).items():
            summed[name] = max(summed.get(name, Decimal(0)), q.value(raw))
            binary.setdefault(name, q.is_binary(raw))
    return {name: q.canonical(amount, binary[name]) for name, amount in summed.items()}


def violations(obj: dict[str, Any], kind: str, limit_range: dict[str, Any]) -> list[str]:
    """What ``limit_range`` refuses in the pod or claim ``obj`` (``kind`` is ``Pod`` or
    ``PersistentVolumeClaim``), in kube's order: items in order, containers before init containers."""
    found: list[str] = []
    spec = obj.get("spec") or {}
    for item in (limit_range.get("spec") or {}).get("limits") or []:
        if kind == "Pod" and item.get("type") == CONTAINER:
            for field in ("containers", "initContainers"):
                for container in spec.get(field) or []:
                    resources = container.get("resources") or {}
                    found += _checks(
                        item, CONTAINER, resources.get("requests") or {}, resources.get("limits") or {}
                    )
        elif kind == "Pod" and item.get("type") == POD:
            found += _checks(item, POD, _pod_totals(spec, "requests"), _pod_totals(spec, "limits"))
        elif kind == CLAIM and item.get("type") == CLAIM:
            requests = (spec.get("resources") or {}).get("requests") or {}
            found += [m for k, v in (item.get("min") or {}).items() if (m := _min(CLAIM, k, v, requests, {}))]
            found += [
                m for k, v in (item.get("max") or {}).items() if (m := _max_request(CLAIM, k, v, requests))
            ]
    return found


def aggregate(messages: list[str]) -> str:
    """Kube's ``utilerrors.NewAggregate(...).Error()``: one message as it is, several bracketed."""
    return messages[0] if len(messages) == 1 else "[" + ", ".join(messages) + "]"


class LimitRanger(MutatingPlugin):
    NAME: ClassVar[str] = "LimitRanger"
    OPERATIONS: ClassVar[frozenset[Operation]] = frozenset({Operation.CREATE})

    def __init__(self, ranges: LimitRangeLookup) -> None:
        self._ranges = ranges

    async def admit(self, attrs: Attributes) -> Admitted:
        if attrs.kind != ("", "Pod") or not _handles(attrs) or not isinstance(attrs.object.get("spec"), dict):
            return Admitted(attrs.object)
        limit_ranges = await self._ranges.limit_ranges(attrs.namespace or "default")
        return Admitted(apply_defaults(attrs.object, limit_ranges) if limit_ranges else attrs.object)


class LimitRangerValidation(ValidatingPlugin):
    NAME: ClassVar[str] = "LimitRangerValidation"
    OPERATIONS: ClassVar[frozenset[Operation]] = frozenset({Operation.CREATE, Operation.UPDATE})

    def __init__(self, ranges: LimitRangeLookup) -> None:
        self._ranges = ranges

    async def validate(self, attrs: Attributes) -> None:
        if not _handles(attrs):
            return
        kind = attrs.kind[1]
        for limit_range in await self._ranges.limit_ranges(attrs.namespace or "default"):
            found = violations(attrs.object, kind, limit_range)
            if found:
                raise admission_forbidden(attrs, aggregate(found))
