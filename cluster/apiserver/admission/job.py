"""JobSelector: a Job without ``manualSelector`` gets the generated selector and template labels,
made from its uid (Kubernetes' job strategy), so it runs after ObjectMetaSystemFields."""

from __future__ import annotations

from typing import ClassVar

from cluster.apiserver.admission.interfaces import Admitted, Attributes, MutatingPlugin, Operation


class JobSelector(MutatingPlugin):
    NAME: ClassVar[str] = "JobSelector"
    OPERATIONS: ClassVar[frozenset[Operation]] = frozenset({Operation.CREATE})

    async def admit(self, attrs: Attributes) -> Admitted:
        obj = attrs.object
        if attrs.kind != ("batch", "Job"):
            return Admitted(obj)
        spec = obj.setdefault("spec", {})
        uid, name = obj["metadata"]["uid"], obj["metadata"]["name"]
        if not spec.get("manualSelector"):
            labels = {
                "batch.kubernetes.io/controller-uid": uid,
                "batch.kubernetes.io/job-name": name,
                "controller-uid": uid,
                "job-name": name,
            }
            spec["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
            tmeta = spec.setdefault("template", {}).setdefault("metadata", {})
            tmeta["labels"] = {**(tmeta.get("labels") or {}), **labels}
        return Admitted(obj)
