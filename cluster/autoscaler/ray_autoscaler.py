"""The autoscaler loop the elected controller manager runs: Kubernetes demand in, Ray's autoscaler out.

Each pass (every ``period`` seconds) reads Nodes and Pods from the API server and Ray's membership,
then applies ``cluster.autoscaler.planning``'s decisions: the scale-up request
(``ray.autoscaler.sdk.request_resources``, sent only when it changed, with a ``TriggeredScaleUp``
event on each pod it is first made for), the nodes to release (taint and cordon, ``ScaleDown``
event), and, for every node being released, the next step: evict its pods through the Eviction API
(a PodDisruptionBudget that refuses, 429, is retried next pass), and once only pods that stay are
left, stop and kill the node's agent, runtime, proxy and network plugin actors
(``cluster.node_agents.remove_node_actors``), after which Ray finds the node idle and its autoscaler
removes it after ``idle_timeout_minutes``. The Node object goes when Ray has forgotten the node (the
controller manager's membership follower). A node Ray keeps alive ``give_back`` seconds after its
actors stopped (its node type's ``min_workers``) is restored and not released again
(``ScaleDownFailed``).

Everything it decides from is re-read each pass (the taint marks a node being released), so a new
leader carries on where the last one stopped. A node being released is also marked in Ray's GCS
(``cluster.autoscaler.marks``) before its actors stop, so the membership follower does not give it
new ones; the mark goes once Ray no longer lists the node alive (or its Node is not tainted: a
leader stopped between mark and taint, or ``raykube down`` and ``up`` again in the same Ray).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import ray
from ray.autoscaler.sdk import request_resources as ray_request
from ray.autoscaler.v2.utils import is_autoscaler_v2
from ray.experimental.internal_kv import _internal_kv_get

from cluster.autoscaler import marks, planning
from cluster.autoscaler.marks import mark_releasing, marked_releasing, unmark_releasing
from cluster.client import events as ev
from cluster.client.errors import ApiError
from cluster.client.event_recorder import ClientEventWriter, EventRecorder, EventSink
from cluster.client.rest import ApiClient
from cluster.control_plane import control_plane_nodes
from cluster.naming import node_names
from cluster.node_agents import remove_node_actors

log = logging.getLogger("raykube.autoscaler")

DEFAULT_UNNEEDED = 600.0  # cluster-autoscaler's --scale-down-unneeded-time (10 min)
DEFAULT_GIVE_BACK = 600.0  # twice Ray's default idle_timeout_minutes (5)
AUTOSCALE_ENV = "RAYKUBE_AUTOSCALE"  # 1: on, 0: off, unset: on when Ray has an autoscaler
UNNEEDED_ENV = "RAYKUBE_SCALE_DOWN_UNNEEDED"
HEAD_RESOURCE = "node:__internal_head__"


@dataclass(frozen=True, slots=True)
class AutoscalingSettings:
    """What ``raykube up`` was told (``--autoscale``/``--no-autoscale``, ``--scale-down-unneeded-time``,
    else its own environment); ``None`` leaves the choice to the controller manager's environment."""

    enabled: bool | None = None
    unneeded: float | None = None


def _env_flag(name: str) -> bool | None:
    value = os.environ.get(name, "")
    return None if value == "" else value.lower() in ("1", "true", "on", "yes")


def autoscaling_settings(enabled: bool | None = None, unneeded: float | None = None) -> AutoscalingSettings:
    """The given values, else this process's ``$RAYKUBE_AUTOSCALE`` / ``$RAYKUBE_SCALE_DOWN_UNNEEDED``."""
    if enabled is None:
        enabled = _env_flag(AUTOSCALE_ENV)
    if unneeded is None and os.environ.get(UNNEEDED_ENV):
        unneeded = float(os.environ[UNNEEDED_ENV])
    return AutoscalingSettings(enabled, unneeded)


@dataclass(frozen=True, slots=True)
class AutoscalingOptions:
    """``enabled``: ``None`` runs the loop only while Ray has an autoscaler (``ray_has_autoscaler``);
    ``unneeded``: seconds a node stays unneeded before it is released; ``period``: seconds between passes;
    ``give_back``: seconds Ray may keep a released node alive (its node type's ``min_workers``, which
    raykube cannot see) before the node is restored: untainted, uncordoned, agents back."""

    enabled: bool | None = None
    unneeded: float = DEFAULT_UNNEEDED
    period: float = 5.0
    give_back: float = DEFAULT_GIVE_BACK

    @classmethod
    def from_env(cls, enabled: bool | None = None, unneeded: float | None = None) -> AutoscalingOptions:
        """What ``raykube up`` was given, else this process's ``$RAYKUBE_AUTOSCALE`` /
        ``$RAYKUBE_SCALE_DOWN_UNNEEDED``, else the defaults (detect; 600 s)."""
        given = autoscaling_settings(enabled, unneeded)
        return cls(
            enabled=given.enabled, unneeded=DEFAULT_UNNEEDED if given.unneeded is None else given.unneeded
        )


def ray_has_autoscaler() -> bool:
    """Whether Ray's cluster runs an autoscaler that can add nodes. Every Ray head runs the monitor;
    without ``--autoscaling-config`` (``ray start`` by hand, ``ray.cluster_utils``) its autoscaler is
    read-only and names each node type ``node_<node id>``. A configured one (``ray up``, KubeRay, the
    fake multi-node provider) reports the node types of its config in ``__autoscaling_status``; the
    v2 autoscaler sets its own flag in the GCS. Blocking (GCS calls)."""
    with contextlib.suppress(Exception):
        if is_autoscaler_v2(fetch_from_server=True):
            return True
    raw = _internal_kv_get("__autoscaling_status")
    if not raw:
        return False
    report = json.loads(raw).get("autoscaler_report") or {}
    mapping: Mapping[str, str] = report.get("node_type_mapping") or {}
    return any(node_type != f"node_{node}" for node, node_type in mapping.items())


def request_resources(bundles: list[planning.Bundle]) -> None:
    """Replace Ray's autoscaler's standing request with ``bundles`` (none: clear it). Blocking."""
    ray_request(
        bundles=[dict(b.resources) for b in bundles],
        bundle_label_selectors=[dict(b.label_selector) for b in bundles],
    )


def _ray_view() -> tuple[dict[str, str], set[str]]:
    """Node name -> Ray node id of the alive nodes, and the name of Ray's head. Names come from
    every node Ray remembers, dead ones included, as the node-agent deployment names them."""
    everything = ray.nodes()  # type: ignore[no-untyped-call]
    alive = [n for n in everything if n.get("Alive")]
    names = node_names(everything)
    ids = {names[n["NodeID"]]: n["NodeID"] for n in alive}
    head = {names[n["NodeID"]] for n in alive if HEAD_RESOURCE in (n.get("Resources") or {})}
    return ids, head


def _control_plane_ids(namespace: str) -> list[str]:
    return control_plane_nodes(namespace)


class RaySide(Protocol):
    """What the loop asks of Ray (blocking calls; the loop runs them in threads). ``RayGlue`` is the
    real one; unit tests give a fake."""

    def has_autoscaler(self) -> bool: ...

    def view(self) -> tuple[dict[str, str], set[str]]:
        """Node name -> Ray node id of the alive nodes, and the names of Ray's head."""
        ...

    def control_plane(self) -> list[str]: ...

    def request(self, bundles: list[planning.Bundle]) -> None: ...

    def stop(self, node: str) -> list[str]: ...

    def mark(self, node: str) -> None: ...

    def marked(self) -> set[str]: ...

    def unmark(self, node: str) -> None: ...


class RayGlue:
    """``RaySide`` against the Ray this process is connected to, for the cluster of ``ray_namespace``."""

    def __init__(self, ray_namespace: str) -> None:
        self.ray_namespace = ray_namespace

    def has_autoscaler(self) -> bool:
        return ray_has_autoscaler()

    def view(self) -> tuple[dict[str, str], set[str]]:
        return _ray_view()

    def control_plane(self) -> list[str]:
        return _control_plane_ids(self.ray_namespace)

    def request(self, bundles: list[planning.Bundle]) -> None:
        request_resources(bundles)
        marks.record_request(
            self.ray_namespace,
            [{"resources": dict(b.resources), "labels": dict(b.label_selector)} for b in bundles],
        )

    def stop(self, node: str) -> list[str]:
        return remove_node_actors(node, self.ray_namespace, stop_first=True)

    def mark(self, node: str) -> None:
        mark_releasing(self.ray_namespace, node)

    def marked(self) -> set[str]:
        return marked_releasing(self.ray_namespace)

    def unmark(self, node: str) -> None:
        unmark_releasing(self.ray_namespace, node)


def _ref(obj: Mapping[str, Any], kind: str) -> ev.ObjectRef:
    meta = obj.get("metadata") or {}
    return ev.ObjectRef(
        kind, str(meta.get("name", "")), str(meta.get("namespace") or ""), str(meta.get("uid", ""))
    )


class RayAutoscaler:
    """The loop (see the module docstring); ``run`` until cancelled. ``clock`` is monotonic seconds;
    ``ray`` (default ``RayGlue``) and ``events`` (default: an ``EventRecorder`` that ``run`` drives)
    are seams for tests."""

    def __init__(
        self,
        client: ApiClient,
        ray_namespace: str,
        options: AutoscalingOptions,
        *,
        clock: Callable[[], float] = time.monotonic,
        ray_side: RaySide | None = None,
        events: EventSink | None = None,
    ) -> None:
        self.client = client
        self.ray_namespace = ray_namespace
        self.options = options
        self.clock = clock
        self.ray = ray_side or RayGlue(ray_namespace)
        self.releasing: set[str] = set()
        self.requested: list[planning.Bundle] | None = None  # what Ray was last asked for
        self._unneeded_since: dict[str, float] = {}
        self._triggered: set[str] = set()  # pod uids that got TriggeredScaleUp
        self._stopped: dict[str, float] = {}  # nodes whose actors this loop killed, and when
        self._kept: set[str] = set()  # nodes Ray kept after their release: never released again
        self._control_plane: tuple[float, set[str]] = (float("-inf"), set())
        self._enabled: tuple[float, bool] = (float("-inf"), False)
        self.events: EventSink = events or EventRecorder(
            ClientEventWriter(client), "", lambda: datetime.now(UTC), component="cluster-autoscaler"
        )

    async def run(self) -> None:
        sender = None
        if isinstance(self.events, EventRecorder):
            sender = asyncio.get_running_loop().create_task(self.events.run())
        try:
            while True:
                try:
                    if await self._is_enabled():
                        await self.step()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("autoscaler pass failed; retrying in %.0fs", self.options.period)
                await asyncio.sleep(self.options.period)
        finally:
            if sender is not None:
                sender.cancel()

    async def _is_enabled(self) -> bool:
        if self.options.enabled is not None:
            return self.options.enabled
        checked, enabled = self._enabled
        if self.clock() - checked >= 60.0:  # Ray's autoscaler does not come and go often
            was, enabled = enabled, await asyncio.to_thread(self.ray.has_autoscaler)
            self._enabled = (self.clock(), enabled)
            if enabled != was:
                log.info(
                    "Ray autoscaler %s", "found: autoscaling on" if enabled else "not found: autoscaling off"
                )
        return enabled

    async def _protected(self, head: set[str], ids: Mapping[str, str]) -> set[str]:
        checked, names = self._control_plane
        if self.clock() - checked >= 30.0:
            by_id = {v: k for k, v in ids.items()}
            cp = await asyncio.to_thread(self.ray.control_plane)
            names = {by_id[i] for i in cp if i in by_id}
            self._control_plane = (self.clock(), names)
        return names | head

    async def step(self) -> None:
        """One pass: read, decide, act (see the module docstring)."""
        nodes: list[dict[str, Any]] = (await self.client.list_all("v1", "nodes")).get("items") or []
        pods: list[dict[str, Any]] = (await self.client.list_all("v1", "pods")).get("items") or []
        ids, head = await asyncio.to_thread(self.ray.view)
        self.releasing = {n["metadata"]["name"] for n in nodes if planning.is_releasing(n)}
        for stale in await asyncio.to_thread(self.ray.marked) - (ids.keys() & self.releasing):
            # Ray let it go, or it is not being released (a leader stopped between mark and taint)
            await asyncio.to_thread(self.ray.unmark, stale)
            self._stopped.pop(stale, None)
        await self._scale_up(pods, ids)
        protected = await self._protected(head, ids) | self._kept
        plan = planning.plan_scale_down(
            nodes,
            pods,
            protected=protected,
            unneeded_since=self._unneeded_since,
            now=self.clock(),
            unneeded=self.options.unneeded,
        )
        self._unneeded_since = plan.unneeded_since
        by_name = {n["metadata"]["name"]: n for n in nodes}
        for name in plan.release:
            await self._mark(by_name[name])
        for name in sorted(self.releasing & ids.keys()):  # the rest Ray has let go already
            if self.clock() - self._stopped.get(name, float("inf")) >= self.options.give_back:
                await self._restore(by_name[name])
            else:
                await self._release(name, pods)

    async def _scale_up(self, pods: list[dict[str, Any]], ids: Mapping[str, str]) -> None:
        bundles = planning.scale_up_request(pods, ids)
        if bundles != self.requested:
            await asyncio.to_thread(self.ray.request, bundles)
            log.info(
                "asked Ray's autoscaler for %d bundle(s)%s", len(bundles), "" if bundles else " (cleared)"
            )
            self.requested = bundles
        waiting = planning.triggering_pods(pods)
        for pod in waiting:
            uid = str(pod["metadata"].get("uid", ""))
            if uid in self._triggered:
                continue
            self._triggered.add(uid)
            self.events.event(
                _ref(pod, "Pod"),
                "Normal",
                "TriggeredScaleUp",
                f"pod triggered scale-up: asked Ray's autoscaler for {dict(planning.ray_resources(pod))}"
                + (
                    f" on nodes with {dict(planning.label_selector(pod))}"
                    if planning.label_selector(pod)
                    else ""
                ),
            )
        self._triggered &= {str(p["metadata"].get("uid", "")) for p in waiting}

    async def _mark(self, node: dict[str, Any]) -> None:
        name = node["metadata"]["name"]
        await asyncio.to_thread(self.ray.mark, name)
        patch = planning.release_patch(node, int(time.time()))
        await self.client.patch("v1", "nodes", name, patch)
        self.releasing.add(name)
        log.info("node %s unneeded for %.0fs: cordoned and tainted for release", name, self.options.unneeded)
        self.events.event(
            _ref(node, "Node"), "Normal", "ScaleDown", "marked the node as toBeDeleted/unschedulable"
        )

    async def _release(self, node: str, pods: list[dict[str, Any]]) -> None:
        """Drain ``node``, then stop its actors once nothing but pods that stay is left on it."""
        if node in self._stopped:
            return
        for pod in planning.pods_to_evict(node, pods):
            meta = pod["metadata"]
            body = {
                "apiVersion": "policy/v1",
                "kind": "Eviction",
                "metadata": {"name": meta["name"], "namespace": meta.get("namespace")},
            }
            try:
                await self.client.create("v1", "pods", body, meta.get("namespace"), subresource="eviction")
            except ApiError as err:
                if err.status == 429:  # a PodDisruptionBudget says not now
                    log.info(
                        "node %s: evicting %s refused (%s); retrying",
                        node,
                        planning.pod_ref(pod),
                        err.message,
                    )
                elif err.status != 404:
                    raise
                continue
            self.events.event(_ref(pod, "Pod"), "Normal", "ScaleDown", "deleting pod for node scale down")
        if any(p["spec"].get("nodeName") == node and not planning.stays_on_node(p) for p in pods):
            return  # still draining (evictions pending or pods terminating)
        await asyncio.to_thread(self.ray.mark, node)  # a former leader may have tainted it unmarked
        killed = await asyncio.to_thread(self.ray.stop, node)
        self._stopped[node] = self.clock()
        log.info("node %s drained; stopped %s so Ray can release it", node, ", ".join(killed) or "nothing")
        self.events.event(
            ev.ObjectRef("Node", node),
            "Normal",
            "ScaleDown",
            "node drained; its agent stopped for Ray to remove it",
        )

    async def _restore(self, node: dict[str, Any]) -> None:
        """Ray kept ``node`` (its type's ``min_workers``): take it back into service."""
        name = node["metadata"]["name"]
        await self.client.patch("v1", "nodes", name, planning.restore_patch(node))
        await asyncio.to_thread(self.ray.unmark, name)  # the membership follower gives it agents again
        self._stopped.pop(name, None)
        self._kept.add(name)
        self.releasing.discard(name)
        log.warning(
            "node %s: Ray kept it %.0fs after its agents stopped (min_workers of its node type?): restored",
            name,
            self.options.give_back,
        )
        self.events.event(
            _ref(node, "Node"),
            "Warning",
            "ScaleDownFailed",
            "Ray's autoscaler kept the node (its node type's min_workers?); uncordoned, agents restored",
        )
