"""``NodeAgent``: our kubelet's main loops over one CRI runtime and the API server (no Ray here).

Loops, each a task that logs and continues: the pod feed (an informer on ``spec.nodeName=<node>``:
handlers only hand the new pod to its worker), the node loop (``NodeReporter.tick`` every second:
status heartbeat, Lease), the relist (every ``relist_interval``: ListPodSandbox/ListContainers, and
wake the workers of pods whose runtime state changed, like the kubelet's PLEG), and the static-pod
loop (re-read the manifest folder, start/stop static pods, keep their mirror pods).

Invariants: one ``PodWorker`` per pod uid at a time (a worker that finished is replaced only after its
task ended); mirror pods are never run (their static pod is); API pods and static pods share the worker
table, keyed by uid. ``start()`` adopts whatever the runtime already runs for pods that still exist
and removes sandboxes of pods that do not. ``stop()`` leaves pods running unless ``remove_pods``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from cluster.client.errors import ApiError
from cluster.client.event_recorder import EventRecorder
from nodeagent.agent import cri_config as cc
from nodeagent.agent.api import AgentApi, PodFeed
from nodeagent.agent.lookup import ContainerRef, LookupFailed
from nodeagent.agent.node_loop import NodeReporter, PressureProbe, host_pressure
from nodeagent.agent.pod_worker import PodWorker, WorkerContext
from nodeagent.cri import api_pb2
from nodeagent.cri.client import CRIClient, CRIError
from nodeagent.csi.client import CSIClient
from nodeagent.kubelet import events as ev
from nodeagent.kubelet import static_pods as sp
from nodeagent.kubelet.container_env import EnvSources, master_service_env
from nodeagent.kubelet.dns import ClusterDns, ResolvConf, parse_resolv_conf, pod_dns
from nodeagent.kubelet.node_status import MachineInfo, allocatable
from nodeagent.kubelet.restart import CrashLoopBackOff
from nodeagent.volumes.csi_volumes import CSIVolumes
from nodeagent.volumes.manager import VolumeManager

RAY_ACTOR_ANNOTATION = "raykube.io/ray-actor"  # see cluster/controllers/control_plane_pods.py
log = logging.getLogger(__name__)


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class AgentConfig:
    """Intervals (the kubelet's defaults unless noted) and the back-off, all injectable for tests."""

    status_interval: timedelta = timedelta(seconds=10)
    lease_interval: timedelta = timedelta(seconds=10)
    resync: timedelta = timedelta(seconds=5)
    relist_interval: float = 1.0
    manifest_interval: float = 2.0
    node_tick: float = 1.0
    backoff_initial: timedelta = timedelta(seconds=10)
    backoff_max: timedelta = timedelta(minutes=5)
    cluster_dns: ClusterDns = field(default_factory=ClusterDns)  # the kubelet's clusterDNS/clusterDomain
    resolv_conf: str = "/etc/resolv.conf"  # the node's resolver (the kubelet's --resolv-conf)


class NodeAgent:
    """The node agent; implements ``nodeagent.agent.lookup.ContainerLookup``."""

    def __init__(
        self,
        api: AgentApi,
        cri_socket: str,
        node_name: str,
        data_dir: str,
        machine: MachineInfo,
        *,
        manifests_dir: str | None = None,
        kubelet_port: int = 10250,
        clock: Callable[[], datetime] = utc_now,
        config: AgentConfig = AgentConfig(),
        pressure: PressureProbe | None = None,
        ca_pem: str = "",
        csi_socket: str = "",
    ) -> None:
        """``ca_pem``: the cluster CA, written as ``ca.crt`` of projected ``kube-root-ca.crt`` sources
        (the cluster publishes no such ConfigMap). ``csi_socket``: the node's CSI driver (the
        ``csi-<node>`` volume plugin); without one, claims and inline csi volumes cannot mount."""
        self.api = api
        self.node_name = node_name
        self.data_dir = data_dir
        self.logs_root = os.path.join(data_dir, "pods")
        self.manifests_dir = manifests_dir
        self.clock = clock
        self._master_env: tuple[datetime, tuple[tuple[str, str], ...]] | None = None
        self.config = config
        self.cri = CRIClient(cri_socket)
        machine = replace(machine, kubelet_port=kubelet_port)
        self.machine = machine
        self.events = EventRecorder(api, node_name, clock, component=ev.COMPONENT)
        self.node = NodeReporter(
            api, self.cri, machine, clock, pressure or (lambda: host_pressure(data_dir)),
            status_interval=config.status_interval, lease_interval=config.lease_interval,
            events=self.events, volumes_in_use=lambda: self.volumes.in_use(),
        )  # fmt: skip
        self.workers: dict[str, PodWorker] = {}
        self.statics: dict[str, dict[str, Any]] = {}
        self._feed: PodFeed | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._relist_seen: dict[str, tuple[Any, ...]] = {}
        self._ctx: WorkerContext | None = None
        self._started = False
        self.csi_socket = csi_socket
        self.csi: CSIVolumes | None = None
        self._csi_client: CSIClient | None = None
        self.volumes = VolumeManager(
            data_dir, api.get, request_token=self._request_token, warn=self._volume_warning, clock=clock,
            ca_pem=ca_pem, allocatable=allocatable(machine), refresh_period=config.resync,
        )  # fmt: skip

    # -- lifecycle --------------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect to the runtime, register the Node, sync the pod feed, adopt, start the loops."""
        os.makedirs(self.logs_root, exist_ok=True)
        self._spawn(self.events.run(), "events")
        await self.cri.wait_ready()
        version = await self.cri.version()
        name = version.runtime_name
        scheme = name.removeprefix("raykube-") or "cri"
        self.node.machine = replace(
            self.node.machine, container_runtime_version=f"{scheme}://{version.runtime_version}"
        )
        self._ctx = WorkerContext(
            cri=self.cri, clock=self.clock,
            backoff=CrashLoopBackOff(self.config.backoff_initial, self.config.backoff_max),
            node_name=self.node_name, logs_root=self.logs_root, scheme=scheme,
            host_ips=self.machine.internal_ips, fetch_env=self._fetch_env,
            write_status=self._write_status, delete_pod=self._delete_pod, events=self.events,
            resync=self.config.resync, dns=self._pod_dns, volumes=self.volumes,
        )  # fmt: skip
        await self.node.register()
        if self.csi_socket:
            self._csi_client = CSIClient(self.csi_socket)
            self.csi = CSIVolumes(self.api, self._csi_client, self.data_dir, self.node_name)
            self.volumes.claims = self.csi
            self._spawn(self.csi.register(), "csi-register")  # retries until the driver answers
        await self._report_limits()
        self._feed = self.api.pod_feed(self.node_name, self._on_pod, self._on_pod_deleted)
        self._spawn(self._feed.run(), "pod-feed")
        await self._feed.wait_synced()
        if self.manifests_dir:
            await self._scan_manifests()
        await self._remove_orphans()
        await self._remove_orphan_volumes()
        for pod in self._feed.list():
            self._on_pod(pod)
        self._spawn(self._every(self.config.node_tick, self.node.tick), "node-loop")
        self._spawn(self._every(self.config.relist_interval, self._relist), "relist")
        if self.manifests_dir:
            self._spawn(self._every(self.config.manifest_interval, self._scan_manifests), "static-pods")
        if self.csi is not None:
            self._spawn(
                self._every(self.config.resync.total_seconds(), self._expand_volumes), "volume-expand"
            )
        self._started = True

    async def stop(self, remove_pods: bool = False) -> None:
        """Stop the loops and workers; with ``remove_pods`` also stop and remove every pod's sandbox."""
        with contextlib.suppress(Exception):
            await self.events.flush(2.0)  # what is queued (e.g. Killing) still reaches the API server
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._tasks.clear()
        workers = list(self.workers.values())
        await asyncio.gather(*(w.stop() for w in workers), return_exceptions=True)
        if remove_pods:
            for w in workers:
                with contextlib.suppress(Exception):
                    boxes = await w.refresh_view()
                    await w._teardown(w.last_pod, boxes, 0)
        self.workers.clear()
        if self._csi_client is not None:
            with contextlib.suppress(Exception):
                await self._csi_client.close()
            self._csi_client = None
        await self.cri.close()

    async def _report_limits(self) -> None:
        """A runtime whose ``ResourceLimits`` condition is false enforces no limits on this node: a
        Warning on the Node (``raykube status`` shows the same condition per runtime)."""
        try:
            conditions = (await self.cri.status()).status.conditions
        except CRIError:
            return
        for c in conditions:
            if c.type == "ResourceLimits" and not c.status:
                message = f"Container resource limits are not enforced on this node: {c.reason}: {c.message}"
                self.events.event(
                    ev.node_ref(self.node_name), ev.WARNING, ev.RESOURCE_LIMITS_NOT_APPLIED, message
                )

    def set_kubelet_port(self, port: int) -> None:
        """The port of the agent's HTTP server (posted as daemonEndpoints.kubeletEndpoint.Port)."""
        self.node.set_port(port)

    @property
    def node_uid(self) -> str:
        return self.node.node_uid

    def _spawn(self, coro: Any, name: str) -> None:
        self._tasks.append(asyncio.create_task(coro, name=name))

    async def _every(self, interval: float, fn: Callable[[], Any]) -> None:
        while True:
            try:
                await fn()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s failed", getattr(fn, "__name__", fn))
            await asyncio.sleep(interval)

    # -- pods -------------------------------------------------------------------------------------

    def _on_pod(self, pod: dict[str, Any]) -> None:
        if sp.is_mirror_pod(pod) or (pod.get("spec") or {}).get("nodeName") != self.node_name:
            return
        if RAY_ACTOR_ANNOTATION in ((pod.get("metadata") or {}).get("annotations") or {}):
            return  # a control-plane component: a Ray actor the controller manager reports on
        uid = (pod.get("metadata") or {}).get("uid", "")
        if uid:
            self._desire(uid, pod)

    def _on_pod_deleted(self, pod: dict[str, Any]) -> None:
        uid = (pod.get("metadata") or {}).get("uid", "")
        if sp.is_mirror_pod(pod) or uid not in self.workers:
            return
        self.workers[uid].update(None)

    def _desire(self, uid: str, pod: dict[str, Any] | None) -> None:
        worker = self.workers.get(uid)
        if worker is not None and worker.task is not None and worker.task.done():
            self.workers.pop(uid)
            worker = None
        if worker is None:
            if pod is None or self._ctx is None:
                return
            worker = PodWorker(self._ctx, uid, pod)
            self.workers[uid] = worker
            worker.start()
            assert worker.task is not None
            worker.task.add_done_callback(functools.partial(self._worker_done, worker))
            return
        worker.update(pod)

    def _worker_done(self, worker: PodWorker, _task: object = None) -> None:
        if self.workers.get(worker.uid) is worker:
            del self.workers[worker.uid]
            self._relist_seen.pop(worker.uid, None)

    def _pod_dns(self, pod: Mapping[str, Any]) -> ResolvConf:
        """The pod's resolv.conf; the node's resolv.conf is read each time (as the kubelet does)."""
        try:
            with open(self.config.resolv_conf) as f:
                node = parse_resolv_conf(f.read())
        except OSError as err:
            log.warning("cannot read %s (%s): pods get no node resolvers", self.config.resolv_conf, err)
            node = ResolvConf()
        return pod_dns(pod, node, self.config.cluster_dns)

    async def _fetch_env(self, pod: Mapping[str, Any]) -> EnvSources:
        namespace = (pod.get("metadata") or {}).get("namespace") or "default"
        wanted: dict[str, set[str]] = {"configmaps": set(), "secrets": set()}
        spec = pod.get("spec") or {}
        for c in (*(spec.get("initContainers") or ()), *(spec.get("containers") or ())):
            for src in c.get("envFrom") or ():
                if "configMapRef" in src:
                    wanted["configmaps"].add(src["configMapRef"].get("name", ""))
                if "secretRef" in src:
                    wanted["secrets"].add(src["secretRef"].get("name", ""))
            for var in c.get("env") or ():
                vf = var.get("valueFrom") or {}
                if "configMapKeyRef" in vf:
                    wanted["configmaps"].add(vf["configMapKeyRef"].get("name", ""))
                if "secretKeyRef" in vf:
                    wanted["secrets"].add(vf["secretKeyRef"].get("name", ""))
        found: dict[str, dict[str, dict[str, Any]]] = {"configmaps": {}, "secrets": {}}
        for plural, names in wanted.items():
            for name in sorted(names):
                try:
                    found[plural][name] = await self.api.get("v1", plural, namespace, name)
                except ApiError as err:
                    if err.status != 404:
                        raise
        return EnvSources(
            found["configmaps"],
            found["secrets"],
            allocatable(self.machine),
            service_env=await self._service_env(),
        )

    async def _service_env(self) -> tuple[tuple[str, str], ...]:
        """``KUBERNETES_SERVICE_HOST`` and the rest, from ``default/kubernetes`` (read again after a
        minute; its address never changes in practice, but a cluster without it gets none)."""
        now = self.clock()
        if self._master_env is not None and now < self._master_env[0]:
            return self._master_env[1]
        try:
            service = await self.api.get("v1", "services", "default", "kubernetes")
        except ApiError as err:
            log.warning(
                "cannot read the kubernetes Service (%s): pods get no KUBERNETES_SERVICE_* variables", err
            )
            return ()
        env = master_service_env(service)
        self._master_env = (now + timedelta(seconds=60), env)
        return env

    def _is_static(self, pod: Mapping[str, Any]) -> bool:
        return (pod.get("metadata") or {}).get("uid", "") in self.statics

    async def _write_status(self, pod: Mapping[str, Any], status: dict[str, Any]) -> None:
        meta = pod.get("metadata") or {}
        namespace, name = meta.get("namespace", ""), meta.get("name", "")
        if self._is_static(pod):
            mirror = self._feed.get(namespace, name) if self._feed else None
            if mirror is None or not sp.is_mirror_pod(mirror):
                return  # written once the mirror pod exists (the worker's next change or resync)
        old = (pod.get("status") or {}) if not self._is_static(pod) else {}
        patch: dict[str, Any] = {k: None for k in old if k not in status}
        patch.update(status)
        try:
            await self.api.patch_status("v1", "pods", namespace, name, patch)
        except ApiError as err:
            if err.status != 404:
                raise

    async def _delete_pod(self, pod: Mapping[str, Any]) -> None:
        meta = pod.get("metadata") or {}
        try:
            await self.api.delete(
                "v1", "pods", meta.get("namespace"), meta.get("name", ""),
                grace_period_seconds=0, uid=meta.get("uid"),
            )  # fmt: skip
        except ApiError as err:
            if err.status not in (404, 409):
                raise

    async def _relist(self) -> None:
        """PLEG: wake the workers of pods whose sandboxes or containers changed state."""
        seen: dict[str, list[Any]] = {}
        for box in await self.cri.list_pod_sandbox(labels={cc.NODE_LABEL: self.node_name}):
            seen.setdefault(box.labels.get(cc.POD_UID, ""), []).append(("s", box.id, box.state))
        for c in await self.cri.list_containers():
            uid = c.labels.get(cc.POD_UID, "")
            if uid in seen or uid in self.workers:
                seen.setdefault(uid, []).append(("c", c.id, c.state))
        current = {uid: tuple(sorted(items)) for uid, items in seen.items()}
        for uid in set(current) | set(self._relist_seen):
            if current.get(uid) != self._relist_seen.get(uid) and uid in self.workers:
                self.workers[uid].wake()
        self._relist_seen = current

    async def _remove_orphans(self) -> None:
        """At start: remove sandboxes of pods that exist neither in the API nor as static pods."""
        known = set(self.statics)
        if self._feed is not None:
            known |= {(p.get("metadata") or {}).get("uid", "") for p in self._feed.list()}
        for box in await self.cri.list_pod_sandbox(labels={cc.NODE_LABEL: self.node_name}):
            if box.labels.get(cc.POD_UID, "") in known:
                continue
            log.info("removing sandbox %s of vanished pod %s", box.id, box.labels.get(cc.POD_NAME))
            for c in await self.cri.list_containers(sandbox_id=box.id):
                if c.state == api_pb2.CONTAINER_RUNNING:
                    with contextlib.suppress(CRIError):
                        await self.cri.stop_container(c.id, 0)
            with contextlib.suppress(CRIError):
                await self.cri.stop_pod_sandbox(box.id)
                await self.cri.remove_pod_sandbox(box.id)

    async def _remove_orphan_volumes(self) -> None:
        """At start: unmount and remove the volumes a previous agent left for pods that are gone."""
        known = set(self.statics)
        if self._feed is not None:
            known |= {(p.get("metadata") or {}).get("uid", "") for p in self._feed.list()}
        for uid in await self.volumes.cleanup_orphans(known):
            log.info("removed the volumes of vanished pod %s", uid)

    async def _request_token(
        self, namespace: str, service_account: str, request: dict[str, Any]
    ) -> dict[str, Any]:
        return await self.api.create_subresource(
            "v1", "serviceaccounts", namespace, service_account, "token", request
        )

    async def _expand_volumes(self) -> None:
        """The node side of claim expansion (NodeExpandVolume) for the pods that run here."""
        if self.csi is None:
            return
        pods = [w.last_pod for w in self.workers.values() if not w.done]
        for e in await self.csi.expand_pending(pods):
            self.events.event(ev.pod_ref(e.pod), e.type, e.reason, e.message)

    def _volume_warning(self, pod: Mapping[str, Any], reason: str, message: str) -> None:
        self.events.event(ev.pod_ref(pod), ev.WARNING, reason, message)

    # -- static pods ------------------------------------------------------------------------------

    async def _scan_manifests(self) -> None:
        assert self.manifests_dir is not None
        manifests, errors = await asyncio.to_thread(sp.read_manifests, self.manifests_dir)
        for err in errors:
            log.warning("static pod manifest %s: %s", err.path, err.message)
        new = sp.static_pods(manifests, self.node_name, self.clock(), self.statics)
        change = sp.diff(self.statics, new)
        self.statics = new
        for pod in change.removed:
            self._desire(pod["metadata"]["uid"], None)
        for pod in change.added:
            self._desire(pod["metadata"]["uid"], pod)
        await self._sync_mirrors()

    async def _sync_mirrors(self) -> None:
        if not self.node.node_uid or self._feed is None:
            return
        pods = self._feed.list()
        for p in pods:  # a mirror pod being deleted is removed at once, then created again (kubelet)
            meta = p.get("metadata") or {}
            if sp.is_mirror_pod(p) and meta.get("deletionTimestamp"):
                with contextlib.suppress(ApiError):
                    await self.api.delete(
                        "v1", "pods", meta.get("namespace"), meta.get("name", ""),
                        grace_period_seconds=0, uid=meta.get("uid"),
                    )  # fmt: skip
        actions = sp.mirror_actions(self.statics, pods, self.node_name, self.node.node_uid)
        for d in actions.delete:
            with contextlib.suppress(ApiError):
                await self.api.delete("v1", "pods", d.namespace, d.name, grace_period_seconds=0, uid=d.uid)
        for body in actions.create:
            try:
                await self.api.create("v1", "pods", body["metadata"]["namespace"], body)
            except ApiError as err:
                if err.status != 409:
                    raise
                continue
            uid = body["metadata"]["annotations"][sp.HASH]
            worker = self.workers.get(uid)
            if worker is not None:
                worker.status = None  # write the static pod's status onto the new mirror pod
                worker.wake()

    # -- ContainerLookup --------------------------------------------------------------------------

    def _find_worker(self, namespace: str, name: str) -> PodWorker | None:
        for w in self.workers.values():
            meta = w.last_pod.get("metadata") or {}
            if meta.get("namespace") == namespace and meta.get("name") == name and not w.done:
                return w
        return None

    def lookup_container(self, namespace: str, pod: str, container: str | None) -> ContainerRef:
        worker = self._find_worker(namespace, pod)
        if worker is None:
            raise LookupFailed(404, "NotFound", f'pods "{pod}" not found')
        spec = worker.last_pod.get("spec") or {}
        names = [c["name"] for c in spec.get("containers") or ()]
        inits = [c["name"] for c in spec.get("initContainers") or ()]
        if container is None:
            if len(names) != 1:
                message = (
                    f"a container name must be specified for pod {pod}, choose one of: [{' '.join(names)}]"
                )
                if inits:
                    message += f" or one of the init containers: [{' '.join(inits)}]"
                raise LookupFailed(400, "BadRequest", message)
            container = names[0]
        if container not in names and container not in inits:
            raise LookupFailed(400, "BadRequest", f"container {container} is not valid for pod {pod}")
        latest = worker.view.latest(container)
        previous = worker.view.previous(container)
        if latest is None:
            reason = "ContainerCreating"
            for s in (
                *(worker.status or {}).get("containerStatuses", ()),
                *(worker.status or {}).get("initContainerStatuses", ()),
            ):
                if s.get("name") == container:
                    reason = ((s.get("state") or {}).get("waiting") or {}).get("reason", reason)
            raise LookupFailed(
                400, "BadRequest", f'container "{container}" in pod "{pod}" is waiting to start: {reason}'
            )
        return ContainerRef(
            pod_uid=worker.uid,
            container_name=container,
            container_id=cc.bare_id(latest.id),
            log_path=worker.log_paths.get(latest.id, ""),
            previous_log_path=worker.log_paths.get(previous.id, "") if previous is not None else "",
            running=latest.state == "running",
        )
