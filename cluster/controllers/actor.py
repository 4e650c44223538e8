"""The controller manager as a detached, named Ray actor (``controller-manager``): a thin wrapper that
runs :class:`~cluster.controllers.manager.ControllerManager` (the controllers ``--controllers``
enables, on shared informers) against the API server.

It connects with the kubeconfig at ``kubeconfig_path``; all logic lives in the controller modules so
it can be tested without Ray. What needs Ray stays here: ``RayComponents`` (where the control-plane
actors run, for the kube-system pods) and following Ray's membership with node agents
(``cluster.node_agents``). A failed start is retried by ``ready``.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

import ray

from cluster.autoscaler.ray_autoscaler import AutoscalingOptions, RayAutoscaler
from cluster.client.rest import ApiClient
from cluster.controllers.control_plane_pods import (
    CONTROL_PLANE_ACTORS,
    Component,
    components_of,
)
from cluster.controllers.manager import ControllerManager
from cluster.controllers.registry import enabled
from cluster.controllers.runtime import ControllerOptions
from cluster.machinery.cidrset import DEFAULT_CLUSTER_CIDR
from cluster.machinery.ippool import DEFAULT_LB_POOL
from cluster.naming import node_names
from cluster.node_agents import NodeAgentsConfig, deploy_node_agents
from cluster.store.client import StoreClient

log = logging.getLogger("raykube.controllers")

ACTOR_NAME = "controller-manager"


class RayComponents:
    """The control-plane actors of ``ray_namespace`` as Ray reports them (``ControlPlanePods``' source)."""

    def __init__(self, ray_namespace: str) -> None:
        self.ray_namespace = ray_namespace
        self.started = datetime.now(UTC)
        self._store: StoreClient | None = None  # one for every pass (it refreshes its replica handles)

    async def _answers(self, actor_name: str) -> bool:
        if actor_name == ACTOR_NAME:
            return True  # this actor: it is answering
        try:
            handle = ray.get_actor(actor_name, namespace=self.ray_namespace)
            await asyncio.wait_for(handle.ready.remote(), 5.0)
        except Exception:
            return False
        return True

    async def components(self) -> list[Component]:
        alive = [n for n in ray.nodes() if n.get("Alive")]  # type: ignore[no-untyped-call]
        names = node_names(alive)
        ips = {names[n["NodeID"]]: str(n.get("NodeManagerAddress") or "") for n in alive}
        here = names.get(ray.get_runtime_context().get_node_id(), "")
        answering = {actor: await self._answers(actor) for _, actor in CONTROL_PLANE_ACTORS}
        if self._store is None:
            self._store = await StoreClient.connect(self.ray_namespace)
        replicas = await self._store.status()
        return components_of(here, answering, replicas, names, ips, self.started)

    async def close(self) -> None:
        if self._store is not None:
            await self._store.close()
            self._store = None


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=0, max_concurrency=1000)  # type: ignore[call-overload]
class ControllerManagerActor:
    def __init__(
        self,
        kubeconfig_path: str,
        node_monitor_grace: float,
        ray_namespace: str,
        agents: NodeAgentsConfig | None = None,
        controllers: tuple[str, ...] = ("*",),
        cluster_cidr: str = DEFAULT_CLUSTER_CIDR,
        lb_pool: str = DEFAULT_LB_POOL,
    ) -> None:
        logging.basicConfig(level=logging.INFO)
        self.spec = controllers
        self.cluster_cidr = cluster_cidr
        self.lb_pool = lb_pool
        self.manager: ControllerManager | None = None
        self.ray_namespace = ray_namespace
        self.agents = agents  # how to deploy node agents, to follow Ray's membership (None: don't)
        self._follow: asyncio.Task[None] | None = None
        self._autoscale: asyncio.Task[None] | None = None
        self.kubeconfig_path = kubeconfig_path
        self.node_monitor_grace = node_monitor_grace
        self._started = asyncio.get_event_loop().create_task(self._start())

    async def _start(self) -> None:
        client = ApiClient.from_kubeconfig(self.kubeconfig_path)
        source = RayComponents(self.ray_namespace)
        options = ControllerOptions(
            node_monitor_grace=self.node_monitor_grace,
            extra={
                "control_plane_source": source,
                "cluster_cidr": self.cluster_cidr,
                "lb_pool": self.lb_pool,
            },
        )
        names = enabled(self.spec)
        manager = ControllerManager(client, names, options=options)
        await manager.start()
        self.manager = manager
        if self.agents is not None:
            self._follow = asyncio.get_event_loop().create_task(self._follow_ray_nodes(self.agents))
            # Pending pods ask Ray's autoscaler for nodes, idle nodes go back (docs/autoscaling.md).
            autoscaler = RayAutoscaler(client, self.ray_namespace, AutoscalingOptions.from_env())
            self._autoscale = asyncio.get_event_loop().create_task(autoscaler.run())
        log.info("controllers running: %s (grace %.0fs)", ", ".join(self.running()), self.node_monitor_grace)

    def running(self) -> list[str]:
        return list(self.manager.controllers) if self.manager else []

    async def ready(self) -> list[str]:
        if self._started.done() and self._started.exception() is not None:
            self._started = asyncio.get_event_loop().create_task(self._start())
        await asyncio.shield(self._started)
        return self.running()

    async def _follow_ray_nodes(self, agents: NodeAgentsConfig, period: float = 15.0) -> None:
        """Give every Ray node that joins later (``ray up``, the autoscaler) its runtime and agent."""
        while True:
            await asyncio.sleep(period)
            try:
                added = await asyncio.to_thread(
                    deploy_node_agents, agents, self.ray_namespace, only_missing=True
                )
                for agent in added:
                    log.info("node %s joined: agent on port %s", agent.node, agent.port)
            except Exception:
                log.exception("deploying node agents for new Ray nodes failed")

    async def shutdown(self) -> None:
        if self._follow is not None:
            self._follow.cancel()
        if self._autoscale is not None:
            self._autoscale.cancel()
        if self.manager is not None:
            await self.manager.stop()
