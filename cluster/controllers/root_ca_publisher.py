"""The root-ca-cert-publisher controller (kube-controller-manager's, event source
``root-ca-cert-publisher``): every active namespace has the ConfigMap ``kube-root-ca.crt`` whose
``ca.crt`` is the cluster CA, so a pod's projected ServiceAccount volume (``kube-api-access-*``) can
verify the API server.

Namespaces (added, updated) and ConfigMaps named ``kube-root-ca.crt`` (changed, deleted) enqueue the
namespace; ``reconcile`` creates the ConfigMap, or puts back its ``ca.crt`` and description when
someone changed them. A terminating or missing namespace gets nothing. The CA comes in through
``ControllerOptions.root_ca_pem`` (the controller manager reads it from its kubeconfig); without one
the controller does nothing. :func:`desired_configmap` is pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cluster.client.errors import ApiError
from cluster.controllers.runtime import Controller, ControllerContext

CONFIGMAP = "kube-root-ca.crt"
DESCRIPTION_ANNOTATION = "kubernetes.io/description"
DESCRIPTION = (
    "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such "
    "as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across "
    "distributions of Kubernetes clusters."
)


def desired_configmap(
    namespace: str, ca_pem: str, current: Mapping[str, Any] | None
) -> dict[str, Any] | None:
    """The ConfigMap to write in ``namespace`` (a copy of ``current`` fixed up), or None when
    ``current`` is already right."""
    if current is not None:
        meta = current.get("metadata") or {}
        if (current.get("data") or {}) == {"ca.crt": ca_pem} and (meta.get("annotations") or {}).get(
            DESCRIPTION_ANNOTATION
        ) == DESCRIPTION:
            return None
        body = {**current, "data": {"ca.crt": ca_pem}}
        body["metadata"] = {
            **meta,
            "annotations": {**(meta.get("annotations") or {}), DESCRIPTION_ANNOTATION: DESCRIPTION},
        }
        return body
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": CONFIGMAP,
            "namespace": namespace,
            "annotations": {DESCRIPTION_ANNOTATION: DESCRIPTION},
        },
        "data": {"ca.crt": ca_pem},
    }


def _active(namespace: Mapping[str, Any] | None) -> bool:
    if namespace is None:
        return False
    phase = (namespace.get("status") or {}).get("phase") or "Active"
    return phase == "Active" and not (namespace.get("metadata") or {}).get("deletionTimestamp")


class RootCACertPublisher(Controller):
    NAME = "root-ca-cert-publisher"
    COMPONENT = "root-ca-cert-publisher"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.ca_pem = ctx.options.root_ca_pem
        self.namespaces = self.watch(
            "v1", "namespaces", on_add=self.enqueue, on_update=lambda _o, n: self.enqueue(n)
        )
        self.configmaps = self.watch(
            "v1",
            "configmaps",
            on_update=lambda _o, n: self._configmap_changed(n),
            on_delete=self._configmap_changed,
        )

    def _configmap_changed(self, cm: Mapping[str, Any]) -> None:
        meta = cm.get("metadata") or {}
        if meta.get("name") == CONFIGMAP and meta.get("namespace"):
            self.enqueue(str(meta["namespace"]))

    async def reconcile(self, key: str) -> float | None:
        if not self.ca_pem or not _active(self.namespaces.get(None, key)):
            return None
        current = self.configmaps.get(key, CONFIGMAP)
        body = desired_configmap(key, self.ca_pem, current)
        if body is None:
            return None
        try:
            if current is None:
                await self.client.create("v1", "configmaps", body, key)
            else:
                await self.client.update("v1", "configmaps", body, key)
        except ApiError as e:
            if e.already_exists or e.status == 409:
                return 0.5  # the cache is behind: look again once it has the ConfigMap
            if e.status == 403 or e.not_found:
                return None  # the namespace is terminating or gone
            raise
        return None
