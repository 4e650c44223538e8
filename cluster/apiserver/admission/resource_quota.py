"""ResourceQuota: kube-apiserver's admission plugin of that name, last in the chain.

A create in a namespace with ResourceQuotas is charged to every quota whose scopes see the object and
whose ``spec.hard`` names something it uses (``cluster.machinery.quota``):

* a quota the controller has not filled in yet (no ``status.hard``) refuses: ``status unknown for
  quota: q, resources: pods``;
* a quota on ``cpu``/``memory`` (requests or limits) needs every container to say them:
  ``failed quota: q: must specify limits.cpu for: web; limits.memory for: web``;
* ``status.used`` plus the object's usage above ``status.hard`` refuses: ``exceeded quota: q,
  requested: pods=1, used: pods=2, limited: pods=2``;
* otherwise the quota's ``status.used`` is raised by the object's usage and written back with the
  resourceVersion it was read at (kube's quota accessor does the same update): if another request
  charged it meanwhile, the write fails and everything is read and checked again, so two creates
  can never both take the last unit. The quota controller later recomputes ``used`` from the objects
  (a charged object whose create then failed is released there).

A claim that grows (an update raising ``requests.storage``) is charged the difference, as kube
charges it. Dry runs are checked but charge nothing.
"""

from __future__ import annotations

import asyncio
import copy
from decimal import Decimal
from typing import Any, ClassVar, Protocol

from cluster.apiserver.admission.forbidden import admission_forbidden
from cluster.apiserver.admission.interfaces import Attributes, Operation, ValidatingPlugin
from cluster.machinery import quota as qu
from cluster.machinery.resource_lists import canonical, is_binary, value

MAX_ATTEMPTS = 10
_CONSTRAINED_NAMES = frozenset(
    {"cpu", "memory", "requests.cpu", "requests.memory", "limits.cpu", "limits.memory"}
)


class QuotaConflict(Exception):
    """Raised by ``update_quota_status`` when the quota changed since it was read."""


class QuotaLookup(Protocol):
    async def resource_quotas(self, namespace: str) -> list[dict[str, Any]]:
        """The namespace's ResourceQuotas, read live (their resourceVersion is the store's)."""
        ...

    async def update_quota_status(self, quota: dict[str, Any]) -> dict[str, Any]:
        """Write ``quota`` if its resourceVersion is still current; raise ``QuotaConflict`` if not."""
        ...


def _show(amounts: dict[str, Decimal], like: dict[str, Any]) -> str:
    """Kube's ``prettyPrint``: ``name=quantity`` sorted by name, comma-separated."""
    return ",".join(f"{k}={canonical(amounts[k], is_binary(like.get(k)))}" for k in sorted(amounts))


def missing_constraints(hard: dict[str, Any], pod: dict[str, Any]) -> str | None:
    """Kube's pod evaluator ``Constraints``: with cpu/memory under quota, each container must set them."""
    required = {n for n in hard if n in _CONSTRAINED_NAMES}
    missing: dict[str, set[str]] = {}
    spec = pod.get("spec") or {}
    for field in ("containers", "initContainers"):
        for container in spec.get(field) or []:
            resources = container.get("resources") or {}
            requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
            for name in required:
                base = name.removeprefix("requests.").removeprefix("limits.")
                have = limits if name.startswith("limits.") else requests
                if base not in have:
                    missing.setdefault(name, set()).add(container.get("name", ""))
    if not missing:
        return None
    return "must specify " + "; ".join(f"{r} for: {','.join(sorted(missing[r]))}" for r in sorted(missing))


def charge(quota: dict[str, Any], wanted: dict[str, Decimal]) -> tuple[dict[str, Any] | None, str | None]:
    """(the quota with ``wanted`` added to ``status.used``, or None when it does not count any of it;
    the refusal, or None)."""
    hard_spec = (quota.get("spec") or {}).get("hard") or {}
    relevant = {k: v for k, v in wanted.items() if k in hard_spec}
    if not relevant:
        return None, None
    name = quota["metadata"]["name"]
    status = quota.get("status") or {}
    hard = status.get("hard") or {}
    unknown = sorted(k for k in relevant if k not in hard)
    if unknown:
        return None, f"status unknown for quota: {name}, resources: {','.join(unknown)}"
    used = status.get("used") or {}
    new_used = {k: value(used.get(k, 0)) + v for k, v in relevant.items()}
    exceeded = sorted(k for k, v in new_used.items() if v > value(hard[k]))
    if exceeded:
        return None, (
            f"exceeded quota: {name}, requested: {_show({k: relevant[k] for k in exceeded}, hard)}, "
            f"used: {_show({k: value(used.get(k, 0)) for k in exceeded}, hard)}, "
            f"limited: {_show({k: value(hard[k]) for k in exceeded}, hard)}"
        )
    charged = copy.deepcopy(quota)
    charged_used = charged.setdefault("status", {}).setdefault("used", {})
    for k, v in new_used.items():
        charged_used[k] = canonical(v, is_binary(hard.get(k)))
    return charged, None


class ResourceQuota(ValidatingPlugin):
    NAME: ClassVar[str] = "ResourceQuota"
    OPERATIONS: ClassVar[frozenset[Operation]] = frozenset({Operation.CREATE, Operation.UPDATE})

    def __init__(self, quotas: QuotaLookup) -> None:
        self._quotas = quotas

    async def validate(self, attrs: Attributes) -> None:
        if attrs.subresource or not attrs.resource.namespaced or not attrs.namespace:
            return
        group, plural = attrs.resource.group, attrs.resource.plural
        wanted = qu.usage(group, plural, attrs.object)
        if attrs.operation == Operation.UPDATE:
            if (group, plural) != ("", "persistentvolumeclaims"):
                return  # only a claim's growth is charged on update (pods cannot change their resources)
            before = qu.usage(group, plural, attrs.old_object or {})
            wanted = {k: v - before.get(k, 0) for k, v in wanted.items() if v > before.get(k, 0)}
        if not wanted:
            return
        done: set[str] = set()  # quotas already charged in an earlier attempt
        for attempt in range(MAX_ATTEMPTS):
            quotas = await self._quotas.resource_quotas(attrs.namespace)
            if not quotas:
                return
            updates: list[dict[str, Any]] = []
            for quota in sorted(quotas, key=lambda q: q["metadata"]["name"]):
                if quota["metadata"]["name"] in done or not qu.matches(quota, group, plural, attrs.object):
                    continue
                hard_spec = (quota.get("spec") or {}).get("hard") or {}
                if group == "" and plural == "pods":
                    refusal = missing_constraints(hard_spec, attrs.object)
                    if refusal:
                        raise admission_forbidden(
                            attrs, f"failed quota: {quota['metadata']['name']}: {refusal}"
                        )
                charged, refusal = charge(quota, wanted)
                if refusal:
                    raise admission_forbidden(attrs, refusal)
                if charged is not None:
                    updates.append(charged)
            if attrs.dry_run or not updates:
                return
            try:
                for charged in updates:
                    await self._quotas.update_quota_status(charged)
                    done.add(charged["metadata"]["name"])
                return
            except QuotaConflict:
                await asyncio.sleep(0.01 * (attempt + 1))
        raise admission_forbidden(
            attrs, "Operation cannot be fulfilled on resourcequotas: too many concurrent updates"
        )
