"""Following Ray's membership: nodes that join get their agents at once, nodes that leave lose their
Node, as a cloud node controller does for instances.

``MembershipTracker`` is the pure core: each ``observe(nodes, now)`` of a ``ray.nodes()`` snapshot
returns a ``MembershipPlan``: the Ray nodes to give their actors (new alive ones at once, every alive
one again each ``resync`` seconds so a killed agent comes back), the nodes that died since the last
look, and the nodes dead for longer than ``delete_delay`` whose Node is to be deleted. A node id is
never reused by Ray, so each id dies once and is deleted once.

``RayNodeFollower`` runs it against Ray and the API server (the controller manager's leader starts it
with ``asyncio.create_task(follower.run())``):

* every ``period`` (1 s) it reads ``ray.nodes()`` in a thread (about 1 ms);
* each new node is deployed in its own thread (``deploy_node_agents(only_missing=True,
  node_ids={id})``), so a slow node does not hold up another, at most ``MAX_DEPLOYING`` at a time;
* a node Ray marks dead is shut down as Kubernetes' cloud node lifecycle controller does for an
  instance the provider reports shut down: the taint ``node.cloudprovider.kubernetes.io/shutdown``
  (NoSchedule); and without waiting for the node monitor grace, its agent conditions become
  ``Unknown`` (the node lifecycle controller's own change, reason ``NodeStatusUnknown``) and its pods
  ``Ready=False``, with the taints the node lifecycle controller gives an Unknown node
  (``unreachable``, NoSchedule and NoExecute), so the taint eviction controller evicts the pods after
  their tolerations. Its named actors are killed so a
  later node of the same name gets fresh ones (and its CNI/CRI sockets unlinked when they are on this
  host, as on a test cluster);
* events as Kubernetes records them (source ``cloud-node-lifecycle-controller``): ``NodeNotReady``
  when a Node is shut down, ``DeletingNode`` before it is deleted;
* once a node has been dead for ``delete_delay`` (or Ray forgot it: a Node labelled with a Ray node id
  Ray no longer lists), its Node is deleted, as the cloud node lifecycle controller deletes a Node
  whose instance no longer exists; the pod garbage collector then removes its remaining pods;
* a Node with the shutdown taint that is Ready again (a new Ray node took its name) loses the taint
  at the next resync, as the cloud node lifecycle controller removes it from a Ready node.

A Node belongs to a Ray node through its ``ray.io/node-id`` label (copied from Ray's labels), never
through its name alone, so a later node that got the same name is left alone. Dead-for is counted
from when this follower first saw the node dead (Ray's node table has no time of death): a restarted
controller manager waits the delay again. Errors are logged and retried on the next period.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import ray

from cluster.client.errors import ApiError
from cluster.client.event_recorder import ClientEventWriter, EventRecorder
from cluster.client.events import ObjectRef, object_ref
from cluster.client.rest import ApiClient
from cluster.controllers.node_lifecycle import node_decision, pod_not_ready_patch
from cluster.node_agents import (
    NodeAgentsConfig,
    deploy_node_agents,
    ray_node_names,
    remove_node_actors,
    remove_node_sockets,
)
from cluster.node_facts import RAY_NODE_ID_LABEL

log = logging.getLogger("raykube.membership")

SHUTDOWN_TAINT_KEY = "node.cloudprovider.kubernetes.io/shutdown"
COMPONENT = "cloud-node-lifecycle-controller"  # the events' source, as Kubernetes names it
DEFAULT_PERIOD = 1.0
DEFAULT_RESYNC = 15.0
MAX_DEPLOYING = 4


@dataclass(frozen=True, slots=True)
class MembershipPlan:
    """What one look at Ray's membership calls for (Ray node ids)."""

    deploy: frozenset[str] = frozenset()
    died: frozenset[str] = frozenset()
    delete: frozenset[str] = frozenset()


@dataclass(slots=True)
class MembershipTracker:
    """The pure core: see the module docstring. ``now`` is monotonic seconds."""

    delete_delay: float
    resync: float = DEFAULT_RESYNC
    served: set[str] = field(default_factory=set)  # alive nodes given their actors since the last resync
    dead_since: dict[str, float] = field(default_factory=dict)
    deleted: set[str] = field(default_factory=set)
    last_resync: float | None = None

    def observe(
        self, nodes: Iterable[Mapping[str, Any]], now: float, *, known: Iterable[str] = ()
    ) -> MembershipPlan:
        """``nodes`` are ``ray.nodes()`` entries; ``known`` Ray node ids that have a Node (those Ray no
        longer lists at all count as dead from now)."""
        alive: set[str] = set()
        dead: set[str] = set()
        for node in nodes:
            (alive if node.get("Alive") else dead).add(str(node["NodeID"]))
        dead |= set(known) - alive - dead
        if self.last_resync is None or now - self.last_resync >= self.resync:
            self.last_resync = now
            self.served.clear()
        deploy = alive - self.served
        self.served |= deploy
        died = dead - self.dead_since.keys() - self.deleted
        for node_id in died:
            self.dead_since[node_id] = now
        delete = {i for i, t in self.dead_since.items() if now - t >= self.delete_delay}
        return MembershipPlan(frozenset(deploy), frozenset(died), frozenset(delete))

    def failed(self, *, deploy: Iterable[str] = (), died: Iterable[str] = ()) -> None:
        """Forget what could not be done so the next ``observe`` plans it again."""
        self.served -= set(deploy)
        for node_id in died:
            self.dead_since.pop(node_id, None)

    def done_deleting(self, node_id: str) -> None:
        self.dead_since.pop(node_id, None)
        self.deleted.add(node_id)


def shutdown_node_patches(
    node: dict[str, Any], now: datetime, reason: str
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The spec patch (the shutdown taint, plus the node lifecycle controller's taints for an
    Unknown node) and the status patch (agent conditions Unknown, the message saying Ray's reason) for
    the Node of a Ray node that died; None where nothing changes."""
    decision = node_decision(node, None, now, grace=-1.0)  # stale by construction: Unknown now
    taints = list(
        decision.taints if decision.taints is not None else (node.get("spec") or {}).get("taints") or []
    )
    if not any(t.get("key") == SHUTDOWN_TAINT_KEY for t in taints):
        taints.append({"key": SHUTDOWN_TAINT_KEY, "effect": "NoSchedule"})
    spec = None if taints == ((node.get("spec") or {}).get("taints") or []) else {"spec": {"taints": taints}}
    status = None
    if decision.conditions is not None:
        conditions = [
            {**c, "message": f"Ray marked the node dead ({reason})."}
            if c.get("status") == "Unknown" and c.get("reason") == "NodeStatusUnknown" and reason
            else c
            for c in decision.conditions
        ]
        status = {"status": {"conditions": conditions}}
    return spec, status


def clear_shutdown_patch(node: dict[str, Any]) -> dict[str, Any] | None:
    """The spec patch removing the shutdown taint from a Node that is Ready again (a later Ray node
    registered under the same name), as the cloud node lifecycle controller does; None otherwise."""
    taints = list((node.get("spec") or {}).get("taints") or [])
    kept = [t for t in taints if t.get("key") != SHUTDOWN_TAINT_KEY]
    conditions = (node.get("status") or {}).get("conditions") or []
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
    return {"spec": {"taints": kept}} if ready and kept != taints else None


def _node_ref(node: Mapping[str, Any]) -> ObjectRef:
    """A listed Node's reference (list items may come without their kind and apiVersion)."""
    return object_ref({"kind": "Node", "apiVersion": "v1", **node})


class RayNodeFollower:
    """The membership loop; see the module docstring. Built from plain values; ``nodes`` and ``clock``
    are seams for tests (default ``ray.nodes`` and ``time.monotonic``)."""

    def __init__(
        self,
        agents: NodeAgentsConfig,
        ray_namespace: str,
        client: ApiClient,
        *,
        period: float = DEFAULT_PERIOD,
        resync: float = DEFAULT_RESYNC,
        delete_delay: float | None = None,
        nodes: Callable[[], list[dict[str, Any]]] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.agents = agents
        self.ray_namespace = ray_namespace
        self.client = client
        self.period = period
        self.tracker = MembershipTracker(
            agents.node_delete_delay if delete_delay is None else delete_delay, resync
        )
        self.nodes = nodes or ray.nodes
        self.clock = clock
        self._deploying: dict[str, asyncio.Task[None]] = {}
        self._slots = asyncio.Semaphore(MAX_DEPLOYING)
        self._names: dict[str, str] = {}  # Ray node id -> Node name, as last seen
        self.events = EventRecorder(
            ClientEventWriter(client), "", lambda: datetime.now(UTC), component=COMPONENT
        )

    async def run(self) -> None:
        """Loop forever; cancel to stop (deployments in flight finish in their threads)."""
        recorder = asyncio.get_running_loop().create_task(self.events.run())
        try:
            while True:
                try:
                    await self.step()
                except Exception:
                    log.exception("following Ray's membership failed; retrying")
                await asyncio.sleep(self.period)
        finally:
            recorder.cancel()
            for task in self._deploying.values():
                task.cancel()

    async def step(self) -> MembershipPlan:
        nodes = await asyncio.to_thread(self.nodes)
        self._names.update(ray_node_names(nodes))
        known: set[str] = set()
        now = self.clock()
        if self.tracker.last_resync is None or now - self.tracker.last_resync >= self.tracker.resync:
            try:  # an API server that does not answer must not hold up the agents of new nodes
                objects = await self._ray_node_objects()
                known = {o["metadata"]["labels"][RAY_NODE_ID_LABEL] for o in objects}
                await self._clear_shutdown(objects)
            except Exception as err:
                log.warning("listing the Nodes of Ray nodes failed (%s); retrying at the next resync", err)
        plan = self.tracker.observe(nodes, now, known=known)
        for node_id in plan.deploy - self._deploying.keys():
            self._deploying[node_id] = asyncio.get_running_loop().create_task(self._deploy(node_id))
        by_id = {str(n["NodeID"]): n for n in nodes}
        alive_names = {self._names[i] for i, n in by_id.items() if n.get("Alive") and i in self._names}
        failed = [i for i in sorted(plan.died) if not await self._node_died(i, by_id.get(i, {}), alive_names)]
        if failed:
            self.tracker.failed(died=failed)
        for node_id in sorted(plan.delete):
            if await self._delete_node(node_id):
                self.tracker.done_deleting(node_id)
        return plan

    async def _deploy(self, node_id: str) -> None:
        try:
            async with self._slots:
                added = await asyncio.to_thread(
                    deploy_node_agents,
                    self.agents,
                    self.ray_namespace,
                    only_missing=True,
                    node_ids=frozenset({node_id}),
                )
            for agent in added:
                log.info("node %s joined: agent on port %s", agent.node, agent.port)
        except Exception:
            log.exception("deploying the actors of Ray node %s failed; retrying at the next resync", node_id)
            self.tracker.failed(deploy=[node_id])
        finally:
            self._deploying.pop(node_id, None)

    async def _ray_node_objects(self) -> list[dict[str, Any]]:
        """The Nodes of Ray nodes (those labelled with a Ray node id)."""
        nodes = await self.client.list("v1", "nodes", label_selector=RAY_NODE_ID_LABEL)
        return list(nodes.get("items") or [])

    async def _clear_shutdown(self, objects: list[dict[str, Any]]) -> None:
        for node in objects:
            patch = clear_shutdown_patch(node)
            if patch is not None:
                log.info("node %s is Ready again: removing the shutdown taint", node["metadata"]["name"])
                await self.client.patch("v1", "nodes", node["metadata"]["name"], patch)

    async def _nodes_of(self, node_id: str) -> list[dict[str, Any]]:
        found = await self.client.list("v1", "nodes", label_selector=f"{RAY_NODE_ID_LABEL}={node_id}")
        return list(found.get("items") or [])

    async def _node_died(self, node_id: str, entry: Mapping[str, Any], alive_names: set[str]) -> bool:
        """Shut the Node of a dead Ray node down and kill its actors (never those of a name an alive
        node has now); False to retry."""
        try:
            objects = await self._nodes_of(node_id)
            names = {o["metadata"]["name"] for o in objects} | {self._names.get(node_id, "")}
            for name in sorted(names - alive_names - {""}):
                killed = await asyncio.to_thread(remove_node_actors, name, self.ray_namespace)
                killed += remove_node_sockets(name, self.ray_namespace)
                if killed:
                    log.info("Ray node %s (%s) is gone: removed %s", node_id[:8], name, ", ".join(killed))
            for node in objects:
                await self._shut_down(node, str(entry.get("DeathReasonMessage") or "no longer listed"))
        except Exception:
            log.exception("handling the death of Ray node %s failed; retrying", node_id)
            return False
        return True

    async def _shut_down(self, node: dict[str, Any], reason: str) -> None:
        name = node["metadata"]["name"]
        now = datetime.now(UTC)
        spec, status = shutdown_node_patches(node, now, reason)
        log.warning("Ray marked the node of %s dead (%s): marking it Unknown", name, reason)
        if spec is not None:
            await self.client.patch("v1", "nodes", name, spec)
        if status is None:
            return
        await self.client.patch("v1", "nodes", name, status, subresource="status")
        self.events.event(
            _node_ref(node), "Normal", "NodeNotReady", f"Node {name} status is now: NodeNotReady"
        )
        pods = await self.client.list("v1", "pods", field_selector=f"spec.nodeName={name}")
        for pod in pods.get("items") or []:
            patch = pod_not_ready_patch(pod, now)
            if patch is None:
                continue
            meta = pod["metadata"]
            try:
                await self.client.patch(
                    "v1", "pods", meta["name"], patch, meta.get("namespace"), subresource="status"
                )
            except ApiError as err:
                if err.status != 404:
                    raise

    async def _delete_node(self, node_id: str) -> bool:
        """Delete the Node(s) of a Ray node dead for longer than the delay; False to retry."""
        try:
            for node in await self._nodes_of(node_id):
                meta = node["metadata"]
                log.info("Ray node %s is gone for good: deleting Node %s", node_id[:8], meta["name"])
                self.events.event(
                    _node_ref(node),
                    "Normal",
                    "DeletingNode",
                    f"Deleting node {meta['name']} because its Ray node is gone",
                )
                try:
                    await self.client.delete("v1", "nodes", meta["name"], preconditions={"uid": meta["uid"]})
                except ApiError as err:
                    if err.status not in (404, 409):
                        raise
        except Exception:
            log.exception("deleting the Node of Ray node %s failed; retrying", node_id)
            return False
        return True
