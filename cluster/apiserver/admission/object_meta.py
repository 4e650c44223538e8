"""Admission plugins for what every kind shares: defaulting, ``metadata.generation`` and the
server-set metadata (uid, creationTimestamp).

* Defaulting: the kind's defaults (Kubernetes applies them while decoding; here it runs right after
  NamespaceLifecycle so a create in a missing namespace reports the namespace first, whatever the
  body). The field manager's baseline is the object as it leaves this plugin.
* GenerationField: kinds without ``metadata.generation`` never store one.
* ObjectMetaSystemFields: uid, creationTimestamp and generation 1 on create; generation + 1 on an
  update that changes the spec (Kubernetes' ``FillObjectMetaSystemFields`` and strategies'
  PrepareForUpdate). Runs after validation, so validation never sees these fields set by us.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any, ClassVar

from cluster.apiserver.admission.interfaces import Admitted, Attributes, MutatingPlugin, Operation
from cluster.apiserver.defaults import apply_defaults
from cluster.machinery.times import rfc3339

HAS_GENERATION = {
    "Pod",
    "Deployment",
    "ReplicaSet",
    "StatefulSet",
    "DaemonSet",
    "Job",
    "CronJob",
    "Ingress",
    "NetworkPolicy",
    "PodDisruptionBudget",
    "PersistentVolumeClaim",
    "IngressClass",
    "Service",
}

# ObjectMeta fields Kubernetes encodes with `omitempty`: an empty map, list or string is not stored,
# so removing the last label (`kubectl label pod web app-`) leaves no `labels: {}` behind.
_OMIT_EMPTY_METADATA = (
    "labels",
    "annotations",
    "finalizers",
    "ownerReferences",
    "managedFields",
    "generateName",
)


def drop_empty_metadata(obj: dict[str, Any]) -> dict[str, Any]:
    """Remove empty ``omitempty`` metadata fields in place (as a Go round trip would); returns ``obj``."""
    meta = obj.get("metadata")
    if isinstance(meta, dict):
        for name in _OMIT_EMPTY_METADATA:
            if name in meta and meta[name] in ({}, [], "", None):
                del meta[name]
    return obj


def spec_of(obj: dict[str, Any]) -> dict[str, Any]:
    """Everything but metadata and status: a change here bumps metadata.generation."""
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


class Defaulting(MutatingPlugin):
    NAME: ClassVar[str] = "Defaulting"
    OPERATIONS: ClassVar[frozenset[Operation]] = frozenset({Operation.CREATE, Operation.UPDATE})

    async def admit(self, attrs: Attributes) -> Admitted:
        return Admitted(drop_empty_metadata(apply_defaults(attrs.object)))


class GenerationField(MutatingPlugin):
    NAME: ClassVar[str] = "GenerationField"
    OPERATIONS: ClassVar[frozenset[Operation]] = frozenset({Operation.CREATE, Operation.UPDATE})

    async def admit(self, attrs: Attributes) -> Admitted:
        obj = attrs.object
        if attrs.resource.kind not in HAS_GENERATION:
            obj["metadata"].pop("generation", None)
        return Admitted(obj)


class ObjectMetaSystemFields(MutatingPlugin):
    NAME: ClassVar[str] = "ObjectMetaSystemFields"
    OPERATIONS: ClassVar[frozenset[Operation]] = frozenset({Operation.CREATE, Operation.UPDATE})

    def __init__(self, new_uid: Callable[[], str] = lambda: str(uuid.uuid4())) -> None:
        self._new_uid = new_uid

    async def admit(self, attrs: Attributes) -> Admitted:
        obj, meta = attrs.object, attrs.object["metadata"]
        if attrs.operation is Operation.CREATE:
            meta["uid"] = self._new_uid()
            meta["creationTimestamp"] = rfc3339(attrs.now)
            if attrs.resource.kind in HAS_GENERATION:
                meta["generation"] = 1
            return Admitted(obj)
        old = attrs.old_object or {}
        old_meta = old.get("metadata", {})
        if "generation" in old_meta and spec_of(obj) != spec_of(old):
            meta["generation"] = int(old_meta["generation"]) + 1
        return Admitted(obj)
