"""Priority: kube-apiserver's admission plugin of that name.

* A new pod's ``priorityClassName`` resolves to ``spec.priority`` and ``spec.preemptionPolicy`` from
  that PriorityClass (``no PriorityClass with name X was found`` when there is none); a pod without a
  name gets the global default class (the lowest value when a race left two), or priority 0 and
  ``PreemptLowerPriority``. A pod that sets ``priority`` or ``preemptionPolicy`` itself must agree
  with what the class gives (kube's two "must not be provided in pod spec" refusals).
* A PriorityClass marked ``globalDefault`` is refused while another class is the default.

The built-in classes ``system-node-critical`` and ``system-cluster-critical`` are objects the API
server creates at start (``bootstrap_objects``), so they resolve like any other.
"""

from __future__ import annotations

from typing import Any, ClassVar, Protocol

from cluster.apiserver.admission.forbidden import admission_forbidden
from cluster.apiserver.admission.interfaces import Admitted, Attributes, MutatingPlugin, Operation

DEFAULT_PRIORITY = 0
DEFAULT_PREEMPTION_POLICY = "PreemptLowerPriority"
SYSTEM_NODE_CRITICAL = "system-node-critical"
SYSTEM_CLUSTER_CRITICAL = "system-cluster-critical"
SYSTEM_PRIORITY_CLASSES = {SYSTEM_NODE_CRITICAL: 2000001000, SYSTEM_CLUSTER_CRITICAL: 2000000000}


class PriorityClassLookup(Protocol):
    async def priority_classes(self) -> list[dict[str, Any]]:
        """Every PriorityClass."""
        ...


def system_priority_classes() -> list[dict[str, Any]]:
    """The two classes every cluster has (kube's ``SystemPriorityClasses``)."""
    return [
        {
            "apiVersion": "scheduling.k8s.io/v1",
            "kind": "PriorityClass",
            "metadata": {"name": name},
            "value": value,
            "globalDefault": False,
            "preemptionPolicy": DEFAULT_PREEMPTION_POLICY,
            "description": "Used for system critical pods that must not be moved from their current node."
            if name == SYSTEM_NODE_CRITICAL
            else "Used for system critical pods that must run in the cluster, but can be moved to another "
            "node if necessary.",
        }
        for name, value in SYSTEM_PRIORITY_CLASSES.items()
    ]


def default_class(classes: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The global default class; of several (a race), the one with the lowest value, as kube picks."""
    defaults = [c for c in classes if c.get("globalDefault")]
    return min(defaults, key=lambda c: int(c.get("value") or 0)) if defaults else None


class Priority(MutatingPlugin):
    NAME: ClassVar[str] = "Priority"
    OPERATIONS: ClassVar[frozenset[Operation]] = frozenset({Operation.CREATE, Operation.UPDATE})

    def __init__(self, classes: PriorityClassLookup) -> None:
        self._classes = classes

    async def admit(self, attrs: Attributes) -> Admitted:
        if attrs.subresource:
            return Admitted(attrs.object)
        if attrs.kind == ("", "Pod") and attrs.operation == Operation.CREATE:
            await self._admit_pod(attrs)
        elif attrs.kind == ("scheduling.k8s.io", "PriorityClass"):
            await self._validate_class(attrs)
        return Admitted(attrs.object)

    async def _admit_pod(self, attrs: Attributes) -> None:
        spec = attrs.object.get("spec")
        if not isinstance(spec, dict):
            return
        classes = await self._classes.priority_classes()
        name = spec.get("priorityClassName")
        if name:
            found = next((c for c in classes if c["metadata"]["name"] == name), None)
            if found is None:
                raise admission_forbidden(attrs, f"no PriorityClass with name {name} was found")
        else:
            found = default_class(classes)
        priority = int(found.get("value") or 0) if found else DEFAULT_PRIORITY
        policy = (found.get("preemptionPolicy") if found else None) or DEFAULT_PREEMPTION_POLICY
        if found is not None and not name:
            spec["priorityClassName"] = found["metadata"]["name"]
        given = spec.get("priority")
        if given is not None and given != priority:
            raise admission_forbidden(
                attrs,
                f"the integer value of priority ({given}) must not be provided in pod spec; priority "
                f"admission controller computed {priority} from the given PriorityClass name",
            )
        given_policy = spec.get("preemptionPolicy")
        if given_policy is not None and given_policy != policy:
            raise admission_forbidden(
                attrs,
                f"the string value of PreemptionPolicy ({given_policy}) must not be provided in pod spec; "
                f"priority admission controller computed {policy} from the given PriorityClass name",
            )
        spec["priority"] = priority
        spec["preemptionPolicy"] = policy

    async def _validate_class(self, attrs: Attributes) -> None:
        if not attrs.object.get("globalDefault"):
            return
        current = default_class(await self._classes.priority_classes())
        if current is None:
            return
        if attrs.operation == Operation.CREATE or current["metadata"]["name"] != attrs.name:
            raise admission_forbidden(
                attrs,
                f"PriorityClass {current['metadata']['name']} is already marked as default. "
                "Only one default can exist",
            )
