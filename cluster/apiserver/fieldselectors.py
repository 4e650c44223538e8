"""Field selectors (``?fieldSelector=spec.nodeName=n1,status.phase!=Failed``), per resource.

Like Kubernetes, each resource supports ``metadata.name`` and ``metadata.namespace`` plus its own
fields; anything else is a 400 ``field label not supported``. Operators: ``=``, ``==``, ``!=``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cluster.apiserver.errors import bad_request

Getter = Callable[[dict[str, Any]], str]


def _path(*keys: str) -> Getter:
    def get(obj: dict[str, Any]) -> str:
        cur: Any = obj
        for k in keys:
            if not isinstance(cur, dict):
                return ""
            cur = cur.get(k)
        if cur is None:
            return ""
        if isinstance(cur, bool):
            return "true" if cur else "false"
        return str(cur)

    return get


COMMON: dict[str, Getter] = {
    "metadata.name": _path("metadata", "name"),
    "metadata.namespace": _path("metadata", "namespace"),
}

PER_RESOURCE: dict[tuple[str, str], dict[str, Getter]] = {
    ("", "pods"): {
        "spec.nodeName": _path("spec", "nodeName"),
        "spec.restartPolicy": _path("spec", "restartPolicy"),
        "spec.schedulerName": _path("spec", "schedulerName"),
        "spec.serviceAccountName": _path("spec", "serviceAccountName"),
        "spec.hostNetwork": _path("spec", "hostNetwork"),
        "status.phase": _path("status", "phase"),
        "status.podIP": _path("status", "podIP"),
        "status.nominatedNodeName": _path("status", "nominatedNodeName"),
    },
    ("", "events"): {
        **{
            f"involvedObject.{f}": _path("involvedObject", f)
            for f in ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath")
        },
        "reason": _path("reason"),
        "reportingComponent": _path("reportingComponent"),
        "source": _path("source", "component"),
        "type": _path("type"),
    },
    ("events.k8s.io", "events"): {
        **{
            f"regarding.{f}": _path("regarding", f)
            for f in ("kind", "namespace", "name", "uid", "apiVersion")
        },
        "reason": _path("reason"),
        "type": _path("type"),
        "reportingController": _path("reportingController"),
    },
    ("", "secrets"): {"type": _path("type")},
    ("", "nodes"): {"spec.unschedulable": _path("spec", "unschedulable")},
    ("", "namespaces"): {"status.phase": _path("status", "phase")},
    ("", "replicationcontrollers"): {"status.replicas": _path("status", "replicas")},
    ("apps", "replicasets"): {"status.replicas": _path("status", "replicas")},
    ("batch", "jobs"): {"status.successful": _path("status", "succeeded")},
    ("certificates.k8s.io", "certificatesigningrequests"): {"spec.signerName": _path("spec", "signerName")},
}


@dataclass(frozen=True, slots=True)
class FieldRequirement:
    field: str
    op: str  # "=" or "!="
    value: str
    getter: Getter


@dataclass(frozen=True, slots=True)
class FieldSelector:
    requirements: tuple[FieldRequirement, ...]

    def matches(self, obj: dict[str, Any]) -> bool:
        for r in self.requirements:
            actual = r.getter(obj)
            if (actual == r.value) != (r.op == "="):
                return False
        return True

    def exact(self, field: str) -> str | None:
        for r in self.requirements:
            if r.field == field and r.op == "=":
                return r.value
        return None

    @property
    def empty(self) -> bool:
        return not self.requirements


def parse_field_selector(text: str | None, group: str, plural: str) -> FieldSelector:
    if not text:
        return FieldSelector(())
    fields = {**COMMON, **PER_RESOURCE.get((group, plural), {})}
    reqs: list[FieldRequirement] = []
    for clause in text.split(","):
        clause = clause.strip()
        if not clause:
            continue
        if "!=" in clause:
            field, value = clause.split("!=", 1)
            op = "!="
        elif "==" in clause:
            field, value = clause.split("==", 1)
            op = "="
        elif "=" in clause:
            field, value = clause.split("=", 1)
            op = "="
        else:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{clause}'")
        field = field.strip()
        getter = fields.get(field)
        if getter is None:
            raise bad_request(f"field label not supported: {field}")
        reqs.append(FieldRequirement(field, op, value.strip(), getter))
    return FieldSelector(tuple(reqs))
