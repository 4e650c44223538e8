"""NamespaceLifecycle: no creates in a namespace that does not exist or is being terminated.

First in the chain (as in kube-apiserver's plugin order), so a create in a missing namespace reports
404 whatever else is wrong with the body. It only reads, so it is a validating plugin here; the
namespace comes through ``NamespaceLookup`` (the registry reads its watch cache first, like
Kubernetes' informer-backed plugin, and the store on a miss).
"""

from __future__ import annotations

from typing import ClassVar

from cluster.apiserver.admission.forbidden import admission_forbidden
from cluster.apiserver.admission.interfaces import Attributes, NamespaceLookup, Operation, ValidatingPlugin
from cluster.apiserver.errors import StatusError


class NamespaceLifecycle(ValidatingPlugin):
    NAME: ClassVar[str] = "NamespaceLifecycle"
    OPERATIONS: ClassVar[frozenset[Operation]] = frozenset({Operation.CREATE})

    def __init__(self, namespaces: NamespaceLookup) -> None:
        self._namespaces = namespaces

    async def validate(self, attrs: Attributes) -> None:
        if not attrs.resource.namespaced or attrs.namespace is None:
            return
        namespace = attrs.namespace
        ns = await self._namespaces.get_namespace(namespace)
        if ns is None:
            raise StatusError(
                404,
                "NotFound",
                f'namespaces "{namespace}" not found',
                details={"name": namespace, "kind": "namespaces"},
            )
        terminating = ns.get("status", {}).get("phase") == "Terminating"
        if ns.get("metadata", {}).get("deletionTimestamp") or terminating:
            raise admission_forbidden(
                attrs, f"unable to create new content in namespace {namespace} because it is being terminated"
            )
