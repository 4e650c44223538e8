"""The resource quota controller (kube-controller-manager's ``resourcequota``, event source
``resource-quota-controller``): keeps each ResourceQuota's ``status.hard`` (its ``spec.hard``) and
``status.used`` (what the namespace's objects use now) current.

ResourceQuota admission raises ``status.used`` as it admits objects; this controller recomputes it
from the objects themselves, so deletions give their share back (replenishment) and a charge whose
create then failed is released. A quota is looked at when it changes, when a pod, Service, ConfigMap,
Secret or claim of its namespace changes, and every ``RESYNC`` seconds (kube's resync); kinds other
than those (``count/deployments.apps``) are listed live. Usage is ``cluster.machinery.quota``'s, the
same the admission plugin charges; :func:`quota_status` is pure.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

from cluster.client.errors import ApiError
from cluster.controllers.runtime import Controller, ControllerContext
from cluster.machinery import quota as qu
from cluster.machinery.resource_lists import canonical, is_binary

RESYNC = 30.0
WATCHED = ("pods", "services", "configmaps", "secrets", "persistentvolumeclaims")
GROUP_VERSIONS = {
    "": "v1",
    "apps": "apps/v1",
    "batch": "batch/v1",
    "networking.k8s.io": "networking.k8s.io/v1",
}


def quota_status(
    quota: Mapping[str, Any], objects: Iterable[tuple[str, str, Mapping[str, Any]]]
) -> dict[str, Any]:
    """``status`` of ``quota`` for the namespace's ``objects`` ((group, plural, object) triples)."""
    hard = dict((quota.get("spec") or {}).get("hard") or {})
    used = qu.total_usage(hard, objects, quota)
    return {"hard": hard, "used": {k: canonical(v, is_binary(hard.get(k))) for k, v in sorted(used.items())}}


class ResourceQuotaController(Controller):
    NAME = "resourcequota"
    COMPONENT = "resource-quota-controller"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.quotas = self.watch(
            "v1", "resourcequotas", on_add=self.enqueue, on_update=lambda _o, n: self.enqueue(n)
        )
        self.listers = {
            plural: self.watch(
                "v1",
                plural,
                on_add=self._object_changed,
                on_update=lambda _o, n: self._object_changed(n),
                on_delete=self._object_changed,
            )
            for plural in WATCHED
        }

    def _object_changed(self, obj: Mapping[str, Any]) -> None:
        namespace = (obj.get("metadata") or {}).get("namespace")
        if namespace:
            for quota in self.quotas.list(namespace):
                self.enqueue(quota)

    async def _objects(
        self, namespace: str, kinds: set[tuple[str, str]]
    ) -> list[tuple[str, str, Mapping[str, Any]]]:
        out: list[tuple[str, str, Mapping[str, Any]]] = []
        for group, plural in sorted(kinds):
            if not group and plural in self.listers:
                out += [(group, plural, o) for o in self.listers[plural].list(namespace)]
                continue
            group_version = GROUP_VERSIONS.get(group)
            if group_version is None:
                continue  # a kind this controller cannot find the version of: left at 0
            try:
                listed = await self.client.list_all(group_version, plural, namespace)
            except ApiError as e:
                if e.not_found:
                    continue
                raise
            out += [(group, plural, o) for o in listed.get("items") or []]
        return out

    async def reconcile(self, key: str) -> float | None:
        namespace, _, name = key.partition("/")
        quota = self.quotas.get(namespace, name)
        if quota is None:
            return None
        hard = (quota.get("spec") or {}).get("hard") or {}
        objects = await self._objects(namespace, qu.resources_to_list(hard))
        status = quota_status(quota, objects)
        if status == {
            "hard": (quota.get("status") or {}).get("hard"),
            "used": (quota.get("status") or {}).get("used"),
        }:
            return RESYNC
        body = copy.deepcopy(dict(quota))
        body["status"] = status
        try:
            await self.client.update("v1", "resourcequotas", body, namespace, subresource="status")
        except ApiError as e:
            if e.not_found:
                return None
            if e.status == 409:
                return 0.1  # admission charged it meanwhile: recompute from the newer quota
            raise
        return RESYNC
