"""The taint eviction controller (kube-controller-manager's ``taint-eviction-controller``): pods on a
node with ``NoExecute`` taints they do not tolerate are deleted.

For each pod bound to a node, the node's ``NoExecute`` taints decide (``eviction_time``, pure):

* a taint no toleration of the pod tolerates: the pod is deleted at once;
* every taint tolerated: each taint is matched with the pod's first toleration that tolerates it (as
  kube does; the matching is ``cluster.machinery.taints``); a toleration with ``tolerationSeconds`` lets
  the pod stay that long after the taint's ``timeAdded`` (0 or less: not at all), one without lets it
  stay forever. The pod goes when the earliest of those deadlines passes;
* no ``NoExecute`` taint: nothing.

Unlike kube, whose taint manager starts its timers when it first sees the taint, the deadline counts
from the taint's ``timeAdded`` (set by the node lifecycle controller and by ``kubectl taint``), so a
restarted controller keeps the same deadlines; a taint without ``timeAdded`` counts from when this
controller first saw it. The reconcile of a pod that must wait asks to be looked at again when its
deadline comes (a returned delay), so no timer lives outside the work queue.

Before deleting, the pod gets the ``DisruptionTarget`` condition (reason ``DeletionByTaintManager``)
and an event ``TaintManagerEviction`` "Marking for deletion Pod NS/NAME"; a pod whose eviction was
pending and is no longer due (taint removed, toleration added) gets "Cancelling deletion of Pod
NS/NAME". The delete carries the pod's uid as a precondition, so a new pod of the same name is safe.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, ClassVar

from cluster.client.errors import ApiError
from cluster.controllers.node_lifecycle import NODE_NAME_INDEX, node_name_index
from cluster.controllers.runtime import Controller, ControllerContext
from cluster.machinery.taints import NO_EXECUTE, Taint, Toleration, matching_toleration, tolerates_taint
from cluster.machinery.times import parse_rfc3339, rfc3339

log = logging.getLogger("raykube.controllers.tainteviction")

EVICTION_REASON = "TaintManagerEviction"
DISRUPTION_REASON = "DeletionByTaintManager"
DISRUPTION_MESSAGE = "Taint manager: deleting due to NoExecute taint"


# The one ``ToleratesTaint`` (shared with the scheduler and the DaemonSet controller), by its old name.
tolerates = tolerates_taint


def no_execute_taints(node: Mapping[str, Any] | None) -> list[Taint]:
    taints = ((node or {}).get("spec") or {}).get("taints") or []
    return [t for t in taints if isinstance(t, Mapping) and t.get("effect") == NO_EXECUTE]


def eviction_time(
    tolerations: Sequence[Toleration],
    taints: Sequence[Taint],
    since: Callable[[Taint], datetime],
) -> datetime | None:
    """When a pod with ``tolerations`` must leave a node with the ``NoExecute`` ``taints`` (None:
    never); ``since(taint)`` is when the taint appeared. A taint that no toleration covers makes it
    that taint's own ``since``: a time already past, so the caller evicts at once."""
    deadlines: list[datetime] = []
    for taint in taints:
        match = matching_toleration(tolerations, taint)
        if match is None:
            return since(taint)
        seconds = match.get("tolerationSeconds")
        if seconds is None:
            continue  # tolerated forever
        deadlines.append(since(taint) + timedelta(seconds=max(0, int(seconds))))
    return min(deadlines) if deadlines else None


def taint_added(first_seen: Callable[[Taint], datetime]) -> Callable[[Taint], datetime]:
    """``since`` for ``eviction_time``: the taint's ``timeAdded``, else ``first_seen(taint)``."""

    def since(taint: Taint) -> datetime:
        added = parse_rfc3339(taint.get("timeAdded"))
        return added if added is not None else first_seen(taint)

    return since


def disruption_target_patch(pod: Mapping[str, Any], now: datetime) -> dict[str, Any] | None:
    """Status merge patch adding ``DisruptionTarget=True`` (None when the pod already has it)."""
    conditions = list((pod.get("status") or {}).get("conditions") or [])
    if any(c.get("type") == "DisruptionTarget" and c.get("status") == "True" for c in conditions):
        return None
    conditions = [c for c in conditions if c.get("type") != "DisruptionTarget"]
    conditions.append(
        {
            "type": "DisruptionTarget",
            "status": "True",
            "reason": DISRUPTION_REASON,
            "message": DISRUPTION_MESSAGE,
            "lastTransitionTime": rfc3339(now),
        }
    )
    return {"status": {"conditions": conditions}}


def _taint_ids(node: Mapping[str, Any]) -> set[tuple[str, str, str]]:
    return {
        (str(t.get("key")), str(t.get("value") or ""), str(t.get("timeAdded") or ""))
        for t in no_execute_taints(node)
    }


class TaintEvictionController(Controller):
    """Keys are pods (``namespace/name``); a node whose NoExecute taints change enqueues its pods."""

    NAME: ClassVar[str] = "taint-eviction-controller"
    COMPONENT: ClassVar[str] = "taint-eviction-controller"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.pods = self.watch("v1", "pods", on_add=self._pod_changed, on_update=self._pod_updated)
        self.pods.add_index(NODE_NAME_INDEX, node_name_index)
        self.nodes = self.watch("v1", "nodes", on_add=self._node_added, on_update=self._node_updated)
        self._first_seen: dict[tuple[str, str, str, str], datetime] = {}
        self._pending: set[str] = set()  # pods whose eviction is scheduled, for "Cancelling deletion"

    # -- handlers (enqueue only) -----------------------------------------------------------------

    def _pod_changed(self, pod: dict[str, Any]) -> None:
        if node_name_index(pod):
            self.enqueue(pod)

    def _pod_updated(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        self._pod_changed(new)

    def _enqueue_pods_of(self, node: Mapping[str, Any]) -> None:
        name = (node.get("metadata") or {}).get("name") or ""
        for key in self.pods.index_keys(NODE_NAME_INDEX, name):
            self.enqueue(key)

    def _node_added(self, node: dict[str, Any]) -> None:
        if no_execute_taints(node):
            self._enqueue_pods_of(node)

    def _node_updated(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        if _taint_ids(old) != _taint_ids(new):
            self._enqueue_pods_of(new)

    # -- reconcile --------------------------------------------------------------------------------

    def _first_seen_on(self, node_name: str) -> Callable[[Taint], datetime]:
        def first_seen(taint: Taint) -> datetime:
            key = (node_name, str(taint.get("key")), str(taint.get("value") or ""), NO_EXECUTE)
            return self._first_seen.setdefault(key, self.clock.now())

        return first_seen

    async def reconcile(self, key: str) -> float | None:
        pod = self.pods.get_by_key(key)
        node_name = (pod.get("spec") or {}).get("nodeName") if pod else None
        if pod is None or not node_name or (pod.get("metadata") or {}).get("deletionTimestamp"):
            self._pending.discard(key)
            return None
        taints = no_execute_taints(self.nodes.get(None, node_name))
        tolerations = [t for t in (pod.get("spec") or {}).get("tolerations") or [] if isinstance(t, Mapping)]
        when = eviction_time(tolerations, taints, taint_added(self._first_seen_on(node_name)))
        now = self.clock.now()
        if when is None:
            if key in self._pending:
                self._pending.discard(key)
                self.recorder.event(pod, "Normal", EVICTION_REASON, f"Cancelling deletion of Pod {key}")
            return None
        if when > now:
            self._pending.add(key)
            return (when - now).total_seconds()
        await self._evict(key, pod, now)
        return None

    async def _evict(self, key: str, pod: dict[str, Any], now: datetime) -> None:
        self._pending.discard(key)
        meta = pod.get("metadata") or {}
        namespace, name = meta.get("namespace"), meta.get("name", "")
        self.recorder.event(pod, "Normal", EVICTION_REASON, f"Marking for deletion Pod {key}")
        log.info("evicting pod %s: NoExecute taint on node %s", key, (pod.get("spec") or {}).get("nodeName"))
        patch = disruption_target_patch(pod, now)
        try:
            if patch is not None:
                await self.client.patch("v1", "pods", name, patch, namespace, subresource="status")
            await self.client.delete("v1", "pods", name, namespace, preconditions={"uid": meta.get("uid")})
        except ApiError as err:
            if err.status not in (404, 409):  # gone already, or a new pod of that name
                raise
