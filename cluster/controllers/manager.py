"""The controller manager as a detached, named Ray actor (``controller-manager``): a thin wrapper that
runs the controllers (the node lifecycle controller and the control-plane pods reporter) against the
API server.

It connects with the kubeconfig at ``kubeconfig_path``; all logic lives in the controller modules so
it can be tested without Ray. A failed start is retried by ``ready``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import ray

log = logging.getLogger("raykube.controllers")

ACTOR_NAME = "controller-manager"


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=0, max_concurrency=1000)  # type: ignore[call-overload]
class ControllerManagerActor:
    def __init__(
        self,
        kubeconfig_path: str,
        node_monitor_grace: float,
        ray_namespace: str,
        agents: dict[str, Any] | None = None,
    ) -> None:
        logging.basicConfig(level=logging.INFO)
        self.ray_namespace = ray_namespace
        self.agents = agents  # deploy_node_agents' arguments, to follow Ray's membership (None: don't)
        self._follow: asyncio.Task[None] | None = None
        self.kubeconfig_path = kubeconfig_path
        self.node_monitor_grace = node_monitor_grace
        self.controllers: list[Any] = []
        self._started = asyncio.get_event_loop().create_task(self._start())

    async def _start(self) -> None:
        from cluster.client.rest import ApiClient
        from cluster.controllers.control_plane_pods import ControlPlanePods
        from cluster.controllers.node_lifecycle import NodeLifecycleController

        client = ApiClient.from_kubeconfig(self.kubeconfig_path)
        node_lifecycle = NodeLifecycleController(client, grace=self.node_monitor_grace)
        await node_lifecycle.start()
        control_plane = ControlPlanePods(client, self.ray_namespace)
        await control_plane.start()
        self.controllers = [node_lifecycle, control_plane]
        if self.agents is not None:
            self._follow = asyncio.get_event_loop().create_task(self._follow_ray_nodes())
        log.info(
            "controllers running: node lifecycle (grace %.0fs), control-plane pods", self.node_monitor_grace
        )

    async def ready(self) -> list[str]:
        if self._started.done() and self._started.exception() is not None:
            self._started = asyncio.get_event_loop().create_task(self._start())
        await asyncio.shield(self._started)
        return [type(c).__name__ for c in self.controllers]

    async def _follow_ray_nodes(self, period: float = 15.0) -> None:
        """Give every Ray node that joins later (``ray up``, the autoscaler) its runtime and agent."""
        from pathlib import Path

        from cluster.bootstrap import deploy_node_agents

        assert self.agents is not None
        args = dict(self.agents)
        data_dir = Path(args.pop("data_dir"))
        while True:
            await asyncio.sleep(period)
            try:
                added = await asyncio.to_thread(
                    deploy_node_agents, data_dir, self.ray_namespace, only_missing=True, **args
                )
                for agent in added:
                    log.info("node %s joined: agent on port %s", agent["node"], agent["port"])
            except Exception:
                log.exception("deploying node agents for new Ray nodes failed")

    async def shutdown(self) -> None:
        if self._follow is not None:
            self._follow.cancel()
        for controller in self.controllers:
            await controller.stop()
