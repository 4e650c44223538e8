"""Control-plane components as pods in ``kube-system``, as a kubeadm cluster shows them.

raykube's control plane runs as Ray actors, not as containers, so the node agents cannot run it as
static pods. Instead this controller (in the controller manager) keeps one pod per component in
``kube-system``: ``kube-apiserver-<node>``, ``kube-scheduler-<node>``,
``kube-controller-manager-<node>`` per instance (``<actor>`` on the node that ran ``raykube up``,
``<actor>-<node>`` on each other control-plane node) and ``etcd-<node>`` per store replica
(``etcd-<id>-<node>`` when replicas share a node). Each carries the annotation
``raykube.io/ray-actor: <actor name>`` (node agents leave such pods alone), ``spec.nodeName`` of the
Ray node hosting the actor, and a status that reflects a health check of the actor every
``interval`` (Running and Ready when it answers). A deleted pod comes back at once, like a mirror
pod.

``component_pod`` and ``pod_status`` are pure; ``ControlPlanePods`` (a controller of the runtime,
``controlplanepods``: one key requeued every ``interval``) does the writes, from what a
``ComponentSource`` reports (the controller manager's asks Ray: ``cluster.controllers.actor``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Protocol

from cluster.client.errors import ApiError
from cluster.controllers.runtime import Controller, ControllerContext
from cluster.machinery.times import rfc3339

log = logging.getLogger("raykube.controllers.controlplane")

NAMESPACE = "kube-system"
ACTOR_ANNOTATION = "raykube.io/ray-actor"
IMAGE = "raykube/ray-actor"  # not pulled: the component is a Ray actor, named here for kubectl's IMAGE column


@dataclass(frozen=True, slots=True)
class Component:
    """One control-plane actor: its pod name prefix, Ray actor name, node, health and start time."""

    component: str  # kube-apiserver, kube-scheduler, kube-controller-manager, etcd
    actor: str
    node_name: str
    healthy: bool
    started: datetime
    pod_name: str
    host_ip: str = ""


def component_pod(c: Component) -> dict[str, Any]:
    """The pod object (without status) for one component."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": c.pod_name,
            "namespace": NAMESPACE,
            "labels": {"component": c.component, "tier": "control-plane"},
            "annotations": {ACTOR_ANNOTATION: c.actor},
        },
        "spec": {
            "nodeName": c.node_name,
            "hostNetwork": True,  # as kubeadm's control-plane pods: the actor serves on the node's IP
            "containers": [{"name": c.component, "image": IMAGE, "command": ["ray-actor", c.actor]}],
        },
    }


def pod_status(c: Component, previous: dict[str, Any] | None, now: datetime) -> dict[str, Any]:
    """Running/Ready from the health check; transition times kept while nothing changes."""
    ready = "True" if c.healthy else "False"
    old = {x.get("type"): x for x in (previous or {}).get("conditions") or []}

    def condition(kind: str, status: str) -> dict[str, Any]:
        kept = old.get(kind)
        since = kept.get("lastTransitionTime") if kept and kept.get("status") == status else None
        return {
            "type": kind,
            "status": status,
            "lastProbeTime": None,
            "lastTransitionTime": since or rfc3339(now),
        }

    state: dict[str, Any] = (
        {"running": {"startedAt": rfc3339(c.started)}}
        if c.healthy
        else {"waiting": {"reason": "Unhealthy", "message": f"Ray actor {c.actor} did not answer"}}
    )
    return {
        "phase": "Running" if c.healthy else "Pending",
        "conditions": [
            condition("PodScheduled", "True"),
            condition("Initialized", "True"),
            condition("ContainersReady", ready),
            condition("Ready", ready),
        ],
        "startTime": rfc3339(c.started),
        **({"hostIP": c.host_ip, "podIP": c.host_ip, "podIPs": [{"ip": c.host_ip}]} if c.host_ip else {}),
        "containerStatuses": [
            {
                "name": c.component,
                "image": IMAGE,
                "imageID": "",
                "containerID": f"ray://{c.actor}",
                "ready": c.healthy,
                "started": c.healthy,
                "restartCount": 0,
                "state": state,
            }
        ],
        "qosClass": "BestEffort",
    }


# (component, Ray actor base name) of the replicated components: the instance on the node that ran
# ``raykube up`` has the base name, the others ``<base>-<node>``; the store's replicas are ``etcd`` pods.
CONTROL_PLANE_ACTORS = (
    ("kube-apiserver", "apiserver"),
    ("kube-scheduler", "scheduler"),
    ("kube-controller-manager", "controller-manager"),
)


def components_of(
    here: str,
    answering: Mapping[str, bool],
    replicas: list[dict[str, Any]],
    names: Mapping[str, str],
    ips: Mapping[str, str],
    started: datetime,
) -> list[Component]:
    """The components from what Ray reports: ``here`` is the node that ran ``raykube up`` (its
    instances have the base names), ``answering`` actor name -> whether it answered its health check
    (an instance ``<base>-<node>`` for a known node name gets a pod on that node), ``replicas`` the
    store's status rows, ``names`` Ray node id -> node name and ``ips`` node name -> address."""
    known = set(names.values())
    found = []
    for component, base in CONTROL_PLANE_ACTORS:
        nodes = {base: here}
        for actor in answering:
            node = actor.removeprefix(f"{base}-")
            if node != actor and node in known and node != here:
                nodes[actor] = node
        for actor, node in nodes.items():
            found.append(
                Component(
                    component,
                    actor,
                    node,
                    answering.get(actor, False),
                    started,
                    f"{component}-{node}",
                    ips.get(node, ""),
                )
            )
    per_node: dict[str, int] = {}
    for replica in replicas:
        node = names.get(str(replica.get("node_id", "")), here)
        per_node[node] = per_node.get(node, 0) + 1
    for replica in replicas:
        node = names.get(str(replica.get("node_id", "")), here)
        rid = replica.get("id")
        pod_name = f"etcd-{node}" if per_node[node] == 1 else f"etcd-{rid}-{node}"
        healthy = replica.get("health") == "ok"
        found.append(Component("etcd", f"store-{rid}", node, healthy, started, pod_name, ips.get(node, "")))
    return found


class ComponentSource(Protocol):
    """Where the control-plane components run and whether they answer (the controller manager's
    implementation asks Ray; tests give a fixed list)."""

    async def components(self) -> list[Component]: ...

    async def close(self) -> None: ...


SYNC_KEY = f"{NAMESPACE}/control-plane-pods"  # the one key: every pass looks at all components
DEFAULT_INTERVAL = 10.0


class ControlPlanePods(Controller):
    """Keeps the component pods in step with the actors of this Ray namespace; see the module doc.

        One key (``SYNC_KEY``), requeued every ``interval`` seconds (``extra["control_plane_interval"]``,
        10 s); a component pod deleted, marked for deletion or whose readiness someone else changed in
    between brings the pass forward. The
        ``ComponentSource`` comes from ``ctx.options.extra["control_plane_source"]``; without one (a
        manager outside Ray) the controller does nothing."""

    NAME: ClassVar[str] = "controlplanepods"
    COMPONENT: ClassVar[str] = "control-plane-pods"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.source: ComponentSource | None = ctx.options.extra.get("control_plane_source")
        self.interval = float(ctx.options.extra.get("control_plane_interval", DEFAULT_INTERVAL))
        self.watch("v1", "pods", on_update=self._pod_updated, on_delete=self._pod_changed)
        if self.source is None:
            log.info("no control-plane component source: control-plane pods are not reported")
        else:
            self.enqueue(SYNC_KEY)

    def _pod_changed(self, pod: dict[str, Any]) -> None:
        meta = pod.get("metadata") or {}
        if meta.get("namespace") == NAMESPACE and ACTOR_ANNOTATION in (meta.get("annotations") or {}):
            self.enqueue(SYNC_KEY)

    def _pod_updated(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        # Marked for deletion, or someone else changed its readiness (the node lifecycle controller
        # marks the pods of an unreachable node not ready): put it right now, not at the next pass.
        if (new.get("metadata") or {}).get("deletionTimestamp") or _ready(old) != _ready(new):
            self._pod_changed(new)

    async def reconcile(self, key: str) -> float | None:
        if self.source is None:
            return None
        try:
            await self.sync_once()
        except Exception:  # the reporter keeps its cadence (no growing backoff) whatever Ray says
            log.exception("control-plane pods pass failed")
        return self.interval

    async def stop(self) -> None:
        await super().stop()
        if self.source is not None:
            await self.source.close()

    async def sync_once(self) -> None:
        """One pass: create missing pods, recreate terminating ones, patch changed statuses."""
        assert self.source is not None
        now = self.clock.now()
        for c in await self.source.components():
            try:
                try:
                    current = await self.client.get("v1", "pods", c.pod_name, NAMESPACE)
                except ApiError as err:
                    if err.status != 404:
                        raise
                    current = await self.client.create("v1", "pods", component_pod(c), NAMESPACE)
                if (current.get("metadata") or {}).get("deletionTimestamp"):
                    await self.client.delete("v1", "pods", c.pod_name, NAMESPACE, grace_period_seconds=0)
                    continue
                status = pod_status(c, current.get("status"), now)
                if _differs(current.get("status") or {}, status):
                    await self.client.patch(
                        "v1", "pods", c.pod_name, {"status": status}, NAMESPACE, subresource="status"
                    )
            except ApiError as err:
                log.warning("control-plane pod %s: %s", c.pod_name, err)


def _ready(pod: Mapping[str, Any]) -> str | None:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return next((str(c.get("status")) for c in conditions if c.get("type") == "Ready"), None)


def _differs(old: dict[str, Any], new: dict[str, Any]) -> bool:
    keys = ("phase", "conditions", "containerStatuses", "podIP")
    return any(old.get(k) != new.get(k) for k in keys)
