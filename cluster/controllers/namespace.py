"""The namespace controller (kube-controller-manager's ``namespace``, event source
``namespace-controller``): empties a terminating namespace, then lets it go.

A Namespace with ``deletionTimestamp`` whose ``spec.finalizers`` holds ``kubernetes`` (the API server
puts it there on create and marks the namespace ``Terminating`` on delete) is emptied, as kube's
namespaced resources deleter does:

1. every namespaced resource discovery lists as deletable (``list`` and ``delete``) is listed live
   in the namespace; pods first, and nothing else while pods remain (kube's ordered namespace
   deletion: a pod's ConfigMaps, Secrets and policies outlive it);
2. each object not already terminating is deleted (Background propagation);
3. what is still there is counted per resource and per finalizer, with an estimate of how long it
   will take (a pod's remaining grace period, 15 s for an object held by finalizers);
4. the namespace's status conditions say how it went (``namespace_conditions``, pure: kube's five
   condition types with its reasons and messages, ``lastTransitionTime`` moving only when a status
   flips);
5. if nothing is left, ``kubernetes`` is removed through the ``finalize`` subresource and the API
   server deletes the namespace; otherwise the key is looked at again after half the estimate plus
   one second (kube's rule), capped at ``MAX_RECHECK`` seconds (our pods go faster than kube's).

Discovery failures of some groups are reported (``NamespaceDeletionDiscoveryFailure``) and, as in
kube, the namespace is not finalized while they last: content there could be left behind.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

from cluster.client.errors import ApiError
from cluster.controllers.discovery import APIResource, Discovery, discover
from cluster.controllers.runtime import Controller, ControllerContext
from cluster.machinery.times import parse_rfc3339, rfc3339

log = logging.getLogger("raykube.controllers.namespace")

FINALIZER = "kubernetes"
FINALIZER_ESTIMATE_SECONDS = 15.0
MAX_RECHECK = 5.0
DISCOVERY_ATTEMPTS = 30
DELETE_CONCURRENCY = 16

DISCOVERY_FAILURE = "NamespaceDeletionDiscoveryFailure"
GV_PARSING_FAILURE = "NamespaceDeletionGroupVersionParsingFailure"
CONTENT_FAILURE = "NamespaceDeletionContentFailure"
CONTENT_REMAINING = "NamespaceContentRemaining"
FINALIZERS_REMAINING = "NamespaceFinalizersRemaining"

# type -> (reason, message) when all is well (status False)
OK: dict[str, tuple[str, str]] = {
    DISCOVERY_FAILURE: ("ResourcesDiscovered", "All resources successfully discovered"),
    GV_PARSING_FAILURE: ("ParsedGroupVersions", "All legacy kube types successfully parsed"),
    CONTENT_FAILURE: ("ContentDeleted", "All content successfully deleted, may be waiting on finalization"),
    CONTENT_REMAINING: ("ContentRemoved", "All content successfully removed"),
    FINALIZERS_REMAINING: ("ContentHasNoFinalizers", "All content-preserving finalizers finished"),
}


@dataclass(frozen=True, slots=True)
class ContentReport:
    """What one pass over the namespace's content found."""

    remaining: Mapping[str, int] = field(default_factory=dict)  # "pods." -> count still there
    finalizers: Mapping[str, int] = field(default_factory=dict)  # finalizer -> objects it holds
    errors: Sequence[str] = ()  # delete/list failures, one per resource
    discovery_errors: Mapping[str, str] = field(default_factory=dict)
    estimate: float = 0.0  # seconds until the rest should be gone

    @property
    def done(self) -> bool:
        return not any(self.remaining.values()) and not self.errors and not self.discovery_errors


def failing_conditions(report: ContentReport) -> dict[str, tuple[str, str]]:
    """type -> (reason, message) of the conditions that are True for ``report``."""
    failing: dict[str, tuple[str, str]] = {}
    if report.discovery_errors:
        groups = ", ".join(f"{gv}: {err}" for gv, err in sorted(report.discovery_errors.items()))
        failing[DISCOVERY_FAILURE] = (
            "DiscoveryFailed",
            f"Discovery failed for some groups, {len(report.discovery_errors)} failing: "
            f"unable to retrieve the complete list of server APIs: {groups}",
        )
    if report.errors:
        msgs = sorted(report.errors)
        failing[CONTENT_FAILURE] = (
            "ContentDeletionFailed",
            f"Failed to delete all resource types, {len(msgs)} remaining: {', '.join(msgs)}",
        )
    remaining = sorted(f"{r} has {n} resource instances" for r, n in report.remaining.items() if n)
    if remaining:
        failing[CONTENT_REMAINING] = (
            "SomeResourcesRemain",
            f"Some resources are remaining: {', '.join(remaining)}",
        )
    held = sorted(f"{f} in {n} resource instances" for f, n in report.finalizers.items() if n)
    if held:
        failing[FINALIZERS_REMAINING] = (
            "SomeFinalizersRemain",
            f"Some content in the namespace has finalizers remaining: {', '.join(held)}",
        )
    return failing


def namespace_conditions(
    current: Sequence[Mapping[str, Any]], report: ContentReport, now: datetime
) -> list[dict[str, Any]] | None:
    """The namespace's new ``status.conditions`` (None: unchanged). Conditions of other types are
    kept; each of the five is True with its failure or False with its all-clear text."""
    failing = failing_conditions(report)
    out = [dict(c) for c in current]
    changed = False
    for kind, ok in OK.items():
        status, (reason, message) = ("True", failing[kind]) if kind in failing else ("False", ok)
        old = next((c for c in out if c.get("type") == kind), None)
        if old is None:
            out.append(
                {
                    "type": kind,
                    "status": status,
                    "lastTransitionTime": rfc3339(now),
                    "reason": reason,
                    "message": message,
                }
            )
            changed = True
        elif (old.get("status"), old.get("reason"), old.get("message")) != (status, reason, message):
            if old.get("status") != status:
                old["lastTransitionTime"] = rfc3339(now)
            old.update(status=status, reason=reason, message=message)
            changed = True
    return out if changed else None


def deletion_estimate(obj: Mapping[str, Any], now: datetime) -> float:
    """Seconds until a remaining object should be gone: a pod's remaining grace period (or its whole
    grace period when not yet deleting), ``FINALIZER_ESTIMATE_SECONDS`` for finalizers, else 0."""
    meta = obj.get("metadata") or {}
    estimate = 0.0
    if obj.get("kind") == "Pod" or "containers" in (obj.get("spec") or {}):
        deadline = parse_rfc3339(meta.get("deletionTimestamp"))
        if deadline is not None:
            estimate = max(0.0, (deadline - now).total_seconds())
        else:
            estimate = float((obj.get("spec") or {}).get("terminationGracePeriodSeconds", 30))
    if meta.get("finalizers"):
        estimate = max(estimate, FINALIZER_ESTIMATE_SECONDS)
    return estimate


def recheck_after(estimate: float) -> float:
    return min(estimate / 2 + 1, MAX_RECHECK)


def ordered(resources: Sequence[APIResource]) -> list[list[APIResource]]:
    """Deletion steps: pods first, then everything else."""
    pods = [r for r in resources if (r.group_version, r.plural) == ("v1", "pods")]
    rest = [r for r in resources if r not in pods]
    return [step for step in (pods, rest) if step]


def deletable_namespaced(resources: Sequence[APIResource]) -> list[APIResource]:
    return [r for r in resources if r.namespaced and r.supports("list", "delete")]


class NamespaceController(Controller):
    NAME: ClassVar[str] = "namespace"
    COMPONENT: ClassVar[str] = "namespace-controller"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.discovery = Discovery(())
        self.namespaces = self.watch(
            "v1", "namespaces", on_add=self._changed, on_update=lambda _old, new: self._changed(new)
        )

    def _changed(self, ns: dict[str, Any]) -> None:
        if (ns.get("metadata") or {}).get("deletionTimestamp"):
            self.enqueue(ns)

    async def prepare(self) -> None:
        for attempt in range(DISCOVERY_ATTEMPTS):
            try:
                self.discovery = await discover(self.client)
                return
            except ApiError as err:
                if attempt == DISCOVERY_ATTEMPTS - 1:
                    raise
                log.warning("discovery failed (%s); retrying", err)
                await asyncio.sleep(1.0)

    async def reconcile(self, key: str) -> float | None:
        cached = self.namespaces.get(None, key)
        if cached is None or not (cached.get("metadata") or {}).get("deletionTimestamp"):
            return None
        try:  # several writers touch a terminating namespace: act on its current state
            ns = await self.client.get("v1", "namespaces", key)
        except ApiError as err:
            if err.status == 404:
                return None
            raise
        if not ns["metadata"].get("deletionTimestamp") or FINALIZER not in (
            (ns.get("spec") or {}).get("finalizers") or []
        ):
            return None
        if self.discovery.failed:  # a group failed at start: try again, it may be back
            self.discovery = await discover(self.client)
        report = await self.delete_content(key)
        now = self.clock.now()
        conditions = namespace_conditions((ns.get("status") or {}).get("conditions") or [], report, now)
        if conditions is not None:
            await self._patch_status(key, conditions)
        if not report.done:
            return recheck_after(report.estimate)
        await self._finalize(ns)
        return None

    async def delete_content(self, namespace: str) -> ContentReport:
        """Steps 1-3 of the module docstring for one namespace."""
        remaining: dict[str, int] = {}
        finalizers: dict[str, int] = {}
        errors: list[str] = []
        estimate = 0.0
        now = self.clock.now()
        for step in ordered(deletable_namespaced(self.discovery.resources)):
            for resource in step:
                try:
                    items = await self._delete_all(resource, namespace)
                except ApiError as err:
                    errors.append(f"{resource}: {err}")
                    continue
                if items:
                    remaining[str(resource)] = len(items)
                for obj in items:
                    for f in (obj.get("metadata") or {}).get("finalizers") or []:
                        finalizers[f] = finalizers.get(f, 0) + 1
                    estimate = max(estimate, deletion_estimate(obj, now))
            if any(remaining.values()) or errors:
                break  # the next step waits for this one's objects to be gone
        return ContentReport(remaining, finalizers, errors, dict(self.discovery.failed), estimate)

    async def _delete_all(self, resource: APIResource, namespace: str) -> list[dict[str, Any]]:
        """Delete every object of ``resource`` in ``namespace`` (``DELETE_CONCURRENCY`` at a time);
        return what is still there."""
        listed = await self.client.list_all(resource.group_version, resource.plural, namespace)
        items: list[dict[str, Any]] = list(listed.get("items") or [])
        todo = [o for o in items if not (o.get("metadata") or {}).get("deletionTimestamp")]
        if not todo:
            return items
        gate = asyncio.Semaphore(DELETE_CONCURRENCY)

        async def delete(obj: dict[str, Any]) -> None:
            meta = obj.get("metadata") or {}
            async with gate:
                try:
                    await self.client.delete(
                        resource.group_version,
                        resource.plural,
                        meta.get("name", ""),
                        namespace,
                        propagation_policy="Background",
                        preconditions={"uid": meta["uid"]} if meta.get("uid") else None,
                    )
                except ApiError as err:
                    if err.status not in (404, 409):  # gone already, or a newer object of that name
                        raise

        await asyncio.gather(*(delete(o) for o in todo))
        again = await self.client.list_all(resource.group_version, resource.plural, namespace)
        return list(again.get("items") or [])

    async def _patch_status(self, name: str, conditions: list[dict[str, Any]]) -> None:
        # A 404 raises too: the retry's GET tells a namespace gone from a path the server lacks.
        await self.client.patch(
            "v1", "namespaces", name, {"status": {"conditions": conditions}}, subresource="status"
        )

    async def _finalize(self, ns: dict[str, Any]) -> None:
        name = ns["metadata"]["name"]
        body = {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": name},  # no resourceVersion: the status patch above moved it
            "spec": {"finalizers": [f for f in ns["spec"]["finalizers"] if f != FINALIZER]},
        }
        await self.client.update("v1", "namespaces", body, subresource="finalize")
        log.info("namespace %s: content removed, finalized", name)
