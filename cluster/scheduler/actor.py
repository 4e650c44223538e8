"""The scheduler as a detached, named Ray actor (``scheduler``, ``scheduler-<node>``): a thin wrapper
over ``Scheduler`` that runs it only while it holds the ``kube-system/kube-scheduler`` Lease.

Every control-plane node runs one instance; all connect to the API server with the kubeconfig
(``kubeconfig``, its text, as the file may be on another host; else the file at ``kubeconfig_path``)
and campaign (``cluster.client.leaderelection``, Kubernetes' 15 s / 10 s / 2 s),
as several kube-scheduler processes do. The leader builds a fresh ``Scheduler`` (informers synced,
then its loop) for its term; when the term ends (a renewal missed the deadline, someone else holds
the Lease) the scheduler is stopped before anything else happens, and the instance campaigns again.
A clean ``shutdown`` releases the Lease so a standby takes over at its next retry. The optional
KubeSchedulerConfiguration (``config_text``, else the file at ``config_path``; default: one
``default-scheduler`` profile) is read once. All
scheduling logic lives in ``cluster.scheduler.scheduler`` so it can be tested without Ray; a failed
start is retried by ``ready``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Any

import ray

from cluster.client.leaderelection import LeaderElectionConfig, LeaderElector, campaign_forever, new_identity
from cluster.client.rest import ApiClient
from cluster.scheduler.config import SchedulerConfiguration, load_config
from cluster.scheduler.scheduler import Scheduler

log = logging.getLogger("raykube.scheduler")

ACTOR_NAME = "scheduler"
LEASE_NAMESPACE = "kube-system"
LEASE_NAME = "kube-scheduler"


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=0, max_concurrency=1000)  # type: ignore[call-overload]
class SchedulerActor:
    def __init__(
        self,
        kubeconfig_path: str,
        config_path: str | None = None,
        node_name: str = "",
        kubeconfig: str | None = None,
        config_text: str | None = None,
    ) -> None:
        logging.basicConfig(level=logging.INFO)
        self.kubeconfig_path = kubeconfig_path
        self.config_path = config_path
        self.kubeconfig = kubeconfig
        self.config_text = config_text
        self.node_name = node_name or "scheduler"
        self.config: SchedulerConfiguration | None = None
        self.client: ApiClient | None = None
        self.elector: LeaderElector | None = None
        self.scheduler: Scheduler | None = None  # the leader's, for its term
        self._working = asyncio.Event()  # set once this term's scheduler has synced
        self._campaign: asyncio.Task[None] | None = None
        self._started = asyncio.get_event_loop().create_task(self._start())

    async def _start(self) -> None:
        text = self.config_text
        if text is None and self.config_path:
            text = Path(self.config_path).read_text()
        self.config = load_config(text)
        if self.client is None:
            self.client = self._connect()
        await self.client.get_path("/version")  # connected: a standby is ready from here on
        if self._campaign is None:
            identity = new_identity(self.node_name)
            self.elector = LeaderElector(
                self.client, LeaderElectionConfig(LEASE_NAMESPACE, LEASE_NAME, identity), lead=self._lead
            )
            self._campaign = asyncio.get_event_loop().create_task(campaign_forever(self.elector))
            log.info("scheduler %s campaigning for %s/%s", identity, LEASE_NAMESPACE, LEASE_NAME)

    def _connect(self) -> ApiClient:
        """A new client to the API servers (the caller closes it)."""
        return ApiClient.from_kubeconfig_text(self.kubeconfig, self.kubeconfig_path)

    async def _lead(self) -> None:
        """One term's work: a fresh scheduler, stopped when the elector cancels this task."""
        assert self.client is not None and self.config is not None
        scheduler = Scheduler(self.client, self.config)
        try:
            await scheduler.start()
            self.scheduler = scheduler
            self._working.set()
            log.info("scheduler leading with profiles %s", sorted(scheduler.frameworks))
            await asyncio.Event().wait()
        finally:
            self._working.clear()
            self.scheduler = None
            await scheduler.stop()
            log.info("scheduler stopped: no longer leading")

    async def ready(self) -> list[str]:
        """The profiles' scheduler names, once connected and campaigning; when this instance won
        its first attempt, once its scheduler has synced too (so ``raykube up`` returns with a
        working scheduler)."""
        if self._started.done() and self._started.exception() is not None:
            self._started = asyncio.get_event_loop().create_task(self._start())
        await asyncio.shield(self._started)
        assert self.elector is not None and self.config is not None
        while self.elector.observed is None and not self._campaign_done():
            await asyncio.sleep(0.05)  # the first attempt: who holds the Lease
        while self.elector.is_leader() and not self._working.is_set() and not self._campaign_done():
            await asyncio.sleep(0.05)
        return sorted(p.scheduler_name for p in self.config.profiles)

    def _campaign_done(self) -> bool:
        return self._campaign is None or self._campaign.done()

    async def leading(self) -> bool:
        """Whether this instance holds the Lease and its scheduler runs."""
        return self.scheduler is not None and self.elector is not None and self.elector.is_leader()

    async def leader(self) -> str:
        """The holderIdentity this instance last observed ('' when none)."""
        return self.elector.leader if self.elector is not None else ""

    async def stats(self) -> dict[str, Any]:
        await asyncio.shield(self._started)
        if self.scheduler is None:
            return {"leading": False}
        return {"leading": True, **self.scheduler.stats()}

    async def shutdown(self) -> None:
        """Stop scheduling and release the Lease (a standby takes over at its next retry)."""
        if self._campaign is not None:
            self._campaign.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._campaign
        if self.client is not None:
            await self.client.close()
