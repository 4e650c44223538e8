"""Control-plane components as pods in ``kube-system``, as a kubeadm cluster shows them.

raykube's control plane runs as Ray actors, not as containers, so the node agents cannot run it as
static pods. Instead this controller (in the controller manager) keeps one pod per component in
``kube-system``: ``kube-apiserver-<node>``, ``kube-scheduler-<node>``,
``kube-controller-manager-<node>`` and ``etcd-<node>`` per store replica (``etcd-<id>-<node>`` when
replicas share a node). Each carries the annotation ``raykube.io/ray-actor: <actor name>`` (node agents
leave such pods alone), ``spec.nodeName`` of the Ray node hosting the actor, and a status that reflects
a health check of the actor every ``interval`` (Running and Ready when it answers). A deleted pod comes
back on the next pass, like a mirror pod.

``component_pod`` and ``pod_status`` are pure; ``ControlPlanePods`` does the Ray calls and the writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

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


def _stamp(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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
            "lastTransitionTime": since or _stamp(now),
        }

    state: dict[str, Any] = (
        {"running": {"startedAt": _stamp(c.started)}}
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
        "startTime": _stamp(c.started),
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


class ControlPlanePods:
    """Keeps the component pods in step with the actors of this Ray namespace; see the module doc."""

    def __init__(self, client: Any, ray_namespace: str, *, interval: float = 10.0) -> None:
        self.client = client
        self.ray_namespace = ray_namespace
        self.interval = interval
        self.started = datetime.now(UTC)
        self._task: asyncio.Task[None] | None = None
        self._store: Any = None  # one StoreClient for every pass (it refreshes its replica handles)

    async def start(self) -> None:
        with contextlib.suppress(Exception):
            await self.sync_once()
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self._store is not None:
            await self._store.close()
            self._store = None

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.sync_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("control-plane pods pass failed")

    async def components(self) -> list[Component]:
        """Ask Ray where each control-plane actor runs and whether it answers."""
        import ray

        from cluster.bootstrap import node_names

        alive = [n for n in ray.nodes() if n.get("Alive")]  # type: ignore[no-untyped-call]
        names = node_names(alive)
        ips = {names[n["NodeID"]]: str(n.get("NodeManagerAddress") or "") for n in alive}
        here = names.get(ray.get_runtime_context().get_node_id(), "")
        found: list[Component] = []

        async def answers(actor_name: str) -> bool:
            try:
                handle = ray.get_actor(actor_name, namespace=self.ray_namespace)
                await asyncio.wait_for(handle.ready.remote(), 5.0)
            except Exception:
                return False
            return True

        for component, actor in (
            ("kube-apiserver", "apiserver"),
            ("kube-scheduler", "scheduler"),
            ("kube-controller-manager", "controller-manager"),
        ):
            healthy = True if actor == "controller-manager" else await answers(actor)
            pod_name = f"{component}-{here}"
            found.append(
                Component(component, actor, here, healthy, self.started, pod_name, ips.get(here, ""))
            )
        if self._store is None:
            from cluster.store.client import StoreClient

            self._store = await StoreClient.connect(self.ray_namespace)
        replicas = await self._store.status()
        per_node: dict[str, int] = {}
        for replica in replicas:
            node = names.get(str(replica.get("node_id", "")), here)
            per_node[node] = per_node.get(node, 0) + 1
        for replica in replicas:
            node = names.get(str(replica.get("node_id", "")), here)
            rid = replica.get("id")
            pod_name = f"etcd-{node}" if per_node[node] == 1 else f"etcd-{rid}-{node}"
            healthy = replica.get("health") == "ok"
            actor = f"store-{rid}"
            found.append(Component("etcd", actor, node, healthy, self.started, pod_name, ips.get(node, "")))
        return found

    async def sync_once(self) -> None:
        from cluster.client.errors import ApiError

        now = datetime.now(UTC)
        for c in await self.components():
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


def _differs(old: dict[str, Any], new: dict[str, Any]) -> bool:
    keys = ("phase", "conditions", "containerStatuses", "podIP")
    return any(old.get(k) != new.get(k) for k in keys)
