"""The controller manager as a detached, named Ray actor (``controller-manager``,
``controller-manager-<node>``): a thin wrapper that runs
:class:`~cluster.controllers.manager.ControllerManager` (the controllers ``--controllers`` enables,
on shared informers) against the API server while it holds the ``kube-system/kube-controller-manager``
Lease.

Every control-plane node runs one instance; all connect with the kubeconfig (``kubeconfig``, its
text, as the file may be on another host; else the file at ``kubeconfig_path``) and campaign
(``cluster.client.leaderelection``, Kubernetes' 15 s / 10 s / 2 s). Only the leader
runs the controllers and the Ray-aware cluster loops (following Ray's membership with node agents,
and the objects ``_cluster_loops`` builds); a term that ends (a missed renewal, another holder) stops
all of them before the instance campaigns again, and ``shutdown`` releases the Lease. All controller
logic lives in the controller modules so it can be tested without Ray. What needs Ray stays here:
``RayComponents`` (where the control-plane actors run, for the kube-system pods) and the loops. A
failed start is retried by ``ready``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import ray

from cluster.autoscaler.ray_autoscaler import AutoscalingOptions, AutoscalingSettings, RayAutoscaler
from cluster.client.kubeconfig import load_kubeconfig, load_kubeconfig_text
from cluster.client.leaderelection import LeaderElectionConfig, LeaderElector, campaign_forever, new_identity
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
from cluster.membership import RayNodeFollower
from cluster.node_agents import NodeAgentsConfig, ray_node_names
from cluster.store.client import StoreClient
from cluster.store.keeper import DEFAULT_GRACE
from cluster.store.members import StoreKeeper
from nodeagent.csi.actor import csi_caller

log = logging.getLogger("raykube.controllers")

ACTOR_NAME = "controller-manager"
LEASE_NAMESPACE = "kube-system"
LEASE_NAME = "kube-controller-manager"
# The loops' ServiceAccounts (cluster.identities issues them): following Ray's membership does to
# Nodes what kube's node lifecycle controller does; the autoscaler's is the cluster-autoscaler's.
FOLLOWER_ACCOUNT = "node-controller"
AUTOSCALER_ACCOUNT = "cluster-autoscaler"


class RayComponents:
    """The control-plane actors of ``ray_namespace`` as Ray reports them (``ControlPlanePods``' source):
    every instance of each (``<base>`` on ``home``, the node that ran ``raykube up``, and
    ``<base>-<node>`` on the others). ``self_name`` is the asking actor's own name."""

    def __init__(self, ray_namespace: str, home: str = "", self_name: str = ACTOR_NAME) -> None:
        self.ray_namespace = ray_namespace
        self.home = home
        self.self_name = self_name
        self.started = datetime.now(UTC)
        self._store: StoreClient | None = None  # one for every pass (it refreshes its replica handles)

    def _instances(self) -> list[str]:
        bases = [actor for _, actor in CONTROL_PLANE_ACTORS]
        named = [
            e["name"]
            for e in ray.util.list_named_actors(all_namespaces=True)
            if e["namespace"] == self.ray_namespace
        ]
        return bases + [n for n in named if any(n.startswith(f"{b}-") for b in bases)]

    async def _answers(self, actor_name: str) -> bool:
        if actor_name == self.self_name:
            return True  # this actor: it is answering
        try:
            handle = ray.get_actor(actor_name, namespace=self.ray_namespace)
            await asyncio.wait_for(handle.ready.remote(), 5.0)
        except Exception:
            return False
        return True

    async def components(self) -> list[Component]:
        everything = ray.nodes()  # type: ignore[no-untyped-call]
        alive = [n for n in everything if n.get("Alive")]
        names = ray_node_names(everything)  # the Node names the agents registered under
        ips = {names[n["NodeID"]]: str(n.get("NodeManagerAddress") or "") for n in alive}
        here = self.home or names.get(ray.get_runtime_context().get_node_id(), "")
        answering = {actor: await self._answers(actor) for actor in self._instances()}
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
        node_name: str = "",
        home: str = "",
        kubeconfig: str | None = None,
        autoscaling: AutoscalingSettings | None = None,
        identities: dict[str, str] | None = None,
        signing_ca: tuple[str, str] | None = None,
    ) -> None:
        """``node_name``: this instance's node (its Lease identity); ``home``: the node that ran
        ``raykube up``, where the base-named control-plane actors run; ``kubeconfig``: the
        kubeconfig's text (else the file at ``kubeconfig_path`` is read): the informers' and the
        Lease's identity; ``identities``: a kubeconfig text per ServiceAccount of ``kube-system``
        the controllers and loops write as (``registry.SERVICE_ACCOUNTS``, ``AUTOSCALER_ACCOUNT``,
        ``FOLLOWER_ACCOUNT``); None: everything uses ``kubeconfig``. ``signing_ca``: the cluster
        CA's (certificate PEM, key PEM) the csrsigning controller issues from (None: it signs nothing)."""
        logging.basicConfig(level=logging.INFO)
        self.spec = controllers
        self.cluster_cidr = cluster_cidr
        self.lb_pool = lb_pool
        self.autoscaling = autoscaling or AutoscalingSettings()
        self.manager: ControllerManager | None = None
        self.ray_namespace = ray_namespace
        self.agents = agents  # how to deploy node agents, to follow Ray's membership (None: don't)
        self.kubeconfig_path = kubeconfig_path
        self.node_monitor_grace = node_monitor_grace
        self.node_name = node_name or "controller-manager"
        self.home = home
        self.kubeconfig = kubeconfig
        self.identities = identities
        self.signing_ca = signing_ca
        self.client: ApiClient | None = None
        self._clients: dict[str, ApiClient] = {}  # per account, kept across terms
        self.elector: LeaderElector | None = None
        self._campaign: asyncio.Task[None] | None = None
        self._working = asyncio.Event()  # set once this term's controllers run
        self._started = asyncio.get_event_loop().create_task(self._start())

    async def _start(self) -> None:
        if self.client is None:
            self.client = self._connect()
        await self.client.get_path("/version")  # connected: a standby is ready from here on
        if self._campaign is None:
            identity = new_identity(self.node_name)
            self.elector = LeaderElector(
                self.client, LeaderElectionConfig(LEASE_NAMESPACE, LEASE_NAME, identity), lead=self._lead
            )
            self._campaign = asyncio.get_event_loop().create_task(campaign_forever(self.elector))
            log.info("controller manager %s campaigning for %s/%s", identity, LEASE_NAMESPACE, LEASE_NAME)

    def _connect(self) -> ApiClient:
        """A new client to the API servers (the caller closes it)."""
        return ApiClient.from_kubeconfig_text(self.kubeconfig, self.kubeconfig_path)

    def _client_of(self, account: str) -> ApiClient:
        """The client of ServiceAccount ``account`` (made once, closed by ``shutdown``); the
        manager's own when no kubeconfig was handed over for it."""
        assert self.client is not None
        if self.identities is None or account not in self.identities:
            if self.identities is not None:
                log.warning("no identity for ServiceAccount %s: using the controller manager's", account)
            return self.client
        client = self._clients.get(account)
        if client is None:
            client = ApiClient.from_kubeconfig_text(self.identities[account], self.kubeconfig_path)
            self._clients[account] = client
        return client

    def _root_ca_pem(self) -> str:
        """The cluster CA of the kubeconfig (its certificate-authority), for kube-root-ca.crt."""
        try:
            if self.kubeconfig is not None:
                settings = load_kubeconfig_text(self.kubeconfig, str(Path(self.kubeconfig_path).parent))
            else:
                settings = load_kubeconfig(self.kubeconfig_path)
            if settings.ca_data:
                return settings.ca_data.decode()
            return Path(settings.ca_file).read_text() if settings.ca_file else ""
        except (OSError, ValueError) as err:
            log.warning("no cluster CA for kube-root-ca.crt: %s", err)
            return ""

    def _cluster_loops(self) -> list[Any]:
        """The Ray-aware loops only the leader runs, built fresh for each term: objects with
        ``async def run(self) -> None`` that loop forever and survive their own errors."""
        # Replaces store replicas lost for good (grace: $RAYKUBE_STORE_KEEPER_GRACE seconds, default 30).
        grace = float(os.environ.get("RAYKUBE_STORE_KEEPER_GRACE", DEFAULT_GRACE))
        loops: list[Any] = [StoreKeeper(self.ray_namespace, Path(self.kubeconfig_path).parent, grace=grace)]
        if self.agents is not None and self.client is not None:
            # Pending pods ask Ray's autoscaler for nodes, idle nodes go back (docs/autoscaling.md).
            options = AutoscalingOptions.from_env(self.autoscaling.enabled, self.autoscaling.unneeded)
            loops.append(RayAutoscaler(self._client_of(AUTOSCALER_ACCOUNT), self.ray_namespace, options))
        return loops

    async def _lead(self) -> None:
        """One term's work: the controllers and the cluster loops, all stopped when the elector
        cancels this task (the lease is lost or the actor shuts down)."""
        tasks: list[asyncio.Task[None]] = []
        try:
            await self._start_controllers()
            if self.agents is not None:
                tasks.append(asyncio.create_task(self._follow_ray_nodes(self.agents)))
            tasks += [asyncio.create_task(loop.run()) for loop in self._cluster_loops()]
            self._working.set()
            await asyncio.Event().wait()
        finally:
            self._working.clear()
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            manager, self.manager = self.manager, None
            if manager is not None:
                await manager.stop()
            log.info("controllers stopped: no longer leading")

    async def _start_controllers(self) -> None:
        assert self.client is not None
        client = self.client
        self_name = ray.get_runtime_context().get_actor_name() or ACTOR_NAME
        source = RayComponents(self.ray_namespace, self.home, self_name)
        options = ControllerOptions(
            node_monitor_grace=self.node_monitor_grace,
            csi=csi_caller(self.ray_namespace),  # each node's volume plugin, by its csi-<node> actor
            root_ca_pem=self._root_ca_pem(),
            extra={
                "control_plane_source": source,
                "cluster_cidr": self.cluster_cidr,
                "lb_pool": self.lb_pool,
                "signing_ca": self.signing_ca,
            },
        )
        names = enabled(self.spec)
        manager = ControllerManager(client, names, options=options, clients=self._client_of)
        self.manager = manager  # stopped by _lead's finally even when start is cancelled midway
        await manager.start()
        log.info("controllers running: %s (grace %.0fs)", ", ".join(self.running()), self.node_monitor_grace)

    def running(self) -> list[str]:
        return list(self.manager.controllers) if self.manager else []

    async def ready(self) -> list[str]:
        """The controllers this instance runs (leading) or would run (standby), once connected and
        campaigning; when it won its first attempt, once its controllers run (so ``raykube up``
        returns with a working control plane)."""
        if self._started.done() and self._started.exception() is not None:
            self._started = asyncio.get_event_loop().create_task(self._start())
        await asyncio.shield(self._started)
        assert self.elector is not None
        while self.elector.observed is None and not self._campaign_done():
            await asyncio.sleep(0.05)  # the first attempt: who holds the Lease
        while self.elector.is_leader() and not self._working.is_set() and not self._campaign_done():
            await asyncio.sleep(0.05)
        return self.running() if self._working.is_set() else list(enabled(self.spec))

    def _campaign_done(self) -> bool:
        return self._campaign is None or self._campaign.done()

    async def leading(self) -> bool:
        """Whether this instance holds the Lease and its controllers run."""
        return self._working.is_set() and self.elector is not None and self.elector.is_leader()

    async def leader(self) -> str:
        """The holderIdentity this instance last observed ('' when none)."""
        return self.elector.leader if self.elector is not None else ""

    async def _follow_ray_nodes(self, agents: NodeAgentsConfig) -> None:
        """Follow Ray's membership (``cluster.membership``): a node that joins (``ray up``, the
        autoscaler) gets its network plugin, proxy, runtime and agent within about a second; the Node
        of one that dies turns Unknown at once and is deleted after ``agents.node_delete_delay``."""
        await RayNodeFollower(agents, self.ray_namespace, self._client_of(FOLLOWER_ACCOUNT)).run()

    async def shutdown(self) -> None:
        """Stop the controllers and loops and release the Lease (a standby takes over at its next
        retry)."""
        if self._campaign is not None:
            self._campaign.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._campaign
        for client in self._clients.values():
            await client.close()
        if self.client is not None:
            await self.client.close()
