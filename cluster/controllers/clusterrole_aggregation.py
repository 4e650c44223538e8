"""The ClusterRole aggregation controller (kube-controller-manager's ``clusterrole-aggregation``):
the ``rules`` of every ClusterRole with an ``aggregationRule`` are the union of the rules of the
ClusterRoles its ``clusterRoleSelectors`` select (never itself), in name order, without duplicates.

That is how the default ``admin``, ``edit`` and ``view`` roles get their rules (from the
``system:aggregate-to-*`` roles and from each other), and how a CRD's author extends them: label a
ClusterRole ``rbac.authorization.k8s.io/aggregate-to-view: "true"`` and every view user gains it.
Any ClusterRole change may change any aggregated role, so every change enqueues all of them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from cluster.client.errors import ApiError
from cluster.controllers.runtime import Controller, ControllerContext
from cluster.machinery.labels import label_selector_from_dict

log = logging.getLogger("raykube.controllers.clusterrole_aggregation")

GV = "rbac.authorization.k8s.io/v1"


def aggregated_rules(role: Mapping[str, Any], roles: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The rules ``role``'s aggregationRule gives it, from ``roles`` (all ClusterRoles)."""
    ordered = sorted(roles, key=lambda r: (r.get("metadata") or {}).get("name") or "")
    name = (role.get("metadata") or {}).get("name")
    rules: list[dict[str, Any]] = []
    for raw in (role.get("aggregationRule") or {}).get("clusterRoleSelectors") or ():
        selector = label_selector_from_dict(raw)
        for other in ordered:
            if (other.get("metadata") or {}).get("name") == name or not selector.matches_object(dict(other)):
                continue
            for rule in other.get("rules") or ():
                if rule not in rules:
                    rules.append(rule)
    return rules


class ClusterRoleAggregationController(Controller):
    NAME: ClassVar[str] = "clusterrole-aggregation"
    COMPONENT: ClassVar[str] = "clusterrole-aggregation-controller"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.roles = self.watch(
            GV,
            "clusterroles",
            on_add=lambda _: self._enqueue_aggregated(),
            on_update=lambda _, __: self._enqueue_aggregated(),
            on_delete=lambda _: self._enqueue_aggregated(),
        )

    def _enqueue_aggregated(self) -> None:
        for role in self.roles.list():
            if role.get("aggregationRule"):
                self.enqueue(role)

    async def reconcile(self, key: str) -> float | None:
        role = self.roles.get(None, key)
        if role is None or not role.get("aggregationRule"):
            return None
        rules = aggregated_rules(role, self.roles.list())
        if rules == (role.get("rules") or []):
            return None
        try:
            await self.client.update(GV, "clusterroles", {**role, "rules": rules})
        except ApiError as err:
            if err.not_found:
                return None
            if err.conflict:
                return 0.1  # the informer brings the newer object; aggregate it again
            raise
        log.info("clusterrole %s: %d aggregated rules", key, len(rules))
        return None
