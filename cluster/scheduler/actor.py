"""The scheduler as a detached, named Ray actor (``scheduler``): a thin wrapper over ``Scheduler``.

It connects to the API server with the kubeconfig at ``kubeconfig_path`` and reads an optional
KubeSchedulerConfiguration file (default: one ``default-scheduler`` profile). All logic lives in
``cluster.scheduler.scheduler`` so it can be tested without Ray; a failed start is retried by ``ready``.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import ray

from cluster.client.rest import ApiClient
from cluster.scheduler.config import load_config
from cluster.scheduler.scheduler import Scheduler

log = logging.getLogger("raykube.scheduler")

ACTOR_NAME = "scheduler"


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=0, max_concurrency=1000)  # type: ignore[call-overload]
class SchedulerActor:
    def __init__(self, kubeconfig_path: str, config_path: str | None = None) -> None:
        logging.basicConfig(level=logging.INFO)
        self.kubeconfig_path = kubeconfig_path
        self.config_path = config_path
        self.scheduler: Any = None
        self._started = asyncio.get_event_loop().create_task(self._start())

    async def _start(self) -> None:
        text = Path(self.config_path).read_text() if self.config_path else None
        config = load_config(text)
        client = ApiClient.from_kubeconfig(self.kubeconfig_path)
        scheduler = Scheduler(client, config)
        await scheduler.start()
        self.scheduler = scheduler
        log.info("scheduler running with profiles %s", sorted(scheduler.frameworks))

    async def ready(self) -> list[str]:
        """The profiles' scheduler names, once the informers have synced."""
        if self._started.done() and self._started.exception() is not None:
            self._started = asyncio.get_event_loop().create_task(self._start())
        await asyncio.shield(self._started)
        return sorted(self.scheduler.frameworks)

    async def stats(self) -> dict[str, Any]:
        await asyncio.shield(self._started)
        return dict(self.scheduler.stats())

    async def shutdown(self) -> None:
        if self.scheduler is not None:
            await self.scheduler.stop()
            await self.scheduler.client.close()
