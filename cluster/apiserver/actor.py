"""The API server as a detached, named Ray actor (``apiserver``) serving HTTPS on the head node."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import ray

from cluster.apiserver.admission.service_allocation import SERVICE_CIDR, ServiceNetwork
from cluster.apiserver.server import run_server
from cluster.apiserver.tls import Pki, server_ssl_context
from cluster.store.client import StoreClient

log = logging.getLogger("raykube.apiserver")

ACTOR_NAME = "apiserver"


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=0, max_concurrency=10_000)
class ApiServerActor:
    def __init__(
        self, namespace: str, pki_dir: str, host: str, port: int, service_cidr: str = str(SERVICE_CIDR)
    ) -> None:
        logging.basicConfig(level=logging.INFO)
        self.namespace = namespace
        self.services = ServiceNetwork.parse(service_cidr)
        self.pki = Pki.in_dir(Path(pki_dir))
        self.host, self.port = host, port
        self.bound: int | None = None
        self.runner: Any = None
        self._started = asyncio.get_event_loop().create_task(self._start())

    async def _start(self) -> None:
        client = await StoreClient.connect(self.namespace)
        ctx = server_ssl_context(self.pki)

        def ready(port: int) -> None:
            self.bound = port

        self.runner = await run_server(
            client,
            self.host,
            self.port,
            ctx,
            ready=ready,
            pki_dir=self.pki.ca_cert.parent,
            services=self.services,
        )

    async def ready(self) -> int:
        await asyncio.shield(self._started)
        assert self.bound is not None
        return self.bound

    async def shutdown(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
