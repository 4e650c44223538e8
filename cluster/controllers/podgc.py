"""The pod garbage collector (kube-controller-manager's ``podgc``): removes pods nothing else will.

Every ``GC_PERIOD`` (20 s) one pass, in kube's order:

1. **terminated pods over the threshold**: when more than ``terminated_threshold`` (12,500) pods have
   finished (Succeeded or Failed), the oldest by creation time are deleted down to the threshold;
2. **orphaned pods**: a pod bound to a node that does not exist is force-deleted (grace 0), but only
   once the node has been missing for ``QUARANTINE`` (40 s) and a live GET still answers 404, so a
   node that is slow to show up in the cache is not mistaken for a deleted one. Before the delete the
   pod gets the ``DisruptionTarget`` condition (reason ``DeletionByPodGC``) and, if it had not finished,
   phase Failed;
3. **terminating pods on out-of-service nodes**: a pod being deleted on a node that is not Ready and
   carries the ``node.kubernetes.io/out-of-service`` taint is force-deleted (the node was declared
   gone by its operator, no agent will confirm the deletion);
4. **unscheduled terminating pods**: a pod being deleted that was never bound is force-deleted (no
   agent will ever confirm it).

``plan`` is pure (pods, nodes, when each missing node was first seen, now); the controller runs it and
acts, every delete with the pod's uid as precondition.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from cluster.client.errors import ApiError
from cluster.client.lister import object_key
from cluster.controllers.runtime import Controller, ControllerContext
from cluster.machinery.times import rfc3339

log = logging.getLogger("raykube.controllers.podgc")

GC_PERIOD = 20.0
QUARANTINE = 40.0
TERMINATED_THRESHOLD = 12500
OUT_OF_SERVICE_TAINT = "node.kubernetes.io/out-of-service"
SYNC_KEY = "podgc"
TERMINATED = "terminated"
ORPHANED = "orphaned"
OUT_OF_SERVICE = "out-of-service"
UNSCHEDULED = "unscheduled"


@dataclass(frozen=True, slots=True)
class Removal:
    key: str
    reason: str  # TERMINATED, ORPHANED, OUT_OF_SERVICE or UNSCHEDULED
    force: bool  # grace period 0


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def _terminated(pod: Mapping[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def _ready(node: Mapping[str, Any]) -> bool:
    for condition in (node.get("status") or {}).get("conditions") or ():
        if condition.get("type") == "Ready":
            return bool(condition.get("status") == "True")
    return False


def _out_of_service(node: Mapping[str, Any]) -> bool:
    taints = (node.get("spec") or {}).get("taints") or ()
    return any(t.get("key") == OUT_OF_SERVICE_TAINT and t.get("effect") == "NoExecute" for t in taints)


def missing_nodes(pods: Iterable[Mapping[str, Any]], nodes: Mapping[str, Mapping[str, Any]]) -> set[str]:
    """Names of the nodes that pods are bound to but the node cache does not hold."""
    return {name for pod in pods if (name := (pod.get("spec") or {}).get("nodeName")) and name not in nodes}


def plan(
    pods: Sequence[Mapping[str, Any]],
    nodes: Mapping[str, Mapping[str, Any]],
    gone_nodes: set[str],
    *,
    terminated_threshold: int = TERMINATED_THRESHOLD,
) -> list[Removal]:
    """The pods to remove, in kube's order; ``gone_nodes`` are the nodes confirmed deleted (404 after
    the quarantine). A pod is named at most once."""
    removals: list[Removal] = []
    chosen: set[str] = set()

    def take(pod: Mapping[str, Any], reason: str, force: bool) -> None:
        key = object_key(pod)
        if key not in chosen:
            chosen.add(key)
            removals.append(Removal(key, reason, force))

    terminated = [p for p in pods if _terminated(p) and not _meta(p).get("deletionTimestamp")]
    excess = len(terminated) - terminated_threshold
    if excess > 0:
        oldest = sorted(terminated, key=lambda p: (str(_meta(p).get("creationTimestamp", "")), object_key(p)))
        for pod in oldest[:excess]:
            take(pod, TERMINATED, False)
    for pod in pods:
        node_name = (pod.get("spec") or {}).get("nodeName")
        if node_name and node_name in gone_nodes:
            take(pod, ORPHANED, True)
    for pod in pods:
        node = nodes.get((pod.get("spec") or {}).get("nodeName") or "")
        if (
            _meta(pod).get("deletionTimestamp")
            and node is not None
            and not _ready(node)
            and _out_of_service(node)
        ):
            take(pod, OUT_OF_SERVICE, True)
    for pod in pods:
        if _meta(pod).get("deletionTimestamp") and not (pod.get("spec") or {}).get("nodeName"):
            take(pod, UNSCHEDULED, True)
    return removals


def disruption_patch(pod: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """The status merge patch podgc writes before deleting an orphaned pod."""
    status = pod.get("status") or {}
    conditions = [c for c in status.get("conditions") or () if c.get("type") != "DisruptionTarget"]
    conditions.append(
        {
            "type": "DisruptionTarget",
            "status": "True",
            "reason": "DeletionByPodGC",
            "message": "PodGC: node no longer exists",
            "lastTransitionTime": rfc3339(now),
        }
    )
    patch: dict[str, Any] = {"status": {"conditions": conditions}}
    if not _terminated(pod):
        patch["status"]["phase"] = "Failed"
    return patch


class PodGCController(Controller):
    NAME: ClassVar[str] = "podgc"
    COMPONENT: ClassVar[str] = "pod-garbage-collector"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.pods = self.watch("v1", "pods")
        self.period = float(ctx.options.extra.get("podgc_period", GC_PERIOD))
        self.quarantine = float(ctx.options.extra.get("podgc_quarantine", QUARANTINE))
        self.nodes = self.watch(
            "v1", "nodes", on_delete=lambda _: self.enqueue_after(SYNC_KEY, self.quarantine)
        )
        self.missing_since: dict[str, float] = {}
        self.enqueue(SYNC_KEY)

    async def reconcile(self, key: str) -> float | None:
        pods = self.pods.list()
        nodes = {_meta(n).get("name", ""): n for n in self.nodes.list()}
        gone = await self._gone_nodes(missing_nodes(pods, nodes))
        for removal in plan(pods, nodes, gone):
            await self._remove(removal)
        return self.period

    async def _gone_nodes(self, missing: set[str]) -> set[str]:
        """The missing nodes past their quarantine that a live GET confirms deleted."""
        now = self.clock.monotonic()
        self.missing_since = {n: self.missing_since.get(n, now) for n in missing}
        gone: set[str] = set()
        for name, since in self.missing_since.items():
            if now - since < self.quarantine:
                continue
            try:
                await self.client.get("v1", "nodes", name)
            except ApiError as err:
                if err.status == 404:
                    gone.add(name)
        return gone

    async def _remove(self, removal: Removal) -> None:
        pod = self.pods.get_by_key(removal.key)
        if pod is None:
            return
        meta = _meta(pod)
        namespace, name = meta.get("namespace"), meta.get("name", "")
        try:
            if removal.reason == ORPHANED:
                patch = disruption_patch(pod, self.clock.now())
                await self.client.patch("v1", "pods", name, patch, namespace, subresource="status")
            await self.client.delete(
                "v1",
                "pods",
                name,
                namespace,
                grace_period_seconds=0 if removal.force else None,
                preconditions={"uid": meta.get("uid")},
            )
            log.info("podgc: deleted pod %s (%s)", removal.key, removal.reason)
        except ApiError as err:
            if err.status not in (404, 409):
                raise
