"""``ProcessRuntime``: the process runtime's CRI logic as a plain asyncio class (no gRPC).

Methods take and return ``nodeagent.cri.api_pb2`` messages, one per CRI RPC, so the gRPC servicer
in ``server.py`` is a thin mapping and tests can drive the logic directly. Errors are the typed
exceptions below; the server maps them to gRPC status codes (NotFound → NOT_FOUND, ...).

Invariants: ids are random 64-hex strings (from the injected ``new_id``); timestamps come from the
injected ``clock_ns``; stop/remove calls are idempotent as the CRI requires; ``shutdown`` kills
every holder and container process group so a restarted runtime leaves no orphans.

Pod network: with a ``PodNetwork`` (the node's CNI plugin), RunPodSandbox ADDs the holder's network
namespace once the holder is up (hostNetwork pods and the ``plain`` mode excepted: they have no
namespace of their own) and a failed ADD removes the sandbox again; StopPodSandbox DELs before the
holder dies; ``start_network`` GCs what a previous instance's pods left. A plugin with
``node_network`` (``host``) puts every sandbox in the node's namespace and still gets ADD/DEL (host
ports). Without one, pods have loopback only and report 127.0.0.1, as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import shutil
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from cluster.machinery.files import private_dir
from netplugins.cni.types import CNIError
from nodeagent.cri import api_pb2
from nodeagent.runtimes.process import containers as ctr
from nodeagent.runtimes.process import exec as ex
from nodeagent.runtimes.process import mounts, procs, rootfs
from nodeagent.runtimes.process import network as net
from nodeagent.runtimes.process import sandboxes as sbx
from nodeagent.runtimes.process.cgroups import LIMITS_NOT_APPLIED, CgroupManager, limits_for, limits_message
from nodeagent.runtimes.process.images import ImageRecord, ImageStore, LayoutError
from nodeagent.runtimes.process.isolation import Isolation, probe
from nodeagent.runtimes.process.streaming import StreamingServer

log = logging.getLogger(__name__)

RUNTIME_NAME = "raykube-process"
RUNTIME_VERSION = "0.1.0"


class NotFoundError(LookupError):
    """No such sandbox, container or image."""


class InvalidArgumentError(ValueError):
    """The request is malformed."""


class FailedPreconditionError(RuntimeError):
    """The object is in the wrong state for the request."""


class NetworkSetupError(RuntimeError):
    """The network plugin refused or failed ADD (or DEL): the message carries the plugin's."""


def pod_resolv_conf(config: api_pb2.PodSandboxConfig) -> str | None:
    """The sandbox's resolv.conf from its ``dns_config``; None when the kubelet sent none (the
    containers then see the host's, as before)."""
    if not config.HasField("dns_config"):
        return None
    dns = config.dns_config
    return rootfs.resolv_conf_text(list(dns.servers), list(dns.searches), list(dns.options))


def _labels_match(labels: Mapping[str, str], selector: Mapping[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


class ProcessRuntime:
    """All sandboxes and containers of one runtime instance; use from one event loop."""

    def __init__(
        self,
        root_dir: str,
        *,
        isolation: Isolation | None = None,
        cgroups: CgroupManager | None = None,
        clock_ns: Callable[[], int] = time.time_ns,
        new_id: Callable[[], str] = lambda: secrets.token_hex(32),
        network: net.PodNetwork | None = None,
    ) -> None:
        self.root = Path(root_dir)
        private_dir(self.root)
        self.isolation = isolation or probe()
        self.cgroups = cgroups or CgroupManager(base="", writable=(), reason="cgroups not configured")
        self.images = ImageStore(self.root / "images")
        self._clock_ns = clock_ns
        self._new_id = new_id
        self.sandboxes: dict[str, sbx.Sandbox] = {}
        self.containers: dict[str, ctr.Container] = {}
        # Kill what a previous instance (killed without its shutdown) left running.
        self.ledger = procs.PidLedger(self.root / "pids")
        self.orphans_killed = self.ledger.reap()
        # Set by ``serve``: where CRI Exec sessions run (None: Exec is FAILED_PRECONDITION).
        self.streaming: StreamingServer | None = None
        self.network = network

    # -- helpers --------------------------------------------------------------------------------

    def _sandbox(self, sid: str) -> sbx.Sandbox:
        if not sid:
            raise InvalidArgumentError("pod sandbox id is empty")
        s = self.sandboxes.get(sid)
        if s is None:
            raise NotFoundError(f"pod sandbox {sid!r} not found")
        return s

    def _container(self, cid: str) -> ctr.Container:
        if not cid:
            raise InvalidArgumentError("container id is empty")
        c = self.containers.get(cid)
        if c is None:
            raise NotFoundError(f"container {cid!r} not found")
        return c

    # -- runtime --------------------------------------------------------------------------------

    def version(self, req: api_pb2.VersionRequest) -> api_pb2.VersionResponse:
        return api_pb2.VersionResponse(
            version="0.1.0",
            runtime_name=RUNTIME_NAME,
            runtime_version=f"{RUNTIME_VERSION}+{self.isolation.mode}",
            runtime_api_version="v1",
        )

    async def _network_condition(self) -> api_pb2.RuntimeCondition:
        iso = self.isolation
        if self.network is not None:
            ready, reason, message = await self.network.condition()
            return api_pb2.RuntimeCondition(type="NetworkReady", status=ready, reason=reason, message=message)
        message = (
            "pods get private network, IPC and UTS namespaces (loopback only)"
            if iso.namespaced
            else f"pods share the host network: {iso.reason}"
        )
        return api_pb2.RuntimeCondition(type="NetworkReady", status=True, reason=iso.mode, message=message)

    async def status(self, req: api_pb2.StatusRequest) -> api_pb2.StatusResponse:
        iso = self.isolation
        conditions = [
            api_pb2.RuntimeCondition(type="RuntimeReady", status=True),
            await self._network_condition(),
            api_pb2.RuntimeCondition(
                type="ContainerIsolation",
                status=iso.namespaced,
                reason="Namespaces" if iso.namespaced else "PlainProcesses",
                message=f"mode={iso.mode} {iso.reason}".strip(),
            ),
            api_pb2.RuntimeCondition(
                type="ResourceLimits",
                status=bool(self.cgroups.writable),
                reason="CgroupV1" if self.cgroups.writable else "NotEnforced",
                message=",".join(self.cgroups.writable) or self.cgroups.reason,
            ),
        ]
        info = {}
        if req.verbose:
            info["isolation"] = json.dumps({"mode": iso.mode, "reason": iso.reason})
            info["cgroups"] = json.dumps(
                {"writable": list(self.cgroups.writable), "reason": self.cgroups.reason}
            )
            info["rootDir"] = json.dumps(str(self.root))
        return api_pb2.StatusResponse(status=api_pb2.RuntimeStatus(conditions=conditions), info=info)

    # -- sandboxes ------------------------------------------------------------------------------

    async def start_network(self, wait: float = 30.0) -> None:
        """Once, before serving: wait for the network plugin and GC every attachment but those of
        the sandboxes that exist (none after a restart: the previous instance's pods were killed in
        ``__init__``, so what they left is released). A plugin that does not answer is logged, not
        fatal: RunPodSandbox fails until it does, and Status says so."""
        if self.network is None:
            return
        try:
            await self.network.info(wait=wait)
            valid = [s.network.request.attachment for s in self.sandboxes.values() if s.network]
            await self.network.gc(valid)
        except CNIError as e:
            log.warning("process runtime: network plugin at %s: %s", self.network.socket_path, e)

    async def _uses_plugin(self, s: sbx.Sandbox) -> bool:
        """Whether the sandbox's network comes from the plugin (setting ``s.node_network``)."""
        if self.network is None or s.host_network:
            return False
        try:
            s.node_network = await self.network.node_network()
        except CNIError as e:
            raise NetworkSetupError(f"network plugin not available: {e.msg}") from e
        # plain mode: pods share the host network and have no namespace the plugin could wire
        return s.node_network or self.isolation.namespaced

    async def _attach(self, s: sbx.Sandbox) -> None:
        assert self.network is not None
        req = net.pod_request(s.id, net.netns_path(s.pid), s.config)
        try:
            result = await self.network.add(req)
        except CNIError as e:
            with contextlib.suppress(CNIError):  # release what a half-done ADD took, as containerd does
                await self.network.delete(req)
            meta = s.config.metadata
            raise NetworkSetupError(
                f"failed to set up the network of pod sandbox {meta.namespace}/{meta.name} ({s.id[:12]}): "
                f"{e.msg}" + (f" ({e.details})" if e.details else "")
            ) from e
        s.network = net.Attached(req, result)

    async def _detach(self, s: sbx.Sandbox) -> None:
        """DEL the sandbox's attachment; idempotent (cleared once the plugin confirmed)."""
        if s.network is None or self.network is None:
            return
        try:
            await self.network.delete(s.network.teardown_request(s.pid if s.ready else 0))
        except CNIError as e:
            meta = s.config.metadata
            raise NetworkSetupError(
                f"failed to tear down the network of pod sandbox {meta.namespace}/{meta.name}: {e.msg}"
            ) from e
        s.network = None

    async def run_pod_sandbox(self, req: api_pb2.RunPodSandboxRequest) -> api_pb2.RunPodSandboxResponse:
        if not req.config.metadata.name:
            raise InvalidArgumentError("sandbox config must include metadata.name")
        s = sbx.Sandbox(self._new_id(), req.config, self._clock_ns(), req.runtime_handler)
        attach = await self._uses_plugin(s)
        self.sandboxes[s.id] = s
        try:
            await sbx.start_holder(s, self.isolation)
        except BaseException:
            self.sandboxes.pop(s.id, None)
            raise
        self.ledger.add(s.pid)
        if attach:
            try:
                await self._attach(s)
            except BaseException:
                await sbx.stop_holder(s)
                self.ledger.discard(s.pid)
                self.sandboxes.pop(s.id, None)
                raise
        return api_pb2.RunPodSandboxResponse(pod_sandbox_id=s.id)

    async def stop_pod_sandbox(self, req: api_pb2.StopPodSandboxRequest) -> api_pb2.StopPodSandboxResponse:
        s = self.sandboxes.get(req.pod_sandbox_id)
        if s is not None:
            await asyncio.gather(*(ctr.stop(self.containers[c], 0) for c in s.container_ids))
            await self._detach(s)  # while the holder still holds the namespace
            await sbx.stop_holder(s)
            self.ledger.discard(s.pid)
        return api_pb2.StopPodSandboxResponse()

    async def remove_pod_sandbox(
        self, req: api_pb2.RemovePodSandboxRequest
    ) -> api_pb2.RemovePodSandboxResponse:
        s = self.sandboxes.get(req.pod_sandbox_id)
        if s is not None:
            await self.stop_pod_sandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=s.id))
            for cid in list(s.container_ids):
                await self.remove_container(api_pb2.RemoveContainerRequest(container_id=cid))
            self.sandboxes.pop(s.id, None)
        return api_pb2.RemovePodSandboxResponse()

    def _sandbox_ips(self, s: sbx.Sandbox) -> list[str]:
        if s.network is not None and s.network.result.pod_ips():
            return s.network.result.pod_ips()
        # Without a plugin, private network namespaces have loopback only: reachable from inside alone.
        return ["127.0.0.1"]

    def pod_sandbox_status(self, req: api_pb2.PodSandboxStatusRequest) -> api_pb2.PodSandboxStatusResponse:
        s = self._sandbox(req.pod_sandbox_id)
        ips = self._sandbox_ips(s)
        mode = api_pb2.NODE if s.node_network else s.config.linux.security_context.namespace_options.network
        opts = api_pb2.NamespaceOption(network=mode)
        status = api_pb2.PodSandboxStatus(
            id=s.id,
            metadata=s.config.metadata,
            state=s.state(),  # type: ignore[arg-type]
            created_at=s.created_at,
            network=api_pb2.PodSandboxNetworkStatus(
                ip=ips[0], additional_ips=[api_pb2.PodIP(ip=ip) for ip in ips[1:]]
            ),
            linux=api_pb2.LinuxPodSandboxStatus(namespaces=api_pb2.Namespace(options=opts)),
            labels=dict(s.config.labels),
            annotations=dict(s.config.annotations),
            runtime_handler=s.runtime_handler,
        )
        info = {}
        if req.verbose:
            detail: dict[str, object] = {"pid": s.pid, "isolation": self.isolation.mode}
            if s.network is not None:
                detail["cniResult"] = s.network.result.to_json()
            info["info"] = json.dumps(detail)
        return api_pb2.PodSandboxStatusResponse(status=status, info=info)

    def list_pod_sandbox(self, req: api_pb2.ListPodSandboxRequest) -> api_pb2.ListPodSandboxResponse:
        f = req.filter
        items = []
        for s in self.sandboxes.values():
            if f.id and s.id != f.id:
                continue
            if f.HasField("state") and s.state() != f.state.state:
                continue
            if not _labels_match(s.config.labels, f.label_selector):
                continue
            items.append(
                api_pb2.PodSandbox(
                    id=s.id,
                    metadata=s.config.metadata,
                    state=s.state(),  # type: ignore[arg-type]
                    created_at=s.created_at,
                    labels=dict(s.config.labels),
                    annotations=dict(s.config.annotations),
                    runtime_handler=s.runtime_handler,
                )
            )
        return api_pb2.ListPodSandboxResponse(items=items)

    # -- containers -----------------------------------------------------------------------------

    def create_container(self, req: api_pb2.CreateContainerRequest) -> api_pb2.CreateContainerResponse:
        s = self._sandbox(req.pod_sandbox_id)
        if not s.ready:
            raise FailedPreconditionError(f"pod sandbox {s.id!r} is not ready")
        cfg = req.config
        if not cfg.metadata.name:
            raise InvalidArgumentError("container config must include metadata.name")
        for other in s.container_ids:
            m = self.containers[other].config.metadata
            if (m.name, m.attempt) == (cfg.metadata.name, cfg.metadata.attempt):
                raise FailedPreconditionError(
                    f"container name {cfg.metadata.name!r} attempt {m.attempt} already exists in {s.id!r}"
                )
        image = self.images.get(cfg.image.image)
        if image is None:
            raise NotFoundError(f'failed to get image "{cfg.image.image}": not found')
        if image.rootfs and not self.isolation.namespaced and os.geteuid() != 0:
            raise FailedPreconditionError(
                f"image {cfg.image.image!r} has a root filesystem, and running in it needs root or "
                f"mount namespaces (isolation mode plain: {self.isolation.reason})"
            )
        try:
            mounts.check(cfg.mounts, self.isolation, image.rootfs)
        except mounts.MountError as e:
            raise FailedPreconditionError(str(e)) from e
        log_path = ""
        if s.config.log_directory and cfg.log_path:
            log_path = os.path.join(s.config.log_directory, cfg.log_path)
        cid = self._new_id()
        state_dir = resolv_conf = ""
        dns = pod_resolv_conf(s.config)
        if image.rootfs:
            state_dir = str(self.root / "containers" / cid)
            rootfs.prepare(state_dir, s.config.hostname, resolv_text=dns)
        elif dns is not None and self.isolation.namespaced:
            state_dir = str(self.root / "containers" / cid)
            resolv_conf = rootfs.write_resolv_conf(state_dir, dns)
        c = ctr.Container(
            id=cid,
            sandbox_id=s.id,
            config=cfg,
            image_ref=image.id,
            image_id=image.id,
            log_path=log_path,
            env=ctr.container_env(cfg, s.config.hostname, image.env),
            created_at=self._clock_ns(),
            rootfs=image.rootfs,
            state_dir=state_dir,
            resolv_conf=resolv_conf,
            image_entrypoint=image.entrypoint,
            image_cmd=image.cmd,
            image_working_dir=image.working_dir,
        )
        self.containers[c.id] = c
        s.container_ids.add(c.id)
        return api_pb2.CreateContainerResponse(container_id=c.id)

    async def start_container(self, req: api_pb2.StartContainerRequest) -> api_pb2.StartContainerResponse:
        c = self._container(req.container_id)
        if c.state != api_pb2.CONTAINER_CREATED:
            raise FailedPreconditionError(f"container {c.id!r} is not in created state")
        s = self._sandbox(c.sandbox_id)
        if not s.ready:
            raise FailedPreconditionError(f"pod sandbox {s.id!r} is not ready")
        res = c.config.linux.resources
        limits = limits_for(res.memory_limit_in_bytes, res.cpu_period, res.cpu_quota, res.cpu_shares)
        cg_procs: list[str] = []
        if limits:  # errors (a limit not written, a controller not writable) go to ContainerStatus
            c.cgroup_errors = self.cgroups.create(c.id, limits)
            cg_procs = self.cgroups.procs_files(c.id)
        try:
            await ctr.launch(c, self.isolation, s.pid, self._clock_ns, cg_procs)
        except ctr.ContainerStartError as e:
            raise FailedPreconditionError(f"failed to start container {c.id!r}: {e}") from e
        if c.process is not None:
            self.ledger.add(c.process.pid)
        return api_pb2.StartContainerResponse()

    async def stop_container(self, req: api_pb2.StopContainerRequest) -> api_pb2.StopContainerResponse:
        c = self._container(req.container_id)
        await ctr.stop(c, float(req.timeout))
        return api_pb2.StopContainerResponse()

    async def remove_container(self, req: api_pb2.RemoveContainerRequest) -> api_pb2.RemoveContainerResponse:
        c = self.containers.get(req.container_id)
        if c is None:
            return api_pb2.RemoveContainerResponse()
        await ctr.stop(c, 0)
        if c.waiter is not None:
            await c.waiter
        if c.process is not None:
            self.ledger.discard(c.process.pid)
        self.cgroups.remove(c.id)
        if c.state_dir:
            shutil.rmtree(c.state_dir, ignore_errors=True)
        self.containers.pop(c.id, None)
        s = self.sandboxes.get(c.sandbox_id)
        if s is not None:
            s.container_ids.discard(c.id)
        return api_pb2.RemoveContainerResponse()

    def _short(self, c: ctr.Container) -> api_pb2.Container:
        return api_pb2.Container(
            id=c.id,
            pod_sandbox_id=c.sandbox_id,
            metadata=c.config.metadata,
            image=c.config.image,
            image_ref=c.image_ref,
            state=c.state,  # type: ignore[arg-type]
            created_at=c.created_at,
            labels=dict(c.config.labels),
            annotations=dict(c.config.annotations),
            image_id=c.image_id,
        )

    def list_containers(self, req: api_pb2.ListContainersRequest) -> api_pb2.ListContainersResponse:
        f = req.filter
        out = [
            self._short(c)
            for c in self.containers.values()
            if (not f.id or c.id == f.id)
            and (not f.pod_sandbox_id or c.sandbox_id == f.pod_sandbox_id)
            and (not f.HasField("state") or c.state == f.state.state)
            and _labels_match(c.config.labels, f.label_selector)
        ]
        return api_pb2.ListContainersResponse(containers=out)

    def container_status(self, req: api_pb2.ContainerStatusRequest) -> api_pb2.ContainerStatusResponse:
        c = self._container(req.container_id)
        status = api_pb2.ContainerStatus(
            id=c.id,
            metadata=c.config.metadata,
            state=c.state,  # type: ignore[arg-type]
            created_at=c.created_at,
            started_at=c.started_at,
            finished_at=c.finished_at,
            exit_code=c.exit_code,
            image=c.config.image,
            image_ref=c.image_ref,
            reason=c.reason,
            message=c.message,
            labels=dict(c.config.labels),
            annotations=dict(c.config.annotations),
            mounts=list(c.config.mounts),
            log_path=c.log_path,
            image_id=c.image_id,
        )
        if c.config.linux.HasField("resources"):
            status.resources.linux.CopyFrom(c.config.linux.resources)
        if c.cgroup_errors and c.state in (api_pb2.CONTAINER_CREATED, api_pb2.CONTAINER_RUNNING):
            # Running without (some of) its limits: say so where crictl and the agent look.
            status.reason = LIMITS_NOT_APPLIED
            status.message = limits_message(c.cgroup_errors, self.cgroups.reason)
        info = {}
        if req.verbose:
            info["info"] = json.dumps(
                {"pid": c.init_pid, "isolation": self.isolation.mode, "cgroupErrors": c.cgroup_errors}
            )
        return api_pb2.ContainerStatusResponse(status=status, info=info)

    def reopen_container_log(
        self, req: api_pb2.ReopenContainerLogRequest
    ) -> api_pb2.ReopenContainerLogResponse:
        c = self._container(req.container_id)
        if c.state != api_pb2.CONTAINER_RUNNING:
            raise FailedPreconditionError(f"container {c.id!r} is not running")
        if c.log is not None:
            c.log.reopen()
        return api_pb2.ReopenContainerLogResponse()

    # -- exec -----------------------------------------------------------------------------------

    def _running(self, cid: str) -> ctr.Container:
        c = self._container(cid)
        if c.state != api_pb2.CONTAINER_RUNNING:
            raise FailedPreconditionError(f"container {cid!r} is not running")
        return c

    async def exec_sync(self, req: api_pb2.ExecSyncRequest) -> api_pb2.ExecSyncResponse:
        """Raises ``exec.ExecTimeout`` when ``req.timeout`` expires (the command is killed)."""
        c = self._running(req.container_id)
        if not req.cmd:
            raise InvalidArgumentError("cmd is empty")
        r = await ex.exec_sync(c, self.isolation, list(req.cmd), float(req.timeout))
        return api_pb2.ExecSyncResponse(stdout=r.stdout, stderr=r.stderr, exit_code=r.exit_code)

    async def exec_stream(self, container_id: str, cmd: Iterable[str], tty: bool = False) -> ex.ExecStream:
        """Start ``cmd`` in a running container with its stdio handed to the caller (kubectl exec)."""
        c = self._running(container_id)
        return await ex.exec_stream(c, self.isolation, list(cmd), tty)

    def exec(self, req: api_pb2.ExecRequest) -> api_pb2.ExecResponse:
        """CRI Exec: validate, then hand out a one-time URL on the streaming server (see streaming.py)."""
        self._running(req.container_id)
        if not req.cmd:
            raise InvalidArgumentError("cmd is empty")
        if not (req.stdin or req.stdout or req.stderr):
            raise InvalidArgumentError("one of stdin, stdout, or stderr must be set")
        if req.tty and req.stderr:
            raise InvalidArgumentError("tty and stderr cannot both be true")
        if self.streaming is None:
            raise FailedPreconditionError("streaming server is not running")
        return api_pb2.ExecResponse(url=self.streaming.register_exec(req))

    # -- images ---------------------------------------------------------------------------------

    def _image(self, rec: ImageRecord) -> api_pb2.Image:
        return api_pb2.Image(
            id=rec.id, repo_tags=list(rec.repo_tags), repo_digests=list(rec.repo_digests), size=rec.size
        )

    def list_images(self, req: api_pb2.ListImagesRequest) -> api_pb2.ListImagesResponse:
        want = req.filter.image.image
        recs = self.images.list()
        if want:
            one = self.images.get(want)
            recs = [one] if one is not None else []
        return api_pb2.ListImagesResponse(images=[self._image(r) for r in recs])

    def image_status(self, req: api_pb2.ImageStatusRequest) -> api_pb2.ImageStatusResponse:
        """Verbose adds ``info["info"]``: containerd's shape, ``{"imageSpec": {"config": {...}}}``,
        plus ``rootfs`` (empty for images that run on the host filesystem)."""
        rec = self.images.get(req.image.image)
        if rec is None:
            return api_pb2.ImageStatusResponse()
        info = {}
        if req.verbose:
            spec = {"config": rec.to_json()["config"]}
            info["info"] = json.dumps({"imageSpec": spec, "rootfs": rec.rootfs})
        return api_pb2.ImageStatusResponse(image=self._image(rec), info=info)

    def import_layout(self, path: str, name: str = "") -> str:
        """Import an OCI image layout tarball (see ``images.ImageStore.import_layout``); its image id.

        Synchronous (unpacking a small image takes a fraction of a second); raises
        ``InvalidArgumentError`` when the tarball cannot be used."""
        try:
            return self.images.import_layout(path, name).id
        except LayoutError as e:
            raise InvalidArgumentError(str(e)) from e

    def pull_image(self, req: api_pb2.PullImageRequest) -> api_pb2.PullImageResponse:
        if not req.image.image:
            raise InvalidArgumentError("image is empty")
        return api_pb2.PullImageResponse(image_ref=self.images.pull(req.image.image).id)

    def remove_image(self, req: api_pb2.RemoveImageRequest) -> api_pb2.RemoveImageResponse:
        self.images.remove(req.image.image)
        return api_pb2.RemoveImageResponse()

    # -- lifecycle ------------------------------------------------------------------------------

    async def shutdown(self) -> None:
        """Kill every container and holder process group and reap them, DELing each sandbox's
        network first (best effort: what a DEL misses, the next instance's GC releases). Idempotent."""
        await asyncio.gather(*(ctr.stop(c, 0) for c in self.containers.values()), return_exceptions=True)
        await asyncio.gather(*(self._detach(s) for s in self.sandboxes.values()), return_exceptions=True)
        await asyncio.gather(*(sbx.stop_holder(s) for s in self.sandboxes.values()), return_exceptions=True)
        self.ledger.reap()
        if self.network is not None:
            await self.network.close()
