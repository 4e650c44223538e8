"""``HostPathPlugin``: the built-in CSI driver ``hostpath.csi.raykube.io``, node-local volumes.

Every node's volume plugin actor runs one; the CO calls CreateVolume on the plugin of the node that
will hold the volume (so the controller service is per node too and advertises no
PUBLISH_UNPUBLISH: there is nothing to attach). Volumes are ext4 images loop-mounted when the
machine allows it (capacity enforced) or plain directories (capacity a label); see storage.py for
where the bytes live and records.py for what survives a restart.

Concurrency: gRPC may run RPCs concurrently; one lock serializes every call that reads and then
changes records or mounts, so each RPC sees and leaves a consistent state. Records are saved before
an RPC answers.

Options (``CSIContext.options``): ``enforce_capacity`` ``auto`` (default: loop filesystems when the
machine can mount them) | ``true`` (refuse to start otherwise) | ``false``; ``default_capacity``
bytes for a CreateVolume without a range (1 GiB); ``max_volumes_per_node`` (0: unlimited).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import grpc
from google.protobuf import wrappers_pb2

from cluster.machinery import mountinfo
from nodeagent.csi import csi_pb2
from nodeagent.csi.errors import CSIError
from nodeagent.csi.hostpath import mounts, rules
from nodeagent.csi.hostpath.node import NodeService
from nodeagent.csi.hostpath.records import RecordStore, VolumeRecord
from nodeagent.csi.hostpath.storage import Storage, probe_loop
from nodeagent.csi.plugin import CSIContext, CSIPlugin

log = logging.getLogger(__name__)

VERSION = "0.1.0"
_CtlCap = csi_pb2.ControllerServiceCapability.RPC
CONTROLLER_CAPABILITIES = (
    _CtlCap.CREATE_DELETE_VOLUME,
    _CtlCap.LIST_VOLUMES,
    _CtlCap.GET_CAPACITY,
    _CtlCap.EXPAND_VOLUME,
)


def _option_bool(options: Mapping[str, Any], key: str, default: str) -> str:
    value = str(options.get(key, default)).lower()
    if value not in ("auto", "true", "false"):
        raise ValueError(f"hostpath option {key}={value!r}: use auto, true or false")
    return value


class HostPathPlugin(NodeService, CSIPlugin):
    """See the module docstring."""

    NAME = rules.DRIVER_NAME

    def __init__(self, ctx: CSIContext) -> None:
        super().__init__(ctx)
        self.storage = Storage(ctx.root_dir)
        self.store = RecordStore(f"{ctx.root_dir}/records")
        self.records: dict[str, VolumeRecord] = {}
        self.segments = rules.node_segments(ctx.node_name, ctx.node_labels)
        self.enforce = False
        self.online_expansion = True
        self.host_fs = ""
        self.default_capacity = int(ctx.options.get("default_capacity", rules.DEFAULT_CAPACITY))
        self.max_volumes = int(ctx.options.get("max_volumes_per_node", 0))
        self._lock: asyncio.Lock | None = None

    @property
    def lock(self) -> asyncio.Lock:
        if self._lock is None:  # made on first use, inside the loop that serves
            self._lock = asyncio.Lock()
        return self._lock

    # ---- lifecycle ----

    async def start(self) -> None:
        """Read the records, decide whether new volumes get loop filesystems, say which."""
        mode = _option_bool(self.ctx.options, "enforce_capacity", "auto")
        self.storage.prepare()
        self.records = self.store.load_all()
        self.host_fs = self.storage.host_fs_type()
        probed = None if mode == "false" else await probe_loop(self.ctx.root_dir)
        why_not = probed.unavailable if probed is not None else None
        if mode == "true" and why_not:
            raise RuntimeError(
                f"hostpath: enforce_capacity=true but {why_not}; set enforce_capacity=auto or fix it"
            )
        self.enforce = probed is not None and why_not is None
        # plain directories grow by changing a number; images need the kernel's online resize
        self.online_expansion = not self.enforce or (probed is not None and probed.online_resize)
        if self.enforce:
            log.info(
                "hostpath on %s: volumes are loop-mounted ext4 images (capacity enforced; %s)",
                self.ctx.node_name,
                "online expansion" if self.online_expansion else "an in-use volume grows when next staged",
            )
        else:
            reason = "enforce_capacity=false" if mode == "false" else why_not
            log.warning(
                "hostpath on %s: capacity NOT enforced (%s); volumes are plain directories under %s",
                self.ctx.node_name,
                reason,
                self.storage.volumes,
            )

    async def stop(self, purge: bool = False) -> None:
        """Unmount every publish, stage and image mount this driver made (records are updated, so
        the node agent stages and publishes again after a restart); ``purge`` also deletes every
        volume's data and record. A volume that cannot be cleaned is logged and the others still
        are; the data of one whose filesystem is still mounted is never removed."""
        async with self.lock:
            for rec in list(self.records.values()):
                try:
                    await self._release(rec, purge)
                except (OSError, mounts.MountError) as err:
                    log.error("hostpath: cannot clean up volume %s on stop: %s", rec.volume_id, err)
            # anything left below our directory (a crash between a mount and its record)
            for point in mountinfo.mount_points_under(str(self.storage.volumes)):
                try:
                    await mounts.unmount(point)
                except mounts.MountError as err:
                    log.error("hostpath: cannot unmount %s on stop: %s", point, err)
            if purge and not mountinfo.mount_points_under(str(self.storage.volumes)):
                for sub in ("volumes", "images", "records"):
                    shutil.rmtree(f"{self.ctx.root_dir}/{sub}", ignore_errors=True)

    async def _release(self, rec: VolumeRecord, purge: bool) -> None:
        for pub in rec.published:
            await mounts.unmount(pub.target)
            _rmdir_quiet(pub.target)
        for path in rec.staged:
            await mounts.unmount(path)
        await self.storage.deactivate(rec)
        rec = self.save(replace(rec, staged=(), published=()))
        if purge:
            await self.storage.delete(rec)
            self.store.delete(rec.volume_id)
            del self.records[rec.volume_id]

    # ---- helpers shared with the node service ----

    def context(self, rec: VolumeRecord) -> dict[str, str]:
        return {rules.CONTEXT_CAPACITY_ENFORCED: "true" if rec.enforced else "false"}

    def volume_message(self, rec: VolumeRecord) -> csi_pb2.Volume:
        return csi_pb2.Volume(
            volume_id=rec.volume_id,
            capacity_bytes=rec.capacity_bytes,
            volume_context=self.context(rec),
            accessible_topology=[csi_pb2.Topology(segments=self.segments)],
        )

    def get(self, volume_id: str) -> VolumeRecord:
        if not volume_id:
            raise CSIError(grpc.StatusCode.INVALID_ARGUMENT, "volume_id is required")
        rec = self.records.get(volume_id)
        if rec is None:
            raise CSIError(
                grpc.StatusCode.NOT_FOUND,
                f"volume {volume_id!r} does not exist on node {self.ctx.node_name!r}",
            )
        return rec

    def save(self, rec: VolumeRecord) -> VolumeRecord:
        self.store.save(rec)
        self.records[rec.volume_id] = rec
        return rec

    def check_capabilities(self, caps: Any, enforced: bool) -> None:
        """INVALID_ARGUMENT naming the first capability this driver cannot serve."""
        if not caps:
            raise CSIError(grpc.StatusCode.INVALID_ARGUMENT, "volume_capabilities are required")
        for cap in caps:
            problem = self.capability_problem(cap, enforced)
            if problem:
                raise CSIError(grpc.StatusCode.INVALID_ARGUMENT, problem)

    def capability_problem(self, cap: csi_pb2.VolumeCapability, enforced: bool) -> str | None:
        return rules.capability_problem(
            is_block=cap.HasField("block"),
            is_mount=cap.HasField("mount"),
            fs_type=cap.mount.fs_type,
            mode=cap.access_mode.mode,
            volume_fs="ext4" if enforced else self.host_fs,
        )

    # ---- Identity ----

    async def GetPluginInfo(self, request: csi_pb2.GetPluginInfoRequest) -> csi_pb2.GetPluginInfoResponse:
        return csi_pb2.GetPluginInfoResponse(
            name=self.NAME,
            vendor_version=VERSION,
            manifest={
                rules.CONTEXT_CAPACITY_ENFORCED: "true" if self.enforce else "false",
                "online_expansion": "true" if self.online_expansion else "false",
            },
        )

    async def GetPluginCapabilities(
        self, request: csi_pb2.GetPluginCapabilitiesRequest
    ) -> csi_pb2.GetPluginCapabilitiesResponse:
        svc = csi_pb2.PluginCapability.Service
        modes = csi_pb2.PluginCapability.VolumeExpansion
        expansion = modes.ONLINE if self.online_expansion else modes.OFFLINE
        return csi_pb2.GetPluginCapabilitiesResponse(
            capabilities=[
                csi_pb2.PluginCapability(service=svc(type=svc.CONTROLLER_SERVICE)),
                csi_pb2.PluginCapability(service=svc(type=svc.VOLUME_ACCESSIBILITY_CONSTRAINTS)),
                csi_pb2.PluginCapability(volume_expansion=modes(type=expansion)),
            ]
        )

    async def Probe(self, request: csi_pb2.ProbeRequest) -> csi_pb2.ProbeResponse:
        return csi_pb2.ProbeResponse(ready=wrappers_pb2.BoolValue(value=True))

    # ---- Controller ----

    async def ControllerGetCapabilities(
        self, request: csi_pb2.ControllerGetCapabilitiesRequest
    ) -> csi_pb2.ControllerGetCapabilitiesResponse:
        return csi_pb2.ControllerGetCapabilitiesResponse(
            capabilities=[
                csi_pb2.ControllerServiceCapability(rpc=_CtlCap(type=t)) for t in CONTROLLER_CAPABILITIES
            ]
        )

    async def CreateVolume(self, request: csi_pb2.CreateVolumeRequest) -> csi_pb2.CreateVolumeResponse:
        """Idempotent by name: the same name with a range the volume fits returns it again; a range
        it does not fit is ALREADY_EXISTS."""
        if not request.name:
            raise CSIError(grpc.StatusCode.INVALID_ARGUMENT, "name is required")
        if request.HasField("volume_content_source"):
            raise CSIError(
                grpc.StatusCode.INVALID_ARGUMENT,
                "hostpath does not clone volumes or restore snapshots; "
                "create the volume without a content source",
            )
        required, limit = request.capacity_range.required_bytes, request.capacity_range.limit_bytes
        reqs = request.accessibility_requirements
        rules.check_accessibility(
            [dict(t.segments) for t in reqs.requisite],
            [dict(t.segments) for t in reqs.preferred],
            self.segments,
        )
        async with self.lock:
            volume_id = rules.volume_id_for(self.ctx.node_name, request.name)
            existing = self.records.get(volume_id)
            self.check_capabilities(
                request.volume_capabilities, existing.enforced if existing else self.enforce
            )
            if existing is not None:
                if not rules.capacity_fits(existing.capacity_bytes, required, limit):
                    raise CSIError(
                        grpc.StatusCode.ALREADY_EXISTS,
                        f"volume {request.name!r} exists with {existing.capacity_bytes} bytes, outside the "
                        f"requested range (required {required}, limit {limit}); use another name",
                    )
                return csi_pb2.CreateVolumeResponse(volume=self.volume_message(existing))
            minimum = rules.MIN_IMAGE_BYTES if self.enforce else rules.BLOCK
            size = rules.choose_capacity(required, limit, default=self.default_capacity, minimum=minimum)
            free = self.storage.free_bytes()
            if size > free:
                raise CSIError(
                    grpc.StatusCode.OUT_OF_RANGE,
                    f"{size} bytes asked, node {self.ctx.node_name!r} has {free} bytes free for volumes",
                )
            rec = VolumeRecord(
                volume_id=volume_id,
                name=request.name,
                capacity_bytes=size,
                enforced=self.enforce,
                parameters=dict(request.parameters),
            )
            try:
                rec = await self.storage.create(rec)
            except (OSError, mounts.MountError) as err:
                await self.storage.delete(rec)
                raise CSIError(
                    grpc.StatusCode.INTERNAL, f"cannot make volume {request.name!r}: {err}"
                ) from err
            self.save(rec)
            log.info(
                "hostpath: created volume %s (%s, %d bytes, enforced=%s)",
                volume_id,
                rec.name,
                size,
                rec.enforced,
            )
            return csi_pb2.CreateVolumeResponse(volume=self.volume_message(rec))

    async def DeleteVolume(self, request: csi_pb2.DeleteVolumeRequest) -> csi_pb2.DeleteVolumeResponse:
        """Idempotent: an unknown id succeeds. A volume still staged or published is refused
        (FAILED_PRECONDITION): its filesystem is in use on this node."""
        if not request.volume_id:
            raise CSIError(grpc.StatusCode.INVALID_ARGUMENT, "volume_id is required")
        async with self.lock:
            rec = self.records.get(request.volume_id)
            if rec is None:
                return csi_pb2.DeleteVolumeResponse()
            if rec.in_use:
                paths = [p.target for p in rec.published] + list(rec.staged)
                raise CSIError(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"volume {rec.volume_id} is still mounted at {', '.join(paths)}; "
                    "unpublish and unstage it first",
                )
            await self.storage.delete(rec)
            self.store.delete(rec.volume_id)
            del self.records[rec.volume_id]
            log.info("hostpath: deleted volume %s (%s)", rec.volume_id, rec.name)
            return csi_pb2.DeleteVolumeResponse()

    async def ValidateVolumeCapabilities(
        self, request: csi_pb2.ValidateVolumeCapabilitiesRequest
    ) -> csi_pb2.ValidateVolumeCapabilitiesResponse:
        rec = self.get(request.volume_id)
        if not request.volume_capabilities:
            raise CSIError(grpc.StatusCode.INVALID_ARGUMENT, "volume_capabilities are required")
        for cap in request.volume_capabilities:
            problem = self.capability_problem(cap, rec.enforced)
            if problem:
                return csi_pb2.ValidateVolumeCapabilitiesResponse(message=problem)
        return csi_pb2.ValidateVolumeCapabilitiesResponse(
            confirmed=csi_pb2.ValidateVolumeCapabilitiesResponse.Confirmed(
                volume_context=dict(request.volume_context),
                volume_capabilities=list(request.volume_capabilities),
                parameters=dict(request.parameters),
            )
        )

    async def ListVolumes(self, request: csi_pb2.ListVolumesRequest) -> csi_pb2.ListVolumesResponse:
        ids, token = rules.page(list(self.records), request.starting_token, request.max_entries)
        return csi_pb2.ListVolumesResponse(
            entries=[
                csi_pb2.ListVolumesResponse.Entry(volume=self.volume_message(self.records[i])) for i in ids
            ],
            next_token=token,
        )

    async def GetCapacity(self, request: csi_pb2.GetCapacityRequest) -> csi_pb2.GetCapacityResponse:
        """Free bytes of the filesystem under the volumes; 0 for a topology or capability this
        node cannot serve (the spec's answer, not an error)."""
        if request.HasField("accessible_topology") and not rules.topology_admits(
            request.accessible_topology.segments, self.segments
        ):
            return csi_pb2.GetCapacityResponse(available_capacity=0)
        if any(self.capability_problem(c, self.enforce) for c in request.volume_capabilities):
            return csi_pb2.GetCapacityResponse(available_capacity=0)
        free = self.storage.free_bytes()
        minimum = rules.MIN_IMAGE_BYTES if self.enforce else rules.BLOCK
        return csi_pb2.GetCapacityResponse(
            available_capacity=free,
            maximum_volume_size=wrappers_pb2.Int64Value(value=free),
            minimum_volume_size=wrappers_pb2.Int64Value(value=minimum),
        )

    async def ControllerExpandVolume(
        self, request: csi_pb2.ControllerExpandVolumeRequest
    ) -> csi_pb2.ControllerExpandVolumeResponse:
        """Grow the volume (never shrink: a smaller request answers the current size). An image
        nobody has mounted grows with its filesystem at once; a mounted one grows its file here and
        its filesystem in NodeExpandVolume (node_expansion_required)."""
        if not request.volume_id:
            raise CSIError(grpc.StatusCode.INVALID_ARGUMENT, "volume_id is required")
        if not request.HasField("capacity_range"):
            raise CSIError(grpc.StatusCode.INVALID_ARGUMENT, "capacity_range is required")
        required, limit = request.capacity_range.required_bytes, request.capacity_range.limit_bytes
        async with self.lock:
            rec = self.get(request.volume_id)
            if limit and limit < rec.capacity_bytes:
                raise CSIError(
                    grpc.StatusCode.OUT_OF_RANGE,
                    f"limit_bytes {limit} is below the volume's {rec.capacity_bytes} bytes; "
                    "volumes do not shrink",
                )
            size = rules.choose_capacity(
                required, limit, default=rec.capacity_bytes, minimum=rec.capacity_bytes
            )
            if size == rec.capacity_bytes:
                pending = rec.enforced and rec.fs_bytes < rec.capacity_bytes
                return csi_pb2.ControllerExpandVolumeResponse(
                    capacity_bytes=size, node_expansion_required=pending
                )
            free = self.storage.free_bytes()
            if size - rec.capacity_bytes > free:
                raise CSIError(
                    grpc.StatusCode.OUT_OF_RANGE,
                    f"{size} bytes asked, node has {free} bytes free for volumes",
                )
            try:
                if not rec.enforced:
                    rec = self.save(replace(rec, capacity_bytes=size))
                elif self.storage.active(rec):
                    rec = self.save(await self.storage.grow_file(rec, size))
                else:
                    rec = self.save(await self.storage.grow_offline(rec, size))
            except (OSError, mounts.MountError) as err:
                raise CSIError(
                    grpc.StatusCode.INTERNAL, f"cannot grow volume {rec.volume_id}: {err}"
                ) from err
            pending = rec.enforced and rec.fs_bytes < rec.capacity_bytes
            log.info(
                "hostpath: volume %s grown to %d bytes (node expansion %s)", rec.volume_id, size, pending
            )
            return csi_pb2.ControllerExpandVolumeResponse(
                capacity_bytes=size, node_expansion_required=pending
            )


def _rmdir_quiet(path: str) -> None:
    with contextlib.suppress(OSError):
        os.rmdir(path)
