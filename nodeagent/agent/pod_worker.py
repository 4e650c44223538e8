"""One pod's worker: read the runtime, decide with the cores, act, write the status (the kubelet's syncPod).

A ``PodWorker`` owns one pod uid. Its task loops: wait for a wake-up (``wake()``: a pod event, a
runtime change seen by the relist, a timer), then ``sync()`` once. One task per pod, so two syncs of
one pod never overlap; every sync re-reads the desired pod (``self.pod``) and the runtime, so missed
or merged wake-ups are harmless. ``self.pod is None`` means the pod is gone (deleted from the API, or
its manifest removed): the worker tears everything down and ends.

Per sync, as docs/nodeagent.md "How a pod worker drives them": probes (``probes`` + ``probe_exec``) →
``compute_pod_actions`` → execute in the kubelet's order (kill, sandbox, next init container,
containers, each start gated by ``CrashLoopBackOff``) → ``pod_status`` written only when it changed.
A pod with a ``deletionTimestamp`` is terminated (preStop, stop within the grace period, sandbox
removed) and then deleted with grace 0 and a uid precondition. A pod that reached Succeeded/Failed is
stopped and its status kept. Errors are logged; the next wake-up tries again.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from cluster.client.event_recorder import EventSink
from nodeagent.agent import cri_config as cc
from nodeagent.cri.client import CRIClient, CRIError
from nodeagent.kubelet import events as ev
from nodeagent.kubelet import probes as pr
from nodeagent.kubelet.container_env import CreateContainerConfigError, EnvSources, container_command
from nodeagent.kubelet.dns import ResolvConf
from nodeagent.kubelet.pod_actions import compute_pod_actions
from nodeagent.kubelet.pod_status import ProbeView, StatusInputs, Waiting, pod_status
from nodeagent.kubelet.probe_exec import ProbeOutcome, run_probe
from nodeagent.kubelet.restart import CrashLoopBackOff, format_pod
from nodeagent.kubelet.runtime_view import PodRuntimeView
from nodeagent.volumes.errors import VolumeError
from nodeagent.volumes.manager import VolumeManager

log = logging.getLogger(__name__)

EnvFetcher = Callable[[Mapping[str, Any]], Awaitable[EnvSources]]
StatusWriter = Callable[[Mapping[str, Any], dict[str, Any]], Awaitable[None]]
PodDeleter = Callable[[Mapping[str, Any]], Awaitable[None]]


@dataclass(slots=True)
class WorkerContext:
    """What all workers of one agent share."""

    cri: CRIClient
    clock: Callable[[], datetime]
    backoff: CrashLoopBackOff
    node_name: str
    logs_root: str
    scheme: str
    host_ips: tuple[str, ...]
    fetch_env: EnvFetcher  # ConfigMaps/Secrets the pod's containers reference, plus node facts
    write_status: StatusWriter
    delete_pod: PodDeleter
    events: EventSink  # the kubelet's events (Pulled, Created, Started, Killing, Unhealthy, BackOff, ...)
    resync: timedelta = timedelta(seconds=5)
    pulled: set[str] = field(default_factory=set)
    dns: Callable[[Mapping[str, Any]], ResolvConf | None] = lambda _pod: None  # the pod's resolv.conf
    volumes: VolumeManager | None = None  # the pod volumes (None: pods get no volumes, as in some tests)


def grace_seconds(pod: Mapping[str, Any]) -> int:
    meta = pod.get("metadata") or {}
    if meta.get("deletionGracePeriodSeconds") is not None:
        return max(0, int(meta["deletionGracePeriodSeconds"]))
    value = (pod.get("spec") or {}).get("terminationGracePeriodSeconds")
    return 30 if value is None else max(0, int(value))


def _specs(pod: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    spec = pod.get("spec") or {}
    return {c["name"]: c for c in (*(spec.get("initContainers") or ()), *(spec.get("containers") or ()))}


class PodWorker:
    def __init__(self, ctx: WorkerContext, uid: str, pod: dict[str, Any]) -> None:
        self.ctx = ctx
        self.uid = uid
        self.pod: dict[str, Any] | None = pod
        self.last_pod: dict[str, Any] = pod
        self.view = PodRuntimeView()
        self.log_paths: dict[str, str] = {}
        self.status: dict[str, Any] | None = None  # last status written (or computed, for static pods)
        self.waiting: dict[str, Waiting] = {}
        self.probe_states: dict[tuple[str, str], pr.ProbeState] = {}
        self.wake_at: datetime | None = None
        self.done = False
        self.volumes_down = False  # a finished pod's volumes are torn down once
        self._event = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    # -- the loop ---------------------------------------------------------------------------------

    def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name=f"pod-worker-{self.uid}")

    def wake(self) -> None:
        self._event.set()

    def update(self, pod: dict[str, Any] | None) -> None:
        """A new desired pod (None: gone); wakes the worker."""
        self.pod = pod
        if pod is not None:
            self.last_pod = pod
        self.wake()

    async def _run(self) -> None:
        while not self.done:
            self._event.clear()
            try:
                await self.sync()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("sync of pod %s failed", self.uid)
            if self.done:
                return
            now = self.ctx.clock()
            wake = now + self.ctx.resync
            if self.wake_at is not None:
                wake = min(wake, self.wake_at)
            timeout = max(0.05, (wake - now).total_seconds())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._event.wait(), timeout)

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task

    # -- one sync ---------------------------------------------------------------------------------

    async def refresh_view(self) -> list[str]:
        view, boxes, logs = await cc.read_view(self.ctx.cri, self.uid, self.ctx.scheme)
        self.view, self.log_paths = view, logs
        return boxes

    async def sync(self) -> None:
        self.wake_at = None
        boxes = await self.refresh_view()
        pod = self.pod
        if pod is None:
            await self._teardown(self.last_pod, boxes, grace_seconds(self.last_pod))
            self.ctx.backoff.forget_pod(self.uid)
            self.done = True
            return
        if (pod.get("metadata") or {}).get("deletionTimestamp"):
            await self._terminate(pod, boxes)
            return
        phase = (self.status or pod.get("status") or {}).get("phase")
        if phase in ("Succeeded", "Failed"):
            await self._kill_all(pod, 0)
            await self.refresh_view()
            if not self.volumes_down:
                self.volumes_down = await self._teardown_volumes()
            await self._write(pod, terminal=True)
            return
        now = self.ctx.clock()
        await self._run_probes(pod, now)
        live_failed = {s.container_id for (_, k), s in self.probe_states.items() if k == "liveness"
                       and s.result == "failure"}  # fmt: skip
        startup_failed = {s.container_id for (_, k), s in self.probe_states.items() if k == "startup"
                          and s.result == "failure"}  # fmt: skip
        plan = compute_pod_actions(pod, self.view, live_failed, startup_failed)
        grace = grace_seconds(pod)
        if plan.kill_pod:
            await self._kill_all(pod, grace)
            if plan.sandbox_id:
                with contextlib.suppress(CRIError):
                    await self.ctx.cri.stop_pod_sandbox(plan.sandbox_id)
        for kill in plan.containers_to_kill:
            log.info("pod %s: %s", self.uid, kill.message)
            self._record(pod, kill.name, ev.NORMAL, ev.KILLING_CONTAINER, kill.message)
            await self._stop_container(kill.container_id, grace)
        sandbox_id = plan.sandbox_id
        to_start = [plan.next_init_container] if plan.next_init_container else []
        to_start += list(plan.containers_to_start)
        if not await self._volumes(pod, starting=plan.create_sandbox or bool(to_start)):
            await self._write(pod, terminal=False)  # the containers stay waiting: ContainerCreating
            return
        if plan.create_sandbox:
            if plan.sandbox_id:
                self._record(pod, None, ev.NORMAL, ev.SANDBOX_CHANGED,
                             "Pod sandbox changed, it will be killed and re-created.")  # fmt: skip
            cfg = cc.sandbox_config(
                pod, plan.attempt, self.ctx.logs_root, self.ctx.node_name, self.ctx.dns(pod)
            )
            try:
                sandbox_id = await self.ctx.cri.run_pod_sandbox(cfg)
            except CRIError as err:
                log.warning("pod %s: RunPodSandbox: %s", self.uid, err)
                self._record(pod, None, ev.WARNING, ev.FAILED_CREATE_POD_SANDBOX,
                             f"Failed to create pod sandbox: {err.details}")  # fmt: skip
                self.wake_at = self.ctx.clock() + timedelta(seconds=1)
                return
            await self.refresh_view()
        if sandbox_id and self.view.sandbox is not None and self.view.sandbox.ready:
            for name in to_start:
                await self._start_container(pod, name, sandbox_id)
            if to_start:
                await self.refresh_view()
        terminal = (plan.pod_failed or plan.kill_pod) and not plan.create_sandbox
        await self._write(pod, terminal=terminal)

    async def _volumes(self, pod: Mapping[str, Any], *, starting: bool) -> bool:
        """Set up the pod's volumes (every sync: cheap once done, and it re-adopts them after an agent
        restart); a running pod's API-data volumes are refreshed. False when something is to start and a
        volume is not ready: a Warning event (``FailedMount``...), and a retry in two seconds."""
        volumes = self.ctx.volumes
        if volumes is None:
            return True
        try:
            await volumes.setup(pod)
        except VolumeError as err:
            log.warning("pod %s: %s", self.uid, err.message)
            if not starting:
                return True  # what runs keeps running on the volumes it has
            self._record(pod, None, ev.WARNING, err.reason, err.message)
            self._wake_by(self.ctx.clock() + timedelta(seconds=2))
            return False
        if not starting:
            await volumes.refresh(pod)
        return True

    async def _teardown_volumes(self) -> bool:
        """Unmount and remove the pod's volumes (after its containers stopped); True when done."""
        if self.ctx.volumes is None:
            return True
        try:
            await self.ctx.volumes.teardown(self.uid)
        except (OSError, VolumeError) as err:
            log.warning("pod %s: removing its volumes: %s (the agent's next start retries)", self.uid, err)
            return False
        return True

    async def _write(self, pod: Mapping[str, Any], *, terminal: bool) -> None:
        probes = self._probe_view(pod)
        inputs = StatusInputs(self.ctx.host_ips, probes, dict(self.waiting), terminal)
        previous = self.status if self.status is not None else (pod.get("status") or {})
        status = pod_status({**pod, "status": previous}, self.view, inputs, self.ctx.clock())
        if status != self.status:
            await self.ctx.write_status(pod, status)
            self.status = status

    # -- probes -----------------------------------------------------------------------------------

    def _probe_view(self, pod: Mapping[str, Any]) -> ProbeView:
        ready: dict[str, bool] = {}
        started: dict[str, bool] = {}
        for c in (pod.get("spec") or {}).get("containers") or ():
            latest = self.view.latest(c["name"])
            if latest is None:
                continue
            running = latest.state == "running"
            st = pr.is_started(c, self.probe_states.get((c["name"], "startup")), running)
            started[latest.id] = st
            ready[latest.id] = pr.is_ready(c, self.probe_states.get((c["name"], "readiness")), st)
        return ProbeView(ready=ready, started=started)

    async def _run_probes(self, pod: Mapping[str, Any], now: datetime) -> None:
        pod_ip = self.view.sandbox.ips[0] if self.view.sandbox and self.view.sandbox.ips else "127.0.0.1"
        due: list[tuple[Mapping[str, Any], pr.ProbeSpec, pr.ProbeState, str]] = []
        for c in (pod.get("spec") or {}).get("containers") or ():
            latest = self.view.latest(c["name"])
            if latest is None:
                continue
            startup = self.probe_states.get((c["name"], "startup"))
            started = pr.is_started(c, startup, latest.state == "running") or latest.state != "running"
            for kind in pr.PROBE_KINDS:
                try:
                    spec = pr.ProbeSpec.from_container(c, kind)
                except ValueError:
                    continue
                if spec is None:
                    continue
                state = pr.sync(self.probe_states.get((c["name"], kind)), kind, latest.id)
                if latest.state != "running":
                    state = pr.container_not_running(state)
                self.probe_states[(c["name"], kind)] = state
                if pr.should_probe(spec, state, latest, started, now):
                    due.append((c, spec, state, latest.id))
                else:
                    at = pr.next_probe_at(spec, state, latest)
                    if at is not None and latest.state == "running" and at > now:
                        self._wake_by(at)
        if not due:
            return

        async def one(c: Mapping[str, Any], spec: pr.ProbeSpec, cid: str) -> ProbeOutcome:
            async def exec_sync(cmd: Sequence[str], timeout: float) -> tuple[int, bytes]:
                resp = await self.ctx.cri.exec_sync(cc.bare_id(cid), cmd, exec_timeout=max(1, int(timeout)))
                return resp.exit_code, resp.stdout + resp.stderr

            try:
                outcome = await run_probe(spec.handler, c, pod_ip, exec_sync, spec.timeout.total_seconds())
            except CRIError as err:
                log.debug("probe of %s failed: %s", cid, err)
                return ProbeOutcome("failure", err.details)
            return outcome

        results = await asyncio.gather(*(one(c, spec, cid) for c, spec, _, cid in due))
        after = self.ctx.clock()
        for (c, spec, state, _), outcome in zip(due, results, strict=True):
            if outcome.result == "failure":
                message = ev.probe_failed(spec.kind, outcome.output)
                self._record(pod, c["name"], ev.WARNING, ev.CONTAINER_UNHEALTHY, message)
            elif outcome.result == "unknown":
                message = ev.probe_errored(spec.kind, outcome.output)
                self._record(pod, c["name"], ev.WARNING, ev.CONTAINER_UNHEALTHY, message)
            new = pr.record(spec, state, outcome.result, after)
            self.probe_states[(c["name"], spec.kind)] = new
            self._wake_by(after + spec.period)
        if self._probe_changed(due):
            self.wake_at = after  # act on the new verdict at once (restart, Ready condition)

    def _probe_changed(self, due: Sequence[tuple[Any, pr.ProbeSpec, pr.ProbeState, str]]) -> bool:
        return any(self.probe_states[(c["name"], spec.kind)].result != st.result for c, spec, st, _ in due)

    def _wake_by(self, at: datetime) -> None:
        self.wake_at = at if self.wake_at is None else min(self.wake_at, at)

    # -- actions ----------------------------------------------------------------------------------

    def _record(
        self, pod: Mapping[str, Any], container: str | None, kind: str, reason: str, text: str
    ) -> None:
        """An event about the pod, or with ``container`` about that container (its fieldPath)."""
        self.ctx.events.event(ev.pod_ref(pod, container), kind, reason, text)

    async def _stop_container(self, container_id: str, grace: int) -> None:
        try:
            await self.ctx.cri.stop_container(cc.bare_id(container_id), grace)
        except CRIError as err:
            log.warning("pod %s: StopContainer %s: %s", self.uid, container_id, err)

    async def _kill_all(self, pod: Mapping[str, Any], grace: int) -> None:
        running = [c for c in self.view.containers if c.state in ("running", "created")]
        for c in running:
            self._record(pod, c.name, ev.NORMAL, ev.KILLING_CONTAINER, f"Stopping container {c.name}")
        await asyncio.gather(*(self._stop_container(c.id, grace) for c in running))

    async def _ensure_image(self, pod: Mapping[str, Any], name: str, image: str) -> None:
        """Pull ``image`` when the runtime lacks it (the kubelet's IfNotPresent), with its events."""
        if image in self.ctx.pulled or await self.ctx.cri.image_status(image) is not None:
            self.ctx.pulled.add(image)
            self._record(pod, name, ev.NORMAL, ev.PULLED_IMAGE, ev.already_present(image))
            return
        self._record(pod, name, ev.NORMAL, ev.PULLING_IMAGE, f'Pulling image "{image}"')
        loop = asyncio.get_running_loop()
        began = loop.time()
        try:
            await self.ctx.cri.pull_image(image)
        except CRIError as err:
            self._record(pod, name, ev.WARNING, ev.FAILED_TO_PULL_IMAGE,
                         f'Failed to pull image "{image}": {err.details}')  # fmt: skip
            self._record(pod, name, ev.WARNING, ev.FAILED_TO_CREATE_CONTAINER, "Error: ErrImagePull")
            raise
        took = loop.time() - began
        status = await self.ctx.cri.image_status(image)
        size = int(status.size) if status is not None else 0
        self._record(pod, name, ev.NORMAL, ev.PULLED_IMAGE, ev.pulled(image, took, took, size))
        self.ctx.pulled.add(image)

    async def _start_container(self, pod: Mapping[str, Any], name: str, sandbox_id: str) -> None:
        spec = _specs(pod)[name]
        latest = self.view.latest(name)
        now = self.ctx.clock()
        decision = self.ctx.backoff.check(pod, spec, latest, now)
        if not decision.start:
            self._record(pod, name, ev.WARNING, ev.BACK_OFF_START_CONTAINER,
                         f"Back-off restarting failed container {name} in pod {format_pod(pod)}")  # fmt: skip
            self.waiting[name] = Waiting(decision.reason, decision.message)
            if decision.retry_at is not None:
                self._wake_by(decision.retry_at)
            return
        try:
            sources = await self.ctx.fetch_env(pod)
            ips = self.view.sandbox.ips if self.view.sandbox else ()
            sources = dataclasses.replace(sources, host_ips=self.ctx.host_ips, pod_ips=ips)
            command = container_command(pod, spec, sources)
            mounts = self.ctx.volumes.container_mounts(pod, spec, command.env) if self.ctx.volumes else []
        except CreateContainerConfigError as err:
            self._record(pod, name, ev.WARNING, ev.FAILED_TO_CREATE_CONTAINER, f"Error: {err}")
            self.waiting[name] = Waiting(err.reason, str(err))
            self._wake_by(now + timedelta(seconds=2))
            return
        except VolumeError as err:  # a subPath refused: the kubelet's CreateContainerConfigError too
            self._record(pod, name, ev.WARNING, err.reason, f"Error: {err.message}")
            self.waiting[name] = Waiting(CreateContainerConfigError.reason, err.message)
            self._wake_by(now + timedelta(seconds=2))
            return
        try:
            await self._ensure_image(pod, name, spec.get("image", ""))
        except CRIError as err:
            self.waiting[name] = Waiting("ErrImagePull", err.details)
            self._wake_by(now + timedelta(seconds=5))
            return
        attempt = latest.restart_count + 1 if latest is not None else 0
        cfg = cc.container_config(pod, spec, command, attempt, mounts)
        sandbox_cfg = cc.sandbox_config(
            pod,
            self.view.sandbox.attempt if self.view.sandbox else 0,
            self.ctx.logs_root,
            self.ctx.node_name,
            self.ctx.dns(pod),
        )
        try:
            cid = await self.ctx.cri.create_container(sandbox_id, cfg, sandbox_cfg)
        except CRIError as err:
            self._record(pod, name, ev.WARNING, ev.FAILED_TO_CREATE_CONTAINER, f"Error: {err.details}")
            self.waiting[name] = Waiting("CreateContainerError", err.details)
            self._wake_by(now + timedelta(seconds=2))
            return
        self._record(pod, name, ev.NORMAL, ev.CREATED_CONTAINER, f"Created container {name}")
        try:
            await self.ctx.cri.start_container(cid)
        except CRIError as err:
            self._record(pod, name, ev.WARNING, ev.FAILED_TO_CREATE_CONTAINER, f"Error: {err.details}")
            self.waiting[name] = Waiting("RunContainerError", err.details)
            self._wake_by(now + timedelta(seconds=2))
            return
        self._record(pod, name, ev.NORMAL, ev.STARTED_CONTAINER, f"Started container {name}")
        if (spec.get("resources") or {}).get("limits"):
            await self._check_limits(pod, name, cid)
        self.waiting.pop(name, None)

    async def _check_limits(self, pod: Mapping[str, Any], name: str, cid: str) -> None:
        """A runtime that could not apply the container's limits (cgroups not writable, a join that
        failed) says so in ContainerStatus; make it a Warning on the pod instead of silence."""
        try:
            status = (await self.ctx.cri.container_status(cid)).status
        except CRIError:
            return
        if status.reason == ev.RESOURCE_LIMITS_NOT_APPLIED:
            self._record(pod, name, ev.WARNING, ev.RESOURCE_LIMITS_NOT_APPLIED,
                         f"Container {name} runs without its resource limits: {status.message}")  # fmt: skip

    async def _pre_stop(self, pod: Mapping[str, Any], deadline: float) -> None:
        specs = _specs(pod)
        pod_ip = self.view.sandbox.ips[0] if self.view.sandbox and self.view.sandbox.ips else "127.0.0.1"

        async def one(cid: str, spec: Mapping[str, Any]) -> None:
            handler = (spec.get("lifecycle") or {}).get("preStop")
            if not handler:
                return

            async def exec_sync(cmd: Sequence[str], timeout: float) -> tuple[int, bytes]:
                resp = await self.ctx.cri.exec_sync(cc.bare_id(cid), cmd, exec_timeout=max(1, int(timeout)))
                return resp.exit_code, resp.stdout + resp.stderr

            with contextlib.suppress(CRIError):
                await run_probe(handler, spec, pod_ip, exec_sync, max(1.0, deadline))

        running = [
            (c.id, specs[c.name]) for c in self.view.containers if c.state == "running" and c.name in specs
        ]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*(one(cid, s) for cid, s in running)), max(0.1, deadline))

    async def _terminate(self, pod: dict[str, Any], boxes: list[str]) -> None:
        """Graceful deletion: preStop, stop within the grace period, final status, remove, delete."""
        grace = grace_seconds(pod)
        loop = asyncio.get_running_loop()
        started = loop.time()
        await self._pre_stop(pod, float(grace))
        remaining = max(0, int(grace - (loop.time() - started)))
        await self._kill_all(pod, remaining)
        await self.refresh_view()
        if any(c.state == "running" for c in self.view.containers):
            self._record(pod, None, ev.WARNING, ev.EXCEEDED_GRACE_PERIOD,
                         "Container runtime did not kill the pod within specified grace period.")  # fmt: skip
        for box in boxes:
            with contextlib.suppress(CRIError):
                await self.ctx.cri.stop_pod_sandbox(box)
        await self.refresh_view()
        with contextlib.suppress(Exception):
            await self._write(pod, terminal=True)
        for box in boxes:
            with contextlib.suppress(CRIError):
                await self.ctx.cri.remove_pod_sandbox(box)
        await self._teardown_volumes()
        self.ctx.backoff.forget_pod(self.uid)
        await self.ctx.delete_pod(pod)

    async def _teardown(self, pod: Mapping[str, Any], boxes: list[str], grace: int) -> None:
        await self._kill_all(pod, grace)
        for box in boxes:
            with contextlib.suppress(CRIError):
                await self.ctx.cri.stop_pod_sandbox(box)
            with contextlib.suppress(CRIError):
                await self.ctx.cri.remove_pod_sandbox(box)
        await self._teardown_volumes()
